//! A store that fails answers through the real router with the OCI code its error means:
//! unavailable (a retry may succeed) is `503 UNAVAILABLE` with `Retry-After`, any other
//! failure `500 UNKNOWN`; and an upload that met an unavailable blob store resumes once it
//! is back. The stores are the in-memory ones behind a switch, since a backend that loses
//! its connection cannot be produced for real here.

mod common;

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{ADMIN_PASSWORD, Reg, Resp};
use pier_oci::{Digest, Reference, RepoName, Tag};
use pier_registry::storage::{
    BlobError, BlobStore, ByteStream, Deletion, ManifestRecord, MemoryAccessStore, MemoryAuditLog, MemoryBlobStore,
    MemoryMetaStore, MetaError, MetaStore, Referrer, Stored, UploadId, UploadRecord,
};
use pier_registry::{Auth, AuthConfig, Registry};

const UP: u8 = 0;
const UNAVAILABLE: u8 = 1;
const FAILED: u8 = 2;

/// How a wrapped store answers: as its inner store, or failing every call.
#[derive(Default)]
struct Switch(AtomicU8);

impl Switch {
    fn set(&self, state: u8) {
        self.0.store(state, Ordering::SeqCst);
    }

    fn meta(&self) -> Result<(), MetaError> {
        match self.0.load(Ordering::SeqCst) {
            UP => Ok(()),
            UNAVAILABLE => Err(MetaError::unavailable(io::Error::new(
                io::ErrorKind::TimedOut,
                "database did not answer",
            ))),
            _ => Err(MetaError::failed(io::Error::other("database refused the query"))),
        }
    }

    fn blob(&self) -> Result<(), BlobError> {
        match self.0.load(Ordering::SeqCst) {
            UP => Ok(()),
            UNAVAILABLE => Err(BlobError::unavailable(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "object store connection lost",
            ))),
            _ => Err(BlobError::failed("object store refused the request")),
        }
    }
}

struct FlakyMeta {
    inner: MemoryMetaStore,
    switch: Arc<Switch>,
}

#[async_trait]
impl MetaStore for FlakyMeta {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), MetaError> {
        self.switch.meta()?;
        self.inner.link_blob(repo, digest).await
    }
    async fn blob_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError> {
        self.switch.meta()?;
        self.inner.blob_linked(repo, digest).await
    }
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError> {
        self.switch.meta()?;
        self.inner.unlink_blob(repo, digest).await
    }
    async fn put_manifest(&self, repo: &RepoName, record: &ManifestRecord, tags: &[Tag]) -> Result<Stored, MetaError> {
        self.switch.meta()?;
        self.inner.put_manifest(repo, record, tags).await
    }
    async fn get_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<Option<ManifestRecord>, MetaError> {
        self.switch.meta()?;
        self.inner.get_manifest(repo, reference).await
    }
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetaError> {
        self.switch.meta()?;
        self.inner.delete_tag(repo, tag).await
    }
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError> {
        self.switch.meta()?;
        self.inner.delete_manifest(repo, digest).await
    }
    async fn delete_repository(&self, repo: &RepoName) -> Result<bool, MetaError> {
        self.switch.meta()?;
        self.inner.delete_repository(repo).await
    }
    async fn has_manifests(&self, repo: &RepoName) -> Result<bool, MetaError> {
        self.switch.meta()?;
        self.inner.has_manifests(repo).await
    }
    async fn list_tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Option<Vec<String>>, MetaError> {
        self.switch.meta()?;
        self.inner.list_tags(repo, last, n).await
    }
    async fn list_repos(&self, last: Option<&str>, n: usize) -> Result<Vec<String>, MetaError> {
        self.switch.meta()?;
        self.inner.list_repos(last, n).await
    }
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError> {
        self.switch.meta()?;
        self.inner.referrers(repo, subject, artifact_type).await
    }
    async fn create_upload(&self, id: UploadId, record: &UploadRecord) -> Result<(), MetaError> {
        self.switch.meta()?;
        self.inner.create_upload(id, record).await
    }
    async fn get_upload(&self, id: UploadId) -> Result<Option<UploadRecord>, MetaError> {
        self.switch.meta()?;
        self.inner.get_upload(id).await
    }
    async fn delete_upload(&self, id: UploadId) -> Result<(), MetaError> {
        self.switch.meta()?;
        self.inner.delete_upload(id).await
    }
    async fn list_uploads(&self) -> Result<Vec<(UploadId, UploadRecord)>, MetaError> {
        self.switch.meta()?;
        self.inner.list_uploads().await
    }
    async fn flush(&self) -> Result<(), MetaError> {
        self.switch.meta()?;
        self.inner.flush().await
    }
}

