//! One multi-arch index for the five families: skopeo pushes it into pier, docker and
//! containerd pull and run each emulatable platform, skopeo copies it back out unchanged.

use std::collections::BTreeSet;
use std::process::Command;

use pier_e2e::containerd::Containerd;
use pier_e2e::docker::Dockerd;
use pier_e2e::images::{self, ARCHES};
use pier_e2e::{Pier, require_tools, run};
use serde_json::Value;

const REPO: &str = "fleet/hello";
const TAG: &str = "v1";

struct Pushed {
    _dir: tempfile::TempDir,
    pier: Pier,
    layout: images::Layout,
}

fn push_layout() -> Pushed {
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    let layout = images::build_layout(&dir.path().join("layout"), TAG, &ARCHES);
    run(Command::new("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:{TAG}", layout.dir.display()),
        &format!("docker://{}/{REPO}:{TAG}", pier.host()),
    ]));
    Pushed {
        _dir: dir,
        pier,
        layout,
    }
}

fn get(pier: &Pier, path: &str, accept: &str) -> reqwest::blocking::Response {
    let r = reqwest::blocking::Client::new()
        .get(format!("{}{path}", pier.url()))
        .header("accept", accept)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r
}

#[test]
fn skopeo_docker_five_platforms_round_trip() {
    if !require_tools("multiarch", &["skopeo", "dockerd", "docker", "python3"]) {
        return;
    }
    let Pushed { _dir, pier, layout } = push_layout();

    // pier serves the index as pushed, with the canonical platforms.
    let r = get(
        &pier,
        &format!("/v2/{REPO}/manifests/{TAG}"),
        pier_oci::media::OCI_INDEX,
    );
    assert_eq!(r.headers()["docker-content-digest"], layout.index_digest.as_str());
    let index: Value = r.json().unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            match p["variant"].as_str() {
                Some(v) => format!(
                    "{}/{}/{v}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                ),
                None => format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap()),
            }
        })
        .collect();
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
    // run right after each pull).
    let dk = Dockerd::start();
    let image = format!("{}/{REPO}:{TAG}", pier.host());
    for arch in ARCHES.iter().filter(|a| a.runnable()) {
        let p = arch.platform();
        dk.run(&["pull", "--platform", &p, &image]);
        let out = dk.run(&["run", "--rm", "--network", "none", "--platform", &p, &image]);
        assert_eq!(out.trim(), arch.uname, "{p}");
    }

    // The SW64 image: right config, and its file has the SW64 ELF machine.
    let sw64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "sw64")
        .unwrap();
    let manifest: Value = get(
        &pier,
        &format!("/v2/{REPO}/manifests/{}", sw64["digest"].as_str().unwrap()),
        "*/*",
    )
    .json()
    .unwrap();
    let config: Value = get(
        &pier,
        &format!("/v2/{REPO}/blobs/{}", manifest["config"]["digest"].as_str().unwrap()),
        "*/*",
    )
    .json()
    .unwrap();
    assert_eq!(
        (config["architecture"].as_str(), config["os"].as_str()),
        (Some("sw64"), Some("linux"))
    );
    assert!(config["config"]["Labels"][images::SW64_STANDIN_LABEL].is_string());
    let layer = get(
        &pier,
        &format!("/v2/{REPO}/blobs/{}", manifest["layers"][0]["digest"].as_str().unwrap()),
        "*/*",
    )
    .bytes()
    .unwrap();
    let hello = images::file_from_layer(&layer, "hello").expect("hello in the sw64 layer");
    assert_eq!(images::elf_machine(&hello), Some(images::EM_SW64));

    // skopeo copies it back out byte for byte: same index digest, same blobs.
    let out = tempfile::tempdir().unwrap();
    run(Command::new("skopeo").args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:{TAG}", out.path().display()),
    ]));
    assert_eq!(images::layout_tag_digest(out.path(), TAG), layout.index_digest);
    let want: BTreeSet<String> = images::layout_blobs(&layout.dir);
    assert_eq!(images::layout_blobs(out.path()), want);
    let raw =
        run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{image}")]));
    assert_eq!(images::sha256(raw.as_bytes()), layout.index_digest);
}

#[test]
fn containerd_pulls_every_platform_and_runs_four() {
    if !require_tools("containerd", &["skopeo", "containerd", "ctr", "runc", "python3"]) {
        return;
    }
    let Pushed { _dir, pier, layout } = push_layout();
    let ctd = Containerd::start();
    let image = format!("{}/{REPO}:{TAG}", pier.host());
    run(ctd.ctr().args([
        "images",
        "pull",
        "--plain-http",
        "--all-platforms",
        "--snapshotter",
        "native",
        &image,
    ]));
    let listed = run(ctd.ctr().args(["images", "ls"]));
    assert!(listed.contains(&layout.index_digest), "{listed}");
    for arch in ARCHES.iter().filter(|a| a.runnable()) {
        let p = arch.platform();
        let id = format!("hello-{}", arch.architecture);
        let out = run(ctd
            .ctr()
            .args(["run", "--rm", "--snapshotter", "native", "--platform", &p, &image, &id]));
        assert_eq!(out.trim(), arch.uname, "{p}");
    }
}
