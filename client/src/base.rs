//! Base images for the builder: the platform's image of a base (from any registry or an OCI
//! layout), its layers streamed into the build cache and checked, its config for the builder
//! to extend. [`Bases::fetch`] is what pier-builder's `BaseFetcher` asks for.

use std::path::Path;

use pier_oci::layout::{BaseImage, Layer};
use pier_oci::{Digest, Platform, Reference, media};

use crate::copy::{image_platform, platform_list, read_small_blob, target};
use crate::layout::write_blob_file;
use crate::{ClientError, ImageStore, Location, Registries};

/// Docker's uncompressed layer type (OCI's is [`media::OCI_LAYER_TAR`]).
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Fetches bases with the registries a closure gives for each location (so that loopback
/// registries named only in the spec still get plain HTTP).
pub struct Bases<F> {
    default_registry: Option<String>,
    registries: F,
    runtime: tokio::runtime::Runtime,
}

impl<F: Fn(&Location) -> Result<Registries, String> + Sync> Bases<F> {
    /// `default_registry` is put in front of base references without one.
    pub fn new(default_registry: Option<String>, registries: F) -> std::io::Result<Bases<F>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Bases {
            default_registry,
            registries,
            runtime,
        })
    }

    async fn fetch_async(
        &self,
        reference: &str,
        platform: &Platform,
        blobs_dir: &Path,
    ) -> Result<BaseImage, ClientError> {
        let location = Location::parse(reference, self.default_registry.as_deref())?;
        let registries = (self.registries)(&location).map_err(|message| ClientError::Usage {
            target: reference.to_owned(),
            message,
        })?;
        let store = crate::open(&location, &registries);
        fetch(store.as_ref(), &location.reference_or_default(), platform, blobs_dir).await
    }
}

impl<F: Fn(&Location) -> Result<Registries, String> + Sync> Bases<F> {
    /// The image of `platform` in the base `reference` (an index or a single image), its
    /// layers stored under `blobs_dir`; blocks until it is there. The error is a message
    /// naming the base (e.g. the platforms it has instead).
    pub fn fetch(&self, reference: &str, platform: &Platform, blobs_dir: &Path) -> Result<BaseImage, String> {
        self.runtime
            .block_on(self.fetch_async(reference, platform, blobs_dir))
            .map_err(|e| format!("base image: {e}"))
    }
}

/// The image of `platform` under `reference` in `store`, its layers stored in `blobs_dir`.
pub async fn fetch(
    store: &dyn ImageStore,
    reference: &Reference,
    platform: &Platform,
    blobs_dir: &Path,
) -> Result<BaseImage, ClientError> {
    let at = target(store, reference);
    let top = store.get_manifest(reference).await?;
    let (manifest, manifest_at) = if top.is_index() {
        let index = top.index(&at)?;
        let entry = index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(platform)))
            .ok_or_else(|| ClientError::PlatformMissing {
                target: at.clone(),
                wanted: platform.to_string(),
                available: platform_list(&index.manifests),
            })?;
        let r = Reference::Digest(entry.digest.clone());
        (store.get_manifest(&r).await?, target(store, &r))
    } else {
        let found = image_platform(store, &top, &at).await?;
        if !found.matches(platform) {
            return Err(ClientError::PlatformMissing {
                target: at,
                wanted: platform.to_string(),
                available: found.display(),
            });
        }
        (top, at)
    };
    let image = manifest.image(&manifest_at)?;
    let config_bytes = read_small_blob(store, &image.config).await?;
    let config_at = target(store, &Reference::Digest(image.config.digest.clone()));
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| ClientError::Invalid {
        target: config_at.clone(),
        message: format!("not an image config: {e}"),
    })?;
    let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if diff_ids.len() != image.layers.len() {
        return Err(ClientError::Invalid {
            target: config_at,
            message: format!(
                "the config lists {} diff_ids for {} layers",
                diff_ids.len(),
                image.layers.len()
            ),
        });
    }
    std::fs::create_dir_all(blobs_dir).map_err(ClientError::io(blobs_dir.display()))?;
    let mut layers = Vec::with_capacity(image.layers.len());
    for (l, diff_id) in image.layers.iter().zip(diff_ids) {
        let media_type = match l.media_type.as_str() {
            media::DOCKER_LAYER_GZIP | media::OCI_LAYER_GZIP => media::OCI_LAYER_GZIP,
            DOCKER_LAYER_TAR | media::OCI_LAYER_TAR => media::OCI_LAYER_TAR,
            media::OCI_LAYER_ZSTD => media::OCI_LAYER_ZSTD,
            other => {
                return Err(ClientError::Invalid {
                    target: manifest_at,
                    message: format!("layer {} has media type {other}, which pier cannot build on", l.digest),
                });
            }
        };
        let path = blobs_dir.join(l.digest.hex());
        // The cache only ever holds checked blobs (renamed into place after the check).
        let present = std::fs::metadata(&path).is_ok_and(|m| m.len() == l.size);
        if !present {
            let data = store.get_blob(&l.digest, l.size).await?;
            let blob_at = target(store, &Reference::Digest(l.digest.clone()));
            write_blob_file(&path, &l.digest, l.size, data, &blob_at).await?;
        }
        layers.push(Layer {
            path,
            digest: l.digest.clone(),
            diff_id,
            size: l.size,
            media_type: media_type.to_owned(),
            created_by: String::new(),
        });
    }
    Ok(BaseImage {
        manifest: manifest.digest.to_string(),
        config,
        layers,
    })
}
