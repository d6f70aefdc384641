//! Telemetry: the tamper-evident audit log.

pub mod audit;
