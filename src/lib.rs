//! warden: a zero-trust authenticating reverse proxy for AI agents.
//!
//! A request's way through warden follows the decision order of the product contract:
//! `accept` (TLS, identity) -> `admit` (quarantine, rate) -> `route` -> `authz` (segment, rules)
//! -> `forward` -> record (`telemetry`, `anomaly`). Each step is a module of its own; the whole
//! order is one function, `pipeline::decide`, which `serve` and `explain` share.
#![forbid(unsafe_code)]
// Input never panics the proxy: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// Ground floor: names and values every layer shares.
pub mod clock;
pub mod decision;
pub mod ids;
pub mod net;
pub mod pattern;
pub mod worker;

// Layers, in the order a request meets them; none imports a layer listed after it.
pub mod admit;
pub mod agents;
pub mod anomaly;
pub mod authz;
pub mod cluster;
pub mod headers;
pub mod identity;
pub mod protocol;
pub mod route;
pub mod telemetry;
pub mod tls;
pub mod upstream;

// The config, compiled into the snapshot the decision reads.
pub mod config;
pub mod pipeline;
pub mod snapshot;

// The request's way: forward a permit; the servers that accept, decide, forward and record.
pub mod admin;
pub mod app;
pub mod explain;
pub mod forward;
pub mod server;

// Tools around the proxy.
pub mod certs;
pub mod demo;
pub mod suggest;
