//! Tunnels: IP-in-IP and GRE (no connection of their own), and the UDP tunnels (Teredo, VXLAN, Geneve, GTP-U, AYIYA,
//! GRE over UDP) whose outer connection is logged; the chain of tunnels a packet arrived in, tunnel.log, and
//! `Tunnel::max_depth`. Separate because decapsulation feeds inner packets back into the packet path.

use std::net::IpAddr;

use super::weirds::analyzer_weird_name;
use super::{Core, Engine};
use crate::analyzers;
use crate::conn::{Conn, Uid};
use crate::decode::{
    self, DecodeError, GrePayload, GreWeird, IpDatagram, LinkType, TunnelPayload, UdpTunnel, decode_link,
    is_teredo_bubble, is_teredo_bubble_with_payload, parse_gre,
};
use crate::logs::{LogRecord, TUNNEL, Value};

/// An IP-in-IP or GRE tunnel (no connection of its own, but a uid and tunnel.log lines).
pub(super) struct IpTunnel {
    uid: Uid,
    /// When the tunnel was made and last carried a packet (network time), for `Tunnel::ip_tunnel_timeout`.
    created: f64,
    last_active: f64,
}

/// A tunnel that tunnel.log knows of (an IP-layer tunnel from its first packet, a UDP tunnel from its DISCOVER line
/// until its connection ends), by uid: its log fields and its place in base/frameworks/tunnels' `Tunnel::active`.
pub(super) struct LoggedTunnel {
    /// tunnel.log's fields but `ts` and `action`: uid, id, tunnel_type.
    fields: Vec<Value>,
    /// Network time `Tunnel::active` last looked the tunnel up (`&read_expire`), or `None` while it is not in the
    /// table: an IP-layer tunnel before its first connection, or any tunnel after its `Tunnel::EXPIRE`.
    last_read: Option<f64>,
}

impl LoggedTunnel {
    fn record(&self, ts: f64, action: &'static str) -> LogRecord {
        let mut v = Vec::with_capacity(self.fields.len() + 2);
        v.push(Value::Time(ts));
        v.extend(self.fields.iter().cloned());
        v.push(Value::Enum(action));
        LogRecord::new(&TUNNEL, v)
    }
}

/// `Tunnel::expiration_interval`: a tunnel that no new connection (or tunnel change) used for an hour leaves
/// `Tunnel::active` with a `Tunnel::EXPIRE` line.
const EXPIRATION_INTERVAL: f64 = 3_600.0;

/// Zeek's `Tunnel::ip_tunnel_timeout`: an IP-layer tunnel's entry is checked a day after it was made and every day
/// after that, and dropped at the first check that finds it idle for a day.
const IP_TUNNEL_TIMEOUT: f64 = 86_400.0;

/// How often the entries of IP-layer tunnels that timed out are dropped. Their lookup checks the timeout itself, so
/// this only bounds memory (entries live at most this long past their timeout) while keeping the scan of the map
/// rare: Zeek's timer per tunnel has no scan at all.
const IP_TUNNEL_PRUNE_INTERVAL: f64 = 3_600.0;

impl IpTunnel {
    /// Whether the entry's inactivity timer dropped it by `now` (`IPTunnelTimer::Dispatch`).
    fn expired(&self, now: f64) -> bool {
        if now < self.last_active + IP_TUNNEL_TIMEOUT {
            // Every check from here on is a day past the last packet at the earliest: the common case, decided
            // without the division.
            return false;
        }
        // The first check at created + k days (k >= 1) that comes a day or more after the last packet.
        let days = ((self.last_active + IP_TUNNEL_TIMEOUT - self.created) / IP_TUNNEL_TIMEOUT).ceil().max(1.0);
        now >= self.created + days * IP_TUNNEL_TIMEOUT
    }
}

