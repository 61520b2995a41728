//! The lifetime of upload sessions: abandoned ones expire, and a project's go with it.
//!
//! A session lives in both stores (its bytes in the [`BlobStore`], its record in the
//! [`MetaStore`]); the record is what makes it usable, so dropping one removes the record
//! first and the bytes second. Bytes left without a record (a crash between the two
//! stores, or a failed removal) are swept once they are idle for the TTL as well.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::limits::UPLOAD_SWEEP_MIN;
use crate::storage::{BlobError, BlobStore, MetaError, MetaStore, UploadId};

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SweepError {
    /// Listing or dropping sessions in the blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Listing or dropping session records failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Drop one session: the record first, so the session stops being usable even when
/// removing its bytes fails (a later sweep removes them as an orphan).
async fn drop_session(blobs: &dyn BlobStore, meta: &dyn MetaStore, id: UploadId) -> Result<(), MetaError> {
    meta.delete_upload(id).await?;
    match blobs.abort(id).await {
        Ok(()) | Err(BlobError::UploadUnknown) => {}
        Err(e) => tracing::warn!(upload = %id, "could not remove an upload session's bytes: {e}"),
    }
    Ok(())
}

/// Drop every session idle for longer than `ttl` at `now`. A session's last activity is
/// the later of its start and the last change of its bytes (each chunk appended), so a
/// long push that keeps sending is never cut off. Returns how many sessions went.
pub(crate) async fn sweep(
    blobs: &dyn BlobStore,
    meta: &dyn MetaStore,
    ttl: Duration,
    now: SystemTime,
) -> Result<usize, SweepError> {
    let expired = |last: SystemTime| now.duration_since(last).is_ok_and(|idle| idle > ttl);
    // Records first: a session opened after this listing has fresh bytes, so it is never
    // mistaken for an expired orphan below.
    let records = meta.list_uploads().await?;
    let files: HashMap<UploadId, SystemTime> = blobs.list_uploads().await?.into_iter().collect();
    let mut dropped = 0;
    let mut recorded = HashSet::new();
    for (id, record) in records {
        recorded.insert(id);
        let started = UNIX_EPOCH + Duration::from_secs(record.started);
        let last = files.get(&id).map_or(started, |&modified| modified.max(started));
        if expired(last) {
            drop_session(blobs, meta, id).await?;
            dropped += 1;
        }
    }
    for (id, modified) in files {
        if !recorded.contains(&id) && expired(modified) {
            match blobs.abort(id).await {
                Ok(()) => dropped += 1,
                Err(BlobError::UploadUnknown) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(dropped)
}

/// Drop every session of a project's repositories (the project is being deleted: a
/// session must not carry data into a project re-created under the same name).
pub(crate) async fn drop_project_sessions(
    blobs: &dyn BlobStore,
    meta: &dyn MetaStore,
    project: &str,
) -> Result<usize, MetaError> {
    let prefix = format!("{project}/");
    let mut dropped = 0;
    for (id, record) in meta.list_uploads().await? {
        if record.repo.starts_with(&prefix) {
            drop_session(blobs, meta, id).await?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// Sweep now and then every `every`, in the background of the current runtime (none: no
/// sweeper). The task holds the stores only while sweeping, so it never keeps a closed
/// registry's database open, and it ends at the first tick after the registry is gone.
pub(crate) fn spawn_sweeper(blobs: &Arc<dyn BlobStore>, meta: &Arc<dyn MetaStore>, ttl: Duration, every: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: expired upload sessions will not be swept");
        return;
    };
    let (blobs, meta): (Weak<dyn BlobStore>, Weak<dyn MetaStore>) = (Arc::downgrade(blobs), Arc::downgrade(meta));
    let every = every.max(UPLOAD_SWEEP_MIN);
    runtime.spawn(async move {
        loop {
            {
                let (Some(blobs), Some(meta)) = (blobs.upgrade(), meta.upgrade()) else {
                    return;
                };
                match sweep(&*blobs, &*meta, ttl, SystemTime::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("dropped {n} upload sessions idle for more than {ttl:?}"),
                    Err(e) => tracing::warn!("sweeping expired upload sessions failed: {e}"),
                }
            }
            tokio::time::sleep(every).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FsBlobStore, SledMetaStore, UploadRecord};

    /// Both halves of a session expire, and so do halves left without the other (a crash
    /// between the two stores); nothing younger than the TTL goes.
    #[tokio::test]
    async fn sweep_drops_expired_sessions_and_orphans_only() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::open(dir.path()).unwrap();
        let meta = SledMetaStore::open(&dir.path().join("meta")).unwrap();
        let now = SystemTime::now();
        let started = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let record = UploadRecord {
            repo: "p/app".into(),
            started,
        };
        let whole = blobs.create_upload().await.unwrap();
        meta.create_upload(whole, &record).await.unwrap();
        let orphan_file = blobs.create_upload().await.unwrap();
        let orphan_record = UploadId::new();
        meta.create_upload(orphan_record, &record).await.unwrap();

        let ttl = Duration::from_secs(60);
        assert_eq!(sweep(&blobs, &meta, ttl, now).await.unwrap(), 0, "all fresh");
        assert_eq!(blobs.list_uploads().await.unwrap().len(), 2);

        let later = now + 2 * ttl;
        assert_eq!(sweep(&blobs, &meta, ttl, later).await.unwrap(), 3);
        assert!(blobs.list_uploads().await.unwrap().is_empty());
        assert!(meta.list_uploads().await.unwrap().is_empty());
        assert!(matches!(
            blobs.upload_size(orphan_file).await,
            Err(BlobError::UploadUnknown)
        ));
    }
}
