//! Client of pier's management API (`/api/v1`, described by registry/src/auth/openapi.json):
//! one function per endpoint, and one place ([`Client::check`]) that turns error answers
//! into errors people can read.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::credentials::{self, Credential};

/// Limit for one management call; they are all small, so anything longer is a hung server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Limit for establishing a connection, so that a wrong address fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a non-JSON error body (a proxy's HTML page, say) to quote.
const ERROR_BODY_QUOTE: usize = 200;

/// Roles and robot permissions are the server's own types: their names are the API's.
pub use pier_registry::auth::{Action as Permission, Role};
/// The requests and answers are the server's own types too.
pub use pier_registry::management::{
    AuditEvent, AuditPage, Member, MemberSet, Named, PasswordChange, Project, ProjectCreate, ProjectUpdate, Robot,
    RobotCreate, RobotSecret, RobotUpdate, User, UserCreate, Whoami,
};

/// Filters of `GET /audit`, times already in the server's spelling.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub project: Option<String>,
    pub action: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub before: Option<u64>,
}

/// An answer: the JSON exactly as the server sent it (what `--json` prints) and its typed
/// reading (what tables are made of).
#[derive(Debug)]
pub struct Reply<T> {
    pub json: Value,
    pub data: T,
}

/// An error answer from the server, with the OCI error code it carried.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Why the request failed from the client's side, when there is something to add
    /// (no credentials, when to retry).
    pub hint: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A connection to one pier server with (optionally) one set of credentials.
pub struct Client {
    server: String,
    base: Url,
    http: reqwest::blocking::Client,
    auth: Option<Credential>,
}

