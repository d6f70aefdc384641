//! WebSocket tunnels are connections (SPEC section 4): each control that closes or refuses a
//! connection closes or refuses an open tunnel within 1 s, a tunnel's bytes are counted and
//! audited, and a protocol switch without a proper handshake on both sides is 502. Quarantine also
//! closes plain keep-alive and HTTP/2 connections within 1 s (SPEC section 3).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::client::{client_config, AgentClient};
use support::keepalive::KeepAlive;
use support::pki::{agent_id, TestPki};
use support::wait;
use support::warden::{admin_request, config_yaml, start_warden, TestWarden};
use support::websocket::{self, AgentTunnel, Answer, WsUpstream};
use time::OffsetDateTime;
use warden::certs::pki::LeafOptions;

const ONE_SECOND: Duration = Duration::from_secs(1);

fn policy(ws: &str, limits: &str, log: &Path, deny: &str) -> String {
    format!(
        r#"{limits}
telemetry:
  audit_log: {log}
upstreams:
  chat:
    url: {ws}
routes:
  - path_prefix: /chat
    upstream: chat
roles:
  chat-agent:
    upstreams: [chat]
    allow:
      - methods: [GET]
        paths: ["/chat/**"]
    deny: [{deny}]
agents:
  - id: spiffe://example.org/agent/chatter
    roles: [chat-agent]
  - id: spiffe://example.org/agent/bystander
    roles: [chat-agent]
"#,
        log = log.display()
    )
}

struct Chat {
    pki: TestPki,
    warden: TestWarden,
    ws: WsUpstream,
    log: PathBuf,
    limits: String,
}

impl Chat {
    async fn start(answer: Answer, limits: &str) -> Chat {
        let pki = TestPki::new();
        let ws = websocket::start(answer).await;
        let log = pki.path().join("audit.jsonl");
        let yaml = config_yaml(&pki, &policy(&ws.url(), limits, &log, ""));
        let warden = start_warden(&pki, &yaml).await;
        Chat {
            pki,
            warden,
            ws,
            log,
            limits: limits.to_string(),
        }
    }

    fn client(&self, name: &str) -> AgentClient {
        AgentClient::new(&self.pki, &self.pki.agent(name), self.warden.addr)
    }

    /// Rewrites the config with a deny rule and reloads it.
    fn reload_with_deny(&self, deny: &str) {
        let yaml = config_yaml(
            &self.pki,
            &policy(&self.ws.url(), &self.limits, &self.log, deny),
        );
        std::fs::write(&self.warden.config_path, yaml).unwrap();
        self.warden.reload().expect("reload");
    }

    async fn quarantine(&self, name: &str) {
        let path = format!("/agents/{}/quarantine", agent_id(name));
        let (status, body) = admin_request(self.warden.admin, "POST", &path, None).await;
        assert_eq!(status, 200, "{body}");
    }

    async fn records(&self, kind: &str) -> Vec<serde_json::Value> {
        self.warden.flush_audit().await;
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == kind)
            .collect()
    }

    /// The `kind: tunnel` record of `agent`'s tunnel, once it is written.
    async fn tunnel_record(&self, name: &str) -> serde_json::Value {
        let id = agent_id(name);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.records("tunnel").await;
            if let Some(r) = records.into_iter().find(|r| r["agent"] == id.as_str()) {
                return r;
            }
            assert!(Instant::now() < deadline, "no tunnel record for {name}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn gauge(&self, line_prefix: &str) -> Option<f64> {
        let m = self.warden.metrics();
        m.lines()
            .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
    }
}

/// Asserts the tunnel closes within 1 s of `since` and its record says `why`.
async fn assert_closed(
    chat: &Chat,
    tunnel: &mut AgentTunnel,
    since: Instant,
    who: &str,
    why: &str,
) {
    let left = (since + ONE_SECOND).saturating_duration_since(Instant::now());
    let closed = tunnel.closed_within(left).await;
    assert!(
        closed.is_some(),
        "{who}'s tunnel still open 1 s after the trigger"
    );
    let rec = chat.tunnel_record(who).await;
    assert_eq!(rec["close_reason"], why, "{rec}");
}

