//! A small development CA: ECDSA P-256 keys, explicit validity on every certificate, random
//! 16-byte serials, server and agent leaves, and CRLs.
//!
//! The same type serves `warden certs`, the demo and the tests, which need every hostile variant
//! of an agent certificate (expired, not yet valid, no or several URI SANs, no clientAuth EKU).

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::string::PrintableString;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::store;
use super::CertsError;
use crate::identity::agent_id::serial_hex;

/// Agent certificates live a day unless asked otherwise: short enough that a leaked key expires
/// soon, long enough for a development session.
pub const DEFAULT_AGENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The development CA lives ten years.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);
/// The development server certificate lives a little over a year.
pub const DEFAULT_SERVER_VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);
/// A CRL announces its successor within a week.
pub const CRL_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Leaves start a minute in the past so that a peer whose clock lags slightly still accepts them.
const BACKDATE: Duration = Duration::from_secs(60);

/// A certificate and its freshly generated private key.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    /// Uppercase hex, as [`crate::identity::agent_id::PeerCert::serial_hex`] reads it back.
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// Writes `dir/NAME.pem` and `dir/NAME-key.pem` (the key readable by its owner only) and
    /// returns both paths.
    pub fn write(
        &self,
        dir: &Path,
        name: &str,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf), CertsError> {
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}-key.pem"));
        store::write_public(&cert_path, self.cert_pem.as_bytes())?;
        store::write_private(&key_path, self.key_pem.as_bytes())?;
        Ok((cert_path, key_path))
    }
}

/// What an agent certificate looks like. [`LeafOptions::new`] gives the well-formed default:
/// one URI SAN (the agent id), clientAuth, valid from now for [`DEFAULT_AGENT_TTL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafOptions {
    pub agent_id: String,
    /// Validity from now, used unless `not_before`/`not_after` are set.
    pub ttl: Duration,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// URI SANs added after the agent id (or alone, with `no_uri_san`).
    pub extra_uri_sans: Vec<String>,
    /// Leaves the agent id out of the URI SANs (it still goes into the CN).
    pub no_uri_san: bool,
    /// `false` gives an EKU of serverAuth only.
    pub client_auth_eku: bool,
    pub dns_names: Vec<String>,
    /// Subject CN; defaults to the agent id's last path segment.
    pub common_name: Option<String>,
}

impl LeafOptions {
    pub fn new(agent_id: impl Into<String>) -> Self {
        LeafOptions {
            agent_id: agent_id.into(),
            ttl: DEFAULT_AGENT_TTL,
            not_before: None,
            not_after: None,
            extra_uri_sans: Vec::new(),
            no_uri_san: false,
            client_auth_eku: true,
            dns_names: Vec::new(),
            common_name: None,
        }
    }

    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = Some(not_before);
        self.not_after = Some(not_after);
        self
    }

    /// Valid an hour, ending `ago` before now.
    pub fn expired(self, ago: Duration) -> Self {
        let end = OffsetDateTime::now_utc() - ago;
        self.validity(end - time::Duration::HOUR, end)
    }

    /// Valid an hour, starting `after` from now.
    pub fn not_yet_valid(self, after: Duration) -> Self {
        let start = OffsetDateTime::now_utc() + after;
        self.validity(start, start + time::Duration::HOUR)
    }

    pub fn extra_uri_san(mut self, uri: impl Into<String>) -> Self {
        self.extra_uri_sans.push(uri.into());
        self
    }

    pub fn without_uri_san(mut self) -> Self {
        self.no_uri_san = true;
        self
    }

    pub fn without_client_auth(mut self) -> Self {
        self.client_auth_eku = false;
        self
    }

    pub fn dns_name(mut self, name: impl Into<String>) -> Self {
        self.dns_names.push(name.into());
        self
    }

    pub fn common_name(mut self, cn: impl Into<String>) -> Self {
        self.common_name = Some(cn.into());
        self
    }
}

/// A revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial_hex: String,
    pub revoked_at: OffsetDateTime,
}

