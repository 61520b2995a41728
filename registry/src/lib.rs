//! pier's OCI Distribution v1.1 registry.
//!
//! [`Registry`] ties the two storage traits to the HTTP API; [`serve`] runs it with graceful
//! shutdown. The embedded default keeps blobs as files and metadata in sled, both under one
//! data directory.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = pier_registry::AuthConfig::default();
//! let registry = pier_registry::Registry::open(std::path::Path::new("./pier-data"), config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! pier_registry::serve(listener, registry, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod auth;
mod backends;
pub mod config;
mod error;
mod extend;
pub mod limits;
mod log;
pub mod management;
mod manifest;
mod metrics;
mod routes;
mod server;
pub mod service;
mod sessions;
pub mod storage;

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};

pub use auth::{Auth, AuthConfig};
pub use config::{ConnectionLimits, MetadataConfig, RegistryConfig, StorageConfig, UploadConfig};
pub use error::ApiError;
pub use extend::Context;
pub use metrics::MetricsConfig;
use routes::App;
pub use service::Service;
use storage::{BlobStore, MetaError, MetaStore};

/// Why a registry could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The blob store's directories.
    #[error("cannot open the blob store in {path}: {source}")]
    Blobs {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Access control (signing key, first-start setup).
    #[error("cannot set up access control in {path}: {source}")]
    Auth {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: auth::AuthOpenError,
    },
    /// The metadata store.
    #[error("cannot open the metadata store in {path}: {source}")]
    Meta {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: MetaError,
    },
}

/// A registry over a blob store and a metadata store.
#[derive(Clone)]
pub struct Registry {
    app: App,
    config: Arc<RegistryConfig>,
    mounted: Vec<Router>,
    metrics: Arc<metrics::Metrics>,
}

impl Registry {
    /// The embedded default over `data_dir`, with default settings but `auth`.
    pub async fn open(data_dir: &Path, auth: AuthConfig) -> Result<Registry, OpenError> {
        Registry::open_with(
            data_dir,
            RegistryConfig {
                public_url: auth.public_url.clone(),
                auth,
                ..Default::default()
            },
        )
        .await
    }

    /// [`Registry::open_config`] over `data_dir` instead of `config.data_dir`.
    pub async fn open_with(data_dir: &Path, config: RegistryConfig) -> Result<Registry, OpenError> {
        Registry::open_config(&RegistryConfig {
            data_dir: data_dir.to_path_buf(),
            ..config
        })
        .await
    }

    /// A registry on the backends `config` names, under its data directory (which always
    /// holds the token signing key). The embedded default: `DATA/blobs`, `DATA/uploads`,
    /// `DATA/meta` (sled: registry metadata, users, projects, robots), `DATA/audit` (the
    /// audit log).
    pub async fn open_config(config: &RegistryConfig) -> Result<Registry, OpenError> {
        let data_dir = config.data_dir.as_path();
        secure_data_dir(data_dir).map_err(|source| OpenError::Blobs {
            path: data_dir.display().to_string(),
            source,
        })?;
        let stores = backends::open(config)?;
        let access = Arc::new(storage::CachedAccess::new(stores.access));
        let auth_config = AuthConfig {
            public_url: config.public_url.clone(),
            ..config.auth.clone()
        };
        let auth = Auth::open(data_dir, access, stores.audit, auth_config)
            .await
            .map_err(|source| OpenError::Auth {
                path: data_dir.display().to_string(),
                source,
            })?;
        let mut registry = Registry::with_stores(stores.blobs, stores.meta, Arc::new(auth));
        sessions::spawn_sweeper(
            registry.app.service.blob_store(),
            registry.app.service.meta_store(),
            config.uploads.ttl,
            config.uploads.sweep_every,
        );
        registry.config = Arc::new(config.clone());
        Ok(registry)
    }

    /// A registry over any stores, with default settings.
    pub fn with_stores(blobs: Arc<dyn BlobStore>, meta: Arc<dyn MetaStore>, auth: Arc<Auth>) -> Registry {
        Registry {
            app: App {
                service: Service::new(blobs, meta),
                auth,
            },
            config: Arc::new(RegistryConfig::default()),
            mounted: Vec::new(),
            metrics: Arc::new(metrics::Metrics::new()),
        }
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The registry's operations.
    pub fn service(&self) -> &Service {
        &self.app.service
    }

    /// Access control.
    pub fn auth(&self) -> &Auth {
        &self.app.auth
    }

    /// What routes of other crates work with (see [`Registry::mount`]).
    pub fn context(&self) -> Context {
        Context {
            service: self.app.service.clone(),
            auth: self.app.auth.clone(),
            config: self.config.clone(),
        }
    }

    /// Serve `routes` beside the registry's own, behind the same request log (build them
    /// over [`Registry::context`]). Their paths must not overlap the registry's
    /// (`/v2`, `/service/token`, `/api/v1`, `/healthz`): [`Registry::router`] panics on an
    /// overlap, as axum does, when the server is set up.
    pub fn mount(mut self, routes: Router) -> Registry {
        self.mounted.push(routes);
        self
    }

    /// The HTTP API: `/v2/…`, `/service/token`, `/api/v1/…`, `/healthz` and `/metrics`
    /// (unless turned off), with the mounted routes and the request log.
    pub fn router(&self) -> Router {
        let own = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/v2", any(routes::dispatch))
            .route("/v2/", any(routes::dispatch))
            .route("/v2/{*rest}", any(routes::dispatch))
            .route("/service/token", get(routes::token::get).post(routes::token::post))
            .nest("/api/v1", routes::api::router())
            .with_state(self.app.clone());
        let all = self.mounted.iter().fold(own, |all, routes| all.merge(routes.clone()));
        metrics::mount(all, &self.metrics, &self.config.metrics, &self.app)
            .layer(axum::middleware::from_fn(log::access_log))
    }

    /// Make all metadata and queued audit events durable.
    pub async fn flush(&self) -> Result<(), MetaError> {
        self.app.auth.audit().sync().await;
        self.app.service.meta_store().flush().await
    }
}

/// Create the data directory readable by its owner only, or warn when an existing one is
/// readable by others.
fn secure_data_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    storage::private_dir(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            data_dir = %dir.display(),
            mode = format_args!("{:o}", mode & 0o777),
            "the data directory is accessible to other local users; it holds password hashes, audit records and private images: chmod 700 it"
        );
    }
    Ok(())
}

/// Serve `registry` on `listener` until `shutdown` resolves, then let in-flight requests
/// finish (up to [`limits::SHUTDOWN_GRACE`]) and flush the metadata store. Connections are
/// held to the registry's [`ConnectionLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    server::run(listener, registry.router(), &registry.config().connections, shutdown).await;
    registry.flush().await.map_err(io::Error::other)?;
    tracing::info!("metadata flushed; bye");
    Ok(())
}
