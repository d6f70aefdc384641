//! Where an agent is live from: the last source address (or certificate serial) and when
//! each was last seen. A stolen key used in parallel makes the agent flip between two of them.
//!
//! [`Returns`] looks further back: the last few (address, certificate) pairs with when each was
//! last used. A move to a new address or a renewed certificate switches once and never goes back;
//! a second holder of the identity makes it come back, again and again, to a pair it had left.

/// Two identities both seen within this window are live "at once", at the least: an agent slower
/// than a request every few seconds gets a window of a few of its usual gaps.
pub(crate) const CLONE_WINDOW_SECONDS: f64 = 10.0;

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    id: u64,
    at: f64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Presence {
    current: Option<Seen>,
}

impl Presence {
    /// Records `id` at `now`; returns whether this is a flip: a different id than the last one,
    /// while the last one was live within the clone window. A one-off move to a new address is a
    /// single flip; a clone flips over and over.
    pub(crate) fn observe(&mut self, id: u64, now: f64, window: f64) -> bool {
        let Some(current) = self.current else {
            self.current = Some(Seen { id, at: now });
            return false;
        };
        if current.id == id {
            self.current = Some(Seen { id, at: now });
            return false;
        }
        let flip = now - current.at <= window;
        self.current = Some(Seen { id, at: now });
        flip
    }
}

/// A pair left for another counts as coming back when it is used again within this long.
pub(crate) const RETURN_HORIZON: f64 = 3600.0;
const PAIRS: usize = 4;

/// A pair and when it was last used; id 0 is an empty place (a hash is 0 once in 2^64).
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    id: u64,
    at: f64,
}

/// The (address, certificate) pairs an identity was used from lately.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Returns {
    pairs: [Pair; PAIRS],
    current: usize,
}

impl Returns {
    /// Records pair `id` at `now`; returns whether it comes back: it is not the pair of the last
    /// request, and was itself used within the horizon, before that one.
    pub(crate) fn observe(&mut self, id: u64, now: f64) -> bool {
        let id = id.max(1);
        if self.pairs[self.current].id == id {
            self.pairs[self.current].at = now;
            return false;
        }
        if let Some(i) = self.pairs.iter().position(|p| p.id == id) {
            let back = now - self.pairs[i].at <= RETURN_HORIZON;
            self.pairs[i].at = now;
            self.current = i;
            return back;
        }
        // A pair not seen lately takes the place of the one used longest ago.
        let mut oldest = 0;
        for (i, p) in self.pairs.iter().enumerate() {
            if p.id == 0 {
                oldest = i;
                break;
            }
            if p.at < self.pairs[oldest].at {
                oldest = i;
            }
        }
        self.pairs[oldest] = Pair { id, at: now };
        self.current = oldest;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_or_a_renewal_never_comes_back() {
        let mut r = Returns::default();
        let mut returns = 0;
        // From pair 1, then a renewed certificate (2), then a new address (3).
        for i in 0..3000u32 {
            let pair = 1 + u64::from(i / 1000);
            returns += u32::from(r.observe(pair, f64::from(i) * 5.0));
        }
        assert_eq!(returns, 0);
    }

    #[test]
    fn a_second_holder_keeps_coming_back() {
        let mut r = Returns::default();
        for i in 0..100u32 {
            assert!(!r.observe(1, f64::from(i) * 10.0));
        }
        // A thief (2) works while the agent is idle; the agent comes back half an hour later.
        assert!(!r.observe(2, 1000.0));
        assert!(!r.observe(2, 1500.0));
        assert!(r.observe(1, 2800.0), "the agent's pair comes back");
        assert!(!r.observe(1, 2810.0));
        assert!(r.observe(2, 2900.0), "and so does the thief's");
    }

    #[test]
    fn a_pair_left_long_ago_is_no_return() {
        let mut r = Returns::default();
        r.observe(1, 0.0);
        r.observe(2, 10.0);
        assert!(!r.observe(1, 10.0 + RETURN_HORIZON + 1.0));
    }

    #[test]
    fn one_move_is_one_flip() {
        let mut p = Presence::default();
        let w = CLONE_WINDOW_SECONDS;
        assert!(!p.observe(1, 0.0, w));
        assert!(!p.observe(1, 1.0, w));
        assert!(p.observe(2, 2.0, w));
        assert!(!p.observe(2, 3.0, w));
        assert!(!p.observe(2, 30.0, w));
    }

    #[test]
    fn interleaving_flips_every_time() {
        let mut p = Presence::default();
        p.observe(1, 0.0, CLONE_WINDOW_SECONDS);
        let flips = (1..10u32)
            .filter(|&i| p.observe(1 + u64::from(i % 2), f64::from(i), CLONE_WINDOW_SECONDS))
            .count();
        assert_eq!(flips, 9);
    }

    #[test]
    fn a_stale_identity_is_not_live() {
        let mut p = Presence::default();
        let w = CLONE_WINDOW_SECONDS;
        p.observe(1, 0.0, w);
        assert!(!p.observe(2, w + 1.0, w));
        assert!(!p.observe(1, 3.0 * w, w));
    }
}
