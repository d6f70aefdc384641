//! HTTP/1.1 cases on methods, paths and bodies, written byte for byte. Allowed: GET (and so HEAD)
//! on `/public/**`, POST on `/public/forms/**`, PUT on `/public/items/*`, GET and POST with bodies
//! on `/search/**`. Denied: DELETE anywhere, `/public/admin`, `/public/users/*`.

use crate::fixture::{got, Answer, Hostile, Up, Which};
use crate::{BAD, DENIED, HEAD_BAD, HEAD_DENIED, NO_ROUTE, NO_RULE, OK};

/// A request line, header lines and a body, joined with CRLF.
pub fn req(line: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut out = String::from(line);
    out.push_str("\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// `METHOD target` with `host: localhost` and nothing else.
pub fn plain(method: &str, target: &str) -> Vec<u8> {
    req(
        &format!("{method} {target} HTTP/1.1"),
        &["host: localhost"],
        "",
    )
}

/// `GET /public/x` with these extra header lines.
pub fn get_with(headers: &[&str]) -> Vec<u8> {
    let mut all = vec!["host: localhost"];
    all.extend_from_slice(headers);
    req("GET /public/x HTTP/1.1", &all, "")
}

/// The hyper layer's own refusals (framing, head size) are answered before any decision.
pub const LAYER_400: Answer = Answer::Layer(400);
#[tokio::test]
async fn methods_case_and_overrides() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    t.h1(
        "lower-case delete",
        &plain("delete", "/public/x"),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "mixed-case Delete",
        &plain("Delete", "/public/x"),
        BAD,
        n.clone(),
    )
    .await;
    t.h1("lower-case get", &plain("get", "/public/x"), BAD, n.clone())
        .await;
    t.h1(
        "DELETE denied",
        &plain("DELETE", "/public/x"),
        DENIED,
        n.clone(),
    )
    .await;
    t.h1(
        "HEAD covered by GET",
        &plain("HEAD", "/public/x"),
        OK,
        got("HEAD", "/public/x"),
    )
    .await;
    t.h1(
        "HEAD on denied path",
        &plain("HEAD", "/public/admin"),
        HEAD_DENIED,
        n.clone(),
    )
    .await;
    t.h1(
        "HEAD on denied path/",
        &plain("HEAD", "/public/users/42/"),
        HEAD_DENIED,
        n.clone(),
    )
    .await;
    t.h1(
        "OPTIONS not covered by GET",
        &plain("OPTIONS", "/public/x"),
        NO_RULE,
        n.clone(),
    )
    .await;
    t.h1(
        "OPTIONS asterisk-form",
        &plain("OPTIONS", "*"),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "extension method",
        &plain("PURGE", "/public/x"),
        NO_RULE,
        n.clone(),
    )
    .await;
    t.h1("TRACE", &plain("TRACE", "/public/x"), NO_RULE, n.clone())
        .await;
    t.h1(
        "CONNECT authority-form",
        &req(
            "CONNECT app.internal:443 HTTP/1.1",
            &["host: app.internal:443"],
            "",
        ),
        BAD,
        n.clone(),
    )
    .await;
    let post = |target: &str, headers: &[&str]| {
        let mut all = vec!["host: localhost", "content-length: 0"];
        all.extend_from_slice(headers);
        req(&format!("POST {target} HTTP/1.1"), &all, "")
    };
    t.h1(
        "_method in query",
        &post("/public/forms/a?_method=DELETE", &[]),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "%5Fmethod in query",
        &post("/public/forms/a?%5Fmethod=DELETE", &[]),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "_method after another",
        &post("/public/forms/a?x=1&_method=put", &[]),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "_method on GET",
        &plain("GET", "/public/x?_method=DELETE"),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "override header name in query",
        &post("/public/forms/a?X-HTTP-Method-Override=DELETE", &[]),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "_method as a value, not a name",
        &post("/public/forms/a?x=_method&_methods=1", &[]),
        OK,
        got("POST", "/public/forms/a?x=_method&_methods=1"),
    )
    .await;
    let overrides = [
        "x-http-method-override",
        "x-method-override",
        "x-http-method",
    ];
    t.h1(
        "X-HTTP-Method-Override stripped",
        &post("/public/forms/a", &["X-HTTP-Method-Override: DELETE"]),
        OK,
        got("POST", "/public/forms/a").lacks(&overrides),
    )
    .await;
    t.h1(
        "X_HTTP_METHOD_OVERRIDE stripped",
        &post("/public/forms/a", &["X_HTTP_METHOD_OVERRIDE: DELETE"]),
        OK,
        got("POST", "/public/forms/a").lacks(&overrides),
    )
    .await;
    t.h1(
        "X-Method-Override and X-HTTP-Method stripped",
        &post(
            "/public/forms/a",
            &["x-method-override: DELETE", "X-Http-Method: DELETE"],
        ),
        OK,
        got("POST", "/public/forms/a").lacks(&overrides),
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn trailing_slashes_dots_and_encodings() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    let cases: &[(&str, Answer)] = &[
        ("/public/admin", DENIED),
        ("/public/admin/", DENIED),
        ("/public/admin//", DENIED),
        ("/public/ADMIN/", DENIED),
        ("/public/admin/.", DENIED),
        ("/public//admin", DENIED),
        ("/public/./admin/", DENIED),
        ("/public/x/%2e%2e/admin/", DENIED),
        ("/public/%61dmin/", DENIED),
        ("//public/admin", DENIED),
        ("/public/admin?x=1", DENIED),
        ("/public/users/42", DENIED),
        ("/public/users/42/", DENIED),
        ("/public/users/42/.", DENIED),
        ("/public/admin./", BAD),
        ("/public/admin.", BAD),
        ("/public/admin%2e/", BAD),
        ("/public/admin%2E%2E/", BAD),
        ("/public/admin%20/", BAD),
        ("/public/users/42%20", BAD),
        ("/public/admin;/", BAD),
        ("/public/x/..;/admin", BAD),
        ("/public/%252e%252e/admin", BAD),
        ("/public/admin%2f", BAD),
        ("/public/admin%5c", BAD),
        ("/public%5cadmin", BAD),
        ("/public/%c0%ae%c0%ae/admin", BAD),
        ("/public/%e0%80%ae/admin", BAD),
        ("/public/admin%00", BAD),
        ("/public/../../admin", BAD),
    ];
    for (target, answer) in cases {
        t.h1(target, &plain("GET", target), *answer, n.clone())
            .await;
    }
    // Raw backslashes and fragments never reach a decision.
    t.h1(
        "raw backslash",
        &plain("GET", "/public\\admin"),
        BAD,
        n.clone(),
    )
    .await;
    // A fragment is no part of the path: it is dropped, and what is judged is what is forwarded.
    t.h1(
        "fragment",
        &plain("GET", "/public/admin#x"),
        DENIED,
        n.clone(),
    )
    .await;
    t.h1(
        "fragment hiding a climb",
        &plain("GET", "/public/x#/../admin"),
        OK,
        got("GET", "/public/x"),
    )
    .await;
    // What passes reaches the upstream in the form that was judged.
    let forwarded: &[(&str, &str)] = &[
        ("/public/users/42/x", "/public/users/42/x"),
        ("/public/admin/..", "/public/"),
        ("/public/%7Eitems/%41", "/public/~items/A"),
        ("/public/./x//y/", "/public/x/y/"),
        ("/public/a%2Bb", "/public/a%2Bb"),
    ];
    for (target, upstream_target) in forwarded {
        t.h1(
            target,
            &plain("GET", target),
            OK,
            got("GET", upstream_target),
        )
        .await;
    }
    t.h1(
        "authority-looking path",
        &plain("GET", "//app.internal/public/admin"),
        NO_ROUTE,
        n,
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn bodies_on_get_head_and_options() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    let with_body = |method: &str, target: &str| {
        req(
            &format!("{method} {target} HTTP/1.1"),
            &["host: localhost", "content-length: 5"],
            "hello",
        )
    };
    let chunked = |method: &str, body: &str| {
        req(
            &format!("{method} /public/x HTTP/1.1"),
            &["host: localhost", "transfer-encoding: chunked"],
            body,
        )
    };
    t.h1(
        "GET with a body",
        &with_body("GET", "/public/x"),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "HEAD with a body",
        &with_body("HEAD", "/public/x"),
        HEAD_BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "OPTIONS with a body",
        &with_body("OPTIONS", "/public/x"),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "GET chunked",
        &chunked("GET", "5\r\nhello\r\n0\r\n\r\n"),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "GET chunked, empty",
        &chunked("GET", "0\r\n\r\n"),
        BAD,
        n.clone(),
    )
    .await;
    let smuggled = "GET /public/admin HTTP/1.1\r\nhost: localhost\r\n\r\n";
    t.h1(
        "GET whose body is a request",
        &req(
            "GET /public/x HTTP/1.1",
            &[
                "host: localhost",
                &format!("content-length: {}", smuggled.len()),
            ],
            smuggled,
        ),
        BAD,
        n.clone(),
    )
    .await;
    t.h1(
        "GET with content-length 0",
        &req(
            "GET /public/x HTTP/1.1",
            &["host: localhost", "content-length: 0"],
            "",
        ),
        OK,
        got("GET", "/public/x"),
    )
    .await;
    t.h1(
        "GET with a body where the upstream takes them",
        &with_body("GET", "/search/q"),
        OK,
        got("GET", "/search/q").at(Which::Search).body("hello"),
    )
    .await;
    t.h1(
        "POST with a body",
        &with_body("POST", "/public/forms/a"),
        OK,
        got("POST", "/public/forms/a").body("hello"),
    )
    .await;
    t.h1(
        "DELETE with a body",
        &with_body("DELETE", "/public/x"),
        DENIED,
        n,
    )
    .await;
    t.finish();
}
