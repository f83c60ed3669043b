//! DNS query-type statistics (manager → workers → proxies → manager).
//!
//! A query counts in the interval of its own time: interval `k` holds the queries with `k * interval <= ts <
//! (k + 1) * interval` (`dns_stats.interval`, aligned to the Unix epoch), whichever node sees it and however late its
//! dns.log record is written (an unanswered query's record comes out when its connection times out). So a cluster,
//! whose nodes each run on their own clock, reports the same intervals as a standalone run.
//!
//! Every interval the manager asks the workers for their counts (`DNSStats::collect(upto)`); each worker sends one
//! `DNSStats::count(interval, qtype, name, n)` per interval and query type with `publish_hrw` keyed on the type, so
//! every type is summed on one proxy, and then tells every proxy it is done up to `upto` (`DNSStats::ready`, to each
//! proxy's node topic: the same link as its counts, so it arrives after them). `upto` is the last interval that can
//! no longer grow: it ended, plus the longest a dns.log record can lag, before the previous collection. The manager
//! also tells the proxies which workers to wait for (`DNSStats::flush(upto, workers)`); a proxy sends the totals of
//! the intervals up to `upto` once every one of those workers is ready up to it, and the manager logs each total as
//! it arrives (one proxy owns each type, so each total arrives once). Counting on the time between collections
//! instead lost counts reading a trace, where an interval of packet time can pass faster than a message. At the end
//! of input workers send what is left, proxies flush everything, and the manager logs it.

use std::collections::{BTreeMap, BTreeSet};

use super::{Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Role, StateValue, arg_count, arg_str};
use crate::cluster::topic;
use crate::logs::{LogRecord, Schema, Value, f};

pub const COLLECT: &str = "DNSStats::collect";
pub const COUNT: &str = "DNSStats::count";
pub const FLUSH: &str = "DNSStats::flush";
pub const READY: &str = "DNSStats::ready";
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
        &[COLLECT, COUNT, FLUSH, READY, TOTAL]
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
        if ev.name != COLLECT {
            return;
        }
        self.send(cx);
        if let Some(upto) = arg_count(ev, 0) {
            let me = Data::Str(cx.node_name().to_string());
            for proxy in cx.pool(Role::Proxy) {
                cx.publish(&topic::node_topic(&proxy), READY, vec![Data::Count(upto), me.clone()]);
            }
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
    /// The last interval each worker said it sent all its counts for.
    ready: BTreeMap<String, u64>,
    /// The manager's latest flush: up to which interval, once which workers are ready.
    flush: Option<(u64, Vec<String>)>,
}

impl StatsProxy {
    /// The last interval the manager asked for that every worker it named is ready for.
    fn ready_upto(&self) -> Option<u64> {
        let (upto, workers) = self.flush.as_ref()?;
        workers.iter().map(|w| self.ready.get(w).copied()).try_fold(*upto, |m, r| Some(m.min(r?)))
    }

    /// Sends the totals of the intervals every worker is ready for.
    fn flush_ready(&mut self, cx: &mut Cx) {
        if let Some(upto) = self.ready_upto() {
            self.flush_upto(cx, upto);
        }
    }

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
                let (Some(upto), Some(Data::Vector(workers))) = (arg_count(ev, 0), ev.args.get(1)) else { return };
                let workers = workers.iter().filter_map(Data::as_str).map(str::to_string).collect();
                self.flush = Some((upto, workers));
                self.flush_ready(cx);
            }
            READY => {
                let (Some(upto), Some(worker)) = (arg_count(ev, 0), arg_str(ev, 1)) else { return };
                let seen = self.ready.entry(worker.to_string()).or_default();
                *seen = (*seen).max(upto);
                self.flush_ready(cx);
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
        let upto = self
            .last_collect
            .and_then(|t| interval_of(t - RECORD_DELAY, interval).checked_sub(1))
            .map_or(Data::Unset, Data::Count);
        if let Data::Count(_) = upto {
            let workers = cx.pool(Role::Worker).into_iter().map(Data::Str).collect();
            cx.publish_role(Role::Proxy, FLUSH, vec![upto.clone(), Data::Vector(workers)]);
        }
        cx.publish_role(Role::Worker, COLLECT, vec![upto]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::{ConnId, Proto};
    use crate::detect::events::DnsRequest;
    use crate::detect::local::{LocalHub, LocalLayout};

    fn query(ts: f64, qtype: u64) -> EngineEvent {
        let id = ConnId {
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 5353,
            resp_h: "10.0.0.53".parse().unwrap(),
            resp_p: 53,
            proto: Proto::Udp,
        };
        EngineEvent::DnsRequest(DnsRequest {
            ts,
            uid: "C1".into(),
            id,
            query: "example.org".into(),
            qtype: Some(qtype),
            qtype_name: Some("A".into()),
        })
    }

    /// (interval, queries) of the totals the manager logged.
    fn totals(hub: &mut LocalHub) -> Vec<(u64, u64)> {
        let rows = hub.take_logs().into_iter().filter(|r| r.schema.path == DNS_QTYPE_LOG.path);
        let count = |v: Option<&Value>| match v {
            Some(Value::Count(n)) => *n,
            _ => 0,
        };
        let mut t: Vec<(u64, u64)> = rows.map(|r| (count(r.values.get(1)), count(r.values.get(4)))).collect();
        t.sort_unstable();
        t
    }

    /// Totals come out while the run goes on, once every worker has sent its counts for the interval (its
    /// `DNSStats::ready` follows its counts to each proxy), and each interval once.
    #[test]
    fn intervals_are_logged_during_the_run_once_every_worker_is_ready() {
        let interval = DetectConfig::default().dns_stats.interval;
        let t0 = (1_700_000_000.0 / interval).floor() * interval;
        let k0 = (t0 / interval) as u64;
        let mut hub =
            LocalHub::new(vec![Box::new(DnsStats)], DetectConfig::default(), LocalLayout { proxies: 2, workers: 3 });
        for (i, w) in [0usize, 1, 2, 0].into_iter().enumerate() {
            hub.engine(w, &query(t0 + i as f64, 1));
        }
        // Well past the interval and the records' delay: two collections later its total is out.
        for s in 1..=(4.0 * interval + 2.0 * RECORD_DELAY) as u64 {
            hub.advance(t0 + s as f64);
        }
        assert_eq!(totals(&mut hub), [(k0, 4)], "logged before the end of input");
        hub.engine(1, &query(t0 + 5.0 * interval, 1));
        hub.finish();
        assert_eq!(totals(&mut hub), [(k0 + 5, 1)], "the rest at the end, the first interval not again");
    }

    /// A proxy waits for every worker the manager named: one that has not said it is ready holds the flush back.
    #[test]
    fn a_proxy_waits_for_every_named_worker() {
        let mut p =
            StatsProxy { flush: Some((4, vec!["worker-1".into(), "worker-2".into()])), ..StatsProxy::default() };
        p.ready.insert("worker-1".into(), 9);
        assert_eq!(p.ready_upto(), None, "worker-2 has not reported");
        p.ready.insert("worker-2".into(), 3);
        assert_eq!(p.ready_upto(), Some(3), "worker-2 is ready up to interval 3 only");
        p.ready.insert("worker-2".into(), 7);
        assert_eq!(p.ready_upto(), Some(4), "no further than the manager asked");
    }
}
