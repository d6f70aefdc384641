//! Authorise: segmentation (may this agent's roles reach the route's upstream at all?) and rules
//! (deny wins, first allow permits, default deny). [`decide`] is the one decision function that
//! `serve` and `explain` share.

pub mod decide;
pub mod pattern;
pub mod rules;
pub mod when;

pub use decide::{decide_request, Outcome, RequestFacts};
