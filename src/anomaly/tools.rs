//! MCP tool use: which tools the agent calls, how many distinct ones lately, how fast, and how
//! many of its calls are refused. Only `tools/call` requests move these trackers.

use super::sets::{Bloom, Recent};
use super::state::DENIALS;
use super::stats::{ramp, Decayed, EwStats};
use super::trackers::{Rate, Share, BASE_ALPHA};

/// One never-used tool weighs a little more than a never-used path shape: on an MCP route the tool
/// is what the path is elsewhere, and an agent's tool set is usually small and stable.
pub(crate) const NEW_TOOL: f64 = 0.35;
/// Window of "distinct new tools lately", seconds.
const NEW_TOOL_TAU: f64 = 300.0;
/// Window of "distinct tools lately", seconds: the tools called in this window and the one before.
const BURST_WINDOW: f64 = 60.0;
const MIN_BURST_SAMPLES: u32 = 16;

/// 1024 bits: a few dozen tools leave the miss rate well under 1%.
const TOOL_BLOOM_WORDS: usize = 16;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ToolUse {
    known: Bloom<TOOL_BLOOM_WORDS>,
    /// The hashed tool of the request being observed, `None` when it is not a tool call.
    current: Option<u64>,
    last_call: Option<f64>,
    pub(crate) new_tool: bool,
    new_lately: Decayed,
    new_distinct: Recent,
    /// Tools called in the current and the previous window, one bit per tool hash (a few dozen
    /// tools rarely share a bit; a shared bit only undercounts).
    windows: [u64; 2],
    window: i64,
    distinct_base: EwStats,
    rate: Rate,
    denials: Share,
}

impl ToolUse {
    pub(crate) fn observe(&mut self, tool: Option<u64>, denied: bool, now: f64) {
        self.current = tool;
        self.new_tool = false;
        let Some(tool) = tool else { return };
        let gap = self.last_call.map(|last| (now - last).max(0.0));
        self.last_call = Some(now);
        self.rate.observe(gap);
        self.denials.observe(denied, now, &DENIALS);
        self.new_tool = !self.known.contains(tool);
        if self.new_tool && self.new_distinct.remember(tool) {
            self.new_lately.add(now, NEW_TOOL_TAU, 1.0);
        }
        let window = (now / BURST_WINDOW).floor() as i64;
        if window != self.window {
            let previous = if window == self.window + 1 {
                self.windows[0]
            } else {
                0
            };
            self.windows = [0, previous];
            self.window = window;
        }
        self.windows[0] |= 1u64 << (tool % 64);
    }

    fn distinct_lately(&self) -> f64 {
        f64::from((self.windows[0] | self.windows[1]).count_ones())
    }

    pub(crate) fn is_call(&self) -> bool {
        self.current.is_some()
    }

    /// A first use, stronger with every other distinct first use lately: one rare tool is a
    /// note, four in a few minutes are an alarm.
    pub(crate) fn new_tool_strength(&self, now: f64) -> f64 {
        if !self.new_tool {
            return 0.0;
        }
        let lately = self.new_lately.get(now, NEW_TOOL_TAU).max(1.0);
        1.0 - (1.0 - NEW_TOOL).powf(lately)
    }

    /// Many distinct tools in a minute, well above the usual count.
    pub(crate) fn burst_strength(&self) -> f64 {
        if !self.is_call() || self.distinct_base.n() < MIN_BURST_SAMPLES {
            return 0.0;
        }
        let (count, usual) = self.distinct_counts();
        ramp(count - usual, 3.0, 7.0).min(ramp(count / usual.max(1.0), 2.0, 4.0))
    }

    pub(crate) fn rate_strength(&self) -> f64 {
        if self.is_call() {
            self.rate.strength()
        } else {
            0.0
        }
    }

    pub(crate) fn denial_strength(&self, now: f64) -> f64 {
        if self.is_call() {
            self.denials.strength(now, &DENIALS)
        } else {
            0.0
        }
    }

    /// Distinct never-used tools lately, against a usual of none (any is a first use).
    pub(crate) fn new_counts(&self, now: f64) -> (f64, f64) {
        (self.new_lately.get(now, NEW_TOOL_TAU), 0.0)
    }

    /// Distinct tools in the last minute or two, and the usual count.
    pub(crate) fn distinct_counts(&self) -> (f64, f64) {
        (self.distinct_lately(), self.distinct_base.mean())
    }

    /// Tool calls per second, now and usually.
    pub(crate) fn rates(&self) -> (f64, f64) {
        self.rate.rates()
    }

    /// Share of tool calls refused, now and usually.
    pub(crate) fn denial_shares(&self) -> (f64, f64) {
        self.denials.shares()
    }

    /// `allowed`: only calls the policy let through teach which tools the agent uses.
    pub(crate) fn learn(&mut self, allowed: bool) {
        let Some(tool) = self.current else { return };
        self.rate.learn();
        self.denials.learn();
        self.distinct_base
            .update(self.distinct_lately(), BASE_ALPHA);
        if allowed {
            self.known.insert(tool);
        }
    }

    /// Which tools the agent calls, without the rates and shares.
    pub(crate) fn learn_uses(&mut self) {
        if let Some(tool) = self.current {
            self.known.insert(tool);
        }
    }
}
