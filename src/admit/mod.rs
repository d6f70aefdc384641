//! Admit: per-agent runtime state, and the two checks that run before any routing work —
//! quarantine and rate limit (step 3 of the decision order).

pub mod rate;
pub mod registry;

pub use registry::{AgentRegistry, AgentState};
