//! Regression tests for the storage findings of the security review (7, 9, 10), one per
//! finding, named after it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{Reg, desc, image_manifest};
use pier_oci::{Digest, media};
use serde_json::json;

/// An image (config + one layer) pushed by digest, untagged: (manifest bytes, digest, layer).
async fn push_untagged_image(r: &Reg, repo: &str, seed: &str) -> (Vec<u8>, Digest, Digest) {
    let config = r.push_blob(repo, format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
    let layer = r.push_blob(repo, format!("layer {seed}").as_bytes()).await;
    let m = image_manifest(&config, &layer, None);
    let d = Digest::sha256_of(&m);
    let put = r.put_manifest(repo, &d.to_string(), media::OCI_MANIFEST, &m).await;
    assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);
    (m, d, layer)
}

async fn delete(r: &Reg, uri: &str) -> common::Resp {
    r.req(Method::DELETE, uri, &[], Body::empty()).await
}

fn tags_of(r: &common::Resp) -> Vec<String> {
    r.json()["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Finding 7: a tag pushed onto a manifest while that manifest is being deleted by digest
/// was left listed but answering 404. The delete read the manifest's tags before its
/// transaction, so a tag added in between survived the manifest.
///
/// The race window is the delete's scan of the repository's tags, so the repository gets
/// many other tags, sorting after the raced ones, to make the rest of the scan take
/// milliseconds; each round then races several tag
/// pushes, started a few milliseconds apart, against one delete, and afterwards every one
/// of those tags is either gone or pullable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_7_concurrent_tag_push_and_manifest_delete_leave_no_dangling_tag() {
    const ROUNDS: usize = 200;
    const RACERS: usize = 4;
    const FILLER_TAGS: usize = 10_000;
    let r = Arc::new(Reg::new().await);
    let filler = r.push_image("race", "filler", "filler").await;
    let filler_digest = Digest::sha256_of(&filler);
    for batch in 0..FILLER_TAGS / 100 {
        let q: Vec<String> = (0..100).map(|i| format!("tag=z{batch:03}-{i:03}")).collect();
        let put = r
            .put_manifest(
                "race",
                &format!("{filler_digest}?{}", q.join("&")),
                media::OCI_MANIFEST,
                &filler,
            )
            .await;
        assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);
    }
    let (m, d, _) = push_untagged_image(&r, "race", "raced").await;
    let m = Arc::new(m);

    let deadline = Instant::now() + Duration::from_secs(240);
    let mut dangling = Vec::new();
    for round in 0..ROUNDS {
        assert!(Instant::now() < deadline, "took too long; {round} rounds done");
        // The manifest exists at the start of every round.
        let put = r.put_manifest("race", &d.to_string(), media::OCI_MANIFEST, &m).await;
        assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);
        let mut tasks = Vec::new();
        for k in 0..RACERS {
            let (r, m) = (r.clone(), m.clone());
            tasks.push(tokio::spawn(async move {
                // Spread the pushes over the delete's window.
                tokio::time::sleep(Duration::from_millis(((round + k) % 4) as u64)).await;
                let put = r
                    .put_manifest("race", &format!("r{round}-{k}"), media::OCI_MANIFEST, &m)
                    .await;
                assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);
            }));
        }
        let (r2, uri) = (r.clone(), format!("/v2/t/race/manifests/{d}"));
        tasks.push(tokio::spawn(async move {
            let del = delete(&r2, &uri).await;
            assert!(
                del.status == StatusCode::ACCEPTED || del.status == StatusCode::NOT_FOUND,
                "{} {:?}",
                del.status,
                del.body
            );
        }));
        for t in tasks {
            t.await.unwrap();
        }
        let listed = tags_of(&r.get(&format!("/v2/t/race/tags/list?n={RACERS}&last=r{round}-")).await);
        for k in 0..RACERS {
            let tag = format!("r{round}-{k}");
            let got = r.get(&format!("/v2/t/race/manifests/{tag}")).await.status;
            if listed.contains(&tag) && got != StatusCode::OK {
                dangling.push(format!("{tag} listed but answers {got}"));
            }
        }
    }
    assert!(dangling.is_empty(), "dangling tags after {ROUNDS} rounds: {dangling:?}");
}

/// Finding 9: deleting a child manifest of an index that a tag names answered 202 and left
/// the tagged index with a missing child. Now refused with CONFLICT naming the index and
/// the tag, until the tag is deleted.
#[tokio::test]
async fn finding_9_child_of_tagged_index_cannot_be_deleted() {
    let r = Reg::new().await;
    let (child, child_digest, _) = push_untagged_image(&r, "multi", "amd64").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [desc(media::OCI_MANIFEST, &child_digest, child.len())],
    }))
    .unwrap();
    let index_digest = Digest::sha256_of(&index);
    let put = r.put_manifest("multi", "1.0", media::OCI_INDEX, &index).await;
    assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);

    let child_uri = format!("/v2/t/multi/manifests/{child_digest}");
    let refused = delete(&r, &child_uri).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert_eq!(refused.code(), "CONFLICT");
    let message = refused.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&index_digest.to_string()) && message.contains("tag 1.0"),
        "{message}"
    );
    assert_eq!(
        refused.json()["errors"][0]["detail"]["referencedBy"],
        index_digest.to_string()
    );
    // Nothing changed: the tagged index is still whole.
    assert_eq!(r.get(&child_uri).await.status, StatusCode::OK);
    assert_eq!(r.get("/v2/t/multi/manifests/1.0").await.status, StatusCode::OK);

    // Delete the tag first, then the child may go (the untagged index is nobody's image).
    assert_eq!(
        delete(&r, "/v2/t/multi/manifests/1.0").await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(delete(&r, &child_uri).await.status, StatusCode::ACCEPTED);
    assert_eq!(r.get(&child_uri).await.status, StatusCode::NOT_FOUND);
}

