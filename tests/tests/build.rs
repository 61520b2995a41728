//! `pier build` end to end, on the real example (`examples/hello`): one spec, one command,
//! five platforms under one index in an OCI layout; `pier build --push` sends it to
//! `pier serve`, docker pulls and runs the four emulatable platforms, the SW64 stand-in is
//! checked by its config and ELF machine; a second spec builds on the pushed image as its
//! base, and docker runs that too. Pushes that are denied, find no registry or lose it in
//! the middle of a blob (the server killed) fail clearly and tag nothing. Then
//! reproducibility (two fresh builds, one digest; one changed input, one changed platform)
//! and the ELF check (a wrong-arch binary fails the build).
//!
//! Every build runs from a copy of the example in a temporary directory, from another
//! working directory (paths in the spec are relative to the spec), with its own
//! `--cache-dir` and a fixed `SOURCE_DATE_EPOCH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pier_e2e::docker::Dockerd;
use pier_e2e::images;
use pier_e2e::relay::Relay;
use pier_e2e::{
    ADMIN_PASSWORD, Finished, Pier, admin_get, pier_bin, platform_image, require_tools, run_with_timeout, wait_until,
};
use serde_json::Value;

/// Fixes every time in the images: 2023-11-14T22:13:20Z.
const SOURCE_DATE_EPOCH: &str = "1700000000";
/// `SOURCE_DATE_EPOCH` as RFC 3339, as image configs write it.
const SOURCE_DATE: &str = "2023-11-14T22:13:20Z";
/// How long one `pier build` may take: a cold zig cache compiles musl for each target (about
/// a minute each, several at once on two cores); warm, a build takes seconds.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// The example's platforms, canonical, in the spec's order.
const PLATFORMS: [&str; 5] = [
    "linux/amd64",
    "linux/arm64/v8",
    "linux/loong64",
    "linux/sw64",
    "linux/mips64le",
];
/// The emulatable platforms and what `hello` prints on each (`uname(2)`'s machine).
const RUNNABLE: [(&str, &str); 4] = [
    ("linux/amd64", "x86_64"),
    ("linux/arm64/v8", "aarch64"),
    ("linux/loong64", "loongarch64"),
    ("linux/mips64le", "mips64"),
];
/// The project and repository the example is pushed to (private: clients authenticate).
const PROJECT: &str = "library";
const REPO: &str = "library/hello";
/// The text in `sw64-standin.sh`'s note that test 2 changes.
const STANDIN_NOTE: &str = "SW64 stand-in, not a program";

/// Copy `examples/hello` (its files, not a stray `out/` from a build in place) into `dest`;
/// the copied `pier.yaml`.
fn copy_example(dest: &Path) -> PathBuf {
    let src = pier_e2e::workspace_root().join("examples/hello");
    std::fs::create_dir_all(dest).expect("example copy dir");
    for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).expect("copy example file");
        }
    }
    let spec = dest.join("pier.yaml");
    assert!(spec.is_file(), "examples/hello/pier.yaml is missing");
    spec
}

/// `pier build -f SPEC --output oci:OUT --cache-dir CACHE --json [EXTRA…]`, run from `cwd`
/// with `SOURCE_DATE_EPOCH` fixed.
fn pier_build(cwd: &Path, spec: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Finished {
    let mut cmd = Command::new(pier_bin());
    cmd.current_dir(cwd)
        .arg("build")
        .arg("-f")
        .arg(spec)
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .arg("--cache-dir")
        .arg(cache)
        .arg("--json")
        .args(extra)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH);
    run_with_timeout(&mut cmd, BUILD_TIMEOUT)
}

