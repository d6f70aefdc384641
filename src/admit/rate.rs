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
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.per_second > 0.0 {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        } else {
            Err(Duration::from_secs(3600))
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
}
