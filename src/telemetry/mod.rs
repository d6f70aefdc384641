//! Telemetry: Prometheus metrics (`metrics`, with `process` and `cert_expiry` feeding it), the
//! tamper-evident audit log (`audit`), process logs (`logging`) and readiness (`readiness`).

pub mod audit;
pub mod cert_expiry;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod readiness;
