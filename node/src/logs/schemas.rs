//! Schemas of the core logs (conn, weird, tunnel, analyzer, files, pe). Each protocol analyzer owns its own schema
//! next to its parser; [`schema_by_path`] finds any of them by `#path`.

use std::net::IpAddr;

use super::{LogRecord, Schema, Value, conn_fields, f};

pub static CONN: Schema = Schema {
    path: "conn",
    fields: conn_fields![
        f("proto", "enum"),
        f("service", "string"),
        f("duration", "interval"),
        f("orig_bytes", "count"),
        f("resp_bytes", "count"),
        f("conn_state", "string"),
        f("local_orig", "bool"),
        f("local_resp", "bool"),
        f("missed_bytes", "count"),
        f("history", "string"),
        f("orig_pkts", "count"),
        f("orig_ip_bytes", "count"),
        f("resp_pkts", "count"),
        f("resp_ip_bytes", "count"),
        f("tunnel_parents", "set[string]"),
        f("ip_proto", "count"),
    ],
};

pub static WEIRD: Schema = Schema {
    path: "weird",
    fields: conn_fields![
        f("name", "string"),
        f("addl", "string"),
        f("notice", "bool"),
        f("peer", "string"),
        f("source", "string"),
    ],
};

/// A weird.log record without a connection (Zeek's `net_weird`, or `flow_weird` with the two hosts, ports 0),
/// written by node `peer`.
pub fn net_weird_record(
    ts: f64,
    name: &str,
    addl: Option<String>,
    peer: &str,
    source: Option<&str>,
    flow: Option<(IpAddr, IpAddr)>,
) -> LogRecord {
    let mut v = vec![Value::Time(ts), Value::Unset];
    match flow {
        Some((src, dst)) => v.extend([Value::Addr(src), Value::Port(0), Value::Addr(dst), Value::Port(0)]),
        None => v.extend([Value::Unset, Value::Unset, Value::Unset, Value::Unset]),
    }
    v.extend([Value::str(name), Value::opt_str(addl), Value::Bool(false), Value::str(peer)]);
    v.push(source.map_or(Value::Unset, Value::str));
    LogRecord::new(&WEIRD, v)
}

pub static TUNNEL: Schema =
    Schema { path: "tunnel", fields: conn_fields![f("tunnel_type", "enum"), f("action", "enum"),] };

/// analyzer.log (Zeek 8+): protocol analyzers that failed after their confirmation.
pub static ANALYZER: Schema = Schema {
    path: "analyzer",
    fields: &[
        f("ts", "time"),
        f("analyzer_kind", "string"),
        f("analyzer_name", "string"),
        f("uid", "string"),
        f("fuid", "string"),
        f("id.orig_h", "addr"),
        f("id.orig_p", "port"),
        f("id.resp_h", "addr"),
        f("id.resp_p", "port"),
        f("proto", "enum"),
        f("failure_reason", "string"),
        f("failure_data", "string"),
    ],
};

/// files.log as written with the full default scripts (hash and extract add the last six columns).
pub static FILES: Schema = Schema {
    path: "files",
    fields: &[
        f("ts", "time"),
        f("fuid", "string"),
        f("uid", "string"),
        f("id.orig_h", "addr"),
        f("id.orig_p", "port"),
        f("id.resp_h", "addr"),
        f("id.resp_p", "port"),
        f("source", "string"),
        f("depth", "count"),
        f("analyzers", "set[string]"),
        f("mime_type", "string"),
        f("filename", "string"),
        f("duration", "interval"),
        f("local_orig", "bool"),
        f("is_orig", "bool"),
        f("seen_bytes", "count"),
        f("total_bytes", "count"),
        f("missing_bytes", "count"),
        f("overflow_bytes", "count"),
        f("timedout", "bool"),
        f("parent_fuid", "string"),
        f("md5", "string"),
        f("sha1", "string"),
        f("sha256", "string"),
        f("extracted", "string"),
        f("extracted_cutoff", "bool"),
        f("extracted_size", "count"),
    ],
};

/// files.log as written in bare mode (`--analyzers` without `hash`): no hash and extraction columns.
pub static FILES_BARE: Schema = Schema { path: "files", fields: FILES.fields.split_at(21).0 };

/// pe.log (`base/files/pe`): the headers of Windows executables among the files (`analyzers/pe.rs`).
pub static PE: Schema = Schema {
    path: "pe",
    fields: &[
        f("ts", "time"),
        f("id", "string"),
        f("machine", "string"),
        f("compile_ts", "time"),
        f("os", "string"),
        f("subsystem", "string"),
        f("is_exe", "bool"),
        f("is_64bit", "bool"),
        f("uses_aslr", "bool"),
        f("uses_dep", "bool"),
        f("uses_code_integrity", "bool"),
        f("uses_seh", "bool"),
        f("has_import_table", "bool"),
        f("has_export_table", "bool"),
        f("has_cert_table", "bool"),
        f("has_debug_data", "bool"),
        f("section_names", "vector[string]"),
    ],
};

/// Every schema the node can write, so records that arrive by name (from the cluster bus) find theirs.
pub fn schema_by_path(path: &str) -> Option<&'static Schema> {
    crate::analyzers::all_schemas()
        .iter()
        .copied()
        .chain([&CONN, &WEIRD, &TUNNEL, &ANALYZER, &FILES, &PE])
        .find(|s| s.path == path)
}
