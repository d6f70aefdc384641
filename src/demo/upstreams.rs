//! The demo's two internal APIs: an inventory service and a payroll service, plain HTTP on
//! loopback, each answering with JSON that says what it received (so the scene can show what
//! warden forwarded).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy)]
pub enum Api {
    Inventory,
    Payroll,
}

fn answer(api: Api, req: &Request<Incoming>) -> (StatusCode, serde_json::Value) {
    let agent = req
        .headers()
        .get("x-warden-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = req.uri().path();
    let data = match (api, path) {
        (Api::Inventory, "/inventory/items") => json!([
            {"sku": "A-100", "name": "widget", "stock": 42},
            {"sku": "B-200", "name": "gadget", "stock": 7}
        ]),
        (Api::Inventory, p) if p.starts_with("/inventory/items/") => {
            json!({"sku": p.trim_start_matches("/inventory/items/"), "stock": 3})
        }
        (Api::Inventory, "/inventory/orders") => json!({"order": "accepted"}),
        (Api::Payroll, "/payroll/salaries") => json!([{"employee": "e-1", "salary": 123456}]),
        (_, p) => {
            return (
                StatusCode::NOT_FOUND,
                json!({"error": "not found", "path": p}),
            )
        }
    };
    (StatusCode::OK, json!({"data": data, "served_to": agent}))
}

/// Binds `addr` and serves `api` until the process ends.
pub async fn start(api: Api, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let (status, body) = answer(api, &req);
                    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
                    *resp.status_mut() = status;
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(bound)
}
