//! The processes under test: starting them, waiting until they accept, reading the CPU they use,
//! and stopping exactly the processes this bench started.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a proxy may take to start accepting.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A free loopback port: bound on :0, then released for the process that will use it.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local addr: {e}"))
}

/// Whether an nginx binary is on the PATH (or in /usr/sbin, which a non-root PATH may omit).
pub fn find_nginx() -> Option<PathBuf> {
    find_binary("nginx")
}

/// Whether `redis-server` is on the PATH (or in /usr/sbin or /usr/bin).
pub fn find_redis() -> Option<PathBuf> {
    find_binary("redis-server")
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A started process; stopped (and its children with it) when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
    /// nginx does its work in worker processes: their CPU counts as the proxy's.
    with_children: bool,
}

impl Proc {
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: PathBuf,
        with_children: bool,
    ) -> Result<Proc, String> {
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name,
            child,
            log,
            with_children,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `addr` accepts a TCP connection; the process's log when it exits first.
    pub fn wait_ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening:\n{}",
                    self.name,
                    read_log(&self.log)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{} did not listen on {addr} within {READY_TIMEOUT:?}:\n{}",
            self.name,
            read_log(&self.log)
        ))
    }

    /// User plus system CPU time so far, in clock ticks, of the process (and its children).
    pub fn cpu_ticks(&self) -> Result<u64, String> {
        let pid = self.pid();
        let own = stat_of(pid)
            .map(|s| s.ticks)
            .ok_or_else(|| format!("{} (pid {pid}) has no /proc stat", self.name))?;
        if !self.with_children {
            return Ok(own);
        }
        Ok(own + children_ticks(pid))
    }

    /// Peak resident memory so far (`VmHWM`), in KiB, of the process (and its children).
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.pid();
        let own = peak_rss_of(pid).unwrap_or(0);
        if !self.with_children {
            return own;
        }
        own + children(pid).filter_map(peak_rss_of).sum::<u64>()
    }
}

/// `VmHWM` of `/proc/PID/status`, in KiB.
fn peak_rss_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM first: an nginx master stops its workers on it, SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

struct Stat {
    ppid: u32,
    ticks: u64,
}

/// utime + stime of `/proc/PID/stat` (fields 14 and 15); the fields are counted after the
/// command name, which may itself hold spaces and parentheses.
fn stat_of(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat {
        ppid,
        ticks: utime + stime,
    })
}

fn children_ticks(parent: u32) -> u64 {
    children(parent).filter_map(stat_of).map(|s| s.ticks).sum()
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(move |pid| stat_of(*pid).is_some_and(|s| s.ppid == parent))
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`; 100 on Linux in practice).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}
