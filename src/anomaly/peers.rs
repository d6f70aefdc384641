//! Peer groups: what the agents sharing a role set (or, without roles, a label set) usually do,
//! learned from all of them, so that an agent with no history of its own is judged from its first
//! request, and an established agent that departs from both itself and its peers weighs more.
//!
//! A group is shared by many agents on many threads, so it is lock-free: a fixed table of feature
//! hashes (upstreams, methods, endpoints, tools), each with a 64-bit mask of the members that use
//! it. Only established agents behaving normally teach it (see `State::learn`), so a new agent,
//! or one under suspicion, cannot make its own habits look normal to its peers.
//!
//! When a group lends nothing:
//! - fewer than [`MIN_PEERS`] other members have taught it (a role of one agent, a brand-new
//!   role): there is nothing to compare with;
//! - its members do not share habits (a very mixed group): a feature counts as the peers' only
//!   when a quorum of the members use it (a fifth, and at least two), and the share of the
//!   members' requests that go to such shared features (the group's coherence) scales every peer
//!   signal, down to nothing below one half.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::stats::ramp;

/// Other members needed before a group lends a baseline.
pub const MIN_PEERS: u32 = 3;
/// A feature is the peers' when at least this share of the members use it (and at least two).
const QUORUM_SHARE: f64 = 0.2;
/// Feature slots; past them the group is saturated and lends no novelty.
const FEATURE_SLOTS: usize = 1024;
const MAX_PROBES: usize = 16;
/// Member bits per feature: past 64 members, members share bits (the quorum still holds).
const MEMBER_BITS: u32 = 64;
/// Coherence and denial shares are sampled on one teaching request in this many.
const SAMPLE_EVERY: u64 = 4;
const SAMPLE_HALVE_AT: u64 = 1 << 14;

/// What a feature hash stands for (so equal hashes of different kinds do not collide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feature {
    Upstream,
    Method,
    Endpoint,
    Tool,
}

impl Feature {
    fn key(self, hash: u64) -> u64 {
        let tag = match self {
            Self::Upstream => 0x1111,
            Self::Method => 0x2222,
            Self::Endpoint => 0x3333,
            Self::Tool => 0x4444,
        };
        super::shape::mix(hash ^ tag) | 1
    }
}

/// Counters sampled from the members' teaching requests.
#[derive(Debug, Default)]
struct Sampled {
    requests: AtomicU64,
    shared: AtomicU64,
    denied: AtomicU64,
}

impl Sampled {
    fn add(&self, shared: bool, denied: bool) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if shared {
            self.shared.fetch_add(1, Ordering::Relaxed);
        }
        if denied {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        if n >= SAMPLE_HALVE_AT {
            // Old samples fade; racing halvings only make the fade a little uneven.
            for c in [&self.requests, &self.shared, &self.denied] {
                c.store(c.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
            }
        }
    }

    fn share(&self, of: &AtomicU64) -> Option<f64> {
        let n = self.requests.load(Ordering::Relaxed);
        (n >= 16).then(|| of.load(Ordering::Relaxed) as f64 / n as f64)
    }
}

/// The shared baseline of one group. Cheap to consult: a few atomic loads per request.
pub struct PeerGroup {
    /// Unique in the process: a membership names its group by it.
    uid: u64,
    name: Arc<str>,
    members: AtomicU32,
    /// Pairs of (feature key, member mask); a zero key is an empty slot.
    features: Box<[AtomicU64]>,
    saturated: AtomicBool,
    endpoints: Sampled,
    tools: Sampled,
}

impl std::fmt::Debug for PeerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerGroup")
            .field("name", &self.name)
            .field("members", &self.members())
            .finish_non_exhaustive()
    }
}

/// A member's place in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Membership {
    group: u64,
    bit: u64,
}

/// What the peers say about one request, for one agent (itself left out).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerView<'a> {
    group: &'a PeerGroup,
    exclude: u64,
    quorum: u32,
    /// Scales peer signals: 0 for a group whose members do not share habits, 1 for a coherent one.
    pub(crate) endpoint_weight: f64,
    pub(crate) tool_weight: f64,
}

impl PeerGroup {
    pub fn new(name: Arc<str>) -> Self {
        static NEXT_UID: AtomicU64 = AtomicU64::new(1);
        Self {
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            name,
            members: AtomicU32::new(0),
            features: (0..2 * FEATURE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            saturated: AtomicBool::new(false),
            endpoints: Sampled::default(),
            tools: Sampled::default(),
        }
    }

    /// Heap bytes of the feature table, beside `size_of::<PeerGroup>()` and the name.
    pub const FEATURE_BYTES: usize = 2 * FEATURE_SLOTS * std::mem::size_of::<AtomicU64>();

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Members that have taught the group so far.
    pub fn members(&self) -> u32 {
        self.members.load(Ordering::Relaxed)
    }

    /// Share of the members' requests that go to endpoints a quorum of them use.
    pub fn coherence(&self) -> Option<f64> {
        self.endpoints.share(&self.endpoints.shared)
    }

    pub(crate) fn join(&self) -> Membership {
        let index = self.members.fetch_add(1, Ordering::Relaxed) % MEMBER_BITS;
        Membership {
            group: self.uid,
            bit: 1u64 << index,
        }
    }

    pub(crate) fn is_group_of(&self, m: &Membership) -> bool {
        self.uid == m.group
    }

    /// The group's view for an agent (`member`: its own place, left out of every count), or
    /// `None` when too few others have taught it.
    pub(crate) fn view(&self, member: Option<Membership>) -> Option<PeerView<'_>> {
        let exclude = member.filter(|m| self.is_group_of(m)).map_or(0, |m| m.bit);
        let members = self.members().min(MEMBER_BITS);
        let others = members - u32::from(exclude != 0);
        if others < MIN_PEERS {
            return None;
        }
        let quorum = ((f64::from(others) * QUORUM_SHARE).ceil() as u32).max(2);
        let weight = |s: &Sampled| s.share(&s.shared).map_or(0.0, |c| ramp(c, 0.5, 0.8));
        Some(PeerView {
            group: self,
            exclude,
            quorum,
            endpoint_weight: weight(&self.endpoints),
            tool_weight: weight(&self.tools),
        })
    }

