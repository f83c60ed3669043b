//! One analysis engine: packets in, log records out. It owns the session table and runs the pipeline
//! decode → connection state → reassembly → analyzers, and removes connections on Zeek's timers.
//! Threads each own an engine; what crosses threads is packets in and records out.
//! This file holds the public API and the packet path; the child modules hold tunnels, analyzer selection
//! (`detection`), connection timers and expiry (`timers`), and weird reporting (`weirds`).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::IpAddr;

use dary_heap::QuaternaryHeap;

use crate::analyzers::{self, Action, AnalyzerSpec, ConnId, Ctx, Expectation, Proto};
use crate::config::AnalysisConfig;
use crate::conn::{Chunk, Conn, ConnKey, ConnTable, EndpointState, Session, Stream, Uid, UidGenerator};
use crate::decode::{
    self, DecodeError, IpDatagram, LinkType, PacketWeird, Reassembler, Transport, UdpTunnel, decode_ip_on_wire,
    decode_link, decode_transport, icmp6, transport_checksum_ok,
};
use crate::logs::{ANALYZER, FILES, FILES_BARE, LogRecord, Value};

mod detection;
mod timers;
mod tunnels;
mod weirds;

pub use detection::expectation_names;
use detection::port_specs;
use timers::{Deadline, Timer, next_check, timeouts, timer_serial};
use tunnels::{Decapsulated, Encap, IpTunnel, check_encapsulation, is_vxlan_without_checksum};

/// IPv6's "no next header" protocol number.
const IPV6_NO_NEXT: u8 = 59;
/// The UDP port Zeek registers for GRE over UDP (`PacketAnalyzer::GRE::gre_ports`).
const GRE_OVER_UDP_PORT: u16 = 4754;
const IPPROTO_ESP: u8 = 50;
const IPPROTO_MOBILITY: u8 = 135;

/// Counters an engine keeps (exposed as metrics and in the end-of-run summary).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: u64,
    pub connections: u64,
    pub active_connections: u64,
    /// Zeek's gap statistics (`get_gap_stats`), what its capture-loss estimate is made of: acks that moved a TCP
    /// stream on while both sides were established, and those among them that acknowledged bytes never seen.
    pub tcp_ack_events: u64,
    pub tcp_gap_events: u64,
    /// Connections created, by transport (Zeek's `ConnStats` `cumulative_*_conns`; ICMP and ICMPv6 together).
    pub tcp_connections: u64,
    pub udp_connections: u64,
    pub icmp_connections: u64,
    /// Connections in the session table now, by transport (`ConnStats` `num_*_conns`).
    pub active_tcp_connections: u64,
    pub active_udp_connections: u64,
    pub active_icmp_connections: u64,
    /// Session timers armed since the start (`TimerStats` `cumulative`), and those in the heap now (`current`).
    pub timers_scheduled: u64,
    pub active_timers: u64,
    /// Files given an id (`FileAnalysisStats` `cumulative`), and those among them logged to files.log: the
    /// others are still being analysed (`current`).
    pub files_seen: u64,
    pub files_logged: u64,
    /// Log records the engine handed on (what stands for Zeek's events: see stats.log in docs/FIDELITY.md).
    pub log_records: u64,
    /// Bytes held now behind holes in TCP streams and in IP fragments awaiting the rest of their datagram
    /// (`ReassemblerStats` `tcp_size`, `frag_size`).
    pub tcp_reassembly_bytes: u64,
    pub frag_reassembly_bytes: u64,
    /// Datagrams whose fragments were dropped unreassembled: timed out, or over the reassembly memory bound.
    pub frag_datagrams_dropped: u64,
    /// TCP directions whose reassembly gave up past Zeek's bounds (`above_hole_data_without_any_acks`,
    /// `excessive_data_without_further_acks`): their analyzers saw nothing more.
    pub tcp_streams_given_up: u64,
}

impl EngineStats {
    /// Adds another engine's counters and gauges (the analysis threads that split one capture).
    pub fn add(&mut self, o: &EngineStats) {
        let sum = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        sum(&mut self.packets, o.packets);
        sum(&mut self.bytes, o.bytes);
        sum(&mut self.decode_errors, o.decode_errors);
        sum(&mut self.connections, o.connections);
        sum(&mut self.active_connections, o.active_connections);
        sum(&mut self.tcp_ack_events, o.tcp_ack_events);
        sum(&mut self.tcp_gap_events, o.tcp_gap_events);
        sum(&mut self.tcp_connections, o.tcp_connections);
        sum(&mut self.udp_connections, o.udp_connections);
        sum(&mut self.icmp_connections, o.icmp_connections);
        sum(&mut self.active_tcp_connections, o.active_tcp_connections);
        sum(&mut self.active_udp_connections, o.active_udp_connections);
        sum(&mut self.active_icmp_connections, o.active_icmp_connections);
        sum(&mut self.timers_scheduled, o.timers_scheduled);
        sum(&mut self.active_timers, o.active_timers);
        sum(&mut self.files_seen, o.files_seen);
        sum(&mut self.files_logged, o.files_logged);
        sum(&mut self.log_records, o.log_records);
        sum(&mut self.tcp_reassembly_bytes, o.tcp_reassembly_bytes);
        sum(&mut self.frag_reassembly_bytes, o.frag_reassembly_bytes);
        sum(&mut self.frag_datagrams_dropped, o.frag_datagrams_dropped);
        sum(&mut self.tcp_streams_given_up, o.tcp_streams_given_up);
    }

    /// Zeek's capture-loss estimate (`policy/misc/capture-loss`): the share of acks above a content gap, in
    /// percent; `None` before any ack. Loss anywhere before the analysis (a SPAN port, the NIC, the kernel) shows
    /// here, where the capture's drop counters only see their own.
    pub fn capture_loss_percent(&self) -> Option<f64> {
        capture_loss_percent(self.tcp_ack_events, self.tcp_gap_events)
    }
}

impl EngineStats {
    /// The created and active connection counters of a connection's transport (ICMP for anything but TCP and UDP,
    /// as the session table holds only the three).
    fn by_transport(&mut self, ip_proto: u8) -> (&mut u64, &mut u64) {
        match ip_proto {
            6 => (&mut self.tcp_connections, &mut self.active_tcp_connections),
            17 => (&mut self.udp_connections, &mut self.active_udp_connections),
            _ => (&mut self.icmp_connections, &mut self.active_icmp_connections),
        }
    }
}

/// Runs `f` on a TCP stream, keeping the engine's count of bytes held behind holes (`held_total`) in step.
fn tracking_held<R>(held_total: &mut u64, stream: &mut Stream, f: impl FnOnce(&mut Stream) -> R) -> R {
    let before = stream.held_bytes() as u64;
    let r = f(stream);
    *held_total = held_total.saturating_sub(before).saturating_add(stream.held_bytes() as u64);
    r
}

/// Zeek's capture-loss figure from its gap statistics: gap events per hundred ack events.
pub fn capture_loss_percent(ack_events: u64, gap_events: u64) -> Option<f64> {
    (ack_events > 0).then(|| 100.0 * gap_events as f64 / ack_events as f64)
}

pub struct Engine {
    table: ConnTable,
    /// Every armed timer. Entries whose deadline is not the connection's current one, or whose serial is not the
    /// slot's connection's (the connection is gone), are stale and skipped.
    timers: QuaternaryHeap<Reverse<Timer>>,
    core: Core,
}

