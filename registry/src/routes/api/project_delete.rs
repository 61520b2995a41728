//! `DELETE /projects/{project}`: the one management call that reaches past the access
//! store into the registry's metadata and upload sessions.

use axum::extract::{Path, State};
use pier_oci::RepoName;

use super::{no_content, project_for, record_event};
use crate::auth::{Action, AuthError, Caller};
use crate::limits::MAX_PAGE;
use crate::routes::{App, Result};
use crate::storage::AuditAction;

/// How many of the repositories that still hold images a refusal names.
const SHOWN: usize = 20;

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
pub(super) async fn delete_project(State(app): State<App>, caller: Caller, Path(project): Path<String>) -> Result {
    project_for(&app, &caller, &project, Action::DeleteProject).await?;
    let repos = project_repos(&app, &project).await?;
    let mut full = Vec::new();
    for r in &repos {
        if app.meta.has_manifests(r).await? {
            full.push(r.to_string());
        }
    }
    if !full.is_empty() {
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
    record_event(&app, &caller, AuditAction::ProjectDelete, Some(&project), None, None).await;
    no_content()
}
