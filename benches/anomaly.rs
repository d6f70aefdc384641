//! Per-request cost of the anomaly engine with 10,000 tracked agents, visited round-robin so that
//! each observation touches a cold agent, as in a busy proxy.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;

use warden::anomaly::{
    AgentBehaviour, AnomalySettings, Observation, ObservationContext, PeerGroup,
};

const AGENTS: usize = 10_000;
const PATHS: [&str; 4] = [
    "/inventory/items/48213",
    "/inventory/stock/123e4567-e89b-12d3-a456-426614174000",
    "/inventory/orders/9f86d081884c7d659a2feaa0/lines",
    "/inventory/items",
];

fn observation(i: u64, now: Duration) -> Observation<'static> {
    Observation {
        upstream: "inventory",
        method: if i.is_multiple_of(5) { "POST" } else { "GET" },
        path: PATHS[(i % 4) as usize],
        status: 200,
        denied: false,
        bytes_in: 120,
        bytes_out: 1500 + (i * 37) % 900,
        source_ip: IpAddr::V4(Ipv4Addr::new(10, 0, (i % 200) as u8, 1)),
        cert_serial: "4f2a",
        now,
        hour_of_week: 10,
    }
}

fn observe(c: &mut Criterion) {
    let settings = AnomalySettings {
        learning_period: Duration::from_secs(60),
        ..AnomalySettings::default()
    };
    let agents: Vec<AgentBehaviour> = (0..AGENTS).map(|_| AgentBehaviour::new()).collect();
    // Past the learning period, so every observation scores as well as learns.
    let mut tick: u64 = 0;
    for round in 0..40u64 {
        for agent in &agents {
            let now = Duration::from_millis(round * 2_000 + tick % 1000);
            agent.observe(&observation(tick, now), &settings);
            tick += 1;
        }
    }
    let mut next = 0usize;
    c.bench_function("anomaly observe, 10k agents round-robin", |b| {
        b.iter(|| {
            next = (next + 1) % AGENTS;
            tick += 1;
            let now = Duration::from_millis(80_000 + tick / 5);
            let score = agents[next].observe(&observation(tick, now), &settings);
            black_box(score.value)
        })
    });
}

/// The same with every agent in one of 20 peer groups and every fifth request an MCP tool call:
/// the peer lookups and the tool trackers on top.
fn observe_with_peers_and_tools(c: &mut Criterion) {
    const TOOLS: [&str; 4] = ["search_docs", "get_ticket", "add_comment", "list_tickets"];
    let settings = AnomalySettings {
        learning_period: Duration::from_secs(60),
        ..AnomalySettings::default()
    };
    let groups: Vec<Arc<PeerGroup>> = (0..20)
        .map(|g| Arc::new(PeerGroup::new(format!("roles:role-{g}").into())))
        .collect();
    let agents: Vec<AgentBehaviour> = (0..AGENTS).map(|_| AgentBehaviour::new()).collect();
    let ctx = |i: usize, tick: u64| ObservationContext {
        tool: tick
            .is_multiple_of(5)
            .then(|| TOOLS[(tick / 5 % 4) as usize]),
        peers: groups.get(i % groups.len()),
    };
    let mut tick: u64 = 0;
    for round in 0..40u64 {
        for (i, agent) in agents.iter().enumerate() {
            let now = Duration::from_millis(round * 2_000 + tick % 1000);
            agent.observe_with(&observation(tick, now), &ctx(i, tick), &settings);
            tick += 1;
        }
    }
    let mut next = 0usize;
    c.bench_function(
        "anomaly observe, 10k agents round-robin, peer groups and MCP tools",
        |b| {
            b.iter(|| {
                next = (next + 1) % AGENTS;
                tick += 1;
                let now = Duration::from_millis(80_000 + tick / 5);
                let score =
                    agents[next].observe_with(&observation(tick, now), &ctx(next, tick), &settings);
                black_box(score.value)
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = observe, observe_with_peers_and_tools
}
criterion_main!(benches);
