//! A private containerd for tests: its own root, state and socket, the CRI plugin off, so
//! `ctr` can pull from pier and run images without touching anything on the host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long containerd may take to answer on its socket.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping containerd may take before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

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
        let child = crate::spawn_logged(
            Command::new("containerd").arg("--config").arg(&config),
            &d.join("containerd.log"),
        );
        let c = Containerd {
            child: Some(child),
            dir,
        };
        crate::wait_until(
            "containerd",
            READY_TIMEOUT,
            || crate::succeeds(c.ctr().arg("version")),
            || c.log_text(),
        );
        c
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
            crate::terminate(&mut c, STOP_TIMEOUT);
        }
        crate::unmount_under(self.dir.path());
    }
}
