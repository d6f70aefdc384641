//! Forward: what reaches the upstream (`headers`), over which connection (`upstream`), streamed
//! both ways (`proxy`).

pub mod headers;
pub mod proxy;
pub mod upstream;
