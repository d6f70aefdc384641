//! SPIFFE ids and `agents` patterns: nothing panics, every accepted id re-parses to itself and
//! keeps the standard's shape, and the agent index covers an id exactly when a plain segment
//! matcher says its pattern does.
//!
//! Input: `pattern \n id`; without a newline both are the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::identity::index::AgentIndex;
use warden::ids::{check_agent_pattern, check_trust_domain, AgentId};

/// The standard's shape, checked independently of the parser.
fn assert_shape(text: &str, id: &AgentId) {
    assert_eq!(id.as_str(), text);
    assert_eq!(format!("spiffe://{}{}", id.trust_domain(), id.path()), text);
    assert!(check_trust_domain(id.trust_domain()).is_ok(), "{text:?}");
    let path = id.path();
    assert!(path.starts_with('/') && !path.ends_with('/'), "{text:?}");
    for seg in path[1..].split('/') {
        assert!(!seg.is_empty() && seg != "." && seg != "..", "{text:?}");
        assert!(
            seg.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
            "{text:?}"
        );
    }
}

/// Segment glob by dynamic programming: `*` one segment, `**` zero or more, else literal.
fn glob(pattern: &[&str], segs: &[&str]) -> bool {
    let (p, s) = (pattern.len(), segs.len());
    // m[i][j]: pattern[i..] matches segs[j..].
    let mut m = vec![vec![false; s + 1]; p + 1];
    m[p][s] = true;
    for i in (0..p).rev() {
        for j in (0..=s).rev() {
            m[i][j] = match pattern[i] {
                "**" => m[i + 1][j] || (j < s && m[i][j + 1]),
                "*" => j < s && m[i + 1][j + 1],
                lit => j < s && segs[j] == lit && m[i + 1][j + 1],
            };
        }
    }
    m[0][0]
}

fn covers(pattern: &str, id: &AgentId) -> bool {
    let Some(rest) = pattern.strip_prefix("spiffe://") else {
        return false;
    };
    let Some((domain, path)) = rest.split_once('/') else {
        return false;
    };
    if domain != id.trust_domain() {
        return false;
    }
    let p: Vec<&str> = path.split('/').collect();
    let s: Vec<&str> = id.path()[1..].split('/').collect();
    glob(&p, &s)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, id_text) = text.split_once('\n').unwrap_or((text, text));
    for candidate in [pattern, id_text] {
        if let Ok(id) = AgentId::parse(candidate) {
            assert_shape(candidate, &id);
            assert_eq!(AgentId::parse(id.as_str()), Ok(id.clone()));
            assert!(check_agent_pattern(candidate).is_ok(), "an id is a pattern");
        }
        if check_agent_pattern(candidate).is_ok() && !candidate.contains('*') {
            assert!(AgentId::parse(candidate).is_ok(), "{candidate:?}");
        }
    }
    let (Ok(()), Ok(id)) = (check_agent_pattern(pattern), AgentId::parse(id_text)) else {
        return;
    };
    let index = AgentIndex::new([pattern]);
    let found = index.lookup(&id);
    assert_eq!(
        found.is_some(),
        covers(pattern, &id),
        "{pattern:?} against {id_text:?}"
    );
    assert!(found.is_none_or(|i| i == 0));
});
