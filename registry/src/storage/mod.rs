//! The storage traits and their backends.
//!
//! [`BlobStore`] holds content-addressed bytes and nothing else; [`MetaStore`] holds what
//! the registry knows about them (repositories, tags, manifests, referrers, upload
//! sessions); [`AccessStore`] holds who may do what, [`AuditLog`] what they did. Handlers
//! use only the traits, so another backend (an S3-compatible blob store, another metadata
//! engine) plugs in without touching the HTTP layer.

mod access;
mod audit;
mod blob;
mod cached_access;
mod file_audit;
mod fs;
mod fs_read;
mod keys;
mod meta;
mod sled_access;
mod sled_meta;
mod sled_run;
#[cfg(test)]
mod tests;

pub use access::{AccessStore, ProjectRecord, ROBOT_PREFIX, RobotRecord, SetMember, UserRecord, robot_account};
pub use audit::{ActorKind, AuditAction, AuditEvent, AuditLog, AuditPage, AuditQuery, Outcome, Purged};
pub use blob::{BlobError, BlobStore, ByteStream, UploadId};
pub use cached_access::CachedAccess;
pub use file_audit::FileAuditLog;
pub use fs::FsBlobStore;
pub use meta::{Deletion, ManifestRecord, MetaError, MetaStore, Referrer, Stored, UploadRecord};
pub use sled_access::SledAccessStore;
pub use sled_meta::SledMetaStore;

/// Create `dir` (and missing parents) readable by its owner only; an existing one is left
/// as it is. What pier stores — password and secret hashes, audit records, private
/// images — is for no other local user.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
