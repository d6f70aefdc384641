//! Session bindings and task owners behind one small port, [`RpcState`], so that one warden keeps
//! them in memory (and in a journal file, to survive a restart) and a fleet can keep them in a
//! shared store. Each lookup returns a future: a shared store answers over the network, the
//! in-process one at once.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::canonical::hex;
use super::journal::Journal;

/// Who holds an MCP session: the agent and the certificate that initialised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub agent: Arc<str>,
    /// SHA-256 of the client certificate: a rotated certificate starts a new session.
    pub thumbprint: [u8; 32],
}

/// The store could not answer (a shared store out of reach).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("protocol state unavailable: {0}")]
pub struct StateError(pub String);

pub type StateFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// Session bindings and task owners, keyed by the upstream that issued the id.
pub trait RpcState: Send + Sync + std::fmt::Debug {
    /// Binds `session` to `holder` unless it is bound already; the holder it is bound to.
    fn bind_session<'a>(
        &'a self,
        upstream: &'a str,
        session: &'a str,
        holder: Holder,
    ) -> StateFuture<'a, Holder>;

    /// Who holds `session`; `None` if warden never saw it issued.
    fn session_holder<'a>(
        &'a self,
        upstream: &'a str,
        session: &'a str,
    ) -> StateFuture<'a, Option<Holder>>;

    /// Records `owner` as the owner of `task` unless it has one; the owner it has.
    fn set_task_owner<'a>(
        &'a self,
        upstream: &'a str,
        task: &'a str,
        owner: Arc<str>,
    ) -> StateFuture<'a, Arc<str>>;

    /// The agent that created `task`; `None` if warden never saw it created.
    fn task_owner<'a>(
        &'a self,
        upstream: &'a str,
        task: &'a str,
    ) -> StateFuture<'a, Option<Arc<str>>>;
}

/// A map bounded in size: past `cap` entries the oldest binding is dropped.
#[derive(Debug)]
struct Bounded<V> {
    map: HashMap<String, (u64, V)>,
    order: BTreeMap<u64, String>,
    next: u64,
    cap: usize,
}

impl<V: Clone> Bounded<V> {
    fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        self.map.get(key).map(|(_, v)| v.clone())
    }

    /// Inserts unless present; returns the value held and whether it was inserted now.
    fn insert_new(&mut self, key: String, value: V) -> (V, bool) {
        if let Some((_, v)) = self.map.get(&key) {
            return (v.clone(), false);
        }
        if self.map.len() >= self.cap {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.map.remove(&oldest);
            }
        }
        self.next += 1;
        self.order.insert(self.next, key.clone());
        self.map.insert(key, (self.next, value.clone()));
        (value, true)
    }

    fn values(&self) -> impl Iterator<Item = (&str, &V)> {
        self.order
            .values()
            .filter_map(|k| self.map.get(k).map(|(_, v)| (k.as_str(), v)))
    }
}

fn key(upstream: &str, id: &str) -> String {
    let mut k = String::with_capacity(upstream.len() + id.len() + 1);
    k.push_str(upstream);
    k.push('\0');
    k.push_str(id);
    k
}

fn split_key(k: &str) -> (&str, &str) {
    k.split_once('\0').unwrap_or((k, ""))
}

#[derive(Debug)]
struct Maps {
    sessions: Bounded<Holder>,
    tasks: Bounded<Arc<str>>,
}

/// The in-process [`RpcState`]: bounded maps, and a journal when a state directory is set.
#[derive(Debug)]
pub struct LocalRpcState {
    maps: Mutex<Maps>,
    journal: Option<Journal>,
}

/// Sessions and tasks each kept at most.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    /// upstream, session id, agent, certificate thumbprint (hex).
    Session(String, String, String, String),
    /// upstream, task id, agent.
    Task(String, String, String),
}

impl LocalRpcState {
    /// In memory only.
    pub fn in_memory(cap: usize) -> Self {
        LocalRpcState {
            maps: Mutex::new(Maps {
                sessions: Bounded::new(cap),
                tasks: Bounded::new(cap),
            }),
            journal: None,
        }
    }

    /// Kept in `dir/rpc-state.jsonl` as well, and read back from it.
    pub fn persistent(dir: &Path, cap: usize) -> std::io::Result<Self> {
        let (journal, lines) = Journal::open(&dir.join("rpc-state.jsonl"))?;
        let mut state = Self::in_memory(cap);
        {
            let maps = state.maps.get_mut().unwrap_or_else(|p| p.into_inner());
            for line in &lines {
                match serde_json::from_str::<Line>(line) {
                    Ok(Line::Session(u, s, a, t)) => {
                        if let Some(thumbprint) = unhex32(&t) {
                            let holder = Holder {
                                agent: a.into(),
                                thumbprint,
                            };
                            maps.sessions.insert_new(key(&u, &s), holder);
                        }
                    }
                    Ok(Line::Task(u, t, a)) => {
                        maps.tasks.insert_new(key(&u, &t), a.into());
                    }
                    Err(e) => tracing::warn!("skipping a protocol state line: {e}"),
                }
            }
            journal.rewrite(&Self::lines(maps));
        }
        state.journal = Some(journal);
        Ok(state)
    }

