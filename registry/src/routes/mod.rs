//! The `/v2/` API. Repository names have any number of segments, so axum's path
//! parameters cannot split `/v2/<name>/manifests/<ref>`: one catch-all route parses the
//! tail into a [`Route`] once and dispatches once.

pub mod api;
mod blobs;
mod listing;
mod manifests;
pub mod token;
mod uploads;

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use pier_oci::{ErrorCode, Reference, RepoName};

use crate::auth::{Action, Auth, Caller, Subject, Via};
use crate::error::ApiError;
use crate::metrics::RouteKind;
use crate::service::Service;
use crate::storage::{AuditAction, ByteStream, Outcome};

/// Shared state of the handlers: the registry's operations and access control.
#[derive(Clone)]
pub struct App {
    /// The registry's operations.
    pub service: Service,
    /// Who may do what, and the audit log.
    pub auth: Arc<Auth>,
}

/// The client address of a request (absent in in-process tests).
pub fn client_addr(ext: &http::Extensions) -> Option<std::net::SocketAddr> {
    ext.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0)
}

type Result<T = Response> = std::result::Result<T, ApiError>;

/// A parsed `/v2/` path.
#[derive(Debug, PartialEq)]
enum Route {
    Base,
    Catalog,
    Tags(RepoName),
    Manifest(RepoName, String),
    Blob(RepoName, String),
    UploadStart(RepoName),
    Upload(RepoName, String),
    Referrers(RepoName, String),
}

/// A `/v2/` path split into its parts, not yet checked: the repository name and the last
/// segment (reference, digest or upload id).
enum Shape<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

