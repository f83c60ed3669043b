//! One oracle case: what its `cmd.txt` says about how Zeek ran, and how to run the node the same way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A case folder of the oracle.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub pcap: PathBuf,
    /// `zeek -b`: only the loaded scripts' analyzers and logs.
    pub bare: bool,
    /// `zeek -C`.
    pub ignore_checksums: bool,
    /// Scripts the test loads (`@load` in the test file, or script names on the command line).
    pub scripts: Vec<String>,
    /// Scripts we cannot translate into analyzers (reported, otherwise ignored).
    pub unknown_scripts: Vec<String>,
    /// The test file's `redef` lines.
    pub redefs: String,
    pub assertions: Vec<Assertion>,
    pub baselines: Vec<Baseline>,
    /// Zeek's full-mode logs with real timestamps (`zeek-default/*.log`).
    pub default_logs: Vec<PathBuf>,
}

/// A baseline log file of a case.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub file: PathBuf,
    /// A run with other settings produced it (`conn.ignore_checksums_nets.log`).
    pub variant: Option<&'static Variant>,
}

/// A baseline that came from a second Zeek run with an extra setting, and the node flags that reproduce it.
#[derive(Debug)]
pub struct Variant {
    /// The middle part of the file name: `conn.<name>.log`.
    pub name: &'static str,
    pub ignore_checksums: bool,
    pub why: &'static str,
}

/// `bad-chksum`'s second baseline ran with `ignore_checksums_nets += {192.168.0.0/16}`; every packet of that trace
/// has a 192.168 endpoint, so `-C` is the same setting there.
pub static VARIANTS: &[Variant] = &[Variant {
    name: "ignore_checksums_nets",
    ignore_checksums: true,
    why: "ignore_checksums_nets covers every packet of the trace, so -C is equivalent",
}];

/// A file the test asserts is (or is not) written, from cmd.txt's "extra assertions" (`test ! -f weird.log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub file: String,
    pub must_exist: bool,
}

impl Assertion {
    pub fn describe(&self) -> String {
        format!("{} {}", self.file, if self.must_exist { "exists" } else { "is not written" })
    }
}

/// The node settings of one run; runs with equal settings are shared between baselines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunSettings {
    pub ignore_checksums: bool,
    /// `--analyzers`; `None` = all (full mode).
    pub analyzers: Option<Vec<String>>,
    /// A policy script's detection: `--detect NAME` with this `--detect-config` YAML (written into the log
    /// folder as `detect.yaml`).
    pub detection: Option<(String, String)>,
}

