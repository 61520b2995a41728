//! Brute-force defences for password checks:
//!
//! - [`Throttle`]: repeated failed logins for one user from one address lock that pair out
//!   for a while, doubling each time. Keys are hashes, so a caller cannot make an entry
//!   bigger by sending a longer name, and a flood of fresh pairs can never evict a lock.
//! - [`AddressLimiter`]: a token bucket per client address (IPv6 per /64) in front of every
//!   argon2 check, so one address cannot spend more than a slice of the CPU on guesses
//!   whatever user names it tries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::limits::{
    ADDRESS_LIMITER_MAX_ENTRIES, ESCALATION_MEMORY, FAILED_LOGIN_WINDOW, LOCKOUT_BASE, LOCKOUT_MAX, MAX_FAILED_LOGINS,
    PASSWORD_CHECK_BURST, PASSWORD_CHECKS_PER_SEC, THROTTLE_MAX_ENTRIES,
};

#[derive(Debug)]
struct Entry {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
    lockouts: u32,
}

impl Entry {
    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|u| u > now)
    }

    /// Whether forgetting this entry would lose nothing: not locked, no failures in the
    /// window, no escalation to remember.
    fn spent(&self, now: Instant) -> bool {
        !self.locked(now)
            && now.duration_since(self.first_failure) >= FAILED_LOGIN_WINDOW
            && self
                .locked_until
                .is_none_or(|u| now.saturating_duration_since(u) >= ESCALATION_MEMORY)
    }
}

type Key = [u8; 32];

fn key(user: &str, addr: &str) -> Key {
    let mut h = sha2::Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(addr.as_bytes());
    h.finalize().into()
}

/// Failed-login counters per (user, address).
#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<Key, Entry>>,
}

/// Result of recording a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Counted; not locked yet.
    Counted,
    /// This failure locked the pair out for this long.
    LockedOut(Duration),
    /// The table is full of active lockouts; this pair is not tracked (the per-address
    /// limiter still bounds its guesses).
    Untracked,
}

/// Make room for one more entry: first what is spent, then pairs that are merely
/// counting failures (oldest first). Active locks and remembered escalations stay.
fn make_room(map: &mut HashMap<Key, Entry>, now: Instant) {
    map.retain(|_, e| !e.spent(now));
    if map.len() < THROTTLE_MAX_ENTRIES {
        return;
    }
    let mut counting: Vec<(Instant, Key)> = map
        .iter()
        .filter(|(_, e)| e.locked_until.is_none())
        .map(|(k, e)| (e.first_failure, *k))
        .collect();
    counting.sort_unstable();
    let excess = map.len() + 1 - THROTTLE_MAX_ENTRIES;
    // Free a tenth of the table at once so a flood does not sort on every failure.
    let cut = excess.max(THROTTLE_MAX_ENTRIES / 10).min(counting.len());
    for (_, k) in &counting[..cut] {
        map.remove(k);
    }
    if map.len() < THROTTLE_MAX_ENTRIES {
        return;
    }
    // Then escalations whose lock has ended, oldest lock first.
    let mut ended: Vec<(Instant, Key)> = map
        .iter()
        .filter_map(|(k, e)| e.locked_until.filter(|u| *u <= now).map(|u| (u, *k)))
        .collect();
    ended.sort_unstable();
    let cut = (map.len() + 1 - THROTTLE_MAX_ENTRIES).min(ended.len());
    for (_, k) in &ended[..cut] {
        map.remove(k);
    }
}