/// Everything but the session table, so a connection borrowed from the table and the engine's other state
/// can be used together without moving the connection out.
struct Core {
    cfg: AnalysisConfig,
    frags: Reassembler,
    ids: UidGenerator,
    records: Vec<LogRecord>,
    expectations: detection::Expectations,
    /// Expectations raised here since the last [`Engine::take_new_expectations`], for other workers.
    new_expectations: Vec<Expectation>,
    share_expectations: bool,
    /// Offline cluster workers: the connections they may analyse again (see [`Engine::track_connections`]).
    tracking: Option<Tracking>,
    /// Connections dropped by [`Engine::forget`]: not counted in [`EngineStats::connections`].
    forgotten: u64,
    /// Weirds logged per originator, per flow and without a connection, until Zeek's weird framework would log
    /// them again.
    weirds_logged: weirds::WeirdsLogged,
    /// State analyzers keep across connections (DHCP transactions).
    shared: analyzers::SharedState,
    /// The actions buffer analyzer calls share, empty between calls: nearly every connection confirms a service
    /// once, and a buffer per call cost it an allocation.
    spare_actions: Vec<Action>,
    /// IP-layer tunnels (IP-in-IP and GRE in one map, as the IP tunnel analyzer keeps them) by their hosts,
    /// looked up for every packet of an IP-in-IP or GRE tunnel (a sensor fed by an ERSPAN or GRE mirror: all of
    /// them). Keys are attacker-controlled: randomly seeded foldhash, as the session table's; SipHash cost 380
    /// instructions a packet here.
    ip_tunnels: HashMap<(IpAddr, IpAddr), IpTunnel, foldhash::fast::RandomState>,
    /// The tunnels tunnel.log knows of, by uid, with their place in `Tunnel::active` (an IP-layer tunnel from its
    /// first packet until its entry is dropped, a UDP tunnel from its DISCOVER until its connection ends).
    logged_tunnels: HashMap<Uid, tunnels::LoggedTunnel>,
    /// No tunnel of `logged_tunnels` expires from `Tunnel::active` at or before this network time.
    tunnel_expiry_due: f64,
    /// Network time of the last [`Core::expire_ip_tunnels`].
    ip_tunnels_pruned_at: f64,
    specs: Vec<&'static AnalyzerSpec>,
    /// Zeek's likely server ports (what the loaded protocol scripts register, and UDP tunnels' ports), sorted, each
    /// with the specs (bits of `specs`) a new connection to it gets: [`port_specs`].
    tcp_port_specs: Vec<(u16, u64)>,
    udp_port_specs: Vec<(u16, u64)>,
    network_time: f64,
    last_sweep: f64,
    stats: EngineStats,
}

/// A connection that packets (not tunnels) created, reported to a cluster worker by [`Engine::take_created`].
#[derive(Debug, Clone)]
pub struct CreatedConn {
    pub key: ConnKey,
    pub uid: Uid,
    pub id: ConnId,
    pub start: f64,
    /// Analyzers were attached when it was created (by port or expectation).
    pub analyzed: bool,
}

/// What [`Engine::track_connections`] keeps.
#[derive(Default)]
struct Tracking {
    /// The connection of the packet analysed last.
    last: Option<ConnKey>,
    created: Vec<CreatedConn>,
}

impl Engine {
    pub fn new(cfg: AnalysisConfig) -> Self {
        let specs: Vec<_> = analyzers::REGISTRY.iter().copied().filter(|s| cfg.is_enabled(s.name)).collect();
        assert!(specs.len() <= u64::BITS as usize, "content detection keeps the specs it matched as bits of a u64");
        // `register_for_ports` makes these likely server ports.
        let tunnel_ports = if cfg.is_enabled("tunnel") {
            UdpTunnel::BY_PORT.iter().map(|&(port, _)| port).chain([GRE_OVER_UDP_PORT]).collect()
        } else {
            vec![]
        };
        let tcp_port_specs = port_specs(&specs, |s| s.tcp_ports, &[]);
        let udp_port_specs = port_specs(&specs, |s| s.udp_ports, &tunnel_ports);
        let core = Core {
            ids: UidGenerator::new(cfg.seed),
            cfg,
            frags: Reassembler::default(),
            records: Vec::new(),
            expectations: Default::default(),
            new_expectations: Vec::new(),
            share_expectations: false,
            tracking: None,
            forgotten: 0,
            weirds_logged: Default::default(),
            shared: analyzers::SharedState::default(),
            spare_actions: Vec::new(),
            ip_tunnels: HashMap::default(),
            logged_tunnels: HashMap::new(),
            tunnel_expiry_due: f64::INFINITY,
            ip_tunnels_pruned_at: 0.0,
            specs,
            tcp_port_specs,
            udp_port_specs,
            network_time: 0.0,
            last_sweep: 0.0,
            stats: EngineStats::default(),
        };
        Engine { table: ConnTable::default(), timers: QuaternaryHeap::new(), core }
    }

