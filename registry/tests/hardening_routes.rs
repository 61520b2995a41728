//! Regression tests for the request-handling findings of the security review:
//! repeated digests in a manifest, RFC 9110 ranges, and refused manifest bodies that must
//! be read before the answer so the client sees it.

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{ADMIN_PASSWORD, Reg, basic, desc};
use pier_oci::{Digest, media};
use serde_json::json;

/// An image manifest whose layers are `copies` descriptors of one `layer`.
fn repeated_layer_manifest(config: &Digest, layer: &Digest, copies: usize) -> Vec<u8> {
    let layers: Vec<_> = (0..copies).map(|_| desc(media::OCI_LAYER_GZIP, layer, 13)).collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, config, 2),
        "layers": layers,
    }))
    .unwrap()
}

#[tokio::test]
async fn finding_13_manifest_with_one_layer_repeated_27000_times_is_checked_once_per_digest() {
    let r = Reg::new().await;
    let config = r.push_blob("big", b"{}").await;
    let layer = r.push_blob("big", b"the one layer").await;
    let m = repeated_layer_manifest(&config, &layer, 27_000);
    assert!(m.len() > 3_500_000 && m.len() < pier_registry::limits::MAX_MANIFEST_BYTES);
    let resp = r.put_manifest("big", "v1", media::OCI_MANIFEST, &m).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{:?}", resp.body);
    let back = r.get("/v2/t/big/manifests/v1").await;
    assert_eq!(back.body.as_ref(), m.as_slice());
    // A repeated digest that is missing is still refused, naming it.
    let missing = Digest::sha256_of(b"never pushed");
    let m = repeated_layer_manifest(&config, &missing, 1000);
    let resp = r.put_manifest("big", "v2", media::OCI_MANIFEST, &m).await;
    assert_eq!(resp.code(), "MANIFEST_BLOB_UNKNOWN");
    assert!(String::from_utf8_lossy(&resp.body).contains(&missing.to_string()));
}

#[tokio::test]
async fn finding_14_blob_ranges_follow_rfc_9110() {
    let r = Reg::new().await;
    let data: Vec<u8> = (0..100u8).collect();
    let d = r.push_blob("ranges", &data).await;
    let uri = format!("/v2/t/ranges/blobs/{d}");
    let get = |range: &'static str| {
        let (r, uri) = (&r, uri.clone());
        async move { r.req(Method::GET, &uri, &[("range", range)], Body::empty()).await }
    };
    for range in ["bytes=0-99999999999999999999", "bytes=-99999999999999999999"] {
        let resp = get(range).await;
        assert_eq!(resp.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(resp.header("content-range"), "bytes 0-99/100", "{range}");
        assert_eq!(resp.body.as_ref(), data.as_slice());
    }
    for range in ["items=0-1", "bytes=5-2", "bytes=+1-2"] {
        let resp = get(range).await;
        assert_eq!(resp.status, StatusCode::OK, "{range}");
        assert_eq!(resp.body.as_ref(), data.as_slice(), "{range}");
    }
    let resp = get("bytes=100-").await;
    assert_eq!(resp.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.header("content-range"), "bytes */100");
    let resp = get("bytes=10-19").await;
    assert_eq!(resp.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.body.as_ref(), &data[10..20]);
}

#[tokio::test]
async fn finding_14_patch_accepts_the_standard_content_range_form() {
    let r = Reg::new().await;
    let start = r
        .req(Method::POST, "/v2/t/chunks/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let location = start.header("location").to_owned();
    // RFC 9110's form with the complete length, then with an unknown one, then OCI's.
    let mut at = location.clone();
    for (range, chunk) in [
        ("bytes 0-4/15", &b"hello"[..]),
        ("bytes 5-9/*", &b" worl"[..]),
        ("10-14", &b"d, ok"[..]),
    ] {
        let resp = r
            .req(
                Method::PATCH,
                &at,
                &[("content-range", range), ("content-type", "application/octet-stream")],
                chunk.to_vec(),
            )
            .await;
        assert_eq!(resp.status, StatusCode::ACCEPTED, "{range}: {:?}", resp.body);
        at = resp.header("location").to_owned();
    }
    for bad in ["bytes +15-16/20", "bytes 15-x/20", "bytes 16-15/20"] {
        let resp = r
            .req(Method::PATCH, &at, &[("content-range", bad)], b"xx".to_vec())
            .await;
        assert_eq!(resp.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
    }
    let d = Digest::sha256_of(b"hello world, ok");
    let sep = if at.contains('?') { '&' } else { '?' };
    let resp = r
        .req(Method::PUT, &format!("{at}{sep}digest={d}"), &[], Body::empty())
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{:?}", resp.body);
}

/// Serve a fresh registry on loopback; returns its address and the registry's dir.
async fn served() -> (std::net::SocketAddr, Reg) {
    let r = Reg::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = r.registry.clone();
    tokio::spawn(pier_registry::serve(listener, registry, std::future::pending()));
    (addr, r)
}

/// Send a whole request (head and `body`) before reading anything, as Python's
/// http.client does, and return the status line, or the error that ended the exchange.
fn send_then_read(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes())
        .map_err(|e| format!("writing the head: {e}"))?;
    s.write_all(body).map_err(|e| format!("writing the body: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.len() < 64 * 1024 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().map(str::to_owned).ok_or_else(|| "no answer".into())
}

/// `rounds` manifest PUTs of `body` with `Content-Length` (and `Authorization`, when
/// given), each written whole before the answer is read; every status line must be `want`.
async fn put_whole_then_read(addr: std::net::SocketAddr, auth: Option<&str>, body: Vec<u8>, rounds: usize, want: &str) {
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    for round in 0..rounds {
        let head = format!(
            "PUT /v2/t/big/manifests/v{round} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
            media::OCI_MANIFEST,
            body.len()
        );
        let body = body.clone();
        let status = tokio::task::spawn_blocking(move || send_then_read(addr, &head, &body))
            .await
            .unwrap();
        assert_eq!(status.as_deref(), Ok(want), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_15_oversized_manifest_put_reads_413_not_a_broken_pipe() {
    let (addr, _r) = served().await;
    let body = vec![b' '; pier_registry::limits::MAX_MANIFEST_BYTES + 10];
    let auth = basic("admin", ADMIN_PASSWORD);
    put_whole_then_read(addr, Some(&auth), body, 5, "HTTP/1.1 413 Payload Too Large").await;
    // The same without Content-Length (chunked): the limit is found while reading.
    let mut chunked = Vec::new();
    for _ in 0..5 {
        let chunk = vec![b' '; 1024 * 1024];
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "PUT /v2/t/big/manifests/chunked HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        media::OCI_MANIFEST
    );
    let status = tokio::task::spawn_blocking(move || send_then_read(addr, &head, &chunked))
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Ok("HTTP/1.1 413 Payload Too Large"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_15_manifest_put_refused_for_lack_of_a_token_reads_401() {
    let (addr, _r) = served().await;
    // A large but valid-sized manifest sent before the client has credentials, as the
    // conformance suite does when it does not reuse its token.
    put_whole_then_read(addr, None, vec![b' '; 3_900_000], 5, "HTTP/1.1 401 Unauthorized").await;
}
