//! DoS pair aggregation (the seed document's walkthrough, docs/ANALYSES.md).
//!
//! Workers: at the end of each connection to the watched service (default 3389/udp) towards a local host, send
//! `DoS::pair_stats(orig, resp, orig_bytes, resp_bytes, answered)` with `publish_hrw` keyed on the (orig, resp)
//! pair, so one proxy sees all of a pair's connections. Proxies: count connections and answered ones per pair
//! (forgotten `dos.expiry` after the last one) and raise `DoS::Threshold` once per step of `dos.thresholds` the
//! count reaches, and `DoS::Victim` (identifier = responder, suppressed `dos.victim_suppress_for`) when a flooded
//! responder answered.
//!
//! The notices name the step, not the count or bytes at the moment it was seen: when proxies come and go, a pair's
//! count can jump past a step as its state from the old owner merges in, and in a cluster the order in which the
//! workers' connections arrive differs from run to run. What a pair reached does not.

use std::net::IpAddr;

use super::events::ConnFinished;
use super::{
    Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Notice, Role, StateStore, StateValue, arg_addr,
};
use crate::analyzers::Proto;

pub const PAIR_STATS: &str = "DoS::pair_stats";
const CONNS: &str = "DoS::conns";
/// Connections the responder answered.
const ANSWERED: &str = "DoS::answered";
/// The threshold steps reported for a pair (a set, so reports from two proxies unite when state moves).
const REPORTED: &str = "DoS::reported";

pub struct DoS;

impl Analysis for DoS {
    fn name(&self) -> &'static str {
        "dos"
    }

    fn events(&self) -> &'static [&'static str] {
        &[PAIR_STATS]
    }

    fn handler(&self, role: Role, cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        let (port, proto) = cfg.dos.service()?;
        match role {
            Role::Worker => Some(Box::new(DosWorker { port, proto })),
            Role::Proxy => Some(Box::new(DosProxy { port, proto, checked_merges: 0 })),
            _ => None,
        }
    }
}

/// The pair key: the HRW key of the publish and the state key on the proxy (the same value, so a pair's state
/// moves with it when proxies come and go).
fn pair_key(orig: IpAddr, resp: IpAddr) -> Data {
    Data::Record(vec![Data::Addr(orig), Data::Addr(resp)])
}

struct DosWorker {
    port: u16,
    proto: Proto,
}

impl DosWorker {
    fn watched(&self, c: &ConnFinished, cx: &Cx) -> bool {
        c.id.resp_p == self.port && c.id.proto == self.proto && cx.is_local(c.id.resp_h)
    }
}

impl Handler for DosWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        let EngineEvent::ConnectionFinished(c) = ev else { return };
        if !self.watched(c, cx) {
            return;
        }
        let args = vec![
            Data::Addr(c.id.orig_h),
            Data::Addr(c.id.resp_h),
            Data::Count(c.orig_bytes),
            Data::Count(c.resp_bytes),
            Data::Bool(c.answered()),
        ];
        cx.publish_hrw(Role::Proxy, &pair_key(c.id.orig_h, c.id.resp_h), PAIR_STATS, args);
    }
}

struct DosProxy {
    port: u16,
    proto: Proto,
    /// [`StateStore::merges`] when the pairs were last checked as a whole.
    checked_merges: u64,
}

/// What one pair has reached: its connections, how many were answered, the threshold steps already reported.
struct PairState {
    conns: u64,
    answered: u64,
    reported: Vec<u64>,
}

impl PairState {
    fn read(state: &StateStore, key: &Data) -> PairState {
        let count = |table| state.get(table, key).and_then(StateValue::count).unwrap_or(0);
        let reported = match state.get(REPORTED, key) {
            Some(StateValue::Set(items)) => items.values().filter_map(Data::as_count).collect(),
            _ => Vec::new(),
        };
        PairState { conns: count(CONNS), answered: count(ANSWERED), reported }
    }

    /// The steps of `thresholds` the pair has reached and not reported yet. A step is reported once however the
    /// count got there: one connection at a time, or a jump when the pair's state from another proxy merged in.
    fn due(&self, thresholds: &[u64]) -> Vec<u64> {
        thresholds.iter().copied().filter(|t| *t <= self.conns && !self.reported.contains(t)).collect()
    }

    /// A flooded responder that answered: the pair reached the first step and some connection was answered.
    fn victim(&self, thresholds: &[u64]) -> Option<u64> {
        thresholds.first().copied().filter(|first| self.conns >= *first && self.answered > 0)
    }
}

impl DosProxy {
    fn service(&self) -> String {
        format!("{}/{}", self.port, self.proto.as_enum())
    }

    /// Raises the notices a pair is due. Their contents depend only on the steps reached, not on the order in which
    /// connections arrived or proxies merged, so a cluster reports what a standalone run does.
    fn check(&self, cx: &mut Cx, key: &Data) {
        let Data::Record(parts) = key else { return };
        let (Some(orig), Some(resp)) = (parts.first().and_then(Data::as_addr), parts.get(1).and_then(Data::as_addr))
        else {
            return;
        };
        let pair = PairState::read(cx.state(), key);
        let thresholds = cx.config().dos.thresholds.clone();
        let service = self.service();
        let now = cx.now();
        for step in pair.due(&thresholds) {
            cx.state().insert(REPORTED, key, Data::Count(step), now);
            cx.notice(
                Notice::new("DoS::Threshold", format!("{orig} sent {step} connections to {resp} on {service}"))
                    .src(orig)
                    .dst(resp)
                    .port(self.port, self.proto)
                    .n(step)
                    .identifier(format!("{orig}-{resp}-{step}")),
            );
        }
        if let Some(first) = pair.victim(&thresholds) {
            let suppress_for = cx.config().dos.victim_suppress_for;
            cx.notice(
                Notice::new(
                    "DoS::Victim",
                    format!("{resp} answered a flood of {first} connections on {service} from {orig}"),
                )
                .src(orig)
                .dst(resp)
                .port(self.port, self.proto)
                .n(first)
                .identifier(resp.to_string())
                .suppress_for(suppress_for),
            );
        }
    }

    /// Checks every pair once state merged in since the last look.
    fn check_merged(&mut self, cx: &mut Cx) {
        let merges = cx.state().merges();
        if merges == self.checked_merges {
            return;
        }
        self.checked_merges = merges;
        let keys: Vec<Data> = cx.state().entries(CONNS).iter().map(|e| e.key.clone()).collect();
        for key in keys {
            self.check(cx, &key);
        }
    }
}

impl Handler for DosProxy {
    fn init(&mut self, cx: &mut Cx) {
        let expiry = cx.config().dos.expiry;
        for table in [CONNS, ANSWERED, REPORTED] {
            cx.state().define(table, expiry);
        }
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != PAIR_STATS {
            return;
        }
        let (Some(orig), Some(resp)) = (arg_addr(ev, 0), arg_addr(ev, 1)) else { return };
        let answered = matches!(ev.args.get(4), Some(Data::Bool(true)));
        let key = pair_key(orig, resp);
        let now = cx.now();
        cx.state().incr(CONNS, &key, 1, now);
        cx.state().incr(ANSWERED, &key, u64::from(answered), now);
        self.check(cx, &key);
    }

    fn tick(&mut self, cx: &mut Cx) {
        self.check_merged(cx);
    }

    fn done(&mut self, cx: &mut Cx) {
        self.check_merged(cx);
    }
}
