//! One agent connection: the TLS handshake, the identity it proves, and the connection's life —
//! served over HTTP/1.1 or HTTP/2, closed when its certificate expires, when a reload stops
//! trusting it (revocation, CA rotation), when idle too long, or drained on shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::HandshakeKind;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::runtime::Runtime;
use super::service::handle;
use crate::agents::AgentState;
use crate::identity::agent_id::{peer_cert, IdentityError, PeerCert};
use crate::ids::AgentId;
use crate::telemetry::audit::{AuditRecord, TryRecordError};
use crate::tls::reason::{handshake_failure_reason, tls_error_reason};
use crate::tls::TlsState;

type IdentityCache = Option<(Arc<str>, Result<Arc<PeerCert>, IdentityError>)>;

/// What a request needs to know about its connection.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client's chain as presented: end entity first.
    certs: Vec<CertificateDer<'static>>,
    identity: Mutex<IdentityCache>,
    agent: OnceLock<Arc<AgentState>>,
    inflight: AtomicUsize,
    last_active_ms: AtomicI64,
}

/// Marks a request in flight for the idle timer.
pub struct InFlight<'a>(&'a ConnInfo);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
        self.0.last_active_ms.store(mono_ms(), Ordering::Relaxed);
    }
}

fn mono_ms() -> i64 {
    static START: OnceLock<tokio::time::Instant> = OnceLock::new();
    START
        .get_or_init(tokio::time::Instant::now)
        .elapsed()
        .as_millis() as i64
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, certs: Vec<CertificateDer<'static>>) -> Self {
        ConnInfo {
            peer,
            certs,
            identity: Mutex::new(None),
            agent: OnceLock::new(),
            inflight: AtomicUsize::new(0),
            last_active_ms: AtomicI64::new(mono_ms()),
        }
    }

    pub fn begin_request(&self) -> InFlight<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// The agent identity in `trust_domain`, parsed once per connection (and again only if a
    /// reload changes the trust domain).
    pub fn identity(&self, trust_domain: &Arc<str>) -> Result<Arc<PeerCert>, IdentityError> {
        let mut cache = self.identity.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((td, result)) = cache.as_ref() {
            if td == trust_domain {
                return result.clone();
            }
        }
        let result = match self.certs.first() {
            Some(der) => peer_cert(der, trust_domain).map(Arc::new),
            None => Err(IdentityError::NoUriSan),
        };
        *cache = Some((trust_domain.clone(), result.clone()));
        result
    }

    /// The agent's runtime state, resolved once per connection.
    pub fn agent_state(&self, rt: &Runtime, agent_id: &AgentId) -> Arc<AgentState> {
        self.agent
            .get_or_init(|| {
                rt.agents
                    .get_or_insert(agent_id, || rt.metrics.agent_label(agent_id.as_str()))
            })
            .clone()
    }

    fn idle_for_ms(&self) -> Option<i64> {
        (self.inflight.load(Ordering::Relaxed) == 0)
            .then(|| mono_ms() - self.last_active_ms.load(Ordering::Relaxed))
    }
}

