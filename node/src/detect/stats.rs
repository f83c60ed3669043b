//! stats.log, as Zeek's policy/misc/stats.zeek writes it: every `Stats::report_interval` (5 minutes) of network
//! time, how much this node analysed since the last row (packets, bytes, connections, timers, files, events) and
//! what it holds now (memory, open connections, timers, files, bytes in reassembly). A SOC reads it to tell a quiet
//! network from a dead sensor.
//!
//! Each worker (the standalone node too, as `zeek`) measures its own engine, as each Zeek process does. Zeek's
//! `zeek_init` schedules the first `check_stats` `report_interval` after network time 0, so reading a trace it runs
//! at the first packet (after that packet was analysed: the btest's first row counts one packet), and each row
//! schedules the next `report_interval` after its own time. A scheduled event runs at the first packet whose time
//! reaches it, so a row's `ts` is that packet's time and its counts include it. At the end of input Zeek runs the
//! pending `check_stats` (its timers expire at termination), which writes a last row with the counts since the
//! previous one and schedules no other (`zeek_is_terminating()`); the runner reports the engine then, before it
//! logs the connections still open ([`crate::logs::LogSink::input_ended`]).
//!
//! The engine's counters come as [`EngineEvent::Counters`] (shared with capture-loss), only from the time the
//! next row is due ([`Handler::counters_due`]), so the rows cost nothing per packet. With analysis threads the
//! counters are the sum of their engines'. Reading live, the capture's drops and link counts and the lag of
//! network time behind the wall clock fill the columns Zeek sets only then (`-` reading a trace).

use super::events::{CaptureCounters, Counters};
use super::{Analysis, Cx, DetectConfig, EngineEvent, Handler, Role};
use crate::engine::EngineStats;
use crate::logs::{LogRecord, Schema, Value, f};

/// stats.log (`Stats::Info`).
pub static STATS_LOG: Schema = Schema {
    path: "stats",
    fields: &[
        f("ts", "time"),
        f("peer", "string"),
        f("mem", "count"),
        f("pkts_proc", "count"),
        f("bytes_recv", "count"),
        f("pkts_dropped", "count"),
        f("pkts_link", "count"),
        f("pkt_lag", "interval"),
        f("pkts_filtered", "count"),
        f("events_proc", "count"),
        f("events_queued", "count"),
        f("active_tcp_conns", "count"),
        f("active_udp_conns", "count"),
        f("active_icmp_conns", "count"),
        f("tcp_conns", "count"),
        f("udp_conns", "count"),
        f("icmp_conns", "count"),
        f("timers", "count"),
        f("active_timers", "count"),
        f("files", "count"),
        f("active_files", "count"),
        f("dns_requests", "count"),
        f("active_dns_requests", "count"),
        f("reassem_tcp_size", "count"),
        f("reassem_file_size", "count"),
        f("reassem_frag_size", "count"),
        f("reassem_unknown_size", "count"),
    ],
};

pub struct Stats;

impl Analysis for Stats {
    fn name(&self) -> &'static str {
        "stats"
    }

    fn events(&self) -> &'static [&'static str] {
        &[]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(StatsWatch::default())),
            Role::Proxy | Role::Manager => Some(Box::new(PacketlessStats::default())),
            Role::Logger => None,
        }
    }
}

/// The totals the previous row was measured at (the `last_ns`, `last_cs`, ... arguments of Zeek's `check_stats`):
/// all zero before the first row, as `zeek_init` reads them before any packet.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Mark {
    pub engine: EngineStats,
    pub capture: CaptureCounters,
}

/// What only a live capture has (Zeek's `reading_live_traffic()` columns).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveColumns {
    pub pkts_dropped: u64,
    pub pkts_link: u64,
    /// The wall clock's lead over network time.
    pub pkt_lag: f64,
}

