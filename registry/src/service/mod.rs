//! The registry's operations, between the HTTP routes and the stores.
//!
//! [`Service`] holds the rules of the distribution API: a blob is visible in a repository
//! only once linked there, a manifest is stored only when everything it references is
//! there, an upload session belongs to the repository it was opened in, a delete is refused
//! while a tagged image still needs its target. Routes parse, authorise, call one method
//! and shape the answer; they never reach the stores themselves.
//!
//! Reads that miss locally can be answered by an [`Upstream`] (a pull-through cache wraps
//! the service that way); writes always land in the local stores.

mod error;
mod projects;
mod uploads;
mod upstream;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use pier_oci::{Digest, Reference, RepoName, Tag};

pub use error::{ContentKind, ServiceError};
pub use uploads::Upload;
pub use upstream::Upstream;

use crate::manifest;
use crate::storage::{BlobStore, ByteStream, ManifestRecord, MetaStore, Referrer, Stored};

/// Results of the service.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The registry's operations over a blob store and a metadata store.
#[derive(Clone)]
pub struct Service {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetaStore>,
    upstream: Option<Arc<dyn Upstream>>,
}

/// A manifest push: what the client sent.
#[derive(Debug, Clone)]
pub struct ManifestPush {
    /// The tag or digest in the URL.
    pub reference: Reference,
    /// Further tags to point at it (`?tag=` of a push by digest).
    pub tags: Vec<Tag>,
    /// The `Content-Type` it was sent with.
    pub media_type: String,
    /// Its bytes.
    pub bytes: Bytes,
}

/// What a manifest push stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedManifest {
    /// Its digest.
    pub digest: Digest,
    /// The manifest it refers to, for `OCI-Subject`.
    pub subject: Option<Digest>,
    /// Every tag that now names it.
    pub tags: Vec<Tag>,
}

/// A blob found for a repository: its size, and where its bytes come from.
#[derive(Clone)]
pub struct Blob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    origin: Origin,
}

#[derive(Clone)]
enum Origin {
    Local,
    Upstream(Arc<dyn Upstream>),
}

impl Service {
    /// The operations over these stores, with nothing upstream.
    pub fn new(blobs: Arc<dyn BlobStore>, meta: Arc<dyn MetaStore>) -> Service {
        Service {
            blobs,
            meta,
            upstream: None,
        }
    }

    /// Answer reads that miss locally from `upstream`.
    pub fn with_upstream(mut self, upstream: Arc<dyn Upstream>) -> Service {
        self.upstream = Some(upstream);
        self
    }

