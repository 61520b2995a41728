//! The two storage traits and their backends.
//!
//! [`BlobStore`] holds content-addressed bytes and nothing else; [`MetaStore`] holds what
//! the registry knows about them (repositories, tags, manifests, referrers, upload
//! sessions). Handlers use only the traits, so another backend (an S3-compatible blob
//! store, another metadata engine) plugs in without touching the HTTP layer.

mod blob;
mod fs;
mod keys;
mod meta;
mod sled_meta;
#[cfg(test)]
mod tests;

pub use blob::{BlobError, BlobStore, ByteStream, UploadId};
pub use fs::FsBlobStore;
pub use meta::{ManifestRecord, MetaError, MetaStore, Referrer, UploadRecord};
pub use sled_meta::SledMetaStore;
