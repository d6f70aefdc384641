//! Never-read objects: the share of recent reads under a path shape that name an object the agent
//! never read before, against its usual share for that shape.
//!
//! Mass access counts distinct objects per window, so a scrape at the agent's own pace stays
//! within its counts. What a scrape cannot help is that every object is new to the agent, while
//! an agent that works on a set of records keeps coming back to the same ones. Shapes whose
//! reads are nearly always new (news, search hits, fresh artifacts) have a usual share near one
//! and are never judged; their objects are not remembered either, so they do not crowd out the
//! others.
//!
//! The same per-shape table keeps two views of a scrape that this share cannot give: how much of
//! all the agent's requests go to new items under the shape (`sweep`), and whether the ids come
//! in order (`walk`).

use super::sets::Bloom;
use super::shape::mix;
use super::stats::{ramp, Decayed, EwStats, Ewma};
use super::sweep::Sweep;
use super::trackers::BASE_ALPHA;
use super::walk::{UsualWalk, Walk};

/// Two generations of 2048 bits: the current one takes new objects until it has taken about 280,
/// then becomes the previous one. An object in either is known.
const BLOOM_WORDS: usize = 32;
const ROTATE_AT: u32 = 280;
/// Shapes with their own shares; the least recently used gives way.
const SLOTS: usize = 8;
const FAST_ALPHA: f64 = 0.15;
/// A shape is judged once this many of its reads have been learned.
const MIN_READS: u32 = 32;
/// Shapes whose reads are usually new more often than this are not judged nor remembered.
const FRESH_SHARE: f64 = 0.5;
/// Excess of the recent share of never-read objects over the usual share: no signal below `LO`,
/// full at `HI`.
const LO: f64 = 0.3;
const HI: f64 = 0.6;
/// Distinct never-read objects lately, with `TAU` seconds of memory: no signal below
/// `COUNT_LO`, full at `COUNT_HI`.
const TAU: f64 = 600.0;
const COUNT_LO: f64 = 4.0;
const COUNT_HI: f64 = 10.0;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    fast: Ewma,
    usual: EwStats,
    sweep: Sweep,
    walk: Walk,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NewObjects {
    current: Bloom<BLOOM_WORDS>,
    previous: Bloom<BLOOM_WORDS>,
    inserted: u32,
    /// Each slot's shape and when it was last used (0: free), apart from the rest of the slot:
    /// every read scans these two lines, and touches only its own slot's numbers.
    endpoints: [u64; SLOTS],
    used: [u64; SLOTS],
    slots: [Slot; SLOTS],
    reads: u64,
    /// Every request observed, for the sweep shares (wrapping).
    requests: u32,
    lately: Decayed,
    usual_walk: UsualWalk,
    /// The request being observed: its slot, and whether the object was new.
    pending: Option<(usize, bool)>,
    /// A run of ids in order that the request ended, to be learned.
    walk_ended: Option<u16>,
}

impl NewObjects {
    /// `read`: the object an upstream handed over under `endpoint`, if the path named one, and its
    /// number if its id is a plain number.
    pub(crate) fn observe(&mut self, endpoint: u64, read: Option<(u64, Option<u64>)>, now: f64) {
        self.pending = None;
        self.walk_ended = None;
        self.requests = self.requests.wrapping_add(1);
        let Some((object, number)) = read else { return };
        let key = mix(endpoint ^ object.rotate_left(29));
        let new = !self.current.contains(key) && !self.previous.contains(key);
        let slot = self.slot_for(endpoint);
        let s = &mut self.slots[slot];
        s.fast.update(f64::from(u8::from(new)), FAST_ALPHA);
        s.sweep.observe(self.requests, new);
        self.walk_ended = s.walk.observe(number);
        if new && self.judged(slot) {
            self.lately.add(now, TAU, 1.0);
        }
        // Which objects were read is remembered even from a request under suspicion: only the
        // usual share waits for calm. Otherwise one flagged read would leave its objects new,
        // the next reads of them would be flagged again, and learning would never resume.
        let usual = &self.slots[slot].usual;
        if new && (usual.n() < MIN_READS || usual.mean() < FRESH_SHARE) {
            self.remember(key);
        }
        self.pending = Some((slot, new));
    }

    fn remember(&mut self, key: u64) {
        if self.inserted >= ROTATE_AT {
            self.previous = self.current;
            self.current = Bloom::default();
            self.inserted = 0;
        }
        self.current.insert(key);
        self.inserted += 1;
    }

    fn judged(&self, slot: usize) -> bool {
        let usual = &self.slots[slot].usual;
        usual.n() >= MIN_READS && usual.mean() < FRESH_SHARE
    }

