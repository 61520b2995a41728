//! The one table of registry error codes (distribution spec, "Error Codes"), each with its
//! message and HTTP status, and the spec's JSON error body.

use http::StatusCode;

macro_rules! error_table {
    ($($variant:ident => $code:literal, $status:ident, $msg:literal;)*) => {
        /// An error code of the distribution spec (plus the few pier adds).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $(#[doc = $msg] $variant,)* }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in the JSON body.
            pub fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The default message.
            pub fn message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $msg,)* }
            }

            /// The HTTP status the code answers with unless a context says otherwise.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }
        }
    };
}

error_table! {
    BlobUnknown => "BLOB_UNKNOWN", NOT_FOUND, "blob unknown to registry";
    BlobUploadInvalid => "BLOB_UPLOAD_INVALID", BAD_REQUEST, "blob upload invalid";
    BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN", NOT_FOUND, "blob upload unknown to registry";
    DigestInvalid => "DIGEST_INVALID", BAD_REQUEST, "provided digest did not match uploaded content";
    ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN", NOT_FOUND, "manifest references a manifest or blob unknown to registry";
    ManifestInvalid => "MANIFEST_INVALID", BAD_REQUEST, "manifest invalid";
    ManifestUnknown => "MANIFEST_UNKNOWN", NOT_FOUND, "manifest unknown to registry";
    NameInvalid => "NAME_INVALID", BAD_REQUEST, "invalid repository name";
    NameUnknown => "NAME_UNKNOWN", NOT_FOUND, "repository name not known to registry";
    SizeInvalid => "SIZE_INVALID", BAD_REQUEST, "provided length did not match content length";
    TagInvalid => "TAG_INVALID", BAD_REQUEST, "invalid tag";
    RangeInvalid => "RANGE_INVALID", RANGE_NOT_SATISFIABLE, "requested range is not satisfiable";
    Unauthorized => "UNAUTHORIZED", UNAUTHORIZED, "authentication required";
    Denied => "DENIED", FORBIDDEN, "requested access to the resource is denied";
    Unsupported => "UNSUPPORTED", METHOD_NOT_ALLOWED, "the operation is unsupported";
    BadRequest => "BAD_REQUEST", BAD_REQUEST, "the request is malformed";
    NotFound => "NOT_FOUND", NOT_FOUND, "no such resource";
    Conflict => "CONFLICT", CONFLICT, "the request conflicts with the current state";
    TooManyRequests => "TOOMANYREQUESTS", TOO_MANY_REQUESTS, "too many requests";
    InsufficientStorage => "INSUFFICIENT_STORAGE", INSUFFICIENT_STORAGE, "the registry has no space left to store this content";
    Unavailable => "UNAVAILABLE", SERVICE_UNAVAILABLE, "the registry is not available right now";
    Unknown => "UNKNOWN", INTERNAL_SERVER_ERROR, "unknown error";
}

/// One error as a registry answers it: a code, a message, optional detail, and a status
/// that defaults to the code's own.
#[derive(Debug, Clone)]
pub struct OciError {
    /// The code.
    pub code: ErrorCode,
    /// Human readable message (defaults to the table's).
    pub message: String,
    /// Optional structured detail.
    pub detail: Option<serde_json::Value>,
    /// HTTP status (defaults to the table's).
    pub status: StatusCode,
}

impl OciError {
    /// An error with the table's message and status.
    pub fn new(code: ErrorCode) -> OciError {
        OciError {
            code,
            message: code.message().to_owned(),
            detail: None,
            status: code.status(),
        }
    }

    /// Replace the message.
    pub fn message(mut self, message: impl Into<String>) -> OciError {
        self.message = message.into();
        self
    }

    /// Attach detail.
    pub fn detail(mut self, detail: serde_json::Value) -> OciError {
        self.detail = Some(detail);
        self
    }

    /// Answer with another status than the table's (e.g. 413 for an oversized manifest).
    pub fn status(mut self, status: StatusCode) -> OciError {
        self.status = status;
        self
    }

    /// The spec's body: `{"errors":[{"code","message","detail"}]}`.
    pub fn body(&self) -> serde_json::Value {
        let mut e = serde_json::json!({ "code": self.code.code(), "message": self.message });
        if let Some(d) = &self.detail {
            e["detail"] = d.clone();
        }
        serde_json::json!({ "errors": [e] })
    }
}

impl From<ErrorCode> for OciError {
    fn from(code: ErrorCode) -> Self {
        OciError::new(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_upper_snake() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            assert!(c.code().bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
            assert!(c.status().is_client_error() || c.status().is_server_error());
        }
    }

    #[test]
    fn body_shape() {
        let e = OciError::new(ErrorCode::ManifestInvalid)
            .message("too big")
            .status(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.status, 413);
        assert_eq!(e.body()["errors"][0]["code"], "MANIFEST_INVALID");
        assert_eq!(e.body()["errors"][0]["message"], "too big");
    }
}
