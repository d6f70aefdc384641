use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::chain::{self, as_str, BrokenReason, GENESIS};
use super::*;

fn sample(i: usize) -> AuditRecord {
    AuditRecord {
        ts: OffsetDateTime::now_utc(),
        kind: RecordKind::Request,
        request_id: format!("req-{i}"),
        agent: Some(Arc::from("spiffe://example.org/agent/inventory-bot")),
        roles: Arc::from(vec![Arc::<str>::from("inventory-agent")]),
        source_ip: "127.0.0.1".parse().unwrap(),
        method: Some("GET".into()),
        host: Some("inventory.internal".into()),
        path: Some(format!("/inventory/items/{i}")),
        route: Some(0),
        upstream: Some(Arc::from("inventory")),
        rule: Some(Arc::from("inventory-agent/allow[0]")),
        decision: AuditDecision::Allow,
        reason: "ok".into(),
        status: Some(200),
        duration_ms: 1.25,
        bytes_in: 0,
        bytes_out: 512,
        anomaly_score: 0.1,
        signals: vec!["new_path_shape".into()],
        signal_details: Vec::new(),
        close_reason: None,
        rpc_method: None,
        rpc_target: None,
        rpc_id: None,
        args_sha256: None,
    }
}

fn opts(capacity: usize) -> AuditOptions {
    AuditOptions {
        queue_capacity: capacity,
        ..AuditOptions::default()
    }
}

/// Writes `n` records (numbered from `first`) to `path` and closes the log.
fn write_log(path: &Path, first: usize, n: usize, options: AuditOptions) {
    let log = AuditLog::open(AuditTarget::File(path.to_path_buf()), options).unwrap();
    for i in first..first + n {
        log.record_blocking(sample(i)).unwrap();
    }
    log.shutdown().unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn log_of(n: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 0, n, opts(16));
    (dir, path)
}

fn broken_line(path: &Path) -> (usize, BrokenReason) {
    let failure = verify(path).unwrap_err();
    (failure.line, failure.reason)
}

fn field(line: &str, key: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v[key].clone()
}

