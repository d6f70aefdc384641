//! Configuration: YAML -> serde structs (`schema`) -> validated (`validate`, with key paths and
//! positions from `load`) -> compiled into an immutable [`Snapshot`](compile::Snapshot).

pub mod compile;
pub mod files;
pub mod load;
pub mod peek;
pub mod reload;
pub mod schema;
pub mod suggest;
pub mod units;
pub mod validate;
