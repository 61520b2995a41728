//! Registry metadata in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use pier_oci::{Digest, Reference, RepoName, Tag};

use super::lock;
use crate::storage::blob::UploadId;
use crate::storage::meta::{Deletion, ManifestRecord, MetaError, MetaStore, Referrer, Stored, Target, UploadRecord};

/// What one repository holds. It is in the catalog from its first blob link or manifest
/// until `delete_repository`.
#[derive(Default)]
struct Repo {
    links: HashSet<Digest>,
    manifests: HashMap<Digest, ManifestRecord>,
    /// By name, in the order listings use.
    tags: BTreeMap<String, Digest>,
    /// Subject → referrer digest (as text: the order listings use) → its descriptor.
    referrers: HashMap<Digest, BTreeMap<String, Referrer>>,
}

impl Repo {
    /// The first manifest reachable from a tag (through index children) that references
    /// `target` directly, with the tag it was reached from. Each manifest is visited once
    /// however many tags reach it.
    fn referenced_by(&self, target: Target<'_>) -> Option<(Digest, String)> {
        let mut seen: HashSet<&Digest> = HashSet::new();
        for (tag, root) in &self.tags {
            let mut stack = vec![root];
            while let Some(d) = stack.pop() {
                if !seen.insert(d) {
                    continue;
                }
                let Some(m) = self.manifests.get(d) else {
                    continue;
                };
                if target.hit(&m.blobs, &m.children) {
                    return Some((d.clone(), tag.clone()));
                }
                stack.extend(&m.children);
            }
        }
        None
    }
}

#[derive(Default)]
struct State {
    /// The catalog, by name.
    repos: BTreeMap<String, Repo>,
    uploads: HashMap<UploadId, UploadRecord>,
}

/// [`MetaStore`] in memory.
#[derive(Default)]
pub struct MemoryMetaStore {
    state: Mutex<State>,
}

impl MemoryMetaStore {
    /// An empty store.
    pub fn new() -> MemoryMetaStore {
        MemoryMetaStore::default()
    }

    fn read<T>(&self, repo: &RepoName, f: impl FnOnce(&Repo) -> T) -> Option<T> {
        lock(&self.state).repos.get(repo.as_str()).map(f)
    }
}

/// The keys of `map` after `last`, at most `n`.
fn page<V>(map: &BTreeMap<String, V>, last: Option<&str>, n: usize) -> Vec<String> {
    let start = last.map_or(Bound::Unbounded, Bound::Excluded);
    map.range::<str, _>((start, Bound::Unbounded))
        .take(n)
        .map(|(k, _)| k.clone())
        .collect()
}

