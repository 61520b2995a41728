//! Docker registry tokens: scopes, claims, and the signing key.
//!
//! Tokens are JWTs signed with HMAC-SHA256 by a 256-bit key created at first start in the
//! data directory. Only pier itself verifies them, so a symmetric key is enough, and it
//! keeps verification on the hot path at about a microsecond.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pier_oci::RepoName;
use serde::{Deserialize, Serialize};

use crate::limits::TOKEN_LEEWAY_SECS;

/// File holding the signing key (hex), mode 0600.
pub const KEY_FILE: &str = "token-signing-key";
/// The `service` of challenges and the issuer and audience of tokens.
pub const SERVICE: &str = "pier";

/// One grant of a token: a resource and the actions allowed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete` or `*`.
    pub actions: Vec<String>,
}

/// A requested scope, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `repository:<name>:<actions>`.
    Repository(RepoName, Vec<String>),
    /// `registry:catalog:*`.
    Catalog,
}

/// Parse one scope string. The resource name may itself not contain `:` (repository names
/// cannot), so the first and last colons split it.
pub fn parse_scope(s: &str) -> Result<Scope, String> {
    let bad = |why: &str| format!("malformed scope {s:?}: {why}");
    let (kind, rest) = s.split_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
    // `repository(plugin)` is docker's class syntax; the class does not change access.
    let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
    let actions: Vec<String> = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if actions.is_empty() {
        return Err(bad("no actions"));
    }
    match kind {
        "repository" => {
            let name: RepoName = name.parse().map_err(|_| bad("invalid repository name"))?;
            Ok(Scope::Repository(name, actions))
        }
        "registry" if name == "catalog" => Ok(Scope::Catalog),
        _ => Err(bad("unknown resource type")),
    }
}

/// Claims of a pier token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: [`SERVICE`].
    pub iss: String,
    /// The account: a user or robot name, or empty for anonymous.
    pub sub: String,
    /// Audience: [`SERVICE`].
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Not before.
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
    /// Unique id.
    pub jti: String,
    /// The account's credential version when the token was issued (absent for anonymous
    /// tokens); a token whose version is no longer current is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<String>,
    /// What it grants.
    pub access: Vec<Access>,
}

impl Claims {
    /// The actions granted on a resource.
    pub fn actions(&self, kind: &str, name: &str) -> impl Iterator<Item = &str> {
        self.access
            .iter()
            .filter(move |a| a.kind == kind && a.name == name)
            .flat_map(|a| a.actions.iter().map(String::as_str))
    }
}

/// Why a token is refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(String);

/// The signing key.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    path: PathBuf,
}

impl TokenKeys {
    /// Load the key from `DATA/token-signing-key`, creating it (0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<TokenKeys> {
        let path = data_dir.join(KEY_FILE);
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a hex key ({e}); delete it to create a new one", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = random_bytes::<32>()?.to_vec();
                write_private(&path, hex::encode(&secret).as_bytes())?;
                tracing::info!(path = %path.display(), "created the token signing key");
                secret
            }
            Err(e) => return Err(e),
        };
        if secret.len() < 32 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: key shorter than 256 bits", path.display()),
            ));
        }
        Ok(TokenKeys::from_secret(&secret, path))
    }

    fn from_secret(secret: &[u8], path: PathBuf) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[SERVICE]);
        validation.set_issuer(&[SERVICE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = TOKEN_LEEWAY_SECS;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            path,
        }
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sign claims.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Verify a token's signature, algorithm (HS256 only: `alg: none` and any other are
    /// refused), issuer, audience and times.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| TokenError(e.to_string()))
    }
}

/// `N` bytes from the OS's random source.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b)
}

/// Write a secret file readable by its owner only, replacing any old one.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: SERVICE.into(),
            sub: "alice".into(),
            aud: SERVICE.into(),
            exp,
            nbf: 0,
            iat: 0,
            jti: "x".into(),
            cv: None,
            access: vec![],
        }
    }

    fn now() -> u64 {
        crate::auth::now()
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(
            parse_scope("repository:a/b:pull,push").unwrap(),
            Scope::Repository("a/b".parse().unwrap(), vec!["pull".into(), "push".into()])
        );
        assert_eq!(
            parse_scope("repository(plugin):a/b:pull").unwrap(),
            Scope::Repository("a/b".parse().unwrap(), vec!["pull".into()])
        );
        assert_eq!(parse_scope("registry:catalog:*").unwrap(), Scope::Catalog);
        for bad in [
            "",
            "nonsense",
            "repository:onlytwo",
            "repository::pull",
            "repository:Bad/Name:pull",
            "repository:a:",
            "registry:other:*",
            "thing:a:pull",
        ] {
            assert!(parse_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_and_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let keys = TokenKeys::load_or_create(dir.path()).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(keys.path()).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let good = keys.sign(&claims(now() + 60));
        assert_eq!(keys.verify(&good).unwrap().sub, "alice");
        // The same key after a restart.
        assert!(TokenKeys::load_or_create(dir.path()).unwrap().verify(&good).is_ok());
        // Another key.
        let other = tempfile::tempdir().unwrap();
        assert!(TokenKeys::load_or_create(other.path()).unwrap().verify(&good).is_err());
        // Expired.
        assert!(keys.verify(&keys.sign(&claims(now() - 60))).is_err());
        // alg: none, with the same claims.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&claims(now() + 60)).unwrap())
        );
        assert!(keys.verify(&none).is_err());
        // Tampered payload.
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut c = claims(now() + 60);
        c.sub = "admin".into();
        let forged = b64.encode(serde_json::to_vec(&c).unwrap());
        parts[1] = &forged;
        assert!(keys.verify(&parts.join(".")).is_err());
    }
}
