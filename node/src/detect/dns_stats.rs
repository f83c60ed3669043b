//! DNS query-type statistics (manager → workers → proxies → manager).
//!
//! A query counts in the interval of its own time: interval `k` holds the queries with `k * interval <= ts <
//! (k + 1) * interval` (`dns_stats.interval`, aligned to the Unix epoch), whichever node sees it and however late its
//! dns.log record is written (an unanswered query's record comes out when its connection times out). So a cluster,
//! whose nodes each run on their own clock, reports the same intervals as a standalone run.
//!
//! Every interval the manager asks the workers for their counts (`DNSStats::collect`); each worker sends one
//! `DNSStats::count(interval, qtype, name, n)` per interval and query type with `publish_hrw` keyed on the type, so
//! every type is summed on one proxy. The manager then asks the proxies for the sums of the intervals that can no
//! longer grow (`DNSStats::flush(upto)`: they ended, plus the longest a dns.log record can lag, before the previous
//! collection), and logs each total as it arrives (one proxy owns each type, so each total arrives once). At the
//! end of input workers send what is left, proxies flush everything, and the manager logs it.

use std::collections::{BTreeMap, BTreeSet};

use super::{Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Role, StateValue, arg_count, arg_str};
use crate::logs::{LogRecord, Schema, Value, f};

pub const COLLECT: &str = "DNSStats::collect";
pub const COUNT: &str = "DNSStats::count";
pub const FLUSH: &str = "DNSStats::flush";
pub const TOTAL: &str = "DNSStats::total";

/// The state table of one interval on a proxy, keyed by query type.
fn interval_table(interval: u64) -> String {
    format!("DNSStats::interval-{interval}")
}
const NAMES: &str = "DNSStats::names";

/// How long after a query its dns.log record can come out: an unanswered query is logged when its connection
/// times out (Zeek's `udp_inactivity_timeout`, 60 s), plus a margin.
const RECORD_DELAY: f64 = 65.0;

/// The interval a time falls in.
fn interval_of(ts: f64, interval: f64) -> u64 {
    (ts / interval).floor().max(0.0) as u64
}

/// dns_qtype_stats.log: one record per query type and interval (`ts` = the interval's start, `epoch` = its
/// number).
pub static DNS_QTYPE_LOG: Schema = Schema {
    path: "dns_qtype_stats",
    fields: &[
        f("ts", "time"),
        f("epoch", "count"),
        f("qtype", "count"),
        f("qtype_name", "string"),
        f("queries", "count"),
    ],
};

pub struct DnsStats;

impl Analysis for DnsStats {
    fn name(&self) -> &'static str {
        "dns-stats"
    }

    fn events(&self) -> &'static [&'static str] {
        &[COLLECT, COUNT, FLUSH, TOTAL]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(StatsWorker::default())),
            Role::Proxy => Some(Box::new(StatsProxy::default())),
            Role::Manager => Some(Box::new(StatsManager::default())),
            Role::Logger => None,
        }
    }
}

#[derive(Default)]
struct StatsWorker {
    /// (interval, query type) → (name, queries) since the last collection.
    counts: BTreeMap<(u64, u64), (String, u64)>,
}

impl StatsWorker {
    fn send(&mut self, cx: &mut Cx) {
        for ((interval, qtype), (name, n)) in std::mem::take(&mut self.counts) {
            let args = vec![Data::Count(interval), Data::Count(qtype), Data::Str(name), Data::Count(n)];
            cx.publish_hrw(Role::Proxy, &Data::Count(qtype), COUNT, args);
        }
    }
}

impl Handler for StatsWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        let EngineEvent::DnsRequest(d) = ev else { return };
        let Some(qtype) = d.qtype else { return };
        let name = d.qtype_name.clone().unwrap_or_else(|| qtype.to_string());
        let interval = interval_of(d.ts, cx.config().dns_stats.interval);
        self.counts.entry((interval, qtype)).or_insert((name, 0)).1 += 1;
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name == COLLECT {
            self.send(cx);
        }
    }

    fn done(&mut self, cx: &mut Cx) {
        self.send(cx);
    }
}