    /// Takes the records written since the last call.
    pub fn drain_records(&mut self) -> std::vec::Drain<'_, LogRecord> {
        if !self.core.cfg.files_have_hashes() {
            // Bare mode: files.log without the hash and extraction columns, as Zeek writes it.
            for r in self.core.records.iter_mut().filter(|r| std::ptr::eq(r.schema, &FILES)) {
                r.values.truncate(FILES_BARE.fields.len());
                r.schema = &FILES_BARE;
            }
        }
        self.core.limit_record_fields();
        let files = self.core.records.iter().filter(|r| r.schema.path == FILES.path).count();
        self.core.stats.files_logged += files as u64;
        self.core.stats.log_records += self.core.records.len() as u64;
        self.core.records.drain(..)
    }

    pub fn pending_records(&self) -> usize {
        self.core.records.len()
    }

    /// Collect new expectations for [`Engine::take_new_expectations`] (cluster workers).
    pub fn share_expectations(&mut self, on: bool) {
        self.core.share_expectations = on;
    }

    /// Expected connections (FTP data channels) announced since the last call. In a cluster, the data
    /// connection may land on another worker: share these through the manager, as Zeek's
    /// `FTP::sync_add_expected_data` does, and hand them to [`Engine::add_expectation`] there.
    pub fn take_new_expectations(&mut self) -> Vec<Expectation> {
        std::mem::take(&mut self.core.new_expectations)
    }

    /// An expectation raised by another engine.
    pub fn add_expectation(&mut self, e: Expectation) {
        self.core.expectations.add(e);
    }

    /// The ports of the connections this engine expects, sorted.
    #[cfg(test)]
    pub(crate) fn expected_ports(&self) -> Vec<u16> {
        self.core.expectations.ports()
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            active_connections: self.table.len() as u64,
            connections: self.core.stats.connections - self.core.forgotten,
            // Every connection has one live timer in the heap; the heap's other entries are stale.
            active_timers: self.table.len() as u64,
            files_seen: self.core.ids.fuids_issued(),
            frag_reassembly_bytes: self.core.frags.held_bytes() as u64,
            frag_datagrams_dropped: self.core.frags.dropped,
            ..self.core.stats
        }
    }

    /// FTP records waiting for data channels analysed on other cluster workers.
    pub fn ftp_links(&mut self) -> &mut analyzers::ftp::DataLinks {
        &mut self.core.shared.ftp
    }

    /// The engine's network time (the latest packet time it has seen).
    pub fn network_time(&self) -> f64 {
        self.core.network_time
    }

    /// Offline cluster workers: report which connection each packet went to ([`Engine::last_connection`]) and
    /// which ones packets created ([`Engine::take_created`]), so a connection can be analysed again once an
    /// expectation raised on another worker names it ([`Engine::forget`], [`Engine::replay_packet`]).
    pub fn track_connections(&mut self, on: bool) {
        self.core.tracking = on.then(Tracking::default);
    }

    /// The connection the last packet went to (tracking on; connections inside tunnels are not reported).
    pub fn last_connection(&self) -> Option<ConnKey> {
        self.core.tracking.as_ref().and_then(|t| t.last)
    }

    /// Connections created since the last call (tracking on).
    pub fn take_created(&mut self) -> Vec<CreatedConn> {
        self.core.tracking.as_mut().map(|t| std::mem::take(&mut t.created)).unwrap_or_default()
    }

    /// Forgets connection `uid` under `key`, to analyse it again: drops it without logging (its timers go stale)
    /// or, if it already ended, only stops counting it (the caller discards what it logged). False, doing nothing,
    /// when another connection holds the key now.
    pub fn forget(&mut self, key: &ConnKey, uid: Uid) -> bool {
        match self.table.get(key) {
            Some(c) if c.uid != uid => return false,
            Some(_) => {
                if let Some(conn) = self.table.remove(key) {
                    self.core.conn_gone(&conn);
                }
            }
            None => {}
        }
        self.core.forgotten += 1;
        true
    }

    /// Analyses again a packet this engine saw before, at the packet time and network time it had then
    /// (after [`Engine::forget`]). Timers do not run and the packet is not counted twice.
    pub fn replay_packet(&mut self, ts: f64, network_time: f64, link: LinkType, frame: &[u8]) {
        let now = std::mem::replace(&mut self.core.network_time, network_time);
        if let Ok(ip) = decode_link(link, frame) {
            self.process_ip(ts, ip, None, Encap::NONE);
        }
        self.core.network_time = now;
    }

    /// Analyses one captured frame whose length on the wire is not known.
    pub fn process_packet(&mut self, ts: f64, link: LinkType, frame: &[u8]) {
        self.process_packet_on_wire(ts, link, frame, None);
    }

    /// Analyses one captured frame that was `wire_len` bytes long on the wire when the capture says (a pcap
    /// record's original length): a datagram the wire did not carry whole is Zeek's `truncated_IP_len`.
    pub fn process_packet_on_wire(&mut self, ts: f64, link: LinkType, frame: &[u8], wire_len: Option<usize>) {
        if let Some(t) = self.core.tracking.as_mut() {
            t.last = None;
        }
        self.core.stats.packets += 1;
        self.core.stats.bytes += frame.len() as u64;
        self.advance_time(ts);
        match decode_link(link, frame) {
            Ok(ip) => {
                // Zeek compares the datagram's length with the wire length less the link headers before it.
                let link_headers = ip.as_ptr().addr().saturating_sub(frame.as_ptr().addr());
                self.process_ip(ts, ip, wire_len.map(|w| w.saturating_sub(link_headers)), Encap::NONE);
            }
            Err(DecodeError::NotIp) => {}
            Err(e) => self.core.decode_weird(ts, e, None, false),
        }
    }

    /// A weird raised for this engine by whoever reassembled fragments before sharding packets over engines
    /// (`runner::shard_of`): reported as if this engine had reassembled the datagram itself, at the fragment's
    /// time, so several threads or workers write the weird.log of one engine.
    #[cold]
    pub fn report_capture_weird(&mut self, ts: f64, weird: PacketWeird) {
        self.advance_time(ts);
        self.core.packet_weird(ts, weird, false);
    }

    /// Moves network time forward (timers fire as they would for a packet at `ts`). A cluster worker that skips
    /// the packets of other shards calls this for them, so its timers run on the same clock as a standalone run.
    pub fn advance_time(&mut self, ts: f64) {
        let core = &mut self.core;
        if ts > core.network_time {
            core.network_time = ts;
        }
        // Zeek runs every due timer before the packet: a connection past its deadline is gone before a packet on
        // its tuple arrives (that packet starts a new one). The rest of the housekeeping runs once a second.
        let timer_due = self.timers.peek().is_some_and(|Reverse((Deadline(due), _, _))| *due <= core.network_time);
        if core.network_time - core.last_sweep >= 1.0 {
            core.last_sweep = core.network_time;
            self.sweep(self.core.network_time);
        } else if timer_due {
            self.expire_connections(self.core.network_time);
        }
    }

    /// One IP datagram, `wire_len` long on the wire when known (an inner packet of a tunnel is as long as what
    /// its tunnel carried).
    fn process_ip(&mut self, ts: f64, bytes: &[u8], wire_len: Option<usize>, encap: Encap) {
        let mut weirds = Vec::new();
        let check_checksums = !self.core.cfg.ignore_checksums;
        let decoded = decode_ip_on_wire(bytes, wire_len, check_checksums, &mut |w| weirds.push(w));
        let in_tunnel = !encap.is_empty();
        for w in weirds {
            self.core.packet_weird(ts, w, in_tunnel);
        }
        let ip = match decoded {
            Ok(ip) => ip,
            Err(e) => {
                let hosts = if e.names_hosts() { decode::ipv4_header_hosts(bytes) } else { None };
                return self.core.decode_weird(ts, e, hosts, in_tunnel);
            }
        };
        if let Some(frag) = ip.frag {
            return self.process_fragment(ts, &ip, frag.offset, encap);
        }
        match ip.proto {
            47 => self.process_gre(ts, &ip, encap),
            4 | 41 if self.core.exceeds_tunnel_depth(ts, encap, "IPTUNNEL", (ip.src, ip.dst)) => {}
            4 | 41 => match decode::check_inner_ip(ip.proto, ip.payload) {
                Ok(()) => self.process_ip_tunnel(ts, &ip, encap, ip.payload, "Tunnel::IP"),
                Err(e) => self.core.decode_weird(ts, e, Some((ip.src, ip.dst)), in_tunnel),
            },
            // A Teredo bubble has no next header by design; elsewhere (in other tunnels too) it is Zeek's weird.
            IPV6_NO_NEXT if ip.is_v6 && encap.innermost_udp() != Some(UdpTunnel::Teredo) => {
                self.core.packet_weird(ts, PacketWeird::from_ip_analyzer("ipv6_no_next", ip.src, ip.dst), in_tunnel);
            }
            IPV6_NO_NEXT if ip.is_v6 => {}
            // Zeek's IP analyzer stops at ESP (encrypted) and at a Mobility header: no connection.
            IPPROTO_ESP | IPPROTO_MOBILITY => {}
            _ => self.process_transport(ts, &ip, encap),
        }
    }

    /// A fragment: reassembled when the capture holds it whole; otherwise Zeek's weird, and a first fragment is
    /// analysed as it is (useful in header-only traces).
    #[cold]
    fn process_fragment(&mut self, ts: f64, ip: &IpDatagram, offset: usize, encap: Encap) {
        let in_tunnel = !encap.is_empty();
        if ip.incompletely_captured() {
            self.core.packet_weird(
                ts,
                PacketWeird::from_ip_analyzer("incompletely_captured_fragment", ip.src, ip.dst),
                in_tunnel,
            );
            if offset == 0 {
                self.process_transport(ts, ip, encap);
            }
            return;
        }
        let mut weirds = Vec::new();
        let whole = self.core.frags.add_reporting(ts, ip, &mut |w| weirds.push(w));
        for w in weirds {
            self.core.packet_weird(ts, w, in_tunnel);
        }
        if let Some(whole) = whole {
            // Zeek takes a reassembled datagram's wire length to be its length.
            self.process_ip(ts, &whole, None, encap);
        }
    }

    fn process_transport(&mut self, ts: f64, ip: &IpDatagram, encap: Encap) {
        let transport = match decode_transport(ip) {
            Ok(t) => t,
            Err(e) => return self.core.decode_weird(ts, e, Some((ip.src, ip.dst)), !encap.is_empty()),
        };
        let (proto, sp, dp) = match &transport {
            Transport::Tcp { hdr, .. } | Transport::TcpRefused { hdr, .. } => (Proto::Tcp, hdr.src_port, hdr.dst_port),
            Transport::Udp { hdr, .. } => (Proto::Udp, hdr.src_port, hdr.dst_port),
            Transport::Icmp { hdr, v6, .. } => {
                let (a, b) = icmp_ports(hdr.icmp_type, hdr.code, *v6);
                (Proto::Icmp, a, b)
            }
            // Zeek 7.1+'s UnknownIPTransport: a connection per host pair and protocol, ports logged as 0.
            Transport::Other { .. } => (Proto::Unknown, 0, 0),
        };
        let key = if is_one_way_icmp(&transport) {
            ConnKey::one_way(ip.src, sp, ip.dst, dp, ip.proto)
        } else {
            ConnKey::new(ip.src, sp, ip.dst, dp, ip.proto)
        };
        // A refused TCP header is refused before its checksum is looked at.
        let checksum_ok = self.core.cfg.ignore_checksums
            || ip.payload.len() < ip.payload_len
            || !matches!(transport, Transport::Tcp { .. } | Transport::Udp { .. } | Transport::Icmp { .. })
            || transport_checksum_ok(ip.src, ip.dst, ip.proto, ip.payload)
            || is_vxlan_without_checksum(ip);

        // A new SYN on a finished (or confused) connection starts a new one. Only a SYN can (`is_reuse`), so
        // every other packet looks its connection up once. Zeek reads a SYN whose options were cut too, but not
        // one whose data offset is bogus.
        if let Transport::Tcp { hdr, .. } | Transport::TcpRefused { hdr, reason: DecodeError::TruncatedHeader(_) } =
            &transport
            && hdr.flags.syn()
            && checksum_ok
        {
            self.end_if_reused(&key, hdr, ts);
        }
        let core = &mut self.core;
        let (slot, conn, created) =
            self.table.get_or_insert_with(key, || Box::new(core.new_conn(ts, ip, &transport, proto, sp, dp)));
        if created && !encap.is_empty() && !core.logged_tunnels.is_empty() {
            core.register_tunnels(ts, encap);
        }
        if created && let Some(uid) = encap.innermost_uid() {
            // The connection's first packet sets its encapsulation (no `tunnel_changed`); conn/main.zeek's
            // `new_connection` makes the innermost tunnel a parent.
            let rare = conn.rare();
            rare.encapsulation = Some(uid);
            rare.tunnel_parents.insert(uid);
        }
        if let (Some(t), true, true) = (core.tracking.as_mut(), created, encap.is_empty()) {
            let analyzed = !conn.analyzers.is_empty();
            t.created.push(CreatedConn { key, uid: conn.uid, id: conn.id, start: ts, analyzed });
        }
        if let (Some(t), true) = (self.core.tracking.as_mut(), encap.is_empty()) {
            t.last = Some(key);
        }
        let inner = self.core.handle_packet(conn, ts, ip, transport, sp, checksum_ok, encap);
        // Arm an earlier timer when this packet moved the connection's deadline forward (a close, a DNS
        // session); a later deadline is found when the armed one fires.
        let due = next_check(conn);
        if due < conn.timer_due {
            conn.timer_due = due;
            // Built before the call: `conn` borrows the table, `arm` the whole engine.
            let timer = (Deadline(due), timer_serial(conn), slot);
            self.arm(timer);
            self.drop_stale_timers_if_many();
        }
        if let Some(d) = inner {
            self.process_ip(ts, d.bytes, Some(d.bytes.len()), d.tunnel.encap());
        }
    }

    /// Ends the connection under `key` if the SYN `hdr` reuses it (`TcpSession::is_reuse`). Out of line: SYNs are
    /// a few packets per connection, and the packet path stays dense in the instruction cache.
    #[inline(never)]
    fn end_if_reused(&mut self, key: &ConnKey, hdr: &decode::TcpHeader, ts: f64) {
        let mut reuse_weirds = Vec::new();
        if let Some(conn) = self.table.get(key)
            && let Session::Tcp(tcp) = &conn.session
            && tcp.is_reuse(hdr, conn.last, ts, &mut reuse_weirds)
            && let Some(mut old) = self.table.remove(key)
        {
            for w in reuse_weirds {
                self.core.conn_weird(&mut old, ts, w, None, "TCP");
            }
            self.core.remove_conn(*old);
        }
    }

    /// End of input: every connection is logged, as Zeek does at termination.
    pub fn finish(&mut self) {
        let mut all = self.table.take_all();
        all.sort_by(|a, b| a.start.total_cmp(&b.start));
        for conn in all {
            self.core.remove_conn(*conn);
        }
        self.timers.clear();
        let now = self.core.network_time;
        self.core.shared.expire(now, true, &mut self.core.records);
        self.core.stats.active_connections = 0;
    }
}