/// The detection a policy script stands for, with its settings from the test's redefs.
fn detection_for(scripts: &[String], redefs: &str) -> Option<(String, String)> {
    if !scripts.iter().any(|s| s == "protocols/ssh/detect-bruteforcing") {
        return None;
    }
    let limit = redefs
        .split("SSH::password_guesses_limit")
        .nth(1)
        .and_then(|rest| rest.trim_start_matches([' ', '=']).split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(30);
    Some(("ssh-bruteforce".into(), format!("ssh:\n  password_guesses_limit: {limit}\n")))
}

impl RunSettings {
    /// The node's command-line arguments for this run.
    pub fn args(&self, pcap: &Path, logdir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-r".into(), pcap.into(), "--logdir".into(), logdir.into()];
        if self.ignore_checksums {
            args.push("-C".into());
        }
        if let Some(list) = &self.analyzers {
            args.push("--analyzers".into());
            args.push(list.join(",").into());
        }
        if let Some((name, _)) = &self.detection {
            args.extend(["--detect".into(), name.into(), "--detect-config".into(), logdir.join("detect.yaml").into()]);
        }
        args
    }

    /// A short folder name for this run's output.
    pub fn label(&self) -> String {
        let analyzers = match &self.analyzers {
            Some(list) if list.is_empty() => "none".to_owned(),
            Some(list) => list.join("+"),
            None => "all".to_owned(),
        };
        let detect = self.detection.as_ref().map(|(name, _)| format!("+{name}")).unwrap_or_default();
        format!("{}{}{}", analyzers, detect, if self.ignore_checksums { "-C" } else { "" })
    }

    /// The arguments as a shell would show them (for the report).
    pub fn display(&self) -> String {
        let mut s = String::from("zeek-node -r <pcap> --logdir <dir>");
        if self.ignore_checksums {
            s.push_str(" -C");
        }
        if let Some(list) = &self.analyzers {
            s.push_str(" --analyzers ");
            s.push_str(&list.join(","));
        }
        if let Some((name, _)) = &self.detection {
            s.push_str(&format!(" --detect {name} --detect-config <dir>/detect.yaml"));
        }
        s
    }
}

impl Case {
    /// Reads a case folder. Returns `None` for folders without a cmd.txt or a trace.
    pub fn load(dir: &Path) -> Option<Case> {
        let cmd = std::fs::read_to_string(dir.join("cmd.txt")).ok()?;
        let pcap = find_trace(dir)?;
        let name = dir.file_name()?.to_string_lossy().into_owned();
        let scripts = loaded_scripts(&cmd);
        let unknown_scripts = scripts.iter().filter(|s| analyzers_for_script(s).is_none()).cloned().collect::<Vec<_>>();
        Some(Case {
            name,
            dir: dir.to_path_buf(),
            pcap,
            bare: setting(&cmd, "bare mode (-b)").is_some_and(|v| v.starts_with("YES")),
            ignore_checksums: setting(&cmd, "checksums ignored (-C)").is_some_and(|v| v.starts_with("YES")),
            redefs: setting(&cmd, "redefs in test file").unwrap_or_default().to_owned(),
            scripts,
            unknown_scripts,
            assertions: setting(&cmd, "extra assertions in test").map(parse_assertions).unwrap_or_default(),
            baselines: log_files(dir).into_iter().map(|file| Baseline { variant: variant_of(&file), file }).collect(),
            default_logs: log_files(&dir.join("zeek-default")),
        })
    }

    /// The run that reproduces the btest command: bare mode enables only the loaded scripts' analyzers.
    pub fn baseline_run(&self) -> RunSettings {
        let analyzers = self.bare.then(|| analyzers_for_scripts(&self.scripts));
        let detection = detection_for(&self.scripts, &self.redefs);
        RunSettings { ignore_checksums: self.ignore_checksums, analyzers, detection }
    }

    /// The run that produced one baseline file.
    pub fn run_for(&self, baseline: &Baseline) -> RunSettings {
        let mut run = self.baseline_run();
        if let Some(variant) = baseline.variant {
            run.ignore_checksums |= variant.ignore_checksums;
        }
        run
    }

    /// The run matching `zeek-default/`: all analyzers, the case's `-C`.
    pub fn default_run(&self) -> RunSettings {
        RunSettings { ignore_checksums: self.ignore_checksums, analyzers: None, detection: None }
    }
}

/// The value of a `key: value` line of cmd.txt.
fn setting<'a>(cmd: &'a str, key: &str) -> Option<&'a str> {
    cmd.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

fn find_trace(dir: &Path) -> Option<PathBuf> {
    let mut traces: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    traces.sort();
    traces.into_iter().next()
}

/// The `*.log` files directly in `dir`, sorted.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn variant_of(file: &Path) -> Option<&'static Variant> {
    let stem = file.file_stem()?.to_str()?;
    let (_, variant) = stem.split_once('.')?;
    VARIANTS.iter().find(|v| v.name == variant)
}

