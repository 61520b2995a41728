//! `pier inspect`, `pier copy`, `pier pull` and `pier index create` end to end: the real
//! `pier` binary, logged in with `pier login` (its own `PIER_CONFIG_DIR`), against a real
//! `pier serve`; what they produce is checked with other clients — docker pulls and runs
//! the merged index per platform, skopeo reads the layouts written — and bad input is
//! refused with a clear message and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pier_e2e::docker::Dockerd;
use pier_e2e::images::{self, ARCHES, Arch};
use pier_e2e::{
    ADMIN_PASSWORD, ADMIN_USER, API_TIMEOUT, Finished, Pier, SKOPEO_TIMEOUT, admin_client, free_port, pier_bin,
    require_tools, run_ok, run_with_input, run_with_timeout, skopeo,
};
use pier_oci::media;
use serde_json::{Value, json};

/// How long one `pier` image command may take (a few small images over loopback).
const CLI_TIMEOUT: Duration = Duration::from_secs(180);
/// Private projects: every command has to authenticate.
const PROJECT: &str = "proj";
const OTHER_PROJECT: &str = "other";
const AMD64: Arch = ARCHES[0];
const ARM64: Arch = ARCHES[1];

/// The `pier` binary with a credentials directory of its own and none of the environment
/// that would pick another server or other credentials (unless a test sets it).
struct PierCli {
    config_dir: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl PierCli {
    /// `pier login SERVER -u USER --password-stdin` into a fresh config directory under `dir`.
    fn login(pier: &Pier, dir: &Path, user: &str, password: &str) -> PierCli {
        let cli = PierCli {
            config_dir: dir.join(format!("config-{user}")),
            env: Vec::new(),
        };
        let f = run_with_input(
            &mut cli.command(&["login", &pier.url(), "-u", user, "--password-stdin"]),
            Some(password.as_bytes()),
            CLI_TIMEOUT,
        );
        assert!(f.status.success(), "pier login as {user} failed:\n{}", show(&f));
        cli
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(pier_bin());
        cmd.args(args)
            .env("PIER_CONFIG_DIR", &self.config_dir)
            .env_remove("PIER_SERVER")
            .env_remove("PIER_USERNAME")
            .env_remove("PIER_PASSWORD");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Finished {
        run_with_timeout(&mut self.command(args), CLI_TIMEOUT)
    }

    /// stdout of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let f = self.run(args);
        assert!(f.status.success(), "pier {args:?} failed:\n{}", show(&f));
        f.stdout
    }

    /// The JSON a command prints with `--json`.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("pier {all:?} printed no JSON ({e}):\n{text}"))
    }

    /// stderr of a command that must fail (exit status 1, one `error:` line, no panic).
    fn fails(&self, args: &[&str]) -> String {
        let f = self.run(args);
        assert_eq!(
            f.status.code(),
            Some(1),
            "pier {args:?} must fail with 1:\n{}",
            show(&f)
        );
        assert!(f.stderr.starts_with("error: "), "pier {args:?}:\n{}", show(&f));
        assert!(!f.stderr.contains("panicked"), "pier {args:?}:\n{}", show(&f));
        f.stderr
    }
}

fn show(f: &Finished) -> String {
    format!("status {}\nstdout:\n{}\nstderr:\n{}", f.status, f.stdout, f.stderr)
}

/// Whether `repo:reference` resolves in pier (read as the system admin).
fn manifest_exists(pier: &Pier, repo: &str, reference: &str) -> bool {
    let r = admin_client(API_TIMEOUT)
        .head(format!("{}/v2/{repo}/manifests/{reference}", pier.url()))
        .header("accept", media::MANIFEST_TYPES.join(", "))
        .send()
        .unwrap_or_else(|e| panic!("HEAD {repo}:{reference}: {e}"));
    match r.status().as_u16() {
        200 => true,
        404 => false,
        s => panic!("HEAD {repo}:{reference}: unexpected {s}"),
    }
}

