//! A real dockerd pushes to, pulls from and runs an image out of `pier serve`.

use pier_e2e::docker::Dockerd;
use pier_e2e::{Pier, images, require_tools};

#[test]
fn docker_push_pull_run() {
    if !require_tools("docker_push_pull_run", &["dockerd", "docker", "python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    let dk = Dockerd::start();

    // No internet, so no base image: import a root filesystem holding one static binary.
    let amd64 = images::ARCHES[0];
    let rootfs = dir.path().join("rootfs.tar");
    std::fs::write(&rootfs, images::tar_with("hello", &images::hello_binary(&amd64))).unwrap();
    let image = format!("{}/team/app/hello:v1", pier.host());
    dk.run(&[
        "import",
        "--change",
        r#"ENTRYPOINT ["/hello"]"#,
        rootfs.to_str().unwrap(),
        &image,
    ]);

    let pushed = dk.run(&["push", &image]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    dk.run(&["rmi", &image]);
    assert!(dk.run(&["images", "-q", &image]).trim().is_empty());

    let pulled = dk.run(&["pull", &image]);
    assert!(pulled.contains("Downloaded newer image"), "{pulled}");
    let out = dk.run(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out.trim(), "x86_64");

    // What docker pushed is what pier serves: the tag lists and the digest matches.
    let tags: serde_json::Value = reqwest::blocking::get(format!("{}/v2/team/app/hello/tags/list", pier.url()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let repo_digest = dk.run(&["inspect", "--format", "{{index .RepoDigests 0}}", &image]);
    let manifest = reqwest::blocking::Client::new()
        .get(format!("{}/v2/team/app/hello/manifests/v1", pier.url()))
        .header("accept", pier_oci::media::DOCKER_MANIFEST)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(
        repo_digest.trim().ends_with(&images::sha256(&manifest)),
        "{repo_digest}"
    );

    // A tag that does not exist: a clear error, naming what is missing.
    let err = dk.run_failing(&["pull", &format!("{}/team/app/hello:nope", pier.host())]);
    assert!(err.contains("manifest unknown") || err.contains("not found"), "{err}");
    // A repository name docker accepts but the grammar refuses is caught by docker itself;
    // a push into a fresh multi-segment repository works and mounts nothing it should not.
    let second = format!("{}/team/other/deep/hello:v2", pier.host());
    dk.run(&["tag", &image, &second]);
    dk.run(&["push", &second]);
    assert_eq!(dk.run(&["run", "--rm", "--network", "none", &second]).trim(), "x86_64");
}
