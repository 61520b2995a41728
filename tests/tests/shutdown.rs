//! Graceful shutdown: SIGTERM lets an in-flight upload finish, refuses new work, exits 0,
//! and what was answered is on disk for the next start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pier_e2e::{ADMIN_PASSWORD, ADMIN_USER, Pier, admin_client, basic};

/// Bytes sent before and after the signal.
const HALF: usize = 1024 * 1024;
/// Upper bound on how long pier may take to exit once its last request is answered.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request limit for the test's HTTP calls (all of them authenticate as the admin).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn read_response(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Headers end with an empty line; upload answers have no body.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).expect("read response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn sigterm_finishes_in_flight_upload_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut pier = Pier::start(&data);
    pier.create_project("shutdown", false);
    let client = admin_client(REQUEST_TIMEOUT);
    let start = client
        .post(format!("{}/v2/shutdown/test/blobs/uploads/", pier.url()))
        .send()
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_owned();

    // A PATCH whose body is only half sent when the signal arrives.
    let body: Vec<u8> = (0..2 * HALF).map(|i| (i % 251) as u8).collect();
    let mut stream = TcpStream::connect(pier.addr).unwrap();
    write!(
        stream,
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        pier.host(),
        basic(ADMIN_USER, ADMIN_PASSWORD),
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..HALF]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let pid = pier.pid().to_string();
    pier_e2e::run(std::process::Command::new("kill").args(["-TERM", &pid]));
    std::thread::sleep(Duration::from_millis(300));
    // Still alive: it waits for the request in flight.
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pier exited with a request in flight"
    );
    // New connections are no longer served.
    let refused = client
        .get(format!("{}/v2/", pier.url()))
        .timeout(Duration::from_secs(2))
        .send();
    assert!(
        refused.is_err(),
        "pier accepted new work while shutting down: {refused:?}"
    );

    stream.write_all(&body[HALF..]).unwrap();
    let response = read_response(&mut stream);
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains(&format!("range: 0-{}", body.len() - 1)),
        "{response}"
    );
    drop(stream);

    let deadline = Instant::now() + EXIT_TIMEOUT;
    while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .contains("zombie")
    {
        assert!(Instant::now() < deadline, "pier did not exit within {EXIT_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = pier.stop_reaped();
    assert!(status.success(), "pier exited with {status}; log:\n{}", pier.log_text());
    assert!(pier.log_text().contains("metadata flushed"), "{}", pier.log_text());

    // The next start sees the session with every byte that was acknowledged, and completes it.
    let pier = Pier::start_on(&data, pier.addr);
    let status = client.get(format!("{}{location}", pier.url())).send().unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], format!("0-{}", body.len() - 1).as_str());
    let digest = pier_oci::Digest::sha256_of(&body);
    let put = client
        .put(format!("{}{location}?digest={digest}", pier.url()))
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);
    let got = client
        .get(format!("{}/v2/shutdown/test/blobs/{digest}", pier.url()))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(got[..] == body[..], "blob differs after restart");
}
