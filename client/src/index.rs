//! Merging separately built images into one multi-arch index (`pier index create`), and
//! describing an image or index (`pier inspect`).

use pier_oci::{Reference, media};
use serde::Serialize;

use crate::ClientError;
use crate::copy::{Counters, Progress, copy_children, image_platform, index_manifest, platform_list, target};
use crate::store::{Desc, DescPlatform, ImageStore, Manifest};

/// How `create_index` treats what is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// Start from the entries of the index the target tag names now (if any).
    pub append: bool,
    /// A later source's platform replaces an earlier entry of the same platform instead of
    /// being refused.
    pub replace: bool,
}

/// One entry of a created index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    /// Canonical platform (as written when not one of pier's).
    pub platform: String,
    /// The image manifest's digest.
    pub digest: String,
    /// Where it came from.
    pub from: String,
}

/// What `create_index` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// The target, `registry/repo:tag`.
    pub target: String,
    /// Digest of the new index.
    pub digest: String,
    /// Its entries, in order.
    pub entries: Vec<IndexEntry>,
    /// Blobs sent to the target's repository.
    pub blobs_copied: u64,
    /// Blobs mounted from another repository.
    pub blobs_mounted: u64,
    /// Blobs it had already.
    pub blobs_present: u64,
}

/// One image or index to take entries from.
pub struct Source<'a> {
    /// Where it is.
    pub store: &'a dyn ImageStore,
    /// Its tag or digest.
    pub reference: Reference,
}

/// Builds an index under `tag` in `dst` from the platforms of every source (single images
/// and indexes), copying their manifests and blobs into `dst` when they are elsewhere. Two
/// entries for one platform are refused (before anything is copied) unless
/// [`IndexOptions::replace`]. The index is stored only after every child is.
pub async fn create_index(
    dst: &dyn ImageStore,
    tag: &Reference,
    sources: &[Source<'_>],
    options: IndexOptions,
    progress: Progress<'_>,
) -> Result<IndexReport, ClientError> {
    let dst_target = target(dst, tag);
    // (entry, where it came from, which source: None = already in dst)
    let mut entries: Vec<(Desc, String, Option<usize>)> = Vec::new();
    if options.append {
        match dst.get_manifest(tag).await {
            Ok(existing) => {
                for d in platform_entries(dst, &existing, &dst_target).await? {
                    entries.push((d, dst_target.clone(), None));
                }
            }
            Err(ClientError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for (i, source) in sources.iter().enumerate() {
        let from = target(source.store, &source.reference);
        let manifest = source.store.get_manifest(&source.reference).await?;
        for d in platform_entries(source.store, &manifest, &from).await? {
            let key = d.platform.as_ref().map(DescPlatform::key);
            match entries
                .iter()
                .position(|(e, _, _)| e.platform.as_ref().map(DescPlatform::key) == key)
            {
                Some(at) if options.replace => entries[at] = (d, from.clone(), Some(i)),
                Some(at) => {
                    return Err(ClientError::DuplicatePlatform {
                        platform: key.unwrap_or_default(),
                        first: entries[at].1.clone(),
                        second: from,
                    });
                }
                None => entries.push((d, from.clone(), Some(i))),
            }
        }
    }
    if entries.is_empty() {
        return Err(ClientError::Usage {
            target: dst_target,
            message: "no images to put in the index: give at least one --from".into(),
        });
    }
    let counters = Counters::default();
    for (desc, _, source) in &entries {
        if let Some(i) = source {
            copy_children(sources[*i].store, dst, &[desc], &counters, progress).await?;
        }
    }
    let descs: Vec<Desc> = entries.iter().map(|(d, _, _)| d.clone()).collect();
    let index = index_manifest(&descs, &dst_target)?;
    dst.put_manifest(tag, &index).await?;
    progress(crate::copy::CopyEvent::ManifestPut {
        target: dst_target.clone(),
    });
    let counts = counters.report(&index, Vec::new());
    Ok(IndexReport {
        target: dst_target,
        digest: index.digest.to_string(),
        entries: entries
            .into_iter()
            .map(|(d, from, _)| IndexEntry {
                platform: d.platform.as_ref().map(DescPlatform::key).unwrap_or_default(),
                digest: d.digest.to_string(),
                from,
            })
            .collect(),
        blobs_copied: counts.blobs_copied,
        blobs_mounted: counts.blobs_mounted,
        blobs_present: counts.blobs_present,
    })
}

/// The platform entries an image or index contributes: an index's entries that name a
/// real platform (attestation entries such as `unknown/unknown` are left out), or one entry
/// for a single image with the platform of its config.
async fn platform_entries(store: &dyn ImageStore, manifest: &Manifest, at: &str) -> Result<Vec<Desc>, ClientError> {
    if manifest.is_index() {
        let index = manifest.index(at)?;
        let entries: Vec<Desc> = index
            .manifests
            .into_iter()
            .filter(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown"))
            .collect();
        if entries.is_empty() {
            return Err(ClientError::Invalid {
                target: at.to_owned(),
                message: "the index has no entries with a platform".into(),
            });
        }
        return Ok(entries);
    }
    let platform = image_platform(store, manifest, at).await?;
    Ok(vec![Desc {
        media_type: manifest.media_type.clone(),
        digest: manifest.digest.clone(),
        size: manifest.bytes.len() as u64,
        platform: Some(platform),
    }])
}

/// One platform's image, as `pier inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// Platform (canonical when pier knows it).
    pub platform: String,
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// Config digest.
    pub config: String,
    /// Number of layers.
    pub layers: usize,
    /// Manifest + config + layers, compressed, in bytes.
    pub size: u64,
}

/// What `pier inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// What was inspected.
    pub reference: String,
    /// Digest of what it names.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// True for an index.
    pub index: bool,
    /// The images (one for a single image).
    pub images: Vec<ImageSummary>,
}

/// Describes what `reference` names: every platform with digest and size.
pub async fn inspect(store: &dyn ImageStore, reference: &Reference) -> Result<Inspection, ClientError> {
    let at = target(store, reference);
    let top = store.get_manifest(reference).await?;
    let mut images = Vec::new();
    if top.is_index() {
        let index = top.index(&at)?;
        for d in &index.manifests {
            let child_ref = Reference::Digest(d.digest.clone());
            let child = store.get_manifest(&child_ref).await?;
            let platform = d
                .platform
                .as_ref()
                .map_or_else(|| platform_list(std::slice::from_ref(d)), DescPlatform::key);
            images.push(summary(&child, platform, &target(store, &child_ref))?);
        }
    } else {
        let platform = image_platform(store, &top, &at).await?;
        images.push(summary(&top, platform.key(), &at)?);
    }
    Ok(Inspection {
        reference: at,
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        index: media::is_index(&top.media_type),
        images,
    })
}

fn summary(manifest: &Manifest, platform: String, at: &str) -> Result<ImageSummary, ClientError> {
    if manifest.is_index() {
        return Err(ClientError::Invalid {
            target: at.to_owned(),
            message: "nested indexes are not supported".into(),
        });
    }
    let image = manifest.image(at)?;
    Ok(ImageSummary {
        platform,
        digest: manifest.digest.to_string(),
        media_type: manifest.media_type.clone(),
        config: image.config.digest.to_string(),
        layers: image.layers.len(),
        size: manifest.bytes.len() as u64 + image.config.size + image.layers.iter().map(|l| l.size).sum::<u64>(),
    })
}
