//! A real dockerd pushes to, pulls from and runs an image out of `pier serve`, logged in
//! as the system admin (the project is private).

use std::time::Duration;

use pier_e2e::docker::Dockerd;
use pier_e2e::{Pier, admin_client, images, require_tools};

/// Per-request limit for the test's own HTTP checks against pier.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn docker_push_pull_run() {
    const TEST: &str = "docker_push_pull_run";
    if !require_tools(TEST, &["dockerd", "docker"]) || !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project("team", false);
    let dk = Dockerd::start();
    dk.login_admin(&pier.host());
    let http = admin_client(HTTP_TIMEOUT);

    // No internet, so no base image: import a root filesystem holding one static binary.
    let image = format!("{}/team/app/hello:v1", pier.host());
    dk.import_hello(dir.path(), &images::ARCHES[0], &image);

    let pushed = dk.run(&["push", &image]);
    let pushed_digest = pushed
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in push output:\n{pushed}"))
        .to_owned();
    dk.run(&["rmi", &image]);
    assert!(dk.run(&["images", "-q", &image]).trim().is_empty());

    let pulled = dk.run(&["pull", &image]);
    assert!(pulled.contains("Downloaded newer image"), "{pulled}");
    let out = dk.run(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out.trim(), "x86_64");

    // What docker pushed is what pier serves: the tag lists and the digest matches, both the
    // one docker printed on push and the one it recorded on pull.
    let tags: serde_json::Value = http
        .get(format!("{}/v2/team/app/hello/tags/list", pier.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let manifest = http
        .get(format!("{}/v2/team/app/hello/manifests/v1", pier.url()))
        .header("accept", pier_oci::media::DOCKER_MANIFEST)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(images::sha256(&manifest), pushed_digest);
    let repo_digest = dk.run(&["inspect", "--format", "{{index .RepoDigests 0}}", &image]);
    assert_eq!(
        repo_digest.trim(),
        format!("{}/team/app/hello@{pushed_digest}", pier.host())
    );

    // By digest too: drop the image and pull it by what push printed.
    dk.run(&["rmi", &image]);
    let by_digest = format!("{}/team/app/hello@{pushed_digest}", pier.host());
    dk.run(&["pull", &by_digest]);
    assert_eq!(
        dk.run(&["run", "--rm", "--network", "none", &by_digest]).trim(),
        "x86_64"
    );

    // A tag that does not exist: a clear error, naming what is missing.
    let err = dk.run_failing(&["pull", &format!("{}/team/app/hello:nope", pier.host())]);
    assert!(err.contains("manifest unknown") || err.contains("not found"), "{err}");

    // The same layer into a second, deeper repository: docker remembers where the layer came
    // from and mounts it across repositories instead of uploading it again.
    let second = format!("{}/team/other/deep/hello:v2", pier.host());
    dk.run(&["tag", &by_digest, &second]);
    let pushed = dk.run(&["push", &second]);
    assert!(pushed.contains("Mounted from team/app/hello"), "{pushed}");
    dk.run(&["rmi", &second, &by_digest]);
    dk.run(&["pull", &second]);
    assert_eq!(dk.run(&["run", "--rm", "--network", "none", &second]).trim(), "x86_64");
}
