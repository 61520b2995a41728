//! The [`BlobStore`] contracts.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use pier_oci::Digest;

use super::Factory;
use crate::storage::{BlobError, BlobStore, BlobUsage, ByteStream};

/// A request body made of these chunks.
pub fn body(parts: &[&[u8]]) -> ByteStream {
    let owned: Vec<std::io::Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    stream::iter(owned).boxed()
}

/// A stored blob, or a range of it, read whole.
pub async fn read_all<S: BlobStore + ?Sized>(store: &S, d: &Digest, range: Option<Range<u64>>) -> Vec<u8> {
    let mut s = store.read(d, range).await.expect("read");
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

/// The blob most contracts upload.
fn sample() -> (Vec<u8>, Digest) {
    let data = b"hello, blob store".repeat(1000);
    let digest = Digest::sha256_of(&data);
    (data, digest)
}

/// A chunked upload reports its size, refuses out-of-order chunks (leaving their body
/// unread), stays invisible until committed, and is spent by the commit; the blob is then
/// readable whole and by range.
pub async fn chunked_upload<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    let store = new.make().await;
    let (data, digest) = sample();
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(store.read(&digest, None).await, Err(BlobError::NotFound)));

    assert!(store.list_uploads().await.unwrap().is_empty());
    let before = SystemTime::now() - Duration::from_secs(1);
    let id = store.create_upload().await.unwrap();
    assert_eq!(store.upload_size(id).await.unwrap(), 0);
    let listed = store.list_uploads().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, id);
    assert!(
        listed[0].1 >= before,
        "last activity is the session's creation or later"
    );
    assert_eq!(
        store
            .append(id, Some(0), &mut body(&[&data[..100], &data[100..500]]))
            .await
            .unwrap(),
        500
    );
    let mut refused = body(&[b"x"]);
    assert!(matches!(
        store.append(id, Some(10), &mut refused).await,
        Err(BlobError::OutOfOrder {
            current: 500,
            requested: 10
        })
    ));
    // A refused body is left unread, for the caller to drain before answering.
    assert_eq!(refused.next().await.unwrap().unwrap(), &b"x"[..]);
    assert_eq!(store.upload_size(id).await.unwrap(), 500);
    // Not visible before commit.
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert_eq!(
        store.append(id, None, &mut body(&[&data[500..]])).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(store.commit(id, &digest).await.unwrap(), data.len() as u64);
    assert_eq!(store.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(&*store, &digest, None).await, data);
    assert_eq!(read_all(&*store, &digest, Some(5..10)).await, &data[5..10]);
    assert!(matches!(
        store.read(&digest, Some(0..data.len() as u64 + 1)).await,
        Err(BlobError::RangeInvalid { .. })
    ));
    // The session is spent.
    assert!(matches!(store.upload_size(id).await, Err(BlobError::UploadUnknown)));
    assert!(store.list_uploads().await.unwrap().is_empty());
}

/// A commit under the wrong digest is refused, removes the session and stores nothing.
pub async fn digest_mismatch_stores_nothing<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    let store = new.make().await;
    let id = store.create_upload().await.unwrap();
    store.append(id, None, &mut body(&[b"other bytes"])).await.unwrap();
    let claimed = Digest::sha256_of(b"something else");
    assert!(matches!(
        store.commit(id, &claimed).await,
        Err(BlobError::DigestMismatch { .. })
    ));
    assert_eq!(store.stat(&claimed).await.unwrap(), None);
    assert_eq!(store.stat(&Digest::sha256_of(b"other bytes")).await.unwrap(), None);
    assert!(matches!(store.upload_size(id).await, Err(BlobError::UploadUnknown)));
}

/// A body that breaks mid-way keeps what arrived; the session resumes from there.
pub async fn broken_body_resumes<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    let store = new.make().await;
    let id = store.create_upload().await.unwrap();
    let mut broken: ByteStream = stream::iter(vec![
        Ok(Bytes::from_static(b"first part ")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ])
    .boxed();
    match store.append(id, None, &mut broken).await {
        Err(BlobError::BodyIncomplete { offset, .. }) => assert_eq!(offset, 11),
        other => panic!("expected BodyIncomplete, got {other:?}"),
    }
    assert_eq!(store.upload_size(id).await.unwrap(), 11);
    store.append(id, Some(11), &mut body(&[b"second part"])).await.unwrap();
    let whole = Digest::sha256_of(b"first part second part");
    store.commit(id, &whole).await.unwrap();
    assert_eq!(read_all(&*store, &whole, None).await, b"first part second part");
}

/// An aborted session is gone for every later call.
pub async fn abort_ends_session<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    let store = new.make().await;
    let id = store.create_upload().await.unwrap();
    store.abort(id).await.unwrap();
    assert!(matches!(store.abort(id).await, Err(BlobError::UploadUnknown)));
    assert!(matches!(
        store.append(id, None, &mut body(&[b"x"])).await,
        Err(BlobError::UploadUnknown)
    ));
}

/// An empty blob and a SHA-512 one are stored like any other.
pub async fn empty_and_sha512_blobs<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    let store = new.make().await;
    let empty = Digest::sha256_of(b"");
    let id = store.create_upload().await.unwrap();
    store.commit(id, &empty).await.unwrap();
    assert_eq!(store.stat(&empty).await.unwrap(), Some(0));
    let sha512: Digest = {
        let mut h = pier_oci::Hasher::new(pier_oci::Algorithm::Sha512);
        h.update(b"five twelve");
        h.finish()
    };
    let id = store.create_upload().await.unwrap();
    store.append(id, None, &mut body(&[b"five twelve"])).await.unwrap();
    store.commit(id, &sha512).await.unwrap();
    assert_eq!(read_all(&*store, &sha512, None).await, b"five twelve");
}

/// Committing content that is stored already succeeds and changes nothing; a deleted blob
/// is gone, and deleting it again says so.
pub async fn duplicate_commit_and_delete<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    let store = new.make().await;
    let (data, digest) = sample();
    for _ in 0..2 {
        let id = store.create_upload().await.unwrap();
        store.append(id, None, &mut body(&[&data])).await.unwrap();
        store.commit(id, &digest).await.unwrap();
        assert_eq!(read_all(&*store, &digest, None).await, data);
    }
    let usage = store.usage().await.unwrap();
    assert!(
        usage.is_none_or(|u| u
            == BlobUsage {
                blobs: 1,
                bytes: data.len() as u64
            }),
        "a blob committed twice is stored once: {usage:?}"
    );
    store.delete(&digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(store.delete(&digest).await, Err(BlobError::NotFound)));
    let usage = store.usage().await.unwrap();
    assert!(usage.is_none_or(|u| u == BlobUsage { blobs: 0, bytes: 0 }), "{usage:?}");
}

/// Wait between two steps whose last-activity times must differ: longer than the coarsest
/// clock a store may stamp them with (a filesystem's timestamps advance once per tick).
const CLOCK_STEP: Duration = Duration::from_millis(50);

/// A session's last activity moves with every append, so a long push that keeps sending
/// never looks idle.
pub async fn appends_move_last_activity<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    let store = new.make().await;
    let id = store.create_upload().await.unwrap();
    let activity = async || {
        let listed = store.list_uploads().await.unwrap();
        assert_eq!(listed.len(), 1);
        listed[0].1
    };
    let created = activity().await;
    tokio::time::sleep(CLOCK_STEP).await;
    store.append(id, None, &mut body(&[b"more"])).await.unwrap();
    let appended = activity().await;
    assert!(appended > created, "{appended:?} is not after {created:?}");
    assert_eq!(store.upload_size(id).await.unwrap(), 4);
}