/// [`pier_build`] that must succeed; its `--json` report, checked for shape.
fn build_ok(cwd: &Path, spec: &Path, out: &Path, cache: &Path) -> Value {
    let f = pier_build(cwd, spec, out, cache, &[]);
    assert!(
        f.status.success(),
        "pier build -f {} failed with {}\nstdout:\n{}\nstderr:\n{}",
        spec.display(),
        f.status,
        f.stdout,
        f.stderr
    );
    let report: Value = serde_json::from_str(f.stdout.trim())
        .unwrap_or_else(|e| panic!("pier build --json: stdout is not JSON ({e}):\n{}", f.stdout));
    let index = report["index"].as_str().unwrap_or_else(|| panic!("no index: {report}"));
    assert!(is_digest(index), "index {index:?}: {report}");
    assert_eq!(report["tags"], serde_json::json!(["1.0", "latest"]), "{report}");
    let platforms: Vec<&str> = entries(&report)
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, PLATFORMS, "{report}");
    for p in entries(&report) {
        assert!(is_digest(p["manifest"].as_str().unwrap_or_default()), "{p}");
        assert!(is_digest(p["config"].as_str().unwrap_or_default()), "{p}");
        let layers = p["layers"].as_array().unwrap_or_else(|| panic!("no layers: {p}"));
        assert_eq!(layers.len(), 1, "one layer per image: {p}");
        for l in layers {
            assert!(is_digest(l["digest"].as_str().unwrap_or_default()), "{l}");
            assert!(l["size"].as_u64().is_some_and(|s| s > 0), "{l}");
            assert!(l["cached"].is_boolean(), "{l}");
        }
    }
    report
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The report's `platforms` entries.
fn entries(report: &Value) -> &Vec<Value> {
    report["platforms"]
        .as_array()
        .unwrap_or_else(|| panic!("no platforms: {report}"))
}

/// Platform → `field` of its entry (`manifest`, `config`) in a build report.
fn by_platform(report: &Value, field: &str) -> BTreeMap<String, String> {
    entries(report)
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_owned(),
                p[field].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Platform → its first layer's digest in a build report.
fn layers_by_platform(report: &Value) -> BTreeMap<String, String> {
    entries(report)
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_owned(),
                p["layers"][0]["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Read a JSON blob out of an OCI layout.
fn layout_json(dir: &Path, digest: &str) -> Value {
    let path = dir.join("blobs/sha256").join(&digest[7..]);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(images::sha256(&bytes), digest, "{}", path.display());
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// GET `path` from pier as the system admin; must succeed.
/// The entry `name` of a gzip tar layer: its bytes and its mtime.
fn layer_entry(layer_gz: &[u8], name: &str) -> Option<(Vec<u8>, u64)> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(layer_gz));
    for e in a.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let path = e.path().expect("entry path").to_string_lossy().into_owned();
        if path.trim_start_matches("./").trim_start_matches('/') == name {
            let mtime = e.header().mtime().expect("mtime");
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).expect("read entry");
            return Some((v, mtime));
        }
    }
    None
}

