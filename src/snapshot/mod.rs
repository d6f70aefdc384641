//! The compiled configuration: everything the request path reads, built from a validated config
//! (`compile`) and swapped in whole on a reload (`reload`). It is the one module that sees every
//! layer: each layer owns its types, and this is where the config's words become them.

pub mod compile;
mod limits;
pub mod protocol;
pub mod reload;

pub use compile::{compile, AgentPolicy, Snapshot, TelemetrySettings};
pub use limits::Limits;
pub use reload::{build_snapshot, ConfigHandle};
