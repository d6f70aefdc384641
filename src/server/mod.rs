//! The agent-facing server: accept loop (`listener`), one connection's life (`connection`), one
//! request's way (`service`: decide, forward, record), live admission state (`admission`), and the
//! record step (`record`).

pub mod admission;
pub mod connection;
pub mod ids;
pub mod listener;
pub mod record;
pub mod runtime;
pub mod service;

pub use runtime::Runtime;
