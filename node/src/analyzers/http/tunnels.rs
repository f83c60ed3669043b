//! HTTP CONNECT proxies in tunnel.log, as main.zeek's `http_reply` handler registers them with the tunnels
//! framework: one tunnel per client, proxy and proxy port (the client's port is 0, since every proxied connection
//! comes from a new one), logged `Tunnel::DISCOVER` when first seen and `Tunnel::EXPIRE` once no CONNECT used it
//! for `Tunnel::expiration_interval`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::analyzers::{ConnId, Ctx};
use crate::logs::{LogRecord, TUNNEL, Value};

/// `Tunnel::expiration_interval`.
const EXPIRATION_INTERVAL: f64 = 3600.0;

/// A tunnel's `conn_id`: client, proxy, proxy port (ordered, so expiries come out in the same order every run).
type TunnelId = (IpAddr, IpAddr, u16);

/// `Tunnel::active`, for the CONNECT tunnels: when each was last used.
#[derive(Debug, Default)]
pub(crate) struct ProxyTunnels {
    last_used: BTreeMap<TunnelId, f64>,
    /// No tunnel lapses before this network time (so the sweep does not walk the table every second).
    next_expiry: f64,
}

/// A CONNECT was answered 200 (`Tunnel::register` of a `Tunnel::HTTP`): tunnel.log's DISCOVER line for a new tunnel.
pub(super) fn register(ctx: &mut Ctx) {
    if !ctx.cfg.is_enabled("tunnel") {
        return;
    }
    let id = ConnId { orig_p: 0, ..*ctx.id };
    let tunnels = &mut ctx.shared.proxy_tunnels;
    let new = tunnels.last_used.insert((id.orig_h, id.resp_h, id.resp_p), ctx.ts).is_none();
    if tunnels.last_used.len() == 1 {
        tunnels.next_expiry = ctx.ts + EXPIRATION_INTERVAL;
    }
    if new {
        let record = tunnel_record(ctx.ts, &id, "Tunnel::DISCOVER");
        ctx.records.push(record);
    }
}

impl ProxyTunnels {
    /// Logs `Tunnel::EXPIRE` for the tunnels unused for an hour by `now`. At the end of input they are dropped
    /// silently: Zeek does not expire table entries when it terminates.
    pub(crate) fn expire(&mut self, now: f64, finishing: bool, records: &mut Vec<LogRecord>) {
        if finishing {
            self.last_used.clear();
            return;
        }
        if self.last_used.is_empty() || now < self.next_expiry {
            return;
        }
        self.last_used.retain(|&(orig_h, resp_h, resp_p), &mut last| {
            let lapsed = now - last >= EXPIRATION_INTERVAL;
            if lapsed {
                let id = ConnId { orig_h, orig_p: 0, resp_h, resp_p, proto: crate::analyzers::Proto::Tcp };
                records.push(tunnel_record(now, &id, "Tunnel::EXPIRE"));
            }
            !lapsed
        });
        let oldest = self.last_used.values().copied().fold(f64::INFINITY, f64::min);
        self.next_expiry = oldest + EXPIRATION_INTERVAL;
    }
}

/// A tunnel.log line of a CONNECT tunnel: no uid (many connections make one tunnel).
fn tunnel_record(ts: f64, id: &ConnId, action: &'static str) -> LogRecord {
    let mut values = vec![Value::Time(ts), Value::Unset];
    values.extend(id.log_values());
    values.extend([Value::Enum("Tunnel::HTTP"), Value::Enum(action)]);
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

    #[test]
    fn one_discover_per_proxy_until_it_lapses() {
        let mut h = Harness::new(Proto::Tcp, 3128);
        h.run(10.0, register);
        h.id.orig_p = 40001; // a second proxied connection of the same client
        h.run(20.0, register);
        assert_eq!(actions(&h.records), ["Tunnel::DISCOVER"]);
        let r = &h.records[0];
        assert_eq!(r.get("uid"), Some(&Value::Unset));
        assert_eq!(r.get("id.orig_p"), Some(&Value::Port(0)));
        assert_eq!(r.get("id.resp_p"), Some(&Value::Port(3128)));
        assert_eq!(r.get("tunnel_type"), Some(&Value::Enum("Tunnel::HTTP")));

        let mut expired = Vec::new();
        h.shared.proxy_tunnels.expire(20.0 + EXPIRATION_INTERVAL - 1.0, false, &mut expired);
        assert!(expired.is_empty(), "used at 20s: still active");
        h.shared.proxy_tunnels.expire(20.0 + EXPIRATION_INTERVAL, false, &mut expired);
        assert_eq!(actions(&expired), ["Tunnel::EXPIRE"]);
        h.run(20.0 + EXPIRATION_INTERVAL + 5.0, register);
        assert_eq!(actions(&h.records), ["Tunnel::DISCOVER", "Tunnel::DISCOVER"], "a lapsed tunnel is new again");
        h.shared.proxy_tunnels.expire(1e9, true, &mut expired);
        assert_eq!(expired.len(), 1, "nothing expires when the input ends");
    }
}