/// The tunnel(s) a packet arrived in: the uids that become the inner connection's `tunnel_parents`, and the kind of
/// the innermost one when it is a UDP tunnel (Zeek's `EncapsulationStack::LastType`, which the IP analyzer asks
/// before it calls an IPv6 datagram without a next header `ipv6_no_next`, a Teredo bubble being one by design, and
/// GTPv1 before it takes a datagram inside GTP for GTP).
///
/// A list on the stack, innermost tunnel first: each decapsulation adds a [`Tunnel`] in the frame that analyses
/// the inner packet, so a sensor fed by a GRE, ERSPAN or VXLAN mirror allocates nothing per packet for it.
#[derive(Clone, Copy)]
pub(super) struct Encap<'a> {
    innermost: Option<&'a Tunnel<'a>>,
}

/// One tunnel of an [`Encap`], and the ones around it.
pub(super) struct Tunnel<'a> {
    uid: Uid,
    /// The tunnel's kind when it is a UDP tunnel; `None` for IP-in-IP and GRE.
    udp: Option<UdpTunnel>,
    /// Tunnels in the chain, this one included.
    depth: usize,
    outer: Encap<'a>,
}

impl<'a> Encap<'a> {
    /// A packet of the capture itself.
    pub(super) const NONE: Encap<'static> = Encap { innermost: None };

    pub(super) fn is_empty(self) -> bool {
        self.innermost.is_none()
    }

    /// How many tunnels the packet is inside.
    pub(super) fn depth(self) -> usize {
        self.innermost.map_or(0, |t| t.depth)
    }

    /// The uid of the innermost tunnel.
    pub(super) fn innermost_uid(self) -> Option<Uid> {
        self.innermost.map(|t| t.uid)
    }

    /// The kind of the innermost tunnel when it is a UDP tunnel.
    pub(super) fn innermost_udp(self) -> Option<UdpTunnel> {
        self.innermost.and_then(|t| t.udp)
    }

    /// The chain's uids, outermost first (the order Zeek's `EncapsulationStack` holds them in).
    fn for_each_outermost_first(self, f: &mut impl FnMut(Uid)) {
        if let Some(t) = self.innermost {
            t.outer.for_each_outermost_first(f);
            f(t.uid);
        }
    }

    /// The chain of a packet found inside one more tunnel, `uid`, a UDP tunnel of kind `udp` or an IP-layer one.
    fn inside(self, uid: Uid, udp: Option<UdpTunnel>) -> Tunnel<'a> {
        Tunnel { uid, udp, depth: self.depth() + 1, outer: self }
    }
}

impl Tunnel<'_> {
    pub(super) fn encap(&self) -> Encap<'_> {
        Encap { innermost: Some(self) }
    }
}

/// An inner packet found in a UDP tunnel, analysed once the outer connection is released.
pub(super) struct Decapsulated<'p, 'e> {
    pub(super) bytes: &'p [u8],
    pub(super) tunnel: Tunnel<'e>,
}

impl Engine {
    pub(super) fn process_ip_tunnel(
        &mut self,
        ts: f64,
        ip: &IpDatagram,
        encap: Encap,
        inner: &[u8],
        kind: &'static str,
    ) {
        let uid = self.core.tunnel_uid(ip, kind);
        let tunnel = encap.inside(uid, None);
        self.process_ip(ts, inner, Some(inner.len()), tunnel.encap());
    }

    pub(super) fn process_gre(&mut self, ts: f64, ip: &IpDatagram, encap: Encap) {
        if let Some((inner, uid)) = self.core.decapsulate_gre(ts, ip, ip.payload, encap) {
            let tunnel = encap.inside(uid, None);
            self.process_ip(ts, inner, Some(inner.len()), tunnel.encap());
        }
    }
}

impl Core {
    /// Zeek's `Tunnel::max_depth`: a packet already inside that many tunnels opens no further one, and the
    /// `analyzer` that would open it says so between the packet's `hosts`.
    #[inline]
    pub(super) fn exceeds_tunnel_depth(
        &mut self,
        ts: f64,
        encap: Encap,
        analyzer: &'static str,
        hosts: (IpAddr, IpAddr),
    ) -> bool {
        if encap.depth() < self.cfg.tunnel_max_depth {
            return false;
        }
        self.report_tunnel_depth_exceeded(ts, analyzer, hosts);
        true
    }

