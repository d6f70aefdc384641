//! A benchmark, not a scenario: seeded populations of regular agents in five habit families
//! (steady, bursty, diurnal, id-heavy, MCP tool users) run three and a half days of traffic each;
//! then nine kinds of attack are injected into established agents (or, for cold start, into a
//! new one). Prints per attack kind the share detected within its budget and the requests (or
//! time) to detect, and for regular traffic the false positives per million requests and the
//! largest score. docs/detection.md explains the populations and the attack kinds.
//!
//! `cargo test --test detection_benchmark -- --nocapture` prints the table;
//! `WARDEN_DETECTION_SCALE=4` runs four times as many seeds.
//!
//! Regular traffic must never cross the threshold, and every kind expected to be detected must be
//! detected in every instance within its budget. Kinds the engine is known to miss are listed as
//! such, with the reason, and held only to the share it detects today, so they cannot get worse
//! unnoticed.

// A module of its own so the simulation's files live in `detection_benchmark/`.
#[path = "detection_benchmark/mod.rs"]
mod bench;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use warden::anomaly::{AnomalySettings, PeerGroup, PeerGroups};

use bench::attacks::{self, AttackKind, ON_ESTABLISHED};
use bench::population::{Agent, Family, FAMILIES};
use bench::report::{self, Expected, KindSummary};
use bench::request::Request;
use bench::rng::Rng;
use bench::tally::{Normal, Trial};
use bench::{DAY, HOUR};
/// Attacks start on Thursday at 11h UTC, after three and a half days of regular traffic.
const ATTACK_AT: f64 = 3.0 * DAY + 11.0 * HOUR;
/// Per family and seed: the first agents each turn into one attack kind, the rest stay regular.
const AGENTS_PER_FAMILY: u64 = 11;
const BASE_SEEDS: [u64; 3] = [0x5eed_0001, 0x5eed_0002, 0x5eed_0003];

/// The goal is every kind in every seed within its budget; this is where each kind stands today.
/// docs/detection.md has the figures behind each gap.
const EXPECTATIONS: [(AttackKind, Expected); 9] = [
    (AttackKind::NewShapeEnumeration, Expected::Met),
    (AttackKind::KnownShapeEnumeration, Expected::Met),
    (AttackKind::IdScraping, Expected::Met),
    (AttackKind::ColdStart, Expected::Met),
    (AttackKind::BytesExfiltration, Expected::Met),
    (AttackKind::SlowExfiltration, Expected::Met),
    (AttackKind::DeniedProbing, Expected::Met),
    (
        AttackKind::Clone,
        Expected::KnownGap {
            reason: "a second holder is seen only when the two streams meet: flipping while the \
             other address or certificate is live, or coming back to one it had left within the \
             hour. A thief that starts while an agent that works in sessions goes idle looks like \
             a move until the agent comes back (one bursty instance: 44 thief requests first)",
            floor: 0.93,
        },
    ),
    (AttackKind::TargetChange, Expected::Met),
];

/// One agent's run: regular traffic until the attack time, then, maybe, an attack.
#[derive(Clone, Copy)]
struct Unit {
    seed_index: u64,
    seed: u64,
    family: Family,
    /// Below `AGENTS_PER_FAMILY`: an agent of the population; equal: the cold-start newcomer.
    instance: u64,
}

