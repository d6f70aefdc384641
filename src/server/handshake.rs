//! The TLS handshake of an accepted socket, bounded by `limits.handshake_timeout`, and the record
//! of a socket refused before it could send a request.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::HandshakeKind;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::conn_info::verify_chain;
use super::runtime::Runtime;
use crate::telemetry::audit::{AuditRecord, TryRecordError};
use crate::tls::reason::{handshake_failure_reason, tls_error_reason};
use crate::tls::TlsState;

/// A socket that finished its handshake with a trusted client certificate.
pub struct Handshaken {
    pub tls: TlsStream<TcpStream>,
    /// The client's chain as presented: end entity first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The trust that accepted it.
    pub trusted_by: Arc<TlsState>,
}

/// Runs the TLS handshake; `None` (counted and recorded) when it fails or takes too long.
pub async fn handshake(rt: &Runtime, tcp: TcpStream, peer: SocketAddr) -> Option<Handshaken> {
    let snap = rt.config.snapshot();
    let _ = tcp.set_nodelay(true);
    let acceptor = TlsAcceptor::from(snap.tls.config.clone());
    let tls = match tokio::time::timeout(snap.limits.handshake_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return refused(rt, peer, handshake_failure_reason(&e)),
        Err(_) => return refused(rt, peer, "timeout"),
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
            return refused(rt, peer, tls_error_reason(&e));
        }
    }
    rt.metrics
        .tls_handshakes
        .with_label_values(&["ok", "ok"])
        .inc();
    Some(Handshaken {
        tls,
        certs,
        trusted_by: snap.tls.clone(),
    })
}

fn refused(rt: &Runtime, peer: SocketAddr, reason: &'static str) -> Option<Handshaken> {
    rt.metrics
        .tls_handshakes
        .with_label_values(&["error", reason])
        .inc();
    tracing::info!(%peer, reason, "TLS handshake refused");
    record_refused(rt, peer, format!("tls_{reason}"));
    None
}

/// Audits a socket refused before any request: a failed handshake, or `max_connections`.
pub fn record_refused(rt: &Runtime, peer: SocketAddr, reason: String) {
    if let Some(audit) = &rt.audit {
        let ts = crate::clock::utc_datetime(rt.clock.now_unix_ms());
        let rec = AuditRecord::connection(ts, rt.ids.next().to_string(), peer.ip(), reason);
        if let Err(TryRecordError::Full(rec)) = audit.try_record(rec) {
            let audit = audit.clone();
            tokio::spawn(async move { audit.record(*rec).await });
        }
    }
}
