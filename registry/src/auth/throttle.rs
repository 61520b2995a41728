//! Brute-force throttling: repeated failed logins for one user from one address lock that
//! pair out for a while, doubling each time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::limits::{FAILED_LOGIN_WINDOW, LOCKOUT_BASE, LOCKOUT_MAX, MAX_FAILED_LOGINS, THROTTLE_MAX_ENTRIES};

#[derive(Debug)]
struct Entry {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
    lockouts: u32,
}

/// Failed-login counters per (user, address).
#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

/// Result of recording a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Counted; not locked yet.
    Counted,
    /// This failure locked the pair out for this long.
    LockedOut(Duration),
}

impl Throttle {
    /// `Err(retry_after)` while the pair is locked out.
    pub fn check(&self, user: &str, addr: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let map = self.entries.lock().expect("throttle lock");
        match map
            .get(&(user.to_owned(), addr.to_owned()))
            .and_then(|e| e.locked_until)
        {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Count a failed login.
    pub fn failed(&self, user: &str, addr: &str) -> Failure {
        let now = Instant::now();
        let mut map = self.entries.lock().expect("throttle lock");
        if map.len() >= THROTTLE_MAX_ENTRIES {
            // Forget pairs that are neither locked nor recently failing; if an attacker
            // fills the table with fresh pairs, drop the oldest half rather than grow.
            map.retain(|_, e| e.locked_until.is_some_and(|u| u > now) || now - e.first_failure < FAILED_LOGIN_WINDOW);
            if map.len() >= THROTTLE_MAX_ENTRIES {
                let mut ages: Vec<Instant> = map.values().map(|e| e.first_failure).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                map.retain(|_, e| e.first_failure > cut);
            }
        }
        let e = map.entry((user.to_owned(), addr.to_owned())).or_insert(Entry {
            failures: 0,
            first_failure: now,
            locked_until: None,
            lockouts: 0,
        });
        if now - e.first_failure > FAILED_LOGIN_WINDOW {
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
        self.entries
            .lock()
            .expect("throttle lock")
            .remove(&(user.to_owned(), addr.to_owned()));
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
        assert!(t.entries.lock().unwrap().len() <= THROTTLE_MAX_ENTRIES);
    }
}
