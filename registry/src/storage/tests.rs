//! One conformance suite per storage trait, run against every backend. A new backend
//! (object storage, another metadata engine) passes these before it is wired in.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use pier_oci::{Digest, Reference, RepoName, Tag};

use super::*;

fn body(parts: &[&[u8]]) -> ByteStream {
    let owned: Vec<std::io::Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    stream::iter(owned).boxed()
}

async fn read_all(store: &dyn BlobStore, d: &Digest, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let mut s = store.read(d, range).await.expect("read");
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

/// The `BlobStore` contract.
async fn blob_store_suite(store: Arc<dyn BlobStore>) {
    let data = b"hello, blob store".repeat(1000);
    let digest = Digest::sha256_of(&data);
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(store.read(&digest, None).await, Err(BlobError::NotFound)));

    // Chunked upload: sizes are reported, out-of-order chunks refused.
    assert!(store.list_uploads().await.unwrap().is_empty());
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
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

    // Wrong digest: refused, session gone, nothing stored.
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

    // A body that breaks mid-way keeps what arrived; the session resumes from there.
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

    // Abort, empty blobs, sha512, duplicate commits, delete.
    let id = store.create_upload().await.unwrap();
    store.abort(id).await.unwrap();
    assert!(matches!(store.abort(id).await, Err(BlobError::UploadUnknown)));
    assert!(matches!(
        store.append(id, None, &mut body(&[b"x"])).await,
        Err(BlobError::UploadUnknown)
    ));
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
    let id = store.create_upload().await.unwrap();
    store.append(id, None, &mut body(&[&data])).await.unwrap();
    store.commit(id, &digest).await.unwrap();
    assert_eq!(read_all(&*store, &digest, None).await, data);
    store.delete(&digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(store.delete(&digest).await, Err(BlobError::NotFound)));
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

fn record(content: &str, subject: Option<&Digest>, artifact_type: Option<&str>) -> ManifestRecord {
    ManifestRecord {
        digest: Digest::sha256_of(content.as_bytes()),
        media_type: pier_oci::media::OCI_MANIFEST.into(),
        bytes: Bytes::copy_from_slice(content.as_bytes()),
        blobs: vec![Digest::sha256_of(b"config")],
        children: vec![],
        subject: subject.cloned(),
        artifact_type: artifact_type.map(str::to_owned),
        annotations: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
    }
}

/// The `MetaStore` contract.
async fn meta_store_suite(meta: Arc<dyn MetaStore>) {
    let a = repo("team/app/api");
    let a_sub = repo("team/app/api/sub");
    let d = Digest::sha256_of(b"blob");

    // Blob links are per repository.
    assert!(!meta.blob_linked(&a, &d).await.unwrap());
    meta.link_blob(&a, &d).await.unwrap();
    assert!(meta.blob_linked(&a, &d).await.unwrap());
    assert!(!meta.blob_linked(&a_sub, &d).await.unwrap());
    assert_eq!(meta.unlink_blob(&a, &d).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.unlink_blob(&a, &d).await.unwrap(), Deletion::NotFound);

    // A manifest is stored only when the blobs it lists are linked.
    let config = Digest::sha256_of(b"config");
    let m1 = record("m1", None, None);
    assert_eq!(
        meta.put_manifest(&a, &m1, &[tag("v1")]).await.unwrap(),
        Stored::Missing(config.clone())
    );
    assert_eq!(
        meta.list_tags(&a, None, 10).await.unwrap(),
        Some(vec![]),
        "nothing stored"
    );
    let by_digest = Reference::Digest(m1.digest.clone());
    assert_eq!(meta.get_manifest(&a, &by_digest).await.unwrap(), None);
    for r in [&a, &a_sub] {
        meta.link_blob(r, &config).await.unwrap();
    }

    // Manifests with tags, by tag and by digest; a prefix repository does not leak in.
    assert_eq!(meta.list_tags(&a_sub, None, 10).await.unwrap(), Some(vec![]));
    assert_eq!(
        meta.put_manifest(&a, &m1, &[tag("v1"), tag("latest")]).await.unwrap(),
        Stored::Stored
    );
    meta.put_manifest(&a_sub, &record("other", None, None), &[tag("zz")])
        .await
        .unwrap();
    let by_tag = meta
        .get_manifest(&a, &Reference::Tag(tag("v1")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_tag, m1);
    let by_digest = meta
        .get_manifest(&a, &Reference::Digest(m1.digest.clone()))
        .await
        .unwrap();
    assert_eq!(by_digest.as_ref(), Some(&m1));
    assert_eq!(
        meta.get_manifest(&a_sub, &Reference::Tag(tag("v1"))).await.unwrap(),
        None
    );

    // Tag pagination is lexical, `last` exclusive.
    for t in ["b", "a", "c"] {
        meta.put_manifest(&a, &m1, &[tag(t)]).await.unwrap();
    }
    let all = meta.list_tags(&a, None, 100).await.unwrap().unwrap();
    assert_eq!(all, ["a", "b", "c", "latest", "v1"]);
    assert_eq!(meta.list_tags(&a, None, 2).await.unwrap().unwrap(), ["a", "b"]);
    assert_eq!(
        meta.list_tags(&a, Some("b"), 2).await.unwrap().unwrap(),
        ["c", "latest"]
    );
    assert_eq!(
        meta.list_tags(&a, Some("v1"), 2).await.unwrap().unwrap(),
        Vec::<String>::new()
    );

    // Moving a tag; deleting a tag keeps the manifest.
    let m2 = record("m2", None, None);
    meta.put_manifest(&a, &m2, &[tag("latest")]).await.unwrap();
    let latest = meta
        .get_manifest(&a, &Reference::Tag(tag("latest")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.digest, m2.digest);
    assert!(meta.delete_tag(&a, &tag("a")).await.unwrap());
    assert!(!meta.delete_tag(&a, &tag("a")).await.unwrap());
    assert!(
        meta.get_manifest(&a, &Reference::Digest(m1.digest.clone()))
            .await
            .unwrap()
            .is_some()
    );

    // Deleting a manifest removes the tags that name it, not the others.
    assert_eq!(meta.delete_manifest(&a, &m1.digest).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.delete_manifest(&a, &m1.digest).await.unwrap(), Deletion::NotFound);
    assert_eq!(meta.list_tags(&a, None, 100).await.unwrap().unwrap(), ["latest"]);
    assert_eq!(meta.get_manifest(&a, &Reference::Tag(tag("v1"))).await.unwrap(), None);

    // Referrers, with and without the artifact-type filter; removed with their manifest.
    let sig = record("sig", Some(&m2.digest), Some("application/vnd.example.sig"));
    let sbom = record("sbom", Some(&m2.digest), Some("application/vnd.example.sbom"));
    meta.put_manifest(&a, &sig, &[]).await.unwrap();
    meta.put_manifest(&a, &sbom, &[]).await.unwrap();
    assert_eq!(meta.referrers(&a, &m2.digest, None).await.unwrap().len(), 2);
    let only = meta
        .referrers(&a, &m2.digest, Some("application/vnd.example.sig"))
        .await
        .unwrap();
    assert_eq!(only, vec![Referrer::of(&sig)]);
    assert_eq!(only[0].size, 3);
    assert!(meta.referrers(&a_sub, &m2.digest, None).await.unwrap().is_empty());
    meta.delete_manifest(&a, &sig.digest).await.unwrap();
    assert_eq!(
        meta.referrers(&a, &m2.digest, None).await.unwrap(),
        vec![Referrer::of(&sbom)]
    );

    // Repositories.
    meta.link_blob(&repo("zeta"), &d).await.unwrap();
    assert_eq!(
        meta.list_repos(None, 100).await.unwrap(),
        ["team/app/api", "team/app/api/sub", "zeta"]
    );
    assert_eq!(
        meta.list_repos(Some("team/app/api"), 1).await.unwrap(),
        ["team/app/api/sub"]
    );

    // A repository is forgotten only once it holds no manifest.
    let g = repo("gone/x");
    let m = record("gone", None, None);
    meta.link_blob(&g, &d).await.unwrap();
    meta.link_blob(&g, &config).await.unwrap();
    meta.link_blob(&a_sub, &d).await.unwrap();
    assert!(!meta.has_manifests(&g).await.unwrap());
    meta.put_manifest(&g, &m, &[tag("v1")]).await.unwrap();
    assert!(meta.has_manifests(&g).await.unwrap());
    assert!(!meta.delete_repository(&g).await.unwrap(), "holds a manifest");
    assert!(meta.blob_linked(&g, &d).await.unwrap());
    assert_eq!(meta.delete_manifest(&g, &m.digest).await.unwrap(), Deletion::Deleted);
    assert!(meta.delete_repository(&g).await.unwrap());
    assert!(!meta.blob_linked(&g, &d).await.unwrap());
    assert!(!meta.list_repos(None, 100).await.unwrap().contains(&"gone/x".to_owned()));
    assert!(!meta.delete_repository(&g).await.unwrap(), "already gone");
    assert!(
        meta.blob_linked(&a_sub, &d).await.unwrap(),
        "other repositories keep their links"
    );

    tagged_content_is_not_deleted(&*meta).await;

    // Upload records, listed for expiry.
    let id = UploadId::new();
    assert_eq!(meta.get_upload(id).await.unwrap(), None);
    assert!(meta.list_uploads().await.unwrap().is_empty());
    let rec = UploadRecord {
        repo: "team/app/api".into(),
        started: 42,
    };
    meta.create_upload(id, &rec).await.unwrap();
    assert_eq!(meta.get_upload(id).await.unwrap(), Some(rec.clone()));
    assert_eq!(meta.list_uploads().await.unwrap(), vec![(id, rec)]);
    meta.delete_upload(id).await.unwrap();
    assert_eq!(meta.get_upload(id).await.unwrap(), None);
    assert!(meta.list_uploads().await.unwrap().is_empty());
    meta.flush().await.unwrap();
}

/// An index over two images, with the blobs of both.
fn index(content: &str, children: &[&ManifestRecord]) -> ManifestRecord {
    ManifestRecord {
        media_type: pier_oci::media::OCI_INDEX.into(),
        blobs: vec![],
        children: children.iter().map(|c| c.digest.clone()).collect(),
        ..record(content, None, None)
    }
}

/// Deletes never leave a tag on an image a client cannot pull: a blob or manifest that
/// tagged content reaches is refused (naming what references it) until the tag goes; a
/// manifest a tag names directly is deleted with its tags.
async fn tagged_content_is_not_deleted(meta: &dyn MetaStore) {
    let r = repo("refs/x");
    let config = Digest::sha256_of(b"config");
    let layer = Digest::sha256_of(b"layer");
    meta.link_blob(&r, &config).await.unwrap();
    meta.link_blob(&r, &layer).await.unwrap();
    let amd = ManifestRecord {
        blobs: vec![config.clone(), layer.clone()],
        ..record("amd64", None, None)
    };
    let arm = record("arm64", None, None);
    meta.put_manifest(&r, &amd, &[]).await.unwrap();
    meta.put_manifest(&r, &arm, &[]).await.unwrap();
    let idx = index("index", &[&amd, &arm]);
    let outer = index("outer", &[&idx]);
    // A child that is not there is refused, like a blob.
    let ghost = record("ghost", None, None);
    assert_eq!(
        meta.put_manifest(&r, &index("broken", &[&ghost]), &[tag("broken")])
            .await
            .unwrap(),
        Stored::Missing(ghost.digest.clone())
    );
    meta.put_manifest(&r, &idx, &[tag("1.0")]).await.unwrap();
    meta.put_manifest(&r, &outer, &[tag("all")]).await.unwrap();

    // Untagged content is not protected by the walk, but tagged content is, at any depth.
    let referenced = |by: &ManifestRecord, t: &str| Deletion::Referenced {
        by: by.digest.clone(),
        tag: t.to_owned(),
    };
    assert_eq!(
        meta.delete_manifest(&r, &amd.digest).await.unwrap(),
        referenced(&idx, "1.0")
    );
    assert_eq!(meta.unlink_blob(&r, &layer).await.unwrap(), referenced(&amd, "1.0"));
    assert!(meta.delete_tag(&r, &tag("1.0")).await.unwrap());
    assert_eq!(
        meta.delete_manifest(&r, &amd.digest).await.unwrap(),
        referenced(&idx, "all")
    );
    assert_eq!(
        meta.delete_manifest(&r, &idx.digest).await.unwrap(),
        referenced(&outer, "all")
    );
    assert_eq!(meta.unlink_blob(&r, &layer).await.unwrap(), referenced(&amd, "all"));
    assert!(meta.blob_linked(&r, &layer).await.unwrap(), "a refusal changes nothing");

    // Deleting a manifest a tag names directly is allowed and takes its tags along; then
    // its children and their blobs are free.
    assert_eq!(
        meta.delete_manifest(&r, &outer.digest).await.unwrap(),
        Deletion::Deleted
    );
    assert_eq!(meta.list_tags(&r, None, 10).await.unwrap(), Some(vec![]));
    assert_eq!(meta.unlink_blob(&r, &layer).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.delete_manifest(&r, &amd.digest).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.delete_manifest(&r, &idx.digest).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.delete_manifest(&r, &arm.digest).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.unlink_blob(&r, &config).await.unwrap(), Deletion::Deleted);
}

#[tokio::test]
async fn fs_blob_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    blob_store_suite(Arc::new(FsBlobStore::open(dir.path()).unwrap())).await;
}

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
async fn sled_meta_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    meta_store_suite(Arc::new(SledMetaStore::open(dir.path()).unwrap())).await;
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

fn user(name: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: format!("hash of {name}"),
        admin: false,
        created: 1,
    }
}

fn project(name: &str) -> ProjectRecord {
    ProjectRecord {
        name: name.into(),
        public: false,
        created: 1,
    }
}

fn robot(project: &str, name: &str) -> RobotRecord {
    RobotRecord {
        project: project.into(),
        name: name.into(),
        description: String::new(),
        secret_sha256: "00".into(),
        permissions: vec![crate::auth::Action::Pull],
        disabled: false,
        expires_at: None,
        created: 1,
    }
}

/// The `AccessStore` contract.
async fn access_store_suite(s: Arc<dyn AccessStore>) {
    use crate::auth::Role;
    // Users.
    assert!(s.create_user(&user("bob")).await.unwrap());
    assert!(!s.create_user(&user("bob")).await.unwrap(), "names are unique");
    let mut bob = s.user("bob").await.unwrap().unwrap();
    bob.admin = true;
    assert!(s.update_user(&bob).await.unwrap());
    assert!(s.user("bob").await.unwrap().unwrap().admin);
    assert!(!s.update_user(&user("nobody")).await.unwrap());
    assert!(s.create_user(&user("amy")).await.unwrap());
    let names: Vec<String> = s.users().await.unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["amy", "bob"]);

    // Projects, with the creator as project admin.
    assert!(s.create_project(&project("p"), Some("bob")).await.unwrap());
    assert!(!s.create_project(&project("p"), None).await.unwrap());
    assert_eq!(s.role("p", "bob").await.unwrap(), Some(Role::ProjectAdmin));
    let mut p = s.project("p").await.unwrap().unwrap();
    p.public = true;
    assert!(s.update_project(&p).await.unwrap());
    assert!(s.project("p").await.unwrap().unwrap().public);
    assert!(s.create_project(&project("q"), None).await.unwrap());

    // Members, seen from both sides.
    assert_eq!(s.set_member("p", "amy", Role::Guest).await.unwrap(), SetMember::Added);
    assert_eq!(
        s.set_member("p", "amy", Role::Developer).await.unwrap(),
        SetMember::Changed(Role::Guest)
    );
    assert_eq!(
        s.set_member("p", "ghost", Role::Guest).await.unwrap(),
        SetMember::NoUser
    );
    assert_eq!(
        s.set_member("zz", "amy", Role::Guest).await.unwrap(),
        SetMember::NoProject
    );
    s.set_member("q", "amy", Role::LimitedGuest).await.unwrap();
    assert_eq!(
        s.members("p").await.unwrap(),
        [
            ("amy".to_owned(), Role::Developer),
            ("bob".to_owned(), Role::ProjectAdmin)
        ]
    );
    assert_eq!(
        s.memberships("amy").await.unwrap(),
        [("p".to_owned(), Role::Developer), ("q".to_owned(), Role::LimitedGuest)]
    );
    assert!(s.remove_member("q", "amy").await.unwrap());
    assert!(!s.remove_member("q", "amy").await.unwrap());
    assert_eq!(s.role("q", "amy").await.unwrap(), None);

    // Robots live in existing projects.
    assert!(s.create_robot(&robot("p", "ci")).await.unwrap());
    assert!(!s.create_robot(&robot("p", "ci")).await.unwrap());
    assert!(!s.create_robot(&robot("zz", "ci")).await.unwrap(), "no such project");
    let mut r = s.robot("p", "ci").await.unwrap().unwrap();
    assert_eq!(r.account(), "robot$p+ci");
    r.disabled = true;
    assert!(s.update_robot(&r).await.unwrap());
    assert!(s.robot("p", "ci").await.unwrap().unwrap().disabled);
    assert!(s.create_robot(&robot("q", "ci")).await.unwrap());
    assert_eq!(s.robots("p").await.unwrap().len(), 1);

    // Deleting a user drops their memberships; deleting a project its members and robots.
    assert!(s.delete_user("amy").await.unwrap());
    assert!(!s.delete_user("amy").await.unwrap());
    assert_eq!(s.role("p", "amy").await.unwrap(), None);
    assert!(s.memberships("amy").await.unwrap().is_empty());
    assert!(s.delete_project("p").await.unwrap());
    assert!(!s.delete_project("p").await.unwrap());
    assert!(s.members("p").await.unwrap().is_empty());
    assert!(s.robots("p").await.unwrap().is_empty());
    assert!(s.memberships("bob").await.unwrap().is_empty());
    assert_eq!(s.robots("q").await.unwrap().len(), 1, "other projects keep theirs");
    assert!(s.create_project(&project("p"), None).await.unwrap());
    assert!(
        s.members("p").await.unwrap().is_empty(),
        "a new project of the same name starts empty"
    );

    // First-start setup runs once.
    let admin = UserRecord {
        admin: true,
        ..user("admin")
    };
    assert!(s.bootstrap(&admin, &[project("library")]).await.unwrap());
    assert!(s.user("admin").await.unwrap().unwrap().admin);
    assert!(s.delete_project("library").await.unwrap());
    assert!(!s.bootstrap(&admin, &[project("library")]).await.unwrap());
    assert!(s.project("library").await.unwrap().is_none());
}

