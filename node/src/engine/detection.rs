//! Which analyzers a connection gets: by the responder's port or an expectation when it is created, then by content
//! detection (Zeek's DPD signatures and PIA buffering) on the first bytes of each direction, and afresh after a
//! hand-over. Separate from the packet path, which only delivers payload to what is attached.

use std::collections::HashMap;
use std::net::IpAddr;

use super::Core;
use crate::analyzers::{self, AnalyzerSpec, ConnId, Expectation, Proto};
use crate::conn::{Attached, Conn};

/// Bytes of each TCP direction kept for content detection (Zeek's dpd_buffer_size).
const DPD_BUFFER: usize = 1024;

/// The specs registering each port (`ports` of a spec), as bits of `specs`, sorted by port, and `other_ports` with
/// no spec: a new connection finds its analyzers and whether a port is a likely server port with one search.
pub(super) fn port_specs(
    specs: &[&'static AnalyzerSpec],
    ports: impl Fn(&AnalyzerSpec) -> &[u16],
    other_ports: &[u16],
) -> Vec<(u16, u64)> {
    let mut by_port: std::collections::BTreeMap<u16, u64> = other_ports.iter().map(|&p| (p, 0)).collect();
    for (i, spec) in specs.iter().enumerate() {
        for &port in ports(spec) {
            *by_port.entry(port).or_default() |= 1 << i;
        }
    }
    by_port.into_iter().collect()
}

/// Whether expectation `e` is for the connection `id` (Zeek's expected connections match the responder and,
/// when given, the originator's address).
pub fn expectation_names(e: &Expectation, id: &ConnId) -> bool {
    e.resp_h == id.resp_h && e.resp_p == id.resp_p && e.orig_h.is_none_or(|o| o == id.orig_h)
}

/// The expected connections, by responder address and port (Zeek's analyzer manager keys them by connection index, so
/// a new connection finds its expectation without a look at the others).
#[derive(Default)]
pub(super) struct Expectations {
    /// In the order they were announced, per responder.
    by_responder: HashMap<(IpAddr, u16), Vec<Expectation>>,
    pruned_at: f64,
}

/// How often lapsed expectations that no connection asked for are dropped (each is also dropped when a connection to
/// its responder comes). Zeek's queue by timeout drops them as they lapse; once a minute is as good for memory.
const EXPECTATIONS_PRUNE_INTERVAL: f64 = 60.0;

impl Expectations {
    pub(super) fn add(&mut self, e: Expectation) {
        self.by_responder.entry((e.resp_h, e.resp_p)).or_default().push(e);
    }

    /// Takes the first expectation announced for the connection `id` that has not lapsed by `ts`; the lapsed ones
    /// of its responder go.
    fn take(&mut self, id: &ConnId, ts: f64) -> Option<Expectation> {
        let key = (id.resp_h, id.resp_p);
        let list = self.by_responder.get_mut(&key)?;
        list.retain(|e| e.expires >= ts);
        let taken = list.iter().position(|e| expectation_names(e, id)).map(|pos| list.remove(pos));
        if list.is_empty() {
            self.by_responder.remove(&key);
        }
        taken
    }

    /// Drops what lapsed by `now`, at most once per [`EXPECTATIONS_PRUNE_INTERVAL`].
    pub(super) fn expire(&mut self, now: f64) {
        if now - self.pruned_at < EXPECTATIONS_PRUNE_INTERVAL {
            return;
        }
        self.pruned_at = now;
        self.by_responder.retain(|_, list| {
            list.retain(|e| e.expires >= now);
            !list.is_empty()
        });
    }

    /// The expected responder ports, sorted.
    #[cfg(test)]
    pub(super) fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.by_responder.values().flatten().map(|e| e.resp_p).collect();
        ports.sort_unstable();
        ports
    }
}

impl Core {
    /// A transport's likely server ports, each with the specs a new connection to it gets ([`port_specs`]). Ports
    /// are typed as in Zeek (`80/tcp`): ICMP and other transports have none.
    pub(super) fn port_specs_of(&self, proto: Proto) -> &[(u16, u64)] {
        match proto {
            Proto::Tcp => &self.tcp_port_specs,
            Proto::Udp => &self.udp_port_specs,
            Proto::Icmp | Proto::Unknown => &[],
        }
    }

    pub(super) fn attach_initial_analyzers(&mut self, conn: &mut Conn, ts: f64) {
        if let Some(e) = self.expectations.take(&conn.id, ts) {
            conn.add_service(e.service);
            if let Some(spec) = e.analyzer.and_then(analyzers::spec_by_name) {
                conn.attach(spec);
            }
            return;
        }
        let by_port = self.port_specs_of(conn.id.proto);
        if let Ok(at) = by_port.binary_search_by_key(&conn.id.resp_p, |&(port, _)| port) {
            for spec in self.specs_in(by_port[at].1) {
                conn.attach(spec);
            }
        }
    }

