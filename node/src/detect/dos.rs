//! DoS pair aggregation (the seed document's walkthrough, docs/ANALYSES.md).
//!
//! Workers: at the end of each connection to the watched service (default 3389/udp) towards a local host, send
//! `DoS::pair_stats(orig, resp, orig_bytes, resp_bytes, answered)` with `publish_hrw` keyed on the (orig, resp)
//! pair, so one proxy sees all of a pair's connections. Proxies: count connections and bytes per pair (forgotten
//! `dos.expiry` after the last one) and raise `DoS::Threshold` as the count reaches each step of `dos.thresholds`,
//! and `DoS::Victim` (identifier = responder, suppressed `dos.victim_suppress_for`) when a flooded responder
//! answered.

use std::net::IpAddr;

use super::events::ConnFinished;
use super::{Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Notice, Role, arg_addr, arg_count};
use crate::analyzers::Proto;

pub const PAIR_STATS: &str = "DoS::pair_stats";
const CONNS: &str = "DoS::conns";
const BYTES: &str = "DoS::bytes";

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
            Role::Proxy => Some(Box::new(DosProxy { port, proto })),
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
}

impl Handler for DosProxy {
    fn init(&mut self, cx: &mut Cx) {
        let expiry = cx.config().dos.expiry;
        cx.state().define(CONNS, expiry);
        cx.state().define(BYTES, expiry);
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != PAIR_STATS {
            return;
        }
        let (Some(orig), Some(resp), Some(orig_bytes), Some(resp_bytes)) =
            (arg_addr(ev, 0), arg_addr(ev, 1), arg_count(ev, 2), arg_count(ev, 3))
        else {
            return;
        };
        let answered = matches!(ev.args.get(4), Some(Data::Bool(true)));
        let key = pair_key(orig, resp);
        let now = cx.now();
        let conns = cx.state().incr(CONNS, &key, 1, now);
        let bytes = cx.state().incr(BYTES, &key, orig_bytes + resp_bytes, now);
        let service = format!("{}/{}", self.port, self.proto.as_enum());
        let thresholds = cx.config().dos.thresholds.clone();
        if let Some(step) = thresholds.iter().copied().find(|t| *t == conns) {
            cx.notice(
                Notice::new(
                    "DoS::Threshold",
                    format!("{orig} sent {conns} connections to {resp} on {service} ({bytes} bytes)"),
                )
                .src(orig)
                .dst(resp)
                .port(self.port, self.proto)
                .n(conns)
                .identifier(format!("{orig}-{resp}-{step}")),
            );
        }
        let flooded = thresholds.first().is_some_and(|first| conns >= *first);
        if answered && flooded {
            let suppress_for = cx.config().dos.victim_suppress_for;
            cx.notice(
                Notice::new(
                    "DoS::Victim",
                    format!("{resp} answered a flood of {conns} connections on {service} from {orig}"),
                )
                .src(orig)
                .dst(resp)
                .port(self.port, self.proto)
                .n(conns)
                .identifier(resp.to_string())
                .suppress_for(suppress_for),
            );
        }
    }
}
