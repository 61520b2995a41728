//! `DELETE /projects/{project}`: the one management call that reaches past the access
//! store into the registry's metadata and upload sessions (the rules:
//! `Service::delete_project`).

use axum::extract::{Path, State};

use super::{no_content, project_for, record_event};
use crate::auth::{Action, AuthError, Caller};
use crate::routes::{App, Result};
use crate::storage::AuditAction;

/// Delete a project that holds no manifests, with its repositories' leftovers.
pub(super) async fn delete_project(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    project_for(&app, &caller, &project, Action::DeleteProject).await?;
    if !app.service.delete_project(&project, app.auth.access()).await? {
        return Err(AuthError::NotFound(format!("project {project} does not exist")).into());
    }
    app.auth.credentials_changed();
    record_event(&app, &caller, AuditAction::ProjectDelete, Some(&project), None, None).await;
    no_content()
}
