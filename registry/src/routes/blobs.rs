//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use pier_oci::{Digest, ErrorCode, RepoName};

use super::{App, Result, header_str};
use crate::error::{self, ApiError, DeleteTarget};

/// A blob is served from a repository only when linked there (pushed or mounted) and
/// present in the store.
pub(super) async fn existing(app: &App, name: &RepoName, digest: &Digest) -> Result<Option<u64>> {
    if !app.meta.blob_linked(name, digest).await? {
        return Ok(None);
    }
    Ok(app.blobs.stat(digest).await?)
}

/// `Range: bytes=a-b` (or `a-`, `-n`) → half-open range within `size`. `None` for an
/// absent or multi-range header (answered with the whole blob, which RFC 9110 allows).
fn parse_range(value: &str, size: u64) -> std::result::Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Err(());
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| ());
    let range = match (a.trim().is_empty(), b.trim().is_empty()) {
        (false, true) => num(a)?..size,
        (false, false) => num(a)?..num(b)?.saturating_add(1).min(size),
        (true, false) => size.saturating_sub(num(b)?)..size,
        (true, true) => return Err(()),
    };
    if range.start >= size || range.start >= range.end {
        return Err(());
    }
    Ok(Some(range))
}

pub(super) async fn get(app: &App, name: &RepoName, digest: &str, headers: &HeaderMap, head: bool) -> Result {
    let digest: Digest = digest.parse()?;
    let size = existing(app, name, &digest)
        .await?
        .ok_or_else(|| ApiError::code(ErrorCode::BlobUnknown))?;
    let range = match header_str(headers, header::RANGE) {
        Some(v) => parse_range(v, size).map_err(|()| {
            ApiError::code(ErrorCode::RangeInvalid).header(header::CONTENT_RANGE, format!("bytes */{size}"))
        })?,
        None => None,
    };
    let (status, len) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start),
        None => (StatusCode::OK, size),
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, len.into());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::ETAG,
        format!("\"{digest}\"").parse().expect("digest is a valid header"),
    );
    h.insert(
        "docker-content-digest",
        digest.to_string().parse().expect("digest is a valid header"),
    );
    if let Some(r) = &range {
        let v = format!("bytes {}-{}/{size}", r.start, r.end - 1);
        h.insert(header::CONTENT_RANGE, v.parse().expect("range is a valid header"));
    }
    if head {
        return Ok((status, h).into_response());
    }
    let stream = app.blobs.read(&digest, range).await?;
    Ok((status, h, Body::from_stream(stream)).into_response())
}

pub(super) async fn delete(app: &App, name: &RepoName, digest: &str) -> Result {
    let digest: Digest = digest.parse()?;
    // Unlinking hides the blob from this repository; the bytes stay for other repositories
    // that link them until garbage collection finds them unreferenced. Refused while a
    // tagged image still uses it.
    let outcome = app.meta.unlink_blob(name, &digest).await?;
    error::deletion(outcome, DeleteTarget::Blob(&digest))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=90-1000", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=500-0", 1000).is_err());
        assert!(parse_range("items=0-1", 100).is_err());
        assert!(parse_range("bytes=x-1", 100).is_err());
    }
}
