//! The closed set of outcomes. Each refusal reason is the string the contract names: it is the
//! JSON `error`, the audit `reason` and the metric label, so it is spelt once, here.

use std::fmt;

use http::StatusCode;

use crate::ids::RoleId;

/// Why a request was refused. There is no "ok" reason: an allowed request carries a permit, not
/// a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NoIdentity,
    UnknownAgent,
    TokenMissing,
    TokenInvalid,
    TokenNotBound,
    Quarantined,
    RateLimited,
    ConcurrencyLimited,
    BadRequest,
    HeadersTooLarge,
    BodyTooLarge,
    /// The agent's request body made no progress for `limits.body_stall_timeout`.
    BodyStalled,
    NoRoute,
    Segmentation,
    Denied,
    NoMatchingRule,
    /// An MCP session id presented by an identity other than the one that began the session.
    SessionMismatch,
    /// An A2A task of another agent, or one warden saw no agent create.
    NotOwner,
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamBusy,
    ClusterUnavailable,
}

impl Reason {
    pub const ALL: [Reason; 22] = [
        Reason::NoIdentity,
        Reason::UnknownAgent,
        Reason::TokenMissing,
        Reason::TokenInvalid,
        Reason::TokenNotBound,
        Reason::Quarantined,
        Reason::RateLimited,
        Reason::ConcurrencyLimited,
        Reason::BadRequest,
        Reason::HeadersTooLarge,
        Reason::BodyTooLarge,
        Reason::BodyStalled,
        Reason::NoRoute,
        Reason::Segmentation,
        Reason::Denied,
        Reason::NoMatchingRule,
        Reason::SessionMismatch,
        Reason::NotOwner,
        Reason::UpstreamUnavailable,
        Reason::UpstreamTimeout,
        Reason::UpstreamBusy,
        Reason::ClusterUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoIdentity => "no_identity",
            Reason::UnknownAgent => "unknown_agent",
            Reason::TokenMissing => "token_missing",
            Reason::TokenInvalid => "token_invalid",
            Reason::TokenNotBound => "token_not_bound",
            Reason::Quarantined => "quarantined",
            Reason::RateLimited => "rate_limited",
            Reason::ConcurrencyLimited => "concurrency_limited",
            Reason::BadRequest => "bad_request",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyStalled => "body_stalled",
            Reason::NoRoute => "no_route",
            Reason::Segmentation => "segmentation",
            Reason::Denied => "denied",
            Reason::NoMatchingRule => "no_matching_rule",
            Reason::SessionMismatch => "session_mismatch",
            Reason::NotOwner => "not_owner",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::UpstreamBusy => "upstream_busy",
            Reason::ClusterUnavailable => "cluster_unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Reason::NoIdentity
            | Reason::UnknownAgent
            | Reason::Quarantined
            | Reason::Segmentation
            | Reason::Denied
            | Reason::NoMatchingRule
            | Reason::SessionMismatch
            | Reason::NotOwner => StatusCode::FORBIDDEN,
            Reason::TokenMissing | Reason::TokenInvalid | Reason::TokenNotBound => {
                StatusCode::UNAUTHORIZED
            }
            Reason::RateLimited | Reason::ConcurrencyLimited => StatusCode::TOO_MANY_REQUESTS,
            Reason::BadRequest => StatusCode::BAD_REQUEST,
            Reason::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::BodyStalled => StatusCode::REQUEST_TIMEOUT,
            Reason::NoRoute => StatusCode::NOT_FOUND,
            Reason::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Reason::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::UpstreamBusy | Reason::ClusterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The decision layer that produces this reason (what `explain` prints).
    pub fn layer(self) -> &'static str {
        match self {
            Reason::NoIdentity | Reason::UnknownAgent => "identity",
            Reason::TokenMissing | Reason::TokenInvalid | Reason::TokenNotBound => "token",
            Reason::Quarantined
            | Reason::RateLimited
            | Reason::ConcurrencyLimited
            | Reason::ClusterUnavailable => "admit",
            Reason::BadRequest
            | Reason::HeadersTooLarge
            | Reason::BodyTooLarge
            | Reason::BodyStalled => "request",
            Reason::NoRoute => "route",
            Reason::Segmentation => "segmentation",
            Reason::Denied
            | Reason::NoMatchingRule
            | Reason::SessionMismatch
            | Reason::NotOwner => "rules",
            Reason::UpstreamUnavailable | Reason::UpstreamTimeout | Reason::UpstreamBusy => {
                "upstream"
            }
        }
    }

    /// Whether shadow mode records this refusal instead of enforcing it (steps 3, 5 and 6).
    pub fn shadowable(self) -> bool {
        matches!(
            self,
            Reason::Quarantined
                | Reason::RateLimited
                | Reason::ConcurrencyLimited
                | Reason::Segmentation
                | Reason::Denied
                | Reason::NoMatchingRule
                | Reason::SessionMismatch
                | Reason::NotOwner
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string an allowed request records where a refusal records its reason.
pub const ALLOWED: &str = "ok";

/// `enforce` decides and enforces; `shadow` decides and records, but lets steps 3-6 through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
}

/// The verdict as recorded: enforced allow, enforced deny, or a deny that shadow mode let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow,
    Deny,
    ShadowDeny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::ShadowDeny => "shadow_deny",
        }
    }
}

/// Which rule decided: `role/allow[N]` or `role/deny[N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleRef {
    pub role: RoleId,
    pub kind: RuleKind,
    pub index: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Allow,
    Deny,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
        }
    }
}
