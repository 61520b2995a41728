//! The [`MetaStore`] contracts.

use std::collections::BTreeMap;

use bytes::Bytes;
use pier_oci::{Digest, Reference, RepoName, Tag};

use super::Factory;
use crate::storage::{Deletion, ManifestRecord, MetaStore, Referrer, Stored, UploadId, UploadRecord};

/// A repository name.
pub fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

/// A tag.
pub fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

/// An image manifest with bytes `content`, listing the blob `config`.
pub fn record(content: &str, subject: Option<&Digest>, artifact_type: Option<&str>) -> ManifestRecord {
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

/// An index over `children`.
fn index(content: &str, children: &[&ManifestRecord]) -> ManifestRecord {
    ManifestRecord {
        media_type: pier_oci::media::OCI_INDEX.into(),
        blobs: vec![],
        children: children.iter().map(|c| c.digest.clone()).collect(),
        ..record(content, None, None)
    }
}

/// Blob links are per repository: a repository whose name extends another's sees none of
/// its links.
pub async fn blob_links_are_per_repository<S: MetaStore + ?Sized>(new: &impl Factory<S>) {
    let meta = new.make().await;
    let a = repo("team/app/api");
    let a_sub = repo("team/app/api/sub");
    let d = Digest::sha256_of(b"blob");
    assert!(!meta.blob_linked(&a, &d).await.unwrap());
    meta.link_blob(&a, &d).await.unwrap();
    assert!(meta.blob_linked(&a, &d).await.unwrap());
    assert!(!meta.blob_linked(&a_sub, &d).await.unwrap());
    assert_eq!(meta.unlink_blob(&a, &d).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.unlink_blob(&a, &d).await.unwrap(), Deletion::NotFound);
}

/// A manifest is stored only when the blobs it lists are linked; it is found by tag and by
/// digest; tags page in lexical order, move, and go with their manifest.
pub async fn manifests_need_linked_blobs<S: MetaStore + ?Sized>(new: &impl Factory<S>) {
    let meta = new.make().await;
    let a = repo("team/app/api");
    let a_sub = repo("team/app/api/sub");
    // A known repository, holding no link that the manifests need.
    meta.link_blob(&a, &Digest::sha256_of(b"blob")).await.unwrap();

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

    // Counted per repository: m1 and m2 here, "other" in the prefix repository.
    let count = meta.manifest_count().await.unwrap();
    assert!(count.is_none_or(|n| n == 3), "{count:?}");

    // Deleting a manifest removes the tags that name it, not the others.
    assert_eq!(meta.delete_manifest(&a, &m1.digest).await.unwrap(), Deletion::Deleted);
    assert_eq!(meta.delete_manifest(&a, &m1.digest).await.unwrap(), Deletion::NotFound);
    assert_eq!(meta.list_tags(&a, None, 100).await.unwrap().unwrap(), ["latest"]);
    assert_eq!(meta.get_manifest(&a, &Reference::Tag(tag("v1"))).await.unwrap(), None);
    let count = meta.manifest_count().await.unwrap();
    assert!(count.is_none_or(|n| n == 2), "{count:?}");
}

/// Referrers of a subject, with and without the artifact-type filter, per repository;
/// removed with their manifest.
pub async fn referrers_follow_their_manifests<S: MetaStore + ?Sized>(new: &impl Factory<S>) {
    let meta = new.make().await;
    let a = repo("team/app/api");
    let a_sub = repo("team/app/api/sub");
    let m2 = record("m2", None, None);
    meta.link_blob(&a, &Digest::sha256_of(b"config")).await.unwrap();
    meta.put_manifest(&a, &m2, &[tag("latest")]).await.unwrap();

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
}

/// The catalog lists repositories in lexical order; a repository is forgotten (with its
/// links) only once it holds no manifest.
pub async fn repositories_listed_and_forgotten<S: MetaStore + ?Sized>(new: &impl Factory<S>) {
    let meta = new.make().await;
    let a = repo("team/app/api");
    let a_sub = repo("team/app/api/sub");
    let d = Digest::sha256_of(b"blob");
    let config = Digest::sha256_of(b"config");
    for r in [&a, &a_sub] {
        meta.link_blob(r, &config).await.unwrap();
    }

    meta.link_blob(&repo("zeta"), &d).await.unwrap();
    assert_eq!(
        meta.list_repos(None, 100).await.unwrap(),
        ["team/app/api", "team/app/api/sub", "zeta"]
    );
    assert_eq!(
        meta.list_repos(Some("team/app/api"), 1).await.unwrap(),
        ["team/app/api/sub"]
    );

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
}

/// Deletes never leave a tag on an image a client cannot pull: a blob or manifest that
/// tagged content reaches is refused (naming what references it) until the tag goes; a
/// manifest a tag names directly is deleted with its tags. Storing an index whose child is
/// missing is refused like a missing blob.
pub async fn tagged_content_is_not_deleted<S: MetaStore + ?Sized>(new: &impl Factory<S>) {
    let meta = new.make().await;
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

/// Upload records are stored, listed for expiry and forgotten.
pub async fn upload_records<S: MetaStore + ?Sized>(new: &impl Factory<S>) {
    let meta = new.make().await;
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
