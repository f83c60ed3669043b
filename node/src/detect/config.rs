//! Detection settings: thresholds and intervals, read from `--detect-config FILE` (YAML). Every key is optional;
//! the defaults are Zeek's (or the seed document's where Zeek has no such detection). Times are seconds.
//!
//! ```yaml
//! notice: { suppress_for: 3600 }
//! dos: { service: 3389/udp, thresholds: [100, 1000, 10000], expiry: 3600 }
//! scan: { addr_threshold: 25, port_threshold: 15, interval: 300, subnet_prefix_v4: 24, subnet_threshold: 5 }
//! ssh: { password_guesses_limit: 30, guessing_timeout: 1800 }
//! dns_stats: { interval: 300 }
//! known: { expiry: 86400, cert_tracking: LOCAL_HOSTS, cert_store_expiry: 86400 }
//! http: { sqli_requests_threshold: 50, sqli_requests_interval: 300 }
//! mail_urls: { expiry: 86400 }
//! intel: { files: [/etc/zeek/intel.dat], reload_check: 10 }
//! capture_loss: { watch_interval: 900, initial_watch_interval: 60, too_much_loss: 0.1, minimum_acks: 1 }
//! stats: { report_interval: 300 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::LocalNets;
use serde::Deserialize;

use crate::analyzers::Proto;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// The site's local networks (from `--local-nets`, not from the file).
    #[serde(skip)]
    pub local_nets: LocalNets,
    pub notice: NoticeConfig,
    pub dos: DosConfig,
    pub scan: ScanConfig,
    pub ssh: SshConfig,
    pub dns_stats: DnsStatsConfig,
    pub known: KnownConfig,
    pub mail_urls: MailUrlsConfig,
    pub intel: IntelConfig,
    pub capture_loss: CaptureLossConfig,
    pub http: HttpConfig,
    pub stats: StatsConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            local_nets: crate::config::AnalysisConfig::default().local_nets,
            notice: NoticeConfig::default(),
            dos: DosConfig::default(),
            scan: ScanConfig::default(),
            ssh: SshConfig::default(),
            dns_stats: DnsStatsConfig::default(),
            known: KnownConfig::default(),
            mail_urls: MailUrlsConfig::default(),
            intel: IntelConfig::default(),
            capture_loss: CaptureLossConfig::default(),
            http: HttpConfig::default(),
            stats: StatsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoticeConfig {
    /// Zeek's `Notice::default_suppression_interval`.
    pub suppress_for: f64,
}

