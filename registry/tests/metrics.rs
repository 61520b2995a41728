//! `/metrics`: counters that move by exactly what was done, over real HTTP; gauges that
//! match the stores; no repository name anywhere in the output; the bearer token and the
//! off switch.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{ADMIN_PASSWORD, Reg, basic, image_manifest};
use pier_oci::{Digest, media};
use pier_registry::{MetricsConfig, RegistryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The repository of these tests: its name must appear nowhere in the metrics.
const REPO: &str = "t/hidden-repo-name";
const TAG: &str = "secret-tag";

/// Serve the registry on loopback for the rest of the test.
async fn serve(reg: &Reg) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(pier_registry::serve(
        listener,
        reg.registry.clone(),
        std::future::pending(),
    ));
    addr
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// One request on its own connection; the body is read whole (`Content-Length` framing,
/// which every answer used here has).
async fn http(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!("authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
    assert!(
        !head.contains("transfer-encoding"),
        "expected Content-Length framing: {head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw[end..].to_vec();
    assert_eq!(body.len(), if method == "HEAD" { 0 } else { length }, "{head}");
    Answer { status, body }
}

fn admin() -> Option<String> {
    Some(basic("admin", ADMIN_PASSWORD))
}

/// Every sample of an exposition: `name{labels}` (labels sorted) → value. Checks that each
/// line is a comment or a well-formed sample, and each sample appears once.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let key = match series.split_once('{') {
            None => series.to_owned(),
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let mut pairs: Vec<&str> = labels.split(',').collect();
                pairs.sort_unstable();
                format!("{name}{{{}}}", pairs.join(","))
            }
        };
        assert!(out.insert(key, value).is_none(), "sample twice: {line:?}");
    }
    out
}

/// Every label value of every sample is one of a fixed set.
fn assert_fixed_labels(text: &str) {
    let allowed: HashMap<&str, &[&str]> = HashMap::from([
        (
            "route",
            &[
                "base",
                "catalog",
                "tags",
                "manifest",
                "blob",
                "upload",
                "referrers",
                "token",
                "api",
                "healthz",
                "metrics",
                "other",
            ][..],
        ),
        (
            "method",
            &["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "other"][..],
        ),
        ("status", &["1xx", "2xx", "3xx", "4xx", "5xx", "other"][..]),
    ]);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = &labels[..labels.find('}').unwrap()];
        for pair in labels.split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            let v = v.trim_matches('"');
            match allowed.get(k) {
                Some(values) => assert!(values.contains(&v), "label {k}={v} in {line:?}"),
                None => {
                    assert_eq!(k, "le", "unexpected label in {line:?}");
                    assert!(v == "+Inf" || v.parse::<f64>().is_ok(), "{line:?}");
                }
            }
        }
    }
}

struct Scraped {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scraped {
    fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    /// Sum of every sample of a metric.
    fn sum(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        self.samples
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) || *k == name)
            .map(|(_, v)| v)
            .sum()
    }
}

async fn scrape(addr: SocketAddr) -> (Scraped, usize) {
    let a = http(addr, "GET", "/metrics", None, b"").await;
    assert_eq!(a.status, 200);
    let text = String::from_utf8(a.body).unwrap();
    assert_fixed_labels(&text);
    let len = text.len();
    (
        Scraped {
            samples: parse(&text),
            text,
        },
        len,
    )
}

fn requests(route: &str, method: &str, status: &str) -> String {
    format!("pier_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}")
}

fn bytes(dir: &str, route: &str) -> String {
    format!("pier_http_{dir}_body_bytes_total{{route=\"{route}\"}}")
}

