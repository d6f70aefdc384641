//! The audit record a caller builds for every decision, and its JSON form.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// What the record is about: an HTTP request; a connection (refused before any request, or
/// ended); a WebSocket tunnel that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Request,
    Connection,
    Tunnel,
}

/// The outcome as the metrics label it: `allow`, `deny` or `shadow_deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Allow,
    Deny,
    /// Shadow mode: the request would have been refused but went through.
    ShadowDeny,
}

/// One decision, as the caller knows it when the request (or connection) ends.
///
/// The fields are owned so the record can cross to the writer thread; those a caller already
/// holds shared (agent id, roles, upstream and rule names from the config snapshot) are `Arc`s,
/// and fixed vocabulary (method, reason, signals) is `Cow<'static, str>`, so building one costs
/// little more than the request id and path strings. `prev_hash` and `hash` are not fields:
/// the writer adds them when it links the record into the chain (see the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// When the decision was made; written as RFC 3339 UTC with milliseconds.
    #[serde(serialize_with = "rfc3339_millis")]
    pub ts: OffsetDateTime,
    pub kind: RecordKind,
    pub request_id: String,
    pub agent: Option<Arc<str>>,
    pub roles: Arc<[Arc<str>]>,
    pub source_ip: IpAddr,
    /// Absent (null) on connection records, which have no request.
    pub method: Option<Cow<'static, str>>,
    /// Host of the request, or the TLS server name on a connection record.
    pub host: Option<String>,
    pub path: Option<String>,
    /// Index of the matching route in the config, null when none matched.
    pub route: Option<usize>,
    pub upstream: Option<Arc<str>>,
    /// The deciding rule, e.g. `inventory-agent/allow[0]`.
    pub rule: Option<Arc<str>>,
    pub decision: AuditDecision,
    /// The reason string of the contract: `ok`, `denied`, `tls_handshake`, ...
    pub reason: Cow<'static, str>,
    /// HTTP status sent; null on connection records.
    pub status: Option<u16>,
    #[serde(serialize_with = "finite")]
    pub duration_ms: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(serialize_with = "finite")]
    pub anomaly_score: f64,
    /// The anomaly engine's strongest signals, short names.
    pub signals: Vec<Cow<'static, str>>,
    /// The same signals in words an operator can act on, with what each is about; absent when
    /// none fired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signal_details: Vec<SignalDetail>,
    /// Why a connection or tunnel ended (`closed`, `idle`, `quarantined`, ...); absent on
    /// request records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<&'static str>,
    /// On MCP and A2A routes: the JSON-RPC method, the tool, resource, prompt or task it names,
    /// its id (as JSON text) and the SHA-256 of its canonical arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_method: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_target: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_id: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_sha256: Option<Box<str>>,
}

/// One anomaly signal explained: `{"signal": "mass_access", "detail": "read 57 distinct items
/// under /public/items/* in 10 s; usually 2", "subject": "/public/items/*"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalDetail {
    pub signal: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl AuditRecord {
    /// A connection record: a refused handshake from `source_ip`, with nothing request-shaped.
    pub fn connection(
        ts: OffsetDateTime,
        request_id: String,
        source_ip: IpAddr,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        AuditRecord {
            ts,
            kind: RecordKind::Connection,
            request_id,
            agent: None,
            roles: Arc::from(Vec::new()),
            source_ip,
            method: None,
            host: None,
            path: None,
            route: None,
            upstream: None,
            rule: None,
            decision: AuditDecision::Deny,
            reason: reason.into(),
            status: None,
            duration_ms: 0.0,
            bytes_in: 0,
            bytes_out: 0,
            anomaly_score: 0.0,
            signals: Vec::new(),
            signal_details: Vec::new(),
            close_reason: None,
            rpc_method: None,
            rpc_target: None,
            rpc_id: None,
            args_sha256: None,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, formatted by hand: it is on the writer's path for every record,
/// and a general formatter costs about ten times as much.
fn rfc3339_millis<S: Serializer>(ts: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let t = ts.to_offset(UtcOffset::UTC);
    let Ok(year) = u16::try_from(t.year()) else {
        // Years before 0 do not fit the fixed layout; leave them to the general formatter.
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let text = t.format(&format).map_err(serde::ser::Error::custom)?;
        return s.serialize_str(&text);
    };
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut buf[0..4], u32::from(year));
    put_digits(&mut buf[5..7], u32::from(u8::from(t.month())));
    put_digits(&mut buf[8..10], u32::from(t.day()));
    put_digits(&mut buf[11..13], u32::from(t.hour()));
    put_digits(&mut buf[14..16], u32::from(t.minute()));
    put_digits(&mut buf[17..19], u32::from(t.second()));
    put_digits(&mut buf[20..23], u32::from(t.millisecond()));
    s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
}

/// Writes `n` in decimal into `out`, right-aligned and zero-padded.
fn put_digits(out: &mut [u8], mut n: u32) {
    for digit in out.iter_mut().rev() {
        // n % 10 < 10, so the narrowing keeps the value.
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// JSON has no NaN or infinity and serde_json would write `null` where a number is expected;
/// a non-finite measure carries no information, so it is written as 0.
fn finite<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(if v.is_finite() { *v } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn connection_record_serialises_with_nulls_and_utc_millis() {
        let ts = datetime!(2025-03-04 05:06:07.891234 +02:00);
        let rec = AuditRecord::connection(
            ts,
            "r1".into(),
            "127.0.0.1".parse().unwrap(),
            "tls_handshake",
        );
        let v: serde_json::Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["ts"], "2025-03-04T03:06:07.891Z");
        assert_eq!(v["kind"], "connection");
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["reason"], "tls_handshake");
        assert!(v["status"].is_null());
        assert!(v["method"].is_null());
        assert_eq!(v["roles"], serde_json::json!([]));
    }

    #[test]
    fn non_finite_measures_are_written_as_zero() {
        let mut rec = AuditRecord::connection(
            OffsetDateTime::UNIX_EPOCH,
            "r".into(),
            "::1".parse().unwrap(),
            "tls_handshake",
        );
        rec.anomaly_score = f64::NAN;
        rec.duration_ms = f64::INFINITY;
        rec.decision = AuditDecision::ShadowDeny;
        let v: serde_json::Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["anomaly_score"], 0.0);
        assert_eq!(v["duration_ms"], 0.0);
        assert_eq!(v["decision"], "shadow_deny");
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn timestamps_keep_milliseconds_and_fall_back_for_negative_years() {
        let mut rec = AuditRecord::connection(
            datetime!(9999-12-31 23:59:59.999999 UTC),
            "r".into(),
            "::1".parse().unwrap(),
            "tls_handshake",
        );
        let v: serde_json::Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["ts"], "9999-12-31T23:59:59.999Z");
        rec.ts = datetime!(2024-02-29 01:02:03.004 UTC);
        let v: serde_json::Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["ts"], "2024-02-29T01:02:03.004Z");
        rec.ts = datetime!(-0001-01-01 00:00:00 UTC);
        let v: serde_json::Value = serde_json::to_value(&rec).unwrap();
        assert!(v["ts"].as_str().unwrap().starts_with('-'), "{}", v["ts"]);
    }
}
