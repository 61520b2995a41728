//! `pier_builder::build::build` end to end on shell steps (no compilers): reproducible index
//! digests, the layer cache, a failing step, and the refusals of this slice.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pier_builder::build::{BuildError, BuildOptions, BuildReport, Event, Output, build};

const SPEC: &str = r#"
image: example.invalid/team/hello
tags: [latest, "1.0"]
platforms: [amd64, arm64]
base: scratch
steps:
  - run: mkdir -p out/{uname} && printf 'hello from %s\n' "$PIER_UNAME" > out/{uname}/hello.txt
  - run: printf '%s\n' "$GREETING" > out/{uname}/greeting.txt
    env: { GREETING: "hi {platform}" }
layers:
  - name: app
    files:
      - { src: "out/{uname}/hello.txt", dest: /hello.txt, mode: "0644" }
      - { src: "out/{uname}/greeting.txt", dest: /etc/greeting, mode: "0644" }
  - files:
      - { src: static, dest: /static }
cmd: [/hello.txt]
annotations: { org.opencontainers.image.source: "https://example.invalid/hello" }
"#;

fn project(spec: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pier.yaml"), spec).unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static").join("index.html"), "<p>hi</p>\n").unwrap();
    dir
}

fn opts(project: &Path, cache: &Path, out: &Path) -> BuildOptions {
    BuildOptions {
        spec: project.join("pier.yaml"),
        platforms: None,
        profiles: None,
        cache_dir: cache.to_path_buf(),
        output: Output::OciDir(out.to_path_buf()),
        epoch: Some(1_700_000_000),
    }
}

fn run(o: &BuildOptions) -> (Result<BuildReport, BuildError>, Vec<Event>) {
    let events = Mutex::new(Vec::new());
    let r = build(o, &|e| events.lock().unwrap().push(e));
    (r, events.into_inner().unwrap())
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn two_fresh_builds_give_the_same_index_and_the_second_hits_the_cache() {
    let a = project(SPEC);
    let b = project(SPEC);
    let cache = tempfile::tempdir().unwrap();
    let other_cache = tempfile::tempdir().unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let out3 = tempfile::tempdir().unwrap();

    let (first, events) = run(&opts(a.path(), cache.path(), &out1.path().join("oci")));
    let first = first.unwrap();
    assert_eq!(first.tags, ["latest", "1.0"]);
    assert_eq!(
        first.platforms.iter().map(|p| p.platform.as_str()).collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64/v8"]
    );
    assert!(first.platforms.iter().all(|p| p.layers.len() == 2));
    // The app layers are new; the static layer is shared, so one platform may find it built
    // by the other.
    assert!(first.platforms.iter().all(|p| !p.layers[0].cached));
    assert!(events.iter().any(|e| matches!(e, Event::StepStarted { .. })));
    // The app layers differ per platform (distinct text), the static one is shared.
    assert_ne!(first.platforms[0].layers[0].digest, first.platforms[1].layers[0].digest);
    assert_eq!(first.platforms[0].layers[1].digest, first.platforms[1].layers[1].digest);

    // Same inputs in another checkout, into a fresh output, same cache: same index, all cached.
    let (second, _) = run(&opts(b.path(), cache.path(), &out2.path().join("oci")));
    let second = second.unwrap();
    assert_eq!(first.index, second.index);
    assert!(second.platforms.iter().flat_map(|p| &p.layers).all(|l| l.cached));

    // And with a cold cache too.
    let (third, _) = run(&opts(b.path(), other_cache.path(), &out3.path().join("oci")));
    let third = third.unwrap();
    assert_eq!(first.index, third.index);
    assert!(third.platforms.iter().all(|p| !p.layers[0].cached));

    // The layout: one index, tagged with every tag, platforms in spec order, annotations.
    let root = out1.path().join("oci");
    let top = json(root.join("index.json"));
    let tagged: Vec<(&str, &str)> = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap(),
                d["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tagged,
        [("1.0", first.index.as_str()), ("latest", first.index.as_str())]
    );
    let blob = |d: &str| root.join("blobs/sha256").join(d.strip_prefix("sha256:").unwrap());
    let index = json(blob(&first.index));
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let manifest = json(blob(&first.platforms[1].manifest));
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://example.invalid/hello"
    );
    let config = json(blob(&first.platforms[1].config));
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(config["config"]["Cmd"][0], "/hello.txt");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // A per-platform log exists with the steps' commands.
    let log = std::fs::read_to_string(cache.path().join("logs/linux-arm64-v8.log")).unwrap();
    assert!(log.contains("$ mkdir -p out/aarch64"), "{log}");
}

