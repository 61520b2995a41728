//! `/api/v1/…`: the management API (projects, members, users, robots, audit log),
//! documented by `openapi.json` served next to it.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use pier_oci::time::rfc3339;
use pier_oci::{RepoName, is_path_component};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{App, Result, client_addr, param, query};
use crate::auth::{ADMIN_USER, Action, AuthError, Caller, Grant, ROBOT_GRANTABLE, Role, Subject, Via, now, token};
use crate::error::ApiError;
use crate::limits::{
    AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX, AUDIT_SCAN_LIMIT, MAX_API_BODY, MAX_PAGE, MAX_SECRET_BYTES, MAX_USER_NAME,
    MIN_PASSWORD_LEN,
};
use crate::storage::{
    AuditAction, AuditEvent, AuditQuery, Outcome, ProjectRecord, ROBOT_PREFIX, RobotRecord, SetMember, UserRecord,
};

const OPENAPI: &str = include_str!("../auth/openapi.json");

/// The management routes, relative to `/api/v1`.
pub fn router() -> Router<App> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/users/current", get(whoami))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user}", axum::routing::delete(delete_user))
        .route("/users/{user}/password", put(change_password))
        .route("/projects", get(list_projects).post(create_project))
        .route(
            "/projects/{project}",
            get(get_project).patch(update_project).delete(delete_project),
        )
        .route("/projects/{project}/members", get(list_members).post(set_member))
        .route(
            "/projects/{project}/members/{user}",
            axum::routing::delete(remove_member),
        )
        .route("/projects/{project}/robots", get(list_robots).post(create_robot))
        .route(
            "/projects/{project}/robots/{robot}",
            get(get_robot).patch(update_robot).delete(delete_robot),
        )
        .route("/projects/{project}/robots/{robot}/rotate", post(rotate_robot))
        .route("/audit", get(audit))
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
                challenge: "Basic realm=\"pier\"".into(),
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

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        v.to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Result {
    Ok(json_response(StatusCode::OK, v))
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
            challenge: "Basic realm=\"pier\"".into(),
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
    if is_path_component(name) {
        Ok(())
    } else {
        Err(AuthError::InvalidName(format!(
            "invalid project name {name:?}: use lowercase letters, digits and single separators (. _ __ -), as in a repository path component"
        ))
        .into())
    }
}

fn check_user_name(name: &str) -> Result<()> {
    if crate::auth::valid_user_name(name) {
        Ok(())
    } else {
        Err(AuthError::InvalidName(format!(
            "invalid user name {name:?}: 1–{MAX_USER_NAME} letters, digits, '.', '_', '-', '@', starting with a letter or digit"
        ))
        .into())
    }
}

fn check_password(p: &str) -> Result<()> {
    if p.chars().count() < MIN_PASSWORD_LEN {
        return Err(AuthError::BadRequest(format!("password: at least {MIN_PASSWORD_LEN} characters")).into());
    }
    // Logins refuse longer secrets unread, so such a password could never be used.
    if p.len() > MAX_SECRET_BYTES {
        return Err(AuthError::BadRequest(format!("password: at most {MAX_SECRET_BYTES} bytes")).into());
    }
    Ok(())
}

/// The project, if the caller may do `action` in it. A project that does not exist looks
/// like one the caller may not see, except to system admins.
async fn project_for(app: &App, caller: &Caller, name: &str, action: Action) -> Result<(ProjectRecord, Grant)> {
    check_project_name(name)?;
    let (p, g) = app.auth.grant(&caller.subject, name).await?;
    match p {
        Some(p) if g.has(action) => Ok((p, g)),
        None if caller.subject.is_admin() => Err(AuthError::NotFound(format!("project {name} does not exist")).into()),
        _ => Err(deny(
            caller,
            format!("{} may not {action} in project {name}", caller.subject.actor()),
        )),
    }
}

