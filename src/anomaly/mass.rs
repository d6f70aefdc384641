//! Mass access: how many distinct objects the agent reads under one path shape in a short window,
//! against its usual count for that shape.
//!
//! Folding ids into the shape is right for "first use", but it makes 60 never-seen ids under one
//! shape a single event; this tracker counts them. Memory is constant: one 1024-bit
//! linear-counting sketch per window (two generations: the current window and the one before, so
//! the count slides instead of dropping to zero at each boundary) shared by every shape, and a
//! small table of the shapes in use with their own counts and usual counts.

use super::stats::{ramp, EwStats};
use super::trackers::BASE_ALPHA;

/// Window of the distinct count, seconds.
pub(crate) const WINDOW: f64 = 10.0;
const SKETCH_WORDS: usize = 16;
const SKETCH_BITS: u64 = (SKETCH_WORDS * 64) as u64;
/// Shapes with their own count and usual count; the least recently used gives way.
const SLOTS: usize = 8;
/// A shape's own usual count is trusted after this many active windows; before, the agent's
/// usual largest count under any shape stands in.
const MIN_WINDOWS: u32 = 5;

/// The shapes in use, one array per field: every request that names an object scans the shapes
/// (one line) and every new window resets the counts (two lines), while the usual counts are
/// touched only for the shape at hand and when a window closes.
#[derive(Debug, Clone, Copy, Default)]
struct Shapes {
    endpoint: [u64; SLOTS],
    last_window: [i64; SLOTS],
    /// Estimated distinct objects this window and the one before.
    count: [f64; SLOTS],
    previous: [f64; SLOTS],
    usual: [EwStats; SLOTS],
    in_use: [bool; SLOTS],
}

