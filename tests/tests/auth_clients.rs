//! Access control as the real clients meet it. Users, projects, members and robots
//! are created through the management API as the system admin; then docker, skopeo and Helm
//! log in as those accounts: what an account may do works, what it may not is refused;
//! anonymous clients pull from public projects only; and the audit log names who did what.

use std::time::Duration;

use pier_e2e::docker::Dockerd;
use pier_e2e::helm::{Helm, path_str};
use pier_e2e::images::{self, ARCHES};
use pier_e2e::{
    ADMIN_PASSWORD, ADMIN_USER, Finished, Pier, SKOPEO_TIMEOUT, admin_client, require_tools, run_with_timeout,
    sha256_file, skopeo,
};
use serde_json::Value;

/// Per-request limit for the test's own HTTP checks against pier.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Password of the users the tests create (the API wants at least 8 characters).
const USER_PASSWORD: &str = "user-Secret-42";

/// Whether a client's error output says it was refused for lack of access.
fn refused(output: &str) -> bool {
    let o = output.to_ascii_lowercase();
    o.contains("denied") || o.contains("unauthorized")
}

/// The first `sha256:` word of a push's output (docker prints the manifest digest).
fn digest_in(output: &str) -> String {
    output
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in push output:\n{output}"))
        .to_owned()
}

/// A failed command whose output must say it was refused.
fn assert_refused(f: &Finished, what: &str) {
    assert!(
        !f.status.success(),
        "{what} succeeded but must be refused\nstdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    assert!(
        refused(&f.output()),
        "{what}: refused, but not for access:\n{}",
        f.output()
    );
}

/// The tags of `repo` as the system admin sees them; `None` when the repository does not
/// exist (404).
fn tags(pier: &Pier, repo: &str) -> Option<Vec<String>> {
    let r = admin_client(HTTP_TIMEOUT)
        .get(format!("{}/v2/{repo}/tags/list", pier.url()))
        .send()
        .expect("GET tags");
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(r.status(), reqwest::StatusCode::OK, "GET /v2/{repo}/tags/list");
    let v: Value = r.json().expect("tags json");
    Some(
        v["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no tags in {v}"))
            .iter()
            .map(|t| t.as_str().expect("tag").to_owned())
            .collect(),
    )
}

/// The audit event matching `pred`, or a panic listing all of them.
fn event<'a>(events: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found = events.iter().find(|e| pred(e)).unwrap_or_else(|| {
        let all: Vec<String> = events.iter().map(Value::to_string).collect();
        panic!("the audit log has no {what}; it holds:\n{}", all.join("\n"))
    });
    // Every event says when, from where and how it ended.
    for field in ["time", "client", "result", "actor", "actor_kind", "action"] {
        assert!(
            found[field].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: event without {field}: {found}"
        );
    }
    found
}

/// What both the docker and the Helm test check in the audit log at the end: the robot's
/// push into `own` (a repository of its project), the anonymous pull of `public`, the
/// robot's refused push into `foreign`, and the failed login in the robot's name.
fn check_audit(pier: &Pier, robot: &str, own: &str, own_digest: &str, public: &str, foreign: &str) {
    let events = pier.audit();
    let push = event(&events, &format!("push of {own} by {robot}"), |e| {
        e["action"] == "push" && e["repository"] == own && e["result"] == "success" && e["actor"] == robot
    });
    assert_eq!(push["actor_kind"], "robot", "{push}");
    assert_eq!(push["digest"], own_digest, "{push}");
    event(&events, &format!("anonymous pull of {public}"), |e| {
        e["action"] == "pull"
            && e["repository"] == public
            && e["result"] == "success"
            && e["actor_kind"] == "anonymous"
            && e["actor"] == "anonymous"
    });
    // The refused push: refused at the manifest or blob requests (action push), or already
    // when asking for the token (action token, push dropped from what was granted).
    let foreign_project = foreign.split('/').next().expect("project");
    let denied = event(&events, &format!("refused push into {foreign} by {robot}"), |e| {
        e["result"] == "denied"
            && e["actor"] == robot
            && (e["action"] == "push" || e["action"] == "token")
            && (e["repository"] == foreign
                || e["project"] == foreign_project
                || e["detail"].as_str().is_some_and(|d| d.contains(foreign)))
    });
    assert_eq!(denied["actor_kind"], "robot", "{denied}");
    event(&events, &format!("failed login as {robot}"), |e| {
        e["action"] == "login" && e["result"] == "failure" && e["actor"] == robot
    });
}

