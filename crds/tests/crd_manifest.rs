//! The committed CRD manifest and the shape of the generated CRD.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zeekcluster.yaml")
}

/// Fails when `crds/zeekcluster.yaml` drifts from the Rust types; `ZEEK_UPDATE_CRD=1` rewrites it.
#[test]
fn committed_manifest_matches_the_types() {
    let generated = zeek_crds::crd_yaml().expect("CRD serializes to YAML");
    if std::env::var_os("ZEEK_UPDATE_CRD").is_some() {
        std::fs::write(manifest_path(), &generated).expect("write crds/zeekcluster.yaml");
        return;
    }
    let committed = std::fs::read_to_string(manifest_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "crds/zeekcluster.yaml is out of date with the zeek-crds types; regenerate it with \
         `ZEEK_UPDATE_CRD=1 cargo test -p zeek-crds --test crd_manifest`"
    );
}

#[test]
fn crd_names_scope_and_version() {
    let crd = zeek_crds::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("zeekclusters.zeek.io"));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["zc".to_string()]));
    assert_eq!(crd.spec.versions.len(), 1);
    assert_eq!(crd.spec.versions[0].name, "v1alpha1");
}

#[test]
fn scale_subresource_drives_proxy_replicas() {
    let crd = zeek_crds::crd();
    let subresources = crd.spec.versions[0].subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some());
    let scale = subresources.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.proxies.replicas");
    assert_eq!(scale.status_replicas_path, ".status.proxies.current");
    assert_eq!(scale.label_selector_path.as_deref(), Some(".status.proxySelector"));
}

#[test]
fn printer_columns_show_readiness_per_role() {
    let crd = zeek_crds::crd();
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .expect("printer columns")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Ready", "Manager", "Loggers", "Proxies", "Workers", "Epoch", "Paused", "Detections", "Age"]);
}

/// `kubectl explain` is only useful when every field has a description.
#[test]
fn every_field_is_documented() {
    fn walk(path: &str, schema: &JSONSchemaProps, undocumented: &mut Vec<String>) {
        for (name, child) in schema.properties.iter().flatten() {
            let child_path = format!("{path}.{name}");
            if child.description.as_deref().is_none_or(str::is_empty) {
                undocumented.push(child_path.clone());
            }
            walk(&child_path, child, undocumented);
        }
        if let Some(
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items),
        ) = &schema.items
        {
            walk(&format!("{path}[]"), items, undocumented);
        }
    }
    let crd = zeek_crds::crd();
    let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
    let mut undocumented = Vec::new();
    for root in ["spec", "status"] {
        walk(root, &schema.properties.as_ref().unwrap()[root], &mut undocumented);
    }
    assert!(undocumented.is_empty(), "fields without a description: {undocumented:#?}");
}

#[test]
fn defaults_are_in_the_schema() {
    let crd = zeek_crds::crd();
    let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
    let spec = &schema.properties.as_ref().unwrap()["spec"];
    let props = spec.properties.as_ref().unwrap();
    let workers = props["workers"].properties.as_ref().unwrap();
    assert_eq!(workers["interface"].default.as_ref().map(|d| d.0.clone()), Some(serde_json::json!("eth0")));
    assert_eq!(workers["threads"].default.as_ref().map(|d| d.0.clone()), Some(serde_json::json!(1)));
    let proxies = props["proxies"].properties.as_ref().unwrap();
    assert_eq!(proxies["replicas"].default.as_ref().map(|d| d.0.clone()), Some(serde_json::json!(1)));
}
