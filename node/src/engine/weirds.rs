//! Weird reporting: Zeek's weird framework (`weird.log`) for weirds with and without a connection, and how the
//! session manager names a packet analyzer's weird in a tunnel. Separate because every layer of the packet path and
//! the tunnels raise weirds, and the framework's policy (what is logged once, per originator, or never) is its own.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use super::Core;
use crate::conn::Conn;
use crate::decode::{DecodeError, PacketWeird};
use crate::logs::{LogRecord, Value, WEIRD, net_weird_record};

impl Core {
    /// A packet that could not be decoded: Zeek's weird from the analyzer that refused it, between `hosts` once
    /// the IP header was known.
    #[cold]
    pub(super) fn decode_weird(&mut self, ts: f64, e: DecodeError, hosts: Option<(IpAddr, IpAddr)>, in_tunnel: bool) {
        self.stats.decode_errors += 1;
        let text = e.to_string();
        let name = analyzer_weird_name(&text, in_tunnel);
        self.net_weird(ts, &name, e.addl(), e.source(), hosts);
    }

    /// A weird found while decoding a packet that goes on.
    #[cold]
    pub(super) fn packet_weird(&mut self, ts: f64, w: PacketWeird, in_tunnel: bool) {
        // Only what an analyzer reports goes through Zeek's session manager, which names weirds in tunnels.
        let name = analyzer_weird_name(w.name, in_tunnel && w.source.is_some());
        self.net_weird(ts, &name, w.addl, w.source, w.hosts);
    }

    /// Zeek's logging limits on the records written since the last drain ([`crate::logs::limits`]), with the
    /// weirds its logging manager raises for a cut (connection-less, `addl` the stream's `Log::ID`).
    pub(super) fn limit_record_fields(&mut self) {
        let mut weirds = Vec::new();
        for r in &mut self.records {
            weirds.extend(crate::logs::limits::limit_record(r));
        }
        let ts = self.network_time;
        for (name, addl) in weirds {
            self.net_weird(ts, name, Some(addl), None, None);
        }
    }

    /// A weird without a connection (Zeek's `net_weird`, or `flow_weird` with the two hosts), through the weird
    /// framework: logged once per name and identifier until Zeek's `weird_ignore` (10 min) or, for weirds
    /// logged per originator, `did_log` (1 day) forgets it.
    #[cold]
    pub(super) fn net_weird(
        &mut self,
        ts: f64,
        name: &str,
        addl: Option<String>,
        source: Option<&str>,
        flow: Option<(IpAddr, IpAddr)>,
    ) {
        if !self.cfg.is_enabled("weird") {
            return;
        }
        let (identifier, interval) = match weird_action(name) {
            WeirdAction::Ignore => return,
            WeirdAction::LogPerOrig => (flow.map(|(src, _)| src.to_string()), DID_LOG_EXPIRE),
            WeirdAction::Log => (flow.map(|(src, dst)| format!("{src} -> {dst}")), WEIRD_IGNORE_EXPIRE),
        };
        if !self.weirds_logged.first_in(ts, name, identifier.unwrap_or_default(), interval) {
            return;
        }
        self.records.push(net_weird_record(ts, name, addl, "zeek", source, flow));
    }

    /// Reports a weird on a connection through Zeek's weird framework policy: some names are ignored, some
    /// logged once per originator, the rest once per connection (checksum weirds every time).
    #[cold]
    pub(super) fn conn_weird(&mut self, conn: &mut Conn, ts: f64, name: &str, addl: Option<String>, source: &str) {
        // Zeek's core raises this one only on a connection without earlier weirds (`DidWeird`).
        let first_weird_only = matches!(name, "possible_split_routing" | "TCP_scale_range");
        let had_weird = conn.note_weird();
        if !self.cfg.is_enabled("weird") || (first_weird_only && had_weird) {
            return;
        }
        match weird_action(name) {
            WeirdAction::Ignore => return,
            WeirdAction::LogPerOrig => {
                if !self.weirds_logged.first_in(ts, name, conn.id.orig_h.to_string(), DID_LOG_EXPIRE) {
                    return;
                }
            }
            WeirdAction::Log => {}
        }
        let repeatable = name.starts_with("bad_") && name.ends_with("_checksum");
        if !repeatable {
            let logged = &mut conn.rare().weirds_logged;
            if logged.iter().any(|n| n == name) {
                return;
            }
            logged.push(name.to_string());
        }
        let mut v = vec![Value::Time(ts), Value::str(conn.uid)];
        v.extend(conn.id.log_values());
        v.extend([
            Value::str(name),
            Value::opt_str(addl),
            Value::Bool(false),
            Value::str("zeek"),
            if source.is_empty() { Value::Unset } else { Value::str(source) },
        ]);
        self.records.push(LogRecord::new(&WEIRD, v));
    }
}

/// `weird_ignore`'s `&create_expire`: a weird logged per flow (or without one) is logged again after this long.
const WEIRD_IGNORE_EXPIRE: f64 = 600.0;
/// `did_log`'s `&create_expire`: a weird logged once per originator is logged again after this long.
const DID_LOG_EXPIRE: f64 = 86_400.0;

