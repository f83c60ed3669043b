//! A worker of an offline cluster keeps the packets of the connections it created since the last time barrier, so
//! that one an expectation raised on another worker names (an FTP data channel announced by a control connection
//! the load balancer put elsewhere) can be analysed again, from its first packet, with the expectation in place —
//! what a single process would have done. The expectation arrives with the barrier's wave; until then, what these
//! connections logged is held back too, so the connection analysed again does not log twice.
//!
//! Only connections no analyzer was attached to when they were created are kept (a data channel's ports are not a
//! protocol's): records of the others flow as before. Retention is bounded by [`BUDGET`] bytes per barrier interval;
//! a connection beyond it is no longer kept (and counted in [`Retention::overflows`]).

use std::collections::HashMap;

use crate::analyzers::{Expectation, Proto};
use crate::conn::ConnKey;
use crate::decode::LinkType;
use crate::engine::{CreatedConn, Engine, expectation_names};
use crate::logs::{LogRecord, Value};

/// Packet bytes a worker keeps per barrier interval.
pub const BUDGET: usize = 4 << 20;

/// A packet as the engine analysed it, with the network time it had then.
struct Packet {
    ts: f64,
    network_time: f64,
    link: LinkType,
    bytes: Vec<u8>,
}

struct Retained {
    conn: CreatedConn,
    packets: Vec<Packet>,
    /// What the connection logged so far, held back.
    records: Vec<LogRecord>,
}

/// An expectation another worker raised, with the packet time it was raised at.
pub type RaisedExpectation = (Expectation, f64);

#[derive(Default)]
pub struct Retention {
    conns: HashMap<ConnKey, Retained>,
    /// The kept connections by uid, to recognise their records.
    uids: HashMap<String, ConnKey>,
    bytes: usize,
    /// Records of connections no longer kept, to be written.
    released: Vec<LogRecord>,
    overflows: u64,
}

impl Retention {
    /// Starts keeping a connection a packet just created, when an expectation could still change its analysis.
    pub fn start(&mut self, conn: CreatedConn) {
        if conn.analyzed || conn.id.proto != Proto::Tcp {
            return;
        }
        self.uids.insert(conn.uid.as_str().to_string(), conn.key);
        self.conns.insert(conn.key, Retained { conn, packets: Vec::new(), records: Vec::new() });
    }

    /// Keeps a packet the engine analysed for connection `key`, if that connection is kept.
    pub fn keep(&mut self, key: &ConnKey, ts: f64, network_time: f64, link: LinkType, bytes: &[u8]) {
        let Some(kept) = self.conns.get_mut(key) else { return };
        if self.bytes + bytes.len() > BUDGET {
            self.overflows += 1;
            tracing::debug!(uid = kept.conn.uid.as_str(), "retention budget spent; connection no longer kept");
            self.stop_keeping(key);
            return;
        }
        self.bytes += bytes.len();
        kept.packets.push(Packet { ts, network_time, link, bytes: bytes.to_vec() });
    }

    /// Holds back a record of a kept connection; gives any other record back.
    pub fn withhold(&mut self, record: LogRecord) -> Option<LogRecord> {
        let key = uid_of(&record).and_then(|uid| self.uids.get(uid)).copied();
        match key.and_then(|k| self.conns.get_mut(&k)) {
            Some(kept) => {
                kept.records.push(record);
                None
            }
            None => Some(record),
        }
    }

    /// Records of connections no longer kept since the last call.
    pub fn take_released(&mut self) -> Vec<LogRecord> {
        std::mem::take(&mut self.released)
    }

    /// At a barrier, with every expectation raised before it delivered: each kept connection one of `raised`
    /// names (raised before the connection started) is forgotten and analysed again, even if it ended meanwhile
    /// (what it logged was held back); the others log what they held back (returned). Nothing is kept afterwards.
    pub fn settle(&mut self, engine: &mut Engine, raised: &[RaisedExpectation]) -> Vec<LogRecord> {
        self.settle_before(engine, raised, f64::INFINITY)
    }

    /// [`Retention::settle`] for the kept connections that started before packet time `cutoff` (every expectation
    /// that could name them has been raised); the later ones stay kept.
    pub fn settle_before(&mut self, engine: &mut Engine, raised: &[RaisedExpectation], cutoff: f64) -> Vec<LogRecord> {
        // What the engine logged since its records were last taken goes through `withhold` first: a kept
        // connection's record still in the engine's buffer must be held (and dropped if the connection is analysed
        // again), not pass once the connection is no longer kept. Without this, a connection that ended between the
        // caller's last take and this settling was logged twice, as analysed first and as analysed again.
        let passing: Vec<LogRecord> = engine.drain_records().filter_map(|r| self.withhold(r)).collect();
        let due: Vec<ConnKey> = self.conns.iter().filter(|(_, r)| r.conn.start < cutoff).map(|(k, _)| *k).collect();
        let mut kept: Vec<Retained> = due.iter().filter_map(|k| self.conns.remove(k)).collect();
        kept.sort_by(|a, b| a.conn.start.total_cmp(&b.conn.start));
        for r in &kept {
            self.uids.remove(r.conn.uid.as_str());
            self.bytes -= r.packets.iter().map(|p| p.bytes.len()).sum::<usize>();
        }
        let mut released = passing;
        released.append(&mut self.released);
        for r in kept {
            if named_before_start(&r.conn, raised) && engine.forget(&r.conn.key, r.conn.uid) {
                tracing::debug!(uid = r.conn.uid.as_str(), "analysing an expected connection again");
                for p in &r.packets {
                    engine.replay_packet(p.ts, p.network_time, p.link, &p.bytes);
                }
            } else {
                released.extend(r.records);
            }
        }
        released
    }

