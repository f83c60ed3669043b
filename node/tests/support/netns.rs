//! Two network namespaces joined by a veth pair, for tests that need a real link (live capture, link cuts).
//! Needs root and `ip`. Nothing outside the namespaces is touched; `Drop` removes them, even on failure.

use std::process::{Command, Output, Stdio};

pub struct VethPair {
    pub a_ns: String,
    pub b_ns: String,
    pub a_iface: String,
    pub b_iface: String,
}

impl VethPair {
    /// `tag` (a few letters) tells the tests' namespaces apart; the pid tells parallel runs apart.
    pub fn create(tag: &str) -> Result<Self, String> {
        let pid = std::process::id();
        let net = VethPair {
            a_ns: format!("zn-{tag}a-{pid}"),
            b_ns: format!("zn-{tag}b-{pid}"),
            // Interface names are limited to 15 bytes.
            a_iface: format!("z{tag}a{}", pid % 1_000_000),
            b_iface: format!("z{tag}b{}", pid % 1_000_000),
        };
        // From here on Drop removes whatever was made.
        for ns in [&net.a_ns, &net.b_ns] {
            run("ip", &["netns", "add", ns])?;
            // No IPv6 on the new links, so the kernel sends no router/neighbour solicitations into a capture.
            for key in ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"] {
                net.exec(ns, &["sysctl", "-qw", key])?;
            }
            net.exec(ns, &["ip", "link", "set", "lo", "up"])?;
        }
        let (a_ns, b_ns) = (net.a_ns.as_str(), net.b_ns.as_str());
        let (a_iface, b_iface) = (net.a_iface.as_str(), net.b_iface.as_str());
        net.exec(a_ns, &["ip", "link", "add", a_iface, "type", "veth", "peer", "name", b_iface, "netns", b_ns])?;
        net.set_link(a_ns, a_iface, true)?;
        net.set_link(b_ns, b_iface, true)?;
        Ok(net)
    }

    /// Gives each end an address (CIDR notation, e.g. `192.0.2.1/24`).
    pub fn address(&self, a: &str, b: &str) -> Result<(), String> {
        self.exec(&self.a_ns, &["ip", "addr", "add", a, "dev", &self.a_iface])?;
        self.exec(&self.b_ns, &["ip", "addr", "add", b, "dev", &self.b_iface])
    }

    /// Brings an interface of one of the namespaces up or down.
    pub fn set_link(&self, ns: &str, iface: &str, up: bool) -> Result<(), String> {
        self.exec(ns, &["ip", "link", "set", iface, if up { "up" } else { "down" }])
    }

    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<(), String> {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(argv);
        run("ip", &args)
    }

    /// A command that runs `program` inside namespace `ns` (`ip netns exec` execs it: same pid).
    pub fn command(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the peer.
        for ns in [&self.a_ns, &self.b_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out: Output = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Why a namespace test cannot run here (not root, a tool missing), or `None`.
pub fn missing_prerequisite(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    tools
        .iter()
        .find(|tool| Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err())
        .map(|tool| format!("{tool} is not installed (scripts/setup.sh installs it)"))
}

/// Skips loudly, or fails when `ZEEK_LIVE_REQUIRED=1` (CI runs as root with the tools installed).
pub fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var("ZEEK_LIVE_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("{test} required (ZEEK_LIVE_REQUIRED=1) but {reason}");
    }
    eprintln!("\n*** {test}: SKIPPED: {reason} (set ZEEK_LIVE_REQUIRED=1 to make this a failure) ***\n");
}