#[test]
fn a_chain_of_records_verifies_and_follows_the_documented_format() {
    let (_dir, path) = log_of(10);
    let report = verify(&path).unwrap();
    assert_eq!(report.records, 10);
    assert_eq!(report.starts_from, None);
    let lines = lines(&path);
    assert_eq!(lines.len(), 10);
    assert!(lines[0].starts_with(r#"{"ts":""#), "{}", lines[0]);
    assert_eq!(field(&lines[0], "prev_hash"), "0".repeat(64));
    assert_eq!(field(&lines[0], "request_id"), "req-0");
    assert_eq!(field(&lines[3], "rule"), "inventory-agent/allow[0]");
    assert_eq!(
        field(&lines[3], "signals"),
        serde_json::json!(["new_path_shape"])
    );
    for pair in lines.windows(2) {
        assert_eq!(field(&pair[1], "prev_hash"), field(&pair[0], "hash"));
    }
    // The recipe of the module docs, done by hand.
    let line = &lines[4];
    let body = format!("{}}}", &line[..line.len() - 75]);
    let digest = chain::hex(&Sha256::digest(body.as_bytes()).into());
    assert_eq!(field(line, "hash"), as_str(&digest));
    assert!(body.ends_with(&format!(r#""prev_hash":{}}}"#, field(line, "prev_hash"))));
    assert_eq!(
        report.last_hash,
        Some(field(&lines[9], "hash").as_str().unwrap().to_owned())
    );
}

#[test]
fn an_edited_field_is_caught_at_its_line() {
    let (_dir, path) = log_of(6);
    let mut lines = lines(&path);
    lines[3] = lines[3].replace(r#""decision":"allow""#, r#""decision":"deny""#);
    write_lines(&path, &lines);
    let (line, reason) = broken_line(&path);
    assert_eq!(line, 4);
    assert!(
        matches!(reason, BrokenReason::HashMismatch { .. }),
        "{reason}"
    );
}

#[test]
fn a_deleted_line_is_caught_at_the_line_that_follows_it() {
    let (_dir, path) = log_of(6);
    let mut lines = lines(&path);
    lines.remove(2);
    write_lines(&path, &lines);
    let (line, reason) = broken_line(&path);
    assert_eq!(line, 3);
    assert!(
        matches!(reason, BrokenReason::ChainBroken { .. }),
        "{reason}"
    );
}

#[test]
fn an_inserted_forged_record_is_caught() {
    let (_dir, path) = log_of(6);
    let original = lines(&path);
    // A forger who links and seals the record properly breaks the next line's link.
    let prev = chain::parse_hex(field(&original[1], "hash").as_str().unwrap()).unwrap();
    let mut forged = serde_json::to_vec(&sample(99)).unwrap();
    chain::seal(&mut forged, &prev);
    let mut lines = original.clone();
    lines.insert(2, String::from_utf8(forged).unwrap().trim_end().to_owned());
    write_lines(&path, &lines);
    assert_eq!(verify(&path).unwrap_err().line, 4);
    // One who copies a line's look without resealing is caught on the forged line itself.
    let mut lines = original;
    lines.insert(2, lines[2].replace("req-2", "req-99"));
    write_lines(&path, &lines);
    assert_eq!(verify(&path).unwrap_err().line, 3);
}

#[test]
fn a_reordered_pair_is_caught_at_the_first_of_the_pair() {
    let (_dir, path) = log_of(6);
    let mut lines = lines(&path);
    lines.swap(3, 4);
    write_lines(&path, &lines);
    let (line, reason) = broken_line(&path);
    assert_eq!(line, 4);
    assert!(
        matches!(reason, BrokenReason::ChainBroken { .. }),
        "{reason}"
    );
}

#[test]
fn a_truncated_file_is_caught_at_its_torn_line() {
    let (_dir, path) = log_of(5);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 30]).unwrap();
    assert_eq!(broken_line(&path), (5, BrokenReason::Truncated));
}

#[test]
fn rotation_carries_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let options = AuditOptions {
        max_bytes: Some(2_000),
        ..opts(8)
    };
    write_log(&path, 0, 20, options);
    let files = chain_files(&path).unwrap();
    assert!(files.len() >= 4, "{files:?}");
    assert_eq!(files[0], rotated_name(&path, 1));
    assert_eq!(files.last(), Some(&path));
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 2_000, "{}", f.display());
    }
    let report = verify_chain(&files).unwrap();
    assert_eq!(report.records, 20);
    assert_eq!(report.starts_from, None);
    let second = verify(&files[1]).unwrap();
    assert_eq!(second.starts_from, verify(&files[0]).unwrap().last_hash);

    fs::remove_file(&files[1]).unwrap();
    let remaining: Vec<PathBuf> = files.iter().filter(|f| *f != &files[1]).cloned().collect();
    let failure = verify_chain(&remaining).unwrap_err();
    assert_eq!(failure.file, files[2]);
    assert_eq!(failure.failure.line, 1);
    assert!(matches!(
        failure.failure.reason,
        BrokenReason::ChainBroken { .. }
    ));
}

#[test]
fn reopening_continues_the_chain() {
    let (_dir, path) = log_of(5);
    write_log(&path, 5, 5, opts(16));
    let report = verify(&path).unwrap();
    assert_eq!(report.records, 10);
    assert_eq!(field(&lines(&path)[9], "request_id"), "req-9");
}

#[test]
fn reopening_cuts_a_torn_tail_and_continues_the_chain() {
    let (_dir, path) = log_of(4);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"ts":"2025-01-01T00:00"#);
    fs::write(&path, &bytes).unwrap();
    write_log(&path, 4, 3, opts(16));
    assert_eq!(verify(&path).unwrap().records, 7);
}

#[test]
fn reopening_does_not_chain_onto_a_corrupt_last_line() {
    let (_dir, path) = log_of(3);
    let mut lines = lines(&path);
    lines.push("not a record".into());
    write_lines(&path, &lines);
    write_log(&path, 3, 2, opts(16));
    let set_aside = rotated_name(&path, 1);
    assert_eq!(verify(&set_aside).unwrap_err().line, 4);
    let report = verify(&path).unwrap();
    assert_eq!((report.records, report.starts_from), (2, None));
}

#[test]
fn an_empty_active_file_continues_from_the_newest_rotated_one() {
    let (_dir, path) = log_of(3);
    fs::rename(&path, rotated_name(&path, 1)).unwrap();
    write_log(&path, 3, 2, opts(16));
    let report = verify_chain(&chain_files(&path).unwrap()).unwrap();
    assert_eq!(report.records, 5);
}

#[test]
fn fifty_tasks_under_back_pressure_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let counter = IntCounter::new("warden_audit_records_total", "audit records").unwrap();
    let options = AuditOptions {
        records_total: Some(counter.clone()),
        ..opts(64)
    };
    let log = AuditLog::open(AuditTarget::File(path.clone()), options).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        log.record(sample(t * 100 + i)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        log.flush().await.unwrap();
    });
    let lines = lines(&path);
    assert_eq!(lines.len(), 5_000);
    assert_eq!(counter.get(), 5_000);
    assert_eq!(verify(&path).unwrap().records, 5_000);
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| field(l, "request_id").as_str().unwrap().to_owned())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5_000);
    log.shutdown().unwrap();
}

#[test]
fn a_full_queue_yields_to_other_tasks_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(AuditTarget::File(path.clone()), opts(4)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let ticker = {
            let (ticks, stop) = (Arc::clone(&ticks), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        for i in 0..500 {
            log.record(sample(i)).await.unwrap();
        }
        log.flush().await.unwrap();
        stop.store(true, Ordering::Relaxed);
        ticker.await.unwrap();
    });
    // Waiting for room yielded the only thread: the other task ran meanwhile.
    assert!(ticks.load(Ordering::Relaxed) > 0);
    assert_eq!(verify(&path).unwrap().records, 500);
    log.shutdown().unwrap();
}