#[tokio::test]
async fn a_tunnel_carries_bytes_counted_in_metrics_anomaly_and_audit() {
    let chat = Chat::start(Answer::Proper, "").await;
    let c = chat.client("chatter");
    let mut t = AgentTunnel::open(&c, "/chat/lobby").await;
    assert_eq!(t.echo(b"hello").await.unwrap(), b"hello");
    assert_eq!(t.echo(b"world!").await.unwrap(), b"world!");
    let head = chat.ws.heads.lock().unwrap()[0].clone();
    assert_eq!(
        websocket::header(&head, "x-warden-agent").unwrap(),
        agent_id("chatter")
    );
    assert_eq!(websocket::header(&head, "upgrade").unwrap(), "websocket");
    let (_, before) = admin_request(
        chat.warden.admin,
        "GET",
        &format!("/agents/{}", agent_id("chatter")),
        None,
    )
    .await;
    let seen_before = serde_json::from_str::<serde_json::Value>(&before).unwrap()["anomaly"]
        ["requests"]
        .as_u64()
        .unwrap();
    drop(t);

    let rec = chat.tunnel_record("chatter").await;
    assert_eq!(rec["close_reason"], "closed");
    assert_eq!(
        (rec["bytes_in"].as_u64(), rec["bytes_out"].as_u64()),
        (Some(11), Some(11))
    );
    assert_eq!(rec["status"], 101);
    assert_eq!(rec["path"], "/chat/lobby");
    assert_eq!(rec["upstream"], "chat");
    assert_eq!(rec["decision"], "allow");
    assert!(rec["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(rec.get("anomaly_score").is_some());
    // The request that opened it has its own record, with the same id.
    let opened = chat.records("request").await;
    assert!(opened
        .iter()
        .any(|r| r["request_id"] == rec["request_id"] && r["status"] == 101));
    let id = agent_id("chatter");
    for dir in ["in", "out"] {
        let key = format!(r#"warden_agent_bytes_total{{agent="{id}",direction="{dir}"}} "#);
        assert_eq!(chat.gauge(&key), Some(11.0), "{dir}");
    }
    // The anomaly engine saw the tunnel: one more observation than while it was open.
    let (_, after) = admin_request(chat.warden.admin, "GET", &format!("/agents/{id}"), None).await;
    let seen_after = serde_json::from_str::<serde_json::Value>(&after).unwrap()["anomaly"]
        ["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(seen_after, seen_before + 1);
}

#[tokio::test]
async fn quarantine_closes_the_agents_tunnel_within_1s_and_spares_others() {
    let chat = Chat::start(Answer::Proper, "").await;
    let mut doomed = AgentTunnel::open(&chat.client("chatter"), "/chat/lobby").await;
    let mut other = AgentTunnel::open(&chat.client("bystander"), "/chat/lobby").await;
    doomed.echo(b"x").await.unwrap();
    let at = Instant::now();
    chat.quarantine("chatter").await;
    assert_closed(&chat, &mut doomed, at, "chatter", "quarantined").await;
    assert_eq!(other.echo(b"still here").await.unwrap(), b"still here");
}

#[tokio::test]
async fn revocation_and_reload_close_the_tunnel_within_1s() {
    let chat = Chat::start(Answer::Proper, "").await;
    let cert = chat.pki.agent("chatter");
    let c = AgentClient::new(&chat.pki, &cert, chat.warden.addr);
    let mut doomed = AgentTunnel::open(&c, "/chat/lobby").await;
    let mut other = AgentTunnel::open(&chat.client("bystander"), "/chat/lobby").await;
    chat.pki.revoke(&[&cert]);
    let at = Instant::now();
    chat.warden.reload().expect("reload");
    assert_closed(&chat, &mut doomed, at, "chatter", "revoked").await;
    assert_eq!(other.echo(b"ok").await.unwrap(), b"ok");
}

#[tokio::test]
async fn a_reload_that_no_longer_allows_the_path_closes_the_tunnel_within_1s() {
    let chat = Chat::start(Answer::Proper, "").await;
    let mut doomed = AgentTunnel::open(&chat.client("chatter"), "/chat/secret/room").await;
    let mut other = AgentTunnel::open(&chat.client("bystander"), "/chat/lobby").await;
    let at = Instant::now();
    chat.reload_with_deny(r#"{ paths: ["/chat/secret/**"] }"#);
    assert_closed(&chat, &mut doomed, at, "chatter", "policy").await;
    assert_eq!(other.echo(b"ok").await.unwrap(), b"ok");
    // And it cannot be opened again.
    let again = AgentTunnel::open_with(
        &chat.client("chatter"),
        &websocket::handshake_request("/chat/secret/room"),
    )
    .await;
    assert_eq!(again.status(), 403, "{}", again.head);
}

#[tokio::test]
async fn certificate_expiry_closes_the_tunnel_within_1s() {
    let chat = Chat::start(Answer::Proper, "").await;
    let now = OffsetDateTime::now_utc();
    let short = chat.pki.issue(
        "short-lived",
        &LeafOptions::new(agent_id("chatter")).validity(
            now - time::Duration::seconds(60),
            now + time::Duration::seconds(2),
        ),
    );
    // notAfter is inclusive: the certificate is expired one second after it.
    let expires = {
        let left = short.issued.not_after + time::Duration::seconds(1) - OffsetDateTime::now_utc();
        Instant::now() + Duration::try_from(left).unwrap_or_default()
    };
    let c = AgentClient::new(&chat.pki, &short, chat.warden.addr);
    let mut t = AgentTunnel::open(&c, "/chat/lobby").await;
    assert_eq!(t.echo(b"before").await.unwrap(), b"before");
    let limit = (expires + ONE_SECOND).saturating_duration_since(Instant::now());
    assert!(
        t.closed_within(limit).await.is_some(),
        "the tunnel outlived its certificate by 1 s"
    );
    assert!(
        Instant::now() + Duration::from_millis(100) >= expires,
        "closed before expiry"
    );
    assert_eq!(
        chat.tunnel_record("chatter").await["close_reason"],
        "expired"
    );
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_within_1s_of_idle_timeout() {
    let chat = Chat::start(Answer::Proper, "limits:\n  idle_timeout: 1s\n").await;
    let mut t = AgentTunnel::open(&chat.client("chatter"), "/chat/lobby").await;
    // Traffic keeps it open past the idle timeout...
    let busy_until = Instant::now() + Duration::from_millis(1800);
    let mut last_bytes = Instant::now();
    while Instant::now() < busy_until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(t.echo(b"tick").await.unwrap(), b"tick");
        last_bytes = Instant::now();
    }
    // ...silence closes it, within 1 s of the idle timeout.
    assert!(
        t.closed_within(Duration::from_secs(3)).await.is_some(),
        "idle tunnel stayed open"
    );
    let quiet = last_bytes.elapsed();
    assert!(
        quiet >= Duration::from_millis(950) && quiet <= Duration::from_secs(2),
        "{quiet:?}"
    );
    assert_eq!(chat.tunnel_record("chatter").await["close_reason"], "idle");
}

#[tokio::test]
async fn a_tunnel_holds_its_connection_slot_until_it_ends() {
    let chat = Chat::start(Answer::Proper, "limits:\n  max_connections: 1\n").await;
    let mut t = AgentTunnel::open(&chat.client("chatter"), "/chat/lobby").await;
    t.echo(b"x").await.unwrap();
    let other = chat.client("bystander");
    assert!(
        other.handshake_refused().await,
        "a second connection was served beside the tunnel"
    );
    assert_eq!(t.echo(b"y").await.unwrap(), b"y");
    drop(t);
    let at = Instant::now();
    let served = wait::until(ONE_SECOND, || async { !other.handshake_refused().await }).await;
    assert!(
        served,
        "the tunnel's slot was not freed within 1 s of its end ({:?})",
        at.elapsed()
    );
}

#[tokio::test]
async fn active_connections_gauge_counts_a_tunnel_until_it_ends() {
    let chat = Chat::start(Answer::Proper, "").await;
    let gauge = "warden_active_connections ";
    let mut t = AgentTunnel::open(&chat.client("chatter"), "/chat/lobby").await;
    t.echo(b"x").await.unwrap();
    // The HTTP connection handed over to the tunnel; the tunnel is still one connection.
    assert_eq!(chat.gauge(gauge), Some(1.0));
    let mut q = AgentTunnel::open(&chat.client("bystander"), "/chat/lobby").await;
    q.echo(b"x").await.unwrap();
    assert_eq!(chat.gauge(gauge), Some(2.0));
    drop(t);
    let at = Instant::now();
    assert!(wait::until(ONE_SECOND, || async { chat.gauge(gauge) == Some(1.0) }).await);
    // Closed by warden, the same.
    chat.quarantine("bystander").await;
    assert!(q.closed_within(ONE_SECOND).await.is_some());
    assert!(
        wait::until(ONE_SECOND, || async { chat.gauge(gauge) == Some(0.0) }).await,
        "{:?}",
        at.elapsed()
    );
}

/// Sends a handshake and, in the same write, bytes meant for the tunnel; returns the status.
async fn handshake_then_bytes(chat: &Chat, request: &str) -> (u16, AgentTunnel) {
    let mut raw = request.to_string();
    raw.push_str("smuggled bytes for the upstream");
    let t = AgentTunnel::open_with(&chat.client("chatter"), &raw).await;
    (t.status(), t)
}

#[tokio::test]
async fn a_101_without_the_right_accept_is_502_and_nothing_more_reaches_the_upstream() {
    for answer in [Answer::NoAccept, Answer::WrongAccept] {
        let chat = Chat::start(answer, "").await;
        let (status, mut t) =
            handshake_then_bytes(&chat, &websocket::handshake_request("/chat/lobby")).await;
        assert_eq!(status, 502, "{answer:?}: {}", t.head);
        assert!(
            t.closed_within(ONE_SECOND).await.is_some(),
            "{answer:?}: connection left open"
        );
        // The upstream's connection was dropped with its 101: nothing after it arrived.
        assert!(wait::until(ONE_SECOND, || async { chat.ws.open_connections() == 0 }).await);
        assert_eq!(chat.ws.bytes_after_switch(), 0, "{answer:?}");
        let refused = chat.records("request").await;
        assert!(refused
            .iter()
            .any(|r| r["status"] == 502 && r["reason"] == "upstream_unavailable"));
        assert!(chat.records("tunnel").await.is_empty());
    }
}

#[tokio::test]
async fn a_101_the_agent_did_not_ask_for_is_502() {
    let chat = Chat::start(Answer::Always, "").await;
    // A plain GET.
    let plain = "GET /chat/lobby HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let (status, mut t) = handshake_then_bytes(&chat, plain).await;
    assert_eq!(status, 502, "{}", t.head);
    assert!(t.closed_within(ONE_SECOND).await.is_some());
    // A WebSocket request made improperly (no version, no key): forwarded without Upgrade.
    let improper = "GET /chat/lobby HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n";
    let (status, _t) = handshake_then_bytes(&chat, improper).await;
    assert_eq!(status, 502);
    let heads = chat.ws.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    assert!(
        heads
            .iter()
            .all(|h| websocket::header(h, "upgrade").is_none()),
        "{heads:?}"
    );
    assert!(wait::until(ONE_SECOND, || async { chat.ws.open_connections() == 0 }).await);
    assert_eq!(chat.ws.bytes_after_switch(), 0);
}

#[tokio::test]
async fn quarantine_closes_keepalive_and_h2_connections_within_1s() {
    let chat = Chat::start(Answer::Proper, "").await;
    // A plain keep-alive HTTP/1.1 connection; the upstream answers a plain GET with 400, which
    // is an answer all the same.
    let c = chat.client("chatter");
    let mut keep = KeepAlive::open(&c).await.unwrap();
    assert_eq!(keep.get("/chat/lobby").await.unwrap().status, 400);
    // An HTTP/2 connection.
    let cert = chat.pki.agent("chatter");
    let h2c = AgentClient::with_config(
        client_config(&chat.pki, Some(&cert), &[b"h2"]),
        chat.warden.addr,
    );
    let tls = h2c.connect().await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let mut h2_conn = tokio::spawn(conn);
    let req = Request::get("https://localhost/chat/lobby")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 400);
    let bystander = KeepAlive::open(&chat.client("bystander")).await.unwrap();

    let at = Instant::now();
    chat.quarantine("chatter").await;
    assert!(
        keep.closed_within(ONE_SECOND).await.is_some(),
        "keep-alive connection still open"
    );
    let left = (at + ONE_SECOND).saturating_duration_since(Instant::now());
    assert!(
        tokio::time::timeout(left, &mut h2_conn).await.is_ok(),
        "h2 connection still open"
    );
    assert!(!bystander.is_closed());
    let recorded = wait::until(Duration::from_secs(2), || async {
        let ends = chat.records("connection").await;
        ends.iter()
            .filter(|r| r["close_reason"] == "quarantined")
            .count()
            == 2
    })
    .await;
    assert!(recorded, "{:?}", chat.records("connection").await);
    // New connections are served, and refused request by request.
    let r = chat.client("chatter").get("/chat/lobby").await;
    assert_eq!((r.status, r.error().as_str()), (403, "quarantined"));
}

#[tokio::test]
async fn shutdown_closes_tunnels() {
    let chat = Chat::start(Answer::Proper, "").await;
    let mut t = AgentTunnel::open(&chat.client("chatter"), "/chat/lobby").await;
    t.echo(b"x").await.unwrap();
    let Chat { warden, log, .. } = chat;
    let audit = warden.running.runtime.audit.clone().unwrap();
    let stop = tokio::spawn(warden.running.shutdown());
    assert!(
        t.closed_within(ONE_SECOND).await.is_some(),
        "tunnel outlived shutdown"
    );
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .unwrap()
        .unwrap();
    audit.flush().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(r#""kind":"tunnel""#) && text.contains(r#""close_reason":"shutdown""#),
        "{text}"
    );
}

#[tokio::test]
async fn the_anomaly_engines_quarantine_closes_the_agents_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let s = support::fixture::Standard::start_with(&format!(
        "telemetry:\n  audit_log: {}\nanomaly:\n  enabled: true\n  learning_period: 2s\n  threshold: 0.8\n  action: quarantine\n  quarantine_for: 10m\n",
        log.display()
    ))
    .await;
    let c = s.client("inventory-bot");
    let mut session = KeepAlive::open(&c).await.unwrap();
    let learning_until = Instant::now() + Duration::from_millis(2_500);
    let mut i = 0;
    while Instant::now() < learning_until {
        let path = format!("/inventory/items/{}", i % 5);
        assert_eq!(session.get(&path).await.unwrap().status, 200);
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut t = AgentTunnel::open(&c, "/inventory/ws").await;
    assert_eq!(t.echo(b"ping").await.unwrap(), b"ping");
    // The agent starts enumerating, on new connections, until the engine quarantines it.
    let mut quarantined = None;
    for n in 0..40 {
        let r = c.get(&format!("/inventory/probe{n}/secret/{n}")).await;
        if r.error() == "quarantined" {
            quarantined = Some(Instant::now());
            break;
        }
    }
    let at = quarantined.expect("the enumerating agent was not quarantined");
    let left = (at + ONE_SECOND).saturating_duration_since(Instant::now());
    assert!(
        t.closed_within(left).await.is_some(),
        "the tunnel outlived the quarantine"
    );
    let closed = wait::until(Duration::from_secs(5), || async {
        s.warden.flush_audit().await;
        std::fs::read_to_string(&log).is_ok_and(|text| {
            text.lines().any(|l| {
                l.contains(r#""kind":"tunnel""#) && l.contains(r#""close_reason":"quarantined""#)
            })
        })
    })
    .await;
    assert!(closed, "no tunnel record closed by quarantine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (installed by .ci/run)"]
async fn a_quarantine_on_another_replica_closes_the_tunnel_here_within_1s() {
    use support::fixture::{dead_addr, standard_policy};
    use support::warden::{write_config, WardenProcess};
    let redis = support::redis::Redis::start();
    let pki = TestPki::new();
    let inventory = support::upstream::start().await;
    let top = format!(
        "cluster:\n  redis: {}\n  key_prefix: \"tunnels:\"\n",
        redis.url()
    );
    let policy = standard_policy(&inventory.url(), &inventory.url(), dead_addr(), &top);
    let yaml = config_yaml(&pki, &policy);
    let a = WardenProcess::spawn(&write_config(&pki, "a.yaml", &yaml));
    let b = WardenProcess::spawn(&write_config(&pki, "b.yaml", &yaml));
    let (admin_a, admin_b) = (a.admin.unwrap(), b.admin.unwrap());
    let up = |admin| async move {
        let (_, m) = admin_request(admin, "GET", "/metrics", None).await;
        m.contains("warden_cluster_up 1")
    };
    assert!(
        wait::until(Duration::from_secs(5), || async {
            up(admin_a).await && up(admin_b).await
        })
        .await
    );
    let on_b = AgentClient::new(&pki, &pki.agent("inventory-bot"), b.addr);
    let mut t = AgentTunnel::open(&on_b, "/inventory/ws").await;
    assert_eq!(t.echo(b"ping").await.unwrap(), b"ping");

    let path = format!("/agents/{}/quarantine", agent_id("inventory-bot"));
    let at = Instant::now();
    assert_eq!(admin_request(admin_a, "POST", &path, None).await.0, 200);
    let left = (at + ONE_SECOND).saturating_duration_since(Instant::now());
    assert!(
        t.closed_within(left).await.is_some(),
        "the tunnel on B outlived a quarantine set on A by 1 s"
    );
}
