//! The tamper-evident audit log: one JSON object a line for every decision, hash-chained.
//!
//! # Line format
//!
//! Each line is the [`AuditRecord`]'s members in declaration order (`ts`, `kind`, `request_id`,
//! `agent`, `roles`, `source_ip`, `method`, `host`, `path`, `route`, `upstream`, `rule`,
//! `decision`, `reason`, `status`, `duration_ms`, `bytes_in`, `bytes_out`, `anomaly_score`,
//! `signals`, and `close_reason` on connection and tunnel ends), then `prev_hash`, then `hash`,
//! written compactly (no spaces) and ended by `\n`.
//!
//! # The chain
//!
//! `hash` is the lowercase hex SHA-256 of the line's own bytes up to `hash`: take the line
//! without its newline, remove its last 75 bytes (`,"hash":"` + 64 hex digits + `"}`), put
//! back the closing `}`, and hash that. It is the record with `prev_hash` and without `hash`,
//! exactly as written; a verifier never re-serialises, so any JSON library (or `head -c`) can
//! check it. In Python:
//!
//! ```text
//! body = line.rstrip(b"\n")[:-75] + b"}"
//! assert hashlib.sha256(body).hexdigest() == json.loads(line)["hash"]
//! ```
//!
//! `prev_hash` is the previous line's `hash`; the first record of a new chain has 64 zeros.
//! Editing, deleting, inserting or reordering a line breaks the chain at that line or the next.
//! The chain has no key: it shows changes made by anyone who did not recompute every later
//! hash, and removing lines at the very end leaves no trace in the file itself. Keep the last
//! hash somewhere else (the report of [`verify`] gives it) to anchor the end.
//!
//! # Files
//!
//! With `max_bytes`, a file about to grow past it is renamed `NAME.1`, `NAME.2`, ... (the
//! highest number is the newest) and a new `NAME` begins; its first record's `prev_hash` is
//! the last hash of the renamed file, so the chain spans files ([`verify_chain`] checks the
//! links). Nothing is ever deleted: retention is the operator's job. Opening an existing file
//! continues its chain. A torn last line (a write cut short by a crash, without its newline)
//! is cut off first; a last line that is not an intact record is never chained onto: that file
//! is rotated aside untouched and a new chain starts from zeros.
//!
//! # Cost and delivery
//!
//! [`AuditLog::record`] only pushes the record onto a bounded queue under a short lock.
//! A dedicated thread takes the whole queue every flush interval (a few ms) and does the JSON,
//! the hashing and one write per batch; it syncs on [`AuditLog::flush`], on rotation, on close
//! and at most every `sync_interval` otherwise. When the queue is full, `record` waits for the
//! writer: a full audit queue slows the request, it does not lose it.

mod chain;
mod queue;
mod record;
mod rotate;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use prometheus::IntCounter;
use thiserror::Error;

pub use chain::BrokenReason;
pub use record::{AuditDecision, AuditRecord, RecordKind, SignalDetail};
pub use rotate::{chain_files, rotated_name};
pub use verify::{
    verify, verify_chain, verify_chain_command, verify_command, ChainFailure, VerifyFailure,
    VerifyReport,
};

use queue::{Pushed, Shared};
use rotate::FileSink;
use writer::{Sink, Writer};

/// Where the log goes: a file (`telemetry.audit_log: PATH`) or stdout (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    File(PathBuf),
    Stdout,
}

impl AuditTarget {
    /// Reads the config's `telemetry.audit_log` value.
    pub fn from_config(value: &str) -> Self {
        if value == "-" {
            AuditTarget::Stdout
        } else {
            AuditTarget::File(PathBuf::from(value))
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Rotate a file before it grows past this many bytes; `None` never rotates.
    pub max_bytes: Option<u64>,
    /// Records queued before `record` waits for the writer.
    pub queue_capacity: usize,
    /// How often the writer takes the queue.
    pub flush_interval: Duration,
    /// The longest written records wait for an fsync when nobody flushes.
    pub sync_interval: Duration,
    /// Counts every record written: `warden_audit_records_total`.
    pub records_total: Option<IntCounter>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            max_bytes: None,
            queue_capacity: 65_536,
            flush_interval: Duration::from_millis(2),
            sync_interval: Duration::from_secs(1),
            records_total: None,
        }
    }
}