impl Core {
    /// One packet of a connection: counters, transport state, and analyzers. Returns the inner packet
    /// when the connection is a UDP tunnel.
    #[allow(clippy::too_many_arguments)]
    fn handle_packet<'p, 'e>(
        &mut self,
        conn: &mut Conn,
        ts: f64,
        ip: &IpDatagram<'p>,
        transport: Transport<'p>,
        sp: u16,
        checksum_ok: bool,
        encap: Encap<'e>,
    ) -> Option<Decapsulated<'p, 'e>> {
        let is_orig =
            conn.id.orig_h == ip.src && conn.id.orig_p == sp && (conn.id.resp_h == ip.dst || ip.src != ip.dst);
        // Only packets in a tunnel, and those of a connection that was in one, can change its encapsulation.
        if (!encap.is_empty() || conn.rare.as_ref().is_some_and(|r| r.encapsulation.is_some()))
            && check_encapsulation(conn, encap)
            && !self.logged_tunnels.is_empty()
        {
            // base/frameworks/tunnels registers the new chain at `tunnel_changed` too.
            self.register_tunnels(ts, encap);
        }
        match transport {
            Transport::Tcp { hdr, payload, payload_len } => {
                if !checksum_ok {
                    std::hint::cold_path();
                    if let Session::Tcp(tcp) = &mut conn.session {
                        tcp.checksum_error(&mut conn.history, is_orig);
                    }
                    self.conn_weird(conn, ts, "bad_TCP_checksum", None, "TCP");
                    return None;
                }
                let mut is_orig = is_orig;
                if let Session::Tcp(tcp) = &mut conn.session
                    && tcp.flips_after_syn_ack(hdr.flags, payload_len as u32)
                    && conn.history.letters() == "H"
                {
                    std::hint::cold_path();
                    tcp.flip_syn_ack_start();
                    conn.flip();
                    conn.history.flip_from_start();
                    is_orig = !is_orig;
                }
                count_packet(conn, is_orig, ip);
                let Session::Tcp(tcp) = &mut conn.session else { return None };
                let both_closed_before = tcp.both_closed();
                let outcome = tcp.process(&mut conn.history, is_orig, &hdr, payload_len as u32);
                let is_orig = if outcome.flipped {
                    conn.flip();
                    !is_orig
                } else {
                    is_orig
                };
                if !both_closed_before {
                    conn.last = ts;
                }
                self.tcp_after_state(conn, is_orig, &outcome, &hdr, payload, payload_len);
                for &w in &outcome.weirds {
                    // Zeek raises these through the connection, not the TCP analyzer: no source.
                    let conn_level = matches!(
                        w,
                        "possible_split_routing" | "SYN_seq_jump" | "SYN_inside_connection" | "window_recision"
                    );
                    self.conn_weird(conn, ts, w, None, if conn_level { "" } else { "TCP" });
                }
                None
            }
            Transport::TcpRefused { reason, .. } => {
                std::hint::cold_path();
                self.conn_weird(conn, ts, &reason.to_string(), None, reason.source().unwrap_or_default());
                None
            }
            Transport::Udp { hdr, payload } => {
                if !checksum_ok {
                    std::hint::cold_path();
                    // `C` at the 1st, 10th, 100th... bad datagram of a side, as Zeek's `ScaledHistoryEntry`.
                    let me = usize::from(!is_orig);
                    let mut bad = conn.rare().udp_bad_checksums[me];
                    bad.bump(&mut conn.history, is_orig, 'C');
                    conn.rare().udp_bad_checksums[me] = bad;
                    self.conn_weird(conn, ts, "bad_UDP_checksum", None, "UDP");
                    return None;
                }
                // UDP.cc feeds the size counter (ConnSize) by the adapter's `ForwardPacket` at the end, after the
                // checksum: a datagram with a bad one is not counted.
                count_packet(conn, is_orig, ip);
                // Zeek counts the UDP header's length and reports one that disagrees with the IP payload's.
                let udp_len = usize::from(hdr.len);
                if udp_len != ip.payload_len {
                    std::hint::cold_path();
                    let addl = format!("{udp_len} != {}", ip.payload_len);
                    self.conn_weird(conn, ts, "UDP_datagram_length_mismatch", Some(addl), "UDP");
                }
                conn.count_payload(usize::from(!is_orig), udp_len.saturating_sub(8));
                conn.history.check(is_orig, 0x10, 'D');
                conn.last = ts;
                let inner = if conn.id.resp_p == GRE_OVER_UDP_PORT {
                    self.gre_over_udp(ts, ip, payload, encap)
                } else {
                    self.try_udp_tunnel(ts, conn, is_orig, payload, encap)
                };
                if inner.is_none() {
                    self.deliver(conn, ts, is_orig, Chunk::Data(payload));
                }
                inner
            }
            Transport::Icmp { hdr, payload, payload_len, v6 } => {
                // ICMP.cc: a message with a bad checksum is only the weird (the connection exists, nothing is
                // counted and its time does not move); the packet reaches the size counter (ConnSize, fed by the
                // adapter's `ForwardPacket`) only when it was captured whole.
                if !checksum_ok {
                    std::hint::cold_path();
                    self.conn_weird(conn, ts, "bad_ICMP_checksum", None, "ICMP");
                    return None;
                }
                if ip.payload.len() >= ip.payload_len {
                    count_packet(conn, is_orig, ip);
                }
                conn.count_payload(usize::from(!is_orig), payload_len);
                conn.last = ts;
                match icmp6::check_nd(hdr.icmp_type, payload).filter(|_| v6) {
                    Some(w @ icmp6::NdWeird::BadOptOffset { .. }) => {
                        self.net_weird(ts, w.name(), w.addl(), Some("ICMP"), None)
                    }
                    Some(w) => self.conn_weird(conn, ts, w.name(), w.addl(), "ICMP"),
                    None => {}
                }
                None
            }
            Transport::Other { .. } => {
                count_packet(conn, is_orig, ip);
                conn.last = ts;
                None
            }
        }
    }

