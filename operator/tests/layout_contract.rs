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
    assert_eq!(layout.analysis.detections.as_deref(), Some(&["local".to_string()][..]));
    assert_eq!(layout.logging.retention, "14d");
}

/// The CRD's rule for `spec.detections` names what the node's `--detect` accepts, no more and no less: the API
/// server refuses a name the nodes would stop on, and accepts every one they take.
#[test]
fn the_crd_accepts_the_detections_the_node_knows() {
    let rule = zeek_crds::v1alpha1::rules::DETECTION_NAMES;
    let list = &rule[rule.find('[').unwrap() + 1..rule.rfind(']').unwrap()];
    let in_rule: Vec<&str> = list.split(',').map(|n| n.trim().trim_matches('\'')).collect();
    assert_eq!(in_rule, zeek_node::detect::accepted_names());
    for name in &in_rule {
        assert!(zeek_crds::v1alpha1::rules::DETECTION_NAMES_MESSAGE.contains(name), "the message names {name}");
    }
}
