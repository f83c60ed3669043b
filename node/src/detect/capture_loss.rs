//! capture_loss.log, as Zeek's policy/misc/capture-loss.zeek writes it: how many of the TCP ACKs a worker saw
//! acknowledged data it never saw (Zeek's `get_gap_stats`), per measurement interval.
//!
//! Each worker (the standalone node too, as `zeek`) measures its own engine, as each Zeek worker does. Zeek's
//! `zeek_init` schedules the first `CaptureLoss::take_measurement` `initial_watch_interval` after network time
//! starts (the first packet's time when reading a trace), and each measurement schedules the next one
//! `watch_interval` after its own time. A scheduled event runs at the first packet whose time reaches it, after
//! that packet was analysed, so a row's `ts` is that packet's time and its counts include it. Reading a trace,
//! nothing is measured without packets, and the pending measurement does not run at the end of input; on a live
//! link that goes quiet, network time follows the wall clock (the runner reports it while idle, as Zeek's main loop
//! does in a lull), so the measurement comes on time with no acks and raises `CaptureLoss::Too_Little_Traffic`.
//!
//! The runner reports the engine after every packet ([`crate::logs::LogSink::packet_analysed`], delivered as
//! [`EngineEvent::Counters`] to workers whose analyses ask). With analysis threads it reports the sum of their
//! engines each time a thread has finished a batch (a second of packet time at most), so a measurement can come a
//! few packets after Zeek's.

use super::events::Counters;
use super::{Analysis, Cx, DetectConfig, EngineEvent, Handler, Notice, Role};
use crate::detect::config::CaptureLossConfig;
use crate::logs::{LogRecord, Schema, Value, f};

pub const TOO_MUCH_LOSS: &str = "CaptureLoss::Too_Much_Loss";
pub const TOO_LITTLE_TRAFFIC: &str = "CaptureLoss::Too_Little_Traffic";

/// capture_loss.log (`CaptureLoss::Info`).
pub static CAPTURE_LOSS_LOG: Schema = Schema {
    path: "capture_loss",
    fields: &[
        f("ts", "time"),
        f("ts_delta", "interval"),
        f("peer", "string"),
        f("gaps", "count"),
        f("acks", "count"),
        f("percent_lost", "double"),
    ],
};

pub struct CaptureLoss;

impl Analysis for CaptureLoss {
    fn name(&self) -> &'static str {
        "capture-loss"
    }

    fn events(&self) -> &'static [&'static str] {
        &[]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        (role == Role::Worker).then(|| Box::new(LossWatch::default()) as Box<dyn Handler>)
    }
}

/// The arguments of Zeek's `take_measurement(last_ts, last_acks, last_gaps)`: the previous measurement's time and
/// the engine's totals then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub ts: f64,
    pub acks: u64,
    pub gaps: u64,
}

/// One measurement: a capture_loss.log row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub ts: f64,
    pub ts_delta: f64,
    pub gaps: u64,
    pub acks: u64,
    pub percent_lost: f64,
}

impl Measurement {
    /// The interval since `last` up to the engine's totals `now`. Totals never shrink; if they did (a restarted
    /// engine), the interval counts nothing rather than wrapping.
    pub fn since(last: &Mark, now: &Counters) -> Measurement {
        let acks = now.engine.tcp_ack_events.saturating_sub(last.acks);
        let gaps = now.engine.tcp_gap_events.saturating_sub(last.gaps);
        let percent_lost = if acks == 0 { 0.0 } else { 100.0 * gaps as f64 / acks as f64 };
        Measurement { ts: now.ts, ts_delta: now.ts - last.ts, gaps, acks, percent_lost }
    }

