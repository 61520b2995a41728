//! The blob store trait.

use std::fmt;
use std::io;
use std::ops::Range;
use std::str::FromStr;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use pier_oci::Digest;

use super::BoxError;

/// A stream of body bytes, in or out.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// An upload session's id: a UUID, so it is safe as a file or object name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(uuid::Uuid);

impl UploadId {
    /// A fresh random id.
    pub fn new() -> UploadId {
        UploadId(uuid::Uuid::new_v4())
    }
}

impl Default for UploadId {
    fn default() -> Self {
        UploadId::new()
    }
}

impl FromStr for UploadId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(UploadId)
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What can go wrong in a blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob with that digest.
    #[error("blob not found")]
    NotFound,
    /// No upload session with that id.
    #[error("upload session not found")]
    UploadUnknown,
    /// A chunk did not start where the session ends.
    #[error("chunk starts at {requested} but the upload has {current} bytes")]
    OutOfOrder {
        /// Bytes held by the session.
        current: u64,
        /// Offset the chunk claimed.
        requested: u64,
    },
    /// The requested byte range is outside the blob.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeInvalid {
        /// The blob's size.
        size: u64,
    },
    /// The uploaded bytes hash to something else than claimed. The session is gone.
    #[error("uploaded content has digest {computed}, not {claimed}")]
    DigestMismatch {
        /// What the client said.
        claimed: Digest,
        /// What the bytes are.
        computed: Digest,
    },
    /// The request body ended early (client went away). The bytes received so far are kept
    /// and the session can be resumed from `offset`.
    #[error("request body ended early after {offset} bytes: {source}")]
    BodyIncomplete {
        /// Bytes the session now holds.
        offset: u64,
        /// The body's error.
        #[source]
        source: io::Error,
    },
    /// No space left on the device. The session is gone, nothing else changed.
    #[error("no space left on the blob store")]
    NoSpace,
    /// The store cannot answer right now (connection lost, timed out, throttled, shutting
    /// down): the same call may succeed later. A session is kept, holding what it held
    /// before the call or part of the body (its size says where to resume).
    #[error("blob store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A local I/O failure. A session it hit is gone.
    #[error("blob store I/O: {0}")]
    Io(#[from] io::Error),
    /// Any other failure that retrying will not mend (a remote store refusing the request).
    /// A session it hit is gone.
    #[error("blob store failed: {0}")]
    Failed(#[source] BoxError),
}

impl BlobError {
    /// Classify an I/O error, singling out a full disk.
    pub fn from_io(e: io::Error) -> BlobError {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull {
            BlobError::NoSpace
        } else {
            BlobError::Io(e)
        }
    }

    /// [`BlobError::Unavailable`] from any error.
    pub fn unavailable(e: impl Into<BoxError>) -> BlobError {
        BlobError::Unavailable(e.into())
    }

    /// [`BlobError::Failed`] from any error.
    pub fn failed(e: impl Into<BoxError>) -> BlobError {
        BlobError::Failed(e.into())
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Unavailable(_))
    }
}

/// How much a blob store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobUsage {
    /// Blobs stored.
    pub blobs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Content-addressed blob storage with resumable upload sessions.
///
/// Contract (checked by the conformance suite, `storage::testing` with the `testing`
/// feature):
/// - a blob becomes readable only once complete and verified; partial data is never served;
/// - `commit` verifies the claimed digest; on mismatch the session is removed and nothing
///   is stored;
/// - sessions survive a restart of the process;
/// - a body that fails mid-way keeps what arrived, so the client can resume;
/// - a store failure in `append` or `commit` ([`BlobError::NoSpace`], [`BlobError::Io`],
///   [`BlobError::Failed`]) removes the session, while [`BlobError::Unavailable`] keeps it,
///   so the caller knows whether the session's record must go too.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a stored blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError>;
    /// Stream a blob, or the byte range of it (end exclusive, within the blob).
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream, BlobError>;
    /// Remove a stored blob.
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError>;
    /// Open a new, empty upload session.
    async fn create_upload(&self) -> Result<UploadId, BlobError>;
    /// Bytes held by a session.
    async fn upload_size(&self, id: UploadId) -> Result<u64, BlobError>;
    /// Append a body to a session; `at`, when given, must equal the current size.
    /// Returns the new size. The body is borrowed: on a refusal or a failed write, what the
    /// store did not read is still in it, so the caller can drain it and answer the client.
    async fn append(&self, id: UploadId, at: Option<u64>, body: &mut ByteStream) -> Result<u64, BlobError>;
    /// Verify the session's bytes against `expected` and store them under it.
    /// Returns the blob's size.
    async fn commit(&self, id: UploadId, expected: &Digest) -> Result<u64, BlobError>;
    /// Drop a session and its bytes.
    async fn abort(&self, id: UploadId) -> Result<(), BlobError>;
    /// Every session with the time its bytes last changed (its creation or latest append),
    /// so sessions expire by inactivity; includes sessions whose metadata record is gone
    /// (a crash between the two stores).
    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError>;
    /// How many blobs are stored and their size, for monitoring; `None` when the backend
    /// cannot tell. May visit every blob: callers cache the answer.
    async fn usage(&self) -> Result<Option<BlobUsage>, BlobError> {
        Ok(None)
    }
}
