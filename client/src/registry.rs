//! A repository in a registry as an [`ImageStore`], on `oci-client`.
//!
//! One [`Registries`] holds the HTTP client, the credentials (from `pier login`) and which
//! registries speak plain HTTP; it hands out one [`RegistryStore`] per repository. Blob
//! uploads are one streamed `PUT` (monolithic upload with a known size); downloads stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::{StreamExt as _, TryStreamExt as _};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use pier_oci::{Digest, Reference, media};
use reqwest::StatusCode;
use reqwest::header::{HeaderValue, LOCATION, WWW_AUTHENTICATE};

use crate::ClientError;
use crate::store::{BlobStream, ImageStore, Manifest};

/// Tokens are asked for again after this long: registries hand out short-lived tokens
/// (pier: 300 s) and oci-client drops expired ones without asking for new ones.
const REAUTH_AFTER: Duration = Duration::from_secs(60);

/// Connection timeout for every request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A user and a secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// User or robot name.
    pub username: String,
    /// Password or robot secret.
    pub secret: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({:?}, ***)", self.username)
    }
}

/// How to reach registries: credentials and plain-HTTP hosts, keyed by `host[:port]`.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries spoken to over plain HTTP (`host[:port]`, as in references).
    pub plain_http: Vec<String>,
    /// Credentials per registry; a registry without is used anonymously.
    pub logins: HashMap<String, Login>,
}

/// The shared client every [`RegistryStore`] uses.
#[derive(Clone)]
pub struct Registries {
    inner: Arc<Shared>,
}

struct Shared {
    client: Client,
    http: reqwest::Client,
    options: RegistryOptions,
}

impl Registries {
    /// A client for these registries.
    pub fn new(options: RegistryOptions) -> Registries {
        // oci-client is built without a default TLS provider; whichever call comes first
        // installs ring (a second install is refused, which is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.plain_http.clone()),
            use_monolithic_push: true,
            connect_timeout: Some(CONNECT_TIMEOUT),
            ..ClientConfig::default()
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with static settings");
        Registries {
            inner: Arc::new(Shared {
                client: Client::new(config),
                http,
                options,
            }),
        }
    }

    /// Whether `registry` is spoken to over plain HTTP.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        self.inner.options.plain_http.iter().any(|h| h == registry)
    }

    /// The store for one repository.
    pub fn repository(&self, registry: &str, repository: &str) -> RegistryStore {
        let auth = match self.inner.options.logins.get(registry) {
            Some(l) => RegistryAuth::Basic(l.username.clone(), l.secret.clone()),
            None => RegistryAuth::Anonymous,
        };
        RegistryStore {
            shared: self.inner.clone(),
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            auth,
            authed: Mutex::new(HashMap::new()),
        }
    }
}

/// One repository of one registry.
pub struct RegistryStore {
    shared: Arc<Shared>,
    registry: String,
    repository: String,
    auth: RegistryAuth,
    /// When a token was last asked for, per operation (`true` = push).
    authed: Mutex<HashMap<bool, Instant>>,
}

impl RegistryStore {
    fn reference(&self, reference: &Reference) -> oci_client::Reference {
        match reference {
            Reference::Tag(t) => {
                oci_client::Reference::with_tag(self.registry.clone(), self.repository.clone(), t.to_string())
            }
            Reference::Digest(d) => {
                oci_client::Reference::with_digest(self.registry.clone(), self.repository.clone(), d.to_string())
            }
        }
    }

    fn blob_reference(&self, digest: &Digest) -> oci_client::Reference {
        self.reference(&Reference::Digest(digest.clone()))
    }

    fn target(&self, reference: &Reference) -> String {
        match reference {
            Reference::Tag(t) => format!("{}:{t}", self.name()),
            Reference::Digest(d) => format!("{}@{d}", self.name()),
        }
    }

    /// Asks for a token for `op` unless one was asked for recently.
    async fn ensure_auth(&self, op: RegistryOperation) -> Result<(), ClientError> {
        let push = matches!(op, RegistryOperation::Push);
        let fresh = {
            let authed = self.authed.lock().expect("auth times lock");
            authed.get(&push).is_some_and(|t| t.elapsed() < REAUTH_AFTER)
        };
        if fresh {
            return Ok(());
        }
        let r = self.reference(&Reference::Tag("latest".parse().expect("valid tag")));
        let operation = if push { "push" } else { "pull" };
        self.shared
            .client
            .auth(&r, &self.auth, op)
            .await
            .map_err(|e| map_err(e, self.name(), operation))?;
        self.authed
            .lock()
            .expect("auth times lock")
            .insert(push, Instant::now());
        Ok(())
    }

