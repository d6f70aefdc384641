//! Whether this instance should receive traffic, as `/readyz` reports it. Anything that makes it
//! unfit holds a named reason (`starting` until config, TLS and the audit writer are up,
//! `draining` from SIGTERM on, or another part's own, such as a shared store that is away) and
//! releases it when fit again; ready means no reason is held.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub const STARTING: &str = "starting";
pub const DRAINING: &str = "draining";

#[derive(Debug)]
pub struct Readiness {
    held: Mutex<BTreeSet<Cow<'static, str>>>,
    /// Mirrors `held.is_empty()` so a probe reads one atomic.
    ready: AtomicBool,
}

impl Default for Readiness {
    /// Not ready: held for [`STARTING`].
    fn default() -> Self {
        let r = Readiness {
            held: Mutex::new(BTreeSet::new()),
            ready: AtomicBool::new(true),
        };
        r.hold(STARTING);
        r
    }
}

impl Readiness {
    pub fn hold(&self, reason: impl Into<Cow<'static, str>>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(reason.into());
        self.ready.store(false, Ordering::Release);
    }

    pub fn release(&self, reason: &str) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(reason);
        self.ready.store(held.is_empty(), Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The reasons held, sorted: what `/readyz` says when it answers 503.
    pub fn reasons(&self) -> Vec<String> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.iter().map(|r| r.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_reason_is_released() {
        let r = Readiness::default();
        assert!(!r.is_ready());
        assert_eq!(r.reasons(), vec![STARTING]);
        r.hold("cluster");
        r.release(STARTING);
        assert!(!r.is_ready());
        r.release("cluster");
        assert!(r.is_ready());
        r.release("never held");
        assert!(r.is_ready());
        r.hold(DRAINING);
        assert_eq!(
            (r.is_ready(), r.reasons()),
            (false, vec![DRAINING.to_owned()])
        );
    }
}
