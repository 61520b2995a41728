//! Deterministic layers, streamed: host files and directories → one tar → gzip or zstd → a
//! blob file, never held in memory.
//!
//! The tar is written in one pass through two hashing writers, so the layer's `diff_id`
//! (sha256 of the uncompressed tar) and its `digest` (sha256 of the compressed blob) come out
//! of the same pass that writes the file. The file is then renamed to its digest.
//!
//! Reproducibility rules (same inputs → the same bytes, on any machine, in any order, under
//! any umask):
//! - every entry is expanded (directories recursively, symlinks stored as symlinks, never
//!   followed), the parents of every destination are added as directories, and the whole set
//!   is sorted by path;
//! - owners are numeric (`uid`/`gid` of the entry, 0 by default) with empty user and group
//!   names; every timestamp is the given `mtime` (`SOURCE_DATE_EPOCH`);
//! - a regular file's mode is the entry's `mode`, else the source's permission bits `& 0o777`;
//!   directories are always `0o755` and symlinks `0o777`, whatever the host made them;
//! - GNU tar headers throughout (GNU long-name records for paths over 100 bytes), no xattrs,
//!   no device numbers, no hard links (a file linked twice is stored twice);
//! - gzip with flate2's zlib-rs backend at [`GZIP_LEVEL`] and a fixed gzip header (no name,
//!   mtime 0, OS "unknown");
//! - or zstd at [`ZSTD_LEVEL`] with the vendored libzstd (pinned by Cargo.lock), one frame
//!   without checksum, content size or dictionary id ([`ZSTD_FRAME`]), single-threaded.
//!
//! The ELF check is a hook: [`build_layer`] hands every regular file's destination and first
//! 64 bytes to a closure, and [`elf_checker`] makes the closure that refuses binaries a
//! profile's platform cannot run.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use pier_arch_profiles::{ElfInfo, Profile};
use pier_oci::{Digest, media};
use sha2::{Digest as _, Sha256};

pub use cache::LayerCache;

mod cache;
#[cfg(test)]
mod tests;

/// The gzip level layers are compressed with. Together with the compressor itself (flate2 on
/// its zlib-rs backend, pinned by the workspace) this decides every layer digest: changing
/// either changes the digest of every layer pier has ever built, so change both only on
/// purpose (and bump [`CACHE_FORMAT`]).
pub const GZIP_LEVEL: u32 = 6;

/// The zstd level layers are compressed with. Pinned for the same reason as [`GZIP_LEVEL`]:
/// the level decides the compressed bytes, hence every zstd layer digest (and with it every
/// manifest and index digest), so it must not follow the library's default. The cache key
/// holds it, so changing it rebuilds layers instead of reusing ones made at the old level.
pub const ZSTD_LEVEL: i32 = 3;

/// The zstd frame pier writes, as named in cache keys: magic bytes on; no content checksum
/// and no content size (the stream's size is not known up front, and writing it only
/// sometimes would make the header vary); no dictionary; one thread (zstd's multithreaded
/// mode cuts the input into jobs and produces different bytes, and the crate is built
/// without it). Change it together with the encoder settings in `zstd_encoder`.
pub const ZSTD_FRAME: &str = "zstd-frame magic no-checksum no-content-size no-dictid single-thread";

/// Names the byte format of layers in cache keys: tar format, gzip backend and header. Bump
/// it whenever anything that changes layer bytes for the same inputs changes. (The
/// compressor's own settings are in the key too, see [`Compression::cache_id`].)
pub const CACHE_FORMAT: &str = "pier-layer/1 gnu-tar flate2-zlib-rs gzip-os255";

/// Mode of the directories pier creates (parents of destinations and directories copied
/// from the host).
pub const DIR_MODE: u32 = 0o755;

/// Mode of symlinks (Linux ignores it; fixed so the header is reproducible).
pub const SYMLINK_MODE: u32 = 0o777;

/// Bytes of each regular file the check hook sees (enough for any ELF header).
pub const CHECK_BYTES: usize = pier_arch_profiles::elf::HEADER_LEN;

/// One thing to put into a layer: a host file or directory at a path of the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerEntry {
    /// A file, directory or symlink on the host. Directories are copied recursively.
    pub src: PathBuf,
    /// Absolute path in the image: the file itself, or the directory the contents of a
    /// source directory go into.
    pub dest: String,
    /// Mode of regular files (for a directory source: of every regular file beneath it);
    /// `None` keeps the source's permission bits `& 0o777`.
    #[serde(default)]
    pub mode: Option<u32>,
    /// Numeric owner.
    #[serde(default)]
    pub uid: u32,
    /// Numeric group.
    #[serde(default)]
    pub gid: u32,
}

