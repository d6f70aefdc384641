//! The upstream connection pool: the cap of `max_connections` (waiting, then 503
//! `upstream_busy`), HTTP/2 multiplexing, the connection of its own for a body on GET, what is
//! never reused, idle connections closed, and `warden_upstream_connections`.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::client::AgentClient;
use support::pki::{agent_id, TestPki};
use support::upstream::{self, Upstream};
use support::wait;
use support::warden::{config_yaml, start_warden, TestWarden};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One upstream `api` (settings in `extra`, indented by four spaces), every GET and POST allowed.
/// One worker: these tests follow one pool's reuse across the client's connections, which on
/// several workers would each keep idle connections of their own (tested on its own below).
fn policy(url: &str, extra: &str) -> String {
    format!(
        "workers: 1\nupstreams:\n  api:\n    url: {url}\n{extra}routes:\n  - upstream: api\nroles:\n  caller:\n    upstreams: [api]\n    allow:\n      - methods: [GET, POST]\n\
agents:\n  - id: {}\n    roles: [caller]\n",
        agent_id("bot")
    )
}

async fn warden_for(pki: &TestPki, url: &str, extra: &str) -> (TestWarden, AgentClient) {
    let w = start_warden(pki, &config_yaml(pki, &policy(url, extra))).await;
    let c = AgentClient::new(pki, &pki.agent("bot"), w.addr);
    (w, c)
}

/// The value of `warden_upstream_connections{upstream="api",state=STATE}`.
fn gauge(w: &TestWarden, state: &str) -> f64 {
    let needle = format!("warden_upstream_connections{{state=\"{state}\",upstream=\"api\"}} ");
    w.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(-1.0)
}

/// Starts `n` GETs of `path` at once; their statuses and errors in order.
async fn concurrent(c: &AgentClient, path: &str, n: usize) -> Vec<(u16, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            let path = path.to_string();
            tokio::spawn(async move {
                let r = c.get(&path).await;
                (r.status, r.error())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `n` GETs of `path` as concurrent streams on one HTTP/2 agent connection; their statuses.
async fn h2_streams(c: &AgentClient, path: &str, n: usize) -> Vec<u16> {
    let tls = c.connect().await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut send = send.clone();
            let req = Request::get(format!("https://localhost{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            tokio::spawn(async move {
                let resp = send.send_request(req).await.unwrap();
                let status = resp.status().as_u16();
                let _ = resp.into_body().collect().await;
                status
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn requests_seen(up: &Upstream, n: usize) -> bool {
    wait::until(Duration::from_secs(5), || async {
        up.recorder.count() >= n
    })
    .await
}

#[tokio::test]
async fn the_pool_never_exceeds_max_connections_and_a_waiting_request_gets_a_freed_one() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (_w, c) = warden_for(
        &pki,
        &up.url(),
        "    max_connections: 2\n    connect_timeout: 5s\n",
    )
    .await;
    let first_two = {
        let c = c.clone();
        tokio::spawn(async move { concurrent(&c, "/wait/700", 2).await })
    };
    assert!(
        requests_seen(&up, 2).await,
        "two requests reach the upstream"
    );
    // Both pooled connections are busy: the third waits for one of them.
    let started = Instant::now();
    let third = c.get("/third").await;
    assert_eq!(third.status, 200, "{}", third.text());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the third request did not wait: {:?}",
        started.elapsed()
    );
    assert!(first_two.await.unwrap().iter().all(|(s, _)| *s == 200));
    // A burst far over the cap: all served, never more than two connections at once.
    let burst = concurrent(&c, "/wait/50", 12).await;
    assert!(burst.iter().all(|(s, _)| *s == 200), "{burst:?}");
    // One agent with many HTTP/2 streams on one connection: still two upstream connections.
    let h2 = AgentClient::h2(&pki, &pki.agent("bot"), c.addr);
    let streams = h2_streams(&h2, "/wait/50", 40).await;
    assert!(streams.iter().all(|s| *s == 200), "{streams:?}");
    assert_eq!(
        up.max_open_connections(),
        2,
        "upstream saw more than the cap"
    );
    assert!(
        up.connection_count() <= 2,
        "{} connections",
        up.connection_count()
    );
}

#[tokio::test]
async fn past_connect_timeout_a_request_waiting_for_a_connection_is_503_upstream_busy() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (w, c) = warden_for(
        &pki,
        &up.url(),
        "    max_connections: 1\n    connect_timeout: 300ms\n",
    )
    .await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/wait/2000").await })
    };
    assert!(requests_seen(&up, 1).await);
    assert_eq!(gauge(&w, "busy"), 1.0);
    let started = Instant::now();
    let busy = c.get("/other").await;
    assert_eq!((busy.status, busy.error().as_str()), (503, "upstream_busy"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
        "waited {waited:?}"
    );
    assert_eq!(
        up.recorder.count(),
        1,
        "the busy request never reached the upstream"
    );
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(up.max_open_connections(), 1);
}

#[tokio::test]
async fn http2_requests_multiplex_on_one_pooled_connection() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (w, c) = warden_for(&pki, &up.url(), "    http2: true\n    max_connections: 4\n").await;
    let results = concurrent(&c, "/wait/300", 20).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(
        up.connection_count(),
        1,
        "20 concurrent streams, one connection"
    );
    let seen = up.recorder.all();
    assert_eq!(seen.len(), 20);
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_2));
    // HTTP/2 carries the authority as :authority, not as a Host header.
    assert!(seen.iter().all(|s| !s.headers.contains_key("host")));
    assert_eq!(seen[0].headers["x-warden-agent"], agent_id("bot").as_str());
    assert!(
        wait::until(Duration::from_secs(2), || async {
            gauge(&w, "idle") == 1.0 && gauge(&w, "busy") == 0.0
        })
        .await
    );
}

