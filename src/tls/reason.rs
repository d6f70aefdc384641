//! Why a handshake failed, as a short label for `warden_tls_handshakes_total{reason}` and audit.

use rustls::{CertificateError, Error};

/// Classifies the error a TLS accept returned.
pub fn handshake_failure_reason(err: &std::io::Error) -> &'static str {
    if err.kind() == std::io::ErrorKind::TimedOut {
        return "timeout";
    }
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => "eof",
            std::io::ErrorKind::ConnectionReset => "reset",
            _ => "io",
        };
    };
    tls_error_reason(tls)
}

pub fn tls_error_reason(err: &Error) -> &'static str {
    match err {
        Error::NoCertificatesPresented => "no_client_cert",
        Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::Revoked => "revoked",
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "bad_eku"
            }
            CertificateError::BadSignature => "bad_signature",
            _ => "bad_certificate",
        },
        Error::PeerIncompatible(_) => "incompatible",
        Error::NoApplicationProtocol => "no_alpn",
        Error::AlertReceived(_) => "alert_received",
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            "protocol"
        }
        Error::InvalidMessage(_) | Error::PeerMisbehaved(_) => "protocol",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::NoCertificatesPresented,
        );
        assert_eq!(handshake_failure_reason(&io), "no_client_cert");
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::Revoked),
        );
        assert_eq!(handshake_failure_reason(&io), "revoked");
        assert_eq!(
            handshake_failure_reason(&std::io::Error::from(std::io::ErrorKind::TimedOut)),
            "timeout"
        );
    }
}
