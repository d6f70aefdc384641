//! A sweep: the share of the agent's recent requests (all of them, wherever they went) that read
//! an item never read before under one path shape, against the level that share usually reaches
//! when the agent reads a new item there, and its usual swing.
//!
//! `new_objects` compares the reads of one shape with each other, so it cannot judge a shape whose
//! reads are nearly always new (news, search hits, fresh artifacts), nor a large working set where
//! many reads are new anyway. What a scraper of such a shape cannot help is spending its requests
//! there: an agent that reads a new article in one request of five, between its other work, now
//! reads a new one in nearly every request. The yardstick is the agent's own level and swing, so an
//! agent that habitually reads new items in long runs is judged by those runs.

use super::stats::{ramp, EwStats};
use super::trackers::BASE_ALPHA;

/// The share follows about the last 30 requests.
const ALPHA: f32 = 1.0 / 16.0;
/// Excess of the recent share over its usual level: no signal below `LO`, full at `HI`.
const LO: f64 = 0.3;
const HI: f64 = 0.55;
/// The same excess in usual swings (standard deviations of the share at a new read).
const Z_LO: f64 = 3.0;
const Z_HI: f64 = 6.0;
/// The usual swing is at least this, so a shape read at a very even pace is not judged on noise.
const SWING_FLOOR: f64 = 0.05;
/// A shape is judged once its usual level has been sampled at this many new reads.
const MIN_SAMPLES: u32 = 32;

/// One shape's sweep share, updated only when the shape is read: the requests in between count
/// as zeros all at once.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sweep {
    share: f32,
    /// The agent's request count when the share was last brought up to date.
    at: u32,
    /// The share just after a new read, while the agent behaved.
    usual: EwStats,
}

impl Sweep {
    /// A read under this shape at the agent's `request`-th request; `new`: of an item never read.
    pub(crate) fn observe(&mut self, request: u32, new: bool) {
        let between = request.wrapping_sub(self.at).saturating_sub(1);
        let between = i32::try_from(between).unwrap_or(i32::MAX);
        self.share *= (1.0 - ALPHA).powi(between);
        self.share += ALPHA * (f32::from(u8::from(new)) - self.share);
        self.at = request;
    }

    /// How unusual the share is, at a new read.
    pub(crate) fn strength(&self) -> f64 {
        if self.usual.n() < MIN_SAMPLES {
            return 0.0;
        }
        let excess = f64::from(self.share) - self.usual.mean();
        let z = excess / self.usual.sd().max(SWING_FLOOR);
        ramp(excess, LO, HI).min(ramp(z, Z_LO, Z_HI))
    }

    /// The recent share, and its usual level at a new read.
    pub(crate) fn shares(&self) -> (f64, f64) {
        (f64::from(self.share), self.usual.mean())
    }

    /// Learns the level after a new read.
    pub(crate) fn learn(&mut self) {
        self.usual.update(f64::from(self.share), BASE_ALPHA);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `requests` requests, every `every`-th a new read under the shape (learned when `learn`);
    /// returns the largest strength seen at a new read.
    fn traffic(s: &mut Sweep, from: u32, requests: u32, every: u32, learn: bool) -> f64 {
        let mut max = 0.0f64;
        for r in from..from + requests {
            if r % every == 0 {
                s.observe(r, true);
                max = max.max(s.strength());
                if learn {
                    s.learn();
                }
            }
        }
        max
    }

    #[test]
    fn reading_only_new_items_is_a_sweep() {
        let mut s = Sweep::default();
        assert_eq!(traffic(&mut s, 1, 5000, 5, true), 0.0);
        let mut full = None;
        for r in 5001..5031u32 {
            s.observe(r, true);
            if s.strength() >= 1.0 {
                full.get_or_insert(r - 5000);
            }
        }
        assert!(full.is_some_and(|n| n <= 20), "{full:?} {:?}", s.shares());
    }

    #[test]
    fn its_usual_share_and_runs_are_no_sweep() {
        let mut s = Sweep::default();
        // One request in three reads a new item, and now and then ten in a row do.
        for block in 0..300u32 {
            let from = 1 + block * 40;
            traffic(&mut s, from, 30, 3, true);
            for r in from + 30..from + 40 {
                s.observe(r, true);
                s.learn();
            }
        }
        let mut max = 0.0f64;
        for r in 20_000..20_012u32 {
            s.observe(r, true);
            max = max.max(s.strength());
        }
        assert_eq!(max, 0.0, "{:?}", s.shares());
    }

    #[test]
    fn requests_elsewhere_bring_the_share_down() {
        let mut s = Sweep::default();
        for r in 1..40u32 {
            s.observe(r, true);
        }
        let before = s.shares().0;
        s.observe(100, false);
        assert!(s.shares().0 < before * 0.05, "{:?}", s.shares());
    }
}
