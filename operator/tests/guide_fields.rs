//! The field reference in docs/OPERATOR-GUIDE.md is generated from the CRD (descriptions, types, defaults and
//! validation messages of `zeek_crds::crd()`), between the two GENERATED markers. This test fails when it is
//! stale; `ZEEK_UPDATE_DOCS=1 cargo test -p zeek-operator --test guide_fields` rewrites it.

use std::fmt::Write;
use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

const BEGIN: &str =
    "<!-- BEGIN GENERATED FIELDS: ZEEK_UPDATE_DOCS=1 cargo test -p zeek-operator --test guide_fields -->";
const END: &str = "<!-- END GENERATED FIELDS -->";

/// Fields whose type is a standard Kubernetes type: named, not expanded (`kubectl explain` has them).
const KUBERNETES_TYPES: &[(&str, &str)] = &[
    ("resources", "ResourceRequirements"),
    ("tolerations", "[]Toleration"),
    ("imagePullSecrets", "[]LocalObjectReference"),
    ("conditions", "[]Condition"),
];

fn guide_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATOR-GUIDE.md")
}

#[test]
fn guide_field_reference_matches_the_crd() {
    let generated = field_reference();
    let path = guide_path();
    let guide = std::fs::read_to_string(&path).expect("docs/OPERATOR-GUIDE.md exists");
    let (Some(start), Some(end)) = (guide.find(BEGIN), guide.find(END)) else {
        panic!("docs/OPERATOR-GUIDE.md lacks the markers {BEGIN} … {END}");
    };
    let current = &guide[start + BEGIN.len()..end];
    if std::env::var_os("ZEEK_UPDATE_DOCS").is_some() {
        let updated = format!("{}{BEGIN}{generated}{END}{}", &guide[..start], &guide[end + END.len()..]);
        std::fs::write(&path, updated).expect("write docs/OPERATOR-GUIDE.md");
        return;
    }
    assert!(
        current == generated,
        "the field reference in docs/OPERATOR-GUIDE.md is out of date with the CRD; regenerate it with \
         `ZEEK_UPDATE_DOCS=1 cargo test -p zeek-operator --test guide_fields`"
    );
}

/// The Markdown between the markers: one table for the spec, one for the status.
fn field_reference() -> String {
    let crd = zeek_crds::crd();
    let root = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("a schema");
    let mut out = String::from("\n");
    for (section, title) in [("spec", "Spec (what you write)"), ("status", "Status (what the operator reports)")] {
        let schema = root.properties.as_ref().and_then(|p| p.get(section)).expect("spec and status");
        let mut rows = Vec::new();
        collect_rows(section, schema, &mut rows);
        writeln!(out, "\n#### {title}\n\n| field | type | default | description |\n|---|---|---|---|").unwrap();
        for row in rows {
            writeln!(out, "{row}").unwrap();
        }
    }
    out.push('\n');
    out
}

/// One table row per property below `schema`, depth first, in the schema's (alphabetical) order.
fn collect_rows(path: &str, schema: &JSONSchemaProps, rows: &mut Vec<String>) {
    let Some(properties) = &schema.properties else { return };
    let required = schema.required.as_deref().unwrap_or_default();
    for (name, child) in properties {
        let field_path = format!("{path}.{name}");
        let kubernetes_type = KUBERNETES_TYPES.iter().find(|(n, _)| n == name).map(|(_, t)| t.to_string());
        let mut type_name = kubernetes_type.clone().unwrap_or_else(|| type_of(child));
        if required.contains(name) {
            type_name.push_str(", required");
        }
        rows.push(format!(
            "| `{field_path}` | {} | {} | {} |",
            cell(&type_name),
            child.default.as_ref().map(|d| format!("`{}`", d.0)).unwrap_or_default(),
            cell(&description(child))
        ));
        if kubernetes_type.is_some() {
            continue;
        }
        collect_rows(&field_path, child, rows);
        if let Some(JSONSchemaPropsOrArray::Schema(items)) = &child.items {
            collect_rows(&format!("{field_path}[]"), items, rows);
        }
    }
}

fn type_of(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "int or string".into();
    }
    match schema.type_.as_deref() {
        Some("array") => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => format!("[]{}", type_of(items)),
            _ => "[]".into(),
        },
        Some("object") => match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(values)) => format!("map[string]{}", type_of(values)),
            _ => "object".into(),
        },
        Some("string") if schema.enum_.is_some() => {
            let values: Vec<String> =
                schema.enum_.iter().flatten().map(|v| v.0.as_str().unwrap_or_default().to_string()).collect();
            format!("string: {}", values.join(", "))
        }
        Some(other) => other.into(),
        None => "any".into(),
    }
}

/// The field's description, then its validation messages.
fn description(schema: &JSONSchemaProps) -> String {
    let mut text = schema.description.clone().unwrap_or_default();
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        if let Some(message) = &rule.message {
            write!(text, "\n*Rule:* {message}").unwrap();
        }
    }
    text
}

/// Text made safe for one Markdown table cell.
fn cell(text: &str) -> String {
    text.trim().replace('|', "\\|").replace("\n\n", "<br>").replace('\n', "<br>")
}
