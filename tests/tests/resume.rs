//! Bad input on upload sessions: a client that vanishes mid-`PATCH` must leave a session
//! that reports exactly what arrived, hides the partial bytes, and can be resumed; and a
//! session must survive a restart of pier, graceful (SIGTERM) or not (`kill -9`).

use pier_e2e::{ADMIN_PASSWORD, ADMIN_USER, basic, expect_status, header, sha256, test_bytes};
use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pier_e2e::Pier;
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};

/// Per-request timeout: everything here is a few MiB over loopback.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long pier may take to notice the dropped connection and settle the session.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
const SETTLE_POLL: Duration = Duration::from_millis(50);
/// The blob of the disconnect test; the cut is deliberately not on a write-batch boundary
/// (pier gathers 1 MiB before each write) so a lost tail batch would show.
const BLOB_LEN: usize = 4 * 1024 * 1024 + 17;
const CUT_AT: usize = 1536 * 1024 + 123;

/// The (private) project every repository here belongs to.
const PROJECT: &str = "resume";

/// Every request authenticates as the system admin.
fn client() -> Client {
    pier_e2e::admin_client(REQUEST_TIMEOUT)
}

/// Bytes held by a session, from its `Range: 0-<last>` header (`0-0` is ambiguous between
/// 0 and 1 byte; the tests never hold exactly one byte).
fn held(r: &Response) -> u64 {
    let range = header(r, "range");
    let last: u64 = range
        .strip_prefix("0-")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("malformed Range {range:?}"));
    if last == 0 { 0 } else { last + 1 }
}

/// Open a session in `repo`; returns its absolute URL.
fn open_session(c: &Client, base: &str, repo: &str) -> String {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("POST upload");
    let r = expect_status(r, StatusCode::ACCEPTED, "open session");
    format!("{base}{}", header(&r, "location"))
}

fn session_size(c: &Client, session: &str) -> u64 {
    let r = c.get(session).send().expect("GET session");
    held(&expect_status(r, StatusCode::NO_CONTENT, "session status"))
}

/// PATCH `chunk` at `offset`; returns the size the session reports afterwards.
fn patch(c: &Client, session: &str, offset: usize, chunk: &[u8]) -> u64 {
    let r = c
        .patch(session)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{offset}-{}", offset + chunk.len() - 1))
        .body(chunk.to_vec())
        .send()
        .expect("PATCH");
    held(&expect_status(r, StatusCode::ACCEPTED, "PATCH chunk"))
}

fn finish(c: &Client, session: &str, digest: &str) {
    let r = c.put(format!("{session}?digest={digest}")).send().expect("PUT");
    let r = expect_status(r, StatusCode::CREATED, "commit upload");
    assert_eq!(header(&r, "docker-content-digest"), digest);
}

fn blob_status(c: &Client, base: &str, repo: &str, digest: &str) -> StatusCode {
    c.head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .expect("HEAD blob")
        .status()
}

fn assert_blob(c: &Client, base: &str, repo: &str, digest: &str, len: usize) {
    let r = c
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .expect("GET blob");
    let body = expect_status(r, StatusCode::OK, "GET blob").bytes().expect("blob body");
    assert_eq!(body.len(), len, "stored blob has the wrong size");
    assert_eq!(sha256(&body), digest, "stored blob has the wrong bytes");
}

/// Poll the session until it holds `want` bytes: pier finishes the interrupted request
/// asynchronously after the client is gone. Bounded by [`SETTLE_TIMEOUT`].
fn wait_for_size(c: &Client, session: &str, want: u64) -> u64 {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let size = session_size(c, session);
        if size == want || Instant::now() >= deadline {
            return size;
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

#[test]
fn client_disconnect_mid_patch_then_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project(PROJECT, false);
    let (c, base, repo) = (client(), pier.url(), "resume/cut");
    let blob = test_bytes(1, BLOB_LEN);
    let digest = sha256(&blob);
    let session = open_session(&c, &base, repo);
    let path = session.strip_prefix(&base).expect("session under base");

    // Announce the whole blob, send only part of it, and hang up.
    let mut raw = TcpStream::connect(pier.addr).expect("connect");
    write!(
        raw,
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: 0-{}\r\nContent-Length: {BLOB_LEN}\r\n\r\n",
        pier.host(),
        basic(ADMIN_USER, ADMIN_PASSWORD),
        BLOB_LEN - 1
    )
    .expect("send headers");
    raw.write_all(&blob[..CUT_AT]).expect("send partial body");
    raw.flush().expect("flush");
    drop(raw);

    let size = wait_for_size(&c, &session, CUT_AT as u64);
    assert_eq!(
        size, CUT_AT as u64,
        "the session must hold exactly the bytes that arrived"
    );
    assert_eq!(
        blob_status(&c, &base, repo, &digest),
        StatusCode::NOT_FOUND,
        "a partial upload must not be visible as a blob"
    );

    // A chunk that does not start at the reported size is refused, with the size.
    let r = c
        .patch(&session)
        .header("content-range", format!("0-{}", BLOB_LEN - CUT_AT - 1))
        .body(blob[CUT_AT..].to_vec())
        .send()
        .expect("PATCH");
    let r = expect_status(r, StatusCode::RANGE_NOT_SATISFIABLE, "out-of-order chunk");
    assert_eq!(held(&r), CUT_AT as u64);

    assert_eq!(patch(&c, &session, CUT_AT, &blob[CUT_AT..]), BLOB_LEN as u64);
    finish(&c, &session, &digest);
    assert_blob(&c, &base, repo, &digest, BLOB_LEN);
    // The session is spent.
    let r = c.get(&session).send().expect("GET session");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a committed session must be gone");
}

#[test]
fn session_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut pier = Pier::start(&data);
    pier.create_project(PROJECT, false);
    let (c, base, repo) = (client(), pier.url(), "resume/restart/deep");
    let blob = test_bytes(2, 3 * 1024 * 1024 + 5);
    let digest = sha256(&blob);
    let (a, b) = (1024 * 1024 + 7, 2 * 1024 * 1024 + 11);
    let session = open_session(&c, &base, repo);
    assert_eq!(patch(&c, &session, 0, &blob[..a]), a as u64);

    // Graceful restart.
    let exit = pier.stop();
    assert!(
        exit.success(),
        "pier exited with {exit} on SIGTERM; log:\n{}",
        pier.log_text()
    );
    let mut pier = Pier::start_on(&data, pier.addr);
    assert_eq!(
        session_size(&c, &session),
        a as u64,
        "session size after SIGTERM restart"
    );
    assert_eq!(blob_status(&c, &base, repo, &digest), StatusCode::NOT_FOUND);
    assert_eq!(patch(&c, &session, a, &blob[a..b]), b as u64);

    // Crash restart.
    pier.kill9();
    let pier = Pier::start_on(&data, pier.addr);
    assert_eq!(
        session_size(&c, &session),
        b as u64,
        "session size after kill -9 restart"
    );
    assert_eq!(blob_status(&c, &base, repo, &digest), StatusCode::NOT_FOUND);
    // The final chunk rides on the PUT, as some clients do it.
    let r = c
        .put(format!("{session}?digest={digest}"))
        .header("content-range", format!("{b}-{}", blob.len() - 1))
        .body(blob[b..].to_vec())
        .send()
        .expect("PUT");
    let r = expect_status(r, StatusCode::CREATED, "commit after restarts");
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_blob(&c, &base, repo, &digest, blob.len());
    drop(pier);
}
