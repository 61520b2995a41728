//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use pier_oci::{Digest, ErrorCode, Reference, RepoName, Tag};

use super::{App, Result, body_stream, drain, header_str, query};
use crate::error::ApiError;
use crate::limits::{MAX_MANIFEST_BYTES, MAX_MANIFEST_DRAIN};
use crate::service::ManifestPush;

const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");

fn digest_header(d: &Digest) -> HeaderValue {
    HeaderValue::from_str(&d.to_string()).expect("digest is a valid header value")
}

pub(super) async fn get(app: &App, name: &RepoName, reference: &str, head: bool) -> Result {
    let record = app.service.manifest(name, &reference.parse()?).await?;
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&record.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, record.bytes.len().into());
    h.insert(DOCKER_CONTENT_DIGEST, digest_header(&record.digest));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{}\"", record.digest)).expect("etag"),
    );
    if head {
        return Ok((h, Body::empty()).into_response());
    }
    Ok((h, Body::from(record.bytes)).into_response())
}

/// The body of a manifest PUT, refusing more than the limit. A refused body is drained
/// (bounded) before the 413 goes out, so the client reads the answer instead of a broken
/// pipe; one that announces more than [`MAX_MANIFEST_DRAIN`] is not read at all.
async fn read_limited(headers: &HeaderMap, body: Body) -> Result<Bytes> {
    let too_big = || {
        ApiError::code(ErrorCode::ManifestInvalid)
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .message(format!("manifest exceeds the {MAX_MANIFEST_BYTES} byte limit"))
    };
    let mut body = body_stream(body);
    let announced = header_str(headers, header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
    if let Some(len) = announced.filter(|l| *l > MAX_MANIFEST_BYTES as u64) {
        if len <= MAX_MANIFEST_DRAIN as u64 {
            drain(body, MAX_MANIFEST_DRAIN).await;
        }
        return Err(too_big());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::code(ErrorCode::ManifestInvalid).message(format!("reading the manifest failed: {e}"))
        })?;
        if buf.len() + chunk.len() > MAX_MANIFEST_BYTES {
            drain(body, MAX_MANIFEST_DRAIN).await;
            return Err(too_big());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

pub(super) async fn put(
    app: &App,
    name: &RepoName,
    reference: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result {
    let reference: Reference = reference.parse()?;
    // Spec 1.1: a push by digest may name tags as `?tag=` parameters, applied atomically.
    let tags: Vec<Tag> = query(uri)
        .into_iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.parse::<Tag>())
        .collect::<std::result::Result<_, _>>()?;
    let bytes = read_limited(headers, body).await?;
    let by_digest = matches!(reference, Reference::Digest(_));
    let push = ManifestPush {
        reference,
        tags,
        media_type: header_str(headers, header::CONTENT_TYPE).unwrap_or("").to_owned(),
        bytes,
    };
    let pushed = app.service.put_manifest(name, push).await?;
    let digest = &pushed.digest;
    let mut h = HeaderMap::new();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v2/{name}/manifests/{digest}")).expect("location"),
    );
    h.insert(DOCKER_CONTENT_DIGEST, digest_header(digest));
    h.insert(header::CONTENT_LENGTH, 0.into());
    if let Some(s) = &pushed.subject {
        h.insert(OCI_SUBJECT, digest_header(s));
    }
    if by_digest {
        for t in &pushed.tags {
            h.append(
                OCI_TAG,
                HeaderValue::from_str(t.as_str()).expect("tags are valid header values"),
            );
        }
    }
    Ok((StatusCode::CREATED, h).into_response())
}

pub(super) async fn delete(app: &App, name: &RepoName, reference: &str) -> Result {
    app.service.delete_manifest(name, &reference.parse()?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
