//! The seam for content held elsewhere.

use std::ops::Range;

use async_trait::async_trait;
use pier_oci::{Digest, Reference, RepoName};

use super::Result;
use crate::storage::{ByteStream, ManifestRecord};

/// Where reads that miss locally go: a pull-through cache implements it over its ordered
/// upstream registries, and may store what it fetches through the local service it wraps.
/// Only reads consult it; pushes and deletes are always local.
#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// A manifest the local stores do not hold; `None` when the upstream has none either.
    async fn manifest(&self, repo: &RepoName, reference: &Reference) -> Result<Option<ManifestRecord>>;
    /// The size of a blob the local stores do not hold for `repo`; `None` when unknown.
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>>;
    /// Stream a blob [`Upstream::blob_size`] found, or a byte range of it.
    async fn read_blob(&self, repo: &RepoName, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream>;
}
