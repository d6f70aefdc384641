//! `warden audit verify`: re-checks every seal and link of a log, one line at a time.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::chain::{as_str, check_line, BrokenReason, HexHash, GENESIS};

/// Lines longer than this are not records (see the writer): refuse them instead of buffering.
const MAX_LINE: u64 = 1 << 20;

/// An intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: usize,
    /// The first record's `prev_hash` when it is not 64 zeros: the file continues a chain
    /// (it follows a rotation), whose earlier part this check did not see.
    pub starts_from: Option<String>,
    /// The last record's hash: keep it elsewhere to detect lines removed from the end later.
    pub last_hash: Option<String>,
}

/// The first line that breaks the chain, 1-based. Line 0 means the file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct VerifyFailure {
    pub line: usize,
    pub reason: BrokenReason,
}

/// The file of a chain of rotated files where it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}:{}: broken: {}", .file.display(), .failure.line, .failure.reason)]
pub struct ChainFailure {
    pub file: PathBuf,
    pub failure: VerifyFailure,
}

/// Verifies one file. Its first record may continue an earlier chain (`starts_from`).
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyFailure> {
    verify_from(path, None)
}

/// Verifies rotated files in order, oldest first (see `chain_files`), including that each
/// file's first record links to the previous file's last.
pub fn verify_chain(paths: &[PathBuf]) -> Result<VerifyReport, ChainFailure> {
    let mut total = VerifyReport {
        records: 0,
        starts_from: None,
        last_hash: None,
    };
    let mut link: Option<HexHash> = None;
    for (i, path) in paths.iter().enumerate() {
        let report = verify_from(path, link).map_err(|failure| ChainFailure {
            file: path.clone(),
            failure,
        })?;
        if i == 0 {
            total.starts_from = report.starts_from;
        }
        if let Some(last) = &report.last_hash {
            link = super::chain::parse_hex(last);
            total.last_hash = Some(last.clone());
        }
        total.records += report.records;
    }
    Ok(total)
}

fn verify_from(path: &Path, mut prev: Option<HexHash>) -> Result<VerifyReport, VerifyFailure> {
    let io_failure = |line, e: std::io::Error| VerifyFailure {
        line,
        reason: BrokenReason::Io(e.to_string()),
    };
    let mut reader =
        BufReader::with_capacity(64 << 10, File::open(path).map_err(|e| io_failure(0, e))?);
    let mut report = VerifyReport {
        records: 0,
        starts_from: None,
        last_hash: None,
    };
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let line = report.records + 1;
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_failure(line, e))?;
        if read == 0 {
            return Ok(report);
        }
        let fail = |reason| VerifyFailure { line, reason };
        let Some(body) = buf.strip_suffix(b"\n") else {
            return Err(fail(if read as u64 > MAX_LINE {
                BrokenReason::Malformed("line too long".into())
            } else {
                BrokenReason::Truncated
            }));
        };
        let sealed = check_line(body).map_err(fail)?;
        match prev {
            Some(expected) if expected != sealed.prev_hash => {
                return Err(fail(BrokenReason::ChainBroken {
                    expected: as_str(&expected).to_owned(),
                    found: as_str(&sealed.prev_hash).to_owned(),
                }));
            }
            None if sealed.prev_hash != GENESIS => {
                report.starts_from = Some(as_str(&sealed.prev_hash).to_owned());
            }
            _ => {}
        }
        prev = Some(sealed.hash);
        report.records = line;
        report.last_hash = Some(as_str(&sealed.hash).to_owned());
    }
}

/// `warden audit verify FILE`: prints `FILE: intact, N records` and returns 0, or
/// `FILE:LINE: broken: reason` and returns 1; a file that cannot be read returns 2.
pub fn verify_command(path: &Path, out: &mut dyn Write) -> i32 {
    let name = path.display();
    let (text, code) = match verify(path) {
        Ok(report) => (intact_text(&name.to_string(), &report), 0),
        Err(VerifyFailure { line: 0, reason }) => (format!("{name}: error: {reason}"), 2),
        Err(VerifyFailure { line, reason }) => (format!("{name}:{line}: broken: {reason}"), 1),
    };
    finish(out, &text, code)
}

/// `warden audit verify FILE...` over rotated files, oldest first; same output and codes.
pub fn verify_chain_command(paths: &[PathBuf], out: &mut dyn Write) -> i32 {
    let name = paths
        .last()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (text, code) = match verify_chain(paths) {
        Ok(report) => (intact_text(&name, &report), 0),
        Err(ChainFailure {
            file,
            failure: VerifyFailure { line: 0, reason },
        }) => (format!("{}: error: {reason}", file.display()), 2),
        Err(failure) => (failure.to_string(), 1),
    };
    finish(out, &text, code)
}

fn intact_text(name: &str, report: &VerifyReport) -> String {
    let mut text = format!("{name}: intact, {} records", report.records);
    if let Some(from) = &report.starts_from {
        text.push_str(&format!("\n{name}: continues a chain from {from}"));
    }
    text
}

fn finish(out: &mut dyn Write, text: &str, code: i32) -> i32 {
    match writeln!(out, "{text}") {
        Ok(()) => code,
        Err(_) => 2,
    }
}
