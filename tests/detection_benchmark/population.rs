//! The regular fleet: five habit families, each agent with its own rate, endpoints and schedule,
//! producing its requests in time order.

use std::f64::consts::TAU;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use warden::anomaly::{AgentBehaviour, PeerGroup};

use super::catalogue::{ARTIFACT_UPSTREAM, MCP_SERVERS, MCP_TOOLS, REST_UPSTREAMS};
use super::endpoint::{Endpoint, IdKind, Objects};
use super::request::Request;
use super::rng::Rng;
use super::{DAY, HOUR};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Around the clock at a rate that drifts over the day.
    Steady,
    /// Sessions of quick requests between idle spells.
    Bursty,
    /// Office hours on weekdays, silent otherwise.
    Diurnal,
    /// Reads a new id under one of a few shapes on nearly every request.
    IdHeavy,
    /// Tool calls (POST to an MCP route) in short agentic loops, plus artifact downloads.
    McpTools,
}

pub const FAMILIES: [Family; 5] = [
    Family::Steady,
    Family::Bursty,
    Family::Diurnal,
    Family::IdHeavy,
    Family::McpTools,
];

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Bursty => "bursty",
            Self::Diurnal => "diurnal",
            Self::IdHeavy => "id-heavy",
            Self::McpTools => "mcp-tools",
        }
    }
}

/// How an agent spaces its requests.
#[derive(Clone, Copy)]
enum Pace {
    /// Poisson arrivals around a rate (requests per second) that drifts over the day, with the odd
    /// quick batch.
    Continuous { rate: f64, phase: f64 },
    /// Sessions of `mean_len` requests at `rate`, separated by idle spells of `idle` seconds.
    Sessions { rate: f64, mean_len: f64, idle: f64 },
}

/// Office hours, local time.
const OFFICE_OPENS: f64 = 8.0;
const OFFICE_CLOSES: f64 = 18.0;

pub struct Agent {
    pub family: Family,
    pace: Pace,
    /// Diurnal agents: their time zone, hours east of UTC.
    office_offset: Option<f64>,
    pub endpoints: Vec<Endpoint>,
    total_weight: f64,
    /// Used about once in 500 requests: habits have a long tail.
    rare: Endpoint,
    pub ip: IpAddr,
    serial: String,
    /// A certificate renewal: from then on a new serial, used alone.
    renewal: Option<(f64, String)>,
    pub rng: Rng,
    pub now: f64,
    batch_left: u32,
    session_left: u32,
    pub behaviour: AgentBehaviour,
    /// The agents of its family share one role, so one peer group.
    pub peers: Option<Arc<PeerGroup>>,
}

impl Agent {
    pub fn new(family: Family, seed: u64, index: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut habits = rng.fork();
        let endpoints = endpoints_for(family, &mut habits);
        let rare = Endpoint::rest(&mut habits, endpoints[0].upstream, Objects::None);
        let pace = pace_for(family, &mut habits);
        let office_offset = (family == Family::Diurnal).then(|| habits.between(0, 8) as f64 - 5.0);
        let serial = format!("{seed:016x}");
        let renewal = (index % 10 == 3).then(|| {
            (
                DAY + habits.unit() * 2.0 * DAY,
                format!("{seed:016x}-renewed"),
            )
        });
        let mut agent = Self {
            family,
            pace,
            office_offset,
            total_weight: endpoints.iter().map(|e| e.weight).sum(),
            endpoints,
            rare,
            ip: IpAddr::V4(Ipv4Addr::new(
                10,
                (seed >> 56) as u8,
                (index / 250) as u8,
                (index % 250) as u8 + 1,
            )),
            serial,
            renewal,
            now: habits.unit() * 1800.0,
            rng,
            batch_left: 0,
            session_left: 0,
            behaviour: AgentBehaviour::new(),
            peers: None,
        };
        agent.keep_office_hours();
        agent
    }

    /// A new identity: no history before `t`.
    pub fn start_at(&mut self, t: f64) {
        self.now = t + self.rng.unit() * 60.0;
        self.keep_office_hours();
    }

