//! The real Helm client, with every directory it reads or writes inside a test's temporary
//! directory, so the host's Helm or Docker configuration (credentials, repositories, cache)
//! cannot leak in; and a small chart to push.
//!
//! No Kubernetes cluster is needed: `package`, `push`, `pull`, `show`, `template` and
//! `registry login` are all client-side or registry-only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Finished, run_with_input};

/// Upper bound on one Helm command: each moves a few hundred bytes over loopback, so a
/// command still running after this is hung, not slow.
pub const HELM_TIMEOUT: Duration = Duration::from_secs(60);
/// Appears only in the chart's values.yaml, so finding it in rendered output proves the
/// template was rendered from the pulled chart's values.
pub const GREETING: &str = "hello-from-pier-values";

/// Helm with its own home.
pub struct Helm {
    home: PathBuf,
}

impl Helm {
    /// Helm whose config, cache, data and registry credentials live under `home`.
    pub fn new(home: &Path) -> Helm {
        std::fs::create_dir_all(home).expect("helm home");
        Helm {
            home: home.to_path_buf(),
        }
    }

    /// A `helm` command with the isolated environment.
    pub fn command(&self) -> Command {
        let home = &self.home;
        let mut c = Command::new("helm");
        c.env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HELM_REGISTRY_CONFIG", home.join("config/registry/config.json"))
            // Helm falls back to Docker's credential store for registries.
            .env("DOCKER_CONFIG", home.join("docker"));
        c
    }

    /// Run Helm (stdin closed), killed after [`HELM_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> Finished {
        run_with_input(self.command().args(args), None, HELM_TIMEOUT)
    }

    /// Helm that must succeed; returns stdout and stderr together (Helm splits its progress
    /// lines between them differently across versions). `context` is added to the panic.
    pub fn ok(&self, args: &[&str], context: &dyn Fn() -> String) -> String {
        let f = self.run(args);
        assert!(
            f.status.success(),
            "helm {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}\n{}",
            f.status,
            f.stdout,
            f.stderr,
            context()
        );
        format!("{}{}", f.stdout, f.stderr)
    }

    /// Helm that must fail; returns its stderr.
    pub fn err(&self, args: &[&str]) -> String {
        let f = self.run(args);
        assert!(
            !f.status.success(),
            "helm {args:?} succeeded but must fail\nstdout:\n{}\nstderr:\n{}",
            f.stdout,
            f.stderr
        );
        f.stderr
    }

    /// `helm registry login HOST --username USER --password-stdin --plain-http`: the secret
    /// on stdin, the name as one argument (robot names hold `$`). Returns how it went.
    pub fn login(&self, host: &str, user: &str, secret: &str) -> Finished {
        run_with_input(
            self.command().args([
                "registry",
                "login",
                host,
                "--username",
                user,
                "--password-stdin",
                "--plain-http",
            ]),
            Some(secret.as_bytes()),
            HELM_TIMEOUT,
        )
    }

    /// [`Helm::login`] that must succeed.
    pub fn login_ok(&self, host: &str, user: &str, secret: &str) {
        let f = self.login(host, user, secret);
        assert!(
            f.status.success(),
            "helm registry login {host} as {user} failed with {}\nstdout:\n{}\nstderr:\n{}",
            f.status,
            f.stdout,
            f.stderr
        );
    }

    /// `helm registry logout HOST`: later commands are anonymous.
    pub fn logout(&self, host: &str) {
        self.ok(&["registry", "logout", host], &String::new);
    }

    /// Write chart `chart` at `version` under `work/src` and `helm package` it into
    /// `work/packaged`; returns the .tgz path. The chart renders one ConfigMap named
    /// `<release>-<chart>` carrying [`GREETING`] and the chart version.
    pub fn package(&self, work: &Path, chart: &str, version: &str) -> PathBuf {
        let src = work.join("src").join(version).join(chart);
        std::fs::create_dir_all(src.join("templates")).expect("chart dirs");
        let files = [
            (
                "Chart.yaml",
                format!("apiVersion: v2\nname: {chart}\nversion: {version}\ndescription: pier e2e chart\n"),
            ),
            ("values.yaml", format!("greeting: {GREETING}\n")),
            (
                "templates/configmap.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\n\
                 data:\n  greeting: {{ .Values.greeting | quote }}\n  version: {{ .Chart.Version | quote }}\n"
                    .to_owned(),
            ),
        ];
        for (name, text) in files {
            std::fs::write(src.join(name), text).expect("write chart file");
        }
        let out_dir = work.join("packaged");
        self.ok(&["package", path_str(&src), "-d", path_str(&out_dir)], &String::new);
        let tgz = out_dir.join(format!("{chart}-{version}.tgz"));
        assert!(tgz.is_file(), "helm package did not write {}", tgz.display());
        tgz
    }

    /// `helm push TGZ oci://… --plain-http`, which must succeed; the manifest digest Helm
    /// reports.
    pub fn push(&self, tgz: &Path, oci_project: &str, context: &dyn Fn() -> String) -> String {
        let out = self.ok(&["push", path_str(tgz), oci_project, "--plain-http"], context);
        let digest = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Digest: "))
            .unwrap_or_else(|| panic!("helm push output names no digest:\n{out}"))
            .trim()
            .to_owned();
        assert!(
            digest.starts_with("sha256:") && digest.len() == "sha256:".len() + 64,
            "not a sha256 digest: {digest:?}"
        );
        digest
    }

    /// `helm pull REFERENCE [--version V] --plain-http` into `dest`, a fresh directory that
    /// must end up holding exactly one file; returns it.
    pub fn pull(&self, reference: &str, version: Option<&str>, dest: &Path, context: &dyn Fn() -> String) -> PathBuf {
        // Helm does not create the destination directory itself.
        std::fs::create_dir_all(dest).expect("pull dir");
        let mut args = vec!["pull", reference, "--plain-http", "-d", path_str(dest)];
        if let Some(v) = version {
            args.extend(["--version", v]);
        }
        self.ok(&args, context);
        let files: Vec<PathBuf> = std::fs::read_dir(dest)
            .expect("read pull dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        assert_eq!(files.len(), 1, "helm pull wrote {files:?}");
        files.into_iter().next().expect("one file")
    }
}

/// A path as the `&str` a command line wants.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}