    fn slot_for(&mut self, endpoint: u64) -> usize {
        self.reads += 1;
        let mut oldest = 0;
        for i in 0..SLOTS {
            if self.used[i] > 0 && self.endpoints[i] == endpoint {
                self.used[i] = self.reads;
                return i;
            }
            if self.used[i] < self.used[oldest] {
                oldest = i;
            }
        }
        self.slots[oldest] = Slot::default();
        self.endpoints[oldest] = endpoint;
        self.used[oldest] = self.reads;
        oldest
    }

    pub(crate) fn strength(&self, now: f64) -> f64 {
        let Some((slot, true)) = self.pending else {
            return 0.0;
        };
        if !self.judged(slot) {
            return 0.0;
        }
        let s = &self.slots[slot];
        ramp(s.fast.value() - s.usual.mean(), LO, HI).min(ramp(
            self.lately.get(now, TAU),
            COUNT_LO,
            COUNT_HI,
        ))
    }

    /// The recent and usual share of reads of never-read objects under the current shape.
    pub(crate) fn shares(&self) -> (f64, f64) {
        self.pending
            .and_then(|(slot, ..)| self.slots.get(slot))
            .map_or((0.0, 0.0), |s| (s.fast.value(), s.usual.mean()))
    }

    /// A sweep of the current shape: judged at a read of a never-read object.
    pub(crate) fn sweep_strength(&self) -> f64 {
        match self.pending {
            Some((slot, true)) => self.slots[slot].sweep.strength(),
            _ => 0.0,
        }
    }

    /// The share of recent requests that read a never-read object under the current shape, and
    /// its usual level.
    pub(crate) fn sweep_shares(&self) -> (f64, f64) {
        self.pending
            .and_then(|(slot, ..)| self.slots.get(slot))
            .map_or((0.0, 0.0), |s| s.sweep.shares())
    }

    /// A run of ids in order under the current shape, against the agent's usual longest.
    pub(crate) fn walk_strength(&self) -> f64 {
        match self.pending.map(|(slot, _)| &self.slots[slot].walk) {
            Some(walk) if walk.judged() => self.usual_walk.strength(walk.run()),
            _ => 0.0,
        }
    }

    /// The current run of ids in order, and the usual longest.
    pub(crate) fn walk_counts(&self) -> (f64, f64) {
        let run = self
            .pending
            .map_or(0, |(slot, _)| self.slots[slot].walk.run());
        (f64::from(run), self.usual_walk.longest())
    }

    pub(crate) fn learn(&mut self) {
        if let Some(run) = self.walk_ended.take() {
            self.usual_walk.learn(run);
        }
        let Some((slot, new)) = self.pending else {
            return;
        };
        let s = &mut self.slots[slot];
        s.usual.update(f64::from(u8::from(new)), BASE_ALPHA);
        s.walk.learn();
        if new {
            s.sweep.learn();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads over a working set of `size` objects, the first ones far more often.
    fn working_set(o: &mut NewObjects, from: u64, n: u64, size: u64) {
        for i in from..from + n {
            let object = (size as f64).powf((i * 7919 % 1000) as f64 / 1000.0) as u64;
            o.observe(1, Some((object, None)), i as f64 * 5.0);
            o.learn();
        }
    }

    #[test]
    fn coming_back_to_the_same_records_is_usual() {
        let mut o = NewObjects::default();
        working_set(&mut o, 0, 3000, 200);
        let mut max = 0.0f64;
        for i in 3000..6000u64 {
            let object = (200f64).powf((i * 7919 % 1000) as f64 / 1000.0) as u64;
            o.observe(1, Some((object, None)), i as f64 * 5.0);
            max = max.max(o.strength(i as f64 * 5.0));
            o.learn();
        }
        assert_eq!(max, 0.0);
    }

    #[test]
    fn a_walk_over_never_read_objects_is_noticed() {
        let mut o = NewObjects::default();
        working_set(&mut o, 0, 3000, 200);
        let mut hit = None;
        for k in 0..30u64 {
            let t = 15_000.0 + k as f64 * 10.0;
            o.observe(1, Some((10_000 + k, None)), t);
            if o.strength(t) > 0.9 {
                hit.get_or_insert(k);
            }
        }
        assert!(hit.is_some_and(|k| k < 15), "{hit:?} {:?}", o.shares());
    }

    #[test]
    fn fresh_shapes_are_not_judged() {
        let mut o = NewObjects::default();
        for i in 0..2000u64 {
            o.observe(2, Some((1_000_000 + i, None)), i as f64);
            assert_eq!(o.strength(i as f64), 0.0);
            o.learn();
        }
        assert!(
            o.inserted <= MIN_READS,
            "a fresh shape's objects are not remembered once known as fresh"
        );
    }
}