/// Platforms of an `Inspection` (`pier inspect --json`).
fn inspected_platforms(inspection: &Value) -> Vec<String> {
    inspection["images"]
        .as_array()
        .unwrap_or_else(|| panic!("no images: {inspection}"))
        .iter()
        .map(|i| i["platform"].as_str().expect("platform").to_owned())
        .collect()
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// Start pier with the private projects and log the CLI in as the system admin.
fn setup(dir: &Path) -> (Pier, PierCli) {
    let pier = Pier::start(&dir.join("data"));
    pier.create_project(PROJECT, false);
    pier.create_project(OTHER_PROJECT, false);
    let cli = PierCli::login(&pier, dir, ADMIN_USER, ADMIN_PASSWORD);
    (pier, cli)
}

/// A copy of the single-platform layout `src` in `dir`, tagged `tag`, whose image is
/// rebuilt with one more config label: another image (other config and manifest digests)
/// for the same platform, with the same layer. The layout's tag names the image manifest
/// itself (not an index). Returns the new manifest's digest.
fn rebuilt_image(src: &images::Layout, dir: &Path, tag: &str) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::copy(src.dir.join("oci-layout"), dir.join("oci-layout")).expect("oci-layout");
    for entry in std::fs::read_dir(src.dir.join("blobs/sha256")).expect("blobs") {
        let entry = entry.expect("blob");
        std::fs::copy(entry.path(), dir.join("blobs/sha256").join(entry.file_name())).expect("copy blob");
    }
    let blob = |digest: &str| -> Value {
        let bytes = std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).expect("read blob");
        serde_json::from_slice(&bytes).expect("JSON blob")
    };
    let put = |value: &Value| -> (String, usize) {
        let bytes = serde_json::to_vec(value).expect("JSON");
        let digest = images::sha256(&bytes);
        std::fs::write(dir.join("blobs/sha256").join(&digest[7..]), &bytes).expect("write blob");
        (digest, bytes.len())
    };
    let index = blob(&src.index_digest);
    let mut manifest = blob(index["manifests"][0]["digest"].as_str().expect("entry digest"));
    let mut config = blob(manifest["config"]["digest"].as_str().expect("config digest"));
    config["config"]["Labels"]["org.pier.test.rebuilt"] = json!("yes");
    let (config_digest, config_size) = put(&config);
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_size);
    let (digest, size) = put(&manifest);
    let top = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [{
            "mediaType": media::OCI_MANIFEST, "digest": digest, "size": size,
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).expect("JSON")).expect("index.json");
    digest
}