impl Default for NoticeConfig {
    fn default() -> Self {
        NoticeConfig { suppress_for: 3600.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DosConfig {
    /// The service watched, `PORT/PROTO`.
    pub service: String,
    /// `DoS::Threshold` is raised as a pair's connection count reaches each of these.
    pub thresholds: Vec<u64>,
    /// A pair's counts are forgotten this long after its last connection.
    pub expiry: f64,
    /// How long `DoS::Victim` stays suppressed for one responder.
    pub victim_suppress_for: f64,
}

impl Default for DosConfig {
    fn default() -> Self {
        DosConfig {
            service: "3389/udp".into(),
            thresholds: vec![100, 1000, 10000],
            expiry: 3600.0,
            victim_suppress_for: 3600.0,
        }
    }
}

impl DosConfig {
    /// The watched service as port and transport (`None` if the setting is malformed; checked at load).
    pub fn service(&self) -> Option<(u16, Proto)> {
        let (port, proto) = self.service.split_once('/')?;
        let proto = match proto.trim().to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        Some((port.trim().parse().ok()?, proto))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// `Scan::addr_scan_threshold`: distinct hosts on one port.
    pub addr_threshold: u64,
    /// `Scan::port_scan_threshold`: distinct ports on one host.
    pub port_threshold: u64,
    /// `Scan::addr_scan_interval` / `port_scan_interval`.
    pub interval: f64,
    /// The prefix that groups scanners into subnets (`Scan::Subnet`).
    pub subnet_prefix_v4: u8,
    pub subnet_prefix_v6: u8,
    /// Distinct scanners from one subnet that raise `Scan::Subnet`.
    pub subnet_threshold: u64,
    /// A subnet's scanners are forgotten this long after the last one was found.
    pub subnet_interval: f64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            addr_threshold: 25,
            port_threshold: 15,
            interval: 300.0,
            subnet_prefix_v4: 24,
            subnet_prefix_v6: 64,
            subnet_threshold: 5,
            subnet_interval: 3600.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshConfig {
    /// `SSH::password_guesses_limit`.
    pub password_guesses_limit: u64,
    /// `SSH::guessing_timeout`.
    pub guessing_timeout: f64,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig { password_guesses_limit: 30, guessing_timeout: 1800.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsStatsConfig {
    /// The manager collects and reports query-type counts this often.
    pub interval: f64,
}

impl Default for DnsStatsConfig {
    fn default() -> Self {
        DnsStatsConfig { interval: 300.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnownConfig {
    /// A host or service is logged again after this long (Zeek's `Known::host_store_expiry`, one day).
    pub expiry: f64,
    /// `Known::cert_tracking`: whose certificates known_certs.log tracks.
    pub cert_tracking: HostTracking,
    /// `Known::cert_store_expiry`: a (host, certificate) pair is logged again this long after it was first logged.
    pub cert_store_expiry: f64,
}

impl Default for KnownConfig {
    fn default() -> Self {
        KnownConfig { expiry: 86400.0, cert_tracking: HostTracking::LocalHosts, cert_store_expiry: 86400.0 }
    }
}

/// Zeek's `Host` enum of base/utils/directions-and-hosts.zeek, as `addr_matches_host` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HostTracking {
    #[serde(rename = "LOCAL_HOSTS")]
    LocalHosts,
    #[serde(rename = "REMOTE_HOSTS")]
    RemoteHosts,
    #[serde(rename = "ALL_HOSTS")]
    AllHosts,
    #[serde(rename = "NO_HOSTS")]
    NoHosts,
}

impl HostTracking {
    /// `addr_matches_host(host, self)`, given whether the host is local (`Site::is_local_addr`).
    pub fn matches(self, is_local: bool) -> bool {
        match self {
            HostTracking::LocalHosts => is_local,
            HostTracking::RemoteHosts => !is_local,
            HostTracking::AllHosts => true,
            HostTracking::NoHosts => false,
        }
    }
}

/// The options of Zeek's policy/protocols/http/detect-sql-injection.zeek (module `HTTP`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `HTTP::sqli_requests_threshold`: injection requests of one attacker (or against one victim) per interval
    /// that raise `HTTP::SQL_Injection_Attacker` (`..._Victim`).
    pub sqli_requests_threshold: f64,
    /// `HTTP::sqli_requests_interval`: the counting interval (SumStats epoch).
    pub sqli_requests_interval: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { sqli_requests_threshold: 50.0, sqli_requests_interval: 300.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailUrlsConfig {
    /// How long a URL seen in a mail is watched for.
    pub expiry: f64,
}

impl Default for MailUrlsConfig {
    fn default() -> Self {
        MailUrlsConfig { expiry: 86400.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntelConfig {
    /// Intel files in Zeek's format (`--intel FILE` adds to these).
    pub files: Vec<PathBuf>,
    /// The manager checks the files for changes this often (seconds of network time).
    pub reload_check: f64,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig { files: Vec::new(), reload_check: 10.0 }
    }
}

/// Zeek's `CaptureLoss` options (policy/misc/capture-loss.zeek).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureLossConfig {
    /// `CaptureLoss::watch_interval`: time between measurements after the first (15 minutes).
    pub watch_interval: f64,
    /// `CaptureLoss::initial_watch_interval`: the first measurement comes this long after the first packet.
    pub initial_watch_interval: f64,
    /// `CaptureLoss::too_much_loss`: the share of lost ACKs (0 to 1) that raises `CaptureLoss::Too_Much_Loss`.
    pub too_much_loss: f64,
    /// `CaptureLoss::minimum_acks`: fewer ACKs in an interval raise `CaptureLoss::Too_Little_Traffic`.
    pub minimum_acks: u64,
}

impl Default for CaptureLossConfig {
    fn default() -> Self {
        CaptureLossConfig { watch_interval: 900.0, initial_watch_interval: 60.0, too_much_loss: 0.1, minimum_acks: 1 }
    }
}

/// Zeek's `Stats` options (policy/misc/stats.zeek).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// `Stats::report_interval`: time between stats.log rows (5 minutes).
    pub report_interval: f64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig { report_interval: 300.0 }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    #[error("{0}")]
    Invalid(String),
}

impl DetectConfig {
    /// Reads a YAML file (every key optional).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        let cfg = Self::from_yaml(&text).map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
        Ok(cfg)
    }

    /// Settings given one by one, as a cluster layout's `analysis.thresholds` carries them (a ZeekCluster's
    /// `spec.thresholds`): each key names a setting of the file above as `section.key` (`scan.port_threshold`) or
    /// in Zeek's style `Module::key` (`Scan::port_threshold`, `SSH::guessing_timeout`, `CaptureLoss::watch_interval`);
    /// a value is a number, or a string holding a number, a duration (`30m`, `1h`, `90s`, `2d`) or text
    /// (`dos.service: 53/udp`). Unknown settings and values of the wrong kind are errors naming the setting.
    pub fn from_settings(settings: &BTreeMap<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let mut sections = serde_json::Map::new();
        for (name, value) in settings {
            let (section, key) = setting_path(name).ok_or_else(|| {
                ConfigError::Invalid(format!("setting '{name}': expected SECTION.KEY or Module::key"))
            })?;
            let entry = sections.entry(section).or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let serde_json::Value::Object(fields) = entry {
                fields.insert(key, setting_value(value));
            }
        }
        let cfg: DetectConfig = serde_json::from_value(serde_json::Value::Object(sections))
            .map_err(|e| ConfigError::Invalid(format!("thresholds: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let cfg: DetectConfig = if text.trim().is_empty() {
            DetectConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.dos.service().is_none() {
            return Err(ConfigError::Invalid(format!(
                "dos.service '{}' is not PORT/tcp or PORT/udp",
                self.dos.service
            )));
        }
        let positive = [
            ("notice.suppress_for", self.notice.suppress_for),
            ("scan.interval", self.scan.interval),
            ("ssh.guessing_timeout", self.ssh.guessing_timeout),
            ("dns_stats.interval", self.dns_stats.interval),
            ("known.expiry", self.known.expiry),
            ("known.cert_store_expiry", self.known.cert_store_expiry),
            ("http.sqli_requests_interval", self.http.sqli_requests_interval),
            ("capture_loss.watch_interval", self.capture_loss.watch_interval),
            ("capture_loss.initial_watch_interval", self.capture_loss.initial_watch_interval),
            ("stats.report_interval", self.stats.report_interval),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::Invalid(format!("{name} must be a positive number of seconds")));
            }
        }
        if !(self.http.sqli_requests_threshold.is_finite() && self.http.sqli_requests_threshold > 0.0) {
            return Err(ConfigError::Invalid("http.sqli_requests_threshold must be a positive number".into()));
        }
        if !(self.capture_loss.too_much_loss.is_finite() && self.capture_loss.too_much_loss >= 0.0) {
            return Err(ConfigError::Invalid("capture_loss.too_much_loss must be a share between 0 and 1".into()));
        }
        Ok(())
    }
}

/// The section and key of a setting named `section.key` or `Module::key` (Zeek's module names, case and
/// underscores aside: `Scan`, `SSH`, `DoS`, `Notice`, `Known`, `Intel`, `HTTP`, `CaptureLoss`, `DNSStats`,
/// `MailUrls`, `Stats`).
/// The analyses each settings section configures (`notice` configures them all).
const SECTION_ANALYSES: &[(&str, &[&str])] = &[
    ("dos", &["dos"]),
    ("scan", &["scan"]),
    ("ssh", &["ssh-bruteforce"]),
    ("dns_stats", &["dns-stats"]),
    ("known", &["known", "software"]),
    ("mail_urls", &["mail-urls"]),
    ("intel", &["intel"]),
    ("capture_loss", &["capture-loss"]),
    ("http", &["sqli"]),
    ("stats", &["stats"]),
];

/// The settings among `settings` that configure none of the `running` analyses: a ZeekCluster that sets
/// `Scan::port_threshold` but whose `spec.detections` leaves out `scan` (the default `[local]` does) would
/// otherwise be quietly ignored.
pub fn settings_for_idle_analyses<'a>(
    settings: impl IntoIterator<Item = &'a String>,
    running: &[&str],
) -> Vec<&'a str> {
    settings
        .into_iter()
        .filter(|name| {
            setting_path(name).is_some_and(|(section, _)| {
                SECTION_ANALYSES
                    .iter()
                    .find(|(s, _)| *s == section)
                    .is_some_and(|(_, analyses)| !analyses.iter().any(|a| running.contains(a)))
            })
        })
        .map(String::as_str)
        .collect()
}

fn setting_path(name: &str) -> Option<(String, String)> {
    let (module, key) = name.split_once("::").or_else(|| name.split_once('.'))?;
    let module: String = module.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).collect();
    let section = match module.as_str() {
        "notice" | "dos" | "scan" | "ssh" | "known" | "intel" | "http" | "stats" => module,
        "dnsstats" => "dns_stats".to_string(),
        "mailurls" => "mail_urls".to_string(),
        "captureloss" => "capture_loss".to_string(),
        _ => return None,
    };
    (!key.is_empty()).then(|| (section, key.to_string()))
}

/// A setting's value as the file would hold it: a string that is a whole number or a duration (`30m`, or a Zeek
/// interval such as `1min`, `2 hrs`) becomes that number of seconds (ZeekCluster thresholds are numbers or strings).
fn setting_value(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => match crate::cluster::layout::parse_duration(s) {
            // Whole seconds stay an integer, which count settings need.
            Some(d) => serde_json::Value::from(d.as_secs()),
            None => zeek_interval(s)
                .or_else(|| s.trim().parse::<f64>().ok())
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| value.clone(), serde_json::Value::Number),
        },
        other => other.clone(),
    }
}

/// A Zeek interval constant in seconds: a number and one of Zeek's units (`usec`, `msec`, `sec`, `min`, `hr`,
/// `day`, each also plural), with or without a space between.
fn zeek_interval(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    // No singular unit ends in `s`: dropping one makes the plural singular.
    let unit = unit.trim();
    let secs = match unit.strip_suffix('s').unwrap_or(unit) {
        "usec" => n / 1e6,
        "msec" => n / 1e3,
        "sec" => n,
        "min" => n * 60.0,
        "hr" => n * 3600.0,
        "day" => n * 86_400.0,
        _ => return None,
    };
    Some(secs).filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every section of the table is one of the file's and names analyses the node has.
    #[test]
    fn each_section_maps_to_known_analyses() {
        let known = crate::detect::known_names();
        for (section, analyses) in SECTION_ANALYSES {
            assert!(analyses.iter().all(|a| known.contains(a)), "{section}: {analyses:?}");
            assert!(DetectConfig::from_yaml(&format!("{section}: {{}}")).is_ok(), "{section} is a section");
        }
    }

    #[test]
    fn settings_of_analyses_that_do_not_run_are_found() {
        let settings: Vec<String> = [
            "Scan::port_threshold",
            "SSH::guessing_timeout",
            "Known::expiry",
            "Notice::suppress_for",
            "dns_stats.interval",
        ]
        .map(String::from)
        .to_vec();
        let local = ["software", "known", "ssh-bruteforce", "capture-loss"];
        assert_eq!(settings_for_idle_analyses(&settings, &local), ["Scan::port_threshold", "dns_stats.interval"]);
        assert_eq!(
            settings_for_idle_analyses(&settings, &["software"]),
            ["Scan::port_threshold", "SSH::guessing_timeout", "dns_stats.interval"]
        );
        assert!(settings_for_idle_analyses(&settings, &["scan", "ssh-bruteforce", "known", "dns-stats"]).is_empty());
    }

    fn settings(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    /// A ZeekCluster's `spec.thresholds` as the operator renders them into the layout.
    #[test]
    fn settings_one_by_one_in_either_style() {
        let cfg = DetectConfig::from_settings(&settings(&[
            ("Scan::port_threshold", 25.into()),
            ("SSH::guessing_timeout", "30m".into()),
            ("ssh.password_guesses_limit", "12".into()),
            ("dos.service", "53/udp".into()),
            ("CaptureLoss::too_much_loss", "0.05".into()),
            ("capture_loss.watch_interval", "1h".into()),
            ("DNSStats::interval", 60.into()),
            ("Known::cert_tracking", "ALL_HOSTS".into()),
            ("Known::cert_store_expiry", "12h".into()),
            ("HTTP::sqli_requests_threshold", 20.into()),
            ("http.sqli_requests_interval", "1m".into()),
        ]))
        .unwrap();
        assert_eq!((cfg.known.cert_tracking, cfg.known.cert_store_expiry), (HostTracking::AllHosts, 43200.0));
        assert_eq!((cfg.http.sqli_requests_threshold, cfg.http.sqli_requests_interval), (20.0, 60.0));
        assert_eq!(cfg.scan.port_threshold, 25);
        assert_eq!(cfg.ssh.guessing_timeout, 1800.0);
        assert_eq!(cfg.ssh.password_guesses_limit, 12);
        assert_eq!(cfg.dos.service(), Some((53, Proto::Udp)));
        assert_eq!(cfg.capture_loss.too_much_loss, 0.05);
        assert_eq!(cfg.capture_loss.watch_interval, 3600.0);
        assert_eq!(cfg.dns_stats.interval, 60.0);
        assert_eq!(cfg.scan.addr_threshold, DetectConfig::default().scan.addr_threshold, "the rest stays");

        let err = |pairs: &[(&str, serde_json::Value)]| DetectConfig::from_settings(&settings(pairs)).unwrap_err();
        assert!(err(&[("Scan::port_thresold", 25.into())]).to_string().contains("port_thresold"));
        assert!(err(&[("Weather::rain", 1.into())]).to_string().contains("Weather::rain"));
        assert!(err(&[("threshold", 1.into())]).to_string().contains("SECTION.KEY"));
        assert!(err(&[("scan.port_threshold", "many".into())]).to_string().contains("thresholds"));
        assert!(err(&[("dos.service", "53/sctp".into())]).to_string().contains("53/sctp"));
        assert!(err(&[("Known::cert_tracking", "SOME_HOSTS".into())]).to_string().contains("SOME_HOSTS"));
        assert!(err(&[("HTTP::sqli_requests_threshold", 0.into())]).to_string().contains("sqli_requests_threshold"));
    }

    /// The example ZeekClusters' thresholds are settings the nodes take (the operator hands them on as they are).
    #[test]
    fn the_example_clusters_thresholds_are_known_settings() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let documents: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text).unwrap();
            for thresholds in documents.iter().filter_map(|d| d.pointer("/spec/thresholds")) {
                let settings: BTreeMap<String, serde_json::Value> = serde_json::from_value(thresholds.clone()).unwrap();
                DetectConfig::from_settings(&settings).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
        assert!(checked > 0, "an example sets thresholds");
    }

    #[test]
    fn defaults_and_partial_files() {
        let d = DetectConfig::default();
        assert_eq!(d.dos.service(), Some((3389, Proto::Udp)));
        assert_eq!(d.dos.thresholds, [100, 1000, 10000]);
        let c = DetectConfig::from_yaml(
            "dos:\n  thresholds: [3, 5]\n  service: 80/tcp\nssh:\n  password_guesses_limit: 10\n",
        )
        .unwrap();
        assert_eq!(c.dos.thresholds, [3, 5]);
        assert_eq!(c.dos.service(), Some((80, Proto::Tcp)));
        assert_eq!(c.ssh.password_guesses_limit, 10);
        assert_eq!(c.scan.addr_threshold, 25);
        assert!(DetectConfig::from_yaml("dos: { service: nope }").is_err());
        assert!(DetectConfig::from_yaml("dos: { threshold: 3 }").is_err(), "unknown keys are errors");
        assert!(DetectConfig::from_yaml("").is_ok());
    }

    #[test]
    fn stats_report_interval_as_a_setting_in_zeeks_units() {
        assert_eq!(DetectConfig::default().stats.report_interval, 300.0);
        let cfg = DetectConfig::from_settings(&settings(&[("Stats::report_interval", "1min".into())])).unwrap();
        assert_eq!(cfg.stats.report_interval, 60.0);
        let cfg = DetectConfig::from_settings(&settings(&[("stats.report_interval", "2 hrs".into())])).unwrap();
        assert_eq!(cfg.stats.report_interval, 7200.0);
        let cfg = DetectConfig::from_settings(&settings(&[("Stats::report_interval", "500msecs".into())])).unwrap();
        assert_eq!(cfg.stats.report_interval, 0.5);
        assert!(DetectConfig::from_settings(&settings(&[("Stats::report_interval", "0sec".into())])).is_err());
        assert!(DetectConfig::from_settings(&settings(&[("Stats::report_interval", "5 fortnights".into())])).is_err());
        let c = DetectConfig::from_yaml("stats: { report_interval: 60 }").unwrap();
        assert_eq!(c.stats.report_interval, 60.0);
        assert_eq!(
            (zeek_interval("1.5 day"), zeek_interval("10usec"), zeek_interval("min")),
            (Some(129_600.0), Some(1e-5), None)
        );
    }

    #[test]
    fn capture_loss_options() {
        let d = DetectConfig::default().capture_loss;
        assert_eq!(
            (d.watch_interval, d.initial_watch_interval, d.too_much_loss, d.minimum_acks),
            (900.0, 60.0, 0.1, 1)
        );
        let c = DetectConfig::from_yaml("capture_loss: { watch_interval: 300, minimum_acks: 10 }").unwrap();
        assert_eq!((c.capture_loss.watch_interval, c.capture_loss.minimum_acks), (300.0, 10));
        assert_eq!(c.capture_loss.initial_watch_interval, 60.0);
        assert!(DetectConfig::from_yaml("capture_loss: { watch_interval: 0 }").is_err());
        assert!(DetectConfig::from_yaml("capture_loss: { too_much_loss: -1 }").is_err());
    }
}
