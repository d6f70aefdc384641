//! The attack kinds and how each one turns an agent's traffic. Every attack request counts as one
//! anomalous request; detection is the first score over the threshold.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use warden::anomaly::{AnomalySettings, Score};

use super::catalogue::{MCP_TOOLS, RESOURCES, REST_UPSTREAMS, WORDLIST};
use super::endpoint::{Endpoint, IdKind, Objects};
use super::population::{Agent, Family};
use super::request::Request;
use super::rng::Rng;
use super::HOUR;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttackKind {
    NewShapeEnumeration,
    KnownShapeEnumeration,
    IdScraping,
    ColdStart,
    BytesExfiltration,
    SlowExfiltration,
    DeniedProbing,
    Clone,
    TargetChange,
}

/// The kinds injected into established agents; cold start brings its own new agent.
pub const ON_ESTABLISHED: [AttackKind; 8] = [
    AttackKind::NewShapeEnumeration,
    AttackKind::KnownShapeEnumeration,
    AttackKind::IdScraping,
    AttackKind::BytesExfiltration,
    AttackKind::SlowExfiltration,
    AttackKind::DeniedProbing,
    AttackKind::Clone,
    AttackKind::TargetChange,
];

/// How long an attack may go unnoticed.
#[derive(Clone, Copy)]
pub enum Budget {
    Requests(u64),
    Seconds(f64),
}

/// Attacks measured in requests run this long, so misses beyond the budget are still measured.
const MAX_ATTACK_REQUESTS: u64 = 200;
/// A slow exfiltration grows its answers to this multiple of the usual size over its first hour.
const SLOW_EXFIL_GROWTH: f64 = 30.0;

impl AttackKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::NewShapeEnumeration => "enumeration, new shapes",
            Self::KnownShapeEnumeration => "enumeration, known shape (404)",
            Self::IdScraping => "id scraping (200)",
            Self::ColdStart => "cold start",
            Self::BytesExfiltration => "exfiltration by bytes",
            Self::SlowExfiltration => "slow exfiltration",
            Self::DeniedProbing => "probing denied paths",
            Self::Clone => "clone",
            Self::TargetChange => "target change",
        }
    }

    pub fn budget(self) -> Budget {
        match self {
            Self::SlowExfiltration => Budget::Seconds(HOUR),
            _ => Budget::Requests(30),
        }
    }
}

pub struct Outcome {
    /// Anomalous requests until the first score over the threshold, and seconds since the first.
    pub detected: Option<(u64, f64)>,
    pub peak: f64,
    /// The leading signal at detection, or at the peak if never detected.
    pub lead: Option<&'static str>,
}

impl Outcome {
    pub fn within(&self, budget: Budget) -> bool {
        match (self.detected, budget) {
            (Some((n, _)), Budget::Requests(max)) => n <= max,
            (Some((_, secs)), Budget::Seconds(max)) => secs <= max,
            (None, _) => false,
        }
    }
}

/// Turns `agent` into an attacker of `kind` from its next request on. `variant` picks between the
/// forms an attack takes (another address or another certificate, another upstream or other
/// shapes), so every form is seen across seeds.
pub fn run(
    agent: &mut Agent,
    kind: AttackKind,
    variant: u64,
    settings: &AnomalySettings,
) -> Outcome {
    let mut attacker = Attacker::new(agent, kind, variant);
    let mut req = Request::empty();
    let mut outcome = Outcome {
        detected: None,
        peak: 0.0,
        lead: None,
    };
    let mut started = None;
    for n in 1.. {
        let (at, score) = attacker.step(agent, &mut req, settings);
        let started = *started.get_or_insert(at);
        let elapsed = at - started;
        let over = match kind.budget() {
            Budget::Requests(_) => n > MAX_ATTACK_REQUESTS,
            Budget::Seconds(max) => elapsed > max,
        };
        if over {
            break;
        }
        let lead = score.top.first().map(|s| s.kind.as_str());
        if score.value > outcome.peak {
            outcome.peak = score.value;
            outcome.lead = lead;
        }
        if settings.exceeded_by(score.value) {
            outcome.detected = Some((n, elapsed));
            outcome.lead = lead;
            break;
        }
    }
    outcome
}

