//! Scan detection: Zeek's address and port scans (policy/misc/scan.zeek), plus subnets of scanners.
//!
//! Workers send each failed TCP attempt twice by `publish_hrw`: keyed on (scanner, port) for the address scan and
//! on (scanner, victim) for the port scan, as Zeek's SumStats keys them. Proxies keep the distinct victims / ports
//! per key for `scan.interval` and raise `Scan::Address_Scan` (≥ `scan.addr_threshold` hosts on one port) and
//! `Scan::Port_Scan` (≥ `scan.port_threshold` ports of one host). A proxy that finds a scanner tells the manager,
//! which tells every worker: workers then stop sending that scanner's attempts (the seed's optimisation; counted in
//! `scan_messages_saved`). It also sends the scanner, keyed on its masked subnet (default /24), to the proxy that
//! owns the subnet, which raises `Scan::Subnet` once `scan.subnet_threshold` distinct scanners come from it.

use std::collections::HashMap;
use std::net::IpAddr;

use super::events::ConnFinished;
use super::{
    Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Notice, Role, StateValue, arg_addr, masked,
};
use crate::analyzers::Proto;

pub const ADDR_ATTEMPT: &str = "Scan::addr_attempt";
pub const PORT_ATTEMPT: &str = "Scan::port_attempt";
pub const SCANNER_FOUND: &str = "Scan::scanner_found";
pub const KNOWN_SCANNER: &str = "Scan::known_scanner";
pub const SUBNET_SCANNER: &str = "Scan::subnet_scanner";

const ADDR_VICTIMS: &str = "Scan::addr_victims";
const ADDR_BEGIN: &str = "Scan::addr_begin";
const PORT_PORTS: &str = "Scan::port_ports";
const PORT_BEGIN: &str = "Scan::port_begin";
const SUBNET_SCANNERS: &str = "Scan::subnet_scanners";

/// The counter of attempts a worker did not send because the scanner was already known (two messages each).
pub const MESSAGES_SAVED: &str = "scan_messages_saved";

pub struct Scan;

impl Analysis for Scan {
    fn name(&self) -> &'static str {
        "scan"
    }

    fn events(&self) -> &'static [&'static str] {
        &[ADDR_ATTEMPT, PORT_ATTEMPT, SCANNER_FOUND, KNOWN_SCANNER, SUBNET_SCANNER]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(ScanWorker::default())),
            Role::Proxy => Some(Box::new(ScanProxy)),
            Role::Manager => Some(Box::new(ScanManager::default())),
            Role::Logger => None,
        }
    }
}

/// Zeek's `is_failed_conn` read from conn.log: the originator's SYN was rejected, reset or never answered, and no
/// data went either way.
pub fn is_failed_attempt(c: &ConnFinished) -> bool {
    c.id.proto == Proto::Tcp
        && c.history.starts_with('S')
        && !c.history.contains(['D', 'd'])
        && matches!(c.conn_state.as_str(), "S0" | "REJ" | "RSTO" | "RSTOS0")
}

/// Zeek's `duration_to_mins_secs`.
fn mins_secs(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}m{}s", s / 60, s % 60)
}

fn port_text(port: u16) -> String {
    format!("{port}/tcp")
}

#[derive(Default)]
struct ScanWorker {
    /// Scanners the manager announced, until when they stay known.
    known: HashMap<IpAddr, f64>,
}

impl Handler for ScanWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        let EngineEvent::ConnectionFinished(c) = ev else { return };
        if !is_failed_attempt(c) {
            return;
        }
        let (scanner, victim, port) = (c.id.orig_h, c.id.resp_h, c.id.resp_p);
        if self.known.get(&scanner).is_some_and(|until| *until > cx.now()) {
            cx.count(MESSAGES_SAVED, 2);
            return;
        }
        let args = vec![Data::Addr(scanner), Data::Addr(victim), Data::Count(u64::from(port))];
        let addr_key = Data::Record(vec![Data::Addr(scanner), Data::Count(u64::from(port))]);
        cx.publish_hrw(Role::Proxy, &addr_key, ADDR_ATTEMPT, args.clone());
        let port_key = Data::Record(vec![Data::Addr(scanner), Data::Addr(victim)]);
        cx.publish_hrw(Role::Proxy, &port_key, PORT_ATTEMPT, args);
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name == KNOWN_SCANNER
            && let Some(scanner) = arg_addr(ev, 0)
        {
            // Its notices are suppressed this long anyway, so its attempts are of no use until then.
            self.known.insert(scanner, cx.now() + cx.config().notice.suppress_for);
        }
    }

    fn tick(&mut self, cx: &mut Cx) {
        let now = cx.now();
        self.known.retain(|_, until| *until > now);
    }
}

struct ScanProxy;

