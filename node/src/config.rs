//! Analysis settings shared by the standalone CLI, cluster workers and the layout file.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::analyzers::REGISTRY;

/// Zeek's `Site::private_address_space`, which `Site::local_nets` defaults to.
pub const PRIVATE_ADDRESS_SPACE: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "64:ff9b::/96",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
];

/// Log streams that are not protocol analyzers but can be switched on and off like them (`pe`: the PE analysis
/// of files and pe.log, which Zeek's bare mode loads only with `base/files/pe`).
pub const CORE_STREAMS: &[&str] = &["conn", "weird", "tunnel", "analyzer", "files", "hash", "pe"];

/// What one analysis engine does.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    /// Enabled analyzers and core streams; `None` = everything.
    pub enabled: Option<BTreeSet<String>>,
    pub ignore_checksums: bool,
    pub local_nets: LocalNets,
    /// Seed for uids, so runs are reproducible.
    pub seed: u64,
    /// Zeek's `Tunnel::max_depth`: how many tunnels deep a packet is decapsulated (4 since zeek/zeek#3480, 2023).
    pub tunnel_max_depth: usize,
    /// Tags policy scripts add to an HTTP request's `c$http$tags` by its unescaped URI (http.log's `tags`): each
    /// tag with its test. Empty (the default) unless a detection that tags requests runs (`sqli`: `HTTP::URI_SQLI`).
    pub http_uri_tags: Vec<UriTag>,
}

/// An http.log tag and the test of a request's unescaped URI that adds it.
pub type UriTag = (&'static str, fn(&[u8]) -> bool);

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            enabled: None,
            ignore_checksums: false,
            local_nets: LocalNets::new(
                &PRIVATE_ADDRESS_SPACE.iter().map(|n| n.parse().expect("valid builtin subnet")).collect::<Vec<_>>(),
            ),
            seed: 0x5eed,
            tunnel_max_depth: 4,
            http_uri_tags: Vec::new(),
        }
    }
}

/// An `--analyzers` name that the node does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown analyzer '{0}' (known: {known})", known = known_names().join(", "))]
pub struct UnknownAnalyzer(pub String);

pub fn known_names() -> Vec<&'static str> {
    CORE_STREAMS.iter().copied().chain(REGISTRY.iter().map(|s| s.name)).collect()
}

impl AnalysisConfig {
    /// Restricts analysis to the named analyzers and streams (`conn,dns,http`).
    pub fn with_analyzers<S: AsRef<str>>(mut self, names: &[S]) -> Result<Self, UnknownAnalyzer> {
        let known = known_names();
        let mut set = BTreeSet::new();
        for n in names {
            let n = n.as_ref().trim();
            let n = if n == "tunnels" { "tunnel" } else { n };
            if n.is_empty() {
                continue;
            }
            if !known.contains(&n) {
                return Err(UnknownAnalyzer(n.to_string()));
            }
            set.insert(n.to_string());
        }
        self.enabled = Some(set);
        Ok(self)
    }

    pub fn is_enabled(&self, name: &str) -> bool {
        self.enabled.as_ref().is_none_or(|s| s.contains(name))
    }

    /// files.log carries hash and extraction columns (Zeek's full mode, or `hash` named explicitly).
    pub fn files_have_hashes(&self) -> bool {
        self.is_enabled("hash")
    }

    /// `Site::is_local_addr` ([`LocalNets::contains`]).
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.local_nets.contains(addr)
    }
}

/// The local networks (`--local-nets`), as address and mask pairs: every new connection asks about both of its
/// hosts, and a public address is compared with every network (24 by default), which through `IpNet::contains`
/// cost ~700 instructions a connection; as a masked compare it is two instructions a network. The engine and the
/// detections ask the same question through this one type.
#[derive(Debug, Clone, Default)]
pub struct LocalNets {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl LocalNets {
    pub fn new(nets: &[IpNet]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((n.network().to_bits(), n.netmask().to_bits())),
                IpNet::V6(n) => v6.push((n.network().to_bits(), n.netmask().to_bits())),
            }
        }
        LocalNets { v4, v6 }
    }

    /// `Site::is_local_addr`: in one of the networks of its family. An IPv4-mapped IPv6 address is its IPv4
    /// address, as Zeek stores IPv4 addresses.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match addr {
            IpAddr::V4(a) => {
                let a = a.to_bits();
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = a.to_bits();
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_local_networks_are_zeeks_private_address_space() {
        let cfg = AnalysisConfig::default();
        let local = |a: &str| cfg.is_local(a.parse().unwrap());
        assert!(local("127.0.0.1") && local("10.1.6.206") && local("224.0.0.251") && local("::ffff:192.168.1.1"));
        assert!(!local("5.2.136.90") && !local("2001:4860:0:2001::68") && !local("::ffff:8.8.8.8"));
        let custom = AnalysisConfig {
            local_nets: LocalNets::new(&["5.2.0.0/16".parse().unwrap()]),
            ..AnalysisConfig::default()
        };
        assert!(custom.is_local("5.2.136.90".parse().unwrap()) && !custom.is_local("10.0.0.1".parse().unwrap()));
    }

    /// The masked compare answers as `IpNet::contains` does, for prefixes of every length and addresses on and
    /// around their edges (IPv4-mapped IPv6 addresses as their IPv4 address).
    #[test]
    fn local_networks_match_as_ipnet_does() {
        let nets: Vec<IpNet> = ["0.0.0.0/0", "10.1.2.3/32", "172.16.0.0/12", "192.0.2.128/25", "::/0", "fe80::/10"]
            .iter()
            .chain(PRIVATE_ADDRESS_SPACE)
            .map(|n| n.parse().unwrap())
            .collect();
        let addrs: Vec<IpAddr> = [
            "0.0.0.0",
            "10.1.2.3",
            "10.1.2.4",
            "172.15.255.255",
            "172.16.0.0",
            "172.31.255.255",
            "172.32.0.0",
            "192.0.2.127",
            "192.0.2.128",
            "255.255.255.255",
            "8.8.8.8",
            "::",
            "::1",
            "fe80::1",
            "febf:ffff::1",
            "fec0::",
            "2001:db8::1",
            "2001:4860::68",
            "ffff::",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        for net in &nets {
            let one = LocalNets::new(&[*net]);
            for &addr in &addrs {
                assert_eq!(one.contains(addr), net.contains(&addr), "{addr} in {net}");
                if let IpAddr::V4(v4) = addr {
                    assert_eq!(one.contains(IpAddr::V6(v4.to_ipv6_mapped())), net.contains(&addr), "{addr} mapped");
                }
            }
        }
    }
}
