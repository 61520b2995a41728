//! The metadata store on sled, pier's embedded default.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use pier_oci::{Digest, Reference, RepoName, Tag};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::blob::UploadId;
use super::keys::{self, key, prefix};
use super::meta::{Deletion, ManifestRecord, MetaError, MetaStore, Referrer, Stored, Target, UploadRecord};
use crate::limits::{META_CACHE_BYTES, META_WRITE_STRIPES};

struct Trees {
    db: sled::Db,
    links: sled::Tree,
    manifests: sled::Tree,
    tags: sled::Tree,
    referrers: sled::Tree,
    repos: sled::Tree,
    uploads: sled::Tree,
    /// Writers of one repository's tags and manifests, striped by repository name. sled
    /// transactions cannot scan, yet a delete must read which tags name or reach its target
    /// and remove it as one step (else a tag moved onto a manifest between the scan and the
    /// transaction is left naming nothing, and a blob or child manifest deleted while a push
    /// that references it is being stored leaves a tag on a broken image). Every operation
    /// that adds or moves a tag, stores or deletes a manifest, or unlinks a blob holds its
    /// repository's stripe across "scan, check, transaction", which makes that one atomic
    /// step; readers take no lock. Chosen over a reverse index (tag → reachable set), which
    /// would need a schema change and upkeep on every push for a check only deletes need.
    /// Held only inside the blocking closure, never across the flush that follows it.
    writers: Vec<Mutex<()>>,
    /// Picks a stripe.
    stripe_hasher: RandomState,
}

impl Trees {
    /// The writer lock of `repo` (see `writers`). A panic while it was held left nothing
    /// half-done in memory (the state is in sled), so poisoning is ignored.
    fn writer(&self, repo: &str) -> MutexGuard<'_, ()> {
        let i = (self.stripe_hasher.hash_one(repo) % self.writers.len() as u64) as usize;
        self.writers[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first manifest reachable from a tag of `repo` (through index children) that
    /// references `target` directly, with the tag it was reached from. Call with the
    /// repository's writer lock held, so the answer still holds when acted on. Each
    /// manifest is read once however many tags reach it (repositories with thousands of
    /// tags on a few images are common), and tags are compared as stored bytes.
    fn referenced_by(&self, repo: &str, target: Target<'_>) -> Result<Option<(Digest, String)>, MetaError> {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for kv in scan_after(&self.tags, &prefix(&[repo]), None) {
            let (tag_key, root) = kv.map_err(engine)?;
            if seen.contains(root.as_ref()) {
                continue;
            }
            let mut stack = vec![root.to_vec()];
            while let Some(ds) = stack.pop() {
                if seen.contains(&ds) {
                    continue;
                }
                let d = keys::digest_from(&ds)?;
                let v = self.manifests.get(key(&[repo, &d.to_string()])).map_err(engine)?;
                seen.insert(ds);
                let Some(v) = v else {
                    continue;
                };
                let (blobs, children) = keys::decode_refs(&d, &v)?;
                if target.hit(&blobs, &children) {
                    return Ok(Some((d, keys::last_component(&tag_key)?)));
                }
                stack.extend(children.iter().map(|c| c.to_string().into_bytes()));
            }
        }
        Ok(None)
    }
}

/// Metadata in a sled database.
#[derive(Clone)]
pub struct SledMetaStore {
    t: Arc<Trees>,
}

use super::sled_run::{self, engine};

fn tx_engine(e: TransactionError<MetaError>) -> MetaError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => engine(e),
    }
}