/// The issue's "done when": an amd64-only and an arm64-only image, pushed separately (into
/// two projects), merged with `pier index create`; docker pulls each platform of the merged
/// tag and runs it. Then a duplicate platform is refused (the index is unchanged) unless
/// `--replace`.
#[test]
fn index_create_merges_separate_builds_that_docker_runs() {
    const TEST: &str = "index_create_merges_separate_builds_that_docker_runs";
    if !require_tools(TEST, &["dockerd", "docker"]) || !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pier, cli) = setup(dir.path());
    let host = pier.host();

    // Two separate single-arch builds (each layout an index of one image), pushed as single
    // images with `pier copy --platform`, the arm64 one into another project.
    let amd = images::build_layout(&dir.path().join("amd"), "1.0", &[AMD64]);
    let arm = images::build_layout(&dir.path().join("arm"), "1.0", &[ARM64]);
    let amd_ref = format!("{host}/{PROJECT}/app-amd64:1.0");
    let arm_ref = format!("{host}/{OTHER_PROJECT}/app-arm64:1.0");
    let pushed = cli.json(&["copy", &oci(&amd.dir, "1.0"), &amd_ref, "--platform", "amd64"]);
    assert_eq!(pushed["media_type"], media::OCI_MANIFEST, "{pushed}");
    assert_eq!(pushed["platforms"], json!(["linux/amd64"]), "{pushed}");
    assert_eq!(pushed["blobs_copied"], 2, "config and layer: {pushed}");
    // Without a tag the destination takes the source's (1.0); the human summary names it.
    let out = cli.ok(&[
        "copy",
        &oci(&arm.dir, "1.0"),
        &format!("{host}/{OTHER_PROJECT}/app-arm64"),
        "--platform",
        "aarch64",
    ]);
    assert!(
        out.starts_with("copied ") && out.contains(&arm_ref) && out.contains("linux/arm64/v8"),
        "{out}"
    );
    let single = cli.json(&["inspect", &arm_ref]);
    assert_eq!(single["index"], false, "{single}");
    assert_eq!(inspected_platforms(&single), ["linux/arm64/v8"]);

    // Merged: both entries, blobs mounted from the two repositories (same registry).
    let target = format!("{host}/{PROJECT}/app:1.0");
    let report = cli.json(&["index", "create", &target, "--from", &amd_ref, "--from", &arm_ref]);
    let platforms: Vec<&str> = report["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {report}"))
        .iter()
        .map(|e| e["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"], "{report}");
    assert_eq!(report["entries"][1]["from"], arm_ref.as_str(), "{report}");
    assert_eq!(
        (&report["blobs_mounted"], &report["blobs_copied"]),
        (&json!(4), &json!(0)),
        "{report}"
    );
    let index_digest = report["digest"].as_str().expect("digest").to_owned();
    let seen = cli.json(&["inspect", &target]);
    assert_eq!(seen["index"], true, "{seen}");
    assert_eq!(seen["digest"], index_digest.as_str(), "{seen}");
    assert_eq!(inspected_platforms(&seen), ["linux/amd64", "linux/arm64/v8"]);
    // The table: what the reference is, then one row per platform.
    let table = cli.ok(&["inspect", &target]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("index") && lines[0].contains(&index_digest) && lines[0].contains(media::OCI_INDEX),
        "{table}"
    );
    assert!(lines[1].starts_with("PLATFORM") && lines.len() == 4, "{table}");

    // docker pulls each platform of the merged tag and runs it (20.10 keeps one platform per
    // tag: run right after each pull, with `--pull never`).
    let dk = Dockerd::start();
    dk.login_admin(&host);
    for (platform, uname) in [("linux/amd64", AMD64.uname), ("linux/arm64", ARM64.uname)] {
        dk.run(&["pull", "--platform", platform, &target]);
        let out = dk.run_pulled(platform, &target);
        assert_eq!(out.trim(), uname, "{platform}");
    }
    drop(dk);

    // amd64 again: refused, naming the platform and --replace; the index is unchanged.
    let err = cli.fails(&["index", "create", &target, "--append", "--from", &amd_ref]);
    assert!(
        err.contains("linux/amd64") && err.contains("--replace") && err.contains(&target),
        "{err}"
    );
    assert_eq!(cli.json(&["inspect", &target])["digest"], index_digest.as_str());

    // With --replace a rebuilt amd64 image (from a layout) takes the entry's place.
    let rebuilt_dir = dir.path().join("amd-rebuilt");
    let rebuilt = rebuilt_image(&amd, &rebuilt_dir, "2.0");
    let replaced = cli.json(&[
        "index",
        "create",
        &target,
        "--append",
        "--replace",
        "--from",
        &oci(&rebuilt_dir, "2.0"),
    ]);
    assert_eq!(replaced["entries"][0]["digest"], rebuilt.as_str(), "{replaced}");
    assert!(
        replaced["entries"][0]["from"].as_str().unwrap().starts_with("oci:"),
        "{replaced}"
    );
    // Its layer was there; only the new config was sent.
    assert_eq!(
        (&replaced["blobs_copied"], &replaced["blobs_present"]),
        (&json!(1), &json!(1)),
        "{replaced}"
    );
    let after = cli.json(&["inspect", &target]);
    assert_ne!(after["digest"], index_digest.as_str(), "{after}");
    assert_eq!(after["digest"], replaced["digest"], "{after}");
    assert_eq!(inspected_platforms(&after), ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(after["images"][0]["digest"], rebuilt.as_str(), "{after}");
    assert_eq!(after["images"][1]["digest"], seen["images"][1]["digest"], "{after}");
}

