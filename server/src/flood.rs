//! Flood control: a token bucket per connection, with the clock passed in so tests can
//! drive it.
//!
//! Every received message takes a token; tokens refill at `rate` per second up to `burst`.
//! A connection that runs dry is slowed: the server stops reading from it until its debt is
//! repaid, so TCP pushes back on the sender. One that stays over the rate for the grace
//! period straight (every message had to wait) is disconnected.

use std::time::{Duration, Instant};

/// What to do with the message that just arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it now.
    Go,
    /// Handle it after this pause.
    Wait(Duration),
    /// Too much for too long: disconnect.
    Disconnect,
}

/// One connection's bucket (counts kept in 32 bits: every connection's task holds one).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens now (negative: debt the connection is waiting out).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
    /// Tokens added per second.
    rate: u32,
    /// Most tokens the bucket holds.
    burst: u32,
    /// Messages in a row that had to wait.
    streak: u32,
    /// Streak length that means sustained flooding.
    limit: u32,
}

impl TokenBucket {
    /// A full bucket that tolerates `grace` of sustained flooding; `None` when `rate` is 0
    /// (flood control off).
    pub fn new(rate: u32, burst: u32, grace: Duration, now: Instant) -> Option<TokenBucket> {
        if rate == 0 {
            return None;
        }
        let burst = burst.max(1);
        let limit = (f64::from(rate) * grace.as_secs_f64()).ceil();
        Some(TokenBucket {
            tokens: f64::from(burst),
            last: now,
            rate,
            burst,
            streak: 0,
            // A float-to-integer `as` saturates: a grace too long to count is no limit.
            limit: limit as u32,
        })
    }

    /// Charges one message arriving at `now`.
    pub fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let rate = f64::from(self.rate);
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.burst)) - 1.0;
        if self.tokens >= 0.0 {
            self.streak = 0;
            return Verdict::Go;
        }
        self.streak = self.streak.saturating_add(1);
        if self.streak > self.limit {
            Verdict::Disconnect
        } else {
            Verdict::Wait(Duration::from_secs_f64(-self.tokens / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn off_when_rate_is_zero() {
        assert!(TokenBucket::new(0, 10, GRACE, Instant::now()).is_none());
    }

    #[test]
    fn burst_then_slowed_then_disconnected() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, GRACE, t0).unwrap();
        for _ in 0..5 {
            assert_eq!(b.take(t0), Verdict::Go);
        }
        // Out of tokens: wait one token's time.
        let Verdict::Wait(w) = b.take(t0) else {
            panic!("expected a wait")
        };
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9);
        // A flooder that always waits exactly its debt is disconnected after the grace.
        let mut now = t0 + w;
        let mut verdict = Verdict::Go;
        for _ in 0..=(10 * GRACE.as_secs()) {
            verdict = b.take(now);
            match verdict {
                Verdict::Wait(w) => now += w,
                _ => break,
            }
        }
        assert_eq!(verdict, Verdict::Disconnect);
    }

    #[test]
    fn a_pause_forgives() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, GRACE, t0).unwrap();
        for _ in 0..5 {
            b.take(t0);
        }
        assert!(matches!(b.take(t0), Verdict::Wait(_)));
        // Half a second later five tokens came back (less the debt).
        let later = t0 + Duration::from_millis(600);
        assert_eq!(b.take(later), Verdict::Go);
        assert_eq!(b.take(later), Verdict::Go);
    }
}
