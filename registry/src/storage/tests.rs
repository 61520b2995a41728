//! What the public conformance suites (`registry/tests/storage.rs` runs them on every
//! backend) cannot check: persistence across a reopen, and the on-disk formats.

use std::sync::Arc;

use pier_oci::{Digest, Reference};

use super::testing::audit::{event, pages_and_filters};
use super::testing::blob::{body, read_all};
use super::testing::meta::{record, repo, tag};
use super::*;

#[tokio::test]
async fn fs_blob_store_sessions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = store.create_upload().await.unwrap();
        store.append(id, None, &mut body(&[b"before restart "])).await.unwrap();
        id
    };
    // A new process has no running hash: commit must re-read the bytes.
    let store = FsBlobStore::open(dir.path()).unwrap();
    assert_eq!(store.upload_size(id).await.unwrap(), 15);
    store.append(id, Some(15), &mut body(&[b"after"])).await.unwrap();
    let d = Digest::sha256_of(b"before restart after");
    store.commit(id, &d).await.unwrap();
    assert_eq!(read_all(&store, &d, None).await, b"before restart after");
}

#[tokio::test]
async fn sled_meta_store_persists_and_checks_schema() {
    let dir = tempfile::tempdir().unwrap();
    let a = repo("a");
    let m = record("persisted", None, None);
    {
        let meta = SledMetaStore::open(dir.path()).unwrap();
        meta.link_blob(&a, &m.blobs[0]).await.unwrap();
        meta.put_manifest(&a, &m, &[tag("t")]).await.unwrap();
    }
    {
        let meta = SledMetaStore::open(dir.path()).unwrap();
        let got = meta.get_manifest(&a, &Reference::Tag(tag("t"))).await.unwrap();
        assert_eq!(got, Some(m));
    }
    // A store written by another schema version is refused, not misread.
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(super::keys::SCHEMA_KEY, "999").unwrap();
        db.flush().unwrap();
    }
    match SledMetaStore::open(dir.path()) {
        Err(MetaError::Corrupt(msg)) => assert!(msg.contains("999"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a store of another schema version"),
    }
}

#[tokio::test]
async fn file_audit_log_survives_a_cut_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    pages_and_filters(&|| {
        let log = log.clone();
        async move { Arc::new(log) }
    })
    .await;
    let before = log
        .query(
            &AuditQuery {
                limit: 100,
                ..Default::default()
            },
            1000,
        )
        .await
        .unwrap();
    // A crash mid-line: the cut line is dropped on open, ids go on after the last good one.
    drop(log);
    let newest = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&newest).unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\":99,\"actor\":\"half").unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    let after = log
        .query(
            &AuditQuery {
                limit: 100,
                ..Default::default()
            },
            1000,
        )
        .await
        .unwrap();
    assert_eq!(after, before);
    let t = before.events[0].1.time;
    log.append(vec![event(t, "zed", AuditAction::Login, None)])
        .await
        .unwrap();
    let top = log
        .query(
            &AuditQuery {
                limit: 1,
                ..Default::default()
            },
            1000,
        )
        .await
        .unwrap();
    assert_eq!(top.events[0].0, before.events[0].0 + 1);
    assert_eq!(top.events[0].1.actor, "zed");
}

/// Reads of an in-memory blob stream in chunks that share its buffer, so serving a large
/// blob neither copies it nor sends it as one frame.
#[tokio::test]
async fn memory_blob_reads_stream_in_chunks() {
    use futures_util::StreamExt as _;
    let store = MemoryBlobStore::new();
    let data: Vec<u8> = (0..2 * crate::limits::READ_CHUNK + 1).map(|i| i as u8).collect();
    let id = store.create_upload().await.unwrap();
    store.append(id, None, &mut body(&[&data])).await.unwrap();
    let d = Digest::sha256_of(&data);
    store.commit(id, &d).await.unwrap();
    let chunks: Vec<usize> = store
        .read(&d, None)
        .await
        .unwrap()
        .map(|c| c.unwrap().len())
        .collect()
        .await;
    let chunk = crate::limits::READ_CHUNK;
    assert_eq!(chunks, [chunk, chunk, 1]);
    let end = chunk as u64 + 2;
    assert_eq!(read_all(&store, &d, Some(1..end)).await, &data[1..chunk + 2]);
}
