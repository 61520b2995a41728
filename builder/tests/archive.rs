//! `docker-archive:` output end to end: an image built with the layer and layout APIs,
//! written as an archive, read back (docker's `manifest.json`, the OCI layout inside it,
//! every blob's digest), written again byte for byte, refused when a tag, layer or blob is
//! wrong — and loaded and run by a real dockerd.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use pier_builder::archive::{ArchiveError, write_docker_archive};
use pier_builder::image::{ConfigOptions, OciLayout, image_config};
use pier_builder::layer::{Compression, Layer, LayerEntry, LayerOptions, build_layer, no_check};
use pier_oci::{Digest, Platform};

const EPOCH: u64 = 1_700_000_000;
const GREETING: &str = "greetings from a pier docker-archive\n";
const TAGS: [&str; 2] = ["127.0.0.1:5000/myorg/hello:1.0", "hello:latest"];

/// The program in the runnable image: prints a file of the other layer, so the output shows
/// both layers were applied.
const HELLO_C: &str = "#include <stdio.h>\n\
int main(void) { char b[256]; FILE *f = fopen(\"/etc/pier/greeting\", \"r\"); if (!f) return 2;\n\
size_t n = fread(b, 1, sizeof b - 1, f); b[n] = 0; printf(\"hello: %s\", b); return 0; }\n";

/// How long one zig compile may take (a cold zig cache takes about a minute).
const ZIG_TIMEOUT: Duration = Duration::from_secs(600);
/// How long dockerd may take to answer (well under a second here).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping dockerd may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one docker client command may take; a hang fails the test instead of stalling it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);
/// Pause between polls of a child process.
const POLL: Duration = Duration::from_millis(50);

fn parse(d: &oci_spec::image::Digest) -> Digest {
    d.to_string().parse().unwrap()
}

/// One amd64 image in a fresh layout: `/etc/pier/greeting`, then `/hello` (the given
/// program, or a stand-in file), with `/hello` as the entrypoint.
struct Image {
    dir: tempfile::TempDir,
    layout: OciLayout,
    manifest: Descriptor,
    layers: Vec<Layer>,
}

fn image(program: &[u8], compression: Compression) -> Image {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("greeting"), GREETING).unwrap();
    fs::write(src.join("hello"), program).unwrap();
    let layout = OciLayout::create(dir.path().join("layout")).unwrap();
    let opts = LayerOptions {
        mtime: EPOCH,
        compression,
        out_dir: layout.blobs_dir(),
    };
    let layers = vec![
        build_layer(
            &[LayerEntry::new(src.join("greeting"), "/etc/pier/greeting").with_mode(0o644)],
            &opts,
            &no_check,
        )
        .unwrap(),
        build_layer(
            &[LayerEntry::new(src.join("hello"), "/hello").with_mode(0o755)],
            &opts,
            &no_check,
        )
        .unwrap(),
    ];
    let platform: Platform = "linux/amd64".parse().unwrap();
    let cfg = ConfigOptions {
        entrypoint: Some(vec!["/hello".into()]),
        labels: [("org.example.test".to_owned(), "docker-archive".to_owned())].into(),
        ..ConfigOptions::default()
    };
    let config = image_config(&platform, &layers, &cfg, EPOCH).unwrap();
    let manifest = layout.write_image(&platform, &layers, &config).unwrap();
    Image {
        dir,
        layout,
        manifest,
        layers,
    }
}

fn tags() -> Vec<String> {
    TAGS.iter().map(|t| t.to_string()).collect()
}