/// The log has been shut down; the record was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the audit log is closed")]
pub struct AuditClosed;

/// A handle on the audit log. Clones share one queue and one writer thread.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl AuditLog {
    /// Opens (or creates) the log, continuing the chain of an existing file, and starts the
    /// writer thread. Blocking: call it at startup.
    pub fn open(target: AuditTarget, opts: AuditOptions) -> io::Result<AuditLog> {
        let (sink, prev) = match target {
            AuditTarget::File(path) => {
                let (file, prev) = FileSink::open(&path, opts.max_bytes)?;
                (Sink::File(file), prev)
            }
            AuditTarget::Stdout => (Sink::Stdout(io::stdout()), chain::GENESIS),
        };
        let shared = Arc::new(Shared::new(opts.queue_capacity));
        let writer = Writer::new(
            Arc::clone(&shared),
            sink,
            prev,
            opts.records_total,
            opts.flush_interval,
            opts.sync_interval,
        );
        let exit = ExitGuard(Arc::clone(&shared));
        let handle = thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || {
                let _exit = exit;
                writer.run()
            })?;
        shared.set_writer(handle.thread().clone());
        Ok(AuditLog {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Queues a record; waits only while the queue is full. Never touches the disk.
    pub async fn record(&self, rec: AuditRecord) -> Result<(), AuditClosed> {
        match self.inner.shared.try_push(rec) {
            Pushed::Queued => Ok(()),
            Pushed::Closed => Err(AuditClosed),
            Pushed::Full(rec) => self.inner.shared.push(rec).await,
        }
    }

    /// `record` for code outside async tasks; blocks the thread while the queue is full.
    pub fn record_blocking(&self, rec: AuditRecord) -> Result<(), AuditClosed> {
        self.inner.shared.push_blocking(rec)
    }

    /// Returns once every record queued before the call is written and synced to disk.
    pub async fn flush(&self) -> io::Result<()> {
        let ticket = self.inner.shared.request_sync();
        self.inner.shared.wait_synced(ticket).await
    }

    /// `flush` for code outside async tasks.
    pub fn flush_blocking(&self) -> io::Result<()> {
        let ticket = self.inner.shared.request_sync();
        self.inner.shared.wait_synced_blocking(ticket)
    }

    /// Closes the log for every handle: writes and syncs all that is queued, then stops the
    /// writer. Blocks until then. Later `record` calls on other handles fail with `AuditClosed`.
    pub fn shutdown(self) -> io::Result<()> {
        self.inner.close()
    }
}

/// Why [`AuditLog::try_record`] did not take a record.
#[derive(Debug)]
pub enum TryRecordError {
    /// The queue is full: the record is handed back to be queued by waiting.
    Full(Box<AuditRecord>),
    Closed,
}

impl AuditLog {
    /// Queues a record if there is room right now; never waits. For synchronous code on the
    /// async runtime, which must not block: on `Full`, hand the record to [`AuditLog::record`].
    pub fn try_record(&self, rec: AuditRecord) -> Result<(), TryRecordError> {
        match self.inner.shared.try_push(rec) {
            Pushed::Queued => Ok(()),
            Pushed::Closed => Err(TryRecordError::Closed),
            Pushed::Full(rec) => Err(TryRecordError::Full(Box::new(rec))),
        }
    }

    /// Waits until the queue has room: a request waits here before it starts while the writer
    /// is behind, which is how a full queue slows requests down instead of losing records.
    pub async fn room(&self) {
        self.inner.shared.wait_room().await
    }
}

/// Tells waiters the writer is gone, even when it panicked, so that nobody waits for it.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.writer_exited();
    }
}

impl Inner {
    fn close(&self) -> io::Result<()> {
        self.shared.close();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match handle.map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("audit log writer panicked")),
        }
    }
}

impl Drop for Inner {
    /// The last handle gone without `shutdown`: still write what is queued.
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "audit log did not close cleanly");
        }
    }
}
