//! Payload proxies in tunnel.log: HTTP CONNECT (main.zeek's `http_reply` handler) and SOCKS (`socks_request`)
//! register them with the tunnels framework, one tunnel per client, proxy and proxy port (the client's port is 0,
//! since every proxied connection comes from a new one). `Tunnel::register` logs `Tunnel::DISCOVER` when a tunnel is
//! first seen, and `Tunnel::active` (`&read_expire`) logs `Tunnel::EXPIRE` once no connection used it for
//! `Tunnel::expiration_interval`.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::IpAddr;

use crate::analyzers::{ConnId, Ctx};
use crate::logs::{LogRecord, TUNNEL, Value};

/// `Tunnel::expiration_interval`.
const EXPIRATION_INTERVAL: f64 = 3600.0;

/// A tunnel's `conn_id`: client, proxy, proxy port (ordered, so expiries come out in the same order every run).
type TunnelId = (IpAddr, IpAddr, u16);

/// The `Tunnel::Type` of a payload proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyType {
    /// An HTTP CONNECT answered 200.
    Http,
    /// A SOCKS request.
    Socks,
}

impl ProxyType {
    fn as_enum(self) -> &'static str {
        match self {
            ProxyType::Http => "Tunnel::HTTP",
            ProxyType::Socks => "Tunnel::SOCKS",
        }
    }
}

/// `Tunnel::active`, for the proxy tunnels: when each was last used, and the type it was registered with.
#[derive(Debug, Default)]
pub(crate) struct ProxyTunnels {
    active: BTreeMap<TunnelId, (f64, ProxyType)>,
    /// No tunnel lapses before this network time (so the sweep does not walk the table every second).
    next_expiry: f64,
}

/// `Tunnel::register` of the connection's proxy tunnel: tunnel.log's DISCOVER line for a new one. The table is keyed
/// by the `conn_id` alone, so a tunnel keeps the type it was first registered with (an HTTP CONNECT and a SOCKS
/// request through the same proxy port are one tunnel); looking it up again keeps it active (`&read_expire`).
pub(crate) fn register(ctx: &mut Ctx, kind: ProxyType) {
    if !ctx.cfg.is_enabled("tunnel") {
        return;
    }
    let id = ConnId { orig_p: 0, ..*ctx.id };
    let tunnels = &mut ctx.shared.proxy_tunnels;
    if tunnels.active.is_empty() {
        tunnels.next_expiry = ctx.ts + EXPIRATION_INTERVAL;
    }
    match tunnels.active.entry((id.orig_h, id.resp_h, id.resp_p)) {
        Entry::Occupied(mut known) => known.get_mut().0 = ctx.ts,
        Entry::Vacant(new) => {
            new.insert((ctx.ts, kind));
            let record = tunnel_record(ctx.ts, &id, kind, "Tunnel::DISCOVER");
            ctx.records.push(record);
        }
    }
}

impl ProxyTunnels {
    /// Logs `Tunnel::EXPIRE` for the tunnels unused for an hour by `now`. At the end of input they are dropped
    /// silently: Zeek does not expire table entries when it terminates.
    pub(crate) fn expire(&mut self, now: f64, finishing: bool, records: &mut Vec<LogRecord>) {
        if finishing {
            self.active.clear();
            return;
        }
        if self.active.is_empty() || now < self.next_expiry {
            return;
        }
        self.active.retain(|&(orig_h, resp_h, resp_p), &mut (last, kind)| {
            // Val.cc's `TableVal::DoExpire`: an entry lapses once it is more than the interval old.
            let lapsed = now - last > EXPIRATION_INTERVAL;
            if lapsed {
                let id = ConnId { orig_h, orig_p: 0, resp_h, resp_p, proto: crate::analyzers::Proto::Tcp };
                records.push(tunnel_record(now, &id, kind, "Tunnel::EXPIRE"));
            }
            !lapsed
        });
        let oldest = self.active.values().map(|&(last, _)| last).fold(f64::INFINITY, f64::min);
        self.next_expiry = oldest + EXPIRATION_INTERVAL;
    }
}

