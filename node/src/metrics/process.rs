//! The process's own figures, as Prometheus' client libraries export them (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...): what a worker's CPU and memory budget is sized by (OPERATOR-GUIDE,
//! "Sizing"), read from `/proc/self` at each scrape. Elsewhere than Linux there are none.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Registered on a node's registry; reads the figures when scraped.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of the process's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub threads: u64,
}

impl ProcessStats {
    /// This process's figures now, or `None` where `/proc` does not have them.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(boot_time)?;
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        parse_stat(&stat, u64::try_from(ticks).ok()?, u64::try_from(page).ok()?, boot_time)
    }
}

/// `btime` of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The figures of a `/proc/self/stat` line (proc(5)): its fields after the command name, which is in parentheses
/// and may itself hold spaces and parentheses, so the fields start after its last `)`.
fn parse_stat(stat: &str, ticks_per_second: u64, page_size: u64, boot_time: u64) -> Option<ProcessStats> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name: field n is at index n - 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = ticks_per_second.max(1) as f64;
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        threads: field(20)?,
        start_time_seconds: boot_time as f64 + field(22)? as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = ProcessStats::read() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges = [
            ("process_resident_memory", "Resident memory size in bytes", Some(Unit::Bytes), s.resident_bytes as f64),
            ("process_virtual_memory", "Virtual memory size in bytes", Some(Unit::Bytes), s.virtual_bytes as f64),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch in seconds",
                Some(Unit::Seconds),
                s.start_time_seconds,
            ),
            ("process_threads", "Threads of the process", None, s.threads as f64),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat line whose command name has spaces and a parenthesis, as a thread renamed by its program can.
    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat = "4242 (zeek (node) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 7 0 1000 \
                    123456789 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(stat, 100, 4096, 1_700_000_000).expect("parses");
        assert_eq!(s.cpu_seconds, 3.0, "utime 250 + stime 50 ticks at 100 a second");
        assert_eq!(s.threads, 7);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0, "boot time + 1000 ticks");
        assert_eq!((s.virtual_bytes, s.resident_bytes), (123_456_789, 3000 * 4096));
        assert_eq!(parse_stat("4242 (cut", 100, 4096, 0), None);
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"), Some(1_700_000_000));
    }

    #[test]
    fn this_process_has_figures() {
        if cfg!(target_os = "linux") {
            let s = ProcessStats::read().expect("/proc/self/stat");
            assert!(s.resident_bytes > 0 && s.threads >= 1 && s.start_time_seconds > 1e9, "{s:?}");
        }
    }
}
