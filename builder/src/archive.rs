//! `docker-archive:` output: one image of an OCI layout as the tar `docker save` writes and
//! `docker load` reads.
//!
//! The archive is both formats at once, as Docker 25+ `docker save` writes it:
//! - `manifest.json`, `[{"Config": "blobs/sha256/<hex>", "RepoTags": [...], "Layers":
//!   ["blobs/sha256/<hex>", ...]}]`: what every `docker load` reads (20.10 included, which
//!   takes any path in the archive for `Config` and `Layers` and decompresses gzip layers
//!   itself);
//! - `oci-layout`, `index.json` (one entry per tag, with `io.containerd.image.name` and
//!   `org.opencontainers.image.ref.name`) and the manifest blob: an OCI image layout, for
//!   containerd-backed Docker and other OCI tools.
//!
//! Layers go in as they are: gzip (or uncompressed). zstd layers are refused, because
//! Docker 20.10's `docker load` cannot read them (see [`ArchiveError::LayerType`]).
//!
//! Blobs are copied from the layout's files as they are, streamed (never read into memory)
//! and hashed on the way, so a damaged layout fails the write instead of producing an archive
//! that `docker load` refuses later. The tar is deterministic — fixed entry order, mtime 0,
//! owner 0:0, files `0644`, directories `0755`, no user or group names — so the same image
//! and tags give a byte-identical archive. It is written to a temporary file next to the
//! destination and renamed, so a failed write leaves no partial archive behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, ImageIndexBuilder, ImageManifest, MediaType};
use pier_oci::{Digest, Hasher, ImageRef, ImageRefError, media};

use pier_oci::layout::{LAYOUT_VERSION, OciLayout, canonical_json};

/// The annotation containerd (and Docker 25+ `docker save`) puts on `index.json` entries:
/// the full, normalized image name (`docker.io/library/hello:latest`).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// Largest manifest read (the manifest is parsed in memory; registries cap manifests at
/// the same 4 MiB, so anything larger is not an image manifest pier wrote).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Mode of the files in the archive.
pub const FILE_MODE: u32 = 0o644;

/// Mode of the directories in the archive.
pub const DIR_MODE: u32 = 0o755;

/// Buffer between the tar writer and the archive file.
const WRITE_BUFFER: usize = 1 << 16;

/// Layer media types `docker load` decompresses (or reads as they are) in every Docker
/// version pier supports. zstd is missing on purpose: Docker 20.10's `docker load` fails on a
/// zstd layer (`ApplyLayer exit status 1 ... archive/tar: invalid tar header`: it does not
/// recognize zstd and reads the blob as a plain tar), checked by hand against the dockerd
/// 20.10.24 the tests use, while the same archive with the layer in gzip loads and runs.
const LOADABLE_LAYERS: [&str; 4] = [
    media::OCI_LAYER_GZIP,
    media::DOCKER_LAYER_GZIP,
    media::OCI_LAYER_TAR,
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A repo tag that is not a docker `name:tag` reference.
    #[error(
        "repo tag {tag:?}: {why} (a docker-archive tag is a full reference such as \
         127.0.0.1:5000/team/hello:1.0 or hello:latest)"
    )]
    BadTag {
        /// As given.
        tag: String,
        /// What is wrong.
        why: String,
    },
    /// The descriptor is not an image manifest (an index, a config, a layer).
    #[error(
        "{digest} is {media_type}, not an image manifest: a docker archive holds one image, \
         so give one platform's manifest"
    )]
    NotManifest {
        /// The descriptor's digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// A digest pier cannot verify (in the descriptor or the manifest).
    #[error("{what} digest {digest:?}: {why}")]
    BadDigest {
        /// Whose digest: `manifest`, `config`, `layer`.
        what: &'static str,
        /// As written.
        digest: String,
        /// pier_oci's reason.
        why: String,
    },
    /// The manifest blob does not parse.
    #[error("manifest {digest} ({path}): {message}")]
    BadManifest {
        /// The manifest's digest.
        digest: String,
        /// Its file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A layer `docker load` cannot decompress.
    #[error(
        "layer {digest} is {media_type}: docker-archive output needs gzip layers \
         (`docker load` in Docker 20.10 cannot read zstd ones); build with `compression: gzip`"
    )]
    LayerType {
        /// The layer.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// A blob the manifest names is not in the layout.
    #[error("blob {digest} is missing from the layout ({path})")]
    MissingBlob {
        /// The blob.
        digest: String,
        /// Where it should be.
        path: String,
    },
    /// A blob whose size is not the one its descriptor gives.
    #[error("blob {digest}: {path} is {found} bytes, the manifest says {expected}")]
    BlobSize {
        /// The blob.
        digest: String,
        /// Its file.
        path: String,
        /// Size on disk.
        found: u64,
        /// Size in the descriptor.
        expected: u64,
    },
    /// A blob whose content does not match its digest.
    #[error("blob {digest}: {path} has digest {found} (damaged layout?)")]
    BlobDigest {
        /// The blob.
        digest: String,
        /// Its file.
        path: String,
        /// The digest of what is there.
        found: String,
    },
    /// Reading a blob or writing the archive failed.
    #[error("{path}: {error}")]
    Io {
        /// The file involved.
        path: String,
        /// Why (not a `source`: the message already says it).
        error: io::Error,
    },
    /// A JSON document of the archive could not be serialized.
    #[error("{what}: {error}")]
    Json {
        /// Which document.
        what: &'static str,
        /// Why.
        error: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |error| ArchiveError::Io {
        path: path.display().to_string(),
        error,
    }
}

fn json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, ArchiveError> {
    canonical_json(value).map_err(|error| ArchiveError::Json { what, error })
}

/// A checked `repo_tags` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoTag {
    /// As given (what `manifest.json` lists and `docker images` shows).
    pub given: String,
    /// Fully normalized, `docker.io/library/hello:latest` for `hello:latest` (what containerd
    /// names images, in `io.containerd.image.name`).
    pub full: String,
    /// The tag alone (`org.opencontainers.image.ref.name`).
    pub tag: String,
}

