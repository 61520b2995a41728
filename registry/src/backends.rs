//! The one place that turns the configured backends into stores: adding a backend is an
//! arm here and one in its config enum.

use std::sync::Arc;

use crate::OpenError;
use crate::config::{MetadataConfig, RegistryConfig, StorageConfig};
use crate::storage::{AccessStore, AuditLog, BlobStore, FileAuditLog, FsBlobStore, MetaStore, SledMetaStore};

/// The stores a registry runs on.
pub(crate) struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetaStore>,
    pub access: Arc<dyn AccessStore>,
    pub audit: Arc<dyn AuditLog>,
}

/// Open the stores `config` names.
pub(crate) fn open(config: &RegistryConfig) -> Result<Stores, OpenError> {
    let data_dir = &config.data_dir;
    let blobs: Arc<dyn BlobStore> = match config.storage {
        StorageConfig::Fs {} => Arc::new(FsBlobStore::open(data_dir).map_err(|source| OpenError::Blobs {
            path: data_dir.display().to_string(),
            source,
        })?),
    };
    let (meta, access, audit): (Arc<dyn MetaStore>, Arc<dyn AccessStore>, Arc<dyn AuditLog>) = match config.metadata {
        MetadataConfig::Sled {} => {
            let meta_error = |dir: &std::path::Path| {
                let path = dir.display().to_string();
                move |source| OpenError::Meta { path, source }
            };
            let meta_dir = data_dir.join("meta");
            let meta = SledMetaStore::open(&meta_dir).map_err(meta_error(&meta_dir))?;
            let access = meta.access_store().map_err(meta_error(&meta_dir))?;
            let audit_dir = data_dir.join("audit");
            let segments = FileAuditLog::segment_bytes_for(config.auth.audit_max_bytes);
            let audit = FileAuditLog::open_with_segments(&audit_dir, segments).map_err(meta_error(&audit_dir))?;
            (Arc::new(meta), Arc::new(access), Arc::new(audit))
        }
    };
    Ok(Stores {
        blobs,
        meta,
        access,
        audit,
    })
}
