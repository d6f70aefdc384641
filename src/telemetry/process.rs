//! The standard `process_*` metrics (CPU, memory, open and maximum file descriptors, threads,
//! start time), read from `/proc/self` at each scrape. A few lines of reading here instead of the
//! `prometheus` crate's `process` feature, which would add `procfs` and a second `rustix`.
//! Elsewhere than Linux the collector reports nothing.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// `/proc` counts CPU time in USER_HZ ticks, which the kernel fixes at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

pub struct ProcessCollector {
    cpu: Counter,
    resident: Gauge,
    virtual_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start_time: Gauge,
    descs: Vec<Desc>,
    /// Two scrapes at once must not interleave the counter's reset and set.
    collecting: Mutex<()>,
}

impl ProcessCollector {
    pub fn new() -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help));
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))?;
        let resident = gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )?;
        let virtual_bytes = gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        )?;
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.")?;
        let max_fds = gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        )?;
        let threads = gauge("process_threads", "Number of OS threads in the process.")?;
        let start_time = gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        )?;
        let mut descs = Vec::new();
        descs.extend(cpu.desc().into_iter().cloned());
        for g in [
            &resident,
            &virtual_bytes,
            &open_fds,
            &max_fds,
            &threads,
            &start_time,
        ] {
            descs.extend(g.desc().into_iter().cloned());
        }
        Ok(ProcessCollector {
            cpu,
            resident,
            virtual_bytes,
            open_fds,
            max_fds,
            threads,
            start_time,
            descs,
            collecting: Mutex::new(()),
        })
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.collecting.lock().unwrap_or_else(|p| p.into_inner());
        let Some(stat) = read_stat() else {
            return Vec::new();
        };
        self.cpu.reset();
        self.cpu.inc_by(stat.cpu_seconds);
        self.threads.set(stat.threads);
        self.virtual_bytes.set(stat.virtual_bytes);
        if let Some(start) = boot_time().map(|boot| boot + stat.start_ticks / TICKS_PER_SECOND) {
            self.start_time.set(start);
        }
        if let Some(kib) = status_kib("VmRSS:") {
            self.resident.set(kib * 1024.0);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as f64);
        }
        if let Some(max) = max_open_files() {
            self.max_fds.set(max);
        }
        let mut out = self.cpu.collect();
        for g in [
            &self.resident,
            &self.virtual_bytes,
            &self.open_fds,
            &self.max_fds,
            &self.threads,
            &self.start_time,
        ] {
            out.extend(g.collect());
        }
        out
    }
}

struct Stat {
    cpu_seconds: f64,
    threads: f64,
    start_ticks: f64,
    virtual_bytes: f64,
}

/// `/proc/self/stat`; the command name may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of proc(5): utime 14, stime 15, num_threads 20, starttime 22, vsize 23.
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        threads: field(20)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
    })
}

fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn status_kib(key: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn max_open_files() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(|soft| soft.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let c = ProcessCollector::new().expect("collector");
        let families = c.collect();
        let value = |name: &str| {
            let f = families
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            let m = &f.get_metric()[0];
            if f.name().ends_with("_total") {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        };
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start > now - 86_400.0 && start <= now + 1.0,
            "{start} vs {now}"
        );
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}
