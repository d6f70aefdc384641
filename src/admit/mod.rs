//! Admit: the checks that run before any routing work (step 3 of the decision order) — quarantine,
//! rate limit, requests in flight — and the per-agent state they read.

pub mod inflight;
pub mod quarantine;
pub mod rate;

pub use inflight::{InFlight, InFlightSlot};
pub use quarantine::{Quarantine, INDEFINITE};
pub use rate::{RateLimit, TokenBucket};
