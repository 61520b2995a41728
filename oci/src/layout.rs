//! An OCI image layout directory (`oci-layout`, `blobs/<algorithm>/<hex>`, `index.json`),
//! read and written with oci-spec's types, and the one JSON form pier writes into it.
//!
//! Every JSON document is written in one canonical form — compact, object keys sorted at
//! every level ([`canonical_json`]) — because oci-spec keeps labels, annotations and exposed
//! ports in `HashMap`s whose order changes from one process to the next: without sorting, the
//! same image would get a different config or manifest digest on every run.
//!
//! Architecture, OS and variant are always pier's canonical spellings (`amd64`,
//! `arm64` + `v8`, `loong64`, `sw64`, `mips64le`), taken from [`Platform`].

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifestBuilder,
    MediaType, Os, Platform as OciPlatform, PlatformBuilder,
};
use serde::Serialize;
use serde_json::Value;

use crate::{Digest, Platform, media};

/// The `imageLayoutVersion` written to `oci-layout`.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// Why an image could not be described or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file of the layout could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// oci-spec refused a value (a digest, a missing field).
    #[error("{what}: {message}")]
    Spec {
        /// What was being built.
        what: &'static str,
        /// oci-spec's message.
        message: String,
    },
    /// JSON that does not serialize or parse.
    #[error("{what}: {source}")]
    Json {
        /// What was being written or read.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A directory that is not an OCI layout.
    #[error("{0}: not an OCI image layout (no oci-layout file)")]
    NotLayout(String),
    /// A layer blob whose size is not what the layer says.
    #[error("layer {digest}: {path} is {found} bytes, expected {expected}")]
    LayerSize {
        /// The layer.
        digest: Digest,
        /// Its file.
        path: String,
        /// Size on disk.
        found: u64,
        /// Size recorded.
        expected: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Turns an oci-spec builder error into [`ImageError::Spec`] about `what`.
pub fn spec_err(what: &'static str) -> impl FnOnce(oci_spec::OciSpecError) -> ImageError {
    move |e| ImageError::Spec {
        what,
        message: e.to_string(),
    }
}

/// A layer blob on disk, named after its digest, with what an image needs to list it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// The blob file (`<blobs dir>/<digest hex>`).
    pub path: PathBuf,
    /// sha256 of the compressed blob.
    pub digest: Digest,
    /// sha256 of the uncompressed tar (what image configs list in `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// The layer media type.
    pub media_type: String,
    /// What the image history says made the layer: `pier: add /a /b` (the entries'
    /// destinations, sorted).
    #[serde(default)]
    pub created_by: String,
}

/// One platform's image with its layers as files: what a base image gives a build.
#[derive(Debug, Clone, Default)]
pub struct BaseImage {
    /// Digest of the image's manifest (for messages and reports).
    pub manifest: String,
    /// The image config, as JSON.
    pub config: serde_json::Value,
    /// Its layers, in order, as files (with their diff_ids from the config).
    pub layers: Vec<Layer>,
}

/// oci-spec's platform for a canonical one.
pub fn oci_platform(platform: &Platform) -> OciPlatform {
    let mut b = PlatformBuilder::default()
        .architecture(Arch::from(platform.architecture.as_str()))
        .os(Os::from(platform.os.as_str()));
    if let Some(v) = &platform.variant {
        b = b.variant(v.clone());
    }
    b.build().expect("architecture and os are set")
}

/// The one JSON form pier writes: compact, object keys sorted at every level. Deterministic
/// whatever maps the value holds and whatever serde_json features the build enables.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    serde_json::to_vec(&sort(serde_json::to_value(value)?))
}

/// A descriptor of `size` bytes of `media_type` with `digest`.
pub fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Result<Descriptor, ImageError> {
    let d: oci_spec::image::Digest = digest.to_string().parse().map_err(spec_err("descriptor digest"))?;
    Ok(Descriptor::new(MediaType::from(media_type), size, d))
}