/// Scripts loaded by the test file (`@load in test file: a, b`) plus script names given on the first command line
/// (`zeek -b -r x.pcap base/protocols/dns`).
fn loaded_scripts(cmd: &str) -> Vec<String> {
    let mut scripts: Vec<String> = setting(cmd, "@load in test file")
        .filter(|v| *v != "-")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if let Some(command) = first_command(cmd) {
        let on_command_line = command.split_whitespace().filter(|t| is_script_name(t)).map(str::to_owned);
        scripts.extend(on_command_line);
    }
    scripts.dedup();
    scripts
}

fn first_command(cmd: &str) -> Option<&str> {
    let mut lines = cmd.lines().skip_while(|l| !l.starts_with("exact @TEST-EXEC"));
    lines.next()?;
    lines.next().map(str::trim)
}

fn is_script_name(token: &str) -> bool {
    ["base/", "policy/", "protocols/", "frameworks/"].iter().any(|p| token.starts_with(p))
}

fn parse_assertions(text: &str) -> Vec<Assertion> {
    text.split('|')
        .filter_map(|clause| {
            let words: Vec<&str> = clause.split_whitespace().collect();
            match words.as_slice() {
                ["test", "!", "-f" | "-e", file] => Some(Assertion { file: (*file).to_owned(), must_exist: false }),
                ["test", "-f" | "-e", file] => Some(Assertion { file: (*file).to_owned(), must_exist: true }),
                _ => None,
            }
        })
        .collect()
}

/// The node's `--analyzers` names that a Zeek script enables; `None` for a script we do not know.
///
/// Names are the node's (`tunnels` is its alias of the `tunnel` stream). A protocol script brings what it loads:
/// http, ftp, smtp and ssl load the files framework (files.log; the bare `smtp-basic` case has one), ftp loads its data
/// channel analyzer, ssl and quic load weird.log, http loads `base/frameworks/tunnels` (in its main.zeek) and
/// weird.log (the bare `http-no-crlf` case, which loads only conn and http, has a weird.log baseline).
pub fn analyzers_for_script(script: &str) -> Option<&'static [&'static str]> {
    let script = script.trim_end_matches(".zeek").trim_start_matches("policy/");
    let analyzers: &'static [&'static str] = match script {
        "base/protocols/conn" => &["conn"],
        "base/protocols/dns" => &["dns"],
        "base/protocols/http" => &["files", "http", "tunnels", "weird"],
        // ssl's main.zeek loads the weird framework and files.zeek the files framework (stapled OCSP responses).
        "base/protocols/ssl" => &["files", "ssl", "weird"],
        // x509.log comes from the TLS analyzer; the script itself brings the files framework.
        "base/files/x509" | "base/frameworks/files" => &["files"],
        // quic's main.zeek loads the weird framework.
        "base/protocols/quic" => &["quic", "weird"],
        "base/protocols/ssh" => &["ssh"],
        "base/protocols/ftp" => &["files", "ftp", "ftp-data"],
        "base/protocols/smtp" => &["files", "smtp"],
        "base/protocols/pop3" => &["pop3"],
        "base/protocols/imap" => &["imap"],
        "base/protocols/irc" => &["irc"],
        "base/protocols/xmpp" => &["xmpp"],
        "base/protocols/dhcp" => &["dhcp"],
        "base/protocols/ntp" => &["ntp"],
        "base/protocols/syslog" => &["syslog"],
        "base/protocols/snmp" => &["snmp"],
        "base/protocols/radius" => &["radius"],
        "base/protocols/sip" => &["sip"],
        "base/protocols/rfb" => &["rfb"],
        "base/protocols/mysql" => &["mysql"],
        "base/protocols/postgresql" => &["postgresql"],
        "base/protocols/tunnels" | "base/frameworks/tunnels" => &["tunnels"],
        "base/frameworks/notice/weird" => &["weird"],
        // The policy script loads base/protocols/ssh; its notice comes from the node's SSH analysis if at all.
        "protocols/ssh/detect-bruteforcing" => &["ssh"],
        // Only adds analyzer_debug.log, which is no oracle.
        "frameworks/analyzer/debug-logging" => &[],
        _ => return None,
    };
    Some(analyzers)
}

