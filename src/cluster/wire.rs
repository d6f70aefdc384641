//! What replicas tell each other on the events channel, one line a message:
//! `<replica> q <until_ms> <agent>` or `<replica> r <agent>`.

use crate::ids::AgentId;

/// A change of shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Quarantined until Unix ms `until_ms` (`i64::MAX`: until released).
    Quarantine {
        agent: AgentId,
        until_ms: i64,
    },
    Release {
        agent: AgentId,
    },
}

impl Event {
    pub fn encode(&self, replica: &str) -> String {
        match self {
            Event::Quarantine { agent, until_ms } => format!("{replica} q {until_ms} {agent}"),
            Event::Release { agent } => format!("{replica} r {agent}"),
        }
    }

    /// The event and the replica that sent it; `None` for anything malformed.
    pub fn decode(text: &str) -> Option<(&str, Event)> {
        let mut parts = text.splitn(3, ' ');
        let replica = parts.next()?;
        let kind = parts.next()?;
        let rest = parts.next()?;
        let event = match kind {
            "q" => {
                let (until, agent) = rest.split_once(' ')?;
                Event::Quarantine {
                    agent: AgentId::parse(agent).ok()?,
                    until_ms: until.parse().ok()?,
                }
            }
            "r" => Event::Release {
                agent: AgentId::parse(rest).ok()?,
            },
            _ => return None,
        };
        Some((replica, event))
    }
}

/// A fresh replica id: 16 hex digits from the OS's random source.
pub fn replica_id() -> String {
    let mut bytes = [0u8; 8];
    let random = rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .is_ok();
    if !random {
        // Unique enough for a process: its id and the time.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = ((t as u64) ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_garbage_is_dropped() {
        let agent = AgentId::parse("spiffe://example.org/agent/a").unwrap();
        for e in [
            Event::Quarantine {
                agent: agent.clone(),
                until_ms: i64::MAX,
            },
            Event::Release {
                agent: agent.clone(),
            },
        ] {
            let text = e.encode("r1");
            assert_eq!(Event::decode(&text), Some(("r1", e)));
        }
        for bad in [
            "",
            "r1",
            "r1 q",
            "r1 q x spiffe://example.org/a",
            "r1 r SPIFFE://x/a",
            "r1 z a",
        ] {
            assert_eq!(Event::decode(bad), None, "{bad}");
        }
        assert_eq!(replica_id().len(), 16);
    }
}
