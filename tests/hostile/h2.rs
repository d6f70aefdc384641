//! HTTP/2 cases: header blocks written field by field, so connection-specific headers,
//! upper-case names and conflicting authorities reach warden exactly as a hostile agent sends them.

use h2::Reason;

use crate::fixture::{got, Answer, Hostile, Up};
use crate::support::h2wire::H2Request;
use crate::{BAD, DENIED, HEAD_DENIED, NO_RULE, OK};

/// A malformed HTTP/2 request is a stream error: reset, never answered, never forwarded.
const MALFORMED: Answer = Answer::Reset(Reason::PROTOCOL_ERROR);
/// A field the HPACK decoder cannot turn into a header (upper case, CR or LF) ends the connection.
const GOAWAY: Answer = Answer::GoAway(Reason::PROTOCOL_ERROR);

fn get(path: &str) -> H2Request {
    H2Request::new("GET", path)
}

#[tokio::test]
async fn h2_methods_and_slashes() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    t.h2(
        "lower-case delete",
        H2Request::new("delete", "/public/x"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2(
        "lower-case get",
        H2Request::new("get", "/public/x"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2(
        "DELETE denied",
        H2Request::new("DELETE", "/public/x"),
        DENIED,
        n.clone(),
    )
    .await;
    t.h2(
        "HEAD covered by GET",
        H2Request::new("HEAD", "/public/x"),
        OK,
        got("HEAD", "/public/x"),
    )
    .await;
    t.h2(
        "HEAD on denied path/",
        H2Request::new("HEAD", "/public/admin/"),
        HEAD_DENIED,
        n.clone(),
    )
    .await;
    t.h2(
        "OPTIONS",
        H2Request::new("OPTIONS", "/public/x"),
        NO_RULE,
        n.clone(),
    )
    .await;
    t.h2(
        "_method in query",
        H2Request::new("POST", "/public/forms/a?_method=DELETE"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2(
        "CONNECT",
        H2Request::bare()
            .field(":method", "CONNECT")
            .field(":authority", "app.internal:443"),
        BAD,
        n.clone(),
    )
    .await;
    for path in [
        "/public/admin/",
        "/public/users/42/",
        "/public/ADMIN",
        "/public/x/%2e%2e/admin",
    ] {
        t.h2(path, get(path), DENIED, n.clone()).await;
    }
    for path in [
        "/public/admin./",
        "/public/admin%2f",
        "/public/..;/admin",
        "/public\\admin",
        "/public/%252e",
    ] {
        t.h2(path, get(path), BAD, n.clone()).await;
    }
    t.h2(
        "normalised path forwarded",
        get("/public/./a//b/%7E"),
        OK,
        got("GET", "/public/a/b/~"),
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn h2_connection_specific_and_upgrade_headers() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    let malformed = [
        ("upgrade", "h2c"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("te", "gzip"),
        ("te", "trailers, gzip"),
    ];
    for (name, value) in malformed {
        let label = format!("{name}: {value}");
        t.h2(
            &label,
            get("/public/x").field(name, value),
            MALFORMED,
            n.clone(),
        )
        .await;
    }
    t.h2(
        "http2-settings",
        get("/public/x").field("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2(
        "te: trailers",
        get("/public/x").field("te", "trailers"),
        OK,
        got("GET", "/public/x").lacks(&["te"]),
    )
    .await;
    t.h2(
        "upper-case field name",
        get("/public/x").field("X-Forwarded-User", "admin"),
        GOAWAY,
        n.clone(),
    )
    .await;
    t.h2(
        "CRLF inside a value",
        get("/public/x").field("x-a", "a\r\nx-forwarded-user: admin"),
        GOAWAY,
        n.clone(),
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn h2_authority_and_pseudo_headers() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    let at_app = |target: &str| got("GET", target).has("x-forwarded-host", "app.internal");
    t.h2(
        ":authority a route host",
        get("/public/x").set(":authority", "APP.internal."),
        OK,
        at_app("/public/x"),
    )
    .await;
    t.h2(
        ":authority and a conflicting host",
        get("/public/x")
            .set(":authority", "app.internal")
            .field("host", "evil.internal"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2(
        "host alone",
        get("/public/x")
            .without(":authority")
            .field("host", "app.internal"),
        OK,
        at_app("/public/x"),
    )
    .await;
    t.h2(
        "no authority at all",
        get("/public/x").without(":authority"),
        OK,
        got("GET", "/public/x").lacks(&["x-forwarded-host"]),
    )
    .await;
    t.h2(
        ":authority no route names",
        get("/public/x").set(":authority", "evil.internal"),
        OK,
        got("GET", "/public/x").lacks(&["x-forwarded-host"]),
    )
    .await;
    t.h2(
        ":authority with user info",
        get("/public/x").set(":authority", "app.internal@evil.internal"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2("empty :path", get(""), MALFORMED, n.clone()).await;
    t.h2("no :path", get("/").without(":path"), MALFORMED, n.clone())
        .await;
    t.h2(
        "two :path",
        get("/public/x").field(":path", "/public/admin"),
        MALFORMED,
        n.clone(),
    )
    .await;
    t.h2(
        "pseudo-header after a field",
        H2Request::bare()
            .field(":method", "GET")
            .field(":scheme", "https")
            .field("x-a", "1")
            .field(":path", "/public/x"),
        MALFORMED,
        n.clone(),
    )
    .await;
    t.h2(
        ":protocol without CONNECT",
        get("/public/x").field(":protocol", "websocket"),
        MALFORMED,
        n.clone(),
    )
    .await;
    t.h2(
        "absolute URI in :path",
        get("http://evil.internal/public/x"),
        MALFORMED,
        n,
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn h2_identity_cookies_bodies_and_header_volume() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    t.h2(
        "cookie crumbs",
        get("/public/x")
            .field("cookie", "a=1")
            .field("cookie", "b=2")
            .field("cookie", "c=3"),
        OK,
        got("GET", "/public/x").has("cookie", "a=1; b=2; c=3"),
    )
    .await;
    t.h2(
        "underscore identity headers",
        get("/public/x")
            .field("x_forwarded_user", "admin")
            .field("x_spiffe_id", "spiffe://example.org/agent/root")
            .field("x_warden_agent", "forged"),
        OK,
        got("GET", "/public/x").lacks(&["x-forwarded-user", "x-spiffe-id", "x_warden_agent"]),
    )
    .await;
    t.h2(
        "method override header",
        H2Request::new("POST", "/public/forms/a").field("x-http-method-override", "DELETE"),
        OK,
        got("POST", "/public/forms/a").lacks(&["x-http-method-override"]),
    )
    .await;
    t.h2(
        "two authorization fields",
        get("/public/x")
            .field("authorization", "Bearer a")
            .field("authorization", "Bearer b"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2(
        "GET with DATA",
        get("/public/x").body("hello"),
        BAD,
        n.clone(),
    )
    .await;
    t.h2(
        "content-length against the DATA",
        H2Request::new("POST", "/public/forms/a")
            .field("content-length", "2")
            .body("hello"),
        MALFORMED,
        n.clone(),
    )
    .await;
    t.h2(
        "POST with DATA",
        H2Request::new("POST", "/public/forms/a").body("hello"),
        OK,
        got("POST", "/public/forms/a").body("hello"),
    )
    .await;
    let many =
        |count: usize| (0..count).fold(get("/public/x"), |r, i| r.field(format!("x-h-{i}"), "v"));
    // HTTP/2 counts 32 bytes a field besides name and value: 250 fields are about 10 KiB.
    t.h2(
        "250 small headers",
        many(250),
        OK,
        got("GET", "/public/x").has("x-h-249", "v"),
    )
    .await;
    t.h2("2000 small headers", many(2000), Answer::Layer(431), n)
        .await;
    t.finish();
}
