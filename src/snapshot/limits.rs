//! Connection and request limits with their defaults (SPEC section 2, `limits`).

use std::time::Duration;

use crate::config::schema::LimitsSection;

/// Connection and request limits, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_request_header_bytes: usize,
    pub max_request_body_bytes: u64,
    pub handshake_timeout: Duration,
    pub max_pending_handshakes: usize,
    pub max_in_flight_per_agent: usize,
    pub max_streams_per_connection: u32,
    pub body_stall_timeout: Duration,
    pub max_rpc_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            max_request_header_bytes: 16 * 1024,
            max_request_body_bytes: 10 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(5),
            max_pending_handshakes: 1024,
            max_in_flight_per_agent: 256,
            max_streams_per_connection: 100,
            body_stall_timeout: Duration::from_secs(30),
            max_rpc_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    pub fn from_config(l: &LimitsSection) -> Self {
        let d = Limits::default();
        let dur = |v: Option<crate::config::units::Dur>, d: Duration| v.map_or(d, |x| x.0);
        Limits {
            max_connections: l.max_connections.unwrap_or(d.max_connections),
            header_read_timeout: dur(l.header_read_timeout, d.header_read_timeout),
            idle_timeout: dur(l.idle_timeout, d.idle_timeout),
            request_timeout: dur(l.request_timeout, d.request_timeout),
            max_request_header_bytes: l
                .max_request_header_bytes
                .map_or(d.max_request_header_bytes, |x| {
                    usize::try_from(x.0).unwrap_or(usize::MAX)
                }),
            max_request_body_bytes: l
                .max_request_body_bytes
                .map_or(d.max_request_body_bytes, |x| x.0),
            handshake_timeout: dur(l.handshake_timeout, d.handshake_timeout),
            max_pending_handshakes: l.max_pending_handshakes.unwrap_or(d.max_pending_handshakes),
            max_in_flight_per_agent: l
                .max_in_flight_per_agent
                .unwrap_or(d.max_in_flight_per_agent),
            max_streams_per_connection: l
                .max_streams_per_connection
                .unwrap_or(d.max_streams_per_connection),
            body_stall_timeout: dur(l.body_stall_timeout, d.body_stall_timeout),
            max_rpc_bytes: l.max_rpc_bytes.map_or(d.max_rpc_bytes, |x| x.0),
        }
    }
}
