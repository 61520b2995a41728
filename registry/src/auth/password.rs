//! Password hashing (argon2id) and the short-lived memory of checked logins.
//!
//! Every hash runs in one of [`MAX_CONCURRENT_HASHES`] slots, so at most that many argon2
//! working buffers (~19 MiB each) exist at once. Each buffer is allocated larger than the
//! biggest size glibc ever serves from its heaps ([`HASH_MEMORY_FLOOR`]): such an
//! allocation is always its own `mmap`, and freeing it gives the memory back to the system
//! at once. argon2's default allocation (exactly 19 MiB) is served from per-thread heaps
//! after the first one is freed (glibc raises its mmap threshold to that size), and the
//! heaps kept every freed buffer: gigabytes after a burst of failed logins. Between checks
//! a buffer is kept for reuse (mapping and faulting in 19 MiB costs a third of a check),
//! and freed once no check has needed it for [`HASH_MEMORY_IDLE`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sha2::Digest as _;
use tokio::sync::Semaphore;

use super::Subject;
use crate::limits::{
    HASH_MEMORY_FLOOR, HASH_MEMORY_IDLE, LOGIN_CACHE_MAX, LOGIN_CACHE_TTL, MAX_CONCURRENT_HASHES,
    MAX_HASH_MEMORY_BLOCKS,
};

/// A PHC string of argon2id with the default parameters over a random password that was
/// thrown away: verified for unknown users, so that a wrong user name takes as long as a
/// wrong password. Fixed in the source so that no hash is computed at start.
pub const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$7S1z4m0q2oPiJ1yo3Vh0FA$bFj6cHFrqbVlW+e0c+aQpL0E0DNDpb8NvM0V0cWcJ0Y";

/// Salt bytes of new hashes.
const SALT_LEN: usize = 16;

/// All hashes wait for a slot too long: the caller should retry later.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

/// The argon2 slots.
pub struct Hashing {
    slots: Semaphore,
    /// Working buffers in use now, and the most ever in use at once.
    buffers: Mutex<(usize, usize)>,
    /// Buffers between checks, with when they were last used, and whether a task to free
    /// them is scheduled. At most one buffer per slot exists, in use or kept here.
    kept: Arc<Mutex<Kept>>,
    keep_for: Duration,
}

#[derive(Default)]
struct Kept {
    buffers: Vec<(Vec<Block>, Instant)>,
    freeing: bool,
}

impl Default for Hashing {
    fn default() -> Self {
        Hashing::keeping_buffers_for(HASH_MEMORY_IDLE)
    }
}

/// A zeroed argon2 working buffer of `blocks` blocks, allocated so that freeing it returns
/// the memory to the system (see the module comment). Only the blocks argon2 uses are
/// touched, so the rest of the capacity costs address space, not memory.
fn working_memory(blocks: usize) -> Vec<Block> {
    let floor = HASH_MEMORY_FLOOR / std::mem::size_of::<Block>() + 1;
    let mut buf = Vec::with_capacity(blocks.max(floor));
    buf.resize(blocks, Block::default());
    buf
}

impl Hashing {
    /// Slots whose buffers are freed after `keep_for` without use.
    fn keeping_buffers_for(keep_for: Duration) -> Hashing {
        Hashing {
            slots: Semaphore::new(MAX_CONCURRENT_HASHES),
            buffers: Mutex::new((0, 0)),
            kept: Arc::default(),
            keep_for,
        }
    }

    /// Keep `buf` for the next check, and make sure it is freed if none comes.
    fn keep(&self, buf: Vec<Block>) {
        let mut kept = self.kept.lock().expect("kept buffers lock");
        kept.buffers.push((buf, Instant::now()));
        if kept.freeing {
            return;
        }
        kept.freeing = true;
        let (shared, keep_for) = (self.kept.clone(), self.keep_for);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(keep_for).await;
                let mut kept = shared.lock().expect("kept buffers lock");
                kept.buffers.retain(|(_, used)| used.elapsed() < keep_for);
                if kept.buffers.is_empty() {
                    kept.freeing = false;
                    return;
                }
            }
        });
    }

    /// Run `f` in a slot with a buffer of `blocks` blocks; `None` when no slot frees up
    /// within `wait` (no limit when `wait` is `None`). With `keep`, the buffer is kept for
    /// the next check (logins come in bursts; new passwords are set one at a time).
    async fn run<T: Send + 'static>(
        &self,
        blocks: usize,
        wait: Option<Duration>,
        keep: bool,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = match wait {
            Some(d) => tokio::time::timeout(d, self.slots.acquire()).await.map_err(|_| Busy)?,
            None => self.slots.acquire().await,
        }
        .map_err(|_| Busy)?;
        {
            let mut b = self.buffers.lock().expect("hash buffers lock");
            b.0 += 1;
            b.1 = b.1.max(b.0);
        }
        let reused = {
            let mut kept = self.kept.lock().expect("kept buffers lock");
            kept.buffers.pop().map(|(b, _)| b).filter(|b| b.len() == blocks)
        };
        let done = tokio::task::spawn_blocking(move || {
            let mut buf = reused.unwrap_or_else(|| working_memory(blocks));
            let out = f(&mut buf);
            (buf, out)
        })
        .await;
        self.buffers.lock().expect("hash buffers lock").0 -= 1;
        let out = done.map(|(buf, out)| {
            if keep {
                self.keep(buf);
            }
            out
        });
        drop(permit);
        out.map_err(|_| Busy)
    }

    /// Hash a password into a PHC string (argon2id, default parameters, random salt).
    pub async fn hash(&self, password: String) -> Result<String, String> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
        let params = Params::default();
        let blocks = params.block_count();
        self.run(blocks, None, false, move |memory| {
            hash_with(&password, &salt, params, memory)
        })
        .await
        .map_err(|_| "password hashing is unavailable".to_owned())?
    }

    /// Whether `password` matches a PHC string; `Err(Busy)` when no slot frees up within
    /// `wait`. Hashes needing more memory than [`MAX_HASH_MEMORY_BLOCKS`] never match.
    pub async fn verify(&self, password: String, phc: String, wait: Duration) -> Result<bool, Busy> {
        let Some(blocks) = PasswordHash::new(&phc)
            .ok()
            .and_then(|h| Params::try_from(&h).ok())
            .map(|p| p.block_count())
        else {
            return Ok(false);
        };
        if blocks > MAX_HASH_MEMORY_BLOCKS {
            tracing::warn!(blocks, "a stored password hash needs more argon2 memory than allowed");
            return Ok(false);
        }
        self.run(blocks, Some(wait), true, move |memory| {
            verify_with(&password, &phc, memory)
        })
        .await
    }
}

