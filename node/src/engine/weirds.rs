//! Weird reporting: Zeek's weird framework (`weird.log`) for weirds with and without a connection, and how the
//! session manager names a packet analyzer's weird in a tunnel. Separate because every layer of the packet path and
//! the tunnels raise weirds, and the framework's policy (what is logged once, per originator, or never) is its own.

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
        const FORGET_AFTER: f64 = 600.0;
        const FORGET_PER_ORIG_AFTER: f64 = 86_400.0;
        if !self.cfg.is_enabled("weird") {
            return;
        }
        let (identifier, forget_after) = match weird_action(name) {
            WeirdAction::Ignore => return,
            WeirdAction::LogPerOrig => (flow.map(|(src, _)| src.to_string()), FORGET_PER_ORIG_AFTER),
            WeirdAction::Log => (flow.map(|(src, dst)| format!("{src} -> {dst}")), FORGET_AFTER),
        };
        if self.net_weirds_logged.len() > 4096 {
            self.net_weirds_logged.retain(|_, at| ts - *at < FORGET_PER_ORIG_AFTER);
        }
        match self.net_weirds_logged.entry((name.to_string(), identifier.unwrap_or_default())) {
            Entry::Occupied(e) if ts - *e.get() < forget_after => return,
            Entry::Occupied(mut e) => *e.get_mut() = ts,
            Entry::Vacant(e) => {
                e.insert(ts);
            }
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
                if !self.weirds_per_orig.insert((name.to_string(), conn.id.orig_h)) {
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