/// Every entry of a tar: name → (header, content).
fn entries(archive: &Path) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut a = tar::Archive::new(fs::File::open(archive).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (e.path().unwrap().display().to_string(), e.header().clone(), content)
        })
        .collect()
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Names in the directory other than `keep` (temporary files left behind).
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn archive_holds_docker_manifest_oci_layout_and_verified_blobs() {
    let img = image(b"not a program", Compression::Gzip);
    let out_dir = img.dir.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("hello.tar");
    write_docker_archive(&img.layout, &img.manifest, &tags(), &out).unwrap();
    assert_eq!(others(&out_dir, &["hello.tar"]), Vec::<String>::new());

    let manifest_digest = parse(img.manifest.digest());
    let manifest_bytes = fs::read(img.layout.blob_path(&manifest_digest)).unwrap();
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_digest = parse(manifest.config().digest());

    let entries = entries(&out);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut blob_names: Vec<String> = [&manifest_digest, &config_digest]
        .into_iter()
        .chain(img.layers.iter().map(|l| &l.digest))
        .map(blob_path)
        .collect();
    blob_names.sort();
    let mut expected = vec!["blobs/", "blobs/sha256/"];
    expected.extend(blob_names.iter().map(String::as_str));
    expected.extend(["index.json", "manifest.json", "oci-layout"]);
    assert_eq!(names, expected, "entries in a fixed order");

    // Deterministic headers: owner 0:0 without names, mtime 0, fixed modes.
    for (name, h, content) in &entries {
        assert_eq!(h.mtime().unwrap(), 0, "{name}");
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{name}");
        assert_eq!(h.username().unwrap(), Some(""), "{name}");
        assert_eq!(h.groupname().unwrap(), Some(""), "{name}");
        if name.ends_with('/') {
            assert_eq!(h.entry_type(), tar::EntryType::Directory, "{name}");
            assert_eq!(h.mode().unwrap(), 0o755, "{name}");
        } else {
            assert_eq!(h.entry_type(), tar::EntryType::Regular, "{name}");
            assert_eq!(h.mode().unwrap(), 0o644, "{name}");
            assert_eq!(h.size().unwrap(), content.len() as u64, "{name}");
        }
        // Every blob is what its name says.
        if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(Digest::sha256_of(content).hex(), hex, "{name}");
        }
    }
    let file = |n: &str| &entries.iter().find(|e| e.0 == n).unwrap().2;

    // docker's manifest.json: config, tags as given, layers in the manifest's order.
    let docker: serde_json::Value = serde_json::from_slice(file("manifest.json")).unwrap();
    let docker = docker.as_array().unwrap();
    assert_eq!(docker.len(), 1);
    assert_eq!(docker[0]["Config"], blob_path(&config_digest));
    assert_eq!(docker[0]["RepoTags"], serde_json::json!(TAGS));
    let layer_paths: Vec<String> = manifest
        .layers()
        .iter()
        .map(|l| blob_path(&parse(l.digest())))
        .collect();
    assert_eq!(docker[0]["Layers"], serde_json::json!(layer_paths));
    assert_eq!(
        layer_paths,
        img.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>()
    );
    for path in layer_paths.iter().chain([&blob_path(&config_digest)]) {
        assert!(names.contains(&path.as_str()), "{path} referenced but missing");
    }
    // The layers went in as they are (gzip), the same bytes as in the layout.
    for l in &img.layers {
        assert_eq!(file(&blob_path(&l.digest)), &fs::read(&l.path).unwrap());
        assert_eq!(&file(&blob_path(&l.digest))[..2], b"\x1f\x8b");
    }

    // The OCI layout inside: oci-layout, index.json → the manifest blob, one entry per tag.
    let layout: serde_json::Value = serde_json::from_slice(file("oci-layout")).unwrap();
    assert_eq!(layout, serde_json::json!({"imageLayoutVersion": "1.0.0"}));
    let index: ImageIndex = serde_json::from_slice(file("index.json")).unwrap();
    assert_eq!(index.schema_version(), 2);
    let names_in_index: Vec<(String, String)> = index
        .manifests()
        .iter()
        .map(|d| {
            assert_eq!(parse(d.digest()), manifest_digest);
            assert_eq!(d.size(), manifest_bytes.len() as u64);
            assert_eq!(d.media_type().to_string(), pier_oci::media::OCI_MANIFEST);
            let a = d.annotations().as_ref().unwrap();
            (
                a["io.containerd.image.name"].clone(),
                a["org.opencontainers.image.ref.name"].clone(),
            )
        })
        .collect();
    assert_eq!(
        names_in_index,
        [
            ("127.0.0.1:5000/myorg/hello:1.0".to_owned(), "1.0".to_owned()),
            ("docker.io/library/hello:latest".to_owned(), "latest".to_owned()),
        ]
    );
    assert_eq!(file(&blob_path(&manifest_digest)), &manifest_bytes);

    // Untagged: no RepoTags, one index.json entry without names.
    write_docker_archive(&img.layout, &img.manifest, &[], &out).unwrap();
    let entries = self::entries(&out);
    let file = |n: &str| &entries.iter().find(|e| e.0 == n).unwrap().2;
    let docker: serde_json::Value = serde_json::from_slice(file("manifest.json")).unwrap();
    assert_eq!(docker[0]["RepoTags"], serde_json::json!([]));
    let index: ImageIndex = serde_json::from_slice(file("index.json")).unwrap();
    assert_eq!(index.manifests().len(), 1);
    assert_eq!(index.manifests()[0].annotations(), &None);
}

