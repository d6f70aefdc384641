//! The agent-facing accept loop: `max_connections`, then one task per connection; on shutdown,
//! stop accepting and drain the open connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::serve_connection;
use super::runtime::Runtime;

struct Active {
    rt: Arc<Runtime>,
    count: Arc<AtomicUsize>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.rt.metrics.active_connections.dec();
    }
}

/// Accepts until `shutdown` turns true, then waits up to `drain` for open connections to finish.
pub async fn run(
    rt: Arc<Runtime>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let max = rt.config.snapshot().limits.max_connections;
                if active.load(Ordering::Relaxed) >= max {
                    rt.metrics.connections_refused.inc();
                    drop(tcp);
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                rt.metrics.active_connections.inc();
                let guard = Active { rt: rt.clone(), count: active.clone() };
                let rt = rt.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    serve_connection(rt, tcp, peer, shutdown).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + drain;
    while active.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
