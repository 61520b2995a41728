//! pier's OCI Distribution v1.1 registry.
//!
//! [`Registry`] ties the two storage traits to the HTTP API; [`serve`] runs it with graceful
//! shutdown. The embedded default keeps blobs as files and metadata in sled, both under one
//! data directory.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = pier_registry::Registry::open(std::path::Path::new("./pier-data"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! pier_registry::serve(listener, registry, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod error;
pub mod limits;
mod log;
mod manifest;
mod routes;
pub mod storage;

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};

pub use error::ApiError;
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
}

impl Registry {
    /// The embedded default: `DATA/blobs`, `DATA/uploads` and `DATA/meta` (sled).
    pub fn open(data_dir: &Path) -> Result<Registry, OpenError> {
        let blobs = FsBlobStore::open(data_dir).map_err(|source| OpenError::Blobs {
            path: data_dir.display().to_string(),
            source,
        })?;
        let meta_dir = data_dir.join("meta");
        let meta = SledMetaStore::open(&meta_dir).map_err(|source| OpenError::Meta {
            path: meta_dir.display().to_string(),
            source,
        })?;
        Ok(Registry::with_stores(Arc::new(blobs), Arc::new(meta)))
    }

    /// A registry over any pair of stores.
    pub fn with_stores(blobs: Arc<dyn BlobStore>, meta: Arc<dyn MetaStore>) -> Registry {
        Registry {
            app: App { blobs, meta },
        }
    }

    /// The HTTP API: `/v2/…` and `/healthz`, with the request log.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/v2", any(routes::dispatch))
            .route("/v2/", any(routes::dispatch))
            .route("/v2/{*rest}", any(routes::dispatch))
            .with_state(self.app.clone())
            .layer(axum::middleware::from_fn(log::access_log))
    }

    /// Make all metadata durable.
    pub async fn flush(&self) -> Result<(), MetaError> {
        self.app.meta.flush().await
    }
}

/// Serve `registry` on `listener` until `shutdown` resolves, then let in-flight requests
/// finish (up to [`limits::SHUTDOWN_GRACE`]) and flush the metadata store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, registry.router()).with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        r = &mut server => r.map_err(io::Error::other)??,
        () = shutdown => {
            tracing::info!("shutting down: waiting for in-flight requests");
            let _ = stop_tx.send(());
            match tokio::time::timeout(limits::SHUTDOWN_GRACE, &mut server).await {
                Ok(r) => r.map_err(io::Error::other)??,
                Err(_) => tracing::warn!("in-flight requests still running after {:?}; stopping anyway", limits::SHUTDOWN_GRACE),
            }
        }
    }
    registry.flush().await.map_err(io::Error::other)?;
    tracing::info!("metadata flushed; bye");
    Ok(())
}