/// Checks one `repo_tags` entry: a docker reference ([`ImageRef`]) with a tag and no digest
/// (`docker load` names images by tag). The error names the entry and what is wrong with it.
pub fn parse_repo_tag(given: &str) -> Result<RepoTag, ArchiveError> {
    let bad = |why: &str| ArchiveError::BadTag {
        tag: given.to_owned(),
        why: why.to_owned(),
    };
    if given.contains('@') {
        return Err(bad("is a digest reference; docker load needs name:tag"));
    }
    let no_tag = "has no tag (add one, e.g. :latest)";
    let reference: ImageRef = given.parse().map_err(|e| match e {
        ImageRefError::Empty => bad(no_tag),
        other => bad(&other.to_string()),
    })?;
    let Some(tag) = reference.tag() else {
        return Err(bad(no_tag));
    };
    Ok(RepoTag {
        given: given.to_owned(),
        full: format!("{}:{tag}", reference.docker_name()),
        tag: tag.to_string(),
    })
}

/// A blob to copy into the archive.
struct Blob {
    digest: Digest,
    size: u64,
}

fn parse_digest(what: &'static str, d: &oci_spec::image::Digest) -> Result<Digest, ArchiveError> {
    d.to_string()
        .parse()
        .map_err(|e: pier_oci::DigestError| ArchiveError::BadDigest {
            what,
            digest: d.to_string(),
            why: e.to_string(),
        })
}

