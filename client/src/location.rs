//! Where an image is: `HOST[:PORT]/REPO[:TAG|@DIGEST]` in a registry, or `oci:DIR[:TAG|@DIGEST]`
//! in an OCI image layout on disk.

use std::fmt;
use std::path::PathBuf;

use pier_oci::{ImageRef, ImageRefError, Reference, RepoName};

use crate::ClientError;

/// The tag used when a location names none.
pub const DEFAULT_TAG: &str = "latest";

/// An image's location.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// In a registry.
    Registry {
        /// `host[:port]`.
        registry: String,
        /// The repository.
        repository: RepoName,
        /// Tag or digest, if given.
        reference: Option<Reference>,
    },
    /// In an OCI image layout directory.
    Layout {
        /// The layout's directory.
        dir: PathBuf,
        /// Tag (`org.opencontainers.image.ref.name`) or digest, if given.
        reference: Option<Reference>,
    },
}

impl Location {
    /// Parses a location. A registry reference must start with a host (a name with a dot or
    /// a port, or `localhost`); `default_registry` is put in front of one that does not
    /// (pier's current server), and without it such a reference is an error.
    pub fn parse(text: &str, default_registry: Option<&str>) -> Result<Location, ClientError> {
        let bad = |reason: &str| ClientError::BadReference {
            given: text.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, reference) = split_layout_reference(rest).map_err(|r| bad(&r))?;
            if dir.is_empty() {
                return Err(bad("oci: needs a directory, e.g. oci:out or oci:out:1.0"));
            }
            return Ok(Location::Layout {
                dir: PathBuf::from(dir),
                reference,
            });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(bad(&format!(
                "give a registry reference without {scheme}://, e.g. 127.0.0.1:5000/myorg/app:1.0"
            )));
        }
        if let Some((transport, _)) = text.split_once(':').filter(|(t, _)| {
            matches!(
                *t,
                "docker" | "docker-archive" | "oci-archive" | "dir" | "containers-storage"
            )
        }) {
            return Err(bad(&format!(
                "{transport}: is not supported here; use a registry reference or oci:DIR"
            )));
        }
        let image: ImageRef = text.parse().map_err(|e: ImageRefError| bad(&e.to_string()))?;
        let registry = match (image.host(), default_registry) {
            (Some(host), _) => host.to_owned(),
            (None, Some(r)) => r.to_owned(),
            (None, None) => {
                return Err(bad(
                    "no registry: start with HOST[:PORT]/ (e.g. 127.0.0.1:5000/myorg/app:1.0) or `pier login` first",
                ));
            }
        };
        let reference = match (image.tag(), image.digest()) {
            (Some(_), Some(_)) => return Err(bad("give a tag or a digest, not both")),
            (Some(t), None) => Some(Reference::Tag(t.clone())),
            (None, Some(d)) => Some(Reference::Digest(d.clone())),
            (None, None) => None,
        };
        let repository = image.repository().clone();
        Ok(Location::Registry {
            registry,
            repository,
            reference,
        })
    }

    /// The tag or digest, defaulting to [`DEFAULT_TAG`].
    pub fn reference_or_default(&self) -> Reference {
        self.reference()
            .cloned()
            .unwrap_or_else(|| Reference::Tag(DEFAULT_TAG.parse().expect("valid tag")))
    }

    /// The tag or digest, if given.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            Location::Registry { reference, .. } | Location::Layout { reference, .. } => reference.as_ref(),
        }
    }

    /// The same image location with another reference.
    pub fn with_reference(&self, reference: Option<Reference>) -> Location {
        let mut l = self.clone();
        match &mut l {
            Location::Registry { reference: r, .. } | Location::Layout { reference: r, .. } => *r = reference,
        }
        l
    }

    /// The repository part, without the reference (`host/repo`, `oci:DIR`).
    pub fn repository_display(&self) -> String {
        self.with_reference(None).to_string()
    }
}

/// `dir`, `dir:tag`, `dir@sha256:…` → (dir, reference). A colon with no `/` after it starts
/// a tag; one before a `/` stays part of the directory.
fn split_layout_reference(text: &str) -> Result<(&str, Option<Reference>), String> {
    if let Some((name, digest)) = text.rsplit_once('@') {
        let d = digest.parse().map_err(|e: pier_oci::DigestError| e.to_string())?;
        return Ok((name, Some(Reference::Digest(d))));
    }
    match text.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => {
            let tag = tag.parse().map_err(|e: pier_oci::NameError| e.to_string())?;
            Ok((name, Some(Reference::Tag(tag))))
        }
        _ => Ok((text, None)),
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, reference) = match self {
            Location::Registry {
                registry,
                repository,
                reference,
            } => (format!("{registry}/{repository}"), reference),
            Location::Layout { dir, reference } => (format!("oci:{}", dir.display()), reference),
        };
        match reference {
            None => f.write_str(&base),
            Some(Reference::Tag(t)) => write!(f, "{base}:{t}"),
            Some(Reference::Digest(d)) => write!(f, "{base}@{d}"),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_references() {
        let l = Location::parse("127.0.0.1:5000/myorg/app:1.0", None).unwrap();
        assert_eq!(l.to_string(), "127.0.0.1:5000/myorg/app:1.0");
        let Location::Registry {
            registry, repository, ..
        } = &l
        else {
            panic!("{l:?}")
        };
        assert_eq!(
            (registry.as_str(), repository.as_str()),
            ("127.0.0.1:5000", "myorg/app")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let l = Location::parse(&format!("reg.example/a/b@{d}"), None).unwrap();
        assert_eq!(l.reference(), Some(&Reference::Digest(d.parse().unwrap())));
        let l = Location::parse("localhost/a/b", None).unwrap();
        assert_eq!(l.reference_or_default().to_string(), "latest");
        // No host: the current server goes in front.
        let l = Location::parse("myorg/app:2", Some("pier.local:5000")).unwrap();
        assert_eq!(l.to_string(), "pier.local:5000/myorg/app:2");
        assert_eq!(l.repository_display(), "pier.local:5000/myorg/app");
    }

    #[test]
    fn layout_references() {
        let l = Location::parse("oci:out", None).unwrap();
        assert_eq!(
            l,
            Location::Layout {
                dir: "out".into(),
                reference: None
            }
        );
        let l = Location::parse("oci:/tmp/x/out:1.0", None).unwrap();
        assert_eq!(l.to_string(), "oci:/tmp/x/out:1.0");
        let l = Location::parse("oci:a/b", None).unwrap();
        assert_eq!(l.reference(), None);
    }

    #[test]
    fn bad_references() {
        for (bad, says) in [
            ("myorg/app:1", "no registry"),
            ("https://h:5000/a/b", "without https://"),
            ("127.0.0.1:5000/My/App", "invalid repository"),
            ("127.0.0.1:5000/a/b:bad tag", "tag"),
            ("127.0.0.1:5000/a/b@sha256:zz", "digest"),
            ("oci:", "needs a directory"),
            ("docker-archive:x.tar", "not supported here"),
        ] {
            let e = Location::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
    }
}
