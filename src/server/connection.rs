//! One agent connection's life: the TLS handshake, a place in `max_connections`, a channel
//! registered under its agent, then HTTP/1.1 or HTTP/2 until it ends. It ends when its channel is
//! closed (quarantine, revocation or CA change on reload, certificate expiry), when the agent
//! stops reading what warden sends it (`body_stall_timeout`), after `idle_timeout` without a
//! request, or drained on shutdown; its end is recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn_info::ConnInfo;
use super::ends::{record_connection_end, record_http_refusal};
use super::handshake::{handshake, record_refused};
use super::io::{IoStats, MeteredIo};
use super::listener::{PendingSlot, Slots};
use super::runtime::Runtime;
use super::service::handle;
use super::supervise::ConnCheck;
use crate::agents::{Channel, ChannelKind, ChannelSpec, CloseReason};
use crate::snapshot::Limits;

type HttpError = Box<dyn std::error::Error + Send + Sync>;

/// How long a closed channel's connection may still finish the answer it is writing.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

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
    shutdown: watch::Receiver<bool>,
    pending: PendingSlot,
    slots: Arc<Slots>,
) {
    let Some(hs) = handshake(&rt, tcp, peer).await else {
        return;
    };
    drop(pending);
    let Some(slot) = slots.try_connection(&rt) else {
        tracing::info!(%peer, "max_connections reached: closing the connection");
        record_refused(&rt, peer, "max_connections".into());
        return;
    };
    let io = Arc::new(IoStats::default());
    let info = Arc::new(ConnInfo::new(
        peer,
        hs.certs,
        hs.trusted_by,
        io.clone(),
        slot,
    ));
    let channel = open_channel(&rt, &info);
    let started = Instant::now();
    let (reason, error) = serve(&rt, &info, MeteredIo::new(hs.tls, io), &channel, shutdown).await;
    channel.close(reason);
    if let Some(e) = error {
        tracing::debug!(%peer, "connection ended: {e}");
        record_http_refusal(&rt, &info, e.as_ref());
    }
    if reason != CloseReason::Closed && reason != CloseReason::Upgraded {
        tracing::info!(%peer, reason = reason.as_str(), "agent connection closed");
    }
    record_connection_end(&rt, &info, reason, started.elapsed());
}

/// Registers the connection under the agent its certificate names.
fn open_channel(rt: &Arc<Runtime>, info: &Arc<ConnInfo>) -> Channel {
    let snap = rt.config.snapshot();
    let agent = info
        .identity(&snap.trust_domain)
        .ok()
        .map(|p| p.agent_id.clone());
    rt.channels.open(ChannelSpec {
        kind: ChannelKind::Connection,
        agent,
        expires_at: expiry_instant(rt, info.expires_at_ms),
        revalidate: Some(Box::new(ConnCheck::new(rt, info))),
    })
}

/// The monotonic instant of a Unix-ms expiry, as the runtime's clock reads it.
pub fn expiry_instant(rt: &Runtime, expires_at_ms: Option<i64>) -> Option<Instant> {
    let left = expires_at_ms? - rt.clock.now_unix_ms();
    Some(Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
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
        .max_concurrent_streams(limits.max_streams_per_connection);
    builder
}

/// How often the loop looks at idleness and stalls: a quarter of the shorter limit, within
/// 50 ms to 5 s (thousands of open connections each wake this often). Everything else that ends
/// a connection wakes it at once.
fn tick_period(limits: &Limits) -> Duration {
    (limits.idle_timeout.min(limits.body_stall_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// Serves HTTP on the connection until it ends; why it ended, and hyper's error if it had one.
async fn serve<T>(
    rt: &Arc<Runtime>,
    info: &Arc<ConnInfo>,
    io: T,
    channel: &Channel,
    mut shutdown: watch::Receiver<bool>,
) -> (CloseReason, Option<HttpError>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = rt.config.snapshot().limits;
    let (svc_rt, svc_info) = (rt.clone(), info.clone());
    let service = service_fn(move |req| handle(svc_rt.clone(), svc_info.clone(), req));
    let builder = http_builder(&limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(tick_period(&limits));
    // Set once a graceful end (idle, shutdown) has begun: the requests in flight finish first.
    let mut ending: Option<CloseReason> = None;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                let done = if info.upgraded() { CloseReason::Upgraded } else { CloseReason::Closed };
                return (ending.unwrap_or(done), res.err());
            }
            reason = channel.closed() => {
                // No new request; the answer being written gets a moment to finish (the
                // request whose record quarantined its agent still gets its answer).
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                return (reason, None);
            }
            _ = shutdown.changed(), if ending.is_none() => {
                ending = Some(CloseReason::Shutdown);
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if info.agent_stalled(limits.body_stall_timeout) {
                    return (CloseReason::Stalled, None);
                }
                if ending.is_none() && info.idle_for(limits.idle_timeout) {
                    ending = Some(CloseReason::Idle);
                    conn.as_mut().graceful_shutdown();
                }
            }
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
