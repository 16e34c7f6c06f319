//! Slows password guessing: failures per key (an account name, a peer address) back off.
//!
//! The first few failures are free (typos happen); after them each failure doubles the
//! wait before the next attempt is even checked, up to a cap; past a number of failures in a
//! row the key is locked for a whole window. A success clears the key. Time is passed in by
//! the caller (`now`), so tests move a clock instead of sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How one kind of key backs off.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures in a row that cost nothing.
    pub free: u32,
    /// Wait after the first failure past the free ones; doubled by each further failure.
    pub base: Duration,
    /// Longest wait between attempts before the lockout.
    pub max: Duration,
    /// Failures in a row that lock the key.
    pub lock_after: u32,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

impl Policy {
    /// Per account: three free tries, then 1 s, 2 s, 4 s... up to 60 s; locked for 15
    /// minutes after 10 failures in a row.
    pub const ACCOUNT: Policy = Policy {
        free: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        lock_after: 10,
        lockout: Duration::from_secs(15 * 60),
    };
    /// Per peer address (looser: many people may share one address behind NAT).
    pub const ADDRESS: Policy = Policy {
        free: 10,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        lock_after: 50,
        lockout: Duration::from_secs(15 * 60),
    };

    /// The wait after `failures` failures in a row.
    fn wait(&self, failures: u32) -> Duration {
        if failures >= self.lock_after {
            self.lockout
        } else if failures < self.free {
            Duration::ZERO
        } else {
            let doublings = (failures - self.free).min(16);
            (self.base * (1u32 << doublings)).min(self.max)
        }
    }
}

/// One key's record.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures in a row.
    failures: u32,
    /// No attempt is checked before this.
    until: Instant,
}

/// Failure records for one kind of key.
#[derive(Debug)]
pub struct Throttle<K> {
    /// The back-off rules.
    policy: Policy,
    /// Records of keys that failed recently.
    records: Mutex<HashMap<K, Record>>,
}

/// Most keys remembered; past it, records whose wait is over are forgotten.
const MAX_KEYS: usize = 100_000;

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// No failures yet.
    pub fn new(policy: Policy) -> Throttle<K> {
        Throttle {
            policy,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `key` must not be tried yet.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let records = crate::sync::lock(&self.records);
        match records.get(key) {
            Some(r) if r.until > now => Err(r.until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure at `now`.
    pub fn fail(&self, key: &K, now: Instant) {
        let mut records = crate::sync::lock(&self.records);
        if records.len() >= MAX_KEYS {
            records.retain(|_, r| r.until > now);
        }
        let record = records.entry(key.clone()).or_insert(Record {
            failures: 0,
            until: now,
        });
        record.failures = record.failures.saturating_add(1);
        record.until = now + self.policy.wait(record.failures);
    }

    /// Clears `key` after a success.
    pub fn succeed(&self, key: &K) {
        let mut records = crate::sync::lock(&self.records);
        records.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_tries_then_doubling_then_lockout() {
        let throttle = Throttle::new(Policy::ACCOUNT);
        let mut now = Instant::now();
        let key = "alice".to_string();
        for _ in 0..2 {
            throttle.fail(&key, now);
            assert_eq!(throttle.check(&key, now), Ok(()), "typos are free");
        }
        throttle.fail(&key, now); // third: 1 s
        assert_eq!(throttle.check(&key, now), Err(Duration::from_secs(1)));
        now += Duration::from_secs(1);
        assert_eq!(throttle.check(&key, now), Ok(()));
        throttle.fail(&key, now); // fourth: 2 s
        assert_eq!(throttle.check(&key, now), Err(Duration::from_secs(2)));
        now += Duration::from_millis(1500);
        assert!(throttle.check(&key, now).is_err(), "still waiting");
        now += Duration::from_millis(500);
        for expect in [4, 8, 16, 32, 60] {
            throttle.fail(&key, now);
            assert_eq!(throttle.check(&key, now), Err(Duration::from_secs(expect)));
            now += Duration::from_secs(expect);
        }
        throttle.fail(&key, now); // tenth: locked
        assert_eq!(throttle.check(&key, now), Err(Duration::from_secs(900)));
        now += Duration::from_secs(899);
        assert!(throttle.check(&key, now).is_err());
        now += Duration::from_secs(1);
        assert_eq!(throttle.check(&key, now), Ok(()));
        assert!(
            throttle.check(&"bob".to_string(), now).is_ok(),
            "other keys untouched"
        );
    }

    #[test]
    fn success_clears() {
        let throttle = Throttle::new(Policy::ACCOUNT);
        let now = Instant::now();
        for _ in 0..5 {
            throttle.fail(&1u8, now);
        }
        assert!(throttle.check(&1u8, now).is_err());
        throttle.succeed(&1u8);
        assert_eq!(throttle.check(&1u8, now), Ok(()));
    }
}
