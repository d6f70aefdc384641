//! A WebSocket tunnel: once both sides switched protocols, bytes are spliced between the agent
//! and the upstream. The tunnel is a channel like any connection: it ends when its channel is
//! closed (quarantine, revocation, a reload that no longer allows it, expiry, shutdown), after
//! `idle_timeout` with no bytes either way, or when either side ends it. Its bytes are counted
//! both ways as they pass, and its owner is told once, at the end, what passed and why it ended.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::stall::now_ms;
use crate::agents::{Channel, CloseReason};

/// The two halves of a switched connection, not yet handed over by hyper.
pub struct TunnelEnds {
    pub agent: OnUpgrade,
    pub upstream: OnUpgrade,
}

/// How a tunnel runs.
pub struct TunnelSettings {
    /// No bytes either way this long closes it.
    pub idle_timeout: Duration,
    /// Counted as bytes pass: agent to upstream.
    pub bytes_in: Option<IntCounter>,
    /// Counted as bytes pass: upstream to agent.
    pub bytes_out: Option<IntCounter>,
}

/// What passed through a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelStats {
    /// Agent to upstream.
    pub bytes_in: u64,
    /// Upstream to agent.
    pub bytes_out: u64,
    pub duration: Duration,
}

/// Told once when a tunnel ends.
pub trait TunnelEnd: Send + 'static {
    fn finish(self: Box<Self>, stats: TunnelStats, reason: CloseReason);
}

#[derive(Default)]
struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// [`now_ms`] of the last bytes either way.
    last_ms: AtomicU64,
}

/// Runs the tunnel until it ends, then reports to `end`. The channel is held (and registered)
/// for the tunnel's whole life.
pub async fn run(
    ends: TunnelEnds,
    channel: Channel,
    settings: TunnelSettings,
    end: Box<dyn TunnelEnd>,
) {
    let started = Instant::now();
    let counters = Counters::default();
    counters.last_ms.store(now_ms(), Ordering::Relaxed);
    let reason = tokio::select! {
        biased;
        reason = channel.closed() => reason,
        reason = splice(ends, &counters, &settings) => reason,
    };
    channel.close(reason);
    let stats = TunnelStats {
        bytes_in: counters.bytes_in.load(Ordering::Relaxed),
        bytes_out: counters.bytes_out.load(Ordering::Relaxed),
        duration: started.elapsed(),
    };
    end.finish(stats, reason);
}

/// Takes both sides over from hyper and copies until one side ends or the tunnel is idle.
async fn splice(ends: TunnelEnds, counters: &Counters, settings: &TunnelSettings) -> CloseReason {
    let (agent, upstream) = match tokio::try_join!(ends.agent, ends.upstream) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!("tunnel not opened: {e}");
            return CloseReason::Closed;
        }
    };
    let (agent_r, agent_w) = tokio::io::split(TokioIo::new(agent));
    let (up_r, up_w) = tokio::io::split(TokioIo::new(upstream));
    let inbound = Pump {
        count: &counters.bytes_in,
        last_ms: &counters.last_ms,
        metric: settings.bytes_in.as_ref(),
    };
    let outbound = Pump {
        count: &counters.bytes_out,
        last_ms: &counters.last_ms,
        metric: settings.bytes_out.as_ref(),
    };
    let both = async { tokio::try_join!(inbound.run(agent_r, up_w), outbound.run(up_r, agent_w)) };
    tokio::select! {
        result = both => {
            if let Err(e) = result {
                tracing::debug!("tunnel broken: {e}");
            }
            CloseReason::Closed
        }
        _ = idle(&counters.last_ms, settings.idle_timeout) => CloseReason::Idle,
    }
}

/// One direction of the tunnel.
struct Pump<'a> {
    count: &'a AtomicU64,
    last_ms: &'a AtomicU64,
    metric: Option<&'a IntCounter>,
}

impl Pump<'_> {
    /// Copies until the reader ends (then half-closes the writer) or either side fails.
    async fn run<R, W>(&self, mut from: R, mut to: W) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return to.shutdown().await;
            }
            self.last_ms.store(now_ms(), Ordering::Relaxed);
            to.write_all(&buf[..n]).await?;
            to.flush().await?;
            self.count.fetch_add(n as u64, Ordering::Relaxed);
            self.last_ms.store(now_ms(), Ordering::Relaxed);
            if let Some(m) = self.metric {
                m.inc_by(n as u64);
            }
        }
    }
}

/// Resolves once no bytes passed either way for `limit`.
async fn idle(last_ms: &AtomicU64, limit: Duration) {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    loop {
        let quiet = now_ms().saturating_sub(last_ms.load(Ordering::Relaxed));
        if quiet >= limit_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(limit_ms - quiet)).await;
    }
}
