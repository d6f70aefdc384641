//! A token bucket per agent. Time is tokio's, so paused-clock tests drive it.

use std::time::Duration;

use tokio::time::Instant;

/// An agent's `rate_limit`: a refill rate and the bucket size (default: one second's worth).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(limit: &RateLimit, now: Instant) -> Self {
        let burst = limit
            .burst
            .map(f64::from)
            .unwrap_or(limit.per_second.max(1.0));
        TokenBucket {
            per_second: limit.per_second,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    /// Whether this bucket was made for `limit` (a reload that changes the limit starts afresh).
    pub fn is_for(&self, limit: &RateLimit) -> bool {
        self.per_second == limit.per_second
            && self.burst
                == limit
                    .burst
                    .map(f64::from)
                    .unwrap_or(limit.per_second.max(1.0))
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.try_take_share(now, 1.0)
    }

    /// Takes one token from this replica's `share` (0-1] of the limit: its rate and bucket size
    /// scaled, the tokens it holds kept (clamped to the scaled size), so a share that moves with
    /// the fleet's demand never resets the bucket.
    pub fn try_take_share(&mut self, now: Instant, share: f64) -> Result<(), Duration> {
        let share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let rate = self.per_second * share;
        let burst = (self.burst * share).max(1.0);
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if rate > 0.0 {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        } else {
            Err(Duration::from_secs(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            &RateLimit {
                per_second: 2.0,
                burst: Some(3),
            },
            t0,
        );
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        let wait = b.try_take(t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert!(b.try_take(t0 + Duration::from_millis(500)).is_ok());
        assert!(b.try_take(t0 + Duration::from_millis(500)).is_err());
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(b.try_take(later).is_ok());
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn a_share_scales_rate_and_burst_without_resetting() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 10.0,
            burst: Some(10),
        };
        let mut b = TokenBucket::new(&limit, t0);
        // Half the fleet's demand: five tokens at most, refilled at five a second.
        for _ in 0..5 {
            assert!(b.try_take_share(t0, 0.5).is_ok());
        }
        assert!(b.try_take_share(t0, 0.5).is_err());
        let later = t0 + Duration::from_millis(400);
        assert!(b.try_take_share(later, 0.5).is_ok());
        assert!(b.try_take_share(later, 0.5).is_ok());
        assert!(b.try_take_share(later, 0.5).is_err());
    }
}
