//! A simulated request and the one place it becomes an `Observation`, so a new field on
//! `Observation` is one line here.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use warden::anomaly::{
    AgentBehaviour, AnomalySettings, Observation, ObservationContext, PeerGroup, Score,
};

use super::HOUR;

/// The simulation starts on a Monday at 00h UTC.
const START_HOUR_OF_WEEK: f64 = 0.0;

pub struct Request {
    pub upstream: &'static str,
    pub method: &'static str,
    pub path: String,
    /// The MCP tool called, handed to the engine as the proxy hands it over.
    pub tool: Option<&'static str>,
    pub status: u16,
    /// Refused by the proxy's policy rather than answered by the upstream.
    pub denied: bool,
    pub bytes_out: u64,
    pub ip: IpAddr,
    pub serial: String,
}

impl Request {
    pub fn empty() -> Self {
        Self {
            upstream: "",
            method: "",
            path: String::with_capacity(96),
            tool: None,
            status: 200,
            denied: false,
            bytes_out: 0,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            serial: String::with_capacity(16),
        }
    }

    pub fn observe(
        &self,
        behaviour: &AgentBehaviour,
        peers: Option<&Arc<PeerGroup>>,
        at: f64,
        settings: &AnomalySettings,
    ) -> Score {
        let obs = Observation {
            upstream: self.upstream,
            method: self.method,
            path: &self.path,
            status: self.status,
            denied: self.denied,
            bytes_in: 200,
            bytes_out: self.bytes_out,
            source_ip: self.ip,
            cert_serial: &self.serial,
            now: Duration::from_secs_f64(at),
            hour_of_week: hour_of_week(at),
        };
        let ctx = ObservationContext {
            tool: self.tool,
            peers,
        };
        behaviour.observe_with(&obs, &ctx, settings)
    }
}

pub fn hour_of_week(at: f64) -> u16 {
    ((START_HOUR_OF_WEEK + at / HOUR) as u64 % 168) as u16
}
