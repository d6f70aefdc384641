//! The connection pool of one upstream, capped at `max_connections`.
//!
//! A semaphore holds one permit per connection (idle or busy); each connection's task keeps its
//! permit until the socket closes. HTTP/1.1 connections carry one request at a time and wait
//! in a LIFO list when idle; HTTP/2 connections are shared, each up to
//! [`H2_STREAMS_PER_CONNECTION`] streams, and a new one is opened (one dial at a time) only when
//! every open one is full. Past the cap a request waits up to `connect_timeout` for a connection
//! or stream to come back, then fails with `Busy` (503 `upstream_busy`). The lock is held only
//! to push or pop; dials and waits happen outside it. Idle connections are closed after
//! `idle_timeout` by a reaper task that holds the pool weakly.
//!
//! A connection's task runs on the worker that opened it (`crate::worker`), so idle connections
//! wait in one list per worker and a request takes one of its own worker's first; it opens a new
//! one before it borrows another worker's, whose every exchange would wake that worker's thread.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::connect::{Dialer, Sender};
use super::error::UpstreamError;
use super::gauges::{ConnGauges, ConnState, Counted, Streams};
use super::lease::{Lease, LeaseKind};
use super::settings::H2_STREAMS_PER_CONNECTION;
use super::ProxyBody;

/// An idle HTTP/1.1 connection.
pub(super) struct IdleH1 {
    pub sender: http1::SendRequest<ProxyBody>,
    pub counted: Counted,
    pub since: Instant,
    /// The worker whose runtime runs the connection's task.
    pub home: usize,
}

/// A shared HTTP/2 connection.
pub(super) struct H2Conn {
    pub sender: http2::SendRequest<ProxyBody>,
    pub streams: Streams,
    /// When its last stream ended (or it was opened): the idle clock.
    pub last_used: Mutex<Instant>,
    pub home: usize,
}

#[derive(Default)]
struct State {
    /// Per worker (`crate::worker::current()`), most recently used last.
    idle: Vec<VecDeque<IdleH1>>,
    h2: Vec<Arc<H2Conn>>,
    reaper: bool,
}

pub(super) struct Inner {
    dialer: Dialer,
    http2: bool,
    permits: Arc<Semaphore>,
    state: Mutex<State>,
    /// A connection went idle or a stream ended: a waiter may find room.
    returned: Notify,
    /// HTTP/2: one dial at a time, so a burst shares the connection being opened.
    dialing: tokio::sync::Mutex<()>,
    gauges: ConnGauges,
    wait: Duration,
    idle_timeout: Duration,
}

pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub(super) fn new(
        dialer: Dialer,
        http2: bool,
        max: usize,
        wait: Duration,
        idle_timeout: Duration,
        gauges: ConnGauges,
    ) -> Self {
        Pool {
            inner: Arc::new(Inner {
                dialer,
                http2,
                permits: Arc::new(Semaphore::new(max)),
                state: Mutex::new(State::default()),
                returned: Notify::new(),
                dialing: tokio::sync::Mutex::new(()),
                gauges,
                wait,
                idle_timeout,
            }),
        }
    }

    /// A connection (or HTTP/2 stream) for one request. `own` asks for a connection of its own
    /// that is closed after the request (a body on GET/HEAD/OPTIONS).
    pub(super) async fn acquire(&self, own: bool) -> Result<Lease, UpstreamError> {
        let inner = &self.inner;
        let here = crate::worker::current();
        // The common case, with no clock and no timer: one of this worker's connections is ready.
        if !own {
            if let Some(lease) = inner.ready_idle(here) {
                return Ok(lease);
            }
        }
        let deadline = Instant::now() + inner.wait;
        if !own {
            if let Some(lease) = self.pooled(deadline, Some(here)).await? {
                return Ok(lease);
            }
        }
        loop {
            // Registered before looking, so a return between the look and the wait is not lost.
            let mut returned = pin!(inner.returned.notified());
            returned.as_mut().enable();
            if let Ok(permit) = inner.permits.clone().try_acquire_owned() {
                return self.open(permit, own, deadline).await;
            }
            if !own {
                if let Some(lease) = self.pooled(deadline, None).await? {
                    return Ok(lease);
                }
            }
            if own {
                // Its own connection needs a free slot: give up an idle one for it.
                inner.evict_one_idle();
            }
            tokio::select! {
                _ = returned => {}
                permit = inner.permits.clone().acquire_owned() => {
                    if let Ok(permit) = permit {
                        return self.open(permit, own, deadline).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(UpstreamError::Busy(inner.wait));
                }
            }
        }
    }

    /// A pooled connection ready for a request, if one is free: one of worker `home`'s, or with
    /// `None` any worker's.
    async fn pooled(
        &self,
        deadline: Instant,
        home: Option<usize>,
    ) -> Result<Option<Lease>, UpstreamError> {
        if self.inner.http2 {
            return Ok(self.inner.h2_stream(home));
        }
        while let Some(mut idle) = self.inner.pop_idle(home) {
            // The connection task may not have seen the end of the last response yet.
            if let Ok(Ok(())) = tokio::time::timeout_at(deadline, idle.sender.ready()).await {
                return Ok(Some(self.inner.reuse(idle)));
            }
        }
        Ok(None)
    }

    async fn open(
        &self,
        permit: OwnedSemaphorePermit,
        own: bool,
        deadline: Instant,
    ) -> Result<Lease, UpstreamError> {
        let inner = &self.inner;
        if !inner.http2 || own {
            let sender = inner.dialer.dial(permit).await?;
            self.start_reaper();
            return Ok(Lease::new(inner.fresh(sender, own), inner.clone()));
        }
        // HTTP/2: one dial at a time; whoever waited may find the connection just opened.
        let _dialing = match tokio::time::timeout_at(deadline, inner.dialing.lock()).await {
            Ok(guard) => guard,
            Err(_) => return Err(UpstreamError::Busy(inner.wait)),
        };
        if let Some(lease) = inner.h2_stream(None) {
            return Ok(lease);
        }
        let sender = inner.dialer.dial(permit).await?;
        self.start_reaper();
        Ok(Lease::new(inner.fresh(sender, false), inner.clone()))
    }

    fn start_reaper(&self) {
        let mut state = self.inner.lock();
        if !state.reaper {
            state.reaper = true;
            tokio::spawn(reap(Arc::downgrade(&self.inner), self.inner.idle_timeout));
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves lists that are still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Worker `home`'s most recently used idle HTTP/1.1 connection, when it is ready for a request
    /// now; one whose task has not yet seen the end of its last exchange goes back.
    fn ready_idle(self: &Arc<Self>, home: usize) -> Option<Lease> {
        if self.http2 {
            return None;
        }
        let idle = self.pop_idle(Some(home))?;
        if !idle.sender.is_ready() {
            let mut state = self.lock();
            if let Some(list) = state.idle.get_mut(home) {
                list.push_back(idle);
            }
            return None;
        }
        Some(self.reuse(idle))
    }

    /// The lease on an idle connection that is ready for a request.
    fn reuse(self: &Arc<Self>, mut idle: IdleH1) -> Lease {
        idle.counted.set(ConnState::Busy);
        let kind = LeaseKind::H1 {
            sender: idle.sender,
            counted: idle.counted,
            reused: true,
            own: false,
            home: idle.home,
        };
        Lease::new(kind, self.clone())
    }

    /// The most recently used idle HTTP/1.1 connection that is still open: worker `home`'s, or
    /// with `None` any worker's.
    fn pop_idle(&self, home: Option<usize>) -> Option<IdleH1> {
        let mut state = self.lock();
        let lists: &mut [VecDeque<IdleH1>] = match home {
            Some(h) => match state.idle.get_mut(h) {
                Some(list) => std::slice::from_mut(list),
                None => return None,
            },
            None => &mut state.idle,
        };
        for list in lists {
            while let Some(idle) = list.pop_back() {
                if !idle.sender.is_closed() {
                    return Some(idle);
                }
            }
        }
        None
    }

    /// A stream on an open HTTP/2 connection with room for one more: on one of worker `home`'s
    /// connections, or with `None` on any.
    fn h2_stream(self: &Arc<Self>, home: Option<usize>) -> Option<Lease> {
        let mut state = self.lock();
        state.h2.retain(|c| !c.sender.is_closed());
        let conn = state
            .h2
            .iter()
            .filter(|c| home.is_none_or(|h| c.home == h))
            .find(|c| c.streams.try_begin(H2_STREAMS_PER_CONNECTION))?
            .clone();
        drop(state);
        Some(Lease::new(LeaseKind::H2 { conn }, self.clone()))
    }

    /// The lease for a connection just opened; a shared HTTP/2 one joins the pool.
    fn fresh(self: &Arc<Self>, sender: Sender, own: bool) -> LeaseKind {
        match sender {
            Sender::H1(sender) => LeaseKind::H1 {
                sender,
                counted: Counted::new(self.gauges.clone(), ConnState::Busy),
                reused: false,
                own,
                home: crate::worker::current(),
            },
            Sender::H2(sender) => {
                let conn = Arc::new(H2Conn {
                    sender,
                    streams: Streams::new(self.gauges.clone()),
                    last_used: Mutex::new(Instant::now()),
                    home: crate::worker::current(),
                });
                conn.streams.try_begin(usize::MAX);
                if !own {
                    self.lock().h2.push(conn.clone());
                    // Whoever waits for a stream may find room on it.
                    self.returned.notify_waiters();
                }
                LeaseKind::H2 { conn }
            }
        }
    }

    /// Puts an HTTP/1.1 connection whose exchange completed back in the idle list.
    pub(super) fn check_in(
        &self,
        sender: http1::SendRequest<ProxyBody>,
        mut counted: Counted,
        home: usize,
    ) {
        if sender.is_closed() {
            return;
        }
        counted.set(ConnState::Idle);
        let idle = IdleH1 {
            sender,
            counted,
            since: Instant::now(),
            home,
        };
        let mut state = self.lock();
        if state.idle.len() <= home {
            state.idle.resize_with(home + 1, VecDeque::new);
        }
        state.idle[home].push_back(idle);
        drop(state);
        self.returned.notify_one();
    }

    /// An HTTP/2 stream ended.
    pub(super) fn stream_ended(&self, conn: &H2Conn) {
        *conn.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        conn.streams.end();
        self.returned.notify_one();
    }

    /// Closes the least recently used idle connection, freeing its slot once its socket closes.
    fn evict_one_idle(&self) {
        let evicted = {
            let mut state = self.lock();
            let h1 = state
                .idle
                .iter_mut()
                .find_map(VecDeque::pop_front)
                .map(drop);
            let h2 = if h1.is_none() {
                let at = state.h2.iter().position(|c| c.streams.open() == 0);
                at.map(|i| state.h2.swap_remove(i))
            } else {
                None
            };
            h2
        };
        drop(evicted);
    }

    /// Removes connections idle for `idle_timeout` or closed; returns them to drop unlocked.
    fn expired(&self, now: Instant) -> (Vec<IdleH1>, Vec<Arc<H2Conn>>) {
        let limit = self.idle_timeout;
        let mut state = self.lock();
        let mut h1 = Vec::new();
        for list in &mut state.idle {
            let mut kept = VecDeque::with_capacity(list.len());
            for idle in list.drain(..) {
                if idle.sender.is_closed() || now.duration_since(idle.since) >= limit {
                    h1.push(idle);
                } else {
                    kept.push_back(idle);
                }
            }
            *list = kept;
        }
        let mut h2 = Vec::new();
        state.h2.retain(|c| {
            let last = *c.last_used.lock().unwrap_or_else(|p| p.into_inner());
            let gone = c.sender.is_closed()
                || (c.streams.open() == 0 && now.duration_since(last) >= limit);
            if gone {
                h2.push(c.clone());
            }
            !gone
        });
        (h1, h2)
    }
}

/// Closes idle connections after `idle_timeout`; ends when the pool is gone.
async fn reap(pool: Weak<Inner>, idle_timeout: Duration) {
    let tick = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(15));
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let expired = inner.expired(Instant::now());
        drop(inner);
        drop(expired);
    }
}