impl Unit {
    fn agent(&self, peers: Option<&Arc<PeerGroup>>) -> Agent {
        let family_index = FAMILIES.iter().position(|f| *f == self.family).unwrap_or(0) as u64;
        let index = family_index * (AGENTS_PER_FAMILY + 1) + self.instance;
        let mut rng = Rng::new(self.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut agent = Agent::new(self.family, rng.next(), index);
        agent.peers = peers.cloned();
        agent
    }

    fn variant(&self) -> u64 {
        self.seed_index + self.family as u64
    }

    fn run(
        &self,
        peers: Option<&Arc<PeerGroup>>,
        settings: &AnomalySettings,
    ) -> (Normal, Option<Trial>) {
        let mut agent = self.agent(peers);
        let mut normal = Normal::default();
        let trial = |kind, outcome| Trial {
            kind,
            family: self.family,
            seed: self.seed,
            outcome,
        };
        if self.instance == AGENTS_PER_FAMILY {
            agent.start_at(ATTACK_AT);
            let outcome = attacks::run(&mut agent, AttackKind::ColdStart, self.variant(), settings);
            return (normal, Some(trial(AttackKind::ColdStart, outcome)));
        }
        let mut req = Request::empty();
        loop {
            agent.advance(1.0);
            if agent.now >= ATTACK_AT {
                break;
            }
            agent.request(&mut req);
            let score = req.observe(&agent.behaviour, agent.peers.as_ref(), agent.now, settings);
            normal.record(self.family, &score, settings);
        }
        let Some(&kind) = ON_ESTABLISHED.get(self.instance as usize) else {
            return (normal, None);
        };
        assert!(
            !agent.behaviour.snapshot().learning,
            "the agent is established before it turns"
        );
        let outcome = attacks::run(&mut agent, kind, self.variant(), settings);
        (normal, Some(trial(kind, outcome)))
    }
}

fn seeds() -> Vec<u64> {
    let scale: u64 = std::env::var("WARDEN_DETECTION_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut more = Rng::new(0xb1e5_5ed5);
    (0..BASE_SEEDS.len() as u64 * scale)
        .map(|i| {
            BASE_SEEDS
                .get(i as usize)
                .copied()
                .unwrap_or_else(|| more.next())
        })
        .collect()
}

fn units(seeds: &[u64]) -> Vec<Unit> {
    let mut units = Vec::new();
    for (seed_index, &seed) in seeds.iter().enumerate() {
        for family in FAMILIES {
            for instance in 0..=AGENTS_PER_FAMILY {
                units.push(Unit {
                    seed_index: seed_index as u64,
                    seed,
                    family,
                    instance,
                });
            }
        }
    }
    units
}

/// The agents of one family in one seed share a role, so a peer group: they run one after the
/// other (the cold-start newcomer last, when its peers have learned), which keeps the outcome
/// the same however the families are spread over threads.
fn run_all(units: &[Unit], with_peers: bool, settings: &AnomalySettings) -> (Normal, Vec<Trial>) {
    let mut families: Vec<Vec<Unit>> = Vec::new();
    for unit in units {
        match families.last_mut() {
            Some(f) if f[0].seed == unit.seed && f[0].family == unit.family => f.push(*unit),
            _ => families.push(vec![*unit]),
        }
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Normal::default(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(family) = families.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let groups = PeerGroups::default();
                    let peers = groups.get(&Arc::from(format!("{:?}", family[0].family)));
                    for unit in family {
                        let (normal, trial) = unit.run(with_peers.then_some(&peers), settings);
                        let mut results = results.lock().expect("results");
                        results.0.merge(normal);
                        results.1.extend(trial);
                    }
                }
            });
        }
    });
    let (normal, mut trials) = results.into_inner().expect("results");
    trials.sort_by_key(|t| (t.kind, t.seed, t.family));
    (normal, trials)
}

/// Each agent judged against its own baseline only.
#[test]
fn detection_benchmark() {
    benchmark(false, 0.0);
}

/// As the proxy runs it: agents of one role also judged by their peer group. None measured; the
/// allowance is a margin for a change of population, not a known gap.
#[test]
fn detection_benchmark_with_peer_groups() {
    benchmark(true, 50.0);
}

fn benchmark(with_peers: bool, false_positives_per_million: f64) {
    let settings = AnomalySettings::default();
    let seeds = seeds();
    let units = units(&seeds);
    let started = std::time::Instant::now();
    let (normal, trials) = run_all(&units, with_peers, &settings);

    println!(
        "detection benchmark{}: {} seeds x {} agents ({} per family, {} turning), {:.1} days of regular traffic, threshold {:.2}, {:.1} s",
        if with_peers { " with peer groups" } else { ", own baselines only" },
        seeds.len(),
        units.len() / seeds.len(),
        AGENTS_PER_FAMILY + 1,
        ON_ESTABLISHED.len() + 1,
        ATTACK_AT / DAY,
        settings.threshold,
        started.elapsed().as_secs_f64(),
    );
    let summaries: Vec<(KindSummary, &Expected)> = EXPECTATIONS
        .iter()
        .map(|(kind, expected)| (KindSummary::of(*kind, &trials), expected))
        .collect();
    report::print_attacks(&summaries);
    report::print_normal(&normal, &settings);
    report::print_gaps(&summaries);

    assert_eq!(
        summaries.iter().map(|(s, _)| s.instances).sum::<usize>(),
        trials.len(),
        "every attack kind has an expectation"
    );
    assert!(
        normal.requests > 1_000_000,
        "an honest amount of regular traffic: {}",
        normal.requests
    );
    let per_million = normal.false_positives as f64 * 1e6 / normal.requests as f64;
    assert!(
        per_million <= false_positives_per_million,
        "{} regular requests crossed the threshold ({per_million:.1} per million, allowed {false_positives_per_million})",
        normal.false_positives
    );
    for (s, expected) in &summaries {
        if let Expected::KnownGap { floor, .. } = expected {
            let share = s.within_budget as f64 / s.instances.max(1) as f64;
            assert!(
                share >= *floor,
                "{} regressed: {}/{} detected within budget, below the {floor} measured before",
                s.kind.name(),
                s.within_budget,
                s.instances
            );
        }
    }
    let missed: Vec<String> = summaries
        .iter()
        .filter(|(s, e)| matches!(e, Expected::Met) && !s.all_within_budget())
        .flat_map(|(s, _)| {
            trials
                .iter()
                .filter(move |t| t.kind == s.kind && !t.outcome.within(s.kind.budget()))
                .map(|t| {
                    format!(
                        "{} on a {} agent (seed {:#x}): detected {:?}, peak {:.2}",
                        t.kind.name(),
                        t.family.name(),
                        t.seed,
                        t.outcome.detected,
                        t.outcome.peak
                    )
                })
        })
        .collect();
    assert!(
        missed.is_empty(),
        "attacks expected to be detected within budget were not:\n{}",
        missed.join("\n")
    );
}
