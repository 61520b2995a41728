//! The in-process test registry shared by the API and access-control tests.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use pier_oci::{Digest, media};
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Reg {
    pub router: Router,
    pub registry: pier_registry::Registry,
    pub dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The OCI error code of an error answer (and a check that the body has the spec's shape).
    pub fn code(&self) -> String {
        let v = self.json();
        let e = &v["errors"][0];
        assert!(e["message"].is_string(), "error without message: {v}");
        e["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {v}"))
            .to_owned()
    }
}

/// The admin password of every test registry.
pub const ADMIN_PASSWORD: &str = "api-test-password";

pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

impl Reg {
    pub async fn new() -> Reg {
        Reg::open(tempfile::tempdir().unwrap()).await
    }

    /// A registry over `dir` with project `t`, where these tests keep their repositories
    /// (access control is tested in `auth.rs`; here every request is the admin's).
    pub async fn open(dir: tempfile::TempDir) -> Reg {
        Reg::open_with(dir, pier_registry::RegistryConfig::default()).await
    }

    /// [`Reg::open`] with settings (the admin password is always the tests' one).
    pub async fn open_with(dir: tempfile::TempDir, mut config: pier_registry::RegistryConfig) -> Reg {
        config.auth.admin_password = Some(ADMIN_PASSWORD.into());
        let registry = pier_registry::Registry::open_with(dir.path(), config).await.unwrap();
        Reg::with_registry(registry, dir).await
    }

    /// A registry built by the test (its admin's password must be the tests' one), with
    /// project `t`.
    pub async fn with_registry(registry: pier_registry::Registry, dir: tempfile::TempDir) -> Reg {
        let r = Reg {
            router: registry.router(),
            registry,
            dir,
        };
        let p = r
            .req(Method::POST, "/api/v1/projects", &[], Body::from(r#"{"name":"t"}"#))
            .await;
        assert!(
            p.status == StatusCode::CREATED || p.status == StatusCode::CONFLICT,
            "{:?}",
            p.body
        );
        r
    }

    /// Close this registry and open another over the same directory.
    pub async fn restart(self) -> Reg {
        let Reg { router, registry, dir } = self;
        drop((router, registry));
        // The audit writer task lets go of the database once it sees its queue closed.
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let config = pier_registry::AuthConfig {
                admin_password: Some(ADMIN_PASSWORD.into()),
                ..Default::default()
            };
            if let Ok(registry) = pier_registry::Registry::open(dir.path(), config).await {
                return Reg {
                    router: registry.router(),
                    registry,
                    dir,
                };
            }
        }
        panic!("the registry could not be reopened");
    }

    /// A request as the admin, unless `headers` has an `Authorization` (an empty one sends
    /// none).
    pub async fn req(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Resp {
        let mut r = Request::builder().method(method).uri(uri);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            r = r.header("authorization", basic("admin", ADMIN_PASSWORD));
        }
        for (k, v) in headers {
            if !v.is_empty() {
                r = r.header(*k, *v);
            }
        }
        let resp = self.router.clone().oneshot(r.body(body.into()).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        Resp { status, headers, body }
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.req(Method::GET, uri, &[], Body::empty()).await
    }

    /// Monolithic blob push.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/t/{repo}/blobs/uploads/?digest={d}"),
                &[("content-type", "application/octet-stream")],
                data.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        d
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.req(
            Method::PUT,
            &format!("/v2/t/{repo}/manifests/{reference}"),
            &[("content-type", media_type)],
            body.to_vec(),
        )
        .await
    }

    /// An image (config + one layer) pushed under `tag`; returns the manifest bytes.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> Vec<u8> {
        let config = self
            .push_blob(repo, format!("{{\"seed\":\"{seed}\"}}").as_bytes())
            .await;
        let layer = self.push_blob(repo, format!("layer {seed}").as_bytes()).await;
        let m = image_manifest(&config, &layer, None);
        let r = self.put_manifest(repo, tag, media::OCI_MANIFEST, &m).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        m
    }
}

/// The management API, as anyone or as the admin.
impl Reg {
    pub async fn api(&self, method: Method, path: &str, auth: &str, body: Value) -> Resp {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        self.req(method, &format!("/api/v1{path}"), &[("authorization", auth)], body)
            .await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Value) -> Resp {
        let r = self.api(method, path, &basic("admin", ADMIN_PASSWORD), body).await;
        assert!(r.status.is_success(), "{path}: {} {:?}", r.status, r.body);
        r
    }

    /// A user with a role in a project (created when missing).
    pub async fn user(&self, name: &str, project: &str, role: &str) -> String {
        let pw = format!("{name}-password");
        let r = self
            .api(
                Method::POST,
                "/users",
                &basic("admin", ADMIN_PASSWORD),
                json!({ "name": name, "password": pw }),
            )
            .await;
        assert!(r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT);
        self.admin(
            Method::POST,
            &format!("/projects/{project}/members"),
            json!({ "user": name, "role": role }),
        )
        .await;
        basic(name, &pw)
    }

    pub async fn robot(&self, project: &str, name: &str, perms: &[&str]) -> (String, String) {
        let r = self
            .admin(
                Method::POST,
                &format!("/projects/{project}/robots"),
                json!({ "name": name, "permissions": perms }),
            )
            .await
            .json();
        (
            r["name"].as_str().unwrap().to_owned(),
            r["secret"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn project(&self, name: &str, public: bool) {
        self.admin(Method::POST, "/projects", json!({ "name": name, "public": public }))
            .await;
    }
}

pub fn desc(media_type: &str, d: &Digest, size: usize) -> Value {
    json!({ "mediaType": media_type, "digest": d.to_string(), "size": size })
}

pub fn image_manifest(config: &Digest, layer: &Digest, subject: Option<(&Digest, usize)>) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, config, 2),
        "layers": [desc(media::OCI_LAYER_GZIP, layer, 3)],
    });
    if let Some((s, size)) = subject {
        m["subject"] = desc(media::OCI_MANIFEST, s, size);
    }
    serde_json::to_vec(&m).unwrap()
}