/// A tunnel.log line of a proxy tunnel: no uid (many connections make one tunnel).
fn tunnel_record(ts: f64, id: &ConnId, kind: ProxyType, action: &'static str) -> LogRecord {
    let mut values = vec![Value::Time(ts), Value::Unset];
    values.extend(id.log_values());
    values.extend([Value::Enum(kind.as_enum()), Value::Enum(action)]);
    LogRecord::new(&TUNNEL, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Proto;
    use crate::analyzers::testing::Harness;

    fn actions(records: &[LogRecord]) -> Vec<&str> {
        records
            .iter()
            .filter_map(|r| match r.get("action") {
                Some(Value::Enum(a)) => Some(*a),
                _ => None,
            })
            .collect()
    }

    fn types(records: &[LogRecord]) -> Vec<&str> {
        records
            .iter()
            .filter_map(|r| match r.get("tunnel_type") {
                Some(Value::Enum(t)) => Some(*t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_discover_per_proxy_until_it_lapses() {
        let mut h = Harness::new(Proto::Tcp, 3128);
        h.run(10.0, |ctx| register(ctx, ProxyType::Http));
        h.id.orig_p = 40001; // a second proxied connection of the same client
        h.run(20.0, |ctx| register(ctx, ProxyType::Http));
        assert_eq!(actions(&h.records), ["Tunnel::DISCOVER"]);
        let r = &h.records[0];
        assert_eq!(r.get("uid"), Some(&Value::Unset));
        assert_eq!(r.get("id.orig_p"), Some(&Value::Port(0)));
        assert_eq!(r.get("id.resp_p"), Some(&Value::Port(3128)));
        assert_eq!(r.get("tunnel_type"), Some(&Value::Enum("Tunnel::HTTP")));

        let mut expired = Vec::new();
        h.shared.proxy_tunnels.expire(20.0 + EXPIRATION_INTERVAL, false, &mut expired);
        assert!(expired.is_empty(), "used at 20s: still active an hour later");
        h.shared.proxy_tunnels.expire(20.0 + EXPIRATION_INTERVAL + 1.0, false, &mut expired);
        assert_eq!(actions(&expired), ["Tunnel::EXPIRE"]);
        h.run(20.0 + EXPIRATION_INTERVAL + 5.0, |ctx| register(ctx, ProxyType::Http));
        assert_eq!(actions(&h.records), ["Tunnel::DISCOVER", "Tunnel::DISCOVER"], "a lapsed tunnel is new again");
        h.shared.proxy_tunnels.expire(1e9, true, &mut expired);
        assert_eq!(expired.len(), 1, "nothing expires when the input ends");
    }

    /// `Tunnel::active` is keyed by the `conn_id` alone: a SOCKS request through a port that already carried an
    /// HTTP CONNECT finds that tunnel (no second DISCOVER), and the tunnel expires with the type it was found as.
    #[test]
    fn a_tunnel_keeps_the_type_it_was_discovered_as() {
        let mut h = Harness::new(Proto::Tcp, 1080);
        h.run(10.0, |ctx| register(ctx, ProxyType::Socks));
        h.run(11.0, |ctx| register(ctx, ProxyType::Http));
        h.id.resp_p = 1081;
        h.run(12.0, |ctx| register(ctx, ProxyType::Http));
        assert_eq!(actions(&h.records), ["Tunnel::DISCOVER", "Tunnel::DISCOVER"]);
        assert_eq!(types(&h.records), ["Tunnel::SOCKS", "Tunnel::HTTP"]);
        let mut expired = Vec::new();
        h.shared.proxy_tunnels.expire(12.0 + EXPIRATION_INTERVAL + 1.0, false, &mut expired);
        assert_eq!(types(&expired), ["Tunnel::SOCKS", "Tunnel::HTTP"]);
        assert_eq!(expired[0].get("id.resp_p"), Some(&Value::Port(1080)));
    }

    #[test]
    fn nothing_is_registered_with_the_tunnel_log_off() {
        let mut h = Harness::new(Proto::Tcp, 1080);
        h.enable_only(&["socks"]);
        h.run(10.0, |ctx| register(ctx, ProxyType::Socks));
        assert!(h.records.is_empty());
        assert!(h.shared.proxy_tunnels.active.is_empty());
    }
}