    #[cold]
    fn report_tunnel_depth_exceeded(&mut self, ts: f64, analyzer: &'static str, hosts: (IpAddr, IpAddr)) {
        let name = analyzer_weird_name("exceeded_tunnel_max_depth", true);
        self.net_weird(ts, &name, None, Some(analyzer), Some(hosts));
    }

    /// A GRE packet, `payload` of the datagram `ip` (or of its UDP datagram, GRE over UDP): the packet inside and
    /// the tunnel's uid, as the 2026-08-21 build reads it: the GRE analyzer's header checks (flow weirds between
    /// the outer hosts, as the session manager reports a packet analyzer's), then the IP tunnel analyzer
    /// (IPTunnel.cc): the depth limit (IPTUNNEL's weird, no history letter: it has no session), PPTP's inner IP
    /// check, the tunnel's uid, and the payload as a packet of its own link type inside the tunnel.
    fn decapsulate_gre<'p>(
        &mut self,
        ts: f64,
        ip: &IpDatagram,
        payload: &'p [u8],
        encap: Encap,
    ) -> Option<(&'p [u8], Uid)> {
        let hosts = (ip.src, ip.dst);
        let payload = match parse_gre(payload) {
            Ok(payload) => payload,
            Err(GreWeird { name, addl }) => {
                let name = analyzer_weird_name(name, !encap.is_empty());
                self.net_weird(ts, &name, addl, Some("GRE"), Some(hosts));
                return None;
            }
        };
        if self.exceeds_tunnel_depth(ts, encap, "IPTUNNEL", hosts) {
            return None;
        }
        if let GrePayload::Pptp { packet, proto } = payload
            && let Err(e) = decode::check_inner_ip(proto, packet)
        {
            self.decode_weird(ts, e, Some(hosts), !encap.is_empty());
            return None;
        }
        // The tunnel is registered before its payload is analysed, so the payload's weirds are inside it: net
        // weirds, as the inner packet has no IP header yet (MPLS or ARP under GRE: `unknown_ip_version_in_tunnel`).
        let uid = self.tunnel_uid(ip, "Tunnel::GRE");
        let inner = match payload {
            GrePayload::Ip(inner) | GrePayload::Pptp { packet: inner, .. } => Ok(inner),
            GrePayload::Ethernet(frame) => decode_link(LinkType::Ethernet, frame),
            GrePayload::Ieee80211(frame) => decode_link(LinkType::Ieee80211, frame),
        };
        match inner {
            Ok(inner) => Some((inner, uid)),
            // ARP, 802.11 management frames: nothing to analyse, as on the capture's own link.
            Err(DecodeError::NotIp) => None,
            Err(e) => {
                self.decode_weird(ts, e, None, true);
                None
            }
        }
    }

    /// The uid of the IP-layer tunnel (IP-in-IP or GRE) between `ip`'s hosts, made at its first packet (Zeek's
    /// `IPTunnelAnalyzer::AnalyzePacket` in the 2026-08-21 build: one map for both kinds, keyed by the host pair, so
    /// GRE between hosts that had IP-in-IP is the same tunnel, of the first kind). tunnel.log's DISCOVER line waits
    /// for the first connection inside ([`Core::discover_ip_tunnels`]).
    fn tunnel_uid(&mut self, ip: &IpDatagram, kind: &'static str) -> Uid {
        let key = if ip.src <= ip.dst { (ip.src, ip.dst) } else { (ip.dst, ip.src) };
        let now = self.network_time;
        if let Some(t) = self.ip_tunnels.get_mut(&key) {
            if !t.expired(now) {
                t.last_active = now;
                return t.uid;
            }
            // The tunnel's entry was dropped: this packet makes a new one, with a new uid.
            self.logged_tunnels.remove(&t.uid);
        }
        let uid = self.ids.next_uid();
        if self.cfg.is_enabled("tunnel") {
            // The `EncapsulatingConn` of the first packet: its direction is the tunnel's `id` for good.
            let fields = vec![
                Value::str(uid),
                Value::Addr(ip.src),
                Value::Port(0),
                Value::Addr(ip.dst),
                Value::Port(0),
                Value::Enum(kind),
            ];
            self.logged_tunnels.insert(uid, LoggedTunnel { fields, last_read: None });
        }
        self.ip_tunnels.insert(key, IpTunnel { uid, created: now, last_active: now });
        uid
    }

    /// Drops the IP-layer tunnels whose inactivity timer dropped them by `now` (`IPTunnelTimer::Dispatch` erases the
    /// map's entry), with their tunnel.log state (an unwritten DISCOVER, or the EXPIRE written an hour after their last
    /// connection): a packet between their hosts makes a new tunnel. Without it a storm of distinct host pairs would
    /// keep every pair for as long as the sensor runs.
    pub(super) fn expire_ip_tunnels(&mut self, now: f64) {
        if now - self.ip_tunnels_pruned_at < IP_TUNNEL_PRUNE_INTERVAL {
            return;
        }
        self.ip_tunnels_pruned_at = now;
        let logged = &mut self.logged_tunnels;
        self.ip_tunnels.retain(|_, t| {
            let live = !t.expired(now);
            if !live {
                logged.remove(&t.uid);
            }
            live
        });
    }

    /// A connection was made inside the tunnels `encap`, or a connection's tunnels changed to them:
    /// base/frameworks/tunnels' `new_connection` and `tunnel_changed` handlers register every tunnel of the chain
    /// (`Tunnel::register_all`). A tunnel not in `Tunnel::active` gets its DISCOVER line and enters it: an IP-layer
    /// tunnel at its first connection (a tunnel that carries none is not logged), any tunnel again after its
    /// EXPIRE (UDP tunnels write their first DISCOVER when they first carry a packet that can make a connection).
    /// The lookup of one already there keeps it active (`&read_expire`).
    pub(super) fn register_tunnels(&mut self, ts: f64, encap: Encap) {
        let now = self.network_time;
        encap.for_each_outermost_first(&mut |uid| {
            let Some(tunnel) = self.logged_tunnels.get_mut(&uid) else { return };
            if tunnel.last_read.replace(now).is_none() {
                self.tunnel_expiry_due = self.tunnel_expiry_due.min(now + EXPIRATION_INTERVAL);
                self.records.push(tunnel.record(ts, "Tunnel::DISCOVER"));
            }
        });
    }

    /// `Tunnel::active`'s `&read_expire` by network time `now`: each tunnel unused for `Tunnel::expiration_interval`
    /// gets its `Tunnel::EXPIRE` line (`Tunnel::expire`, stamped with the time of expiry) and leaves the table, so a
    /// UDP tunnel's connection ends without CLOSE and a later connection inside it is a new DISCOVER. Checked on the
    /// engine's sweep (each second of network time) rather than Zeek's batches (`table_expire_interval`, 10 s): the
    /// same clock as the proxy tunnels of the same table (`analyzers::proxy_tunnels`). The table is walked only
    /// once its oldest entry may have lapsed. Nothing expires at the end of input, as in Zeek.
    pub(super) fn expire_logged_tunnels(&mut self, now: f64) {
        if now <= self.tunnel_expiry_due {
            return;
        }
        let mut lapsed: Vec<(f64, Uid)> = Vec::new();
        let mut oldest = f64::INFINITY;
        for (uid, tunnel) in &self.logged_tunnels {
            match tunnel.last_read {
                // Val.cc's `TableVal::DoExpire`: strictly more than the interval since the last access.
                Some(last) if last + EXPIRATION_INTERVAL < now => lapsed.push((last, *uid)),
                Some(last) => oldest = oldest.min(last),
                None => {}
            }
        }
        self.tunnel_expiry_due = oldest + EXPIRATION_INTERVAL;
        // In the order they lapsed (the map's order is random per process).
        lapsed.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (_, uid) in lapsed {
            if let Some(tunnel) = self.logged_tunnels.get_mut(&uid) {
                tunnel.last_read = None;
                self.records.push(tunnel.record(now, "Tunnel::EXPIRE"));
            }
        }
    }

    /// A UDP tunnel's connection ended: tunnel.log's CLOSE if the tunnel is still in `Tunnel::active`
    /// (`finalize_tunnel`; one that expired is not), and the tunnel is forgotten.
    #[cold]
    pub(super) fn close_tunnel(&mut self, ts: f64, conn: &Conn) {
        if let Some(tunnel) = self.logged_tunnels.remove(&conn.uid)
            && tunnel.last_read.is_some()
        {
            self.records.push(tunnel.record(ts, "Tunnel::CLOSE"));
        }
    }

    /// Teredo, VXLAN, Geneve, GTP-U and AYIYA ride on UDP: the outer connection is logged, the inner packet
    /// analysed.
    pub(super) fn try_udp_tunnel<'p, 'e>(
        &mut self,
        ts: f64,
        conn: &mut Conn,
        is_orig: bool,
        payload: &'p [u8],
        encap: Encap<'e>,
    ) -> Option<Decapsulated<'p, 'e>> {
        if !self.cfg.is_enabled("tunnel") {
            return None;
        }
        // Zeek's UDP analyzer finds the tunnel analyzer for each datagram afresh: by the responder's port, else by
        // the detection of Teredo and AYIYA.
        let tunnel = UdpTunnel::classify(conn.id.resp_p, payload)?;
        if conn.tunnel_violated() {
            return None;
        }
        let (a, b) = (conn.id.orig_h, conn.id.resp_h);
        let hosts = if is_orig { (a, b) } else { (b, a) };
        if self.exceeds_tunnel_depth(ts, encap, tunnel.analyzer_name(), hosts) {
            conn.history.analyzer_limit_reached();
            return None;
        }
        let parsed = if tunnel == UdpTunnel::Gtpv1 && encap.innermost_udp() == Some(UdpTunnel::Gtpv1) {
            // gtpv1-analyzer.pac: "GTP is never tunneled in GTP", so a datagram inside GTP is a plain one.
            gtp_in_gtp(payload)
        } else {
            tunnel.parse(payload)
        };
        let inner = match parsed {
            TunnelPayload::Refused => return None,
            TunnelPayload::Violation { reason, weird } => {
                self.tunnel_violation(ts, conn, tunnel, reason, weird, payload);
                return None;
            }
            TunnelPayload::Confirmed { weird } => {
                self.confirm_tunnel(conn, tunnel, is_orig);
                if let Some(name) = weird {
                    // A packet analyzer's weird: a flow weird between the packet's hosts, named for a tunnel
                    // inside a tunnel as Zeek's session manager names it.
                    let name = analyzer_weird_name(name, !encap.is_empty());
                    self.net_weird(ts, &name, None, Some(tunnel.analyzer_name()), Some(hosts));
                }
                return None;
            }
            TunnelPayload::Ignored { weird, addl } => {
                let name = analyzer_weird_name(weird, !encap.is_empty());
                self.net_weird(ts, &name, Some(addl), Some(tunnel.analyzer_name()), Some(hosts));
                return None;
            }
            TunnelPayload::Inner(inner) => inner,
        };
        if tunnel == UdpTunnel::Teredo && is_teredo_bubble_with_payload(inner) {
            // Teredo.cc raises it on the outer connection whether or not the analyzer confirmed (`force`).
            self.conn_weird(conn, ts, "Teredo_bubble_with_payload", None, tunnel.analyzer_name());
        }
        if conn.tunnel().is_none() {
            conn.rare().tunnel = Some(tunnel);
        }
        let bubble = tunnel == UdpTunnel::Teredo && is_teredo_bubble(inner);
        if !conn.tunnel_discovered() && !bubble {
            conn.rare().tunnel_discovered = true;
            let tunnel = LoggedTunnel { fields: tunnel_fields(conn, tunnel), last_read: Some(self.network_time) };
            self.records.push(tunnel.record(ts, "Tunnel::DISCOVER"));
            self.tunnel_expiry_due = self.tunnel_expiry_due.min(self.network_time + EXPIRATION_INTERVAL);
            self.logged_tunnels.insert(conn.uid, tunnel);
        }
        self.confirm_tunnel(conn, tunnel, is_orig);
        Some(Decapsulated { bytes: inner, tunnel: encap.inside(conn.uid, Some(tunnel)) })
    }

    /// GRE over UDP (RFC 8086, `PacketAnalyzer::GRE::gre_ports`): Zeek's UDP analyzer hands the datagram's payload
    /// to the GRE analyzer by the responder's port. The tunnel is GRE's, between the outer hosts (not the UDP
    /// connection, which gets no service), as for GRE over IP.
    #[cold]
    pub(super) fn gre_over_udp<'p, 'e>(
        &mut self,
        ts: f64,
        ip: &IpDatagram,
        payload: &'p [u8],
        encap: Encap<'e>,
    ) -> Option<Decapsulated<'p, 'e>> {
        if !self.cfg.is_enabled("tunnel") {
            return None;
        }
        let (inner, uid) = self.decapsulate_gre(ts, ip, payload, encap)?;
        Some(Decapsulated { bytes: inner, tunnel: encap.inside(uid, None) })
    }

    /// The tunnel's packet analyzer refused `payload` with a violation: the weird its parser raised if the tunnel
    /// confirmed before (Teredo.cc's `Weird`), analyzer.log's `packet` line (with the datagram as its data where the
    /// analyzer passes it), and no later packet of the connection is tried as the tunnel (`ValidateSession`'s
    /// `AnalyzerViolated`). The service stays: Zeek fails no packet analyzer.
    #[cold]
    fn tunnel_violation(
        &mut self,
        ts: f64,
        conn: &mut Conn,
        tunnel: UdpTunnel,
        reason: &str,
        weird: Option<&str>,
        payload: &[u8],
    ) {
        if let Some(name) = weird
            && conn.services().iter().any(|s| s == tunnel.service())
        {
            self.conn_weird(conn, ts, name, None, tunnel.analyzer_name());
        }
        conn.rare().tunnel_violated = true;
        let data = tunnel.violation_carries_data().then(|| analyzers::failure_data(payload)).flatten();
        self.analyzer_log(conn, "packet", tunnel.analyzer_name(), reason, data.as_deref());
    }

    /// A valid tunnel header from one side: the tunnel's service once Zeek's analyzer confirms. Only a side's
    /// first one can change that (the service is never taken back), so the rest of a tunnel's packets stop here.
    fn confirm_tunnel(&mut self, conn: &mut Conn, tunnel: UdpTunnel, is_orig: bool) {
        let seen = &mut conn.rare().tunnel_seen;
        if std::mem::replace(&mut seen[usize::from(!is_orig)], true) {
            return;
        }
        if !tunnel.confirms_on_both_sides() || *seen == [true, true] {
            conn.add_service(tunnel.service());
        }
    }
}

