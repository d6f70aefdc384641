//! After every reload, every open channel is re-checked against what is in force now: a
//! connection against the trust (a revoked certificate, a CA no longer trusted), a tunnel also
//! against the rules (its original request is decided again). A channel that fails is closed.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri, Version};
use tokio::sync::watch;

use super::conn_info::ConnInfo;
use super::runtime::Runtime;
use crate::agents::channels::Check;
use crate::agents::{CloseReason, Revalidate};
use crate::clock::Clock;
use crate::pipeline::{decide, Caller, GivenAdmission, GivenBody, RequestParts};
use crate::snapshot::ConfigHandle;

/// Re-checks the channels after each successful reload, until shutdown.
pub async fn run(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let mut reloads = rt.config.subscribe();
    reloads.mark_unchanged();
    loop {
        tokio::select! {
            changed = reloads.changed() => {
                if changed.is_err() {
                    return;
                }
                let closed = rt.channels.revalidate().await;
                if closed > 0 {
                    tracing::info!(closed, "reload: closed channels no longer allowed or trusted");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// A connection stays open while the trust in force accepts its certificate.
pub struct ConnCheck {
    config: Arc<ConfigHandle>,
    conn: Arc<ConnInfo>,
}

impl ConnCheck {
    pub fn new(rt: &Runtime, conn: &Arc<ConnInfo>) -> Self {
        ConnCheck {
            config: rt.config.clone(),
            conn: conn.clone(),
        }
    }
}

impl Revalidate for ConnCheck {
    fn revalidate(&self) -> Check<'_> {
        Box::pin(async move {
            let snap = self.config.snapshot();
            (!self.conn.trust_still_holds(&snap.tls)).then_some(CloseReason::Revoked)
        })
    }
}

/// The head of the request that opened a tunnel, kept to decide it again.
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

impl RequestHead {
    pub fn of<B>(req: &http::Request<B>) -> Self {
        RequestHead {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        }
    }
}

/// A tunnel stays open while its certificate is trusted and its request would still be allowed,
/// to the same upstream.
pub struct TunnelCheck {
    pub config: Arc<ConfigHandle>,
    pub clock: Clock,
    pub conn: Arc<ConnInfo>,
    pub head: RequestHead,
    pub upstream: Arc<str>,
}

impl TunnelCheck {
    async fn check(&self) -> Option<CloseReason> {
        let snap = self.config.snapshot();
        if !self.conn.trust_still_holds(&snap.tls) {
            return Some(CloseReason::Revoked);
        }
        let Ok(peer) = self.conn.identity(&snap.trust_domain) else {
            return Some(CloseReason::Policy);
        };
        let caller = Caller::Agent {
            id: &peer.agent_id,
            thumbprint: Some(&peer.thumbprint),
        };
        let parts = self.parts(self.conn.peer.ip());
        // Quarantine closes tunnels itself; rates and concurrency do not end an open tunnel.
        let mut admission = GivenAdmission {
            quarantined: Some(false),
            rate_limited: Some(false),
            concurrency_limited: Some(false),
        };
        // Tunnels never open on agent-protocol routes, so there is no message to judge.
        let mut body = GivenBody(None);
        match decide(&snap, &caller, &mut admission, &parts, &mut body).await {
            // In shadow mode a permit comes back even where the rules refuse: shadow never
            // enforces, on tunnels either.
            Ok(permit) => {
                let same = snap
                    .upstream(permit.upstream())
                    .is_some_and(|u| u.name == self.upstream);
                (!same).then_some(CloseReason::Policy)
            }
            Err(_) => Some(CloseReason::Policy),
        }
    }

    fn parts(&self, source_ip: IpAddr) -> RequestParts<'_> {
        RequestParts {
            method: &self.head.method,
            uri: &self.head.uri,
            version: self.head.version,
            headers: &self.head.headers,
            has_body: false,
            source_ip,
            now_ms: self.clock.now_unix_ms(),
        }
    }
}

impl Revalidate for TunnelCheck {
    fn revalidate(&self) -> Check<'_> {
        Box::pin(self.check())
    }
}