    fn login(&self) -> Option<(&str, &str)> {
        match &self.auth {
            RegistryAuth::Basic(u, p) => Some((u, p)),
            _ => None,
        }
    }

    fn scheme(&self) -> &'static str {
        if self.shared.options.plain_http.iter().any(|h| h == &self.registry) {
            "http"
        } else {
            "https"
        }
    }

    /// A token covering push here and pull on `from` (what a mount needs), from the realm
    /// of a Bearer challenge; `None` when the registry does not use tokens.
    async fn mount_token(&self, challenge: &HeaderValue, from: &str) -> Option<String> {
        let challenge = challenge.to_str().ok()?;
        let params = challenge.strip_prefix("Bearer ")?;
        let realm = param(params, "realm")?;
        let mut query = vec![
            ("scope".to_owned(), format!("repository:{}:pull,push", self.repository)),
            ("scope".to_owned(), format!("repository:{from}:pull")),
        ];
        if let Some(service) = param(params, "service") {
            query.push(("service".to_owned(), service));
        }
        let mut req = self.shared.http.get(realm).query(&query);
        if let Some((u, p)) = self.login() {
            req = req.basic_auth(u, Some(p));
        }
        let res = req.send().await.ok()?;
        if !res.status().is_success() {
            return None;
        }
        let body: serde_json::Value = res.json().await.ok()?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
    }
}