#[test]
fn the_same_image_gives_a_byte_identical_archive() {
    let a = image(b"not a program", Compression::Gzip);
    let first = a.dir.path().join("first.tar");
    write_docker_archive(&a.layout, &a.manifest, &tags(), &first).unwrap();
    // Again over the same file, and to another name.
    let bytes = fs::read(&first).unwrap();
    write_docker_archive(&a.layout, &a.manifest, &tags(), &first).unwrap();
    assert!(fs::read(&first).unwrap() == bytes, "rewrite changed the archive");
    let second = a.dir.path().join("second.tar");
    write_docker_archive(&a.layout, &a.manifest, &tags(), &second).unwrap();
    assert!(fs::read(&second).unwrap() == bytes, "second archive differs");
    // The same image built from scratch in another directory.
    let b = image(b"not a program", Compression::Gzip);
    let third = b.dir.path().join("third.tar");
    write_docker_archive(&b.layout, &b.manifest, &tags(), &third).unwrap();
    assert!(
        fs::read(&third).unwrap() == bytes,
        "a fresh build gives another archive"
    );
    // The tag list is part of the archive.
    write_docker_archive(&b.layout, &b.manifest, &tags()[..1], &third).unwrap();
    assert!(fs::read(&third).unwrap() != bytes);
}

#[test]
fn bad_tags_layers_and_blobs_are_refused_and_nothing_is_written() {
    let img = image(b"not a program", Compression::Gzip);
    let out_dir = img.dir.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("hello.tar");
    let fails = |tags: &[&str], manifest: &Descriptor| {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let err = write_docker_archive(&img.layout, manifest, &tags, &out).unwrap_err();
        assert!(!out.exists(), "{err}: an archive was written");
        assert_eq!(others(&out_dir, &[]), Vec::<String>::new(), "{err}: files left behind");
        err
    };
    for (bad, why) in [
        ("Hello:latest", "repository \"Hello\""),
        ("hello", "has no tag"),
        ("127.0.0.1:5000/hello", "has no tag"),
        ("hello@sha256:0123", "digest"),
        ("hello:bad tag", "tag \"bad tag\""),
    ] {
        let err = fails(&["hello:latest", bad], &img.manifest);
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::BadTag { .. }), "{msg}");
        assert!(msg.contains(&format!("{bad:?}")) && msg.contains(why), "{bad}: {msg}");
    }

    // An index is not one image.
    let platforms = [img.manifest.clone()];
    let index = img.layout.write_index(&platforms, "v1", &BTreeMap::new()).unwrap();
    let err = fails(&TAGS, &index);
    assert!(
        matches!(err, ArchiveError::NotManifest { .. }) && err.to_string().contains("image.index"),
        "{err}"
    );

    // zstd layers: docker load in 20.10 cannot use them.
    let z = image(b"not a program", Compression::Zstd);
    let tags = tags();
    let err = write_docker_archive(&z.layout, &z.manifest, &tags, &out).unwrap_err();
    assert!(
        matches!(err, ArchiveError::LayerType { .. })
            && err.to_string().contains(&z.layers[0].digest.to_string())
            && err.to_string().contains("gzip"),
        "{err}"
    );
    assert!(!out.exists());

    // A damaged layer (same size, other bytes) fails the write and keeps the old archive.
    write_docker_archive(&img.layout, &img.manifest, &tags, &out).unwrap();
    let good = fs::read(&out).unwrap();
    let layer = &img.layers[1];
    let mut bytes = fs::read(&layer.path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&layer.path, &bytes).unwrap();
    let err = write_docker_archive(&img.layout, &img.manifest, &tags, &out).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ArchiveError::BlobDigest { .. }) && msg.contains(&layer.digest.to_string()),
        "{msg}"
    );
    assert!(fs::read(&out).unwrap() == good, "a failed write changed the archive");
    assert_eq!(others(&out_dir, &["hello.tar"]), Vec::<String>::new());
    // A missing one names the blob.
    fs::remove_file(&layer.path).unwrap();
    let err = write_docker_archive(&img.layout, &img.manifest, &tags, &out).unwrap_err();
    assert!(
        matches!(err, ArchiveError::MissingBlob { .. }) && err.to_string().contains(&layer.digest.to_string()),
        "{err}"
    );
}

// ---- the real client ----

fn have(tool: &str, version_args: &[&str]) -> bool {
    Command::new(tool)
        .args(version_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The docker client: Debian's docker.io client, the same release (20.10) as its dockerd,
/// when there; else the one on PATH (`/usr/local/bin/docker` may be a newer client only).
fn docker_client() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("docker")
    }
}

