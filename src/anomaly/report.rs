//! What `/agents/{id}` shows: the score and its strongest signals, in words and numbers.

use serde::Serialize;

use super::peers::PeerReport;
use super::state::State;
use super::{Signal, SignalKind};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviourReport {
    /// Still learning the baseline: the score is 0 by design.
    pub learning: bool,
    pub requests: u64,
    pub score: f64,
    pub signals: Vec<SignalReport>,
    /// Scored by its peer group's baseline, having none of its own yet.
    pub judged_by_peers: bool,
    /// Its peer group, when it has one.
    pub peers: Option<PeerReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalReport {
    pub signal: SignalKind,
    pub strength: f64,
    pub value: f64,
    pub baseline: f64,
    /// E.g. `rate 42/s vs usual 3/s`.
    pub detail: String,
    /// What it is about, when it is one thing: the tool, the path shape, the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl BehaviourReport {
    pub(crate) fn of(state: &State) -> Self {
        Self {
            learning: state.learning,
            requests: state.requests,
            score: state.held,
            signals: state.top.iter().flatten().map(SignalReport::of).collect(),
            judged_by_peers: state.learning && state.peer_novelty.judged,
            peers: state.peers.as_deref().map(PeerReport::of),
        }
    }
}

impl SignalReport {
    fn of(s: &Signal) -> Self {
        Self {
            signal: s.kind,
            strength: s.strength,
            value: s.value,
            baseline: s.baseline,
            detail: detail(s),
            subject: (!s.subject.is_empty()).then(|| s.subject.to_string()),
        }
    }
}

/// The operator's sentence for a signal.
pub(crate) fn detail(s: &Signal) -> String {
    let (v, b) = (s.value, s.baseline);
    let subject = s.subject.as_str();
    match s.kind {
        SignalKind::Rate => format!("rate {}/s vs usual {}/s", num(v), num(b)),
        SignalKind::NewUpstream => format!("first use of upstream {subject}"),
        SignalKind::NewMethod => format!("first use of method {subject}"),
        SignalKind::NewPathShape => format!(
            "first use of path shape {subject} ({} new shapes lately)",
            num(v)
        ),
        SignalKind::Enumeration => format!(
            "{} new path shapes in the last minutes (latest {subject}) vs usual {} of requests",
            num(v),
            percent(b)
        ),
        SignalKind::DenialBurst => {
            format!("denied {} of recent requests vs usual {}", percent(v), percent(b))
        }
        SignalKind::ErrorRate => {
            format!("errors on {} of recent requests vs usual {}", percent(v), percent(b))
        }
        SignalKind::BytesOut => {
            format!("responses {} vs usual {}", bytes(v), bytes(b))
        }
        SignalKind::OffHours => format!(
            "{} of its activity near this hour vs {} if spread evenly",
            percent(v),
            percent(b)
        ),
        SignalKind::Clone => format!(
            "switched source address or certificate {} times while the other was still in use vs usual {} of requests",
            num(v),
            percent(b)
        ),
        SignalKind::Alternation => format!(
            "came back {} times within the hour to a source address or certificate it had left for another (latest from {subject}); a move or a renewal never goes back; usually {} of requests",
            num(v),
            percent(b)
        ),
        SignalKind::NewTool if v > 1.5 => format!(
            "first call of tool {subject}; {} tools never used before called lately",
            num(v)
        ),
        SignalKind::NewTool => format!("first call of tool {subject}"),
        SignalKind::ToolBurst => format!(
            "called {} distinct tools in the last minute or two vs usual {}",
            num(v),
            num(b)
        ),
        SignalKind::MassAccess
        | SignalKind::NewSequence
        | SignalKind::NotFound
        | SignalKind::Unfamiliar
        | SignalKind::NewObjects
        | SignalKind::Sweep
        | SignalKind::IdWalk
        | SignalKind::RefusedPaths => what_it_read(s),
        SignalKind::ToolRate => format!("tool calls {}/s vs usual {}/s", num(v), num(b)),
        SignalKind::ToolDenials => format!(
            "denied {} of recent tool calls vs usual {}",
            percent(v),
            percent(b)
        ),
    }
}

/// The sentence for a signal about what the agent read and where: items, endpoints, paths.
fn what_it_read(s: &Signal) -> String {
    let (v, b) = (s.value, s.baseline);
    let subject = s.subject.as_str();
    match s.kind {
        SignalKind::MassAccess => format!(
            "read {} distinct items under {subject} in {} s; usually {}",
            num(v),
            crate::anomaly::mass::WINDOW,
            num(b)
        ),
        SignalKind::NewSequence => format!(
            "{} requests in a row went from one of its usual endpoints to another in an order never seen; usually {} of its transitions are new",
            num(v),
            percent(b)
        ),
        SignalKind::NotFound => format!(
            "the upstream answered \"not found\" for {} distinct items lately (latest under {subject}); usually {} of requests",
            num(v),
            percent(b)
        ),
        SignalKind::Unfamiliar => format!(
            "{} of recent requests went to endpoints or tools first used within the hour (latest {subject}) vs usual {}",
            percent(v),
            percent(b)
        ),
        SignalKind::NewObjects => format!(
            "{} of recent reads under {subject} named items it had never read vs usual {}",
            percent(v),
            percent(b)
        ),
        SignalKind::Sweep => format!(
            "{} of its recent requests read items under {subject} it had never read vs usual {} when it reads a new one there",
            percent(v),
            percent(b)
        ),
        SignalKind::IdWalk => format!(
            "read {} items in a row under {subject} whose ids step evenly (like 41, 42, 43); its longest such run is usually {}",
            num(v),
            num(b)
        ),
        SignalKind::RefusedPaths => format!(
            "refused by policy on {} distinct paths lately ({} of recent requests) before it has a baseline of its own",
            num(v),
            percent(b)
        ),
        // The other signals are worded by `detail`.
        _ => String::new(),
    }
}

fn num(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn bytes(x: f64) -> String {
    const KIB: f64 = 1024.0;
    if x >= KIB * KIB {
        format!("{:.1} MiB", x / (KIB * KIB))
    } else if x >= KIB {
        format!("{:.1} KiB", x / KIB)
    } else {
        format!("{x:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::Subject;

    #[test]
    fn details_read_as_sentences() {
        let rate = Signal {
            kind: SignalKind::Rate,
            strength: 1.0,
            value: 42.0,
            baseline: 3.0,
            subject: Subject::default(),
        };
        assert_eq!(detail(&rate), "rate 42/s vs usual 3.0/s");
        let out = Signal {
            kind: SignalKind::BytesOut,
            strength: 1.0,
            value: 40960.0,
            baseline: 2048.0,
            subject: Subject::default(),
        };
        assert_eq!(detail(&out), "responses 40.0 KiB vs usual 2.0 KiB");
        let denials = Signal {
            kind: SignalKind::DenialBurst,
            strength: 1.0,
            value: 0.6,
            baseline: 0.01,
            subject: Subject::default(),
        };
        assert_eq!(
            detail(&denials),
            "denied 60.0% of recent requests vs usual 1.0%"
        );
    }
}