/// tunnel.log's fields of the UDP tunnel `conn` but `ts` and `action`: its uid, its id and the tunnel's type.
fn tunnel_fields(conn: &Conn, tunnel: UdpTunnel) -> Vec<Value> {
    let mut v = vec![Value::str(conn.uid)];
    v.extend(conn.id.log_values());
    v.push(Value::Enum(tunnel.kind()));
    v
}

/// Zeek's `Connection::CheckEncapsulation` for a packet of an existing connection: a packet in another tunnel than
/// the last one (or in one after none, or in none after one) is a `tunnel_changed`, whose innermost tunnel
/// conn/main.zeek adds to `tunnel_parents` (the outer ones of a nested chain are not parents). Only
/// `Tunnel::max_changes_per_connection` (5) changes are reported; the next one marks the history `X`. Returns
/// whether a change was reported.
#[inline(never)]
pub(super) fn check_encapsulation(conn: &mut Conn, encap: Encap) -> bool {
    const MAX_CHANGES_PER_CONNECTION: u8 = 5;
    let innermost = encap.innermost_uid();
    let rare = conn.rare();
    if rare.encapsulation == innermost {
        return false;
    }
    rare.encapsulation = innermost;
    if rare.tunnel_changes >= MAX_CHANGES_PER_CONNECTION {
        conn.history.analyzer_limit_reached();
        return false;
    }
    rare.tunnel_changes += 1;
    if let Some(uid) = innermost {
        rare.tunnel_parents.insert(uid);
    }
    true
}

