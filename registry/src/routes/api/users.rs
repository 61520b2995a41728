//! `/users…`: who the caller is, and user accounts with their passwords.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;

use super::{answer, body, deny, no_content, ok, record_event, require_admin, require_user};
use crate::auth::{ADMIN_USER, AuthError, Caller, Subject, now};
use crate::limits::{MAX_SECRET_BYTES, MAX_USER_NAME, MIN_PASSWORD_LEN};
use crate::management::{PasswordChange, User, UserCreate, Whoami};
use crate::routes::{App, Result};
use crate::storage::{AuditAction, UserRecord};
use pier_oci::time::rfc3339;

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

fn user(u: &UserRecord) -> User {
    User {
        admin: u.admin,
        created: rfc3339(u.created),
        name: u.name.clone(),
    }
}

pub(super) async fn whoami(caller: Caller) -> Result {
    let (admin, project) = match &caller.subject {
        Subject::Anonymous => return Err(deny(&caller, String::new())),
        Subject::User { admin, .. } => (*admin, None),
        Subject::Robot { project, .. } => (false, Some(project.clone())),
    };
    ok(&Whoami {
        admin,
        kind: caller.subject.kind().into(),
        name: caller.subject.actor(),
        project,
    })
}

pub(super) async fn list(State(app): State<App>, caller: Caller) -> Result {
    require_admin(&caller)?;
    let users = app.auth.access().users().await?;
    ok(&users.iter().map(user).collect::<Vec<_>>())
}

pub(super) async fn create(State(app): State<App>, caller: Caller, req: Request) -> Result {
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
    record_event(&app, &caller, AuditAction::UserCreate, None, Some(&record.name), None).await;
    answer(StatusCode::CREATED, &user(&record))
}

pub(super) async fn delete(State(app): State<App>, caller: Caller, Path(user): Path<String>) -> Result {
    require_admin(&caller)?;
    if user == ADMIN_USER {
        return Err(AuthError::Denied(format!("the {ADMIN_USER} user cannot be deleted")).into());
    }
    if !app.auth.access().delete_user(&user).await? {
        return Err(AuthError::NotFound(format!("user {user} does not exist")).into());
    }
    app.auth.credentials_changed();
    record_event(&app, &caller, AuditAction::UserDelete, None, Some(&user), None).await;
    no_content()
}

pub(super) async fn change_password(
    State(app): State<App>,
    caller: Caller,
    Path(user): Path<String>,
    req: Request,
) -> Result {
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
    record_event(&app, &caller, AuditAction::PasswordChange, None, Some(&user), None).await;
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(check_user_name("alice.smith@corp").is_ok());
        for bad in ["", "-x", "a b", "robot$x+y", "a:b", &"a".repeat(MAX_USER_NAME + 1)] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
    }
}
