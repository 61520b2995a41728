//! `/projects/{project}/members…`: who has which role in a project.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;

use super::{answer, body, no_content, ok, project_for, record_event};
use crate::auth::{Action, AuthError, Caller};
use crate::management::{Member, MemberSet};
use crate::routes::{App, Result};
use crate::storage::{AuditAction, SetMember};

pub(super) async fn list(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    project_for(&app, &caller, &project, Action::ViewMembers).await?;
    let members = app.auth.access().members(&project).await?;
    let members: Vec<Member> = members
        .into_iter()
        .map(|(user, role)| Member {
            role: role.into(),
            user,
        })
        .collect();
    ok(&members)
}

/// Add a member (201) or change their role (200).
pub(super) async fn set(State(app): State<App>, caller: Caller, Path(project): Path<String>, req: Request) -> Result {
    project_for(&app, &caller, &project, Action::ManageMembers).await?;
    let m: MemberSet = body(req.into_body()).await?;
    let status = match app.auth.access().set_member(&project, &m.user, m.role).await? {
        SetMember::Added => StatusCode::CREATED,
        SetMember::Changed(_) => StatusCode::OK,
        SetMember::NoUser => return Err(AuthError::NotFound(format!("user {} does not exist", m.user)).into()),
        SetMember::NoProject => return Err(AuthError::NotFound(format!("project {project} does not exist")).into()),
    };
    record_event(
        &app,
        &caller,
        AuditAction::MemberSet,
        Some(&project),
        Some(&m.user),
        Some(m.role.to_string()),
    )
    .await;
    answer(
        status,
        &Member {
            role: m.role.into(),
            user: m.user,
        },
    )
}

pub(super) async fn remove(
    State(app): State<App>,
    caller: Caller,
    Path((project, user)): Path<(String, String)>,
) -> Result {
    project_for(&app, &caller, &project, Action::ManageMembers).await?;
    if !app.auth.access().remove_member(&project, &user).await? {
        return Err(AuthError::NotFound(format!("{user} is not a member of {project}")).into());
    }
    record_event(
        &app,
        &caller,
        AuditAction::MemberRemove,
        Some(&project),
        Some(&user),
        None,
    )
    .await;
    no_content()
}