impl SledMetaStore {
    /// Open (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SledMetaStore, MetaError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(META_CACHE_BYTES)
            .open()
            .map_err(engine)?;
        match db.get(keys::SCHEMA_KEY).map_err(engine)? {
            None => {
                db.insert(keys::SCHEMA_KEY, keys::SCHEMA_VERSION).map_err(engine)?;
                db.flush().map_err(engine)?;
            }
            Some(v) if v == keys::SCHEMA_VERSION.as_bytes() => {}
            Some(v) => {
                return Err(MetaError::Corrupt(format!(
                    "metadata schema version {} found, this pier reads {}",
                    String::from_utf8_lossy(&v),
                    keys::SCHEMA_VERSION
                )));
            }
        }
        let tree = |name: &str| db.open_tree(name).map_err(engine);
        let t = Trees {
            links: tree(keys::LINKS)?,
            manifests: tree(keys::MANIFESTS)?,
            tags: tree(keys::TAGS)?,
            referrers: tree(keys::REFERRERS)?,
            repos: tree(keys::REPOS)?,
            uploads: tree(keys::UPLOADS)?,
            db,
            writers: (0..META_WRITE_STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_hasher: RandomState::new(),
        };
        Ok(SledMetaStore { t: Arc::new(t) })
    }

    /// The users, projects, members and robots, kept in the same database (the audit log
    /// has files of its own: `FileAuditLog`).
    pub fn access_store(&self) -> Result<super::SledAccessStore, MetaError> {
        super::SledAccessStore::open(self.t.db.clone())
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Trees) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, MetaError> {
        sled_run::run(&self.t, f).await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Trees) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, MetaError> {
        sled_run::write(&self.t, f).await
    }
}

impl sled_run::Trees for Trees {
    fn db(&self) -> &sled::Db {
        &self.db
    }
}

fn scan_after(
    tree: &sled::Tree,
    pfx: &[u8],
    last: Option<&str>,
) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> {
    let start = match last {
        Some(l) => {
            let mut k = pfx.to_vec();
            k.extend_from_slice(l.as_bytes());
            Bound::Excluded(k)
        }
        None => Bound::Included(pfx.to_vec()),
    };
    let pfx = pfx.to_vec();
    tree.range((start, Bound::Unbounded))
        .take_while(move |r| r.as_ref().map(|(k, _)| k.starts_with(&pfx)).unwrap_or(true))
}

