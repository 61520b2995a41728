//! The daemonless multi-arch image builder (issue 5): one pipeline spec, one image per
//! architecture, one index. Not implemented yet.
#![deny(missing_docs)]