impl Throttle {
    /// `Err(retry_after)` while the pair is locked out.
    pub fn check(&self, user: &str, addr: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let map = self.entries.lock().expect("throttle lock");
        match map.get(&key(user, addr)).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Count a failed login.
    pub fn failed(&self, user: &str, addr: &str) -> Failure {
        let now = Instant::now();
        let k = key(user, addr);
        let mut map = self.entries.lock().expect("throttle lock");
        if !map.contains_key(&k) && map.len() >= THROTTLE_MAX_ENTRIES {
            make_room(&mut map, now);
            if map.len() >= THROTTLE_MAX_ENTRIES {
                return Failure::Untracked;
            }
        }
        let e = map.entry(k).or_insert(Entry {
            failures: 0,
            first_failure: now,
            locked_until: None,
            lockouts: 0,
        });
        if let Some(u) = e.locked_until
            && u <= now
            && now.duration_since(u) >= ESCALATION_MEMORY
        {
            // A long quiet spell after the last lock: start again from the base.
            e.lockouts = 0;
            e.locked_until = None;
        }
        if now.duration_since(e.first_failure) > FAILED_LOGIN_WINDOW {
            e.failures = 0;
            e.first_failure = now;
        }
        e.failures += 1;
        if e.failures < MAX_FAILED_LOGINS {
            return Failure::Counted;
        }
        let lock = LOCKOUT_BASE.saturating_mul(1 << e.lockouts.min(16)).min(LOCKOUT_MAX);
        e.lockouts += 1;
        e.failures = 0;
        e.first_failure = now;
        e.locked_until = Some(now + lock);
        Failure::LockedOut(lock)
    }

    /// A successful login clears the pair.
    pub fn succeeded(&self, user: &str, addr: &str) {
        self.entries.lock().expect("throttle lock").remove(&key(user, addr));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// The part of an address that identifies one client: the whole IPv4 address, the /64 of
/// an IPv6 address (one host usually owns a whole /64 and can pick any address in it).
fn address_key(addr: &str) -> u128 {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => u128::from(u32::from(v4)),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => u128::from(v6) & !((1u128 << 64) - 1),
        },
        // Not an address (in-process callers): one shared bucket.
        Err(_) => u128::MAX,
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of password checks per client address.
#[derive(Default)]
pub struct AddressLimiter {
    buckets: Mutex<HashMap<u128, Bucket>>,
}

impl AddressLimiter {
    /// Take one password check for `addr`: `Err(retry_after)` when its bucket is empty.
    pub fn take(&self, addr: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(PASSWORD_CHECK_BURST);
        let rate = f64::from(PASSWORD_CHECKS_PER_SEC);
        let refill = |b: &Bucket| (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        let mut map = self.buckets.lock().expect("limiter lock");
        if map.len() >= ADDRESS_LIMITER_MAX_ENTRIES {
            // A full bucket is the same as no bucket.
            map.retain(|_, b| refill(b) < burst);
            if map.len() >= ADDRESS_LIMITER_MAX_ENTRIES {
                // Many addresses guessing at once: the global queue bounds them anyway.
                map.clear();
            }
        }
        let b = map
            .entry(address_key(addr))
            .or_insert(Bucket { tokens: burst, at: now });
        b.tokens = refill(b);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Give back the check `take` took (it was a right password).
    pub fn refund(&self, addr: &str) {
        let burst = f64::from(PASSWORD_CHECK_BURST);
        if let Some(b) = self.buckets.lock().expect("limiter lock").get_mut(&address_key(addr)) {
            b.tokens = (b.tokens + 1.0).min(burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_per_pair_and_doubles() {
        let t = Throttle::default();
        for _ in 1..MAX_FAILED_LOGINS {
            assert_eq!(t.failed("u", "1.2.3.4"), Failure::Counted);
            assert!(t.check("u", "1.2.3.4").is_ok());
        }
        assert_eq!(t.failed("u", "1.2.3.4"), Failure::LockedOut(LOCKOUT_BASE));
        let wait = t.check("u", "1.2.3.4").unwrap_err();
        assert!(wait <= LOCKOUT_BASE && wait > LOCKOUT_BASE - Duration::from_secs(2));
        // Other pairs are not affected.
        assert!(t.check("u", "5.6.7.8").is_ok());
        assert!(t.check("v", "1.2.3.4").is_ok());
        // The next lockout is twice as long.
        for _ in 1..MAX_FAILED_LOGINS {
            t.failed("u", "1.2.3.4");
        }
        assert_eq!(t.failed("u", "1.2.3.4"), Failure::LockedOut(LOCKOUT_BASE * 2));
        t.succeeded("u", "1.2.3.4");
        assert!(t.check("u", "1.2.3.4").is_ok());
    }

    #[test]
    fn table_stays_bounded() {
        let t = Throttle::default();
        for i in 0..THROTTLE_MAX_ENTRIES + 10 {
            t.failed(&format!("u{i}"), "a");
        }
        assert!(t.len() <= THROTTLE_MAX_ENTRIES);
    }

    /// Finding 1: a flood of fresh failing pairs filling the table must not evict an active
    /// lock, nor reset its escalation.
    #[test]
    fn finding_1_flood_of_fresh_pairs_keeps_active_locks_and_escalation() {
        let t = Throttle::default();
        for _ in 0..MAX_FAILED_LOGINS {
            t.failed("admin", "10.0.0.1");
        }
        assert!(t.check("admin", "10.0.0.1").is_err());
        for i in 0..THROTTLE_MAX_ENTRIES + THROTTLE_MAX_ENTRIES / 2 {
            t.failed(&format!("robot$flood{i}+r"), "10.0.0.1");
        }
        assert!(t.len() <= THROTTLE_MAX_ENTRIES);
        assert!(t.check("admin", "10.0.0.1").is_err(), "the flood lifted the lock");
        // Escalation survives too: the next lock of the pair is twice the first.
        let k = key("admin", "10.0.0.1");
        {
            let mut map = t.entries.lock().unwrap();
            let e = map.get_mut(&k).expect("the locked pair is still tracked");
            assert_eq!(e.lockouts, 1);
            // Pretend the lock just ended.
            e.locked_until = Some(Instant::now() - Duration::from_millis(1));
        }
        for _ in 1..MAX_FAILED_LOGINS {
            t.failed("admin", "10.0.0.1");
        }
        assert_eq!(t.failed("admin", "10.0.0.1"), Failure::LockedOut(LOCKOUT_BASE * 2));
    }

    #[test]
    fn a_table_full_of_locks_tracks_no_new_pairs() {
        let t = Throttle::default();
        let far = Instant::now() + Duration::from_secs(3600);
        {
            let mut map = t.entries.lock().unwrap();
            for i in 0..THROTTLE_MAX_ENTRIES {
                map.insert(
                    key(&format!("u{i}"), "a"),
                    Entry {
                        failures: 0,
                        first_failure: Instant::now(),
                        locked_until: Some(far),
                        lockouts: 1,
                    },
                );
            }
        }
        assert_eq!(t.failed("new", "a"), Failure::Untracked);
        assert!(t.check("u0", "a").is_err());
    }

    #[test]
    fn address_buckets_refill_and_are_per_address() {
        let l = AddressLimiter::default();
        for _ in 0..PASSWORD_CHECK_BURST {
            assert!(l.take("192.0.2.1").is_ok());
        }
        let wait = l.take("192.0.2.1").unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(l.take("192.0.2.2").is_ok());
        // One IPv6 /64 is one client.
        for _ in 0..PASSWORD_CHECK_BURST {
            assert!(l.take("2001:db8::1").is_ok());
        }
        assert!(l.take("2001:db8::ffff").is_err());
        assert!(l.take("2001:db8:0:1::1").is_ok());
    }
}
