//! Every storage backend against the public conformance suites, used as a backend in
//! another crate would use them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pier_registry::storage::{
    CachedAccess, FileAuditLog, FsBlobStore, MemoryAccessStore, MemoryAuditLog, MemoryBlobStore, MemoryMetaStore,
    SledMetaStore, testing,
};

/// A new directory for each backend a suite makes, all under one temporary root.
struct Dirs {
    root: tempfile::TempDir,
    next: AtomicUsize,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            root: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
        }
    }

    fn fresh(&self) -> PathBuf {
        self.root
            .path()
            .join(self.next.fetch_add(1, Ordering::Relaxed).to_string())
    }
}

#[tokio::test]
async fn fs_blob_store_conforms() {
    let dirs = Dirs::new();
    testing::blob_store(&|| {
        let dir = dirs.fresh();
        async move { Arc::new(FsBlobStore::open(dir).unwrap()) }
    })
    .await;
}

#[tokio::test]
async fn memory_blob_store_conforms() {
    testing::blob_store(&|| async { Arc::new(MemoryBlobStore::new()) }).await;
}

#[tokio::test]
async fn sled_meta_store_conforms() {
    let dirs = Dirs::new();
    testing::meta_store(&|| {
        let dir = dirs.fresh();
        async move { Arc::new(SledMetaStore::open(&dir).unwrap()) }
    })
    .await;
}

#[tokio::test]
async fn memory_meta_store_conforms() {
    testing::meta_store(&|| async { Arc::new(MemoryMetaStore::new()) }).await;
}

#[tokio::test]
async fn sled_access_store_conforms() {
    let dirs = Dirs::new();
    testing::access_store(&|| {
        let dir = dirs.fresh();
        async move { Arc::new(SledMetaStore::open(&dir).unwrap().access_store().unwrap()) }
    })
    .await;
}

#[tokio::test]
async fn cached_access_store_conforms() {
    let dirs = Dirs::new();
    testing::access_store(&|| {
        let dir = dirs.fresh();
        async move {
            let store = SledMetaStore::open(&dir).unwrap().access_store().unwrap();
            Arc::new(CachedAccess::new(Arc::new(store)))
        }
    })
    .await;
}

#[tokio::test]
async fn memory_access_store_conforms() {
    testing::access_store(&|| async { Arc::new(MemoryAccessStore::new()) }).await;
}

#[tokio::test]
async fn file_audit_log_conforms() {
    let dirs = Dirs::new();
    testing::audit_log(&|| {
        let dir = dirs.fresh();
        async move { Arc::new(FileAuditLog::open(&dir).unwrap()) }
    })
    .await;
}

#[tokio::test]
async fn memory_audit_log_conforms() {
    testing::audit_log(&|| async { Arc::new(MemoryAuditLog::new()) }).await;
}
