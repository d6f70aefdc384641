//! Route: make the request target safe to judge (`normalize`, `host`) and pick the route (`table`).

pub mod host;
pub mod normalize;
pub mod table;
