//! Configuration: YAML -> serde structs (`schema`) -> validated (`validate`, with key paths and
//! positions from `load`). The `snapshot` module compiles the result into what the request path
//! reads.

pub mod load;
pub mod schema;
pub mod suggest;
pub mod units;
pub mod validate;