    /// Once per connection: kept out of line, so the per-packet path stays dense in the instruction cache.
    #[inline(never)]
    fn new_conn(&mut self, ts: f64, ip: &IpDatagram, transport: &Transport, proto: Proto, sp: u16, dp: u16) -> Conn {
        let server_ports = self.port_specs_of(proto);
        let likely = |p: u16| server_ports.binary_search_by_key(&p, |&(port, _)| port).is_ok();
        // Zeek guesses the responder from the ports when the first packet is not a plain SYN.
        // Between two likely server ports a TCP partial flips only toward the lower one, never on a SYN-ACK (a
        // stealth scan's reply); the limited broadcast address never becomes the originator.
        let flip = match transport {
            Transport::Tcp { hdr, .. } | Transport::TcpRefused { hdr, .. } => {
                (!hdr.flags.syn() || hdr.flags.ack()) && likely(sp) && (!likely(dp) || (!hdr.flags.syn() && sp < dp))
            }
            Transport::Udp { .. } => likely(sp) && !likely(dp),
            _ => false,
        } && ip.dst != IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
        let (orig_h, orig_p, resp_h, resp_p) = if flip { (ip.dst, dp, ip.src, sp) } else { (ip.src, sp, ip.dst, dp) };
        let id = ConnId { orig_h, orig_p, resp_h, resp_p, proto };
        let mut conn = Conn::new(self.ids.next_uid(), id, ip.proto, ts);
        if is_one_way_icmp(transport) {
            conn.set_one_way();
        }
        conn.local_orig = Some(self.cfg.is_local(orig_h));
        conn.local_resp = Some(self.cfg.is_local(resp_h));
        if flip {
            conn.history.flip();
        }
        if let Transport::Tcp { hdr, .. } = transport
            && hdr.flags.syn()
            && !hdr.flags.ack()
        {
            conn.set_removal_at(Some(ts + timeouts::TCP_ATTEMPT));
        }
        self.stats.connections += 1;
        let (created, active) = self.stats.by_transport(conn.ip_proto);
        *created += 1;
        *active += 1;
        conn.serial = self.stats.connections as u32;
        self.attach_initial_analyzers(&mut conn, ts);
        conn
    }

    fn tcp_after_state(
        &mut self,
        conn: &mut Conn,
        is_orig: bool,
        outcome: &crate::conn::TcpOutcome,
        hdr: &decode::TcpHeader,
        payload: &[u8],
        payload_len: usize,
    ) {
        let ts = self.network_time;
        let me = usize::from(!is_orig);
        if let (Some(fin_seq), Some(stream)) = (outcome.fin_seq, conn.stream_mut(me)) {
            stream.set_fin(fin_seq);
        }
        // As in Zeek, the ack is processed before this packet's data: data it uncovers behind a gap in
        // the peer's stream is delivered first.
        if let Some(ack) = outcome.ack {
            let peer = 1 - me;
            let partial = match &conn.session {
                Session::Tcp(t) => {
                    t.orig().state == EndpointState::Partial
                        || t.resp().state == EndpointState::Partial
                        || t.is_partial()
                }
                _ => false,
            };
            if !(hdr.flags.rst() || partial && ack <= 2) {
                let mut chunks = Vec::new();
                // `get_gap_stats` counts while both sides are established (`report_gaps_for_partial` is off), an
                // ack that moves the stream's trim point on (it starts at the first byte, 1).
                let counted =
                    outcome.prev_ack.filter(|_| matches!(&conn.session, Session::Tcp(t) if t.both_established()));
                let (advanced, missing) = conn.stream_mut(peer).map_or((false, 0), |s| {
                    // (Zeek's `test_active`: not for a stream that skips its deliveries.)
                    let advanced =
                        counted.is_some_and(|prev| s.trim_point(ack) > s.trim_point(prev).max(1)) && !s.skipping();
                    let held = &mut self.stats.tcp_reassembly_bytes;
                    (advanced, tracking_held(held, s, |s| s.acked(ack, &mut |c| chunks.push(OwnedChunk::from(c)))))
                });
                if advanced {
                    self.stats.tcp_ack_events += 1;
                    self.stats.tcp_gap_events += u64::from(missing > 0);
                }
                if let (true, Session::Tcp(t)) = (missing > 0, &mut conn.session)
                    && t.reports_gaps(peer)
                {
                    t.gap(&mut conn.history, peer == 0, missing);
                }
                for c in &chunks {
                    self.deliver(conn, ts, peer == 0, c.as_chunk());
                }
            }
        }
        if let Some(seq) = outcome.data_seq {
            // Only the captured part of the payload can be reassembled.
            let data = &payload[..payload.len().min(payload_len)];
            if data.len() < payload_len {
                self.conn_weird(conn, ts, "truncated_tcp_payload", None, "TCP");
            }
            if let Some(fresh) = conn.stream_mut(me).and_then(|s| s.in_order(seq, data)) {
                if !fresh.is_empty() {
                    self.deliver(conn, ts, is_orig, Chunk::Data(fresh));
                }
                if data.len() < payload_len {
                    // Snapped capture: the rest of this segment is missing.
                    self.deliver(conn, ts, is_orig, Chunk::Gap((payload_len - data.len()) as u64));
                }
                self.check_reassembly_limits(conn, me);
                return self.after_data(conn, is_orig, outcome, hdr);
            }
            let keep = conn.has_attached_analyzer();
            let mut chunks: Vec<(bool, OwnedChunk)> = Vec::new();
            if let Some(stream) = conn.stream_mut(me) {
                tracking_held(&mut self.stats.tcp_reassembly_bytes, stream, |s| {
                    s.segment(seq, data, keep, &mut |c| chunks.push((is_orig, OwnedChunk::from(c))))
                });
            }
            if data.len() < payload_len {
                // Snapped capture: the rest of this segment is missing.
                chunks.push((is_orig, OwnedChunk::Gap((payload_len - data.len()) as u64)));
            }
            for (o, c) in &chunks {
                self.deliver(conn, ts, *o, c.as_chunk());
            }
            self.check_reassembly_limits(conn, me);
        }
        self.after_data(conn, is_orig, outcome, hdr);
    }