/// One stats.log row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub ts: f64,
    /// This process's peak resident memory in MB (Zeek's `get_proc_stats()$mem / 1048576`).
    pub mem: u64,
    pub pkts_proc: u64,
    pub bytes_recv: u64,
    pub live: Option<LiveColumns>,
    pub events_proc: u64,
    pub events_queued: u64,
    pub active_tcp_conns: u64,
    pub active_udp_conns: u64,
    pub active_icmp_conns: u64,
    pub tcp_conns: u64,
    pub udp_conns: u64,
    pub icmp_conns: u64,
    pub timers: u64,
    pub active_timers: u64,
    pub files: u64,
    pub active_files: u64,
    pub reassem_tcp_size: u64,
    pub reassem_frag_size: u64,
}

impl Row {
    /// The row at `now` since `last`, with the process's memory `mem` (MB) and the wall clock `wall` (for the
    /// lag, reading live). Totals never shrink; if one did (a restarted engine), its column counts nothing rather
    /// than wrapping.
    pub fn since(last: &Mark, now: &Counters, mem: u64, wall: f64) -> Row {
        let (e, l) = (&now.engine, &last.engine);
        let live = now.capture.map(|c| LiveColumns {
            pkts_dropped: c.dropped.saturating_sub(last.capture.dropped),
            pkts_link: c.link.saturating_sub(last.capture.link),
            pkt_lag: wall - now.ts,
        });
        let events = e.log_records.saturating_sub(l.log_records);
        Row {
            ts: now.ts,
            mem,
            pkts_proc: e.packets.saturating_sub(l.packets),
            bytes_recv: e.bytes.saturating_sub(l.bytes),
            live,
            // The engine has no event queue: what it hands on are log records, each handled as it is taken.
            events_proc: events,
            events_queued: events,
            active_tcp_conns: e.active_tcp_connections,
            active_udp_conns: e.active_udp_connections,
            active_icmp_conns: e.active_icmp_connections,
            tcp_conns: e.tcp_connections.saturating_sub(l.tcp_connections),
            udp_conns: e.udp_connections.saturating_sub(l.udp_connections),
            icmp_conns: e.icmp_connections.saturating_sub(l.icmp_connections),
            timers: e.timers_scheduled.saturating_sub(l.timers_scheduled),
            active_timers: e.active_timers,
            files: e.files_seen.saturating_sub(l.files_seen),
            active_files: e.files_seen.saturating_sub(e.files_logged),
            reassem_tcp_size: e.tcp_reassembly_bytes,
            reassem_frag_size: e.frag_reassembly_bytes,
        }
    }

    pub fn log_record(&self, peer: &str) -> LogRecord {
        let live = |get: fn(&LiveColumns) -> Value| self.live.as_ref().map_or(Value::Unset, get);
        let values = vec![
            Value::Time(self.ts),
            Value::str(peer),
            Value::Count(self.mem),
            Value::Count(self.pkts_proc),
            Value::Count(self.bytes_recv),
            live(|l| Value::Count(l.pkts_dropped)),
            live(|l| Value::Count(l.pkts_link)),
            live(|l| Value::Interval(l.pkt_lag)),
            // Set only where the packet source counts filtered packets; ours do not.
            Value::Unset,
            Value::Count(self.events_proc),
            Value::Count(self.events_queued),
            Value::Count(self.active_tcp_conns),
            Value::Count(self.active_udp_conns),
            Value::Count(self.active_icmp_conns),
            Value::Count(self.tcp_conns),
            Value::Count(self.udp_conns),
            Value::Count(self.icmp_conns),
            Value::Count(self.timers),
            Value::Count(self.active_timers),
            Value::Count(self.files),
            Value::Count(self.active_files),
            // `get_dns_stats` counts Zeek's own name lookups (`lookup_hostname` and friends): the node makes none.
            Value::Count(0),
            Value::Count(0),
            Value::Count(self.reassem_tcp_size),
            // File data is never held for reassembly, nor is content detection's buffer counted (docs/FIDELITY.md).
            Value::Count(0),
            Value::Count(self.reassem_frag_size),
            Value::Count(0),
        ];
        LogRecord::new(&STATS_LOG, values)
    }
}