struct Attacker {
    kind: AttackKind,
    variant: u64,
    rng: Rng,
    /// Requests made so far.
    sent: u64,
    /// The endpoint whose id space is walked (enumeration, scraping, cold start).
    walked: usize,
    /// Where a changed agent goes instead.
    targets: Vec<Endpoint>,
    /// The thief's own clock, for a clone.
    thief_at: f64,
    started: f64,
}

impl Attacker {
    fn new(agent: &mut Agent, kind: AttackKind, variant: u64) -> Self {
        let mut rng = agent.rng.fork();
        let walked = agent
            .endpoints
            .iter()
            .position(Endpoint::has_ids)
            .expect("every agent has an endpoint with ids");
        let targets = if kind == AttackKind::TargetChange {
            new_targets(agent, variant, &mut rng)
        } else {
            Vec::new()
        };
        Self {
            kind,
            variant,
            rng,
            sent: 0,
            walked,
            targets,
            thief_at: agent.now,
            started: agent.now,
        }
    }

    /// One anomalous request: returns its time and score.
    fn step(
        &mut self,
        agent: &mut Agent,
        req: &mut Request,
        settings: &AnomalySettings,
    ) -> (f64, Score) {
        self.sent += 1;
        match self.kind {
            AttackKind::NewShapeEnumeration => {
                agent.advance(2.0);
                self.wordlist_path(agent, req);
                (req.status, req.denied, req.bytes_out) = match self.rng.below(20) {
                    0..=11 => (404, false, 90),
                    12..=16 => (200, false, 900),
                    _ => (403, true, 60),
                };
            }
            AttackKind::KnownShapeEnumeration => {
                agent.advance(2.0);
                self.walk_ids(agent, req);
                (req.status, req.denied, req.bytes_out) = (404, false, 90);
            }
            AttackKind::IdScraping => {
                agent.advance(2.0);
                let bytes = self.walk_ids(agent, req);
                (req.status, req.denied, req.bytes_out) = (200, false, bytes);
            }
            AttackKind::ColdStart => {
                agent.advance(2.0);
                if self.sent.is_multiple_of(2) {
                    let bytes = self.walk_ids(agent, req);
                    (req.status, req.denied, req.bytes_out) = (200, false, bytes);
                } else {
                    self.wordlist_path(agent, req);
                    (req.status, req.denied, req.bytes_out) = (403, true, 60);
                }
            }
            AttackKind::BytesExfiltration => {
                agent.advance(1.0);
                agent.request(req);
                if req.status == 200 {
                    req.bytes_out *= self.rng.between(20, 50);
                }
            }
            AttackKind::SlowExfiltration => {
                agent.advance(1.0);
                agent.request(req);
                if req.status == 200 {
                    let hours = (agent.now - self.started) / HOUR;
                    req.bytes_out = (req.bytes_out as f64 * SLOW_EXFIL_GROWTH.powf(hours)) as u64;
                }
            }
            AttackKind::DeniedProbing => {
                agent.advance(1.0);
                if self.rng.chance(0.5) {
                    self.wordlist_path(agent, req);
                } else {
                    let upstream = *self.rng.pick(&REST_UPSTREAMS);
                    let resource = *self.rng.pick(&RESOURCES);
                    req.upstream = upstream;
                    req.method = "GET";
                    req.tool = None;
                    req.path.clear();
                    let _ = write!(req.path, "/{upstream}/{resource}");
                }
                (req.status, req.denied, req.bytes_out) = (403, true, 60);
            }
            AttackKind::Clone => return self.clone_step(agent, req, settings),
            AttackKind::TargetChange => {
                agent.advance(1.0);
                let target = &self.targets[self.rng.below(self.targets.len() as u64) as usize];
                target.write_path(target.usual_object(&mut self.rng), &mut req.path);
                req.upstream = target.upstream;
                req.method = target.method;
                req.tool = target.tool;
                (req.status, req.denied, req.bytes_out) =
                    (200, false, target.usual_bytes(&mut self.rng) as u64);
            }
        }
        agent.identify(req);
        (
            agent.now,
            req.observe(&agent.behaviour, agent.peers.as_ref(), agent.now, settings),
        )
    }

