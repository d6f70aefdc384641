//! The demo's MCP server: a CRM with four tools, answering JSON-RPC over Streamable HTTP (JSON
//! answers) on loopback. It answers every call it receives; what an agent may call is warden's
//! business.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

fn tools() -> Value {
    let tool = |name: &str, description: &str| json!({"name": name, "description": description, "inputSchema": {"type": "object"}});
    json!([
        tool("search_customers", "Search customers by name"),
        tool("get_customer", "One customer, by id and region"),
        tool("delete_customer", "Delete a customer"),
        tool("export_all_customers", "Every customer record"),
    ])
}

fn answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let result = match msg["method"].as_str().unwrap_or("") {
        "initialize" => {
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "demo-crm", "version": "1"}})
        }
        "tools/list" => json!({"tools": tools()}),
        "tools/call" => {
            let name = msg["params"]["name"].as_str().unwrap_or("");
            json!({"content": [{"type": "text", "text": format!("{name}: 2 customers (Acme, Globex)")}]})
        }
        _ => json!({}),
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

async fn respond(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut resp = match answer(&msg) {
        Some(v) => Response::new(Full::new(Bytes::from(v.to_string()))),
        None => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = http::StatusCode::ACCEPTED;
            return Ok(r);
        }
    };
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if msg["method"] == "initialize" {
        resp.headers_mut().insert(
            "mcp-session-id",
            http::HeaderValue::from_static("demo-session-1"),
        );
    }
    Ok(resp)
}

/// Binds `addr` and serves the CRM until the process ends.
pub async fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(respond))
                    .await;
            });
        }
    });
    Ok(bound)
}
