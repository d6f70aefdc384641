//! Shared by the integration tests: a PKI in a temp dir (`pki`), an upstream that records what it
//! receives (`upstream`), an mTLS agent client (`client`), a builder that starts warden
//! (`warden`), and WebSocket ends (`websocket`). Every server binds 127.0.0.1:0.
#![allow(dead_code)]

pub mod client;
pub mod fixture;
pub mod gate;
pub mod h2wire;
pub mod jwks;
pub mod keepalive;
pub mod mcp;
pub mod pki;
pub mod redis;
pub mod upstream;
pub mod wait;
pub mod warden;
pub mod websocket;
pub mod wire;

pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
