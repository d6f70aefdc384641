//! The writer thread: drains the queue in batches, seals each record into the chain, writes,
//! rotates and syncs. All serialisation, hashing and disk I/O of the log happen here.

use std::io::{self, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use prometheus::IntCounter;

use super::chain::{seal, HexHash};
use super::queue::Shared;
use super::record::AuditRecord;
use super::rotate::FileSink;

/// Where sealed lines go.
pub enum Sink {
    File(FileSink),
    Stdout(io::Stdout),
}

impl Sink {
    fn must_rotate(&self, pending: usize, line_len: usize) -> bool {
        match self {
            Sink::File(f) => f.must_rotate(pending, line_len),
            Sink::Stdout(_) => false,
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.rotate(),
            Sink::Stdout(_) => Ok(()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.sync(),
            Sink::Stdout(out) => out.flush(),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(out) => out.write(buf),
        }
    }
}

/// Sealed bytes not yet on disk. Once a line is sealed, the chain has moved on: its bytes are
/// kept until written, whatever errors come in between, so a retry writes the same chain.
struct Pending {
    bytes: Vec<u8>,
    written: usize,
    records: u64,
}

impl Pending {
    fn len(&self) -> usize {
        self.bytes.len() - self.written
    }

    fn write_to(&mut self, sink: &mut Sink) -> io::Result<u64> {
        while self.written < self.bytes.len() {
            match sink.write(&self.bytes[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes.clear();
        self.written = 0;
        Ok(std::mem::take(&mut self.records))
    }
}

/// The sink and what is on its way to it.
struct Output {
    sink: Sink,
    pending: Pending,
    /// Records written to the sink so far.
    written: u64,
    counter: Option<IntCounter>,
}

impl Output {
    fn drain(&mut self) -> io::Result<()> {
        let records = self.pending.write_to(&mut self.sink)?;
        if records > 0 {
            self.written += records;
            if let Some(counter) = &self.counter {
                counter.inc_by(records);
            }
        }
        Ok(())
    }
}

pub struct Writer {
    shared: Arc<Shared>,
    out: Output,
    prev: HexHash,
    line: Vec<u8>,
    /// Records taken from the queue and not yet sealed; non-empty only after an error.
    backlog: Vec<AuditRecord>,
    flush_interval: Duration,
    sync_interval: Duration,
    synced: u64,
    last_sync: Instant,
}

/// A large batch goes out in writes of about this size rather than one buffer of it all.
const WRITE_CHUNK: usize = 256 << 10;

/// How many times a closing writer retries a failing disk before it gives up.
const CLOSING_ATTEMPTS: u32 = 5;

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        sink: Sink,
        prev: HexHash,
        counter: Option<IntCounter>,
        flush_interval: Duration,
        sync_interval: Duration,
    ) -> Self {
        Writer {
            shared,
            out: Output {
                sink,
                pending: Pending {
                    bytes: Vec::with_capacity(64 << 10),
                    written: 0,
                    records: 0,
                },
                written: 0,
                counter,
            },
            prev,
            line: Vec::with_capacity(1024),
            backlog: Vec::new(),
            flush_interval,
            sync_interval,
            synced: 0,
            last_sync: Instant::now(),
        }
    }

    /// The thread's body: runs until the log is closed and everything queued is written.
    pub fn run(mut self) -> io::Result<()> {
        let mut failures = 0u32;
        loop {
            let turn = self.shared.take_batch(&mut self.backlog);
            let result = self.write_batch().and_then(|()| self.maybe_sync(&turn));
            let failed = result.as_ref().err().map(ToString::to_string);
            self.shared
                .publish(self.out.written, self.synced, failed.as_deref());
            match result {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "audit log writes recovered");
                        failures = 0;
                    }
                    if turn.closing && !turn.more {
                        return Ok(());
                    }
                    if turn.closing || turn.sync_wanted > self.synced {
                        continue;
                    }
                }
                Err(e) => {
                    failures += 1;
                    // Once, not every flush interval while the disk stays full.
                    if failures == 1 {
                        tracing::error!(error = %e, "audit log write failed; records wait in the queue, retrying");
                    }
                    if turn.closing && failures >= CLOSING_ATTEMPTS {
                        tracing::error!(error = %e, unwritten = self.backlog.len(), "audit log closed with records it could not write");
                        return Err(e);
                    }
                }
            }
            thread::park_timeout(self.flush_interval);
        }
    }

    fn write_batch(&mut self) -> io::Result<()> {
        self.out.drain()?;
        let mut sealed = 0;
        let result = self.seal_backlog(&mut sealed);
        self.backlog.drain(..sealed);
        result?;
        self.out.drain()
    }

    fn seal_backlog(&mut self, sealed: &mut usize) -> io::Result<()> {
        for rec in &self.backlog {
            self.line.clear();
            if let Err(e) = serde_json::to_writer(&mut self.line, rec) {
                // The record's types serialise infallibly; this guards the writer from
                // stalling forever on one record should that ever change.
                tracing::error!(error = %e, request_id = %rec.request_id, "audit record not serialisable; skipped");
                // Counted as handled, so that flushes waiting for it complete.
                self.out.written += 1;
                *sealed += 1;
                continue;
            }
            let hash = seal(&mut self.line, &self.prev);
            let out = &mut self.out;
            if out.sink.must_rotate(out.pending.len(), self.line.len()) {
                out.drain()?;
                out.sink.rotate()?;
            }
            out.pending.bytes.extend_from_slice(&self.line);
            out.pending.records += 1;
            self.prev = hash;
            *sealed += 1;
            if out.pending.len() >= WRITE_CHUNK {
                out.drain()?;
            }
        }
        Ok(())
    }

    fn maybe_sync(&mut self, turn: &Turn) -> io::Result<()> {
        let unsynced = self.out.written > self.synced;
        let due = turn.sync_wanted > self.synced
            || turn.closing
            || (unsynced && self.last_sync.elapsed() >= self.sync_interval);
        if due && unsynced {
            self.out.sink.sync()?;
            self.last_sync = Instant::now();
        }
        if due {
            self.synced = self.out.written;
        }
        Ok(())
    }
}

/// What the writer learnt from the shared state when it took a batch.
pub struct Turn {
    pub sync_wanted: u64,
    pub closing: bool,
    /// Records were left in the queue (the backlog was still busy).
    pub more: bool,
}
