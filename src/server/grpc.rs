//! Refusals a gRPC client can read. gRPC clients take the outcome of a call from `grpc-status`,
//! and answer any HTTP status but 200 with a status of their own making that loses the reason
//! (`UNKNOWN` or `UNAVAILABLE`, "Received http2 header with status: 403"). So a refused gRPC
//! call (`content-type: application/grpc...`) is answered as gRPC servers answer a failed call:
//! HTTP 200, a trailers-only response with `grpc-status` (7 PERMISSION_DENIED for a policy
//! refusal) and `grpc-message` carrying warden's reason, `x-request-id` beside them. The audit
//! record and the metrics keep the refusal's own status (403, 429, ...).

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::decision::Reason;

/// Whether the request is a gRPC call.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start();
            ct.len() >= 16
                && ct.as_bytes()[..16].eq_ignore_ascii_case(b"application/grpc")
                && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';'))
        })
}

/// The gRPC status code for a refusal (codes as in grpc/doc/statuscodes.md).
pub fn status_code(reason: Reason) -> u8 {
    match reason {
        Reason::NoIdentity
        | Reason::UnknownAgent
        | Reason::Quarantined
        | Reason::Segmentation
        | Reason::Denied
        | Reason::NoMatchingRule
        | Reason::SessionMismatch
        | Reason::NotOwner => 7, // PERMISSION_DENIED
        Reason::TokenMissing | Reason::TokenInvalid | Reason::TokenNotBound => 16, // UNAUTHENTICATED
        Reason::RateLimited
        | Reason::ConcurrencyLimited
        | Reason::HeadersTooLarge
        | Reason::BodyTooLarge => 8, // RESOURCE_EXHAUSTED
        Reason::BadRequest => 3, // INVALID_ARGUMENT
        Reason::NoRoute => 12,   // UNIMPLEMENTED
        Reason::UpstreamUnavailable | Reason::UpstreamBusy | Reason::ClusterUnavailable => 14, // UNAVAILABLE
        Reason::UpstreamTimeout | Reason::BodyStalled => 4, // DEADLINE_EXCEEDED
    }
}

/// A trailers-only gRPC response for `reason`, with `body` (which must be empty).
pub fn refusal<B>(
    reason: Reason,
    request_id: &str,
    retry_after_ms: Option<u128>,
    body: B,
) -> Response<B> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "grpc-status",
        HeaderValue::from(u16::from(status_code(reason))),
    );
    // Reasons are `[a-z_]`: nothing to percent-encode.
    h.insert("grpc-message", HeaderValue::from_static(reason.as_str()));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(crate::headers::X_REQUEST_ID, v);
    }
    if let Some(ms) = retry_after_ms {
        // gRPC's own back-off hint (A6 retry pushback).
        h.insert(
            "grpc-retry-pushback-ms",
            HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX)),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(&ct("application/grpc")));
        assert!(is_grpc(&ct("application/grpc+proto")));
        assert!(is_grpc(&ct("Application/GRPC; charset=utf-8")));
        assert!(!is_grpc(&ct("application/grpc-web")));
        assert!(!is_grpc(&ct("application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn policy_refusals_are_permission_denied_with_the_reason() {
        let r = refusal(Reason::Denied, "req-1", None, ());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert_eq!(r.headers()["grpc-message"], "denied");
        assert_eq!(r.headers()["x-request-id"], "req-1");
        assert_eq!(status_code(Reason::TokenMissing), 16);
        assert_eq!(status_code(Reason::UpstreamTimeout), 4);
        let r = refusal(Reason::RateLimited, "req-2", Some(1500), ());
        assert_eq!(r.headers()["grpc-status"], "8");
        assert_eq!(r.headers()["grpc-retry-pushback-ms"], "1500");
    }
}
