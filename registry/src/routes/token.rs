//! `/service/token`: the Docker token endpoint (GET with optional Basic credentials, as
//! docker and containerd call it; POST with an OAuth2 password grant, as some clients do).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;

use super::{App, Result, client_addr};
use crate::auth::token::{self, Scope};
use crate::auth::{AuthError, Caller, Via};
use crate::error::ApiError;
use crate::limits::{MAX_API_BODY, MAX_SCOPES};
use crate::storage::{AuditAction, Outcome};

/// The `scope` parameters of a query or form. Clients also send several scopes in one
/// parameter, space-separated.
fn scopes(params: &[(String, String)]) -> Result<Vec<Scope>> {
    let raw = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter(|s| !s.is_empty());
    let mut out = Vec::new();
    for s in raw {
        if out.len() == MAX_SCOPES {
            return Err(AuthError::BadRequest(format!("more than {MAX_SCOPES} scopes")).into());
        }
        out.push(token::parse_scope(s).map_err(AuthError::BadRequest)?);
    }
    Ok(out)
}

async fn answer(app: &App, caller: &Caller, scopes: Vec<Scope>) -> Result {
    if let Via::Token(_) = caller.via {
        // A token buys a token only by re-authenticating: no silent renewal of old ones.
        return Err(AuthError::BadRequest("authenticate with Basic credentials, not a token".into()).into());
    }
    let (jwt, ttl, granted) = app.auth.issue_token(&caller.subject, &scopes).await?;
    // A token that lacks some of what was asked is still issued (clients then get a 401 or
    // 403 on the request itself), but the log marks it denied and says what was dropped.
    let mut dropped = Vec::new();
    for (scope, access) in scopes.iter().zip(&granted) {
        if let Scope::Repository(name, wanted) = scope {
            let has = |a: &str| access.actions.iter().any(|g| g == a || g == "*");
            let missing: Vec<&str> = wanted
                .iter()
                .map(String::as_str)
                .filter(|w| if *w == "*" { access.actions != ["*"] } else { !has(w) })
                .collect();
            if !missing.is_empty() {
                dropped.push(format!("repository:{name}:{}", missing.join(",")));
            }
        }
    }
    let outcome = if dropped.is_empty() {
        Outcome::Success
    } else {
        Outcome::Denied
    };
    let mut e = app.auth.event(caller, AuditAction::Token, outcome);
    let granted_text: Vec<String> = granted
        .iter()
        .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
        .collect();
    let mut detail = format!("granted {}", granted_text.join(" "));
    if !dropped.is_empty() {
        detail.push_str(&format!("; refused {}", dropped.join(" ")));
    }
    e.detail = Some(detail);
    if let [a] = granted.as_slice()
        && a.kind == "repository"
    {
        e.repository = Some(a.name.clone());
        e.project = a.name.split_once('/').map(|(p, _)| p.to_owned());
    }
    app.auth.audit().record(e).await;
    let issued_at = pier_oci::time::rfc3339(pier_oci::time::now_secs());
    let body = serde_json::json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": ttl,
        "issued_at": issued_at,
    });
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response())
}

/// `GET /service/token?service=pier&scope=…&scope=…`
pub async fn get(State(app): State<App>, req: Request) -> Response {
    // Only the head is needed; a borrowed body would make the future !Send.
    let (parts, _) = req.into_parts();
    let r: Result = async {
        let caller = app
            .auth
            .authenticate(&parts.headers, client_addr(&parts.extensions))
            .await?;
        let scopes = scopes(&super::query(&parts.uri))?;
        answer(&app, &caller, scopes).await
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /service/token` with `grant_type=password&username=…&password=…&scope=…`.
pub async fn post(State(app): State<App>, req: Request) -> Response {
    let r: Result = async {
        let (parts, body) = req.into_parts();
        let client = client_addr(&parts.extensions);
        let bytes = http_body_util::Limited::new(Body::new(body), MAX_API_BODY)
            .collect()
            .await
            .map_err(|e| AuthError::BadRequest(format!("cannot read the form: {e}")))?
            .to_bytes();
        let form: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let mut caller = app.auth.authenticate(&parts.headers, client).await?;
        match field("grant_type") {
            Some("password") => {
                let (Some(user), Some(pw)) = (field("username"), field("password")) else {
                    return Err(AuthError::BadRequest("password grant without username and password".into()).into());
                };
                caller.subject = app.auth.login(user, pw, &caller.client).await?;
                caller.via = Via::Basic;
            }
            Some(other) => {
                return Err(AuthError::BadRequest(format!("unsupported grant_type {other:?}")).into());
            }
            None => {}
        }
        let scopes = scopes(&form)?;
        answer(&app, &caller, scopes).await
    }
    .await;
    r.unwrap_or_else(|e: ApiError| e.into_response())
}
