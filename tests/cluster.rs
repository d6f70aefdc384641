//! Many replicas on one Redis (SPEC section 8): two real `warden serve` processes share
//! quarantines, rate limits, MCP sessions and A2A task owners, keep serving on local state while
//! Redis is away, converge when it returns, or refuse (`failure_mode: closed`).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::json;
use support::client::{AgentClient, Reply};
use support::fixture::{dead_addr, standard_policy};
use support::keepalive::KeepAlive;
use support::mcp::{self, McpServer};
use support::pki::{agent_id, AgentCert, TestPki};
use support::redis::Redis;
use support::upstream;
use support::wait;
use support::warden::{admin_request, config_yaml, write_config, WardenProcess};
use tokio::time::Instant;

const ITEMS: &str = "/inventory/items";

struct Fleet {
    pki: TestPki,
    a: WardenProcess,
    b: WardenProcess,
    _upstreams: (upstream::Upstream, upstream::Upstream),
}

async fn fleet(redis: &Redis, extra: &str) -> Fleet {
    let pki = TestPki::new();
    let inventory = upstream::start().await;
    let payroll = upstream::start().await;
    let top = format!(
        "cluster:\n  redis: {}\n  key_prefix: \"t:\"\n{extra}",
        redis.url()
    );
    let policy = standard_policy(&inventory.url(), &payroll.url(), dead_addr(), &top).replace(
        "agents:\n",
        "agents:\n  - id: spiffe://example.org/agent/fast\n    roles: [inventory-agent]\n    rate_limit: { per_second: 20, burst: 20 }\n",
    );
    let yaml = config_yaml(&pki, &policy);
    let a = WardenProcess::spawn(&write_config(&pki, "a.yaml", &yaml));
    let b = WardenProcess::spawn(&write_config(&pki, "b.yaml", &yaml));
    Fleet {
        pki,
        a,
        b,
        _upstreams: (inventory, payroll),
    }
}

impl Fleet {
    fn client(&self, agent: &str, on: &WardenProcess) -> AgentClient {
        AgentClient::new(&self.pki, &self.pki.agent(agent), on.addr)
    }
}

async fn status(c: &AgentClient) -> u16 {
    let req = Request::get(ITEMS).body(Full::new(Bytes::new())).unwrap();
    c.send(req).await.map(|r| r.status).unwrap_or(0)
}

async fn admin(w: &WardenProcess, method: &str, path: &str) -> (u16, String) {
    admin_request(w.admin.expect("admin"), method, path, None).await
}

