//! The daemonless multi-arch image builder (issue 5): one pipeline spec, one image per
//! architecture, one index.
//!
//! - [`spec`]: `pier.yaml` → [`spec::Spec`], with file:line:field errors, and the
//!   per-platform plan with placeholders expanded;
//! - [`layer`]: deterministic layers (sorted entries, fixed owners, modes and times, pinned
//!   compressor), hashed as they are written;
//! - [`image`]: image configs, manifests and the index, written as an OCI layout.
#![deny(missing_docs)]

pub mod image;
pub mod layer;
pub mod spec;
