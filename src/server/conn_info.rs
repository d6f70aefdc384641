//! What a request needs to know about its connection: who is calling (the identity the
//! certificate proved, parsed once), the agent's live state, the trust that admitted it, and
//! what the connection's loop watches (requests in flight, bodies in progress, the socket).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, UnixTime};

use super::io::IoStats;
use super::listener::ConnSlot;
use super::runtime::Runtime;
use crate::agents::AgentState;
use crate::forward::stall::{now_ms, ProgressSet};
use crate::identity::agent_id::{peer_cert, IdentityError, PeerCert};
use crate::ids::AgentId;
use crate::tls::TlsState;

type IdentityCache = Option<(Arc<str>, Result<Arc<PeerCert>, IdentityError>)>;

/// One authenticated connection, shared by its loop, its requests and any tunnel it opened.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address as `x-forwarded-for` names it, made once for all its requests.
    pub forwarded_for: http::HeaderValue,
    /// The client's chain as presented: end entity first.
    certs: Vec<CertificateDer<'static>>,
    /// Unix ms at which the client certificate expires.
    pub expires_at_ms: Option<i64>,
    identity: Mutex<IdentityCache>,
    agent: OnceLock<Arc<AgentState>>,
    inflight: AtomicUsize,
    last_active_ms: AtomicU64,
    /// Response bodies in progress, watched for an agent that stops reading.
    pub bodies: ProgressSet,
    pub io: Arc<IoStats>,
    /// The trust in force that last accepted the chain.
    trusted_by: ArcSwap<TlsState>,
    /// A request on it opened a tunnel, which took the connection over.
    upgraded: AtomicBool,
    /// Its place in `max_connections`: held as long as the connection or a tunnel it opened.
    _slot: ConnSlot,
}

/// Marks a request in flight for the idle timer.
pub struct InFlight<'a>(&'a ConnInfo);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
        self.0.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// Checks a chain against the trust in force.
pub fn verify_chain(
    tls: &TlsState,
    certs: &[CertificateDer<'static>],
) -> Result<(), rustls::Error> {
    let Some((ee, rest)) = certs.split_first() else {
        return Err(rustls::Error::NoCertificatesPresented);
    };
    tls.verifier
        .verify_client_cert(ee, rest, UnixTime::now())
        .map(|_| ())
}

impl ConnInfo {
    pub fn new(
        peer: SocketAddr,
        certs: Vec<CertificateDer<'static>>,
        trusted_by: Arc<TlsState>,
        io: Arc<IoStats>,
        slot: ConnSlot,
    ) -> Self {
        let expires_at_ms = certs
            .first()
            .and_then(|c| crate::tls::cert::expires_at_ms(c));
        let ip = crate::net::canonical_ip(peer.ip()).to_string();
        ConnInfo {
            forwarded_for: http::HeaderValue::from_maybe_shared(bytes::Bytes::from(ip))
                .unwrap_or_else(|_| http::HeaderValue::from_static("unknown")),
            peer,
            certs,
            expires_at_ms,
            identity: Mutex::new(None),
            agent: OnceLock::new(),
            inflight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(now_ms()),
            bodies: ProgressSet::default(),
            io,
            trusted_by: ArcSwap::new(trusted_by),
            upgraded: AtomicBool::new(false),
            _slot: slot,
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

    /// The agent's state, if a request already resolved it.
    pub fn known_agent(&self) -> Option<&Arc<AgentState>> {
        self.agent.get()
    }

    /// No request in flight for at least `limit`.
    pub fn idle_for(&self, limit: Duration) -> bool {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.inflight.load(Ordering::Relaxed) == 0
            && now_ms().saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) >= limit_ms
    }

    /// The agent has not taken what warden is sending it for at least `limit`.
    pub fn agent_stalled(&self, limit: Duration) -> bool {
        self.io.write_blocked_for() >= limit || self.bodies.agent_stalled(limit)
    }

    /// Whether `tls` (the trust in force) still accepts this connection's chain.
    pub fn trust_still_holds(&self, tls: &Arc<TlsState>) -> bool {
        if Arc::ptr_eq(&self.trusted_by.load(), tls) {
            return true;
        }
        let holds = verify_chain(tls, &self.certs).is_ok();
        if holds {
            self.trusted_by.store(tls.clone());
        }
        holds
    }

    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    pub fn upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Relaxed)
    }
}