#[tokio::test]
async fn the_connection_gauge_follows_idle_and_busy_and_idle_connections_are_closed() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (w, c) = warden_for(&pki, &up.url(), "    idle_timeout: 500ms\n").await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/wait/600").await })
    };
    assert!(requests_seen(&up, 1).await);
    assert_eq!((gauge(&w, "busy"), gauge(&w, "idle")), (1.0, 0.0));
    assert_eq!(slow.await.unwrap().status, 200);
    assert!(
        wait::until(Duration::from_secs(2), || async {
            gauge(&w, "busy") == 0.0 && gauge(&w, "idle") == 1.0
        })
        .await,
        "busy {} idle {}",
        gauge(&w, "busy"),
        gauge(&w, "idle")
    );
    assert_eq!(up.open_connections(), 1, "the idle connection is kept");
    // Unused for idle_timeout: closed, and gone from the gauge.
    assert!(
        wait::until(Duration::from_secs(3), || async {
            up.open_connections() == 0 && gauge(&w, "idle") == 0.0
        })
        .await,
        "open {} idle {}",
        up.open_connections(),
        gauge(&w, "idle")
    );
    assert_eq!(c.get("/again").await.status, 200);
    assert_eq!(
        up.connection_count(),
        2,
        "a new connection after the idle one closed"
    );
}

#[tokio::test]
async fn a_response_the_agent_stopped_reading_never_returns_its_connection_to_the_pool() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (_w, c) = warden_for(&pki, &up.url(), "").await;
    assert_eq!(c.get("/first").await.status, 200);
    let resp = c.get_streaming("/huge").await;
    let mut body = resp.into_body();
    let _ = body.frame().await;
    drop(body);
    // The half-read connection is closed, not pooled: the next request opens a new one.
    assert!(
        wait::until(Duration::from_secs(3), || async {
            up.open_connections() == 1
        })
        .await,
        "open {}",
        up.open_connections()
    );
    assert_eq!(c.get("/after").await.status, 200);
    let seen = up.recorder.all();
    let conn_of = |t: &str| seen.iter().find(|s| s.target == t).unwrap().conn;
    assert_eq!(
        conn_of("/huge"),
        conn_of("/first"),
        "idle connection reused"
    );
    assert_ne!(conn_of("/after"), conn_of("/huge"));
}

/// One request as a careless HTTP/1.1 server parsed it.
#[derive(Debug, Clone)]
struct Parsed {
    conn: usize,
    target: String,
    agent: Option<String>,
}