    /// The blob store (for backends and maintenance: sweeps, GC).
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The metadata store (for backends and maintenance).
    pub fn meta_store(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// The manifest a tag or digest names in a repository: held locally, or else from
    /// upstream.
    pub async fn manifest(&self, repo: &RepoName, reference: &Reference) -> Result<ManifestRecord> {
        if let Some(record) = self.meta.get_manifest(repo, reference).await? {
            return Ok(record);
        }
        if let Some(up) = &self.upstream
            && let Some(record) = up.manifest(repo, reference).await?
        {
            return Ok(record);
        }
        Err(ServiceError::ManifestUnknown)
    }

    /// Store a manifest and point its tags at it. The digest in the URL, if any, must be
    /// the content's; every blob it lists must be linked in the repository and every child
    /// manifest present (checked again by the store in the step that stores, so a
    /// concurrent delete cannot leave it dangling).
    pub async fn put_manifest(&self, repo: &RepoName, push: ManifestPush) -> Result<PushedManifest> {
        let ManifestPush {
            reference,
            mut tags,
            media_type,
            bytes,
        } = push;
        let digest = match &reference {
            Reference::Digest(claimed) => {
                let actual = claimed.same_algorithm_of(&bytes);
                if actual != *claimed {
                    return Err(ServiceError::ManifestDigestMismatch {
                        claimed: claimed.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(t) => {
                tags.push(t.clone());
                Digest::sha256_of(&bytes)
            }
        };
        let info = manifest::parse(&media_type, &bytes)?;
        // Checked here for the blob bytes and a precise answer; the store checks links and
        // children again under its own lock.
        for blob in &info.blobs {
            if self.local_blob_size(repo, blob).await?.is_none() {
                return Err(ServiceError::missing(repo, ContentKind::Blob, blob));
            }
        }
        for child in &info.children {
            let r = Reference::Digest(child.clone());
            if self.meta.get_manifest(repo, &r).await?.is_none() {
                return Err(ServiceError::missing(repo, ContentKind::Manifest, child));
            }
        }
        let record = ManifestRecord {
            digest: digest.clone(),
            media_type: info.media_type,
            bytes,
            blobs: info.blobs,
            children: info.children,
            subject: info.subject,
            artifact_type: info.artifact_type,
            annotations: info.annotations,
        };
        if let Stored::Missing(d) = self.meta.put_manifest(repo, &record, &tags).await? {
            let what = if record.children.contains(&d) {
                ContentKind::Manifest
            } else {
                ContentKind::Blob
            };
            return Err(ServiceError::missing(repo, what, &d));
        }
        Ok(PushedManifest {
            digest,
            subject: record.subject,
            tags,
        })
    }

    /// Remove a tag, or a manifest with every tag naming it. Refused while an index
    /// reachable from a tag lists the manifest.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        match reference {
            Reference::Tag(t) => {
                if self.meta.delete_tag(repo, t).await? {
                    Ok(())
                } else {
                    Err(ServiceError::ManifestUnknown)
                }
            }
            Reference::Digest(d) => {
                let outcome = self.meta.delete_manifest(repo, d).await?;
                ServiceError::deletion(outcome, ContentKind::Manifest, d)
            }
        }
    }

    /// The size of a blob linked in this repository and present in the store.
    async fn local_blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        if !self.meta.blob_linked(repo, digest).await? {
            return Ok(None);
        }
        Ok(self.blobs.stat(digest).await?)
    }

    /// A blob as seen from a repository: served only when linked there (pushed or
    /// mounted) and present, or else held upstream.
    pub async fn blob(&self, repo: &RepoName, digest: &Digest) -> Result<Blob> {
        if let Some(size) = self.local_blob_size(repo, digest).await? {
            return Ok(Blob {
                digest: digest.clone(),
                size,
                origin: Origin::Local,
            });
        }
        if let Some(up) = &self.upstream
            && let Some(size) = up.blob_size(repo, digest).await?
        {
            return Ok(Blob {
                digest: digest.clone(),
                size,
                origin: Origin::Upstream(up.clone()),
            });
        }
        Err(ServiceError::BlobUnknown)
    }

    /// Stream a blob found by [`Service::blob`], or a byte range of it (end exclusive,
    /// within the blob).
    pub async fn read_blob(&self, repo: &RepoName, blob: &Blob, range: Option<Range<u64>>) -> Result<ByteStream> {
        match &blob.origin {
            Origin::Local => Ok(self.blobs.read(&blob.digest, range).await?),
            Origin::Upstream(up) => up.read_blob(repo, &blob.digest, range).await,
        }
    }

    /// Hide a blob from a repository. The bytes stay for other repositories that link them
    /// until garbage collection finds them unreferenced. Refused while a tagged image still
    /// uses it.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let outcome = self.meta.unlink_blob(repo, digest).await?;
        ServiceError::deletion(outcome, ContentKind::Blob, digest)
    }

    /// Make a blob of `from` visible in `to` without moving bytes. False when `from` does
    /// not hold it (the caller's right to read `from` is checked before, by access control).
    pub async fn mount_blob(&self, to: &RepoName, from: &RepoName, digest: &Digest) -> Result<bool> {
        if self.local_blob_size(from, digest).await?.is_none() {
            return Ok(false);
        }
        self.meta.link_blob(to, digest).await?;
        Ok(true)
    }

    /// Tags of a repository in lexical order, after `last`, at most `n`.
    pub async fn tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        self.meta
            .list_tags(repo, last, n)
            .await?
            .ok_or_else(|| ServiceError::RepositoryUnknown(repo.clone()))
    }

    /// Repository names in lexical order, after `last`, at most `n`.
    pub async fn repositories(&self, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        Ok(self.meta.list_repos(last, n).await?)
    }

    /// Manifests of a repository whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        Ok(self.meta.referrers(repo, subject, artifact_type).await?)
    }

    /// Whether a repository holds any manifest.
    pub async fn has_manifests(&self, repo: &RepoName) -> Result<bool> {
        Ok(self.meta.has_manifests(repo).await?)
    }

    /// Make all metadata durable.
    pub async fn flush(&self) -> Result<()> {
        Ok(self.meta.flush().await?)
    }
}
