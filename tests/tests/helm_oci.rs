//! The real Helm client uses pier as an OCI chart registry: `helm push` a packaged chart,
//! `helm pull` it back byte for byte, `helm show chart` / `helm template` straight from the
//! `oci://` reference; a missing version and an invalid repository name fail clearly. The
//! project is private: Helm is logged in (`helm registry login`) as the system admin.
//!
//! No Kubernetes cluster is needed: `package`, `push`, `pull`, `show` and `template` are all
//! client-side or registry-only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pier_e2e::helm::{GREETING, Helm, path_str};
use pier_e2e::{ADMIN_PASSWORD, ADMIN_USER, Pier, admin_client, require_tools, sha256_file};
use reqwest::blocking::Client;
use serde_json::Value;

/// Per-request timeout for the test's own registry API calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The chart under test, and the repository path it is pushed under: several segments, so
/// pier's handling of multi-segment names is exercised along with Helm's.
const CHART: &str = "demo";
/// The (private) pier project the charts go into, and the path under it.
const PIER_PROJECT: &str = "team";
const PROJECT: &str = "team/charts";
const V1: &str = "0.1.0";
const V2: &str = "0.2.0";

/// What Helm writes into an OCI chart manifest (Helm's `registry` package constants).
const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// A pier with the project created, an isolated Helm home logged in to it as the system
/// admin, and an HTTP client authenticated as the admin.
struct Fixture {
    dir: tempfile::TempDir,
    pier: Pier,
    http: Client,
    helm: Helm,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let pier = Pier::start(&dir.path().join("data"));
        pier.create_project(PIER_PROJECT, false);
        let http = admin_client(REQUEST_TIMEOUT);
        let helm = Helm::new(&dir.path().join("helm"));
        helm.login_ok(&pier.host(), ADMIN_USER, ADMIN_PASSWORD);
        Fixture { dir, pier, http, helm }
    }

    /// Helm that must succeed; returns stdout and stderr together.
    fn helm_ok(&self, args: &[&str]) -> String {
        self.helm.ok(args, &|| format!("pier log:\n{}", self.pier.log_text()))
    }

    /// Helm that must fail; returns its stderr.
    fn helm_err(&self, args: &[&str]) -> String {
        self.helm.err(args)
    }

    /// Write the chart source at `version` and `helm package` it; returns the .tgz path.
    fn package(&self, version: &str) -> PathBuf {
        self.helm.package(self.dir.path(), CHART, version)
    }

    /// `oci://127.0.0.1:PORT/team/charts`, what `helm push` takes.
    fn oci_project(&self) -> String {
        format!("oci://{}/{PROJECT}", self.pier.host())
    }

    /// `oci://127.0.0.1:PORT/team/charts/demo`, what `helm pull/show/template` take.
    fn oci_chart(&self) -> String {
        format!("{}/{CHART}", self.oci_project())
    }

    /// Push and return the manifest digest Helm reports.
    fn push(&self, tgz: &Path) -> String {
        self.helm.push(tgz, &self.oci_project(), &|| {
            format!("pier log:\n{}", self.pier.log_text())
        })
    }

    /// `helm pull` into a fresh directory; returns the pulled .tgz.
    fn pull(&self, reference: &str, version: Option<&str>, into: &str) -> PathBuf {
        let dest = self.dir.path().join("pulled").join(into);
        self.helm.pull(reference, version, &dest, &|| {
            format!("pier log:\n{}", self.pier.log_text())
        })
    }

    fn get_json(&self, path: &str, accept: &str) -> (reqwest::header::HeaderMap, Vec<u8>, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.pier.url()))
            .header("accept", accept)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status(), 200, "GET {path}");
        let headers = resp.headers().clone();
        let body = resp.bytes().expect("body").to_vec();
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"));
        (headers, body, json)
    }

    fn tags(&self) -> Value {
        self.get_json(&format!("/v2/{PROJECT}/{CHART}/tags/list"), "application/json")
            .2
    }

    fn catalog(&self) -> Vec<String> {
        let (_, _, json) = self.get_json("/v2/_catalog", "application/json");
        json["repositories"]
            .as_array()
            .expect("repositories array")
            .iter()
            .map(|r| r.as_str().expect("repository name").to_owned())
            .collect()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[test]
fn helm_chart_push_pull_show_template_round_trip() {
    if !require_tools("helm_chart_push_pull_show_template_round_trip", &["helm"]) {
        return;
    }
    let fx = Fixture::start();
    let tgz1 = fx.package(V1);
    let digest1 = fx.push(&tgz1);

    // The tag is listed under the multi-segment repository name, and nothing else is.
    let tags = fx.tags();
    assert_eq!(tags["name"], format!("{PROJECT}/{CHART}"), "{tags}");
    assert_eq!(tags["tags"], serde_json::json!([V1]), "{tags}");

    // The manifest at the tag is the one Helm reported, with Helm's config and chart layer;
    // the chart layer is the packaged .tgz itself.
    let (headers, body, manifest) = fx.get_json(
        &format!("/v2/{PROJECT}/{CHART}/manifests/{V1}"),
        pier_oci::media::OCI_MANIFEST,
    );
    assert_eq!(
        sha256_hex(&body),
        digest1,
        "manifest bytes do not hash to Helm's digest"
    );
    assert_eq!(headers["docker-content-digest"], digest1.as_str());
    assert_eq!(headers["content-type"], pier_oci::media::OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], HELM_CONFIG_MEDIA_TYPE, "{manifest}");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], HELM_CHART_MEDIA_TYPE, "{manifest}");
    assert_eq!(layers[0]["digest"], sha256_file(&tgz1), "{manifest}");

    // Pulled bytes are exactly the packaged bytes, by tag and by digest.
    let pulled = fx.pull(&fx.oci_chart(), Some(V1), "by-tag");
    assert_eq!(
        std::fs::read(&pulled).expect("pulled"),
        std::fs::read(&tgz1).expect("packaged"),
        "helm pull returned different bytes than were pushed"
    );
    let pulled = fx.pull(&format!("{}@{digest1}", fx.oci_chart()), None, "by-digest");
    assert_eq!(sha256_file(&pulled), sha256_file(&tgz1), "pull by digest");

    // Helm reads the chart straight from the registry.
    let shown = fx.helm_ok(&["show", "chart", &fx.oci_chart(), "--version", V1, "--plain-http"]);
    assert!(shown.contains(&format!("name: {CHART}")), "{shown}");
    assert!(shown.contains(&format!("version: {V1}")), "{shown}");
    let rendered = fx.helm_ok(&["template", "rel", &fx.oci_chart(), "--version", V1, "--plain-http"]);
    assert!(rendered.contains("name: rel-demo"), "{rendered}");
    assert!(rendered.contains(&format!("greeting: \"{GREETING}\"")), "{rendered}");
    assert!(rendered.contains(&format!("version: \"{V1}\"")), "{rendered}");

    // A second version sits next to the first; each version still pulls its own bytes.
    let tgz2 = fx.package(V2);
    let digest2 = fx.push(&tgz2);
    assert_ne!(digest1, digest2);
    assert_eq!(fx.tags()["tags"], serde_json::json!([V1, V2]), "tags in lexical order");
    let pulled2 = fx.pull(&fx.oci_chart(), Some(V2), "v2");
    assert_eq!(sha256_file(&pulled2), sha256_file(&tgz2), "pull {V2}");
    let pulled1 = fx.pull(&fx.oci_chart(), Some(V1), "v1-again");
    assert_eq!(
        sha256_file(&pulled1),
        sha256_file(&tgz1),
        "pull {V1} after pushing {V2}"
    );
    let rendered = fx.helm_ok(&["template", "rel", &fx.oci_chart(), "--version", V2, "--plain-http"]);
    assert!(rendered.contains(&format!("version: \"{V2}\"")), "{rendered}");
}