    /// Zeek's bounds on what one TCP direction holds (`TCP_Reassembler::DataSent`): past them the direction's
    /// reassembly gives up with a weird of the TCP analyzer, and its analyzers get nothing more.
    #[inline]
    fn check_reassembly_limits(&mut self, conn: &mut Conn, me: usize) {
        if let Session::Tcp(t) = &conn.session
            && t.streams[me].may_exceed_limits()
        {
            self.apply_reassembly_limits(conn, me);
        }
    }

    #[cold]
    fn apply_reassembly_limits(&mut self, conn: &mut Conn, me: usize) {
        let Session::Tcp(t) = &mut conn.session else { return };
        let (no_data_acked, delivered_unacked) = t.unacked(me);
        let held = &mut self.stats.tcp_reassembly_bytes;
        let limit = tracking_held(held, &mut t.streams[me], |s| s.check_limits(no_data_acked, delivered_unacked));
        let Some(weird) = limit else { return };
        self.stats.tcp_streams_given_up += 1;
        self.conn_weird(conn, self.network_time, weird, None, "TCP");
    }

    /// End of a TCP packet's handling: end-of-data to analyzers and the close timer.
    fn after_data(
        &mut self,
        conn: &mut Conn,
        is_orig: bool,
        outcome: &crate::conn::TcpOutcome,
        hdr: &decode::TcpHeader,
    ) {
        let ts = self.network_time;
        if hdr.flags.fin() || hdr.flags.rst() {
            let attached = conn.has_attached_analyzer();
            if attached {
                let all = 0..conn.analyzers.len();
                self.with_analyzers(conn, ts, all, |a, ctx| a.end_of_data(ctx, is_orig));
            }
        }
        if let (Session::Tcp(t), true) = (&conn.session, outcome.closed) {
            // Zeek's ConnectionClosed: the close is complete when this side reset, or the peer closed
            // too, or the peer never sent anything; the connection goes `tcp_close_delay` later.
            let (me_ep, peer_ep) = if is_orig { (t.orig(), t.resp()) } else { (t.resp(), t.orig()) };
            let complete =
                me_ep.state == EndpointState::Reset || peer_ep.did_close() || peer_ep.state == EndpointState::Inactive;
            if complete {
                let at = conn.last + timeouts::TCP_CLOSE_DELAY;
                // The first close replaces the attempt timer; a later one can only bring removal forward.
                let earlier = conn.removal_at().filter(|_| conn.close_scheduled());
                conn.set_removal_at(Some(earlier.map_or(at, |t| t.min(at))));
                conn.set_close_scheduled();
            }
        }
    }

    /// Runs `f` on every attached analyzer, then applies what they asked for.
    fn with_analyzers(
        &mut self,
        conn: &mut Conn,
        ts: f64,
        which: std::ops::Range<usize>,
        mut f: impl FnMut(&mut dyn analyzers::Analyzer, &mut Ctx),
    ) {
        self.run_analyzers(conn, ts, which, false, &mut f);
    }

    /// Calls `f` on the analyzers in `which` (detached ones only when `finishing`), then applies their actions.
    fn run_analyzers(
        &mut self,
        conn: &mut Conn,
        ts: f64,
        which: std::ops::Range<usize>,
        finishing: bool,
        f: &mut dyn FnMut(&mut dyn analyzers::Analyzer, &mut Ctx),
    ) {
        // Taken, not borrowed: applying an action may run analyzers again (a hand-over), which then start empty.
        let mut actions = std::mem::take(&mut self.spare_actions);
        let mut weirds = Vec::new();
        let partial = matches!(&conn.session, Session::Tcp(t) if t.is_partial());
        for i in which {
            if conn.is_detached(i) && !finishing {
                continue;
            }
            // Finishing an analyzer that was never called writes nothing (a test holds every analyzer to that): it
            // is not built just for that.
            if finishing && !conn.analyzers[i].is_started() {
                continue;
            }
            let mut ctx = Ctx {
                ts,
                start_ts: conn.start,
                uid: &conn.uid,
                id: &conn.id,
                partial,
                cfg: &self.cfg,
                records: &mut self.records,
                actions: &mut actions,
                weirds: &mut weirds,
                ids: &mut self.ids,
                shared: &mut self.shared,
            };
            f(conn.analyzers[i].analyzer(conn.id.proto), &mut ctx);
            // Established TLS, SSH after a login: thousands of such connections idle with nothing to log.
            conn.retire_analyzer_if_done(i);
            // Checked first: the vectors are nearly always empty, and draining or consuming one still costs a call
            // that drops its iterator, for every analyzer on every delivery.
            if !actions.is_empty() {
                for action in actions.drain(..) {
                    self.apply_action(conn, i, action);
                }
            }
        }
        self.spare_actions = actions;
        if !weirds.is_empty() {
            for w in weirds {
                self.conn_weird(conn, ts, &w.name, w.addl, w.source);
            }
        }
    }

    fn apply_action(&mut self, conn: &mut Conn, index: usize, action: Action) {
        match action {
            Action::Confirm(service) => {
                // A confirmed protocol ends content detection (and frees its buffers).
                conn.end_content_detection();
                if service == "dns" && conn.id.proto == Proto::Udp {
                    conn.set_udp_dns();
                }
                conn.add_service(service)
            }
            Action::Violation(reason, data) => {
                conn.detach(index);
                let name = conn.analyzers[index].name();
                self.confirmed_analyzer_failed(conn, name, &reason, data.as_deref());
            }
            Action::EmbeddedViolation { analyzer, reason } => {
                self.confirmed_analyzer_failed(conn, analyzer, &reason, None)
            }
            Action::StartTls => {
                conn.detach(index);
                if let Some(spec) = analyzers::spec_by_name("ssl").filter(|s| self.cfg.is_enabled(s.name)) {
                    conn.attach(spec);
                }
            }
            Action::FlipRoles => {
                // Zeek's FlipRoles from an analyzer swaps the endpoints' addresses; the counters and states
                // gathered so far stay where they were (a reply-first DNS flow logs S0 with history `D^`).
                conn.flip_addresses();
                conn.history.flip();
            }
            Action::Partial { is_orig } => {
                conn.history.partial(is_orig);
            }
            Action::HandOver { analyzer, is_orig, rest } => self.hand_over(conn, analyzer, is_orig, &rest),
            Action::Expect(e) => {
                let e = Expectation { expires: e.expires.max(self.network_time + timeouts::EXPECTATION), ..e };
                if self.share_expectations {
                    self.new_expectations.push(e.clone());
                }
                self.expectations.add(e);
            }
        }
    }

    /// Zeek (8+) drops a confirmed analyzer that reports a violation: its service leaves the connection, and
    /// analyzer.log says why, with the first bytes of the data that caused it where the analyzer passed them
    /// (`failure_data`). Violations before a confirmation are DPD tasting and pass silently.
    #[cold]
    fn confirmed_analyzer_failed(&mut self, conn: &mut Conn, name: &str, reason: &str, data: Option<&[u8]>) {
        if conn.remove_service(name) {
            self.analyzer_log(conn, "protocol", &name.to_ascii_uppercase().replace('-', "_"), reason, data);
        }
    }

