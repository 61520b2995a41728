//! Layers and OCI layouts end to end: reproducible digests across fresh directories, file
//! orders and host permissions; what is inside a layer; the ELF check; and real clients
//! (skopeo, umoci) reading the layout.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pier_arch_profiles::Profiles;
use pier_builder::image::{ConfigOptions, OciLayout, image_config};
use pier_builder::layer::{Compression, LayerEntry, LayerError, LayerOptions, build_layer, elf_checker, no_check};
use pier_oci::{Digest, Platform};
use sha2::Digest as _;

const EPOCH: u64 = 1_700_000_000;
const TAG: &str = "v1";

/// A 64-byte ELF64 little-endian executable header for a machine.
fn elf_header(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    h[16] = 2; // ET_EXEC
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20] = 1; // EV_CURRENT
    h
}

/// A static hello binary built by the e2e tests for a zig target, if one is cached.
fn cached_binary(zig_target: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-cache");
    let prefix = format!("hello-{zig_target}-");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found.pop()
}

/// How one run lays out its source files on the host.
#[derive(Clone, Copy)]
struct Variant {
    /// Create files (and list entries) in reverse order.
    reversed: bool,
    /// Host permission bits given to every file (the entries give explicit modes).
    host_mode: u32,
    /// Change the arm64 program's content.
    change_arm: bool,
    /// Create the tree through `cp -R` run under this umask (a real umask, in a child
    /// process: the test's own umask is process-wide and shared with parallel tests).
    umask: Option<&'static str>,
}

/// Writes one platform's source tree under `src` and returns its layer entries.
fn sources(src: &Path, arch: &str, machine: u16, v: Variant) -> Vec<LayerEntry> {
    let root = src.join(arch);
    let stage = src.join(format!(".stage-{arch}"));
    let mut program = elf_header(machine);
    program.extend_from_slice(format!("hello from {arch}\n").as_bytes());
    if v.change_arm && arch == "arm64" {
        program.extend_from_slice(b"changed\n");
    }
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("bin/hello", program),
        ("etc/hello.conf", b"greeting = hello\n".to_vec()),
        ("share/doc/README", b"readme\n".to_vec()),
        ("share/doc/a/b/notes.txt", b"notes\n".to_vec()),
        ("share/doc/z.txt", b"last\n".to_vec()),
    ];
    if v.reversed {
        files.reverse();
    }
    for (path, content) in &files {
        let p = stage.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(v.host_mode)).unwrap();
    }
    let link = stage.join("share/doc/latest");
    std::os::unix::fs::symlink("z.txt", &link).unwrap();
    // Directory permissions differ with the host too; pier writes 0755 regardless.
    fs::set_permissions(
        stage.join("share/doc/a"),
        fs::Permissions::from_mode(0o700 | (v.host_mode & 0o055)),
    )
    .unwrap();
    match v.umask {
        None => fs::rename(&stage, &root).unwrap(),
        Some(umask) => {
            fs::create_dir_all(&root).unwrap();
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!("umask {umask} && cp -R \"$0\"/. \"$1\""))
                .arg(&stage)
                .arg(&root)
                .status()
                .unwrap();
            assert!(status.success());
            let mode = fs::metadata(root.join("etc/hello.conf")).unwrap().permissions().mode() & 0o777;
            let umask = u32::from_str_radix(umask, 8).unwrap();
            assert_eq!(mode, v.host_mode & !umask, "cp under umask {umask:o}");
        }
    }
    let mut entries = vec![
        LayerEntry::new(root.join("bin/hello"), "/usr/local/bin/hello").with_mode(0o755),
        LayerEntry::new(root.join("etc/hello.conf"), "/etc/hello/hello.conf").with_mode(0o644),
        LayerEntry::new(root.join("share/doc"), "/usr/share/doc/hello").with_mode(0o644),
    ];
    if v.reversed {
        entries.reverse();
    }
    entries
}

/// What one build produced.
struct Built {
    dir: tempfile::TempDir,
    index: Digest,
    blobs: BTreeSet<String>,
    /// platform → (layer, config, manifest) digests.
    images: BTreeMap<String, (Digest, Digest, Digest)>,
}

fn parse(d: &oci_spec::image::Digest) -> Digest {
    d.to_string().parse().unwrap()
}

