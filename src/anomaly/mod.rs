//! Per-agent behavioural anomaly detection (SPEC section 6).
//!
//! Each agent has an [`AgentBehaviour`]: a few KiB of online statistics updated in constant time
//! per request. During the agent's own learning period (counted from its first request, and at
//! least [`MIN_LEARNING_REQUESTS`] requests) it learns, and is judged only by its peers and by
//! absolute limits no agent's habits come near (refusals on many distinct paths). Afterwards every request
//! gets a score in [0, 1], the noisy-OR of independent signals (rate, first uses, enumeration,
//! denial bursts, errors, bytes out, off-hours, clone, what it reads), so one strong signal suffices while
//! weak ones do not add up to an alarm. Baselines keep learning slowly while the score is low and
//! freeze while it is high, so an attack is not absorbed into the agent's normal.
//!
//! The engine never reads a clock: callers pass a monotonic time and the UTC hour of the week, so
//! the same code runs in the proxy and in tests that simulate days in milliseconds.

mod hours;
mod mass;
mod not_found;
mod objects;
mod peer_signals;
mod peers;
mod presence;
mod refusals;
mod report;
mod sequence;
mod sets;
mod shape;
mod state;
mod stats;
mod subject;
mod sweep;
mod tools;
mod trackers;
mod unfamiliar;
mod walk;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;

/// What a score over the threshold does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyAction {
    #[default]
    Alert,
    Quarantine,
}

pub use peers::{group_key, PeerGroup, PeerGroups, PeerReport, MIN_PEERS};
pub use report::{BehaviourReport, SignalReport};
pub use shape::{is_identifier, path_shape, SHAPE_SEGMENTS};
use state::State;
pub use state::MIN_LEARNING_REQUESTS;
pub use subject::Subject;

/// The `anomaly` section of the config with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalySettings {
    pub enabled: bool,
    pub learning_period: Duration,
    pub threshold: f64,
    pub action: AnomalyAction,
    pub quarantine_for: Duration,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            learning_period: Duration::from_secs(3600),
            threshold: 0.8,
            action: AnomalyAction::Alert,
            quarantine_for: Duration::from_secs(15 * 60),
        }
    }
}

impl AnomalySettings {
    /// Whether a score calls for `action`.
    pub fn exceeded_by(&self, score: f64) -> bool {
        self.enabled && score > self.threshold
    }
}

/// One finished request, as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub upstream: &'a str,
    pub method: &'a str,
    /// The normalised path.
    pub path: &'a str,
    pub status: u16,
    /// A policy refusal decided by the proxy (401/403/404/429), as opposed to an upstream answer.
    pub denied: bool,
    pub bytes_in: u64,
    /// Response bytes sent to the agent.
    pub bytes_out: u64,
    pub source_ip: IpAddr,
    pub cert_serial: &'a str,
    /// Monotonic time since the engine's epoch.
    pub now: Duration,
    /// UTC hour of the week, 0 = Monday 00h.
    pub hour_of_week: u16,
}

/// What a request carries beyond HTTP, for the signals that need it. Every field is optional and
/// `ObservationContext::default()` fills none, so a caller passes only what it knows; the plain
/// [`AgentBehaviour::observe`] is `observe_with` an empty context.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObservationContext<'a> {
    /// The tool an MCP `tools/call` names (`params.name`).
    pub tool: Option<&'a str>,
    /// The agent's peer group (the agents sharing its roles), if it has one.
    pub peers: Option<&'a Arc<PeerGroup>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Rate,
    NewUpstream,
    NewMethod,
    NewPathShape,
    Enumeration,
    DenialBurst,
    ErrorRate,
    BytesOut,
    OffHours,
    Clone,
    NewTool,
    ToolBurst,
    ToolRate,
    ToolDenials,
    MassAccess,
    NewSequence,
    NotFound,
    Unfamiliar,
    NewObjects,
    RefusedPaths,
    Sweep,
    IdWalk,
    Alternation,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::NewUpstream => "new_upstream",
            Self::NewMethod => "new_method",
            Self::NewPathShape => "new_path_shape",
            Self::Enumeration => "enumeration",
            Self::DenialBurst => "denial_burst",
            Self::ErrorRate => "error_rate",
            Self::BytesOut => "bytes_out",
            Self::OffHours => "off_hours",
            Self::Clone => "clone",
            Self::NewTool => "new_tool",
            Self::ToolBurst => "tool_burst",
            Self::ToolRate => "tool_rate",
            Self::ToolDenials => "tool_denials",
            Self::MassAccess => "mass_access",
            Self::NewSequence => "new_sequence",
            Self::NotFound => "not_found",
            Self::Unfamiliar => "unfamiliar",
            Self::NewObjects => "new_objects",
            Self::RefusedPaths => "refused_paths",
            Self::Sweep => "sweep",
            Self::IdWalk => "id_walk",
            Self::Alternation => "alternation",
        }
    }
}

impl std::fmt::Display for SignalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One contributing signal: its strength in [0, 1] and the numbers behind it (the current value
/// and the agent's usual value, in the signal's unit; see [`SignalReport`] for the wording).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    pub strength: f64,
    pub value: f64,
    pub baseline: f64,
    /// What it is about, when that is one thing: the tool, the path shape, the upstream.
    pub subject: Subject,
}

impl Signal {
    /// The operator's sentence: what was seen against what is usual, e.g. `read 57 distinct items
    /// under /public/items/* in 10 s; usually 2`.
    pub fn detail(&self) -> String {
        report::detail(self)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    /// In [0, 1]; 0 while learning.
    pub value: f64,
    /// Strongest first, at most three, only signals that contributed.
    pub top: Vec<Signal>,
}

/// One agent's behaviour. The proxy keeps one per agent; the lock is uncontended in practice
/// (only that agent's requests take it) and held for well under a microsecond.
#[derive(Debug)]
pub struct AgentBehaviour {
    state: Mutex<State>,
}

impl Default for AgentBehaviour {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentBehaviour {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::new()),
        }
    }

    /// Learns from one request and scores it. O(1) time, no allocation unless signals fire.
    pub fn observe(&self, obs: &Observation<'_>, settings: &AnomalySettings) -> Score {
        self.observe_with(obs, &ObservationContext::default(), settings)
    }

    /// [`observe`](Self::observe) with what the request carries beyond HTTP (its MCP tool).
    pub fn observe_with(
        &self,
        obs: &Observation<'_>,
        ctx: &ObservationContext<'_>,
        settings: &AnomalySettings,
    ) -> Score {
        if !settings.enabled {
            return Score::default();
        }
        self.lock().observe(obs, ctx, settings)
    }

    /// The score of the last request (peak-held, decaying with time as requests arrive).
    pub fn current(&self) -> Score {
        self.lock().current()
    }

    /// The held score decayed to `now`, for an agent that has gone quiet since its last request.
    pub fn score_at(&self, now: Duration) -> f64 {
        self.lock().held_at_time(now.as_secs_f64())
    }

    pub fn snapshot(&self) -> BehaviourReport {
        BehaviourReport::of(&self.lock())
    }

    /// The state is plain numbers, always consistent between statements: a panic elsewhere while
    /// holding the lock cannot leave it half-updated in a way that matters, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
