//! The live config: an `ArcSwap` of the compiled snapshot. A reload (SIGHUP, `POST /reload`, a
//! change of the file or of any file it names — see [`watcher`]) validates and compiles a complete
//! new snapshot off the request path and swaps it in; a failed reload keeps the running snapshot.
//! Requests hold the `Arc` they started with, so in-flight requests finish on their own config.

mod watcher;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::compile::{compile, compile_measured, Snapshot};
use crate::config::load::ConfigError;
use crate::config::validate::load_and_validate;
use crate::telemetry::cert_expiry;
use crate::telemetry::metrics::Metrics;

pub struct ConfigHandle {
    current: ArcSwap<Snapshot>,
    path: PathBuf,
    generation: AtomicU64,
    /// Reloads are serialised so two cannot interleave their compile and swap.
    reloading: Mutex<()>,
    metrics: Arc<Metrics>,
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for ConfigHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigHandle")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Loads, validates and compiles a config file in one step.
pub fn build_snapshot(
    path: &Path,
    previous: Option<&Snapshot>,
    generation: u64,
) -> Result<Snapshot, Vec<ConfigError>> {
    let loaded = load_and_validate(path)?;
    compile(&loaded, previous, generation)
}

/// [`build_snapshot`] for the running proxy, whose upstream pools are measured.
fn build_measured(
    path: &Path,
    previous: Option<&Snapshot>,
    generation: u64,
    metrics: &Metrics,
) -> Result<Snapshot, Vec<ConfigError>> {
    let loaded = load_and_validate(path)?;
    compile_measured(
        &loaded,
        previous,
        generation,
        Some(crate::upstream::PoolGauges {
            connections: &metrics.upstream_connections,
            max_connections: &metrics.upstream_max_connections,
        }),
    )
}

impl ConfigHandle {
    pub fn load(path: &Path, metrics: Arc<Metrics>) -> Result<Self, Vec<ConfigError>> {
        let snap = build_measured(path, None, 1, &metrics)?;
        metrics.set_max_agent_series(snap.telemetry.max_agent_series);
        metrics.set_certificate_expiry(&cert_expiry::read(&snap.expiry_files));
        let (changed, _) = watch::channel(1);
        Ok(ConfigHandle {
            current: ArcSwap::from_pointee(snap),
            path: path.to_path_buf(),
            generation: AtomicU64::new(1),
            reloading: Mutex::new(()),
            metrics,
            changed,
        })
    }

    /// The snapshot to decide a request with; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `cluster` block the running config started with.
    pub fn cluster_settings(&self) -> Option<crate::cluster::ClusterSettings> {
        self.snapshot().cluster.clone()
    }

    /// Notified with the new generation after each successful reload.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Rebuilds from the file; blocking (file I/O and key parsing), so async callers use
    /// `spawn_blocking`.
    pub fn reload(&self) -> Result<u64, Vec<ConfigError>> {
        let _guard = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let previous = self.current.load_full();
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        match build_measured(&self.path, Some(&previous), generation, &self.metrics) {
            Ok(snap) => {
                if snap.listen != previous.listen || snap.admin_listen != previous.admin_listen {
                    tracing::warn!("listen addresses changed: they take effect on restart");
                }
                if snap.workers != previous.workers {
                    tracing::warn!("workers changed: it takes effect on restart");
                }
                if snap.telemetry.log_format != previous.telemetry.log_format {
                    tracing::warn!("telemetry.log_format changed: it takes effect on restart");
                }
                self.metrics
                    .set_max_agent_series(snap.telemetry.max_agent_series);
                self.metrics
                    .set_certificate_expiry(&cert_expiry::read(&snap.expiry_files));
                self.generation.store(generation, Ordering::Relaxed);
                self.current.store(Arc::new(snap));
                self.metrics.config_reloads.with_label_values(&["ok"]).inc();
                self.changed.send_replace(generation);
                tracing::info!(generation, path = %self.path.display(), "config reloaded");
                Ok(generation)
            }
            Err(errors) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
                for e in &errors {
                    tracing::error!("reload refused, keeping the running config: {e}");
                }
                Err(errors)
            }
        }
    }

    /// Files whose change triggers a reload: the config and every file it names.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let snap = self.snapshot();
        let mut files = vec![self.path.clone()];
        files.extend(snap.watched_files.iter().cloned());
        files
    }
}

/// Reloads on SIGHUP and whenever a watched file changes (editors and ConfigMaps replace files
/// by rename, so the parent directories are watched, not the files).
pub fn spawn_reloaders(handle: Arc<ConfigHandle>, watch_files: bool) {
    #[cfg(unix)]
    {
        let h = handle.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::error!("cannot listen for SIGHUP");
                return;
            };
            while hup.recv().await.is_some() {
                let h = h.clone();
                let _ = tokio::task::spawn_blocking(move || h.reload()).await;
            }
        });
    }
    if watch_files {
        watcher::spawn(handle);
    }
}
