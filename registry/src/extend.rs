//! Routes of other crates, served beside the registry's own: an app store's
//! `/chartrepo/…`, a console at `/`. They depend on this crate, never the other way round;
//! what they need of the registry comes through a [`Context`].

use std::sync::Arc;

use axum::http::request::Parts;

use crate::RegistryConfig;
use crate::auth::{Action, Auth, Caller, Grant};
use crate::error::ApiError;
use crate::routes::client_addr;
use crate::service::Service;
use crate::storage::ProjectRecord;

/// What mounted routes work with: the registry's operations, access control and settings.
/// Cheap to clone; use it as (part of) a router's state.
#[derive(Clone)]
pub struct Context {
    /// The registry's operations.
    pub service: Service,
    /// Who may do what, and the audit log.
    pub auth: Arc<Auth>,
    /// The settings the registry was opened with.
    pub config: Arc<RegistryConfig>,
}

impl Context {
    /// Who sent a request: its credentials (Basic or a registry token) and address.
    pub async fn caller(&self, parts: &Parts) -> Result<Caller, ApiError> {
        Ok(self
            .auth
            .authenticate(&parts.headers, client_addr(&parts.extensions))
            .await?)
    }

    /// Whether `caller` may do `action` (built-in or registered with
    /// [`Action::register`]) in `project`; the refusal is the answer to send: 401 with a
    /// Basic challenge for anonymous callers, 403 for others, 404 for the admin when the
    /// project does not exist.
    pub async fn authorize(
        &self,
        caller: &Caller,
        project: &str,
        action: Action,
    ) -> Result<(ProjectRecord, Grant), ApiError> {
        Ok(self.auth.check_project(caller, project, action).await?)
    }
}
