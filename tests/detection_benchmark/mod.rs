//! The simulation behind the detection benchmark: a seeded fleet, the attacks, the tallies.

pub mod attacks;
pub mod catalogue;
pub mod endpoint;
pub mod population;
pub mod report;
pub mod request;
pub mod rng;
pub mod tally;

pub const HOUR: f64 = 3600.0;
pub const DAY: f64 = 24.0 * HOUR;
