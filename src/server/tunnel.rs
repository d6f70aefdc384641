//! Opening a WebSocket tunnel the upstream accepted: a channel under the agent (re-checked on
//! every reload against the request that opened it, ended by quarantine and by its
//! certificate's expiry), the connection's `max_connections` slot carried over to it, its bytes
//! counted as they pass, and its record written when it closes.

use std::sync::Arc;

use super::conn_info::ConnInfo;
use super::connection::expiry_instant;
use super::ends::TunnelRecord;
use super::record::RequestRecord;
use super::runtime::Runtime;
use super::supervise::{RequestHead, TunnelCheck};
use crate::agents::{ChannelKind, ChannelSpec, CloseReason};
use crate::forward::tunnel::{self, TunnelEnds, TunnelSettings};
use crate::pipeline::Permit;

/// Registers the tunnel and spawns the task that runs it. `rec` is the record of the request
/// that opened it (its `101` is recorded as that request's answer).
pub fn open(
    rt: &Arc<Runtime>,
    conn: &Arc<ConnInfo>,
    rec: &RequestRecord,
    permit: &Permit,
    head: RequestHead,
    ends: TunnelEnds,
) {
    let upstream = rec
        .snap
        .upstream(permit.upstream())
        .map(|u| u.name.clone())
        .unwrap_or_else(|| Arc::from(""));
    let check = TunnelCheck {
        config: rt.config.clone(),
        clock: rt.clock.clone(),
        conn: conn.clone(),
        head,
        upstream,
    };
    let channel = rt.channels.open(ChannelSpec {
        kind: ChannelKind::Tunnel,
        agent: Some(permit.agent().clone()),
        expires_at: expiry_instant(rt, conn.expires_at_ms),
        revalidate: Some(Box::new(check)),
    });
    conn.mark_upgraded();
    // A quarantine or a reload between the decision and now walked the channels without this one.
    if rec
        .agent
        .as_ref()
        .is_some_and(|a| a.is_quarantined(rt.clock.now_unix_ms()))
    {
        channel.close(CloseReason::Quarantined);
    }
    let reloaded = rt.config.snapshot().generation != rec.snap.generation;
    let settings = settings(rt, rec);
    let end = Box::new(TunnelRecord::of(rec));
    // The task holds the connection (and with it the connection's place in `max_connections`)
    // until the tunnel ends.
    let conn = conn.clone();
    tokio::spawn(async move {
        if reloaded {
            channel.revalidate().await;
        }
        tunnel::run(ends, channel, settings, end).await;
        drop(conn);
    });
}

/// The tunnel's idle timeout, and its agent's byte counters (counted as bytes pass).
fn settings(rt: &Runtime, rec: &RequestRecord) -> TunnelSettings {
    let metrics = rec.agent.as_ref().map(|a| {
        a.metrics
            .get_or_init(|| rt.metrics.agent_metrics(&a.metric_label))
    });
    TunnelSettings {
        idle_timeout: rec.snap.limits.idle_timeout,
        bytes_in: metrics.map(|m| m.bytes_in.clone()),
        bytes_out: metrics.map(|m| m.bytes_out.clone()),
    }
}