/// Writes the image `manifest` (the descriptor of one image manifest in `layout`, e.g. one
/// platform's entry of a built index) as a `docker load`-able archive at `out`, tagged with
/// `repo_tags` (full references, see [`parse_repo_tag`]; every one is checked before anything
/// is written; may be empty for an untagged image).
///
/// Every blob is checked against its descriptor's size and digest while it is copied.
/// Layers must be gzip or uncompressed ([`ArchiveError::LayerType`] otherwise). `out` is
/// replaced atomically; on error it is left as it was.
pub fn write_docker_archive(
    layout: &OciLayout,
    manifest: &Descriptor,
    repo_tags: &[String],
    out: &Path,
) -> Result<(), ArchiveError> {
    let mut tags: Vec<RepoTag> = Vec::with_capacity(repo_tags.len());
    for t in repo_tags {
        let parsed = parse_repo_tag(t)?;
        // The same tag twice would be two identical entries; keep the first.
        if !tags.iter().any(|x| x.given == parsed.given) {
            tags.push(parsed);
        }
    }

    let media_type = manifest.media_type().to_string();
    if media_type != media::OCI_MANIFEST && media_type != media::DOCKER_MANIFEST {
        return Err(ArchiveError::NotManifest {
            digest: manifest.digest().to_string(),
            media_type,
        });
    }
    let manifest_digest = parse_digest("manifest", manifest.digest())?;
    let image = read_manifest(layout, &manifest_digest, manifest.size())?;

    let config_digest = parse_digest("config", image.config().digest())?;
    let mut blobs = vec![
        Blob {
            digest: manifest_digest.clone(),
            size: manifest.size(),
        },
        Blob {
            digest: config_digest.clone(),
            size: image.config().size(),
        },
    ];
    let mut layer_paths = Vec::with_capacity(image.layers().len());
    for layer in image.layers() {
        let digest = parse_digest("layer", layer.digest())?;
        let layer_type = layer.media_type().to_string();
        if !LOADABLE_LAYERS.contains(&layer_type.as_str()) {
            return Err(ArchiveError::LayerType {
                digest: digest.to_string(),
                media_type: layer_type,
            });
        }
        layer_paths.push(archive_path(&digest));
        blobs.push(Blob {
            digest,
            size: layer.size(),
        });
    }
    // One copy of each blob (a layer may repeat), in path order.
    blobs.sort_by_cached_key(|b| archive_path(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);
    for blob in &blobs {
        check_blob(layout, blob)?;
    }

    let docker_manifest = serde_json::json!([{
        "Config": archive_path(&config_digest),
        "RepoTags": tags.iter().map(|t| t.given.as_str()).collect::<Vec<_>>(),
        "Layers": layer_paths,
    }]);
    let index_json = json("index.json", &oci_index(manifest, &tags)?)?;
    let manifest_json = json("manifest.json", &docker_manifest)?;
    let oci_layout = json(
        "oci-layout",
        &serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION }),
    )?;

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = temp_file(dir)?;
    let tmp_path = tmp.path().to_owned();
    let file = tmp.as_file().try_clone().map_err(io_err(&tmp_path))?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(WRITE_BUFFER, file));
    let mut dirs: Vec<String> = vec!["blobs/".to_owned()];
    for blob in &blobs {
        let d = format!("blobs/{}/", blob.digest.algorithm().as_str());
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs[1..].sort();
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, DIR_MODE, 0);
        tar.append_data(&mut h, d, io::empty()).map_err(io_err(&tmp_path))?;
    }
    for blob in &blobs {
        append_blob(&mut tar, layout, blob, &tmp_path)?;
    }
    // After the blobs, in name order: index.json < manifest.json < oci-layout.
    for (name, bytes) in [
        ("index.json", &index_json),
        ("manifest.json", &manifest_json),
        ("oci-layout", &oci_layout),
    ] {
        let mut h = header(tar::EntryType::Regular, FILE_MODE, bytes.len() as u64);
        tar.append_data(&mut h, name, bytes.as_slice())
            .map_err(io_err(&tmp_path))?;
    }
    let buffered = tar.into_inner().map_err(io_err(&tmp_path))?;
    let file = buffered.into_inner().map_err(|e| ArchiveError::Io {
        path: tmp_path.display().to_string(),
        error: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(&tmp_path))?;
    drop(file);
    tmp.persist(out).map_err(|e| ArchiveError::Io {
        path: out.display().to_string(),
        error: e.error,
    })?;
    Ok(())
}