/// UDP.cc: a datagram that looks like VXLAN (to one of `PacketAnalyzer::VXLAN::vxlan_ports`, longer than the UDP,
/// VXLAN and Ethernet headers, the 'I' flag set) may carry a zero checksum, which is then not checked (IPv6's UDP
/// checksum is otherwise mandatory); a non-zero one is (`Tunnel::validate_vxlan_checksums`). Asked only of a
/// datagram whose checksum failed.
#[cold]
pub(super) fn is_vxlan_without_checksum(ip: &IpDatagram) -> bool {
    const VXLAN_PORT: u16 = 4789;
    const HEADERS: usize = 8 + 8 + 14;
    ip.proto == 17
        && ip.payload_len > HEADERS
        && ip.payload.get(2..4) == Some(&VXLAN_PORT.to_be_bytes()[..])
        && ip.payload.get(6..8) == Some(&[0, 0][..])
        && ip.payload.get(8).is_some_and(|flags| flags & 0x08 != 0)
}

/// A GTPv1 datagram inside a GTPv1 tunnel: gtpv1-analyzer.pac's violation `GTP-in-GTP` once binpac parsed its
/// header (8 bytes, 4 more with any of the E, S and PN flags); a shorter one is binpac's exception, passed over
/// here as elsewhere.
#[cold]
fn gtp_in_gtp(payload: &[u8]) -> TunnelPayload<'static> {
    let header_len = match payload.first() {
        Some(flags) if flags & 0x07 != 0 => 12,
        _ => 8,
    };
    if payload.len() < header_len {
        return TunnelPayload::Refused;
    }
    TunnelPayload::Violation { reason: "GTP-in-GTP", weird: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::UidGenerator;

    /// The chain built tunnel by tunnel gives its depth, its innermost tunnel, and its uids outermost first (the
    /// order tunnel.log's DISCOVER lines of a nested chain come in).
    #[test]
    fn a_chain_of_tunnels_is_read_outermost_first() {
        let mut ids = UidGenerator::new(1);
        let (a, b, c) = (ids.next_uid(), ids.next_uid(), ids.next_uid());
        let gre = Encap::NONE.inside(a, None);
        let vxlan = gre.encap().inside(b, Some(UdpTunnel::Vxlan));
        let teredo = vxlan.encap().inside(c, Some(UdpTunnel::Teredo));
        let encap = teredo.encap();
        assert_eq!((Encap::NONE.depth(), encap.depth()), (0, 3));
        assert_eq!((encap.innermost_uid(), encap.innermost_udp()), (Some(c), Some(UdpTunnel::Teredo)));
        assert_eq!(gre.encap().innermost_udp(), None);
        let mut order = Vec::new();
        encap.for_each_outermost_first(&mut |uid| order.push(uid));
        assert_eq!(order, [a, b, c]);
        assert!(Encap::NONE.is_empty() && !encap.is_empty());
    }
}
