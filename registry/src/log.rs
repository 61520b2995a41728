//! The request log: one line per request, and the headers every answer carries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ErrorCause;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn next_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // A per-process prefix keeps ids unique across restarts without a random source.
    let prefix = EPOCH.get_or_init(|| pier_oci::time::now_secs() as u32);
    format!("{prefix:08x}-{:08x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Logs method, path, status, bytes, duration and request id; sets the API version header.
pub async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(next_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // Clients (docker among them) check this header on /v2/ to know they speak to a v2 registry.
    h.insert(
        HeaderName::from_static("docker-distribution-api-version"),
        HeaderValue::from_static("registry/2.0"),
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(REQUEST_ID, v);
    }
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| http_body::Body::size_hint(resp.body()).exact());
    let status = resp.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    match resp.extensions().get::<ErrorCause>() {
        Some(ErrorCause(cause)) => {
            tracing::error!(request_id = %id, %method, %path, status, bytes = bytes.map(|b| b as i64).unwrap_or(-1), ms = format_args!("{ms:.1}"), cause, "request failed")
        }
        None => {
            tracing::info!(request_id = %id, %method, %path, status, bytes = bytes.map(|b| b as i64).unwrap_or(-1), ms = format_args!("{ms:.1}"), "request")
        }
    }
    resp
}
