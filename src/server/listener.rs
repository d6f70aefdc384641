//! The agent-facing accept loop and its two budgets. A socket that has not finished its TLS
//! handshake holds one of `max_pending_handshakes` slots (and is cut after `handshake_timeout`);
//! only an authenticated connection takes one of the agents' `max_connections` slots, and keeps
//! it — through any WebSocket tunnel it opens — until it ends. On shutdown: stop accepting, close
//! the tunnels, drain the open connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::serve_connection;
use super::runtime::Runtime;
use crate::agents::{ChannelKind, CloseReason};
use crate::telemetry::metrics::Metrics;

/// The listener's budgets.
#[derive(Debug, Default)]
pub struct Slots {
    pending: AtomicUsize,
    active: AtomicUsize,
}

/// A socket in its TLS handshake.
pub struct PendingSlot {
    slots: Arc<Slots>,
    metrics: Arc<Metrics>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.slots.pending.fetch_sub(1, Ordering::Relaxed);
        self.metrics.pending_handshakes.dec();
    }
}

/// An authenticated connection's place in `max_connections` and `warden_active_connections`.
pub struct ConnSlot {
    slots: Arc<Slots>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ConnSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSlot").finish_non_exhaustive()
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.slots.active.fetch_sub(1, Ordering::Relaxed);
        self.metrics.active_connections.dec();
    }
}

/// Takes one of `max` places in `count`, if one is free.
fn take(count: &AtomicUsize, max: usize) -> bool {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl Slots {
    fn try_pending(self: &Arc<Self>, rt: &Runtime) -> Option<PendingSlot> {
        let max = rt.config.snapshot().limits.max_pending_handshakes;
        if !take(&self.pending, max) {
            rt.metrics
                .tls_handshakes
                .with_label_values(&["error", "pending_limit"])
                .inc();
            return None;
        }
        rt.metrics.pending_handshakes.inc();
        Some(PendingSlot {
            slots: self.clone(),
            metrics: rt.metrics.clone(),
        })
    }

    /// A place for an authenticated connection, unless `max_connections` are open.
    pub fn try_connection(self: &Arc<Self>, rt: &Runtime) -> Option<ConnSlot> {
        let max = rt.config.snapshot().limits.max_connections;
        if !take(&self.active, max) {
            rt.metrics.connections_refused.inc();
            return None;
        }
        rt.metrics.active_connections.inc();
        Some(ConnSlot {
            slots: self.clone(),
            metrics: rt.metrics.clone(),
        })
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// Accepts until `shutdown` turns true, then waits up to `drain` for open connections to finish.
/// Every accept loop of one listener address (one per worker) shares `slots`.
pub async fn run(
    rt: Arc<Runtime>,
    listener: TcpListener,
    slots: Arc<Slots>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(pending) = slots.try_pending(&rt) else {
                    drop(tcp);
                    continue;
                };
                let (rt, shutdown, slots) = (rt.clone(), shutdown.clone(), slots.clone());
                tokio::spawn(serve_connection(rt, tcp, peer, shutdown, pending, slots));
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    drain_all(&rt, &slots, drain).await;
}

/// Closes the tunnels (a tunnel has no request to finish) and waits for the connections, which
/// drain their requests themselves.
async fn drain_all(rt: &Runtime, slots: &Slots, drain: Duration) {
    let deadline = tokio::time::Instant::now() + drain;
    while slots.active() > 0 && tokio::time::Instant::now() < deadline {
        // Repeated: a request in flight may still open a tunnel while draining.
        rt.channels
            .close_kind(ChannelKind::Tunnel, CloseReason::Shutdown);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
