//! Working elsewhere: the share of recent requests that go to endpoints (or, for tool calls, tools)
//! the agent had not used before the last hour, against its usual share.
//!
//! A first use is a single event, and a weak one (a new path shape weighs 0.3, below the learning
//! ceiling, so it is learned at once). An agent whose identity is now driven towards other
//! resources keeps its pace and its answers look ordinary, but nearly all its requests go to
//! things it only just started using; an agent that tries one new endpoint now and then does not.

use super::stats::{ramp, EwStats, Ewma};
use super::trackers::BASE_ALPHA;

const FAST_ALPHA: f64 = 0.15;
/// A thing first used this recently is still unfamiliar, seconds.
const ADOPTION_WINDOW: f64 = 3600.0;
/// Things first used since the learning period, remembered with when: the oldest gives way.
const SLOTS: usize = 8;
/// Excess of the recent unfamiliar share over the usual share: no signal below `LO`, full at
/// `HI`.
const LO: f64 = 0.3;
const HI: f64 = 0.7;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Unfamiliar {
    adopted: [(u64, f64); SLOTS],
    next: usize,
    fast: Ewma,
    base: EwStats,
    last: bool,
}

impl Unfamiliar {
    /// `key`: the endpoint, or the tool of a tool call; `new`: never used before (as the first-use
    /// signals see it); `judged`: past the learning period, when a first use is an adoption.
    pub(crate) fn observe(&mut self, key: u64, new: bool, judged: bool, now: f64) {
        let recent = self
            .adopted
            .iter()
            .any(|&(k, at)| k == key && now - at < ADOPTION_WINDOW);
        if new && judged && !recent {
            self.adopted[self.next % SLOTS] = (key, now);
            self.next = (self.next + 1) % SLOTS;
        }
        self.last = new || recent;
        self.fast.update(f64::from(u8::from(self.last)), FAST_ALPHA);
    }

    pub(crate) fn strength(&self) -> f64 {
        if !self.last || self.base.n() < 16 {
            return 0.0;
        }
        ramp(self.fast.value() - self.base.mean(), LO, HI)
    }

    /// Recent and usual share of requests to things first used within the hour.
    pub(crate) fn shares(&self) -> (f64, f64) {
        (self.fast.value(), self.base.mean())
    }

    pub(crate) fn learn(&mut self) {
        self.base.update(f64::from(u8::from(self.last)), BASE_ALPHA);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn established() -> Unfamiliar {
        let mut u = Unfamiliar::default();
        for i in 0..500u32 {
            u.observe(u64::from(i % 4), false, true, f64::from(i) * 10.0);
            u.learn();
        }
        u
    }

    #[test]
    fn one_new_endpoint_now_and_then_is_familiar_ground() {
        let mut u = established();
        let mut max = 0.0f64;
        for i in 0..500u32 {
            let t = 5000.0 + f64::from(i) * 10.0;
            let key = if i % 50 == 0 { 100 + u64::from(i) } else { 1 };
            u.observe(key, i % 50 == 0, true, t);
            max = max.max(u.strength());
            u.learn();
        }
        assert_eq!(max, 0.0);
    }

    #[test]
    fn working_on_things_adopted_this_hour_is_noticed() {
        let mut u = established();
        // Three endpoints, each new once, then used again and again.
        for i in 0..12u64 {
            let key = 100 + i % 3;
            u.observe(key, i < 3, true, 5000.0 + i as f64 * 20.0);
        }
        assert!(u.strength() > 0.9, "{:?}", u.shares());
        // An hour later they are familiar.
        u.observe(100, false, true, 5000.0 + ADOPTION_WINDOW + 300.0);
        assert_eq!(u.strength(), 0.0);
    }
}
