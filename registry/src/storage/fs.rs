//! The filesystem blob store, pier's embedded default.
//!
//! Layout: `ROOT/blobs/<alg>/<first two hex>/<hex>` for blobs, `ROOT/uploads/<uuid>` for
//! sessions. Both live on one filesystem so that committing an upload is a rename: a blob
//! file exists under its digest name only once it is complete, verified and fsynced.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use pier_oci::{Algorithm, Digest, Hasher};
use tokio::task::JoinHandle;

use super::blob::{BlobError, BlobStore, BlobUsage, ByteStream, UploadId};
use crate::limits::{READ_CHUNK, WRITE_BATCH, WRITEBACK_EVERY};

/// Per-session state kept in memory between requests: the running hash and the offset it
/// covers. Lost on restart, in which case `commit` re-reads the file to hash it.
#[derive(Default)]
struct Session {
    hasher: Option<(Hasher, u64)>,
}

/// Blobs as files under a root directory.
pub struct FsBlobStore {
    root: PathBuf,
    sessions: Mutex<HashMap<UploadId, Arc<tokio::sync::Mutex<Session>>>>,
}

impl FsBlobStore {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsBlobStore> {
        let root = root.into();
        super::private_dir(&root.join("blobs"))?;
        super::private_dir(&root.join("uploads"))?;
        Ok(FsBlobStore {
            root,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    fn upload_path(&self, id: UploadId) -> PathBuf {
        self.root.join("uploads").join(id.to_string())
    }

    fn session(&self, id: UploadId) -> Arc<tokio::sync::Mutex<Session>> {
        let mut map = self.sessions.lock().expect("session map poisoned");
        map.entry(id).or_default().clone()
    }

    fn forget(&self, id: UploadId) {
        self.sessions.lock().expect("session map poisoned").remove(&id);
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(io::Error::other(e)))?
}

fn not_found_as(e: io::Error, what: BlobError) -> BlobError {
    if e.kind() == io::ErrorKind::NotFound {
        what
    } else {
        BlobError::from_io(e)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dir` and any missing parents, fsyncing each parent whose entries changed so the
/// new directories survive a crash.
fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs_durably(parent)?;
    }
    let made = {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new().mode(0o700).create(dir)
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn hash_file(file: &mut File, algorithm: Algorithm) -> io::Result<Digest> {
    file.seek(SeekFrom::Start(0))?;
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// Writes batches to the session file and feeds the running hash, each on its own
/// blocking thread, while the next batch is being received: hashing (the slowest step),
/// writing and receiving all overlap. Every `WRITEBACK_EVERY` bytes it also asks the kernel
/// to start writing back (a background `fdatasync`), so the fsync at commit finds little
/// left to do.
struct WritePipeline {
    file: Option<File>,
    hasher: Option<Option<Hasher>>,
    writing: Option<JoinHandle<io::Result<File>>>,
    hashing: Option<JoinHandle<Option<Hasher>>>,
    writeback: Option<JoinHandle<io::Result<()>>>,
    since_writeback: u64,
    written: u64,
}

impl WritePipeline {
    fn new(file: File, hasher: Option<Hasher>, written: u64) -> WritePipeline {
        WritePipeline {
            file: Some(file),
            hasher: Some(hasher),
            writing: None,
            hashing: None,
            writeback: None,
            since_writeback: 0,
            written,
        }
    }

    async fn settle(&mut self) -> io::Result<()> {
        if let Some(job) = self.hashing.take() {
            self.hasher = Some(job.await.map_err(io::Error::other)?);
        }
        if let Some(job) = self.writing.take() {
            self.file = Some(job.await.map_err(io::Error::other)??);
        }
        Ok(())
    }

    /// Hand over a batch of received chunks (as they came off the socket: no copy).
    async fn submit(&mut self, batch: Vec<Bytes>) -> io::Result<()> {
        self.settle().await?;
        let mut file = self.file.take().expect("pipeline holds the file");
        let mut hasher = self.hasher.take().expect("pipeline holds the hasher");
        let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
        self.written += len;
        self.since_writeback += len;
        let batch = Arc::new(batch);
        if self.since_writeback >= WRITEBACK_EVERY && self.writeback.as_ref().is_none_or(|j| j.is_finished()) {
            if let Some(done) = self.writeback.take() {
                done.await.map_err(io::Error::other)??;
            }
            let clone = file.try_clone()?;
            self.writeback = Some(tokio::task::spawn_blocking(move || clone.sync_data()));
            self.since_writeback = 0;
        }
        if hasher.is_some() {
            let data = batch.clone();
            self.hashing = Some(tokio::task::spawn_blocking(move || {
                if let Some(h) = hasher.as_mut() {
                    data.iter().for_each(|chunk| h.update(chunk));
                }
                hasher
            }));
        } else {
            self.hasher = Some(None);
        }
        self.writing = Some(tokio::task::spawn_blocking(move || {
            write_chunks(&mut file, &batch).map(|()| file)
        }));
        Ok(())
    }

    async fn finish(mut self) -> io::Result<(Option<Hasher>, u64)> {
        self.settle().await?;
        if let Some(done) = self.writeback.take() {
            done.await.map_err(io::Error::other)??;
        }
        let hasher = self.hasher.take().expect("pipeline holds the hasher");
        Ok((hasher, self.written))
    }
}

/// Write every chunk, in order, with as few syscalls as the kernel allows.
fn write_chunks(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    // Drop leading empty slices so an all-empty batch ends the loop.
    io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::from_io(e)),
        }
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream, BlobError> {
        let path = self.blob_path(digest);
        let (file, range) = blocking(move || {
            let mut file = File::open(&path).map_err(|e| not_found_as(e, BlobError::NotFound))?;
            let size = file.metadata()?.len();
            let range = range.unwrap_or(0..size);
            if range.start > range.end || range.end > size {
                return Err(BlobError::RangeInvalid { size });
            }
            file.seek(SeekFrom::Start(range.start))?;
            Ok((file, range))
        })
        .await?;
        Ok(super::fs_read::stream(file, range.end - range.start))
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        tokio::fs::remove_file(self.blob_path(digest))
            .await
            .map_err(|e| not_found_as(e, BlobError::NotFound))
    }

    async fn create_upload(&self) -> Result<UploadId, BlobError> {
        let id = UploadId::new();
        let path = self.upload_path(id);
        blocking(move || {
            // Private: once committed, this file is the blob, and blobs of private projects
            // are for no other local user.
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(BlobError::from_io)?;
            // The session must outlive a crash: make its directory entry durable.
            sync_dir(path.parent().expect("uploads dir")).map_err(BlobError::from_io)?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    async fn upload_size(&self, id: UploadId) -> Result<u64, BlobError> {
        tokio::fs::metadata(self.upload_path(id))
            .await
            .map(|m| m.len())
            .map_err(|e| not_found_as(e, BlobError::UploadUnknown))
    }

    async fn append(&self, id: UploadId, at: Option<u64>, body: &mut ByteStream) -> Result<u64, BlobError> {
        let session = self.session(id);
        let mut session = session.lock().await;
        let path = self.upload_path(id);
        let (file, len) = blocking(move || {
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| not_found_as(e, BlobError::UploadUnknown))?;
            let len = file.metadata()?.len();
            Ok((file, len))
        })
        .await?;
        if let Some(at) = at
            && at != len
        {
            return Err(BlobError::OutOfOrder {
                current: len,
                requested: at,
            });
        }
        let hasher = match session.hasher.take() {
            Some((h, covered)) if covered == len => Some(h),
            _ if len == 0 => Some(Hasher::new(Algorithm::Sha256)),
            // After a restart the running hash is gone; commit re-reads the file.
            _ => None,
        };
        let mut pipeline = WritePipeline::new(file, hasher, len);
        let mut batch = Vec::new();
        let mut batch_len = 0;
        let mut body_error = None;
        let mut write_result = Ok(());
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) => {
                    batch_len += chunk.len();
                    batch.push(chunk);
                    if batch_len >= WRITE_BATCH {
                        batch_len = 0;
                        write_result = pipeline.submit(std::mem::take(&mut batch)).await;
                        if write_result.is_err() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        if write_result.is_ok() && !batch.is_empty() {
            write_result = pipeline.submit(batch).await;
        }
        let finished = match write_result {
            Ok(()) => pipeline.finish().await,
            Err(e) => Err(e),
        };
        match finished {
            Ok((hasher, written)) => {
                session.hasher = hasher.map(|h| (h, written));
                match body_error {
                    Some(source) => Err(BlobError::BodyIncomplete {
                        offset: written,
                        source,
                    }),
                    None => Ok(written),
                }
            }
            Err(e) => {
                // A failed write leaves the file in an unknown state: drop the session
                // rather than let a client resume onto torn bytes.
                drop(session);
                let _ = tokio::fs::remove_file(self.upload_path(id)).await;
                self.forget(id);
                Err(BlobError::from_io(e))
            }
        }
    }

    async fn commit(&self, id: UploadId, expected: &Digest) -> Result<u64, BlobError> {
        let session = self.session(id);
        let mut session = session.lock().await;
        let hasher = session.hasher.take();
        let upload = self.upload_path(id);
        let dest = self.blob_path(expected);
        let expected = expected.clone();
        let result = blocking(move || {
            let mut file = File::open(&upload).map_err(|e| not_found_as(e, BlobError::UploadUnknown))?;
            let len = file.metadata()?.len();
            let computed = match hasher {
                Some((h, covered)) if covered == len && h.algorithm() == expected.algorithm() => h.finish(),
                _ => hash_file(&mut file, expected.algorithm())?,
            };
            if computed != expected {
                let _ = fs::remove_file(&upload);
                return Err(BlobError::DigestMismatch {
                    claimed: expected,
                    computed,
                });
            }
            let outcome = (|| {
                if dest.exists() {
                    // Already stored (content addressed): these bytes are not needed.
                    fs::remove_file(&upload)?;
                } else {
                    // Durable bytes before the name: a crash never leaves a short file
                    // under a digest name.
                    file.sync_all()?;
                    let dir = dest.parent().expect("blob dir");
                    create_dirs_durably(dir)?;
                    fs::rename(&upload, &dest)?;
                    sync_dir(dir)?;
                }
                Ok(len)
            })();
            outcome.map_err(|e: io::Error| {
                let _ = fs::remove_file(&upload);
                BlobError::from_io(e)
            })
        })
        .await;
        drop(session);
        self.forget(id);
        result
    }

    async fn abort(&self, id: UploadId) -> Result<(), BlobError> {
        let session = self.session(id);
        let guard = session.lock().await;
        let r = tokio::fs::remove_file(self.upload_path(id))
            .await
            .map_err(|e| not_found_as(e, BlobError::UploadUnknown));
        drop(guard);
        self.forget(id);
        r
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError> {
        let dir = self.root.join("uploads");
        blocking(move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&dir).map_err(BlobError::from_io)? {
                let entry = entry.map_err(BlobError::from_io)?;
                // Only session files; anything else here is not ours to expire.
                let name = entry.file_name();
                let Some(id) = name
                    .to_str()
                    .and_then(|n| n.parse::<UploadId>().ok().filter(|id| id.to_string() == n))
                else {
                    continue;
                };
                match entry.metadata().and_then(|m| m.modified()) {
                    Ok(modified) => out.push((id, modified)),
                    // Committed or aborted since the listing.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(BlobError::from_io(e)),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn usage(&self) -> Result<Option<BlobUsage>, BlobError> {
        let dir = self.root.join("blobs");
        blocking(move || usage_under(&dir).map(Some).map_err(BlobError::from_io)).await
    }
}

/// Count the blob files under `blobs/` (`<alg>/<two hex>/<hex>`) and their sizes.
fn usage_under(blobs: &Path) -> io::Result<BlobUsage> {
    let mut usage = BlobUsage { blobs: 0, bytes: 0 };
    // Entries deleted while the walk runs are simply not counted.
    let entries = |dir: &Path| match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        r => r?.collect::<io::Result<Vec<_>>>(),
    };
    for alg in entries(blobs)? {
        for fan in entries(&alg.path())? {
            for blob in entries(&fan.path())? {
                match blob.metadata() {
                    Ok(m) if m.is_file() => {
                        usage.blobs += 1;
                        usage.bytes += m.len();
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(usage)
}