/// The temporary archive, created with the mode a plain create would give (0666 less the
/// umask) rather than tempfile's 0600, since it becomes the user's file.
fn temp_file(dir: &Path) -> Result<tempfile::NamedTempFile, ArchiveError> {
    let mut b = tempfile::Builder::new();
    b.prefix(".pier-archive-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir).map_err(io_err(dir))
}

/// `blobs/<algorithm>/<hex>`, the same path in the archive as in an OCI layout.
fn archive_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// A deterministic header: owner 0:0, no names, mtime 0.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Reads, verifies and parses the manifest blob.
fn read_manifest(layout: &OciLayout, digest: &Digest, size: u64) -> Result<ImageManifest, ArchiveError> {
    let path = layout.blob_path(digest);
    let bad = |message: String| ArchiveError::BadManifest {
        digest: digest.to_string(),
        path: path.display().to_string(),
        message,
    };
    if size > MAX_MANIFEST_BYTES {
        return Err(bad(format!(
            "{size} bytes is more than the {MAX_MANIFEST_BYTES} a manifest may have"
        )));
    }
    check_blob(
        layout,
        &Blob {
            digest: digest.clone(),
            size,
        },
    )?;
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let found = digest.same_algorithm_of(&bytes);
    if &found != digest {
        return Err(ArchiveError::BlobDigest {
            digest: digest.to_string(),
            path: path.display().to_string(),
            found: found.to_string(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("not an image manifest: {e}")))
}

/// The blob is in the layout with its descriptor's size.
fn check_blob(layout: &OciLayout, blob: &Blob) -> Result<(), ArchiveError> {
    let path = layout.blob_path(&blob.digest);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ArchiveError::MissingBlob {
                digest: blob.digest.to_string(),
                path: path.display().to_string(),
            });
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    if meta.len() != blob.size {
        return Err(ArchiveError::BlobSize {
            digest: blob.digest.to_string(),
            path: path.display().to_string(),
            found: meta.len(),
            expected: blob.size,
        });
    }
    Ok(())
}

/// `index.json`: the manifest once per tag, annotated with the names containerd and
/// Docker 25+ read; once without annotations for an untagged image.
fn oci_index(manifest: &Descriptor, tags: &[RepoTag]) -> Result<oci_spec::image::ImageIndex, ArchiveError> {
    let entries: Vec<Descriptor> = if tags.is_empty() {
        let mut d = manifest.clone();
        d.set_annotations(None);
        vec![d]
    } else {
        tags.iter()
            .map(|t| {
                let mut d = manifest.clone();
                let annotations: BTreeMap<String, String> = [
                    (ANNOTATION_IMAGE_NAME.to_owned(), t.full.clone()),
                    (ANNOTATION_REF_NAME.to_owned(), t.tag.clone()),
                ]
                .into();
                d.set_annotations(Some(annotations.into_iter().collect()));
                d
            })
            .collect()
    };
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(entries)
        .build()
        .map_err(|e| ArchiveError::BadManifest {
            digest: manifest.digest().to_string(),
            path: "index.json".into(),
            message: e.to_string(),
        })
}

/// Copies one blob into the tar from its file, hashing it on the way; a blob that is not
/// what its digest says fails the archive (which is then discarded, half-written entry and
/// all).
fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    layout: &OciLayout,
    blob: &Blob,
    tmp_path: &Path,
) -> Result<(), ArchiveError> {
    let path = layout.blob_path(&blob.digest);
    let file = File::open(&path).map_err(io_err(&path))?;
    let mut reader = HashReader {
        inner: file.take(blob.size),
        hasher: Hasher::new(blob.digest.algorithm()),
        count: 0,
        read_failed: false,
    };
    let mut h = header(tar::EntryType::Regular, FILE_MODE, blob.size);
    tar.append_data(&mut h, archive_path(&blob.digest), &mut reader)
        .map_err(|e| {
            // A read error names the blob, a write error the archive.
            if reader.read_failed {
                io_err(&path)(e)
            } else {
                io_err(tmp_path)(e)
            }
        })?;
    let found = reader.hasher.finish();
    if reader.count != blob.size {
        return Err(ArchiveError::BlobSize {
            digest: blob.digest.to_string(),
            path: path.display().to_string(),
            found: reader.count,
            expected: blob.size,
        });
    }
    if found != blob.digest {
        return Err(ArchiveError::BlobDigest {
            digest: blob.digest.to_string(),
            path: path.display().to_string(),
            found: found.to_string(),
        });
    }
    Ok(())
}

/// A reader that hashes and counts what passes through it, and remembers whether reading
/// failed (to tell a bad blob from a failing archive write).
struct HashReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    read_failed: bool,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.read_failed = true)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_oci::MAX_REFERENCE_NAME_LEN;

    #[test]
    fn repo_tags_are_docker_references() {
        let cases = [
            ("hello:latest", "docker.io/library/hello:latest", "latest"),
            ("team/hello:1.0", "docker.io/team/hello:1.0", "1.0"),
            (
                "127.0.0.1:5000/myorg/hello:1.0",
                "127.0.0.1:5000/myorg/hello:1.0",
                "1.0",
            ),
            ("localhost/a:b", "localhost/a:b", "b"),
            (
                "registry.example.com/a/b/c:v_1",
                "registry.example.com/a/b/c:v_1",
                "v_1",
            ),
            ("index.docker.io/hello:x", "docker.io/library/hello:x", "x"),
            ("[::1]:5000/hello:x", "[::1]:5000/hello:x", "x"),
        ];
        for (given, full, tag) in cases {
            let t = parse_repo_tag(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!((t.full.as_str(), t.tag.as_str()), (full, tag), "{given}");
        }
        for (bad, why) in [
            ("hello", "has no tag"),
            ("127.0.0.1:5000/hello", "has no tag"),
            ("Hello:latest", "repository \"Hello\""),
            ("hello:", "tag \"\""),
            ("hello:-x", "tag \"-x\""),
            ("hello@sha256:abc", "digest reference"),
            ("exa_mple.com/a:b", "registry"),
            ("example.com:99999/a:b", "bad port"),
            ("example.com:/a:b", "bad port"),
            ("a//b:c", "repository"),
            ("", "has no tag"),
        ] {
            let err = parse_repo_tag(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")) && err.contains(why), "{bad}: {err}");
        }
        let long = format!("{}:x", "a".repeat(MAX_REFERENCE_NAME_LEN + 1));
        assert!(parse_repo_tag(&long).unwrap_err().to_string().contains("longer than"));
    }
}
