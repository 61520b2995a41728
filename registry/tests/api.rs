//! In-process tests of the HTTP API: every endpoint and every error code the registry
//! answers on its own (access control has its own file, `auth.rs`; a full disk is tested
//! for real in the end-to-end suite).

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{Reg, Resp, desc, image_manifest};
use pier_oci::{Digest, media};
use serde_json::json;

fn blob_file_count(dir: &std::path::Path) -> usize {
    let root = dir.join("blobs");
    let mut n = 0;
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test]
async fn base_endpoint_and_health() {
    let r = Reg::new().await;
    let resp = r.get("/v2/").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("docker-distribution-api-version"), "registry/2.0");
    assert!(!resp.header("x-request-id").is_empty());
    assert_eq!(r.get("/v2").await.status, StatusCode::OK);
    assert_eq!(r.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn monolithic_blob_get_head_range_delete() {
    let r = Reg::new().await;
    let data = b"0123456789abcdef";
    let d = r.push_blob("team/app/api", data).await;

    let head = r
        .req(
            Method::HEAD,
            &format!("/v2/t/team/app/api/blobs/{d}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "16");
    assert_eq!(head.header("docker-content-digest"), d.to_string());
    assert!(head.body.is_empty());

    let get = r.get(&format!("/v2/t/team/app/api/blobs/{d}")).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(&get.body[..], data);

    let uri = format!("/v2/t/team/app/api/blobs/{d}");
    let part = r.req(Method::GET, &uri, &[("range", "bytes=4-7")], Body::empty()).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.body[..], b"4567");
    assert_eq!(part.header("content-range"), "bytes 4-7/16");
    assert_eq!(part.header("content-length"), "4");
    let tail = r.req(Method::GET, &uri, &[("range", "bytes=-3")], Body::empty()).await;
    assert_eq!(&tail.body[..], b"def");

    let bad = r
        .req(Method::GET, &uri, &[("range", "bytes=100-200")], Body::empty())
        .await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(bad.code(), "RANGE_INVALID");
    assert_eq!(bad.header("content-range"), "bytes */16");

    // Visible only in the repository it was pushed to.
    assert_eq!(r.get(&format!("/v2/t/other/blobs/{d}")).await.code(), "BLOB_UNKNOWN");

    let del = r.req(Method::DELETE, &uri, &[], Body::empty()).await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = r.get(&uri).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "BLOB_UNKNOWN");
    assert_eq!(
        r.req(Method::DELETE, &uri, &[], Body::empty()).await.code(),
        "BLOB_UNKNOWN"
    );
}

#[tokio::test]
async fn wrong_digest_stores_nothing() {
    let r = Reg::new().await;
    let claimed = Digest::sha256_of(b"what I claim");
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/t/a/blobs/uploads/?digest={claimed}"),
            &[],
            b"what I send".to_vec(),
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.code(), "DIGEST_INVALID");
    assert_eq!(
        r.get(&format!("/v2/t/a/blobs/{claimed}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(blob_file_count(r.dir.path()), 0);
    assert_eq!(std::fs::read_dir(r.dir.path().join("uploads")).unwrap().count(), 0);

    // Malformed and unsupported digests.
    for d in ["sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "nonsense"] {
        let resp = r
            .req(
                Method::POST,
                &format!("/v2/t/a/blobs/uploads/?digest={d}"),
                &[],
                b"x".to_vec(),
            )
            .await;
        assert_eq!(resp.code(), "DIGEST_INVALID", "{d}");
        assert_eq!(
            r.get(&format!("/v2/t/a/blobs/{d}")).await.code(),
            "DIGEST_INVALID",
            "{d}"
        );
    }
    let alg = r
        .req(
            Method::POST,
            "/v2/t/a/blobs/uploads/?digest-algorithm=md5",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(alg.code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn chunked_upload_with_status_out_of_order_and_cancel() {
    let r = Reg::new().await;
    let start = r
        .req(Method::POST, "/v2/t/team/app/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let loc = start.header("location").to_owned();
    assert!(loc.starts_with("/v2/t/team/app/blobs/uploads/"), "{loc}");
    assert_eq!(start.header("range"), "0-0");
    assert!(!start.header("docker-upload-uuid").is_empty());

    let p1 = r
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "0-4"), ("content-length", "5")],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(p1.status, StatusCode::ACCEPTED);
    assert_eq!(p1.header("range"), "0-4");

    // A chunk that does not start where the upload ends.
    let ooo = r
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "10-14"), ("content-length", "5")],
            b"world".to_vec(),
        )
        .await;
    assert_eq!(ooo.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(ooo.code(), "RANGE_INVALID");
    assert_eq!(ooo.header("range"), "0-4");
    // Content-Range and Content-Length that disagree.
    let mismatch = r
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "5-9"), ("content-length", "3")],
            b" wo".to_vec(),
        )
        .await;
    assert_eq!(mismatch.code(), "SIZE_INVALID");

    let status = r.get(&loc).await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-4");

    let p2 = r
        .req(Method::PATCH, &loc, &[("content-range", "5-10")], b" world".to_vec())
        .await;
    assert_eq!(p2.header("range"), "0-10");

    // PUT without a digest.
    assert_eq!(
        r.req(Method::PUT, &loc, &[], Body::empty()).await.code(),
        "DIGEST_INVALID"
    );

    let d = Digest::sha256_of(b"hello world!");
    let fin = r
        .req(Method::PUT, &format!("{loc}?digest={d}"), &[], b"!".to_vec())
        .await;
    assert_eq!(fin.status, StatusCode::CREATED, "{:?}", fin.body);
    assert_eq!(fin.header("location"), format!("/v2/t/team/app/blobs/{d}"));
    assert_eq!(fin.header("docker-content-digest"), d.to_string());
    assert_eq!(
        &r.get(&format!("/v2/t/team/app/blobs/{d}")).await.body[..],
        b"hello world!"
    );
    // The session is spent.
    assert_eq!(r.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");

    // Cancel.
    let start = r
        .req(Method::POST, "/v2/t/team/app/blobs/uploads/", &[], Body::empty())
        .await;
    let loc = start.header("location").to_owned();
    assert_eq!(
        r.req(Method::DELETE, &loc, &[], Body::empty()).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(r.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        r.req(Method::DELETE, &loc, &[], Body::empty()).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
}

#[tokio::test]
async fn unknown_and_foreign_upload_sessions() {
    let r = Reg::new().await;
    for id in ["not-a-uuid", "6f1c1f2e-8a1b-4a5b-9d4e-2d0b8f1e1a11"] {
        let loc = format!("/v2/t/a/blobs/uploads/{id}");
        assert_eq!(r.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");
        let patch = r.req(Method::PATCH, &loc, &[], b"x".to_vec()).await;
        assert_eq!(patch.status, StatusCode::NOT_FOUND);
        assert_eq!(patch.code(), "BLOB_UPLOAD_UNKNOWN");
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            r.req(Method::PUT, &format!("{loc}?digest={d}"), &[], b"x".to_vec())
                .await
                .code(),
            "BLOB_UPLOAD_UNKNOWN"
        );
    }
    // A session belongs to the repository it was opened in.
    let start = r.req(Method::POST, "/v2/t/a/blobs/uploads/", &[], Body::empty()).await;
    let id = start.header("docker-upload-uuid").to_owned();
    assert_eq!(
        r.get(&format!("/v2/t/b/blobs/uploads/{id}")).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
}

#[tokio::test]
async fn upload_sessions_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Reg::open(dir).await;
    let resp = first
        .req(Method::POST, "/v2/t/a/blobs/uploads/", &[], Body::empty())
        .await;
    let loc = resp.header("location").to_owned();
    let resp = first.req(Method::PATCH, &loc, &[], Body::from("first ")).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    first.registry.flush().await.unwrap();
    let r = first.restart().await;
    assert_eq!(r.get(&loc).await.header("range"), "0-5");
    let d = Digest::sha256_of(b"first second");
    let fin = r
        .req(Method::PUT, &format!("{loc}?digest={d}"), &[], b"second".to_vec())
        .await;
    assert_eq!(fin.status, StatusCode::CREATED);
    r.registry.flush().await.unwrap();
}

#[tokio::test]
async fn cross_repository_mount() {
    let r = Reg::new().await;
    let d = r.push_blob("src/repo", b"shared layer").await;
    let mounted = r
        .req(
            Method::POST,
            &format!("/v2/t/dst/repo/blobs/uploads/?mount={d}&from=t/src/repo"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(mounted.status, StatusCode::CREATED);
    assert_eq!(mounted.header("location"), format!("/v2/t/dst/repo/blobs/{d}"));
    assert_eq!(
        &r.get(&format!("/v2/t/dst/repo/blobs/{d}")).await.body[..],
        b"shared layer"
    );

    // Not mountable (missing from the source, or no source): an ordinary session instead.
    let missing = Digest::sha256_of(b"nowhere");
    for q in [
        format!("mount={missing}&from=t/src/repo"),
        format!("mount={d}"),
        format!("mount={d}&from=Bad!"),
    ] {
        let resp = r
            .req(
                Method::POST,
                &format!("/v2/t/third/blobs/uploads/?{q}"),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(resp.status, StatusCode::ACCEPTED, "{q}");
        assert!(resp.header("location").starts_with("/v2/t/third/blobs/uploads/"));
    }
    assert_eq!(
        r.get(&format!("/v2/t/third/blobs/{d}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let r = Reg::new().await;
    let m = r.push_image("team/app/api", "v1", "a").await;
    let d = Digest::sha256_of(&m);

    for reference in ["v1".to_owned(), d.to_string()] {
        let uri = format!("/v2/t/team/app/api/manifests/{reference}");
        let get = r.get(&uri).await;
        assert_eq!(get.status, StatusCode::OK);
        assert_eq!(&get.body[..], &m[..]);
        assert_eq!(get.header("content-type"), media::OCI_MANIFEST);
        assert_eq!(get.header("docker-content-digest"), d.to_string());
        let head = r.req(Method::HEAD, &uri, &[], Body::empty()).await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.header("content-length"), m.len().to_string());
        assert!(head.body.is_empty());
    }

    // Push the same manifest by digest with tag parameters.
    let put = r
        .put_manifest(
            "team/app/api",
            &format!("{d}?tag=v2&tag=stable"),
            media::OCI_MANIFEST,
            &m,
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let oci_tags: Vec<&str> = put
        .headers
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(oci_tags, ["v2", "stable"]);
    assert_eq!(put.header("location"), format!("/v2/t/team/app/api/manifests/{d}"));

    // Delete a tag, then the manifest (which takes its remaining tags with it).
    let del = r
        .req(Method::DELETE, "/v2/t/team/app/api/manifests/v1", &[], Body::empty())
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = r.get("/v2/t/team/app/api/manifests/v1").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "MANIFEST_UNKNOWN");
    assert_eq!(r.get("/v2/t/team/app/api/manifests/v2").await.status, StatusCode::OK);
    let del = r
        .req(
            Method::DELETE,
            &format!("/v2/t/team/app/api/manifests/{d}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert_eq!(
        r.get("/v2/t/team/app/api/manifests/v2").await.code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        r.req(
            Method::DELETE,
            &format!("/v2/t/team/app/api/manifests/{d}"),
            &[],
            Body::empty()
        )
        .await
        .code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(r.get("/v2/t/nope/manifests/latest").await.code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn docker_media_types_and_indexes() {
    let r = Reg::new().await;
    let config = r.push_blob("d", b"{}").await;
    let layer = r.push_blob("d", b"layer").await;
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": desc(media::DOCKER_CONFIG, &config, 2),
        "layers": [desc(media::DOCKER_LAYER_GZIP, &layer, 5)],
    }))
    .unwrap();
    let put = r.put_manifest("d", "amd64", media::DOCKER_MANIFEST, &docker).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let child = Digest::sha256_of(&docker);
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST_LIST,
        "manifests": [{
            "mediaType": media::DOCKER_MANIFEST, "digest": child.to_string(), "size": docker.len(),
            "platform": { "os": "linux", "architecture": "amd64" }
        }],
    }))
    .unwrap();
    assert_eq!(
        r.put_manifest("d", "latest", media::DOCKER_MANIFEST_LIST, &list)
            .await
            .status,
        StatusCode::CREATED
    );
    let get = r.get("/v2/t/d/manifests/latest").await;
    assert_eq!(get.header("content-type"), media::DOCKER_MANIFEST_LIST);
    assert_eq!(&get.body[..], &list[..]);

    // An index whose child is not in the repository.
    let missing = Digest::sha256_of(b"missing child");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [desc(media::OCI_MANIFEST, &missing, 10)],
    }))
    .unwrap();
    let resp = r.put_manifest("d", "broken", media::OCI_INDEX, &index).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.code(), "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(resp.json()["errors"][0]["detail"]["digest"], missing.to_string());
    assert_eq!(r.get("/v2/t/d/manifests/broken").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manifest_bad_input_stores_nothing() {
    let r = Reg::new().await;
    let config = r.push_blob("a", b"{}").await;
    let layer = r.push_blob("a", b"l").await;
    let good = image_manifest(&config, &layer, None);

    // A layer that was never pushed.
    let unknown = image_manifest(&config, &Digest::sha256_of(b"never pushed"), None);
    let resp = r.put_manifest("a", "t1", media::OCI_MANIFEST, &unknown).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_BLOB_UNKNOWN")
    );
    // A layer pushed to another repository only.
    let elsewhere = r.push_blob("b", b"only in b").await;
    let resp = r
        .put_manifest(
            "a",
            "t1",
            media::OCI_MANIFEST,
            &image_manifest(&config, &elsewhere, None),
        )
        .await;
    assert_eq!(resp.code(), "MANIFEST_BLOB_UNKNOWN");

    // Bytes that hash to something else than the digest in the URL.
    let wrong = Digest::sha256_of(b"not these bytes");
    let resp = r
        .put_manifest("a", &wrong.to_string(), media::OCI_MANIFEST, &good)
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );

    // Malformed JSON, wrong schema, missing fields, mediaType disagreeing with Content-Type.
    let bad_bodies: [&[u8]; 4] = [
        b"{not json",
        br#"{"schemaVersion":1,"name":"x"}"#,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
    ];
    for body in bad_bodies {
        let resp = r.put_manifest("a", "t1", media::OCI_MANIFEST, body).await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(resp.code(), "MANIFEST_INVALID");
    }

    // Unsupported Content-Type (schema 1, plain JSON, none).
    for ct in [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/json",
        "",
    ] {
        let resp = r.put_manifest("a", "t1", ct, &good).await;
        assert_eq!(resp.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        assert_eq!(resp.code(), "MANIFEST_INVALID");
    }

    // Over 4 MiB: 413, whether announced by Content-Length or not.
    let mut big = good.clone();
    big.truncate(big.len() - 1);
    big.extend_from_slice(format!(",\"annotations\":{{\"pad\":\"{}\"}}}}", "x".repeat(4 * 1024 * 1024)).as_bytes());
    let resp = r.put_manifest("a", "t1", media::OCI_MANIFEST, &big).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID")
    );
    let len = big.len().to_string();
    let resp = r
        .req(
            Method::PUT,
            "/v2/t/a/manifests/t1",
            &[("content-type", media::OCI_MANIFEST), ("content-length", &len)],
            big,
        )
        .await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);

    // None of that stored anything: the repository has no tags.
    let tags = r.get("/v2/t/a/tags/list").await.json();
    assert_eq!(tags["tags"], json!([]));
    // And the good manifest still goes in.
    assert_eq!(
        r.put_manifest("a", "t1", media::OCI_MANIFEST, &good).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn invalid_names_and_tags() {
    let r = Reg::new().await;
    for uri in [
        "/v2/UPPER/tags/list",
        "/v2/t/a//b/manifests/v1",
        "/v2/t/-a/blobs/uploads/",
        "/v2/t/a_/manifests/x",
    ] {
        let resp = r.get(uri).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(resp.code(), "NAME_INVALID", "{uri}");
    }
    let long = "a".repeat(129);
    for tag in [".hidden", "-dash", long.as_str()] {
        let resp = r.put_manifest("a", tag, media::OCI_MANIFEST, b"{}").await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{tag}");
        assert_eq!(resp.code(), "TAG_INVALID", "{tag}");
    }
    let resp = r.put_manifest("a", "sha256:1234", media::OCI_MANIFEST, b"{}").await;
    assert_eq!(resp.code(), "DIGEST_INVALID");
    let bad_tag_param = r
        .put_manifest(
            "a",
            &format!("{}?tag=bad!", Digest::sha256_of(b"{}")),
            media::OCI_MANIFEST,
            b"{}",
        )
        .await;
    assert_eq!(bad_tag_param.code(), "TAG_INVALID");
}

#[tokio::test]
async fn unsupported_methods_and_paths() {
    let r = Reg::new().await;
    let resp = r.req(Method::POST, "/v2/t/a/manifests/v1", &[], Body::empty()).await;
    assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.code(), "UNSUPPORTED");
    let resp = r.req(Method::PUT, "/v2/t/a/tags/list", &[], Body::empty()).await;
    assert_eq!(resp.code(), "UNSUPPORTED");
    let resp = r.get("/v2/t/a/unknown/endpoint").await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tags_list_pagination() {
    let r = Reg::new().await;
    let m = r.push_image("p/q", "v0", "x").await;
    let d = Digest::sha256_of(&m);
    for t in ["b", "a", "d", "c"] {
        assert_eq!(
            r.put_manifest("p/q", t, media::OCI_MANIFEST, &m).await.status,
            StatusCode::CREATED
        );
    }
    let all = r.get("/v2/t/p/q/tags/list").await;
    assert_eq!(
        all.json(),
        json!({ "name": "t/p/q", "tags": ["a", "b", "c", "d", "v0"] })
    );
    assert_eq!(all.header("link"), "");

    let page = r.get("/v2/t/p/q/tags/list?n=2").await;
    assert_eq!(page.json()["tags"], json!(["a", "b"]));
    assert_eq!(page.header("link"), "</v2/t/p/q/tags/list?n=2&last=b>; rel=\"next\"");
    let next = r.get("/v2/t/p/q/tags/list?n=2&last=b").await;
    assert_eq!(next.json()["tags"], json!(["c", "d"]));
    let last = r.get("/v2/t/p/q/tags/list?n=2&last=d").await;
    assert_eq!(last.json()["tags"], json!(["v0"]));
    assert_eq!(last.header("link"), "");
    assert_eq!(r.get("/v2/t/p/q/tags/list?n=0").await.json()["tags"], json!([]));
    assert_eq!(r.get("/v2/t/p/q/tags/list?n=-1").await.status, StatusCode::BAD_REQUEST);

    let unknown = r.get("/v2/t/p/nope/tags/list").await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
    let _ = d;
}

#[tokio::test]
async fn catalog_pagination() {
    let r = Reg::new().await;
    for repo in ["c/one", "a/one", "b/one/two"] {
        r.push_blob(repo, repo.as_bytes()).await;
    }
    let all = r.get("/v2/_catalog").await;
    assert_eq!(
        all.json(),
        json!({ "repositories": ["t/a/one", "t/b/one/two", "t/c/one"] })
    );
    let page = r.get("/v2/_catalog?n=1").await;
    assert_eq!(page.json()["repositories"], json!(["t/a/one"]));
    assert_eq!(page.header("link"), "</v2/_catalog?n=1&last=t%2Fa%2Fone>; rel=\"next\"");
    let next = r.get("/v2/_catalog?n=1&last=t%2Fa%2Fone").await;
    assert_eq!(next.json()["repositories"], json!(["t/b/one/two"]));
}

#[tokio::test]
async fn referrers_with_filter() {
    let r = Reg::new().await;
    let subject = r.push_image("s", "v1", "subject").await;
    let sd = Digest::sha256_of(&subject);
    let empty = r.push_blob("s", b"{}").await;
    let mut pushed = Vec::new();
    for (kind, note) in [
        ("application/vnd.example.sig", "sig"),
        ("application/vnd.example.sbom", "sbom"),
    ] {
        let layer = r.push_blob("s", note.as_bytes()).await;
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "artifactType": kind,
            "config": desc(media::OCI_EMPTY, &empty, 2),
            "layers": [desc("application/octet-stream", &layer, note.len())],
            "subject": desc(media::OCI_MANIFEST, &sd, subject.len()),
            "annotations": { "note": note },
        }))
        .unwrap();
        let put = r
            .put_manifest("s", &Digest::sha256_of(&m).to_string(), media::OCI_MANIFEST, &m)
            .await;
        assert_eq!(put.status, StatusCode::CREATED);
        assert_eq!(put.header("oci-subject"), sd.to_string());
        pushed.push(m);
    }
    let all = r.get(&format!("/v2/t/s/referrers/{sd}")).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.header("content-type"), media::OCI_INDEX);
    assert_eq!(all.header("oci-filters-applied"), "");
    let list = all.json();
    assert_eq!(list["schemaVersion"], 2);
    assert_eq!(list["mediaType"], media::OCI_INDEX);
    assert_eq!(list["manifests"].as_array().unwrap().len(), 2);

    let filtered = r
        .get(&format!(
            "/v2/t/s/referrers/{sd}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(filtered.header("oci-filters-applied"), "artifactType");
    let entries = filtered.json()["manifests"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entries[0]["artifactType"], "application/vnd.example.sbom");
    assert_eq!(entries[0]["digest"], Digest::sha256_of(&pushed[1]).to_string());
    assert_eq!(entries[0]["size"], pushed[1].len());
    assert_eq!(entries[0]["annotations"]["note"], "sbom");

    // A subject nobody refers to: an empty list, not an error.
    let none = r.get(&format!("/v2/t/s/referrers/{}", Digest::sha256_of(b"x"))).await;
    assert_eq!(none.json()["manifests"], json!([]));
    assert_eq!(r.get("/v2/t/s/referrers/sha256:nothex").await.code(), "DIGEST_INVALID");
}

/// Every error code the registry answers by itself, reached through the API: the list below
/// must match the table's codes minus those that belong to other layers.
#[tokio::test]
async fn every_registry_error_code_is_reachable() {
    use pier_oci::ErrorCode;
    let r = Reg::new().await;
    let mut seen = BTreeSet::new();
    let mut hit = |resp: Resp| seen.insert(resp.code());
    let d = Digest::sha256_of(b"nothing");
    hit(r.get(&format!("/v2/t/a/blobs/{d}")).await);
    hit(r
        .get("/v2/t/a/blobs/uploads/6f1c1f2e-8a1b-4a5b-9d4e-2d0b8f1e1a11")
        .await);
    hit(r
        .req(
            Method::POST,
            &format!("/v2/t/a/blobs/uploads/?digest={d}"),
            &[],
            b"x".to_vec(),
        )
        .await);
    hit(r
        .put_manifest("a", "t", media::OCI_MANIFEST, &image_manifest(&d, &d, None))
        .await);
    hit(r.put_manifest("a", "t", media::OCI_MANIFEST, b"{").await);
    hit(r.get("/v2/t/a/manifests/t").await);
    hit(r.get("/v2/A/manifests/t").await);
    hit(r.get("/v2/t/zzz/tags/list").await);
    hit(r.put_manifest("a", ".t", media::OCI_MANIFEST, b"{}").await);
    hit(r.req(Method::POST, "/v2/t/a/manifests/t", &[], Body::empty()).await);
    let start = r.req(Method::POST, "/v2/t/a/blobs/uploads/", &[], Body::empty()).await;
    let loc = start.header("location").to_owned();
    hit(r
        .req(Method::PATCH, &loc, &[("content-range", "3-4")], b"xy".to_vec())
        .await);
    hit(r
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "0-4"), ("content-length", "1")],
            b"x".to_vec(),
        )
        .await);

    // Codes that belong elsewhere: access control and the management API (`auth.rs`), a
    // full disk (end-to-end suite), internal failures, upload bodies cut short (end-to-end
    // suite).
    let elsewhere = [
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::TooManyRequests,
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::InsufficientStorage,
        ErrorCode::Unavailable,
        ErrorCode::Unknown,
        ErrorCode::BlobUploadInvalid,
    ];
    let expected: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .filter(|c| !elsewhere.contains(c))
        .map(|c| c.code().to_owned())
        .collect();
    assert_eq!(seen, expected);
}