async fn cluster_up(w: &WardenProcess) -> Option<u8> {
    let (_, metrics) = admin(w, "GET", "/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("warden_cluster_up "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn a_quarantine_on_one_replica_holds_on_the_other_within_a_second() {
    let redis = Redis::start();
    let f = fleet(&redis, "").await;
    let on_b = f.client("inventory-bot", &f.b);
    assert!(
        wait::until(Duration::from_secs(5), || async {
            cluster_up(&f.a).await == Some(1) && cluster_up(&f.b).await == Some(1)
        })
        .await
    );
    assert_eq!(status(&on_b).await, 200);

    let path = format!("/agents/{}/quarantine", agent_id("inventory-bot"));
    let (code, _) = admin(&f.a, "POST", &path).await;
    assert_eq!(code, 200);
    let set = Instant::now();
    assert!(
        wait::until(Duration::from_secs(1), || async {
            status(&on_b).await == 403
        })
        .await,
        "B still serves the agent quarantined on A"
    );
    assert!(set.elapsed() <= Duration::from_secs(1));
    // Others are untouched.
    assert_eq!(status(&f.client("staging-bot", &f.b)).await, 200);

    let (code, _) = admin(&f.a, "DELETE", &path).await;
    assert_eq!(code, 200);
    assert!(
        wait::until(Duration::from_secs(1), || async {
            status(&on_b).await == 200
        })
        .await,
        "B did not follow the release on A"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn the_anomaly_engines_quarantine_reaches_the_other_replica() {
    let redis = Redis::start();
    let extra = "anomaly:\n  enabled: true\n  learning_period: 2s\n  threshold: 0.8\n  action: quarantine\n  quarantine_for: 10m\n";
    let f = fleet(&redis, extra).await;
    assert!(
        wait::until(Duration::from_secs(5), || async {
            cluster_up(&f.b).await == Some(1)
        })
        .await
    );
    let on_a = f.client("inventory-bot", &f.a);
    let on_b = f.client("inventory-bot", &f.b);
    let mut session = on_a.session().await;
    let learn_until = Instant::now() + Duration::from_millis(3_000);
    let mut i = 0;
    while Instant::now() < learn_until {
        let path = if i % 2 == 0 {
            ITEMS.to_string()
        } else {
            format!("{ITEMS}/{}", i % 5)
        };
        if send_on(&mut session, &path).await.is_none() {
            session = on_a.session().await;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut quarantined = false;
    for n in 0..80 {
        let path = format!("/inventory/probe{n}/secret/{n}");
        // Quarantine also closes the agent's open connections: carry on over a new one.
        let status = match send_on(&mut session, &path).await {
            Some(status) => status,
            None => {
                session = on_a.session().await;
                send_on(&mut session, &path).await.unwrap_or(0)
            }
        };
        if status == 403 {
            quarantined = true;
            break;
        }
    }
    assert!(
        quarantined,
        "A's anomaly engine did not quarantine the rogue agent"
    );
    assert!(
        wait::until(Duration::from_secs(1), || async {
            status(&on_b).await == 403
        })
        .await,
        "B still serves the agent A's anomaly engine quarantined"
    );
}

/// `GET path` on a keep-alive connection, its body read; `None` once the connection is closed.
async fn send_on(
    session: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> Option<u16> {
    use http_body_util::BodyExt;
    let req = Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    session.ready().await.ok()?;
    let resp = session.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// Requests from `clients` as fast as they go until `stop`; counts the 200s.
fn hammer(
    clients: Vec<AgentClient>,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    clients
        .into_iter()
        .map(|c| {
            let (stop, ok, counting) = (stop.clone(), ok.clone(), counting.clone());
            tokio::spawn(async move {
                let mut conn = KeepAlive::open(&c).await.expect("keep-alive");
                while !stop.load(Ordering::Relaxed) {
                    match conn.get(ITEMS).await {
                        Ok(r) if r.status == 200 && counting.load(Ordering::Relaxed) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => conn = KeepAlive::open(&c).await.expect("reopen"),
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn a_rate_limit_holds_across_both_replicas() {
    let redis = Redis::start();
    let f = fleet(&redis, "").await;
    assert!(
        wait::until(Duration::from_secs(5), || async {
            cluster_up(&f.a).await == Some(1) && cluster_up(&f.b).await == Some(1)
        })
        .await
    );
    // `fast` may make 20 requests a second, fleet-wide.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let clients = vec![
        f.client("fast", &f.a),
        f.client("fast", &f.a),
        f.client("fast", &f.b),
        f.client("fast", &f.b),
    ];
    let tasks = hammer(clients, stop.clone(), ok.clone(), counting.clone());
    // Let the shares settle, then measure a steady window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    counting.store(true, Ordering::Relaxed);
    let window = Duration::from_secs(4);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    counting.store(false, Ordering::Relaxed);
    let measured = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let rate = ok.load(Ordering::Relaxed) as f64 / measured;
    eprintln!("fleet-wide rate of `fast`: {rate:.1}/s against a limit of 20/s");
    assert!(rate <= 20.0 * 1.15, "the fleet let through {rate:.1}/s");
    assert!(
        rate >= 20.0 * 0.6,
        "the fleet starved the agent: {rate:.1}/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn redis_away_keeps_serving_locally_then_converges() {
    let mut redis = Redis::start();
    let f = fleet(&redis, "").await;
    assert!(
        wait::until(Duration::from_secs(5), || async {
            cluster_up(&f.a).await == Some(1) && cluster_up(&f.b).await == Some(1)
        })
        .await
    );
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for w in [&f.a, &f.b] {
        let c = f.client("staging-bot", w);
        let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match status(&c).await {
                    200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("failed request: status {other}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    redis.stop();
    assert!(
        wait::until(Duration::from_secs(3), || async {
            cluster_up(&f.a).await == Some(0) && cluster_up(&f.b).await == Some(0)
        })
        .await,
        "warden_cluster_up did not fall to 0"
    );
    // Served all along the outage, on local state.
    let before = served.load(Ordering::Relaxed);
    assert!(
        wait::until(Duration::from_secs(10), || async {
            served.load(Ordering::Relaxed) >= before + 40
        })
        .await,
        "requests stalled while Redis was away"
    );
    // Decided locally during the outage: reaches the other replica on reconnect.
    let path = format!("/agents/{}/quarantine", agent_id("inventory-bot"));
    assert_eq!(admin(&f.a, "POST", &path).await.0, 200);
    let on_b = f.client("inventory-bot", &f.b);
    assert_eq!(
        status(&on_b).await,
        200,
        "B cannot know while Redis is away"
    );
    redis.restart();
    assert!(
        wait::until(Duration::from_secs(10), || async {
            cluster_up(&f.a).await == Some(1) && cluster_up(&f.b).await == Some(1)
        })
        .await,
        "the replicas did not reconnect"
    );
    assert!(
        wait::until(Duration::from_secs(3), || async {
            status(&on_b).await == 403
        })
        .await,
        "the quarantine decided during the outage did not reach B"
    );
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.await;
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed in local mode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn closed_mode_refuses_while_redis_is_away() {
    let mut redis = Redis::start();
    let f = fleet(&redis, "  failure_mode: closed\n").await;
    let c = f.client("inventory-bot", &f.a);
    assert!(wait::until(Duration::from_secs(5), || async { status(&c).await == 200 }).await);
    redis.stop();
    assert!(
        wait::until(Duration::from_secs(3), || async {
            let r = c
                .send(Request::get(ITEMS).body(Full::new(Bytes::new())).unwrap())
                .await;
            r.is_ok_and(|r| r.status == 503 && r.error() == "cluster_unavailable")
        })
        .await,
        "closed mode did not refuse with 503 cluster_unavailable"
    );
    let (ready, _) = admin(&f.a, "GET", "/readyz").await;
    assert_eq!(ready, 503, "/readyz must be 503 while closed mode refuses");
    redis.restart();
    assert!(
        wait::until(Duration::from_secs(10), || async {
            status(&c).await == 200
        })
        .await,
        "closed mode did not recover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn closed_mode_starting_without_redis_is_not_ready() {
    let mut redis = Redis::start();
    let url = redis.url();
    redis.stop();
    let pki = TestPki::new();
    let inventory = upstream::start().await;
    let top = format!("cluster:\n  redis: {url}\n  failure_mode: closed\n");
    let yaml = config_yaml(
        &pki,
        &standard_policy(&inventory.url(), &inventory.url(), dead_addr(), &top),
    );
    let w = WardenProcess::spawn(&write_config(&pki, "w.yaml", &yaml));
    let c = AgentClient::new(&pki, &pki.agent("inventory-bot"), w.addr);
    assert_eq!(status(&c).await, 503);
    assert_eq!(admin(&w, "GET", "/readyz").await.0, 503);
    assert_eq!(cluster_up(&w).await, Some(0));
    redis.restart();
    assert!(
        wait::until(Duration::from_secs(10), || async {
            status(&c).await == 200
        })
        .await
    );
}

#[test]
fn a_config_without_cluster_has_no_cluster_metric() {
    let text = warden::telemetry::metrics::Metrics::new(10)
        .unwrap()
        .render();
    assert!(!text.contains("warden_cluster_up"));
}

/// Two replicas in front of one MCP and A2A server: `support-bot` and `other-bot` may use `/mcp`,
/// `worker-a` and `worker-b` `/a2a`. No `state_dir`: what the replicas share goes through Redis.
struct RpcFleet {
    pki: TestPki,
    /// One certificate per agent, used on both replicas: a session belongs to a certificate.
    certs: Vec<(&'static str, AgentCert)>,
    a: WardenProcess,
    b: WardenProcess,
    server: McpServer,
    _upstreams: (upstream::Upstream, upstream::Upstream),
}

async fn rpc_fleet(redis: &Redis) -> RpcFleet {
    let pki = TestPki::new();
    let inventory = upstream::start().await;
    let payroll = upstream::start().await;
    let server = mcp::start().await;
    let top = format!("cluster:\n  redis: {}\n  key_prefix: \"t:\"\n", redis.url());
    let policy = standard_policy(&inventory.url(), &payroll.url(), dead_addr(), &top);
    let policy = mcp::with_agent_protocols(&policy, &server.url()).replacen(
        "agents:\n",
        "agents:\n  - id: spiffe://example.org/agent/other-bot\n    roles: [support]\n  - id: spiffe://example.org/agent/worker-b\n    roles: [worker]\n",
        1,
    );
    let yaml = config_yaml(&pki, &policy);
    let a = WardenProcess::spawn(&write_config(&pki, "a.yaml", &yaml));
    let b = WardenProcess::spawn(&write_config(&pki, "b.yaml", &yaml));
    let certs = ["support-bot", "other-bot", "worker-a", "worker-b"]
        .into_iter()
        .map(|name| (name, pki.agent(name)))
        .collect();
    let fleet = RpcFleet {
        pki,
        certs,
        a,
        b,
        server,
        _upstreams: (inventory, payroll),
    };
    assert!(
        wait::until(Duration::from_secs(5), || async {
            cluster_up(&fleet.a).await == Some(1) && cluster_up(&fleet.b).await == Some(1)
        })
        .await,
        "the replicas did not connect to Redis"
    );
    fleet
}

impl RpcFleet {
    fn client(&self, agent: &str, on: &WardenProcess) -> AgentClient {
        let (_, cert) = self
            .certs
            .iter()
            .find(|(name, _)| *name == agent)
            .expect("an agent of the fleet");
        AgentClient::new(&self.pki, cert, on.addr)
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
const SEND: &str = r#"{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m1"}}}"#;

async fn rpc(c: &AgentClient, path: &str, body: &str, session: Option<&str>) -> Reply {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(s) = session {
        headers.push(("mcp-session-id", s));
    }
    c.request("POST", path, &headers, body).await
}

/// The reason of a JSON-RPC refusal, "" for anything else.
fn refusal(r: &Reply) -> String {
    r.json()["error"]["data"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `initialize` through `c`: the session id the upstream issued.
async fn initialize(c: &AgentClient) -> String {
    let r = rpc(c, "/mcp", INITIALIZE, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.headers["mcp-session-id"].to_str().unwrap().to_string()
}

/// `message/send` through `c`: the id of the task it created.
async fn create_task(c: &AgentClient) -> String {
    let r = rpc(c, "/a2a", SEND, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["result"]["id"].as_str().unwrap().to_string()
}

fn get_task(task: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": task}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn an_mcp_session_begun_on_one_replica_continues_on_the_other_and_only_for_its_holder() {
    let redis = Redis::start();
    let f = rpc_fleet(&redis).await;
    let session = initialize(&f.client("support-bot", &f.a)).await;
    let before = f.server.recorder.count();

    // B has never seen the session: it learns the holder from Redis, and refuses another agent.
    let thief_b = f.client("other-bot", &f.b);
    let r = rpc(&thief_b, "/mcp", PING, Some(&session)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(refusal(&r), "session_mismatch");
    let thief_a = f.client("other-bot", &f.a);
    let r = rpc(&thief_a, "/mcp", PING, Some(&session)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(refusal(&r), "session_mismatch");
    assert_eq!(
        f.server.recorder.count(),
        before,
        "the upstream never sees a hijacked session id"
    );

    // The holder continues through B.
    let r = rpc(&f.client("support-bot", &f.b), "/mcp", PING, Some(&session)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = f.server.recorder.last().unwrap();
    assert_eq!(seen.headers["mcp-session-id"], session.as_str());
    assert_eq!(f.server.recorder.count(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn an_a2a_task_created_on_one_replica_is_its_owners_on_the_other() {
    let redis = Redis::start();
    let f = rpc_fleet(&redis).await;
    let task = create_task(&f.client("worker-a", &f.a)).await;
    let before = f.server.recorder.count();

    let r = rpc(&f.client("worker-b", &f.b), "/a2a", &get_task(&task), None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(refusal(&r), "not_owner");
    let r = rpc(&f.client("worker-b", &f.a), "/a2a", &get_task(&task), None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(refusal(&r), "not_owner");
    assert_eq!(f.server.recorder.count(), before);

    let r = rpc(&f.client("worker-a", &f.b), "/a2a", &get_task(&task), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["id"], task.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn a_session_and_a_task_bound_while_redis_was_away_reach_the_fleet_on_its_return() {
    let mut redis = Redis::start();
    let f = rpc_fleet(&redis).await;
    redis.stop();
    assert!(
        wait::until(Duration::from_secs(3), || async {
            cluster_up(&f.a).await == Some(0) && cluster_up(&f.b).await == Some(0)
        })
        .await,
        "warden_cluster_up did not fall to 0"
    );

    // Bound on A alone, in local mode: A holds them at once.
    let owner_a = f.client("support-bot", &f.a);
    let session = initialize(&owner_a).await;
    let task = create_task(&f.client("worker-a", &f.a)).await;
    let r = rpc(&f.client("other-bot", &f.a), "/mcp", PING, Some(&session)).await;
    assert_eq!(refusal(&r), "session_mismatch");
    assert_eq!(
        rpc(&owner_a, "/mcp", PING, Some(&session)).await.status,
        200
    );
    // B cannot know while Redis is away: it has no owner for the task, not even for its owner.
    let owner_b = f.client("worker-a", &f.b);
    let r = rpc(&owner_b, "/a2a", &get_task(&task), None).await;
    assert_eq!(refusal(&r), "not_owner");

    redis.restart();
    assert!(
        wait::until(Duration::from_secs(10), || async {
            cluster_up(&f.a).await == Some(1) && cluster_up(&f.b).await == Some(1)
        })
        .await,
        "the replicas did not reconnect"
    );
    // Until A's queue reaches Redis, B has no owner for the task: wait for the owner to pass.
    assert!(
        wait::until(Duration::from_secs(5), || async {
            rpc(&owner_b, "/a2a", &get_task(&task), None).await.status == 200
        })
        .await,
        "the task owner bound during the outage did not reach B"
    );
    let r = rpc(&f.client("worker-b", &f.b), "/a2a", &get_task(&task), None).await;
    assert_eq!(refusal(&r), "not_owner");
    let thief_b = f.client("other-bot", &f.b);
    assert!(
        wait::until(Duration::from_secs(5), || async {
            refusal(&rpc(&thief_b, "/mcp", PING, Some(&session)).await) == "session_mismatch"
        })
        .await,
        "the session bound during the outage did not reach B"
    );
    let r = rpc(&f.client("support-bot", &f.b), "/mcp", PING, Some(&session)).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
