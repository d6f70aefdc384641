//! A small append-only file of JSON lines that keeps live protocol state (session bindings, task
//! owners, tool pins) across a restart. Replayed in order at start (the last line about a key
//! wins), then rewritten compactly; rewritten again when it has grown well past what it holds.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<(Option<File>, usize)>,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns it with the lines it holds.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Vec<String>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let lines = match File::open(path) {
            Ok(f) => BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.trim().is_empty())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let count = lines.len();
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new((Some(file), count)),
            },
            lines,
        ))
    }

    /// Appends one line; returns how many lines the file holds. A failed write is logged: the
    /// state is still right in memory, only its survival of a restart is at risk.
    pub fn append(&self, line: &str) -> usize {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let (file, count) = &mut *guard;
        if let Some(f) = file.as_mut() {
            let mut text = String::with_capacity(line.len() + 1);
            text.push_str(line);
            text.push('\n');
            if let Err(e) = f.write_all(text.as_bytes()) {
                tracing::error!(path = %self.path.display(), "cannot write protocol state: {e}");
            }
        }
        *count += 1;
        *count
    }

    /// Replaces the file with `lines`, atomically (a new file renamed over the old one).
    pub fn rewrite(&self, lines: &[String]) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = self.path.with_extension("tmp");
        let written = (|| -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            let mut text = String::new();
            for l in lines {
                text.push_str(l);
                text.push('\n');
            }
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            OpenOptions::new().append(true).open(&self.path)
        })();
        match written {
            Ok(f) => *guard = (Some(f), lines.len()),
            Err(e) => {
                tracing::error!(path = %self.path.display(), "cannot compact protocol state: {e}")
            }
        }
    }
}
