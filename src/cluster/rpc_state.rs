//! MCP session bindings and A2A task owners for the whole fleet (SPEC section 8): an
//! [`RpcState`] on Redis, in front of this replica's own [`LocalRpcState`].
//!
//! - A binding is written with `SET NX PX` and read back with `GET` in one transaction, so the
//!   first replica to bind an id wins and every later one learns the winner.
//! - The local copy is consulted first: a session or task this replica has bound or seen is
//!   checked without the network. Only an id it has not seen is read from Redis (bounded by
//!   [`LOOKUP_TIMEOUT`]) and then kept locally.
//! - While Redis is away, `failure_mode: local` binds and looks up on the local copy alone and
//!   queues the bindings (at most [`MAX_PENDING_BINDINGS`]), which a background task pushes with
//!   `SET NX` once Redis is back; `closed` refuses (503 `cluster_unavailable`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::{Cluster, FailureMode};
use crate::protocol::canonical::hex;
use crate::protocol::state::{unhex32, StateFuture};
use crate::protocol::{Holder, LocalRpcState, RpcState, StateError};

/// A lookup or binding waits no longer than this on Redis: a hung store must look like an
/// absent one.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// Bindings made while Redis was away, kept for it at most; past this the oldest is dropped
/// from the queue (it stays bound on this replica).
pub const MAX_PENDING_BINDINGS: usize = 10_000;

/// How often the queue of bindings made while Redis was away is offered to it.
const REPLAY_EVERY: Duration = Duration::from_millis(250);

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Session,
    Task,
}

/// `<prefix>session:<len>:<upstream>:<id>`: the upstream's length comes first, so an upstream
/// name or an id holding `:` cannot make two bindings share a key.
fn shared_key(prefix: &str, kind: Kind, upstream: &str, id: &str) -> String {
    let kind = match kind {
        Kind::Session => "session",
        Kind::Task => "task",
    };
    format!("{prefix}{kind}:{}:{upstream}:{id}", upstream.len())
}

/// `<certificate sha256 hex> <agent id>`.
fn session_value(holder: &Holder) -> String {
    format!("{} {}", hex(&holder.thumbprint), holder.agent)
}

fn parse_session(value: &str) -> Option<Holder> {
    let (thumbprint, agent) = value.split_once(' ')?;
    if agent.is_empty() || agent.contains(char::is_whitespace) {
        return None;
    }
    Some(Holder {
        agent: agent.into(),
        thumbprint: unhex32(thumbprint)?,
    })
}

/// `<agent id>`.
fn parse_task(value: &str) -> Option<Arc<str>> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return None;
    }
    Some(value.into())
}

/// A binding Redis has not taken yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingBinding {
    key: String,
    value: String,
}

/// The bindings made while Redis was away, oldest first, bounded.
#[derive(Debug)]
struct Pending {
    queue: VecDeque<PendingBinding>,
    cap: usize,
    /// Dropped for room since the last report.
    dropped: u64,
}

