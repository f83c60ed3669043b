//! `zeek-node ctl status | peers | netstats`: zeekctl-like queries against a running cluster, over the manager's
//! gRPC `Status` call.

use std::path::PathBuf;

use anyhow::Context as _;

use super::layout::{Layout, join_host_port};
use super::link::endpoint;
use super::proto::{MAX_FRAME_BYTES, pb};
use super::role::Role;
use super::tls;

#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    #[command(subcommand)]
    pub command: CtlCmd,
    /// The manager's address (default: from --layout).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub manager: Option<String>,
    /// The cluster layout: the manager's address and the TLS files to authenticate with.
    #[arg(long, global = true, value_name = "FILE")]
    pub layout: Option<PathBuf>,
    /// Talk to a cluster that runs without mTLS.
    #[arg(long, global = true)]
    pub insecure: bool,
}

#[derive(clap::Subcommand, Debug, Clone, Copy)]
pub enum CtlCmd {
    /// The membership view: every node, its role and address.
    Status,
    /// The manager's links: when each peer was last heard, queued log records.
    Peers,
    /// Packets, bytes and drops per worker.
    Netstats,
}

/// Asks a node for its status.
pub async fn fetch_status(addr: &str, tls: Option<&tls::TlsSettings>) -> anyhow::Result<pb::StatusReply> {
    let channel = endpoint(addr, tls)?.connect().await.with_context(|| format!("connecting to {addr}"))?;
    let mut client = pb::cluster_client::ClusterClient::new(channel).max_decoding_message_size(MAX_FRAME_BYTES);
    Ok(client.status(pb::StatusRequest {}).await?.into_inner())
}

pub fn ctl(args: CtlArgs) -> anyhow::Result<()> {
    let layout = args.layout.as_deref().map(Layout::load).transpose()?;
    let manager = match (&args.manager, &layout) {
        (Some(m), _) => m.clone(),
        (None, Some(l)) => join_host_port(&l.manager.host, l.manager.port),
        (None, None) => anyhow::bail!("give --manager HOST:PORT or --layout FILE"),
    };
    let tls = tls::resolve(layout.as_ref().and_then(|l| l.tls.as_ref()), args.insecure)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let reply = runtime.block_on(fetch_status(&manager, tls.as_ref()))?;
    let text = match args.command {
        CtlCmd::Status => format_status(&reply),
        CtlCmd::Peers => format_peers(&reply),
        CtlCmd::Netstats => format_netstats(&reply),
    };
    print!("{text}");
    Ok(())
}

fn role_name(r: i32) -> &'static str {
    Role::from_pb(r).map_or("?", Role::as_str)
}

pub fn format_status(r: &pb::StatusReply) -> String {
    let view = r.view.clone().unwrap_or_default();
    let mut out = format!(
        "cluster {}  view epoch {}  {}\n",
        r.cluster,
        view.epoch,
        if view.ready { "ready" } else { "starting (readiness barrier not passed)" }
    );
    out.push_str(&format!("{:<20} {:<8} {:<24} {}\n", "Name", "Type", "Address", "Status"));
    for m in &view.members {
        let peer = r.peers.iter().find(|p| p.name == m.name);
        let linked = m.name == r.node || peer.is_some_and(|p| p.linked);
        let capturing = peer.and_then(|p| p.stats).is_some_and(|s| s.capturing);
        let status = match (linked, capturing) {
            (true, true) => "running, capturing",
            (true, false) => "running",
            (false, _) => "member (no link to the manager)",
        };
        out.push_str(&format!("{:<20} {:<8} {:<24} {status}\n", m.name, role_name(m.role), m.advertise));
    }
    out
}

pub fn format_peers(r: &pb::StatusReply) -> String {
    let mut out = format!("{} ({}) peers:\n", r.node, role_name(r.role));
    out.push_str(&format!("{:<20} {:<8} {:<7} {:>12} {:>14}\n", "Name", "Type", "Linked", "Heard (s)", "Unacked logs"));
    for p in &r.peers {
        let stats = p.stats.unwrap_or_default();
        let heard = if p.last_heard_secs < 0.0 { "-".to_string() } else { format!("{:.1}", p.last_heard_secs) };
        out.push_str(&format!(
            "{:<20} {:<8} {:<7} {:>12} {:>14}\n",
            p.name,
            role_name(p.role),
            if p.linked { "yes" } else { "no" },
            heard,
            stats.unacked_records
        ));
    }
    out
}

pub fn format_netstats(r: &pb::StatusReply) -> String {
    let mut out = String::new();
    for p in r.peers.iter().filter(|p| Role::from_pb(p.role) == Some(Role::Worker)) {
        let s = p.stats.unwrap_or_default();
        // Zeek's capture-loss estimate (gaps per ack) beside the capture's own drops: loss before the capture (a
        // SPAN port, the NIC) shows only there.
        let loss = crate::engine::capture_loss_percent(s.tcp_ack_events, s.tcp_gap_events)
            .map_or_else(|| "-".to_string(), |pct| format!("{pct:.3}%"));
        out.push_str(&format!(
            "{:>12}: packets={} bytes={} dropped={} connections={} log_records={} capture_loss={loss}\n",
            p.name, s.packets, s.bytes, s.dropped, s.connections, s.log_records
        ));
    }
    if out.is_empty() {
        out.push_str("no workers\n");
    }
    out
}
