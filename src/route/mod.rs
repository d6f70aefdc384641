//! Route: make the request target safe to judge (`normalize`, `host`, `shape`, `ambiguous`) and
//! pick the route (`table`).

pub mod ambiguous;
pub mod host;
pub mod normalize;
pub mod shape;
pub mod table;
