//! Waiting on a condition with a deadline, never for a fixed time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Polls `check` until it holds (true) or `limit` has passed (false).
pub async fn until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `check` keeps holding for the whole of `window` (polled): a proof that something does
/// not happen, which no condition can signal sooner.
pub async fn holds_for<F, Fut>(window: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + window;
    while Instant::now() < end {
        if !check().await {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    true
}
