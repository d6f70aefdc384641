//! Cost of the audit log per record, the writer's serialisation, hashing and writing included:
//! each iteration records a batch into a temp file and waits for it to be flushed and synced.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use time::OffsetDateTime;
use warden::telemetry::audit::{
    AuditDecision, AuditLog, AuditOptions, AuditRecord, AuditTarget, RecordKind,
};

const BATCH: u64 = 10_000;

fn record(i: u64, agent: &Arc<str>, roles: &Arc<[Arc<str>]>) -> AuditRecord {
    AuditRecord {
        ts: OffsetDateTime::now_utc(),
        kind: RecordKind::Request,
        request_id: format!("01JB7W3K9R6V2X4M8N5P{i:06}"),
        agent: Some(Arc::clone(agent)),
        roles: Arc::clone(roles),
        source_ip: "10.1.2.3"
            .parse()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        method: Some("GET".into()),
        host: Some("inventory.internal".into()),
        path: Some(format!("/inventory/items/{i}")),
        route: Some(0),
        upstream: Some(Arc::from("inventory")),
        rule: Some(Arc::from("inventory-agent/allow[0]")),
        decision: AuditDecision::Allow,
        reason: "ok".into(),
        status: Some(200),
        duration_ms: 1.734,
        bytes_in: 0,
        bytes_out: 2_048,
        anomaly_score: 0.12,
        signals: vec!["new_path_shape".into()],
    }
}

fn bench_record(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let target = AuditTarget::File(dir.path().join("audit.jsonl"));
    let Ok(log) = AuditLog::open(target, AuditOptions::default()) else {
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let agent: Arc<str> = Arc::from("spiffe://example.org/agent/inventory-bot");
    let roles: Arc<[Arc<str>]> = Arc::from(vec![Arc::<str>::from("inventory-agent")]);

    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(20);
    group.bench_function("record_10k_then_flush", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..BATCH {
                    let _ = log.record(record(i, &agent, &roles)).await;
                }
                black_box(log.flush().await.is_ok())
            })
        })
    });
    // The caller's side alone: the records are built beforehand, the writer drains meanwhile.
    group.bench_function("record_10k_caller_side", |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|i| record(i, &agent, &roles))
                    .collect::<Vec<_>>()
            },
            |records| {
                rt.block_on(async {
                    for rec in records {
                        let _ = log.record(rec).await;
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let _ = log.shutdown();
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
