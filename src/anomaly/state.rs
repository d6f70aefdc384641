//! One agent's state and the per-request update: fast trackers, score, then baseline learning.

use super::hours::HourHistogram;
use std::sync::Arc;

use super::mass::MassAccess;
use super::not_found::{is_not_found, NotFound};
use super::objects::NewObjects;
use super::peer_signals::{OwnNovelty, PeerNovelty};
use super::peers::{Feature, Membership, PeerGroup, PeerView, Teaching};
use super::refusals::Refusals;
use super::sequence::Sequence;
use super::shape::{hash_str, shape_and_object, Hasher};
use super::subject::Subject;
use super::tools::ToolUse;
use super::trackers::{
    BytesOut, CloneWatch, Keys, Novelty, Rate, Share, ShareLimits, NEW_METHOD, NEW_PATH_SHAPE,
    NEW_UPSTREAM,
};
use super::unfamiliar::Unfamiliar;
use super::{AnomalySettings, Observation, ObservationContext, Score, Signal, SignalKind};

/// However short the configured period, a baseline needs this many requests.
pub const MIN_LEARNING_REQUESTS: u64 = 32;
/// The held score halves every minute once behaviour is back to normal.
const HELD_HALF_LIFE: f64 = 60.0;
/// Signals weaker than this are noise: they neither count nor show.
const NOISE_FLOOR: f64 = 0.1;
/// Baselines stop learning above this score (or half the threshold, if lower), so an attack is
/// not absorbed into the agent's normal.
const LEARN_CEILING: f64 = 0.4;
pub(crate) const TOP_SIGNALS: usize = 3;

/// Probing: policy refusals (401/403/404/429 decided by the proxy).
pub(crate) const DENIALS: ShareLimits = ShareLimits {
    lo: 0.2,
    hi: 0.55,
    count_lo: 2.0,
    count_hi: 6.0,
    tau: 120.0,
    cap: 1.0,
};
/// Upstream failures. Capped: an upstream outage fails every agent at once and must not quarantine
/// them all, so errors only support other signals.
pub(crate) const ERRORS: ShareLimits = ShareLimits {
    lo: 0.25,
    hi: 0.6,
    count_lo: 3.0,
    count_hi: 8.0,
    tau: 120.0,
    cap: 0.5,
};