impl<'a> Shape<'a> {
    /// Split the path after `/v2/` (already percent-decoded); `None` when it is no route.
    fn of(tail: &'a str) -> Option<Shape<'a>> {
        // A reference, digest or upload id is one path segment.
        let leaf = |s: &str| !s.is_empty() && !s.contains('/');
        if tail.is_empty() {
            return Some(Shape::Base);
        }
        if tail == "_catalog" {
            return Some(Shape::Catalog);
        }
        if let Some(n) = tail.strip_suffix("/tags/list") {
            return Some(Shape::Tags(n));
        }
        if let Some(n) = tail
            .strip_suffix("/blobs/uploads")
            .or_else(|| tail.strip_suffix("/blobs/uploads/"))
        {
            return Some(Shape::UploadStart(n));
        }
        let split = |sep: &str| tail.rsplit_once(sep).filter(|(n, rest)| !n.is_empty() && leaf(rest));
        if let Some((n, id)) = split("/blobs/uploads/") {
            return Some(Shape::Upload(n, id));
        }
        if let Some((n, r)) = split("/manifests/") {
            return Some(Shape::Manifest(n, r));
        }
        if let Some((n, d)) = split("/blobs/") {
            return Some(Shape::Blob(n, d));
        }
        split("/referrers/").map(|(n, d)| Shape::Referrers(n, d))
    }

    fn kind(&self) -> RouteKind {
        match self {
            Shape::Base => RouteKind::Base,
            Shape::Catalog => RouteKind::Catalog,
            Shape::Tags(_) => RouteKind::Tags,
            Shape::Manifest(..) => RouteKind::Manifest,
            Shape::Blob(..) => RouteKind::Blob,
            Shape::UploadStart(_) | Shape::Upload(..) => RouteKind::Upload,
            Shape::Referrers(..) => RouteKind::Referrers,
        }
    }
}

/// The path after `/v2/`, percent-decoded; `None` outside `/v2`.
fn v2_tail(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let raw = match path.strip_prefix("/v2")? {
        "" => "",
        rest => rest.strip_prefix('/')?,
    };
    // Some clients escape the ':' of digests.
    Some(percent_encoding::percent_decode_str(raw).decode_utf8_lossy())
}

/// What a `/v2/` path is for, by the same parse as the handler's but without checking the
/// repository name (nor allocating): the label of its request in the metrics, which must
/// never carry the name itself. `None` outside `/v2`; `Other` for a path that is no route.
pub(crate) fn v2_kind(path: &str) -> Option<RouteKind> {
    let tail = v2_tail(path)?;
    Some(Shape::of(&tail).map_or(RouteKind::Other, |s| s.kind()))
}

impl Route {
    /// Parse the path after `/v2/` (already percent-decoded).
    fn parse(tail: &str) -> Result<Route> {
        let name = |s: &str| RepoName::from_str(s).map_err(ApiError::from);
        let Some(shape) = Shape::of(tail) else {
            return Err(ApiError::code(ErrorCode::Unsupported)
                .status(StatusCode::NOT_FOUND)
                .message(format!("no such endpoint: /v2/{tail}")));
        };
        Ok(match shape {
            Shape::Base => Route::Base,
            Shape::Catalog => Route::Catalog,
            Shape::Tags(n) => Route::Tags(name(n)?),
            Shape::Manifest(n, r) => Route::Manifest(name(n)?, r.to_owned()),
            Shape::Blob(n, d) => Route::Blob(name(n)?, d.to_owned()),
            Shape::UploadStart(n) => Route::UploadStart(name(n)?),
            Shape::Upload(n, id) => Route::Upload(name(n)?, id.to_owned()),
            Shape::Referrers(n, d) => Route::Referrers(name(n)?, d.to_owned()),
        })
    }
}

/// What a route needs: the repository and the matrix action, `None` for routes that are
/// not about one repository.
fn needs(route: &Route, m: &Method) -> Option<(RepoName, Action)> {
    let (name, action) = match route {
        Route::Base | Route::Catalog => return None,
        Route::Tags(n) => (n, Action::Pull),
        Route::Referrers(n, _) => (n, Action::ReadReferrers),
        Route::Manifest(n, r) if m == Method::DELETE => match r.parse::<Reference>() {
            Ok(Reference::Tag(_)) => (n, Action::DeleteTag),
            _ => (n, Action::DeleteManifest),
        },
        Route::Blob(n, _) if m == Method::DELETE => (n, Action::DeleteManifest),
        Route::Manifest(n, _) | Route::Blob(n, _) if m == Method::GET || m == Method::HEAD => (n, Action::Pull),
        Route::Manifest(n, _) | Route::Blob(n, _) | Route::UploadStart(n) | Route::Upload(n, _) => (n, Action::Push),
    };
    Some((name.clone(), action))
}

/// Base and catalog: who may call them at all (the catalog is filtered per caller).
fn check_unscoped(route: &Route, caller: &Caller) -> Result<()> {
    match (route, &caller.via) {
        // docker login and every client's first request: anonymous callers are told where
        // to get a token.
        (Route::Base, Via::Nothing) => Err(caller_challenge(caller, None).into()),
        (Route::Catalog, Via::Token(claims)) if !claims.actions("registry", "catalog").any(|a| a == "*") => {
            let scope = "registry:catalog:*";
            Err(crate::auth::AuthError::Unauthenticated {
                challenge: Auth::challenge(&caller.realm, Some(scope), Some("insufficient_scope")),
                message: "the token does not grant the catalog".into(),
            }
            .into())
        }
        _ => Ok(()),
    }
}

fn caller_challenge(caller: &Caller, scope: Option<&str>) -> crate::auth::AuthError {
    crate::auth::AuthError::Unauthenticated {
        challenge: Auth::challenge(&caller.realm, scope, None),
        message: "authentication required".into(),
    }
}

/// The audit action of a request, if it is one the log records.
fn audited(route: &Route, m: &Method, action: Action) -> Option<AuditAction> {
    match (route, action) {
        (Route::Manifest(..), Action::Pull) if m == Method::GET => Some(AuditAction::Pull),
        (Route::Manifest(..), Action::Push) => Some(AuditAction::Push),
        (Route::Manifest(..), Action::DeleteTag) => Some(AuditAction::DeleteTag),
        (Route::Manifest(..), Action::DeleteManifest) => Some(AuditAction::DeleteManifest),
        (Route::Blob(..), Action::DeleteManifest) => Some(AuditAction::DeleteBlob),
        _ => None,
    }
}

/// The single handler behind `/v2/` and `/v2/{*rest}`.
pub async fn dispatch(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let tail = v2_tail(parts.uri.path()).unwrap_or_default();
    let m = &parts.method;
    let caller = match app
        .auth
        .authenticate(&parts.headers, client_addr(&parts.extensions))
        .await
    {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let route = match Route::parse(&tail) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let need = needs(&route, m);
    let allowed = match &need {
        None => check_unscoped(&route, &caller),
        Some((name, action)) => app.auth.check(&caller, name, *action).await.map_err(ApiError::from),
    };
    let audit = need.as_ref().and_then(|(n, a)| Some((n, audited(&route, m, *a)?)));
    if let Err(e) = allowed {
        // Refusals of authenticated callers are worth recording; anonymous ones are the
        // normal first step of the token dance.
        if let Some((name, action)) = audit.or_else(|| {
            need.as_ref()
                .filter(|(_, a)| *a == Action::Push)
                .map(|(n, _)| (n, AuditAction::Push))
        }) && caller.subject != Subject::Anonymous
        {
            record(&app, &caller, action, Outcome::Denied, name, &route, None).await;
        }
        if matches!(route, Route::Manifest(..)) && m == Method::PUT {
            // A refused manifest (a client that sends before it has a token) is small:
            // reading it lets the client see the 401 instead of a broken pipe.
            drain(body_stream(body), crate::limits::MAX_MANIFEST_BYTES).await;
        }
        return e.into_response();
    }
    let (uri, headers) = (&parts.uri, &parts.headers);
    let result = match route {
        Route::Base if m == Method::GET || m == Method::HEAD => Ok(base()),
        Route::Catalog if m == Method::GET => listing::catalog(&app, &caller, uri).await,
        Route::Tags(ref n) if m == Method::GET => listing::tags(&app, n, uri).await,
        Route::Referrers(ref n, ref d) if m == Method::GET => listing::referrers(&app, n, d, uri).await,
        Route::Manifest(ref n, ref r) if m == Method::GET || m == Method::HEAD => {
            manifests::get(&app, n, r, m == Method::HEAD).await
        }
        Route::Manifest(ref n, ref r) if m == Method::PUT => manifests::put(&app, n, r, uri, headers, body).await,
        Route::Manifest(ref n, ref r) if m == Method::DELETE => manifests::delete(&app, n, r).await,
        Route::Blob(ref n, ref d) if m == Method::GET || m == Method::HEAD => {
            blobs::get(&app, n, d, headers, m == Method::HEAD).await
        }
        Route::Blob(ref n, ref d) if m == Method::DELETE => blobs::delete(&app, n, d).await,
        Route::UploadStart(ref n) if m == Method::POST => uploads::start(&app, &caller, n, uri, body).await,
        Route::Upload(ref n, ref id) if m == Method::GET => uploads::status(&app, n, id).await,
        Route::Upload(ref n, ref id) if m == Method::PATCH => uploads::patch(&app, n, id, headers, body).await,
        Route::Upload(ref n, ref id) if m == Method::PUT => uploads::finish(&app, n, id, uri, headers, body).await,
        Route::Upload(ref n, ref id) if m == Method::DELETE => uploads::cancel(&app, n, id).await,
        _ => Err(ApiError::code(ErrorCode::Unsupported).message(format!("{m} is not supported on this endpoint"))),
    };
    let resp = result.unwrap_or_else(IntoResponse::into_response);
    if let Some((name, action)) = audit {
        let outcome = if resp.status().is_success() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        record(&app, &caller, action, outcome, name, &route, digest).await;
    }
    resp
}

async fn record(
    app: &App,
    caller: &Caller,
    action: AuditAction,
    outcome: Outcome,
    name: &RepoName,
    route: &Route,
    digest: Option<String>,
) {
    let mut e = app.auth.event(caller, action, outcome);
    e.project = name.project().map(str::to_owned);
    e.repository = Some(name.to_string());
    e.reference = match route {
        Route::Manifest(_, r) | Route::Blob(_, r) => Some(r.clone()),
        _ => None,
    };
    e.digest = digest.or_else(|| e.reference.clone().filter(|r| r.contains(':')));
    app.auth.audit().record(e).await;
}

fn base() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        "{}",
    )
        .into_response()
}

