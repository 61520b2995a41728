//! The one interface every image store implements (a registry repository, an OCI layout),
//! and the parts of manifests the client needs to walk an image.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use pier_oci::{Digest, Platform, Reference, media};
use serde::Deserialize;

use crate::ClientError;

/// Blob content arriving in chunks; never a whole layer in memory.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A manifest exactly as stored: its bytes are what its digest covers, so they are moved
/// untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `application/vnd.oci.image.index.v1+json`, …
    pub media_type: String,
    /// sha256 of `bytes` (or the digest it was fetched by).
    pub digest: Digest,
    /// The manifest.
    pub bytes: Bytes,
}

impl Manifest {
    /// A manifest from its bytes; the media type comes from its `mediaType` field, else from
    /// its shape (an index has `manifests`).
    pub fn from_bytes(bytes: Bytes, content_type: Option<&str>) -> Manifest {
        let media_type = content_type
            .map(media::essence)
            .filter(|t| media::MANIFEST_TYPES.contains(&t.as_str()))
            .unwrap_or_else(|| sniff_media_type(&bytes));
        Manifest {
            digest: Digest::sha256_of(&bytes),
            media_type,
            bytes,
        }
    }

    /// True for an index (OCI index or docker manifest list).
    pub fn is_index(&self) -> bool {
        media::is_index(&self.media_type)
    }

    /// Parses an index's entries.
    pub fn index(&self, target: &str) -> Result<IndexDoc, ClientError> {
        serde_json::from_slice(&self.bytes).map_err(|e| ClientError::Invalid {
            target: target.to_owned(),
            message: format!("not a valid image index: {e}"),
        })
    }

    /// Parses an image manifest's config and layers.
    pub fn image(&self, target: &str) -> Result<ImageDoc, ClientError> {
        serde_json::from_slice(&self.bytes).map_err(|e| ClientError::Invalid {
            target: target.to_owned(),
            message: format!("not a valid image manifest: {e}"),
        })
    }
}

fn sniff_media_type(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(t), ..
        }) => t,
        Ok(Probe { manifests: Some(_), .. }) => media::OCI_INDEX.to_owned(),
        _ => media::OCI_MANIFEST.to_owned(),
    }
}

/// A descriptor as the client needs it; unknown fields are ignored.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Desc {
    /// Media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescPlatform>,
}

/// A platform as an index writes it (any architecture, not only pier's five).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq, Default)]
pub struct DescPlatform {
    /// `architecture`.
    pub architecture: String,
    /// `os`.
    pub os: String,
    /// `variant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl DescPlatform {
    /// `os/arch[/variant]` as written.
    pub fn display(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// The canonical platform, when it is one pier knows (`linux/arm64` → `linux/arm64/v8`).
    pub fn canonical(&self) -> Option<Platform> {
        self.display().parse().ok()
    }

    /// The key two entries clash on: canonical when known, else as written.
    pub fn key(&self) -> String {
        self.canonical()
            .map(|p| p.to_string())
            .unwrap_or_else(|| self.display())
    }

    /// Whether this entry is the platform asked for.
    pub fn matches(&self, wanted: &Platform) -> bool {
        self.canonical().as_ref() == Some(wanted)
    }
}

impl From<&Platform> for DescPlatform {
    fn from(p: &Platform) -> DescPlatform {
        DescPlatform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
        }
    }
}

/// An index: its entries.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexDoc {
    /// Child manifests.
    pub manifests: Vec<Desc>,
}

/// An image manifest: config and layers.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageDoc {
    /// The config blob.
    pub config: Desc,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Desc>,
}

/// The fields of an image config that say which platform it is for.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigPlatform {
    /// `architecture`.
    #[serde(default)]
    pub architecture: String,
    /// `os`.
    #[serde(default)]
    pub os: String,
    /// `variant`.
    #[serde(default)]
    pub variant: Option<String>,
}

/// One place images live: a registry repository or an OCI layout. Every operation names the
/// image by tag or digest; blobs go in and out as streams.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// `host/repo` or `oci:DIR`, for messages.
    fn name(&self) -> String;

    /// `(registry, repository)` when this is a registry repository: blobs can be mounted
    /// between repositories of one registry.
    fn registry_repository(&self) -> Option<(&str, &str)> {
        None
    }

    /// The manifest a tag or digest names; [`ClientError::NotFound`] when there is none.
    async fn get_manifest(&self, reference: &Reference) -> Result<Manifest, ClientError>;

    /// Whether the store holds a blob.
    async fn has_blob(&self, digest: &Digest) -> Result<bool, ClientError>;

    /// A blob's content as a stream (of `size` bytes).
    async fn get_blob(&self, digest: &Digest, size: u64) -> Result<BlobStream, ClientError>;

    /// Stores a blob from a stream of exactly `size` bytes; the content is checked against
    /// `digest` before it becomes visible.
    async fn put_blob(&self, digest: &Digest, size: u64, data: BlobStream) -> Result<(), ClientError>;

    /// Makes a blob of another repository of the same registry available here without
    /// sending it; `Ok(false)` when the registry did not mount it (the caller uploads).
    async fn mount_blob(&self, _digest: &Digest, _from_repository: &str) -> Result<bool, ClientError> {
        Ok(false)
    }

    /// Stores a manifest under a tag or its digest. The manifest's blobs (and, for an index,
    /// its child manifests) must be there first.
    async fn put_manifest(&self, reference: &Reference, manifest: &Manifest) -> Result<(), ClientError>;
}
