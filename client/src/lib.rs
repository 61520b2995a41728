//! Moving images between registries and OCI layouts: the client half of pier.
//!
//! - [`location`]: `HOST/REPO[:TAG|@DIGEST]` and `oci:DIR[:TAG]` references;
//! - [`store`]: the [`ImageStore`] interface a registry repository ([`registry`], on
//!   `oci-client`) and an OCI layout ([`layout`]) implement;
//! - [`copy`](mod@copy): one image or a whole index from one store to another — blobs
//!   streamed and checked, skipped when present, mounted within one registry; tags last;
//! - [`index`]: merging images into one multi-arch index, and describing an image;
//! - [`base`]: base images for the builder, one platform at a time.
#![deny(missing_docs)]

pub mod base;
pub mod copy;
mod error;
pub mod index;
pub mod layout;
pub mod location;
pub mod registry;
pub mod store;

pub use error::ClientError;
pub use location::Location;
pub use registry::{Login, Registries, RegistryOptions};
pub use store::{ImageStore, Manifest};

/// The store a location names (the reference part is ignored).
pub fn open(location: &Location, registries: &Registries) -> Box<dyn ImageStore> {
    match location {
        Location::Registry {
            registry, repository, ..
        } => Box::new(registries.repository(registry, repository.as_str())),
        Location::Layout { dir, .. } => Box::new(layout::LayoutStore::new(dir.clone())),
    }
}
