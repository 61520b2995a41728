//! An OCI image layout directory as an [`ImageStore`]: tags are `index.json` entries,
//! blobs are files under `blobs/sha256/`, written through a temporary file and renamed once
//! their digest is checked.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use oci_spec::image::Descriptor;
use pier_oci::layout::{ImageError, OciLayout, descriptor};
use pier_oci::{Digest, Hasher, Reference};
use tokio::io::AsyncWriteExt as _;
use tokio_util::io::ReaderStream;

use crate::ClientError;
use crate::store::{BlobStream, ImageStore, Manifest};

/// Bytes read from a blob file per chunk.
const READ_CHUNK: usize = 256 * 1024;

/// An OCI layout, created on first write when it does not exist.
#[derive(Debug, Clone)]
pub struct LayoutStore {
    dir: PathBuf,
}

impl LayoutStore {
    /// The layout in `dir`; nothing is touched until the first read or write.
    pub fn new(dir: impl Into<PathBuf>) -> LayoutStore {
        LayoutStore { dir: dir.into() }
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open(&self) -> Result<OciLayout, ClientError> {
        OciLayout::open(&self.dir).map_err(|e| self.image_err(e))
    }

    fn create(&self) -> Result<OciLayout, ClientError> {
        OciLayout::create(&self.dir).map_err(|e| self.image_err(e))
    }

    fn image_err(&self, e: ImageError) -> ClientError {
        match e {
            ImageError::NotLayout(_) => ClientError::NotFound { target: self.name() },
            other => ClientError::Invalid {
                target: self.name(),
                message: other.to_string(),
            },
        }
    }

    fn target(&self, reference: &Reference) -> String {
        match reference {
            Reference::Tag(t) => format!("{}:{t}", self.name()),
            Reference::Digest(d) => format!("{}@{d}", self.name()),
        }
    }
}

#[async_trait]
impl ImageStore for LayoutStore {
    fn name(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    async fn get_manifest(&self, reference: &Reference) -> Result<Manifest, ClientError> {
        let layout = self.open()?;
        let target = self.target(reference);
        let (digest, media_type) = match reference {
            Reference::Tag(tag) => {
                let desc = layout
                    .resolve(tag.as_str())
                    .map_err(|e| self.image_err(e))?
                    .ok_or_else(|| ClientError::NotFound { target: target.clone() })?;
                let digest: Digest = desc.digest().to_string().parse().map_err(|e| ClientError::Invalid {
                    target: target.clone(),
                    message: format!("index.json: {e}"),
                })?;
                (digest, Some(desc.media_type().to_string()))
            }
            Reference::Digest(d) => (d.clone(), None),
        };
        let path = layout.blob_path(&digest);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => Bytes::from(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ClientError::NotFound { target }),
            Err(e) => return Err(ClientError::io(path.display())(e)),
        };
        let manifest = Manifest::from_bytes(bytes, media_type.as_deref());
        if manifest.digest != digest {
            return Err(ClientError::Mismatch {
                target,
                expected: digest.to_string(),
                found: manifest.digest.to_string(),
            });
        }
        Ok(manifest)
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, ClientError> {
        let path = OciLayout::open(&self.dir).map(|l| l.blob_path(digest));
        Ok(match path {
            Ok(p) => tokio::fs::metadata(p).await.is_ok_and(|m| m.is_file()),
            Err(_) => false,
        })
    }

    async fn get_blob(&self, digest: &Digest, _size: u64) -> Result<BlobStream, ClientError> {
        let path = self.open()?.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotFound {
                    target: format!("{}@{digest}", self.name()),
                });
            }
            Err(e) => return Err(ClientError::io(path.display())(e)),
        };
        Ok(Box::pin(ReaderStream::with_capacity(file, READ_CHUNK)))
    }

    async fn put_blob(&self, digest: &Digest, size: u64, data: BlobStream) -> Result<(), ClientError> {
        let path = self.create()?.blob_path(digest);
        write_blob_file(&path, digest, size, data, &format!("{}@{digest}", self.name())).await
    }

    async fn put_manifest(&self, reference: &Reference, manifest: &Manifest) -> Result<(), ClientError> {
        let layout = self.create()?;
        let desc = layout
            .put_blob(&manifest.media_type, &manifest.bytes)
            .map_err(|e| self.image_err(e))?;
        match reference {
            Reference::Tag(tag) => layout.tag(&desc, tag.as_str()).map_err(|e| self.image_err(e)),
            Reference::Digest(d) if d == &manifest.digest => Ok(()),
            Reference::Digest(d) => Err(ClientError::Mismatch {
                target: self.target(reference),
                expected: d.to_string(),
                found: manifest.digest.to_string(),
            }),
        }
    }
}

/// Writes a blob from a stream to `path` through a temporary file in the same directory,
/// renamed into place only when the bytes are `digest` and `size` (`target` names the blob in
/// errors). A failed or cut stream leaves nothing at `path`.
pub(crate) async fn write_blob_file(
    path: &Path,
    digest: &Digest,
    size: u64,
    mut data: BlobStream,
    target: &str,
) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(ClientError::io(dir.display()))?;
    let (std_file, tmp_path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut hasher = Hasher::new(digest.algorithm());
    let mut written = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(ClientError::io(target))?;
        hasher.update(&chunk);
        written += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(ClientError::io(path.display()))?;
    }
    file.flush().await.map_err(ClientError::io(path.display()))?;
    let found = hasher.finish();
    if &found != digest || written != size {
        return Err(ClientError::Mismatch {
            target: target.to_owned(),
            expected: format!("{digest} ({size} bytes)"),
            found: format!("{found} ({written} bytes)"),
        });
    }
    file.sync_all().await.map_err(ClientError::io(path.display()))?;
    tmp_path
        .persist(path)
        .map_err(|e| ClientError::io(path.display())(e.error))?;
    Ok(())
}

/// A descriptor for `manifest` (media type, digest, size).
pub fn manifest_descriptor(manifest: &Manifest) -> Descriptor {
    descriptor(&manifest.media_type, &manifest.digest, manifest.bytes.len() as u64)
        .expect("a pier digest is a valid OCI digest")
}
