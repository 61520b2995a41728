//! Image configs, manifests and indexes (oci-spec's types), written as an OCI image layout.
//!
//! Every JSON document is written in one canonical form — compact, object keys sorted at
//! every level ([`canonical_json`]) — because oci-spec keeps labels, annotations and exposed
//! ports in `HashMap`s whose order changes from one process to the next: without sorting, the
//! same image would get a different config or manifest digest on every run.
//!
//! Architecture, OS and variant are always pier's canonical spellings (`amd64`,
//! `arm64` + `v8`, `loong64`, `sw64`, `mips64le`), taken from [`pier_oci::Platform`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Config, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    Platform as OciPlatform, PlatformBuilder, RootFsBuilder,
};
use pier_oci::{Digest, Platform, media};
use serde::Serialize;
use serde_json::Value;

use crate::layer::Layer;

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

fn spec_err(what: &'static str) -> impl FnOnce(oci_spec::OciSpecError) -> ImageError {
    move |e| ImageError::Spec {
        what,
        message: e.to_string(),
    }
}

/// The runtime part of an image config, as the pipeline spec gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOptions {
    /// `NAME=value` entries, in order.
    pub env: Vec<String>,
    /// The entrypoint, if any.
    pub entrypoint: Option<Vec<String>>,
    /// The command (the entrypoint's arguments, or the program when there is no entrypoint).
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    pub workdir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    pub user: Option<String>,
    /// `8080/tcp`, `53/udp`; a bare port means tcp.
    pub exposed_ports: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
}

/// An epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (unsigned: no dates before).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
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

/// The image config of one platform's image: canonical architecture/os/variant, the layers'
/// diff_ids, one history entry per layer, and `created` (of the image and of each history
/// entry) from `created` (`SOURCE_DATE_EPOCH`).
pub fn image_config(
    platform: &Platform,
    layers: &[Layer],
    cfg: &ConfigOptions,
    created: u64,
) -> Result<ImageConfiguration, ImageError> {
    let when = rfc3339(created);
    let mut c = ConfigBuilder::default();
    if !cfg.env.is_empty() {
        c = c.env(cfg.env.clone());
    }
    if let Some(e) = &cfg.entrypoint {
        c = c.entrypoint(e.clone());
    }
    if let Some(cmd) = &cfg.cmd {
        c = c.cmd(cmd.clone());
    }
    if let Some(w) = &cfg.workdir {
        c = c.working_dir(w.clone());
    }
    if let Some(u) = &cfg.user {
        c = c.user(u.clone());
    }
    if !cfg.exposed_ports.is_empty() {
        let mut ports: Vec<String> = cfg
            .exposed_ports
            .iter()
            .map(|p| if p.contains('/') { p.clone() } else { format!("{p}/tcp") })
            .collect();
        ports.sort();
        ports.dedup();
        c = c.exposed_ports(ports);
    }
    if !cfg.labels.is_empty() {
        c = c.labels(
            cfg.labels
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    let config: Config = c.build().map_err(spec_err("image config"))?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err("image config rootfs"))?;
    let history = layers
        .iter()
        .map(|l| {
            let by = if l.created_by.is_empty() {
                format!("pier: layer {}", l.diff_id)
            } else {
                l.created_by.clone()
            };
            HistoryBuilder::default()
                .created(when.clone())
                .created_by(by)
                .build()
                .map_err(spec_err("image config history"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = ImageConfigurationBuilder::default()
        .created(when)
        .architecture(Arch::from(platform.architecture.as_str()))
        .os(Os::from(platform.os.as_str()))
        .config(config)
        .rootfs(rootfs)
        .history(history);
    if let Some(v) = &platform.variant {
        b = b.variant(v.clone());
    }
    b.build().map_err(spec_err("image config"))
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Result<Descriptor, ImageError> {
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
        let layer_descs = layers
            .iter()
            .map(|l| self.link_layer(l))
            .collect::<Result<Vec<_>, _>>()?;
        let config_desc = self.put_json(media::OCI_CONFIG, config)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(layer_descs)
            .build()
            .map_err(spec_err("image manifest"))?;
        let mut desc = self.put_json(media::OCI_MANIFEST, &manifest)?;
        desc.set_platform(Some(oci_platform(platform)));
        Ok(desc)
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
        let mut b = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests.to_vec());
        if !annotations.is_empty() {
            b = b.annotations(
                annotations
                    .clone()
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
        let index = b.build().map_err(spec_err("image index"))?;
        let desc = self.put_json(media::OCI_INDEX, &index)?;
        self.tag(&desc, tag)?;
        Ok(desc)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn canonical_platforms() {
        let cases = [
            ("x86_64", "amd64", None),
            ("aarch64", "arm64", Some("v8")),
            ("loongarch64", "loong64", None),
            ("sw_64", "sw64", None),
            ("mips64el", "mips64le", None),
        ];
        for (alias, arch, variant) in cases {
            let p: Platform = alias.parse().unwrap();
            let o = oci_platform(&p);
            let json: Value = serde_json::from_slice(&canonical_json(&o).unwrap()).unwrap();
            assert_eq!(json["architecture"], arch, "{alias}");
            assert_eq!(json["os"], "linux");
            assert_eq!(json["variant"].as_str(), variant, "{alias}");
            let cfg = image_config(&p, &[], &ConfigOptions::default(), 0).unwrap();
            let json: Value = serde_json::from_slice(&canonical_json(&cfg).unwrap()).unwrap();
            assert_eq!(json["architecture"], arch, "{alias}");
            assert_eq!(json["variant"].as_str(), variant, "{alias}");
            assert_eq!(json["created"], "1970-01-01T00:00:00Z");
        }
    }

    #[test]
    fn config_json_is_sorted_and_stable() {
        let p: Platform = "linux/amd64".parse().unwrap();
        let labels: BTreeMap<String, String> = (0..40).map(|i| (format!("label.{i:02}"), i.to_string())).collect();
        let cfg = ConfigOptions {
            env: vec!["B=1".into(), "A=2".into()],
            exposed_ports: vec!["9000".into(), "53/udp".into(), "8080/tcp".into()],
            labels,
            ..ConfigOptions::default()
        };
        let first = canonical_json(&image_config(&p, &[], &cfg, 5).unwrap()).unwrap();
        for _ in 0..5 {
            // A fresh HashMap each time: a different iteration order, the same bytes.
            assert_eq!(canonical_json(&image_config(&p, &[], &cfg, 5).unwrap()).unwrap(), first);
        }
        let text = String::from_utf8(first).unwrap();
        let at = |s: &str| text.find(s).unwrap();
        assert!(
            at("label.00") < at("label.01") && at("label.01") < at("label.39"),
            "{text}"
        );
        assert!(
            at("53/udp") < at("8080/tcp") && at("8080/tcp") < at("9000/tcp"),
            "{text}"
        );
        // Env keeps its order.
        assert!(at("B=1") < at("A=2"));
    }
}
