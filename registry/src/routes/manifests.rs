//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use pier_oci::{Digest, ErrorCode, Reference, RepoName, Tag};

use super::{App, Result, blobs, body_stream, drain, header_str, query};
use crate::error::{self, ApiError, DeleteTarget};
use crate::limits::{MAX_MANIFEST_BYTES, MAX_MANIFEST_DRAIN};
use crate::manifest;
use crate::storage::{ManifestRecord, Stored};

const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");

fn digest_header(d: &Digest) -> HeaderValue {
    HeaderValue::from_str(&d.to_string()).expect("digest is a valid header value")
}

pub(super) async fn get(app: &App, name: &RepoName, reference: &str, head: bool) -> Result {
    let reference: Reference = reference.parse()?;
    let record = app
        .meta
        .get_manifest(name, &reference)
        .await?
        .ok_or_else(|| ApiError::code(ErrorCode::ManifestUnknown))?;
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
    let mut tags: Vec<Tag> = query(uri)
        .into_iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.parse::<Tag>())
        .collect::<std::result::Result<_, _>>()?;
    if let Reference::Tag(t) = &reference {
        tags.push(t.clone());
    }
    let bytes = read_limited(headers, body).await?;
    let digest = match &reference {
        Reference::Digest(claimed) => {
            let actual = claimed.same_algorithm_of(&bytes);
            if actual != *claimed {
                return Err(ApiError::code(ErrorCode::DigestInvalid)
                    .message(format!("manifest content has digest {actual}, not {claimed}")));
            }
            actual
        }
        Reference::Tag(_) => Digest::sha256_of(&bytes),
    };
    let content_type = header_str(headers, header::CONTENT_TYPE).unwrap_or("");
    let info = manifest::parse(content_type, &bytes)?;

    // Everything referenced must already be here, so a reader following this manifest
    // never meets a dangling reference.
    // (Checked here for the blob bytes and a precise message; the store checks the links
    // and children again in the step that stores, against a concurrent delete.)
    for blob in &info.blobs {
        if blobs::existing(app, name, blob).await?.is_none() {
            return Err(missing(name, "blob", blob));
        }
    }
    for child in &info.children {
        let r = Reference::Digest(child.clone());
        if app.meta.get_manifest(name, &r).await?.is_none() {
            return Err(missing(name, "manifest", child));
        }
    }

    let record = ManifestRecord {
        digest: digest.clone(),
        media_type: info.media_type,
        bytes,
        blobs: info.blobs,
        children: info.children,
        subject: info.subject,
        artifact_type: info.artifact_type,
        annotations: info.annotations,
    };
    if let Stored::Missing(d) = app.meta.put_manifest(name, &record, &tags).await? {
        let what = if record.children.contains(&d) {
            "manifest"
        } else {
            "blob"
        };
        return Err(missing(name, what, &d));
    }

    let mut h = HeaderMap::new();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v2/{name}/manifests/{digest}")).expect("location"),
    );
    h.insert(DOCKER_CONTENT_DIGEST, digest_header(&digest));
    h.insert(header::CONTENT_LENGTH, 0.into());
    if let Some(s) = &record.subject {
        h.insert(OCI_SUBJECT, digest_header(s));
    }
    if matches!(reference, Reference::Digest(_)) {
        for t in &tags {
            h.append(
                OCI_TAG,
                HeaderValue::from_str(t.as_str()).expect("tags are valid header values"),
            );
        }
    }
    Ok((StatusCode::CREATED, h).into_response())
}

/// A reference the pushed manifest makes to something not in the repository.
fn missing(name: &RepoName, what: &str, d: &Digest) -> ApiError {
    ApiError::code(ErrorCode::ManifestBlobUnknown)
        .message(format!("{what} {d} is not in repository {name}"))
        .detail(serde_json::json!({ "digest": d.to_string() }))
}

pub(super) async fn delete(app: &App, name: &RepoName, reference: &str) -> Result {
    match reference.parse()? {
        Reference::Tag(t) => {
            if !app.meta.delete_tag(name, &t).await? {
                return Err(ApiError::code(ErrorCode::ManifestUnknown));
            }
        }
        Reference::Digest(d) => {
            let outcome = app.meta.delete_manifest(name, &d).await?;
            error::deletion(outcome, DeleteTarget::Manifest(&d))?;
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
