//! One multi-arch index for the five families: skopeo pushes it into pier, docker and
//! containerd pull and run each emulatable platform, skopeo copies it back out unchanged.
//! The project is private: every client authenticates as the system admin.

use std::collections::BTreeSet;
use std::time::Duration;

use pier_e2e::containerd::Containerd;
use pier_e2e::docker::Dockerd;
use pier_e2e::images::{self, ARCHES};
use pier_e2e::{Pier, SKOPEO_TIMEOUT, admin_creds, admin_get, platform_image, require_tools, run_ok, skopeo};
use serde_json::Value;

/// Private: every client below has to authenticate.
const PROJECT: &str = "fleet";
const REPO: &str = "fleet/hello";
const TAG: &str = "v1";
/// How long one `ctr` command may take.
const CTR_TIMEOUT: Duration = Duration::from_secs(180);

struct Pushed {
    dir: tempfile::TempDir,
    pier: Pier,
    layout: images::Layout,
}

/// Start pier, create the private project, and push the five-platform index into it with
/// skopeo as the system admin.
fn push_layout() -> Pushed {
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project(PROJECT, false);
    let layout = images::build_layout(&dir.path().join("layout"), TAG, &ARCHES);
    images::push_layout(
        dir.path(),
        &layout,
        &format!("{}/{REPO}:{TAG}", pier.host()),
        Some(&admin_creds()),
    );
    Pushed { dir, pier, layout }
}

#[test]
fn skopeo_docker_five_platforms_round_trip() {
    const TEST: &str = "skopeo_docker_five_platforms_round_trip";
    if !require_tools(TEST, &["skopeo", "dockerd", "docker"]) || !images::require_zig(TEST) {
        return;
    }
    let Pushed { dir, pier, layout } = push_layout();
    // Fixed owners, modes, mtimes and gzip settings: a second build is the same index.
    let again = images::build_layout(&dir.path().join("layout-again"), TAG, &ARCHES);
    assert_eq!(
        again.index_digest, layout.index_digest,
        "layout build is not deterministic"
    );

    // pier serves the index as pushed, with the canonical platforms.
    let r = admin_get(
        &pier,
        &format!("/v2/{REPO}/manifests/{TAG}"),
        pier_oci::media::OCI_INDEX,
    );
    assert_eq!(r.headers()["docker-content-digest"], layout.index_digest.as_str());
    assert_eq!(r.headers()["content-type"], pier_oci::media::OCI_INDEX);
    let served = r.bytes().unwrap();
    let pushed = std::fs::read(layout.dir.join("blobs/sha256").join(&layout.index_digest[7..])).unwrap();
    assert!(served[..] == pushed[..], "index bytes changed on the way through pier");
    let index: Value = serde_json::from_slice(&served).unwrap();
    let platforms = images::index_platforms(&index);
    assert_eq!(
        platforms,
        [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/loong64",
            "linux/sw64",
            "linux/mips64le"
        ]
    );

    // docker pulls and runs each emulatable platform (20.10 keeps one platform per tag, so
    // run right after each pull; `--pull never` makes sure the run uses exactly that pull).
    let dk = Dockerd::start();
    dk.login_admin(&pier.host());
    let image = format!("{}/{REPO}:{TAG}", pier.host());
    for arch in ARCHES.iter().filter(|a| a.runnable()) {
        let p = arch.platform();
        dk.run(&["pull", "--platform", &p, &image]);
        let got = dk.run(&["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", &image]);
        assert_eq!(got.trim(), format!("linux/{}", arch.architecture), "{p}");
        let out = dk.run_pulled(&p, &image);
        assert_eq!(out.trim(), arch.uname, "{p}");
    }
    drop(dk);

    // The SW64 image: right config, and its file has the SW64 ELF machine.
    let (manifest, config) = platform_image(&pier, REPO, &index, "sw64");
    assert_eq!(
        (config["architecture"].as_str(), config["os"].as_str()),
        (Some("sw64"), Some("linux"))
    );
    assert_eq!(
        config["config"]["Labels"][images::SW64_STANDIN_LABEL],
        images::SW64_STANDIN_NOTE
    );
    assert_eq!(
        manifest["annotations"][images::SW64_STANDIN_LABEL],
        images::SW64_STANDIN_NOTE
    );
    let layer = admin_get(
        &pier,
        &format!("/v2/{REPO}/blobs/{}", manifest["layers"][0]["digest"].as_str().unwrap()),
        "*/*",
    )
    .bytes()
    .unwrap();
    assert_eq!(
        images::sha256(&layer),
        manifest["layers"][0]["digest"].as_str().unwrap()
    );
    let hello = images::file_from_layer(&layer, "hello").expect("hello in the sw64 layer");
    assert_eq!(images::elf_machine(&hello), Some(images::EM_SW64));

    // skopeo copies it back out byte for byte: same index digest, same blobs.
    let out = dir.path().join("out");
    run_ok(
        skopeo(dir.path()).args([
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            &admin_creds(),
            &format!("docker://{image}"),
            &format!("oci:{}:{TAG}", out.display()),
        ]),
        SKOPEO_TIMEOUT,
    );
    assert_eq!(images::layout_tag_digest(&out, TAG), layout.index_digest);
    let want: BTreeSet<String> = images::layout_blobs(&layout.dir);
    assert_eq!(images::layout_blobs(&out), want);
    for blob in &want {
        let file = out.join("blobs/sha256").join(&blob[7..]);
        assert_eq!(&pier_e2e::sha256_file(&file), blob, "{}", file.display());
    }
    let raw = run_ok(
        skopeo(dir.path()).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &admin_creds(),
            &format!("docker://{image}"),
        ]),
        SKOPEO_TIMEOUT,
    );
    assert_eq!(images::sha256(raw.as_bytes()), layout.index_digest);
}

#[test]
fn containerd_pulls_every_platform_and_runs_four() {
    const TEST: &str = "containerd_pulls_every_platform_and_runs_four";
    if !require_tools(TEST, &["skopeo", "containerd", "ctr", "runc"]) || !images::require_zig(TEST) {
        return;
    }
    let Pushed {
        dir: _dir,
        pier,
        layout,
    } = push_layout();
    let ctd = Containerd::start();
    let image = format!("{}/{REPO}:{TAG}", pier.host());
    run_ok(
        ctd.ctr().args([
            "images",
            "pull",
            "--plain-http",
            "--user",
            &admin_creds(),
            "--all-platforms",
            "--snapshotter",
            "native",
            &image,
        ]),
        CTR_TIMEOUT,
    );
    let listed = run_ok(ctd.ctr().args(["images", "ls"]), CTR_TIMEOUT);
    assert!(listed.contains(&layout.index_digest), "{listed}");
    for arch in ARCHES.iter().filter(|a| a.runnable()) {
        let p = arch.platform();
        let id = format!("hello-{}", arch.architecture);
        let out = run_ok(
            ctd.ctr()
                .args(["run", "--rm", "--snapshotter", "native", "--platform", &p, &image, &id]),
            CTR_TIMEOUT,
        );
        assert_eq!(out.trim(), arch.uname, "{p}");
    }
}
