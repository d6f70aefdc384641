//! Identity at scale: validating and compiling a config with 10,000 agents and 100 patterns, and
//! finding the entry that covers an agent id (exact, by pattern, unknown).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "common/mod.rs"]
mod common;

use common::Spec;

const SPEC: Spec = Spec {
    upstreams: 20,
    roles: 100,
    rules: 1_000,
    agents: 10_000,
    patterns: 100,
};

fn compile(c: &mut Criterion) {
    let generated = common::generate(SPEC);
    let mut g = c.benchmark_group("identity/build_snapshot");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("10000_agents_100_patterns", |b| {
        b.iter(|| common::load(black_box(&generated.config)))
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let generated = common::generate(SPEC);
    let snap = common::load(&generated.config);
    let index = &snap.agent_index;
    assert_eq!(index.exact_count(), SPEC.agents);
    assert_eq!(index.pattern_count(), SPEC.patterns);

    // Patterns are tried in config order among equals: the last one is the longest walk.
    let cases = [
        ("exact_among_10000", common::agent_id(SPEC.agents / 2), true),
        (
            "pattern_first_of_100",
            common::fleet_id(0, "worker-7"),
            true,
        ),
        (
            "pattern_last_of_100",
            common::fleet_id(SPEC.patterns - 1, "worker-7"),
            true,
        ),
        (
            "unknown",
            format!("spiffe://{}/agent/intruder", common::TRUST_DOMAIN),
            false,
        ),
    ];
    let mut g = c.benchmark_group("identity/lookup");
    g.throughput(Throughput::Elements(1));
    for (name, id, known) in &cases {
        let id = warden::ids::AgentId::parse(id).expect("agent id");
        assert_eq!(index.lookup(&id).is_some(), *known, "{name}: {id}");
        g.bench_with_input(BenchmarkId::from_parameter(name), &id, |b, id| {
            b.iter(|| index.lookup(black_box(id)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = compile, lookup
}
criterion_main!(benches);
