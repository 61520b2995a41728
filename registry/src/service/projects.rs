//! A project's content across the three stores: its repositories (metadata store), the
//! project record with members and robots (access store), its upload sessions (both).

use pier_oci::{NameError, RepoName};

use super::{Result, Service, ServiceError};
use crate::limits::MAX_PAGE;
use crate::storage::{AccessStore, MetaError};

impl Service {
    /// Every repository of a project.
    pub async fn project_repositories(&self, project: &str) -> Result<Vec<RepoName>> {
        let prefix = format!("{project}/");
        let mut out = Vec::new();
        let mut last = prefix.clone();
        // Every name in the project sorts after "<project>/" and before the next prefix.
        loop {
            let page = self.meta.list_repos(Some(&last), MAX_PAGE).await?;
            let done = page.len() < MAX_PAGE;
            for r in page {
                if !r.starts_with(&prefix) {
                    return Ok(out);
                }
                last.clone_from(&r);
                let name = r
                    .parse()
                    .map_err(|e: NameError| MetaError::Corrupt(format!("repository name {r:?}: {e}")))?;
                out.push(name);
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// Delete a project that holds no manifests, with its repositories' leftovers (blob
    /// links of repositories whose manifests were all deleted, upload sessions), so a
    /// project created later under the same name starts empty. False when there is no
    /// such project.
    ///
    /// The steps go in an order that a crash between any two leaves a state the same call
    /// finishes: repositories first (each refused by the store while it holds a manifest,
    /// so a push racing the check is never lost), then the project record (after which no
    /// new session can open in it), then its sessions (or, after a crash, the sweep).
    pub async fn delete_project(&self, project: &str, access: &dyn AccessStore) -> Result<bool> {
        let repos = self.project_repositories(project).await?;
        let mut full = Vec::new();
        for r in &repos {
            if self.meta.has_manifests(r).await? {
                full.push(r.to_string());
            }
        }
        // A refusal changes nothing; a manifest pushed after this check makes its
        // repository's removal fail below, which refuses as well.
        if full.is_empty() {
            for r in &repos {
                if !self.meta.delete_repository(r).await? {
                    full.push(r.to_string());
                }
            }
        }
        if !full.is_empty() {
            return Err(ServiceError::ProjectNotEmpty {
                project: project.to_owned(),
                repos: full,
            });
        }
        if !access.delete_project(project).await? {
            return Ok(false);
        }
        crate::sessions::drop_project_sessions(&*self.blobs, &*self.meta, project).await?;
        Ok(true)
    }
}
