//! The daemonless multi-arch image builder: one pipeline spec, one image per
//! architecture, one index.
//!
//! - [`spec`]: `pier.yaml` → [`spec::Spec`], with file:line:field errors, and the
//!   per-platform plan with placeholders expanded;
//! - [`layer`]: deterministic layers (sorted entries, fixed owners, modes and times, pinned
//!   compressor), hashed as they are written, and the cache of built layers;
//! - [`image`]: image configs; manifests and the index are written into an OCI layout by
//!   [`pier_oci::layout`];
//! - [`archive`]: one image of a layout as a `docker load`-able archive (`docker-archive:`
//!   output);
//! - [`build`]: `pier build`: steps and layers of every platform in parallel, then the
//!   images and one index into the output.
#![deny(missing_docs)]

pub mod archive;
pub mod build;
pub mod image;
pub mod layer;
pub mod spec;
