//! Authorise: segmentation (may this agent's roles reach the route's upstream at all?) and rules
//! (deny wins, first allow permits, default deny).

pub mod decide;
pub mod rules;
pub mod when;

pub use decide::{authorize, covering, AgentGrants, AuthzDenial, Coverage, RequestFacts};
