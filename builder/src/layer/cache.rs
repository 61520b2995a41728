//! The layer cache: built layers by a hash of their inputs.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pier_oci::Digest;
use sha2::{Digest as _, Sha256};

use super::{
    CACHE_FORMAT, Compression, FileCheck, Kind, Layer, LayerEntry, LayerError, LayerOptions, Plan, io_err, no_check,
    plan, read_head, write_layer,
};

/// Layers already built, by a sha256 over their inputs, so an unchanged layer is neither
/// re-read into a tar nor recompressed.
///
/// The key covers: [`CACHE_FORMAT`], the compression with its level and settings
/// ([`Compression::cache_id`]), the mtime, the entries' destinations, and every path the
/// entries expand to with its kind, mode, owner and — for files — size and content sha256
/// (for symlinks: the target). Host source paths are not in it, so the same files in another
/// checkout hit the same key.
///
/// Blobs live in `<dir>/blobs/sha256/<hex>`, the index is one small JSON file per key
/// (`<dir>/layers/<key hex>.json`, holding the [`Layer`]), written to a temporary file and
/// renamed, so platforms building in parallel never lose each other's entries.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// A cache in `dir` (created when missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<LayerCache, LayerError> {
        let dir = dir.into();
        for sub in [dir.join("blobs").join("sha256"), dir.join("layers")] {
            fs::create_dir_all(&sub).map_err(io_err(&sub))?;
        }
        Ok(LayerCache { dir })
    }

    /// Where cached blobs are written.
    pub fn blobs_dir(&self) -> PathBuf {
        self.dir.join("blobs").join("sha256")
    }

    /// The cache key of a layer's inputs. Reads every file once (hashing, not compressing).
    pub fn key(entries: &[LayerEntry], mtime: u64, compression: Compression) -> Result<Digest, LayerError> {
        let plan = plan(entries)?;
        cache_key(&plan, mtime, compression, &no_check)
    }

    /// The cached layer for these inputs, or a newly built one (then cached). The check runs
    /// on every regular file either way; `opts.out_dir` is ignored (cached blobs live in
    /// [`LayerCache::blobs_dir`]). The `bool` says whether it was a hit.
    pub fn get_or_build(
        &self,
        entries: &[LayerEntry],
        mtime: u64,
        compression: Compression,
        check: &FileCheck<'_>,
    ) -> Result<(Layer, bool), LayerError> {
        let plan = plan(entries)?;
        let key = cache_key(&plan, mtime, compression, check)?;
        let index = self.dir.join("layers").join(format!("{}.json", key.hex()));
        if let Some(layer) = self.lookup(&index)? {
            return Ok((layer, true));
        }
        let opts = LayerOptions {
            mtime,
            compression,
            out_dir: self.blobs_dir(),
        };
        let layer = write_layer(&plan, &opts)?;
        let cache_err = |message: String| LayerError::Cache {
            path: index.display().to_string(),
            message,
        };
        let json = serde_json::to_vec_pretty(&layer).map_err(|e| cache_err(e.to_string()))?;
        let layers_dir = self.dir.join("layers");
        let mut tmp = tempfile::Builder::new()
            .prefix(".index-")
            .tempfile_in(&layers_dir)
            .map_err(io_err(&layers_dir))?;
        tmp.write_all(&json).map_err(io_err(&index))?;
        tmp.persist(&index).map_err(|e| cache_err(e.error.to_string()))?;
        Ok((layer, false))
    }

    /// A cached layer whose blob is still there with its size; anything else is a miss.
    fn lookup(&self, index: &Path) -> Result<Option<Layer>, LayerError> {
        let bytes = match fs::read(index) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(index)(e)),
        };
        // A damaged index entry is a miss (it is rewritten), not an error.
        let Ok(mut layer) = serde_json::from_slice::<Layer>(&bytes) else {
            return Ok(None);
        };
        // The blob is where this cache keeps it, whatever path was recorded.
        layer.path = self.blobs_dir().join(layer.digest.hex());
        match fs::metadata(&layer.path) {
            Ok(m) if m.is_file() && m.len() == layer.size => Ok(Some(layer)),
            _ => Ok(None),
        }
    }
}

/// sha256 over everything that decides a layer's bytes (see [`LayerCache`]); runs `check`
/// on each regular file's first bytes while hashing it.
fn cache_key(plan: &Plan, mtime: u64, compression: Compression, check: &FileCheck<'_>) -> Result<Digest, LayerError> {
    fn field(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut h = Sha256::new();
    field(&mut h, CACHE_FORMAT);
    field(&mut h, &compression.cache_id());
    field(&mut h, &mtime.to_string());
    field(&mut h, &plan.created_by);
    for item in &plan.items {
        field(&mut h, &item.path);
        field(&mut h, &format!("{:o} {} {}", item.mode, item.uid, item.gid));
        match &item.kind {
            Kind::Dir { .. } => field(&mut h, "dir"),
            Kind::Symlink { target } => field(&mut h, &format!("symlink {}", target.display())),
            Kind::File { src, size } => {
                let mut file = File::open(src).map_err(io_err(src))?;
                let head = read_head(&mut file, src)?;
                check(Path::new(&format!("/{}", item.path)), &head).map_err(LayerError::Refused)?;
                let mut content = Sha256::new();
                content.update(&head);
                let rest = io::copy(&mut file, &mut content).map_err(io_err(src))?;
                if head.len() as u64 + rest != *size {
                    return Err(LayerError::Changed {
                        src: src.display().to_string(),
                        expected: *size,
                    });
                }
                field(&mut h, &format!("file {size} {}", hex::encode(content.finalize())));
            }
        }
    }
    let hex = hex::encode(h.finalize());
    Ok(format!("sha256:{hex}").parse().expect("sha256 hex is a digest"))
}