impl Client {
    /// `server` in any spelling [`credentials::server_url`] accepts.
    pub fn new(server: &str, auth: Option<Credential>) -> anyhow::Result<Client> {
        let server = credentials::server_url(server)?;
        let base = Url::parse(&server).with_context(|| format!("server URL {server}"))?;
        let mut http = reqwest::blocking::Client::builder()
            .user_agent(concat!("pier/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT);
        // A proxy from HTTP_PROXY cannot reach this machine's loopback, and would see the
        // credentials of a server that was meant to be local.
        if credentials::is_loopback(&base) {
            http = http.no_proxy();
        }
        Ok(Client {
            server,
            base,
            http: http.build().context("cannot set up the HTTP client")?,
            auth,
        })
    }

    /// The server, as `scheme://host[:port]`.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn whoami(&self) -> anyhow::Result<Reply<Whoami>> {
        self.call(Method::GET, &["users", "current"], None)
    }

    pub fn list_users(&self) -> anyhow::Result<Reply<Vec<User>>> {
        self.call(Method::GET, &["users"], None)
    }

    pub fn create_user(&self, name: &str, password: &str, admin: bool) -> anyhow::Result<Reply<User>> {
        let body = UserCreate {
            admin,
            name: name.to_owned(),
            password: password.to_owned(),
        };
        self.call(Method::POST, &["users"], Some(&to_json(&body)?))
    }

    pub fn delete_user(&self, name: &str) -> anyhow::Result<()> {
        self.call_empty(Method::DELETE, &["users", name], None)
    }

    /// `old_password` is required by the server when users change their own password.
    pub fn change_password(&self, name: &str, password: &str, old_password: Option<&str>) -> anyhow::Result<()> {
        let body = PasswordChange {
            old_password: old_password.map(str::to_owned),
            password: password.to_owned(),
        };
        self.call_empty(Method::PUT, &["users", name, "password"], Some(&to_json(&body)?))
    }

    pub fn list_projects(&self) -> anyhow::Result<Reply<Vec<Project>>> {
        self.call(Method::GET, &["projects"], None)
    }

    pub fn create_project(&self, name: &str, public: bool) -> anyhow::Result<Reply<Project>> {
        let body = ProjectCreate {
            name: name.to_owned(),
            public,
        };
        self.call(Method::POST, &["projects"], Some(&to_json(&body)?))
    }

    pub fn update_project(&self, name: &str, public: bool) -> anyhow::Result<Reply<Project>> {
        let body = ProjectUpdate { public };
        self.call(Method::PATCH, &["projects", name], Some(&to_json(&body)?))
    }

    pub fn delete_project(&self, name: &str) -> anyhow::Result<()> {
        self.call_empty(Method::DELETE, &["projects", name], None)
    }

    pub fn list_members(&self, project: &str) -> anyhow::Result<Reply<Vec<Member>>> {
        self.call(Method::GET, &["projects", project, "members"], None)
    }

    /// Add a member or change their role; `true` when the member is new.
    pub fn set_member(&self, project: &str, user: &str, role: Role) -> anyhow::Result<(Reply<Member>, bool)> {
        let body = MemberSet {
            role,
            user: user.to_owned(),
        };
        let resp = self.send(
            Method::POST,
            &["projects", project, "members"],
            &[],
            Some(&to_json(&body)?),
        )?;
        let created = resp.status() == StatusCode::CREATED;
        Ok((self.decode(resp)?, created))
    }

    pub fn remove_member(&self, project: &str, user: &str) -> anyhow::Result<()> {
        self.call_empty(Method::DELETE, &["projects", project, "members", user], None)
    }

    pub fn list_robots(&self, project: &str) -> anyhow::Result<Reply<Vec<Robot>>> {
        self.call(Method::GET, &["projects", project, "robots"], None)
    }

    pub fn create_robot(&self, project: &str, robot: &RobotCreate) -> anyhow::Result<Reply<RobotSecret>> {
        self.call(Method::POST, &["projects", project, "robots"], Some(&to_json(robot)?))
    }

    pub fn set_robot_disabled(&self, project: &str, robot: &str, disabled: bool) -> anyhow::Result<Reply<Robot>> {
        let body = RobotUpdate {
            disabled: Some(disabled),
            ..Default::default()
        };
        self.call(
            Method::PATCH,
            &["projects", project, "robots", robot],
            Some(&to_json(&body)?),
        )
    }

    pub fn rotate_robot(&self, project: &str, robot: &str) -> anyhow::Result<Reply<RobotSecret>> {
        self.call(Method::POST, &["projects", project, "robots", robot, "rotate"], None)
    }

    pub fn delete_robot(&self, project: &str, robot: &str) -> anyhow::Result<()> {
        self.call_empty(Method::DELETE, &["projects", project, "robots", robot], None)
    }

    /// One page of audit events, newest first.
    pub fn audit(&self, q: &AuditQuery) -> anyhow::Result<Reply<AuditPage>> {
        let mut query: Vec<(&str, String)> = Vec::new();
        let text = [
            ("user", &q.user),
            ("project", &q.project),
            ("action", &q.action),
            ("since", &q.since),
            ("until", &q.until),
        ];
        for (k, v) in text {
            if let Some(v) = v {
                query.push((k, v.clone()));
            }
        }
        if let Some(limit) = q.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(before) = q.before {
            query.push(("before", before.to_string()));
        }
        let resp = self.send(Method::GET, &["audit"], &query, None)?;
        self.decode(resp)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&Value>,
    ) -> anyhow::Result<Reply<T>> {
        let resp = self.send(method, path, &[], body)?;
        self.decode(resp)
    }

    fn call_empty(&self, method: Method, path: &[&str], body: Option<&Value>) -> anyhow::Result<()> {
        self.send(method, path, &[], body).map(drop)
    }

    /// `/api/v1/` + `path`, each segment percent-encoded on its own so that names such as
    /// `robot$team+ci` arrive intact.
    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have paths")
            .clear()
            .extend(["api", "v1"])
            .extend(path);
        url
    }

    fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        let url = self.url(path);
        let mut req: RequestBuilder = self.http.request(method, url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(c) = &self.auth {
            req = req.basic_auth(&c.username, Some(&c.secret));
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().map_err(|e| self.transport_error(e))?;
        self.check(resp)
    }

    fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        let what = if e.is_connect() {
            format!("cannot connect to {}", self.server)
        } else if e.is_timeout() {
            format!("{} did not answer in time", self.server)
        } else {
            format!("request to {} failed", self.server)
        };
        anyhow::Error::new(e.without_url()).context(what)
    }

