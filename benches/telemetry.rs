//! The record step's telemetry cost: metric recording per request with 10,000 tracked agents,
//! the same plus the anomaly update (the per-request budget is under 1 µs for both), and a
//! `/metrics` scrape with 5,000 agents.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warden::anomaly::{AgentBehaviour, AnomalySettings, Observation};
use warden::telemetry::metrics::{AgentMetrics, Metrics};

const AGENTS: usize = 10_000;

/// What the record step does to the metrics for one finished request (the agent's handles are
/// resolved once, as the proxy keeps them in the agent's state).
fn record(m: &Metrics, agent: &AgentMetrics, upstream: &Arc<str>, i: usize) {
    let decision = if i.is_multiple_of(10) {
        "deny"
    } else {
        "allow"
    };
    let reason = if i.is_multiple_of(10) { "denied" } else { "ok" };
    agent.count_request(m, upstream, ["GET", decision, reason, "2xx"]);
    m.request_duration
        .with_label_values(&["inventory", decision])
        .observe(0.0004);
    m.upstream_duration
        .with_label_values(&["inventory"])
        .observe(0.0003);
    agent.bytes_in.inc_by(120);
    agent.bytes_out.inc_by(1500);
    agent.anomaly_score.set(0.1);
}

fn labels(m: &Metrics, n: usize) -> Vec<AgentMetrics> {
    (0..n)
        .map(|i| m.agent_metrics(&m.agent_label(&format!("spiffe://example.org/agent/a{i}"))))
        .collect()
}

fn per_request(c: &mut Criterion) {
    let m = Metrics::new(AGENTS).unwrap();
    let agents = labels(&m, AGENTS);
    let upstream: Arc<str> = "inventory".into();
    for (i, a) in agents.iter().enumerate() {
        record(&m, a, &upstream, i);
    }
    let mut g = c.benchmark_group("record step, 10k agents");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    let mut i = 0usize;
    g.bench_function("metrics", |b| {
        b.iter(|| {
            i = (i + 1) % AGENTS;
            record(&m, &agents[i], &upstream, i);
        })
    });

    let settings = AnomalySettings {
        learning_period: Duration::from_secs(60),
        ..AnomalySettings::default()
    };
    let behaviours: Vec<AgentBehaviour> = (0..AGENTS).map(|_| AgentBehaviour::new()).collect();
    let obs = |k: usize, now: Duration| Observation {
        upstream: "inventory",
        method: "GET",
        path: if k.is_multiple_of(2) {
            "/inventory/items"
        } else {
            "/inventory/items/4821"
        },
        status: 200,
        denied: false,
        bytes_in: 120,
        bytes_out: 1500,
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        cert_serial: "4F2A",
        now,
        hour_of_week: 10,
    };
    for round in 0..40u64 {
        for (k, b) in behaviours.iter().enumerate() {
            b.observe(&obs(k, Duration::from_millis(round * 2_000)), &settings);
        }
    }
    let mut tick = 0u64;
    g.bench_function("metrics + anomaly update", |b| {
        b.iter(|| {
            i = (i + 1) % AGENTS;
            tick += 1;
            let score =
                behaviours[i].observe(&obs(i, Duration::from_millis(80_000 + tick / 5)), &settings);
            record(&m, &agents[i], &upstream, i);
            black_box(score.value)
        })
    });
    g.finish();
}

fn scrape(c: &mut Criterion) {
    let m = Metrics::new(5_000).unwrap();
    let agents = labels(&m, 5_000);
    let upstream: Arc<str> = "inventory".into();
    for (i, a) in agents.iter().enumerate() {
        record(&m, a, &upstream, i);
        record(&m, a, &upstream, 10);
    }
    let mut g = c.benchmark_group("scrape");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    g.bench_function("/metrics with 5,000 agents", |b| {
        b.iter(|| black_box(m.render().len()))
    });
    g.finish();
}

criterion_group!(benches, per_request, scrape);
criterion_main!(benches);
