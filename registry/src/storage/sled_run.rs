//! Running sled work off the async runtime, shared by the sled-backed stores.

use std::sync::Arc;

use super::meta::MetaError;

/// A set of sled trees that belong to one database.
pub trait Trees: Send + Sync + 'static {
    /// The database, for flushing.
    fn db(&self) -> &sled::Db;
}

/// A sled failure: corruption it detected is [`MetaError::Corrupt`], anything else (I/O, a
/// bug it reports) [`MetaError::Failed`]. An embedded engine is never merely unavailable.
pub fn engine(e: sled::Error) -> MetaError {
    match e {
        sled::Error::Corruption { .. } => MetaError::Corrupt(e.to_string()),
        e => MetaError::failed(e),
    }
}

/// Run blocking engine work off the async runtime.
pub async fn run<S: Trees, T: Send + 'static>(
    trees: &Arc<S>,
    f: impl FnOnce(&S) -> Result<T, MetaError> + Send + 'static,
) -> Result<T, MetaError> {
    let t = trees.clone();
    tokio::task::spawn_blocking(move || f(&t))
        .await
        .map_err(MetaError::from_join)?
}

/// Like [`run`], then flush so the change is durable before the caller answers.
pub async fn write<S: Trees, T: Send + 'static>(
    trees: &Arc<S>,
    f: impl FnOnce(&S) -> Result<T, MetaError> + Send + 'static,
) -> Result<T, MetaError> {
    run(trees, move |t| {
        let out = f(t)?;
        t.db().flush().map_err(engine)?;
        Ok(out)
    })
    .await
}