impl LayerEntry {
    /// An entry owned by root with the source's mode.
    pub fn new(src: impl Into<PathBuf>, dest: impl Into<String>) -> LayerEntry {
        LayerEntry {
            src: src.into(),
            dest: dest.into(),
            mode: None,
            uid: 0,
            gid: 0,
        }
    }

    /// The same entry with an explicit mode.
    pub fn with_mode(mut self, mode: u32) -> LayerEntry {
        self.mode = Some(mode);
        self
    }

    /// The same entry with an owner.
    pub fn with_owner(mut self, uid: u32, gid: u32) -> LayerEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

/// How layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip, flate2 (zlib-rs) at [`GZIP_LEVEL`].
    #[default]
    Gzip,
    /// zstd, libzstd at [`ZSTD_LEVEL`], one frame as [`ZSTD_FRAME`] says.
    Zstd,
}

impl Compression {
    /// The layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
        }
    }

    /// What the cache key says about the compressor: everything beyond [`CACHE_FORMAT`]
    /// that decides the compressed bytes. For zstd that is the level, the frame settings and
    /// the libzstd version (its match finder may change between releases), so changing any
    /// of them misses the cache instead of returning layers made the old way. gzip's stays
    /// `gzip-<level>` (its backend is named in [`CACHE_FORMAT`]), so existing caches keep
    /// hitting.
    pub fn cache_id(self) -> String {
        match self {
            Compression::Gzip => self.to_string(),
            Compression::Zstd => format!("{self} {ZSTD_FRAME} libzstd-{}", zstd::zstd_safe::version_string()),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip => write!(f, "gzip-{GZIP_LEVEL}"),
            Compression::Zstd => write!(f, "zstd-{ZSTD_LEVEL}"),
        }
    }
}

/// Where and how a layer is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// Timestamp of every entry (`SOURCE_DATE_EPOCH`).
    pub mtime: u64,
    /// The compressor.
    pub compression: Compression,
    /// Directory the blob is written into (as a temporary file, then renamed to the hex of
    /// its digest), e.g. an OCI layout's `blobs/sha256`. Created if missing.
    pub out_dir: PathBuf,
}

/// A built layer: a compressed tar blob on disk, named after its digest.
pub use pier_oci::layout::Layer;

/// Why a layer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A destination that is not an absolute, `..`-free path in the image.
    #[error("layer entry {src}: destination {dest:?} {why}")]
    BadDest {
        /// The entry's source.
        src: String,
        /// As given.
        dest: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An explicit mode with bits outside `0o7777`.
    #[error("layer entry {src} → {dest}: mode {mode:#o} is not a file mode (at most 0o7777)")]
    BadMode {
        /// The entry's source.
        src: String,
        /// The entry's destination.
        dest: String,
        /// As given.
        mode: u32,
    },
    /// Two entries put different things at one path.
    #[error("layer path /{path} given twice with different contents ({first} and {second})")]
    Conflict {
        /// Path in the image, without the leading `/`.
        path: String,
        /// The first source.
        first: String,
        /// The other source.
        second: String,
    },
    /// Something on the host that cannot go into an image (socket, fifo, device).
    #[error("{src}: {kind} cannot go into a layer (only files, directories and symlinks)")]
    Unsupported {
        /// The host path.
        src: String,
        /// What it is.
        kind: &'static str,
    },
    /// A file changed size while the layer was written.
    #[error("{src} changed while the layer was written (size was {expected} bytes)")]
    Changed {
        /// The host path.
        src: String,
        /// The size when listed.
        expected: u64,
    },
    /// The check hook refused a file; the message names the file and why.
    #[error("{0}")]
    Refused(String),
    /// Reading a source or writing the blob failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The cache index could not be read or written.
    #[error("layer cache {path}: {message}")]
    Cache {
        /// The cache file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The check hook: `(destination in the image, first bytes of the file)`; an `Err` message
/// refuses the file and becomes the build error, so it names the destination itself.
pub type FileCheck<'a> = dyn Fn(&Path, &[u8]) -> Result<(), String> + 'a;

/// A check that accepts every file.
pub fn no_check(_dest: &Path, _head: &[u8]) -> Result<(), String> {
    Ok(())
}

/// The check for one platform: every ELF file must be one the profile runs (machine, class,
/// byte order, LoongArch ABI), except the destinations listed in `allow` (absolute paths in
/// the image, e.g. `/opt/x86/helper` kept on purpose). Non-ELF files pass.
///
/// The message: `/usr/bin/hello: ELF for x86-64 (EM_X86_64, 64-bit LSB), but linux/arm64/v8
/// needs aarch64 (EM_AARCH64 183, 64-bit LSB)`.
pub fn elf_checker(
    profile: &Profile,
    allow: &[String],
) -> impl Fn(&Path, &[u8]) -> Result<(), String> + Send + Sync + use<> {
    let profile = profile.clone();
    let allow: Vec<String> = allow
        .iter()
        .map(|a| normalize_dest(a).unwrap_or_else(|_| a.clone()))
        .collect();
    move |dest: &Path, head: &[u8]| {
        if !ElfInfo::is_elf(head) {
            return Ok(());
        }
        let shown = dest.display().to_string();
        if normalize_dest(&shown).is_ok_and(|d| allow.contains(&d)) {
            return Ok(());
        }
        let elf = ElfInfo::parse(head)
            .map_err(|e| format!("{shown}: {e}, but {} needs {}", profile.platform(), profile.elf()))?;
        profile.check_elf(&elf).map_err(|m| format!("{shown}: {m}"))
    }
}

/// A destination as stored in the tar: relative, `/`-separated, no `.`/`..`/empty parts.
/// `/` itself is the empty string.
fn normalize_dest(dest: &str) -> Result<String, &'static str> {
    if !dest.starts_with('/') {
        return Err("is not absolute");
    }
    let mut parts = Vec::new();
    for c in Path::new(dest).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_str().ok_or("is not UTF-8")?),
            Component::ParentDir => return Err("contains `..`"),
            Component::Prefix(_) => return Err("is not a Unix path"),
        }
    }
    Ok(parts.join("/"))
}

