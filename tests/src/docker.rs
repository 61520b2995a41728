//! A private `dockerd` for tests: its own data root, exec root, socket and pid file under a
//! short temporary directory, no networking set up (tests run containers with
//! `--network none`), stopped and cleaned up on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long dockerd may take to answer (it is ready in well under a second here).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping dockerd may take before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The docker client used: the one shipped with Debian's docker.io, which matches its
/// daemon (20.10); a newer client elsewhere on PATH may also exist and is not used.
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
        // Short path: the socket path must fit in a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("dk")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path();
        let child = crate::spawn_logged(
            Command::new("dockerd")
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
        let dk = Dockerd {
            child: Some(child),
            dir,
        };
        crate::wait_until(
            "dockerd",
            READY_TIMEOUT,
            || crate::succeeds(dk.docker().arg("version")),
            || dk.log_text(),
        );
        dk
    }

    /// A docker client command bound to this daemon.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(docker_client());
        c.env("DOCKER_HOST", format!("unix://{}", self.dir.path().join("s").display()))
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .stdin(Stdio::null());
        c
    }

    /// Run a docker command; stdout, or a panic with its output.
    pub fn run(&self, args: &[&str]) -> String {
        crate::run(self.docker().args(args))
    }

    /// Run a docker command expected to fail; its stderr and stdout.
    pub fn run_failing(&self, args: &[&str]) -> String {
        let out = self.docker().args(args).output().expect("run docker");
        assert!(!out.status.success(), "docker {args:?} unexpectedly succeeded");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )
    }

    /// What dockerd logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::terminate(&mut c, STOP_TIMEOUT);
        }
        crate::unmount_under(self.dir.path());
    }
}
