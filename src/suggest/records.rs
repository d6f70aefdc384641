//! Reading audit records: the JSON lines `serve` writes (product contract, section 5), of which
//! `suggest` needs only a few fields. Unknown fields are ignored, so logs of other versions read.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SuggestError;

/// The fields of one audit line that say what an agent did.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditLine {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub route: Option<usize>,
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub decision: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// On MCP and A2A routes: the JSON-RPC method and its target (tool, resource, prompt, task).
    #[serde(default)]
    pub rpc_method: Option<String>,
    #[serde(default)]
    pub rpc_target: Option<String>,
}

/// A request the agent made and that went through: `allow`, or `shadow_deny` (refused by the
/// policy in shadow mode, but let through). `deny` records were refused and teach nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub agent: String,
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub upstream: String,
    pub route: Option<usize>,
    pub rpc_method: Option<String>,
    pub rpc_target: Option<String>,
    pub unix_ms: Option<i64>,
    /// Shadow mode let it through although a `deny` rule refuses it.
    pub deny_rule_matched: bool,
}

/// Why a line was not learned; counted for the summary on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skipped {
    /// A connection or tunnel record, not a request.
    NotARequest,
    /// Refused in enforce mode (or before the policy could judge it).
    Refused,
    /// Older than `--since`.
    TooOld,
    /// Lacks the agent, method, path or upstream.
    Incomplete,
}

impl AuditLine {
    /// What this line teaches, or why it teaches nothing.
    pub fn classify(self, not_before_ms: Option<i64>) -> Result<Seen, Skipped> {
        if self.kind.as_deref().is_some_and(|k| k != "request") {
            return Err(Skipped::NotARequest);
        }
        let shadow = match self.decision.as_deref() {
            Some("allow") => false,
            Some("shadow_deny") => true,
            _ => return Err(Skipped::Refused),
        };
        let deny_rule_matched = shadow && self.reason.as_deref() == Some("denied");
        let unix_ms = self.ts.as_deref().and_then(parse_rfc3339_ms);
        if let Some(limit) = not_before_ms {
            if unix_ms.is_none_or(|t| t < limit) {
                return Err(Skipped::TooOld);
            }
        }
        let (Some(agent), Some(method), Some(path), Some(upstream)) =
            (self.agent, self.method, self.path, self.upstream)
        else {
            return Err(Skipped::Incomplete);
        };
        if !path.starts_with('/') || method.is_empty() {
            return Err(Skipped::Incomplete);
        }
        Ok(Seen {
            agent,
            method,
            host: self.host,
            path,
            upstream,
            route: self.route,
            rpc_method: self.rpc_method,
            rpc_target: self.rpc_target,
            unix_ms,
            deny_rule_matched,
        })
    }
}

pub fn parse_rfc3339_ms(ts: &str) -> Option<i64> {
    let dt =
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Reads every file and hands each line's verdict to `sink`. A line that is not JSON is an error
/// with its file and line number: a damaged log must not silently shrink the suggested policy.
pub fn read_all(
    files: &[PathBuf],
    not_before_ms: Option<i64>,
    sink: &mut dyn FnMut(Result<Seen, Skipped>),
) -> Result<(), SuggestError> {
    for file in files {
        read_one(file, not_before_ms, sink)?;
    }
    Ok(())
}

fn read_one(
    file: &Path,
    not_before_ms: Option<i64>,
    sink: &mut dyn FnMut(Result<Seen, Skipped>),
) -> Result<(), SuggestError> {
    let bad = |line: usize, message: String| SuggestError::Audit {
        file: file.to_path_buf(),
        line,
        message,
    };
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file).map_err(|e| bad(0, format!("cannot read: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| bad(i + 1, format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: AuditLine = serde_json::from_str(&line)
            .map_err(|e| bad(i + 1, format!("not an audit record: {e}")))?;
        sink(record.classify(not_before_ms));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str) -> AuditLine {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn allow_and_shadow_deny_are_learned_deny_is_not() {
        let base = r#""kind":"request","agent":"spiffe://e/a","method":"GET","path":"/x","upstream":"u","ts":"2026-01-02T03:04:05.678Z""#;
        let ok = line(&format!(r#"{{{base},"decision":"allow"}}"#)).classify(None);
        assert_eq!(ok.as_ref().map(|s| s.unix_ms), Ok(Some(1_767_323_045_678)));
        assert!(line(&format!(r#"{{{base},"decision":"shadow_deny"}}"#))
            .classify(None)
            .is_ok());
        assert_eq!(
            line(&format!(r#"{{{base},"decision":"deny"}}"#)).classify(None),
            Err(Skipped::Refused)
        );
        assert_eq!(
            line(&format!(r#"{{{base},"decision":"allow"}}"#)).classify(Some(1_767_323_045_679)),
            Err(Skipped::TooOld)
        );
        assert_eq!(
            line(r#"{"kind":"connection","decision":"deny"}"#).classify(None),
            Err(Skipped::NotARequest)
        );
        assert_eq!(
            line(r#"{"kind":"request","decision":"allow","agent":"a","method":"GET"}"#)
                .classify(None),
            Err(Skipped::Incomplete)
        );
    }

    #[test]
    fn a_damaged_line_is_an_error_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("audit.jsonl");
        std::fs::write(&f, "{\"kind\":\"request\"}\n\n{not json\n").unwrap();
        let mut n = 0;
        let err = read_all(&[f], None, &mut |_| n += 1).unwrap_err();
        assert_eq!(n, 1);
        assert!(err.to_string().contains("audit.jsonl:3:"), "{err}");
    }
}
