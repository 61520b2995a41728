//! OCI primitives shared by every pier crate.
//!
//! Everything that the OCI Distribution and Image specs define as a grammar or a table lives
//! here exactly once: content digests, repository names and tags, references, full image
//! references (`host/repo:tag@digest`), media types, the error-code table, platforms with
//! their canonical names, and times as RFC 3339. No I/O, except in [`layout`] (feature
//! `layout`): the OCI image layout directory the builder writes and the client copies from
//! and to.
//!
//! ```
//! use pier_oci::{Digest, ImageRef, Reference, RepoName};
//! let name: RepoName = "team/app/api".parse().unwrap();
//! let r: Reference = "v1.2".parse().unwrap();
//! assert!(matches!(r, Reference::Tag(_)));
//! let d = Digest::sha256_of(b"hello");
//! assert_eq!(d.to_string().len(), "sha256:".len() + 64);
//! assert_eq!(name.as_str(), "team/app/api");
//! let image: ImageRef = "127.0.0.1:5000/team/app:1.0".parse().unwrap();
//! assert_eq!(image.host(), Some("127.0.0.1:5000"));
//! assert_eq!(image.repository().as_str(), "team/app");
//! ```
#![deny(missing_docs)]

mod digest;
mod error;
mod image_ref;
#[cfg(feature = "layout")]
pub mod layout;
pub mod media;
mod name;
mod platform;
pub mod time;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use error::{ErrorCode, OciError};
pub use image_ref::{DOCKER_HUB, ImageRef, ImageRefError, MAX_REFERENCE_NAME_LEN};
pub use name::{MAX_NAME_LEN, MAX_TAG_LEN, NameError, Reference, RepoName, Tag, is_path_component};
pub use platform::{Platform, PlatformError};