impl ScanProxy {
    /// Adds `item` to the distinct set of `key`; returns the set's size when this item made it reach `threshold`,
    /// and the time of the key's first observation.
    fn observe(cx: &mut Cx, tables: (&str, &str), key: &Data, item: Data, threshold: u64) -> Option<(u64, f64)> {
        let (set, begin) = tables;
        let now = cx.now();
        let interval = cx.config().scan.interval;
        let state = cx.state();
        state.define(set, interval);
        state.define(begin, interval);
        let first = match state.get(begin, key) {
            Some(StateValue::Value(Data::Time(t))) => *t,
            _ => now,
        };
        state.put(begin, key, Data::Time(first), now);
        let (new, size) = state.insert(set, key, item, now);
        (new && size as u64 == threshold).then_some((size as u64, first))
    }

    fn found(cx: &mut Cx, scanner: IpAddr) {
        cx.publish_role(Role::Manager, SCANNER_FOUND, vec![Data::Addr(scanner)]);
        let scan = &cx.config().scan;
        let subnet = masked(scanner, scan.subnet_prefix_v4, scan.subnet_prefix_v6);
        cx.publish_hrw(
            Role::Proxy,
            &Data::Subnet(subnet),
            SUBNET_SCANNER,
            vec![Data::Subnet(subnet), Data::Addr(scanner)],
        );
    }

    fn side(cx: &Cx, a: IpAddr) -> &'static str {
        if cx.is_local(a) { "local" } else { "remote" }
    }
}

impl Handler for ScanProxy {
    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        match ev.name.as_str() {
            ADDR_ATTEMPT | PORT_ATTEMPT => {
                let (Some(scanner), Some(victim), Some(Ok(port))) =
                    (arg_addr(ev, 0), arg_addr(ev, 1), ev.args.get(2).and_then(Data::as_count).map(u16::try_from))
                else {
                    return;
                };
                let now = cx.now();
                let notice = if ev.name == ADDR_ATTEMPT {
                    let key = Data::Record(vec![Data::Addr(scanner), Data::Count(u64::from(port))]);
                    let threshold = cx.config().scan.addr_threshold;
                    Self::observe(cx, (ADDR_VICTIMS, ADDR_BEGIN), &key, Data::Addr(victim), threshold).map(
                        |(n, first)| {
                            let msg = format!(
                                "{scanner} scanned at least {n} unique hosts on port {} in {}",
                                port_text(port),
                                mins_secs(now - first)
                            );
                            Notice::new("Scan::Address_Scan", msg).port(port, Proto::Tcp)
                        },
                    )
                } else {
                    let key = Data::Record(vec![Data::Addr(scanner), Data::Addr(victim)]);
                    let threshold = cx.config().scan.port_threshold;
                    Self::observe(cx, (PORT_PORTS, PORT_BEGIN), &key, Data::Count(u64::from(port)), threshold).map(
                        |(n, first)| {
                            let msg = format!(
                                "{scanner} scanned at least {n} unique ports of host {victim} in {}",
                                mins_secs(now - first)
                            );
                            Notice::new("Scan::Port_Scan", msg).dst(victim)
                        },
                    )
                };
                if let Some(n) = notice {
                    let side = Self::side(cx, scanner);
                    cx.notice(n.src(scanner).sub_message(side).identifier(scanner.to_string()));
                    Self::found(cx, scanner);
                }
            }
            SUBNET_SCANNER => {
                let (Some(Data::Subnet(subnet)), Some(scanner)) = (ev.args.first(), arg_addr(ev, 1)) else { return };
                let subnet = *subnet;
                let now = cx.now();
                let (interval, threshold) = (cx.config().scan.subnet_interval, cx.config().scan.subnet_threshold);
                cx.state().define(SUBNET_SCANNERS, interval);
                let (new, n) = cx.state().insert(SUBNET_SCANNERS, &Data::Subnet(subnet), Data::Addr(scanner), now);
                if new && n as u64 == threshold {
                    let msg = format!("{subnet} has {n} scanning IPs originating from it");
                    cx.notice(Notice::new("Scan::Subnet", msg).n(n as u64).identifier(subnet.to_string()));
                }
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct ScanManager {
    /// Scanners already announced to the workers, until when.
    announced: HashMap<IpAddr, f64>,
}

impl Handler for ScanManager {
    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != SCANNER_FOUND {
            return;
        }
        let Some(scanner) = arg_addr(ev, 0) else { return };
        let now = cx.now();
        if self.announced.get(&scanner).is_some_and(|until| *until > now) {
            return;
        }
        self.announced.insert(scanner, now + cx.config().notice.suppress_for);
        cx.publish_role(Role::Worker, KNOWN_SCANNER, vec![Data::Addr(scanner)]);
    }

    fn tick(&mut self, cx: &mut Cx) {
        let now = cx.now();
        self.announced.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_zeeks() {
        assert_eq!(mins_secs(0.4), "0m0s");
        assert_eq!(mins_secs(75.9), "1m15s");
    }
}