/// An HTTP/1.1 server that never reads a body on GET (it takes whatever follows the head as the
/// next request) and stops reading after a request that says `Connection: close`.
async fn careless_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Parsed>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        for conn in 0.. {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    buf.drain(..end + 4);
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim().to_string())
                    };
                    let target = head.split(' ').nth(1).unwrap_or("").to_string();
                    record.lock().unwrap().push(Parsed {
                        conn,
                        target,
                        agent: header("x-warden-agent"),
                    });
                    if !head.starts_with("get ") {
                        let len: usize = header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while buf.len() < len {
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..len);
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if tcp.write_all(reply).await.is_err()
                        || header("connection").as_deref() == Some("close")
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_get_body_gets_a_connection_of_its_own_and_cannot_smuggle_a_request() {
    let pki = TestPki::new();
    let (url, seen) = careless_upstream().await;
    let (_w, c) = warden_for(&pki, &url, "    bodies_on_get: true\n").await;
    assert_eq!(c.get("/warm").await.status, 200);
    let forged = "GET /forged HTTP/1.1\r\nhost: api\r\nx-warden-agent: spiffe://example.org/agent/admin\r\n\r\n";
    let r = c
        .request("GET", "/search", &[("content-type", "text/plain")], forged)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.get("/next").await.status, 200);
    assert_eq!(c.get("/last").await.status, 200);
    let seen = seen.lock().unwrap().clone();
    let targets: Vec<&str> = seen.iter().map(|p| p.target.as_str()).collect();
    assert_eq!(targets, ["/warm", "/search", "/next", "/last"], "{seen:#?}");
    assert!(
        seen.iter()
            .all(|p| p.agent.as_deref() == Some(agent_id("bot").as_str())),
        "{seen:#?}"
    );
    let conn_of = |t: &str| seen.iter().find(|p| p.target == t).unwrap().conn;
    // The GET with a body went on a new connection, and nothing else ever used it.
    assert_ne!(conn_of("/search"), conn_of("/warm"));
    assert_ne!(conn_of("/next"), conn_of("/search"));
    // Bodiless requests keep using the pool.
    assert_eq!(conn_of("/next"), conn_of("/warm"));
    assert_eq!(conn_of("/last"), conn_of("/warm"));
}

/// Sends `n` GETs one after another from a new thread marked as worker `index`, on a runtime of
/// its own that lives on (running the connections it opened) until `stop` is sent.
fn worker_sends(
    pool: std::sync::Arc<warden::upstream::Upstream>,
    index: usize,
    n: usize,
    stop: std::sync::mpsc::Receiver<()>,
) -> std::sync::mpsc::Receiver<Vec<u16>> {
    let (done, statuses) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        warden::worker::enter(index);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let mut got = Vec::new();
            for _ in 0..n {
                let uri = pool
                    .uri_for(&http::uri::PathAndQuery::from_static("/x"))
                    .unwrap();
                let body = Full::new(Bytes::new()).map_err(|e| match e {}).boxed();
                let req = Request::get(uri).body(body).unwrap();
                let resp = pool.send(req, Duration::from_secs(5)).await.unwrap();
                got.push(resp.status().as_u16());
                resp.into_body().collect().await.unwrap();
            }
            got
        });
        done.send(got).unwrap();
        // The connections this worker opened run here until the test is over.
        rt.block_on(async {
            while stop.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    });
    statuses
}

/// The statuses a worker thread got, once it has sent all its requests.
async fn finished(statuses: std::sync::mpsc::Receiver<Vec<u16>>) -> Vec<u16> {
    tokio::task::spawn_blocking(move || statuses.recv().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn each_worker_reuses_its_own_connections_and_borrows_anothers_only_at_the_cap() {
    for (max, connections) in [(4, 2), (1, 1)] {
        let up = upstream::start().await;
        let settings = warden::upstream::UpstreamSettings {
            url: up.url(),
            tls: None,
            connect_timeout: None,
            timeout: None,
            max_connections: Some(max),
            idle_timeout: None,
            http2: false,
            bodies_on_get: false,
        };
        let pool = warden::upstream::Upstream::build("api", &settings, None, None).unwrap();
        let (stop0, stopped0) = std::sync::mpsc::channel();
        let (stop1, stopped1) = std::sync::mpsc::channel();
        let first = finished(worker_sends(pool.clone(), 0, 3, stopped0)).await;
        assert_eq!(first, [200; 3]);
        assert_eq!(
            up.connection_count(),
            1,
            "worker 0 reused its one connection"
        );
        let second = finished(worker_sends(pool.clone(), 1, 3, stopped1)).await;
        assert_eq!(second, [200; 3]);
        assert_eq!(
            up.connection_count(),
            connections,
            "max_connections {max}: worker 1 opens its own connection while there is room, \
             and borrows worker 0's at the cap"
        );
        let _ = (stop0.send(()), stop1.send(()));
    }
}