    /// The notices Zeek raises for it, in its order.
    pub fn notices(&self, cfg: &CaptureLossConfig) -> Vec<Notice> {
        let mut out = Vec::new();
        if self.percent_lost >= cfg.too_much_loss * 100.0 {
            let msg =
                format!("The capture loss script detected an estimated loss rate above {:.3}%", self.percent_lost);
            out.push(Notice::new(TOO_MUCH_LOSS, msg));
        }
        if self.acks < cfg.minimum_acks {
            let msg = format!("Only observed {} TCP ACKs and was expecting at least {}.", self.acks, cfg.minimum_acks);
            out.push(Notice::new(TOO_LITTLE_TRAFFIC, msg));
        }
        for n in &mut out {
            n.ts = Some(self.ts);
        }
        out
    }

    pub fn log_record(&self, peer: &str) -> LogRecord {
        let values = vec![
            Value::Time(self.ts),
            Value::Interval(self.ts_delta),
            Value::str(peer),
            Value::Count(self.gaps),
            Value::Count(self.acks),
            Value::Double(self.percent_lost),
        ];
        LogRecord::new(&CAPTURE_LOSS_LOG, values)
    }
}

/// Zeek's schedule of `take_measurement` on one worker.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The pending measurement: when it is due and the previous one's mark. `None` before the first packet.
    pending: Option<(f64, Mark)>,
}

impl Schedule {
    /// When the pending measurement is due: the first packet's time is needed before anything is scheduled.
    pub fn due(&self) -> f64 {
        self.pending.map_or(f64::NEG_INFINITY, |(due, _)| due)
    }

    /// The engine after a packet: the measurement due by now, if any (and the next one is scheduled).
    pub fn packet(&mut self, now: &Counters, cfg: &CaptureLossConfig) -> Option<Measurement> {
        // zeek_init: network time is the first packet's; the counts start at zero.
        let start = (now.ts + cfg.initial_watch_interval, Mark { ts: now.ts, acks: 0, gaps: 0 });
        let (due, last) = *self.pending.get_or_insert(start);
        if now.ts < due {
            return None;
        }
        let m = Measurement::since(&last, now);
        let mark = Mark { ts: now.ts, acks: now.engine.tcp_ack_events, gaps: now.engine.tcp_gap_events };
        self.pending = Some((now.ts + cfg.watch_interval, mark));
        Some(m)
    }
}

#[derive(Default)]
struct LossWatch {
    schedule: Schedule,
}

impl Handler for LossWatch {
    fn counters_due(&self) -> f64 {
        self.schedule.due()
    }

    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        // The end of input measures nothing: the pending measurement is dropped (see the module's comment).
        let EngineEvent::Counters(now) = ev else { return };
        if now.at_end {
            return;
        }
        let Some(m) = self.schedule.packet(now, &cx.config().capture_loss) else { return };
        for n in m.notices(&cx.config().capture_loss) {
            cx.notice(n);
        }
        let record = m.log_record(cx.node_name());
        cx.log(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ts: f64, ack_events: u64, gap_events: u64) -> Counters {
        let engine =
            crate::engine::EngineStats { tcp_ack_events: ack_events, tcp_gap_events: gap_events, ..Default::default() };
        Counters::new(ts, &engine)
    }

    /// The sinks skip the per-packet report before `due`: it must be the next measurement's time exactly.
    #[test]
    fn due_is_the_pending_measurements_time() {
        let cfg = CaptureLossConfig::default();
        let mut s = Schedule::default();
        assert_eq!(s.due(), f64::NEG_INFINITY, "the first packet's time starts the schedule");
        s.packet(&stats(1000.0, 0, 0), &cfg);
        assert_eq!(s.due(), 1060.0);
        assert!(s.packet(&stats(1060.5, 10, 1), &cfg).is_some());
        assert_eq!(s.due(), 1960.5);
    }

