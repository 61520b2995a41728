//! The metadata store trait: what the registry knows, in domain terms.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use pier_oci::{Digest, Reference, RepoName, Tag};
use serde::{Deserialize, Serialize};

use super::BoxError;
use super::blob::UploadId;

/// What can go wrong in a metadata, access or audit store. Something that is not there is
/// not an error: each call answers it in its result (`None`, `false`, [`Deletion::NotFound`]).
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The store cannot answer right now (connection lost, timed out, throttled, shutting
    /// down): the same call may succeed later. A write may or may not have taken effect.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The store failed in a way that retrying will not mend (an engine or I/O error).
    #[error("store failed: {0}")]
    Failed(#[source] BoxError),
    /// Stored data could not be decoded (corruption or a schema from another version).
    #[error("metadata store holds undecodable data: {0}")]
    Corrupt(String),
}

impl MetaError {
    /// [`MetaError::Unavailable`] from any error.
    pub fn unavailable(e: impl Into<BoxError>) -> MetaError {
        MetaError::Unavailable(e.into())
    }

    /// [`MetaError::Failed`] from any error.
    pub fn failed(e: impl Into<BoxError>) -> MetaError {
        MetaError::Failed(e.into())
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, MetaError::Unavailable(_))
    }

    /// A blocking task that did not finish: cancelled because the runtime is shutting down
    /// (worth retrying elsewhere or later), or panicked (not).
    pub(crate) fn from_join(e: tokio::task::JoinError) -> MetaError {
        if e.is_cancelled() {
            MetaError::unavailable(e)
        } else {
            MetaError::failed(e)
        }
    }
}

/// A stored manifest: its exact bytes plus what the registry extracted from them.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestRecord {
    /// Digest of `bytes`.
    pub digest: Digest,
    /// The media type it was pushed with (served back as `Content-Type`).
    pub media_type: String,
    /// The bytes exactly as pushed.
    pub bytes: Bytes,
    /// Blobs it references (config and layers).
    pub blobs: Vec<Digest>,
    /// Child manifests (index entries).
    pub children: Vec<Digest>,
    /// The manifest it refers to, if it is a referrer.
    pub subject: Option<Digest>,
    /// `artifactType`, or the config media type for image manifests without one.
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// One entry of a referrers list: a descriptor of a manifest whose `subject` is the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    /// The referrer's media type.
    pub media_type: String,
    /// The referrer's digest.
    pub digest: Digest,
    /// The referrer's size in bytes.
    pub size: u64,
    /// Its artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Referrer {
    /// The referrer descriptor for a record.
    pub fn of(record: &ManifestRecord) -> Referrer {
        Referrer {
            media_type: record.media_type.clone(),
            digest: record.digest.clone(),
            size: record.bytes.len() as u64,
            artifact_type: record.artifact_type.clone(),
            annotations: record.annotations.clone(),
        }
    }
}

/// What a delete did. A refusal changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    /// Gone.
    Deleted,
    /// There was nothing to delete.
    NotFound,
    /// Refused: content that a tag names still references it, so deleting it would leave
    /// that tag naming an image a client cannot pull. `by` is the manifest or index that
    /// references it directly; `tag` names `by` or an index that reaches it.
    Referenced {
        /// The referencing manifest or index.
        by: Digest,
        /// A tag through which `by` is reachable.
        tag: String,
    },
}

/// What a delete would remove, for the walk that refuses it while tagged content
/// references it.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A blob: referenced when a reachable manifest lists it as config or layer.
    Blob(&'a Digest),
    /// A manifest: referenced when a reachable index lists it as a child. A tag naming it
    /// directly does not count: deleting a manifest deletes its tags (as distribution does).
    Manifest(&'a Digest),
}

impl Target<'_> {
    /// Whether a manifest listing `blobs` and `children` references the target directly.
    pub(crate) fn hit(self, blobs: &[Digest], children: &[Digest]) -> bool {
        match self {
            Target::Blob(b) => blobs.contains(b),
            Target::Manifest(m) => children.contains(m),
        }
    }
}

/// What storing a manifest did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Stored, and the tags point at it.
    Stored,
    /// Refused, nothing changed: a blob it lists is not linked in the repository, or a child
    /// manifest is not there (deleted since the caller checked).
    Missing(Digest),
}

/// An upload session's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The repository the blob will land in.
    pub repo: String,
    /// Unix seconds when it started.
    pub started: u64,
}

/// Domain operations on registry metadata.
///
/// Contract (checked by the conformance suite, `storage::testing` with the `testing`
/// feature): every mutating call is atomic and durable when it returns, so a crash right
/// after never loses an answered write and never leaves half of one.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Make a stored blob visible in a repository (after a push or a mount).
    async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), MetaError>;
    /// Whether a blob is visible in a repository.
    async fn blob_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError>;
    /// Hide a blob from a repository, unless a manifest reachable from one of its tags
    /// lists it ([`Deletion::Referenced`]).
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError>;

    /// Store a manifest and point `tags` at it, in one step, provided every blob it lists
    /// is linked in the repository and every child manifest is there (checked in the same
    /// step, so a concurrent delete cannot slip in between).
    async fn put_manifest(&self, repo: &RepoName, record: &ManifestRecord, tags: &[Tag]) -> Result<Stored, MetaError>;
    /// The manifest a tag or digest names in a repository.
    async fn get_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<Option<ManifestRecord>, MetaError>;
    /// Remove a tag. False when it did not exist.
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetaError>;
    /// Remove a manifest and every tag pointing at it, in one step with reading those tags
    /// (a tag moved onto it concurrently goes with it or keeps it alive, never dangles).
    /// Refused ([`Deletion::Referenced`]) when an index reachable from a tag lists it.
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError>;

    /// Forget a repository that holds no manifests: its blob links and its catalog entry.
    /// False (and nothing changed) when it still holds a manifest or does not exist.
    async fn delete_repository(&self, repo: &RepoName) -> Result<bool, MetaError>;
    /// Whether a repository holds any manifest.
    async fn has_manifests(&self, repo: &RepoName) -> Result<bool, MetaError>;

    /// Tags of a repository in lexical order, after `last`, at most `n`; `None` when the
    /// repository is unknown.
    async fn list_tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Option<Vec<String>>, MetaError>;
    /// Repository names in lexical order, after `last`, at most `n`.
    async fn list_repos(&self, last: Option<&str>, n: usize) -> Result<Vec<String>, MetaError>;
    /// Manifests in a repository whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError>;

    /// Record a new upload session.
    async fn create_upload(&self, id: UploadId, record: &UploadRecord) -> Result<(), MetaError>;
    /// An upload session's record.
    async fn get_upload(&self, id: UploadId) -> Result<Option<UploadRecord>, MetaError>;
    /// Forget an upload session.
    async fn delete_upload(&self, id: UploadId) -> Result<(), MetaError>;
    /// Every upload session, for expiry and for dropping a project's sessions.
    async fn list_uploads(&self) -> Result<Vec<(UploadId, UploadRecord)>, MetaError>;

    /// How many manifests are stored, each repository's copy counted, for monitoring;
    /// `None` when the backend cannot tell. May visit every manifest: callers cache the
    /// answer.
    async fn manifest_count(&self) -> Result<Option<u64>, MetaError> {
        Ok(None)
    }

    /// Make everything written so far durable (used at shutdown).
    async fn flush(&self) -> Result<(), MetaError>;
}
