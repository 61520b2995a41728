//! `/projects/{project}/robots…`: robot accounts, their permissions and secrets.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use base64::Engine as _;
use pier_oci::is_path_component;
use sha2::Digest as _;

use super::{answer, body, no_content, ok, parse_time, project_for, record_event};
use crate::auth::{Action, AuthError, Caller, Grant, now, token};
use crate::management::{Robot, RobotCreate, RobotSecret, RobotUpdate};
use crate::routes::{App, Result};
use crate::storage::{AuditAction, ROBOT_PREFIX, RobotRecord};
use pier_oci::time::rfc3339;

fn robot(r: &RobotRecord) -> Robot {
    Robot {
        created: rfc3339(r.created),
        description: r.description.clone(),
        disabled: r.disabled,
        expires_at: r.expires_at.map(rfc3339),
        name: r.account(),
        permissions: r.permissions.iter().map(|a| (*a).into()).collect(),
        project: r.project.clone(),
    }
}

/// A robot's short name from the path: the short name itself or the full account name.
fn robot_name<'a>(project: &str, given: &'a str) -> &'a str {
    given
        .strip_prefix(ROBOT_PREFIX)
        .and_then(|rest| rest.strip_prefix(project))
        .and_then(|rest| rest.strip_prefix('+'))
        .unwrap_or(given)
}

/// A new secret, and the hash that is stored of it.
fn new_secret() -> Result<(String, String)> {
    let bytes = token::random_bytes::<32>().map_err(|e| AuthError::Internal(e.to_string()))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    Ok((secret, hash))
}

fn check_permissions(perms: &[Action]) -> Result<()> {
    if let Some(bad) = perms.iter().find(|a| !Grant::robot_grantable().has(**a)) {
        let allowed: Vec<&str> = Grant::robot_grantable().actions().iter().map(|a| a.name()).collect();
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

/// A robot that the caller may manage.
async fn robot_for(app: &App, caller: &Caller, project: &str, robot: &str) -> Result<RobotRecord> {
    project_for(app, caller, project, Action::ManageRobots).await?;
    let name = robot_name(project, robot);
    app.auth
        .access()
        .robot(project, name)
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("robot {robot} does not exist in {project}")).into())
}

/// Store a changed robot; `name` as the caller gave it, for the error.
async fn store(app: &App, r: &RobotRecord, name: &str) -> Result<()> {
    if app.auth.access().update_robot(r).await? {
        Ok(())
    } else {
        Err(AuthError::NotFound(format!("robot {name} does not exist in {}", r.project)).into())
    }
}

/// After a robot changed or went: logins notice at once, and the log records who did it.
async fn changed(app: &App, caller: &Caller, r: &RobotRecord, action: AuditAction, detail: Option<String>) {
    app.auth.credentials_changed();
    record_event(app, caller, action, Some(&r.project), Some(&r.account()), detail).await;
}

pub(super) async fn list(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    project_for(&app, &caller, &project, Action::ManageRobots).await?;
    let robots = app.auth.access().robots(&project).await?;
    ok(&robots.iter().map(robot).collect::<Vec<_>>())
}

pub(super) async fn create(
    State(app): State<App>,
    caller: Caller,
    Path(project): Path<String>,
    req: Request,
) -> Result {
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
    let account = record.account();
    record_event(
        &app,
        &caller,
        AuditAction::RobotCreate,
        Some(&project),
        Some(&account),
        None,
    )
    .await;
    answer(
        StatusCode::CREATED,
        &RobotSecret {
            robot: robot(&record),
            secret,
        },
    )
}

pub(super) async fn get(
    State(app): State<App>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> Result {
    let r = robot_for(&app, &caller, &project, &name).await?;
    ok(&robot(&r))
}

pub(super) async fn update(
    State(app): State<App>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Result {
    let mut r = robot_for(&app, &caller, &project, &name).await?;
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
    store(&app, &r, &name).await?;
    changed(&app, &caller, &r, AuditAction::RobotUpdate, Some(changes.join(" "))).await;
    ok(&robot(&r))
}

pub(super) async fn rotate(
    State(app): State<App>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> Result {
    let mut r = robot_for(&app, &caller, &project, &name).await?;
    let (secret, hash) = new_secret()?;
    r.secret_sha256 = hash;
    store(&app, &r, &name).await?;
    changed(&app, &caller, &r, AuditAction::RobotRotate, None).await;
    ok(&RobotSecret {
        robot: robot(&r),
        secret,
    })
}

pub(super) async fn delete(
    State(app): State<App>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> Result {
    let r = robot_for(&app, &caller, &project, &name).await?;
    if !app.auth.access().delete_robot(&project, &r.name).await? {
        return Err(AuthError::NotFound(format!("robot {name} does not exist in {project}")).into());
    }
    changed(&app, &caller, &r, AuditAction::RobotDelete, None).await;
    no_content()
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
}
