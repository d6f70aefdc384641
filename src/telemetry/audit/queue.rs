//! The queue between request tasks and the writer thread, and the progress they share.
//!
//! Callers push under a short mutex and never wake the writer, which wakes on its own every
//! flush interval and takes the whole queue in one swap. Only a full queue, a flush or a close
//! wakes it early. Waiting for room is `Notify` for async callers and a `Condvar` for blocking
//! ones; both are signalled when the writer takes a batch or reports progress.

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;

use tokio::sync::Notify;

use super::record::AuditRecord;
use super::writer::Turn;
use super::AuditClosed;

pub struct Shared {
    state: Mutex<State>,
    room: Notify,
    progress: Condvar,
    capacity: usize,
    writer: OnceLock<Thread>,
}

#[derive(Default)]
struct State {
    queue: Vec<AuditRecord>,
    /// Records ever queued, written to the OS, and written and synced.
    enqueued: u64,
    written: u64,
    synced: u64,
    /// A flush asked for everything up to this count to be synced.
    sync_wanted: u64,
    failures: u64,
    last_error: Option<String>,
    closed: bool,
    writer_done: bool,
}

/// How a push went.
#[allow(clippy::large_enum_variant)] // the record goes back to the caller by value, no allocation
pub enum Pushed {
    Queued,
    Full(AuditRecord),
    Closed,
}

/// A point to wait for: a sync covering `target` records, or a failure after `failures`.
#[derive(Clone, Copy)]
pub struct SyncTicket {
    target: u64,
    failures: u64,
}

impl Shared {
    pub fn new(capacity: usize) -> Self {
        Shared {
            state: Mutex::new(State::default()),
            room: Notify::new(),
            progress: Condvar::new(),
            capacity: capacity.max(1),
            writer: OnceLock::new(),
        }
    }

    pub fn set_writer(&self, thread: Thread) {
        // Set once, right after the spawn, before any handle exists: a second set cannot happen.
        let _ = self.writer.set(thread);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every lock (counters and a Vec push), so a panic
        // elsewhere while holding it does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn wake_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    fn signal(&self) {
        self.room.notify_waiters();
        self.progress.notify_all();
    }

    pub fn try_push(&self, rec: AuditRecord) -> Pushed {
        let mut st = self.lock();
        if st.closed {
            return Pushed::Closed;
        }
        if st.queue.len() >= self.capacity {
            return Pushed::Full(rec);
        }
        st.queue.push(rec);
        st.enqueued += 1;
        Pushed::Queued
    }

    pub async fn push(&self, mut rec: AuditRecord) -> Result<(), AuditClosed> {
        loop {
            // Registered before the retry, so a batch taken in between still wakes us.
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            rec = match self.try_push(rec) {
                Pushed::Queued => return Ok(()),
                Pushed::Closed => return Err(AuditClosed),
                Pushed::Full(rec) => rec,
            };
            self.wake_writer();
            notified.await;
        }
    }

    /// Resolves once the queue has room (or the log is closed), without queueing anything.
    pub async fn wait_room(&self) {
        loop {
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.lock();
                if st.closed || st.queue.len() < self.capacity {
                    return;
                }
            }
            self.wake_writer();
            notified.await;
        }
    }

    pub fn push_blocking(&self, rec: AuditRecord) -> Result<(), AuditClosed> {
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(AuditClosed);
            }
            if st.queue.len() < self.capacity {
                st.queue.push(rec);
                st.enqueued += 1;
                return Ok(());
            }
            self.wake_writer();
            st = self
                .progress
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Asks the writer to sync everything queued so far.
    pub fn request_sync(&self) -> SyncTicket {
        let ticket = {
            let mut st = self.lock();
            st.sync_wanted = st.sync_wanted.max(st.enqueued);
            SyncTicket {
                target: st.enqueued,
                failures: st.failures,
            }
        };
        self.wake_writer();
        ticket
    }

    fn sync_outcome(st: &State, ticket: SyncTicket) -> Option<io::Result<()>> {
        if st.synced >= ticket.target {
            Some(Ok(()))
        } else if st.failures > ticket.failures {
            let why = st.last_error.clone().unwrap_or_default();
            Some(Err(io::Error::other(format!(
                "audit log write failed: {why}"
            ))))
        } else if st.writer_done {
            Some(Err(io::Error::other("audit log writer has stopped")))
        } else {
            None
        }
    }

    pub async fn wait_synced(&self, ticket: SyncTicket) -> io::Result<()> {
        loop {
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = Self::sync_outcome(&self.lock(), ticket) {
                return outcome;
            }
            notified.await;
        }
    }

    pub fn wait_synced_blocking(&self, ticket: SyncTicket) -> io::Result<()> {
        let mut st = self.lock();
        loop {
            if let Some(outcome) = Self::sync_outcome(&st, ticket) {
                return outcome;
            }
            st = self
                .progress
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Writer side: moves the queue into an empty `backlog` (a swap, so both keep their
    /// allocations). A non-empty backlog means the last write failed: the queue is left to
    /// fill, so that callers feel the back-pressure instead of memory growing.
    pub fn take_batch(&self, backlog: &mut Vec<AuditRecord>) -> Turn {
        let (turn, took) = {
            let mut st = self.lock();
            let took = backlog.is_empty() && !st.queue.is_empty();
            if took {
                std::mem::swap(&mut st.queue, backlog);
            }
            let turn = Turn {
                sync_wanted: st.sync_wanted,
                closing: st.closed,
                more: !st.queue.is_empty(),
            };
            (turn, took)
        };
        if took {
            self.signal();
        }
        turn
    }

    /// Writer side: reports what is written and synced, or a failure.
    pub fn publish(&self, written: u64, synced: u64, failed: Option<&str>) {
        let changed = {
            let mut st = self.lock();
            let changed = st.written != written || st.synced != synced || failed.is_some();
            st.written = written;
            st.synced = synced;
            if let Some(why) = failed {
                st.failures += 1;
                st.last_error = Some(why.to_owned());
            }
            changed
        };
        if changed {
            self.signal();
        }
    }

    /// No writer, no room ever again: refuse records rather than queue them forever.
    pub fn writer_exited(&self) {
        {
            let mut st = self.lock();
            st.writer_done = true;
            st.closed = true;
        }
        self.signal();
    }

    /// Refuses new records and asks the writer to write and sync the rest, then stop.
    pub fn close(&self) {
        {
            let mut st = self.lock();
            st.closed = true;
            st.sync_wanted = st.enqueued;
        }
        self.wake_writer();
        self.signal();
    }
}
