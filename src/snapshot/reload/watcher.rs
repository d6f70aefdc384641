//! Reload when a file changes: the config and every file it names (TLS certificates, keys, CAs and
//! CRLs, the admin token, token keys and JWKS files, upstream TLS files), including files that a
//! reload adds. Editors and Kubernetes replace files by rename or symlink swap, so directories are
//! watched, not files: the directory each path is written in, and the directory its symlinks
//! resolve to. A ConfigMap or Secret update renames a new `..data` symlink into the mounted
//! directory; an event on `..data` in a watched directory reloads too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::ConfigHandle;

/// Events that arrive within this of each other are one change (an editor's save is several).
const SETTLE: Duration = Duration::from_millis(150);
/// The symlink Kubernetes swaps when a mounted ConfigMap or Secret changes.
const K8S_DATA: &str = "..data";

/// What the watcher looks at, recomputed after every reload.
#[derive(Debug, Default, PartialEq, Eq)]
struct WatchSet {
    /// Each file as the config names it, and where its symlinks lead.
    paths: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl WatchSet {
    fn new(files: Vec<PathBuf>) -> Self {
        let mut set = WatchSet::default();
        for file in files {
            let file = std::path::absolute(&file).unwrap_or(file);
            if let Ok(real) = std::fs::canonicalize(&file) {
                if let Some(dir) = real.parent() {
                    set.dirs.insert(dir.to_path_buf());
                }
                set.paths.insert(real);
            }
            if let Some(dir) = file.parent() {
                set.dirs.insert(dir.to_path_buf());
            }
            set.paths.insert(file);
        }
        set
    }

    fn concerns(&self, path: &Path) -> bool {
        if self.paths.contains(path) {
            return true;
        }
        path.file_name().is_some_and(|n| n == K8S_DATA)
            && path.parent().is_some_and(|d| self.dirs.contains(d))
    }
}

/// Starts watching; without inotify (or the like) it says so and leaves reloads to SIGHUP and
/// `POST /reload`.
pub fn spawn(handle: Arc<ConfigHandle>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let set = Arc::new(Mutex::new(WatchSet::new(handle.watched_files())));
    let seen = set.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        let set = seen.lock().unwrap_or_else(|p| p.into_inner());
        if ev.paths.iter().any(|p| set.concerns(p)) {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("file watching unavailable ({e}); reload with SIGHUP or POST /reload");
            return;
        }
    };
    let mut watching = BTreeSet::new();
    update_dirs(&mut watcher, &mut watching, &set);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            loop {
                match tokio::time::timeout(SETTLE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let h = handle.clone();
            let _ = tokio::task::spawn_blocking(move || h.reload()).await;
            // A reload may name new files, and a swapped symlink leads somewhere new.
            let fresh = WatchSet::new(handle.watched_files());
            *set.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
            update_dirs(&mut watcher, &mut watching, &set);
        }
    });
}

/// Watches the set's directories that are not watched yet and lets go of those it dropped.
fn update_dirs(
    watcher: &mut notify::RecommendedWatcher,
    watching: &mut BTreeSet<PathBuf>,
    set: &Mutex<WatchSet>,
) {
    let wanted = set.lock().unwrap_or_else(|p| p.into_inner()).dirs.clone();
    for gone in watching.difference(&wanted) {
        let _ = watcher.unwatch(gone);
    }
    watching.retain(|d| wanted.contains(d));
    for dir in wanted {
        if watching.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watching.insert(dir);
            }
            Err(e) => tracing::warn!("cannot watch {}: {e}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_swap_and_symlink_targets_concern_the_set() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = std::fs::canonicalize(tmp.path()).expect("canonical");
        let version = dir.join("..2026_01_01");
        std::fs::create_dir(&version).expect("mkdir");
        std::fs::write(version.join("warden.yaml"), "x").expect("write");
        std::os::unix::fs::symlink("..2026_01_01", dir.join(K8S_DATA)).expect("link");
        std::os::unix::fs::symlink("..data/warden.yaml", dir.join("warden.yaml")).expect("link");
        let set = WatchSet::new(vec![dir.join("warden.yaml")]);
        assert_eq!(
            set.dirs,
            BTreeSet::from([dir.clone(), version.clone()]),
            "the mount and the version it points at"
        );
        assert!(set.concerns(&dir.join("warden.yaml")));
        assert!(set.concerns(&version.join("warden.yaml")));
        assert!(set.concerns(&dir.join(K8S_DATA)));
        assert!(!set.concerns(&dir.join("other.yaml")));
        assert!(!set.concerns(&PathBuf::from("/elsewhere").join(K8S_DATA)));
    }
}
