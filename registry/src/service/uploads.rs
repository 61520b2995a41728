//! Blob uploads. A session lives in both stores: its bytes in the blob store, its record
//! (which repository it belongs to) in the metadata store. The record is what makes a
//! session usable, so it is written after the bytes' session exists and removed before or
//! with them; bytes left without a record by a crash are swept as orphans (`sessions`).

use pier_oci::{Digest, RepoName};

use super::{Result, Service, ServiceError};
use crate::storage::{BlobError, ByteStream, UploadId, UploadRecord};

/// An upload session checked to belong to a repository: only [`Service::upload`] and
/// [`Service::start_upload`] make one, so no operation can touch another repository's
/// session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    id: UploadId,
}

impl Upload {
    /// The session's id (for its URL).
    pub fn id(&self) -> UploadId {
        self.id
    }
}

impl Service {
    /// Open an empty session in a repository.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<Upload> {
        let id = self.blobs.create_upload().await?;
        let started = pier_oci::time::now_secs();
        let record = UploadRecord {
            repo: repo.to_string(),
            started,
        };
        if let Err(e) = self.meta.create_upload(id, &record).await {
            // Not usable without its record; the sweep would remove the bytes later anyway.
            let _ = self.blobs.abort(id).await;
            return Err(e.into());
        }
        Ok(Upload { id })
    }

    /// The session `id`, provided it belongs to `repo`.
    pub async fn upload(&self, repo: &RepoName, id: UploadId) -> Result<Upload> {
        match self.meta.get_upload(id).await? {
            Some(r) if r.repo == repo.as_str() => Ok(Upload { id }),
            _ => Err(ServiceError::UploadUnknown),
        }
    }

    /// Bytes a session holds.
    pub async fn upload_size(&self, upload: &Upload) -> Result<u64> {
        Ok(self.blobs.upload_size(upload.id).await?)
    }

    /// Append a body to a session; `at`, when given, must equal its size. On a refusal
    /// the unread rest of the body is still in `body`. A failed write (disk full, I/O)
    /// loses the session's bytes, so its record goes too.
    pub async fn append(&self, upload: &Upload, at: Option<u64>, body: &mut ByteStream) -> Result<u64> {
        match self.blobs.append(upload.id, at, body).await {
            Ok(size) => Ok(size),
            Err(e @ (BlobError::NoSpace | BlobError::Io(_) | BlobError::Failed(_))) => {
                self.meta.delete_upload(upload.id).await?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Verify the session's bytes against `digest`, store them and make the blob visible
    /// in the repository. Whatever the outcome the session is spent: on a mismatch
    /// nothing is stored. The link is written before the record goes, so a crash in
    /// between leaves only a record the sweep removes, never a stored blob the client was
    /// told about but cannot read.
    pub async fn finish_upload(&self, repo: &RepoName, upload: Upload, digest: &Digest) -> Result<()> {
        if let Err(e) = self.blobs.commit(upload.id, digest).await {
            self.meta.delete_upload(upload.id).await?;
            return Err(e.into());
        }
        self.meta.link_blob(repo, digest).await?;
        self.meta.delete_upload(upload.id).await?;
        Ok(())
    }

    /// A whole blob in one request: a session opened, filled and finished.
    pub async fn upload_whole(&self, repo: &RepoName, digest: &Digest, body: &mut ByteStream) -> Result<()> {
        let upload = self.start_upload(repo).await?;
        self.append(&upload, None, body).await?;
        self.finish_upload(repo, upload, digest).await
    }

    /// Drop a session and its bytes.
    pub async fn cancel_upload(&self, upload: Upload) -> Result<()> {
        let aborted = self.blobs.abort(upload.id).await;
        self.meta.delete_upload(upload.id).await?;
        match aborted {
            Ok(()) | Err(BlobError::UploadUnknown) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
