//! Harness for pier's end-to-end tests: start the real `pier` binary on a loopback port,
//! find the real client tools, and fail (not skip) under `CI` when one is missing.
#![deny(missing_docs)]

pub mod containerd;
pub mod docker;
pub mod helm;
pub mod images;
pub mod relay;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a freshly started pier may take to answer `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The system admin every test server bootstraps with.
pub const ADMIN_USER: &str = "admin";
/// The `admin` password every test server bootstraps with (`PIER_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "e2e-admin-Secret-1";
/// How long one management API call may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one skopeo command may take (a few MB over loopback).
pub const SKOPEO_TIMEOUT: Duration = Duration::from_secs(180);
/// How often a running command is checked for exit.
const POLL: Duration = Duration::from_millis(20);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// True when running in CI (`CI` set to anything but empty/`false`/`0`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The `pier` binary under test: `$PIER_BIN`, else `target/debug/pier` (built by the test
/// command before `cargo test`).
pub fn pier_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PIER_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let p = target.join("debug").join("pier");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build -p pier-cli` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The path of a tool on `PATH`, or `None`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

/// Whether every tool is available. When one is missing: under `CI` this panics (a test
/// that cannot run must not pass), elsewhere it prints why the test is skipped.
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| which(t).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: missing tools {missing:?} (scripts/test.sh installs them)");
    assert!(!in_ci(), "{msg}");
    eprintln!("SKIPPED {msg}");
    false
}

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `pier serve`.
pub struct Pier {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Pier {
    /// Start pier on a free loopback port over `data_dir`, and wait until it answers.
    pub fn start(data_dir: &Path) -> Pier {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Pier::start_on(data_dir, addr)
    }

    /// Start pier on `addr` (e.g. to restart on the same address after a crash).
    pub fn start_on(data_dir: &Path, addr: SocketAddr) -> Pier {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = data_dir.with_extension(format!("{}.log", addr.port()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(pier_bin())
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(data_dir)
            .env("PIER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn pier");
        let mut pier = Pier {
            child: Some(child),
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        pier.wait_ready();
        pier
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("pier exited early with {status}; log:\n{}", self.log_text());
            }
            if client
                .get(format!("{}/healthz", self.url()))
                .timeout(Duration::from_secs(1))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "pier did not answer within {START_TIMEOUT:?}; log:\n{}",
            self.log_text()
        );
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, as image references want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Resident set size in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// Everything pier logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Create project `name` as the system admin (201). A project that already exists (409)
    /// is fine: tests that restart pier over the same data may ask again.
    pub fn create_project(&self, name: &str, public: bool) {
        let r = admin_client(API_TIMEOUT)
            .post(format!("{}/api/v1/projects", self.url()))
            .json(&json!({ "name": name, "public": public }))
            .send()
            .unwrap_or_else(|e| panic!("POST /api/v1/projects {name}: {e}"));
        let status = r.status();
        assert!(
            status == reqwest::StatusCode::CREATED || status == reqwest::StatusCode::CONFLICT,
            "create project {name}: {status}: {}\npier log:\n{}",
            r.text().unwrap_or_default(),
            self.log_text()
        );
    }

    /// A management API call as the system admin that must answer `want`; its JSON body
    /// (`null` when empty).
    pub fn admin_api(&self, method: reqwest::Method, path: &str, body: Option<Value>, want: u16) -> Value {
        api_call(&admin_client(API_TIMEOUT), &self.url(), method, path, body, want)
    }

    /// Create user `name` (not a system admin).
    pub fn create_user(&self, name: &str, password: &str) {
        self.admin_api(
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({ "name": name, "password": password })),
            201,
        );
    }

    /// Give `user` `role` in `project` (`project_admin`, `maintainer`, `developer`, `guest`,
    /// `limited_guest`).
    pub fn add_member(&self, project: &str, user: &str, role: &str) {
        let r = admin_client(API_TIMEOUT)
            .post(format!("{}/api/v1/projects/{project}/members", self.url()))
            .json(&json!({ "user": user, "role": role }))
            .send()
            .unwrap_or_else(|e| panic!("POST members of {project}: {e}"));
        let status = r.status().as_u16();
        assert!(
            status == 201 || status == 200,
            "add {user} as {role} to {project}: {status}: {}",
            r.text().unwrap_or_default()
        );
    }

    /// Create robot `name` in `project` with `permissions`; its full name
    /// (`robot$<project>+<name>`) and its secret.
    pub fn create_robot(&self, project: &str, name: &str, permissions: &[&str]) -> (String, String) {
        let v = self.admin_api(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/robots"),
            Some(json!({ "name": name, "permissions": permissions })),
            201,
        );
        let full = v["name"].as_str().unwrap_or_else(|| panic!("robot without name: {v}"));
        assert_eq!(full, format!("robot${project}+{name}"), "{v}");
        let secret = v["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("robot without secret: {v}"));
        (full.to_owned(), secret.to_owned())
    }

    /// Every audit event (newest first), read as the system admin page by page.
    pub fn audit(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut before: Option<i64> = None;
        for _ in 0..1000 {
            let path = match before {
                Some(b) => format!("/api/v1/audit?limit=1000&before={b}"),
                None => "/api/v1/audit?limit=1000".to_owned(),
            };
            let page = self.admin_api(reqwest::Method::GET, &path, None, 200);
            events.extend(
                page["events"]
                    .as_array()
                    .unwrap_or_else(|| panic!("audit page without events: {page}"))
                    .iter()
                    .cloned(),
            );
            match page["next"].as_i64() {
                Some(n) => before = Some(n),
                None => return events,
            }
        }
        panic!("audit log: more than 1000 pages");
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait for a process that was already told to stop (e.g. by a signal the test sent).
    pub fn stop_reaped(&mut self) -> ExitStatus {
        self.child.take().expect("running").wait().expect("wait pier")
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        run(Command::new("kill").args(["-TERM", &c.id().to_string()]));
        c.wait().expect("wait pier")
    }
}

impl Drop for Pier {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Run a command, panic with its output unless it succeeds; return stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// stderr then stdout, for matching error messages wherever a client prints them.
    pub fn output(&self) -> String {
        format!("{}{}", self.stderr, self.stdout)
    }
}

/// Run `cmd` with stdin closed, killing it after `timeout`; panics if it cannot start or
/// times out. Output goes through temporary files, so a chatty command cannot block on a
/// full pipe while it is being waited for.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Finished {
    run_with_input(cmd, None, timeout)
}

/// [`run_with_timeout`], with `input` (e.g. a password for `--password-stdin`) as stdin
/// when given, else stdin closed.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Finished {
    let out = tempfile::tempfile().expect("stdout file");
    let err = tempfile::tempfile().expect("stderr file");
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(out.try_clone().expect("stdout file"))
        .stderr(err.try_clone().expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = input {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        // A command that exits without reading all of it is judged by its exit status.
        let _ = stdin.write_all(input);
    }
    let read = |mut f: &std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = Vec::new();
        f.rewind().and_then(|()| f.read_to_end(&mut s)).expect("read output");
        String::from_utf8_lossy(&s).into_owned()
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                read(&out),
                read(&err)
            );
        }
        std::thread::sleep(POLL);
    };
    Finished {
        status,
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// [`run_with_timeout`], panicking with the output unless the command succeeds; stdout.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> String {
    let f = run_with_timeout(cmd, timeout);
    assert!(
        f.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        f.status,
        f.stdout,
        f.stderr
    );
    f.stdout
}

/// skopeo with a policy of our own (accept anything: the test images are ours and
/// unsigned) and an auth file of its own under `dir`, so neither the host's
/// /etc/containers/policy.json nor anyone's stored registry credentials can make a test
/// pass or fail. Credentials are given per command (`--creds`, `--src-creds`, `--dest-creds`).
pub fn skopeo(dir: &Path) -> Command {
    let policy = dir.join("policy.json");
    if !policy.exists() {
        std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).expect("policy.json");
    }
    let mut c = Command::new("skopeo");
    c.arg("--policy")
        .arg(policy)
        .env("REGISTRY_AUTH_FILE", dir.join("skopeo-auth.json"))
        .env("DOCKER_CONFIG", dir.join("skopeo-docker"));
    c
}

/// sha256 of a file, streaming, as `sha256:hex`.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).expect("read");
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Spawn `cmd` with stdin closed and stdout and stderr going to a new file at `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"))
}

