//! Which of the agent listener's worker threads the code runs on. Each worker has a runtime of
//! its own; a connection opened on a worker runs its task there, so pools keep a worker's
//! connections for that worker's requests (no request wakes another thread). Every other thread
//! (the control runtime, tests serving on their own runtime) is [`SHARED`].

use std::cell::Cell;

/// Any thread that is not a worker of its own.
pub const SHARED: usize = 0;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(SHARED) };
}

/// Marks this thread as worker `index` (0-based); its slot is `index + 1`.
pub fn enter(index: usize) {
    WORKER.with(|w| w.set(index.saturating_add(1)));
}

/// This thread's slot: [`SHARED`], or its worker's index plus one.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_shared_until_they_enter_a_worker() {
        assert_eq!(current(), SHARED);
        std::thread::spawn(|| {
            enter(2);
            assert_eq!(current(), 3);
        })
        .join()
        .unwrap();
        assert_eq!(
            current(),
            SHARED,
            "another thread's worker is not this one's"
        );
    }
}
