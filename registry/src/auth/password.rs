//! Password hashing (argon2id) and the short-lived memory of checked logins.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use sha2::Digest as _;

use super::Subject;
use crate::limits::{LOGIN_CACHE_MAX, LOGIN_CACHE_TTL};

/// Hash a password into a PHC string (argon2id, default parameters, random salt).
/// CPU- and memory-hard on purpose: call it off the async runtime.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a PHC string. Also off the runtime.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of nothing anyone knows, verified for unknown users so that a wrong user name
/// takes as long as a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password for unknown users").expect("argon2 hashes"))
}

/// Logins checked recently: SHA-256(name, secret) → who it was.
#[derive(Default)]
pub struct LoginCache {
    map: Mutex<HashMap<[u8; 32], (Subject, Instant)>>,
}

fn cache_key(name: &str, secret: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(secret.as_bytes());
    h.finalize().into()
}

impl LoginCache {
    /// The subject these credentials belonged to within [`LOGIN_CACHE_TTL`].
    pub fn get(&self, name: &str, secret: &str) -> Option<Subject> {
        let map = self.map.lock().expect("login cache lock");
        map.get(&cache_key(name, secret))
            .filter(|(_, at)| at.elapsed() < LOGIN_CACHE_TTL)
            .map(|(s, _)| s.clone())
    }

    /// Remember a successful login.
    pub fn put(&self, name: &str, secret: &str, subject: Subject) {
        let mut map = self.map.lock().expect("login cache lock");
        if map.len() >= LOGIN_CACHE_MAX {
            map.retain(|_, (_, at)| at.elapsed() < LOGIN_CACHE_TTL);
            if map.len() >= LOGIN_CACHE_MAX {
                map.clear();
            }
        }
        map.insert(cache_key(name, secret), (subject, Instant::now()));
    }

    /// Forget everything: after any change to users or robots, so a changed password,
    /// a deleted user or a disabled robot stops working at once.
    pub fn clear(&self) {
        self.map.lock().expect("login cache lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse", &a));
        assert!(!verify("wrong horse", &a));
        assert!(!verify("x", "not a phc string"));
    }
}