/// Zeek's `weird_ignore` and `did_log` sets (base/frameworks/notice/weird.zeek): which (name, identifier) pairs
/// were logged, each until it expires. `did_log` keys a per-originator weird by the originator's address whether
/// a connection or a flow raised it, so both share this table, as they share the set in Zeek.
///
/// Expired entries are dropped whenever the table has doubled since the last pruning: a storm of distinct weirds
/// (a scan's flows, say) costs amortized constant time a weird, and a long-running capture holds no more than
/// twice what is still live.
#[derive(Default)]
pub(super) struct WeirdsLogged {
    /// When each pair may be logged again.
    expires: HashMap<(String, String), f64>,
    prune_at: usize,
}

impl WeirdsLogged {
    /// The table is not pruned below this size.
    const PRUNE_MIN: usize = 4096;

    /// Whether `name` for `identifier` is to be logged at `ts`: not logged within its `interval` before. If so, it
    /// counts as logged from `ts` on.
    fn first_in(&mut self, ts: f64, name: &str, identifier: String, interval: f64) -> bool {
        if self.expires.len() >= self.prune_at.max(Self::PRUNE_MIN) {
            self.expires.retain(|_, expires| ts < *expires);
            self.prune_at = 2 * self.expires.len();
        }
        match self.expires.entry((name.to_string(), identifier)) {
            Entry::Occupied(e) if ts < *e.get() => false,
            Entry::Occupied(mut e) => {
                *e.get_mut() = ts + interval;
                true
            }
            Entry::Vacant(e) => {
                e.insert(ts + interval);
                true
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.expires.len()
    }
}

/// A packet analyzer's weird as Zeek's session manager names it: with `_in_tunnel` inside a tunnel.
pub(super) fn analyzer_weird_name(name: &str, in_tunnel: bool) -> std::borrow::Cow<'_, str> {
    if in_tunnel { format!("{name}_in_tunnel").into() } else { name.into() }
}

/// What Zeek's weird framework (base/frameworks/notice/weird.zeek, `Weird::actions`) does with a weird.
enum WeirdAction {
    Ignore,
    LogPerOrig,
    Log,
}

fn weird_action(name: &str) -> WeirdAction {
    match name {
        "unsolicited_SYN_response" | "FIN_after_reset" | "spontaneous_FIN" | "spontaneous_RST" => WeirdAction::Ignore,
        "bad_TCP_checksum"
        | "bad_UDP_checksum"
        | "bad_ICMP_checksum"
        | "bad_IP_checksum"
        | "SYN_with_data"
        | "connection_originator_SYN_ack"
        | "corrupt_tcp_options"
        | "UDP_datagram_length_mismatch"
        | "excessively_small_fragment"
        | "fragment_inconsistency"
        | "fragment_overlap"
        | "fragment_size_inconsistency"
        | "DNS_label_forward_compress_offset"
        | "DNS_label_len_gt_name_len"
        | "DNS_label_len_gt_pkt"
        | "DNS_label_too_long"
        | "bad_RPC"
        | "excess_RPC"
        | "originator_RPC_reply"
        | "partial_RPC"
        | "responder_RPC_call" => WeirdAction::LogPerOrig,
        _ => WeirdAction::Log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weird_is_logged_again_once_its_entry_expires() {
        let mut logged = WeirdsLogged::default();
        let flow = || "10.0.0.1 -> 10.0.0.2".to_string();
        assert!(logged.first_in(100.0, "truncated_IP", flow(), WEIRD_IGNORE_EXPIRE));
        assert!(!logged.first_in(699.9, "truncated_IP", flow(), WEIRD_IGNORE_EXPIRE));
        assert!(logged.first_in(699.9, "truncated_header", flow(), WEIRD_IGNORE_EXPIRE), "another name");
        assert!(logged.first_in(700.0, "truncated_IP", flow(), WEIRD_IGNORE_EXPIRE), "&create_expire=10min");
        assert!(!logged.first_in(1299.0, "truncated_IP", flow(), WEIRD_IGNORE_EXPIRE), "from its new creation");

        // did_log: per originator for a day, whether a connection or a flow raised it.
        let orig = || "10.0.0.1".to_string();
        assert!(logged.first_in(0.0, "SYN_with_data", orig(), DID_LOG_EXPIRE));
        assert!(!logged.first_in(86_399.0, "SYN_with_data", orig(), DID_LOG_EXPIRE));
        assert!(logged.first_in(86_400.0, "SYN_with_data", orig(), DID_LOG_EXPIRE));
    }

    #[test]
    fn a_storm_of_distinct_weirds_keeps_the_table_bounded_by_what_is_live() {
        let mut logged = WeirdsLogged::default();
        let mut most = 0;
        // A weird from a new flow every 0.1 s for 10,000 s: 6,000 are within their ten minutes at any time.
        for i in 0..100_000u32 {
            let ts = f64::from(i) / 10.0;
            assert!(logged.first_in(ts, "bad_TCP_header_len", format!("flow {i}"), WEIRD_IGNORE_EXPIRE));
            most = most.max(logged.len());
        }
        assert!(most <= 2 * 6_001 + 1, "at most twice the live entries: {most}");
        // Pruning keeps what is live: a day-long entry made among the storm still suppresses.
        assert!(logged.first_in(10_000.0, "SYN_with_data", "10.0.0.9".into(), DID_LOG_EXPIRE));
        for i in 0..50_000u32 {
            logged.first_in(10_000.0 + f64::from(i) / 10.0, "truncated_IP", format!("flow {i}"), WEIRD_IGNORE_EXPIRE);
        }
        assert!(!logged.first_in(15_000.0, "SYN_with_data", "10.0.0.9".into(), DID_LOG_EXPIRE));
    }
}