#[test]
fn docker_robot_pushes_into_its_project_only_and_anonymous_pulls_public_only() {
    const TEST: &str = "docker_robot_pushes_into_its_project_only_and_anonymous_pulls_public_only";
    if !require_tools(TEST, &["dockerd", "docker"]) || !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project("ci", false);
    pier.create_project("other", false);
    let (robot, secret) = pier.create_robot("ci", "builder", &["pull", "push"]);
    let host = pier.host();
    let public = format!("{host}/library/hello:1");
    let own = format!("{host}/ci/app:1");
    let foreign = format!("{host}/other/app:1");

    let dk = Dockerd::start();
    dk.import_hello(dir.path(), &ARCHES[0], &public);
    dk.run(&["tag", &public, &own]);
    dk.run(&["tag", &public, &foreign]);

    // Anonymous pushes are refused, also into the public project.
    let f = run_with_timeout(dk.docker().args(["push", &public]), pier_e2e::docker::COMMAND_TIMEOUT);
    assert_refused(&f, "anonymous docker push into library");
    assert_eq!(tags(&pier, "library/hello"), None, "an anonymous push stored something");

    // The public image, pushed by the admin.
    dk.login_admin(&host);
    dk.run(&["push", &public]);
    dk.logout(&host);

    // The robot (`robot$ci+builder`: one argument, no shell) pushes into its project...
    dk.login_ok(&host, &robot, &secret);
    let own_digest = digest_in(&dk.run(&["push", &own]));
    assert_eq!(tags(&pier, "ci/app"), Some(vec!["1".to_owned()]));
    // ... and not into another private project, which exists.
    let f = run_with_timeout(dk.docker().args(["push", &foreign]), pier_e2e::docker::COMMAND_TIMEOUT);
    assert_refused(&f, "the robot's docker push into project other");
    assert_eq!(tags(&pier, "other/app"), None, "the refused push stored a tag");
    // A wrong secret does not log in, and says why.
    let f = dk.login(&host, &robot, "not-the-secret");
    assert_refused(&f, "docker login with a wrong robot secret");

    // Anonymous again: the public image pulls and runs, the private one is refused.
    dk.logout(&host);
    dk.run(&["rmi", &public, &own, &foreign]);
    let pulled = dk.run(&["pull", &public]);
    assert!(pulled.contains("Downloaded newer image"), "{pulled}");
    assert_eq!(dk.run(&["run", "--rm", "--network", "none", &public]).trim(), "x86_64");
    let f = run_with_timeout(dk.docker().args(["pull", &own]), pier_e2e::docker::COMMAND_TIMEOUT);
    assert_refused(&f, "anonymous docker pull from private project ci");
    assert!(
        dk.run(&["images", "-q", &own]).trim().is_empty(),
        "the refused pull left an image"
    );

    check_audit(&pier, &robot, "ci/app", &own_digest, "library/hello", "other/app");
}

#[test]
fn skopeo_copies_with_robot_creds_only() {
    const TEST: &str = "skopeo_copies_with_robot_creds_only";
    if !require_tools(TEST, &["skopeo"]) || !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project("ci", false);
    let (robot, secret) = pier.create_robot("ci", "copier", &["pull", "push"]);
    let host = pier.host();
    let layout = images::build_layout(&dir.path().join("layout"), "1", &ARCHES[..1]);

    // With the robot's credentials: copied, and what pier serves is the layout's index.
    let creds = format!("{robot}:{secret}");
    images::push_layout(dir.path(), &layout, &format!("{host}/ci/app:1"), Some(&creds));
    let raw = pier_e2e::run_ok(
        skopeo(dir.path()).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{host}/ci/app:1"),
        ]),
        SKOPEO_TIMEOUT,
    );
    assert_eq!(images::sha256(raw.as_bytes()), layout.index_digest);

    // Without credentials: neither pushing into nor reading from the private project.
    let f = images::copy_layout(dir.path(), &layout, &format!("{host}/ci/app:anon"), None);
    assert_refused(&f, "anonymous skopeo copy into private project ci");
    let f = run_with_timeout(
        skopeo(dir.path()).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/ci/app:1"),
        ]),
        SKOPEO_TIMEOUT,
    );
    assert_refused(&f, "anonymous skopeo inspect of private project ci");

    // The robot's name with a wrong secret.
    let f = images::copy_layout(
        dir.path(),
        &layout,
        &format!("{host}/ci/app:wrong"),
        Some(&format!("{robot}:not-the-secret")),
    );
    assert_refused(&f, "skopeo copy with a wrong robot secret");

    assert_eq!(
        tags(&pier, "ci/app"),
        Some(vec!["1".to_owned()]),
        "a refused copy stored a tag"
    );
}

