//! The agent-facing server: its threads and sockets (`workers`), the accept loop and its
//! budgets (`listener`), the TLS handshake (`handshake`), one connection's life (`connection`,
//! `conn_info`, `io`), one request's way (`service`: decide, forward, record), live admission
//! state (`admission`), the record step (`record`), WebSocket tunnels (`tunnel`), the re-check of
//! open channels after a reload (`supervise`), the records of what ends without a request
//! (`ends`), and refusals in gRPC's own terms for gRPC calls (`grpc`).

pub mod admission;
pub mod conn_info;
pub mod connection;
pub mod ends;
pub mod grpc;
pub mod handshake;
pub mod ids;
pub mod io;
pub mod listener;
pub mod message;
pub mod record;
pub mod runtime;
pub mod service;
pub mod supervise;
pub mod tunnel;
pub mod workers;

pub use runtime::Runtime;