/// Finding 9: deleting a layer of a tagged image answered 202 and broke the image. Now
/// refused with CONFLICT naming the manifest and the tag, until the tag is deleted.
#[tokio::test]
async fn finding_9_layer_of_tagged_manifest_cannot_be_deleted() {
    let r = Reg::new().await;
    let (_, manifest_digest, layer) = push_untagged_image(&r, "img", "one").await;
    let m = r.get(&format!("/v2/t/img/manifests/{manifest_digest}")).await.body;
    let put = r.put_manifest("img", "1.0", media::OCI_MANIFEST, &m).await;
    assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);

    let layer_uri = format!("/v2/t/img/blobs/{layer}");
    let refused = delete(&r, &layer_uri).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert_eq!(refused.code(), "CONFLICT");
    let message = refused.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&manifest_digest.to_string()) && message.contains("tag 1.0"),
        "{message}"
    );
    assert_eq!(
        r.get(&layer_uri).await.status,
        StatusCode::OK,
        "the image is still whole"
    );

    // The tag goes first; the manifest was untagged, so the layer is free now.
    assert_eq!(delete(&r, "/v2/t/img/manifests/1.0").await.status, StatusCode::ACCEPTED);
    assert_eq!(delete(&r, &layer_uri).await.status, StatusCode::ACCEPTED);
    assert_eq!(r.get(&layer_uri).await.status, StatusCode::NOT_FOUND);
}

/// Open an upload session in `t/abandoned`; its URL.
async fn open_session(r: &Reg) -> String {
    let resp = r
        .req(Method::POST, "/v2/t/abandoned/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{:?}", resp.body);
    resp.header("location").to_owned()
}

fn session_files(r: &Reg) -> usize {
    std::fs::read_dir(r.dir.path().join("uploads")).unwrap().count()
}

/// Finding 10: abandoned upload sessions never expired (1 000 in 2.3 s left 1 009 files).
/// Now a background sweep drops sessions idle for longer than the TTL, bytes and record,
/// and their URLs answer BLOB_UPLOAD_UNKNOWN; a session that keeps receiving chunks stays.
#[tokio::test]
async fn finding_10_expired_upload_sessions_are_swept() {
    let config = pier_registry::RegistryConfig {
        uploads: pier_registry::UploadConfig {
            ttl: Duration::from_secs(1),
            sweep_every: Duration::from_millis(200),
        },
        ..Default::default()
    };
    let r = Reg::open_with(tempfile::tempdir().unwrap(), config).await;
    let mut idle = Vec::new();
    for i in 0..20 {
        let loc = open_session(&r).await;
        if i % 2 == 0 {
            let patch = r.req(Method::PATCH, &loc, &[], format!("partial {i}")).await;
            assert_eq!(patch.status, StatusCode::ACCEPTED, "{:?}", patch.body);
        }
        idle.push(loc);
    }
    let active = open_session(&r).await;
    assert_eq!(session_files(&r), 21);

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Keep one session busy: its last activity is its last chunk, not its start.
        let patch = r.req(Method::PATCH, &active, &[], "more").await;
        assert_eq!(
            patch.status,
            StatusCode::ACCEPTED,
            "the active session was swept: {:?}",
            patch.body
        );
        let mut alive = 0;
        for loc in &idle {
            if r.get(loc).await.status != StatusCode::NOT_FOUND {
                alive += 1;
            }
        }
        if alive == 0 && session_files(&r) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alive} idle sessions still answer and {} session files are left",
            session_files(&r)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let gone = r.get(&idle[0]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "BLOB_UPLOAD_UNKNOWN");
    let again = r.req(Method::PATCH, &idle[1], &[], "late data").await;
    assert_eq!(again.code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(r.get(&active).await.status, StatusCode::NO_CONTENT);
    assert_eq!(session_files(&r), 1, "only the active session's bytes are left");
}

async fn api(r: &Reg, method: Method, uri: &str, body: &'static str) -> common::Resp {
    r.req(method, uri, &[("content-type", "application/json")], body).await
}

/// Finding 10: a project's upload sessions outlived it: after the project was deleted and
/// re-created, an old session still took data. Now deleting the project drops them.
#[tokio::test]
async fn finding_10_project_delete_drops_its_upload_sessions() {
    let r = Reg::new().await;
    let created = api(&r, Method::POST, "/api/v1/projects", r#"{"name":"p"}"#).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let start = r
        .req(Method::POST, "/v2/p/app/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED, "{:?}", start.body);
    let loc = start.header("location").to_owned();
    let patch = r.req(Method::PATCH, &loc, &[], "before the delete").await;
    assert_eq!(patch.status, StatusCode::ACCEPTED, "{:?}", patch.body);

    let deleted = api(&r, Method::DELETE, "/api/v1/projects/p", "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    let again = api(&r, Method::POST, "/api/v1/projects", r#"{"name":"p"}"#).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);

    let late = r.req(Method::PATCH, &loc, &[], "after the re-creation").await;
    assert_eq!(late.status, StatusCode::NOT_FOUND, "{:?}", late.body);
    assert_eq!(late.code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(r.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(session_files(&r), 0, "the session's bytes went with it");
}
