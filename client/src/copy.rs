//! Moving images between stores: one image or a whole index, blobs first (skipped when the
//! destination has them, mounted when both are repositories of one registry, else streamed
//! and checked against their digest), child manifests next, the tag last — so a failure at
//! any point leaves no tag pointing at an incomplete image.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use pier_oci::{Digest, Hasher, Platform, Reference, media};
use serde::Serialize;

use crate::ClientError;
use crate::store::{BlobStream, ConfigPlatform, Desc, DescPlatform, ImageStore, Manifest};

/// Blobs moved at the same time.
pub const PARALLEL_BLOBS: usize = 4;

/// Largest image config read into memory to learn an image's platform (configs are a few
/// KiB; anything this big is not a config).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Which images of an index to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The index as it is, every platform.
    All,
    /// These platforms: one gives that image alone, several a new index of them.
    Platforms(Vec<Platform>),
}

/// How one blob reached the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobOutcome {
    /// It was there already.
    Present,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Sent.
    Copied,
}

/// Progress of a copy, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEvent {
    /// A blob is being sent.
    BlobStarted {
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// More bytes of a blob were sent.
    BlobProgress {
        /// Its digest.
        digest: Digest,
        /// Bytes sent so far.
        sent: u64,
    },
    /// A blob is at the destination.
    BlobDone {
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// How it got there.
        outcome: BlobOutcome,
    },
    /// A manifest was stored.
    ManifestPut {
        /// Where (`repo:tag` or `repo@digest`).
        target: String,
    },
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// Digest of what the destination reference now names.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The platforms it covers.
    pub platforms: Vec<String>,
    /// Blobs sent.
    pub blobs_copied: u64,
    /// Bytes sent.
    pub bytes_copied: u64,
    /// Blobs mounted across repositories.
    pub blobs_mounted: u64,
    /// Blobs the destination had.
    pub blobs_present: u64,
}

/// A progress callback.
pub type Progress<'a> = &'a (dyn Fn(CopyEvent) + Sync);

/// Copies what `src_ref` names in `src` to `dst` under `dst_ref`.
pub async fn copy(
    src: &dyn ImageStore,
    src_ref: &Reference,
    dst: &dyn ImageStore,
    dst_ref: &Reference,
    select: &Select,
    progress: Progress<'_>,
) -> Result<CopyReport, ClientError> {
    let top = src.get_manifest(src_ref).await?;
    let src_target = target(src, src_ref);
    let counters = Counters::default();
    let (manifest, platforms) = if top.is_index() {
        let index = top.index(&src_target)?;
        match select {
            Select::All => {
                let children: Vec<&Desc> = index.manifests.iter().collect();
                copy_children(src, dst, &children, &counters, progress).await?;
                let platforms = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(DescPlatform::key))
                    .collect();
                (top, platforms)
            }
            Select::Platforms(wanted) => {
                // `aarch64` and `arm64` are one platform: each once, in the order given.
                let mut unique: Vec<Platform> = Vec::new();
                for p in wanted {
                    if !unique.contains(p) {
                        unique.push(p.clone());
                    }
                }
                let wanted = unique;
                let mut picked = Vec::new();
                for p in &wanted {
                    let entry = index
                        .manifests
                        .iter()
                        .find(|d| d.platform.as_ref().is_some_and(|dp| dp.matches(p)))
                        .ok_or_else(|| ClientError::PlatformMissing {
                            target: src_target.clone(),
                            wanted: p.to_string(),
                            available: platform_list(&index.manifests),
                        })?;
                    picked.push(entry);
                }
                copy_children(src, dst, &picked, &counters, progress).await?;
                let platforms = wanted.iter().map(Platform::to_string).collect();
                if let [one] = picked.as_slice() {
                    // One platform: the image itself, not an index of one.
                    let m = src.get_manifest(&Reference::Digest(one.digest.clone())).await?;
                    (m, platforms)
                } else {
                    let entries: Vec<Desc> = picked.into_iter().cloned().collect();
                    (index_manifest(&entries, &src_target)?, platforms)
                }
            }
        }
    } else {
        let platform = image_platform(src, &top, &src_target).await?;
        if let Select::Platforms(wanted) = select
            && let Some(p) = wanted.iter().find(|p| !platform.matches(p))
        {
            return Err(ClientError::PlatformMissing {
                target: src_target,
                wanted: p.to_string(),
                available: platform.display(),
            });
        }
        copy_image_blobs(src, dst, &top, &src_target, &counters, progress).await?;
        (top, vec![platform.key()])
    };
    dst.put_manifest(dst_ref, &manifest).await?;
    progress(CopyEvent::ManifestPut {
        target: target(dst, dst_ref),
    });
    Ok(counters.report(&manifest, platforms))
}

