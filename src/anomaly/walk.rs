//! Ids read in order: a run of reads under one path shape whose numeric ids each step by the same
//! amount from the last (41, 42, 43, ...), against the longest such run the agent usually makes.
//!
//! Walking an id space is how enumeration and scraping of numbered records go (the classic
//! insecure-direct-object-reference probe): the ids come in order, whether the walker has read
//! them before or not. An agent reading its own records reads them in the order its work needs,
//! so two ids in a row sometimes differ by the step of the two before, rarely five or more. An
//! agent whose work does walk ids in order now and then (a sync job paging through records) learns
//! long runs, and is flagged only for a run several times longer than its usual longest. A shape
//! whose ids usually come in order (a feed or a queue read item after item) is not judged at all.

use super::stats::ramp;
use super::trackers::BASE_ALPHA;

/// A run this long, or `RUN_LO_FACTOR` times the usual longest run if that is more, starts to
/// count; full at `RUN_HI` or `RUN_HI_FACTOR` times the usual longest.
const RUN_LO: f64 = 4.0;
const RUN_HI: f64 = 8.0;
const RUN_LO_FACTOR: f64 = 1.5;
const RUN_HI_FACTOR: f64 = 3.0;
/// The usual longest run fades by this share per ended run, so one long walk long ago does not
/// excuse every later one.
const RUN_FADE: f32 = 1.0 / 256.0;
/// A shape is judged once this many of its reads were learned, and only while fewer of them than
/// this share continued a run of ids in order.
const MIN_READS: u16 = 32;
const IN_ORDER_SHARE: f32 = 0.3;

/// One shape's current run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Walk {
    last: u64,
    step: i64,
    /// Reads in the current run: 1 after the first id, 2 once two ids set a step, then one more
    /// for every id that steps by the same amount again.
    run: u16,
    /// Reads learned, and the usual share of them that continued a run.
    reads: u16,
    in_order: f32,
}

impl Walk {
    /// Takes the number of the id read under this shape (`None`: not a plain number). Returns the
    /// run that this read ended, if it ended one.
    pub(crate) fn observe(&mut self, number: Option<u64>) -> Option<u16> {
        let Some(n) = number else {
            let ended = std::mem::take(&mut self.run);
            return (ended > 0).then_some(ended);
        };
        let step = n.wrapping_sub(self.last) as i64;
        let ended = match self.run {
            0 => {
                self.run = 1;
                None
            }
            // Reading the same item again is no step: the run restarts from it.
            _ if step == 0 => Some(std::mem::replace(&mut self.run, 1)),
            1 => {
                self.run = 2;
                None
            }
            _ if step == self.step => {
                self.run = self.run.saturating_add(1);
                None
            }
            // The last two ids start a new run.
            _ => Some(std::mem::replace(&mut self.run, 2)),
        };
        self.step = step;
        self.last = n;
        ended
    }

    pub(crate) fn run(&self) -> u16 {
        self.run
    }

    /// Whether runs under this shape say anything: its ids usually come in no order.
    pub(crate) fn judged(&self) -> bool {
        self.reads >= MIN_READS && self.in_order < IN_ORDER_SHARE
    }

    /// Learns whether the read just observed continued a run.
    pub(crate) fn learn(&mut self) {
        self.reads = self.reads.saturating_add(1);
        let alpha = (1.0 / f32::from(self.reads)).max(BASE_ALPHA as f32);
        let continued = f32::from(u8::from(self.run >= 3));
        self.in_order += alpha * (continued - self.in_order);
    }
}

/// The agent's usual longest run of ids in order under any shape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UsualWalk {
    longest: f32,
}

impl UsualWalk {
    pub(crate) fn longest(&self) -> f64 {
        f64::from(self.longest)
    }

    /// A run that ended while the agent behaved.
    pub(crate) fn learn(&mut self, run: u16) {
        self.longest = f32::from(run).max(self.longest * (1.0 - RUN_FADE));
    }

    /// How unusual a run of `run` ids in order is for this agent.
    pub(crate) fn strength(&self, run: u16) -> f64 {
        let longest = self.longest();
        let lo = RUN_LO.max(RUN_LO_FACTOR * longest);
        let hi = RUN_HI.max(RUN_HI_FACTOR * longest);
        ramp(f64::from(run), lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `ids` in order, learning every run that ends; returns the strength after each read.
    fn read(walk: &mut Walk, usual: &mut UsualWalk, ids: &[u64]) -> Vec<f64> {
        ids.iter()
            .map(|&id| {
                if let Some(run) = walk.observe(Some(id)) {
                    usual.learn(run);
                }
                usual.strength(walk.run())
            })
            .collect()
    }

    #[test]
    fn consecutive_ids_are_a_walk() {
        let (mut walk, mut usual) = (Walk::default(), UsualWalk::default());
        // Habits: records read in no particular order, now and then two in a row.
        let habit: Vec<u64> = (0..2000u64).map(|i| 1 + (i * 7919 + i * i) % 40).collect();
        let before = read(&mut walk, &mut usual, &habit);
        assert!(before.iter().all(|&s| s == 0.0), "{:?}", usual.longest());
        assert!(usual.longest() < 4.0, "{}", usual.longest());
        let strengths = read(&mut walk, &mut usual, &(5000..5020).collect::<Vec<_>>());
        let full = strengths.iter().position(|&s| s >= 1.0);
        assert!(
            full.is_some_and(|i| i < 10),
            "full within ten ids in order: {strengths:?}"
        );
    }

    #[test]
    fn any_even_step_counts_and_a_repeat_restarts() {
        let mut walk = Walk::default();
        for id in [100, 90, 80, 70, 60] {
            walk.observe(Some(id));
        }
        assert_eq!(walk.run(), 5, "a step of -10 is a walk too");
        assert_eq!(walk.observe(Some(60)), Some(5));
        assert_eq!(walk.run(), 1);
        assert_eq!(
            walk.observe(None),
            Some(1),
            "an id that is no number ends it"
        );
        assert_eq!(walk.run(), 0);
    }

    #[test]
    fn an_agent_that_walks_ids_is_judged_by_its_longest_walks() {
        let (mut walk, mut usual) = (Walk::default(), UsualWalk::default());
        // A sync job paging through twenty records in order, then starting over elsewhere.
        for page in 0..50u64 {
            let ids: Vec<u64> = (page * 1000..page * 1000 + 20).collect();
            read(&mut walk, &mut usual, &ids);
        }
        assert!(usual.longest() >= 19.0, "{}", usual.longest());
        assert_eq!(
            usual.strength(25),
            0.0,
            "a little longer than usual is no walk"
        );
        assert!(usual.strength(60) >= 1.0, "three times its longest is");
    }

    #[test]
    fn a_shape_read_in_order_is_not_judged() {
        let mut feed = Walk::default();
        for id in 1000..1100u64 {
            feed.observe(Some(id));
            feed.learn();
        }
        assert!(!feed.judged(), "a feed read item after item");
        let mut records = Walk::default();
        for i in 0..100u64 {
            records.observe(Some(1 + (i * 7919 + i * i) % 40));
            records.learn();
        }
        assert!(
            records.judged(),
            "records read in no order: {}",
            records.in_order
        );
    }
}
