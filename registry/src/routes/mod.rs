//! The `/v2/` API. Repository names have any number of segments, so axum's path
//! parameters cannot split `/v2/<name>/manifests/<ref>`: one catch-all route parses the
//! tail into a [`Route`] once and dispatches once.

mod blobs;
mod listing;
mod manifests;
mod uploads;

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use pier_oci::{ErrorCode, RepoName};

use crate::error::ApiError;
use crate::storage::{BlobStore, ByteStream, MetaStore};

/// Shared state of the handlers: the two stores.
#[derive(Clone)]
pub struct App {
    /// Blob bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Everything else.
    pub meta: Arc<dyn MetaStore>,
}

type Result<T = Response> = std::result::Result<T, ApiError>;

/// A parsed `/v2/` path.
#[derive(Debug, PartialEq)]
enum Route {
    Base,
    Catalog,
    Tags(RepoName),
    Manifest(RepoName, String),
    Blob(RepoName, String),
    UploadStart(RepoName),
    Upload(RepoName, String),
    Referrers(RepoName, String),
}

impl Route {
    /// Parse the path after `/v2/` (already percent-decoded).
    fn parse(tail: &str) -> Result<Route> {
        let name = |s: &str| RepoName::from_str(s).map_err(ApiError::from);
        // A reference, digest or upload id is one path segment.
        let leaf = |s: &str| !s.is_empty() && !s.contains('/');
        if tail.is_empty() {
            return Ok(Route::Base);
        }
        if tail == "_catalog" {
            return Ok(Route::Catalog);
        }
        if let Some(n) = tail.strip_suffix("/tags/list") {
            return Ok(Route::Tags(name(n)?));
        }
        if let Some(n) = tail
            .strip_suffix("/blobs/uploads")
            .or_else(|| tail.strip_suffix("/blobs/uploads/"))
        {
            return Ok(Route::UploadStart(name(n)?));
        }
        let split = |sep: &str| tail.rsplit_once(sep).filter(|(n, rest)| !n.is_empty() && leaf(rest));
        if let Some((n, id)) = split("/blobs/uploads/") {
            return Ok(Route::Upload(name(n)?, id.to_owned()));
        }
        if let Some((n, r)) = split("/manifests/") {
            return Ok(Route::Manifest(name(n)?, r.to_owned()));
        }
        if let Some((n, d)) = split("/blobs/") {
            return Ok(Route::Blob(name(n)?, d.to_owned()));
        }
        if let Some((n, d)) = split("/referrers/") {
            return Ok(Route::Referrers(name(n)?, d.to_owned()));
        }
        Err(ApiError::code(ErrorCode::Unsupported)
            .status(StatusCode::NOT_FOUND)
            .message(format!("no such endpoint: /v2/{tail}")))
    }
}

/// The single handler behind `/v2/` and `/v2/{*rest}`.
pub async fn dispatch(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let raw_tail = parts.uri.path().strip_prefix("/v2").unwrap_or("");
    let raw_tail = raw_tail.strip_prefix('/').unwrap_or(raw_tail);
    // Some clients escape the ':' of digests.
    let tail = percent_encoding::percent_decode_str(raw_tail).decode_utf8_lossy();
    let route = match Route::parse(&tail) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let m = &parts.method;
    let (uri, headers) = (&parts.uri, &parts.headers);
    let result = match route {
        Route::Base if m == Method::GET || m == Method::HEAD => Ok(base()),
        Route::Catalog if m == Method::GET => listing::catalog(&app, uri).await,
        Route::Tags(n) if m == Method::GET => listing::tags(&app, &n, uri).await,
        Route::Referrers(n, d) if m == Method::GET => listing::referrers(&app, &n, &d, uri).await,
        Route::Manifest(n, r) if m == Method::GET || m == Method::HEAD => {
            manifests::get(&app, &n, &r, m == Method::HEAD).await
        }
        Route::Manifest(n, r) if m == Method::PUT => manifests::put(&app, &n, &r, uri, headers, body).await,
        Route::Manifest(n, r) if m == Method::DELETE => manifests::delete(&app, &n, &r).await,
        Route::Blob(n, d) if m == Method::GET || m == Method::HEAD => {
            blobs::get(&app, &n, &d, headers, m == Method::HEAD).await
        }
        Route::Blob(n, d) if m == Method::DELETE => blobs::delete(&app, &n, &d).await,
        Route::UploadStart(n) if m == Method::POST => uploads::start(&app, &n, uri, body).await,
        Route::Upload(n, id) if m == Method::GET => uploads::status(&app, &n, &id).await,
        Route::Upload(n, id) if m == Method::PATCH => uploads::patch(&app, &n, &id, headers, body).await,
        Route::Upload(n, id) if m == Method::PUT => uploads::finish(&app, &n, &id, uri, headers, body).await,
        Route::Upload(n, id) if m == Method::DELETE => uploads::cancel(&app, &n, &id).await,
        _ => Err(ApiError::code(ErrorCode::Unsupported).message(format!("{m} is not supported on this endpoint"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn base() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        "{}",
    )
        .into_response()
}

/// The `Range` value of an upload holding `size` bytes. Distribution answers `0-0` for an
/// empty session and clients expect it, though the range is inclusive.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// A request body as a byte stream for the blob store.
fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Query parameters, tolerant of absent ones.
fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn parses_routes() {
        assert_eq!(Route::parse("").unwrap(), Route::Base);
        assert_eq!(Route::parse("_catalog").unwrap(), Route::Catalog);
        assert_eq!(Route::parse("a/b/c/tags/list").unwrap(), Route::Tags(n("a/b/c")));
        assert_eq!(
            Route::parse("a/manifests/b/manifests/v1").unwrap(),
            Route::Manifest(n("a/manifests/b"), "v1".into())
        );
        assert_eq!(
            Route::parse("a/b/blobs/uploads/").unwrap(),
            Route::UploadStart(n("a/b"))
        );
        assert_eq!(Route::parse("a/b/blobs/uploads").unwrap(), Route::UploadStart(n("a/b")));
        assert_eq!(
            Route::parse("a/blobs/uploads/xyz").unwrap(),
            Route::Upload(n("a"), "xyz".into())
        );
        assert_eq!(
            Route::parse("a/blobs/sha256:00").unwrap(),
            Route::Blob(n("a"), "sha256:00".into())
        );
        assert_eq!(
            Route::parse("a/referrers/sha256:00").unwrap(),
            Route::Referrers(n("a"), "sha256:00".into())
        );
        assert!(Route::parse("A/manifests/v1").is_err());
        assert!(Route::parse("a/unknown").is_err());
        assert!(Route::parse("a/manifests/").is_err());
    }
}
