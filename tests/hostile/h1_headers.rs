//! HTTP/1.1 cases on headers: identity and rewrite headers in every spelling, hop-by-hop and
//! `Connection`-named headers, absolute-form targets and Host confusion.

use crate::fixture::{got, Hostile, Up};
use crate::h1::{get_with, req};
use crate::{BAD, DENIED, OK};

#[tokio::test]
async fn identity_and_rewrite_headers_in_every_spelling() {
    let mut t = Hostile::start().await;
    let stripped: &[&[&str]] = &[
        &["X-Forwarded-User: admin"],
        &["X_Forwarded_User: admin"],
        &["x-forwarded_user: admin"],
        &["X-FORWARDED-EMAIL: root@corp", "x_forwarded_groups: admins"],
        &[
            "X-Spiffe-Id: spiffe://example.org/agent/root",
            "X_Agent_Id: root",
        ],
        &[
            "X-Forwarded-Client-Cert: Hash=1",
            "X-Client-Cert: x",
            "x-client-dn: CN=root",
        ],
        &["X-SSL-Client-S-DN: CN=root", "x_ssl_client_verify: SUCCESS"],
        &[
            "X-Auth-Request-User: root",
            "x_auth_request_email: root@corp",
        ],
        &[
            "Remote-User: root",
            "X-Remote-User: root",
            "remote_user: root",
        ],
        &[
            "X-Original-URL: /public/admin",
            "X-Rewrite-URL: /public/admin",
        ],
        &[
            "X-Forwarded-Uri: /public/admin",
            "X-Forwarded-Prefix: /admin",
            "X-Original-URI: /public/admin",
        ],
        &[
            "X-Envoy-Original-Path: /public/admin",
            "X-Original-Method: DELETE",
        ],
        &["Forwarded: for=10.0.0.1;host=app.internal;proto=http"],
        &["X-Real-IP: 10.0.0.1", "X-Forwarded-Port: 80"],
        &["Proxy-Authorization: Basic cm9vdDpyb290"],
        &[
            "X-Warden-Agent: spiffe://example.org/agent/root",
            "x_warden_roles: admin",
            "X-Warden-Anything: 1",
        ],
    ];
    for headers in stripped {
        let names: Vec<&str> = headers
            .iter()
            .map(|h| h.split(':').next().unwrap_or(h))
            .collect();
        let name = headers.join(" + ");
        t.h1(
            &name,
            &get_with(headers),
            OK,
            got("GET", "/public/x").lacks(&names),
        )
        .await;
    }
    t.h1(
        "x-forwarded-proto forged",
        &get_with(&["X-Forwarded-Proto: http", "x_forwarded_proto: http"]),
        OK,
        got("GET", "/public/x").lacks(&["x_forwarded_proto"]),
    )
    .await;
    t.h1(
        "x-forwarded-for appended to",
        &get_with(&["X-Forwarded-For: 10.9.9.9"]),
        OK,
        got("GET", "/public/x").has("x-forwarded-for", "10.9.9.9, 127.0.0.1"),
    )
    .await;
    t.h1(
        "x-forwarded-host on a host no route names",
        &get_with(&[
            "X-Forwarded-Host: evil.internal",
            "x_forwarded_host: evil.internal",
        ]),
        OK,
        got("GET", "/public/x").lacks(&["x-forwarded-host"]),
    )
    .await;
    t.h1(
        "x-forwarded-host on a route host",
        &req(
            "GET /public/x HTTP/1.1",
            &["Host: app.internal", "X-Forwarded-Host: evil.internal"],
            "",
        ),
        OK,
        got("GET", "/public/x").has("x-forwarded-host", "app.internal"),
    )
    .await;
    t.h1(
        "two Authorization headers",
        &get_with(&["Authorization: Bearer a", "Authorization: Bearer b"]),
        BAD,
        Up::Nothing,
    )
    .await;
    t.h1(
        "Authorization twice in two spellings",
        &get_with(&["Authorization: Bearer a", "authorization: Basic Yjpi"]),
        BAD,
        Up::Nothing,
    )
    .await;
    t.h1(
        "two Cookie lines",
        &get_with(&["Cookie: a=1", "Cookie: b=2"]),
        OK,
        got("GET", "/public/x").has("cookie", "a=1; b=2"),
    )
    .await;
    t.h1(
        "one Authorization header",
        &get_with(&["Authorization: Bearer a"]),
        OK,
        got("GET", "/public/x").has("authorization", "Bearer a"),
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn hop_by_hop_and_connection_named_headers() {
    let mut t = Hostile::start().await;
    let ok = |lacks: &[&str]| got("GET", "/public/x").lacks(lacks);
    t.h1(
        "Connection names a custom header",
        &get_with(&["Connection: x-secret", "X-Secret: 1"]),
        OK,
        ok(&["x-secret", "connection"]),
    )
    .await;
    t.h1(
        "Connection names warden's headers",
        &get_with(&["Connection: x-warden-agent, X-Warden-Roles, x-forwarded-proto"]),
        OK,
        ok(&["connection"]),
    )
    .await;
    t.h1(
        "Connection names a stripped identity header",
        &get_with(&["connection: X_Forwarded_User", "x_forwarded_user: admin"]),
        OK,
        ok(&["x-forwarded-user"]),
    )
    .await;
    t.h1(
        "Connection names x-forwarded-for",
        &get_with(&["Connection: x-forwarded-for", "X-Forwarded-For: 10.9.9.9"]),
        OK,
        got("GET", "/public/x").has("x-forwarded-for", "127.0.0.1"),
    )
    .await;
    t.h1(
        "Keep-Alive and Proxy-Connection",
        &get_with(&["Keep-Alive: timeout=5", "Proxy-Connection: keep-alive"]),
        OK,
        ok(&["keep-alive", "proxy-connection"]),
    )
    .await;
    t.h1(
        "TE: trailers",
        &get_with(&["TE: trailers"]),
        OK,
        ok(&["te"]),
    )
    .await;
    t.h1(
        "TE: gzip",
        &get_with(&["TE: gzip, chunked"]),
        OK,
        ok(&["te"]),
    )
    .await;
    t.h1(
        "Trailer",
        &get_with(&["Trailer: x-checksum"]),
        OK,
        ok(&["trailer"]),
    )
    .await;
    t.h1(
        "h2c upgrade with HTTP2-Settings named",
        &get_with(&[
            "Connection: Upgrade, HTTP2-Settings",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ]),
        OK,
        ok(&["upgrade", "connection", "http2-settings"]),
    )
    .await;
    t.h1(
        "h2c upgrade with HTTP2-Settings not named",
        &get_with(&[
            "Connection: Upgrade",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ]),
        OK,
        ok(&["upgrade", "connection", "http2-settings"]),
    )
    .await;
    t.h1(
        "Upgrade on a POST",
        &req(
            "POST /public/forms/a HTTP/1.1",
            &[
                "host: localhost",
                "Connection: upgrade",
                "Upgrade: websocket",
                "content-length: 2",
            ],
            "hi",
        ),
        OK,
        got("POST", "/public/forms/a")
            .body("hi")
            .lacks(&["upgrade", "connection"]),
    )
    .await;
    t.h1(
        "Connection names content-length",
        &req(
            "POST /public/forms/a HTTP/1.1",
            &[
                "host: localhost",
                "Connection: content-length",
                "content-length: 5",
            ],
            "hello",
        ),
        OK,
        got("POST", "/public/forms/a").body("hello"),
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn absolute_form_and_host_confusion() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    let at_app = |target: &str| got("GET", target).has("x-forwarded-host", "app.internal");
    let line = |l: &str, host: &str| req(l, &[host], "");
    t.h1(
        "absolute-form naming a route host",
        &line(
            "GET http://app.internal/public/x HTTP/1.1",
            "Host: app.internal",
        ),
        OK,
        at_app("/public/x"),
    )
    .await;
    t.h1(
        "absolute-form https with port",
        &line(
            "GET https://app.internal:8443/public/x?q=1 HTTP/1.1",
            "Host: app.internal",
        ),
        OK,
        at_app("/public/x?q=1"),
    )
    .await;
    t.h1(
        "absolute-form to a denied path",
        &line(
            "GET http://app.internal/public/admin/ HTTP/1.1",
            "Host: app.internal",
        ),
        DENIED,
        n.clone(),
    )
    .await;
    t.h1(
        "absolute-form against another Host",
        &line(
            "GET http://app.internal/public/x HTTP/1.1",
            "Host: localhost",
        ),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "absolute-form naming a foreign host",
        &line(
            "GET http://evil.internal/public/x HTTP/1.1",
            "Host: evil.internal",
        ),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "absolute-form with user info",
        &line(
            "GET http://app.internal@evil.internal/public/x HTTP/1.1",
            "Host: evil.internal",
        ),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "upper-case Host with a trailing dot",
        &line("GET /public/x HTTP/1.1", "Host: APP.Internal.:443"),
        OK,
        at_app("/public/x"),
    )
    .await;
    t.h1(
        "Host no route names",
        &line("GET /public/x HTTP/1.1", "Host: evil.internal"),
        OK,
        got("GET", "/public/x").lacks(&["x-forwarded-host"]),
    )
    .await;
    let bad_hosts = [
        "Host: app.internal, evil.internal",
        "Host: 127.1",
        "Host: app_internal",
        "Host: app.internal@evil.internal",
        "Host: app.internal:99999",
        "Host: app.internal..",
        "Host:",
    ];
    for host in bad_hosts {
        t.h1(host, &line("GET /public/x HTTP/1.1", host), BAD, n.clone())
            .await;
    }
    t.h1(
        "two Host headers",
        &req(
            "GET /public/x HTTP/1.1",
            &["Host: app.internal", "Host: app.internal"],
            "",
        ),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "HTTP/1.1 without Host",
        &req("GET /public/x HTTP/1.1", &["x-a: 1"], ""),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "absolute-form without Host",
        &req("GET http://app.internal/public/x HTTP/1.1", &["x-a: 1"], ""),
        OK,
        at_app("/public/x"),
    )
    .await;
    t.h1(
        "HTTP/1.0 without Host",
        &req("GET /public/x HTTP/1.0", &["x-a: 1"], ""),
        OK,
        got("GET", "/public/x").lacks(&["x-forwarded-host"]),
    )
    .await;
    t.finish();
}
