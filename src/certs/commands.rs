//! The functions behind `warden certs ...` and `warden token ...`. Each prints its report to
//! `out`; none prints a private key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::mint::{self, MintOptions, SigningKey};
use super::pki::{self, Ca, LeafOptions};
use super::store::{self, IssuedRecord};
use super::CertsError;
use crate::identity::agent_id::{peer_cert, serial_hex};
use crate::ids::AgentId;

pub use super::mint::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_TOKEN_TTL};
pub use super::pki::DEFAULT_AGENT_TTL;

const CA_COMMON_NAME: &str = "warden development CA";

/// The files of one issued agent certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFiles {
    pub agent_id: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
}

fn say(out: &mut dyn Write, text: std::fmt::Arguments<'_>) -> Result<(), CertsError> {
    out.write_fmt(text)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| CertsError::io("<output>", e))
}

/// `warden certs init`: a CA, a server certificate for localhost/127.0.0.1/::1 and an empty CRL
/// in `dir`. An existing CA is kept unless `force`.
pub fn init(dir: &Path, force: bool, out: &mut dyn Write) -> Result<(), CertsError> {
    let ca_path = dir.join(store::CA_CERT);
    if !force && (ca_path.exists() || dir.join(store::CA_KEY).exists()) {
        return Err(CertsError::Exists(ca_path));
    }
    let ca = Ca::generate(CA_COMMON_NAME, pki::DEFAULT_CA_VALIDITY)?;
    ca.save(dir)?;
    let server = ca.issue_server(&[], pki::DEFAULT_SERVER_VALIDITY)?;
    store::write_public(&dir.join(store::SERVER_CERT), server.cert_pem.as_bytes())?;
    store::write_private(&dir.join(store::SERVER_KEY), server.key_pem.as_bytes())?;
    // A new CA starts a new history: revocations and issued certificates of a replaced CA mean
    // nothing for the new one.
    for stale in [store::CRL, store::ISSUED_INDEX, store::REVOKED_INDEX] {
        remove_if_exists(&dir.join(stale))?;
    }
    store::write_crl(dir, &ca)?;
    say(
        out,
        format_args!("CA:                 {}", ca_path.display()),
    )?;
    say(
        out,
        format_args!(
            "CA key:             {} (keep it private)",
            dir.join(store::CA_KEY).display()
        ),
    )?;
    say(
        out,
        format_args!(
            "server certificate: {} (localhost, 127.0.0.1, ::1)",
            dir.join(store::SERVER_CERT).display()
        ),
    )?;
    say(
        out,
        format_args!(
            "server key:         {}",
            dir.join(store::SERVER_KEY).display()
        ),
    )?;
    say(
        out,
        format_args!("CRL:                {}", dir.join(store::CRL).display()),
    )
}

fn remove_if_exists(path: &Path) -> Result<(), CertsError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CertsError::io(path, e)),
    }
}

/// The file name for an agent id: its last path segment with every character outside
/// `[A-Za-z0-9._-]` replaced by `_`.
pub fn file_name_for(agent_id: &str) -> String {
    let last = agent_id.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    sanitize_name(last)
}

fn sanitize_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A name of dots alone would be the directory itself or its parent.
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "agent".to_owned()
    } else {
        cleaned
    }
}

/// `warden certs issue`: an agent certificate for `agent_id` valid `ttl`, written to
/// `dir/NAME.pem` and `dir/NAME-key.pem` (NAME defaults to [`file_name_for`]).
pub fn issue(
    dir: &Path,
    agent_id: &str,
    ttl: Duration,
    name: Option<&str>,
    out: &mut dyn Write,
) -> Result<IssuedFiles, CertsError> {
    let ca = Ca::load(dir)?;
    let files = issue_with(&ca, dir, agent_id, ttl, name)?;
    say(out, format_args!("certificate: {}", files.cert.display()))?;
    say(out, format_args!("key:         {}", files.key.display()))?;
    say(out, format_args!("agent id:    {}", files.agent_id))?;
    say(out, format_args!("serial:      {}", files.serial_hex))?;
    say(
        out,
        format_args!("not after:   {}", store::rfc3339(files.not_after)),
    )?;
    Ok(files)
}