#[test]
fn helm_pull_of_missing_version_fails_with_not_found() {
    if !require_tools("helm_pull_of_missing_version_fails_with_not_found", &["helm"]) {
        return;
    }
    let fx = Fixture::start();
    fx.push(&fx.package(V1));
    const MISSING: &str = "9.9.9";
    let dest = fx.dir.path().join("missing");
    std::fs::create_dir_all(&dest).expect("pull dir");
    let err = fx.helm_err(&[
        "pull",
        &fx.oci_chart(),
        "--version",
        MISSING,
        "--plain-http",
        "-d",
        path_str(&dest),
    ]);
    // Helm 4 prints e.g. `failed to perform "FetchReference" on source:
    // 127.0.0.1:PORT/team/charts/demo:9.9.9: not found` from pier's 404 MANIFEST_UNKNOWN.
    assert!(err.contains(&format!("{PROJECT}/{CHART}:{MISSING}")), "{err}");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dest).expect("pull dir").count(),
        0,
        "a failed pull wrote files"
    );
    // pier answered the lookup for the missing tag itself, with 404.
    let log = fx.pier.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("/{CHART}/manifests/{MISSING}")) && l.contains("status=404")),
        "pier did not answer 404 for the missing version:\n{log}"
    );
}

#[test]
fn helm_push_to_invalid_repository_fails() {
    if !require_tools("helm_push_to_invalid_repository_fails", &["helm"]) {
        return;
    }
    let fx = Fixture::start();
    let tgz = fx.package(V1);

    // Upper case breaks the name grammar: Helm refuses it before sending anything.
    let err = fx.helm_err(&[
        "push",
        path_str(&tgz),
        &format!("oci://{}/Team/Charts", fx.pier.host()),
        "--plain-http",
    ]);
    assert!(err.contains("invalid reference"), "{err}");
    assert!(err.contains("Team/Charts/demo"), "{err}");

    // Grammatical but longer than pier's name limit: Helm sends it, and pier must refuse it
    // (400 NAME_INVALID) on the first request instead of storing anything.
    // Its project exists, so the only thing wrong with the name is its length.
    fx.pier.create_project(&"a".repeat(60), false);
    let long_project = vec!["a".repeat(60); 5].join("/");
    let long_repo = format!("{long_project}/{CHART}");
    assert!(
        long_repo.parse::<pier_oci::RepoName>().is_err(),
        "{} characters is within pier's limit; lengthen the test name",
        long_repo.len()
    );
    let err = fx.helm_err(&[
        "push",
        path_str(&tgz),
        &format!("oci://{}/{long_project}", fx.pier.host()),
        "--plain-http",
    ]);
    assert!(err.contains("400"), "{err}");
    let log = fx.pier.log_text();
    assert!(
        log.lines().any(|l| l.contains(&long_repo) && l.contains("status=400")),
        "pier did not answer 400 to the over-long name:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l.contains(&long_repo) && l.contains("status=20")),
        "pier accepted a request for the over-long name:\n{log}"
    );

    assert_eq!(
        fx.catalog(),
        Vec::<String>::new(),
        "a failed push left a repository behind"
    );
}
