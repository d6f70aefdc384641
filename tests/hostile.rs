//! What a compromised agent sends, as raw bytes over real mTLS, HTTP/1.1 and HTTP/2: the bypass
//! classes of the threat list and their neighbours. Each case asserts warden's answer and exactly
//! what the upstream received (method, target, body, the headers that matter), or that it
//! received nothing at all. New shapes are a line or a few in `hostile/h1*.rs` or `hostile/h2.rs`.

#[path = "hostile/fixture.rs"]
mod fixture;
#[path = "hostile/h1.rs"]
mod h1;
#[path = "hostile/h1_framing.rs"]
mod h1_framing;
#[path = "hostile/h1_headers.rs"]
mod h1_headers;
#[path = "hostile/h2.rs"]
mod h2;
mod support;

use fixture::Answer;

pub const OK: Answer = Answer::Status(200, "");
pub const BAD: Answer = Answer::Status(400, "bad_request");
pub const DENIED: Answer = Answer::Status(403, "denied");
pub const NO_RULE: Answer = Answer::Status(403, "no_matching_rule");
pub const NO_ROUTE: Answer = Answer::Status(404, "no_route");
/// A refused HEAD: the status says it, a HEAD answer has no body to name the reason.
pub const HEAD_BAD: Answer = Answer::Status(400, "");
pub const HEAD_DENIED: Answer = Answer::Status(403, "");
