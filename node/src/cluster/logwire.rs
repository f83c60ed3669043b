//! Log records on the wire: a batch groups rows by `#path`, each row a list of typed values. The receiving logger
//! finds the schema by path, so field names and types never travel.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use super::data::{DataError, addr_from_bytes, addr_to_bytes, port_from_pb, subnet_from_pb, subnet_to_pb};
use super::proto::pb;
use crate::logs::{LogRecord, Schema, Value, f, schema_by_path};

/// Zeek's cluster.log: node joins, leaves and view changes, written by the manager.
pub static CLUSTER_LOG: Schema =
    Schema { path: "cluster", fields: &[f("ts", "time"), f("node", "string"), f("message", "string")] };

/// Streams the cluster runtime and the detections write, besides the analyzers' own.
static CLUSTER_SCHEMAS: &[&Schema] = &[
    &CLUSTER_LOG,
    &super::testkit::TEST_LOG,
    &crate::detect::notice::NOTICE_LOG,
    &crate::detect::intel::INTEL_LOG,
    &crate::detect::software::SOFTWARE_LOG,
    &crate::detect::software::KNOWN_HOSTS_LOG,
    &crate::detect::software::KNOWN_SERVICES_LOG,
    &crate::detect::dns_stats::DNS_QTYPE_LOG,
];

/// The schema of a stream by its `#path`, known to every node of the same build.
pub fn schema_for(path: &str) -> Option<&'static Schema> {
    schema_by_path(path).or_else(|| CLUSTER_SCHEMAS.iter().copied().find(|s| s.path == path))
}

/// Enum values arriving from peers become `&'static str` (what [`Value::Enum`] holds). A peer could send endless
/// distinct names, so the table is capped: past the cap, a new name is refused instead of leaking memory.
const MAX_ENUM_NAMES: usize = 4096;
static ENUM_NAMES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn intern_enum(name: &str) -> Result<&'static str, DataError> {
    let mut names = ENUM_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name) {
        return Ok(n);
    }
    if names.len() >= MAX_ENUM_NAMES {
        return Err(DataError(format!("more than {MAX_ENUM_NAMES} distinct enum values")));
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    Ok(leaked)
}

pub fn value_to_pb(v: &Value) -> pb::Data {
    use pb::data::Kind;
    let items = |v: &[Value]| pb::DataList { items: v.iter().map(value_to_pb).collect() };
    let kind = match v {
        Value::Unset => None,
        Value::Bool(b) => Some(Kind::Bool(*b)),
        Value::Count(c) => Some(Kind::Count(*c)),
        Value::Int(i) => Some(Kind::Int(*i)),
        Value::Double(d) => Some(Kind::Double(*d)),
        Value::Time(t) => Some(Kind::Time(*t)),
        Value::Interval(t) => Some(Kind::Interval(*t)),
        Value::Str(s) => Some(Kind::String(s.clone())),
        Value::Enum(e) => Some(Kind::Enum((*e).to_string())),
        Value::Addr(a) => Some(Kind::Addr(addr_to_bytes(*a))),
        Value::Subnet(n) => Some(Kind::Subnet(subnet_to_pb(n))),
        Value::Port(p) => Some(Kind::Port(pb::Port { number: u32::from(*p), transport: 0 })),
        Value::Set(v) => Some(Kind::Set(items(v))),
        Value::Vector(v) => Some(Kind::Vector(items(v))),
    };
    pb::Data { kind }
}

