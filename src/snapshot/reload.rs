//! The live config: an `ArcSwap` of the compiled snapshot. A reload (SIGHUP, a change of the file
//! or of a TLS file it names, `POST /reload`) validates and compiles a complete new snapshot off
//! the request path and swaps it in; a failed reload keeps the running snapshot. Requests hold the
//! `Arc` they started with, so in-flight requests finish on their own config.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::compile::{compile, Snapshot};
use crate::config::load::ConfigError;
use crate::config::validate::load_and_validate;
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

impl ConfigHandle {
    pub fn load(path: &Path, metrics: Arc<Metrics>) -> Result<Self, Vec<ConfigError>> {
        let snap = build_snapshot(path, None, 1)?;
        metrics.set_max_agent_series(snap.telemetry.max_agent_series);
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
        match build_snapshot(&self.path, Some(&previous), generation) {
            Ok(snap) => {
                if snap.listen != previous.listen || snap.admin_listen != previous.admin_listen {
                    tracing::warn!("listen addresses changed: they take effect on restart");
                }
                self.metrics
                    .set_max_agent_series(snap.telemetry.max_agent_series);
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
        spawn_file_watcher(handle);
    }
}

fn spawn_file_watcher(handle: Arc<ConfigHandle>) {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let files: Vec<PathBuf> = handle
        .watched_files()
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    let names = files.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let relevant = ev.paths.iter().any(|p| {
                // Kubernetes updates a mounted ConfigMap or Secret by swapping its `..data`
                // symlink: the names warden reads never appear in those events.
                p.file_name() == Some(std::ffi::OsStr::new("..data"))
                    || names.iter().any(|f| {
                        f == p || (f.file_name().is_some() && f.file_name() == p.file_name())
                    })
            });
            if relevant && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("file watching unavailable ({e}); reload with SIGHUP or POST /reload");
            return;
        }
    };
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch {}: {e}", d.display());
        }
    }
    tokio::spawn(async move {
        let _keep = watcher;
        while rx.recv().await.is_some() {
            // Debounce: an editor's save is several events; reload once they settle.
            loop {
                match tokio::time::timeout(Duration::from_millis(150), rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let h = handle.clone();
            let _ = tokio::task::spawn_blocking(move || h.reload()).await;
        }
    });
}
