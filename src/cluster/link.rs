//! The link to Redis: connect, push what was decided here, read the fleet's state back, then
//! follow the events channel, publish demand shares and watch the connection. Any failure marks
//! the cluster down and starts over after a backoff; nothing here runs on the request path.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{timeout, Instant};

use super::wire::Event;
use super::{Cluster, LocalAgents, Op, SYNC_EVERY};
use crate::ids::AgentId;

/// Every Redis call is bounded: a hung store must look like an absent one.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
const PING_EVERY: Duration = Duration::from_millis(500);
/// A replica's published demand counts only while this fresh.
const DEMAND_FRESH_MS: i64 = 1_000;

type Failure = String;

/// What the link remembers across sessions.
struct LinkState {
    /// Decisions not yet taken by Redis, oldest first.
    pending: VecDeque<Op>,
    /// Agents quarantined here because another replica said so: the ones a resynchronisation may
    /// release when Redis no longer holds their quarantine.
    remote: HashSet<AgentId>,
    /// Smoothed demand per agent, requests per sync period.
    demand: HashMap<AgentId, f64>,
}

pub(super) async fn run(
    cluster: Arc<Cluster>,
    client: redis::Client,
    local: Arc<dyn LocalAgents>,
    mut inbox: UnboundedReceiver<Op>,
    up: prometheus::IntGauge,
) {
    let mut state = LinkState {
        pending: VecDeque::new(),
        remote: HashSet::new(),
        demand: HashMap::new(),
    };
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    loop {
        match session(&cluster, &client, &*local, &mut inbox, &mut state, &up).await {
            Ok(()) => return,
            Err(e) => {
                if cluster.is_up() || !reported {
                    tracing::warn!(
                        "cluster: shared store unavailable, deciding on local state: {e}"
                    );
                    reported = true;
                }
                cluster.set_up(false);
                cluster.set_connection(None);
                up.set(0);
                cluster.shares.reset();
            }
        }
        // While away, keep taking decisions so none is lost; retry soon, then less often.
        let retry_at = Instant::now() + backoff;
        loop {
            tokio::select! {
                op = inbox.recv() => match op {
                    Some(op) => state.pending.push_back(op),
                    None => return,
                },
                _ = tokio::time::sleep_until(retry_at) => break,
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
        if cluster.is_up() {
            backoff = Duration::from_millis(100);
        }
    }
}

async fn call<T>(
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Failure> {
    match timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn session(
    cluster: &Cluster,
    client: &redis::Client,
    local: &dyn LocalAgents,
    inbox: &mut UnboundedReceiver<Op>,
    state: &mut LinkState,
    up: &prometheus::IntGauge,
) -> Result<(), Failure> {
    let mut conn = call(client.get_multiplexed_async_connection()).await?;
    let mut pubsub = call(client.get_async_pubsub()).await?;
    let channel = cluster.key(&["events"]);
    call(pubsub.subscribe(&channel)).await?;
    let mut messages = pubsub.into_on_message();
    // Decisions made while away reach the fleet first; then the fleet's state is read back.
    while let Ok(op) = inbox.try_recv() {
        state.pending.push_back(op);
    }
    flush(cluster, &mut conn, state).await?;
    resync(cluster, &mut conn, local, state).await?;
    cluster.set_connection(Some(conn.clone()));
    cluster.set_up(true);
    up.set(1);
    tracing::info!(replica = %cluster.replica, "cluster: shared store connected");
    let mut sync = tokio::time::interval(SYNC_EVERY);
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            op = inbox.recv() => match op {
                None => return Ok(()),
                Some(op) => {
                    state.pending.push_back(op);
                    flush(cluster, &mut conn, state).await?;
                }
            },
            msg = messages.next() => match msg {
                None => return Err("the events subscription ended".into()),
                Some(msg) => {
                    let text: String = msg.get_payload().unwrap_or_default();
                    receive(cluster, local, state, &text);
                }
            },
            _ = sync.tick() => sync_shares(cluster, &mut conn, state).await?,
            _ = ping.tick() => {
                let _: String = call(redis::cmd("PING").query_async(&mut conn)).await?;
            }
        }
    }
}

/// Applies an event another replica published.
fn receive(cluster: &Cluster, local: &dyn LocalAgents, state: &mut LinkState, text: &str) {
    let Some((from, event)) = Event::decode(text) else {
        tracing::debug!("cluster: ignoring a malformed event");
        return;
    };
    if from == cluster.replica {
        return;
    }
    match &event {
        Event::Quarantine { agent, .. } => state.remote.insert(agent.clone()),
        Event::Release { agent } => state.remote.remove(agent),
    };
    local.apply(&event);
}

/// Pushes pending decisions, oldest first; one that fails stays at the head.
async fn flush(
    cluster: &Cluster,
    conn: &mut MultiplexedConnection,
    state: &mut LinkState,
) -> Result<(), Failure> {
    let channel = cluster.key(&["events"]);
    while let Some(Op::Publish(event)) = state.pending.front().cloned() {
        let mut pipe = redis::pipe();
        pipe.atomic();
        match &event {
            Event::Quarantine { agent, until_ms } => {
                let key = cluster.key(&["q", agent.as_str()]);
                let left = until_ms.saturating_sub(crate::clock::Clock::system().now_unix_ms());
                if *until_ms == i64::MAX {
                    pipe.set(&key, until_ms).ignore();
                } else if left > 0 {
                    pipe.pset_ex(&key, until_ms, left as u64).ignore();
                }
            }
            Event::Release { agent } => {
                pipe.del(cluster.key(&["q", agent.as_str()])).ignore();
            }
        }
        pipe.publish(&channel, event.encode(&cluster.replica))
            .ignore();
        call(pipe.query_async::<()>(conn)).await?;
        state.pending.pop_front();
    }
    Ok(())
}

/// Reads the fleet's quarantines back: applies every one, and releases the agents quarantined
/// here on another replica's word whose quarantine Redis no longer holds.
async fn resync(
    cluster: &Cluster,
    conn: &mut MultiplexedConnection,
    local: &dyn LocalAgents,
    state: &mut LinkState,
) -> Result<(), Failure> {
    let pattern = cluster.key(&["q", "*"]);
    let prefix = cluster.key(&["q", ""]);
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = call(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(conn),
        )
        .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut fleet = HashMap::new();
    for chunk in keys.chunks(500) {
        let values: Vec<Option<i64>> = call(conn.mget(chunk)).await?;
        for (key, until) in chunk.iter().zip(values) {
            let agent = key
                .strip_prefix(&prefix)
                .and_then(|a| AgentId::parse(a).ok());
            if let (Some(agent), Some(until_ms)) = (agent, until) {
                fleet.insert(agent, until_ms);
            }
        }
    }
    for (agent, until_ms) in &fleet {
        let here = local
            .quarantined()
            .iter()
            .any(|(a, u)| a == agent && u == until_ms);
        if !here {
            state.remote.insert(agent.clone());
            local.apply(&Event::Quarantine {
                agent: agent.clone(),
                until_ms: *until_ms,
            });
        }
    }
    let gone: Vec<AgentId> = state
        .remote
        .iter()
        .filter(|a| !fleet.contains_key(*a))
        .cloned()
        .collect();
    for agent in gone {
        state.remote.remove(&agent);
        local.apply(&Event::Release { agent });
    }
    Ok(())
}

/// Publishes this replica's demand for each rate-limited agent it serves and sets its share from
/// everyone's fresh demand.
async fn sync_shares(
    cluster: &Cluster,
    conn: &mut MultiplexedConnection,
    state: &mut LinkState,
) -> Result<(), Failure> {
    let drained = cluster.shares.drain_demand();
    if drained.is_empty() {
        state.demand.clear();
        return Ok(());
    }
    let now_ms = crate::clock::Clock::system().now_unix_ms();
    let mut pipe = redis::pipe();
    let mut mine = Vec::with_capacity(drained.len());
    for (agent, asked) in &drained {
        let smoothed = state
            .demand
            .get(agent)
            .map_or(*asked as f64, |d| 0.5 * d + 0.5 * *asked as f64);
        state.demand.insert(agent.clone(), smoothed);
        mine.push(smoothed);
        let key = cluster.key(&["rl", agent.as_str()]);
        pipe.hset(&key, &cluster.replica, format!("{smoothed}:{now_ms}"))
            .ignore()
            .pexpire(&key, 5_000)
            .ignore()
            .hgetall(&key);
    }
    let all: Vec<HashMap<String, String>> = call(pipe.query_async(conn)).await?;
    for ((agent, _), (fleet, me)) in drained.iter().zip(all.iter().zip(mine)) {
        let total: f64 = fleet
            .values()
            .filter_map(|v| v.split_once(':'))
            .filter(|(_, ts)| {
                ts.parse::<i64>()
                    .is_ok_and(|t| now_ms - t <= DEMAND_FRESH_MS)
            })
            .filter_map(|(d, _)| d.parse::<f64>().ok())
            .sum();
        cluster.shares.set_share(agent, me, total.max(me));
    }
    state
        .demand
        .retain(|a, _| drained.iter().any(|(d, _)| d == a));
    Ok(())
}