    /// The response if it is a success; otherwise its OCI error body as an [`ApiError`].
    fn check(&self, resp: Response) -> anyhow::Result<Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().unwrap_or_default();
        let (code, message) = error_body(status, &body);
        let hint = if status == StatusCode::UNAUTHORIZED && self.auth.is_none() {
            Some("not logged in: run `pier login` or set PIER_USERNAME and PIER_PASSWORD".to_owned())
        } else {
            retry_after.map(|s| format!("retry after {s} s"))
        };
        Err(ApiError {
            status,
            code,
            message,
            hint,
        }
        .into())
    }

    fn decode<T: DeserializeOwned>(&self, resp: Response) -> anyhow::Result<Reply<T>> {
        let url = resp.url().path().to_owned();
        let bytes = resp
            .bytes()
            .map_err(|e| self.transport_error(e))
            .with_context(|| format!("reading the answer to {url}"))?;
        let json: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} answered {url} with something that is not JSON", self.server))?;
        let data = T::deserialize(&json)
            .with_context(|| format!("{} answered {url} with JSON of an unexpected shape", self.server))?;
        Ok(Reply { json, data })
    }
}

/// A request body as JSON.
fn to_json(body: &impl Serialize) -> anyhow::Result<Value> {
    serde_json::to_value(body).context("cannot write the request body")
}

/// The code and message of an error answer: from the OCI error body
/// `{"errors":[{"code","message"}]}` (several errors joined), or, for anything else (a
/// proxy's page, say), the status's name and the start of the body.
pub fn error_body(status: StatusCode, body: &str) -> (String, String) {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<OciError>,
    }
    #[derive(Deserialize)]
    struct OciError {
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(Errors { errors }) = serde_json::from_str::<Errors>(body)
        && let Some(first) = errors.first()
    {
        let mut message = first.message.clone();
        for e in &errors[1..] {
            message.push_str(&format!("; {}: {}", e.code, e.message));
        }
        return (first.code.clone(), message);
    }
    let code = status
        .canonical_reason()
        .unwrap_or("ERROR")
        .to_ascii_uppercase()
        .replace([' ', '-'], "_");
    let text = body.trim();
    let message = if text.is_empty() {
        "(no error body)".to_owned()
    } else if text.chars().count() > ERROR_BODY_QUOTE {
        format!("{}…", text.chars().take(ERROR_BODY_QUOTE).collect::<String>())
    } else {
        text.to_owned()
    };
    (code, crate::output::printable(&message))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn oci_error_bodies() {
        let body = r#"{"errors":[{"code":"CONFLICT","message":"project \"x\" still holds 3 repositories"}]}"#;
        let (code, message) = error_body(StatusCode::CONFLICT, body);
        let e = ApiError {
            status: StatusCode::CONFLICT,
            code,
            message,
            hint: None,
        };
        assert_eq!(e.to_string(), r#"409 CONFLICT: project "x" still holds 3 repositories"#);

        let two = r#"{"errors":[{"code":"NAME_INVALID","message":"a"},{"code":"BAD_REQUEST","message":"b"}]}"#;
        assert_eq!(
            error_body(StatusCode::BAD_REQUEST, two),
            ("NAME_INVALID".to_owned(), "a; BAD_REQUEST: b".to_owned())
        );
    }

    #[test]
    fn other_error_bodies() {
        assert_eq!(
            error_body(StatusCode::BAD_GATEWAY, "<html>upstream down</html>\n"),
            ("BAD_GATEWAY".to_owned(), "<html>upstream down</html>".to_owned())
        );
        assert_eq!(
            error_body(StatusCode::NOT_FOUND, ""),
            ("NOT_FOUND".to_owned(), "(no error body)".to_owned())
        );
        let (_, long) = error_body(StatusCode::INTERNAL_SERVER_ERROR, &"x".repeat(1000));
        assert_eq!(long.chars().count(), ERROR_BODY_QUOTE + 1);
    }

    #[test]
    fn path_segments_are_encoded() {
        let c = Client::new("127.0.0.1:5000", None).unwrap();
        assert_eq!(
            c.url(&["projects", "team", "robots", "robot$team+ci", "rotate"])
                .as_str(),
            "http://127.0.0.1:5000/api/v1/projects/team/robots/robot$team+ci/rotate"
        );
        assert_eq!(
            c.url(&["users", "a/b?c"]).as_str(),
            "http://127.0.0.1:5000/api/v1/users/a%2Fb%3Fc"
        );
    }

    #[test]
    fn roles_and_permissions_use_the_api_spelling() {
        assert_eq!(json!(Role::LimitedGuest), json!("limited_guest"));
        assert_eq!(json!(Permission::DeleteManifest), json!("delete_manifest"));
        let robot = RobotCreate {
            name: "ci".into(),
            permissions: Some(vec![Permission::Pull, Permission::Push]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&robot).unwrap(),
            json!({"name": "ci", "permissions": ["pull", "push"]})
        );
    }
}