#[test]
fn hello_builds_five_platforms_and_docker_runs_four() {
    const TEST: &str = "hello_builds_five_platforms_and_docker_runs_four";
    if !require_tools(TEST, &["skopeo", "dockerd", "docker"]) || !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = copy_example(&dir.path().join("hello"));
    let layout = dir.path().join("hello-oci");
    let cache = dir.path().join("cache");
    let report = build_ok(dir.path(), &spec, &layout, &cache);
    let index_digest = report["index"].as_str().unwrap().to_owned();

    // One layout: the index under both tags, one image per platform with the right config.
    for tag in ["1.0", "latest"] {
        assert_eq!(images::layout_tag_digest(&layout, tag), index_digest, "tag {tag}");
    }
    let index = layout_json(&layout, &index_digest);
    assert_eq!(images::index_platforms(&index), PLATFORMS, "{index}");
    let manifests = by_platform(&report, "manifest");
    for (m, platform) in index["manifests"].as_array().unwrap().iter().zip(PLATFORMS) {
        assert_eq!(m["digest"].as_str(), Some(manifests[platform].as_str()), "{platform}");
        let manifest = layout_json(&layout, &manifests[platform]);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        assert_eq!(config_digest, by_platform(&report, "config")[platform], "{platform}");
        let config = layout_json(&layout, config_digest);
        let mut parts = platform.split('/');
        assert_eq!(config["os"], parts.next().unwrap(), "{platform}: {config}");
        assert_eq!(config["architecture"], parts.next().unwrap(), "{platform}: {config}");
        assert_eq!(config["variant"].as_str(), parts.next(), "{platform}: {config}");
        assert_eq!(
            config["created"], SOURCE_DATE,
            "{platform}: SOURCE_DATE_EPOCH: {config}"
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/hello"]),
            "{platform}"
        );
        assert_eq!(config["config"]["Labels"]["io.pier.platform"], platform, "{platform}");
        assert_eq!(
            config["rootfs"]["diff_ids"].as_array().map(Vec::len),
            Some(1),
            "{config}"
        );
    }

    // An unchanged rebuild with the same cache: the same index, every layer from the cache.
    let again = build_ok(dir.path(), &spec, &dir.path().join("hello-oci-again"), &cache);
    assert_eq!(again["index"], report["index"], "unchanged rebuild changed the index");
    for p in entries(&again) {
        assert_eq!(p["layers"][0]["cached"], true, "unchanged layer was rebuilt: {p}");
    }

    // `pier build --push` sends the same index to pier (the spec's image, pointed at this
    // server), with the admin's credentials from the environment.
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project(PROJECT, false);
    let image = format!("{}/{REPO}:1.0", pier.host());
    let spec_text = std::fs::read_to_string(&spec).unwrap();
    let here = spec_text.replace(
        "image: 127.0.0.1:5000/library/hello",
        &format!("image: {}/{REPO}", pier.host()),
    );
    assert_ne!(here, spec_text, "the example's image line moved");
    std::fs::write(&spec, here).unwrap();
    let config_dir = dir.path().join("config");
    let push = push_build(dir.path(), &spec, &cache, &pier, &config_dir, ADMIN_PASSWORD);
    assert!(push.status.success(), "pier build --push: {push:?}");
    let pushed: Value = serde_json::from_str(push.stdout.trim()).unwrap();
    assert_eq!(pushed["index"], report["index"], "{pushed}");
    assert_eq!(pushed["pushed"]["repository"], format!("{}/{REPO}", pier.host()));
    assert_eq!(
        pushed["pushed"]["copy"]["blobs_copied"], 10,
        "5 layers + 5 configs: {pushed}"
    );
    // Pushing again sends nothing: every blob is there (HEAD first).
    let again = push_build(dir.path(), &spec, &cache, &pier, &config_dir, ADMIN_PASSWORD);
    assert!(again.status.success(), "{again:?}");
    let again: Value = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(
        (
            &again["pushed"]["copy"]["blobs_copied"],
            &again["pushed"]["copy"]["blobs_present"]
        ),
        (&serde_json::json!(0), &serde_json::json!(10)),
        "{again}"
    );
    for tag in ["1.0", "latest"] {
        let r = admin_get(
            &pier,
            &format!("/v2/{REPO}/manifests/{tag}"),
            pier_oci::media::OCI_INDEX,
        );
        assert_eq!(r.headers()["docker-content-digest"], index_digest.as_str(), "{tag}");
    }
    let r = admin_get(&pier, &format!("/v2/{REPO}/manifests/1.0"), pier_oci::media::OCI_INDEX);
    assert_eq!(r.headers()["docker-content-digest"], index_digest.as_str());
    let served: Value = r.json().unwrap();
    assert_eq!(images::index_platforms(&served), PLATFORMS);

    // docker pulls and runs each emulatable platform (20.10 keeps one platform per tag, so
    // run right after each pull; `--pull never` makes the run use exactly that pull).
    let dk = Dockerd::start();
    dk.login_admin(&pier.host());
    for (platform, uname) in RUNNABLE {
        dk.run(&["pull", "--platform", platform, &image]);
        let out = dk.run_pulled(platform, &image);
        assert!(out.contains(uname), "{platform}: {out:?} does not name {uname}");
        assert_eq!(out.trim(), format!("hello from pier, running on {uname}"), "{platform}");
    }

    // A second spec builds on the pushed image: its layer goes on top of the base's, the
    // base's entrypoint stays, and docker runs the result. One file per platform: the
    // steps run in parallel in the same directory.
    let plus = dir.path().join("plus");
    std::fs::create_dir_all(&plus).unwrap();
    std::fs::write(
        plus.join("pier.yaml"),
        format!(
            "image: {host}/{REPO}-plus\ntags: [\"1.0\"]\nplatforms: [amd64, aarch64]\nbase: {image}\n\
             steps:\n  - run: echo 'built on hello' > note-{{arch}}.txt\n\
             layers:\n  - files:\n      - {{ src: \"note-{{arch}}.txt\", dest: /note.txt, mode: \"0644\" }}\n\
             labels: {{ io.pier.example: plus }}\n",
            host = pier.host()
        ),
    )
    .unwrap();
    let plus_push = push_build(
        dir.path(),
        &plus.join("pier.yaml"),
        &cache,
        &pier,
        &config_dir,
        ADMIN_PASSWORD,
    );
    assert!(plus_push.status.success(), "{plus_push:?}");
    let plus_image = format!("{}/{REPO}-plus:1.0", pier.host());
    for (platform, uname) in [RUNNABLE[0], RUNNABLE[1]] {
        dk.run(&["pull", "--platform", platform, &plus_image]);
        let out = dk.run_pulled(platform, &plus_image);
        assert_eq!(out.trim(), format!("hello from pier, running on {uname}"), "{platform}");
        let labels = dk.run(&["image", "inspect", "--format", "{{json .Config.Labels}}", &plus_image]);
        assert!(
            labels.contains("\"io.pier.example\":\"plus\"") && labels.contains("io.pier.platform"),
            "{labels}"
        );
    }
    let plus_index: Value = admin_get(
        &pier,
        &format!("/v2/{REPO}-plus/manifests/1.0"),
        pier_oci::media::OCI_INDEX,
    )
    .json()
    .unwrap();
    let (plus_manifest, plus_config) = platform_image(&pier, &format!("{REPO}-plus"), &plus_index, "arm64");
    let (hello_manifest, _) = platform_image(&pier, REPO, &served, "arm64");
    assert_eq!(
        plus_manifest["layers"][0], hello_manifest["layers"][0],
        "the base layer comes first"
    );
    assert_eq!(plus_config["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(2));
    drop(dk);
    // A platform the base does not have fails the build, naming it and what the base has;
    // nothing is pushed.
    let text = std::fs::read_to_string(plus.join("pier.yaml")).unwrap();
    let loong = text
        .replace("[amd64, aarch64]", "[amd64, loongarch64]")
        .replace(&format!("base: {image}"), &format!("base: {plus_image}"))
        .replace("-plus\n", "-loong\n");
    std::fs::write(plus.join("pier.yaml"), loong).unwrap();
    let refused = push_build(
        dir.path(),
        &plus.join("pier.yaml"),
        &cache,
        &pier,
        &config_dir,
        ADMIN_PASSWORD,
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.stderr.contains("linux/loong64")
            && refused.stderr.contains(&plus_image)
            && refused.stderr.contains("linux/amd64, linux/arm64/v8"),
        "{}",
        refused.stderr
    );
    let r = pier_e2e::admin_client(Duration::from_secs(10))
        .get(format!("{}/v2/{REPO}-loong/manifests/1.0", pier.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);

    // The SW64 image, read back from pier: sw64 config, and its /hello is the stand-in, an
    // ELF header with EM_SW64 followed by the note.
    let (manifest, config) = platform_image(&pier, REPO, &served, "sw64");
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("sw64")),
        "{config}"
    );
    assert!(
        config["config"]["Labels"]["io.pier.sw64-standin"].is_string(),
        "the sw64 image is labelled as a stand-in: {config}"
    );
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let layer = admin_get(&pier, &format!("/v2/{REPO}/blobs/{layer_digest}"), "*/*")
        .bytes()
        .unwrap();
    assert_eq!(images::sha256(&layer), layer_digest);
    let (hello, mtime) = layer_entry(&layer, "hello").expect("/hello in the sw64 layer");
    assert_eq!(images::elf_machine(&hello), Some(images::EM_SW64));
    assert_eq!(&hello[4..7], [2, 1, 1], "ELF64, little endian, version 1");
    assert!(
        String::from_utf8_lossy(&hello[64..]).contains(STANDIN_NOTE),
        "the stand-in's note follows its header"
    );
    assert_eq!(
        mtime.to_string(),
        SOURCE_DATE_EPOCH,
        "layer mtime comes from SOURCE_DATE_EPOCH"
    );
}

/// A push that is denied, or finds no registry, fails with a clear message and leaves no
/// tag; the build itself (shell steps only) is not the point here.
#[test]
fn failed_pushes_tag_nothing() {
    const TEST: &str = "failed_pushes_tag_nothing";
    if !require_tools(TEST, &["sh"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project("team", false);
    pier.create_user("guest-user", "guest-Secret-1");
    pier.add_member("team", "guest-user", "guest");
    let write_spec = |host: &str| {
        let spec = dir.path().join("pier.yaml");
        std::fs::write(
            &spec,
            format!(
                // One file per platform: the steps run in parallel in the same directory.
                "image: {host}/team/app\ntags: [\"1\"]\nplatforms: [amd64, arm64]\n\
                 steps:\n  - run: echo hi > hi-{{arch}}.txt\nlayers:\n  - files:\n      - {{ src: \"hi-{{arch}}.txt\", dest: /hi.txt }}\n"
            ),
        )
        .unwrap();
        spec
    };
    let spec = write_spec(&pier.host());
    let cache = dir.path().join("cache");
    let config_dir = dir.path().join("config");
    // A guest may pull but not push: denied, named, no tag.
    let server = pier.url();
    let guest = Some((server.as_str(), "guest-user", "guest-Secret-1"));
    let denied = push_build_as(dir.path(), &spec, &cache, &config_dir, guest, &[]);
    assert!(!denied.status.success(), "{denied:?}");
    assert!(
        denied.stderr.contains("denied") && denied.stderr.contains("team/app"),
        "{}",
        denied.stderr
    );
    let r = pier_e2e::admin_client(Duration::from_secs(10))
        .get(format!("{}/v2/team/app/manifests/1", pier.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404, "a denied push left a tag");
    // A wrong password: refused as a login failure.
    let wrong = push_build(dir.path(), &spec, &cache, &pier, &config_dir, "not-the-password");
    assert!(!wrong.status.success(), "{wrong:?}");
    assert!(wrong.stderr.contains("denied"), "{}", wrong.stderr);
    // No registry on the port: unreachable, naming it.
    let gone = format!("127.0.0.1:{}", pier_e2e::free_port());
    let spec = write_spec(&gone);
    let down = push_build_as(dir.path(), &spec, &cache, &config_dir, None, &[]);
    assert!(!down.status.success(), "{down:?}");
    assert!(
        down.stderr.contains("unreachable") && down.stderr.contains(&gone),
        "{}",
        down.stderr
    );
}

/// The layer of the mid-push test: incompressible, so its gzip is as large.
const BIG_LAYER: usize = 48 * 1024 * 1024;
/// The pace of uploads through the relay: the big layer takes about three seconds on the wire.
const UPLOAD_PACE: u64 = 16 * 1024 * 1024;
/// The server is killed once an upload session holds this much of the big layer.
const CUT_AFTER: u64 = 4 * 1024 * 1024;

#[test]
fn registry_down_mid_push_tags_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut pier = Pier::start(&data);
    pier.create_project("team", false);
    // Uploads pass through a relay that paces them, so the kill lands inside the big blob.
    let relay = Relay::start(pier.addr, UPLOAD_PACE);
    std::fs::write(dir.path().join("big.bin"), pier_e2e::test_bytes(5, BIG_LAYER)).unwrap();
    let spec = dir.path().join("pier.yaml");
    std::fs::write(
        &spec,
        format!(
            "image: {}/team/app\ntags: [\"1\", latest]\nplatforms: [amd64, arm64]\n\
             layers:\n  - files:\n      - {{ src: big.bin, dest: /big.bin }}\n\
             labels:\n  io.pier.platform: \"{{platform}}\"\n",
            relay.host()
        ),
    )
    .unwrap();
    let (cache, config_dir) = (dir.path().join("cache"), dir.path().join("config"));
    let push = || {
        push_build_as(
            dir.path(),
            &spec,
            &cache,
            &config_dir,
            Some((&relay.url(), "admin", ADMIN_PASSWORD)),
            &[],
        )
    };

    let uploads = data.join("uploads");
    let held = || {
        std::fs::read_dir(&uploads)
            .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).max())
            .ok()
            .flatten()
            .unwrap_or(0)
    };
    let cut = std::thread::scope(|scope| {
        let running = scope.spawn(push);
        wait_until(
            "an upload session holding part of the big layer",
            BUILD_TIMEOUT,
            || running.is_finished() || held() >= CUT_AFTER,
            || pier.log_text(),
        );
        assert!(
            !running.is_finished(),
            "the push ended before the cut: {:?}",
            running.join()
        );
        pier.kill9();
        running.join().expect("push thread")
    });
    assert!(
        !cut.status.success(),
        "a push cut by a dead registry succeeded: {cut:?}"
    );
    assert!(
        cut.stderr.contains(&format!(
            "push to {}/team/app stopped: no tag was written",
            relay.host()
        )) && cut.stderr.contains("unreachable"),
        "the error must name the registry and repository, and say no tag was written: {}",
        cut.stderr
    );

    // Restarted on the same data: no tag, no index, nothing half-pushed visible.
    let pier = Pier::start_on(&data, pier.addr);
    let client = pier_e2e::admin_client(Duration::from_secs(30));
    for tag in ["1", "latest"] {
        let r = client
            .get(format!("{}/v2/team/app/manifests/{tag}", pier.url()))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "a cut push left tag {tag}");
    }
    let tags = client
        .get(format!("{}/v2/team/app/tags/list", pier.url()))
        .send()
        .unwrap();
    let listed: Vec<String> = if tags.status() == 404 {
        Vec::new()
    } else {
        let body: Value = tags.json().unwrap();
        serde_json::from_value(body["tags"].clone()).unwrap_or_default()
    };
    assert!(listed.is_empty(), "a cut push left tags: {listed:?}");

    // The same push, at full speed, completes: nothing stored was left damaged.
    relay.set_rate(0);
    let again = push();
    assert!(again.status.success(), "{again:?}");
    let index: Value = admin_get(&pier, "/v2/team/app/manifests/1", pier_oci::media::OCI_INDEX)
        .json()
        .unwrap();
    for arch in ["amd64", "arm64"] {
        let (manifest, config) = platform_image(&pier, "team/app", &index, arch);
        assert_eq!(config["architecture"], arch);
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let blob = admin_get(&pier, &format!("/v2/team/app/blobs/{layer}"), "*/*")
            .bytes()
            .unwrap();
        assert_eq!(pier_e2e::sha256(&blob), layer, "the big layer is whole");
    }
}

