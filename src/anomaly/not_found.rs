//! Objects the upstream says do not exist: a walk over ids the agent never used, under a shape it
//! knows well, is a run of distinct 404s. Folding ids makes such a walk no first use and the
//! mass-access count only counts what was handed over, so the misses need a count of their own.
//!
//! Kept apart from upstream errors on purpose: errors are capped because an outage fails every
//! agent at once, whereas a run of misses on many distinct objects is the agent's own doing.

use super::sets::Recent;
use super::stats::{ramp, Decayed, EwStats, Ewma};
use super::trackers::BASE_ALPHA;

const FAST_ALPHA: f64 = 0.15;
/// Window of the distinct-misses count, seconds: long enough that a walk at a slow agent's pace
/// still adds up.
const TAU: f64 = 600.0;
/// Excess of the recent miss share over the usual share: no signal below `SHARE_LO`, full at
/// `SHARE_HI`.
const SHARE_LO: f64 = 0.25;
const SHARE_HI: f64 = 0.6;
/// Distinct objects missed lately: no signal below `COUNT_LO`, full at `COUNT_HI`.
const COUNT_LO: f64 = 3.0;
const COUNT_HI: f64 = 8.0;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NotFound {
    fast: Ewma,
    base: EwStats,
    /// Distinct objects (or paths without one) answered "not found" lately.
    recent: Decayed,
    distinct: Recent,
    last: bool,
}

impl NotFound {
    /// `missed`: the upstream answered 404 or 410, keyed by what was asked for (endpoint and
    /// object), so asking again for one missing thing counts once.
    pub(crate) fn observe(&mut self, missed: Option<u64>, now: f64) {
        self.last = missed.is_some();
        self.fast.update(f64::from(u8::from(self.last)), FAST_ALPHA);
        if let Some(key) = missed {
            if self.distinct.remember(key) {
                self.recent.add(now, TAU, 1.0);
            }
        }
    }

    pub(crate) fn strength(&self, now: f64) -> f64 {
        let by_share = ramp(self.fast.value() - self.base.mean(), SHARE_LO, SHARE_HI);
        if by_share == 0.0 {
            return 0.0;
        }
        by_share.min(ramp(self.recent.get(now, TAU), COUNT_LO, COUNT_HI))
    }

    /// Distinct objects missed lately, and the usual share of requests answered "not found".
    pub(crate) fn counts(&self, now: f64) -> (f64, f64) {
        (self.recent.get(now, TAU), self.base.mean())
    }

    pub(crate) fn learn(&mut self) {
        self.base.update(f64::from(u8::from(self.last)), BASE_ALPHA);
    }
}

/// An upstream's answer that the thing asked for does not exist.
pub(crate) fn is_not_found(status: u16) -> bool {
    status == 404 || status == 410
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_missing_thing_asked_for_again_is_one_miss() {
        let mut n = NotFound::default();
        for i in 0..200u32 {
            n.observe(None, f64::from(i));
            n.learn();
        }
        for i in 0..20u32 {
            n.observe(Some(7), 200.0 + f64::from(i));
        }
        assert_eq!(n.strength(220.0), 0.0, "{:?}", n.counts(220.0));
    }

    #[test]
    fn distinct_misses_in_a_row_are_a_walk() {
        let mut n = NotFound::default();
        for i in 0..200u32 {
            n.observe(None, f64::from(i));
            n.learn();
        }
        for i in 0..12u64 {
            n.observe(Some(100 + i), 200.0 + 30.0 * i as f64);
        }
        assert!(n.strength(560.0) > 0.9, "{:?}", n.counts(560.0));
    }
}