    /// The upstreams this agent works with.
    pub fn upstreams(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = self.endpoints.iter().map(|e| e.upstream).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Advances to the agent's next request, `speedup` times faster than its habit.
    pub fn advance(&mut self, speedup: f64) {
        match self.pace {
            Pace::Continuous { rate, phase } => {
                let wave = 1.0 + 0.3 * (TAU * self.now / DAY + phase).sin();
                let mut rate = rate * wave * speedup;
                if self.batch_left > 0 {
                    self.batch_left -= 1;
                    rate *= 4.0;
                } else if self.rng.chance(0.01) {
                    self.batch_left = 2 + self.rng.below(5) as u32;
                }
                self.now += self.rng.exp(rate);
            }
            Pace::Sessions {
                rate,
                mean_len,
                idle,
            } => {
                if self.session_left == 0 {
                    self.now += self.rng.exp(speedup / idle);
                    self.session_left = self.rng.exp(1.0 / mean_len).ceil().max(1.0) as u32;
                }
                self.session_left -= 1;
                self.now += self.rng.exp(rate * speedup);
            }
        }
        self.keep_office_hours();
    }

    /// The agent's usual mean rate while active, requests per second.
    pub fn usual_rate(&self) -> f64 {
        match self.pace {
            Pace::Continuous { rate, .. } => rate,
            Pace::Sessions {
                rate,
                mean_len,
                idle,
            } => mean_len / (mean_len / rate + idle),
        }
    }

    fn keep_office_hours(&mut self) {
        let Some(offset) = self.office_offset else {
            return;
        };
        if in_office(self.now, offset) {
            return;
        }
        let mut t = (self.now / HOUR).ceil() * HOUR;
        while !in_office(t, offset) {
            t += HOUR;
        }
        self.now = t + self.rng.unit() * 300.0;
    }

    /// A weighted pick among the agent's endpoints (the rare one now and then).
    pub fn usual_endpoint(&mut self) -> &Endpoint {
        if self.rng.chance(0.002) {
            return &self.rare;
        }
        let mut x = self.rng.unit() * self.total_weight;
        let last = self.endpoints.len() - 1;
        let i = self
            .endpoints
            .iter()
            .position(|e| {
                x -= e.weight;
                x <= 0.0
            })
            .unwrap_or(last);
        &self.endpoints[i]
    }

    /// One ordinary request at the current time.
    pub fn request(&mut self, req: &mut Request) {
        let mut rng = self.rng.fork();
        let endpoint = self.usual_endpoint();
        endpoint.write_path(endpoint.usual_object(&mut rng), &mut req.path);
        req.upstream = endpoint.upstream;
        req.method = endpoint.method;
        req.tool = endpoint.tool;
        let size = endpoint.usual_bytes(&mut rng);
        (req.status, req.denied, req.bytes_out) = match rng.unit() {
            u if u < 0.003 => (403, true, 60),
            u if u < 0.006 => (404, false, 90),
            u if u < 0.009 => (if u < 0.008 { 500 } else { 503 }, false, 120),
            _ => (200, false, size as u64),
        };
        self.identify(req);
    }

    /// The agent's own address and certificate.
    pub fn identify(&self, req: &mut Request) {
        req.ip = self.ip;
        req.serial.clear();
        match &self.renewal {
            Some((at, renewed)) if self.now >= *at => req.serial.push_str(renewed),
            _ => req.serial.push_str(&self.serial),
        }
    }
}

fn in_office(t: f64, offset: f64) -> bool {
    let local = t + offset * HOUR;
    let weekday = (local / DAY).floor().rem_euclid(7.0);
    let hour = local.rem_euclid(DAY) / HOUR;
    weekday < 5.0 && (OFFICE_OPENS..OFFICE_CLOSES).contains(&hour)
}

fn pace_for(family: Family, rng: &mut Rng) -> Pace {
    let phase = rng.unit() * TAU;
    match family {
        Family::Steady => Pace::Continuous {
            rate: rng.log_uniform(0.01, 0.3),
            phase,
        },
        Family::Diurnal => Pace::Continuous {
            rate: rng.log_uniform(0.02, 0.3),
            phase,
        },
        Family::IdHeavy => Pace::Continuous {
            rate: rng.log_uniform(0.02, 0.3),
            phase,
        },
        Family::Bursty => Pace::Sessions {
            rate: rng.log_uniform(0.5, 4.0),
            mean_len: rng.log_uniform(5.0, 60.0),
            idle: rng.log_uniform(60.0, 1800.0),
        },
        Family::McpTools => Pace::Sessions {
            rate: rng.log_uniform(0.2, 2.0),
            mean_len: rng.log_uniform(3.0, 20.0),
            idle: rng.log_uniform(30.0, 900.0),
        },
    }
}

fn endpoints_for(family: Family, rng: &mut Rng) -> Vec<Endpoint> {
    match family {
        Family::Steady | Family::Bursty | Family::Diurnal => {
            let upstreams = pick_upstreams(rng, 1, 3);
            let count = rng.between(3, 8);
            (0..count)
                .map(|i| {
                    let upstream = *rng.pick(&upstreams);
                    // The first endpoint always names objects, so every agent has ids to guard.
                    let objects = if i == 0 || rng.chance(0.5) {
                        Objects::WorkingSet {
                            kind: IdKind::random(rng),
                            size: rng.log_uniform(20.0, 5000.0) as u64,
                        }
                    } else {
                        Objects::None
                    };
                    Endpoint::rest(rng, upstream, objects)
                })
                .collect()
        }
        Family::IdHeavy => {
            let upstreams = pick_upstreams(rng, 1, 2);
            let readers = rng.between(2, 3);
            let others = rng.between(0, 2);
            let mut endpoints: Vec<Endpoint> = (0..readers)
                .map(|_| {
                    let upstream = *rng.pick(&upstreams);
                    let objects = Objects::Fresh {
                        kind: IdKind::random(rng),
                    };
                    let resource = *rng.pick(&super::catalogue::RESOURCES);
                    Endpoint::rest_on(rng, upstream, "GET", resource, objects)
                })
                .collect();
            for _ in 0..others {
                let upstream = *rng.pick(&upstreams);
                endpoints.push(Endpoint::rest(rng, upstream, Objects::None));
            }
            endpoints
        }
        Family::McpTools => {
            let servers = rng.between(1, 2);
            let mut endpoints = Vec::new();
            for _ in 0..servers {
                let server = *rng.pick(&MCP_SERVERS);
                for _ in 0..rng.between(2, 5) {
                    let tool = *rng.pick(&MCP_TOOLS);
                    endpoints.push(Endpoint::mcp(rng, server, tool));
                }
            }
            let artifacts = Objects::Fresh { kind: IdKind::Hex };
            let mut download = Endpoint::rest_on(rng, ARTIFACT_UPSTREAM, "GET", "blobs", artifacts);
            download.weight = 1.0;
            // The tool calls come first: `endpoints[0]` is the agent's main upstream.
            endpoints.push(download);
            endpoints
        }
    }
}

fn pick_upstreams(rng: &mut Rng, lo: u64, hi: u64) -> Vec<&'static str> {
    (0..rng.between(lo, hi))
        .map(|_| *rng.pick(&REST_UPSTREAMS))
        .collect()
}