/// Builds amd64 and arm64 images into a fresh layout and tags the index `v1`.
fn build(v: Variant) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let layout = OciLayout::create(dir.path().join("layout")).unwrap();
    let profiles = Profiles::builtin();
    let mut descs = Vec::new();
    let mut images = BTreeMap::new();
    let mut platforms = vec![("amd64", 62u16), ("arm64", 183u16)];
    if v.reversed {
        platforms.reverse();
    }
    for (arch, machine) in platforms {
        let profile = profiles.lookup(arch).unwrap();
        let platform = profile.platform().clone();
        let entries = sources(&src, arch, machine, v);
        let opts = LayerOptions {
            mtime: EPOCH,
            compression: Compression::Gzip,
            out_dir: layout.blobs_dir(),
        };
        let layer = build_layer(&entries, &opts, &elf_checker(profile, &[])).unwrap();
        let cfg = ConfigOptions {
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            entrypoint: Some(vec!["/usr/local/bin/hello".into()]),
            exposed_ports: vec!["8080".into()],
            labels: [
                ("org.example.arch".to_owned(), arch.to_owned()),
                ("a".into(), "b".into()),
            ]
            .into(),
            ..ConfigOptions::default()
        };
        let config = image_config(&platform, std::slice::from_ref(&layer), &cfg, EPOCH).unwrap();
        let desc = layout
            .write_image(&platform, std::slice::from_ref(&layer), &config)
            .unwrap();
        let manifest: oci_spec::image::ImageManifest =
            serde_json::from_slice(&fs::read(layout.blob_path(&parse(desc.digest()))).unwrap()).unwrap();
        images.insert(
            platform.to_string(),
            (
                layer.digest.clone(),
                parse(manifest.config().digest()),
                parse(desc.digest()),
            ),
        );
        descs.push(desc);
    }
    // The index lists platforms in a fixed order, whatever order they were built in.
    descs.sort_by_key(|d| d.platform().as_ref().map(|p| p.architecture().to_string()));
    let annotations = [("org.opencontainers.image.title".to_owned(), "hello".to_owned())].into();
    let index = layout.write_index(&descs, TAG, &annotations).unwrap();
    let blobs = fs::read_dir(layout.blobs_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    Built {
        index: parse(index.digest()),
        blobs,
        images,
        dir,
    }
}

fn layout_dir(b: &Built) -> PathBuf {
    b.dir.path().join("layout")
}

