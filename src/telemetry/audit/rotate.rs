//! The log file on disk: opening it onto the existing chain, appending, and rotation.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::chain::{check_line, HexHash, GENESIS};

/// Longer lines are not records this log wrote: a record holds at most a request path and a
/// few names, well under this.
const MAX_LINE: u64 = 1 << 20;
const CHUNK: u64 = 8 << 10;

/// `audit.jsonl` -> `audit.jsonl.N`.
pub fn rotated_name(path: &Path, n: u64) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The rotated files of `path` (`path.1`, `path.2`, ...) in rotation order, then `path` itself
/// if it exists: the order `verify_chain` wants.
pub fn chain_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut indexed = rotated_indices(path)?;
    indexed.sort_unstable();
    let mut files: Vec<PathBuf> = indexed.into_iter().map(|n| rotated_name(path, n)).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    Ok(files)
}

fn rotated_indices(path: &Path) -> io::Result<Vec<u64>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry_name = entry?.file_name();
        let entry_name = entry_name.to_string_lossy();
        if let Some(n) = entry_name
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    Ok(out)
}

/// The end of a file: where its last complete line ends, and that line.
struct Tail {
    complete_len: u64,
    last: Option<Vec<u8>>,
}

fn read_tail(file: &mut File) -> io::Result<Option<Tail>> {
    let len = file.metadata()?.len();
    let end = match rfind_newline(file, len, MAX_LINE)? {
        Some(end) => end,
        // No newline: nothing complete, the whole file is one torn line.
        None if len <= MAX_LINE => {
            return Ok(Some(Tail {
                complete_len: 0,
                last: None,
            }))
        }
        None => return Ok(None),
    };
    let start = match rfind_newline(file, end, MAX_LINE)? {
        Some(p) => p + 1,
        None if end <= MAX_LINE => 0,
        None => return Ok(None),
    };
    let mut last = vec![0; usize::try_from(end - start).unwrap_or(0)];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut last)?;
    Ok(Some(Tail {
        complete_len: end + 1,
        last: Some(last),
    }))
}

/// Offset of the last `\n` in `[before - limit, before)`.
fn rfind_newline(file: &mut File, before: u64, limit: u64) -> io::Result<Option<u64>> {
    let floor = before.saturating_sub(limit);
    let mut end = before;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > floor {
        let start = end.saturating_sub(CHUNK).max(floor);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The hash a new record in `file` chains onto, when the file ends in an intact record.
fn last_hash(path: &Path) -> io::Result<Option<HexHash>> {
    let mut file = File::open(path)?;
    let tail = read_tail(&mut file)?;
    Ok(tail
        .and_then(|t| t.last)
        .and_then(|line| check_line(&line).ok())
        .map(|s| s.hash))
}

/// The active log file, appended to by the writer thread only.
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    len: u64,
    next_index: u64,
    max_bytes: Option<u64>,
}

impl FileSink {
    /// Opens `path` to continue its chain, and returns the hash the next record links to.
    ///
    /// A torn last line (a write cut short by a crash: no final newline) is cut off, so the
    /// chain goes on from the last complete record. A last complete line that is not an intact
    /// record is not chained onto: the file is rotated aside as it is, and a new chain starts.
    /// An empty or new file continues from the newest rotated file, if that ends intact.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> io::Result<(FileSink, HexHash)> {
        let next_index = rotated_indices(path)?.into_iter().max().unwrap_or(0) + 1;
        let mut sink = FileSink {
            path: path.to_path_buf(),
            file: None,
            len: 0,
            next_index,
            max_bytes,
        };
        let mut file = open_append(path)?;
        let tail = read_tail(&mut file)?;
        sink.len = file.metadata()?.len();
        sink.file = Some(file);
        let prev = match tail {
            None => sink.set_aside("its last line is too long to be a record")?,
            Some(Tail { complete_len, last }) => {
                if complete_len < sink.len {
                    sink.cut_torn_tail(complete_len)?;
                }
                match last.map(|line| check_line(&line)) {
                    Some(Ok(sealed)) => sealed.hash,
                    Some(Err(e)) => sink.set_aside(&e.to_string())?,
                    None => sink.previous_file_hash()?,
                }
            }
        };
        Ok((sink, prev))
    }

    fn cut_torn_tail(&mut self, complete_len: u64) -> io::Result<()> {
        tracing::warn!(
            path = %self.path.display(),
            bytes = self.len - complete_len,
            "audit log ends in a torn line; cutting it off"
        );
        self.file()?.set_len(complete_len)?;
        self.len = complete_len;
        Ok(())
    }

    fn set_aside(&mut self, why: &str) -> io::Result<HexHash> {
        tracing::warn!(path = %self.path.display(), why, "audit log does not end in an intact record; rotating it aside and starting a new chain");
        self.rotate()?;
        Ok(GENESIS)
    }

    fn previous_file_hash(&self) -> io::Result<HexHash> {
        if self.next_index == 1 {
            return Ok(GENESIS);
        }
        let previous = rotated_name(&self.path, self.next_index - 1);
        Ok(last_hash(&previous)?.unwrap_or(GENESIS))
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let file = open_append(&self.path)?;
            self.len = file.metadata()?.len();
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("audit log file not open"))
    }

    /// Whether `line_len` more bytes, after `pending` buffered ones, would overflow the file.
    /// An empty file takes any line, so an oversized record cannot stall rotation.
    pub fn must_rotate(&self, pending: usize, line_len: usize) -> bool {
        let used = self.len + pending as u64;
        self.max_bytes
            .is_some_and(|max| used > 0 && used + line_len as u64 > max)
    }

    /// Moves the current file to `path.N` and starts an empty one. Retrying after a failure is
    /// safe: once the rename is done, only the reopening is left.
    pub fn rotate(&mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            if let Err(e) = file
                .sync_all()
                .and_then(|()| fs::rename(&self.path, rotated_name(&self.path, self.next_index)))
            {
                self.file = Some(file);
                return Err(e);
            }
            self.next_index += 1;
            sync_dir(&self.path);
        }
        self.file()?;
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.file()?.sync_data()
    }
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file()?.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens for appending, creating the file (and its directory) if need be. The log says who
/// called what: a new file is readable by its owner and group only.
fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path)
}

/// Makes a rename durable. Best effort: some filesystems refuse to sync a directory.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            tracing::debug!(error = %e, "could not sync the audit log directory");
        }
    }
}