/// What a finished command printed.
struct Output {
    ok: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Runs a command with stdin closed, killing it after `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    let read = |mut f: &fs::File| {
        use std::io::Seek;
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    Output {
        ok: status.is_some_and(|s| s.success()),
        status: status.map_or(format!("no exit within {timeout:?} (killed)"), |s| s.to_string()),
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// A private dockerd: its own data root, exec root, socket, pid file and empty daemon config
/// under a short directory in /tmp (a unix socket path must fit in 108 bytes), no networking
/// (containers run with `--network none`). Stopped, unmounted and removed on drop, also
/// when the test panics.
struct Dockerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dir = tempfile::Builder::new().prefix("pa").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        // The host's /etc/docker/daemon.json (mirrors, storage driver) must not apply.
        fs::write(d.join("daemon.json"), "{}").unwrap();
        fs::create_dir_all(d.join("client")).unwrap();
        let log = fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
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
            .arg(d.join("p"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        // Owned before waiting: if dockerd never answers, the panic drops it and cleans up.
        let mut dk = Dockerd {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = dk.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dockerd exited early with {status}; log:\n{}", dk.log());
            }
            let probe = run_with_timeout(
                dk.docker().args(["version", "--format", "{{.Server.Version}}"]),
                READY_TIMEOUT,
            );
            if probe.ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not ready after {READY_TIMEOUT:?}: {}\nlog:\n{}",
                probe.stderr,
                dk.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dk
    }

    /// A client command bound to this daemon, away from the user's client config.
    fn docker(&self) -> Command {
        let mut c = Command::new(docker_client());
        c.env("DOCKER_HOST", format!("unix://{}", self.dir.path().join("s").display()))
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        c
    }

    /// A docker command that must succeed; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let o = run_with_timeout(self.docker().args(args), COMMAND_TIMEOUT);
        assert!(
            o.ok,
            "docker {args:?}: {}\nstdout:\n{}\nstderr:\n{}\ndockerd log:\n{}",
            o.status,
            o.stdout,
            o.stderr,
            self.log()
        );
        o.stdout
    }

    /// The socket of the containerd dockerd started for itself.
    fn containerd_socket(&self) -> PathBuf {
        self.dir.path().join("e/containerd/containerd.sock")
    }

    fn log(&self) -> String {
        /// Lines of the daemon log shown in a failure.
        const TAIL: usize = 40;
        let log = fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(TAIL)..].join("\n")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containers and its containerd; SIGKILL after
        // STOP_TIMEOUT. Then the network namespace mount it leaves (e/netns/default) goes,
        // and TempDir removes the rest.
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(POLL);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("umount")
            .arg(self.dir.path().join("e/netns/default"))
            .stderr(Stdio::null())
            .status();
    }
}

/// [`HELLO_C`] as a static x86-64 binary, compiled with zig into `dir`.
fn hello_binary(dir: &Path) -> Vec<u8> {
    let src = dir.join("hello.c");
    let out = dir.join("hello");
    fs::write(&src, HELLO_C).unwrap();
    let o = run_with_timeout(
        Command::new("python3")
            .args([
                "-m",
                "ziglang",
                "cc",
                "-target",
                "x86_64-linux-musl",
                "-static",
                "-O2",
                "-s",
            ])
            .arg(&src)
            .arg("-o")
            .arg(&out),
        ZIG_TIMEOUT,
    );
    assert!(o.ok, "zig cc: {}\n{}{}", o.status, o.stdout, o.stderr);
    fs::read(&out).unwrap()
}

#[test]
fn docker_loads_and_runs_the_archive() {
    let client = docker_client();
    let tools = [
        ("dockerd", &["--version"][..]),
        (client.to_str().unwrap(), &["--version"][..]),
        ("python3", &["-m", "ziglang", "version"][..]),
    ];
    if let Some((missing, _)) = tools.iter().find(|(t, args)| !have(t, args)) {
        // scripts/test.sh installs them; CI must not pass without the real-client check.
        assert!(
            std::env::var_os("CI").is_none(),
            "{missing} is missing (CI is set): the docker-archive check needs docker, dockerd and ziglang"
        );
        eprintln!("note: {missing} not installed; skipping the docker load check of the archive");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let program = hello_binary(work.path());
    let img = image(&program, Compression::Gzip);
    let archive = img.dir.path().join("hello.tar");
    write_docker_archive(&img.layout, &img.manifest, &tags(), &archive).unwrap();
    let manifest: ImageManifest =
        serde_json::from_slice(&fs::read(img.layout.blob_path(&parse(img.manifest.digest()))).unwrap()).unwrap();
    let config_digest = parse(manifest.config().digest());

    let dk = Dockerd::start();
    let loaded = dk.run(&["load", "-i", archive.to_str().unwrap()]);
    for tag in TAGS {
        assert!(loaded.contains(&format!("Loaded image: {tag}")), "{loaded}");
    }
    for tag in TAGS {
        let inspect = dk.run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Os}}/{{.Architecture}} {{json .RepoTags}} {{json .Config.Entrypoint}}",
            tag,
        ]);
        assert_eq!(
            inspect.trim(),
            format!(
                "{config_digest} linux/amd64 {} [\"/hello\"]",
                serde_json::to_string(&TAGS).unwrap()
            ),
            "{tag}"
        );
    }
    let out = dk.run(&["run", "--rm", "--network", "none", "hello:latest"]);
    assert_eq!(out, format!("hello: {GREETING}"));
    let out = dk.run(&["run", "--rm", "--network", "none", TAGS[0]]);
    assert_eq!(out, format!("hello: {GREETING}"));

    // containerd (what Docker 25+ with the containerd image store imports through) reads
    // the same archive, names included: dockerd's own containerd, another namespace.
    let ctr = |args: &[&str]| {
        let o = run_with_timeout(
            Command::new("ctr")
                .arg("--address")
                .arg(dk.containerd_socket())
                .args(["--namespace", "pier-archive-test"])
                .args(args),
            COMMAND_TIMEOUT,
        );
        assert!(o.ok, "ctr {args:?}: {}\n{}{}", o.status, o.stdout, o.stderr);
        o.stdout
    };
    ctr(&["images", "import", "--no-unpack", archive.to_str().unwrap()]);
    // `REF TYPE DIGEST SIZE PLATFORMS LABELS` after a header line.
    let listed: BTreeMap<String, (String, String)> = ctr(&["images", "ls"])
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), (f[2].to_owned(), f[1].to_owned()))
        })
        .collect();
    let want = (
        img.manifest.digest().to_string(),
        pier_oci::media::OCI_MANIFEST.to_owned(),
    );
    assert_eq!(
        listed,
        [
            ("127.0.0.1:5000/myorg/hello:1.0".to_owned(), want.clone()),
            ("docker.io/library/hello:latest".to_owned(), want),
        ]
        .into(),
        "containerd's names for the archive"
    );
}

#[test]
fn skopeo_reads_the_archive_as_docker_archive_and_oci_archive() {
    if !have("skopeo", &["--version"]) {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo is required in CI (CI is set) to check the archive with a real client"
        );
        eprintln!("note: skopeo not installed; skipping the skopeo check of the archive");
        return;
    }
    let img = image(b"not a program", Compression::Gzip);
    let archive = img.dir.path().join("hello.tar");
    write_docker_archive(&img.layout, &img.manifest, &tags(), &archive).unwrap();
    let policy = img.dir.path().join("policy.json");
    fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let inspect = |reference: String| {
        let o = run_with_timeout(
            Command::new("skopeo")
                .arg("--policy")
                .arg(&policy)
                .args(["inspect", "--raw", &reference]),
            COMMAND_TIMEOUT,
        );
        assert!(o.ok, "skopeo inspect {reference}: {}\n{}", o.status, o.stderr);
        o.stdout
    };
    // The OCI side: each tag's ref.name finds the manifest, byte for byte.
    for tag in ["1.0", "latest"] {
        let raw = inspect(format!("oci-archive:{}:{tag}", archive.display()));
        assert_eq!(Digest::sha256_of(raw.as_bytes()), parse(img.manifest.digest()), "{tag}");
    }
    // The docker side: skopeo reads manifest.json and describes the same config and the
    // layers by their diff_ids (it hands out the files uncompressed).
    let manifest: ImageManifest =
        serde_json::from_slice(&fs::read(img.layout.blob_path(&parse(img.manifest.digest()))).unwrap()).unwrap();
    for tag in TAGS {
        let raw = inspect(format!("docker-archive:{}:{tag}", archive.display()));
        let docker: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            docker["config"]["digest"],
            manifest.config().digest().to_string(),
            "{tag}"
        );
        let layers: Vec<String> = docker["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect();
        let diff_ids: Vec<String> = img.layers.iter().map(|l| l.diff_id.to_string()).collect();
        assert_eq!(layers, diff_ids, "{tag}");
    }
}