/// Zeek's schedule of `check_stats` on one node.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// When the pending row is due, and the totals of the previous one. `None` before the first report.
    pending: Option<(f64, Mark)>,
    /// The end of input wrote the last row.
    ended: bool,
}

impl Schedule {
    /// When the next row is due: the first report (`zeek_init`'s check is due at network time 0 plus the
    /// interval, long before any packet); none once the input ended.
    pub fn due(&self) -> f64 {
        match (self.ended, self.pending) {
            (true, _) => f64::INFINITY,
            (false, None) => f64::NEG_INFINITY,
            (false, Some((due, _))) => due,
        }
    }

    /// The engine at `now`: the row due by then (every report at the end of input writes one), and the next is
    /// scheduled `interval` after it.
    pub fn report(&mut self, now: &Counters, interval: f64) -> Option<(Mark, Counters)> {
        if self.ended {
            return None;
        }
        let (due, last) = self.pending.unwrap_or((f64::NEG_INFINITY, Mark::default()));
        if now.ts < due && !now.at_end {
            return None;
        }
        let mark = Mark { engine: now.engine, capture: now.capture.unwrap_or_default() };
        self.pending = Some((now.ts + interval, mark));
        self.ended = now.at_end;
        Some((last, *now))
    }
}

#[derive(Default)]
struct StatsWatch {
    schedule: Schedule,
}

impl Handler for StatsWatch {
    fn counters_due(&self) -> f64 {
        self.schedule.due()
    }

    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        let EngineEvent::Counters(now) = ev else { return };
        let Some((last, now)) = self.schedule.report(now, cx.config().stats.report_interval) else { return };
        let row = Row::since(&last, &now, resident_memory_mb(), wall_clock());
        let record = row.log_record(cx.node_name());
        cx.log(record);
    }
}

/// A cluster's manager and proxies write their own rows, as Zeek's do: network time and memory, nothing analysed
/// (their engines see no packets). Their clock moves with the events they receive and the cluster's barriers
/// (offline) or the wall clock (live), and reaches the handler once a second at most ([`Handler::tick`]).
/// Standalone these roles run inside the one process whose worker writes the rows.
#[derive(Default)]
struct PacketlessStats {
    schedule: Schedule,
}

impl PacketlessStats {
    fn report(&mut self, cx: &mut Cx, at_end: bool) {
        if !cx.in_cluster() || cx.now() <= 0.0 {
            return;
        }
        let now = Counters { at_end, ..Counters::new(cx.now(), &EngineStats::default()) };
        let Some((last, now)) = self.schedule.report(&now, cx.config().stats.report_interval) else { return };
        let row = Row::since(&last, &now, resident_memory_mb(), wall_clock());
        let record = row.log_record(cx.node_name());
        cx.log(record);
    }
}

impl Handler for PacketlessStats {
    fn tick(&mut self, cx: &mut Cx) {
        self.report(cx, false);
    }

    fn done(&mut self, cx: &mut Cx) {
        self.report(cx, true);
    }
}

fn wall_clock() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The process's peak resident set size in MB, what Zeek's `get_proc_stats` reports on Linux (`ru_maxrss`): the
/// `VmHWM` line of /proc/self/status. 0 where there is no such file.
pub fn resident_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| peak_resident_kb(&s)).map_or(0, |kb| kb / 1024)
}

