//! An agent's requests in flight, over all its connections: `limits.max_in_flight_per_agent`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared counter of one agent's requests in flight.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

/// One admitted request; dropping it frees its slot.
#[derive(Debug)]
pub struct InFlightSlot(Arc<InFlight>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    /// Takes a slot unless `max` are taken already.
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> Option<InFlightSlot> {
        let taken = self.0.fetch_add(1, Ordering::Relaxed);
        if taken >= max {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(InFlightSlot(self.clone()))
    }

    pub fn current(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed() {
        let f = Arc::new(InFlight::default());
        let a = f.try_acquire(2).unwrap();
        let _b = f.try_acquire(2).unwrap();
        assert!(f.try_acquire(2).is_none());
        assert_eq!(f.current(), 2);
        drop(a);
        assert!(f.try_acquire(2).is_some());
    }
}
