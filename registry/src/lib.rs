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
mod error;
pub mod limits;
mod log;
mod manifest;
mod metrics;
mod routes;
mod server;
mod sessions;
pub mod storage;

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get};

pub use auth::{Auth, AuthConfig};
pub use error::ApiError;
pub use metrics::MetricsConfig;
use routes::App;
use storage::{BlobStore, FsBlobStore, MetaError, MetaStore, SledMetaStore};

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

/// How long connections may idle or stall, and how many may be open at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// A request's head must arrive whole within this time after its first byte.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// A request body that delivers no bytes for this long ends the request (an upload
    /// keeps what arrived and can be resumed).
    pub body_idle_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: limits::HEADER_READ_TIMEOUT,
            idle_timeout: limits::IDLE_TIMEOUT,
            body_idle_timeout: limits::BODY_IDLE_TIMEOUT,
            max_connections: limits::MAX_CONNECTIONS,
        }
    }
}

/// Everything a registry is opened with.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Access control and the audit log.
    pub auth: AuthConfig,
    /// An upload session untouched for this long (no chunk received) is dropped with its
    /// bytes, by a sweep every `upload_sweep_every`; its URL then answers
    /// `BLOB_UPLOAD_UNKNOWN`.
    pub upload_ttl: Duration,
    /// How often expired upload sessions are swept.
    pub upload_sweep_every: Duration,
    /// Connection timeouts and limits (used by [`serve`]).
    pub connections: ConnectionLimits,
    /// `/metrics`.
    pub metrics: MetricsConfig,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            auth: AuthConfig::default(),
            upload_ttl: limits::DEFAULT_UPLOAD_TTL,
            upload_sweep_every: limits::UPLOAD_SWEEP_EVERY,
            connections: ConnectionLimits::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// A registry over a blob store and a metadata store.
#[derive(Clone)]
pub struct Registry {
    app: App,
    config: Arc<RegistryConfig>,
    metrics: Arc<metrics::Metrics>,
}

impl Registry {
    /// The embedded default: `DATA/blobs`, `DATA/uploads`, `DATA/meta` (sled: registry
    /// metadata, users, projects, robots), `DATA/audit` (the audit log) and the token
    /// signing key.
    pub async fn open(data_dir: &Path, auth: AuthConfig) -> Result<Registry, OpenError> {
        Registry::open_with(
            data_dir,
            RegistryConfig {
                auth,
                ..Default::default()
            },
        )
        .await
    }

    /// [`Registry::open`] with every setting.
    pub async fn open_with(data_dir: &Path, config: RegistryConfig) -> Result<Registry, OpenError> {
        secure_data_dir(data_dir).map_err(|source| OpenError::Blobs {
            path: data_dir.display().to_string(),
            source,
        })?;
        let blobs = FsBlobStore::open(data_dir).map_err(|source| OpenError::Blobs {
            path: data_dir.display().to_string(),
            source,
        })?;
        let meta_dir = data_dir.join("meta");
        let meta = SledMetaStore::open(&meta_dir).map_err(|source| OpenError::Meta {
            path: meta_dir.display().to_string(),
            source,
        })?;
        let access = meta.access_store().map_err(|source| OpenError::Meta {
            path: meta_dir.display().to_string(),
            source,
        })?;
        let cached = Arc::new(storage::CachedAccess::new(Arc::new(access)));
        let audit_dir = data_dir.join("audit");
        let segments = storage::FileAuditLog::segment_bytes_for(config.auth.audit_max_bytes);
        let audit =
            storage::FileAuditLog::open_with_segments(&audit_dir, segments).map_err(|source| OpenError::Meta {
                path: audit_dir.display().to_string(),
                source,
            })?;
        let auth = Auth::open(data_dir, cached, Arc::new(audit), config.auth.clone())
            .await
            .map_err(|source| OpenError::Auth {
                path: data_dir.display().to_string(),
                source,
            })?;
        let mut registry = Registry::with_stores(Arc::new(blobs), Arc::new(meta), Arc::new(auth));
        sessions::spawn_sweeper(
            &registry.app.blobs,
            &registry.app.meta,
            config.upload_ttl,
            config.upload_sweep_every,
        );
        registry.config = Arc::new(config);
        Ok(registry)
    }

    /// A registry over any stores, with default settings.
    pub fn with_stores(blobs: Arc<dyn BlobStore>, meta: Arc<dyn MetaStore>, auth: Arc<Auth>) -> Registry {
        Registry {
            app: App { blobs, meta, auth },
            config: Arc::new(RegistryConfig::default()),
            metrics: Arc::new(metrics::Metrics::new()),
        }
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Access control.
    pub fn auth(&self) -> &Auth {
        &self.app.auth
    }

    /// The HTTP API: `/v2/…`, `/service/token`, `/api/v1/…`, `/healthz` and `/metrics`
    /// (unless turned off), with the request log.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/v2", any(routes::dispatch))
            .route("/v2/", any(routes::dispatch))
            .route("/v2/{*rest}", any(routes::dispatch))
            .route("/service/token", get(routes::token::get).post(routes::token::post))
            .nest("/api/v1", routes::api::router())
            .with_state(self.app.clone());
        metrics::mount(router, &self.metrics, &self.config.metrics, &self.app)
            .layer(axum::middleware::from_fn(log::access_log))
    }

    /// Make all metadata and queued audit events durable.
    pub async fn flush(&self) -> Result<(), MetaError> {
        self.app.auth.audit().sync().await;
        self.app.meta.flush().await
    }
}

/// Create the data directory readable by its owner only, or warn when an existing one is
/// readable by others; make the metadata database's directory and files private as well
/// (sled creates its files with the process's umask).
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
    let meta = dir.join("meta");
    storage::private_dir(&meta)?;
    std::fs::set_permissions(&meta, std::fs::Permissions::from_mode(0o700))?;
    for entry in walk(&meta)? {
        let is_dir = entry.is_dir();
        let want = if is_dir { 0o700 } else { 0o600 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(want))?;
    }
    Ok(())
}

/// Every path below `dir`.
fn walk(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    Ok(out)
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
