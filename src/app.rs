//! The composition root: load the config, build the runtime, bind the agent and admin listeners,
//! start the reloaders, and stop in order on shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::cluster::{Cluster, ClusterLink};
use crate::config::load::ConfigError;
pub use crate::server::workers::Threads;
use crate::server::{workers, Runtime};
use crate::snapshot::reload::{spawn_reloaders, ConfigHandle};
use crate::telemetry::audit::{AuditLog, AuditOptions, AuditTarget};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::readiness;

#[derive(Debug, Error)]
pub enum AppError {
    #[error("invalid config:\n{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        path: String,
        source: std::io::Error,
    },
}

/// How long SIGTERM waits for in-flight requests before exiting anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running warden.
pub struct Running {
    pub agent_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub runtime: Arc<Runtime>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The admin listener outlives the drain, so `/readyz` can say 503 while it lasts.
    admin_stop: watch::Sender<bool>,
    admin_task: Option<JoinHandle<()>>,
}

impl Running {
    /// Reports not ready, stops accepting, drains in-flight requests (up to [`DRAIN_TIMEOUT`]),
    /// flushes the audit log, then closes the admin listener and returns.
    pub async fn shutdown(self) {
        self.runtime.readiness.hold(readiness::DRAINING);
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(audit) = &self.runtime.audit {
            if let Err(e) = audit.flush().await {
                tracing::error!("audit log flush: {e}");
            }
        }
        let _ = self.admin_stop.send(true);
        if let Some(admin) = self.admin_task {
            let _ = admin.await;
        }
    }
}

/// Options for [`start`]; tests inject a clock and skip the file watchers.
pub struct StartOptions {
    pub clock: Clock,
    pub watch_files: bool,
    /// Where agents' connections run: the caller's runtime, or the config's `workers` threads.
    pub threads: Threads,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            clock: Clock::system(),
            watch_files: true,
            threads: Threads::Shared,
        }
    }
}

/// Loads the config and starts serving; returns once both listeners are bound.
pub async fn start(config: &Path, opts: StartOptions) -> Result<Running, AppError> {
    let metrics = Arc::new(Metrics::new(5000)?);
    let path = config.to_path_buf();
    let m = metrics.clone();
    let handle = tokio::task::spawn_blocking(move || ConfigHandle::load(&path, m))
        .await
        .map_err(|e| AppError::Config(vec![join_error(config, e)]))?
        .map_err(AppError::Config)?;
    let handle = Arc::new(handle);
    let snap = handle.snapshot();
    let audit = open_audit(&snap.telemetry, &metrics)?;
    let cluster = open_cluster(&handle, &metrics)?;
    let runtime = Arc::new(Runtime::new(
        handle.clone(),
        metrics,
        opts.clock,
        audit,
        cluster.as_ref().map(|(c, _)| c.clone()),
    ));
    if let Some((_, link)) = cluster {
        link.spawn(runtime.local_agents());
    }

    let sockets = match opts.threads {
        Threads::Workers => snap.workers,
        Threads::Shared => 1,
    };
    let bind_error = |source| AppError::Bind {
        addr: snap.listen,
        source,
    };
    let agent_sockets = workers::bind(snap.listen, sockets).map_err(bind_error)?;
    let agent_addr = agent_sockets.addr;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shutdown_rx_gauges = shutdown_rx.clone();
    let mut tasks = Vec::new();
    let mut admin_addr = None;
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let mut admin_task = None;
    if let Some(addr) = snap.admin_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        admin_addr = l.local_addr().ok();
        admin_task = Some(tokio::spawn(crate::admin::run(
            runtime.clone(),
            l,
            admin_stop_rx,
        )));
    }
    tasks.push(
        workers::serve(
            runtime.clone(),
            agent_sockets,
            opts.threads,
            shutdown_rx,
            DRAIN_TIMEOUT,
        )
        .map_err(bind_error)?,
    );
    spawn_reloaders(handle, opts.watch_files);
    let gauges = runtime.clone();
    let mut stop = shutdown_rx_gauges;
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => gauges.refresh_agent_gauges(),
                _ = stop.changed() => return,
            }
        }
    }));
    // Config, TLS and the audit writer are up and both listeners bound.
    runtime.readiness.release(readiness::STARTING);
    tracing::info!(%agent_addr, admin = ?admin_addr, mode = ?snap.mode, "warden serving");
    Ok(Running {
        agent_addr,
        admin_addr,
        runtime,
        shutdown,
        tasks,
        admin_stop,
        admin_task,
    })
}

/// The handle on the fleet's shared state and its link (to spawn once the runtime exists),
/// when the config has a `cluster` block. Its settings are read once: changing them needs a
/// restart.
fn open_cluster(
    handle: &ConfigHandle,
    metrics: &Metrics,
) -> Result<Option<(Arc<Cluster>, ClusterLink)>, AppError> {
    let Some(settings) = handle.cluster_settings() else {
        return Ok(None);
    };
    let up = prometheus::IntGauge::new(
        "warden_cluster_up",
        "1 while the shared store (cluster.redis) answers",
    )?;
    metrics.registry.register(Box::new(up.clone()))?;
    let opened = Cluster::new(settings, up).map_err(|e| {
        AppError::Config(vec![ConfigError {
            file: handle.path().to_path_buf(),
            line: 1,
            col: 1,
            key_path: "cluster.redis".into(),
            message: e,
        }])
    })?;
    Ok(Some(opened))
}

/// Opens the audit log the config names (blocking file work, done once at start).
fn open_audit(
    t: &crate::snapshot::TelemetrySettings,
    metrics: &Metrics,
) -> Result<Option<AuditLog>, AppError> {
    let Some(target) = t.audit_log.as_deref() else {
        return Ok(None);
    };
    let target = AuditTarget::from_config(target);
    if let AuditTarget::File(path) = &target {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    let opts = AuditOptions {
        max_bytes: t.audit_max_bytes,
        records_total: Some(metrics.audit_records.clone()),
        ..AuditOptions::default()
    };
    AuditLog::open(target, opts)
        .map(Some)
        .map_err(|source| AppError::Audit {
            path: t.audit_log.clone().unwrap_or_default(),
            source,
        })
}

fn join_error(config: &Path, e: tokio::task::JoinError) -> ConfigError {
    ConfigError {
        file: config.to_path_buf(),
        line: 1,
        col: 1,
        key_path: String::new(),
        message: format!("loading failed: {e}"),
    }
}

/// `warden serve`: runs until SIGTERM or Ctrl-C, then drains and returns.
pub async fn serve(config: &Path, watch_files: bool) -> Result<(), AppError> {
    let running = start(
        config,
        StartOptions {
            clock: Clock::system(),
            watch_files,
            threads: Threads::Workers,
        },
    )
    .await?;
    wait_for_termination().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
