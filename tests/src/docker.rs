//! A private `dockerd` for tests: its own data root, exec root, socket, pid file and (empty)
//! daemon config under a short temporary directory, no networking set up (tests run
//! containers with `--network none`), stopped and cleaned up on drop — also when the test
//! panics, since the value is dropped while unwinding.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Finished, run_with_input, run_with_timeout};

/// How long dockerd may take to answer (it is ready in well under a second here).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping dockerd may take before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one docker client command may take (pulls and pushes here are a few MB over
/// loopback; a hang must fail the test, not stall it).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The docker client used: Debian's docker.io client at `/usr/bin/docker`, the same release
/// (20.10) as its dockerd, so nothing depends on API-version negotiation or on a newer
/// client's output format. `/usr/local/bin/docker` (28.x) shadows it on PATH here, which is
/// why PATH is only the fallback.
pub fn docker_client() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        crate::which("docker").expect("a docker client")
    }
}

/// A running dockerd.
pub struct Dockerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Start dockerd and wait until the client reaches it.
    pub fn start() -> Dockerd {
        // Short path: the socket path must fit in a sockaddr_un (108 bytes), and $TMPDIR
        // may be long.
        let dir = tempfile::Builder::new()
            .prefix("dk")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path();
        // An empty config of our own: the host's /etc/docker/daemon.json (mirrors, storage
        // driver, insecure registries) must not change what the test sees.
        std::fs::write(d.join("daemon.json"), "{}").expect("daemon.json");
        std::fs::create_dir_all(d.join("client")).expect("client config dir");
        let child = crate::spawn_logged(
            Command::new("dockerd")
                .arg("--config-file")
                .arg(d.join("daemon.json"))
                .args([
                    "--storage-driver=vfs",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--bridge=none",
                ])
                .arg("--data-root")
                .arg(d.join("d"))
                .arg("--exec-root")
                .arg(d.join("e"))
                .arg("-H")
                .arg(format!("unix://{}", d.join("s").display()))
                .arg("--pidfile")
                .arg(d.join("p")),
            &d.join("dockerd.log"),
        );
        // Built before waiting: if dockerd never answers, the panic drops it and cleans up.
        let mut dk = Dockerd {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = dk.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dockerd exited early with {status}; log:\n{}", dk.log_text());
            }
            let probe = run_with_timeout(
                dk.docker().args(["version", "--format", "{{.Server.Version}}"]),
                READY_TIMEOUT,
            );
            if probe.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not ready after {READY_TIMEOUT:?}: {}\nlog:\n{}",
                probe.stderr,
                dk.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dk
    }

    /// A docker client command bound to this daemon, isolated from the user's client
    /// config (credential helpers, contexts) and from TLS settings meant for other daemons.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(docker_client());
        c.env("DOCKER_HOST", format!("unix://{}", self.dir.path().join("s").display()))
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        c
    }

    /// Run a docker command (bounded by [`COMMAND_TIMEOUT`]); stdout, or a panic with its
    /// output and the daemon's log tail.
    pub fn run(&self, args: &[&str]) -> String {
        let f = run_with_timeout(self.docker().args(args), COMMAND_TIMEOUT);
        assert!(
            f.status.success(),
            "docker {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}\ndockerd log tail:\n{}",
            f.status,
            f.stdout,
            f.stderr,
            self.log_tail()
        );
        f.stdout
    }

    /// `docker run --rm --network none --pull never --platform P IMAGE`: the image exactly as
    /// the last pull left it (20.10 keeps one platform per tag, so call this right after
    /// `pull --platform`); its stdout.
    pub fn run_pulled(&self, platform: &str, image: &str) -> String {
        self.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--pull",
            "never",
            "--platform",
            platform,
            image,
        ])
    }

    /// Run a docker command expected to fail; its stderr and stdout.
    pub fn run_failing(&self, args: &[&str]) -> String {
        let f = run_with_timeout(self.docker().args(args), COMMAND_TIMEOUT);
        assert!(
            !f.status.success(),
            "docker {args:?} unexpectedly succeeded:\n{}",
            f.stdout
        );
        format!("{}{}", f.stderr, f.stdout)
    }

    /// `docker login HOST -u USER --password-stdin`: the secret goes in on stdin, the name
    /// as one argument (robot names hold `$`; no shell is involved). The credentials land in
    /// this daemon's own client config. Returns how it went.
    pub fn login(&self, host: &str, user: &str, secret: &str) -> Finished {
        run_with_input(
            self.docker().args(["login", host, "-u", user, "--password-stdin"]),
            Some(secret.as_bytes()),
            COMMAND_TIMEOUT,
        )
    }

    /// [`Dockerd::login`] that must succeed.
    pub fn login_ok(&self, host: &str, user: &str, secret: &str) {
        let f = self.login(host, user, secret);
        assert!(
            f.status.success() && f.stdout.contains("Login Succeeded"),
            "docker login {host} as {user} failed with {}\nstdout:\n{}\nstderr:\n{}\ndockerd log tail:\n{}",
            f.status,
            f.stdout,
            f.stderr,
            self.log_tail()
        );
    }

    /// `docker login` as the system admin.
    pub fn login_admin(&self, host: &str) {
        self.login_ok(host, crate::ADMIN_USER, crate::ADMIN_PASSWORD);
    }

    /// `docker logout HOST`: later commands are anonymous.
    pub fn logout(&self, host: &str) {
        self.run(&["logout", host]);
    }

    /// Import a root filesystem holding only the static hello binary of `arch` (no internet,
    /// so no base image) as `image`, with `/hello` as its entrypoint. `work` holds the tar.
    pub fn import_hello(&self, work: &Path, arch: &crate::images::Arch, image: &str) {
        let rootfs = work.join(format!("rootfs-{}.tar", arch.architecture));
        std::fs::write(
            &rootfs,
            crate::images::tar_with("hello", &crate::images::hello_binary(arch)),
        )
        .expect("rootfs tar");
        self.run(&[
            "import",
            "--change",
            r#"ENTRYPOINT ["/hello"]"#,
            rootfs.to_str().expect("UTF-8 temp path"),
            image,
        ]);
    }

    /// What dockerd logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        const LINES: usize = 40;
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LINES)..].join("\n")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // dockerd stops its containers and its managed containerd on SIGTERM; `terminate`
        // kills it after STOP_TIMEOUT. Then the netns mount it leaves behind
        // (e/netns/default) goes, and TempDir removes the rest.
        if let Some(mut c) = self.child.take() {
            crate::terminate(&mut c, STOP_TIMEOUT);
        }
        crate::unmount_under(self.dir.path());
    }
}
