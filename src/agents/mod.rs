//! The agents warden has seen since it started: each one's live state (admission, counters,
//! behaviour, metric handles), bounded in number, and the channels they hold open.

pub mod channels;
pub mod registry;

pub use channels::{Channel, ChannelKind, ChannelRegistry, ChannelSpec, CloseReason, Revalidate};
pub use registry::{AgentRegistry, AgentState};
