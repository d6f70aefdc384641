//! Forward: the permitted request to its upstream (`proxy`), bodies counted and watched for
//! stalls as they stream (`body`, `stall`), and WebSocket tunnels (`websocket` checks the
//! handshake, `tunnel` splices the bytes). The forwarder takes a
//! [`Permit`](crate::pipeline::Permit) and nothing else decides where a request goes.

pub mod body;
pub mod proxy;
pub mod rpc;
pub mod stall;
mod stream;
pub mod tunnel;
pub mod websocket;
