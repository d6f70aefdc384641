//! gRPC through warden: an agent's gRPC client (mTLS, HTTP/2) -> warden -> a gRPC server over
//! HTTP/2 (prior knowledge on http, ALPN on https). Trailers cross both ways; rules judge
//! `/package.Service/Method` paths; a refused call reads as a gRPC status.
//!
//! The end-to-end test uses a real gRPC implementation (Python grpcio, `tests/grpc/peer.py`),
//! found through `WARDEN_TEST_PYTHON` (a Python with grpcio, set by `.ci/run`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use support::client::AgentClient;
use support::pki::{agent_id, TestPki};
use support::upstream::{self, Frames};
use support::wait;
use support::warden::{config_yaml, start_warden};

fn grpc_policy(plain: &str, tls: &str, tls_ca: &str) -> String {
    format!(
        r#"upstreams:
  grpc:
    url: {plain}
    http2: true
  grpc-tls:
    url: {tls}
    http2: true
    tls: {{ ca: {tls_ca} }}
  grpc-short:
    url: {plain}
    http2: true
    timeout: 1s
routes:
  - path_prefix: /demo.Secure
    upstream: grpc-tls
  - path_prefix: /demo.Short
    upstream: grpc-short
  - upstream: grpc
roles:
  grpc-caller:
    upstreams: [grpc, grpc-tls, grpc-short]
    allow:
      - methods: [POST]
        paths: ["/demo.Inventory/*", "/demo.Secure/*", "/demo.Short/*", "/trailers"]
    deny:
      - paths: ["/demo.Inventory/Delete"]
agents:
  - id: {}
    roles: [grpc-caller]
"#,
        agent_id("bot")
    )
}

/// An HTTP/2 request with a body that ends in trailers, as gRPC clients may send.
fn with_trailers(path: &str) -> Request<Frames> {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-request-checksum", HeaderValue::from_static("f00d"));
    let body = Frames(
        [
            Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")),
            Frame::trailers(trailers),
        ]
        .into(),
    );
    Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn trailers_cross_warden_both_ways_between_h2_agents_and_h2_upstreams() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let tls_up = upstream::start_tls(&pki.server_cert, &pki.server_key).await;
    let policy = grpc_policy(&up.url(), &tls_up.url(), &pki.ca_path.display().to_string());
    let w = start_warden(&pki, &config_yaml(&pki, &policy)).await;
    let agent = AgentClient::h2(&pki, &pki.agent("bot"), w.addr);
    let tls = agent.connect().await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(with_trailers("/trailers")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("response trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-checksum"], "abc123");
    assert_eq!(&collected.to_bytes()[..], b"payload");

    let seen = up.recorder.last().unwrap();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(
        seen.headers["te"], "trailers",
        "te: trailers reaches an h2 upstream"
    );
    assert_eq!(seen.headers["x-warden-agent"], agent_id("bot").as_str());
    let request_trailers = seen.trailers.expect("request trailers");
    assert_eq!(request_trailers["x-request-checksum"], "f00d");
}

#[tokio::test]
async fn a_refused_grpc_call_is_a_grpc_status_with_the_reason() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let tls_up = upstream::start_tls(&pki.server_cert, &pki.server_key).await;
    let policy = grpc_policy(&up.url(), &tls_up.url(), &pki.ca_path.display().to_string());
    let w = start_warden(&pki, &config_yaml(&pki, &policy)).await;
    let agent = AgentClient::h2(&pki, &pki.agent("bot"), w.addr);
    for (path, status, message) in [
        ("/demo.Inventory/Delete", "7", "denied"),
        ("/demo.Admin/Reset", "7", "no_matching_rule"),
    ] {
        let tls = agent.connect().await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = send.send_request(with_trailers(path)).await.unwrap();
        // Trailers-only: HTTP 200, the status in the (only) header block.
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], status);
        assert_eq!(resp.headers()["grpc-message"], message);
        assert!(resp.headers().contains_key("x-request-id"));
        assert!(resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty());
    }
    assert_eq!(up.recorder.count(), 0);
    // The refusal keeps its own status in the metrics.
    let metrics = w.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("warden_requests_total")
                && l.contains("reason=\"denied\"")
                && l.contains("status_class=\"4xx\"")),
        "{metrics}"
    );
}

fn python() -> String {
    std::env::var("WARDEN_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/peer.py")
}

/// A grpcio server in a child process, and the events it printed.
struct GrpcServer {
    child: Child,
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
}

