//! Cluster-aware analyses ("detections"), written the way Zeek scripts are (docs/ANALYSES.md).
//!
//! An [`Analysis`] has one [`Handler`] per role it runs on. Worker handlers receive [`EngineEvent`]s (a connection
//! finished, a DNS request, an HTTP request, ...); every handler receives the cluster [`Event`]s published to its
//! role; all of them work through a [`Cx`]: network time, `publish` to a topic, `publish_hrw` / `publish_rr` into a
//! pool, keyed state with expiry (on proxies, the same [`StateStore`] the cluster hands off when proxies come and
//! go), logs, and [`Cx::notice`] (the notice framework with cluster-wide suppression).
//!
//! Behind the handlers is a [`Transport`]: [`local::LocalHub`] runs every role in this process (standalone mode:
//! events are delivered synchronously, HRW picks among in-process proxies); a cluster node implements it over its
//! gRPC bus (see [`NodeRuntime`] and docs/ANALYSES.md, "Running in a cluster").

pub mod capture_loss;
pub mod cluster;
pub mod config;
pub mod dns_stats;
pub mod dos;
pub mod events;
pub mod ftp_site_exec;
pub mod intel;
pub mod local;
pub mod notice;
mod runtime;
pub mod scan;
pub mod sent;
pub mod smtp_urls;
pub mod software;
pub mod sqli;
pub mod ssh_bruteforce;
pub mod stats;

use std::net::IpAddr;

pub use crate::cluster::state::{StateStore, StateValue};
pub use crate::cluster::{Data, Event, PublishError, Role};
pub use config::DetectConfig;
pub use events::{CaptureCounters, Counters, EngineEvent};
pub use local::{DetectSink, LocalHub};
pub use notice::Notice;
pub use runtime::{Cx, NodeRuntime, Transport};

/// One cluster-aware analysis: its name and the handler it runs on each role.
pub trait Analysis: Send + Sync {
    /// The name used by `--detect` (`dos`, `scan`, ...).
    fn name(&self) -> &'static str;

    /// The names of the cluster events its handlers consume (a cluster node registers for these).
    fn events(&self) -> &'static [&'static str];

    /// The handler for `role`, or `None` when the analysis does nothing there. Each node builds its own, so a
    /// handler's fields are that node's state (a worker's list of known scanners, the manager's URL list).
    fn handler(&self, role: Role, cfg: &DetectConfig) -> Option<Box<dyn Handler>>;

    /// What running this analysis changes in the engine, as loading a Zeek script can add to a base log (sqli tags
    /// http.log's requests). Nothing by default.
    fn configure_engine(&self, _engine: &mut crate::config::AnalysisConfig) {}
}

/// What one analysis does on one node. Every method has an empty default: implement the ones the role needs.
pub trait Handler: Send {
    /// The node starts (Zeek's `zeek_init`): the manager loads files, sets timers.
    fn init(&mut self, _cx: &mut Cx) {}

    /// An engine event (workers only).
    fn engine(&mut self, _ev: &EngineEvent, _cx: &mut Cx) {}

    /// The network time from which this handler needs the next [`EngineEvent::Counters`] (the engine's counters
    /// after a packet): the sinks send none before it, so a measurement every quarter hour does not cost a dispatch
    /// per packet. `f64::INFINITY` (the default): none; `f64::NEG_INFINITY`: the next packet's. Handlers that ask
    /// for any also get one at the end of input (`at_end`).
    fn counters_due(&self) -> f64 {
        f64::INFINITY
    }

    /// A cluster event published to this node's role, pool or name. Events of other analyses arrive here too:
    /// match on the names you publish.
    fn event(&mut self, _ev: &Event, _cx: &mut Cx) {}

    /// Network time moved on (at most once per second of network time): periodic work such as reports.
    fn tick(&mut self, _cx: &mut Cx) {}

    /// End of input (Zeek's `zeek_done`). Nodes finish in the order workers, proxies, manager, each after the
    /// messages of the previous ones were delivered.
    fn done(&mut self, _cx: &mut Cx) {}
}

/// Every analysis the node has, in the order handlers run.
pub fn registry() -> Vec<Box<dyn Analysis>> {
    vec![
        Box::new(dos::DoS),
        Box::new(scan::Scan),
        Box::new(intel::Intel),
        Box::new(smtp_urls::MailUrlClicks),
        Box::new(software::Software),
        Box::new(software::Known),
        Box::new(dns_stats::DnsStats),
        Box::new(ssh_bruteforce::SshBruteforce),
        Box::new(capture_loss::CaptureLoss),
        Box::new(ftp_site_exec::FtpSiteExec),
        Box::new(sqli::SqlInjection),
        Box::new(stats::Stats),
    ]
}