/// What one path of the layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A directory; `explicit` when a source directory is copied there (not just a parent).
    Dir { explicit: bool },
    /// A regular file, read from `src`.
    File { src: PathBuf, size: u64 },
    /// A symlink with this target.
    Symlink { target: PathBuf },
}

/// One tar entry, before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    /// Relative path, no trailing slash.
    path: String,
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// The host path it came from (for messages).
    origin: String,
}

/// Every entry expanded into sorted items, with their parent directories.
#[derive(Debug)]
struct Plan {
    items: Vec<Item>,
    created_by: String,
}

fn plan(entries: &[LayerEntry]) -> Result<Plan, LayerError> {
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    let mut dests = Vec::new();
    for entry in entries {
        let src_shown = entry.src.display().to_string();
        let dest = normalize_dest(&entry.dest).map_err(|why| LayerError::BadDest {
            src: src_shown.clone(),
            dest: entry.dest.clone(),
            why,
        })?;
        if let Some(mode) = entry.mode.filter(|m| *m > 0o7777) {
            return Err(LayerError::BadMode {
                src: src_shown,
                dest: entry.dest.clone(),
                mode,
            });
        }
        dests.push(format!("/{dest}"));
        let meta = fs::symlink_metadata(&entry.src).map_err(io_err(&entry.src))?;
        if dest.is_empty() && !meta.is_dir() {
            return Err(LayerError::BadDest {
                src: src_shown,
                dest: entry.dest.clone(),
                why: "is the root, which only a directory can be copied to",
            });
        }
        walk(entry, &entry.src, &dest, &meta, &mut items)?;
        // Parents of the destination.
        let mut parent = dest.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            add(
                &mut items,
                Item {
                    path: p.to_owned(),
                    kind: Kind::Dir { explicit: false },
                    mode: DIR_MODE,
                    uid: entry.uid,
                    gid: entry.gid,
                    origin: src_shown.clone(),
                },
            )?;
            parent = p;
        }
    }
    dests.sort();
    dests.dedup();
    // The root is the image's own; no entry for it.
    items.remove("");
    Ok(Plan {
        items: items.into_values().collect(),
        created_by: format!("pier: add {}", dests.join(" ")),
    })
}