/// The `Range` value of an upload holding `size` bytes. Distribution answers `0-0` for an
/// empty session and clients expect it, though the range is inclusive.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// Read and discard up to `limit` bytes of a body the server will not use, for at most
/// [`DRAIN_TIMEOUT`](crate::limits::DRAIN_TIMEOUT): the client is most likely still
/// sending, and a connection closed with its request body unread makes the client's next
/// write fail before it has read the answer.
pub(crate) async fn drain(mut body: ByteStream, limit: usize) {
    use futures_util::StreamExt as _;
    let mut left = limit;
    let _ = tokio::time::timeout(crate::limits::DRAIN_TIMEOUT, async {
        while left > 0
            && let Some(Ok(chunk)) = body.next().await
        {
            left = left.saturating_sub(chunk.len());
        }
    })
    .await;
}

/// A request body as a byte stream for the blob store.
fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Query parameters, tolerant of absent ones.
fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn parses_routes() {
        assert_eq!(Route::parse("").unwrap(), Route::Base);
        assert_eq!(Route::parse("_catalog").unwrap(), Route::Catalog);
        assert_eq!(Route::parse("a/b/c/tags/list").unwrap(), Route::Tags(n("a/b/c")));
        assert_eq!(
            Route::parse("a/manifests/b/manifests/v1").unwrap(),
            Route::Manifest(n("a/manifests/b"), "v1".into())
        );
        assert_eq!(
            Route::parse("a/b/blobs/uploads/").unwrap(),
            Route::UploadStart(n("a/b"))
        );
        assert_eq!(Route::parse("a/b/blobs/uploads").unwrap(), Route::UploadStart(n("a/b")));
        assert_eq!(
            Route::parse("a/blobs/uploads/xyz").unwrap(),
            Route::Upload(n("a"), "xyz".into())
        );
        assert_eq!(
            Route::parse("a/blobs/sha256:00").unwrap(),
            Route::Blob(n("a"), "sha256:00".into())
        );
        assert_eq!(
            Route::parse("a/referrers/sha256:00").unwrap(),
            Route::Referrers(n("a"), "sha256:00".into())
        );
        assert!(Route::parse("A/manifests/v1").is_err());
        assert!(Route::parse("a/unknown").is_err());
        assert!(Route::parse("a/manifests/").is_err());
    }

    #[test]
    fn route_kinds_name_no_repository() {
        let kind = |path: &str| v2_kind(path).map(RouteKind::label);
        assert_eq!(kind("/v2"), Some("base"));
        assert_eq!(kind("/v2/"), Some("base"));
        assert_eq!(kind("/v2/_catalog"), Some("catalog"));
        assert_eq!(kind("/v2/team/app/tags/list"), Some("tags"));
        assert_eq!(kind("/v2/team/app/manifests/v1"), Some("manifest"));
        assert_eq!(kind("/v2/team/app/blobs/sha256%3A00"), Some("blob"));
        assert_eq!(kind("/v2/team/app/blobs/uploads/"), Some("upload"));
        assert_eq!(kind("/v2/team/app/blobs/uploads/xyz"), Some("upload"));
        assert_eq!(kind("/v2/team/app/referrers/sha256:00"), Some("referrers"));
        assert_eq!(kind("/v2/team/app/nonsense"), Some("other"));
        // Not checked here: the handler refuses the name, the label is still fixed.
        assert_eq!(kind("/v2/Team/manifests/v1"), Some("manifest"));
        assert_eq!(kind("/v2foo"), None);
        assert_eq!(kind("/api/v1/projects"), None);
    }
}
