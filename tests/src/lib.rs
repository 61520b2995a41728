//! Harness for pier's end-to-end tests: start the real `pier` binary on a loopback port,
//! find the real client tools, and fail (not skip) under `CI` when one is missing.
#![deny(missing_docs)]

pub mod containerd;
pub mod docker;
pub mod images;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a freshly started pier may take to answer `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

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
