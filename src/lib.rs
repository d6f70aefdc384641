//! warden: a zero-trust authenticating reverse proxy for AI agents.
//!
//! A request's way through warden follows the decision order of the product contract:
//! `accept` (TLS, identity) -> `admit` (quarantine, rate) -> `route` -> `authz` (segment, rules)
//! -> `forward` -> record (`telemetry`, `anomaly`). Each step is a module of its own.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admit;
pub mod anomaly;
pub mod app;
pub mod authz;
pub mod certs;
pub mod clock;
pub mod config;
pub mod decision;
pub mod demo;
pub mod explain;
pub mod forward;
pub mod identity;
pub mod route;
pub mod server;
pub mod suggest;
pub mod telemetry;
pub mod tls;
