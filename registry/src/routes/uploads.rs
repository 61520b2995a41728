//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount), then
//! `PATCH`/`PUT`/`GET`/`DELETE /v2/<name>/blobs/uploads/<id>`.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use pier_oci::{Digest, ErrorCode, RepoName};

use super::{App, Result, body_stream, header_str, param, query, upload_range};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::limits::DRAIN_LIMIT;
use crate::service::Upload;
use crate::storage::{ByteStream, UploadId};

fn upload_location(name: &RepoName, id: UploadId) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn session_response(status: StatusCode, name: &RepoName, id: UploadId, size: u64) -> Response {
    (
        status,
        [
            (header::LOCATION, upload_location(name, id)),
            (header::RANGE, upload_range(size)),
            (header::HeaderName::from_static("docker-upload-uuid"), id.to_string()),
            (header::CONTENT_LENGTH, "0".to_owned()),
        ],
    )
        .into_response()
}

fn blob_created(name: &RepoName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_owned()),
        ],
    )
        .into_response()
}

/// The session named in the URL, which must belong to this repository.
async fn session(app: &App, name: &RepoName, id: &str) -> Result<Upload> {
    let id: UploadId = id.parse().map_err(|_| ApiError::code(ErrorCode::BlobUploadUnknown))?;
    Ok(app.service.upload(name, id).await?)
}

fn digest_param(q: &[(String, String)]) -> Result<Option<Digest>> {
    match param(q, "digest") {
        None => Ok(None),
        Some(d) => Ok(Some(d.parse()?)),
    }
}

/// The `Content-Range` of a chunk: the OCI form `<start>-<end>` (inclusive) or RFC 9110's
/// `bytes <start>-<end>/<complete length or *>`, which some clients send.
fn chunk_start(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(v) = header_str(headers, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let v = v.trim();
    let bad = || ApiError::code(ErrorCode::RangeInvalid).message(format!("malformed Content-Range {v:?}"));
    let range = match v.strip_prefix("bytes") {
        Some(rest) => rest.trim_start_matches([' ', '=']),
        None => v,
    };
    // The complete length, if given, is not needed: the digest at the end checks the blob.
    let range = range.split_once('/').map_or(range, |(r, _)| r);
    let digits = |s: &str| -> Result<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let (a, b) = (digits(a)?, digits(b)?);
    if b < a {
        return Err(bad());
    }
    if let Some(len) = header_str(headers, header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok())
        && len != b - a + 1
    {
        return Err(ApiError::code(ErrorCode::SizeInvalid)
            .message(format!("Content-Range {v:?} does not match Content-Length {len}")));
    }
    Ok(Some(a))
}

pub(super) async fn start(app: &App, caller: &Caller, name: &RepoName, uri: &Uri, body: Body) -> Result {
    let mut body = body_stream(body);
    let result = start_upload(app, caller, name, uri, &mut body).await;
    drained(result, body).await
}

async fn start_upload(app: &App, caller: &Caller, name: &RepoName, uri: &Uri, body: &mut ByteStream) -> Result {
    let q = query(uri);
    if let Some(mount) = param(&q, "mount") {
        let digest: Digest = mount.parse()?;
        // A caller who may not pull from the source gets the same answer as for a blob that
        // is not there, so a mount never reveals what another project holds.
        if let Some(from) = param(&q, "from").and_then(|f| f.parse::<RepoName>().ok())
            && app.auth.check(caller, &from, Action::MountFrom).await.is_ok()
            && app.service.mount_blob(name, &from, &digest).await?
        {
            return Ok(blob_created(name, &digest));
        }
        // Spec: when the mount cannot happen, fall back to an ordinary upload session.
        let upload = app.service.start_upload(name).await?;
        return Ok(session_response(StatusCode::ACCEPTED, name, upload.id(), 0));
    }
    if let Some(alg) = param(&q, "digest-algorithm")
        && !matches!(alg, "sha256" | "sha512")
    {
        return Err(ApiError::code(ErrorCode::DigestInvalid).message(format!(
            "digest algorithm {alg:?} is not supported (sha256, sha512 are)"
        )));
    }
    match digest_param(&q)? {
        // Monolithic upload: POST ?digest= with the whole blob as the body.
        Some(digest) => {
            app.service.upload_whole(name, &digest, body).await?;
            Ok(blob_created(name, &digest))
        }
        None => {
            let upload = app.service.start_upload(name).await?;
            Ok(session_response(StatusCode::ACCEPTED, name, upload.id(), 0))
        }
    }
}

/// Pass on the result of an upload step that read the request body. When it failed, what
/// is left of the body is read and discarded (up to a bound) before the answer goes out:
/// the client is most likely still sending (a refused chunk, a disk that filled midway
/// through a layer), and the server closes a connection whose body was left unread, so the
/// client's next write would fail before it had read the error.
async fn drained(result: Result, body: ByteStream) -> Result {
    if result.is_err() {
        super::drain(body, DRAIN_LIMIT).await;
    }
    result
}

pub(super) async fn patch(app: &App, name: &RepoName, id: &str, headers: &HeaderMap, body: Body) -> Result {
    let mut body = body_stream(body);
    let result = patch_chunk(app, name, id, headers, &mut body).await;
    drained(result, body).await
}

async fn patch_chunk(app: &App, name: &RepoName, id: &str, headers: &HeaderMap, body: &mut ByteStream) -> Result {
    let upload = session(app, name, id).await?;
    let size = app.service.append(&upload, chunk_start(headers)?, body).await?;
    Ok(session_response(StatusCode::ACCEPTED, name, upload.id(), size))
}

pub(super) async fn finish(app: &App, name: &RepoName, id: &str, uri: &Uri, headers: &HeaderMap, body: Body) -> Result {
    let mut body = body_stream(body);
    let result = finish_upload(app, name, id, uri, headers, &mut body).await;
    drained(result, body).await
}

async fn finish_upload(
    app: &App,
    name: &RepoName,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &mut ByteStream,
) -> Result {
    let upload = session(app, name, id).await?;
    let digest = digest_param(&query(uri))?
        .ok_or_else(|| ApiError::code(ErrorCode::DigestInvalid).message("the digest query parameter is required"))?;
    // The final chunk may come with the PUT; an empty body appends nothing.
    app.service.append(&upload, chunk_start(headers)?, body).await?;
    app.service.finish_upload(name, upload, &digest).await?;
    Ok(blob_created(name, &digest))
}

pub(super) async fn status(app: &App, name: &RepoName, id: &str) -> Result {
    let upload = session(app, name, id).await?;
    let size = app.service.upload_size(&upload).await?;
    Ok(session_response(StatusCode::NO_CONTENT, name, upload.id(), size))
}

pub(super) async fn cancel(app: &App, name: &RepoName, id: &str) -> Result {
    let upload = session(app, name, id).await?;
    app.service.cancel_upload(upload).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
