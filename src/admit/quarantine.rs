//! An agent's quarantine: free, until a moment, or until released.

use std::sync::atomic::{AtomicI64, Ordering};

/// 0 = free, `i64::MAX` = until released, else Unix ms when it ends.
const FREE: i64 = 0;
pub const INDEFINITE: i64 = i64::MAX;

#[derive(Debug, Default)]
pub struct Quarantine(AtomicI64);

impl Quarantine {
    /// Whether quarantined at `now_ms` (an expired quarantine lifts itself).
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.until(now_ms).is_some()
    }

    /// Unix ms when the quarantine ends (`INDEFINITE` until released), if quarantined at `now_ms`.
    pub fn until(&self, now_ms: i64) -> Option<i64> {
        let until = self.0.load(Ordering::Relaxed);
        (until != FREE && now_ms < until).then_some(until)
    }

    /// Whether a quarantine was ever set and not released (expired ones included).
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed) != FREE
    }

    pub fn set(&self, until_ms: i64) {
        self.0.store(until_ms.max(1), Ordering::Relaxed);
    }

    pub fn release(&self) {
        self.0.store(FREE, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_lifts_itself() {
        let q = Quarantine::default();
        assert!(!q.is_active(1000));
        q.set(2000);
        assert!(q.is_active(1999));
        assert!(!q.is_active(2000));
        q.set(INDEFINITE);
        assert!(q.is_active(i64::MAX - 1));
        q.release();
        assert!(!q.is_active(0));
        assert!(!q.is_set());
    }
}
