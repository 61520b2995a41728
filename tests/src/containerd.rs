//! A private containerd for tests: its own root, state and socket, the CRI plugin off, so
//! `ctr` can pull from pier and run images without touching anything on the host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long containerd may take to answer on its socket.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running containerd.
pub struct Containerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Start containerd under a fresh temporary directory and wait until `ctr` reaches it.
    pub fn start() -> Containerd {
        // Short path: the socket path must fit in a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("ctd")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path();
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("c.sock").display(),
            ),
        )
        .expect("containerd config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ok = c
                .ctr()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if ok.is_ok_and(|s| s.success()) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not start; log:\n{}",
                c.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    /// A `ctr` command bound to this containerd.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(self.socket()).stdin(Stdio::null());
        c
    }

    /// What containerd logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The root directory (for inspection).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Snapshots of the native snapshotter may be bind-mounted while a task runs; a task
        // that outlived its test leaves mounts under root that must go before the temp dir.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.path().display()
            ))
            .status();
    }
}