#[test]
fn two_fresh_builds_are_identical_and_one_change_touches_one_platform() {
    let a = build(Variant {
        reversed: false,
        host_mode: 0o644,
        change_arm: false,
        umask: None,
    });
    let b = build(Variant {
        reversed: true,
        host_mode: 0o600,
        change_arm: false,
        umask: Some("077"),
    });
    assert_eq!(a.index, b.index);
    assert_eq!(a.blobs, b.blobs);
    assert_eq!(a.images, b.images);
    // 2 × (layer, config, manifest) + the index.
    assert_eq!(a.blobs.len(), 7, "{:?}", a.blobs);
    // Every blob is named after its content.
    for name in &a.blobs {
        let bytes = fs::read(layout_dir(&a).join("blobs/sha256").join(name)).unwrap();
        assert_eq!(Digest::sha256_of(&bytes).hex(), name);
    }
    // index.json tags the index.
    let top: serde_json::Value = serde_json::from_slice(&fs::read(layout_dir(&a).join("index.json")).unwrap()).unwrap();
    assert_eq!(top["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(top["manifests"][0]["digest"], a.index.to_string());
    assert_eq!(
        top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        TAG
    );
    let layout_file: serde_json::Value =
        serde_json::from_slice(&fs::read(layout_dir(&a).join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout_file["imageLayoutVersion"], "1.0.0");

    let c = build(Variant {
        reversed: false,
        host_mode: 0o644,
        change_arm: true,
        umask: None,
    });
    assert_ne!(c.index, a.index);
    assert_eq!(c.images["linux/amd64"], a.images["linux/amd64"]);
    let (al, ac, am) = &a.images["linux/arm64/v8"];
    let (cl, cc, cm) = &c.images["linux/arm64/v8"];
    assert!(al != cl && ac != cc && am != cm);
    // Exactly those four blobs differ.
    let changed: BTreeSet<_> = a.blobs.symmetric_difference(&c.blobs).collect();
    assert_eq!(changed.len(), 8, "{changed:?}");
}

#[test]
fn index_and_configs_carry_canonical_platforms() {
    let b = build(Variant {
        reversed: false,
        host_mode: 0o644,
        change_arm: false,
        umask: None,
    });
    let blob = |d: &Digest| -> serde_json::Value {
        serde_json::from_slice(&fs::read(layout_dir(&b).join("blobs/sha256").join(d.hex())).unwrap()).unwrap()
    };
    let index = blob(&b.index);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(index["annotations"]["org.opencontainers.image.title"], "hello");
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
            if let Some(v) = p["variant"].as_str() {
                s += &format!("/{v}");
            }
            assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            s
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    for (platform, (layer, config, manifest)) in &b.images {
        let p: Platform = platform.parse().unwrap();
        let m = blob(manifest);
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["config"]["digest"], config.to_string());
        assert_eq!(m["layers"][0]["digest"], layer.to_string());
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let c = blob(config);
        assert_eq!(c["architecture"], p.architecture.as_str());
        assert_eq!(c["os"], "linux");
        assert_eq!(c["variant"].as_str(), p.variant.as_deref());
        assert_eq!(c["created"], "2023-11-14T22:13:20Z");
        assert_eq!(c["rootfs"]["type"], "layers");
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        assert_eq!(c["history"][0]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(
            c["history"][0]["created_by"],
            "pier: add /etc/hello/hello.conf /usr/local/bin/hello /usr/share/doc/hello"
        );
        assert_eq!(c["config"]["ExposedPorts"]["8080/tcp"], serde_json::json!({}));
        assert_eq!(c["config"]["Entrypoint"][0], "/usr/local/bin/hello");
    }
}

#[test]
fn layer_content_is_sorted_owned_by_root_and_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sources(
        &dir.path().join("src"),
        "amd64",
        62,
        Variant {
            reversed: true,
            host_mode: 0o640,
            change_arm: false,
            umask: Some("027"),
        },
    );
    let mut entries = entries;
    // One more, owned by someone else, deep enough to need parents.
    let owned = dir.path().join("owned");
    fs::write(&owned, b"x").unwrap();
    fs::set_permissions(&owned, fs::Permissions::from_mode(0o600)).unwrap();
    entries.push(LayerEntry::new(&owned, "/var/lib/app/data").with_owner(1000, 1000));
    let opts = LayerOptions {
        mtime: EPOCH,
        compression: Compression::Gzip,
        out_dir: dir.path().join("out"),
    };
    let layer = build_layer(&entries, &opts, &no_check).unwrap();
    let blob = fs::read(&layer.path).unwrap();
    assert_eq!(layer.path, dir.path().join("out").join(layer.digest.hex()));
    assert_eq!(Digest::sha256_of(&blob), layer.digest);
    assert_eq!(blob.len() as u64, layer.size);
    assert_eq!(layer.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    // Only the blob is left in the output directory (no temporary files).
    assert_eq!(fs::read_dir(dir.path().join("out")).unwrap().count(), 1);

    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&blob[..]).read_to_end(&mut tar).unwrap();
    let mut h = sha2::Sha256::new();
    h.update(&tar);
    assert_eq!(
        format!("sha256:{}", hex::encode(h.finalize())),
        layer.diff_id.to_string()
    );

    let mut archive = tar::Archive::new(&tar[..]);
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let hd = e.header();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        assert_eq!(hd.mtime().unwrap(), EPOCH, "{path}");
        assert_eq!(hd.username().unwrap(), Some(""), "{path}");
        assert_eq!(hd.groupname().unwrap(), Some(""), "{path}");
        assert!(hd.as_gnu().is_some(), "{path}: GNU headers throughout");
        let owner = (hd.uid().unwrap(), hd.gid().unwrap());
        let mode = hd.mode().unwrap();
        let kind = hd.entry_type();
        if path == "var/lib/app/data" {
            assert_eq!(owner, (1000, 1000));
        } else if path.starts_with("var") {
            // Parents take the owner of the entry that needs them.
            assert_eq!(owner, (1000, 1000), "{path}");
            assert!(kind.is_dir());
        } else {
            assert_eq!(owner, (0, 0), "{path}");
        }
        if kind.is_dir() {
            assert_eq!(mode, 0o755, "{path}");
            assert!(path.ends_with('/'), "{path}");
        }
        seen.push((
            path,
            kind,
            mode,
            e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()),
        ));
    }
    let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(
        paths,
        [
            "etc/",
            "etc/hello/",
            "etc/hello/hello.conf",
            "usr/",
            "usr/local/",
            "usr/local/bin/",
            "usr/local/bin/hello",
            "usr/share/",
            "usr/share/doc/",
            "usr/share/doc/hello/",
            "usr/share/doc/hello/README",
            "usr/share/doc/hello/a/",
            "usr/share/doc/hello/a/b/",
            "usr/share/doc/hello/a/b/notes.txt",
            "usr/share/doc/hello/latest",
            "usr/share/doc/hello/z.txt",
            "var/",
            "var/lib/",
            "var/lib/app/",
            "var/lib/app/data",
        ]
    );
    let find = |p: &str| seen.iter().find(|s| s.0 == p).unwrap();
    assert_eq!(find("usr/local/bin/hello").2, 0o755);
    assert_eq!(find("etc/hello/hello.conf").2, 0o644);
    assert_eq!(find("usr/share/doc/hello/z.txt").2, 0o644);
    // No explicit mode: the host's permission bits.
    assert_eq!(find("var/lib/app/data").2, 0o600);
    let link = find("usr/share/doc/hello/latest");
    assert!(link.1.is_symlink());
    assert_eq!(link.3.as_deref(), Some("z.txt"));

    // GNU tar, when installed, lists the same entries with the same owners and modes.
    if let Ok(out) = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvzf")
        .arg(&layer.path)
        .output()
    {
        assert!(
            out.status.success(),
            "tar -tvzf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        assert_eq!(listing.lines().count(), paths.len(), "{listing}");
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("-rwxr-xr-x 0/0") && l.ends_with("usr/local/bin/hello")),
            "{listing}"
        );
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("-rw------- 1000/1000") && l.ends_with("var/lib/app/data")),
            "{listing}"
        );
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("lrwxrwxrwx 0/0") && l.ends_with("latest -> z.txt")),
            "{listing}"
        );
    }

    // Rebuilt into another directory: the same bytes.
    let again = build_layer(
        &entries,
        &LayerOptions {
            out_dir: dir.path().join("out2"),
            ..opts
        },
        &no_check,
    )
    .unwrap();
    assert_eq!(again.digest, layer.digest);
    assert_eq!(again.diff_id, layer.diff_id);
}