pub fn value_from_pb(d: pb::Data, depth: usize) -> Result<Value, DataError> {
    use pb::data::Kind;
    if depth > 4 {
        return Err(DataError("log values nest at most one container deep".into()));
    }
    let items =
        |l: pb::DataList| l.items.into_iter().map(|i| value_from_pb(i, depth + 1)).collect::<Result<Vec<_>, _>>();
    Ok(match d.kind {
        None => Value::Unset,
        Some(Kind::Bool(b)) => Value::Bool(b),
        Some(Kind::Count(c)) => Value::Count(c),
        Some(Kind::Int(i)) => Value::Int(i),
        Some(Kind::Double(x)) => Value::Double(x),
        Some(Kind::Time(t)) => Value::Time(t),
        Some(Kind::Interval(t)) => Value::Interval(t),
        Some(Kind::String(s)) => Value::Str(s),
        Some(Kind::Enum(e)) => Value::Enum(intern_enum(&e)?),
        Some(Kind::Addr(a)) => Value::Addr(addr_from_bytes(&a)?),
        Some(Kind::Subnet(s)) => Value::Subnet(subnet_from_pb(&s)?),
        Some(Kind::Port(p)) => Value::Port(port_from_pb(&p)?.0),
        Some(Kind::Set(l)) => Value::Set(items(l)?),
        Some(Kind::Vector(l)) => Value::Vector(items(l)?),
        Some(Kind::Table(_) | Kind::Record(_)) => {
            return Err(DataError("logs hold no tables or records (records are flattened)".into()));
        }
    })
}

/// Builds a batch; rows of one path keep their order.
pub fn encode_batch(seq: u64, origin: &str, records: &[LogRecord]) -> pb::LogBatch {
    let mut streams: Vec<pb::LogStream> = Vec::new();
    for r in records {
        let row = pb::LogRow { values: r.values.iter().map(value_to_pb).collect() };
        match streams.iter_mut().find(|s| s.path == r.schema.path) {
            Some(s) => s.rows.push(row),
            None => streams.push(pb::LogStream { path: r.schema.path.to_string(), rows: vec![row] }),
        }
    }
    pb::LogBatch { seq, origin: origin.to_string(), streams }
}

/// Turns a batch back into records; any unknown path or row of the wrong width fails the whole batch.
pub fn decode_batch(batch: pb::LogBatch) -> Result<Vec<LogRecord>, DataError> {
    let mut out = Vec::new();
    for stream in batch.streams {
        let schema =
            schema_for(&stream.path).ok_or_else(|| DataError(format!("unknown log path '{}'", stream.path)))?;
        for row in stream.rows {
            if row.values.len() != schema.fields.len() {
                return Err(DataError(format!(
                    "a {} row has {} values, the schema {}",
                    schema.path,
                    row.values.len(),
                    schema.fields.len()
                )));
            }
            let values = row.values.into_iter().map(|v| value_from_pb(v, 0)).collect::<Result<_, _>>()?;
            out.push(LogRecord { schema, values });
        }
    }
    Ok(out)
}

/// Records in a batch (for accounting without decoding).
pub fn batch_len(batch: &pb::LogBatch) -> usize {
    batch.streams.iter().map(|s| s.rows.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::CONN;

    fn conn_record(uid: &str) -> LogRecord {
        let mut values = vec![Value::Unset; CONN.fields.len()];
        values[0] = Value::Time(1.5);
        values[1] = Value::str(uid);
        values[2] = Value::Addr("10.0.0.1".parse().unwrap());
        values[3] = Value::Port(1234);
        values[6] = Value::Enum("tcp");
        values[20] = Value::str_set(["Cabc"]);
        LogRecord::new(&CONN, values)
    }

    #[test]
    fn batches_round_trip() {
        let records = vec![
            conn_record("C1"),
            LogRecord::new(&CLUSTER_LOG, vec![Value::Time(2.0), Value::str("m"), Value::str("x")]),
            conn_record("C2"),
        ];
        let batch = encode_batch(7, "worker-1", &records);
        assert_eq!(batch.streams.len(), 2);
        assert_eq!(batch_len(&batch), 3);
        let back = decode_batch(batch).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], records[0]);
        assert_eq!(back[1], records[2]);
        assert_eq!(back[2], records[1]);
    }

    #[test]
    fn bad_batches_are_refused() {
        let mut batch = encode_batch(1, "w", &[conn_record("C1")]);
        batch.streams[0].rows[0].values.pop();
        assert!(decode_batch(batch).is_err());
        let unknown = pb::LogBatch {
            seq: 1,
            origin: "w".into(),
            streams: vec![pb::LogStream { path: "nope".into(), rows: vec![] }],
        };
        assert!(decode_batch(unknown).is_err());
    }
}