fn durations(route: &str) -> String {
    format!("pier_http_request_duration_seconds_count{{route=\"{route}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_what_was_done() {
    let reg = Reg::new().await;
    let addr = serve(&reg).await;
    let auth = admin();
    let auth = auth.as_deref();

    // Phase 1: a push.
    let config = br#"{"seed":"metrics"}"#.to_vec();
    let layer = b"layer bytes for the metrics test".to_vec();
    let mut upload_out = 0;
    for blob in [&config, &layer] {
        let path = format!("/v2/{REPO}/blobs/uploads/?digest={}", Digest::sha256_of(blob));
        let a = http(addr, "POST", &path, auth, blob).await;
        assert_eq!(a.status, 201);
        upload_out += a.body.len();
    }
    let (config_d, layer_d) = (Digest::sha256_of(&config), Digest::sha256_of(&layer));
    let manifest = image_manifest(&config_d, &layer_d, None);
    let r = reg
        .req(
            Method::PUT,
            &format!("/v2/{REPO}/manifests/{TAG}"),
            &[("content-type", media::OCI_MANIFEST)],
            Body::from(manifest.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    reg.registry.flush().await.unwrap();

    let (a, a_len) = scrape(addr).await;
    // A fresh registry: every counter counts from zero, and `Reg::new` created project `t`.
    let project_json = br#"{"name":"t"}"#.len() as f64;
    assert_eq!(a.get(&requests("api", "POST", "2xx")), 1.0, "{}", a.text);
    assert_eq!(a.get(&requests("upload", "POST", "2xx")), 2.0, "{}", a.text);
    assert_eq!(a.get(&requests("manifest", "PUT", "2xx")), 1.0, "{}", a.text);
    assert_eq!(a.sum("pier_http_requests_total"), 4.0, "{}", a.text);
    assert_eq!(a.get(&durations("upload")), 2.0);
    assert_eq!(a.get(&durations("manifest")), 1.0);
    let blob_bytes = (config.len() + layer.len()) as f64;
    assert_eq!(a.get(&bytes("request", "upload")), blob_bytes);
    assert_eq!(a.get(&bytes("request", "manifest")), manifest.len() as f64);
    assert_eq!(a.get(&bytes("request", "api")), project_json);
    assert_eq!(
        a.sum("pier_http_request_body_bytes_total"),
        blob_bytes + manifest.len() as f64 + project_json
    );
    assert_eq!(a.get(&bytes("response", "upload")), upload_out as f64);
    assert_eq!(a.get(&bytes("response", "manifest")), r.body.len() as f64);
    assert_eq!(a.get("pier_blobs"), 2.0, "{}", a.text);
    assert_eq!(a.get("pier_blobs_bytes"), blob_bytes);
    assert_eq!(a.get("pier_manifests"), 1.0);
    assert_eq!(a.get("pier_uploads_in_progress"), 0.0);
    assert_eq!(a.get("pier_audit_queue_depth"), 0.0, "flushed");
    assert!(a.text.contains("pier_audit_queue_depth "), "{}", a.text);
    assert!(a.get("pier_audit_queue_capacity") > 0.0);

    // Phase 2: pulls, failures, and an upload left open.
    let mut out: HashMap<&str, usize> = HashMap::from([("metrics", a_len)]);
    let m = http(addr, "GET", &format!("/v2/{REPO}/manifests/{TAG}"), auth, b"").await;
    assert_eq!((m.status, m.body.len()), (200, manifest.len()));
    let h = http(addr, "HEAD", &format!("/v2/{REPO}/manifests/{TAG}"), auth, b"").await;
    assert_eq!(h.status, 200);
    let b = http(addr, "GET", &format!("/v2/{REPO}/blobs/{layer_d}"), auth, b"").await;
    assert_eq!(b.body, layer);
    let missing = http(addr, "GET", &format!("/v2/{REPO}/manifests/no-such-tag"), auth, b"").await;
    assert_eq!(missing.status, 404);
    *out.entry("manifest").or_default() += m.body.len() + missing.body.len();
    *out.entry("blob").or_default() += b.body.len();
    let unparsed = http(addr, "GET", &format!("/v2/{REPO}/nonsense"), auth, b"").await;
    assert_eq!(unparsed.status, 404);
    *out.entry("other").or_default() += unparsed.body.len();
    let denied = http(
        addr,
        "GET",
        &format!("/v2/{REPO}/tags/list"),
        Some("Basic bm9ib2R5Om5vcGU="),
        b"",
    )
    .await;
    assert_eq!(denied.status, 401);
    *out.entry("tags").or_default() += denied.body.len();
    let open = http(addr, "POST", &format!("/v2/{REPO}/blobs/uploads/"), auth, b"").await;
    assert_eq!(open.status, 202);
    *out.entry("upload").or_default() += open.body.len();

    let (b2, _) = scrape(addr).await;
    let moved = |key: &str| b2.get(key) - a.get(key);
    assert_eq!(moved(&requests("metrics", "GET", "2xx")), 1.0, "the first scrape");
    assert_eq!(moved(&requests("manifest", "GET", "2xx")), 1.0);
    assert_eq!(moved(&requests("manifest", "HEAD", "2xx")), 1.0);
    assert_eq!(moved(&requests("manifest", "GET", "4xx")), 1.0);
    assert_eq!(moved(&requests("blob", "GET", "2xx")), 1.0);
    assert_eq!(moved(&requests("other", "GET", "4xx")), 1.0);
    assert_eq!(moved(&requests("tags", "GET", "4xx")), 1.0);
    assert_eq!(moved(&requests("upload", "POST", "2xx")), 1.0);
    assert_eq!(
        b2.sum("pier_http_requests_total") - a.sum("pier_http_requests_total"),
        8.0
    );
    assert_eq!(moved(&durations("manifest")), 3.0);
    assert_eq!(moved(&durations("metrics")), 1.0);
    assert_eq!(
        moved("pier_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"manifest\"}"),
        3.0
    );
    for (route, n) in &out {
        assert_eq!(moved(&bytes("response", route)), *n as f64, "bytes out of {route}");
    }
    let total_out = out.values().sum::<usize>() as f64;
    let all_out = "pier_http_response_body_bytes_total";
    assert_eq!(b2.sum(all_out) - a.sum(all_out), total_out);
    let all_in = "pier_http_request_body_bytes_total";
    assert_eq!(b2.sum(all_in), a.sum(all_in), "no request in phase 2 had a body");
    assert_eq!(b2.get("pier_uploads_in_progress"), 1.0);
    assert_eq!(b2.get("pier_blobs"), 2.0);

    for text in [&a.text, &b2.text] {
        for secret in ["hidden-repo-name", TAG, "no-such-tag", "nonsense", &layer_d.hex()[..16]] {
            assert!(!text.contains(secret), "{secret:?} leaked into the metrics:\n{text}");
        }
    }
}

#[tokio::test]
async fn a_token_protects_the_metrics() {
    let config = RegistryConfig {
        metrics: MetricsConfig {
            enabled: true,
            token: Some("metrics-token-123".into()),
        },
        ..Default::default()
    };
    let reg = Reg::open_with(tempfile::tempdir().unwrap(), config).await;
    let get = async |auth: &str| {
        reg.req(Method::GET, "/metrics", &[("authorization", auth)], Body::empty())
            .await
    };
    let none = get("").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.header("www-authenticate"), "Bearer realm=\"metrics\"");
    let message = String::from_utf8_lossy(&none.body).into_owned();
    assert!(message.contains("Authorization: Bearer"), "{message}");
    for (wrong, why) in [
        ("Bearer metrics-token-12", "is not the metrics token"),
        ("Bearer metrics-token-1234", "is not the metrics token"),
        ("bearer metrics-token-123x", "is not the metrics token"),
        ("Bearer ", "is not the metrics token"),
        ("metrics-token-123", "needs the metrics token"),
    ] {
        let r = get(wrong).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{wrong}");
        let message = String::from_utf8_lossy(&r.body).into_owned();
        assert!(message.contains(why), "{wrong}: {message}");
    }
    // The admin's registry credentials are not the metrics token.
    let admin = reg.get("/metrics").await;
    assert_eq!(admin.status, StatusCode::UNAUTHORIZED);
    let right = get("Bearer metrics-token-123").await;
    assert_eq!(right.status, StatusCode::OK);
    assert!(right.header("content-type").starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8_lossy(&right.body).into_owned();
    let refused = requests("metrics", "GET", "4xx");
    assert_eq!(parse(&text).get(&refused), Some(&7.0), "every refusal counted:\n{text}");
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let config = RegistryConfig {
        metrics: MetricsConfig {
            enabled: false,
            token: None,
        },
        ..Default::default()
    };
    let reg = Reg::open_with(tempfile::tempdir().unwrap(), config).await;
    assert_eq!(reg.get("/metrics").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reg.get("/v2/").await.status,
        StatusCode::OK,
        "the registry itself still works"
    );
}