/// A PHC string for `password` with the given salt and parameters.
fn hash_with(password: &str, salt: &[u8], params: Params, memory: &mut [Block]) -> Result<String, String> {
    let out_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = vec![0u8; out_len];
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Recompute a PHC string's hash for `password` and compare in constant time.
fn verify_with(password: &str, phc: &str, memory: &mut [Block]) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&h.salt, &h.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(h.algorithm.as_str()) else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&h) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), &mut out, memory)
        .is_ok()
        && super::constant_time_eq(&out, expected.as_bytes())
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

    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let h = Hashing::default();
        let a = h.hash("correct horse".into()).await.unwrap();
        let b = h.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert_eq!(h.verify("correct horse".into(), a.clone(), WAIT).await, Ok(true));
        assert_eq!(h.verify("wrong horse".into(), a, WAIT).await, Ok(false));
        assert_eq!(h.verify("x".into(), "not a phc string".into(), WAIT).await, Ok(false));
    }

    #[tokio::test]
    async fn hashes_of_the_argon2_crate_verify_and_the_decoy_parses() {
        use argon2::password_hash::PasswordHasher as _;
        let theirs = Argon2::default().hash_password(b"s3cret-pass").unwrap().to_string();
        let h = Hashing::default();
        assert_eq!(h.verify("s3cret-pass".into(), theirs.clone(), WAIT).await, Ok(true));
        assert_eq!(h.verify("other".into(), theirs, WAIT).await, Ok(false));
        assert_eq!(h.verify("".into(), DECOY.into(), WAIT).await, Ok(false));
        let p = Params::try_from(&PasswordHash::new(DECOY).unwrap()).unwrap();
        assert_eq!(p.block_count(), Params::default().block_count());
    }

    /// Finding 5: never more argon2 buffers at once than slots, however many checks run,
    /// and each one big enough to be its own mapping (freed back to the system).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finding_5_argon2_memory_is_bounded_and_given_back() {
        let h = std::sync::Arc::new(Hashing::default());
        let phc = h.hash("correct horse".into()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..(MAX_CONCURRENT_HASHES * 4) {
            let (h, phc) = (h.clone(), phc.clone());
            tasks.push(tokio::spawn(
                async move { h.verify(format!("guess {i}"), phc, WAIT).await },
            ));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(false));
        }
        let (alive, peak) = *h.buffers.lock().unwrap();
        assert_eq!(alive, 0);
        assert!((1..=MAX_CONCURRENT_HASHES).contains(&peak), "{peak} buffers at once");
        let kept = h.kept.lock().unwrap().buffers.len();
        assert!((1..=MAX_CONCURRENT_HASHES).contains(&kept), "{kept} buffers kept");
        let buf = working_memory(Params::default().block_count());
        assert_eq!(buf.len(), Params::default().block_count());
        assert!(buf.capacity() * std::mem::size_of::<Block>() > HASH_MEMORY_FLOOR);
    }

    #[tokio::test]
    async fn kept_buffers_are_freed_when_no_check_needs_them() {
        let h = Hashing::keeping_buffers_for(Duration::from_millis(100));
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert_eq!(h.verify("x".into(), phc, WAIT).await, Ok(false));
        assert_eq!(h.kept.lock().unwrap().buffers.len(), 1);
        for _ in 0..50 {
            if h.kept.lock().unwrap().buffers.is_empty() {
                assert!(!h.kept.lock().unwrap().freeing);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the kept buffer was not freed");
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        let h = Hashing::default();
        let phc = h.hash("correct horse".into()).await.unwrap();
        let _held: Vec<_> = (0..MAX_CONCURRENT_HASHES)
            .map(|_| h.slots.try_acquire().unwrap())
            .collect();
        assert_eq!(
            h.verify("correct horse".into(), phc, Duration::from_millis(50)).await,
            Err(Busy)
        );
    }
}