/// The `VmHWM:   1234 kB` line of a /proc/PID/status text, in kB.
fn peak_resident_kb(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(packets: u64, tcp: u64, udp: u64) -> EngineStats {
        EngineStats {
            packets,
            bytes: packets * 100,
            tcp_connections: tcp,
            udp_connections: udp,
            active_tcp_connections: tcp / 2,
            log_records: packets / 10,
            timers_scheduled: tcp + udp,
            active_timers: (tcp + udp) / 2,
            files_seen: 3,
            files_logged: 1,
            tcp_reassembly_bytes: 700,
            frag_reassembly_bytes: 40,
            ..EngineStats::default()
        }
    }

    fn at(ts: f64, e: EngineStats) -> Counters {
        Counters::new(ts, &e)
    }

    #[test]
    fn the_first_row_is_at_the_first_report_then_every_interval_after_the_previous_row() {
        let mut s = Schedule::default();
        assert_eq!(s.due(), f64::NEG_INFINITY, "zeek_init's check is due before any packet");
        let (last, now) = s.report(&at(1000.5, engine(1, 1, 0)), 300.0).expect("the first packet's");
        assert_eq!(last, Mark::default());
        assert_eq!(Row::since(&last, &now, 0, 0.0).pkts_proc, 1);
        assert_eq!(s.due(), 1300.5);
        assert_eq!(s.report(&at(1300.4, engine(50, 3, 2)), 300.0), None);
        let (last, now) = s.report(&at(1300.6, engine(60, 4, 2)), 300.0).expect("due");
        let row = Row::since(&last, &now, 0, 0.0);
        assert_eq!((row.ts, row.pkts_proc, row.tcp_conns, row.udp_conns), (1300.6, 59, 3, 2));
        assert_eq!(s.due(), 1600.6, "the next one is due an interval after this row, not after the last due time");
    }

    #[test]
    fn the_end_of_input_writes_the_pending_row_and_schedules_none() {
        let mut s = Schedule::default();
        s.report(&at(10.0, engine(1, 0, 0)), 300.0);
        assert_eq!(s.report(&at(20.0, engine(135, 0, 0)), 300.0), None, "not due yet");
        let end = Counters { at_end: true, ..at(20.0, engine(136, 0, 0)) };
        let (last, now) = s.report(&end, 300.0).expect("termination runs the pending check");
        assert_eq!(Row::since(&last, &now, 0, 0.0).pkts_proc, 135);
        assert_eq!(s.due(), f64::INFINITY);
        assert_eq!(s.report(&end, 300.0), None, "one last row only");
    }

    #[test]
    fn deltas_and_gauges() {
        let last = Mark { engine: engine(100, 10, 4), capture: CaptureCounters::default() };
        let row = Row::since(&last, &at(400.0, engine(250, 15, 9)), 42, 0.0);
        assert_eq!(
            (row.pkts_proc, row.bytes_recv, row.tcp_conns, row.udp_conns, row.icmp_conns),
            (150, 15_000, 5, 5, 0)
        );
        assert_eq!((row.events_proc, row.events_queued, row.timers), (15, 15, 10));
        assert_eq!((row.active_tcp_conns, row.active_timers, row.files, row.active_files), (7, 12, 0, 2));
        assert_eq!((row.reassem_tcp_size, row.reassem_frag_size, row.mem), (700, 40, 42));
        assert_eq!(row.live, None, "reading a trace");
    }

    #[test]
    fn shrinking_totals_count_nothing() {
        let last = Mark { engine: engine(500, 50, 50), capture: CaptureCounters { link: 90, dropped: 9 } };
        let now = Counters { capture: Some(CaptureCounters { link: 10, dropped: 1 }), ..at(5.0, engine(3, 1, 1)) };
        let row = Row::since(&last, &now, 0, 5.0);
        assert_eq!((row.pkts_proc, row.bytes_recv, row.tcp_conns, row.udp_conns, row.timers), (0, 0, 0, 0, 0));
        assert_eq!(row.live, Some(LiveColumns { pkts_dropped: 0, pkts_link: 0, pkt_lag: 0.0 }));
    }

    /// Zeek's `PcapSource::Statistics`: `pkts_link` from `ps_recv`, `pkts_dropped` from `ps_drop` alone.
    #[test]
    fn capture_counters_as_zeek_reads_libpcaps() {
        let c = crate::capture::CaptureStats { received: 1000, dropped: 7, if_dropped: 3 };
        assert_eq!(CaptureCounters::new(&c), CaptureCounters { link: 1000, dropped: 7 });
    }

    #[test]
    fn live_columns_count_the_captures_drops_and_the_lag() {
        let last = Mark { engine: engine(0, 0, 0), capture: CaptureCounters { link: 100, dropped: 2 } };
        let now = Counters { capture: Some(CaptureCounters { link: 250, dropped: 7 }), ..at(1000.0, engine(9, 0, 0)) };
        let row = Row::since(&last, &now, 0, 1000.25);
        assert_eq!(row.live, Some(LiveColumns { pkts_dropped: 5, pkts_link: 150, pkt_lag: 0.25 }));
        let r = row.log_record("worker-1");
        assert_eq!(r.get("pkts_dropped"), Some(&Value::Count(5)));
        assert_eq!(r.get("pkt_lag"), Some(&Value::Interval(0.25)));
        assert_eq!(r.get("pkts_filtered"), Some(&Value::Unset));
    }

    /// Zeek's btest scripts.policy.misc.stats reads wikipedia.pcap with a filter that keeps `pkts_proc`: one row at
    /// the first packet, and the rest at termination. Its header, and the full header of the default filter.
    #[test]
    fn btest_baseline_rows_and_header() {
        const BASELINE: &str = "#fields\tpkts_proc\n#types\tcount\n1\n135\n";
        let mut s = Schedule::default();
        let mut rows = Vec::new();
        for (i, ts) in [(1u64, 1.0), (60, 2.0), (136, 3.0)] {
            if let Some((last, now)) = s.report(&at(ts, engine(i, 0, 0)), 300.0) {
                rows.push(Row::since(&last, &now, 0, 0.0));
            }
        }
        let end = Counters { at_end: true, ..at(3.0, engine(136, 0, 0)) };
        let (last, now) = s.report(&end, 300.0).expect("termination");
        rows.push(Row::since(&last, &now, 0, 0.0));
        let mut out = String::from("#fields\tpkts_proc\n#types\tcount\n");
        for r in &rows {
            let rec = r.log_record("zeek");
            if let Some(Value::Count(n)) = rec.get("pkts_proc") {
                out.push_str(&format!("{n}\n"));
            }
        }
        assert_eq!(out, BASELINE);

        let header = crate::logs::format_header(&STATS_LOG, 0);
        let fields = "#fields\tts\tpeer\tmem\tpkts_proc\tbytes_recv\tpkts_dropped\tpkts_link\tpkt_lag\tpkts_filtered\t\
                      events_proc\tevents_queued\tactive_tcp_conns\tactive_udp_conns\tactive_icmp_conns\ttcp_conns\t\
                      udp_conns\ticmp_conns\ttimers\tactive_timers\tfiles\tactive_files\tdns_requests\t\
                      active_dns_requests\treassem_tcp_size\treassem_file_size\treassem_frag_size\t\
                      reassem_unknown_size\n";
        let types = "#types\ttime\tstring\tcount\tcount\tcount\tcount\tcount\tinterval\tcount\tcount\tcount\tcount\t\
                     count\tcount\tcount\tcount\tcount\tcount\tcount\tcount\tcount\tcount\tcount\tcount\tcount\tcount\t\
                     count\n";
        assert!(header.contains("#path\tstats\n"), "{header}");
        assert!(header.ends_with(&format!("{fields}{types}")), "{header}");
        let mut line = String::new();
        crate::logs::format_record_tsv(&mut line, &rows[0].log_record("zeek"));
        assert_eq!(
            line,
            "1.000000\tzeek\t0\t1\t100\t-\t-\t-\t-\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t3\t2\t0\t0\t700\t0\t40\t0\n"
        );
    }

    #[test]
    fn peak_resident_memory_from_proc_status() {
        let status = "Name:\tzeek-node\nVmPeak:\t  900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(peak_resident_kb(status), Some(204_800));
        assert_eq!(peak_resident_kb("Name:\tx\n"), None);
        assert_eq!(peak_resident_kb("VmHWM:\tlots kB\n"), None);
        if cfg!(target_os = "linux") {
            assert!(resident_memory_mb() > 0, "a running test holds at least a megabyte");
        }
    }
}
