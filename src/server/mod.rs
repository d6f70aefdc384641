//! The agent-facing server: accept loop (`listener`), one connection's life (`connection`), one
//! request's way (`service`), and the record step (`record`, `body`).

pub mod body;
pub mod connection;
pub mod ids;
pub mod listener;
pub mod record;
pub mod runtime;
pub mod service;

pub use runtime::Runtime;