#[async_trait]
impl MetaStore for MemoryMetaStore {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), MetaError> {
        let mut st = lock(&self.state);
        st.repos
            .entry(repo.to_string())
            .or_default()
            .links
            .insert(digest.clone());
        Ok(())
    }

    async fn blob_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError> {
        Ok(self.read(repo, |r| r.links.contains(digest)).unwrap_or(false))
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError> {
        let mut st = lock(&self.state);
        let Some(r) = st.repos.get_mut(repo.as_str()).filter(|r| r.links.contains(digest)) else {
            return Ok(Deletion::NotFound);
        };
        if let Some((by, tag)) = r.referenced_by(Target::Blob(digest)) {
            return Ok(Deletion::Referenced { by, tag });
        }
        r.links.remove(digest);
        Ok(Deletion::Deleted)
    }

    async fn put_manifest(&self, repo: &RepoName, record: &ManifestRecord, tags: &[Tag]) -> Result<Stored, MetaError> {
        let mut st = lock(&self.state);
        let existing = st.repos.get(repo.as_str());
        let missing = record
            .blobs
            .iter()
            .find(|b| !existing.is_some_and(|r| r.links.contains(*b)))
            .or_else(|| {
                record
                    .children
                    .iter()
                    .find(|c| !existing.is_some_and(|r| r.manifests.contains_key(*c)))
            });
        if let Some(d) = missing {
            return Ok(Stored::Missing(d.clone()));
        }
        let r = st.repos.entry(repo.to_string()).or_default();
        r.manifests.insert(record.digest.clone(), record.clone());
        for t in tags {
            r.tags.insert(t.to_string(), record.digest.clone());
        }
        if let Some(subject) = &record.subject {
            r.referrers
                .entry(subject.clone())
                .or_default()
                .insert(record.digest.to_string(), Referrer::of(record));
        }
        Ok(Stored::Stored)
    }

    async fn get_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<Option<ManifestRecord>, MetaError> {
        Ok(self
            .read(repo, |r| {
                let digest = match reference {
                    Reference::Digest(d) => d,
                    Reference::Tag(t) => r.tags.get(t.as_str())?,
                };
                r.manifests.get(digest).cloned()
            })
            .flatten())
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetaError> {
        let mut st = lock(&self.state);
        Ok(st
            .repos
            .get_mut(repo.as_str())
            .is_some_and(|r| r.tags.remove(tag.as_str()).is_some()))
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError> {
        let mut st = lock(&self.state);
        let Some(r) = st
            .repos
            .get_mut(repo.as_str())
            .filter(|r| r.manifests.contains_key(digest))
        else {
            return Ok(Deletion::NotFound);
        };
        if let Some((by, tag)) = r.referenced_by(Target::Manifest(digest)) {
            return Ok(Deletion::Referenced { by, tag });
        }
        let record = r.manifests.remove(digest).expect("checked above");
        r.tags.retain(|_, d| d != digest);
        if let Some(subject) = &record.subject
            && let Some(list) = r.referrers.get_mut(subject)
        {
            list.remove(&digest.to_string());
            if list.is_empty() {
                r.referrers.remove(subject);
            }
        }
        Ok(Deletion::Deleted)
    }

    async fn delete_repository(&self, repo: &RepoName) -> Result<bool, MetaError> {
        let mut st = lock(&self.state);
        if !st.repos.get(repo.as_str()).is_some_and(|r| r.manifests.is_empty()) {
            return Ok(false);
        }
        st.repos.remove(repo.as_str());
        Ok(true)
    }

    async fn has_manifests(&self, repo: &RepoName) -> Result<bool, MetaError> {
        Ok(self.read(repo, |r| !r.manifests.is_empty()).unwrap_or(false))
    }

    async fn list_tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Option<Vec<String>>, MetaError> {
        Ok(self.read(repo, |r| page(&r.tags, last, n)))
    }

    async fn list_repos(&self, last: Option<&str>, n: usize) -> Result<Vec<String>, MetaError> {
        Ok(page(&lock(&self.state).repos, last, n))
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError> {
        let found = self.read(repo, |r| {
            r.referrers
                .get(subject)
                .into_iter()
                .flat_map(|list| list.values())
                .filter(|d| artifact_type.is_none() || d.artifact_type.as_deref() == artifact_type)
                .cloned()
                .collect()
        });
        Ok(found.unwrap_or_default())
    }

    async fn create_upload(&self, id: UploadId, record: &UploadRecord) -> Result<(), MetaError> {
        lock(&self.state).uploads.insert(id, record.clone());
        Ok(())
    }

    async fn get_upload(&self, id: UploadId) -> Result<Option<UploadRecord>, MetaError> {
        Ok(lock(&self.state).uploads.get(&id).cloned())
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), MetaError> {
        lock(&self.state).uploads.remove(&id);
        Ok(())
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, UploadRecord)>, MetaError> {
        Ok(lock(&self.state)
            .uploads
            .iter()
            .map(|(id, r)| (*id, r.clone()))
            .collect())
    }

    async fn manifest_count(&self) -> Result<Option<u64>, MetaError> {
        Ok(Some(
            lock(&self.state).repos.values().map(|r| r.manifests.len() as u64).sum(),
        ))
    }

    async fn flush(&self) -> Result<(), MetaError> {
        Ok(())
    }
}