#[test]
fn platform_selection_keeps_the_spec_order_and_refuses_strangers() {
    let p = project(SPEC);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut o = opts(p.path(), cache.path(), out.path());
    o.platforms = Some(vec!["aarch64".into()]);
    let r = run(&o).0.unwrap();
    assert_eq!(r.platforms.len(), 1);
    assert_eq!(r.platforms[0].platform, "linux/arm64/v8");
    o.platforms = Some(vec!["mips64el".into()]);
    let err = run(&o).0.unwrap_err().to_string();
    assert!(err.contains("pier.yaml") && err.contains("mips64el"), "{err}");
}

#[test]
fn a_failing_step_stops_every_platform_with_its_log_tail() {
    let spec = SPEC.replace(
        "steps:\n",
        "steps:\n  - run: if [ {uname} = aarch64 ]; then echo boom-on-$PIER_UNAME; exit 3; else sleep 5; fi\n",
    );
    let p = project(&spec);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = run(&opts(p.path(), cache.path(), &out.path().join("oci")))
        .0
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the sleeping platform was not stopped"
    );
    assert!(
        matches!(&err, BuildError::StepFailed(f) if f.platform == "linux/arm64/v8"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("linux/arm64/v8"), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("boom-on-aarch64"), "{text}");
    assert!(text.contains("if [ aarch64 = aarch64 ]"), "{text}");
    assert!(!out.path().join("oci").exists(), "nothing written after a failure");
}

#[test]
fn a_wrong_arch_elf_is_refused_naming_the_platform() {
    // A minimal ELF header for x86-64 in both platforms' layer.
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[6] = 1;
    elf[16] = 2; // ET_EXEC
    elf[18] = 62; // EM_X86_64
    elf[20] = 1;
    let p = project(SPEC);
    std::fs::write(p.path().join("static").join("tool"), &elf).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = run(&opts(p.path(), cache.path(), out.path()))
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("linux/arm64/v8") && err.contains("/static/tool"), "{err}");
}

