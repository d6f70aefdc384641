//! The closed set of outcomes. Each refusal reason is the string the contract names: it is the
//! JSON `error`, the audit `reason` and the metric label, so it is spelt once, here.

use std::fmt;

use http::StatusCode;

/// Why a request was refused (or `Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Ok,
    NoIdentity,
    UnknownAgent,
    TokenMissing,
    TokenInvalid,
    TokenNotBound,
    Quarantined,
    RateLimited,
    BadRequest,
    NoRoute,
    Segmentation,
    Denied,
    NoMatchingRule,
    UpstreamUnavailable,
    UpstreamTimeout,
    HeadersTooLarge,
    BodyTooLarge,
    RequestTimeout,
}

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::Ok,
        Reason::NoIdentity,
        Reason::UnknownAgent,
        Reason::TokenMissing,
        Reason::TokenInvalid,
        Reason::TokenNotBound,
        Reason::Quarantined,
        Reason::RateLimited,
        Reason::BadRequest,
        Reason::NoRoute,
        Reason::Segmentation,
        Reason::Denied,
        Reason::NoMatchingRule,
        Reason::UpstreamUnavailable,
        Reason::UpstreamTimeout,
        Reason::HeadersTooLarge,
        Reason::BodyTooLarge,
        Reason::RequestTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::NoIdentity => "no_identity",
            Reason::UnknownAgent => "unknown_agent",
            Reason::TokenMissing => "token_missing",
            Reason::TokenInvalid => "token_invalid",
            Reason::TokenNotBound => "token_not_bound",
            Reason::Quarantined => "quarantined",
            Reason::RateLimited => "rate_limited",
            Reason::BadRequest => "bad_request",
            Reason::NoRoute => "no_route",
            Reason::Segmentation => "segmentation",
            Reason::Denied => "denied",
            Reason::NoMatchingRule => "no_matching_rule",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::BodyTooLarge => "body_too_large",
            Reason::RequestTimeout => "request_timeout",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Reason::Ok => StatusCode::OK,
            Reason::NoIdentity
            | Reason::UnknownAgent
            | Reason::Quarantined
            | Reason::Segmentation
            | Reason::Denied
            | Reason::NoMatchingRule => StatusCode::FORBIDDEN,
            Reason::TokenMissing | Reason::TokenInvalid | Reason::TokenNotBound => {
                StatusCode::UNAUTHORIZED
            }
            Reason::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Reason::BadRequest => StatusCode::BAD_REQUEST,
            Reason::NoRoute => StatusCode::NOT_FOUND,
            Reason::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Reason::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The decision layer that produces this reason (what `explain` prints).
    pub fn layer(self) -> &'static str {
        match self {
            Reason::Ok => "rules",
            Reason::NoIdentity | Reason::UnknownAgent => "identity",
            Reason::TokenMissing | Reason::TokenInvalid | Reason::TokenNotBound => "token",
            Reason::Quarantined | Reason::RateLimited => "admit",
            Reason::BadRequest | Reason::HeadersTooLarge | Reason::BodyTooLarge => "request",
            Reason::NoRoute => "route",
            Reason::Segmentation => "segmentation",
            Reason::Denied | Reason::NoMatchingRule => "rules",
            Reason::UpstreamUnavailable | Reason::UpstreamTimeout | Reason::RequestTimeout => {
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
                | Reason::Segmentation
                | Reason::Denied
                | Reason::NoMatchingRule
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    pub role: u32,
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