/// Copies every child manifest (and their blobs) by digest.
pub(crate) async fn copy_children(
    src: &dyn ImageStore,
    dst: &dyn ImageStore,
    children: &[&Desc],
    counters: &Counters,
    progress: Progress<'_>,
) -> Result<(), ClientError> {
    for child in children {
        let reference = Reference::Digest(child.digest.clone());
        let manifest = src.get_manifest(&reference).await?;
        let child_target = target(src, &reference);
        if manifest.is_index() {
            return Err(ClientError::Invalid {
                target: child_target,
                message: "nested indexes are not supported".into(),
            });
        }
        copy_image_blobs(src, dst, &manifest, &child_target, counters, progress).await?;
        dst.put_manifest(&reference, &manifest).await?;
        progress(CopyEvent::ManifestPut {
            target: target(dst, &reference),
        });
    }
    Ok(())
}

/// Copies an image manifest's config and layers.
async fn copy_image_blobs(
    src: &dyn ImageStore,
    dst: &dyn ImageStore,
    manifest: &Manifest,
    manifest_target: &str,
    counters: &Counters,
    progress: Progress<'_>,
) -> Result<(), ClientError> {
    let image = manifest.image(manifest_target)?;
    let mut blobs: Vec<Desc> = vec![image.config];
    for l in image.layers {
        if !blobs.iter().any(|b| b.digest == l.digest) {
            blobs.push(l);
        }
    }
    stream::iter(blobs.into_iter().map(|b| copy_blob(src, dst, b, counters, progress)))
        .buffer_unordered(PARALLEL_BLOBS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// One blob: present, mounted or streamed (and checked on the way).
async fn copy_blob(
    src: &dyn ImageStore,
    dst: &dyn ImageStore,
    blob: Desc,
    counters: &Counters,
    progress: Progress<'_>,
) -> Result<(), ClientError> {
    let done = |outcome| {
        counters.count(outcome, blob.size);
        progress(CopyEvent::BlobDone {
            digest: blob.digest.clone(),
            size: blob.size,
            outcome,
        });
    };
    // A caller who may push but not pull (or not even that) learns it from the upload, as
    // a push denial, rather than from this check.
    let present = match dst.has_blob(&blob.digest).await {
        Ok(p) => p,
        Err(ClientError::Denied { .. }) => false,
        Err(e) => return Err(e),
    };
    if present {
        done(BlobOutcome::Present);
        return Ok(());
    }
    if let (Some((sreg, srepo)), Some((dreg, _))) = (src.registry_repository(), dst.registry_repository())
        && sreg == dreg
        && dst.mount_blob(&blob.digest, srepo).await?
    {
        done(BlobOutcome::Mounted);
        return Ok(());
    }
    progress(CopyEvent::BlobStarted {
        digest: blob.digest.clone(),
        size: blob.size,
    });
    let data = src.get_blob(&blob.digest, blob.size).await?;
    let checked = verified(
        data,
        blob.digest.clone(),
        blob.size,
        target(src, &Reference::Digest(blob.digest.clone())),
    );
    let sent = AtomicU64::new(0);
    let digest = blob.digest.clone();
    let counted = checked.inspect_ok(move |chunk| {
        let now = sent.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        progress(CopyEvent::BlobProgress {
            digest: digest.clone(),
            sent: now,
        });
    });
    // Uploaders want a `'static` stream, but this one borrows the progress callback: a
    // small channel (a few chunks deep, so still streaming) hands the chunks over.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let forward = async move {
        let mut counted = std::pin::pin!(counted);
        while let Some(item) = counted.next().await {
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    };
    let body: BlobStream = Box::pin(tokio_stream_from(rx));
    // The upload decides: a request that fails (the registry went away mid-blob) may keep
    // the receiver alive inside the HTTP client for a while, and waiting for the forwarding
    // then would hold the error back until it lets go.
    let forward_then_wait = async move {
        forward.await;
        std::future::pending::<()>().await
    };
    tokio::select! {
        put = dst.put_blob(&blob.digest, blob.size, body) => put?,
        () = forward_then_wait => unreachable!("pending never completes"),
    }
    done(BlobOutcome::Copied);
    Ok(())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Passes a blob's chunks through, failing at the end when the bytes are not the digest
/// and size the descriptor promised (so a bad source never lands as a good blob).
fn verified(data: BlobStream, digest: Digest, size: u64, target: String) -> BlobStream {
    let state = Some((data, Hasher::new(digest.algorithm()), 0u64));
    Box::pin(stream::unfold(state, move |state| {
        let digest = digest.clone();
        let target = target.clone();
        async move {
            let (mut data, mut hasher, mut n) = state?;
            match data.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    n += chunk.len() as u64;
                    if n > size {
                        let e = mismatch(&target, &digest, size, &format!("more than {size} bytes"));
                        return Some((Err(e), None));
                    }
                    Some((Ok(chunk), Some((data, hasher, n))))
                }
                Some(Err(e)) => Some((Err(e), None)),
                None => {
                    let found = hasher.finish();
                    if found == digest && n == size {
                        None
                    } else {
                        let e = mismatch(&target, &digest, size, &format!("{found} ({n} bytes)"));
                        Some((Err(e), None))
                    }
                }
            }
        }
    }))
}

fn mismatch(target: &str, digest: &Digest, size: u64, found: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{target}: expected {digest} ({size} bytes), got {found}"),
    )
}