async fn record_event(app: &App, caller: &Caller, action: AuditAction, project: Option<&str>, target: Option<&str>) {
    let mut e = app.auth.event(caller, action, Outcome::Success);
    e.project = project.map(str::to_owned);
    e.target = target.map(str::to_owned);
    app.auth.audit().record(e).await;
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        OPENAPI,
    )
        .into_response()
}

async fn whoami(caller: Caller) -> Result {
    match &caller.subject {
        Subject::Anonymous => Err(deny(&caller, String::new())),
        Subject::User { name, admin } => ok(json!({ "name": name, "kind": "user", "admin": admin })),
        s @ Subject::Robot { project, .. } => {
            ok(json!({ "name": s.actor(), "kind": "robot", "admin": false, "project": project }))
        }
    }
}

fn user_json(u: &UserRecord) -> Value {
    json!({ "name": u.name, "admin": u.admin, "created": rfc3339(u.created) })
}

async fn list_users(State(app): State<App>, caller: Caller) -> Result {
    require_admin(&caller)?;
    let users = app.auth.access().users().await?;
    ok(users.iter().map(user_json).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCreate {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

async fn create_user(State(app): State<App>, caller: Caller, req: Request) -> Result {
    require_admin(&caller)?;
    let u: UserCreate = body(req.into_body()).await?;
    check_user_name(&u.name)?;
    check_password(&u.password)?;
    let hash = app.auth.hash(u.password).await.map_err(AuthError::Internal)?;
    let record = UserRecord {
        name: u.name,
        password_hash: hash,
        admin: u.admin,
        created: now(),
    };
    if !app.auth.access().create_user(&record).await? {
        return Err(AuthError::Conflict(format!("user {} exists", record.name)).into());
    }
    record_event(&app, &caller, AuditAction::UserCreate, None, Some(&record.name)).await;
    Ok(json_response(StatusCode::CREATED, user_json(&record)))
}

async fn delete_user(State(app): State<App>, caller: Caller, Path(user): Path<String>) -> Result {
    require_admin(&caller)?;
    if user == ADMIN_USER {
        return Err(AuthError::Denied(format!("the {ADMIN_USER} user cannot be deleted")).into());
    }
    if !app.auth.access().delete_user(&user).await? {
        return Err(AuthError::NotFound(format!("user {user} does not exist")).into());
    }
    app.auth.credentials_changed();
    record_event(&app, &caller, AuditAction::UserDelete, None, Some(&user)).await;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    password: String,
    old_password: Option<String>,
}

async fn change_password(State(app): State<App>, caller: Caller, Path(user): Path<String>, req: Request) -> Result {
    let me = require_user(&caller)?;
    let c: PasswordChange = body(req.into_body()).await?;
    let Some(mut record) = app.auth.access().user(&user).await? else {
        return Err(if caller.subject.is_admin() {
            AuthError::NotFound(format!("user {user} does not exist")).into()
        } else {
            deny(&caller, format!("{me} may not change the password of {user}"))
        });
    };
    if !caller.subject.is_admin() {
        if me != user {
            return Err(deny(&caller, format!("{me} may not change the password of {user}")));
        }
        let old = c
            .old_password
            .ok_or_else(|| AuthError::BadRequest("old_password: required to change one's own password".into()))?;
        // Checked like a login, so the throttle also guards this path.
        app.auth.login(&me, &old, &caller.client).await?;
    }
    check_password(&c.password)?;
    record.password_hash = app.auth.hash(c.password).await.map_err(AuthError::Internal)?;
    if !app.auth.access().update_user(&record).await? {
        return Err(AuthError::NotFound(format!("user {user} does not exist")).into());
    }
    app.auth.credentials_changed();
    record_event(&app, &caller, AuditAction::PasswordChange, None, Some(&user)).await;
    no_content()
}

fn project_json(p: &ProjectRecord, role: Option<Role>) -> Value {
    let mut v = json!({ "name": p.name, "public": p.public, "created": rfc3339(p.created) });
    if let Some(r) = role {
        v["role"] = json!(r);
    }
    v
}

async fn list_projects(State(app): State<App>, caller: Caller) -> Result {
    let roles: Vec<(String, Role)> = match &caller.subject {
        Subject::User { name, .. } => app.auth.access().memberships(name).await?,
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for p in app.auth.access().projects().await? {
        let role = roles.iter().find(|(n, _)| *n == p.name).map(|(_, r)| *r);
        let (_, g) = app.auth.grant(&caller.subject, &p.name).await?;
        if g.has(Action::Pull) || role.is_some() {
            out.push(project_json(&p, role));
        }
    }
    ok(Value::Array(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectCreate {
    name: String,
    #[serde(default)]
    public: bool,
}

async fn create_project(State(app): State<App>, caller: Caller, req: Request) -> Result {
    let owner = require_user(&caller)?;
    let p: ProjectCreate = body(req.into_body()).await?;
    check_project_name(&p.name)?;
    let record = ProjectRecord {
        name: p.name,
        public: p.public,
        created: now(),
    };
    // The system admin can do everything anyway; anyone else owns what they create.
    let owner = (!caller.subject.is_admin()).then_some(owner);
    if !app.auth.access().create_project(&record, owner.as_deref()).await? {
        return Err(AuthError::Conflict(format!("project {} exists", record.name)).into());
    }
    record_event(&app, &caller, AuditAction::ProjectCreate, Some(&record.name), None).await;
    let role = owner.map(|_| Role::ProjectAdmin);
    Ok(json_response(StatusCode::CREATED, project_json(&record, role)))
}

async fn get_project(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    let (p, _) = project_for(&app, &caller, &project, Action::Pull).await?;
    let role = match &caller.subject {
        Subject::User { name, .. } => app.auth.access().role(&project, name).await?,
        _ => None,
    };
    ok(project_json(&p, role))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectUpdate {
    public: bool,
}

async fn update_project(State(app): State<App>, caller: Caller, Path(project): Path<String>, req: Request) -> Result {
    let (mut p, _) = project_for(&app, &caller, &project, Action::UpdateProject).await?;
    let u: ProjectUpdate = body(req.into_body()).await?;
    p.public = u.public;
    if !app.auth.access().update_project(&p).await? {
        return Err(AuthError::NotFound(format!("project {project} does not exist")).into());
    }
    let mut e = app.auth.event(&caller, AuditAction::ProjectUpdate, Outcome::Success);
    e.project = Some(project.clone());
    e.detail = Some(if p.public { "public" } else { "private" }.into());
    app.auth.audit().record(e).await;
    ok(project_json(&p, None))
}

/// Every repository of a project.
async fn project_repos(app: &App, project: &str) -> Result<Vec<RepoName>> {
    let prefix = format!("{project}/");
    let mut out = Vec::new();
    let mut last = prefix.clone();
    // Every name in the project sorts after "<project>/" and before the next prefix.
    loop {
        let page = app.meta.list_repos(Some(&last), MAX_PAGE).await?;
        let done = page.len() < MAX_PAGE;
        for r in page {
            if !r.starts_with(&prefix) {
                return Ok(out);
            }
            last.clone_from(&r);
            out.push(
                r.parse()
                    .map_err(|e: pier_oci::NameError| AuthError::Internal(e.to_string()))?,
            );
        }
        if done {
            return Ok(out);
        }
    }
}

/// Delete a project that holds no manifests. Its repositories' leftovers (blob links of
/// repositories whose manifests were all deleted, upload sessions) go with it, so a
/// project created later under the same name starts empty.
async fn delete_project(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    project_for(&app, &caller, &project, Action::DeleteProject).await?;
    let repos = project_repos(&app, &project).await?;
    let mut full = Vec::new();
    for r in &repos {
        if app.meta.has_manifests(r).await? {
            full.push(r.to_string());
        }
    }
    if !full.is_empty() {
        const SHOWN: usize = 20;
        let more = if full.len() > SHOWN { ", …" } else { "" };
        return Err(AuthError::Conflict(format!(
            "project {project} still holds {} repositories with images: {}{more}; delete their manifests first",
            full.len(),
            full[..full.len().min(SHOWN)].join(", ")
        ))
        .into());
    }
    for r in &repos {
        app.meta.delete_repository(r).await?;
    }
    if !app.auth.access().delete_project(&project).await? {
        return Err(AuthError::NotFound(format!("project {project} does not exist")).into());
    }
    // After the project is gone no new session can open in it, so none survives this.
    crate::sessions::drop_project_sessions(&*app.blobs, &*app.meta, &project).await?;
    app.auth.credentials_changed();
    record_event(&app, &caller, AuditAction::ProjectDelete, Some(&project), None).await;
    no_content()
}

async fn list_members(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    project_for(&app, &caller, &project, Action::ViewMembers).await?;
    let members = app.auth.access().members(&project).await?;
    ok(members.iter().map(|(u, r)| json!({ "user": u, "role": r })).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    user: String,
    role: Role,
}

async fn set_member(State(app): State<App>, caller: Caller, Path(project): Path<String>, req: Request) -> Result {
    project_for(&app, &caller, &project, Action::ManageMembers).await?;
    let m: MemberBody = body(req.into_body()).await?;
    let status = match app.auth.access().set_member(&project, &m.user, m.role).await? {
        SetMember::Added => StatusCode::CREATED,
        SetMember::Changed(_) => StatusCode::OK,
        SetMember::NoUser => return Err(AuthError::NotFound(format!("user {} does not exist", m.user)).into()),
        SetMember::NoProject => return Err(AuthError::NotFound(format!("project {project} does not exist")).into()),
    };
    let mut e = app.auth.event(&caller, AuditAction::MemberSet, Outcome::Success);
    e.project = Some(project.clone());
    e.target = Some(m.user.clone());
    e.detail = Some(m.role.to_string());
    app.auth.audit().record(e).await;
    Ok(json_response(status, json!({ "user": m.user, "role": m.role })))
}

async fn remove_member(
    State(app): State<App>,
    caller: Caller,
    Path((project, user)): Path<(String, String)>,
) -> Result {
    project_for(&app, &caller, &project, Action::ManageMembers).await?;
    if !app.auth.access().remove_member(&project, &user).await? {
        return Err(AuthError::NotFound(format!("{user} is not a member of {project}")).into());
    }
    record_event(&app, &caller, AuditAction::MemberRemove, Some(&project), Some(&user)).await;
    no_content()
}

fn robot_json(r: &RobotRecord) -> Value {
    json!({
        "name": r.account(),
        "project": r.project,
        "description": r.description,
        "permissions": r.permissions,
        "disabled": r.disabled,
        "expires_at": r.expires_at.map(rfc3339),
        "created": rfc3339(r.created),
    })
}

/// A robot's short name from the path: the short name itself or the full account name.
fn robot_name<'a>(project: &str, given: &'a str) -> &'a str {
    given
        .strip_prefix(ROBOT_PREFIX)
        .and_then(|rest| rest.strip_prefix(project))
        .and_then(|rest| rest.strip_prefix('+'))
        .unwrap_or(given)
}

fn new_secret() -> Result<(String, String)> {
    let bytes = token::random_bytes::<32>().map_err(|e| AuthError::Internal(e.to_string()))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    Ok((secret, hash))
}

fn check_permissions(perms: &[Action]) -> Result<()> {
    if let Some(bad) = perms.iter().find(|a| !ROBOT_GRANTABLE.has(**a)) {
        let allowed: Vec<&str> = ROBOT_GRANTABLE.actions().iter().map(|a| a.name()).collect();
        return Err(AuthError::BadRequest(format!(
            "permissions: {bad} cannot be given to a robot; allowed: {}",
            allowed.join(", ")
        ))
        .into());
    }
    Ok(())
}

fn parse_expiry(v: Option<&str>) -> Result<Option<u64>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let t = parse_time("expires_at", v)?;
    if t <= now() {
        return Err(AuthError::BadRequest(format!("expires_at: {v} is in the past")).into());
    }
    Ok(Some(t))
}

async fn list_robots(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    project_for(&app, &caller, &project, Action::ManageRobots).await?;
    let robots = app.auth.access().robots(&project).await?;
    ok(robots.iter().map(robot_json).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RobotCreate {
    name: String,
    #[serde(default)]
    description: String,
    permissions: Option<Vec<Action>>,
    expires_at: Option<String>,
}

async fn create_robot(State(app): State<App>, caller: Caller, Path(project): Path<String>, req: Request) -> Result {
    project_for(&app, &caller, &project, Action::ManageRobots).await?;
    let r: RobotCreate = body(req.into_body()).await?;
    if !is_path_component(&r.name) {
        return Err(AuthError::InvalidName(format!(
            "invalid robot name {:?}: use lowercase letters, digits and single separators",
            r.name
        ))
        .into());
    }
    let permissions = r.permissions.unwrap_or_else(|| vec![Action::Pull]);
    check_permissions(&permissions)?;
    let (secret, hash) = new_secret()?;
    let record = RobotRecord {
        project: project.clone(),
        name: r.name,
        description: r.description,
        secret_sha256: hash,
        permissions,
        disabled: false,
        expires_at: parse_expiry(r.expires_at.as_deref())?,
        created: now(),
    };
    if !app.auth.access().create_robot(&record).await? {
        return Err(AuthError::Conflict(format!("robot {} exists", record.account())).into());
    }
    record_event(
        &app,
        &caller,
        AuditAction::RobotCreate,
        Some(&project),
        Some(&record.account()),
    )
    .await;
    let mut v = robot_json(&record);
    v["secret"] = json!(secret);
    Ok(json_response(StatusCode::CREATED, v))
}

async fn robot_for(app: &App, caller: &Caller, project: &str, robot: &str) -> Result<RobotRecord> {
    project_for(app, caller, project, Action::ManageRobots).await?;
    let name = robot_name(project, robot);
    app.auth
        .access()
        .robot(project, name)
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("robot {robot} does not exist in {project}")).into())
}

async fn get_robot(State(app): State<App>, caller: Caller, Path((project, robot)): Path<(String, String)>) -> Result {
    let r = robot_for(&app, &caller, &project, &robot).await?;
    ok(robot_json(&r))
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RobotUpdate {
    disabled: Option<bool>,
    description: Option<String>,
    permissions: Option<Vec<Action>>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<String>>,
}

async fn update_robot(
    State(app): State<App>,
    caller: Caller,
    Path((project, robot)): Path<(String, String)>,
    req: Request,
) -> Result {
    let mut r = robot_for(&app, &caller, &project, &robot).await?;
    let u: RobotUpdate = body(req.into_body()).await?;
    let mut changes = Vec::new();
    if let Some(d) = u.disabled {
        r.disabled = d;
        changes.push(if d { "disabled" } else { "enabled" }.to_owned());
    }
    if let Some(d) = u.description {
        r.description = d;
    }
    if let Some(p) = u.permissions {
        check_permissions(&p)?;
        changes.push(format!(
            "permissions={}",
            p.iter().map(|a| a.name()).collect::<Vec<_>>().join(",")
        ));
        r.permissions = p;
    }
    if let Some(e) = u.expires_at {
        r.expires_at = parse_expiry(e.as_deref())?;
        changes.push(format!(
            "expires_at={}",
            r.expires_at.map(rfc3339).unwrap_or("never".into())
        ));
    }
    if !app.auth.access().update_robot(&r).await? {
        return Err(AuthError::NotFound(format!("robot {robot} does not exist in {project}")).into());
    }
    app.auth.credentials_changed();
    let mut e = app.auth.event(&caller, AuditAction::RobotUpdate, Outcome::Success);
    e.project = Some(project.clone());
    e.target = Some(r.account());
    e.detail = Some(changes.join(" "));
    app.auth.audit().record(e).await;
    ok(robot_json(&r))
}

async fn rotate_robot(
    State(app): State<App>,
    caller: Caller,
    Path((project, robot)): Path<(String, String)>,
) -> Result {
    let mut r = robot_for(&app, &caller, &project, &robot).await?;
    let (secret, hash) = new_secret()?;
    r.secret_sha256 = hash;
    if !app.auth.access().update_robot(&r).await? {
        return Err(AuthError::NotFound(format!("robot {robot} does not exist in {project}")).into());
    }
    app.auth.credentials_changed();
    record_event(
        &app,
        &caller,
        AuditAction::RobotRotate,
        Some(&project),
        Some(&r.account()),
    )
    .await;
    let mut v = robot_json(&r);
    v["secret"] = json!(secret);
    ok(v)
}

async fn delete_robot(
    State(app): State<App>,
    caller: Caller,
    Path((project, robot)): Path<(String, String)>,
) -> Result {
    let r = robot_for(&app, &caller, &project, &robot).await?;
    if !app.auth.access().delete_robot(&project, &r.name).await? {
        return Err(AuthError::NotFound(format!("robot {robot} does not exist in {project}")).into());
    }
    app.auth.credentials_changed();
    record_event(
        &app,
        &caller,
        AuditAction::RobotDelete,
        Some(&project),
        Some(&r.account()),
    )
    .await;
    no_content()
}

fn event_json(id: u64, e: &AuditEvent) -> Value {
    let mut v = serde_json::to_value(e).expect("events serialize");
    v["id"] = json!(id);
    v["time"] = json!(rfc3339(e.time));
    v
}

async fn audit(State(app): State<App>, caller: Caller, uri: Uri) -> Result {
    if matches!(caller.subject, Subject::Anonymous) {
        return Err(deny(&caller, String::new()));
    }
    let q = query(&uri);
    let text = |k: &str| param(&q, k).filter(|v| !v.is_empty()).map(str::to_owned);
    let project = text("project");
    if !caller.subject.is_admin() {
        let Some(p) = &project else {
            return Err(deny(
                &caller,
                "name a project (?project=): only system admins read the whole log".into(),
            ));
        };
        project_for(&app, &caller, p, Action::ReadAudit).await?;
    }
    let action = match text("action") {
        None => None,
        Some(a) => Some(
            serde_json::from_value::<AuditAction>(json!(a))
                .map_err(|_| AuthError::BadRequest(format!("action: unknown audit action {a:?}")))?,
        ),
    };
    let number = |k: &str| -> std::result::Result<Option<u64>, AuthError> {
        text(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| AuthError::BadRequest(format!("{k}: {v:?} is not a number")))
            })
            .transpose()
    };
    let limit = number("limit")?.map_or(AUDIT_PAGE_DEFAULT, |l| (l as usize).clamp(1, AUDIT_PAGE_MAX));
    let query = AuditQuery {
        actor: text("user"),
        project,
        action,
        since: text("since").map(|v| parse_time("since", &v)).transpose()?,
        until: text("until").map(|v| parse_time("until", &v)).transpose()?,
        before: number("before")?,
        limit,
    };
    // Everything recorded before this query is part of its answer.
    app.auth.audit().sync().await;
    let page = app.auth.audit().log().query(&query, AUDIT_SCAN_LIMIT).await?;
    ok(json!({
        "events": page.events.iter().map(|(id, e)| event_json(*id, e)).collect::<Vec<_>>(),
        "next": page.next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robot_names_from_paths() {
        assert_eq!(robot_name("ci", "build"), "build");
        assert_eq!(robot_name("ci", "robot$ci+build"), "build");
        assert_eq!(robot_name("ci", "robot$other+build"), "robot$other+build");
    }

    #[test]
    fn user_names() {
        assert!(check_user_name("alice.smith@corp").is_ok());
        for bad in ["", "-x", "a b", "robot$x+y", "a:b", &"a".repeat(MAX_USER_NAME + 1)] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
    }

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
        assert_eq!(perms.len(), ROBOT_GRANTABLE.actions().len());
    }
}