    fn lines(maps: &Maps) -> Vec<String> {
        let mut out = Vec::new();
        for (k, h) in maps.sessions.values() {
            let (u, s) = split_key(k);
            let line = Line::Session(u.into(), s.into(), h.agent.to_string(), hex(&h.thumbprint));
            out.extend(serde_json::to_string(&line).ok());
        }
        for (k, a) in maps.tasks.values() {
            let (u, t) = split_key(k);
            out.extend(serde_json::to_string(&Line::Task(u.into(), t.into(), a.to_string())).ok());
        }
        out
    }

    fn record(&self, maps: &Maps, line: &Line) {
        let Some(journal) = &self.journal else { return };
        let Ok(text) = serde_json::to_string(line) else {
            return;
        };
        let count = journal.append(&text);
        // Compact once the file holds far more lines than live entries.
        let live = maps.sessions.map.len() + maps.tasks.map.len();
        if count > 4 * live + 10_000 {
            journal.rewrite(&Self::lines(maps));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// 64 hex digits as 32 bytes (a certificate thumbprint as stored).
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn ready<'a, T: Send + 'a>(v: T) -> StateFuture<'a, T> {
    Box::pin(std::future::ready(Ok(v)))
}

impl RpcState for LocalRpcState {
    fn bind_session<'a>(
        &'a self,
        upstream: &'a str,
        session: &'a str,
        holder: Holder,
    ) -> StateFuture<'a, Holder> {
        let mut maps = self.lock();
        let (held, new) = maps.sessions.insert_new(key(upstream, session), holder);
        if new {
            let line = Line::Session(
                upstream.into(),
                session.into(),
                held.agent.to_string(),
                hex(&held.thumbprint),
            );
            self.record(&maps, &line);
        }
        ready(held)
    }

    fn session_holder<'a>(
        &'a self,
        upstream: &'a str,
        session: &'a str,
    ) -> StateFuture<'a, Option<Holder>> {
        ready(self.lock().sessions.get(&key(upstream, session)))
    }

    fn set_task_owner<'a>(
        &'a self,
        upstream: &'a str,
        task: &'a str,
        owner: Arc<str>,
    ) -> StateFuture<'a, Arc<str>> {
        let mut maps = self.lock();
        let (held, new) = maps.tasks.insert_new(key(upstream, task), owner);
        if new {
            let line = Line::Task(upstream.into(), task.into(), held.to_string());
            self.record(&maps, &line);
        }
        ready(held)
    }

    fn task_owner<'a>(
        &'a self,
        upstream: &'a str,
        task: &'a str,
    ) -> StateFuture<'a, Option<Arc<str>>> {
        ready(self.lock().tasks.get(&key(upstream, task)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(agent: &str, t: u8) -> Holder {
        Holder {
            agent: agent.into(),
            thumbprint: [t; 32],
        }
    }

    #[tokio::test]
    async fn first_binding_wins_and_is_per_upstream() {
        let s = LocalRpcState::in_memory(10);
        let a = holder("spiffe://x/a", 1);
        assert_eq!(s.bind_session("crm", "s1", a.clone()).await, Ok(a.clone()));
        assert_eq!(
            s.bind_session("crm", "s1", holder("spiffe://x/b", 2)).await,
            Ok(a.clone())
        );
        assert_eq!(s.session_holder("crm", "s1").await, Ok(Some(a)));
        assert_eq!(s.session_holder("other", "s1").await, Ok(None));
        let owner: Arc<str> = "spiffe://x/a".into();
        assert_eq!(
            s.set_task_owner("crm", "t1", owner.clone()).await,
            Ok(owner.clone())
        );
        assert_eq!(
            s.set_task_owner("crm", "t1", "spiffe://x/b".into()).await,
            Ok(owner.clone())
        );
        assert_eq!(s.task_owner("crm", "t1").await, Ok(Some(owner)));
        assert_eq!(s.task_owner("crm", "t2").await, Ok(None));
    }

    #[tokio::test]
    async fn bounded_in_size() {
        let s = LocalRpcState::in_memory(3);
        for i in 0..10 {
            let _ = s.bind_session("u", &format!("s{i}"), holder("a", 1)).await;
        }
        assert_eq!(s.lock().sessions.map.len(), 3);
        assert!(s.session_holder("u", "s9").await.unwrap().is_some());
        assert_eq!(s.session_holder("u", "s0").await.unwrap(), None);
    }

    #[tokio::test]
    async fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LocalRpcState::persistent(dir.path(), 100).unwrap();
            let _ = s
                .bind_session("crm", "s\"1", holder("spiffe://x/a", 7))
                .await;
            let _ = s.set_task_owner("a2a", "t1", "spiffe://x/b".into()).await;
        }
        let s = LocalRpcState::persistent(dir.path(), 100).unwrap();
        assert_eq!(
            s.session_holder("crm", "s\"1").await,
            Ok(Some(holder("spiffe://x/a", 7)))
        );
        assert_eq!(
            s.task_owner("a2a", "t1").await,
            Ok(Some("spiffe://x/b".into()))
        );
    }
}