impl Shapes {
    fn estimate(&self, slot: usize, into_window: f64) -> f64 {
        self.count[slot] + self.previous[slot] * (1.0 - into_window)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MassAccess {
    sketch: [u64; SKETCH_WORDS],
    sketch_fill: u32,
    window: i64,
    into_window: f64,
    slots: Shapes,
    /// The usual largest count under any one shape in a window: the yardstick for a shape the
    /// agent has no history of.
    largest: EwStats,
    /// The slot of the request being observed, if it named an object.
    current: Option<usize>,
    /// Whether every request of this window was learned from (none was held back as suspect):
    /// only such windows teach the usual counts.
    clean: bool,
    unlearned: bool,
}

impl MassAccess {
    pub(crate) fn observe(&mut self, endpoint: u64, object: Option<u64>, now: f64) {
        if self.unlearned {
            self.clean = false;
        }
        self.unlearned = true;
        self.rotate(now);
        self.current = None;
        let Some(object) = object else { return };
        let slot = self.slot_for(endpoint);
        self.current = Some(slot);
        let bit = super::shape::mix(endpoint ^ object) % SKETCH_BITS;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.sketch[word] & mask != 0 {
            return;
        }
        // Linear counting, one bit at a time: a newly set bit in a sketch a fraction `fill` full
        // stands for 1 / (1 - fill) distinct objects on average.
        let fill = f64::from(self.sketch_fill) / SKETCH_BITS as f64;
        self.sketch[word] |= mask;
        self.sketch_fill += 1;
        self.slots.count[slot] += 1.0 / (1.0 - fill).max(0.05);
    }

    fn rotate(&mut self, now: f64) {
        let window = (now / WINDOW).floor() as i64;
        self.into_window = (now / WINDOW).fract();
        if window == self.window {
            return;
        }
        let adjacent = window == self.window + 1;
        self.finish_window();
        let s = &mut self.slots;
        s.previous = if adjacent { s.count } else { [0.0; SLOTS] };
        s.count = [0.0; SLOTS];
        self.sketch = [0; SKETCH_WORDS];
        self.sketch_fill = 0;
        self.window = window;
        self.clean = true;
    }

    /// Teaches the usual counts from the window that ended, if it was clean.
    fn finish_window(&mut self) {
        if !self.clean {
            return;
        }
        let mut largest: Option<f64> = None;
        let s = &mut self.slots;
        for i in (0..SLOTS).filter(|&i| s.in_use[i] && s.count[i] > 0.0) {
            s.usual[i].update(s.count[i], BASE_ALPHA * 4.0);
            largest = Some(largest.unwrap_or(0.0).max(s.count[i]));
        }
        if let Some(largest) = largest {
            self.largest.update(largest, BASE_ALPHA * 4.0);
        }
    }

    fn slot_for(&mut self, endpoint: u64) -> usize {
        let window = self.window;
        let s = &mut self.slots;
        if let Some(i) = (0..SLOTS).position(|i| s.in_use[i] && s.endpoint[i] == endpoint) {
            s.last_window[i] = window;
            return i;
        }
        let mut oldest = 0;
        for i in 0..SLOTS {
            if !s.in_use[i] {
                oldest = i;
                break;
            }
            if s.last_window[i] < s.last_window[oldest] {
                oldest = i;
            }
        }
        s.endpoint[oldest] = endpoint;
        s.in_use[oldest] = true;
        s.count[oldest] = 0.0;
        s.previous[oldest] = 0.0;
        s.usual[oldest] = EwStats::default();
        s.last_window[oldest] = window;
        oldest
    }

    pub(crate) fn counts(&self) -> Option<(f64, f64)> {
        let slot = self.current.filter(|&i| i < SLOTS)?;
        let own = self.slots.usual[slot];
        let usual = if own.n() >= MIN_WINDOWS {
            own
        } else if self.largest.n() >= MIN_WINDOWS {
            self.largest
        } else {
            return None;
        };
        Some((
            self.slots.estimate(slot, self.into_window),
            usual.mean() + 2.0 * usual.sd() + 1.0,
        ))
    }

    /// Both a multiple of the usual high count and a clear excess over it.
    pub(crate) fn strength(&self) -> f64 {
        let Some((count, high)) = self.counts() else {
            return 0.0;
        };
        ramp(count / high, 2.5, 5.0).min(ramp(count - high, 6.0, 18.0))
    }

    /// What the operator reads: distinct objects in about a window, and the usual count.
    pub(crate) fn report(&self) -> (f64, f64) {
        let Some(slot) = self.current.filter(|&i| i < SLOTS) else {
            return (0.0, 0.0);
        };
        let own = self.slots.usual[slot];
        let usual = if own.n() >= MIN_WINDOWS {
            own.mean()
        } else {
            self.largest.mean()
        };
        (self.slots.estimate(slot, self.into_window), usual)
    }

    pub(crate) fn learn(&mut self) {
        self.unlearned = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_objects_per_shape() {
        let mut m = MassAccess::default();
        for i in 0..200u64 {
            m.observe(1, Some(i), 0.5 + f64::from(i as u32) * 0.01);
            m.observe(2, Some(7), 0.5 + f64::from(i as u32) * 0.01);
        }
        let count = |e: u64| {
            (0..SLOTS)
                .find(|&i| m.slots.endpoint[i] == e)
                .map(|i| m.slots.count[i])
        };
        let (wide, narrow) = (count(1), count(2));
        let wide = wide.unwrap_or_default();
        assert!((180.0..220.0).contains(&wide), "{wide}");
        assert!(narrow.is_some_and(|n| (n - 1.0).abs() < 0.01), "{narrow:?}");
    }

    #[test]
    fn windows_slide() {
        let mut m = MassAccess::default();
        for i in 0..20u64 {
            m.observe(1, Some(i), 9.0);
        }
        m.observe(1, Some(99), 10.5);
        let previous = m.slots.previous[0];
        assert!((previous - 20.0).abs() < 0.5, "{previous}");
        assert!((m.slots.estimate(0, m.into_window) - 20.0).abs() < 0.5);
        m.observe(1, Some(100), 35.0);
        assert_eq!(m.slots.previous[0], 0.0, "a gap of windows forgets");
    }
}