#[async_trait]
impl MetaStore for SledMetaStore {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), MetaError> {
        let (repo, k) = (repo.to_string(), key(&[repo.as_str(), &digest.to_string()]));
        self.write(move |t| {
            (&t.links, &t.repos)
                .transaction(|(links, repos)| {
                    links.insert(k.as_slice(), &[])?;
                    repos.insert(repo.as_bytes(), &[])?;
                    Ok::<_, ConflictableTransactionError<MetaError>>(())
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn blob_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError> {
        let k = key(&[repo.as_str(), &digest.to_string()]);
        self.run(move |t| t.links.contains_key(k).map_err(engine)).await
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError> {
        let (repo, digest) = (repo.to_string(), digest.clone());
        let k = key(&[&repo, &digest.to_string()]);
        self.write(move |t| {
            let _writer = t.writer(&repo);
            if !t.links.contains_key(&k).map_err(engine)? {
                return Ok(Deletion::NotFound);
            }
            if let Some((by, tag)) = t.referenced_by(&repo, Target::Blob(&digest))? {
                return Ok(Deletion::Referenced { by, tag });
            }
            t.links.remove(&k).map_err(engine)?;
            Ok(Deletion::Deleted)
        })
        .await
    }

    async fn put_manifest(&self, repo: &RepoName, record: &ManifestRecord, tags: &[Tag]) -> Result<Stored, MetaError> {
        let repo = repo.to_string();
        let digest = record.digest.to_string();
        let mkey = key(&[&repo, &digest]);
        let value = keys::encode_manifest(record);
        let tag_keys: Vec<Vec<u8>> = tags.iter().map(|t| key(&[&repo, t.as_str()])).collect();
        let referrer = record.subject.as_ref().map(|s| {
            let k = key(&[&repo, &s.to_string(), &digest]);
            let v = serde_json::to_vec(&Referrer::of(record)).expect("referrer serializes");
            (k, v)
        });
        let blob_keys: Vec<(Digest, Vec<u8>)> = record
            .blobs
            .iter()
            .map(|b| (b.clone(), key(&[&repo, &b.to_string()])))
            .collect();
        let child_keys: Vec<(Digest, Vec<u8>)> = record
            .children
            .iter()
            .map(|c| (c.clone(), key(&[&repo, &c.to_string()])))
            .collect();
        self.write(move |t| {
            let _writer = t.writer(&repo);
            // The caller checked these already; checked again under the writer lock because
            // a delete may have run since, and a tag must never name a broken image.
            for (d, k) in &blob_keys {
                if !t.links.contains_key(k).map_err(engine)? {
                    return Ok(Stored::Missing(d.clone()));
                }
            }
            for (d, k) in &child_keys {
                if !t.manifests.contains_key(k).map_err(engine)? {
                    return Ok(Stored::Missing(d.clone()));
                }
            }
            (&t.manifests, &t.tags, &t.referrers, &t.repos)
                .transaction(|(manifests, tags, referrers, repos)| {
                    manifests.insert(mkey.as_slice(), value.as_slice())?;
                    for tk in &tag_keys {
                        tags.insert(tk.as_slice(), digest.as_bytes())?;
                    }
                    if let Some((k, v)) = &referrer {
                        referrers.insert(k.as_slice(), v.as_slice())?;
                    }
                    repos.insert(repo.as_bytes(), &[])?;
                    Ok::<_, ConflictableTransactionError<MetaError>>(())
                })
                .map_err(tx_engine)?;
            Ok(Stored::Stored)
        })
        .await
    }

    async fn get_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<Option<ManifestRecord>, MetaError> {
        let repo = repo.to_string();
        let reference = reference.clone();
        self.run(move |t| {
            let digest = match reference {
                Reference::Digest(d) => d,
                Reference::Tag(tag) => match t.tags.get(key(&[&repo, tag.as_str()])).map_err(engine)? {
                    Some(v) => keys::digest_from(&v)?,
                    None => return Ok(None),
                },
            };
            match t.manifests.get(key(&[&repo, &digest.to_string()])).map_err(engine)? {
                Some(v) => Ok(Some(keys::decode_manifest(digest, &v)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetaError> {
        let repo = repo.to_string();
        let k = key(&[&repo, tag.as_str()]);
        self.write(move |t| {
            let _writer = t.writer(&repo);
            Ok(t.tags.remove(k).map_err(engine)?.is_some())
        })
        .await
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Deletion, MetaError> {
        let repo = repo.to_string();
        let digest = digest.clone();
        self.write(move |t| {
            // Reading the tags and deleting happen under the writer lock, so no push can
            // move a tag onto this manifest in between and be left naming nothing.
            let _writer = t.writer(&repo);
            let ds = digest.to_string();
            let mkey = key(&[&repo, &ds]);
            let Some(v) = t.manifests.get(&mkey).map_err(engine)? else {
                return Ok(Deletion::NotFound);
            };
            if let Some((by, tag)) = t.referenced_by(&repo, Target::Manifest(&digest))? {
                return Ok(Deletion::Referenced { by, tag });
            }
            let record = keys::decode_manifest(digest.clone(), &v)?;
            let mut tag_keys = Vec::new();
            for kv in scan_after(&t.tags, &prefix(&[&repo]), None) {
                let (k, v) = kv.map_err(engine)?;
                if v.as_ref() == ds.as_bytes() {
                    tag_keys.push(k);
                }
            }
            let referrer_key = record.subject.map(|s| key(&[&repo, &s.to_string(), &ds]));
            (&t.manifests, &t.tags, &t.referrers)
                .transaction(|(manifests, tags, referrers)| {
                    manifests.remove(mkey.as_slice())?;
                    for k in &tag_keys {
                        tags.remove(k)?;
                    }
                    if let Some(k) = &referrer_key {
                        referrers.remove(k.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<MetaError>>(())
                })
                .map_err(tx_engine)?;
            Ok(Deletion::Deleted)
        })
        .await
    }

    async fn delete_repository(&self, repo: &RepoName) -> Result<bool, MetaError> {
        let repo = repo.to_string();
        self.write(move |t| {
            // Under the writer lock no manifest can be stored between the check and the
            // transaction (sled transactions cannot scan).
            let _writer = t.writer(&repo);
            let pfx = prefix(&[&repo]);
            if t.manifests
                .scan_prefix(&pfx)
                .next()
                .transpose()
                .map_err(engine)?
                .is_some()
            {
                return Ok(false);
            }
            let links: Vec<sled::IVec> = scan_after(&t.links, &pfx, None)
                .map(|kv| kv.map(|(k, _)| k).map_err(engine))
                .collect::<Result<_, _>>()?;
            (&t.repos, &t.links)
                .transaction(|(repos, links_tree)| {
                    if repos.remove(repo.as_bytes())?.is_none() {
                        return Ok(false);
                    }
                    for k in &links {
                        links_tree.remove(k)?;
                    }
                    Ok::<_, ConflictableTransactionError<MetaError>>(true)
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn has_manifests(&self, repo: &RepoName) -> Result<bool, MetaError> {
        let pfx = prefix(&[repo.as_str()]);
        self.run(move |t| {
            Ok(t.manifests
                .scan_prefix(pfx)
                .next()
                .transpose()
                .map_err(engine)?
                .is_some())
        })
        .await
    }

    async fn list_tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Option<Vec<String>>, MetaError> {
        let repo = repo.to_string();
        let last = last.map(str::to_owned);
        self.run(move |t| {
            if !t.repos.contains_key(repo.as_bytes()).map_err(engine)? {
                return Ok(None);
            }
            let mut out = Vec::new();
            for kv in scan_after(&t.tags, &prefix(&[&repo]), last.as_deref()).take(n) {
                let (k, _) = kv.map_err(engine)?;
                out.push(keys::last_component(&k)?);
            }
            Ok(Some(out))
        })
        .await
    }

    async fn list_repos(&self, last: Option<&str>, n: usize) -> Result<Vec<String>, MetaError> {
        let last = last.map(str::to_owned);
        self.run(move |t| {
            let start = match &last {
                Some(l) => Bound::Excluded(l.as_bytes().to_vec()),
                None => Bound::Unbounded,
            };
            let mut out = Vec::new();
            for kv in t.repos.range((start, Bound::Unbounded)).take(n) {
                let (k, _) = kv.map_err(engine)?;
                out.push(keys::repo_from_key(&k)?.to_string());
            }
            Ok(out)
        })
        .await
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError> {
        let pfx = prefix(&[repo.as_str(), &subject.to_string()]);
        let artifact_type = artifact_type.map(str::to_owned);
        self.run(move |t| {
            let mut out = Vec::new();
            for kv in scan_after(&t.referrers, &pfx, None) {
                let (_, v) = kv.map_err(engine)?;
                let r: Referrer = serde_json::from_slice(&v).map_err(|e| MetaError::Corrupt(e.to_string()))?;
                if artifact_type.is_none() || r.artifact_type == artifact_type {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create_upload(&self, id: UploadId, record: &UploadRecord) -> Result<(), MetaError> {
        let v = serde_json::to_vec(record).expect("upload record serializes");
        self.write(move |t| t.uploads.insert(id.to_string(), v).map(|_| ()).map_err(engine))
            .await
    }

    async fn get_upload(&self, id: UploadId) -> Result<Option<UploadRecord>, MetaError> {
        self.run(move |t| match t.uploads.get(id.to_string()).map_err(engine)? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| MetaError::Corrupt(e.to_string())),
            None => Ok(None),
        })
        .await
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), MetaError> {
        self.write(move |t| t.uploads.remove(id.to_string()).map(|_| ()).map_err(engine))
            .await
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, UploadRecord)>, MetaError> {
        self.run(|t| {
            let mut out = Vec::new();
            for kv in t.uploads.iter() {
                let (k, v) = kv.map_err(engine)?;
                let id = std::str::from_utf8(&k)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| MetaError::Corrupt(format!("upload key {k:?}")))?;
                let record = serde_json::from_slice(&v).map_err(|e| MetaError::Corrupt(e.to_string()))?;
                out.push((id, record));
            }
            Ok(out)
        })
        .await
    }

    async fn manifest_count(&self) -> Result<Option<u64>, MetaError> {
        self.run(|t| Ok(Some(t.manifests.len() as u64))).await
    }

    async fn flush(&self) -> Result<(), MetaError> {
        self.run(|t| t.db.flush().map(|_| ()).map_err(engine)).await
    }
}
