//! Forward: the permitted request to its upstream (`proxy`), bodies counted as they stream
//! (`body`). The forwarder takes a [`Permit`](crate::pipeline::Permit) and nothing else decides
//! where a request goes.

pub mod body;
pub mod proxy;
