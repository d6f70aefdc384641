//! Cost of the audit log per record, the writer's serialisation, hashing and writing included:
//! each iteration records a batch into a temp file and waits for it to be flushed and synced.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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
        signal_details: Vec::new(),
        close_reason: None,
        rpc_method: None,
        rpc_target: None,
        rpc_id: None,
        args_sha256: None,
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
    // The caller's side alone: only the `record` calls are timed; the flush that empties the
    // queue for the next round is not, so the queue never fills and nobody waits.
    group.bench_function("record_10k_caller_side", |b| {
        b.iter_custom(|rounds| {
            let mut spent = Duration::ZERO;
            for _ in 0..rounds {
                let records: Vec<_> = (0..BATCH).map(|i| record(i, &agent, &roles)).collect();
                rt.block_on(async {
                    let start = Instant::now();
                    for rec in records {
                        let _ = log.record(rec).await;
                    }
                    spent += start.elapsed();
                    let _ = log.flush().await;
                });
            }
            spent
        })
    });
    // The same work counted in CPU time of the whole process (caller and writer thread), which
    // a machine shared with other jobs inflates far less than wall time. Linux only.
    if process_cpu_time().is_some() {
        group.bench_function("record_10k_then_flush_cpu_time", |b| {
            b.iter_custom(|rounds| {
                let before = process_cpu_time().unwrap_or_default();
                for _ in 0..rounds {
                    rt.block_on(async {
                        for i in 0..BATCH {
                            let _ = log.record(record(i, &agent, &roles)).await;
                        }
                        black_box(log.flush().await.is_ok())
                    });
                }
                process_cpu_time()
                    .unwrap_or_default()
                    .saturating_sub(before)
            })
        });
    }
    group.finish();
    let _ = log.shutdown();
}

/// User and system CPU time of this process so far, from `/proc/self/stat` (clock ticks).
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    const TICKS_PER_SECOND: u64 = 100;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