    /// An analyzer.log line (`analyzer_kind` `protocol` or `packet`) for a failure on `conn`.
    #[cold]
    fn analyzer_log(&mut self, conn: &Conn, kind: &'static str, name: &str, reason: &str, data: Option<&[u8]>) {
        if !self.cfg.is_enabled("analyzer") {
            return;
        }
        let mut v = vec![
            Value::Time(self.network_time),
            Value::str(kind),
            Value::str(name),
            Value::str(conn.uid),
            Value::Unset,
        ];
        v.extend(conn.id.log_values());
        let failure_data = data.map_or(Value::Unset, |d| Value::Str(crate::logs::bytes_to_log_string(d)));
        v.extend([Value::Enum(conn.id.proto.as_enum()), Value::str(reason), failure_data]);
        self.records.push(LogRecord::new(&ANALYZER, v));
    }

    fn deliver(&mut self, conn: &mut Conn, ts: f64, is_orig: bool, chunk: Chunk) {
        let existing = match chunk {
            Chunk::Data(d) => self.detect_and_replay(conn, ts, is_orig, d),
            Chunk::Gap(_) => 0..conn.analyzers.len(),
        };
        if existing.is_empty() {
            return;
        }
        match chunk {
            Chunk::Data(d) => self.with_analyzers(conn, ts, existing, |a, ctx| a.deliver(ctx, is_orig, d)),
            Chunk::Gap(n) => self.with_analyzers(conn, ts, existing, |a, ctx| a.undelivered(ctx, is_orig, n)),
        }
    }

    /// A connection left the session table: the gauges it counted in.
    fn conn_gone(&mut self, conn: &Conn) {
        let (_, active) = self.stats.by_transport(conn.ip_proto);
        *active = active.saturating_sub(1);
        let held = (0..2).filter_map(|side| conn.stream(side)).map(|s| s.held_bytes() as u64).sum::<u64>();
        self.stats.tcp_reassembly_bytes = self.stats.tcp_reassembly_bytes.saturating_sub(held);
    }

    fn remove_conn(&mut self, mut conn: Conn) {
        self.conn_gone(&conn);
        let ts = conn.last.max(self.network_time);
        for side in 0..2 {
            let mut chunks = Vec::new();
            if let Some(stream) = conn.stream_mut(side) {
                stream.flush(&mut |c| chunks.push(OwnedChunk::from(c)));
            }
            for c in chunks {
                self.deliver(&mut conn, ts, side == 0, c.as_chunk());
            }
        }
        if !conn.analyzers.is_empty() {
            // Detached analyzers finish too: like Zeek's end-of-connection scripts, they log what is pending.
            let all = 0..conn.analyzers.len();
            self.run_analyzers(&mut conn, ts, all, true, &mut |a, ctx| a.finish(ctx));
        }
        if conn.tunnel_discovered() {
            self.close_tunnel(ts, &conn);
        }
        if self.cfg.is_enabled("conn") {
            self.records.push(conn.log_record());
        }
    }
}

fn count_packet(conn: &mut Conn, is_orig: bool, ip: &IpDatagram) {
    conn.count_packet(usize::from(!is_orig), ip.total_len);
}

/// A chunk that outlives the stream borrow it came from.
enum OwnedChunk {
    Data(Vec<u8>),
    Gap(u64),
}

impl OwnedChunk {
    fn from(c: Chunk) -> Self {
        match c {
            Chunk::Data(d) => OwnedChunk::Data(d.to_vec()),
            Chunk::Gap(n) => OwnedChunk::Gap(n),
        }
    }
    fn as_chunk(&self) -> Chunk<'_> {
        match self {
            OwnedChunk::Data(d) => Chunk::Data(d),
            OwnedChunk::Gap(n) => Chunk::Gap(*n),
        }
    }
}

/// An ICMP message of a type without a request/reply counterpart (an error, say): Zeek's `is_one_way`.
fn is_one_way_icmp(transport: &Transport) -> bool {
    matches!(transport, Transport::Icmp { hdr, v6, .. } if icmp_counterpart(hdr.icmp_type, *v6).is_none())
}

/// ICMP "ports": the type, and the matching reply type for request/reply pairs, else the code.
fn icmp_ports(t: u8, code: u8, v6: bool) -> (u16, u16) {
    (u16::from(t), u16::from(icmp_counterpart(t, v6).unwrap_or(code)))
}

/// The request type for a reply and the reply type for a request (Zeek's `ICMP4_counterpart`/`ICMP6_counterpart`).
fn icmp_counterpart(t: u8, v6: bool) -> Option<u8> {
    if v6 {
        match t {
            128 => Some(129),
            129 => Some(128),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            130 => Some(131),
            131 => Some(130),
            139 => Some(140),
            140 => Some(139),
            144 => Some(145),
            145 => Some(144),
            _ => None,
        }
    } else {
        match t {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            17 => Some(18),
            18 => Some(17),
            10 => Some(9),
            9 => Some(10),
            _ => None,
        }
    }
}

#[cfg(test)]
mod packet_weird_tests;

#[cfg(test)]
mod tests {
    use super::*;

    use super::timers::timer_bound;
    use crate::decode::test_frames::ipv4_tcp;

    /// TCP flag bytes of the frames the tests build.
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN_ACK: u8 = 0x11;
    const SYN_ACK: u8 = 0x12;
    const PSH_ACK: u8 = 0x18;

    /// Expectations other workers announce, 10 a second for two hours to distinct data ports, each lapsing after
    /// five minutes: without a connection to any of them, the lapsed ones still go (within a minute); a connection
    /// to a live one takes it (the service), and one to a lapsed one finds none.
    #[test]
    fn expectations_no_connection_asks_for_lapse() {
        const RATE: u32 = 10;
        let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
        let server: IpAddr = "10.1.0.1".parse().unwrap();
        let expect = |port: u16, at: f64| Expectation {
            orig_h: None,
            resp_h: server,
            resp_p: port,
            analyzer: None,
            service: "ftp-data",
            expires: at + timeouts::EXPECTATION,
        };
        let live = (timeouts::EXPECTATION + 60.0) as usize * RATE as usize + 1;
        let mut peak = 0;
        for i in 0..7_200 * RATE {
            let now = f64::from(i) / f64::from(RATE);
            engine.add_expectation(expect(1024 + u16::try_from(i % 60_000).unwrap(), now));
            engine.advance_time(now);
            if i % (10 * RATE) == 0 {
                peak = peak.max(engine.expected_ports().len());
            }
        }
        assert!(peak <= live, "{peak} expectations held, {live} live");
        let end = 7_200.0;
        let port_of = |i: u32| 1024 + u16::try_from(i % 60_000).unwrap();
        let client = ([10, 0, 0, 1], 40000);
        let (fresh, lapsed) = (port_of(7_200 * RATE - 1), port_of(7_200 * RATE - 400 * RATE));
        engine.process_packet(end, LinkType::Raw, &ipv4_tcp(client, ([10, 1, 0, 1], fresh), 1, 0, SYN, b""));
        engine.process_packet(end, LinkType::Raw, &ipv4_tcp(client, ([10, 1, 0, 1], lapsed), 1, 0, SYN, b""));
        engine.finish();
        let services: Vec<String> = engine
            .drain_records()
            .filter(|r| r.schema.path == "conn")
            .map(|r| r.values[r.schema.field_index("service").unwrap()].to_tsv())
            .collect();
        assert_eq!(services, ["ftp-data", "-"]);
    }

