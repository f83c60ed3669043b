//! The `ZeekCluster` custom resource.
//!
//! One `ZeekCluster` object describes one Zeek-style monitoring cluster: a manager, optional loggers,
//! scalable proxies and one worker per capture host. The operator (crate `zeek-operator`) turns it into
//! Kubernetes workloads; this crate only holds the API: the Rust types, their schema (documentation,
//! defaults, CEL validation rules) and the generated `CustomResourceDefinition`.
//!
//! The generated manifest is committed as `crds/zeekcluster.yaml`; a test fails when it drifts from the
//! types. Regenerate it with `ZEEK_UPDATE_CRD=1 cargo test -p zeek-crds --test crd_manifest` or
//! `zeek-operator crd > crds/zeekcluster.yaml`.

pub mod v1alpha1;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

/// The API group of every resource in this crate.
pub const API_GROUP: &str = "zeek.io";

/// Where the committed CRD manifest lives, relative to the workspace root.
pub const CRD_MANIFEST_PATH: &str = "crds/zeekcluster.yaml";

/// The `CustomResourceDefinition` of `ZeekCluster`, as the operator installs it.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = v1alpha1::ZeekCluster::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            unwrap_descriptions(schema);
        }
    }
    crd
}

/// Doc comments keep their source line breaks; `kubectl explain` re-wraps text itself, so a break inside
/// a paragraph shows up as a ragged line. Joins the lines of each paragraph, keeping list items apart.
fn unwrap_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(description) = &mut schema.description {
        *description = unwrap_paragraphs(description);
    }
    let mut children: Vec<&mut JSONSchemaProps> = Vec::new();
    children.extend(schema.properties.iter_mut().flat_map(|p| p.values_mut()));
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => children.push(items),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => children.extend(items.iter_mut()),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &mut schema.additional_properties {
        children.push(values);
    }
    for alternatives in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of] {
        children.extend(alternatives.iter_mut().flatten());
    }
    children.into_iter().for_each(unwrap_descriptions);
}

fn unwrap_paragraphs(text: &str) -> String {
    let starts_list_item = |line: &str| {
        let line = line.trim_start();
        line.starts_with("* ")
            || line.starts_with("- ")
            || line.split_once(". ").is_some_and(|(n, _)| n.parse::<u32>().is_ok())
    };
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            let previous_blank = out.ends_with('\n') || out.is_empty();
            if line.trim().is_empty() || previous_blank || starts_list_item(line) {
                out.push('\n');
            } else {
                out.push(' ');
            }
        }
        out.push_str(if line.trim().is_empty() { "" } else { line.trim_end() });
    }
    out
}

/// The CRD as the YAML document committed in `crds/zeekcluster.yaml`.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let body = serde_saphyr::to_string(&crd())?;
    Ok(format!(
        "# Generated from the zeek-crds crate: do not edit by hand.\n\
         # Regenerate with `zeek-operator crd > {CRD_MANIFEST_PATH}`.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::unwrap_paragraphs;

    #[test]
    fn paragraphs_are_joined_and_lists_kept() {
        assert_eq!(unwrap_paragraphs("one\ntwo\n\nthree"), "one two\n\nthree");
        assert_eq!(unwrap_paragraphs("Values:\n* a\n* b"), "Values:\n* a\n* b");
        assert_eq!(unwrap_paragraphs("Steps:\n1. a\n2. b"), "Steps:\n1. a\n2. b");
    }
}
