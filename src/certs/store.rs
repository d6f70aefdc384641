//! The CA directory on disk.
//!
//! ```text
//! DIR/ca.pem  ca-key.pem (0600)       the CA
//! DIR/server.pem  server-key.pem       the proxy's server certificate
//! DIR/NAME.pem  NAME-key.pem           agent certificates
//! DIR/issued.jsonl                     one line per issued agent certificate
//! DIR/revoked.jsonl                    one line per revocation
//! DIR/crl.pem                          the CRL, re-signed on every revocation
//! ```
//!
//! Every file is written to a temporary name and renamed into place, so a proxy reloading
//! `crl.pem` never reads half a file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::pki::{Ca, Revoked};
use super::CertsError;
use crate::identity::agent_id::serial_hex;

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server-key.pem";
pub const CRL: &str = "crl.pem";
pub const ISSUED_INDEX: &str = "issued.jsonl";
pub const REVOKED_INDEX: &str = "revoked.jsonl";
pub const TOKEN_KEY: &str = "token-signing-key.pem";
pub const TOKEN_PUB: &str = "token-signing-pub.pem";

/// One line of `issued.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    pub serial: String,
    pub agent_id: String,
    /// RFC 3339.
    pub not_after: String,
    /// The certificate's file name inside the directory.
    pub file: String,
}

/// One line of `revoked.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub serial: String,
    /// RFC 3339.
    pub revoked_at: String,
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), CertsError> {
    fs::create_dir_all(dir).map_err(|e| CertsError::io(dir, e))
}

pub(crate) fn read_string(path: &Path) -> Result<String, CertsError> {
    fs::read_to_string(path).map_err(|e| CertsError::io(path, e))
}

/// Writes a file anyone may read.
pub(crate) fn write_public(path: &Path, contents: &[u8]) -> Result<(), CertsError> {
    write_atomic(path, contents, 0o644)
}

/// Writes a file only its owner may read (a private key).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), CertsError> {
    write_atomic(path, contents, 0o600)
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertsError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| CertsError::Invalid(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = open_new(&tmp, mode)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| CertsError::io(path, e))
}

#[cfg(unix)]
fn open_new(path: &Path, mode: u32) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // The mode is set at creation: a key file is never readable by others, not even briefly.
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _mode: u32) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn append_line(path: &Path, line: &str) -> Result<(), CertsError> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| CertsError::io(path, e))?;
    writeln!(file, "{line}").map_err(|e| CertsError::io(path, e))
}

/// The DER contents of the first PEM block labelled `label`.
pub(crate) fn pem_block(pem: &[u8], label: &str) -> Result<Vec<u8>, String> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("bad PEM: {e}"))?;
        if block.label == label {
            return Ok(block.contents);
        }
    }
    Err(format!("no `{label}` PEM block"))
}

/// The DER certificate in `path`, PEM or DER.
pub fn read_cert_der(path: &Path) -> Result<Vec<u8>, CertsError> {
    let bytes = fs::read(path).map_err(|e| CertsError::io(path, e))?;
    if bytes.starts_with(&[0x30]) {
        return Ok(bytes);
    }
    pem_block(&bytes, "CERTIFICATE").map_err(|m| CertsError::parse(path, m))
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, CertsError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CertsError::io(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| CertsError::parse(path, format!("line {}: {e}", n + 1)))
        })
        .collect()
}

fn to_line<T: Serialize>(record: &T) -> Result<String, CertsError> {
    serde_json::to_string(record).map_err(|e| CertsError::Invalid(e.to_string()))
}

pub fn read_issued(dir: &Path) -> Result<Vec<IssuedRecord>, CertsError> {
    read_jsonl(&dir.join(ISSUED_INDEX))
}

pub fn append_issued(dir: &Path, record: &IssuedRecord) -> Result<(), CertsError> {
    append_line(&dir.join(ISSUED_INDEX), &to_line(record)?)
}

pub fn read_revoked(dir: &Path) -> Result<Vec<RevokedRecord>, CertsError> {
    read_jsonl(&dir.join(REVOKED_INDEX))
}

/// Records the revocation of `serial` unless it is already recorded; returns whether it was new.
pub fn add_revoked(dir: &Path, serial: &str, at: OffsetDateTime) -> Result<bool, CertsError> {
    if read_revoked(dir)?.iter().any(|r| r.serial == serial) {
        return Ok(false);
    }
    let record = RevokedRecord {
        serial: serial.to_owned(),
        revoked_at: rfc3339(at),
    };
    append_line(&dir.join(REVOKED_INDEX), &to_line(&record)?)?;
    Ok(true)
}

/// What the current `crl.pem` holds: its number and its entries (empty when there is none).
#[derive(Debug, Default)]
pub struct CrlState {
    pub number: u64,
    pub revoked: Vec<Revoked>,
}

pub fn read_crl(dir: &Path) -> Result<CrlState, CertsError> {
    let path = dir.join(CRL);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CrlState::default()),
        Err(e) => return Err(CertsError::io(&path, e)),
    };
    let der = pem_block(&bytes, "X509 CRL").map_err(|m| CertsError::parse(&path, m))?;
    let (_, crl) = CertificateRevocationList::from_der(&der)
        .map_err(|e| CertsError::parse(&path, format!("unreadable CRL: {e}")))?;
    let number = crl
        .crl_number()
        .map(|n| {
            let digits = n.to_u64_digits();
            if digits.len() > 1 {
                u64::MAX
            } else {
                digits.first().copied().unwrap_or(0)
            }
        })
        .unwrap_or(0);
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| Revoked {
            serial_hex: serial_hex(r.raw_serial()),
            revoked_at: r.revocation_date.to_datetime(),
        })
        .collect();
    Ok(CrlState { number, revoked })
}

/// Re-signs `crl.pem` with every recorded revocation and the entries of the current CRL, under
/// the next CRL number. Returns the new number.
pub fn write_crl(dir: &Path, ca: &Ca) -> Result<u64, CertsError> {
    let current = read_crl(dir)?;
    let mut entries: BTreeMap<String, OffsetDateTime> = current
        .revoked
        .into_iter()
        .map(|r| (r.serial_hex, r.revoked_at))
        .collect();
    for record in read_revoked(dir)? {
        let at = OffsetDateTime::parse(&record.revoked_at, &Rfc3339)
            .map_err(|e| CertsError::parse(dir.join(REVOKED_INDEX), e.to_string()))?;
        entries.entry(record.serial).or_insert(at);
    }
    let revoked: Vec<Revoked> = entries
        .into_iter()
        .map(|(serial_hex, revoked_at)| Revoked {
            serial_hex,
            revoked_at,
        })
        .collect();
    let number = current.number.saturating_add(1);
    let pem = ca.crl_pem(&revoked, number)?;
    write_public(&dir.join(CRL), pem.as_bytes())?;
    Ok(number)
}

/// The set of revoked serials: recorded revocations and the current CRL's entries.
pub fn revoked_serials(dir: &Path) -> Result<std::collections::BTreeSet<String>, CertsError> {
    let mut serials: std::collections::BTreeSet<String> =
        read_revoked(dir)?.into_iter().map(|r| r.serial).collect();
    serials.extend(read_crl(dir)?.revoked.into_iter().map(|r| r.serial_hex));
    Ok(serials)
}

/// `dir/NAME.pem` for a certificate file name.
pub fn cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pem"))
}