#[test]
fn wrong_arch_binary_is_refused_with_path_and_both_architectures() {
    let dir = tempfile::tempdir().unwrap();
    let (x86, real) = match cached_binary("x86_64-linux-musl") {
        Some(p) => (p, true),
        None => {
            let p = dir.path().join("hello-x86");
            fs::write(&p, elf_header(62)).unwrap();
            (p, false)
        }
    };
    eprintln!(
        "x86-64 binary: {} ({})",
        x86.display(),
        if real {
            "real, from e2e-cache"
        } else {
            "synthesized header"
        }
    );
    let arm = Profiles::builtin().lookup("linux/arm64/v8").unwrap();
    let opts = LayerOptions {
        mtime: 0,
        compression: Compression::Gzip,
        out_dir: dir.path().join("out"),
    };
    let entries = [LayerEntry::new(&x86, "/usr/bin/hello").with_mode(0o755)];
    let err = build_layer(&entries, &opts, &elf_checker(arm, &[])).unwrap_err();
    assert!(matches!(err, LayerError::Refused(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/usr/bin/hello"), "{msg}");
    assert!(msg.contains("x86-64") && msg.contains("EM_X86_64"), "{msg}");
    assert!(msg.contains("linux/arm64/v8") && msg.contains("aarch64"), "{msg}");
    // Nothing was written.
    assert!(!dir.path().join("out").exists() || fs::read_dir(dir.path().join("out")).unwrap().count() == 0);

    // Allowed explicitly: built.
    build_layer(&entries, &opts, &elf_checker(arm, &["/usr/bin/hello".to_owned()])).unwrap();
    // The right binary passes; for each cached real binary, its own profile accepts it and
    // another refuses it.
    let arm_bin = cached_binary("aarch64-linux-musl").unwrap_or_else(|| {
        let p = dir.path().join("hello-arm");
        fs::write(&p, elf_header(183)).unwrap();
        p
    });
    build_layer(
        &[LayerEntry::new(&arm_bin, "/usr/bin/hello")],
        &opts,
        &elf_checker(arm, &[]),
    )
    .unwrap();
    for profile in Profiles::builtin().all() {
        let Some(bin) = profile.zig_target().and_then(cached_binary) else {
            continue;
        };
        let entries = [LayerEntry::new(&bin, "/app")];
        build_layer(&entries, &opts, &elf_checker(profile, &[]))
            .unwrap_or_else(|e| panic!("{}: {e}", profile.platform()));
        let other = Profiles::builtin()
            .all()
            .iter()
            .find(|p| p.family() != profile.family())
            .unwrap();
        let err = build_layer(&entries, &opts, &elf_checker(other, &[])).unwrap_err();
        assert!(err.to_string().starts_with("/app: ELF for "), "{err}");
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn skopeo_reads_the_layout() {
    if !have("skopeo") {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo is required in CI (CI is set) to check the OCI layout with a real client"
        );
        eprintln!("note: skopeo not installed; skipping the real-client check of the OCI layout");
        return;
    }
    let b = build(Variant {
        reversed: false,
        host_mode: 0o644,
        change_arm: false,
        umask: None,
    });
    let policy = b.dir.path().join("policy.json");
    fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let layout = format!("oci:{}:{TAG}", layout_dir(&b).display());
    let out = Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(["inspect", "--raw", &layout])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --raw returns the index blob byte for byte.
    assert_eq!(Digest::sha256_of(&out.stdout), b.index);

    let dest = b.dir.path().join("copied");
    let out = Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(["copy", "--all", &layout])
        .arg(format!("dir:{}", dest.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every layer and config arrived, unchanged (copy --all keeps digests).
    for (layer, config, _) in b.images.values() {
        assert!(
            dest.join(layer.hex()).is_file(),
            "{layer} missing from {}",
            dest.display()
        );
        assert!(
            dest.join(config.hex()).is_file(),
            "{config} missing from {}",
            dest.display()
        );
    }
}

#[test]
fn umoci_unpacks_the_amd64_image() {
    if !have("umoci") {
        // scripts/test.sh installs it; CI must not pass without the check.
        assert!(
            std::env::var_os("CI").is_none(),
            "umoci is missing (scripts/test.sh installs it)"
        );
        eprintln!("note: umoci not installed; skipping the umoci unpack check");
        return;
    }
    // umoci unpacks manifests, not indexes: tag the amd64 manifest on its own and unpack it.
    let b = build(Variant {
        reversed: false,
        host_mode: 0o644,
        change_arm: false,
        umask: None,
    });
    let layout = OciLayout::open(layout_dir(&b)).unwrap();
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(&fs::read(layout.blob_path(&b.index)).unwrap()).unwrap();
    let amd64 = index
        .manifests()
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| p.architecture().to_string() == "amd64")
        })
        .unwrap()
        .clone();
    // An index of one manifest, tagged: the manifest itself under a tag is what umoci takes.
    let mut top = layout.read_top_index().unwrap();
    let mut tagged = amd64.clone();
    tagged.set_annotations(Some(
        [("org.opencontainers.image.ref.name".to_owned(), "amd64".to_owned())].into(),
    ));
    let mut manifests = top.manifests().clone();
    manifests.push(tagged);
    top.set_manifests(manifests);
    fs::write(layout_dir(&b).join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let out_dir = b.dir.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:amd64", layout_dir(&b).display()))
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hello = fs::read(out_dir.join("rootfs/usr/local/bin/hello")).unwrap();
    assert_eq!(&hello[..4], b"\x7fELF");
    assert_eq!(
        fs::read(out_dir.join("rootfs/etc/hello/hello.conf")).unwrap(),
        b"greeting = hello\n"
    );
}
