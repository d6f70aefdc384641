//! Body wrappers: count bytes as they stream, cut a body that stalls (`body_stall_timeout`),
//! tell the agent's own body failures from the upstream's, and run the record step exactly once
//! when the response ends — or is dropped because the agent went away.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::stall::{Progress, StallTimer};
use crate::upstream::BoxError;

/// Why the agent's own request body failed: the agent's fault, not the upstream's, so the
/// forwarder answers it as such instead of as an upstream failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentFault {
    /// Broken framing (a bad chunk size, a connection cut mid-body).
    Malformed,
    /// No progress for `limits.body_stall_timeout`.
    Stalled,
}

/// Where an [`AgentBody`] marks its fault for the forwarder to read.
#[derive(Debug, Default)]
pub struct FaultCell(OnceLock<AgentFault>);

impl FaultCell {
    pub fn get(&self) -> Option<AgentFault> {
        self.0.get().copied()
    }

    fn set(&self, fault: AgentFault) {
        let _ = self.0.set(fault);
    }
}

/// The agent's request body on its way upstream: counts its data bytes into a shared counter,
/// cuts it when the agent stops sending, marks its own failures in a [`FaultCell`], and publishes
/// its [`Progress`] so the forwarder sees an upstream that stops reading it.
pub struct AgentBody<B> {
    inner: B,
    count: Arc<AtomicU64>,
    fault: Arc<FaultCell>,
    stall: StallTimer,
    progress: Arc<Progress>,
}

/// Where an [`AgentBody`] reports: its byte counter, its fault, its progress.
pub struct AgentBodyWatch {
    pub count: Arc<AtomicU64>,
    pub fault: Arc<FaultCell>,
    pub progress: Arc<Progress>,
}

impl<B: Body> AgentBody<B> {
    pub fn new(inner: B, watch: &AgentBodyWatch, stall: Duration) -> Self {
        // Not the upstream's to take until it first asks for it (it may still be connecting).
        watch.progress.polled(true);
        if inner.is_end_stream() {
            watch.progress.finished();
        }
        AgentBody {
            inner,
            count: watch.count.clone(),
            fault: watch.fault.clone(),
            stall: StallTimer::new(stall),
            progress: watch.progress.clone(),
        }
    }
}

impl<B> Body for AgentBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.progress.polled(polled.is_pending());
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                this.stall.progressed();
                if this.inner.is_end_stream() {
                    this.progress.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.progress.finished();
                this.fault.set(AgentFault::Malformed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.progress.finished();
                Poll::Ready(None)
            }
            Poll::Pending if this.stall.poll_stalled(cx) => {
                this.progress.finished();
                this.fault.set(AgentFault::Stalled);
                Poll::Ready(Some(Err(Box::new(this.stall.error()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body on its way to the agent: cut when the upstream stops sending,
/// and its progress published for the connection, which cuts an agent that stops reading.
pub struct UpstreamBody<B> {
    inner: B,
    stall: StallTimer,
    progress: Arc<Progress>,
}

impl<B> UpstreamBody<B> {
    pub fn new(inner: B, stall: Duration, progress: Arc<Progress>) -> Self {
        UpstreamBody {
            inner,
            stall: StallTimer::new(stall),
            progress,
        }
    }
}

impl<B> Body for UpstreamBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.progress.polled(polled.is_pending());
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.stall.progressed();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.progress.finished();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.progress.finished();
                Poll::Ready(None)
            }
            Poll::Pending if this.stall.poll_stalled(cx) => {
                this.progress.finished();
                Poll::Ready(Some(Err(Box::new(this.stall.error()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for UpstreamBody<B> {
    fn drop(&mut self) {
        self.progress.finished();
    }
}

/// Something to do once, when a response body is finished or dropped.
pub trait OnEnd: Send + Sync + 'static {
    fn finish(self: Box<Self>, bytes_out: u64, completed: bool);
}

/// A response body that counts bytes out and calls [`OnEnd::finish`] exactly once.
pub struct Recorded<B> {
    inner: B,
    bytes: u64,
    on_end: Option<Box<dyn OnEnd>>,
}

impl<B> Recorded<B> {
    pub fn new(inner: B, on_end: Box<dyn OnEnd>) -> Self {
        Recorded {
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, completed: bool) {
        if let Some(f) = self.on_end.take() {
            f.finish(self.bytes, completed);
        }
    }
}

impl<B> Body for Recorded<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Recorded<B> {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            // A body dropped before its end: the agent went away or the stream broke.
            f.finish(self.bytes, false);
        }
    }
}
