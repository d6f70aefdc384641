//! Channels: every live thing an agent holds open through warden — a connection, a WebSocket
//! tunnel — registered under its agent with a cancellation handle.
//!
//! One mechanism closes them all: quarantine closes an agent's channels, a reload re-checks every
//! channel against the config and trust in force (revocation, CA change, a rule that no longer
//! allows a tunnel), a certificate's expiry ends its channels, shutdown ends the tunnels. The
//! owner of a channel (the task serving it) waits on [`Channel::closed`], stops, and records the
//! end with [`Channel::close_reason`]; dropping the [`Channel`] unregisters it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ids::AgentId;

#[cfg(test)]
mod tests;

/// What a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// An authenticated agent connection (HTTP/1.1 or HTTP/2, all its streams).
    Connection,
    /// A WebSocket tunnel spliced to its upstream.
    Tunnel,
}

impl ChannelKind {
    fn index(self) -> usize {
        match self {
            ChannelKind::Connection => 0,
            ChannelKind::Tunnel => 1,
        }
    }
}

/// Why a channel ended: the `close_reason` of its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CloseReason {
    /// One side ended it (or it broke).
    Closed = 1,
    /// No bytes either way for `limits.idle_timeout`.
    Idle,
    /// Its agent was quarantined.
    Quarantined,
    /// The trust in force no longer accepts its certificate (revoked, CA changed).
    Revoked,
    /// Its certificate expired.
    Expired,
    /// A reload no longer allows it.
    Policy,
    /// warden is stopping.
    Shutdown,
    /// A body made no progress for `limits.body_stall_timeout`.
    Stalled,
    /// A connection handed over to the tunnel its upgrade opened.
    Upgraded,
}

impl CloseReason {
    const ALL: [CloseReason; 9] = [
        CloseReason::Closed,
        CloseReason::Idle,
        CloseReason::Quarantined,
        CloseReason::Revoked,
        CloseReason::Expired,
        CloseReason::Policy,
        CloseReason::Shutdown,
        CloseReason::Stalled,
        CloseReason::Upgraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Closed => "closed",
            CloseReason::Idle => "idle",
            CloseReason::Quarantined => "quarantined",
            CloseReason::Revoked => "revoked",
            CloseReason::Expired => "expired",
            CloseReason::Policy => "policy",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Stalled => "stalled",
            CloseReason::Upgraded => "upgraded",
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as u8 == v)
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The future a re-check returns: `Some(reason)` to close the channel.
pub type Check<'a> = Pin<Box<dyn Future<Output = Option<CloseReason>> + Send + 'a>>;

/// Whether a channel may stay open under the config and trust in force now; run on every reload.
pub trait Revalidate: Send + Sync {
    fn revalidate(&self) -> Check<'_>;
}

struct Entry {
    kind: ChannelKind,
    agent: Option<AgentId>,
    token: CancellationToken,
    /// 0 while open, else the first [`CloseReason`] given.
    reason: AtomicU8,
    revalidate: Option<Box<dyn Revalidate>>,
}

impl Entry {
    /// Closes with `reason` unless already closed; the first reason given is the one recorded.
    fn close(&self, reason: CloseReason) {
        let _ = self
            .reason
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
        self.token.cancel();
    }

    fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.reason.load(Ordering::Acquire))
    }
}

/// What a new channel is and what may end it besides its owner.
pub struct ChannelSpec {
    pub kind: ChannelKind,
    /// The agent the certificate named; `None` when it named no usable identity.
    pub agent: Option<AgentId>,
    /// When its certificate expires.
    pub expires_at: Option<Instant>,
    pub revalidate: Option<Box<dyn Revalidate>>,
}

/// Every open channel, by id; each knows its agent.
#[derive(Default)]
pub struct ChannelRegistry {
    next: AtomicU64,
    live: DashMap<u64, Arc<Entry>>,
    counts: [AtomicUsize; 2],
}

impl std::fmt::Debug for ChannelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRegistry")
            .field("connections", &self.count(ChannelKind::Connection))
            .field("tunnels", &self.count(ChannelKind::Tunnel))
            .finish()
    }
}

