//! Step 3 on live state: the agent's quarantine, its rate bucket and its requests in flight over
//! all its connections. The in-flight slot is held until the request's admission is dropped.

use tokio::time::Instant;

use super::conn_info::ConnInfo;
use super::runtime::Runtime;
use crate::admit::InFlightSlot;
use crate::decision::Reason;
use crate::ids::AgentId;
use crate::pipeline::{Admission, AdmitOutcome, RpcLive};
use crate::snapshot::{AgentPolicy, Limits};

pub struct LiveAdmission<'a> {
    rt: &'a Runtime,
    conn: &'a ConnInfo,
    slot: Option<InFlightSlot>,
}

impl<'a> LiveAdmission<'a> {
    pub fn new(rt: &'a Runtime, conn: &'a ConnInfo) -> Self {
        LiveAdmission {
            rt,
            conn,
            slot: None,
        }
    }
}

impl LiveAdmission<'_> {
    /// The in-flight slot taken for the request, if it was admitted.
    pub fn into_slot(self) -> Option<InFlightSlot> {
        self.slot
    }
}

impl Admission for LiveAdmission<'_> {
    fn admit(
        &mut self,
        agent: &AgentId,
        policy: &AgentPolicy,
        limits: &Limits,
        now_ms: i64,
    ) -> AdmitOutcome {
        let state = self.conn.agent_state(self.rt, agent);
        state.touch(now_ms);
        let cluster = self.rt.cluster();
        if cluster.is_some_and(|c| c.refuses()) {
            return AdmitOutcome::Refused(Reason::ClusterUnavailable, None);
        }
        if state.is_quarantined(now_ms) {
            return AdmitOutcome::Refused(Reason::Quarantined, None);
        }
        if let Some(limit) = policy.rate_limit.as_ref() {
            // This replica's part of a fleet-wide limit: pushed state, never a network wait.
            let share = cluster.map_or(1.0, |c| c.rate_share(agent));
            if let Err(wait) = state.check_rate(Some(limit), Instant::now(), share) {
                return AdmitOutcome::Refused(Reason::RateLimited, Some(wait));
            }
        }
        match state.in_flight.try_acquire(limits.max_in_flight_per_agent) {
            Some(slot) => {
                self.slot = Some(slot);
                AdmitOutcome::Admitted
            }
            None => AdmitOutcome::Refused(Reason::ConcurrencyLimited, None),
        }
    }

    fn rpc(&self) -> Option<RpcLive<'_>> {
        Some(RpcLive {
            state: &*self.rt.rpc_state,
            pins: &self.rt.pins,
        })
    }
}
