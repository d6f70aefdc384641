//! `/healthz` (the process answers) and `/readyz` (it should receive traffic: 200 once config, TLS
//! and the audit writer are ready, 503 before that, while draining, or while another part holds
//! it), and `warden healthcheck`, their client for a container's HEALTHCHECK (distroless images
//! have no curl). Neither probe needs the admin token: orchestrators probe without credentials,
//! and the answers reveal nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http::{Method, StatusCode};

use super::{respond, AdminResp};
use crate::server::Runtime;

/// The admin address `warden healthcheck` uses when given neither `--addr` nor a config.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9901);

/// The probe's answer, or `None` when `method path` is not a probe.
pub fn answer(rt: &Runtime, method: &Method, path: &str) -> Option<AdminResp> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    match path {
        "/healthz" => Some(respond(StatusCode::OK, "text/plain", "ok\n")),
        "/readyz" => Some(readyz(rt)),
        _ => None,
    }
}

fn readyz(rt: &Runtime) -> AdminResp {
    let mut reasons = rt.readiness.reasons();
    // A fleet in closed mode without its shared store refuses every request: ready for none.
    if rt.cluster().is_some_and(|c| c.refuses()) {
        reasons.push("cluster unavailable".to_owned());
    }
    if reasons.is_empty() {
        respond(StatusCode::OK, "text/plain", "ready\n")
    } else {
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("not ready: {}\n", reasons.join(", ")),
        )
    }
}

/// Where to probe a listener configured on `listen`: an unspecified address (`0.0.0.0`, `::`)
/// is reached on loopback.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET path` on the admin listener at `addr`; `Ok` with the body on 200, else why not.
pub async fn healthcheck(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<String, String> {
    match tokio::time::timeout(timeout, super::call(addr, "GET", path, None)).await {
        Err(_) => Err(format!("{addr}{path}: no answer within {timeout:?}")),
        Ok((0, _)) => Err(format!("{addr}{path}: cannot connect")),
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => Err(format!("{addr}{path}: {status} {}", body.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listeners_are_probed_on_loopback() {
        let p = |s: &str| probe_address(s.parse().expect("addr")).to_string();
        assert_eq!(p("0.0.0.0:9901"), "127.0.0.1:9901");
        assert_eq!(p("[::]:9901"), "[::1]:9901");
        assert_eq!(p("10.1.2.3:9901"), "10.1.2.3:9901");
    }
}