    /// Connections that outgrew the budget (and were not analysed again).
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    fn stop_keeping(&mut self, key: &ConnKey) {
        if let Some(r) = self.conns.remove(key) {
            self.uids.remove(r.conn.uid.as_str());
            self.bytes -= r.packets.iter().map(|p| p.bytes.len()).sum::<usize>();
            self.released.extend(r.records);
        }
    }
}

/// Whether an expectation raised before `conn` started (and not lapsed by then) names it: a single process would
/// have had it in place when the connection's first packet came.
fn named_before_start(conn: &CreatedConn, raised: &[RaisedExpectation]) -> bool {
    raised.iter().any(|(e, at)| *at <= conn.start && e.expires >= conn.start && expectation_names(e, &conn.id))
}

/// The connection uid a record belongs to (its `uid` column).
fn uid_of(record: &LogRecord) -> Option<&str> {
    match record.values.get(record.schema.field_index("uid")?)? {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalysisConfig;
    use crate::logs::WEIRD;
    use std::net::{IpAddr, Ipv4Addr};

    /// An address and port.
    use crate::decode::test_frames::ipv4_tcp;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    const SYN: u8 = 0x02;
    const SYN_ACK: u8 = 0x12;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;
    const RST: u8 = 0x04;

    fn data_channel_packets() -> Vec<(f64, Vec<u8>)> {
        vec![
            (10.0, ipv4_tcp((CLIENT, 40000), (SERVER, 50000), 100, 0, SYN, b"")),
            (10.1, ipv4_tcp((SERVER, 50000), (CLIENT, 40000), 500, 101, SYN_ACK, b"")),
            (10.2, ipv4_tcp((CLIENT, 40000), (SERVER, 50000), 101, 501, ACK, b"")),
            (10.3, ipv4_tcp((SERVER, 50000), (CLIENT, 40000), 501, 101, PSH_ACK, b"hello world\n")),
        ]
    }

    fn engine() -> Engine {
        let cfg = AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() };
        let mut e = Engine::new(cfg);
        e.track_connections(true);
        e
    }

    fn analyse(engine: &mut Engine, retention: &mut Retention, packets: &[(f64, Vec<u8>)]) {
        for (ts, frame) in packets {
            engine.process_packet(*ts, LinkType::Raw, frame);
            for c in engine.take_created() {
                retention.start(c);
            }
            if let Some(key) = engine.last_connection() {
                retention.keep(&key, *ts, engine.network_time(), LinkType::Raw, frame);
            }
        }
    }

    fn expectation(resp_p: u16) -> Expectation {
        Expectation {
            orig_h: Some(IpAddr::V4(Ipv4Addr::from(CLIENT))),
            resp_h: IpAddr::V4(Ipv4Addr::from(SERVER)),
            resp_p,
            analyzer: None,
            service: "ftp-data",
            expires: 1000.0,
        }
    }

    fn services(engine: &mut Engine) -> Vec<String> {
        engine.finish();
        let conns: Vec<LogRecord> = engine.drain_records().filter(|r| r.schema.path == "conn").collect();
        conns
            .iter()
            .map(|r| match &r.values[r.schema.field_index("service").expect("service")] {
                Value::Str(s) => s.clone(),
                Value::Set(v) => v.iter().map(|s| format!("{s:?}")).collect(),
                _ => "-".into(),
            })
            .collect()
    }

    #[test]
    fn an_expectation_raised_before_the_connection_started_reanalyses_it() {
        let (mut engine, mut retention) = (engine(), Retention::default());
        analyse(&mut engine, &mut retention, &data_channel_packets());
        let e = expectation(50000);
        engine.add_expectation(e.clone());
        let released = retention.settle(&mut engine, &[(e, 9.5)]);
        assert!(released.is_empty());
        assert_eq!(engine.stats().connections, 1, "the forgotten connection is not counted");
        let services = services(&mut engine);
        assert_eq!(services.len(), 1, "one connection, logged once: {services:?}");
        assert!(services[0].contains("ftp-data"), "{services:?}");
    }

    /// The data channel's packets and a reset, analysed; then time runs on (another shard's packets) past the close
    /// delay, so the connection has ended and its conn record is written (still in the engine's buffer).
    fn ended_data_channel() -> (Engine, Retention) {
        let (mut engine, mut retention) = (engine(), Retention::default());
        let mut packets = data_channel_packets();
        packets.push((10.4, ipv4_tcp((SERVER, 50000), (CLIENT, 40000), 513, 101, RST, b"")));
        analyse(&mut engine, &mut retention, &packets);
        engine.advance_time(17.0);
        (engine, retention)
    }

    #[test]
    fn a_connection_that_ended_before_the_barrier_is_analysed_again() {
        let (mut engine, mut retention) = ended_data_channel();
        // The connection is logged, and held back.
        let logged: Vec<LogRecord> = engine.drain_records().collect();
        assert!(logged.iter().any(|r| r.schema.path == "conn"), "the connection ended");
        assert!(logged.into_iter().all(|r| retention.withhold(r).is_none()));
        let e = expectation(50000);
        engine.add_expectation(e.clone());
        assert!(retention.settle(&mut engine, &[(e, 9.5)]).is_empty(), "the first analysis' records are discarded");
        let services = services(&mut engine);
        assert_eq!(services.len(), 1, "{services:?}");
        assert!(services[0].contains("ftp-data"), "{services:?}");
    }

    /// The connection ended and logged, but its record is still in the engine's buffer (not yet taken through
    /// `withhold`) when the settling comes: it must not pass afterwards beside the record of the analysis again.
    #[test]
    fn a_record_still_in_the_engine_at_the_settling_is_held_too() {
        let (mut engine, mut retention) = ended_data_channel();
        assert!(engine.pending_records() > 0, "the connection ended and its record waits in the engine");
        let e = expectation(50000);
        engine.add_expectation(e.clone());
        assert!(retention.settle(&mut engine, &[(e, 9.5)]).is_empty(), "the first analysis' records are discarded");
        let passed: Vec<LogRecord> = engine.drain_records().filter_map(|r| retention.withhold(r)).collect();
        assert!(passed.iter().all(|r| r.schema.path != "conn"), "nothing of the first analysis passes later");
        let services = services(&mut engine);
        assert_eq!(services.len(), 1, "logged once, as analysed again: {services:?}");
        assert!(services[0].contains("ftp-data"), "{services:?}");
    }

    #[test]
    fn an_expectation_raised_later_or_for_another_port_changes_nothing() {
        for (port, raised) in [(50000, 10.05), (50001, 9.5)] {
            let (mut engine, mut retention) = (engine(), Retention::default());
            analyse(&mut engine, &mut retention, &data_channel_packets());
            let e = expectation(port);
            let released = retention.settle(&mut engine, &[(e, raised)]);
            assert!(released.is_empty());
            let services = services(&mut engine);
            assert_eq!(services.len(), 1);
            assert!(!services[0].contains("ftp-data"), "{port} at {raised}: {services:?}");
        }
    }

    #[test]
    fn records_of_kept_connections_wait_for_the_barrier() {
        let (mut engine, mut retention) = (engine(), Retention::default());
        analyse(&mut engine, &mut retention, &data_channel_packets());
        engine.finish();
        let records: Vec<LogRecord> = engine.drain_records().collect();
        assert!(!records.is_empty());
        let passed: Vec<LogRecord> = records.into_iter().filter_map(|r| retention.withhold(r)).collect();
        assert!(passed.is_empty(), "the kept connection's conn.log waits");
        let released = retention.settle(&mut engine, &[]);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].schema.path, "conn");
    }

    #[test]
    fn records_of_other_connections_and_without_connection_pass() {
        let (mut engine, mut retention) = (engine(), Retention::default());
        analyse(&mut engine, &mut retention, &data_channel_packets());
        let other = ipv4_tcp((SERVER, 80), (CLIENT, 40001), 1, 1, ACK, b"");
        engine.process_packet(10.4, LinkType::Raw, &other);
        engine.finish();
        let mut records: Vec<LogRecord> = engine.drain_records().collect();
        // A weird without a connection: no uid.
        records.push(LogRecord::new(&WEIRD, vec![Value::Unset; WEIRD.fields.len()]));
        let passed: Vec<&str> =
            records.into_iter().filter_map(|r| retention.withhold(r)).map(|r| r.schema.path).collect();
        assert_eq!(passed, ["conn", "weird"], "the port-80 connection is not kept; a record without uid passes");
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let (mut engine, mut retention) = (engine(), Retention::default());
        let mut packets = data_channel_packets();
        let big = vec![b'x'; 1400];
        let mut seq = 513;
        for i in 0..(BUDGET / 1400 + 2) {
            packets.push((10.4 + i as f64 * 1e-4, ipv4_tcp((SERVER, 50000), (CLIENT, 40000), seq, 101, PSH_ACK, &big)));
            seq += 1400;
        }
        analyse(&mut engine, &mut retention, &packets);
        assert_eq!(retention.overflows(), 1);
        let e = expectation(50000);
        retention.settle(&mut engine, &[(e, 9.5)]);
        let services = services(&mut engine);
        assert!(!services[0].contains("ftp-data"), "a connection beyond the budget is not analysed again");
    }
}
