//! The order of the agent's requests: which endpoint usually follows which (after Forrest et
//! al., "A Sense of Self for Unix Processes"). A compact model: a Bloom filter of the
//! (previous endpoint, endpoint) transitions seen, learned in full during the learning period and
//! slowly after (a transition is learned the second time it is seen on its own while the agent
//! behaves).
//!
//! An agent that mixes its endpoints at random soon shows every pair, so shuffled habits are
//! learned; a run of never-seen transitions among endpoints the agent knows well means it is
//! doing its usual things in an unusual order: a new workflow, or someone else driving it.

use super::sets::{Bloom, Recent};
use super::shape::mix;
use super::stats::{ramp, EwStats, Ewma};
use super::trackers::BASE_ALPHA;

/// 1024 bits: a few dozen endpoints' pairs with a miss rate well under 1%.
const TRANSITION_BLOOM_WORDS: usize = 16;
const FAST_ALPHA: f64 = 0.2;
/// A run of never-seen transitions: no signal below this many in a row, full at `RUN_FULL`.
const RUN_START: f64 = 3.0;
const RUN_FULL: f64 = 8.0;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sequence {
    known: Bloom<TRANSITION_BLOOM_WORDS>,
    /// Transitions seen once after the learning period, waiting for a second sighting.
    candidates: Recent,
    previous: Option<(u64, bool)>,
    pending: Option<u64>,
    pub(crate) run: u32,
    unseen: bool,
    fast: Ewma,
    base: EwStats,
}

impl Sequence {
    /// `known`: the endpoint is one the agent has used before (a first use is another signal).
    pub(crate) fn observe(&mut self, endpoint: u64, known: bool) {
        let previous = self.previous.replace((endpoint, known));
        self.pending = previous.map(|(p, _)| mix(p.rotate_left(23) ^ endpoint));
        let both_known = known && previous.is_some_and(|(_, k)| k);
        self.unseen = both_known && self.pending.is_some_and(|t| !self.known.contains(t));
        self.run = if self.unseen { self.run + 1 } else { 0 };
        if both_known {
            self.fast
                .update(f64::from(u8::from(self.unseen)), FAST_ALPHA);
        }
    }

    pub(crate) fn strength(&self) -> f64 {
        if self.run == 0 || self.base.n() < 16 {
            return 0.0;
        }
        ramp(f64::from(self.run), RUN_START, RUN_FULL).min(ramp(
            self.fast.value() - self.base.mean(),
            0.3,
            0.7,
        ))
    }

    /// Never-seen transitions in a row, and the usual share of never-seen transitions.
    pub(crate) fn counts(&self) -> (f64, f64) {
        (f64::from(self.run), self.base.mean())
    }

    pub(crate) fn learn(&mut self, learning: bool) {
        let Some(t) = self.pending else { return };
        self.base
            .update(f64::from(u8::from(self.unseen)), BASE_ALPHA);
        // After the learning period a transition is learned on its second sighting, and only
        // when it stands alone: inside a run of new transitions it is what is being judged.
        if learning || (self.run <= 1 && !self.candidates.remember(t)) {
            self.known.insert(t);
        }
    }
}