/// `pier build -f SPEC --push --json` (no `--output`) as `admin` with `password`, the server
/// from `PIER_SERVER`.
fn push_build(cwd: &Path, spec: &Path, cache: &Path, pier: &Pier, config_dir: &Path, password: &str) -> Finished {
    push_build_as(
        cwd,
        spec,
        cache,
        config_dir,
        Some((&pier.url(), "admin", password)),
        &[],
    )
}

/// `pier build -f SPEC --push --json [EXTRA…]`; with `login` (server URL, user, password),
/// `PIER_SERVER` names that server and `PIER_USERNAME`/`PIER_PASSWORD` the user, else none
/// is set (the spec's `image` names the registry).
fn push_build_as(
    cwd: &Path,
    spec: &Path,
    cache: &Path,
    config_dir: &Path,
    login: Option<(&str, &str, &str)>,
    extra: &[&str],
) -> Finished {
    let mut cmd = Command::new(pier_bin());
    cmd.current_dir(cwd)
        .args(["build", "--push", "--json"])
        .args(extra)
        .arg("-f")
        .arg(spec)
        .arg("--cache-dir")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env("PIER_CONFIG_DIR", config_dir)
        .env_remove("PIER_SERVER")
        .env_remove("PIER_USERNAME")
        .env_remove("PIER_PASSWORD");
    if let Some((server, user, password)) = login {
        cmd.env("PIER_SERVER", server)
            .env("PIER_USERNAME", user)
            .env("PIER_PASSWORD", password);
    }
    run_with_timeout(&mut cmd, BUILD_TIMEOUT)
}