    /// Content detection (Zeek's DPD signatures) on the start of each direction. UDP matches per datagram;
    /// TCP matches on the first bytes of each stream, buffered across segments (Zeek's PIA), so that a request
    /// typed one byte at a time is still recognised. Returns the index of the first analyzer it attached.
    fn detect_analyzers(&self, conn: &mut Conn, is_orig: bool, data: &[u8]) -> Option<usize> {
        let side = usize::from(!is_orig);
        if data.is_empty() || self.specs.iter().all(|s| s.detect.is_none()) {
            return None;
        }
        let first_new = conn.analyzers.len();
        let proto = conn.id.proto;
        let matched = if proto == Proto::Tcp {
            if conn.content_detection_done() {
                return None;
            }
            let (dpd, attached) = conn.content_detection_state();
            if dpd.seen[side] >= DPD_BUFFER {
                return None;
            }
            let take = data.len().min(DPD_BUFFER - dpd.seen[side]);
            dpd.seen[side] += take;
            dpd.streams[side].extend_from_slice(&data[..take]);
            dpd.order.push((is_orig, take as u32));
            let (this, other) = (&dpd.streams[side], &dpd.streams[1 - side]);
            let matched = self.matching_specs(attached, |d| d.matches(proto, is_orig, this, other));
            if dpd.seen[0] >= DPD_BUFFER && dpd.seen[1] >= DPD_BUFFER {
                conn.end_content_detection();
            }
            matched
        } else {
            if conn.note_payload(side) {
                return None;
            }
            self.matching_specs(&conn.analyzers, |d| d.matches(proto, is_orig, data, &[]))
        };
        for spec in self.specs_in(matched) {
            conn.attach(spec);
        }
        (matched != 0).then_some(first_new)
    }

    /// The enabled specs (bit `i` for `specs[i]`) whose signature `matches` and that are not attached yet: a
    /// set of bits rather than a list, as this runs for every payload while detection goes on.
    fn matching_specs(&self, attached: &[Attached], mut matches: impl FnMut(&analyzers::Signature) -> bool) -> u64 {
        let mut set = 0;
        for (i, spec) in self.specs.iter().enumerate() {
            if spec.detect.as_ref().is_some_and(&mut matches) && !attached.iter().any(|a| a.name() == spec.name) {
                set |= 1 << i;
            }
        }
        set
    }

    /// The specs in a set from [`Self::matching_specs`], in registry order.
    fn specs_in(&self, set: u64) -> impl Iterator<Item = &'static AnalyzerSpec> + '_ {
        self.specs.iter().enumerate().filter(move |(i, _)| set & (1 << i) != 0).map(|(_, spec)| *spec)
    }

    /// Content detection on `data`. Analyzers it finds on TCP see the stream from its start: what was buffered
    /// (which includes `data`) is replayed to them alone. Returns the analyzers that still need `data`.
    pub(super) fn detect_and_replay(
        &mut self,
        conn: &mut Conn,
        ts: f64,
        is_orig: bool,
        data: &[u8],
    ) -> std::ops::Range<usize> {
        let newly_attached = self.detect_analyzers(conn, is_orig, data);
        let (Proto::Tcp, Some(first_new)) = (conn.id.proto, newly_attached) else { return 0..conn.analyzers.len() };
        let all = first_new..conn.analyzers.len();
        if let Some(dpd) = conn.take_content_detection_buffers() {
            for (orig, bytes) in dpd.replay() {
                self.with_analyzers(conn, ts, all.clone(), |a, ctx| a.deliver(ctx, orig, bytes));
            }
            // Detection goes on unless a protocol was confirmed (and not since failed) in the replay, or a hand-over
            // in the replay started it afresh.
            if !conn.has_content_detection_buffers() {
                if conn.services().is_empty() {
                    conn.resume_content_detection(dpd);
                } else {
                    conn.end_content_detection();
                }
            }
        }
        0..first_new
    }

    /// The rest of a TCP stream is another protocol ([`analyzers::Action::HandOver`]): the named analyzer takes it,
    /// or content detection starts afresh on it (Zeek's PIA under the HTTP analyzer after a CONNECT, under SOCKS
    /// after its handshake), in a scope of its own; `rest` is its first bytes.
    #[cold]
    pub(super) fn hand_over(&mut self, conn: &mut Conn, analyzer: Option<&'static str>, is_orig: bool, rest: &[u8]) {
        let ts = self.network_time;
        let spec = analyzer.and_then(analyzers::spec_by_name).filter(|s| self.cfg.is_enabled(s.name));
        if let Some(spec) = spec {
            let index = conn.analyzers.len();
            conn.attach(spec);
            if conn.analyzers.len() > index && !rest.is_empty() {
                self.with_analyzers(conn, ts, index..index + 1, |a, ctx| a.deliver(ctx, is_orig, rest));
            }
            return;
        }
        conn.restart_content_detection();
        if !rest.is_empty() {
            self.detect_and_replay(conn, ts, is_orig, rest);
        }
    }
}
