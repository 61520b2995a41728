//! Reading a pushed manifest: which media type it is, what it references.
//!
//! Deliberately lenient about fields it does not need (clients add their own), strict about
//! the ones the registry relies on: the media type, the schema version and every
//! descriptor's digest.

use std::collections::BTreeMap;

use pier_oci::{Digest, media};
use serde::Deserialize;

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The `Content-Type` is not a manifest type the registry stores.
    #[error("unsupported manifest media type {0:?}; supported: {types}", types = media::MANIFEST_TYPES.join(", "))]
    UnsupportedMediaType(String),
    /// Not a valid manifest of its type.
    #[error("{0}")]
    Invalid(String),
}

/// What the registry keeps from a manifest besides its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestInfo {
    /// Media type.
    pub media_type: String,
    /// Config and layer blobs that must exist in the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests that must exist in the repository.
    pub children: Vec<Digest>,
    /// The subject, for referrers.
    pub subject: Option<Digest>,
    /// Artifact type as the referrers API reports it.
    pub artifact_type: Option<String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: Digest,
    size: i64,
}

/// Layers that clients fetch from elsewhere (`urls`), so the registry need not hold them.
fn non_distributable(media_type: &str) -> bool {
    media_type.contains(".foreign.") || media_type.contains(".nondistributable.")
}

/// Parse and check a manifest pushed with `content_type`.
pub fn parse(content_type: &str, bytes: &[u8]) -> Result<ManifestInfo, ManifestError> {
    let ct = media::essence(content_type);
    if !media::MANIFEST_TYPES.contains(&ct.as_str()) {
        return Err(ManifestError::UnsupportedMediaType(ct));
    }
    let invalid = |m: String| ManifestError::Invalid(m);
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a valid manifest: {e}")))?;
    if raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2".into()));
    }
    if let Some(mt) = &raw.media_type
        && *mt != ct
    {
        return Err(invalid(format!("mediaType {mt:?} does not match Content-Type {ct:?}")));
    }
    let descriptors = |list: &[Descriptor], what: &str| -> Result<(), ManifestError> {
        match list.iter().find(|d| d.size < 0 || d.media_type.is_empty()) {
            Some(d) => Err(invalid(format!(
                "{what} {} has a negative size or no mediaType",
                d.digest
            ))),
            None => Ok(()),
        }
    };
    let mut info = ManifestInfo {
        media_type: ct.clone(),
        blobs: Vec::new(),
        children: Vec::new(),
        subject: raw.subject.as_ref().map(|s| s.digest.clone()),
        artifact_type: raw.artifact_type.clone(),
        annotations: raw.annotations.unwrap_or_default(),
    };
    if let Some(s) = &raw.subject {
        descriptors(std::slice::from_ref(s), "subject")?;
    }
    if media::is_index(&ct) {
        let manifests = raw
            .manifests
            .ok_or_else(|| invalid("an index needs a manifests list".into()))?;
        descriptors(&manifests, "manifest")?;
        info.children = distinct(manifests.into_iter().map(|d| d.digest));
    } else {
        let config = raw
            .config
            .ok_or_else(|| invalid("an image manifest needs a config".into()))?;
        let layers = raw
            .layers
            .ok_or_else(|| invalid("an image manifest needs a layers list".into()))?;
        descriptors(std::slice::from_ref(&config), "config")?;
        descriptors(&layers, "layer")?;
        if info.artifact_type.is_none() && ct == media::OCI_MANIFEST {
            // Image spec: without artifactType, the config's media type names the artifact.
            info.artifact_type = Some(config.media_type.clone());
        }
        let layers = layers
            .into_iter()
            .filter(|l| !non_distributable(&l.media_type))
            .map(|l| l.digest);
        info.blobs = distinct(std::iter::once(config.digest).chain(layers));
    }
    Ok(info)
}

/// Each digest once, in first-seen order: what a manifest references is a set, and one
/// listing the same layer 37 000 times must cost one existence check, not 37 000.
fn distinct(digests: impl Iterator<Item = Digest>) -> Vec<Digest> {
    let mut seen = std::collections::HashSet::new();
    digests.filter(|d| seen.insert(d.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/x","digest":"{}","size":2}},
            "layers":[{{"mediaType":"{}","digest":"{}","size":3}}],"subject":{{"mediaType":"{}","digest":"{}","size":1}}}}"#,
            media::OCI_MANIFEST,
            d('a'),
            media::OCI_LAYER_GZIP,
            d('b'),
            media::OCI_MANIFEST,
            d('c')
        );
        let i = parse(media::OCI_MANIFEST, body.as_bytes()).unwrap();
        assert_eq!(i.blobs.len(), 2);
        assert_eq!(i.subject.unwrap().to_string(), d('c'));
        assert_eq!(i.artifact_type.as_deref(), Some("application/x"));
    }

    #[test]
    fn finding_13_each_distinct_digest_is_listed_once() {
        let layer = format!(
            r#"{{"mediaType":"{}","digest":"{}","size":3}}"#,
            media::OCI_LAYER_GZIP,
            d('b')
        );
        let other = format!(
            r#"{{"mediaType":"{}","digest":"{}","size":3}}"#,
            media::OCI_LAYER_GZIP,
            d('c')
        );
        let mut layers = vec![layer; 37_000];
        layers.insert(1, other);
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/x","digest":"{}","size":2}},"layers":[{}]}}"#,
            media::OCI_MANIFEST,
            d('a'),
            layers.join(",")
        );
        let i = parse(media::OCI_MANIFEST, body.as_bytes()).unwrap();
        let listed: Vec<String> = i.blobs.iter().map(ToString::to_string).collect();
        assert_eq!(listed, [d('a'), d('b'), d('c')]);
        let child = format!(
            r#"{{"mediaType":"{}","digest":"{}","size":3}}"#,
            media::OCI_MANIFEST,
            d('e')
        );
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, vec![child; 1000].join(","));
        assert_eq!(parse(media::OCI_INDEX, index.as_bytes()).unwrap().children.len(), 1);
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            parse("text/plain", b"{}"),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            parse(media::OCI_MANIFEST, b"nope"),
            Err(ManifestError::Invalid(_))
        ));
        assert!(matches!(
            parse(media::OCI_MANIFEST, b"{\"schemaVersion\":1}"),
            Err(ManifestError::Invalid(_))
        ));
        let mismatch = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media::OCI_INDEX
        );
        assert!(matches!(
            parse(media::OCI_MANIFEST, mismatch.as_bytes()),
            Err(ManifestError::Invalid(_))
        ));
        assert!(parse(media::OCI_INDEX, mismatch.as_bytes()).is_ok());
        let bad_digest = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}"#;
        assert!(matches!(
            parse(media::OCI_INDEX, bad_digest.as_bytes()),
            Err(ManifestError::Invalid(_))
        ));
    }
}
