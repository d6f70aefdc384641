//! `warden_upstream_connections{upstream, state}`: each pooled connection counts once, as idle
//! or busy, from its handshake until it is dropped. The gauges are only added to and subtracted
//! from, so connections of an old pool (kept alive by requests in flight across a reload) and
//! of its successor add up under the same labels.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::{IntGauge, IntGaugeVec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Idle,
    Busy,
}

/// The idle and busy gauges of one upstream; nothing when the pool is not measured
/// (`check`, `explain`, benches).
#[derive(Debug, Clone, Default)]
pub struct ConnGauges(Option<Arc<(IntGauge, IntGauge)>>);

impl ConnGauges {
    pub fn new(vec: Option<&IntGaugeVec>, upstream: &str) -> Self {
        ConnGauges(vec.map(|v| {
            Arc::new((
                v.with_label_values(&[upstream, "idle"]),
                v.with_label_values(&[upstream, "busy"]),
            ))
        }))
    }

    fn add(&self, state: ConnState, delta: i64) {
        if let Some(g) = &self.0 {
            match state {
                ConnState::Idle => g.0.add(delta),
                ConnState::Busy => g.1.add(delta),
            }
        }
    }

    fn moved(&self, from: ConnState, to: ConnState) {
        if from != to {
            self.add(from, -1);
            self.add(to, 1);
        }
    }
}

/// An HTTP/1.1 connection's place in the gauges: it moves with the connection between the idle
/// list and a request, and leaves the gauges when dropped.
#[derive(Debug)]
pub struct Counted {
    gauges: ConnGauges,
    state: ConnState,
}

impl Counted {
    pub fn new(gauges: ConnGauges, state: ConnState) -> Self {
        gauges.add(state, 1);
        Counted { gauges, state }
    }

    pub fn set(&mut self, state: ConnState) {
        self.gauges.moved(self.state, state);
        self.state = state;
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.gauges.add(self.state, -1);
    }
}

/// An HTTP/2 connection's streams in flight: busy while there is at least one.
#[derive(Debug)]
pub struct Streams {
    gauges: ConnGauges,
    open: AtomicUsize,
}

impl Streams {
    pub fn new(gauges: ConnGauges) -> Self {
        gauges.add(ConnState::Idle, 1);
        Streams {
            gauges,
            open: AtomicUsize::new(0),
        }
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Takes a stream if fewer than `limit` are open.
    pub fn try_begin(&self, limit: usize) -> bool {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        match taken {
            Ok(0) => {
                self.gauges.moved(ConnState::Idle, ConnState::Busy);
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    pub fn end(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.gauges.moved(ConnState::Busy, ConnState::Idle);
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        // Every stream has ended by now: each holds the connection it runs on.
        self.gauges.add(ConnState::Idle, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec() -> IntGaugeVec {
        IntGaugeVec::new(prometheus::Opts::new("t", "t"), &["upstream", "state"]).unwrap()
    }

    fn read(v: &IntGaugeVec) -> (i64, i64) {
        (
            v.with_label_values(&["api", "idle"]).get(),
            v.with_label_values(&["api", "busy"]).get(),
        )
    }

    #[test]
    fn an_http1_connection_moves_between_idle_and_busy_and_leaves_when_dropped() {
        let v = vec();
        let mut c = Counted::new(ConnGauges::new(Some(&v), "api"), ConnState::Busy);
        assert_eq!(read(&v), (0, 1));
        c.set(ConnState::Idle);
        c.set(ConnState::Idle);
        assert_eq!(read(&v), (1, 0));
        drop(c);
        assert_eq!(read(&v), (0, 0));
    }

    #[test]
    fn an_http2_connection_is_busy_while_any_stream_is_open_and_capped() {
        let v = vec();
        let s = Streams::new(ConnGauges::new(Some(&v), "api"));
        assert_eq!(read(&v), (1, 0));
        assert!(s.try_begin(2) && s.try_begin(2));
        assert!(!s.try_begin(2), "a third stream over the limit");
        assert_eq!((read(&v), s.open()), ((0, 1), 2));
        s.end();
        assert_eq!(read(&v), (0, 1));
        s.end();
        assert_eq!(read(&v), (1, 0));
        drop(s);
        assert_eq!(read(&v), (0, 0));
    }
}