    /// A scanner's guess under one of the agent's upstreams.
    fn wordlist_path(&mut self, agent: &Agent, req: &mut Request) {
        let upstream =
            agent.endpoints[self.rng.below(agent.endpoints.len() as u64) as usize].upstream;
        let (a, b) = (*self.rng.pick(&WORDLIST), *self.rng.pick(&WORDLIST));
        req.upstream = upstream;
        req.method = "GET";
        req.tool = None;
        req.path.clear();
        let _ = write!(req.path, "/{upstream}/{a}/{b}");
    }

    /// The next never-seen id under the agent's own id-bearing shape; returns a usual answer size.
    /// Under a numeric shape the walk reads consecutive numbers, as an enumeration of numbered
    /// records does; UUIDs and hex ids are a hash of the object's index, so there the walk reads
    /// ids in no order, as a scraper working through a list of ids it obtained elsewhere would.
    fn walk_ids(&mut self, agent: &Agent, req: &mut Request) -> u64 {
        let endpoint = &agent.endpoints[self.walked];
        endpoint.write_path(endpoint.unseen_object(self.sent), &mut req.path);
        req.upstream = endpoint.upstream;
        req.method = endpoint.method;
        req.tool = None;
        endpoint.usual_bytes(&mut self.rng) as u64
    }

    /// The thief replays ordinary-looking requests from elsewhere at the agent's own pace while
    /// the agent keeps working: the two streams merge in time order. Only the thief's requests
    /// count; once the identity is flagged the victim's own requests cross too.
    fn clone_step(
        &mut self,
        agent: &mut Agent,
        req: &mut Request,
        settings: &AnomalySettings,
    ) -> (f64, Score) {
        self.thief_at += self.rng.exp(agent.usual_rate());
        while agent.now < self.thief_at {
            agent.request(req);
            req.observe(&agent.behaviour, agent.peers.as_ref(), agent.now, settings);
            agent.advance(1.0);
        }
        let saved = agent.now;
        agent.now = self.thief_at;
        agent.request(req);
        agent.now = saved;
        if self.variant.is_multiple_of(2) {
            req.ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
        } else {
            req.serial.push_str("-stolen");
        }
        (
            self.thief_at,
            req.observe(
                &agent.behaviour,
                agent.peers.as_ref(),
                self.thief_at,
                settings,
            ),
        )
    }
}

/// Where a compromised agent goes instead: an upstream it never used (even variants), or, on its
/// own upstream, resources (or MCP tools) it never used (odd variants). Either way at its own pace
/// and with ordinary-looking answers.
fn new_targets(agent: &Agent, variant: u64, rng: &mut Rng) -> Vec<Endpoint> {
    let own = agent.upstreams();
    let main = agent.endpoints[0].upstream;
    let objects = |rng: &mut Rng| Objects::WorkingSet {
        kind: IdKind::random(rng),
        size: 1000,
    };
    if variant.is_multiple_of(2) {
        let elsewhere: Vec<&'static str> = REST_UPSTREAMS
            .iter()
            .copied()
            .filter(|u| !own.contains(u))
            .collect();
        let upstream = *rng.pick(&elsewhere);
        return (0..3)
            .map(|_| {
                let objects = objects(rng);
                Endpoint::rest(rng, upstream, objects)
            })
            .collect();
    }
    if agent.family == Family::McpTools {
        let unused: Vec<&'static str> = MCP_TOOLS
            .iter()
            .copied()
            .filter(|t| agent.endpoints.iter().all(|e| e.tool != Some(*t)))
            .collect();
        return (0..3)
            .map(|_| {
                let tool = *rng.pick(&unused);
                Endpoint::mcp(rng, main, tool)
            })
            .collect();
    }
    let unused: Vec<&'static str> = RESOURCES
        .iter()
        .copied()
        .filter(|r| {
            let prefix = format!("/{main}/{r}");
            agent.endpoints.iter().all(|e| e.prefix != prefix)
        })
        .collect();
    (0..3)
        .map(|_| {
            let resource = *rng.pick(&unused);
            let objects = objects(rng);
            Endpoint::rest_on(rng, main, "GET", resource, objects)
        })
        .collect()
}