fn issue_with(
    ca: &Ca,
    dir: &Path,
    agent_id: &str,
    ttl: Duration,
    name: Option<&str>,
) -> Result<IssuedFiles, CertsError> {
    if AgentId::parse(agent_id).is_err() {
        return Err(CertsError::InvalidAgentId(agent_id.to_owned()));
    }
    if ttl.is_zero() {
        return Err(CertsError::Invalid("the ttl must be positive".into()));
    }
    let name = match name {
        Some(n) => sanitize_name(n),
        None => file_name_for(agent_id),
    };
    if is_reserved(&name) {
        return Err(CertsError::Invalid(format!(
            "`{name}` would overwrite one of the CA's own files; choose another name"
        )));
    }
    let issued = ca.issue_agent(&LeafOptions::new(agent_id).ttl(ttl))?;
    let (cert, key) = issued.write(dir, &name)?;
    store::append_issued(
        dir,
        &IssuedRecord {
            serial: issued.serial_hex.clone(),
            agent_id: agent_id.to_owned(),
            not_after: store::rfc3339(issued.not_after),
            file: format!("{name}.pem"),
        },
    )?;
    Ok(IssuedFiles {
        agent_id: agent_id.to_owned(),
        cert,
        key,
        serial_hex: issued.serial_hex,
        not_after: issued.not_after,
    })
}

fn is_reserved(name: &str) -> bool {
    let as_file = format!("{name}.pem");
    let as_key = format!("{name}-key.pem");
    [
        store::CA_CERT,
        store::CA_KEY,
        store::SERVER_CERT,
        store::SERVER_KEY,
        store::CRL,
        store::TOKEN_KEY,
        store::TOKEN_PUB,
    ]
    .iter()
    .any(|reserved| *reserved == as_file || *reserved == as_key)
}

/// `warden certs issue --config`: one certificate for each exact agent id of the config; the
/// patterns (ids with `*`) are reported as skipped.
pub fn issue_from_config(
    dir: &Path,
    config_path: &Path,
    ttl: Duration,
    out: &mut dyn Write,
) -> Result<Vec<IssuedFiles>, CertsError> {
    let text = store::read_string(config_path)?;
    let config: crate::config::schema::ConfigFile =
        serde_saphyr::from_str(&text).map_err(|e| CertsError::parse(config_path, e.to_string()))?;
    let ca = Ca::load(dir)?;
    let mut issued = Vec::new();
    for agent in &config.agents {
        if agent.id.contains('*') {
            say(out, format_args!("skipped {} (a pattern)", agent.id))?;
            continue;
        }
        let files = issue_with(&ca, dir, &agent.id, ttl, None)?;
        say(
            out,
            format_args!(
                "issued  {} -> {} (serial {}, not after {})",
                files.agent_id,
                files.cert.display(),
                files.serial_hex,
                store::rfc3339(files.not_after)
            ),
        )?;
        issued.push(files);
    }
    Ok(issued)
}

/// `warden certs revoke`: adds the certificate's serial to the revoked set and re-signs
/// `dir/crl.pem`. Revoking twice changes nothing but the CRL's number and dates.
pub fn revoke(dir: &Path, cert_file: &Path, out: &mut dyn Write) -> Result<String, CertsError> {
    let ca = Ca::load(dir)?;
    let der = store::read_cert_der(cert_file)?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| CertsError::parse(cert_file, format!("unreadable certificate: {e}")))?;
    if !issued_by(&cert, &ca)? {
        return Err(CertsError::Invalid(format!(
            "{} was not issued by the CA in {}",
            cert_file.display(),
            dir.display()
        )));
    }
    let serial = serial_hex(cert.raw_serial());
    let new = store::add_revoked(dir, &serial, OffsetDateTime::now_utc())?;
    let number = store::write_crl(dir, &ca)?;
    let what = if new { "revoked" } else { "already revoked" };
    say(
        out,
        format_args!(
            "{what}: serial {serial}; {} re-signed (CRL number {number})",
            dir.join(store::CRL).display()
        ),
    )?;
    Ok(serial)
}