#[test]
fn two_fresh_builds_match_and_one_change_touches_one_platform() {
    const TEST: &str = "two_fresh_builds_match_and_one_change_touches_one_platform";
    if !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let build = |name: &str, change: Option<(&str, &str)>| {
        let root = dir.path().join(name);
        let spec = copy_example(&root.join("src"));
        if let Some((from, to)) = change {
            let script = root.join("src/sw64-standin.sh");
            let text = std::fs::read_to_string(&script).unwrap();
            assert!(text.contains(from), "{} no longer holds {from:?}", script.display());
            std::fs::write(&script, text.replacen(from, to, 1)).unwrap();
        }
        build_ok(&root, &spec, &root.join("oci"), &root.join("cache"))
    };

    // Separate fresh directories and caches: the same digests, all the way down.
    let a = build("a", None);
    let b = build("b", None);
    assert_eq!(a["index"], b["index"], "two fresh builds differ:\n{a}\n{b}");
    assert_eq!(by_platform(&a, "manifest"), by_platform(&b, "manifest"));
    assert_eq!(layers_by_platform(&a), layers_by_platform(&b));

    // One byte of the SW64 stand-in's note changed: only the SW64 image changes.
    let c = build("c", Some((STANDIN_NOTE, "SW64 stand-in; not a program")));
    assert_ne!(a["index"], c["index"], "a changed input left the index as it was");
    let (ma, mc) = (by_platform(&a, "manifest"), by_platform(&c, "manifest"));
    let (la, lc) = (layers_by_platform(&a), layers_by_platform(&c));
    for platform in PLATFORMS {
        if platform == "linux/sw64" {
            assert_ne!(ma[platform], mc[platform], "{platform}: manifest unchanged");
            assert_ne!(la[platform], lc[platform], "{platform}: layer unchanged");
        } else {
            assert_eq!(ma[platform], mc[platform], "{platform}: manifest changed");
            assert_eq!(la[platform], lc[platform], "{platform}: layer changed");
        }
    }
}