#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    first: Option<f64>,
    last: f64,
    pub(crate) requests: u64,
    pub(crate) learning: bool,
    pub(crate) rate: Rate,
    pub(crate) bytes: BytesOut,
    pub(crate) denials: Share,
    pub(crate) refusals: Refusals,
    pub(crate) errors: Share,
    pub(crate) not_found: NotFound,
    pub(crate) novelty: Novelty,
    pub(crate) hours: HourHistogram,
    pub(crate) clone: CloneWatch,
    pub(crate) tools: ToolUse,
    pub(crate) mass: MassAccess,
    pub(crate) objects: NewObjects,
    pub(crate) sequence: Sequence,
    pub(crate) unfamiliar: Unfamiliar,
    pub(crate) peer_novelty: PeerNovelty,
    /// The group it was last seen in, and its place there once it teaches the group.
    pub(crate) peers: Option<Arc<PeerGroup>>,
    membership: Option<Membership>,
    pub(crate) held: f64,
    held_at: f64,
    /// Whether `top` holds any signal. The three slots span five cache lines; a quiet request
    /// finds them empty and leaves them empty, and with this flag it neither reads nor writes them.
    top_set: bool,
    pub(crate) top: [Option<Signal>; TOP_SIGNALS],
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            learning: true,
            ..Self::default()
        }
    }

    pub(crate) fn observe(
        &mut self,
        obs: &Observation<'_>,
        ctx: &ObservationContext<'_>,
        settings: &AnomalySettings,
    ) -> Score {
        let now = obs.now.as_secs_f64();
        let first = *self.first.get_or_insert(now);
        let gap = (self.requests > 0).then(|| (now - self.last).max(0.0));
        self.last = self.last.max(now);
        self.requests = self.requests.saturating_add(1);
        self.learning = now - first < settings.learning_period.as_secs_f64()
            || self.requests <= MIN_LEARNING_REQUESTS;

        let keys = keys(obs, ctx);
        self.track(obs, &keys, gap, now);
        let view = ctx.peers.and_then(|g| g.view(self.membership));
        let own = OwnNovelty {
            upstream: self.novelty.new_upstream,
            method: self.novelty.new_method,
            endpoint: self.novelty.new_endpoint,
            tool: self.tools.new_tool,
        };
        self.peer_novelty.observe(view.as_ref(), &keys, own, now);
        let judging = Judging {
            obs,
            ctx,
            view: view.as_ref(),
            now,
            history: now - first,
        };
        let (raw, top) = self.score(&judging);
        self.hold(raw, top, now);
        // Nothing learns from a request under suspicion: not its own baseline (even while it is
        // learning, once its peers flag it), not its peers'.
        let ceiling = LEARN_CEILING.min(settings.threshold / 2.0);
        if self.held_at_time(now) < ceiling {
            self.learn(obs, &keys, now);
            if !self.learning {
                self.teach_peers(ctx.peers, obs, &keys);
            }
        } else if self.learning && !obs.denied {
            // What a learning agent uses is still what it uses: its peers have judged the first
            // use, and the counts and sizes stay frozen, but a thing used again is no first use
            // again (otherwise one flagged habit is flagged on every use, for ever).
            self.novelty.learn_uses(&keys);
            self.tools.learn_uses();
        }
        self.remember_group(ctx.peers);
        self.current()
    }

    fn remember_group(&mut self, group: Option<&Arc<PeerGroup>>) {
        let same = match (&self.peers, group) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.peers = group.cloned();
        }
    }

    /// An established agent behaving normally is one of the examples its peers learn from.
    fn teach_peers(&mut self, group: Option<&Arc<PeerGroup>>, obs: &Observation<'_>, keys: &Keys) {
        let Some(group) = group else { return };
        if obs.denied {
            // A refused request is not a habit, but it counts in the peers' usual denial share.
            if let Some(m) = self.membership.filter(|m| group.is_group_of(m)) {
                group.teach(m, &[], self.teaching(obs, keys));
            }
            return;
        }
        let member = match self.membership.filter(|m| group.is_group_of(m)) {
            Some(m) => m,
            None => *self.membership.insert(group.join()),
        };
        let mut features = [
            (Feature::Upstream, keys.upstream),
            (Feature::Method, keys.method),
            (Feature::Endpoint, keys.endpoint),
            (Feature::Tool, 0),
        ];
        let n = match keys.tool {
            Some(t) => {
                features[3].1 = t;
                4
            }
            None => 3,
        };
        group.teach(member, &features[..n], self.teaching(obs, keys));
    }

    fn teaching(&self, obs: &Observation<'_>, keys: &Keys) -> Teaching {
        Teaching {
            sequence: self.requests,
            endpoint: keys.endpoint,
            tool: keys.tool,
            denied: obs.denied,
        }
    }

    fn track(&mut self, obs: &Observation<'_>, keys: &Keys, gap: Option<f64>, now: f64) {
        self.rate.observe(gap);
        let succeeded = !obs.denied && obs.status < 400;
        self.bytes
            .observe(succeeded.then_some(obs.bytes_out), keys.endpoint, now);
        self.denials.observe(obs.denied, now, &DENIALS);
        self.refusals.observe(obs.denied, keys.endpoint, now);
        self.errors.observe(is_error(obs), now, &ERRORS);
        let missed = (!obs.denied && is_not_found(obs.status))
            .then(|| keys.endpoint ^ keys.object.unwrap_or_default().rotate_left(17));
        self.not_found.observe(missed, now);
        self.novelty.observe(keys, now, !obs.denied);
        self.clone.observe(keys, now, self.rate.usual_gap());
        self.tools.observe(keys.tool, obs.denied, now);
        // Only objects the upstream handed over count as read.
        let read = (!obs.denied && obs.status < 400)
            .then_some(keys.object)
            .flatten();
        self.mass.observe(keys.endpoint, read, now);
        self.objects
            .observe(keys.endpoint, read.map(|o| (o, keys.number)), now);
        self.sequence
            .observe(keys.endpoint, !self.novelty.new_endpoint);
        // On an MCP route the tool is what the endpoint is elsewhere.
        let (thing, new) = match keys.tool {
            Some(tool) => (tool, self.tools.new_tool),
            None => (keys.endpoint, self.novelty.new_endpoint),
        };
        self.unfamiliar.observe(thing, new, !self.learning, now);
    }

    fn learn(&mut self, obs: &Observation<'_>, keys: &Keys, now: f64) {
        self.rate.learn();
        self.bytes.learn();
        self.denials.learn();
        self.errors.learn();
        self.not_found.learn();
        self.novelty.learn(keys, !obs.denied);
        self.clone.learn();
        self.tools.learn(!obs.denied);
        self.mass.learn();
        self.objects.learn();
        self.sequence.learn(self.learning);
        self.unfamiliar.learn();
        self.hours.add(now, obs.hour_of_week);
    }

    fn score(&self, j: &Judging<'_, '_>) -> (f64, [Option<Signal>; 3]) {
        let (obs, view, now, history) = (j.obs, j.view, j.now, j.history);
        if self.learning {
            let refused = (
                SignalKind::RefusedPaths,
                self.refusals.strength(self.denials.shares().0, now),
            );
            let Some(view) = view else {
                return self.combine([refused], j);
            };
            let [a, b, c, d, e, f] = self.peer_novelty.alone(view, &self.denials, now);
            return self.combine([a, b, c, d, e, f, refused], j);
        }
        let flag = |on: bool, strength: f64| if on { strength } else { 0.0 };
        let off_hours = self
            .hours
            .share(obs.hour_of_week, history)
            .map_or(0.0, HourHistogram::strength);
        // On an MCP route most requests are tool calls, so the tool-call rate and the request
        // rate (or tool denials and all denials) measure one thing: it counts once, under the
        // name of the stronger.
        let (rate, tool_rate) = stronger_of(self.rate.strength(), self.tools.rate_strength());
        // Flipping while the other address is live and coming back to one it had left are two
        // views of one thing: a second holder of the identity.
        let (clone, alternation) =
            stronger_of(self.clone.strength(now), self.clone.return_strength(now));
        let (denials, tool_denials) = stronger_of(
            self.denials.strength(now, &DENIALS),
            self.tools.denial_strength(now),
        );
        let candidates = [
            (SignalKind::Rate, rate),
            (
                SignalKind::NewUpstream,
                flag(self.novelty.new_upstream, NEW_UPSTREAM),
            ),
            (
                SignalKind::NewMethod,
                flag(self.novelty.new_method, NEW_METHOD),
            ),
            (
                SignalKind::NewPathShape,
                flag(self.novelty.new_endpoint, NEW_PATH_SHAPE),
            ),
            (SignalKind::Enumeration, self.novelty.enumeration(now)),
            (SignalKind::DenialBurst, denials),
            (SignalKind::ErrorRate, self.errors.strength(now, &ERRORS)),
            (SignalKind::NotFound, self.not_found.strength(now)),
            (SignalKind::BytesOut, self.bytes.strength()),
            (SignalKind::OffHours, off_hours),
            (SignalKind::Clone, clone),
            (SignalKind::Alternation, alternation),
            (SignalKind::NewTool, self.tools.new_tool_strength(now)),
            (SignalKind::ToolBurst, self.tools.burst_strength()),
            (SignalKind::ToolRate, tool_rate),
            (SignalKind::ToolDenials, tool_denials),
            (SignalKind::MassAccess, self.mass.strength()),
            (SignalKind::NewObjects, self.objects.strength(now)),
            (SignalKind::Sweep, self.objects.sweep_strength()),
            (SignalKind::IdWalk, self.objects.walk_strength()),
            (SignalKind::NewSequence, self.sequence.strength()),
            (SignalKind::Unfamiliar, self.unfamiliar.strength()),
        ]
        .map(|(kind, strength)| {
            let weight = self.peer_novelty.weight(view, kind);
            (kind, (strength * weight).min(1.0))
        });
        self.combine(candidates, j)
    }

    /// The noisy-OR of the signals, and the strongest three with their numbers.
    fn combine<const N: usize>(
        &self,
        candidates: [(SignalKind, f64); N],
        j: &Judging<'_, '_>,
    ) -> (f64, [Option<Signal>; 3]) {
        let mut quiet = 1.0;
        let mut top: [Option<Signal>; TOP_SIGNALS] = [None; TOP_SIGNALS];
        for (kind, strength) in candidates {
            if strength < NOISE_FLOOR {
                continue;
            }
            quiet *= 1.0 - strength.clamp(0.0, 1.0);
            insert_top(&mut top, self.explain(kind, strength, j));
        }
        ((1.0 - quiet).clamp(0.0, 1.0), top)
    }

    /// The value and baseline behind a signal, kept as numbers; text is made only when asked.
    fn explain(&self, kind: SignalKind, strength: f64, j: &Judging<'_, '_>) -> Signal {
        let (obs, ctx, view, now, history) = (j.obs, j.ctx, j.view, j.now, j.history);
        let by_peers = self.learning;
        let (value, baseline) = match kind {
            SignalKind::Enumeration | SignalKind::NewPathShape | SignalKind::NewTool
                if by_peers =>
            {
                (self.peer_novelty.lately(now), 0.0)
            }
            SignalKind::DenialBurst if by_peers => (
                self.denials.shares().0,
                view.and_then(PeerView::denial_share).unwrap_or_default(),
            ),
            SignalKind::Rate => self.rate.rates(),
            SignalKind::BytesOut => self.bytes.sizes(),
            SignalKind::DenialBurst => self.denials.shares(),
            SignalKind::ErrorRate => self.errors.shares(),
            SignalKind::NotFound => self.not_found.counts(now),
            SignalKind::Enumeration | SignalKind::NewPathShape => self.novelty.counts(now),
            SignalKind::NewUpstream | SignalKind::NewMethod => (1.0, 0.0),
            SignalKind::OffHours => self
                .hours
                .share(obs.hour_of_week, history)
                .map_or((0.0, 0.0), |s| (s.share, s.even)),
            SignalKind::Clone => self.clone.counts(now),
            SignalKind::Alternation => self.clone.return_counts(now),
            SignalKind::NewTool => self.tools.new_counts(now),
            SignalKind::ToolBurst => self.tools.distinct_counts(),
            SignalKind::ToolRate => self.tools.rates(),
            SignalKind::ToolDenials => self.tools.denial_shares(),
            SignalKind::MassAccess => self.mass.report(),
            SignalKind::NewObjects => self.objects.shares(),
            SignalKind::Sweep => self.objects.sweep_shares(),
            SignalKind::IdWalk => self.objects.walk_counts(),
            SignalKind::NewSequence => self.sequence.counts(),
            SignalKind::RefusedPaths => (self.refusals.count(now), self.denials.shares().0),
            SignalKind::Unfamiliar => self.unfamiliar.shares(),
        };
        Signal {
            kind,
            strength,
            value,
            baseline,
            subject: subject(kind, obs, ctx),
        }
    }

    /// The reported score holds the peak and decays with time, so an alarm does not vanish on the
    /// next ordinary request, and learning stays frozen for a while after an attack.
    fn hold(&mut self, raw: f64, top: [Option<Signal>; TOP_SIGNALS], now: f64) {
        let decayed = self.held_at_time(now);
        if raw >= decayed {
            self.held = raw;
            self.set_top(top);
        } else {
            self.held = decayed;
            if decayed < NOISE_FLOOR {
                self.set_top([None; TOP_SIGNALS]);
            }
        }
        self.held_at = now;
    }

    fn set_top(&mut self, top: [Option<Signal>; TOP_SIGNALS]) {
        let set = top.iter().any(Option::is_some);
        if set || self.top_set {
            self.top = top;
            self.top_set = set;
        }
    }

    pub(crate) fn held_at_time(&self, now: f64) -> f64 {
        if self.held == 0.0 {
            return 0.0;
        }
        let elapsed = (now - self.held_at).max(0.0);
        self.held * 0.5f64.powf(elapsed / HELD_HALF_LIFE)
    }

    pub(crate) fn current(&self) -> Score {
        Score {
            value: self.held,
            top: if self.top_set {
                self.top.iter().flatten().copied().collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// The request being judged, as the scoring steps need it.
struct Judging<'r, 'a> {
    obs: &'r Observation<'a>,
    ctx: &'r ObservationContext<'a>,
    view: Option<&'r PeerView<'r>>,
    now: f64,
    /// Seconds since the agent's first request.
    history: f64,
}

/// What a signal is about, named only when it is one thing the request shows.
fn subject(kind: SignalKind, obs: &Observation<'_>, ctx: &ObservationContext<'_>) -> Subject {
    match kind {
        SignalKind::NewUpstream => Subject::new(obs.upstream),
        SignalKind::NewMethod => Subject::new(obs.method),
        SignalKind::NewPathShape
        | SignalKind::Enumeration
        | SignalKind::MassAccess
        | SignalKind::NewObjects
        | SignalKind::Sweep
        | SignalKind::IdWalk
        | SignalKind::NotFound => Subject::path_shape(obs.path),
        SignalKind::Alternation => Subject::source(obs.source_ip, obs.cert_serial),
        SignalKind::NewTool | SignalKind::ToolRate | SignalKind::ToolDenials => {
            ctx.tool.map(Subject::new).unwrap_or_default()
        }
        SignalKind::Unfamiliar => ctx
            .tool
            .map_or_else(|| Subject::path_shape(obs.path), Subject::new),
        _ => Subject::default(),
    }
}

/// Two strengths of one phenomenon: the stronger stays, the other is zeroed.
fn stronger_of(a: f64, b: f64) -> (f64, f64) {
    if b > a {
        (0.0, b)
    } else {
        (a, 0.0)
    }
}

fn insert_top(top: &mut [Option<Signal>; TOP_SIGNALS], signal: Signal) {
    let weaker = |slot: &Option<Signal>| slot.is_none_or(|s| s.strength < signal.strength);
    if let Some(pos) = top.iter().position(weaker) {
        top[pos..].rotate_right(1);
        top[pos] = Some(signal);
    }
}

/// A failure of the upstream as seen by the agent. Gateway errors (502-504) are left out: an
/// unreachable upstream says nothing about the agent. "Not found" has a signal of its own.
fn is_error(obs: &Observation<'_>) -> bool {
    !obs.denied
        && obs.status >= 400
        && !(502..=504).contains(&obs.status)
        && !is_not_found(obs.status)
}

fn keys(obs: &Observation<'_>, ctx: &ObservationContext<'_>) -> Keys {
    let upstream = hash_str(b'u', obs.upstream);
    let method = hash_str(b'm', obs.method);
    let mut endpoint = Hasher::new(b'e');
    endpoint.u64(upstream);
    endpoint.u64(method);
    let path = shape_and_object(obs.path);
    endpoint.u64(path.shape);
    let mut ip = Hasher::new(b'i');
    match obs.source_ip {
        std::net::IpAddr::V4(v4) => ip.bytes(&v4.octets()),
        std::net::IpAddr::V6(v6) => ip.bytes(&v6.octets()),
    }
    Keys {
        upstream,
        method,
        endpoint: endpoint.finish(),
        ip: ip.finish(),
        serial: hash_str(b's', obs.cert_serial),
        tool: ctx.tool.map(|t| hash_str(b't', t)),
        object: path.object,
        number: path.number,
    }
}
