//! A simulated fleet: regular agents with varied habits, and four that turn. Every attacker must
//! cross the threshold within 30 of its anomalous requests; no regular agent may cross it, ever.
//!
//! Time is simulated, so hours of traffic run in seconds; a seeded PRNG makes every run the same.
//! `cargo test --test anomaly_scenarios -- --nocapture` prints the detection delays.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[path = "detection_benchmark/catalogue.rs"]
#[allow(dead_code)]
mod catalogue;

use catalogue::{REST_UPSTREAMS, SUBRESOURCES, WORDLIST};

use warden::anomaly::{AgentBehaviour, AnomalySettings, Observation, ObservationContext, Score};

const NORMAL_AGENTS: u64 = 50;
const HOUR: f64 = 3600.0;
const LEARNING: f64 = HOUR;
/// Attackers turn an hour after their learning period; everyone runs two and a half hours in all.
const ATTACK_AT: f64 = 2.0 * HOUR;
const END: f64 = 2.5 * HOUR;
/// The simulation starts on a Monday at 08h UTC.
const START_HOUR_OF_WEEK: f64 = 8.0;
const DETECTION_BUDGET: u64 = 30;
const ATTACK_REQUESTS: u64 = 200;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }

    fn exp(&mut self, rate: f64) -> f64 {
        -(1.0 - self.unit()).ln() / rate
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// The names the detection benchmark's fleet uses; this scenario keeps to the first of them.
const UPSTREAMS: &[&str] = REST_UPSTREAMS.split_at(8).0;
const RESOURCES: &[&str] = catalogue::RESOURCES.split_at(10).0;

#[derive(Clone, Copy)]
enum IdKind {
    None,
    Number,
    Uuid,
    Hex,
}

struct Endpoint {
    upstream: &'static str,
    method: &'static str,
    prefix: String,
    id: IdKind,
    suffix: Option<&'static str>,
    weight: f64,
    median_bytes: f64,
}

impl Endpoint {
    fn random(rng: &mut Rng, upstreams: &[&'static str]) -> Self {
        let upstream = *rng.pick(upstreams);
        let method = match rng.below(20) {
            0..=13 => "GET",
            14..=16 => "POST",
            17..=18 => "PUT",
            _ => "DELETE",
        };
        let id = match rng.below(4) {
            0 => IdKind::None,
            1 => IdKind::Number,
            2 => IdKind::Uuid,
            _ => IdKind::Hex,
        };
        let suffix =
            (rng.chance(0.25) && !matches!(id, IdKind::None)).then(|| *rng.pick(&SUBRESOURCES));
        Self {
            upstream,
            method,
            prefix: format!("/{upstream}/{}", rng.pick(RESOURCES)),
            id,
            suffix,
            weight: rng.log_uniform(1.0, 10.0),
            median_bytes: rng.log_uniform(200.0, 50_000.0),
        }
    }

    fn write_path(&self, rng: &mut Rng, out: &mut String) {
        out.clear();
        out.push_str(&self.prefix);
        let _ = match self.id {
            IdKind::None => Ok(()),
            IdKind::Number => write!(out, "/{}", rng.below(100_000)),
            IdKind::Uuid => {
                let (a, b) = (rng.next(), rng.next());
                write!(
                    out,
                    "/{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xffff,
                    b >> 48,
                    b & 0xffff_ffff_ffff
                )
            }
            IdKind::Hex => write!(
                out,
                "/{:024x}",
                u128::from(rng.next()) << 32 | u128::from(rng.next() >> 32)
            ),
        };
        if let Some(s) = self.suffix {
            out.push('/');
            out.push_str(s);
        }
    }
}

/// One regular agent's habits.
struct Habits {
    rate: f64,
    start: f64,
    pause: Option<(f64, f64)>,
    phase: f64,
    endpoints: Vec<Endpoint>,
    total_weight: f64,
    rare: Endpoint,
    ip: IpAddr,
    serial: String,
    rotation: Option<(f64, String)>,
}

impl Habits {
    fn random(rng: &mut Rng, index: u64) -> Self {
        let upstreams: Vec<&'static str> = (0..1 + rng.below(3))
            .map(|_| *rng.pick(UPSTREAMS))
            .collect();
        let endpoints: Vec<Endpoint> = (0..3 + rng.below(5))
            .map(|_| Endpoint::random(rng, &upstreams))
            .collect();
        let total_weight = endpoints.iter().map(|e| e.weight).sum();
        let pause = rng.chance(0.5).then(|| {
            let from = LEARNING + rng.unit() * 2.0 * HOUR;
            (from, from + rng.log_uniform(600.0, 3600.0))
        });
        let rotation = (index % 10 == 3).then(|| {
            (
                LEARNING + rng.unit() * 2.5 * HOUR,
                format!("{index:04x}-renewed"),
            )
        });
        Self {
            rate: rng.log_uniform(0.2, 20.0),
            start: rng.unit() * 1800.0,
            pause,
            phase: rng.unit() * std::f64::consts::TAU,
            rare: Endpoint::random(rng, &upstreams),
            endpoints,
            total_weight,
            ip: IpAddr::V4(Ipv4Addr::new(
                10,
                1,
                (index / 250) as u8,
                (index % 250) as u8 + 1,
            )),
            serial: format!("{index:04x}"),
            rotation,
        }
    }
}

struct Request {
    upstream: &'static str,
    method: &'static str,
    path: String,
    status: u16,
    denied: bool,
    bytes_out: u64,
    ip: IpAddr,
    serial: String,
}

/// A regular agent producing its requests in time order.
struct Agent {
    habits: Habits,
    rng: Rng,
    now: f64,
    batch_left: u32,
    behaviour: AgentBehaviour,
}

impl Agent {
    fn new(seed: u64, index: u64) -> Self {
        let mut rng = Rng(seed);
        let habits = Habits::random(&mut rng, index);
        let now = habits.start;
        Self {
            habits,
            rng,
            now,
            batch_left: 0,
            behaviour: AgentBehaviour::new(),
        }
    }

    /// Advances to the next request time: Poisson arrivals around a slowly varying rate, an
    /// occasional quick batch, and an idle pause for some agents.
    fn advance(&mut self, speedup: f64) {
        let h = &self.habits;
        if speedup != 1.0 {
            // An attack burst runs at a multiple of the agent's usual (mean) rate.
            self.now += self.rng.exp(h.rate * speedup);
            return;
        }
        let slow_wave =
            1.0 + 0.4 * (std::f64::consts::TAU * self.now / (2.0 * HOUR) + h.phase).sin();
        let mut rate = h.rate * slow_wave;
        if self.batch_left > 0 {
            self.batch_left -= 1;
            rate *= 4.0;
        } else if self.rng.chance(0.01) {
            self.batch_left = 2 + self.rng.below(5) as u32;
        }
        self.now += self.rng.exp(rate);
        if let Some((from, to)) = h.pause {
            if (from..to).contains(&self.now) {
                self.now = to + self.rng.exp(h.rate);
            }
        }
    }

    fn request(&mut self, req: &mut Request) {
        let h = &self.habits;
        let endpoint = if self.rng.chance(0.002) {
            &h.rare
        } else {
            let mut x = self.rng.unit() * h.total_weight;
            h.endpoints
                .iter()
                .find(|e| {
                    x -= e.weight;
                    x <= 0.0
                })
                .unwrap_or(&h.endpoints[0])
        };
        endpoint.write_path(&mut self.rng, &mut req.path);
        req.upstream = endpoint.upstream;
        req.method = endpoint.method;
        req.ip = h.ip;
        req.serial.clear();
        match &h.rotation {
            Some((at, renewed)) if self.now >= *at => req.serial.push_str(renewed),
            _ => req.serial.push_str(&h.serial),
        }
        let size = endpoint.median_bytes * (0.6 * self.rng.normal()).exp();
        (req.status, req.denied, req.bytes_out) = match self.rng.unit() {
            u if u < 0.005 => (403, true, 60),
            u if u < 0.010 => (if u < 0.008 { 500 } else { 503 }, false, 120),
            _ => (200, false, size as u64),
        };
    }

    fn observe(&self, req: &Request, at: f64, settings: &AnomalySettings) -> Score {
        let obs = Observation {
            upstream: req.upstream,
            method: req.method,
            path: &req.path,
            status: req.status,
            denied: req.denied,
            bytes_in: 200,
            bytes_out: req.bytes_out,
            source_ip: req.ip,
            cert_serial: &req.serial,
            now: Duration::from_secs_f64(at),
            hour_of_week: ((START_HOUR_OF_WEEK + at / HOUR) as u16) % 168,
        };
        self.behaviour.observe(&obs, settings)
    }
}

fn empty_request() -> Request {
    Request {
        upstream: "",
        method: "",
        path: String::with_capacity(96),
        status: 200,
        denied: false,
        bytes_out: 0,
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        serial: String::with_capacity(16),
    }
}

#[derive(Default)]
struct Tally {
    requests: u64,
    false_positives: u64,
    max_score: f64,
    /// The strongest each signal got on regular traffic: how much room is left below the threshold.
    max_signal: BTreeMap<&'static str, f64>,
}

impl Tally {
    fn record(&mut self, score: &Score, settings: &AnomalySettings) {
        self.requests += 1;
        self.max_score = self.max_score.max(score.value);
        for s in &score.top {
            let max = self.max_signal.entry(s.kind.as_str()).or_default();
            *max = max.max(s.strength);
        }
        if settings.exceeded_by(score.value) {
            self.false_positives += 1;
        }
    }
}

/// Runs an agent's regular behaviour until `until`, counting every score over the threshold.
fn run_normal(agent: &mut Agent, until: f64, settings: &AnomalySettings, tally: &mut Tally) {
    let mut req = empty_request();
    loop {
        agent.advance(1.0);
        if agent.now >= until {
            return;
        }
        agent.request(&mut req);
        let score = agent.behaviour_score(&req, settings);
        tally.record(&score, settings);
    }
}

impl Agent {
    fn behaviour_score(&self, req: &Request, settings: &AnomalySettings) -> Score {
        self.observe(req, self.now, settings)
    }
}

#[derive(Clone, Copy, Debug)]
enum Attack {
    Enumeration,
    BytesOut,
    Rate,
    Clone,
}

/// Turns a regular agent into an attacker and returns the number of anomalous requests until its
/// score crossed the threshold, with the signal that led, or `None`.
fn run_attack(
    agent: &mut Agent,
    attack: Attack,
    settings: &AnomalySettings,
) -> Option<(u64, String)> {
    let mut req = empty_request();
    let mut clone_clock = agent.now;
    let mut clone_rng = Rng(0xc10e);
    for n in 1..=ATTACK_REQUESTS {
        let score = match attack {
            Attack::Enumeration => {
                agent.advance(1.0);
                agent.request(&mut req);
                let (a, b) = (*agent.rng.pick(&WORDLIST), *agent.rng.pick(&WORDLIST));
                req.path.clear();
                let _ = write!(req.path, "/{}/{a}/{b}", req.upstream);
                (req.status, req.denied, req.bytes_out) = match agent.rng.below(3) {
                    0 => (404, true, 60),
                    1 => (404, false, 150),
                    _ => (200, false, 900),
                };
                agent.behaviour_score(&req, settings)
            }
            Attack::BytesOut => {
                agent.advance(1.0);
                agent.request(&mut req);
                req.bytes_out *= 20;
                agent.behaviour_score(&req, settings)
            }
            Attack::Rate => {
                agent.advance(10.0);
                agent.request(&mut req);
                agent.behaviour_score(&req, settings)
            }
            Attack::Clone => {
                // The thief replays ordinary-looking requests from elsewhere at the agent's own
                // pace while the agent keeps working: merge the two streams in time order.
                clone_clock += clone_rng.exp(agent.habits.rate);
                while agent.now < clone_clock {
                    agent.advance(1.0);
                    agent.request(&mut req);
                    // Once the identity is flagged the victim's own requests cross too; detection
                    // is counted in the thief's requests only.
                    agent.observe(&req, agent.now.min(clone_clock), settings);
                }
                agent.request(&mut req);
                req.ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
                agent.observe(&req, clone_clock, settings)
            }
        };
        if settings.exceeded_by(score.value) {
            let lead = score.top.first().map(|s| s.kind.as_str()).unwrap_or("?");
            return Some((n, lead.to_owned()));
        }
    }
    None
}

/// Agents are independent, so the fleet runs on a few threads; each agent's own seed keeps the
/// outcome the same however the work is split.
fn run_fleet(seeds: &[u64], settings: &AnomalySettings) -> Tally {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let per_thread = seeds.len().div_ceil(threads);
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .chunks(per_thread)
            .enumerate()
            .map(|(chunk, seeds)| {
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for (i, &seed) in seeds.iter().enumerate() {
                        let index = (chunk * per_thread + i) as u64;
                        let mut agent = Agent::new(seed, index);
                        run_normal(&mut agent, END, settings, &mut tally);
                        assert!(
                            !agent.behaviour.snapshot().learning,
                            "agent {index} finished learning"
                        );
                    }
                    tally
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fleet thread"))
            .collect()
    });
    tallies.into_iter().fold(Tally::default(), |mut all, t| {
        all.requests += t.requests;
        all.false_positives += t.false_positives;
        all.max_score = all.max_score.max(t.max_score);
        for (kind, strength) in t.max_signal {
            let max = all.max_signal.entry(kind).or_default();
            *max = max.max(strength);
        }
        all
    })
}

#[test]
fn fleet_of_regular_agents_and_four_attackers() {
    let settings = AnomalySettings::default();
    assert_eq!(settings.threshold, 0.8);
    let mut seed = Rng(0x05ee_d0ff_1ee7);
    let seeds: Vec<u64> = (0..NORMAL_AGENTS + 4).map(|_| seed.next()).collect();
    let mut tally = run_fleet(&seeds[..NORMAL_AGENTS as usize], &settings);

    let attacks = [
        Attack::Enumeration,
        Attack::BytesOut,
        Attack::Rate,
        Attack::Clone,
    ];
    let mut failures = Vec::new();
    for (i, attack) in attacks.into_iter().enumerate() {
        let index = NORMAL_AGENTS + i as u64;
        let mut agent = Agent::new(seeds[index as usize], index);
        run_normal(&mut agent, ATTACK_AT, &settings, &mut tally);
        let before = tally.requests;
        let outcome = run_attack(&mut agent, attack, &settings);
        let rate = agent.habits.rate;
        match &outcome {
            Some((n, lead)) => println!(
                "scenario {attack:?}: agent at {rate:.2} req/s detected after {n} anomalous requests (leading signal: {lead}); {} regular requests before it turned",
                before
            ),
            None => println!("scenario {attack:?}: agent at {rate:.2} req/s NOT detected in {ATTACK_REQUESTS} requests"),
        }
        for s in &agent.behaviour.snapshot().signals {
            println!("    {} {:.2}: {}", s.signal, s.strength, s.detail);
        }
        if outcome.as_ref().is_none_or(|(n, _)| *n > DETECTION_BUDGET) {
            failures.push(format!("{attack:?}: {outcome:?}"));
        }
    }

    println!(
        "regular traffic: {} requests from {} agents (incl. attackers before they turned), max score {:.3}, false positives {}",
        tally.requests,
        NORMAL_AGENTS + 4,
        tally.max_score,
        tally.false_positives
    );
    println!(
        "strongest signals on regular traffic: {:?}",
        tally.max_signal
    );
    assert!(
        tally.requests > 100_000,
        "an honest amount of traffic: {}",
        tally.requests
    );
    assert_eq!(
        tally.false_positives, 0,
        "no regular request crosses the threshold"
    );
    assert!(
        failures.is_empty(),
        "attacks not detected within {DETECTION_BUDGET} requests: {failures:?}"
    );
}

const MCP_TOOLS: [&str; 30] = [
    "search_docs",
    "get_ticket",
    "list_tickets",
    "add_comment",
    "update_ticket",
    "get_customer",
    "list_orders",
    "get_order",
    "refund_order",
    "send_email",
    "read_file",
    "write_file",
    "list_files",
    "run_query",
    "get_metrics",
    "create_user",
    "delete_user",
    "reset_password",
    "export_customers",
    "read_secret",
    "rotate_key",
    "deploy_service",
    "scale_service",
    "get_logs",
    "create_branch",
    "merge_pull_request",
    "delete_repo",
    "post_message",
    "schedule_meeting",
    "translate_text",
];
const MCP_UPSTREAMS: [&str; 3] = ["tickets-mcp", "crm-mcp", "ops-mcp"];
/// A day and a bit: past the learning hour, through a night and into the next morning.
const MCP_END: f64 = 26.0 * HOUR;
const MCP_TURN_AT: f64 = 20.0 * HOUR;
const MCP_TURNED_AGENTS: u64 = 5;
/// A turned agent must be flagged within this many calls of tools it never used.
const MCP_DETECTION_BUDGET: u64 = 6;

/// An MCP agent: every request a `tools/call` on `POST /mcp`, among a few usual tools with uneven
/// weights, at a slowly varying pace, with rare legitimate calls of one more tool, now and then a
/// refused call and an upstream error.
struct McpAgent {
    rng: Rng,
    now: f64,
    rate: f64,
    phase: f64,
    upstream: &'static str,
    tools: Vec<(&'static str, f64)>,
    total_weight: f64,
    rare: &'static str,
    ip: IpAddr,
    serial: String,
    behaviour: AgentBehaviour,
}

impl McpAgent {
    fn new(seed: u64, index: u64) -> Self {
        let mut rng = Rng(seed);
        let mut pool: Vec<&'static str> = MCP_TOOLS.to_vec();
        let mut take = |rng: &mut Rng| pool.swap_remove(rng.below(pool.len() as u64) as usize);
        let tools: Vec<(&'static str, f64)> = (0..2 + rng.below(7))
            .map(|_| (take(&mut rng), rng.log_uniform(1.0, 10.0)))
            .collect();
        let rare = take(&mut rng);
        Self {
            total_weight: tools.iter().map(|t| t.1).sum(),
            tools,
            rare,
            rate: rng.log_uniform(0.05, 2.0),
            phase: rng.unit() * std::f64::consts::TAU,
            upstream: *rng.pick(&MCP_UPSTREAMS),
            now: rng.unit() * 600.0,
            ip: IpAddr::V4(Ipv4Addr::new(10, 2, 0, index as u8 + 1)),
            serial: format!("mcp{index:04x}"),
            behaviour: AgentBehaviour::new(),
            rng,
        }
    }

    fn advance(&mut self) {
        let wave = 1.0 + 0.5 * (std::f64::consts::TAU * self.now / (6.0 * HOUR) + self.phase).sin();
        self.now += self.rng.exp(self.rate * wave);
    }

    fn usual_tool(&mut self) -> &'static str {
        if self.rng.chance(0.002) {
            return self.rare;
        }
        let mut x = self.rng.unit() * self.total_weight;
        self.tools
            .iter()
            .find(|t| {
                x -= t.1;
                x <= 0.0
            })
            .map_or(self.tools[0].0, |t| t.0)
    }

    /// A tool it never called, not even rarely.
    fn other_tool(&mut self) -> &'static str {
        loop {
            let tool = *self.rng.pick(&MCP_TOOLS);
            if tool != self.rare && self.tools.iter().all(|t| t.0 != tool) {
                return tool;
            }
        }
    }

    fn call(&mut self, tool: &str, settings: &AnomalySettings) -> Score {
        let (status, denied, bytes_out) = match self.rng.unit() {
            u if u < 0.005 => (403, true, 90),
            u if u < 0.008 => (500, false, 120),
            _ => (200, false, (800.0 * (0.5 * self.rng.normal()).exp()) as u64),
        };
        let obs = Observation {
            upstream: self.upstream,
            method: "POST",
            path: "/mcp",
            status,
            denied,
            bytes_in: 300,
            bytes_out,
            source_ip: self.ip,
            cert_serial: &self.serial,
            now: Duration::from_secs_f64(self.now),
            hour_of_week: ((START_HOUR_OF_WEEK + self.now / HOUR) as u16) % 168,
        };
        let ctx = ObservationContext {
            tool: Some(tool),
            ..ObservationContext::default()
        };
        self.behaviour.observe_with(&obs, &ctx, settings)
    }

    fn run_usual(&mut self, until: f64, settings: &AnomalySettings, tally: &mut Tally) {
        loop {
            self.advance();
            if self.now >= until {
                return;
            }
            let tool = self.usual_tool();
            let score = self.call(tool, settings);
            tally.record(&score, settings);
        }
    }
}

#[test]
fn mcp_fleet_and_agents_that_turn_to_other_tools() {
    let settings = AnomalySettings::default();
    let mut seed = Rng(0x3c9_70015);
    let mut tally = Tally::default();
    for index in 0..NORMAL_AGENTS {
        let mut agent = McpAgent::new(seed.next(), index);
        agent.run_usual(MCP_END, &settings, &mut tally);
        assert!(!agent.behaviour.snapshot().learning);
    }
    let mut delays = Vec::new();
    for index in NORMAL_AGENTS..NORMAL_AGENTS + MCP_TURNED_AGENTS {
        let mut agent = McpAgent::new(seed.next(), index);
        agent.run_usual(MCP_TURN_AT, &settings, &mut tally);
        // It keeps its pace and mostly its usual tools; one call in three is a tool it never used.
        let mut other_calls = 0;
        let mut detected = None;
        for _ in 0..200 {
            agent.advance();
            let turned = agent.rng.chance(1.0 / 3.0);
            let tool = if turned {
                agent.other_tool()
            } else {
                agent.usual_tool()
            };
            other_calls += u64::from(turned);
            if settings.exceeded_by(agent.call(tool, &settings).value) {
                detected = Some(other_calls);
                break;
            }
        }
        println!(
            "turned MCP agent {index} ({} usual tools, {:.2} calls/s): flagged after {detected:?} calls of other tools",
            agent.tools.len(),
            agent.rate
        );
        for s in &agent.behaviour.snapshot().signals {
            println!("    {} {:.2}: {}", s.signal, s.strength, s.detail);
        }
        delays.push(detected);
    }
    println!(
        "MCP fleet: {} usual calls from {} agents over {:.0} h, max score {:.3}, false positives {}; strongest signals {:?}",
        tally.requests,
        NORMAL_AGENTS + MCP_TURNED_AGENTS,
        MCP_END / HOUR,
        tally.max_score,
        tally.false_positives,
        tally.max_signal
    );
    assert!(tally.requests > 100_000, "{}", tally.requests);
    assert_eq!(tally.false_positives, 0);
    assert!(
        delays
            .iter()
            .all(|d| d.is_some_and(|n| n <= MCP_DETECTION_BUDGET)),
        "{delays:?}"
    );
}