impl GrpcServer {
    fn start(tls: Option<&TestPki>) -> GrpcServer {
        let mut cmd = Command::new(python());
        cmd.arg(peer_script()).arg("server");
        if let Some(pki) = tls {
            cmd.arg("--tls").arg(&pki.server_cert).arg(&pki.server_key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python with grpcio (WARDEN_TEST_PYTHON)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let Some(port) = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
        else {
            let _ = child.kill();
            panic!("the gRPC server did not start (is grpcio installed?): {first:?}");
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        GrpcServer {
            child,
            port,
            events,
        }
    }

    fn events(&self, event: &str, method: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == event && e["method"] == method)
            .cloned()
            .collect()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the grpcio client through warden with the agent's certificate; one result per call.
async fn grpc_calls(pki: &TestPki, addr: std::net::SocketAddr, calls: &[&str]) -> Vec<Value> {
    let agent = pki.agent("bot");
    let mut cmd = Command::new(python());
    cmd.arg(peer_script())
        .arg("client")
        .arg("--target")
        .arg(addr.to_string())
        .arg("--ca")
        .arg(&pki.ca_path)
        .arg("--cert")
        .arg(&agent.cert)
        .arg("--key")
        .arg(&agent.key)
        .args(calls);
    // Blocking child on a blocking thread: warden runs on this test's runtime meanwhile.
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run the gRPC client"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gRPC client failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(results.len(), calls.len(), "{stdout}");
    results
}

#[tokio::test]
#[ignore = "needs python grpcio (installed by .ci/run)"]
async fn grpc_end_to_end_through_warden_with_a_real_grpc_client_and_server() {
    let pki = TestPki::new();
    let upstream_ca = TestPki::named("gRPC upstream CA");
    let plain = GrpcServer::start(None);
    let secure = GrpcServer::start(Some(&upstream_ca));
    let policy = grpc_policy(
        &format!("http://127.0.0.1:{}", plain.port),
        &format!("https://localhost:{}", secure.port),
        &upstream_ca.ca_path.display().to_string(),
    );
    let w = start_warden(&pki, &config_yaml(&pki, &policy)).await;
    let r = grpc_calls(
        &pki,
        w.addr,
        &[
            "unary:/demo.Inventory/Get",
            "unary:/demo.Secure/Get",
            "unary:/demo.Inventory/Delete",
            "unary:/demo.Admin/Reset",
            "unary:/demo.Inventory/Missing",
            "stream:/demo.Inventory/Watch",
            "deadline:/demo.Inventory/Slow:0.5",
        ],
    )
    .await;

    // Unary, over h2 prior knowledge and over TLS with ALPN h2; server trailers arrive.
    for i in [0, 1] {
        assert_eq!(r[i]["code"], "OK", "{}", r[i]);
        assert_eq!(r[i]["messages"][0], "item:42");
        assert_eq!(r[i]["trailing"]["x-served-by"], "peer");
    }
    let calls = plain.events("call", "Get");
    assert_eq!(calls[0]["agent"], agent_id("bot").as_str());
    assert_eq!(secure.events("call", "Get").len(), 1);

    // Refused by a rule on the method's path: PERMISSION_DENIED with warden's reason.
    assert_eq!(
        (&r[2]["code"], &r[2]["details"]),
        (&"PERMISSION_DENIED".into(), &"denied".into())
    );
    assert_eq!(r[3]["code"], "PERMISSION_DENIED");
    assert_eq!(r[3]["details"], "no_matching_rule");
    assert!(plain.events("call", "Delete").is_empty() && plain.events("call", "Reset").is_empty());

    // A server's error status, message and trailing metadata pass through unchanged.
    assert_eq!(r[4]["code"], "NOT_FOUND", "{}", r[4]);
    assert_eq!(r[4]["details"], "no such item: 42");
    assert_eq!(r[4]["trailing"]["x-detail"], "gone");

    // Server streaming: the first message arrives long before the stream ends.
    assert_eq!(r[5]["code"], "OK", "{}", r[5]);
    assert_eq!(
        r[5]["messages"],
        serde_json::json!(["update 0", "update 1", "update 2"])
    );
    let arrivals = r[5]["arrivals_ms"].as_array().unwrap();
    let (first, last) = (arrivals[0].as_u64().unwrap(), arrivals[2].as_u64().unwrap());
    assert!(first < 600 && last >= 1300, "arrivals {arrivals:?}");

    // The client's deadline: it reaches the server (grpc-timeout), the client gives up on time,
    // and the server sees the call cancelled.
    assert_eq!(r[6]["code"], "DEADLINE_EXCEEDED", "{}", r[6]);
    assert!(r[6]["elapsed_ms"].as_u64().unwrap() < 1500, "{}", r[6]);
    let slow = plain.events("call", "Slow");
    let remaining = slow[0]["time_remaining"]
        .as_f64()
        .expect("a deadline reached the server");
    assert!(remaining > 0.0 && remaining <= 0.6, "{remaining}");
    assert!(
        wait::until(Duration::from_secs(3), || async {
            plain.events("cancelled", "Slow").len() == 1
        })
        .await,
        "the server never saw the cancellation"
    );

    // warden's own `timeout` on the upstream: DEADLINE_EXCEEDED, reason upstream_timeout.
    let r = grpc_calls(&pki, w.addr, &["unary:/demo.Short/Slow"]).await;
    assert_eq!(r[0]["code"], "DEADLINE_EXCEEDED", "{}", r[0]);
    assert_eq!(r[0]["details"], "upstream_timeout");
    let elapsed = r[0]["elapsed_ms"].as_u64().unwrap();
    assert!((900..3000).contains(&elapsed), "{elapsed}");
    assert!(plain.events("finished", "Slow").is_empty());
}
