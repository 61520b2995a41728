//! What the registry's operations refuse, in domain terms; `crate::error` turns each into
//! the protocol's answer.

use std::fmt;

use pier_oci::{Digest, RepoName};

use crate::manifest::ManifestError;
use crate::storage::{BlobError, Deletion, MetaError};

/// Manifest or blob, in messages about references between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// A manifest or index.
    Manifest,
    /// A blob (config or layer).
    Blob,
}

impl ContentKind {
    /// What references content of this kind.
    pub fn parent(self) -> &'static str {
        match self {
            ContentKind::Manifest => "index",
            ContentKind::Blob => "manifest",
        }
    }
}

impl fmt::Display for ContentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContentKind::Manifest => "manifest",
            ContentKind::Blob => "blob",
        })
    }
}

/// Repositories a refused project deletion names; the rest is counted.
const SHOWN_REPOS: usize = 20;

/// Why an operation of the registry did not happen. Nothing was changed by a refusal.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No manifest by that tag or digest in the repository.
    #[error("manifest unknown to the repository")]
    ManifestUnknown,
    /// No blob by that digest in the repository.
    #[error("blob unknown to the repository")]
    BlobUnknown,
    /// No upload session by that id in the repository.
    #[error("upload session unknown to the repository")]
    UploadUnknown,
    /// The repository holds nothing.
    #[error("repository {0} is not known")]
    RepositoryUnknown(RepoName),
    /// A manifest pushed by digest hashes to another digest.
    #[error("manifest content has digest {actual}, not {claimed}")]
    ManifestDigestMismatch {
        /// The digest in the URL.
        claimed: Digest,
        /// The content's.
        actual: Digest,
    },
    /// The manifest is not one the registry stores.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A pushed manifest references content the repository does not hold.
    #[error("{kind} {digest} is not in repository {repo}")]
    Missing {
        /// The repository.
        repo: RepoName,
        /// What is missing.
        kind: ContentKind,
        /// Its digest.
        digest: Digest,
    },
    /// A delete refused because a tagged image still needs the target.
    #[error(
        "{kind} {digest} is referenced by {parent} {by} (reachable from tag {tag}); delete the tag or the {parent} first",
        parent = kind.parent()
    )]
    Referenced {
        /// What the delete was for.
        kind: ContentKind,
        /// Its digest.
        digest: Digest,
        /// The manifest or index that lists it.
        by: Digest,
        /// A tag through which `by` is reachable.
        tag: String,
    },
    /// A project cannot go while repositories in it hold images.
    #[error(
        "project {project} still holds {} repositories with images: {}{more}; delete their manifests first",
        repos.len(),
        repos[..repos.len().min(SHOWN_REPOS)].join(", "),
        more = if repos.len() > SHOWN_REPOS { ", …" } else { "" }
    )]
    ProjectNotEmpty {
        /// The project.
        project: String,
        /// Its repositories that hold manifests.
        repos: Vec<String>,
    },
    /// The blob store failed or refused.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl ServiceError {
    pub(super) fn missing(repo: &RepoName, kind: ContentKind, digest: &Digest) -> ServiceError {
        ServiceError::Missing {
            repo: repo.clone(),
            kind,
            digest: digest.clone(),
        }
    }

    /// A store's delete outcome as the operation's result.
    pub(super) fn deletion(outcome: Deletion, kind: ContentKind, digest: &Digest) -> Result<(), ServiceError> {
        match outcome {
            Deletion::Deleted => Ok(()),
            Deletion::NotFound => Err(match kind {
                ContentKind::Manifest => ServiceError::ManifestUnknown,
                ContentKind::Blob => ServiceError::BlobUnknown,
            }),
            Deletion::Referenced { by, tag } => Err(ServiceError::Referenced {
                kind,
                digest: digest.clone(),
                by,
                tag,
            }),
        }
    }
}
