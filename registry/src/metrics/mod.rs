//! Prometheus metrics at `/metrics`, in the Prometheus text format (0.0.4).
//!
//! Requests are counted by a middleware into fixed tables of atomics ([`requests`]); the
//! state of the stores (blobs, manifests, upload sessions, the audit queue) is read when
//! scraped. No label value ever comes from a request's path: routes are named by kind.

mod requests;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use requests::RequestMetrics;
pub(crate) use requests::RouteKind;

use crate::limits::{AUDIT_QUEUE, STORE_STATS_MAX_AGE};
use crate::routes::App;
use crate::storage::BlobUsage;

/// The `[metrics]` settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` (and count requests). Off: `/metrics` answers 404.
    pub enabled: bool,
    /// When set, `/metrics` asks for `Authorization: Bearer <token>`. Never written out.
    #[serde(skip_serializing)]
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token: None,
        }
    }
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A config is logged at start; the token is a secret.
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The registry's metrics: the request tables and the cached store counts.
pub(crate) struct Metrics {
    requests: Arc<RequestMetrics>,
    stores: tokio::sync::Mutex<Option<StoreStats>>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            requests: Arc::new(RequestMetrics::new()),
            stores: tokio::sync::Mutex::new(None),
        }
    }
}

/// Counts that need a walk over a store, as of `at`.
#[derive(Clone)]
struct StoreStats {
    at: Instant,
    blobs: Option<BlobUsage>,
    manifests: Option<u64>,
}

/// What the `/metrics` handler needs.
#[derive(Clone)]
struct Scrape {
    metrics: Arc<Metrics>,
    app: App,
    /// SHA-256 of the configured token: comparing digests in constant time hides both the
    /// token's bytes and its length.
    token: Option<[u8; 32]>,
}

/// Add `/metrics` and the request-counting middleware to `router`, unless metrics are off.
pub(crate) fn mount(router: Router, metrics: &Arc<Metrics>, config: &MetricsConfig, app: &App) -> Router {
    if !config.enabled {
        return router;
    }
    if config.token.as_deref() == Some("") {
        tracing::warn!("[metrics] token is empty: /metrics refuses every request; unset it or set a real token");
    }
    let scrape = Scrape {
        metrics: metrics.clone(),
        app: app.clone(),
        token: config.token.as_deref().map(|t| Sha256::digest(t).into()),
    };
    router
        .route("/metrics", get(serve).with_state(scrape))
        .layer(requests::Track(metrics.requests.clone()))
}

async fn serve(State(s): State<Scrape>, headers: HeaderMap) -> Response {
    match check_token(&headers, s.token.as_ref()) {
        Ok(()) => scrape(&s).await,
        Err(message) => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            )],
            message,
        )
            .into_response(),
    }
}

/// Whether the request carries the configured token (anyone may scrape when none is set).
fn check_token(headers: &HeaderMap, want: Option<&[u8; 32]>) -> Result<(), &'static str> {
    let Some(want) = want else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(given) = given else {
        return Err("/metrics needs the metrics token ([metrics] token): send `Authorization: Bearer <token>`\n");
    };
    let given: [u8; 32] = Sha256::digest(given).into();
    // An empty configured token matches nothing: an empty setting is a mistake, not "open".
    if bool::from(given.ct_eq(want)) && given != <[u8; 32]>::from(Sha256::digest("")) {
        Ok(())
    } else {
        Err("the bearer token is not the metrics token ([metrics] token)\n")
    }
}

async fn scrape(s: &Scrape) -> Response {
    let mut registry = Registry::with_prefix("pier");
    s.metrics.requests.register(&mut registry);
    let stores = store_stats(s).await;
    if let Some(u) = stores.blobs {
        registry.register("blobs", "Blobs stored", gauge(u.blobs));
        registry.register_with_unit("blobs", "Bytes of the blobs stored", Unit::Bytes, gauge(u.bytes));
    }
    if let Some(n) = stores.manifests {
        registry.register(
            "manifests",
            "Manifests stored, each repository's copy counted",
            gauge(n),
        );
    }
    match s.app.service.meta_store().list_uploads().await {
        Ok(uploads) => registry.register(
            "uploads_in_progress",
            "Upload sessions open (not finished, cancelled or expired)",
            gauge(uploads.len() as u64),
        ),
        Err(e) => tracing::warn!("metrics: cannot list upload sessions: {e}"),
    }
    let audit = s.app.auth.audit();
    registry.register(
        "audit_queue_depth",
        "Audit events waiting to be written",
        gauge(audit.queued() as u64),
    );
    registry.register(
        "audit_queue_capacity",
        "Audit events the queue holds before recording waits",
        gauge(AUDIT_QUEUE as u64),
    );
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        tracing::error!("metrics: cannot encode: {e}");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
        )],
        Body::from(text),
    )
        .into_response()
}

fn gauge(v: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The store counts, recounted when older than [`STORE_STATS_MAX_AGE`]: counting walks
/// every blob and manifest, so a scrape pays for it at most once per that period, and
/// concurrent scrapes wait for one count instead of starting their own.
async fn store_stats(s: &Scrape) -> StoreStats {
    let mut cached = s.metrics.stores.lock().await;
    if let Some(stats) = cached.as_ref().filter(|c| c.at.elapsed() < STORE_STATS_MAX_AGE) {
        return stats.clone();
    }
    let service = &s.app.service;
    let stats = StoreStats {
        at: Instant::now(),
        blobs: logged("blobs", service.blob_store().usage().await),
        manifests: logged("manifests", service.meta_store().manifest_count().await),
    };
    *cached = Some(stats.clone());
    stats
}

/// A count, or `None` (its gauge left out) when the store cannot give it now.
fn logged<T, E: fmt::Display>(what: &str, count: Result<Option<T>, E>) -> Option<T> {
    count
        .inspect_err(|e| tracing::warn!("metrics: cannot count {what}: {e}"))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn tokens_are_checked() {
        let want: [u8; 32] = Sha256::digest("s3cret").into();
        assert!(
            check_token(&HeaderMap::new(), None).is_ok(),
            "no token configured: open"
        );
        assert!(check_token(&HeaderMap::new(), Some(&want)).is_err());
        assert!(check_token(&with_auth("Bearer s3cret"), Some(&want)).is_ok());
        assert!(check_token(&with_auth("bearer s3cret"), Some(&want)).is_ok());
        assert!(check_token(&with_auth("Bearer s3cre"), Some(&want)).is_err());
        assert!(check_token(&with_auth("Bearer s3cret2"), Some(&want)).is_err());
        assert!(check_token(&with_auth("Basic s3cret"), Some(&want)).is_err());
        assert!(check_token(&with_auth("s3cret"), Some(&want)).is_err());
    }

    #[test]
    fn an_empty_token_matches_nothing() {
        let want: [u8; 32] = Sha256::digest("").into();
        assert!(check_token(&with_auth("Bearer "), Some(&want)).is_err());
        assert!(check_token(&with_auth("Bearer x"), Some(&want)).is_err());
        assert!(check_token(&HeaderMap::new(), Some(&want)).is_err());
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let c: MetricsConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, MetricsConfig::default());
        assert!(c.enabled && c.token.is_none());
        let c: MetricsConfig = serde_json::from_str(r#"{"token":"t"}"#).unwrap();
        assert!(c.enabled);
        assert!(!format!("{c:?}").contains("\"t\""), "the token is not printed");
        assert!(serde_json::from_str::<MetricsConfig>(r#"{"enable":false}"#).is_err());
    }
}