/// Counts of a copy, shared by its parallel blob transfers.
#[derive(Default)]
pub(crate) struct Counters {
    inner: Mutex<CopyReport>,
}

impl Counters {
    fn count(&self, outcome: BlobOutcome, size: u64) {
        let mut r = self.inner.lock().expect("copy counters lock");
        match outcome {
            BlobOutcome::Present => r.blobs_present += 1,
            BlobOutcome::Mounted => r.blobs_mounted += 1,
            BlobOutcome::Copied => {
                r.blobs_copied += 1;
                r.bytes_copied += size;
            }
        }
    }

    pub(crate) fn report(&self, manifest: &Manifest, platforms: Vec<String>) -> CopyReport {
        let mut r = self.inner.lock().expect("copy counters lock").clone();
        r.digest = manifest.digest.to_string();
        r.media_type = manifest.media_type.clone();
        r.platforms = platforms;
        r
    }
}

/// `store:tag` / `store@digest`.
pub(crate) fn target(store: &dyn ImageStore, reference: &Reference) -> String {
    match reference {
        Reference::Tag(t) => format!("{}:{t}", store.name()),
        Reference::Digest(d) => format!("{}@{d}", store.name()),
    }
}

/// The platforms of index entries as written: `linux/amd64, linux/arm64/v8` (or `none`).
pub fn platform_list(entries: &[Desc]) -> String {
    let list: Vec<String> = entries
        .iter()
        .map(|d| {
            d.platform
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), DescPlatform::display)
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// A small blob (a config) in memory, checked against its descriptor.
pub(crate) async fn read_small_blob(store: &dyn ImageStore, blob: &Desc) -> Result<Vec<u8>, ClientError> {
    let blob_target = target(store, &Reference::Digest(blob.digest.clone()));
    if blob.size > MAX_CONFIG_BYTES {
        return Err(ClientError::Invalid {
            target: blob_target,
            message: format!("{} bytes is too large to be an image config", blob.size),
        });
    }
    let data = store.get_blob(&blob.digest, blob.size).await?;
    let parts: Vec<Bytes> = verified(data, blob.digest.clone(), blob.size, blob_target.clone())
        .try_collect()
        .await
        .map_err(ClientError::io(&blob_target))?;
    Ok(parts.concat())
}

/// The platform an image manifest's config declares.
pub(crate) async fn image_platform(
    store: &dyn ImageStore,
    manifest: &Manifest,
    manifest_target: &str,
) -> Result<DescPlatform, ClientError> {
    let image = manifest.image(manifest_target)?;
    let bytes = read_small_blob(store, &image.config).await?;
    let config_target = target(store, &Reference::Digest(image.config.digest.clone()));
    let config: ConfigPlatform = serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid {
        target: config_target.clone(),
        message: format!("not an image config: {e}"),
    })?;
    if config.architecture.is_empty() || config.os.is_empty() {
        return Err(ClientError::Invalid {
            target: config_target,
            message: "the config names no architecture/os (not a container image?)".into(),
        });
    }
    Ok(DescPlatform {
        architecture: config.architecture,
        os: config.os,
        variant: config.variant,
    })
}

/// A new OCI index over `entries`, as canonical JSON.
pub(crate) fn index_manifest(entries: &[Desc], target: &str) -> Result<Manifest, ClientError> {
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    });
    let bytes = pier_oci::layout::canonical_json(&body).map_err(|e| ClientError::Invalid {
        target: target.to_owned(),
        message: format!("cannot write the index: {e}"),
    })?;
    Ok(Manifest {
        media_type: media::OCI_INDEX.to_owned(),
        digest: Digest::sha256_of(&bytes),
        bytes: Bytes::from(bytes),
    })
}