/// Poll `ready` until it holds; after `timeout`, panic with `what` and `context()`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} not ready after {timeout:?}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `cmd` runs and exits 0 (its output discarded).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// SIGTERM a daemon, give it `grace` to exit, then SIGKILL; always reaped.
pub fn terminate(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Lazily unmount everything mounted under `dir`, deepest first: daemons leave network
/// namespaces and snapshot mounts behind that must go before the directory can.
pub fn unmount_under(dir: &Path) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "grep -o ' {}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
            dir.display()
        ))
        .status();
}

/// A management API call with `client` that must answer `want`; its JSON body (`null`
/// when empty).
pub fn api_call(
    client: &reqwest::blocking::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let mut req = client.request(method.clone(), format!("{base}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    assert_eq!(status, want, "{method} {path}: {text}");
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
}

/// The `Authorization` header value for HTTP Basic: `Basic base64(user:secret)`.
pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{secret}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// `user:password` of the system admin, as skopeo's `--creds` and ctr's `--user` take it.
pub fn admin_creds() -> String {
    format!("{ADMIN_USER}:{ADMIN_PASSWORD}")
}

/// [`http_client`] that sends `authorization` on every request.
pub fn client_with_auth(timeout: Duration, authorization: &str) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(authorization).expect("authorization header");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// [`http_client`] that authenticates every request as the system admin (HTTP Basic).
pub fn admin_client(timeout: Duration) -> reqwest::blocking::Client {
    client_with_auth(timeout, &basic(ADMIN_USER, ADMIN_PASSWORD))
}

/// An HTTP client for talking to pier: no proxy (the environment may set one; all traffic
/// here is loopback) and a per-request timeout.
pub fn http_client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// `sha256:hex` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Deterministic, incompressible test bytes (splitmix64 of a counter).
pub fn test_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while out.len() < len {
        let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// A response header that must be there.
pub fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{} answer without {name}: {:?}", r.status(), r.headers()))
        .to_owned()
}

/// The response, if it has the status wanted; else a panic showing the body.
pub fn expect_status(
    r: reqwest::blocking::Response,
    want: reqwest::StatusCode,
    what: &str,
) -> reqwest::blocking::Response {
    let status = r.status();
    if status != want {
        panic!(
            "{what}: expected {want}, got {status}: {}",
            r.text().unwrap_or_default()
        );
    }
    r
}

/// `GET path` on pier as the admin; panics unless the answer is a success.
pub fn admin_get(pier: &Pier, path: &str, accept: &str) -> reqwest::blocking::Response {
    let r = admin_client(API_TIMEOUT)
        .get(format!("{}{path}", pier.url()))
        .header("accept", accept)
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r
}

/// The manifest and the config of one architecture's entry in an index served from `repo`.
pub fn platform_image(
    pier: &Pier,
    repo: &str,
    index: &serde_json::Value,
    arch: &str,
) -> (serde_json::Value, serde_json::Value) {
    let entry = index["manifests"]
        .as_array()
        .expect("index manifests")
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} entry in {index}"));
    let digest = entry["digest"].as_str().expect("entry digest");
    let media_type = entry["mediaType"].as_str().unwrap_or("*/*");
    let manifest: serde_json::Value = admin_get(pier, &format!("/v2/{repo}/manifests/{digest}"), media_type)
        .json()
        .expect("manifest JSON");
    let config_digest = manifest["config"]["digest"].as_str().expect("config digest");
    let config: serde_json::Value = admin_get(pier, &format!("/v2/{repo}/blobs/{config_digest}"), "*/*")
        .json()
        .expect("config JSON");
    (manifest, config)
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_header() {
        assert_eq!(super::basic("robot$ci+b", "s3cr:t"), "Basic cm9ib3QkY2krYjpzM2NyOnQ=");
    }
}
