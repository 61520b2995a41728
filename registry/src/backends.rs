//! The one place that turns the configured backends into stores: adding a backend is an
//! arm here and one in its config enum.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::OpenError;
use crate::config::{MetadataConfig, RegistryConfig, StorageConfig};
use crate::storage::{
    self, AccessStore, AuditLog, BlobStore, FileAuditLog, FsBlobStore, MemoryAccessStore, MemoryAuditLog,
    MemoryBlobStore, MemoryMetaStore, MetaError, MetaStore, SledMetaStore,
};

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
        StorageConfig::Memory {} => Arc::new(MemoryBlobStore::new()),
    };
    let (meta, access, audit): (Arc<dyn MetaStore>, Arc<dyn AccessStore>, Arc<dyn AuditLog>) = match config.metadata {
        MetadataConfig::Sled {} => {
            let meta_dir = data_dir.join("meta");
            private_tree(&meta_dir).map_err(|e| meta_error(&meta_dir)(MetaError::failed(e)))?;
            let meta = SledMetaStore::open(&meta_dir).map_err(meta_error(&meta_dir))?;
            let access = meta.access_store().map_err(meta_error(&meta_dir))?;
            let audit_dir = data_dir.join("audit");
            let segments = FileAuditLog::segment_bytes_for(config.auth.audit_max_bytes);
            let audit = FileAuditLog::open_with_segments(&audit_dir, segments).map_err(meta_error(&audit_dir))?;
            (Arc::new(meta), Arc::new(access), Arc::new(audit))
        }
        MetadataConfig::Memory {} => (
            Arc::new(MemoryMetaStore::new()),
            Arc::new(MemoryAccessStore::new()),
            Arc::new(MemoryAuditLog::new()),
        ),
    };
    Ok(Stores {
        blobs,
        meta,
        access,
        audit,
    })
}

fn meta_error(dir: &Path) -> impl FnOnce(MetaError) -> OpenError {
    let path = dir.display().to_string();
    move |source| OpenError::Meta { path, source }
}

/// Make `dir` and everything in it private: sled creates its files with the process's
/// umask, and a database opened before pier set its own may have left them open.
fn private_tree(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    storage::private_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let is_dir = entry.file_type()?.is_dir();
            let want = if is_dir { 0o700 } else { 0o600 };
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(want))?;
            if is_dir {
                todo.push(entry.path());
            }
        }
    }
    Ok(())
}