    #[test]
    fn first_measurement_after_the_initial_interval_then_every_watch_interval() {
        let cfg = CaptureLossConfig::default();
        let mut s = Schedule::default();
        assert_eq!(s.packet(&stats(1000.0, 0, 0), &cfg), None);
        assert_eq!(s.packet(&stats(1059.999, 40, 1), &cfg), None);
        // The first packet at or after 1060 takes it, with every count since the start.
        let m = s.packet(&stats(1060.5, 50, 5), &cfg).expect("due");
        assert_eq!(m, Measurement { ts: 1060.5, ts_delta: 60.5, gaps: 5, acks: 50, percent_lost: 10.0 });
        // The next is due 900 s after the first's own time, with the counts since it.
        assert_eq!(s.packet(&stats(1960.4, 80, 5), &cfg), None);
        let m = s.packet(&stats(1960.5, 150, 6), &cfg).expect("due");
        assert_eq!(m, Measurement { ts: 1960.5, ts_delta: 900.0, gaps: 1, acks: 100, percent_lost: 1.0 });
    }

    #[test]
    fn a_pause_in_the_traffic_gives_one_late_measurement() {
        let cfg = CaptureLossConfig::default();
        let mut s = Schedule::default();
        s.packet(&stats(0.5, 0, 0), &cfg);
        let m = s.packet(&stats(5000.0, 10, 0), &cfg).expect("due");
        assert_eq!((m.ts_delta, m.acks), (4999.5, 10));
        assert_eq!(s.packet(&stats(5899.0, 10, 0), &cfg), None, "next one is due at 5900, not earlier");
        assert!(s.packet(&stats(5900.0, 10, 0), &cfg).is_some());
    }

    /// A live link that goes quiet: the runner reports the wall clock with unchanged totals, so the measurement
    /// still comes on time, with no acks (Zeek's main loop moves network time in a lull the same way).
    #[test]
    fn an_idle_live_link_is_measured_on_time_with_no_acks() {
        let cfg = CaptureLossConfig::default();
        let mut s = Schedule::default();
        s.packet(&stats(100.0, 0, 0), &cfg);
        s.packet(&stats(110.0, 20, 0), &cfg);
        assert_eq!(s.packet(&stats(159.9, 20, 0), &cfg), None);
        let m = s.packet(&stats(160.2, 20, 0), &cfg).expect("due");
        assert_eq!((m.ts, m.acks, m.gaps), (160.2, 20, 0));
        let m = s.packet(&stats(1060.3, 20, 0), &cfg).expect("due");
        assert!((m.ts_delta - 900.1).abs() < 1e-9, "{}", m.ts_delta);
        assert_eq!((m.acks, m.percent_lost), (0, 0.0));
        let notes: Vec<String> = m.notices(&cfg).into_iter().map(|n| n.note).collect();
        assert_eq!(notes, [TOO_LITTLE_TRAFFIC]);
    }

