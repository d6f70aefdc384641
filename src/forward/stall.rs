//! `limits.body_stall_timeout`: a body that makes no progress that long is cut.
//!
//! Two ways a body stalls. Its source stops sending (the agent stops sending its request body,
//! the upstream its response body): the body is being polled and pending, so a timer inside
//! `poll_frame` ([`StallTimer`]) fires. Or its reader stops taking it (the agent stops reading
//! its response): then nobody polls the body at all — hyper waits for the socket or for HTTP/2
//! flow-control credit — so a timer inside `poll_frame` never runs. For that, each response body
//! publishes its [`Progress`] in its connection's [`ProgressSet`], and the connection's own loop
//! asks [`ProgressSet::agent_stalled`] and closes a connection whose agent stopped reading. A
//! request body the upstream stops reading is watched the same way ([`reader_stalled`]) while
//! its response is awaited.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::Context;
use std::time::Duration;

use thiserror::Error;
use tokio::time::{Instant, Sleep};

/// Milliseconds on a monotonic clock (tokio's, so paused-time tests drive it).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let ms = START.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// A body cut because it made no progress for the stall timeout.
#[derive(Debug, Error)]
#[error("body made no progress for {0:?}")]
pub struct BodyStalled(pub Duration);

/// The timer of a body whose source may stop sending.
pub struct StallTimer {
    limit: Duration,
    last: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl StallTimer {
    pub fn new(limit: Duration) -> Self {
        StallTimer {
            limit,
            last: Instant::now(),
            sleep: None,
        }
    }

    /// The source sent something.
    pub fn progressed(&mut self) {
        self.last = Instant::now();
    }

    /// Called while the source is pending: whether it has sent nothing for the limit. Arms the
    /// timer to wake `cx` when it would be.
    pub fn poll_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.last + self.limit;
        let sleep = match &mut self.sleep {
            Some(s) => {
                if s.deadline() != deadline {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx).is_ready()
    }

    pub fn error(&self) -> BodyStalled {
        BodyStalled(self.limit)
    }
}

/// What one response body last did, as its connection's loop reads it.
#[derive(Debug, Default)]
pub struct Progress {
    /// [`now_ms`] of its last poll.
    last_ms: AtomicU64,
    /// Its last poll found the upstream with nothing to send (the body's own timer judges that).
    waiting_on_source: AtomicBool,
    done: AtomicBool,
}

impl Progress {
    /// The body was polled; `pending` when its source had nothing yet.
    pub fn polled(&self, pending: bool) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
        self.waiting_on_source.store(pending, Ordering::Relaxed);
    }

    pub fn finished(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// Ready to be taken by the agent, and not taken for `limit_ms`.
    fn stalled_by_reader(&self, now: u64, limit_ms: u64) -> bool {
        !self.done.load(Ordering::Relaxed)
            && !self.waiting_on_source.load(Ordering::Relaxed)
            && now.saturating_sub(self.last_ms.load(Ordering::Relaxed)) >= limit_ms
    }
}

/// Resolves once `body` has been ready for its reader, and not taken, for `limit` (a request body
/// the upstream stopped reading). Pending forever once the body is finished.
pub async fn reader_stalled(body: &Progress, limit: Duration) {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    loop {
        if body.done.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        let now = now_ms();
        if body.stalled_by_reader(now, limit_ms) {
            return;
        }
        let since = now.saturating_sub(body.last_ms.load(Ordering::Relaxed));
        let wait = limit_ms.saturating_sub(since).max(10);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// The response bodies in progress on one connection.
#[derive(Debug, Default)]
pub struct ProgressSet {
    bodies: Mutex<Vec<Weak<Progress>>>,
}

impl ProgressSet {
    /// A new body in progress, published until it is finished or dropped.
    pub fn track(&self) -> Arc<Progress> {
        let p = Arc::new(Progress::default());
        p.polled(false);
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        // Finished bodies are pruned here too, so a long keep-alive connection stays small.
        if bodies.len() >= 32 {
            bodies.retain(|w| w.upgrade().is_some_and(|b| !b.done.load(Ordering::Relaxed)));
        }
        bodies.push(Arc::downgrade(&p));
        p
    }

    /// Whether a body has been waiting for the agent to take it for at least `limit`.
    pub fn agent_stalled(&self, limit: Duration) -> bool {
        let now = now_ms();
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        bodies.retain(|w| w.upgrade().is_some_and(|b| !b.done.load(Ordering::Relaxed)));
        bodies
            .iter()
            .filter_map(Weak::upgrade)
            .any(|b| b.stalled_by_reader(now, limit_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_nobody_polls_is_seen_stalled() {
        let set = ProgressSet::default();
        let reading = set.track();
        let waiting = set.track();
        waiting.polled(true);
        assert!(!set.agent_stalled(Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(set.agent_stalled(Duration::from_millis(10)));
        // A body waiting on its source is its own timer's business, not the reader's.
        reading.finished();
        assert!(!set.agent_stalled(Duration::from_millis(10)));
        drop(reading);
        drop(waiting);
        assert!(!set.agent_stalled(Duration::ZERO));
        assert!(set.bodies.lock().unwrap().is_empty());
    }

    /// Polls the timer until it says stalled; how long that took.
    async fn until_stalled(t: &mut StallTimer) -> Duration {
        let started = Instant::now();
        let fired = std::future::poll_fn(|cx| {
            if t.poll_stalled(cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        tokio::time::timeout(Duration::from_secs(5), fired)
            .await
            .expect("the stall timer never fired");
        started.elapsed()
    }

    #[tokio::test]
    async fn the_timer_fires_after_the_limit_without_progress() {
        let limit = Duration::from_millis(150);
        let mut t = StallTimer::new(limit);
        assert!(until_stalled(&mut t).await >= limit - Duration::from_millis(5));
        // Progress moves the deadline.
        t.progressed();
        assert!(until_stalled(&mut t).await >= limit - Duration::from_millis(5));
        assert_eq!(t.error().to_string(), "body made no progress for 150ms");
    }
}