/// Whether `ca` issued `cert`: the issuer name matches the CA's subject, and the authority key
/// id matches the CA's subject key id (two development CAs share a name).
fn issued_by(cert: &X509Certificate<'_>, ca: &Ca) -> Result<bool, CertsError> {
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der())
        .map_err(|e| CertsError::Invalid(format!("unreadable CA certificate: {e}")))?;
    if cert.issuer().as_raw() != ca_cert.subject().as_raw() {
        return Ok(false);
    }
    Ok(match (authority_key_id(cert), subject_key_id(&ca_cert)) {
        (Some(aki), Some(ski)) => aki == ski,
        _ => true,
    })
}

fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0),
            _ => None,
        })
}

/// `warden certs list`: serial, agent id, not-after and revoked for every issued certificate.
pub fn list(dir: &Path, out: &mut dyn Write) -> Result<(), CertsError> {
    if !dir.join(store::CA_CERT).exists() {
        return Err(CertsError::NoCa(dir.join(store::CA_CERT)));
    }
    let issued = store::read_issued(dir)?;
    let revoked = store::revoked_serials(dir)?;
    let id_width = issued
        .iter()
        .map(|r| r.agent_id.len())
        .max()
        .unwrap_or(0)
        .max("AGENT ID".len());
    say(
        out,
        format_args!(
            "{:<32}  {:<id_width$}  {:<25}  REVOKED",
            "SERIAL", "AGENT ID", "NOT AFTER"
        ),
    )?;
    for record in &issued {
        let flag = if revoked.contains(&record.serial) {
            "yes"
        } else {
            "no"
        };
        say(
            out,
            format_args!(
                "{:<32}  {:<id_width$}  {:<25}  {flag}",
                record.serial, record.agent_id, record.not_after
            ),
        )?;
    }
    Ok(())
}

/// `warden token mint`: prints a token for `agent_id` bound to `cert_file`, signed with
/// `key_file` (ES256 for a P-256 key, EdDSA for Ed25519). The certificate must carry that agent
/// id, so that a typo does not yield a token the proxy will refuse later for a puzzling reason.
pub fn token_mint(
    key_file: &Path,
    agent_id: &str,
    cert_file: &Path,
    ttl: Duration,
    audience: &str,
    issuer: &str,
    out: &mut dyn Write,
) -> Result<String, CertsError> {
    let key = SigningKey::from_pem(&store::read_string(key_file)?)?;
    let der = store::read_cert_der(cert_file)?;
    let id =
        AgentId::parse(agent_id).map_err(|_| CertsError::InvalidAgentId(agent_id.to_owned()))?;
    let cert = peer_cert(&der, id.trust_domain())
        .map_err(|e| CertsError::parse(cert_file, format!("no usable agent id: {e}")))?;
    if cert.agent_id != id {
        return Err(CertsError::Token(format!(
            "{} belongs to {}, not {agent_id}",
            cert_file.display(),
            cert.agent_id
        )));
    }
    let mut options = MintOptions::new(agent_id);
    options.ttl = ttl;
    options.audience = audience.to_owned();
    options.issuer = issuer.to_owned();
    let token = mint::mint_token(&key, &der, &options)?;
    say(out, format_args!("{token}"))?;
    Ok(token)
}

/// `warden token keygen`: the development token signing pair, `dir/token-signing-key.pem`
/// (PKCS#8 P-256, mode 0600) and `dir/token-signing-pub.pem` (SPKI). Existing files are kept
/// unless `force`.
pub fn token_keygen(dir: &Path, force: bool, out: &mut dyn Write) -> Result<(), CertsError> {
    let key_path = dir.join(store::TOKEN_KEY);
    let pub_path = dir.join(store::TOKEN_PUB);
    if !force && key_path.exists() {
        return Err(CertsError::Exists(key_path));
    }
    store::create_dir(dir)?;
    let (private_pem, public_pem) = mint::generate_signing_pair(false)?;
    store::write_private(&key_path, private_pem.as_bytes())?;
    store::write_public(&pub_path, public_pem.as_bytes())?;
    say(
        out,
        format_args!("signing key: {} (keep it private)", key_path.display()),
    )?;
    say(out, format_args!("public key:  {}", pub_path.display()))
}

#[cfg(test)]
mod tests;