#[test]
fn wrong_arch_binary_fails_the_build() {
    const TEST: &str = "wrong_arch_binary_fails_the_build";
    if !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = copy_example(&dir.path().join("src"));
    // The arm64 step puts an x86-64 binary where the arm64 one belongs. It compiles it
    // itself (the steps of the platforms run in parallel, so the amd64 step's output may not
    // exist yet when this one runs).
    let yaml = std::fs::read_to_string(&spec).unwrap();
    assert!(
        yaml.contains("\noverrides:\n") && !yaml.contains("\n  aarch64:"),
        "pier.yaml no longer ends with an `overrides` map without aarch64"
    );
    let wrong = "  aarch64:\n    steps:\n      - run: mkdir -p out/{uname} && python3 -m ziglang cc \
                 -target x86_64-linux-musl -static -O2 -o out/{uname}/hello hello.c\n";
    std::fs::write(&spec, format!("{}\n{wrong}", yaml.trim_end())).unwrap();

    let f = pier_build(
        dir.path(),
        &spec,
        &dir.path().join("oci"),
        &dir.path().join("cache"),
        &[],
    );
    assert_eq!(
        f.status.code(),
        Some(1),
        "pier build with an x86-64 binary in the arm64 layer: {}\nstdout:\n{}\nstderr:\n{}",
        f.status,
        f.stdout,
        f.stderr
    );
    for want in ["/hello", "x86-64", "aarch64"] {
        assert!(
            f.stderr.contains(want),
            "the error does not name {want:?}:\n{}",
            f.stderr
        );
    }
}