    #[test]
    fn no_acks_is_zero_percent_and_too_little_traffic() {
        let cfg = CaptureLossConfig::default();
        let m = Measurement::since(&Mark { ts: 10.0, acks: 7, gaps: 3 }, &stats(10.0, 7, 3));
        assert_eq!(m, Measurement { ts: 10.0, ts_delta: 0.0, gaps: 0, acks: 0, percent_lost: 0.0 });
        let notices = m.notices(&cfg);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].note, TOO_LITTLE_TRAFFIC);
        assert_eq!(notices[0].msg, "Only observed 0 TCP ACKs and was expecting at least 1.");
        assert_eq!(notices[0].ts, Some(10.0));
    }

    #[test]
    fn shrinking_totals_count_nothing() {
        let m = Measurement::since(&Mark { ts: 1.0, acks: 9, gaps: 9 }, &stats(2.0, 3, 1));
        assert_eq!((m.acks, m.gaps, m.percent_lost), (0, 0, 0.0));
    }

    #[test]
    fn too_much_loss_at_the_threshold_and_not_below() {
        let cfg = CaptureLossConfig::default();
        let at = Measurement::since(&Mark { ts: 0.0, acks: 0, gaps: 0 }, &stats(60.0, 30, 3));
        assert_eq!(at.percent_lost, 10.0);
        let notes: Vec<_> = at.notices(&cfg).into_iter().map(|n| (n.note, n.msg)).collect();
        assert_eq!(
            notes,
            [(
                TOO_MUCH_LOSS.to_string(),
                "The capture loss script detected an estimated loss rate above 10.000%".into()
            )]
        );
        let below = Measurement::since(&Mark { ts: 0.0, acks: 0, gaps: 0 }, &stats(60.0, 31, 3));
        assert!(below.notices(&cfg).is_empty(), "{}", below.percent_lost);
        let third = Measurement::since(&Mark { ts: 0.0, acks: 0, gaps: 0 }, &stats(60.0, 3, 1));
        assert_eq!(third.notices(&cfg)[0].msg, "The capture loss script detected an estimated loss rate above 33.333%");
    }

    /// Zeek's btest scripts.policy.misc.capture-loss takes a measurement at `zeek_init`, with network time at the
    /// first packet and nothing analysed yet: its baseline rows (ts masked by btest, `email_dest`, which `-b` does
    /// not load, left out of notice.log).
    #[test]
    fn btest_baseline_rows() {
        const BASELINE_HEADER: &str = "#fields\tts\tts_delta\tpeer\tgaps\tacks\tpercent_lost\n\
                                       #types\ttime\tinterval\tstring\tcount\tcount\tdouble\n";
        const BASELINE_ROW: &str = "XXXXXXXXXX.XXXXXX\t0.000000\tzeek\t0\t0\t0.0\n";
        const BASELINE_NOTICE: &str = "XXXXXXXXXX.XXXXXX\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\
            CaptureLoss::Too_Little_Traffic\tOnly observed 0 TCP ACKs and was expecting at least 1.\t-\t-\t-\t-\t-\t-\t\
            Notice::ACTION_LOG\t3600.000000\t-\t-\t-\t-\t-\n";
        let first_packet = 1_362_692_526.869344;
        let m = Measurement::since(&Mark { ts: first_packet, acks: 0, gaps: 0 }, &stats(first_packet, 0, 0));
        let header = crate::logs::format_header(&CAPTURE_LOSS_LOG, 0);
        assert!(header.ends_with(BASELINE_HEADER), "{header}");
        let mask_ts = |line: String| line.replacen(&format!("{first_packet:.6}"), "XXXXXXXXXX.XXXXXX", 1);
        let mut row = String::new();
        crate::logs::format_record_tsv(&mut row, &m.log_record("zeek"));
        assert_eq!(mask_ts(row), BASELINE_ROW);
        let notices = m.notices(&CaptureLossConfig::default());
        assert_eq!(notices.len(), 1);
        let mut notice = notices[0].clone();
        notice.suppress_for = Some(3600.0);
        let mut record = notice.log_record();
        if let Some(i) = record.schema.field_index("email_dest") {
            record.values.remove(i);
        }
        let mut line = String::new();
        crate::logs::format_record_tsv(&mut line, &record);
        assert_eq!(mask_ts(line), BASELINE_NOTICE);
    }

    #[test]
    fn record_columns() {
        let m = Measurement { ts: 1.5, ts_delta: 0.0, gaps: 0, acks: 0, percent_lost: 0.0 };
        let r = m.log_record("zeek");
        assert_eq!(r.schema.path, "capture_loss");
        let names: Vec<&str> = r.schema.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["ts", "ts_delta", "peer", "gaps", "acks", "percent_lost"]);
        let types: Vec<&str> = r.schema.fields.iter().map(|f| f.ty).collect();
        assert_eq!(types, ["time", "interval", "string", "count", "count", "double"]);
        assert_eq!(r.get("peer"), Some(&Value::str("zeek")));
        assert_eq!(r.get("percent_lost"), Some(&Value::Double(0.0)));
    }
}
