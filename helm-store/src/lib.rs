//! The Helm chart repository with per-architecture overlays. Not implemented yet.
#![deny(missing_docs)]
