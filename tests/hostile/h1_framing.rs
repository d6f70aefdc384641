//! HTTP/1.1 framing: request smuggling shapes, chunk framing broken while the body streams, and
//! very many small headers under and over `limits.max_request_header_bytes`.

use crate::fixture::{got, Answer, Hostile, Up};
use crate::h1::{get_with, req, LAYER_400};
use crate::{BAD, DENIED, OK};

#[tokio::test]
async fn request_smuggling_shapes() {
    let mut t = Hostile::start().await;
    let n = Up::Nothing;
    // Each would reach an allowed POST if it were read at all; the tail is a denied request.
    let tail = "GET /public/admin HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let post = |headers: &[&str], body: &str| {
        let mut all = vec!["host: localhost"];
        all.extend_from_slice(headers);
        req("POST /public/forms/a HTTP/1.1", &all, body)
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two different Content-Length",
            post(&["content-length: 5", "content-length: 50"], "hello"),
        ),
        (
            "signed Content-Length",
            post(&["content-length: +5"], "hello"),
        ),
        (
            "Content-Length list",
            post(&["content-length: 5, 6"], "hello"),
        ),
        (
            "TE not ending in chunked",
            post(
                &["transfer-encoding: chunked, identity"],
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "unknown TE",
            post(&["transfer-encoding: xchunked"], "5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "space before the colon",
            post(
                &["transfer-encoding : chunked", "content-length: 5"],
                "hello",
            ),
        ),
        (
            "obs-fold",
            post(&["content-length: 5", "x-folded: a", " b"], "hello"),
        ),
        (
            "NUL in a header value",
            post(&["content-length: 5", "x-a: a\0b"], "hello"),
        ),
        (
            "space in the target",
            req("GET /public/a b HTTP/1.1", &["host: localhost"], ""),
        ),
        (
            "chunked on HTTP/1.0",
            req(
                "POST /public/forms/a HTTP/1.0",
                &["host: localhost", "transfer-encoding: chunked"],
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "space in a header name",
            post(&["x a: 1", "content-length: 0"], ""),
        ),
        (
            "header line without a colon",
            post(&["x-a", "content-length: 0"], ""),
        ),
        ("no version", req("GET /public/x", &["host: localhost"], "")),
        (
            "HTTP/2.0 on an HTTP/1 connection",
            req("GET /public/x HTTP/2.0", &["host: localhost"], ""),
        ),
    ];
    for (name, raw) in cases {
        t.h1(name, &raw, LAYER_400, n.clone()).await;
    }
    // Both lengths: the body is read by Transfer-Encoding alone (RFC 9112 6.3), the upstream
    // gets one request framed anew, and the connection closes, so the tail is never read.
    let empty_post = || got("POST", "/public/forms/a").lacks(&["content-length"]);
    t.h1_pipelined(
        "CL and TE, chunked body hiding a request",
        &post(
            &["content-length: 5", "transfer-encoding: chunked"],
            &format!("0\r\n\r\n{tail}"),
        ),
        &[false, false],
        &[OK, Answer::Closed],
        &[empty_post()],
    )
    .await;
    t.h1_pipelined(
        "TE and CL, length hiding a request",
        &post(
            &["transfer-encoding: chunked", "content-length: 60"],
            &format!("0\r\n\r\n{tail}"),
        ),
        &[false, false],
        &[OK, Answer::Closed],
        &[empty_post()],
    )
    .await;
    // Duplicate but equal lengths are one length; the denied tail is judged on its own.
    t.h1_pipelined(
        "two equal Content-Length, denied tail",
        &[
            post(&["content-length: 5", "content-length: 5"], "hello"),
            tail.as_bytes().to_vec(),
        ]
        .concat(),
        &[false, false],
        &[OK, DENIED],
        &[got("POST", "/public/forms/a").body("hello")],
    )
    .await;
    // Bare LF line endings are one unambiguous request to every parser warden forwards to.
    t.h1(
        "bare LF line endings",
        b"GET /public/x HTTP/1.1\nhost: localhost\n\n",
        OK,
        got("GET", "/public/x"),
    )
    .await;
    t.finish();
}

/// Chunk framing is read as the body streams, after the head was judged and forwarded: the
/// upstream sees at most that allowed head with a body that never completes, and the agent 400.
#[tokio::test]
async fn malformed_chunks_found_while_streaming() {
    let mut t = Hostile::start().await;
    let tail = "GET /public/admin HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let chunked = |body: &str| {
        req(
            "POST /public/forms/a HTTP/1.1",
            &["host: localhost", "transfer-encoding: chunked"],
            body,
        )
    };
    let cut = Up::Cut("POST", "/public/forms/a");
    t.h1(
        "chunk size overflow",
        &chunked("ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
        BAD,
        cut.clone(),
    )
    .await;
    t.h1(
        "bare LF in chunk framing",
        &chunked(&format!("5\nhello\n0\n\n{tail}")),
        BAD,
        cut.clone(),
    )
    .await;
    t.h1(
        "chunk size not hex",
        &chunked("zz\r\nhello\r\n0\r\n\r\n"),
        BAD,
        cut.clone(),
    )
    .await;
    t.h1(
        "chunk longer than its size",
        &chunked(&format!("2\r\nhello\r\n0\r\n\r\n{tail}")),
        BAD,
        cut,
    )
    .await;
    t.finish();
}

#[tokio::test]
async fn very_many_small_headers() {
    let mut t = Hostile::start().await;
    let many = |count: usize| -> Vec<u8> {
        let lines: Vec<String> = (0..count).map(|i| format!("x-h-{i}: v")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        get_with(&refs)
    };
    t.h1(
        "90 small headers",
        &many(90),
        OK,
        got("GET", "/public/x").has("x-h-89", "v"),
    )
    .await;
    // 400 headers are about 4.4 KiB, well under max_request_header_bytes (16 KiB).
    t.h1(
        "400 small headers",
        &many(400),
        OK,
        got("GET", "/public/x").has("x-h-399", "v"),
    )
    .await;
    // 2000 are about 24 KiB: over the limit.
    t.h1(
        "2000 small headers",
        &many(2000),
        Answer::Layer(431),
        Up::Nothing,
    )
    .await;
    let big = format!("x-big: {}", "a".repeat(20 * 1024));
    t.h1(
        "one 20 KiB header",
        &get_with(&[&big]),
        Answer::Layer(431),
        Up::Nothing,
    )
    .await;
    t.finish();
}
