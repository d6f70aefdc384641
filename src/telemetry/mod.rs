//! Telemetry: Prometheus metrics (`metrics`) and the tamper-evident audit log (`audit`).

pub mod audit;
pub mod metrics;
