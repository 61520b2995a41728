//! `/projects` and `/projects/{project}`: listing, creating, reading and changing projects
//! (deleting one is [`super::project_delete`]).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;

use super::{answer, body, check_project_name, ok, project_for, record_event, require_user};
use crate::auth::{Action, AuthError, Caller, Role, Subject, now};
use crate::management::{Project, ProjectCreate, ProjectUpdate};
use crate::routes::{App, Result};
use crate::storage::{AuditAction, ProjectRecord};
use pier_oci::time::rfc3339;

fn project(p: &ProjectRecord, role: Option<Role>) -> Project {
    Project {
        created: rfc3339(p.created),
        name: p.name.clone(),
        public: p.public,
        role: role.map(Into::into),
    }
}

pub(super) async fn list(State(app): State<App>, caller: Caller) -> Result {
    let roles: Vec<(String, Role)> = match &caller.subject {
        Subject::User { name, .. } => app.auth.access().memberships(name).await?,
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for p in app.auth.access().projects().await? {
        let role = roles.iter().find(|(n, _)| *n == p.name).map(|(_, r)| *r);
        let (_, g) = app.auth.grant(&caller.subject, &p.name).await?;
        if g.has(Action::Pull) || role.is_some() {
            out.push(project(&p, role));
        }
    }
    ok(&out)
}

pub(super) async fn create(State(app): State<App>, caller: Caller, req: Request) -> Result {
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
    record_event(
        &app,
        &caller,
        AuditAction::ProjectCreate,
        Some(&record.name),
        None,
        None,
    )
    .await;
    let role = owner.map(|_| Role::ProjectAdmin);
    answer(StatusCode::CREATED, &project(&record, role))
}

pub(super) async fn get(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Result {
    let (p, _) = project_for(&app, &caller, &name, Action::Pull).await?;
    let role = match &caller.subject {
        Subject::User { name: user, .. } => app.auth.access().role(&name, user).await?,
        _ => None,
    };
    ok(&project(&p, role))
}

pub(super) async fn update(State(app): State<App>, caller: Caller, Path(name): Path<String>, req: Request) -> Result {
    let (mut p, _) = project_for(&app, &caller, &name, Action::UpdateProject).await?;
    let u: ProjectUpdate = body(req.into_body()).await?;
    p.public = u.public;
    if !app.auth.access().update_project(&p).await? {
        return Err(AuthError::NotFound(format!("project {name} does not exist")).into());
    }
    let visibility = if p.public { "public" } else { "private" };
    record_event(
        &app,
        &caller,
        AuditAction::ProjectUpdate,
        Some(&name),
        None,
        Some(visibility.into()),
    )
    .await;
    ok(&project(&p, None))
}
