//! The storage traits and their backends.
//!
//! [`BlobStore`] holds content-addressed bytes and nothing else; [`MetaStore`] holds what
//! the registry knows about them (repositories, tags, manifests, referrers, upload
//! sessions); [`AccessStore`] holds who may do what, [`AuditLog`] what they did. Handlers
//! use only the traits, so another backend (an S3-compatible blob store, another metadata
//! engine) plugs in without touching the HTTP layer. The in-memory backends
//! ([`MemoryBlobStore`] and the others) hold nothing on disk; the conformance suites every
//! backend must pass are `storage::testing`, public with the `testing` feature.

mod access;
mod audit;
mod blob;
mod cached_access;
mod file_audit;
mod fs;
mod fs_read;
mod keys;
mod memory;
mod meta;
mod sled_access;
mod sled_meta;
mod sled_run;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use access::{AccessStore, ProjectRecord, ROBOT_PREFIX, RobotRecord, SetMember, UserRecord, robot_account};
pub use audit::{ActorKind, AuditAction, AuditEvent, AuditLog, AuditPage, AuditQuery, Outcome, Purged};
pub use blob::{BlobError, BlobStore, BlobUsage, ByteStream, UploadId};
pub use cached_access::CachedAccess;
pub use file_audit::FileAuditLog;
pub use fs::FsBlobStore;
pub use memory::{MemoryAccessStore, MemoryAuditLog, MemoryBlobStore, MemoryMetaStore};
pub use meta::{Deletion, ManifestRecord, MetaError, MetaStore, Referrer, Stored, UploadRecord};
pub use sled_access::SledAccessStore;
pub use sled_meta::SledMetaStore;

/// The cause a backend attaches to [`MetaError`] or [`BlobError`]: any error, so its own
/// chain of sources is kept.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Create `dir` (and missing parents) readable by its owner only; an existing one is left
/// as it is. What pier stores — password and secret hashes, audit records, private
/// images — is for no other local user.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
