//! `/api/v1/…`: the management API (projects, members, users, robots, audit log),
//! documented by `openapi.json` served next to it. Its requests and answers are the types
//! of [`crate::management`]; this module and its files turn them into calls of the access
//! store and the audit log.

mod audit;
mod members;
mod project_delete;
mod projects;
mod robots;
mod users;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{App, Result, client_addr};
use crate::auth::{Action, AuthError, Caller, Grant, Subject, Via};
use crate::error::ApiError;
use crate::limits::MAX_API_BODY;
use crate::storage::{AuditAction, Outcome, ProjectRecord};

const OPENAPI: &str = include_str!("../../auth/openapi.json");

/// The management routes, relative to `/api/v1`.
pub fn router() -> Router<App> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/users/current", get(users::whoami))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{user}", delete(users::delete))
        .route("/users/{user}/password", put(users::change_password))
        .route("/projects", get(projects::list).post(projects::create))
        .route(
            "/projects/{project}",
            get(projects::get)
                .patch(projects::update)
                .delete(project_delete::delete_project),
        )
        .route("/projects/{project}/members", get(members::list).post(members::set))
        .route("/projects/{project}/members/{user}", delete(members::remove))
        .route("/projects/{project}/robots", get(robots::list).post(robots::create))
        .route(
            "/projects/{project}/robots/{robot}",
            get(robots::get).patch(robots::update).delete(robots::delete),
        )
        .route("/projects/{project}/robots/{robot}/rotate", post(robots::rotate))
        .route("/audit", get(audit::query))
        .fallback(
            |uri: Uri| async move { ApiError::from(AuthError::NotFound(format!("no such endpoint: {}", uri.path()))) },
        )
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> std::result::Result<Caller, ApiError> {
        let caller = app
            .auth
            .authenticate(&parts.headers, client_addr(&parts.extensions))
            .await?;
        // A token is a capability for the repositories it names, handed to clients that
        // may be less trusted than the account; it never carries the account's rights
        // over projects, members, users or robots.
        if let Via::Token(_) = caller.via {
            return Err(AuthError::Unauthenticated {
                challenge: crate::auth::BASIC_CHALLENGE.into(),
                message: "the management API takes Basic credentials, not registry tokens".into(),
            }
            .into());
        }
        Ok(caller)
    }
}

/// RFC 3339 or Unix seconds.
fn parse_time(field: &str, v: &str) -> std::result::Result<u64, AuthError> {
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(secs);
    }
    pier_oci::time::parse_rfc3339(v)
        .ok()
        .ok_or_else(|| AuthError::BadRequest(format!("{field}: {v:?} is not an RFC 3339 time or Unix seconds")))
}

/// An answer with a JSON body.
fn answer<T: Serialize>(status: StatusCode, v: &T) -> Result {
    let body = serde_json::to_string(v).map_err(|e| AuthError::Internal(format!("cannot write the answer: {e}")))?;
    Ok((
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}

fn ok<T: Serialize>(v: &T) -> Result {
    answer(StatusCode::OK, v)
}

fn no_content() -> Result {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A JSON body, with errors that name the field, in the API's error form.
async fn body<T: DeserializeOwned>(body: Body) -> Result<T> {
    let bytes = http_body_util::Limited::new(body, MAX_API_BODY)
        .collect()
        .await
        .map_err(|e| AuthError::BadRequest(format!("cannot read the request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| AuthError::BadRequest(format!("request body: {e}")).into())
}

/// Anonymous callers are asked to log in; others are refused.
fn deny(caller: &Caller, message: String) -> ApiError {
    match caller.subject {
        Subject::Anonymous => AuthError::Unauthenticated {
            challenge: crate::auth::BASIC_CHALLENGE.into(),
            message: "authentication required".into(),
        },
        _ => AuthError::Denied(message),
    }
    .into()
}

fn require_admin(caller: &Caller) -> Result<()> {
    if caller.subject.is_admin() {
        Ok(())
    } else {
        Err(deny(caller, "only a system admin may do this".into()))
    }
}

/// A user account (not a robot, not anonymous): who may create projects and change their
/// own password.
fn require_user(caller: &Caller) -> Result<String> {
    match &caller.subject {
        Subject::User { name, .. } => Ok(name.clone()),
        _ => Err(deny(caller, "only user accounts may do this".into())),
    }
}

fn check_project_name(name: &str) -> Result<()> {
    Ok(crate::auth::check_project_name(name)?)
}

/// The project, if the caller may do `action` in it. A project that does not exist looks
/// like one the caller may not see, except to system admins.
async fn project_for(app: &App, caller: &Caller, name: &str, action: Action) -> Result<(ProjectRecord, Grant)> {
    Ok(app.auth.check_project(caller, name, action).await?)
}

/// Record a successful change; `detail` says what changed where the action alone does not.
async fn record_event(
    app: &App,
    caller: &Caller,
    action: AuditAction,
    project: Option<&str>,
    target: Option<&str>,
    detail: Option<String>,
) {
    let mut e = app.auth.event(caller, action, Outcome::Success);
    e.project = project.map(str::to_owned);
    e.target = target.map(str::to_owned);
    e.detail = detail;
    app.auth.audit().record(e).await;
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        OPENAPI,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::auth::{Grant, Role};

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("t", "0").unwrap(), 0);
        assert_eq!(parse_time("t", "1970-01-01T00:01:00Z").unwrap(), 60);
        assert!(parse_time("t", "yesterday").unwrap_err().to_string().contains("t:"));
    }

    #[test]
    fn the_openapi_document_covers_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/openapi.json",
            "/users/current",
            "/users",
            "/users/{user}",
            "/users/{user}/password",
            "/projects",
            "/projects/{project}",
            "/projects/{project}/members",
            "/projects/{project}/members/{user}",
            "/projects/{project}/robots",
            "/projects/{project}/robots/{robot}",
            "/projects/{project}/robots/{robot}/rotate",
            "/audit",
        ] {
            assert!(paths.contains_key(p), "{p} missing from openapi.json");
        }
        assert_eq!(paths.len(), 13, "openapi.json documents a route the router lacks");
        let actions: Vec<String> = doc["components"]["schemas"]["AuditAction"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        for a in &actions {
            serde_json::from_value::<AuditAction>(json!(a)).unwrap();
        }
        let roles = doc["components"]["schemas"]["Role"]["enum"].as_array().unwrap();
        assert_eq!(roles.len(), Role::ALL.len());
        let perms = doc["components"]["schemas"]["Permission"]["enum"].as_array().unwrap();
        assert_eq!(perms.len(), Grant::robot_grantable().actions().len());
    }
}
