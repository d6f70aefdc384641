//! Memory per idle connection: the real binary holds 10,000 idle mTLS connections, and the growth
//! of its resident memory is divided by their number. Every connection has finished its handshake
//! (warden counts it in `warden_active_connections`) and sent nothing since.

mod support;

use std::time::{Duration, Instant};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use support::client::AgentClient;
use support::pki::TestPki;
use support::warden::{config_yaml, write_config, WardenProcess};

const CONNECTIONS: usize = 10_000;
/// Opened before the first reading, so allocator arenas and lazily built state are in place.
const WARM: usize = 200;
/// The goal per idle connection.
const CEILING_KIB: f64 = 30.0;

/// The test process holds the client end of every connection: raise its soft limit to the hard
/// one. `None` when the hard limit is too low for the test.
fn raise_fd_limit(needed: u64) -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum?;
    if hard < needed {
        return None;
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    )
    .ok()?;
    Some(hard)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn active_connections(admin: std::net::SocketAddr) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find(|l| l.starts_with("warden_active_connections "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

async fn wait_for_active(admin: std::net::SocketAddr, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = active_connections(admin);
        if now >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "warden counts {now} open connections, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens `n` connections, 64 at a time.
async fn open(client: &AgentClient, n: usize) -> Vec<impl Send> {
    let mut held = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while held.len() < n {
        while started < n && pending.len() < 64 {
            let c = client.clone();
            pending.spawn(async move { c.connect().await });
            started += 1;
        }
        let tls = pending
            .join_next()
            .await
            .unwrap()
            .unwrap()
            .expect("handshake");
        held.push(tls);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opens 10,000 mTLS connections, about a minute in a debug build; .ci/run runs it"]
async fn ten_thousand_idle_connections_cost_little_memory_each() {
    let Some(limit) = raise_fd_limit(CONNECTIONS as u64 + 1_000) else {
        panic!(
            "the hard descriptor limit is below {}; raise it (ulimit -Hn) to run this test",
            CONNECTIONS + 1_000
        );
    };
    let pki = TestPki::new();
    let config = write_config(
        &pki,
        "warden.yaml",
        &config_yaml(
            &pki,
            "limits:\n  max_connections: 12000\n  header_read_timeout: 10m\n  idle_timeout: 10m\n\
             agents:\n  - id: spiffe://example.org/agent/idle-bot\n    roles: []\n",
        ),
    );
    let mut warden = WardenProcess::spawn_with_fd_limit(&config, (limit.min(20_000)) as u32);
    let pid = warden.child.id();
    let admin = warden.admin.expect("admin listener");
    let client = AgentClient::new(&pki, &pki.agent("idle-bot"), warden.addr);

    let warm = open(&client, WARM).await;
    wait_for_active(admin, WARM as u64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);

    let started = Instant::now();
    let held = open(&client, CONNECTIONS).await;
    wait_for_active(admin, (WARM + CONNECTIONS) as u64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per_connection = (after.saturating_sub(before)) as f64 / CONNECTIONS as f64;
    println!(
        "{CONNECTIONS} idle mTLS connections opened in {:.1} s: warden RSS {before} KiB -> {after} KiB, \
         {per_connection:.1} KiB per connection",
        started.elapsed().as_secs_f64()
    );
    assert!(
        per_connection <= CEILING_KIB,
        "{per_connection:.1} KiB per idle connection, goal {CEILING_KIB} KiB"
    );
    drop(held);
    drop(warm);
    let _ = warden.child.kill();
    let _ = warden.child.wait();
}
