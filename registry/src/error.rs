//! The HTTP edge for errors: every domain error becomes an OCI error body here, once.
//! Store failures split three ways: transient (`503 UNAVAILABLE`, with `Retry-After`), out of
//! space (`507 INSUFFICIENT_STORAGE`), anything else (`500 UNKNOWN`).

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pier_oci::{ErrorCode, NameError, OciError};

use crate::auth::AuthError;
use crate::limits::STORE_RETRY_AFTER;
use crate::manifest::ManifestError;
use crate::service::ServiceError;
use crate::storage::{BlobError, MetaError};

/// The cause of a 5xx, attached to the response so the request log prints it (responses
/// never log by themselves).
#[derive(Clone, Debug)]
pub struct ErrorCause(pub String);

/// An error answer: the OCI error plus any headers the protocol wants with it. Boxed, so
/// the `Result`s that carry it through every handler stay one pointer wide.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    error: OciError,
    headers: HeaderMap,
    cause: Option<String>,
}

impl ApiError {
    /// The error with its table status.
    pub fn code(code: ErrorCode) -> ApiError {
        OciError::new(code).into()
    }

    /// Replace the message.
    pub fn message(mut self, m: impl Into<String>) -> ApiError {
        self.0.error.message = m.into();
        self
    }

    /// Answer with another status.
    pub fn status(mut self, s: StatusCode) -> ApiError {
        self.0.error.status = s;
        self
    }

    /// Add structured detail.
    pub fn detail(mut self, d: serde_json::Value) -> ApiError {
        self.0.error.detail = Some(d);
        self
    }

    /// Add a header.
    pub fn header(mut self, name: HeaderName, value: String) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.0.headers.insert(name, v);
        }
        self
    }

    fn internal(code: ErrorCode, cause: String) -> ApiError {
        let mut e = ApiError::code(code);
        e.0.cause = Some(cause);
        e
    }

    /// `503 UNAVAILABLE` with `Retry-After`: a store did not answer, and the same request
    /// may succeed shortly.
    fn unavailable(cause: String) -> ApiError {
        ApiError::internal(ErrorCode::Unavailable, cause)
            .header(header::RETRY_AFTER, STORE_RETRY_AFTER.as_secs().to_string())
    }
}

impl From<OciError> for ApiError {
    fn from(error: OciError) -> Self {
        ApiError(Box::new(Inner {
            error,
            headers: HeaderMap::new(),
            cause: None,
        }))
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => ApiError::code(ErrorCode::BlobUnknown),
            BlobError::UploadUnknown => ApiError::code(ErrorCode::BlobUploadUnknown),
            BlobError::OutOfOrder { current, .. } => ApiError::code(ErrorCode::RangeInvalid)
                .message(e.to_string())
                .header(header::RANGE, crate::routes::upload_range(current)),
            BlobError::RangeInvalid { size } => ApiError::code(ErrorCode::RangeInvalid)
                .message(e.to_string())
                .header(header::CONTENT_RANGE, format!("bytes */{size}")),
            BlobError::DigestMismatch { .. } => ApiError::code(ErrorCode::DigestInvalid).message(e.to_string()),
            BlobError::BodyIncomplete { .. } => ApiError::code(ErrorCode::BlobUploadInvalid).message(e.to_string()),
            BlobError::NoSpace => ApiError::internal(ErrorCode::InsufficientStorage, e.to_string()),
            BlobError::Unavailable(_) => ApiError::unavailable(e.to_string()),
            BlobError::Io(_) | BlobError::Failed(_) => ApiError::internal(ErrorCode::Unknown, e.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let message = e.to_string();
        match e {
            ServiceError::ManifestUnknown => ApiError::code(ErrorCode::ManifestUnknown),
            ServiceError::BlobUnknown => ApiError::code(ErrorCode::BlobUnknown),
            ServiceError::UploadUnknown => ApiError::code(ErrorCode::BlobUploadUnknown),
            ServiceError::RepositoryUnknown(_) => ApiError::code(ErrorCode::NameUnknown).message(message),
            ServiceError::ManifestDigestMismatch { .. } => ApiError::code(ErrorCode::DigestInvalid).message(message),
            ServiceError::Manifest(e) => e.into(),
            ServiceError::Missing { digest, .. } => ApiError::code(ErrorCode::ManifestBlobUnknown)
                .message(message)
                .detail(serde_json::json!({ "digest": digest.to_string() })),
            // The spec lists no code for a delete refused because something still needs
            // the target; `DENIED` (403) would say the caller lacks a permission, while
            // `CONFLICT` says the repository's state is in the way, and the detail names
            // the tag (or parent) to delete first.
            ServiceError::Referenced { digest, by, tag, .. } => ApiError::code(ErrorCode::Conflict)
                .message(message)
                .detail(serde_json::json!({
                    "digest": digest.to_string(),
                    "referencedBy": by.to_string(),
                    "tag": tag,
                })),
            ServiceError::ProjectNotEmpty { .. } => ApiError::code(ErrorCode::Conflict).message(message),
            ServiceError::Blob(e) => e.into(),
            ServiceError::Meta(e) => e.into(),
        }
    }
}

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Unavailable(_) => ApiError::unavailable(e.to_string()),
            MetaError::Failed(_) | MetaError::Corrupt(_) => ApiError::internal(ErrorCode::Unknown, e.to_string()),
        }
    }
}

impl From<ManifestError> for ApiError {
    fn from(e: ManifestError) -> Self {
        let status = match e {
            ManifestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ManifestError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::code(ErrorCode::ManifestInvalid)
            .message(e.to_string())
            .status(status)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::Unauthenticated { challenge, .. } => ApiError::code(ErrorCode::Unauthorized)
                .message(message)
                .header(header::WWW_AUTHENTICATE, challenge),
            AuthError::Denied(_) => ApiError::code(ErrorCode::Denied).message(message),
            AuthError::Throttled { retry_after } | AuthError::RateLimited { retry_after } => {
                ApiError::code(ErrorCode::TooManyRequests)
                    .message(message)
                    .header(header::RETRY_AFTER, retry_after.to_string())
            }
            AuthError::BadRequest(_) => ApiError::code(ErrorCode::BadRequest).message(message),
            AuthError::InvalidName(_) => ApiError::code(ErrorCode::NameInvalid).message(message),
            AuthError::NotFound(_) => ApiError::code(ErrorCode::NotFound).message(message),
            AuthError::Conflict(_) => ApiError::code(ErrorCode::Conflict).message(message),
            AuthError::Store(e) => e.into(),
            AuthError::Internal(cause) => ApiError::internal(ErrorCode::Unknown, cause),
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        let code = match e {
            NameError::Name(_) => ErrorCode::NameInvalid,
            NameError::Tag(_) => ErrorCode::TagInvalid,
            NameError::Digest(_) => ErrorCode::DigestInvalid,
        };
        ApiError::code(code).message(e.to_string())
    }
}

impl From<pier_oci::DigestError> for ApiError {
    fn from(e: pier_oci::DigestError) -> Self {
        ApiError::code(ErrorCode::DigestInvalid).message(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Inner { error, headers, cause } = *self.0;
        let body = serde_json::to_vec(&error.body()).expect("error body serializes");
        let mut resp = (error.status, headers, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(c) = cause {
            resp.extensions_mut().insert(ErrorCause(c));
        }
        resp
    }
}
