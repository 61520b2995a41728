//! Security review findings 4 (no timeouts on connections) and 2 (unbounded request head),
//! against the real accept loop: a registry served on loopback in its own runtime, and raw
//! sockets as the hostile client.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pier_registry::{AuthConfig, ConnectionLimits, Registry, RegistryConfig};

const ADMIN_PASSWORD: &str = "connections-test-password";
/// Slack on every "closed within the timeout" check: the machine may be busy.
const MARGIN: Duration = Duration::from_secs(3);
/// Limit of any single wait for an answer that should come at once.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on what a test reads from one connection.
const MAX_READ: usize = 1024 * 1024;
/// Long enough to never fire during a test: isolates the timeout under test.
const NEVER: Duration = Duration::from_secs(300);

/// A registry served on 127.0.0.1 until dropped.
struct Server {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn start(connections: ConnectionLimits) -> Server {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            // Owned here, so the data outlives the server.
            let dir = tempfile::tempdir().unwrap();
            let config = RegistryConfig {
                auth: AuthConfig {
                    admin_password: Some(ADMIN_PASSWORD.into()),
                    ..Default::default()
                },
                connections,
                ..Default::default()
            };
            let registry = Registry::open_with(dir.path(), config).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = pier_registry::serve(listener, registry, async {
                let _ = stopped.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv_timeout(ANSWER_TIMEOUT).expect("the registry starts");
    Server { addr, _stop: stop }
}

fn limits(header: Duration, idle: Duration, body: Duration, max: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: header,
        idle_timeout: idle,
        body_idle_timeout: body,
        max_connections: max,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, ANSWER_TIMEOUT).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    s
}

fn basic() -> String {
    use base64::Engine as _;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    format!("Basic {creds}")
}

struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One response: the head, then `Content-Length` bytes of body.
fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).expect("read a response");
        assert!(n > 0, "closed before a response: {:?}", String::from_utf8_lossy(&buf));
        assert!(buf.len() < MAX_READ, "response head too long");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {head:?}"));
    let mut resp = Resp {
        status,
        head,
        body: buf[head_end..].to_vec(),
    };
    let len: usize = resp.header("content-length").map_or(0, |l| l.parse().unwrap());
    assert!(len <= MAX_READ, "body too long");
    while resp.body.len() < len {
        let n = s.read(&mut chunk).expect("read a response body");
        assert!(n > 0, "closed in a response body");
        resp.body.extend_from_slice(&chunk[..n]);
    }
    resp
}

/// A request as the admin on a connection of its own.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = connect(addr);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        basic(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s)
}

fn healthz(addr: SocketAddr) -> Resp {
    request(addr, "GET", "/healthz", &[], b"")
}