impl Pending {
    fn new(cap: usize) -> Self {
        Pending {
            queue: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    fn push(&mut self, binding: PendingBinding) {
        if self.queue.len() >= self.cap {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(binding);
    }
}

/// The fleet's session bindings and task owners.
#[derive(Debug)]
pub struct SharedRpcState {
    cluster: Arc<Cluster>,
    local: LocalRpcState,
    pending: Mutex<Pending>,
    ttl_ms: u64,
}

/// Why Redis did not answer.
type Away = String;

impl SharedRpcState {
    /// The shared state over `local`, with its replay task running.
    pub fn start(cluster: Arc<Cluster>, local: LocalRpcState) -> Arc<SharedRpcState> {
        let ttl_ms = u64::try_from(cluster.settings().binding_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let state = Arc::new(SharedRpcState {
            cluster,
            local,
            pending: Mutex::new(Pending::new(MAX_PENDING_BINDINGS)),
            ttl_ms,
        });
        tokio::spawn(replay(Arc::downgrade(&state)));
        state
    }

    fn key(&self, kind: Kind, upstream: &str, id: &str) -> String {
        shared_key(&self.cluster.settings().key_prefix, kind, upstream, id)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connection(&self) -> Result<MultiplexedConnection, Away> {
        self.cluster
            .connection()
            .ok_or_else(|| "the shared store is unreachable".to_string())
    }

    /// `GET key`.
    async fn fetch(&self, key: &str) -> Result<Option<String>, Away> {
        let mut conn = self.connection()?;
        bounded(redis::cmd("GET").arg(key).query_async(&mut conn)).await
    }

    /// `SET key value NX PX ttl` then `GET key`, atomically: the value held after it.
    async fn set_first(
        conn: &mut MultiplexedConnection,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, Away> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("GET")
            .arg(key);
        let (held,): (Option<String>,) = bounded(pipe.query_async(conn)).await?;
        Ok(held)
    }

    /// Binds `key` in Redis; the fleet's value, or why Redis did not take it.
    async fn bind_shared(&self, key: &str, value: &str) -> Result<Option<String>, Away> {
        let mut conn = self.connection()?;
        Self::set_first(&mut conn, key, value, self.ttl_ms).await
    }

    /// Redis is away: `local` decides on this replica's state, `closed` refuses.
    fn away<T>(&self, what: &str, why: &str, local: T) -> Result<T, StateError> {
        match self.cluster.settings().failure_mode {
            FailureMode::Local => {
                tracing::debug!("cluster: {what} on local state: {why}");
                Ok(local)
            }
            FailureMode::Closed => Err(StateError(format!("{what}: {why}"))),
        }
    }

    fn queue(&self, key: String, value: String) {
        self.pending().push(PendingBinding { key, value });
    }

    /// Offers every queued binding to Redis, oldest first; stops at the first failure, keeping
    /// the rest. A binding the fleet already holds for someone else is logged with both holders.
    async fn push_pending(&self) {
        let dropped = std::mem::take(&mut self.pending().dropped);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "cluster: bindings made while the shared store was away were over {MAX_PENDING_BINDINGS}; the oldest stay bound on this replica only"
            );
        }
        let Ok(mut conn) = self.connection() else {
            return;
        };
        loop {
            let Some(next) = self.pending().queue.front().cloned() else {
                return;
            };
            match Self::set_first(&mut conn, &next.key, &next.value, self.ttl_ms).await {
                Ok(held) => {
                    if let Some(fleet) = held.filter(|h| *h != next.value) {
                        tracing::error!(
                            key = %next.key,
                            here = %next.value,
                            fleet = %fleet,
                            "cluster: a binding made while the shared store was away clashes with the fleet's; the fleet's holds on the other replicas, this one's here"
                        );
                    }
                    let mut pending = self.pending();
                    if pending.queue.front() == Some(&next) {
                        pending.queue.pop_front();
                    }
                }
                Err(e) => {
                    tracing::debug!("cluster: queued bindings wait: {e}");
                    return;
                }
            }
        }
    }
}

/// A Redis call bounded by [`LOOKUP_TIMEOUT`].
async fn bounded<T>(
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Away> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Pushes queued bindings whenever Redis answers, for as long as the state lives.
async fn replay(state: std::sync::Weak<SharedRpcState>) {
    let mut tick = tokio::time::interval(REPLAY_EVERY);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        let waiting = !state.pending().queue.is_empty();
        if waiting && state.cluster.is_up() {
            state.push_pending().await;
        }
    }
}

impl RpcState for SharedRpcState {
    fn bind_session<'a>(
        &'a self,
        upstream: &'a str,
        session: &'a str,
        holder: Holder,
    ) -> StateFuture<'a, Holder> {
        Box::pin(async move {
            if let Some(held) = self.local.session_holder(upstream, session).await? {
                return Ok(held);
            }
            let key = self.key(Kind::Session, upstream, session);
            let value = session_value(&holder);
            match self.bind_shared(&key, &value).await {
                Ok(fleet) => {
                    let fleet = fleet.as_deref().and_then(parse_session).unwrap_or(holder);
                    self.local.bind_session(upstream, session, fleet).await
                }
                Err(why) => {
                    self.away("session binding", &why, ())?;
                    let bound = self
                        .local
                        .bind_session(upstream, session, holder.clone())
                        .await?;
                    if bound == holder {
                        self.queue(key, value);
                    }
                    Ok(bound)
                }
            }
        })
    }

    fn session_holder<'a>(
        &'a self,
        upstream: &'a str,
        session: &'a str,
    ) -> StateFuture<'a, Option<Holder>> {
        Box::pin(async move {
            if let Some(held) = self.local.session_holder(upstream, session).await? {
                return Ok(Some(held));
            }
            let key = self.key(Kind::Session, upstream, session);
            match self.fetch(&key).await {
                Ok(None) => Ok(None),
                Ok(Some(value)) => match parse_session(&value) {
                    Some(fleet) => self
                        .local
                        .bind_session(upstream, session, fleet)
                        .await
                        .map(Some),
                    None => {
                        tracing::warn!(%key, "cluster: ignoring a malformed session binding");
                        Ok(None)
                    }
                },
                Err(why) => self.away("session lookup", &why, None),
            }
        })
    }

    fn set_task_owner<'a>(
        &'a self,
        upstream: &'a str,
        task: &'a str,
        owner: Arc<str>,
    ) -> StateFuture<'a, Arc<str>> {
        Box::pin(async move {
            if let Some(held) = self.local.task_owner(upstream, task).await? {
                return Ok(held);
            }
            let key = self.key(Kind::Task, upstream, task);
            match self.bind_shared(&key, &owner).await {
                Ok(fleet) => {
                    let fleet = fleet.as_deref().and_then(parse_task).unwrap_or(owner);
                    self.local.set_task_owner(upstream, task, fleet).await
                }
                Err(why) => {
                    self.away("task owner", &why, ())?;
                    let held = self
                        .local
                        .set_task_owner(upstream, task, owner.clone())
                        .await?;
                    if held == owner {
                        self.queue(key, owner.to_string());
                    }
                    Ok(held)
                }
            }
        })
    }

    fn task_owner<'a>(
        &'a self,
        upstream: &'a str,
        task: &'a str,
    ) -> StateFuture<'a, Option<Arc<str>>> {
        Box::pin(async move {
            if let Some(held) = self.local.task_owner(upstream, task).await? {
                return Ok(Some(held));
            }
            let key = self.key(Kind::Task, upstream, task);
            match self.fetch(&key).await {
                Ok(None) => Ok(None),
                Ok(Some(value)) => match parse_task(&value) {
                    Some(fleet) => self
                        .local
                        .set_task_owner(upstream, task, fleet)
                        .await
                        .map(Some),
                    None => {
                        tracing::warn!(%key, "cluster: ignoring a malformed task owner");
                        Ok(None)
                    }
                },
                Err(why) => self.away("task lookup", &why, None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterSettings, DEFAULT_BINDING_TTL};

    /// A cluster whose link is never spawned: Redis stays away.
    fn cluster_without_redis(failure_mode: FailureMode) -> Arc<Cluster> {
        let settings = ClusterSettings {
            redis: "redis://127.0.0.1:1".into(),
            key_prefix: "t:".into(),
            failure_mode,
            binding_ttl: DEFAULT_BINDING_TTL,
        };
        let gauge = prometheus::IntGauge::new("up", "up").unwrap();
        Cluster::new(settings, gauge).unwrap().0
    }

    fn holder(agent: &str, t: u8) -> Holder {
        Holder {
            agent: agent.into(),
            thumbprint: [t; 32],
        }
    }

    #[tokio::test]
    async fn while_redis_is_away_local_mode_binds_here_and_queues_for_the_fleet() {
        let local = LocalRpcState::in_memory(10);
        let s = SharedRpcState::start(cluster_without_redis(FailureMode::Local), local);
        let a = holder("spiffe://x/a", 1);
        assert_eq!(s.bind_session("crm", "s1", a.clone()).await, Ok(a.clone()));
        // Bound already: the first holder stays, nothing more is queued.
        let b = holder("spiffe://x/b", 2);
        assert_eq!(s.bind_session("crm", "s1", b).await, Ok(a.clone()));
        assert_eq!(s.session_holder("crm", "s1").await, Ok(Some(a)));
        assert_eq!(s.session_holder("crm", "s2").await, Ok(None));
        let owner: Arc<str> = "spiffe://x/a".into();
        assert_eq!(
            s.set_task_owner("a2a", "t1", owner.clone()).await,
            Ok(owner.clone())
        );
        assert_eq!(s.task_owner("a2a", "t1").await, Ok(Some(owner)));
        assert_eq!(s.task_owner("a2a", "t2").await, Ok(None));
        let queued: Vec<(String, String)> = s
            .pending()
            .queue
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        assert_eq!(
            queued,
            [
                (
                    "t:session:3:crm:s1".to_string(),
                    format!("{} spiffe://x/a", "01".repeat(32))
                ),
                ("t:task:3:a2a:t1".to_string(), "spiffe://x/a".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn while_redis_is_away_closed_mode_refuses_what_it_does_not_hold() {
        let local = LocalRpcState::in_memory(10);
        let s = SharedRpcState::start(cluster_without_redis(FailureMode::Closed), local);
        assert!(s
            .bind_session("crm", "s1", holder("spiffe://x/a", 1))
            .await
            .is_err());
        assert!(s.session_holder("crm", "s1").await.is_err());
        assert!(s
            .set_task_owner("a2a", "t1", "spiffe://x/a".into())
            .await
            .is_err());
        assert!(s.task_owner("a2a", "t1").await.is_err());
        assert!(s.pending().queue.is_empty());
    }

    #[test]
    fn keys_carry_the_upstreams_length_so_colons_cannot_collide() {
        assert_eq!(
            shared_key("warden:", Kind::Session, "crm", "s1"),
            "warden:session:3:crm:s1"
        );
        assert_eq!(
            shared_key("w:", Kind::Task, "a2a", "t:1"),
            "w:task:3:a2a:t:1"
        );
        // Upstream `a:b` with id `c`, and upstream `a` with id `b:c`.
        assert_ne!(
            shared_key("", Kind::Session, "a:b", "c"),
            shared_key("", Kind::Session, "a", "b:c")
        );
        assert_ne!(
            shared_key("", Kind::Session, "u", "x"),
            shared_key("", Kind::Task, "u", "x")
        );
    }

    #[test]
    fn session_values_round_trip_and_garbage_is_refused() {
        let holder = Holder {
            agent: "spiffe://example.org/agent/a".into(),
            thumbprint: [0xab; 32],
        };
        let value = session_value(&holder);
        assert_eq!(
            value,
            format!("{} spiffe://example.org/agent/a", "ab".repeat(32))
        );
        assert_eq!(parse_session(&value), Some(holder));
        let hex64 = "ab".repeat(32);
        for bad in [
            String::new(),
            "spiffe://example.org/agent/a".to_string(),
            format!("{hex64} "),
            format!("{hex64} a b"),
            format!("{} spiffe://x/a", "ab".repeat(31)),
            format!("{} spiffe://x/a", "zz".repeat(32)),
        ] {
            assert_eq!(parse_session(&bad), None, "{bad}");
        }
    }

    #[test]
    fn task_values_are_one_agent_id() {
        assert_eq!(
            parse_task("spiffe://example.org/agent/a").as_deref(),
            Some("spiffe://example.org/agent/a")
        );
        assert_eq!(parse_task(""), None);
        assert_eq!(parse_task("a b"), None);
    }

    #[test]
    fn the_queue_of_bindings_is_bounded_and_drops_the_oldest() {
        let mut p = Pending::new(3);
        for i in 0..5 {
            p.push(PendingBinding {
                key: format!("k{i}"),
                value: "v".into(),
            });
        }
        let keys: Vec<_> = p.queue.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["k2", "k3", "k4"]);
        assert_eq!(p.dropped, 2);
    }
}