/// Checks a connection's chain against the trust in force now.
fn verify_chain(tls: &TlsState, certs: &[CertificateDer<'static>]) -> Result<(), rustls::Error> {
    let Some((ee, rest)) = certs.split_first() else {
        return Err(rustls::Error::NoCertificatesPresented);
    };
    tls.verifier
        .verify_client_cert(ee, rest, UnixTime::now())
        .map(|_| ())
}

/// Whether the trust in force now still accepts the chain a connection was admitted with.
fn still_trusted(tls: &TlsState, certs: &[CertificateDer<'static>]) -> bool {
    verify_chain(tls, certs).is_ok()
}

/// How many HTTP/1.1 header fields a head may hold. The limit is in bytes
/// (`max_request_header_bytes`); hyper also counts fields, 100 by default, which would refuse a
/// head of many small headers far under the byte limit. One field per 16 bytes of the limit
/// (hyper reserves room for each up front), never fewer than hyper's own 100.
fn max_header_fields(max_header_bytes: usize) -> usize {
    (max_header_bytes / 16).clamp(100, 8192)
}

/// Handshakes and serves one accepted TCP connection until it ends.
pub async fn serve_connection(
    rt: Arc<Runtime>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let snap = rt.config.snapshot();
    let limits = snap.limits;
    let _ = tcp.set_nodelay(true);
    let acceptor = TlsAcceptor::from(snap.tls.config.clone());
    let tls = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return handshake_failed(&rt, peer, handshake_failure_reason(&e)),
        Err(_) => return handshake_failed(&rt, peer, "timeout"),
    };
    let session = tls.get_ref().1;
    let certs: Vec<CertificateDer<'static>> = session
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default();
    // A resumed session brings back the chain verified when it began, unchecked since: a
    // certificate that has expired in between must not get in through its session.
    if session.handshake_kind() == Some(HandshakeKind::Resumed) {
        if let Err(e) = verify_chain(&snap.tls, &certs) {
            return handshake_failed(&rt, peer, tls_error_reason(&e));
        }
    }
    rt.metrics
        .tls_handshakes
        .with_label_values(&["ok", "ok"])
        .inc();
    let expires_at_ms = certs
        .first()
        .and_then(|c| crate::tls::cert::expires_at_ms(c));
    let trusted_by = snap.tls.clone();
    drop(snap);

    let info = Arc::new(ConnInfo::new(peer, certs));
    let svc_rt = rt.clone();
    let svc_info = info.clone();
    let service = service_fn(move |req| handle(svc_rt.clone(), svc_info.clone(), req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_request_header_bytes.max(8192))
        .max_headers(max_header_fields(limits.max_request_header_bytes))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(conn);

    let until_expiry = expires_at_ms
        .map(|t| Duration::from_millis(u64::try_from(t - rt.clock.now_unix_ms()).unwrap_or(0)))
        .unwrap_or(Duration::from_secs(365 * 86_400));
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    let mut reloads = rt.config.subscribe();
    reloads.mark_unchanged();
    let idle_limit = limits.idle_timeout;
    let mut idle_tick = tokio::time::interval((idle_limit / 4).max(Duration::from_millis(50)));
    let mut draining = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                break;
            }
            _ = &mut expiry => {
                tracing::info!(%peer, "client certificate expired: closing the connection");
                break;
            }
            changed = reloads.changed(), if !draining => {
                if changed.is_err() { continue; }
                let snap = rt.config.snapshot();
                if !Arc::ptr_eq(&snap.tls, &trusted_by) && !still_trusted(&snap.tls, &info.certs) {
                    tracing::info!(%peer, "client certificate no longer trusted after reload: closing");
                    break;
                }
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = idle_tick.tick(), if !draining => {
                if info.idle_for_ms().is_some_and(|ms| ms >= idle_limit.as_millis() as i64) {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn handshake_failed(rt: &Runtime, peer: SocketAddr, reason: &'static str) {
    rt.metrics
        .tls_handshakes
        .with_label_values(&["error", reason])
        .inc();
    tracing::info!(%peer, reason, "TLS handshake refused");
    if let Some(audit) = &rt.audit {
        let ts = crate::clock::utc_datetime(rt.clock.now_unix_ms());
        let rec = AuditRecord::connection(ts, rt.ids.next(), peer.ip(), format!("tls_{reason}"));
        if let Err(TryRecordError::Full(rec)) = audit.try_record(rec) {
            let audit = audit.clone();
            tokio::spawn(async move { audit.record(*rec).await });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_field_count_follows_the_byte_limit() {
        use super::max_header_fields;
        assert_eq!(max_header_fields(16 * 1024), 1024);
        assert_eq!(max_header_fields(1024), 100, "never below hyper's default");
        assert_eq!(max_header_fields(usize::MAX), 8192);
    }
}