/// `key="value"` from a challenge's parameters.
fn param(params: &str, key: &str) -> Option<String> {
    let at = params.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &params[at..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[async_trait]
impl ImageStore for RegistryStore {
    fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    fn registry_repository(&self) -> Option<(&str, &str)> {
        Some((&self.registry, &self.repository))
    }

    async fn get_manifest(&self, reference: &Reference) -> Result<Manifest, ClientError> {
        let target = self.target(reference);
        self.ensure_auth(RegistryOperation::Pull).await?;
        let (bytes, digest) = self
            .shared
            .client
            .pull_manifest_raw(&self.reference(reference), &self.auth, &media::MANIFEST_TYPES)
            .await
            .map_err(|e| map_err(e, target.clone(), "pull"))?;
        let manifest = Manifest::from_bytes(bytes, None);
        let expected = match reference {
            Reference::Digest(d) => Some(d.to_string()),
            Reference::Tag(_) => Some(digest).filter(|d| d.starts_with("sha256:")),
        };
        if let Some(expected) = expected.filter(|d| *d != manifest.digest.to_string()) {
            return Err(ClientError::Mismatch {
                target,
                expected,
                found: manifest.digest.to_string(),
            });
        }
        Ok(manifest)
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, ClientError> {
        self.ensure_auth(RegistryOperation::Pull).await?;
        let target = format!("{}@{digest}", self.name());
        match self
            .shared
            .client
            .blob_exists(&self.blob_reference(digest), &digest.to_string())
            .await
        {
            Ok(b) => Ok(b),
            Err(e) => match map_err(e, target, "pull") {
                // A repository that does not exist yet has no blobs.
                ClientError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn get_blob(&self, digest: &Digest, _size: u64) -> Result<BlobStream, ClientError> {
        self.ensure_auth(RegistryOperation::Pull).await?;
        let target = format!("{}@{digest}", self.name());
        let d = digest.to_string();
        let sized = self
            .shared
            .client
            .pull_blob_stream(&self.blob_reference(digest), d.as_str())
            .await
            .map_err(|e| map_err(e, target, "pull"))?;
        Ok(Box::pin(sized.stream))
    }

    async fn put_blob(&self, digest: &Digest, size: u64, data: BlobStream) -> Result<(), ClientError> {
        self.ensure_auth(RegistryOperation::Push).await?;
        let target = format!("{}@{digest}", self.name());
        let stream = data.map_err(OciDistributionError::IoError).boxed();
        self.shared
            .client
            .push_blob_stream(&self.blob_reference(digest), stream, &digest.to_string(), Some(size))
            .await
            .map_err(|e| map_err(e, target, "push"))?;
        Ok(())
    }

    async fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool, ClientError> {
        let url = format!(
            "{}://{}/v2/{}/blobs/uploads/?mount={digest}&from={from_repository}",
            self.scheme(),
            self.registry,
            self.repository
        );
        let target = format!("{}@{digest}", self.name());
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            target: target.clone(),
            message: error_chain(&e),
        };
        let basic = |req: reqwest::RequestBuilder| match self.login() {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        };
        let mut res = basic(self.shared.http.post(&url)).send().await.map_err(unreachable)?;
        let mut bearer = None;
        if res.status() == StatusCode::UNAUTHORIZED {
            let Some(challenge) = res.headers().get(WWW_AUTHENTICATE).cloned() else {
                return Ok(false);
            };
            let Some(token) = self.mount_token(&challenge, from_repository).await else {
                return Ok(false);
            };
            res = self
                .shared
                .http
                .post(&url)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(unreachable)?;
            bearer = Some(token);
        }
        match res.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // Not mounted (the source is not readable, or not there): the registry opened
                // an upload session instead; close it rather than leave it to expire.
                if let Some(location) = res.headers().get(LOCATION).and_then(|l| l.to_str().ok()) {
                    let location = if location.starts_with('/') {
                        format!("{}://{}{location}", self.scheme(), self.registry)
                    } else {
                        location.to_owned()
                    };
                    let req = self.shared.http.delete(location);
                    let req = match &bearer {
                        Some(t) => req.bearer_auth(t),
                        None => basic(req),
                    };
                    let _ = req.send().await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    async fn put_manifest(&self, reference: &Reference, manifest: &Manifest) -> Result<(), ClientError> {
        self.ensure_auth(RegistryOperation::Push).await?;
        let target = self.target(reference);
        let content_type = HeaderValue::from_str(&manifest.media_type).map_err(|_| ClientError::Invalid {
            target: target.clone(),
            message: format!("media type {:?} is not a valid header value", manifest.media_type),
        })?;
        self.shared
            .client
            .push_manifest_raw(&self.reference(reference), manifest.bytes.clone(), content_type)
            .await
            .map_err(|e| map_err(e, target, "push"))?;
        Ok(())
    }
}

/// An oci-client error as a [`ClientError`] about `target`.
fn map_err(e: OciDistributionError, target: String, operation: &'static str) -> ClientError {
    const LOGIN_HINT: &str = "log in with `pier login`, or ask for a role that allows it";
    match e {
        OciDistributionError::AuthenticationFailure(body) => ClientError::Denied {
            target,
            operation: "login",
            message: registry_message(&body).unwrap_or(body),
        },
        OciDistributionError::UnauthorizedError { .. } => ClientError::Denied {
            target,
            operation,
            message: format!("not authorized ({LOGIN_HINT})"),
        },
        OciDistributionError::ImageManifestNotFoundError(_) => ClientError::NotFound { target },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let message = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Denied | OciErrorCode::Unauthorized))
            {
                ClientError::Denied {
                    target,
                    operation,
                    message,
                }
            } else if codes.iter().all(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) && !codes.is_empty()
            {
                ClientError::NotFound { target }
            } else {
                ClientError::Registry { target, message }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            404 => ClientError::NotFound { target },
            401 | 403 => ClientError::Denied {
                target,
                operation,
                message: registry_message(&message).unwrap_or_else(|| format!("HTTP {code} ({LOGIN_HINT})")),
            },
            _ => ClientError::Registry {
                target,
                message: format!("HTTP {code}: {}", registry_message(&message).unwrap_or(message)),
            },
        },
        // A request error with a status is an answer (e.g. a HEAD's 401), not a transport error.
        OciDistributionError::RequestError(e) => match e.status().map(|s| s.as_u16()) {
            Some(404) => ClientError::NotFound { target },
            Some(code @ (401 | 403)) => ClientError::Denied {
                target,
                operation,
                message: format!("HTTP {code} ({LOGIN_HINT})"),
            },
            Some(code) => ClientError::Registry {
                target,
                message: format!("HTTP {code}"),
            },
            None => ClientError::Unreachable {
                target,
                message: error_chain(&e),
            },
        },
        OciDistributionError::IoError(e) => ClientError::Io { path: target, error: e },
        other => ClientError::Registry {
            target,
            message: other.to_string(),
        },
    }
}

/// The messages of an OCI error body, when `body` is one.
fn registry_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let errors = v.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                e.get("message").and_then(|m| m.as_str()).unwrap_or("")
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// An error and its sources on one line (reqwest hides the cause, e.g. "connection
/// refused", in the source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params() {
        let c = r#"realm="http://127.0.0.1:5000/service/token",service="pier",scope="repository:a/b:pull""#;
        assert_eq!(param(c, "realm").unwrap(), "http://127.0.0.1:5000/service/token");
        assert_eq!(param(c, "service").unwrap(), "pier");
        assert_eq!(param(c, "error"), None);
    }

    #[test]
    fn oci_error_bodies() {
        let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(
            registry_message(body).unwrap(),
            "DENIED: requested access to the resource is denied"
        );
        assert_eq!(registry_message("plain text"), None);
    }
}
