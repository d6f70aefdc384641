//! How the peer group's view turns into signals: on its own for an agent with no baseline yet,
//! and as a weight on first uses for an established one.

use super::peers::{Feature, PeerView};
use super::sets::Recent;
use super::state::DENIALS;
use super::stats::{ramp, Decayed};
use super::tools::NEW_TOOL;
use super::trackers::{Keys, Share, NEW_METHOD, NEW_PATH_SHAPE, NEW_UPSTREAM};
use super::SignalKind;

/// A first use the peers share is ordinary for the role: it weighs this much of its usual weight.
const KNOWN_TO_PEERS: f64 = 0.6;
/// A first use new to the peers as well weighs up to this much more. Kept small: an established
/// agent's rare endpoint (a method and a shape it and its peers never used) is ordinary enough
/// once in a while, and a third more put it at 0.72.
const NEW_TO_PEERS_TOO: f64 = 0.15;
const PEER_NEW_TAU: f64 = 300.0;

/// What the agent itself has used before: a peer signal of first use needs the thing to be new to
/// the agent too, so a learning agent is told about each thing once, not on every later use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnNovelty {
    pub(crate) upstream: bool,
    pub(crate) method: bool,
    pub(crate) endpoint: bool,
    pub(crate) tool: bool,
}

/// What this request is, to the peers (and to the agent itself).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PeerNovelty {
    upstream: bool,
    method: bool,
    endpoint: bool,
    tool: bool,
    /// Distinct endpoints and tools new to the peers lately.
    lately: Decayed,
    distinct: Recent,
    pub(crate) judged: bool,
}

impl PeerNovelty {
    pub(crate) fn observe(
        &mut self,
        view: Option<&PeerView<'_>>,
        keys: &Keys,
        own: OwnNovelty,
        now: f64,
    ) {
        let Some(view) = view else {
            *self = Self {
                lately: self.lately,
                distinct: self.distinct,
                ..Self::default()
            };
            return;
        };
        self.judged = true;
        self.upstream = own.upstream && !view.knows(Feature::Upstream, keys.upstream);
        self.method = own.method && !view.knows(Feature::Method, keys.method);
        self.endpoint = own.endpoint && !view.knows(Feature::Endpoint, keys.endpoint);
        self.tool = own.tool && keys.tool.is_some_and(|t| !view.knows(Feature::Tool, t));
        for (new, key) in [
            (self.endpoint, keys.endpoint),
            (self.tool, keys.tool.unwrap_or_default()),
        ] {
            if new && self.distinct.remember(key) {
                self.lately.add(now, PEER_NEW_TAU, 1.0);
            }
        }
    }

    pub(crate) fn lately(&self, now: f64) -> f64 {
        self.lately.get(now, PEER_NEW_TAU)
    }

    /// The signals of an agent with no baseline of its own, judged by its peers alone.
    pub(crate) fn alone(
        &self,
        view: &PeerView<'_>,
        denials: &Share,
        now: f64,
    ) -> [(SignalKind, f64); 6] {
        let (e, t) = (view.endpoint_weight, view.tool_weight);
        let flag = |on: bool, strength: f64| if on { strength } else { 0.0 };
        let lately = self.lately(now).max(1.0);
        let denial = view
            .denial_share()
            .map_or(0.0, |usual| denials.strength_against(usual, now, &DENIALS));
        [
            (
                SignalKind::NewUpstream,
                flag(self.upstream, NEW_UPSTREAM) * e,
            ),
            (SignalKind::NewMethod, flag(self.method, NEW_METHOD) * e),
            (
                SignalKind::NewPathShape,
                flag(self.endpoint, NEW_PATH_SHAPE) * e,
            ),
            (
                SignalKind::NewTool,
                flag(self.tool, 1.0 - (1.0 - NEW_TOOL).powf(lately)) * t,
            ),
            (
                SignalKind::Enumeration,
                ramp(self.lately(now), 3.0, 8.0) * e,
            ),
            (SignalKind::DenialBurst, denial),
        ]
    }

    /// The weight of an established agent's own first use of something: less when its peers use
    /// it, more when they do not either (and the group shares habits enough to say so).
    pub(crate) fn weight(&self, view: Option<&PeerView<'_>>, kind: SignalKind) -> f64 {
        let Some(view) = view else { return 1.0 };
        let (new_to_peers, coherence) = match kind {
            SignalKind::NewUpstream => (self.upstream, view.endpoint_weight),
            SignalKind::NewMethod => (self.method, view.endpoint_weight),
            SignalKind::NewPathShape => (self.endpoint, view.endpoint_weight),
            SignalKind::NewTool => (self.tool, view.tool_weight),
            _ => return 1.0,
        };
        if new_to_peers {
            1.0 + NEW_TO_PEERS_TOO * coherence
        } else {
            KNOWN_TO_PEERS
        }
    }
}
