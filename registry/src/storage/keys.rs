//! Key and value encoding of the sled stores (`sled_meta`, `sled_access`), and their schema
//! version. Nothing outside those two sees these bytes.
//!
//! Keys join components with a NUL byte, which no repository name, tag or digest can
//! contain, so a prefix scan over `repo\0` never strays into `repo/sub\0`.

use std::collections::BTreeMap;

use bytes::Bytes;
use pier_oci::{Digest, RepoName};
use serde::{Deserialize, Serialize};

use super::meta::{ManifestRecord, MetaError};

/// Bump when any encoding below changes; opening a store of another version fails loudly
/// instead of misreading it.
pub const SCHEMA_VERSION: &str = "1";
/// Key of the schema version in the default tree.
pub const SCHEMA_KEY: &[u8] = b"schema_version";

/// Blob links: `repo\0digest` → empty.
pub const LINKS: &str = "links";
/// Manifests: `repo\0digest` → [`encode_manifest`].
pub const MANIFESTS: &str = "manifests";
/// Tags: `repo\0tag` → digest string.
pub const TAGS: &str = "tags";
/// Referrers: `repo\0subject\0referrer` → JSON `Referrer`.
pub const REFERRERS: &str = "referrers";
/// Repositories: `repo` → empty.
pub const REPOS: &str = "repos";
/// Upload sessions: `uuid` → JSON `UploadRecord`.
pub const UPLOADS: &str = "uploads";
/// Users: `name` → JSON `UserRecord`.
pub const USERS: &str = "users";
/// Projects: `name` → JSON `ProjectRecord`.
pub const PROJECTS: &str = "projects";
/// Members: `project\0user` → role name.
pub const MEMBERS: &str = "members";
/// The same memberships by user: `user\0project` → role name.
pub const MEMBER_OF: &str = "member_of";
/// Robots: `project\0name` → JSON `RobotRecord`.
pub const ROBOTS: &str = "robots";
/// Key in the default tree marking that first-start setup ran.
pub const BOOTSTRAPPED_KEY: &[u8] = b"bootstrapped";

const SEP: u8 = 0;

/// `a\0b` for the components given.
pub fn key(parts: &[&str]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// `a\0b\0` — the prefix of every key that starts with these components.
pub fn prefix(parts: &[&str]) -> Vec<u8> {
    let mut k = key(parts);
    k.push(SEP);
    k
}

/// The last component of a key, as text.
pub fn last_component(k: &[u8]) -> Result<String, MetaError> {
    let tail = k.rsplit(|&b| b == SEP).next().unwrap_or(k);
    String::from_utf8(tail.to_vec()).map_err(|e| MetaError::Corrupt(e.to_string()))
}

/// A repository name stored as a key.
pub fn repo_from_key(k: &[u8]) -> Result<RepoName, MetaError> {
    std::str::from_utf8(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt(format!("repository key {k:?}")))
}

pub fn digest_from(v: &[u8]) -> Result<Digest, MetaError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt(format!("digest value {v:?}")))
}

#[derive(Serialize, Deserialize)]
struct ManifestHeader {
    media_type: String,
    blobs: Vec<Digest>,
    children: Vec<Digest>,
    subject: Option<Digest>,
    artifact_type: Option<String>,
    annotations: BTreeMap<String, String>,
}

/// `u32 header length (BE) | JSON header | manifest bytes`: the bytes are stored as
/// pushed, so a GET serves a slice of the value without re-encoding.
pub fn encode_manifest(r: &ManifestRecord) -> Vec<u8> {
    let header = serde_json::to_vec(&ManifestHeader {
        media_type: r.media_type.clone(),
        blobs: r.blobs.clone(),
        children: r.children.clone(),
        subject: r.subject.clone(),
        artifact_type: r.artifact_type.clone(),
        annotations: r.annotations.clone(),
    })
    .expect("header serializes");
    let mut v = Vec::with_capacity(4 + header.len() + r.bytes.len());
    v.extend_from_slice(&(header.len() as u32).to_be_bytes());
    v.extend_from_slice(&header);
    v.extend_from_slice(&r.bytes);
    v
}

/// The header of an encoded manifest and where its bytes start.
fn decode_header(digest: &Digest, v: &[u8]) -> Result<(ManifestHeader, usize), MetaError> {
    let corrupt = |what: &str| MetaError::Corrupt(format!("manifest {digest}: {what}"));
    let len_bytes: [u8; 4] = v
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| corrupt("short"))?;
    let hlen = u32::from_be_bytes(len_bytes) as usize;
    let header = v.get(4..4 + hlen).ok_or_else(|| corrupt("short header"))?;
    let h: ManifestHeader = serde_json::from_slice(header).map_err(|e| corrupt(&e.to_string()))?;
    Ok((h, 4 + hlen))
}

/// Only what an encoded manifest references: its blobs and its child manifests (the
/// reachability walk of a delete reads many manifests and needs no bytes).
pub fn decode_refs(digest: &Digest, v: &[u8]) -> Result<(Vec<Digest>, Vec<Digest>), MetaError> {
    let (h, _) = decode_header(digest, v)?;
    Ok((h.blobs, h.children))
}

pub fn decode_manifest(digest: Digest, v: &[u8]) -> Result<ManifestRecord, MetaError> {
    let (h, start) = decode_header(&digest, v)?;
    Ok(ManifestRecord {
        digest,
        media_type: h.media_type,
        bytes: Bytes::copy_from_slice(&v[start..]),
        blobs: h.blobs,
        children: h.children,
        subject: h.subject,
        artifact_type: h.artifact_type,
        annotations: h.annotations,
    })
}