/// A certificate authority: its certificate and signing key.
pub struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    key: KeyPair,
    /// Only the subject, key usages and key-id method are read from these: they are what a
    /// signature by this CA needs.
    params: CertificateParams,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is deliberately absent.
        f.debug_struct("Ca")
            .field("subject", &self.params.distinguished_name)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA valid from now for `validity`.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Ca, CertsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params(dn_cn(common_name));
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + to_time(validity)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key,
            params,
        })
    }

    /// Loads `dir/ca.pem` and `dir/ca-key.pem`.
    pub fn load(dir: &Path) -> Result<Ca, CertsError> {
        let cert_path = dir.join(store::CA_CERT);
        let key_path = dir.join(store::CA_KEY);
        if !cert_path.exists() {
            return Err(CertsError::NoCa(cert_path));
        }
        let cert_pem = store::read_string(&cert_path)?;
        let key_pem = store::read_string(&key_path)?;
        Ca::from_pem(&cert_pem, &key_pem).map_err(|message| {
            CertsError::parse(
                &cert_path,
                format!("{message} (with {})", key_path.display()),
            )
        })
    }

    /// Builds a CA from its PEM certificate and PEM (PKCS#8) key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, String> {
        let cert_der = store::pem_block(cert_pem.as_bytes(), "CERTIFICATE")?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| "unreadable CA key".to_owned())?;
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| format!("unreadable CA certificate: {e}"))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err("the CA key does not belong to the CA certificate".into());
        }
        let mut params = ca_params(dn_from_x509(&cert)?);
        params.not_before = cert.validity().not_before.to_datetime();
        params.not_after = cert.validity().not_after.to_datetime();
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            key,
            params,
        })
    }

    /// Writes `dir/ca.pem` and `dir/ca-key.pem` (mode 0600), creating `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), CertsError> {
        store::create_dir(dir)?;
        store::write_public(&dir.join(store::CA_CERT), self.cert_pem.as_bytes())?;
        store::write_private(
            &dir.join(store::CA_KEY),
            self.key.serialize_pem().as_bytes(),
        )
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// A server certificate for `localhost`, `127.0.0.1`, `::1` and `extra_names` (DNS names or
    /// IP addresses), with the serverAuth EKU, valid from now for `validity`.
    pub fn issue_server(
        &self,
        extra_names: &[String],
        validity: Duration,
    ) -> Result<IssuedCert, CertsError> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        names.extend(extra_names.iter().cloned());
        let mut params = leaf_params(dn_cn("localhost"));
        params.subject_alt_names = names
            .iter()
            .map(|n| san_for_name(n))
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + to_time(validity)?;
        self.sign_leaf(params)
    }

    /// An agent certificate as `options` describe it. The agent id is not validated: tests need
    /// certificates with broken ids too.
    pub fn issue_agent(&self, options: &LeafOptions) -> Result<IssuedCert, CertsError> {
        let cn = options
            .common_name
            .clone()
            .unwrap_or_else(|| default_common_name(&options.agent_id));
        let mut params = leaf_params(dn_cn(&cn));
        let mut uris = Vec::new();
        if !options.no_uri_san {
            uris.push(options.agent_id.clone());
        }
        uris.extend(options.extra_uri_sans.iter().cloned());
        for uri in uris {
            params.subject_alt_names.push(SanType::URI(uri.try_into()?));
        }
        for name in &options.dns_names {
            params.subject_alt_names.push(san_for_name(name)?);
        }
        // Without clientAuth the EKU extension still has to be there (serverAuth only): a
        // certificate without any EKU extension is valid for every purpose.
        params.extended_key_usages = if options.client_auth_eku {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        };
        let now = OffsetDateTime::now_utc();
        params.not_before = options.not_before.unwrap_or(now - BACKDATE);
        params.not_after = match options.not_after {
            Some(t) => t,
            None => now + to_time(options.ttl)?,
        };
        self.sign_leaf(params)
    }

    /// A CRL listing `revoked`, numbered `crl_number`, valid from now for [`CRL_VALIDITY`].
    pub fn crl_pem(&self, revoked: &[Revoked], crl_number: u64) -> Result<String, CertsError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex_decode(&r.serial_hex)?),
                    revocation_time: r.revoked_at,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CertsError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + to_time(CRL_VALIDITY)?,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer())?.pem()?)
    }

    fn sign_leaf(&self, mut params: CertificateParams) -> Result<IssuedCert, CertsError> {
        let serial = random_serial()?;
        let serial_hex = serial_hex(&serial.to_bytes());
        params.serial_number = Some(serial);
        // Certificates carry whole seconds; what is reported must be what is signed.
        params.not_before = whole_seconds(params.not_before);
        params.not_after = whole_seconds(params.not_after);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer())?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            serial_hex,
            not_after: params.not_after,
        })
    }
}

fn ca_params(subject: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    // Path length 0: this CA signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

fn leaf_params(subject: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

fn dn_cn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Rebuilds the CA subject so that leaves name their issuer byte for byte as the CA certificate
/// names its subject; path validation compares those bytes.
fn dn_from_x509(cert: &X509Certificate<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("multi-valued RDNs in the CA subject are not supported".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("unsupported attribute type in the CA subject")?
            .collect();
        let text = attr
            .as_str()
            .map_err(|_| "unsupported string type in the CA subject")?
            .to_owned();
        let value = match attr.attr_value().tag() {
            Tag::Utf8String => DnValue::Utf8String(text),
            Tag::PrintableString => DnValue::PrintableString(
                PrintableString::try_from(text).map_err(|e| e.to_string())?,
            ),
            _ => return Err("unsupported string type in the CA subject".into()),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn san_for_name(name: &str) -> Result<SanType, CertsError> {
    Ok(match name.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(name.to_owned().try_into()?),
    })
}

fn default_common_name(agent_id: &str) -> String {
    let last = agent_id
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("agent");
    // ub-common-name is 64 characters.
    last.chars().take(64).collect()
}

/// Whether `agent_id` may be issued by `warden certs issue` (a valid SPIFFE ID).
pub fn agent_id_is_issuable(agent_id: &str) -> bool {
    crate::ids::AgentId::parse(agent_id).is_ok()
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn to_time(d: Duration) -> Result<time::Duration, CertsError> {
    time::Duration::try_from(d).map_err(|_| CertsError::Invalid(format!("duration {d:?} too long")))
}

/// Fills `N` bytes from the operating system's secure random source (through aws-lc-rs, the
/// crypto provider of every TLS and certificate dependency here).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CertsError> {
    let mut buf = [0u8; N];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| CertsError::Invalid("no secure random source".into()))?;
    Ok(buf)
}

/// A random 16-byte serial whose first byte is in 0x01..=0x7F: positive without a padding byte
/// and never shortened by DER, so its hex is the same when read back from the certificate.
fn random_serial() -> Result<SerialNumber, CertsError> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] = (bytes[0] & 0x7F).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

pub(crate) fn hex_decode(hex: &str) -> Result<Vec<u8>, CertsError> {
    let bad = || CertsError::Invalid(format!("`{hex}` is not a hex serial"));
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

#[cfg(test)]
mod tests;
