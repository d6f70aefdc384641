//! Route: make the request target safe to judge (`normalize`, `host`, `shape`) and pick the route
//! (`table`).

pub mod host;
pub mod normalize;
pub mod shape;
pub mod table;