#[test]
fn flush_puts_queued_records_on_disk_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let options = AuditOptions {
        flush_interval: Duration::from_secs(3600),
        ..opts(16)
    };
    let log = AuditLog::open(AuditTarget::File(path.clone()), options).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..3 {
            log.record(sample(i)).await.unwrap();
        }
        log.flush().await.unwrap();
    });
    assert_eq!(lines(&path).len(), 3);
    log.record_blocking(sample(3)).unwrap();
    log.flush_blocking().unwrap();
    assert_eq!(lines(&path).len(), 4);
    log.shutdown().unwrap();
}

#[test]
fn records_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditTarget::File(dir.path().join("a.jsonl")), opts(4)).unwrap();
    let other = log.clone();
    log.shutdown().unwrap();
    assert_eq!(other.record_blocking(sample(0)), Err(AuditClosed));
}

#[test]
fn dropping_the_last_handle_writes_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(AuditTarget::File(path.clone()), opts(16)).unwrap();
    log.record_blocking(sample(0)).unwrap();
    drop(log);
    assert_eq!(verify(&path).unwrap().records, 1);
}

#[test]
fn verify_command_prints_the_verdict_and_exit_code() {
    let (_dir, path) = log_of(3);
    let mut out = Vec::new();
    assert_eq!(verify_command(&path, &mut out), 0);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{}: intact, 3 records\n", path.display())
    );

    let mut lines = lines(&path);
    lines[1] = lines[1].replace("req-1", "req-7");
    write_lines(&path, &lines);
    let mut out = Vec::new();
    assert_eq!(verify_command(&path, &mut out), 1);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with(&format!("{}:2: broken: hash mismatch", path.display())),
        "{text}"
    );

    let mut out = Vec::new();
    assert_eq!(verify_command(&path.with_extension("missing"), &mut out), 2);
}

#[test]
fn verify_chain_command_reports_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(
        &path,
        0,
        12,
        AuditOptions {
            max_bytes: Some(1_500),
            ..opts(8)
        },
    );
    let files = chain_files(&path).unwrap();
    let mut out = Vec::new();
    assert_eq!(verify_chain_command(&files, &mut out), 0);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("intact, 12 records"));
    let mut out = Vec::new();
    assert_eq!(
        verify_chain_command(&[files[0].clone(), path.clone()], &mut out),
        1
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with(&format!("{}:1: broken: chain broken", path.display())),
        "{text}"
    );
}

#[test]
fn a_stdout_target_is_accepted() {
    assert_eq!(AuditTarget::from_config("-"), AuditTarget::Stdout);
    assert_eq!(
        AuditTarget::from_config("logs/audit.jsonl"),
        AuditTarget::File(PathBuf::from("logs/audit.jsonl"))
    );
    let log = AuditLog::open(AuditTarget::Stdout, opts(4)).unwrap();
    assert_eq!(as_str(&GENESIS), "0".repeat(64));
    log.shutdown().unwrap();
}

#[test]
fn a_failing_rotation_keeps_the_records_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let options = AuditOptions {
        max_bytes: Some(1_500),
        ..opts(8)
    };
    let log = AuditLog::open(AuditTarget::File(path.clone()), options).unwrap();
    // A non-empty directory where the rotated file should go makes the rename fail.
    let blocker = rotated_name(&path, 1);
    fs::create_dir(&blocker).unwrap();
    fs::write(blocker.join("x"), "x").unwrap();
    for i in 0..6 {
        log.record_blocking(sample(i)).unwrap();
    }
    assert!(log.flush_blocking().is_err());
    fs::remove_dir_all(&blocker).unwrap();
    log.flush_blocking().unwrap();
    log.shutdown().unwrap();
    let report = verify_chain(&chain_files(&path).unwrap()).unwrap();
    assert_eq!(report.records, 6);
}

#[test]
fn a_missing_directory_is_created_and_the_file_kept_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs").join("audit.jsonl");
    write_log(&path, 0, 1, opts(4));
    assert_eq!(verify(&path).unwrap().records, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "{mode:o}");
    }
}

#[test]
fn signal_details_are_written_only_when_signals_fired() {
    let mut rec = sample(0);
    let quiet = serde_json::to_value(&rec).unwrap();
    assert!(quiet.get("signal_details").is_none());
    rec.signal_details = vec![super::SignalDetail {
        signal: "mass_access",
        detail: "read 57 distinct items under /public/items/* in 10 s; usually 2".into(),
        subject: Some("/public/items/*".into()),
    }];
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["signal_details"][0]["signal"], "mass_access");
    assert_eq!(json["signal_details"][0]["subject"], "/public/items/*");
    assert!(json["signal_details"][0]["detail"]
        .as_str()
        .is_some_and(|d| d.ends_with("usually 2")));
}
