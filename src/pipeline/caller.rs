//! Who is asking: the identity the connection's certificate proved (or why it proved none).

use crate::ids::AgentId;

/// The caller of one request.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A SPIFFE id from the certificate; `thumbprint` is the certificate's SHA-256, to check a
    /// token's binding (`explain` without `--cert` has none).
    Agent {
        id: &'a AgentId,
        thumbprint: Option<&'a [u8; 32]>,
    },
    /// The certificate named no usable identity; the text says why.
    NoIdentity(&'a str),
}