#[derive(Default)]
struct StatsProxy {
    /// Intervals with sums on this proxy.
    intervals: BTreeSet<u64>,
}

impl StatsProxy {
    fn flush(&mut self, cx: &mut Cx, interval: u64) {
        if !self.intervals.remove(&interval) {
            return;
        }
        let table = interval_table(interval);
        let sums: Vec<(Data, u64)> =
            cx.state().entries(&table).iter().filter_map(|e| Some((e.key.clone(), e.value.count()?))).collect();
        for (key, n) in sums {
            cx.state().remove(&table, &key);
            let name = match cx.state().get(NAMES, &key) {
                Some(StateValue::Value(Data::Str(s))) => s.clone(),
                _ => String::new(),
            };
            cx.publish_role(Role::Manager, TOTAL, vec![Data::Count(interval), key, Data::Str(name), Data::Count(n)]);
        }
    }

    /// Flushes the intervals up to `upto` (all of them at the end of input).
    fn flush_upto(&mut self, cx: &mut Cx, upto: u64) {
        let due: Vec<u64> = self.intervals.range(..=upto).copied().collect();
        for interval in due {
            self.flush(cx, interval);
        }
    }
}

impl Handler for StatsProxy {
    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        match ev.name.as_str() {
            COUNT => {
                let (Some(interval), Some(qtype), Some(name), Some(n)) =
                    (arg_count(ev, 0), arg_count(ev, 1), arg_str(ev, 2), arg_count(ev, 3))
                else {
                    return;
                };
                let now = cx.now();
                let key = Data::Count(qtype);
                cx.state().incr(&interval_table(interval), &key, n, now);
                cx.state().put(NAMES, &key, Data::Str(name.to_string()), now);
                self.intervals.insert(interval);
            }
            FLUSH => {
                if let Some(upto) = arg_count(ev, 0) {
                    self.flush_upto(cx, upto);
                }
            }
            _ => {}
        }
    }

    fn done(&mut self, cx: &mut Cx) {
        self.flush_upto(cx, u64::MAX);
    }
}

#[derive(Default)]
struct StatsManager {
    next_collect: Option<f64>,
    /// When the workers were last asked for their counts.
    last_collect: Option<f64>,
}

impl Handler for StatsManager {
    fn tick(&mut self, cx: &mut Cx) {
        let interval = cx.config().dns_stats.interval;
        let now = cx.now();
        let due = *self.next_collect.get_or_insert(now + interval);
        if now < due {
            return;
        }
        self.next_collect = Some(due + interval * ((now - due) / interval).floor().max(0.0) + interval);
        // The counts of an interval that ended (with its records' delay) before the previous collection are all
        // on the proxies: the workers sent them then.
        if let Some(done_before) = self.last_collect.map(|t| t - RECORD_DELAY)
            && let Some(upto) = interval_of(done_before, interval).checked_sub(1)
        {
            cx.publish_role(Role::Proxy, FLUSH, vec![Data::Count(upto)]);
        }
        cx.publish_role(Role::Worker, COLLECT, vec![]);
        self.last_collect = Some(now);
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != TOTAL {
            return;
        }
        let (Some(interval), Some(qtype), Some(name), Some(n)) =
            (arg_count(ev, 0), arg_count(ev, 1), arg_str(ev, 2), arg_count(ev, 3))
        else {
            return;
        };
        let start = interval as f64 * cx.config().dns_stats.interval;
        let v =
            vec![Value::Time(start), Value::Count(interval), Value::Count(qtype), Value::str(name), Value::Count(n)];
        cx.log(LogRecord::new(&DNS_QTYPE_LOG, v));
    }
}