/// Read (and return) whatever comes until the server closes `s`; panics if it is still
/// open after `within`.
fn wait_closed(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the connection is still open after {within:?}; received {:?}",
            String::from_utf8_lossy(&got)
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => {
                got.extend_from_slice(&chunk[..n]);
                assert!(got.len() < MAX_READ, "the server keeps sending");
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => return got,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
}

#[test]
fn finding_4_idle_connection_is_closed() {
    let idle = Duration::from_secs(1);
    let server = start(limits(NEVER, idle, NEVER, 64));

    // A connection that never sends its first byte.
    let mut silent = connect(server.addr);
    // A keep-alive connection after its answer.
    let mut kept = connect(server.addr);
    write!(kept, "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).unwrap();
    let r = read_response(&mut kept);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok");

    assert_eq!(wait_closed(&mut silent, idle + MARGIN), b"");
    assert_eq!(wait_closed(&mut kept, idle + MARGIN), b"");
    assert_eq!(healthz(server.addr).status, 200);
}

#[test]
fn finding_4_slow_header_is_cut_off() {
    let header = Duration::from_secs(1);
    // Idle connections are never closed here: only the head's clock can end this one.
    let server = start(limits(header, NEVER, NEVER, 64));
    let mut s = connect(server.addr);
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // A head that never ends, one byte at a time.
    let mut head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: ", server.addr).into_bytes();
    let deadline = Instant::now() + header + MARGIN;
    let mut sent = 0;
    let mut chunk = [0u8; 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "still open after {:?} ({sent} bytes sent)",
            header + MARGIN
        );
        if sent == head.len() {
            head.push(b'a');
        }
        if s.write_all(&head[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        // Also paces the bytes.
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => panic!(
                "answered an incomplete head: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
    assert!(sent > 1, "cut off before the head had time to arrive");
    assert_eq!(healthz(server.addr).status, 200);
}

#[test]
fn finding_4_stalled_token_post_ends() {
    let body_idle = Duration::from_secs(1);
    let server = start(limits(NEVER, NEVER, body_idle, 64));
    let mut s = connect(server.addr);
    write!(
        s,
        "POST /service/token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\ngrant",
        server.addr
    )
    .unwrap();
    // ... and nothing more.
    let answer = wait_closed(&mut s, body_idle + MARGIN);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(healthz(server.addr).status, 200);
}

#[test]
fn finding_4_stalled_upload_stays_resumable() {
    let body_idle = Duration::from_secs(1);
    let server = start(limits(NEVER, NEVER, body_idle, 64));
    let addr = server.addr;
    let project = request(
        addr,
        "POST",
        "/api/v1/projects",
        &[("Content-Type", "application/json")],
        br#"{"name":"t"}"#,
    );
    assert_eq!(project.status, 201, "{:?}", String::from_utf8_lossy(&project.body));
    let started = request(addr, "POST", "/v2/t/stall/blobs/uploads/", &[], b"");
    assert_eq!(started.status, 202);
    let location = started.header("location").unwrap().to_owned();

    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let sent = 30_000;
    // A PATCH that announces the whole blob, sends part of it, and stalls.
    let mut s = connect(addr);
    write!(
        s,
        "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        basic(),
        blob.len()
    )
    .unwrap();
    s.write_all(&blob[..sent]).unwrap();
    let answer = wait_closed(&mut s, body_idle + MARGIN);
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 2"), "a stalled PATCH succeeded: {answer}");

    // The session kept what arrived ...
    let status = request(addr, "GET", &location, &[], b"");
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some(format!("0-{}", sent - 1).as_str()));
    // ... and takes the rest.
    let range = format!("{sent}-{}", blob.len() - 1);
    let rest = request(addr, "PATCH", &location, &[("Content-Range", &range)], &blob[sent..]);
    assert_eq!(rest.status, 202, "{:?}", String::from_utf8_lossy(&rest.body));
    assert_eq!(rest.header("range"), Some(format!("0-{}", blob.len() - 1).as_str()));
    let digest = pier_oci::Digest::sha256_of(&blob);
    let put = request(addr, "PUT", &format!("{location}?digest={digest}"), &[], b"");
    assert_eq!(put.status, 201, "{:?}", String::from_utf8_lossy(&put.body));
    let got = request(addr, "GET", &format!("/v2/t/stall/blobs/{digest}"), &[], b"");
    assert_eq!(got.status, 200);
    assert!(got.body == blob, "the resumed blob differs");
}

#[test]
fn finding_4_connection_limit_answers_503_and_healthz_recovers() {
    let max = 8;
    let server = start(limits(NEVER, NEVER, NEVER, max));
    // `max` connections, each shown to be served (so counted) by one answered request.
    let mut held: Vec<TcpStream> = (0..max)
        .map(|_| {
            let mut s = connect(server.addr);
            write!(s, "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).unwrap();
            assert_eq!(read_response(&mut s).status, 200);
            s
        })
        .collect();

    // One more is answered at once, completely, and closed.
    let mut extra = connect(server.addr);
    write!(extra, "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).unwrap();
    let r = read_response(&mut extra);
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    assert_eq!(wait_closed(&mut extra, ANSWER_TIMEOUT), b"");

    // The held ones still work.
    write!(held[0], "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).unwrap();
    assert_eq!(read_response(&mut held[0]).status, 200);

    // Once they go, new connections are served again.
    drop(held);
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        let r = healthz(server.addr);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            Instant::now() < deadline,
            "still refused after the held connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn finding_2_oversized_request_head_is_refused() {
    let server = start(ConnectionLimits::default());
    let head_with = |header_len: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            server.addr,
            "a".repeat(header_len)
        )
    };

    // A big but reasonable head is served.
    let mut s = connect(server.addr);
    s.write_all(head_with(32 * 1024).as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).status, 200);

    // ~400 KiB (under hyper's default buffer, so it used to be served) is not.
    let mut s = connect(server.addr);
    // The server may close while this is still being written.
    let _ = s.write_all(head_with(400 * 1024).as_bytes());
    let answer = wait_closed(&mut s, ANSWER_TIMEOUT);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{}",
        answer.lines().next().unwrap_or_default()
    );
    assert_eq!(healthz(server.addr).status, 200);
}

/// Set in the environment of the child process that
/// `finding_4_low_open_file_limit_answers_instead_of_stalling` runs.
const CHILD_ENV: &str = "PIER_CONNECTIONS_TEST_CHILD";
/// The child's open-file limit (`ulimit -n`): far below the default `max_connections`.
const CHILD_OPEN_FILES: usize = 160;

/// The child: a registry with default limits but few file descriptors, serving until its
/// stdin closes. Does nothing when run by itself.
#[test]
#[ignore = "run by finding_4_low_open_file_limit_answers_instead_of_stalling"]
fn child_registry_with_few_file_descriptors() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let server = start(limits(NEVER, NEVER, NEVER, pier_registry::limits::MAX_CONNECTIONS));
    println!("ADDR {}", server.addr);
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// Kills (and reaps) the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn finding_4_low_open_file_limit_answers_instead_of_stalling() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let mut child = Child(
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {CHILD_OPEN_FILES} && exec \"$0\" \"$@\""))
            .arg(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "child_registry_with_few_file_descriptors"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // libtest prints the test's name on the same line, before the address.
    let stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let addr = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|l| Some(l.split_once("ADDR ")?.1.trim().parse::<SocketAddr>().unwrap()));
        let _ = addr_tx.send(addr);
    });
    let addr = addr_rx
        .recv_timeout(ANSWER_TIMEOUT)
        .ok()
        .flatten()
        .expect("the child registry starts");

    // More idle connections than the registry has file descriptors.
    let crowd: Vec<TcpStream> = (0..2 * CHILD_OPEN_FILES).map(|_| connect(addr)).collect();
    // A health check is answered (503) or closed, never left waiting; once the refused
    // connections' linger is over, the answer is a 503.
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        match try_healthz(addr) {
            None => {}
            Some((503, answer)) => {
                assert!(answer.contains("UNAVAILABLE"), "{answer}");
                break;
            }
            Some((_, answer)) => panic!("{answer}"),
        }
        assert!(Instant::now() < deadline, "health checks are closed unanswered");
        std::thread::sleep(Duration::from_millis(100));
    }

    drop(crowd);
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while try_healthz(addr).map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "still refused after the crowd left");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /healthz` on a connection of its own: the status and whole answer, or `None` when
/// closed unanswered. Panics if neither happens within [`ANSWER_TIMEOUT`].
fn try_healthz(addr: SocketAddr) -> Option<(u16, String)> {
    let mut s = connect(addr);
    write!(s, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let answer = String::from_utf8_lossy(&wait_closed(&mut s, ANSWER_TIMEOUT)).into_owned();
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    Some((status, answer))
}