#[test]
fn multiarch_pushed_by_robot_pulled_by_guest_refused_to_outsider() {
    const TEST: &str = "multiarch_pushed_by_robot_pulled_by_guest_refused_to_outsider";
    if !require_tools(TEST, &["skopeo", "dockerd", "docker"]) || !images::require_zig(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project("fleet", false);
    let (robot, secret) = pier.create_robot("fleet", "publisher", &["pull", "push"]);
    pier.create_user("viewer", USER_PASSWORD);
    pier.add_member("fleet", "viewer", "guest");
    pier.create_user("outsider", USER_PASSWORD);
    let host = pier.host();
    let image = format!("{host}/fleet/hello:v1");

    // The five-platform index, pushed by the robot.
    let layout = images::build_layout(&dir.path().join("layout"), "v1", &ARCHES);
    images::push_layout(dir.path(), &layout, &image, Some(&format!("{robot}:{secret}")));
    let r = admin_client(HTTP_TIMEOUT)
        .get(format!("{}/v2/fleet/hello/manifests/v1", pier.url()))
        .header("accept", pier_oci::media::OCI_INDEX)
        .send()
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["docker-content-digest"], layout.index_digest.as_str());
    let index: Value = r.json().unwrap();
    assert_eq!(
        images::index_platforms(&index),
        [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/loong64",
            "linux/sw64",
            "linux/mips64le"
        ]
    );

    // A guest pulls one platform and runs it (under qemu).
    let dk = Dockerd::start();
    dk.login_ok(&host, "viewer", USER_PASSWORD);
    dk.run(&["pull", "--platform", "linux/arm64/v8", &image]);
    let got = dk.run(&["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", &image]);
    assert_eq!(got.trim(), "linux/arm64");
    let out = dk.run_pulled("linux/arm64/v8", &image);
    assert_eq!(out.trim(), "aarch64");
    // A guest does not push.
    let guest_tag = format!("{host}/fleet/hello:by-guest");
    dk.run(&["tag", &image, &guest_tag]);
    let f = run_with_timeout(
        dk.docker().args(["push", &guest_tag]),
        pier_e2e::docker::COMMAND_TIMEOUT,
    );
    assert_refused(&f, "a guest's docker push");

    // A user without a role in the private project pulls nothing.
    dk.run(&["rmi", &image, &guest_tag]);
    dk.login_ok(&host, "outsider", USER_PASSWORD);
    let f = run_with_timeout(
        dk.docker().args(["pull", "--platform", "linux/arm64/v8", &image]),
        pier_e2e::docker::COMMAND_TIMEOUT,
    );
    assert_refused(&f, "docker pull by a user without a role");
    assert!(dk.run(&["images", "-q", &image]).trim().is_empty());
    assert_eq!(tags(&pier, "fleet/hello"), Some(vec!["v1".to_owned()]));
}