    fn slot(&self, key: u64, insert: bool) -> Option<&AtomicU64> {
        let start = (key as usize) % FEATURE_SLOTS;
        for probe in 0..MAX_PROBES {
            let i = 2 * ((start + probe) % FEATURE_SLOTS);
            let (slot_key, mask) = (self.features.get(i)?, self.features.get(i + 1)?);
            match slot_key.load(Ordering::Acquire) {
                k if k == key => return Some(mask),
                0 if insert => {
                    match slot_key.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Some(mask),
                        Err(k) if k == key => return Some(mask),
                        Err(_) => continue,
                    }
                }
                0 => return None,
                _ => continue,
            }
        }
        if insert {
            self.saturated.store(true, Ordering::Relaxed);
        }
        None
    }

    fn users(&self, kind: Feature, hash: u64, exclude: u64) -> u32 {
        self.slot(kind.key(hash), false)
            .map_or(0, |m| (m.load(Ordering::Relaxed) & !exclude).count_ones())
    }

    /// One teaching request of an established member behaving normally.
    pub(crate) fn teach(&self, member: Membership, features: &[(Feature, u64)], ctx: Teaching) {
        for &(kind, hash) in features {
            if let Some(mask) = self.slot(kind.key(hash), true) {
                if mask.load(Ordering::Relaxed) & member.bit == 0 {
                    mask.fetch_or(member.bit, Ordering::Relaxed);
                }
            }
        }
        if !ctx.sequence.is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        let quorum = self.quorum_all();
        let shared = |kind, hash| self.users(kind, hash, 0) >= quorum;
        self.endpoints
            .add(shared(Feature::Endpoint, ctx.endpoint), ctx.denied);
        if let Some(tool) = ctx.tool {
            self.tools.add(shared(Feature::Tool, tool), ctx.denied);
        }
    }

    fn quorum_all(&self) -> u32 {
        let members = self.members().min(MEMBER_BITS);
        ((f64::from(members) * QUORUM_SHARE).ceil() as u32).max(2)
    }
}

/// What a teaching request adds to the sampled shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Teaching {
    pub(crate) sequence: u64,
    pub(crate) endpoint: u64,
    pub(crate) tool: Option<u64>,
    pub(crate) denied: bool,
}

impl PeerView<'_> {
    /// Whether a quorum of the other members use the feature. A saturated group knows everything.
    pub(crate) fn knows(&self, kind: Feature, hash: u64) -> bool {
        self.group.saturated.load(Ordering::Relaxed)
            || self.group.users(kind, hash, self.exclude) >= self.quorum
    }

    /// The members' usual share of refused requests.
    pub(crate) fn denial_share(&self) -> Option<f64> {
        let s = &self.group.endpoints;
        s.share(&s.denied)
    }
}

/// What `/agents/{id}` shows about the agent's peer group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerReport {
    pub group: String,
    pub members: u32,
    /// Share of the members' requests to endpoints most of them use; below 0.5 the group is too
    /// mixed to lend a baseline.
    pub coherence: Option<f64>,
    pub lends_baseline: bool,
}

impl PeerReport {
    pub(crate) fn of(group: &PeerGroup) -> Self {
        Self {
            group: group.name.to_string(),
            members: group.members(),
            coherence: group.coherence(),
            lends_baseline: group.members() >= MIN_PEERS
                && group.coherence().is_some_and(|c| c >= 0.5),
        }
    }
}

/// Every peer group of the process by its key, kept across reloads so a group's baseline
/// outlives a config change. Bounded by the role and label sets the configs name.
#[derive(Debug, Default)]
pub struct PeerGroups {
    groups: dashmap::DashMap<Arc<str>, Arc<PeerGroup>>,
}

impl PeerGroups {
    /// The group of `key`, made on first use (the only allocation, once per group).
    pub fn get(&self, key: &Arc<str>) -> Arc<PeerGroup> {
        if let Some(g) = self.groups.get(key) {
            return g.clone();
        }
        self.groups
            .entry(key.clone())
            .or_insert_with(|| Arc::new(PeerGroup::new(key.clone())))
            .clone()
    }
}

/// The peer-group key of an agent: its sorted role names, or without roles its sorted labels;
/// `None` for an agent with neither.
pub fn group_key<'a>(
    roles: impl IntoIterator<Item = &'a str>,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<Arc<str>> {
    let mut roles: Vec<&str> = roles.into_iter().collect();
    if !roles.is_empty() {
        roles.sort_unstable();
        roles.dedup();
        return Some(format!("roles:{}", roles.join(",")).into());
    }
    let mut labels: Vec<String> = labels
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if labels.is_empty() {
        return None;
    }
    labels.sort_unstable();
    Some(format!("labels:{}", labels.join(",")).into())
}