    /// The counters stats.log reads: connections by transport (created, and open now), bytes held behind a hole
    /// in a TCP stream (up while the hole is open, down when it fills and when the connection goes), timers, and
    /// the records handed on.
    #[test]
    fn stats_counters_follow_connections_holes_and_records() {
        use crate::decode::test_frames::ipv4_udp;
        let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
        let (client, server) = (([10, 0, 0, 1], 40000), ([10, 1, 0, 1], 80));
        engine.process_packet(0.0, LinkType::Raw, &ipv4_tcp(client, server, 100, 0, SYN, b""));
        engine.process_packet(0.1, LinkType::Raw, &ipv4_tcp(server, client, 500, 101, SYN_ACK, b""));
        engine.process_packet(0.2, LinkType::Raw, &ipv4_tcp(client, server, 101, 501, ACK, b""));
        // Ten bytes after a ten-byte hole: held (HTTP is attached by port, so the bytes are kept).
        engine.process_packet(0.3, LinkType::Raw, &ipv4_tcp(client, server, 111, 501, PSH_ACK, b"1.1\r\n\r\nxxx"));
        let s = engine.stats();
        assert_eq!((s.tcp_connections, s.active_tcp_connections, s.tcp_reassembly_bytes), (1, 1, 10));
        engine.process_packet(0.4, LinkType::Raw, &ipv4_tcp(client, server, 101, 501, PSH_ACK, b"GET / HTTP"));
        assert_eq!(engine.stats().tcp_reassembly_bytes, 0, "the hole filled");
        engine.process_packet(0.5, LinkType::Raw, &ipv4_tcp(client, server, 131, 501, PSH_ACK, b"abcde"));
        assert_eq!(engine.stats().tcp_reassembly_bytes, 5);
        engine.process_packet(0.6, LinkType::Raw, &ipv4_udp(([10, 0, 0, 2], 5000), ([10, 1, 0, 2], 5001), b"x"));
        let s = engine.stats();
        assert_eq!((s.udp_connections, s.active_udp_connections, s.icmp_connections), (1, 1, 0));
        assert_eq!(s.active_timers, 2, "one live timer per connection");
        assert!(s.timers_scheduled >= 2, "{s:?}");
        assert_eq!((s.packets, s.log_records), (7, 0));
        engine.finish();
        let s = engine.stats();
        assert_eq!((s.active_tcp_connections, s.active_udp_connections, s.tcp_reassembly_bytes), (0, 0, 0));
        assert_eq!((s.tcp_connections, s.udp_connections), (1, 1), "created connections never go down");
        let records = engine.drain_records().count() as u64;
        assert!(records >= 2, "two conn.log records at least");
        assert_eq!(engine.stats().log_records, records);
    }

    /// A port's analyzers are attached at the first packet but built at their first call: a connection that
    /// carries nothing holds no analyzer state, and one that does gets its analyzer with the first payload.
    #[test]
    fn analyzers_are_built_at_their_first_call() {
        let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
        let (client, server) = (([10, 0, 0, 1], 40000), ([10, 1, 0, 1], 80));
        let key = ConnKey::new(IpAddr::from(client.0), client.1, IpAddr::from(server.0), server.1, 6);
        let http_started = |engine: &Engine| {
            let conn = engine.table.get(&key).expect("the connection is tracked");
            let http = conn.analyzers.iter().find(|a| a.name() == "http").expect("HTTP is attached by port");
            http.is_started()
        };
        engine.process_packet(0.0, LinkType::Raw, &ipv4_tcp(client, server, 100, 0, SYN, b""));
        engine.process_packet(0.1, LinkType::Raw, &ipv4_tcp(server, client, 500, 101, SYN_ACK, b""));
        assert!(!http_started(&engine), "no payload yet, no analyzer state");
        let request = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        engine.process_packet(0.2, LinkType::Raw, &ipv4_tcp(client, server, 101, 501, PSH_ACK, request));
        assert!(http_started(&engine), "the first payload builds the analyzer");
    }

    /// Zeek's gap statistics: an ack counts when it moves a stream on while both sides are established (not the
    /// handshake's, not a repeat), and is a gap event when it acknowledges bytes never seen; a FIN's sequence
    /// number moves nothing.
    #[test]
    fn acks_and_gaps_are_counted_as_zeek_counts_them() {
        let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
        let (client, server) = (([10, 0, 0, 1], 40000), ([10, 1, 0, 1], 5555));
        let mut send = |ts: f64, frame: Vec<u8>| {
            engine.process_packet(ts, LinkType::Raw, &frame);
            (engine.stats().tcp_ack_events, engine.stats().tcp_gap_events)
        };
        assert_eq!(send(0.0, ipv4_tcp(client, server, 100, 0, SYN, b"")), (0, 0));
        assert_eq!(send(0.1, ipv4_tcp(server, client, 500, 101, SYN_ACK, b"")), (0, 0));
        assert_eq!(send(0.2, ipv4_tcp(client, server, 101, 501, ACK, b"")), (0, 0), "the handshake's ack");
        assert_eq!(send(0.3, ipv4_tcp(client, server, 101, 501, PSH_ACK, b"aaaa")), (0, 0));
        assert_eq!(send(0.4, ipv4_tcp(server, client, 501, 105, ACK, b"")), (1, 0), "four bytes seen and acked");
        assert_eq!(send(0.5, ipv4_tcp(server, client, 501, 105, ACK, b"")), (1, 0), "a repeat");
        // Bytes 105..109 never arrive.
        assert_eq!(send(0.6, ipv4_tcp(client, server, 109, 501, PSH_ACK, b"cccc")), (1, 0));
        assert_eq!(send(0.7, ipv4_tcp(server, client, 501, 113, ACK, b"")), (2, 1), "acked above the hole");
        assert_eq!(send(0.8, ipv4_tcp(client, server, 113, 501, FIN_ACK, b"")), (2, 1));
        assert_eq!(send(0.9, ipv4_tcp(server, client, 501, 114, ACK, b"")), (2, 1), "the FIN's ack");
        assert_eq!(engine.stats().capture_loss_percent(), Some(50.0));
    }

    #[test]
    fn stale_timers_do_not_pile_up() {
        const CONNS: u16 = 4000;
        let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
        let server = [10, 1, 0, 1];
        let client = |i: u16| [10, 0, (i >> 8) as u8, i as u8];
        let send = |engine: &mut Engine, ts: f64, frame: Vec<u8>| engine.process_packet(ts, LinkType::Raw, &frame);
        for i in 0..CONNS {
            let ts = f64::from(i) * 1e-4;
            send(&mut engine, ts, ipv4_tcp((client(i), 40000), (server, 80), 100, 0, SYN, b""));
            send(&mut engine, ts, ipv4_tcp((server, 80), (client(i), 40000), 500, 101, SYN_ACK, b""));
            send(&mut engine, ts, ipv4_tcp((client(i), 40000), (server, 80), 101, 501, ACK, b""));
        }
        // Past the attempt timers, every timer is re-armed for inactivity, minutes out: the closes below arm
        // earlier ones, and each leaves a stale inactivity timer behind.
        for i in 0..CONNS {
            let ts = 6.0 + f64::from(i) * 1e-4;
            send(&mut engine, ts, ipv4_tcp((client(i), 40000), (server, 80), 101, 501, FIN_ACK, b""));
            send(&mut engine, ts, ipv4_tcp((server, 80), (client(i), 40000), 501, 102, FIN_ACK, b""));
            let live = engine.table.len();
            assert!(engine.timers.len() <= timer_bound(live), "{} timers for {live} connections", engine.timers.len());
        }
        assert_eq!(engine.stats().active_connections, u64::from(CONNS), "closed, not yet removed");
        // The dropped timers were stale: every connection is still removed when its close delay has passed.
        engine.advance_time(6.0 + timeouts::TCP_CLOSE_DELAY + 2.0);
        assert_eq!(engine.stats().active_connections, 0);
        assert_eq!(engine.drain_records().count(), usize::from(CONNS));
    }
}