#[test]
fn a_non_scratch_base_is_refused_honestly() {
    let p = project(&SPEC.replace("base: scratch", "base: docker.io/library/alpine:3"));
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = run(&opts(p.path(), cache.path(), out.path())).0.unwrap_err();
    assert!(matches!(err, BuildError::Base { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("pier.yaml"), "{text}");
    assert!(
        text.contains("linux/amd64") || text.contains("linux/arm64/v8"),
        "{text}"
    );
    assert!(text.contains("docker.io/library/alpine:3"), "{text}");
}

#[test]
fn spec_fields_extend_the_base_config() {
    use pier_builder::build::on_base;
    use pier_builder::image::ConfigOptions;
    let base = serde_json::json!({"config": {
        "Env": ["PATH=/usr/bin", "LANG=C"], "Cmd": ["sh"], "Entrypoint": null,
        "WorkingDir": "/srv", "User": "", "Labels": {"a": "base", "b": "base"},
        "ExposedPorts": {"80/tcp": {}}
    }});
    let own = ConfigOptions {
        env: vec!["LANG=C.UTF-8".into(), "APP=1".into()],
        labels: [("b".to_owned(), "mine".to_owned())].into(),
        exposed_ports: vec!["8080".into()],
        ..ConfigOptions::default()
    };
    let c = on_base(&base, own.clone());
    assert_eq!(c.env, ["PATH=/usr/bin", "LANG=C.UTF-8", "APP=1"]);
    assert_eq!(c.cmd, Some(vec!["sh".to_owned()]));
    assert_eq!(c.workdir.as_deref(), Some("/srv"));
    assert_eq!(c.user, None);
    assert_eq!(c.labels["a"], "base");
    assert_eq!(c.labels["b"], "mine");
    assert_eq!(c.exposed_ports, ["80/tcp", "8080"]);
    // An entrypoint of our own drops the base's cmd.
    let with_entry = ConfigOptions {
        entrypoint: Some(vec!["/app".into()]),
        ..own
    };
    let c = on_base(&base, with_entry);
    assert_eq!((c.entrypoint, c.cmd), (Some(vec!["/app".to_owned()]), None));
}

#[test]
fn outputs_parse() {
    assert_eq!(Output::parse("oci:out").unwrap(), Output::OciDir("out".into()));
    assert_eq!(
        Output::parse("docker-archive:x.tar").unwrap(),
        Output::DockerArchive("x.tar".into())
    );
    for bad in ["out", "oci:", "docker-archive:", "registry:x"] {
        let err = Output::parse(bad).unwrap_err().to_string();
        assert!(
            err.contains("oci:DIR") && err.contains("docker-archive:FILE"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn docker_archive_holds_one_platform() {
    let p = project(SPEC);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("hello.tar");
    let mut o = opts(p.path(), cache.path(), out.path());
    o.output = Output::DockerArchive(file.clone());
    // Two platforms: refused before anything runs.
    let (r, events) = run(&o);
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("2 (linux/amd64, linux/arm64/v8)") && err.contains("--platform"),
        "{err}"
    );
    assert!(events.is_empty() && !file.exists());
    // One platform: an archive with the image tagged image:tag for every tag.
    o.platforms = Some(vec!["aarch64".into()]);
    let report = run(&o).0.unwrap();
    assert_eq!(report.platforms.len(), 1);
    let mut archive = tar::Archive::new(std::fs::File::open(&file).unwrap());
    let mut manifest = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            manifest = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        }
    }
    let manifest = manifest.expect("manifest.json in the archive");
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["example.invalid/team/hello:latest", "example.invalid/team/hello:1.0"])
    );
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", &report.platforms[0].config["sha256:".len()..])
    );
    // zstd layers cannot go into a docker archive (docker load does not read them).
    let z = project(&SPEC.replace("base: scratch", "base: scratch\ncompression: zstd"));
    let mut o = opts(z.path(), cache.path(), out.path());
    o.output = Output::DockerArchive(out.path().join("z.tar"));
    o.platforms = Some(vec!["amd64".into()]);
    let err = run(&o).0.unwrap_err().to_string();
    assert!(err.contains("gzip") && err.contains("compression"), "{err}");
}

#[test]
fn zstd_layers_are_reproducible() {
    let spec = SPEC.replace("base: scratch", "base: scratch\ncompression: zstd");
    let (a, b) = (project(&spec), project(&spec));
    let (c1, c2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = tempfile::tempdir().unwrap();
    let first = run(&opts(a.path(), c1.path(), &out.path().join("a"))).0.unwrap();
    let second = run(&opts(b.path(), c2.path(), &out.path().join("b"))).0.unwrap();
    assert_eq!(first.index, second.index);
    let m = json(
        out.path()
            .join("a/blobs/sha256")
            .join(&first.platforms[0].manifest["sha256:".len()..]),
    );
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
    }
    // Not the gzip image.
    let gz = run(&opts(project(SPEC).path(), c1.path(), &out.path().join("g")))
        .0
        .unwrap();
    assert_ne!(gz.index, first.index);
}

#[test]
fn spec_errors_name_the_file() {
    let p = project("image: x\nplatforms: [amd64]\nbogus: 1\n");
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = run(&opts(p.path(), cache.path(), out.path()))
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("pier.yaml") && err.contains("bogus"), "{err}");
}
