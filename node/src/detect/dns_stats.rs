//! DNS query-type statistics (manager → workers → proxies → manager).
//!
//! Workers count queries per type. Every `dns_stats.interval` the manager asks them for their counts
//! (`DNSStats::collect(epoch)`); each worker sends one `DNSStats::count` per query type with `publish_hrw` keyed on
//! the type, so every type is summed on one proxy. At the next interval the manager asks the proxies for the
//! epoch's sums (`DNSStats::flush`), and logs each type's total as it arrives (one proxy owns each type, so each
//! total arrives once). At the end of input workers send what is left, proxies flush everything, and the manager
//! logs it.

use std::collections::BTreeMap;

use super::{Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Role, StateValue, arg_count, arg_str};
use crate::logs::{LogRecord, Schema, Value, f};

pub const COLLECT: &str = "DNSStats::collect";
pub const COUNT: &str = "DNSStats::count";
pub const FLUSH: &str = "DNSStats::flush";
pub const TOTAL: &str = "DNSStats::total";

/// The state table of one epoch on a proxy, keyed by query type.
fn epoch_table(epoch: u64) -> String {
    format!("DNSStats::epoch-{epoch}")
}
const NAMES: &str = "DNSStats::names";

/// dns_qtype_stats.log: one record per query type and interval.
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
    /// Query type → (name, queries) since the last collection.
    counts: BTreeMap<u64, (String, u64)>,
    /// The epoch the current counts belong to.
    epoch: u64,
}

impl StatsWorker {
    fn send(&mut self, cx: &mut Cx, epoch: u64) {
        for (qtype, (name, n)) in std::mem::take(&mut self.counts) {
            let args = vec![Data::Count(epoch), Data::Count(qtype), Data::Str(name), Data::Count(n)];
            cx.publish_hrw(Role::Proxy, &Data::Count(qtype), COUNT, args);
        }
    }
}

impl Handler for StatsWorker {
    fn engine(&mut self, ev: &EngineEvent, _cx: &mut Cx) {
        let EngineEvent::DnsRequest(d) = ev else { return };
        let Some(qtype) = d.qtype else { return };
        let name = d.qtype_name.clone().unwrap_or_else(|| qtype.to_string());
        self.counts.entry(qtype).or_insert((name, 0)).1 += 1;
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name == COLLECT
            && let Some(epoch) = arg_count(ev, 0)
        {
            self.send(cx, epoch);
            self.epoch = epoch + 1;
        }
    }

    fn done(&mut self, cx: &mut Cx) {
        self.send(cx, self.epoch);
    }
}

#[derive(Default)]
struct StatsProxy {
    /// Epochs with sums on this proxy.
    epochs: std::collections::BTreeSet<u64>,
}

impl StatsProxy {
    fn flush(&mut self, cx: &mut Cx, epoch: u64) {
        if !self.epochs.remove(&epoch) {
            return;
        }
        let table = epoch_table(epoch);
        let sums: Vec<(Data, u64)> =
            cx.state().entries(&table).iter().filter_map(|e| Some((e.key.clone(), e.value.count()?))).collect();
        for (key, n) in sums {
            cx.state().remove(&table, &key);
            let name = match cx.state().get(NAMES, &key) {
                Some(StateValue::Value(Data::Str(s))) => s.clone(),
                _ => String::new(),
            };
            cx.publish_role(Role::Manager, TOTAL, vec![Data::Count(epoch), key, Data::Str(name), Data::Count(n)]);
        }
    }
}

impl Handler for StatsProxy {
    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        match ev.name.as_str() {
            COUNT => {
                let (Some(epoch), Some(qtype), Some(name), Some(n)) =
                    (arg_count(ev, 0), arg_count(ev, 1), arg_str(ev, 2), arg_count(ev, 3))
                else {
                    return;
                };
                let now = cx.now();
                let key = Data::Count(qtype);
                cx.state().incr(&epoch_table(epoch), &key, n, now);
                cx.state().put(NAMES, &key, Data::Str(name.to_string()), now);
                self.epochs.insert(epoch);
            }
            FLUSH => {
                if let Some(epoch) = arg_count(ev, 0) {
                    self.flush(cx, epoch);
                }
            }
            _ => {}
        }
    }

    fn done(&mut self, cx: &mut Cx) {
        for epoch in self.epochs.clone() {
            self.flush(cx, epoch);
        }
    }
}

#[derive(Default)]
struct StatsManager {
    epoch: u64,
    next_collect: Option<f64>,
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
        if self.epoch > 0 {
            cx.publish_role(Role::Proxy, FLUSH, vec![Data::Count(self.epoch - 1)]);
        }
        cx.publish_role(Role::Worker, COLLECT, vec![Data::Count(self.epoch)]);
        self.epoch += 1;
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != TOTAL {
            return;
        }
        let (Some(epoch), Some(qtype), Some(name), Some(n)) =
            (arg_count(ev, 0), arg_count(ev, 1), arg_str(ev, 2), arg_count(ev, 3))
        else {
            return;
        };
        let v =
            vec![Value::Time(cx.now()), Value::Count(epoch), Value::Count(qtype), Value::str(name), Value::Count(n)];
        cx.log(LogRecord::new(&DNS_QTYPE_LOG, v));
    }
}
