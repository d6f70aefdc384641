//! An agent-protocol event stream, followed event by event: each complete event is judged (a
//! list answer filtered, task owners recorded) and passed on at once, so at most one incomplete
//! event is held; the stream ends when its agent is quarantined.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};

use super::rpc::{record_owner, RpcForwarding, Tap};
use crate::protocol::sse::{message_data, replace_data, EventSplitter};
use crate::upstream::{BoxError, ProxyBody};

/// How often an open event stream checks its agent's standing.
const GUARD_EVERY: Duration = Duration::from_millis(250);

/// An event stream followed event by event, holding at most one incomplete event.
pub(super) struct RpcStream {
    inner: ProxyBody,
    splitter: Option<EventSplitter>,
    tap: Tap,
    out: VecDeque<Bytes>,
    /// Owners being recorded: the event that named them waits in `out` until they are.
    pending: Option<tokio::task::JoinHandle<()>>,
    guard: tokio::time::Interval,
    rpc: RpcForwarding,
    upstream: Arc<str>,
    owner: Option<Arc<str>>,
    done: bool,
}

impl RpcStream {
    pub(super) fn new(
        inner: ProxyBody,
        tap: Tap,
        rpc: RpcForwarding,
        upstream: Arc<str>,
        owner: Option<Arc<str>>,
        max_event: usize,
    ) -> Self {
        let mut guard = tokio::time::interval(GUARD_EVERY);
        guard.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        RpcStream {
            inner,
            splitter: tap.needed().then(|| EventSplitter::new(max_event)),
            tap,
            out: VecDeque::new(),
            pending: None,
            guard,
            rpc,
            upstream,
            owner,
            done: false,
        }
    }

    /// Judges one complete event and queues what is passed on.
    fn event(&mut self, event: Bytes) -> Result<(), BoxError> {
        let Some(data) = message_data(&event) else {
            self.out.push_back(event);
            return Ok(());
        };
        let Ok(text) = std::str::from_utf8(&data) else {
            self.out.push_back(event);
            return Ok(());
        };
        let (rewritten, tasks) = self.tap.message(text).map_err(BoxError::from)?;
        self.out.push_back(match rewritten {
            Some(new) => replace_data(&event, &new),
            None => event,
        });
        if let (Some(owner), false) = (&self.owner, tasks.is_empty()) {
            let (state, upstream, owner) =
                (self.rpc.state.clone(), self.upstream.clone(), owner.clone());
            self.pending = Some(tokio::spawn(async move {
                for t in tasks {
                    record_owner(&*state, &upstream, &t, owner.clone()).await;
                }
            }));
        }
        Ok(())
    }

    fn take_data(&mut self, data: Bytes) -> Result<(), BoxError> {
        let Some(splitter) = self.splitter.as_mut() else {
            self.out.push_back(data);
            return Ok(());
        };
        let events = splitter.push(&data).map_err(BoxError::from)?;
        for e in events {
            self.event(e)?;
        }
        Ok(())
    }
}

impl Body for RpcStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        while this.guard.poll_tick(cx).is_ready() {
            if !(this.rpc.still_admitted)() {
                this.done = true;
                this.out.clear();
                return Poll::Ready(Some(Err("the agent is quarantined".into())));
            }
        }
        loop {
            if let Some(p) = this.pending.as_mut() {
                if Pin::new(p).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pending = None;
            }
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(rest) = this.splitter.as_mut().and_then(EventSplitter::finish) {
                        if let Err(e) = this.event(rest) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if let Err(e) = this.take_data(data) {
                            this.done = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty() && self.pending.is_none()
    }
}
