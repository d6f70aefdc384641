//! The threads that serve agents. With [`Threads::Workers`] (what `serve` runs), `workers`
//! threads (default: one per core) each run a single-threaded runtime with a listening socket of
//! its own on the agent address (`SO_REUSEPORT`: the kernel spreads new connections over the
//! sockets). A connection, its requests and the upstream connections they open stay on one
//! thread, so no request wakes another thread, where a work-stealing runtime moves tasks between
//! its threads and a request often crosses between them twice (nginx's worker model). What the
//! workers share (the snapshot, agents, metrics, anomaly engine, audit queue, `max_connections`)
//! is built for many threads already. [`Threads::Shared`] serves on the caller's runtime
//! instead: one listener, and a paused test clock governs it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::listener::{self, Slots};
use super::runtime::Runtime;

/// Where the agent listener's connections run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// On the runtime that starts warden.
    #[default]
    Shared,
    /// On the config's `workers` threads, each with its own runtime and listening socket.
    Workers,
}

/// The agent listener's bound sockets: one per worker, all on one address.
#[derive(Debug)]
pub struct AgentSockets {
    sockets: Vec<std::net::TcpListener>,
    pub addr: SocketAddr,
}

/// The accept queue of each socket, as tokio's own listeners have it.
const BACKLOG: i32 = 1024;

/// Binds `count` listening sockets on `addr` (a port of 0 is chosen once, by the first).
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<AgentSockets> {
    let count = count.max(1);
    let first = socket(addr, count > 1)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(socket(addr, true)?);
    }
    Ok(AgentSockets { sockets, addr })
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    // Only warden's own sockets share the port: Linux lets a socket join a port's group only
    // under the same user, and one socket alone never opens the group at all.
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// Serves agents on `sockets` until `shutdown` turns true, then drains for up to `drain`; the
/// handle ends when every connection has. Also re-checks open channels after each reload.
pub fn serve(
    rt: Arc<Runtime>,
    sockets: AgentSockets,
    threads: Threads,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> io::Result<JoinHandle<()>> {
    tokio::spawn(super::supervise::run(rt.clone(), shutdown.clone()));
    let slots = Arc::new(Slots::default());
    if threads == Threads::Shared {
        let mut loops = Vec::new();
        for s in sockets.sockets {
            let l = TcpListener::from_std(s)?;
            let run = listener::run(rt.clone(), l, slots.clone(), shutdown.clone(), drain);
            loops.push(tokio::spawn(run));
        }
        return Ok(tokio::spawn(async move {
            for l in loops {
                let _ = l.await;
            }
        }));
    }
    let mut handles = Vec::new();
    for (i, s) in sockets.sockets.into_iter().enumerate() {
        let (rt, slots, shutdown) = (rt.clone(), slots.clone(), shutdown.clone());
        let h = std::thread::Builder::new()
            .name(format!("warden-worker-{i}"))
            .spawn(move || worker(i, rt, s, slots, shutdown, drain))?;
        handles.push(h);
    }
    Ok(tokio::task::spawn_blocking(move || {
        for h in handles {
            if h.join().is_err() {
                tracing::error!("an agent worker thread panicked");
            }
        }
    }))
}

/// One worker thread: its runtime, its socket's accept loop, and the connections it accepted,
/// until they have drained.
fn worker(
    index: usize,
    rt: Arc<Runtime>,
    socket: std::net::TcpListener,
    slots: Arc<Slots>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    crate::worker::enter(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(worker = index, "cannot start the worker's runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        match TcpListener::from_std(socket) {
            Ok(l) => listener::run(rt, l, slots, shutdown, drain).await,
            Err(e) => tracing::error!(worker = index, "cannot listen: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn the_workers_sockets_share_one_port_and_each_accepts_some_connections() {
        let sockets = bind(loopback(), 3).unwrap();
        assert_eq!(sockets.sockets.len(), 3);
        for s in &sockets.sockets {
            assert_eq!(s.local_addr().unwrap(), sockets.addr);
        }
        // Each connection lands on one socket, spread by the kernel's hash of its addresses.
        let clients: Vec<_> = (0..60)
            .map(|_| std::net::TcpStream::connect(sockets.addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let mut accepted = Vec::new();
        for s in &sockets.sockets {
            let mut n = 0;
            while s.accept().is_ok() {
                n += 1;
            }
            accepted.push(n);
        }
        assert_eq!(
            accepted.iter().sum::<usize>(),
            clients.len(),
            "{accepted:?}"
        );
        assert!(accepted.iter().all(|&n| n > 0), "{accepted:?}");
    }

    #[test]
    fn a_single_socket_lets_no_other_socket_share_its_port() {
        let sockets = bind(loopback(), 1).unwrap();
        let err = socket(sockets.addr, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let sockets = bind(loopback(), 2).unwrap();
        assert!(
            socket(sockets.addr, false).is_err(),
            "a socket without SO_REUSEPORT cannot join the group"
        );
    }

    #[test]
    fn a_taken_address_is_an_error_not_a_shared_port() {
        let taken = std::net::TcpListener::bind(loopback()).unwrap();
        let err = bind(taken.local_addr().unwrap(), 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
