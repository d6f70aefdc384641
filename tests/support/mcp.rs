//! A small MCP and A2A server for the tests, speaking JSON-RPC over Streamable HTTP on
//! 127.0.0.1:0: `initialize` opens a session (`Mcp-Session-Id`), `tools/list` answers from a list
//! the test may change (in JSON, or as an event stream when the request carries
//! `x-test-sse: 1`), `tools/call` echoes the tool; A2A `message/send` creates a task and
//! `tasks/get` returns it; GET opens an endless event stream. Every request is recorded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::upstream::{Recorder, Seen};

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone)]
pub struct McpServer {
    pub addr: SocketAddr,
    pub recorder: Recorder,
    pub tools: Arc<Mutex<Vec<Value>>>,
    sessions: Arc<AtomicUsize>,
}

impl McpServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JSON-RPC methods received, in order.
    pub fn methods(&self) -> Vec<String> {
        self.recorder
            .all()
            .iter()
            .filter_map(|s| serde_json::from_slice::<Value>(&s.body).ok())
            .filter_map(|v| v["method"].as_str().map(String::from))
            .collect()
    }
}

pub fn tool(name: &str, description: &str) -> Value {
    json!({"name": name, "description": description, "inputSchema": {"type": "object"}})
}

pub async fn start() -> McpServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = McpServer {
        addr: listener.local_addr().unwrap(),
        recorder: Recorder::default(),
        tools: Arc::new(Mutex::new(vec![
            tool("search_customers", "Search customers"),
            tool("get_customer", "One customer"),
            tool("delete_customer", "Delete a customer"),
            tool("export_all", "Everything"),
        ])),
        sessions: Arc::new(AtomicUsize::new(0)),
    };
    let s = server.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| respond(s.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    server
}

fn full(v: impl Into<Bytes>) -> Body {
    Full::new(v.into()).boxed()
}

fn json_resp(v: &Value) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(full(v.to_string()))
        .unwrap()
}

async fn respond(s: McpServer, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let target = req.uri().to_string();
    let headers = req.headers().clone();
    let version = req.version();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    s.recorder.push(Seen {
        method: method.clone(),
        target,
        headers: headers.clone(),
        body: body.clone(),
        version,
        conn: 0,
        trailers: None,
    });
    if method == "GET" {
        return Ok(endless_stream());
    }
    if method == "DELETE" {
        return Ok(Response::new(full("")));
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return Ok(Response::builder().status(400).body(full("")).unwrap());
    };
    let id = msg["id"].clone();
    if id.is_null() {
        return Ok(Response::builder().status(202).body(full("")).unwrap());
    }
    let result = match msg["method"].as_str().unwrap_or("") {
        "initialize" => {
            let n = s.sessions.fetch_add(1, Ordering::Relaxed);
            let v = json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "test", "version": "1"}}});
            let mut r = json_resp(&v);
            r.headers_mut()
                .insert("mcp-session-id", format!("session-{n}").parse().unwrap());
            return Ok(r);
        }
        "tools/list" => json!({"tools": s.tools.lock().unwrap().clone()}),
        "tools/call" => {
            json!({"content": [{"type": "text", "text": format!("called {}", msg["params"]["name"].as_str().unwrap_or(""))}]})
        }
        "message/send" => {
            let n = s.sessions.fetch_add(1, Ordering::Relaxed);
            json!({"kind": "task", "id": format!("task-{n}"), "contextId": "c", "status": {"state": "submitted"}})
        }
        "message/stream" => {
            let n = s.sessions.fetch_add(1, Ordering::Relaxed);
            let ev = json!({"jsonrpc": "2.0", "id": id, "result": {"kind": "status-update", "taskId": format!("task-{n}"), "contextId": "c", "status": {"state": "working"}, "final": true}});
            return Ok(sse(vec![format!("data: {ev}\n\n")]));
        }
        "tasks/get" => {
            json!({"kind": "task", "id": msg["params"]["id"], "status": {"state": "completed"}})
        }
        _ => json!({}),
    };
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
    if headers.get("x-test-sse").is_some() {
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}});
        // The answer's JSON is split over two data lines, as a server may.
        let text = answer.to_string();
        let (a, b) = text.split_at(text.find(",\"result\"").unwrap());
        return Ok(sse(vec![
            format!("id: 1\nevent: message\ndata: {progress}\n\n"),
            format!("id: 2\ndata: {a}\ndata: {b}\n\n"),
        ]));
    }
    Ok(json_resp(&answer))
}

fn sse(events: Vec<String>) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for e in events {
            // Every event in two frames: the reader must join them.
            let cut = e.len() / 2;
            for part in [&e[..cut], &e[cut..]] {
                if tx.send(Bytes::from(part.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(ChannelBody(rx).boxed())
        .unwrap()
}

/// The server's own stream: a notification every 100 ms until the client goes away.
fn endless_stream() -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for i in 0.. {
            let ev = format!("data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"n\":{i}}}}}\n\n");
            if tx.send(Bytes::from(ev)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(ChannelBody(rx).boxed())
        .unwrap()
}

/// A response body fed through a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// An MCP route and an A2A route to the JSON-RPC test server, with a role for each.
pub fn with_agent_protocols(policy: &str, url: &str) -> String {
    policy
        .replacen(
            "upstreams:\n",
            &format!("upstreams:\n  crm:\n    url: {url}\n  tasks:\n    url: {url}\n"),
            1,
        )
        .replacen(
            "routes:\n",
            "routes:\n  - path_prefix: /mcp\n    upstream: crm\n    protocol: mcp\n  - path_prefix: /a2a\n    upstream: tasks\n    protocol: a2a\n",
            1,
        )
        .replacen(
            "roles:\n",
            r#"roles:
  support:
    upstreams: [crm]
    allow:
      - paths: ["/mcp"]
        mcp: { tools: ["search_*"] }
      - paths: ["/mcp"]
        mcp: { tools: [get_customer], arguments: { region: [eu, us] } }
    deny:
      - mcp: { tools: ["delete_*"] }
  worker:
    upstreams: [tasks]
    allow:
      - paths: ["/a2a"]
        a2a: { methods: [message/send, tasks/get] }
"#,
            1,
        )
        .replacen(
            "agents:\n",
            "agents:\n  - id: spiffe://example.org/agent/support-bot\n    roles: [support]\n  - id: spiffe://example.org/agent/worker-a\n    roles: [worker]\n",
            1,
        )
}
