//! Requests that a common server would read as something other than what warden judges: a method
//! override carried in the query, a `CONNECT` (warden is no forward proxy), connection-specific
//! headers that HTTP/2 forbids. Each is refused, never guessed at. (Both `Content-Length` and
//! `Transfer-Encoding` never get this far: the HTTP/1.1 parser reads the body by
//! `Transfer-Encoding` alone, drops the length and closes the connection after the answer.)

use http::{HeaderMap, Method, Version};

/// Query parameter names that frameworks read as the request's real method: Symfony and Laravel
/// read `_method` from the query of a POST when method override is on, others take the override
/// header names as parameters. Compared after percent-decoding, without case, `_` read as `-`.
const OVERRIDE_PARAMS: &[&str] = &[
    "-method",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Why this request cannot be judged safely, or `None`.
pub fn ambiguity(
    version: Version,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<&'static str> {
    if method == Method::CONNECT {
        return Some("CONNECT: warden forwards requests, it does not open tunnels to authorities");
    }
    if query.is_some_and(has_method_override) {
        return Some(
            "a method override parameter in the query (`_method` or an override header name)",
        );
    }
    if version == Version::HTTP_2 && headers.contains_key("http2-settings") {
        return Some(
            "HTTP2-Settings is connection-specific, which HTTP/2 forbids (RFC 9113 8.2.2)",
        );
    }
    None
}

/// Whether a query names a method override parameter (`a=1&_method=DELETE`, `%5Fmethod=PUT`).
/// `;` separates parameters too, as some servers still read it.
fn has_method_override(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let name = pair.split('=').next().unwrap_or(pair);
        let overrides = |name: &[u8]| {
            OVERRIDE_PARAMS
                .iter()
                .any(|p| folded_eq(name, p.as_bytes()))
        };
        // Most names carry no escape: they are compared as written, without a copy.
        if name.bytes().any(|b| b == b'%' || b == b'+') {
            overrides(&decode(name))
        } else {
            overrides(name.as_bytes())
        }
    })
}

/// A form-encoded name decoded (`+` is a space, `%XX` a byte); escapes that are not valid stay as
/// written, which the normaliser has refused already.
fn decode(name: &str) -> Vec<u8> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(0));
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn folded_eq(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(query: &str) -> bool {
        has_method_override(query)
    }

    #[test]
    fn method_override_parameters_in_every_spelling() {
        for query in [
            "_method=DELETE",
            "a=1&_method=put",
            "%5Fmethod=DELETE",
            "%5fMETHOD=x",
            "a=1;_method=DELETE",
            "_method",
            "X-HTTP-Method-Override=DELETE",
            "x_http_method=PATCH",
            "x-method-override=PUT",
        ] {
            assert!(q(query), "{query}");
        }
        for query in [
            "",
            "x=_method",
            "_methods=1",
            "method=DELETE",
            "_method_hint=1",
            "a=%5Fmethod",
            "%ZZ=1",
        ] {
            assert!(!q(query), "{query}");
        }
    }

    #[test]
    fn connect_and_h2_settings() {
        let h = HeaderMap::new();
        let v11 = Version::HTTP_11;
        assert!(ambiguity(v11, &Method::CONNECT, None, &h).is_some());
        assert!(ambiguity(v11, &Method::GET, None, &h).is_none());
        assert!(ambiguity(v11, &Method::POST, Some("_method=DELETE"), &h).is_some());

        let mut settings = HeaderMap::new();
        settings.insert("http2-settings", "AAMAAABkAAQAAP__".parse().unwrap());
        assert!(ambiguity(Version::HTTP_2, &Method::GET, None, &settings).is_some());
        // On HTTP/1.1 it is a hop-by-hop header, removed before forwarding.
        assert!(ambiguity(v11, &Method::GET, None, &settings).is_none());
    }
}
