//! The agent-facing server: accept loop (`listener`), one connection's life (`connection`), one
//! request's way (`service`: decide, forward, record), live admission state (`admission`), and the
//! record step (`record`); refusals in gRPC's own terms for gRPC calls (`grpc`).

pub mod admission;
pub mod connection;
pub mod grpc;
pub mod ids;
pub mod listener;
pub mod record;
pub mod runtime;
pub mod service;

pub use runtime::Runtime;
