//! The decision: one function, [`decide`], for the whole order of the contract's section 3, shared
//! by `serve` (which then forwards the [`Permit`]) and `explain` (which prints it).
//!
//! ```text
//! identity -> token -> admit (quarantine, rate, in flight) -> shape -> route -> segmentation
//!          -> rules (on an MCP/A2A route: read the message, session, rules on the message,
//!             task owner, tool pin) -> shadow
//! ```
//!
//! Each step is a call into the layer that owns it; each refusal is a [`Refusal`] naming its
//! [`Reason`](crate::decision::Reason). Live state (quarantine, rate buckets) enters only through
//! the [`Admission`] the caller passes: the proxy's reads and updates the agent's state, `explain`'s
//! is given or "not evaluated".

mod admission;
mod caller;
mod decide;
mod message;
mod outcome;
mod request;

pub use admission::{Admission, AdmitOutcome, GivenAdmission, RpcLive};
pub use caller::Caller;
pub use decide::decide;
pub use outcome::{Judged, Permit, Refusal, Trace};
pub use request::{BodyError, GivenBody, MessageBody, RequestParts};
