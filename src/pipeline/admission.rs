//! Step 3's live state. The proxy's admission reads and updates the agent's quarantine, rate
//! bucket and in-flight count; `explain` gives the state, or leaves it "not evaluated".

use std::time::Duration;

use crate::decision::Reason;
use crate::ids::AgentId;
use crate::protocol::{RpcState, ToolPins};
use crate::snapshot::{AgentPolicy, Limits};

/// What step 3 found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitOutcome {
    Admitted,
    /// `explain` without live state: quarantine and rate limits were not judged.
    NotEvaluated,
    /// `quarantined`, `rate_limited` (with the wait before a retry) or `concurrency_limited`.
    Refused(Reason, Option<Duration>),
}

/// Judges step 3 for one request of `agent`, covered by `policy`.
pub trait Admission {
    fn admit(
        &mut self,
        agent: &AgentId,
        policy: &AgentPolicy,
        limits: &Limits,
        now_ms: i64,
    ) -> AdmitOutcome;

    /// The live agent-protocol state (session bindings, task owners, tool pins); `None` where it
    /// is not evaluated (`explain`).
    fn rpc(&self) -> Option<RpcLive<'_>> {
        None
    }
}

/// Live agent-protocol state, read by the message step.
#[derive(Clone, Copy)]
pub struct RpcLive<'a> {
    pub state: &'a dyn RpcState,
    pub pins: &'a ToolPins,
}

/// Admission state given from outside (`explain --quarantined`, tests), or not evaluated at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GivenAdmission {
    /// `None`: not evaluated.
    pub quarantined: Option<bool>,
    pub rate_limited: Option<bool>,
    pub concurrency_limited: Option<bool>,
}

impl Admission for GivenAdmission {
    fn admit(&mut self, _: &AgentId, _: &AgentPolicy, _: &Limits, _: i64) -> AdmitOutcome {
        if self.quarantined == Some(true) {
            return AdmitOutcome::Refused(Reason::Quarantined, None);
        }
        if self.rate_limited == Some(true) {
            return AdmitOutcome::Refused(Reason::RateLimited, Some(Duration::from_secs(1)));
        }
        if self.concurrency_limited == Some(true) {
            return AdmitOutcome::Refused(Reason::ConcurrencyLimited, None);
        }
        let all_given = self.quarantined.is_some()
            && self.rate_limited.is_some()
            && self.concurrency_limited.is_some();
        if all_given {
            AdmitOutcome::Admitted
        } else {
            AdmitOutcome::NotEvaluated
        }
    }
}
