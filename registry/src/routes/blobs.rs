//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use pier_oci::{Digest, ErrorCode, RepoName};

use super::{App, Result, header_str};
use crate::error::ApiError;

/// What a `Range` header asks of a blob of `size` bytes (RFC 9110 §14.1.2, §14.2).
#[derive(Debug, PartialEq)]
enum RangeAsk {
    /// Serve the whole blob: no header, another unit, several ranges (which RFC 9110 lets a
    /// server answer whole), or a header that is not a valid byte range (to be ignored).
    Whole,
    /// Serve this part (end exclusive).
    Part(std::ops::Range<u64>),
    /// A valid range that lies outside the blob: 416.
    Unsatisfiable,
}

/// A position of a byte range: ASCII digits only (no sign, no spaces); a number too large
/// for u64 is clamped, as RFC 9110 asks of a last-pos beyond the representation.
fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeAsk::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let range = match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes (all of them when n is larger).
        (true, false) => match position(last) {
            Some(0) => return RangeAsk::Unsatisfiable,
            Some(n) => size.saturating_sub(n)..size,
            None => return RangeAsk::Whole,
        },
        (false, true) => match position(first) {
            Some(a) => a..size,
            None => return RangeAsk::Whole,
        },
        (false, false) => match (position(first), position(last)) {
            // `a-b` with b < a is not a valid range: ignored, not refused.
            (Some(a), Some(b)) if b >= a => a..b.saturating_add(1).min(size),
            _ => return RangeAsk::Whole,
        },
        (true, true) => return RangeAsk::Whole,
    };
    if range.start >= size {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(range)
}

pub(super) async fn get(app: &App, name: &RepoName, digest: &str, headers: &HeaderMap, head: bool) -> Result {
    let digest: Digest = digest.parse()?;
    let blob = app.service.blob(name, &digest).await?;
    let size = blob.size;
    let range = match header_str(headers, header::RANGE).map(|v| parse_range(v, size)) {
        None | Some(RangeAsk::Whole) => None,
        Some(RangeAsk::Part(r)) => Some(r),
        Some(RangeAsk::Unsatisfiable) => {
            return Err(
                ApiError::code(ErrorCode::RangeInvalid).header(header::CONTENT_RANGE, format!("bytes */{size}"))
            );
        }
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
    let stream = app.service.read_blob(name, &blob, range).await?;
    Ok((status, h, Body::from_stream(stream)).into_response())
}

pub(super) async fn delete(app: &App, name: &RepoName, digest: &str) -> Result {
    app.service.delete_blob(name, &digest.parse()?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::RangeAsk::{Part, Unsatisfiable, Whole};
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("bytes=90-1000", 100), Part(90..100));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=x-1", 100), Whole);
    }

    /// Finding 14: RFC 9110's rules for large, reversed, signed and foreign ranges.
    #[test]
    fn finding_14_ranges_follow_rfc_9110() {
        // Positions beyond u64 are clamped: the whole blob as a 206.
        assert_eq!(parse_range("bytes=0-99999999999999999999", 100), Part(0..100));
        assert_eq!(parse_range("bytes=-99999999999999999999", 100), Part(0..100));
        assert_eq!(parse_range("bytes=99999999999999999999-", 100), Unsatisfiable);
        // Invalid ranges and unknown units are ignored: the whole blob as a 200.
        assert_eq!(parse_range("bytes=5-2", 100), Whole);
        assert_eq!(parse_range("bytes=500-0", 1000), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), Whole);
        assert_eq!(parse_range("bytes=1-+2", 100), Whole);
        assert_eq!(parse_range("bytes=-+2", 100), Whole);
        assert_eq!(parse_range("Bytes=1-2", 100), Part(1..3));
    }
}