impl ChannelRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a channel; it stays registered until the returned handle is dropped.
    pub fn open(self: &Arc<Self>, spec: ChannelSpec) -> Channel {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            kind: spec.kind,
            agent: spec.agent,
            token: CancellationToken::new(),
            reason: AtomicU8::new(0),
            revalidate: spec.revalidate,
        });
        self.counts[spec.kind.index()].fetch_add(1, Ordering::Relaxed);
        self.live.insert(id, entry.clone());
        Channel {
            registry: self.clone(),
            id,
            entry,
            expires_at: spec.expires_at,
        }
    }

    /// Closes every channel of `agent`; returns how many were open.
    pub fn close_agent(&self, agent: &AgentId, reason: CloseReason) -> usize {
        self.close_where(reason, |e| e.agent.as_ref() == Some(agent))
    }

    /// Closes every channel of `kind`; returns how many were open.
    pub fn close_kind(&self, kind: ChannelKind, reason: CloseReason) -> usize {
        self.close_where(reason, |e| e.kind == kind)
    }

    fn close_where(&self, reason: CloseReason, select: impl Fn(&Entry) -> bool) -> usize {
        // Collected first: closing wakes the owners, which unregister from this map.
        let doomed: Vec<Arc<Entry>> = self
            .live
            .iter()
            .filter(|e| select(e.value()))
            .map(|e| e.value().clone())
            .collect();
        for e in &doomed {
            e.close(reason);
        }
        doomed.len()
    }

    /// Open channels of `kind`.
    pub fn count(&self, kind: ChannelKind) -> usize {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// Open channels of `kind` held by `agent`.
    pub fn count_of(&self, agent: &AgentId, kind: ChannelKind) -> usize {
        self.live
            .iter()
            .filter(|e| e.kind == kind && e.agent.as_ref() == Some(agent))
            .count()
    }

    /// Re-checks every open channel that can be re-checked and closes those that fail; returns
    /// how many it closed. Run after each reload.
    pub async fn revalidate(&self) -> usize {
        let open: Vec<Arc<Entry>> = self
            .live
            .iter()
            .filter(|e| e.revalidate.is_some() && e.reason().is_none())
            .map(|e| e.value().clone())
            .collect();
        let mut closed = 0;
        for (i, e) in open.iter().enumerate() {
            let Some(check) = &e.revalidate else { continue };
            if let Some(reason) = check.revalidate().await {
                e.close(reason);
                closed += 1;
            }
            // Thousands of chains to verify: let the requests on this worker run in between.
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
        }
        closed
    }
}

/// An open channel, held by the task that serves it. Dropping it unregisters the channel.
pub struct Channel {
    registry: Arc<ChannelRegistry>,
    id: u64,
    entry: Arc<Entry>,
    expires_at: Option<Instant>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("kind", &self.entry.kind)
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn kind(&self) -> ChannelKind {
        self.entry.kind
    }

    pub fn agent(&self) -> Option<&AgentId> {
        self.entry.agent.as_ref()
    }

    /// Asks the owner to close with `reason` (the first reason given is the one recorded).
    pub fn close(&self, reason: CloseReason) {
        self.entry.close(reason);
    }

    /// Why it was closed, once it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.entry.reason()
    }

    /// Re-checks this channel now, as a reload would, and closes it if the check fails.
    pub async fn revalidate(&self) {
        if let Some(check) = &self.entry.revalidate {
            if let Some(reason) = check.revalidate().await {
                self.close(reason);
            }
        }
    }

    /// Resolves when something closes the channel, or its certificate expires; returns why.
    pub async fn closed(&self) -> CloseReason {
        let expiry = async {
            match self.expires_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.entry.token.cancelled() => {}
            _ = expiry => self.close(CloseReason::Expired),
        }
        self.entry.reason().unwrap_or(CloseReason::Closed)
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.registry.live.remove(&self.id).is_some() {
            self.registry.counts[self.entry.kind.index()].fetch_sub(1, Ordering::Relaxed);
        }
    }
}
