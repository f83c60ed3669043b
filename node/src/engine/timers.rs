//! Connection timers and expiry: Zeek's session timeouts, the heap of armed timers, and when a connection is due to
//! be removed. Separate from the packet path, which only arms a timer when a packet moves a deadline forward; the
//! sweep that fires them runs as network time advances.

use std::cmp::Reverse;

use super::Engine;
use crate::conn::{Conn, EndpointState, Session, Slot, growth_when_full};

/// Zeek's session timeouts (seconds).
pub(super) mod timeouts {
    pub const TCP_INACTIVITY: f64 = 300.0;
    pub const UDP_INACTIVITY: f64 = 60.0;
    pub const ICMP_INACTIVITY: f64 = 60.0;
    pub const TCP_ATTEMPT: f64 = 5.0;
    pub const TCP_CLOSE_DELAY: f64 = 5.0;
    pub const TCP_LINGER: f64 = 5.0;
    pub const EXPECTATION: f64 = 300.0;
    /// The DNS analyzer ends UDP sessions after this much quiet (Zeek's dns_session_timeout).
    pub const DNS_SESSION: f64 = 10.0;
}

/// When a connection must next be looked at: (deadline, the low 32 bits of its serial, its slot), earliest first
/// (then in serial order, so expiries come out in the same order every run). 16 bytes a timer.
pub(super) type Timer = (Deadline, u32, Slot);

/// The part of a connection's serial its timers carry. Two connections that share a slot and these bits would need
/// 2^32 connections in between; a timer taken for the wrong one only makes the sweep check it early.
pub(super) fn timer_serial(conn: &Conn) -> u32 {
    conn.serial
}

/// Timers the heap may hold for `live` open connections before the stale ones are dropped: one each, a quarter
/// more, and a floor for small tables. The slack amortises the rebuild (a pass over the heap per `live / 4` timers
/// armed); it was half the open connections, and the heap's room for it was 5% of the memory at the benchmark
/// mix's peak.
pub(super) fn timer_bound(live: usize) -> usize {
    const MIN_STALE_TIMERS: usize = 1024;
    live + live / 4 + MIN_STALE_TIMERS
}

/// A network time that orders totally (timers never hold NaN).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline(pub(super) f64);

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Deadline {}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Engine {
    /// Adds a timer to the heap (grown as the session table's slots are, [`growth_when_full`]).
    pub(super) fn arm(&mut self, timer: Timer) {
        if let Some(more) = growth_when_full(self.timers.len(), self.timers.capacity()) {
            self.timers.reserve_exact(more);
        }
        self.timers.push(Reverse(timer));
        self.core.stats.timers_scheduled += 1;
    }

    /// Every connection has one live timer; the others are stale (their connection was re-armed earlier, or is
    /// gone) and wait for their deadline, which for an inactivity timer is minutes: without this, the heap held
    /// three or four entries per open connection. Dropping them changes nothing the sweep does (it skips them).
    pub(super) fn drop_stale_timers_if_many(&mut self) {
        let live = self.table.len();
        if self.timers.len() <= timer_bound(live) {
            return;
        }
        let table = &self.table;
        self.timers.retain(|Reverse((Deadline(due), serial, slot))| {
            table.slot(*slot).is_some_and(|conn| timer_serial(conn) == *serial && conn.timer_due == *due)
        });
    }

    /// Removes connections whose timers expired, and expires fragments and analyzer state.
    pub(super) fn sweep(&mut self, now: f64) {
        // `Tunnel::active` first: after a gap in network time Zeek's table timer (due 10 s after its last run) fires
        // before a connection's inactivity timer, so a lapsed UDP tunnel expires rather than closes; and a tunnel idle
        // long enough for its IP tunnel entry to go was idle for an hour before.
        self.core.expire_logged_tunnels(now);
        self.expire_connections(now);
        self.core.frags.expire(now, false);
        self.core.expire_ip_tunnels(now);
        self.core.expectations.expire(now);
        self.core.shared.expire(now, false, &mut self.core.records);
    }

    /// Removes connections whose timers expired.
    pub(super) fn expire_connections(&mut self, now: f64) {
        // Removed in start order, so a run writes its records in the same order every time (the table's
        // hasher is seeded randomly per process).
        let mut expired: Vec<(f64, Slot)> = Vec::new();
        while let Some(Reverse((Deadline(due), serial, slot))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.table.slot_mut(slot) else { continue };
            if timer_serial(conn) != serial || conn.timer_due != due {
                continue; // stale: the connection was replaced or re-armed
            }
            if should_remove(conn, now) {
                expired.push((conn.start, slot));
            } else {
                if !conn.close_scheduled() && conn.removal_at().is_some_and(|t| t <= now) {
                    // The attempt timer is one-shot: the connection got an answer.
                    conn.set_removal_at(None);
                }
                let next = next_check(conn).max(now + 1.0);
                conn.timer_due = next;
                self.arm((Deadline(next), serial, slot));
            }
        }
        expired.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, slot) in expired {
            if let Some(conn) = self.table.remove_slot(slot) {
                self.core.remove_conn(*conn);
            }
        }
        self.core.stats.active_connections = self.table.len() as u64;
    }
}

/// The earliest network time at which [`should_remove`] can become true for `c` as it is now.
pub(super) fn next_check(c: &Conn) -> f64 {
    let mut due = c.removal_at().unwrap_or(f64::INFINITY);
    if c.is_udp_dns() {
        due = due.min(c.last + timeouts::DNS_SESSION);
    }
    let inactivity = match &c.session {
        Session::Tcp(t) => {
            if t.orig().did_close() || t.resp().did_close() {
                due = due.min(c.last + timeouts::TCP_LINGER);
            }
            timeouts::TCP_INACTIVITY
        }
        Session::Udp { .. } => timeouts::UDP_INACTIVITY,
        Session::Icmp { .. } | Session::Other => timeouts::ICMP_INACTIVITY,
    };
    due.min(c.last + inactivity)
}

fn should_remove(c: &Conn, now: f64) -> bool {
    if c.removal_at().is_some_and(|t| t <= now) {
        if let (Session::Tcp(t), false) = (&c.session, c.close_scheduled()) {
            // The attempt timer only ends connections that are still attempts.
            let attempt = t.orig().state == EndpointState::SynSent || t.orig().state == EndpointState::SynAckSent;
            if attempt && t.resp().state == EndpointState::Inactive {
                return true;
            }
        } else {
            return true;
        }
    }
    let idle = now - c.last;
    if c.is_udp_dns() && idle >= timeouts::DNS_SESSION {
        return true;
    }
    match &c.session {
        Session::Tcp(t) => {
            if idle > timeouts::TCP_LINGER && (t.orig().did_close() || t.resp().did_close()) {
                let inactive = t.orig().state == EndpointState::Inactive || t.resp().state == EndpointState::Inactive;
                if t.both_closed() || inactive {
                    return true;
                }
            }
            idle > timeouts::TCP_INACTIVITY
        }
        Session::Udp { .. } => idle > timeouts::UDP_INACTIVITY,
        Session::Icmp { .. } | Session::Other => idle > timeouts::ICMP_INACTIVITY,
    }
}
