//! Why moving an image failed, worded for the person who typed the command.

use std::io;

/// Why a client operation failed. Every message names what was being read or written.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A reference or location that cannot be parsed.
    #[error("{given:?} is not a valid image reference: {reason}")]
    BadReference {
        /// As given.
        given: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest (tag or digest) does not exist.
    #[error("{target}: not found")]
    NotFound {
        /// `registry/repo:tag`, `oci:DIR:tag`, `…@sha256:…`.
        target: String,
    },
    /// The registry refused the credentials or the operation.
    #[error("{target}: {operation} denied: {message}")]
    Denied {
        /// What was being read or written.
        target: String,
        /// `pull`, `push`, `login`.
        operation: &'static str,
        /// What the registry said (or what to do about it).
        message: String,
    },
    /// The registry could not be reached (refused connection, DNS, TLS, timeout).
    #[error("{target}: registry unreachable: {message}")]
    Unreachable {
        /// What was being read or written.
        target: String,
        /// The transport error.
        message: String,
    },
    /// The registry answered with an error.
    #[error("{target}: {message}")]
    Registry {
        /// What was being read or written.
        target: String,
        /// The registry's error (code and message).
        message: String,
    },
    /// Content did not match its digest or size.
    #[error("{target}: content does not match its descriptor: expected {expected}, got {found}")]
    Mismatch {
        /// The blob or manifest.
        target: String,
        /// Digest and size the descriptor promises.
        expected: String,
        /// Digest and size received.
        found: String,
    },
    /// A manifest or index that cannot be understood.
    #[error("{target}: {message}")]
    Invalid {
        /// The manifest.
        target: String,
        /// What is wrong with it.
        message: String,
    },
    /// The image has no manifest for a platform that was asked for.
    #[error("{target} has no image for {wanted} (it has: {available})")]
    PlatformMissing {
        /// The image.
        target: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms it has.
        available: String,
    },
    /// An index would list the same platform twice.
    #[error("platform {platform} comes from both {first} and {second}: give --replace to keep the later one")]
    DuplicatePlatform {
        /// The platform.
        platform: String,
        /// Where the first entry came from.
        first: String,
        /// Where the second came from.
        second: String,
    },
    /// An index given where one image is needed, or the other way round.
    #[error("{target}: {message}")]
    Usage {
        /// The image.
        target: String,
        /// What to do instead.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why (in the message, so not chained as a source).
        error: io::Error,
    },
}

impl ClientError {
    /// An [`ClientError::Io`] for `path`.
    pub fn io(path: impl std::fmt::Display) -> impl FnOnce(io::Error) -> ClientError {
        let path = path.to_string();
        move |error| ClientError::Io { path, error }
    }

    /// True when the error says the content does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound { .. })
    }
}
