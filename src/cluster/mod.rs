//! State shared by many replicas (SPEC section 8): quarantines, rate-limit shares, MCP session
//! bindings and A2A task owners. Redis holds the state and pub/sub pushes changes; the request
//! path reads only local, pushed state and never waits on the network for an agent in good
//! standing.
//!
//! - A quarantine or release decided here is applied locally at once and published; one decided
//!   elsewhere arrives as an [`Event`] that the runtime applies (and that closes the agent's
//!   channels). While Redis is away, decisions queue and are pushed on reconnect; then the whole
//!   quarantine set is read back, so every replica converges.
//! - Rate limits hold fleet-wide by demand shares: each replica publishes how often each
//!   rate-limited agent asked it, and takes the part of the agent's limit that matches its part of
//!   the demand. Shares move every [`SYNC_EVERY`]; no request waits for them.
//! - Session bindings and task owners ([`SharedRpcState`]) are written to Redis when they are
//!   made and kept in a local copy, so a known session or task is checked without the network;
//!   only one this replica has not seen yet is read from Redis, once.

mod link;
mod rpc_state;
mod shares;
mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

use crate::ids::AgentId;

pub use rpc_state::SharedRpcState;
pub use shares::RateShares;
pub use wire::Event;

/// How often demand shares are published and read back.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);

/// What a replica does while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Keep deciding on this replica's own state.
    #[default]
    Local,
    /// Refuse every request with 503 `cluster_unavailable`.
    Closed,
}

/// The `cluster` section, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `redis://` or `rediss://` URL.
    pub redis: String,
    pub key_prefix: String,
    pub failure_mode: FailureMode,
    /// How long Redis keeps an MCP session binding or an A2A task owner (`cluster.binding_ttl`).
    pub binding_ttl: Duration,
}

/// `cluster.binding_ttl` when unset: a week, longer than any agent session is expected to last.
pub const DEFAULT_BINDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How the runtime sees and changes its own agents, for events and resynchronisation.
pub trait LocalAgents: Send + Sync + 'static {
    /// Applies a quarantine or release decided on another replica.
    fn apply(&self, event: &Event);
    /// Every agent quarantined here now, with the Unix ms it ends (`i64::MAX`: until released).
    fn quarantined(&self) -> Vec<(AgentId, i64)>;
}

/// A change to publish, queued until Redis takes it.
#[derive(Debug, Clone)]
enum Op {
    Publish(Event),
}

/// This replica's handle on the shared state.
pub struct Cluster {
    settings: ClusterSettings,
    replica: String,
    up: AtomicBool,
    outbox: mpsc::UnboundedSender<Op>,
    shares: RateShares,
    /// The link's command connection while it is up, for the reads and writes of shared RPC
    /// state; a clone shares the one socket.
    conn: Mutex<Option<MultiplexedConnection>>,
}

/// The link to Redis, built but not yet running: it needs the runtime's agents, and the runtime
/// needs the [`Cluster`] handle first.
pub struct ClusterLink {
    cluster: Arc<Cluster>,
    client: redis::Client,
    inbox: mpsc::UnboundedReceiver<Op>,
    up_gauge: prometheus::IntGauge,
}

impl ClusterLink {
    /// Starts following Redis in the background, applying fleet events to `local`.
    pub fn spawn(self, local: Arc<dyn LocalAgents>) {
        tokio::spawn(link::run(
            self.cluster,
            self.client,
            local,
            self.inbox,
            self.up_gauge,
        ));
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("replica", &self.replica)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The handle, down until its link (returned with it, to spawn) connects; `up_gauge` is
    /// `warden_cluster_up`.
    pub fn new(
        settings: ClusterSettings,
        up_gauge: prometheus::IntGauge,
    ) -> Result<(Arc<Cluster>, ClusterLink), String> {
        let client = redis::Client::open(settings.redis.as_str())
            .map_err(|e| format!("cluster.redis: {e}"))?;
        let (outbox, inbox) = mpsc::unbounded_channel();
        let cluster = Arc::new(Cluster {
            replica: wire::replica_id(),
            settings,
            up: AtomicBool::new(false),
            outbox,
            shares: RateShares::default(),
            conn: Mutex::new(None),
        });
        up_gauge.set(0);
        let link = ClusterLink {
            cluster: cluster.clone(),
            client,
            inbox,
            up_gauge,
        };
        Ok((cluster, link))
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Whether the shared store answers.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether requests must be refused now (`failure_mode: closed` and Redis away).
    pub fn refuses(&self) -> bool {
        self.settings.failure_mode == FailureMode::Closed && !self.is_up()
    }

    /// Publishes a quarantine decided on this replica (already applied here).
    pub fn quarantine(&self, agent: &AgentId, until_ms: i64) {
        let _ = self.outbox.send(Op::Publish(Event::Quarantine {
            agent: agent.clone(),
            until_ms,
        }));
    }

    /// Publishes a release decided on this replica (already applied here).
    pub fn release(&self, agent: &AgentId) {
        let _ = self.outbox.send(Op::Publish(Event::Release {
            agent: agent.clone(),
        }));
    }

    /// Counts one request of a rate-limited agent toward this replica's demand, and returns this
    /// replica's share of the agent's limit.
    pub fn rate_share(&self, agent: &AgentId) -> f64 {
        self.shares.note_and_share(agent)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    /// The command connection, while the link is up.
    fn connection(&self) -> Option<MultiplexedConnection> {
        if !self.is_up() {
            return None;
        }
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_connection(&self, conn: Option<MultiplexedConnection>) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.settings.key_prefix.clone();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(':');
            }
            k.push_str(p);
        }
        k
    }
}