#[test]
fn helm_robot_pushes_and_pulls_its_charts_and_anonymous_pulls_public_only() {
    const TEST: &str = "helm_robot_pushes_and_pulls_its_charts_and_anonymous_pulls_public_only";
    if !require_tools(TEST, &["helm"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project("charts", false);
    pier.create_project("other", false);
    let (robot, secret) = pier.create_robot("charts", "ci", &["pull", "push"]);
    let host = pier.host();
    let helm = Helm::new(&dir.path().join("helm"));
    let log = || format!("pier log:\n{}", pier.log_text());
    let tgz = helm.package(dir.path(), "demo", "0.1.0");
    let packaged = sha256_file(&tgz);

    // The robot pushes into its project and pulls the chart back, byte for byte.
    helm.login_ok(&host, &robot, &secret);
    let own_digest = helm.push(&tgz, &format!("oci://{host}/charts"), &log);
    let pulled = helm.pull(
        &format!("oci://{host}/charts/demo"),
        Some("0.1.0"),
        &dir.path().join("pulled/robot"),
        &log,
    );
    assert_eq!(
        sha256_file(&pulled),
        packaged,
        "the robot pulled other bytes than it pushed"
    );
    // Not into another private project.
    let f = helm.run(&["push", path_str(&tgz), &format!("oci://{host}/other"), "--plain-http"]);
    assert_refused(&f, "the robot's helm push into project other");
    assert_eq!(tags(&pier, "other/demo"), None, "the refused push stored a tag");

    // The same chart in the public project, pushed by the admin; then anonymous pulls.
    helm.login_ok(&host, ADMIN_USER, ADMIN_PASSWORD);
    helm.push(&tgz, &format!("oci://{host}/library"), &log);
    helm.logout(&host);
    let pulled = helm.pull(
        &format!("oci://{host}/library/demo"),
        Some("0.1.0"),
        &dir.path().join("pulled/anonymous"),
        &log,
    );
    assert_eq!(sha256_file(&pulled), packaged);
    let dest = dir.path().join("pulled/anonymous-private");
    std::fs::create_dir_all(&dest).unwrap();
    let f = helm.run(&[
        "pull",
        &format!("oci://{host}/charts/demo"),
        "--version",
        "0.1.0",
        "--plain-http",
        "-d",
        path_str(&dest),
    ]);
    assert_refused(&f, "anonymous helm pull from private project charts");
    assert_eq!(
        std::fs::read_dir(&dest).unwrap().count(),
        0,
        "a refused pull wrote files"
    );

    // A wrong password does not log in.
    let f = helm.login(&host, &robot, "not-the-secret");
    assert!(
        !f.status.success(),
        "helm registry login with a wrong secret succeeded:\n{}",
        f.output()
    );
    let out = f.output().to_ascii_lowercase();
    assert!(out.contains("401") || out.contains("unauthorized"), "{out}");

    check_audit(&pier, &robot, "charts/demo", &own_digest, "library/demo", "other/demo");
}

/// The Rust OCI client (what pier's own builder pushes with): a robot pushes and pulls
/// through the token flow; wrong credentials and a foreign project are refused.
#[test]
fn oci_client_pushes_and_pulls_with_robot_credentials() {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    pier.create_project("ci", false);
    pier.create_project("other", false);
    let (robot, secret) = pier.create_robot("ci", "rust", &["pull", "push"]);
    // oci-client's reqwest needs a TLS provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let layer = ImageLayer::oci_v1(b"pushed by oci-client".to_vec(), None);
    let config = Config::oci_v1(br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), None);
    let reference = |repo: &str| -> Reference { format!("{}/{repo}:1", pier.host()).parse().unwrap() };
    let auth = RegistryAuth::Basic(robot.clone(), secret.clone());

    rt.block_on(async {
        client
            .push(
                &reference("ci/rusty"),
                std::slice::from_ref(&layer),
                config.clone(),
                &auth,
                None,
            )
            .await
            .expect("robot pushes into its project");
        let image = client
            .pull(
                &reference("ci/rusty"),
                &auth,
                vec![oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE],
            )
            .await
            .expect("robot pulls it back");
        assert_eq!(image.layers[0].data, layer.data);
    });
    // Fresh clients: oci-client caches tokens per registry.
    let fresh = || {
        Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
    };
    rt.block_on(async {
        let pushed = fresh()
            .push(
                &reference("other/rusty"),
                std::slice::from_ref(&layer),
                config.clone(),
                &auth,
                None,
            )
            .await;
        assert!(pushed.is_err(), "push into another project went through");
        let wrong = RegistryAuth::Basic(robot.clone(), "wrong".into());
        let pulled = fresh()
            .pull(
                &reference("ci/rusty"),
                &wrong,
                vec![oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE],
            )
            .await;
        assert!(pulled.is_err(), "pulled with a wrong secret");
        let pulled = fresh()
            .pull(
                &reference("ci/rusty"),
                &RegistryAuth::Anonymous,
                vec![oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE],
            )
            .await;
        assert!(pulled.is_err(), "anonymous pull from a private project");
    });
    assert_eq!(tags(&pier, "ci/rusty"), Some(vec!["1".to_owned()]));
    assert_eq!(tags(&pier, "other/rusty"), None, "nothing reached the other project");
}