/// `compression: zstd`: the example with zstd layers, pushed with `pier build --push`, pulled
/// and run by containerd (docker 20.10 cannot read zstd layers; containerd can).
#[test]
fn zstd_layers_run_under_containerd() {
    const TEST: &str = "zstd_layers_run_under_containerd";
    if !require_tools(TEST, &["containerd", "ctr", "runc"]) || !images::require_zig(TEST) {
        return;
    }
    const CTR_TIMEOUT: Duration = Duration::from_secs(180);
    let dir = tempfile::tempdir().unwrap();
    let spec = copy_example(&dir.path().join("hello"));
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project(PROJECT, false);
    let text = std::fs::read_to_string(&spec).unwrap();
    let zstd = text
        .replace(
            "image: 127.0.0.1:5000/library/hello",
            &format!("image: {}/{REPO}-zstd", pier.host()),
        )
        .replace("base: scratch", "base: scratch\ncompression: zstd");
    assert_ne!(zstd, text);
    std::fs::write(&spec, zstd).unwrap();
    let cache = dir.path().join("cache");
    let pushed = push_build_as(
        dir.path(),
        &spec,
        &cache,
        &dir.path().join("config"),
        Some((&pier.url(), "admin", ADMIN_PASSWORD)),
        &["--platform", "amd64", "--platform", "aarch64"],
    );
    assert!(pushed.status.success(), "{pushed:?}");
    let index: Value = admin_get(
        &pier,
        &format!("/v2/{REPO}-zstd/manifests/1.0"),
        pier_oci::media::OCI_INDEX,
    )
    .json()
    .unwrap();
    let (manifest, _) = platform_image(&pier, &format!("{REPO}-zstd"), &index, "arm64");
    assert_eq!(manifest["layers"][0]["mediaType"], pier_oci::media::OCI_LAYER_ZSTD);

    let ctd = pier_e2e::containerd::Containerd::start();
    let image = format!("{}/{REPO}-zstd:1.0", pier.host());
    pier_e2e::run_ok(
        ctd.ctr().args([
            "images",
            "pull",
            "--plain-http",
            "--user",
            &pier_e2e::admin_creds(),
            "--all-platforms",
            "--snapshotter",
            "native",
            &image,
        ]),
        CTR_TIMEOUT,
    );
    for (platform, uname) in [RUNNABLE[0], RUNNABLE[1]] {
        let id = format!("zstd-{}", uname);
        let out = pier_e2e::run_ok(
            ctd.ctr().args([
                "run",
                "--rm",
                "--snapshotter",
                "native",
                "--platform",
                platform,
                &image,
                &id,
            ]),
            CTR_TIMEOUT,
        );
        assert_eq!(out.trim(), format!("hello from pier, running on {uname}"), "{platform}");
    }
}
