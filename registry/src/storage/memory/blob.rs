//! Blobs and upload sessions in memory.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use pier_oci::{Algorithm, Digest, Hasher};

use super::lock;
use crate::limits::READ_CHUNK;
use crate::storage::blob::{BlobError, BlobStore, BlobUsage, ByteStream, UploadId};

/// One upload session.
struct Session {
    /// Its bytes, held by the one append, commit or abort at work on it.
    data: tokio::sync::Mutex<Data>,
    /// Bytes held and when they last changed: readable while an append runs, so a size
    /// query or the expiry sweep never waits for a slow body.
    progress: Mutex<(u64, SystemTime)>,
}

struct Data {
    bytes: BytesMut,
    /// SHA-256 of `bytes` so far, so committing the common digest needs no second pass.
    sha256: Hasher,
    /// Committed or aborted: a call that was waiting for `data` finds the session gone.
    closed: bool,
}

impl Session {
    fn touch(&self, len: u64) {
        *lock(&self.progress) = (len, SystemTime::now());
    }
}

/// [`BlobStore`] in memory. Reads stream a blob in chunks of [`READ_CHUNK`] that share its
/// buffer; appends hash as they go (on the calling task, a chunk at a time).
#[derive(Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<HashMap<Digest, Bytes>>,
    sessions: Mutex<HashMap<UploadId, Arc<Session>>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> MemoryBlobStore {
        MemoryBlobStore::default()
    }

    fn session(&self, id: UploadId) -> Result<Arc<Session>, BlobError> {
        lock(&self.sessions).get(&id).cloned().ok_or(BlobError::UploadUnknown)
    }

    /// Lock a session's bytes and mark it closed, removing it from the map: a commit or an
    /// abort owns what it held from here on.
    async fn close(&self, id: UploadId) -> Result<(BytesMut, Hasher), BlobError> {
        let session = self.session(id)?;
        let mut data = session.data.lock().await;
        if data.closed {
            return Err(BlobError::UploadUnknown);
        }
        data.closed = true;
        lock(&self.sessions).remove(&id);
        let sha256 = std::mem::replace(&mut data.sha256, Hasher::new(Algorithm::Sha256));
        Ok((std::mem::take(&mut data.bytes), sha256))
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        Ok(lock(&self.blobs).get(digest).map(|b| b.len() as u64))
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream, BlobError> {
        let blob = lock(&self.blobs).get(digest).cloned().ok_or(BlobError::NotFound)?;
        let size = blob.len() as u64;
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(BlobError::RangeInvalid { size });
        }
        let (start, end) = (range.start as usize, range.end as usize);
        let chunks = (start..end)
            .step_by(READ_CHUNK)
            .map(move |at| Ok(blob.slice(at..end.min(at + READ_CHUNK))));
        Ok(stream::iter(chunks).boxed())
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        lock(&self.blobs).remove(digest).map(drop).ok_or(BlobError::NotFound)
    }

    async fn create_upload(&self) -> Result<UploadId, BlobError> {
        let id = UploadId::new();
        let session = Session {
            data: tokio::sync::Mutex::new(Data {
                bytes: BytesMut::new(),
                sha256: Hasher::new(Algorithm::Sha256),
                closed: false,
            }),
            progress: Mutex::new((0, SystemTime::now())),
        };
        lock(&self.sessions).insert(id, Arc::new(session));
        Ok(id)
    }

    async fn upload_size(&self, id: UploadId) -> Result<u64, BlobError> {
        Ok(lock(&self.session(id)?.progress).0)
    }

    async fn append(&self, id: UploadId, at: Option<u64>, body: &mut ByteStream) -> Result<u64, BlobError> {
        let session = self.session(id)?;
        let mut data = session.data.lock().await;
        if data.closed {
            return Err(BlobError::UploadUnknown);
        }
        let mut len = data.bytes.len() as u64;
        if let Some(at) = at
            && at != len
        {
            return Err(BlobError::OutOfOrder {
                current: len,
                requested: at,
            });
        }
        // Each chunk is kept as it arrives, so a body that breaks off leaves what came.
        while let Some(item) = body.next().await {
            let chunk = item.map_err(|source| BlobError::BodyIncomplete { offset: len, source })?;
            data.sha256.update(&chunk);
            data.bytes.extend_from_slice(&chunk);
            len += chunk.len() as u64;
            session.touch(len);
        }
        Ok(len)
    }

    async fn commit(&self, id: UploadId, expected: &Digest) -> Result<u64, BlobError> {
        let (bytes, sha256) = self.close(id).await?;
        let computed = if expected.algorithm() == Algorithm::Sha256 {
            sha256.finish()
        } else {
            expected.same_algorithm_of(&bytes)
        };
        if computed != *expected {
            return Err(BlobError::DigestMismatch {
                claimed: expected.clone(),
                computed,
            });
        }
        let len = bytes.len() as u64;
        // Content addressed: when the blob is there already, these bytes are the same.
        lock(&self.blobs).entry(computed).or_insert_with(|| bytes.freeze());
        Ok(len)
    }

    async fn abort(&self, id: UploadId) -> Result<(), BlobError> {
        self.close(id).await.map(drop)
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError> {
        let sessions: Vec<(UploadId, Arc<Session>)> =
            lock(&self.sessions).iter().map(|(id, s)| (*id, s.clone())).collect();
        Ok(sessions.into_iter().map(|(id, s)| (id, lock(&s.progress).1)).collect())
    }

    async fn usage(&self) -> Result<Option<BlobUsage>, BlobError> {
        let blobs = lock(&self.blobs);
        Ok(Some(BlobUsage {
            blobs: blobs.len() as u64,
            bytes: blobs.values().map(|b| b.len() as u64).sum(),
        }))
    }
}
