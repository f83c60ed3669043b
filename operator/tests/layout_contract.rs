//! The layout the operator renders (pinned by the golden file of the builders) is one the node reads.

use zeek_node::cluster::layout::Layout;

#[test]
fn the_node_reads_the_rendered_layout() {
    let rendered = include_str!("../src/build/golden/production-layout.yaml");
    let layout = Layout::parse(rendered).expect("zeek-node accepts the operator's layout");
    assert_eq!(layout.cluster, "demo");
    assert_eq!(layout.manager.name, "demo-manager-0");
    assert_eq!(layout.manager.host, "demo-manager-0.demo-manager.monitoring.svc.cluster.local");
    assert_eq!(layout.nodes.len(), 2, "the loggers");
    assert!(layout.tls.is_some(), "node links use mTLS");
    assert_eq!(layout.analysis.bpf_filter.as_deref(), Some("not port 22"));
    assert_eq!(layout.analysis.thresholds.len(), 2);
    assert_eq!(layout.logging.retention, "14d");
}