/// Named sets of analyses that `--detect` (and a ZeekCluster's `spec.detections`) accepts beside the analyses'
/// own names and `all`. `local` is what zeekctl's default `site/local.zeek` loads that the node has: a cluster
/// deployed as Zeek's own tooling deploys it runs these.
pub const PROFILES: &[(&str, &[&str])] =
    &[("local", &["software", "known", "ssh-bruteforce", "capture-loss", "ftp-site-exec", "sqli", "stats"])];

/// The analyses' own names, as `--detect` takes them.
pub fn known_names() -> Vec<&'static str> {
    registry().iter().map(|a| a.name()).collect()
}

/// Every name `--detect` accepts: `all`, the [`PROFILES`] and the analyses.
pub fn accepted_names() -> Vec<&'static str> {
    std::iter::once("all").chain(PROFILES.iter().map(|(name, _)| *name)).chain(known_names()).collect()
}

/// The analyses named in `names` (`all` = every one; a profile = its members), in registry order.
pub fn select(names: &[String]) -> Result<Vec<Box<dyn Analysis>>, UnknownDetection> {
    let all = registry();
    if names.iter().any(|n| n == "all") {
        return Ok(all);
    }
    let mut wanted: Vec<&str> = Vec::new();
    for n in names {
        if let Some((_, members)) = PROFILES.iter().find(|(profile, _)| profile == n) {
            wanted.extend(members.iter().copied());
        } else if all.iter().any(|a| a.name() == n) {
            wanted.push(n);
        } else {
            return Err(UnknownDetection(n.clone()));
        }
    }
    Ok(all.into_iter().filter(|a| wanted.contains(&a.name())).collect())
}

/// A `--detect` name the node does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown detection '{0}' (known: {known})", known = accepted_names().join(", "))]
pub struct UnknownDetection(pub String);

/// The network of `addr` with `v4`/`v6` prefix bits (`Scan::Subnet`'s key, 10.1.2.3 → 10.1.2.0/24).
pub fn masked(addr: IpAddr, v4: u8, v6: u8) -> ipnet::IpNet {
    let prefix = if addr.is_ipv4() { v4.min(32) } else { v6.min(128) };
    ipnet::IpNet::new(addr, prefix).map(|n| n.trunc()).unwrap_or_else(|_| ipnet::IpNet::from(addr))
}

/// Reads the `i`-th argument of an event as an address.
pub fn arg_addr(ev: &Event, i: usize) -> Option<IpAddr> {
    ev.args.get(i).and_then(Data::as_addr)
}

pub fn arg_count(ev: &Event, i: usize) -> Option<u64> {
    ev.args.get(i).and_then(Data::as_count)
}

/// Reads the `i`-th argument of an event as a time (a worker's network time carried in the event, as Zeek's info
/// records carry the `ts` their worker set).
pub fn arg_time(ev: &Event, i: usize) -> Option<f64> {
    match ev.args.get(i)? {
        Data::Time(t) => Some(*t),
        _ => None,
    }
}

pub fn arg_str(ev: &Event, i: usize) -> Option<&str> {
    ev.args.get(i).and_then(Data::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(selected: &[Box<dyn Analysis>]) -> Vec<&'static str> {
        selected.iter().map(|a| a.name()).collect()
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn every_profile_member_is_an_analysis() {
        let known = known_names();
        for (profile, members) in PROFILES {
            assert!(!members.is_empty(), "profile {profile} is empty");
            for m in *members {
                assert!(known.contains(m), "profile {profile} names unknown analysis {m}");
            }
            assert!(!known.contains(profile), "profile {profile} shadows an analysis");
        }
    }

    #[test]
    fn a_profile_expands_to_its_members_in_registry_order() {
        let selected = select(&strings(&["ssh-bruteforce", "local", "dos"])).unwrap();
        let names = names_of(&selected);
        assert_eq!(
            names,
            ["dos", "software", "known", "ssh-bruteforce", "capture-loss", "ftp-site-exec", "sqli", "stats"]
        );
        assert_eq!(names_of(&select(&strings(&["all"])).unwrap()), known_names());
        assert!(select(&[]).unwrap().is_empty());
    }

    #[test]
    fn an_unknown_name_lists_what_is_accepted() {
        let err = select(&strings(&["local", "sql"])).err().expect("sql is not a detection").to_string();
        assert!(err.starts_with("unknown detection 'sql' (known: all, local, dos, scan,"), "{err}");
    }
}