/// The sorted, de-duplicated analyzer list for a set of scripts (unknown scripts contribute nothing).
pub fn analyzers_for_scripts(scripts: &[String]) -> Vec<String> {
    let mut list: Vec<String> =
        scripts.iter().filter_map(|s| analyzers_for_script(s)).flatten().map(|a| (*a).to_owned()).collect();
    list.sort();
    list.dedup();
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMD: &str = "case: x (dev)\n\
exact @TEST-EXEC command(s) that produced the logs:\n  zeek -b -r $TRACES/dns53.pcap base/protocols/dns\n\n\
bare mode (-b): YES\nchecksums ignored (-C): no\n@load in test file: -\n\
extra assertions in test: test ! -f weird.log | test -f analyzer.log\n";

    #[test]
    fn reads_settings_scripts_and_assertions() {
        assert_eq!(setting(CMD, "bare mode (-b)"), Some("YES"));
        assert_eq!(setting(CMD, "checksums ignored (-C)"), Some("no"));
        assert_eq!(loaded_scripts(CMD), ["base/protocols/dns"]);
        assert_eq!(
            parse_assertions(setting(CMD, "extra assertions in test").unwrap()),
            [
                Assertion { file: "weird.log".into(), must_exist: false },
                Assertion { file: "analyzer.log".into(), must_exist: true }
            ]
        );
    }

    #[test]
    fn maps_scripts_to_analyzers() {
        let scripts: Vec<String> =
            ["base/frameworks/tunnels", "base/protocols/conn", "base/protocols/dns", "base/frameworks/notice/weird"]
                .map(String::from)
                .to_vec();
        assert_eq!(analyzers_for_scripts(&scripts), ["conn", "dns", "tunnels", "weird"]);
        assert!(analyzers_for_script("base/protocols/unheard-of").is_none());
        assert_eq!(analyzers_for_script("base/protocols/ssl"), Some(&["files", "ssl", "weird"][..]));
        assert_eq!(analyzers_for_script("base/protocols/quic"), Some(&["quic", "weird"][..]));
        assert_eq!(analyzers_for_script("frameworks/analyzer/debug-logging.zeek"), Some(&[][..]));
    }

    #[test]
    fn run_arguments() {
        let run =
            RunSettings { ignore_checksums: true, analyzers: Some(vec!["conn".into(), "dns".into()]), detection: None };
        let args = run.args(Path::new("t.pcap"), Path::new("out"));
        assert_eq!(args, ["-r", "t.pcap", "--logdir", "out", "-C", "--analyzers", "conn,dns"].map(OsString::from));
        assert_eq!(run.label(), "conn+dns-C");
    }

    #[test]
    fn every_oracle_case_loads_with_known_scripts() {
        let Some(root) = crate::oracle_root() else { return };
        for case in crate::load_cases(&root) {
            assert!(!case.baselines.is_empty(), "{} has no baseline", case.name);
            assert!(case.unknown_scripts.is_empty(), "{}: unknown scripts {:?}", case.name, case.unknown_scripts);
            if case.bare {
                let analyzers = case.baseline_run().analyzers.unwrap_or_default();
                assert!(!analyzers.is_empty(), "{}: bare case without analyzers", case.name);
            }
        }
    }

    #[test]
    fn ssh_bruteforcing_policy_runs_the_detection_with_the_redef_limit() {
        let scripts = vec!["protocols/ssh/detect-bruteforcing".to_string()];
        let (name, config) = detection_for(&scripts, "redef SSH::password_guesses_limit=10;").expect("detection");
        assert_eq!(name, "ssh-bruteforce");
        assert_eq!(config, "ssh:\n  password_guesses_limit: 10\n");
        assert!(detection_for(&["base/protocols/ssh".to_string()], "").is_none());
        assert!(detection_for(&scripts, "").expect("default").1.contains(": 30"));
    }
}