/// An OCI image layout directory: `oci-layout`, `blobs/sha256/<hex>`, `index.json`.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Creates the layout in `dir` (created if missing); an existing layout is opened as is,
    /// keeping its blobs and tags.
    pub fn create(dir: impl Into<PathBuf>) -> Result<OciLayout, ImageError> {
        let root = dir.into();
        let layout = OciLayout { root };
        let blobs = layout.blobs_dir();
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let marker = layout.root.join("oci-layout");
        if !marker.exists() {
            let body =
                canonical_json(&serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION })).map_err(|source| {
                    ImageError::Json {
                        what: "oci-layout".into(),
                        source,
                    }
                })?;
            write_atomic(&marker, &body)?;
        }
        if !layout.index_path().exists() {
            layout.write_top_index(Vec::new())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout.
    pub fn open(dir: impl Into<PathBuf>) -> Result<OciLayout, ImageError> {
        let root = dir.into();
        if !root.join("oci-layout").is_file() {
            return Err(ImageError::NotLayout(root.display().to_string()));
        }
        Ok(OciLayout { root })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/sha256`: where layers should be built so that adopting them is free.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// The file of a blob.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Stores bytes as a blob (idempotent) and describes them.
    pub fn put_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, ImageError> {
        let digest = Digest::sha256_of(bytes);
        let path = self.blob_path(&digest);
        let present = fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        if !present {
            write_atomic(&path, bytes)?;
        }
        descriptor(media_type, &digest, bytes.len() as u64)
    }

    /// Stores a value as canonical JSON ([`canonical_json`]).
    pub fn put_json<T: Serialize>(&self, media_type: &str, value: &T) -> Result<Descriptor, ImageError> {
        let bytes = canonical_json(value).map_err(|source| ImageError::Json {
            what: media_type.to_owned(),
            source,
        })?;
        self.put_blob(media_type, &bytes)
    }

    /// Moves a built layer's file into the layout (a rename; nothing to do when it was
    /// built in [`OciLayout::blobs_dir`]).
    pub fn adopt_layer(&self, layer: &Layer) -> Result<Descriptor, ImageError> {
        let dest = self.blob_path(&layer.digest);
        if layer.path != dest {
            check_size(layer)?;
            if let Err(e) = fs::rename(&layer.path, &dest) {
                // Another file system: copy, then drop the original.
                copy_atomic(&layer.path, &dest).map_err(|_| io_err(&layer.path)(e))?;
                fs::remove_file(&layer.path).map_err(io_err(&layer.path))?;
            }
        }
        descriptor(&layer.media_type, &layer.digest, layer.size)
    }

    /// Puts a layer into the layout and leaves the original where it is (a cached layer):
    /// a hard link where possible, else a copy.
    pub fn link_layer(&self, layer: &Layer) -> Result<Descriptor, ImageError> {
        let dest = self.blob_path(&layer.digest);
        let present = fs::metadata(&dest).is_ok_and(|m| m.len() == layer.size);
        if layer.path != dest && !present {
            check_size(layer)?;
            let _ = fs::remove_file(&dest);
            if fs::hard_link(&layer.path, &dest).is_err() {
                copy_atomic(&layer.path, &dest)?;
            }
        }
        descriptor(&layer.media_type, &layer.digest, layer.size)
    }

    /// Writes one platform's image: its config and manifest blobs (the layers are linked in
    /// when not there yet). Returns the manifest's descriptor with `platform` set, ready for
    /// [`OciLayout::write_index`].
    pub fn write_image(
        &self,
        platform: &Platform,
        layers: &[Layer],
        config: &ImageConfiguration,
    ) -> Result<Descriptor, ImageError> {
        let (manifest, _config) = self.write_annotated_image(platform, layers, config, &BTreeMap::new())?;
        Ok(manifest)
    }

    /// [`OciLayout::write_image`] with manifest annotations (none: no `annotations` field).
    /// Returns the manifest's descriptor (with `platform` set) and the config's.
    pub fn write_annotated_image(
        &self,
        platform: &Platform,
        layers: &[Layer],
        config: &ImageConfiguration,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(Descriptor, Descriptor), ImageError> {
        let layer_descs = layers
            .iter()
            .map(|l| self.link_layer(l))
            .collect::<Result<Vec<_>, _>>()?;
        let config_desc = self.put_json(media::OCI_CONFIG, config)?;
        let mut b = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc.clone())
            .layers(layer_descs);
        if !annotations.is_empty() {
            b = b.annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>());
        }
        let manifest = b.build().map_err(spec_err("image manifest"))?;
        let mut desc = self.put_json(media::OCI_MANIFEST, &manifest)?;
        desc.set_platform(Some(oci_platform(platform)));
        Ok((desc, config_desc))
    }

    /// Writes the image index over `manifests` (with their platforms) and tags it: index.json
    /// points at the index blob with `org.opencontainers.image.ref.name = tag`, replacing
    /// an earlier entry of the same tag and keeping the others.
    pub fn write_index(
        &self,
        manifests: &[Descriptor],
        tag: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Descriptor, ImageError> {
        let desc = self.put_index(manifests, annotations)?;
        self.tag(&desc, tag)?;
        Ok(desc)
    }

    /// Writes the image index over `manifests` without tagging it.
    pub fn put_index(
        &self,
        manifests: &[Descriptor],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Descriptor, ImageError> {
        let mut b = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests.to_vec());
        if !annotations.is_empty() {
            b = b.annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>());
        }
        let index = b.build().map_err(spec_err("image index"))?;
        self.put_json(media::OCI_INDEX, &index)
    }

    /// Points `tag` at a manifest or index already in the layout: `index.json` gets the
    /// descriptor with `org.opencontainers.image.ref.name = tag`, replacing an earlier entry
    /// of the same tag and keeping the others.
    pub fn tag(&self, desc: &Descriptor, tag: &str) -> Result<(), ImageError> {
        let mut tagged = desc.clone();
        tagged.set_platform(None);
        tagged.set_annotations(Some([(ANNOTATION_REF_NAME.to_owned(), tag.to_owned())].into()));
        let mut entries: Vec<Descriptor> = self
            .read_top_index()?
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(tag))
            .cloned()
            .collect();
        entries.push(tagged);
        entries.sort_by(|a, b| ref_name(a).cmp(&ref_name(b)));
        self.write_top_index(entries)
    }

    /// The layout's `index.json`.
    pub fn read_top_index(&self) -> Result<ImageIndex, ImageError> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: path.display().to_string(),
            source,
        })
    }

    /// The descriptor `index.json` lists for a tag.
    pub fn resolve(&self, tag: &str) -> Result<Option<Descriptor>, ImageError> {
        Ok(self
            .read_top_index()?
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(tag))
            .cloned())
    }

    fn write_top_index(&self, manifests: Vec<Descriptor>) -> Result<(), ImageError> {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(spec_err("index.json"))?;
        let bytes = canonical_json(&index).map_err(|source| ImageError::Json {
            what: "index.json".into(),
            source,
        })?;
        write_atomic(&self.index_path(), &bytes)
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(ANNOTATION_REF_NAME).map(String::as_str)
}

fn check_size(layer: &Layer) -> Result<(), ImageError> {
    let found = fs::metadata(&layer.path).map_err(io_err(&layer.path))?.len();
    if found != layer.size {
        return Err(ImageError::LayerSize {
            digest: layer.digest.clone(),
            path: layer.path.display().to_string(),
            found,
            expected: layer.size,
        });
    }
    Ok(())
}

/// Writes a file through a temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

fn copy_atomic(from: &Path, to: &Path) -> Result<(), ImageError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let mut src = fs::File::open(from).map_err(io_err(from))?;
    io::copy(&mut src, tmp.as_file_mut()).map_err(io_err(to))?;
    tmp.persist(to).map_err(|e| io_err(to)(e.error))?;
    Ok(())
}