struct FlakyBlobs {
    inner: MemoryBlobStore,
    switch: Arc<Switch>,
}

#[async_trait]
impl BlobStore for FlakyBlobs {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        self.switch.blob()?;
        self.inner.stat(digest).await
    }
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream, BlobError> {
        self.switch.blob()?;
        self.inner.read(digest, range).await
    }
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        self.switch.blob()?;
        self.inner.delete(digest).await
    }
    async fn create_upload(&self) -> Result<UploadId, BlobError> {
        self.switch.blob()?;
        self.inner.create_upload().await
    }
    async fn upload_size(&self, id: UploadId) -> Result<u64, BlobError> {
        self.switch.blob()?;
        self.inner.upload_size(id).await
    }
    async fn append(&self, id: UploadId, at: Option<u64>, body: &mut ByteStream) -> Result<u64, BlobError> {
        self.switch.blob()?;
        self.inner.append(id, at, body).await
    }
    async fn commit(&self, id: UploadId, expected: &Digest) -> Result<u64, BlobError> {
        self.switch.blob()?;
        self.inner.commit(id, expected).await
    }
    async fn abort(&self, id: UploadId) -> Result<(), BlobError> {
        self.switch.blob()?;
        self.inner.abort(id).await
    }
    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError> {
        self.switch.blob()?;
        self.inner.list_uploads().await
    }
}

/// A registry on in-memory stores, with the metadata and blob stores behind switches, and
/// project `t`.
async fn flaky_registry() -> (Reg, Arc<Switch>, Arc<Switch>) {
    let dir = tempfile::tempdir().unwrap();
    let config = AuthConfig {
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..Default::default()
    };
    let auth = Auth::open(
        dir.path(),
        Arc::new(MemoryAccessStore::new()),
        Arc::new(MemoryAuditLog::new()),
        config,
    )
    .await
    .unwrap();
    let (meta_switch, blob_switch) = (Arc::new(Switch::default()), Arc::new(Switch::default()));
    let meta = FlakyMeta {
        inner: MemoryMetaStore::new(),
        switch: meta_switch.clone(),
    };
    let blobs = FlakyBlobs {
        inner: MemoryBlobStore::new(),
        switch: blob_switch.clone(),
    };
    let registry = Registry::with_stores(Arc::new(blobs), Arc::new(meta), Arc::new(auth));
    (Reg::with_registry(registry, dir).await, meta_switch, blob_switch)
}

fn assert_unavailable(resp: &Resp) {
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", resp.body);
    assert_eq!(resp.code(), "UNAVAILABLE");
    assert_eq!(resp.header("content-type"), "application/json");
    assert_eq!(resp.header("retry-after"), "5");
}

fn assert_failed(resp: &Resp) {
    assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", resp.body);
    assert_eq!(resp.code(), "UNKNOWN");
    assert_eq!(resp.header("retry-after"), "", "a retry would not help");
}

#[tokio::test]
async fn an_unavailable_metadata_store_answers_503_and_recovers() {
    let (r, meta, _) = flaky_registry().await;
    r.push_image("app", "v1", "one").await;
    let uri = "/v2/t/app/manifests/v1";

    meta.set(UNAVAILABLE);
    assert_unavailable(&r.get(uri).await);
    assert_unavailable(&r.get("/v2/t/app/tags/list").await);
    meta.set(FAILED);
    assert_failed(&r.get(uri).await);
    meta.set(UP);
    assert_eq!(r.get(uri).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unavailable_blob_store_answers_503_and_uploads_resume() {
    let (r, _, blobs) = flaky_registry().await;
    let d = r.push_blob("app", b"some layer").await;
    let uri = format!("/v2/t/app/blobs/{d}");

    blobs.set(UNAVAILABLE);
    assert_unavailable(&r.get(&uri).await);
    blobs.set(FAILED);
    assert_failed(&r.get(&uri).await);
    blobs.set(UP);
    assert_eq!(r.get(&uri).await.body, &b"some layer"[..]);

    // A chunk refused while the store is away leaves the session usable.
    let open = r
        .req(Method::POST, "/v2/t/app/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(open.status, StatusCode::ACCEPTED, "{:?}", open.body);
    let location = open.header("location").to_owned();
    let chunk = async || {
        r.req(
            Method::PATCH,
            &location,
            &[("content-type", "application/octet-stream"), ("content-range", "0-4")],
            b"chunk".to_vec(),
        )
        .await
    };
    blobs.set(UNAVAILABLE);
    assert_unavailable(&chunk().await);
    blobs.set(UP);
    let resumed = chunk().await;
    assert_eq!(resumed.status, StatusCode::ACCEPTED, "{:?}", resumed.body);
    assert_eq!(resumed.header("range"), "0-4");
}