fn event(time: u64, actor: &str, action: AuditAction, project: Option<&str>) -> AuditEvent {
    AuditEvent {
        time,
        actor: actor.into(),
        actor_kind: ActorKind::User,
        action,
        project: project.map(str::to_owned),
        repository: None,
        reference: None,
        digest: None,
        target: None,
        client: "127.0.0.1".into(),
        result: Outcome::Success,
        detail: None,
    }
}

/// All pages of a query, following `next`.
async fn all_pages(log: &dyn AuditLog, q: &AuditQuery, scan_limit: usize) -> Vec<(u64, AuditEvent)> {
    let mut out: Vec<(u64, AuditEvent)> = Vec::new();
    let mut q = q.clone();
    for _ in 0..100 {
        let page = log.query(&q, scan_limit).await.unwrap();
        out.extend(page.events);
        match page.next {
            Some(n) => q.before = Some(n),
            None => return out,
        }
    }
    panic!("pages never end");
}

/// The `AuditLog` contract.
async fn audit_log_suite(log: Arc<dyn AuditLog>) {
    const DAY: u64 = 86_400;
    let q = |limit| AuditQuery {
        limit,
        ..Default::default()
    };
    assert_eq!(
        log.query(&q(10), 1000).await.unwrap(),
        AuditPage {
            events: vec![],
            next: None
        }
    );
    // Two events a day for five days.
    let mut events = Vec::new();
    for t in 0..10u64 {
        let action = if t % 2 == 0 {
            AuditAction::Push
        } else {
            AuditAction::Pull
        };
        let actor = if t < 5 { "amy" } else { "bob" };
        let time = 1_000 * DAY + t / 2 * DAY + t;
        events.push(event(time, actor, action, Some(if t % 3 == 0 { "p" } else { "q" })));
    }
    log.append(events[..3].to_vec()).await.unwrap();
    log.append(events[3..].to_vec()).await.unwrap();
    log.flush().await.unwrap();
    let time = |i: usize| events[i].time;

    // Newest first, ids decreasing, pages chained by `next`.
    let all = log.query(&q(100), 1000).await.unwrap();
    assert_eq!(all.next, None);
    let times: Vec<u64> = all.events.iter().map(|(_, e)| e.time).collect();
    assert_eq!(times, (0..10).rev().map(time).collect::<Vec<_>>());
    assert!(all.events.windows(2).all(|w| w[0].0 > w[1].0));
    let first = log.query(&q(4), 1000).await.unwrap();
    assert_eq!(first.events.len(), 4);
    let second = log
        .query(
            &AuditQuery {
                before: first.next,
                ..q(4)
            },
            1000,
        )
        .await
        .unwrap();
    assert_eq!(second.events[0].1.time, time(5));
    assert_eq!(all_pages(&*log, &q(3), 1000).await, all.events);

    // Filters narrow together.
    let f = AuditQuery {
        actor: Some("bob".into()),
        action: Some(AuditAction::Push),
        ..q(100)
    };
    let times: Vec<u64> = log
        .query(&f, 1000)
        .await
        .unwrap()
        .events
        .iter()
        .map(|(_, e)| e.time)
        .collect();
    assert_eq!(times, [time(8), time(6)]);
    let f = AuditQuery {
        project: Some("p".into()),
        since: Some(time(3)),
        until: Some(time(9)),
        ..q(100)
    };
    let times: Vec<u64> = log
        .query(&f, 1000)
        .await
        .unwrap()
        .events
        .iter()
        .map(|(_, e)| e.time)
        .collect();
    assert_eq!(times, [time(6), time(3)]);

    // A scan that stops early says where to go on; the pages together hold every match.
    let f = AuditQuery {
        actor: Some("amy".into()),
        ..q(100)
    };
    let pages = all_pages(&*log, &f, 1).await;
    assert_eq!(
        pages.iter().map(|(_, e)| e.time).collect::<Vec<_>>(),
        (0..5).rev().map(time).collect::<Vec<_>>()
    );

    // Retention drops old events, never newer ones.
    let purged = log.purge_before(time(6)).await.unwrap();
    assert!((1..=6).contains(&purged), "{purged}");
    let left = log.query(&q(100), 1000).await.unwrap();
    assert_eq!(left.events.len(), 10 - purged);
    assert_eq!(left.events[0].1.time, time(9));
    assert!(
        left.events.iter().any(|(_, e)| e.time == time(6)),
        "events at the cut are kept"
    );
}

#[tokio::test]
async fn file_audit_log_conforms_and_survives_a_cut_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    audit_log_suite(Arc::new(log.clone())).await;
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

#[tokio::test]
async fn sled_access_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledMetaStore::open(dir.path()).unwrap().access_store().unwrap();
    access_store_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn cached_access_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledMetaStore::open(dir.path()).unwrap().access_store().unwrap();
    access_store_suite(Arc::new(CachedAccess::new(Arc::new(store)))).await;
}
