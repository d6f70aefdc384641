//! A new identity refused on many distinct paths: absolute limits for an agent that has no
//! baseline of its own yet (and, for a role of one, no peers either).
//!
//! While it learns, an agent scores nothing against itself: whatever it does is what it usually
//! does. Being refused by the policy on path after path is not a habit anyone is given, though:
//! a workload that starts misconfigured is refused on the few endpoints it uses, a scanner on
//! every guess. The limits are conservative so that only the second crosses them.

use super::sets::Recent;
use super::stats::{ramp, Decayed};

/// Memory of the distinct-refusals count, seconds: long, so a probe at a slow pace adds up.
const TAU: f64 = 1800.0;
/// Distinct endpoints refused lately: no signal below `COUNT_LO`, full at `COUNT_HI` (more than
/// most agents have endpoints).
const COUNT_LO: f64 = 4.0;
const COUNT_HI: f64 = 10.0;
/// Share of recent requests refused: no signal below `SHARE_LO`, full at `SHARE_HI`.
const SHARE_LO: f64 = 0.25;
const SHARE_HI: f64 = 0.45;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Refusals {
    distinct: Recent,
    lately: Decayed,
}

impl Refusals {
    pub(crate) fn observe(&mut self, denied: bool, endpoint: u64, now: f64) {
        if denied && self.distinct.remember(endpoint) {
            self.lately.add(now, TAU, 1.0);
        }
    }

    /// `share`: the recent share of its requests refused.
    pub(crate) fn strength(&self, share: f64, now: f64) -> f64 {
        ramp(share, SHARE_LO, SHARE_HI).min(ramp(self.lately.get(now, TAU), COUNT_LO, COUNT_HI))
    }

    /// Distinct endpoints refused lately.
    pub(crate) fn count(&self, now: f64) -> f64 {
        self.lately.get(now, TAU)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_on_its_own_few_endpoints_is_not_probing() {
        let mut r = Refusals::default();
        for i in 0..200u32 {
            r.observe(true, u64::from(i % 3), f64::from(i) * 10.0);
        }
        assert_eq!(r.strength(1.0, 2000.0), 0.0);
    }

    #[test]
    fn refused_on_path_after_path_is() {
        let mut r = Refusals::default();
        for i in 0..16u32 {
            r.observe(true, 100 + u64::from(i), f64::from(i) * 60.0);
        }
        assert!(r.strength(0.5, 960.0) > 0.9, "{}", r.count(960.0));
        assert_eq!(r.strength(0.1, 960.0), 0.0, "not when most requests pass");
    }
}
