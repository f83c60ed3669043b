//! Log streams: schemas, records, and Zeek's TSV and JSON writers.
//!
//! Analyzers build [`LogRecord`]s against a static [`Schema`]; a [`LogSink`] decides where they go
//! (files in a directory standalone, a logger node in a cluster).

pub mod limits;
pub mod rotation;
mod schemas;
mod value;
mod writer;

pub use schemas::{ANALYZER, CONN, FILES, FILES_BARE, PE, TUNNEL, WEIRD, net_weird_record, schema_by_path};
pub use value::{Value, bytes_to_log_string, push_addr, push_log_bytes};
pub use writer::{
    DirSink, FLUSH_EVERY, LogFormat, LogSink, MemorySink, civil_from_epoch, format_header, format_header_time,
    format_record_json, format_record_tsv,
};

/// One column of a log: its name (dotted for flattened records) and its Zeek type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: &'static str,
}

/// A log stream's layout, in the field order of Zeek's default scripts.
#[derive(Debug, PartialEq, Eq)]
pub struct Schema {
    /// The `#path`: file name without `.log`.
    pub path: &'static str,
    pub fields: &'static [Field],
}

impl Schema {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// The fields of a log that starts the way most of Zeek's do, `ts`, `uid` and the connection's `id.*`, followed
/// by the log's own fields.
macro_rules! conn_fields {
    ($($rest:expr),* $(,)?) => {
        &[
            $crate::logs::f("ts", "time"),
            $crate::logs::f("uid", "string"),
            $crate::logs::f("id.orig_h", "addr"),
            $crate::logs::f("id.orig_p", "port"),
            $crate::logs::f("id.resp_h", "addr"),
            $crate::logs::f("id.resp_p", "port"),
            $($rest),*
        ]
    };
}
pub(crate) use conn_fields;

/// Shorthand for schema tables.
pub const fn f(name: &'static str, ty: &'static str) -> Field {
    Field { name, ty }
}

/// One record of one log stream. `values` lines up with `schema.fields`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub schema: &'static Schema,
    pub values: Vec<Value>,
}

impl LogRecord {
    pub fn new(schema: &'static Schema, values: Vec<Value>) -> Self {
        debug_assert_eq!(schema.fields.len(), values.len(), "record for {} has the wrong width", schema.path);
        LogRecord { schema, values }
    }

    /// The record's `ts` (first column), used to order writes and rotate files.
    pub fn ts(&self) -> f64 {
        match self.values.first() {
            Some(Value::Time(t)) => *t,
            _ => 0.0,
        }
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.schema.field_index(field).map(|i| &self.values[i])
    }
}