/// Adds `src` (already stat'ed as `meta`) at `dest`, recursing into directories.
fn walk(
    entry: &LayerEntry,
    src: &Path,
    dest: &str,
    meta: &fs::Metadata,
    items: &mut BTreeMap<String, Item>,
) -> Result<(), LayerError> {
    let origin = src.display().to_string();
    let ft = meta.file_type();
    let (kind, mode) = if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io_err(src))?;
        (Kind::Symlink { target }, SYMLINK_MODE)
    } else if ft.is_dir() {
        (Kind::Dir { explicit: true }, DIR_MODE)
    } else if ft.is_file() {
        let mode = entry.mode.unwrap_or_else(|| permission_bits(meta));
        let kind = Kind::File {
            src: src.to_owned(),
            size: meta.len(),
        };
        (kind, mode)
    } else {
        return Err(LayerError::Unsupported {
            src: origin,
            kind: special_kind(&ft),
        });
    };
    let is_dir = matches!(kind, Kind::Dir { .. });
    add(
        items,
        Item {
            path: dest.to_owned(),
            kind,
            mode,
            uid: entry.uid,
            gid: entry.gid,
            origin,
        },
    )?;
    if is_dir {
        let mut children = Vec::new();
        for child in fs::read_dir(src).map_err(io_err(src))? {
            let child = child.map_err(io_err(src))?;
            children.push(child.file_name());
        }
        // Directory order is the file system's; the BTreeMap sorts in the end, but walking in
        // order keeps conflict messages stable too.
        children.sort();
        for name in children {
            let Some(name_str) = name.to_str() else {
                return Err(LayerError::BadDest {
                    src: src.join(&name).display().to_string(),
                    dest: format!("/{dest}/{}", name.to_string_lossy()),
                    why: "is not UTF-8",
                });
            };
            let child_src = src.join(&name);
            let child_meta = fs::symlink_metadata(&child_src).map_err(io_err(&child_src))?;
            let child_dest = if dest.is_empty() {
                name_str.to_owned()
            } else {
                format!("{dest}/{name_str}")
            };
            walk(entry, &child_src, &child_dest, &child_meta, items)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn permission_bits(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn permission_bits(meta: &fs::Metadata) -> u32 {
    if meta.permissions().readonly() { 0o444 } else { 0o644 }
}

#[cfg(unix)]
fn special_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_socket() {
        "a socket"
    } else if ft.is_fifo() {
        "a fifo"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_ft: &fs::FileType) -> &'static str {
    "a special file"
}

/// Inserts an item; directories merge (an explicit one wins over a parent; between equals
/// the smallest owner wins, so the order of entries does not matter), anything else given
/// twice must be the same.
fn add(items: &mut BTreeMap<String, Item>, item: Item) -> Result<(), LayerError> {
    let Some(old) = items.get_mut(&item.path) else {
        items.insert(item.path.clone(), item);
        return Ok(());
    };
    match (&old.kind, &item.kind) {
        (Kind::Dir { explicit: a }, Kind::Dir { explicit: b }) => {
            let rank = |i: &Item, explicit: bool| (!explicit, i.uid, i.gid);
            if rank(&item, *b) < rank(old, *a) {
                *old = item;
            }
            Ok(())
        }
        _ if old.kind == item.kind && old.mode == item.mode && old.uid == item.uid && old.gid == item.gid => Ok(()),
        _ => Err(LayerError::Conflict {
            path: item.path.clone(),
            first: old.origin.clone(),
            second: item.origin,
        }),
    }
}

/// A writer that hashes and counts what passes through it.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> (W, Digest, u64) {
        let hex = hex::encode(self.hasher.finalize());
        let digest = format!("sha256:{hex}").parse().expect("sha256 hex is a digest");
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `remaining` bytes from a file or fails (the tar header already promised
/// that size).
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads up to [`CHECK_BYTES`] from the start of a file.
fn read_head(file: &mut File, src: &Path) -> Result<Vec<u8>, LayerError> {
    let mut head = Vec::with_capacity(CHECK_BYTES);
    Read::by_ref(file)
        .take(CHECK_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io_err(src))?;
    Ok(head)
}

/// Runs the check on every regular file of the plan (reading only their first bytes).
fn check_files(plan: &Plan, check: &FileCheck<'_>) -> Result<(), LayerError> {
    for item in &plan.items {
        if let Kind::File { src, .. } = &item.kind {
            let mut file = File::open(src).map_err(io_err(src))?;
            let head = read_head(&mut file, src)?;
            check(Path::new(&format!("/{}", item.path)), &head).map_err(LayerError::Refused)?;
        }
    }
    Ok(())
}

/// Builds one layer from `entries`: checks every regular file with `check`, writes the
/// compressed tar into `opts.out_dir` as `<digest hex>` and returns it.
pub fn build_layer(entries: &[LayerEntry], opts: &LayerOptions, check: &FileCheck<'_>) -> Result<Layer, LayerError> {
    let plan = plan(entries)?;
    check_files(&plan, check)?;
    write_layer(&plan, opts)
}

fn write_layer(plan: &Plan, opts: &LayerOptions) -> Result<Layer, LayerError> {
    let out_dir = &opts.out_dir;
    fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(out_dir)
        .map_err(io_err(out_dir))?;
    let tmp_path = tmp.path().to_owned();
    let file = tmp.as_file().try_clone().map_err(io_err(&tmp_path))?;
    // file ← sha256 (digest, size) ← compressor ← sha256 (diff_id) ← tar
    let compressed = HashWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file));
    let (compressed, diff_id) = match opts.compression {
        Compression::Gzip => {
            let gz = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(compressed, flate2::Compression::new(GZIP_LEVEL));
            let (gz, diff_id) = write_tar(plan, opts.mtime, gz, &tmp_path)?;
            (gz.finish().map_err(io_err(&tmp_path))?, diff_id)
        }
        Compression::Zstd => {
            let zst = zstd_encoder(compressed).map_err(io_err(&tmp_path))?;
            let (zst, diff_id) = write_tar(plan, opts.mtime, zst, &tmp_path)?;
            (zst.finish().map_err(io_err(&tmp_path))?, diff_id)
        }
    };
    let (file_writer, digest, size) = compressed.finish();
    let file = file_writer.into_inner().map_err(|e| LayerError::Io {
        path: tmp_path.display().to_string(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(&tmp_path))?;
    drop(file);
    let path = out_dir.join(digest.hex());
    tmp.persist(&path).map_err(|e| LayerError::Io {
        path: path.display().to_string(),
        source: e.error,
    })?;
    Ok(Layer {
        path,
        digest,
        diff_id,
        size,
        media_type: opts.compression.media_type().to_owned(),
        created_by: plan.created_by.clone(),
    })
}

/// Buffer between the compressor and the blob file.
const WRITE_BUFFER: usize = 1 << 16;

/// Writes the plan as a tar into `out` through a hashing writer; returns `out` (to be
/// finished by the caller) and the tar's sha256, the layer's `diff_id`.
fn write_tar<W: Write>(plan: &Plan, mtime: u64, out: W, tmp_path: &Path) -> Result<(W, Digest), LayerError> {
    let mut tar = tar::Builder::new(HashWriter::new(out));
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    for item in &plan.items {
        append_item(&mut tar, item, mtime)?;
    }
    let uncompressed = tar.into_inner().map_err(io_err(tmp_path))?;
    let (out, diff_id, _) = uncompressed.finish();
    Ok((out, diff_id))
}

/// The zstd encoder every zstd layer goes through, set up as [`ZSTD_FRAME`] says. The frame
/// flags are set explicitly rather than left to the library's defaults, which may change
/// (the magic bytes are the standard `ZSTD_f_zstd1` format, which only the crate's
/// experimental feature could turn off). Streaming with a single thread, libzstd only
/// compresses full blocks until the end, so the output does not depend on how the tar
/// writer happens to split its writes.
fn zstd_encoder<W: Write>(out: W) -> io::Result<zstd::Encoder<'static, W>> {
    let mut enc = zstd::Encoder::new(out, ZSTD_LEVEL)?;
    enc.include_checksum(false)?;
    enc.include_contentsize(false)?;
    enc.include_dictid(false)?;
    enc.long_distance_matching(false)?;
    Ok(enc)
}

fn append_item<W: Write>(tar: &mut tar::Builder<W>, item: &Item, mtime: u64) -> Result<(), LayerError> {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(mtime);
    h.set_uid(u64::from(item.uid));
    h.set_gid(u64::from(item.gid));
    h.set_mode(item.mode);
    let origin = Path::new(&item.origin);
    match &item.kind {
        Kind::Dir { .. } => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, format!("{}/", item.path), io::empty())
                .map_err(io_err(origin))
        }
        Kind::Symlink { target } => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, &item.path, target).map_err(io_err(origin))
        }
        Kind::File { src, size } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(*size);
            let file = File::open(src).map_err(io_err(src))?;
            let reader = ExactReader {
                inner: file,
                remaining: *size,
            };
            tar.append_data(&mut h, &item.path, reader).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    LayerError::Changed {
                        src: src.display().to_string(),
                        expected: *size,
                    }
                } else {
                    io_err(src)(e)
                }
            })?;
            // A file that grew is cut at its listed size; say so rather than store a prefix.
            let now = fs::metadata(src).map_err(io_err(src))?.len();
            if now != *size {
                return Err(LayerError::Changed {
                    src: src.display().to_string(),
                    expected: *size,
                });
            }
            Ok(())
        }
    }
}