/// `pier copy` of a multi-arch index between repositories (mounted) and into an OCI layout
/// (the same index, byte for byte, as skopeo reads it); an index without --all/--platform
/// is refused with its platforms; `pier pull` writes one platform's image.
#[test]
fn copy_and_pull_between_registries_and_layouts() {
    const TEST: &str = "copy_and_pull_between_registries_and_layouts";
    if !require_tools(TEST, &["skopeo"]) || !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pier, cli) = setup(dir.path());
    let host = pier.host();
    let layout = images::build_layout(&dir.path().join("layout"), "1.0", &[AMD64, ARM64]);
    let src = format!("{host}/{PROJECT}/src:1.0");

    // Into the registry, whole.
    let pushed = cli.json(&["copy", "--all", &oci(&layout.dir, "1.0"), &src]);
    assert_eq!(pushed["digest"], layout.index_digest.as_str(), "{pushed}");
    assert_eq!(pushed["media_type"], media::OCI_INDEX, "{pushed}");
    assert_eq!(
        pushed["platforms"],
        json!(["linux/amd64", "linux/arm64/v8"]),
        "{pushed}"
    );
    assert_eq!(
        (&pushed["blobs_copied"], &pushed["blobs_present"]),
        (&json!(4), &json!(0)),
        "{pushed}"
    );

    // Without --all or --platform an index is refused before anything is written, with its
    // platforms listed.
    let mirror = format!("{host}/{OTHER_PROJECT}/mirror");
    let err = cli.fails(&["copy", &src, &mirror]);
    assert!(
        err.contains("linux/amd64, linux/arm64/v8") && err.contains("--all") && err.contains("--platform"),
        "{err}"
    );
    assert!(!manifest_exists(&pier, "other/mirror", "1.0"));

    // To another repository (and project) of the same registry: mounted, same digest; the
    // tag is the source's.
    let copied = cli.json(&["copy", "--all", &src, &mirror]);
    assert_eq!(copied["digest"], layout.index_digest.as_str(), "{copied}");
    assert_eq!(
        (&copied["blobs_mounted"], &copied["blobs_copied"]),
        (&json!(4), &json!(0)),
        "{copied}"
    );
    assert!(manifest_exists(&pier, "other/mirror", "1.0"));
    // The human summary says the same.
    let line = cli.ok(&["copy", "--all", &src, &format!("{host}/{PROJECT}/again")]);
    assert!(line.contains("0 blobs sent") && line.contains("4 mounted"), "{line}");
    let line = cli.ok(&["copy", "--all", &src, &format!("{host}/{PROJECT}/again:2.0")]);
    assert!(
        line.contains("0 blobs sent") && line.contains("4 already there"),
        "{line}"
    );

    // Out into a layout: skopeo sees the same index (its raw bytes hash to the digest).
    let out = dir.path().join("out");
    let written = cli.json(&[
        "copy",
        "--all",
        &format!("{mirror}:1.0"),
        &format!("oci:{}", out.display()),
    ]);
    assert_eq!(written["digest"], layout.index_digest.as_str(), "{written}");
    assert_eq!(images::layout_tag_digest(&out, "1.0"), layout.index_digest);
    let raw = run_ok(
        skopeo(dir.path()).args(["inspect", "--raw", &oci(&out, "1.0")]),
        SKOPEO_TIMEOUT,
    );
    assert_eq!(images::sha256(raw.as_bytes()), layout.index_digest);
    assert_eq!(images::layout_blobs(&out), images::layout_blobs(&layout.dir));

    // Two platforms picked: a new index of them.
    let picked = cli.json(&[
        "copy",
        &src,
        &format!("{host}/{PROJECT}/picked:1.0"),
        "--platform",
        "arm64",
        "--platform",
        "x86_64",
    ]);
    assert_eq!(picked["media_type"], media::OCI_INDEX, "{picked}");
    assert_eq!(
        picked["platforms"],
        json!(["linux/arm64/v8", "linux/amd64"]),
        "{picked}"
    );
    let seen = cli.json(&["inspect", &format!("{host}/{PROJECT}/picked:1.0")]);
    assert_eq!(inspected_platforms(&seen), ["linux/arm64/v8", "linux/amd64"], "{seen}");

    // pull: one platform's image in a layout, tagged as the reference.
    let pulled = dir.path().join("pulled");
    let report = cli.json(&[
        "pull",
        &format!("{mirror}:1.0"),
        "--platform",
        "aarch64",
        "--output",
        pulled.to_str().unwrap(),
    ]);
    assert_eq!(report["media_type"], media::OCI_MANIFEST, "{report}");
    let inspected = run_ok(
        skopeo(dir.path()).args(["inspect", &oci(&pulled, "1.0")]),
        SKOPEO_TIMEOUT,
    );
    let inspected: Value = serde_json::from_str(&inspected).expect("skopeo inspect JSON");
    assert_eq!(inspected["Architecture"], "arm64", "{inspected}");
    assert_eq!(inspected["Os"], "linux", "{inspected}");
    assert_eq!(inspected["Digest"], report["digest"], "{inspected}");
    let line = cli.ok(&[
        "pull",
        &format!("{mirror}:1.0"),
        "--platform",
        "amd64",
        "-o",
        &format!("oci:{}:amd", pulled.display()),
    ]);
    assert!(
        line.starts_with("pulled linux/amd64 of ") && line.contains(":amd:"),
        "{line}"
    );
    let inspected = run_ok(
        skopeo(dir.path()).args(["inspect", &oci(&pulled, "amd")]),
        SKOPEO_TIMEOUT,
    );
    assert!(inspected.contains(r#""Architecture": "amd64""#), "{inspected}");
}

/// Bad references, missing tags, absent platforms, denied pushes and a registry that is
/// down: each fails with exit status 1 and a message that says what is wrong, and stores
/// nothing.
#[test]
fn bad_inputs_fail_clearly_and_store_nothing() {
    const TEST: &str = "bad_inputs_fail_clearly_and_store_nothing";
    if !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pier, cli) = setup(dir.path());
    let host = pier.host();
    let layout = images::build_layout(&dir.path().join("layout"), "1.0", &[AMD64, ARM64]);
    let src = oci(&layout.dir, "1.0");
    cli.ok(&["copy", "--all", &src, &format!("{host}/{PROJECT}/app:1.0")]);

    // A reference that is not one.
    let bad = format!("{host}/Bad Name");
    let err = cli.fails(&["inspect", &bad]);
    assert!(
        err.contains("not a valid image reference") && err.contains(&bad),
        "{err}"
    );
    let err = cli.fails(&["copy", "--all", &src, &format!("{host}/{PROJECT}/x:bad tag")]);
    assert!(err.contains("not a valid image reference"), "{err}");
    let err = cli.fails(&["index", "create", &format!("{host}/{PROJECT}/x"), "--from", &src]);
    assert!(err.contains("needs a tag"), "{err}");
    assert!(!manifest_exists(&pier, "proj/x", "latest"));

    // A tag that does not exist.
    let missing = format!("{host}/{PROJECT}/app:nope");
    let err = cli.fails(&["inspect", &missing]);
    assert!(err.contains(&missing) && err.contains("not found"), "{err}");
    let err = cli.fails(&["copy", &missing, &format!("{host}/{PROJECT}/x:1.0")]);
    assert!(err.contains("not found"), "{err}");
    let err = cli.fails(&[
        "index",
        "create",
        &format!("{host}/{PROJECT}/x:1.0"),
        "--from",
        &missing,
    ]);
    assert!(err.contains(&missing) && err.contains("not found"), "{err}");
    assert!(!manifest_exists(&pier, "proj/x", "1.0"));
    let err = cli.fails(&["inspect", &oci(&layout.dir, "nope")]);
    assert!(err.contains("not found"), "{err}");

    // A platform the image does not have: named, with the ones it has.
    let err = cli.fails(&[
        "copy",
        &src,
        &format!("{host}/{PROJECT}/x:1.0"),
        "--platform",
        "loongarch64",
    ]);
    assert!(
        err.contains("no image for linux/loong64") && err.contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    assert!(!manifest_exists(&pier, "proj/x", "1.0"));
    let pulled = dir.path().join("pulled");
    let err = cli.fails(&[
        "pull",
        &format!("{host}/{PROJECT}/app:1.0"),
        "--platform",
        "mips64el",
        "--output",
        pulled.to_str().unwrap(),
    ]);
    assert!(err.contains("no image for linux/mips64le"), "{err}");
    assert!(!pulled.exists(), "a failed pull left {}", pulled.display());
    // A platform that does not exist at all: clap's usage error (exit 2), naming it.
    let f = cli.run(&["pull", &src, "--platform", "s390x", "-o", pulled.to_str().unwrap()]);
    assert_eq!(f.status.code(), Some(2), "{}", show(&f));
    assert!(f.stderr.contains("s390x"), "{}", show(&f));

    // Pushing without a role in a private project: denied, and no tag appears.
    pier.create_user("mallory", "mallory-Secret-1");
    let mallory = PierCli {
        config_dir: dir.path().join("config-none"),
        env: vec![
            ("PIER_SERVER", pier.url()),
            ("PIER_USERNAME", "mallory".into()),
            ("PIER_PASSWORD", "mallory-Secret-1".into()),
        ],
    };
    // The registry is the current server (PIER_SERVER): references name no host.
    let err = mallory.fails(&["copy", "--all", &src, &format!("{PROJECT}/denied:1.0")]);
    assert!(err.contains("denied") && err.contains("proj/denied"), "{err}");
    let err = mallory.fails(&["index", "create", &format!("{PROJECT}/denied:1.0"), "--from", &src]);
    assert!(err.contains("denied"), "{err}");
    // A guest may pull but not push: the message says push.
    pier.create_user("gina", "gina-Secret-1");
    pier.add_member(PROJECT, "gina", "guest");
    let gina = PierCli::login(&pier, dir.path(), "gina", "gina-Secret-1");
    let err = gina.fails(&[
        "copy",
        "--all",
        &format!("{host}/{PROJECT}/app:1.0"),
        &format!("{host}/{PROJECT}/denied:1.0"),
    ]);
    assert!(err.contains("push denied"), "{err}");
    assert!(!manifest_exists(&pier, "proj/denied", "1.0"));
    // A wrong password: the login is what is denied.
    let wrong = PierCli {
        config_dir: dir.path().join("config-none"),
        env: vec![
            ("PIER_SERVER", pier.url()),
            ("PIER_USERNAME", "gina".into()),
            ("PIER_PASSWORD", "not-her-password".into()),
        ],
    };
    let err = wrong.fails(&["inspect", &format!("{PROJECT}/app:1.0")]);
    assert!(err.contains("denied"), "{err}");

    // A registry that is down: unreachable, naming the host.
    let gone = format!("127.0.0.1:{}", free_port());
    let err = cli.fails(&["inspect", &format!("{gone}/{PROJECT}/app:1.0")]);
    assert!(err.contains("unreachable") && err.contains(&gone), "{err}");
    let err = cli.fails(&["copy", "--all", &src, &format!("{gone}/{PROJECT}/app:1.0")]);
    assert!(err.contains("unreachable") && err.contains(&gone), "{err}");

    // Nothing of the above was stored: the project holds app:1.0 only.
    let catalog: Value = admin_client(API_TIMEOUT)
        .get(format!("{}/v2/_catalog", pier.url()))
        .send()
        .expect("GET _catalog")
        .json()
        .expect("catalog JSON");
    assert_eq!(catalog["repositories"], json!(["proj/app"]), "{catalog}");
}
