//! Where an agent is live from: the last source address (or certificate serial) and when
//! each was last seen. A stolen key used in parallel makes the agent flip between two of them.

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

#[cfg(test)]
mod tests {
    use super::*;

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
