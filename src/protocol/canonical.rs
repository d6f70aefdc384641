//! RFC 8785 (JSON Canonicalization Scheme): members sorted by their keys' UTF-16 code units, no
//! whitespace, strings escaped as ECMAScript's `JSON.stringify` escapes them, numbers written as
//! ECMAScript's `Number.prototype.toString` writes a double. `args_sha256` is the SHA-256 of this
//! form of `params.arguments`, so two spellings of the same arguments have one digest.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::json::Json;

/// The canonical text of `value`.
pub fn canonical(value: &Json<'_>) -> String {
    let mut out = String::with_capacity(256);
    write_value(value, &mut out);
    out
}

/// Lower-case hex SHA-256 of the canonical text of `value`.
pub fn sha256_hex(value: &Json<'_>) -> String {
    hex(&Sha256::digest(canonical(value).as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn write_value(value: &Json<'_>, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(n) => write_number(*n, out),
        Json::Str(s) => write_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            let mut sorted: Vec<&(std::borrow::Cow<'_, str>, Json<'_>)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

/// `JSON.stringify` of a string: `"` and `\` escaped, controls as short escapes where JSON has
/// one and `\u00xx` (lower-case hex) otherwise; everything else literal.
pub fn write_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Runs that need no escape are copied whole; only `"`, `\` and controls are single bytes
    // that need one, so cutting at them never splits a character.
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none needs an escape (the common case by far).
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i - 1]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        run = i;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Whether any byte of `w` is a control character, `"` or `\` (the classic bit tricks: a byte
/// below 0x20, or one equal to a given value, sets its high bit in the result).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    below(w, 0x20) | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) != 0
}

/// ECMAScript's Number::toString for a finite double (the reader never yields another).
fn write_number(n: f64, out: &mut String) {
    if n == 0.0 || !n.is_finite() {
        // -0 is written 0; non-finite numbers cannot come out of a JSON reader.
        out.push('0');
        return;
    }
    // Integers below 2^53 are exact: their digits are the integer's, with no tie to break.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        let _ = write!(out, "{}", n as i64);
        return;
    }
    if n < 0.0 {
        out.push('-');
    }
    // Rust writes the shortest digits that read back as the same double, as ECMAScript does;
    // only the layout differs.
    let sci = format!("{:e}", n.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    // A tie needs the double's exact value to have one digit more than its shortest form, which
    // only happens at the precision limit (16 or 17 digits).
    if digits.len() >= 16 && digits.ends_with(['1', '3', '5', '7', '9']) {
        if let Some(even) = even_tie(n.abs(), &digits, exp) {
            digits = even;
        }
    }
    let k = digits.len() as i32;
    // ECMAScript's n: the value is 0.d1d2...dk x 10^n.
    let point = exp + 1;
    if k <= point && point <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (point - k) as usize));
    } else if 0 < point && point <= 21 {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if point > 0 { '+' } else { '-' });
        let _ = write!(out, "{}", (point - 1).abs());
    }
}

/// Two shortest digit strings can be equally near a double; ECMAScript then takes the even one
/// where Rust rounds the tie up. `digits` (odd last digit, exponent `exp`) is checked against the
/// exact decimal value of `v`: a tie is its `digits.len()` digits followed by exactly `5`.
fn even_tie(v: f64, digits: &str, exp: i32) -> Option<String> {
    let exact = format!("{v:.1100e}");
    let (mantissa, e) = exact.split_once('e')?;
    if e.parse::<i32>().ok()? != exp {
        return None;
    }
    let all: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let k = digits.len();
    let (head, tail) = (all.get(..k)?, all.get(k..)?);
    let tie = tail.first() == Some(&b'5') && tail[1..].iter().all(|d| *d == b'0');
    let lower = std::str::from_utf8(head).ok()?;
    (tie && lower != digits && lower.ends_with(['0', '2', '4', '6', '8']))
        .then(|| lower.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json::parse;

    fn num(bits: u64) -> String {
        let mut s = String::new();
        write_number(f64::from_bits(bits), &mut s);
        s
    }

    /// RFC 8785 appendix B.
    #[test]
    fn numbers_as_ecmascript_writes_them() {
        let vectors: [(u64, &str); 24] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in vectors {
            assert_eq!(num(bits), want, "{bits:#018x}");
        }
    }

    /// RFC 8785 section 3.2.2's example.
    #[test]
    fn the_rfc_example() {
        let input = br#"{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        let want = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(canonical(&parse(input).unwrap()), want);
    }

    /// RFC 8785 section 3.2.3: keys sorted by UTF-16 code units, not by code points.
    #[test]
    fn keys_sorted_by_utf16_units() {
        let input = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#;
        let out = canonical(&parse(input.as_bytes()).unwrap());
        let keys: Vec<&str> = [
            "\r",
            "1",
            "\u{80}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .to_vec();
        let mut at = 0;
        for k in keys {
            let mut quoted = String::new();
            write_string(k, &mut quoted);
            let pos = out[at..].find(&quoted).map(|p| p + at).expect(k);
            assert!(pos >= at);
            at = pos;
        }
    }

    #[test]
    fn strings_are_escaped_as_json_stringify_does() {
        let cases = [
            (
                "plain text longer than eight bytes",
                r#""plain text longer than eight bytes""#,
            ),
            (
                "a\"b\\c\u{1}d\u{1f}e\n\t\r\u{8}\u{c}",
                r#""a\"b\\c\u0001d\u001fe\n\t\r\b\f""#,
            ),
            ("é€😀 / \u{7f}", "\"é€😀 / \u{7f}\""),
            ("0123456\"", r#""0123456\"""#),
            ("01234567\\", r#""01234567\\""#),
        ];
        for (text, want) in cases {
            let mut out = String::new();
            write_string(text, &mut out);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn every_character_at_every_offset_is_escaped_as_serde_json_escapes_it() {
        for c in (0u32..0x80)
            .chain([0xe9, 0x20ac, 0x1f600])
            .filter_map(char::from_u32)
        {
            for at in 0..17 {
                let text: String = "abcdefghijklmnopq"
                    .chars()
                    .enumerate()
                    .map(|(i, x)| if i == at { c } else { x })
                    .collect();
                let mut out = String::new();
                write_string(&text, &mut out);
                assert_eq!(out, serde_json::to_string(&text).unwrap(), "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn spellings_of_one_value_share_a_digest() {
        let a = parse(br#"{"b":[1.0,"x"],"a":{"z":true,"y":null}}"#).unwrap();
        let b = parse(br#"{ "a" : {"y":null, "z":true}, "b":[1, "\u0078"] }"#).unwrap();
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
        let c = parse(br#"{"a":{"y":null,"z":false},"b":[1,"x"]}"#).unwrap();
        assert_ne!(sha256_hex(&a), sha256_hex(&c));
        assert_eq!(sha256_hex(&a).len(), 64);
    }
}
