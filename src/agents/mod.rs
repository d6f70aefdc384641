//! The agents warden has seen since it started: each one's live state (admission, counters,
//! behaviour, metric handles), bounded in number.

pub mod registry;

pub use registry::{AgentRegistry, AgentState};
