//! Log records on the wire: a batch groups rows by `#path`, and the rows of a stream travel as one dense byte string
//! (below). The receiving logger finds the schema by path, so field names and types never travel and a row's width
//! is the schema's.
//!
//! Each value is a one-byte type tag and its payload: nothing for unset and booleans, a varint for counts
//! (zigzag for ints), 8 little-endian bytes for doubles, times and intervals, a varint length and the UTF-8 bytes
//! for strings and enum names, a length byte (4 or 16) and the bytes for addresses, a prefix byte then the address
//! for subnets, 2 little-endian bytes for ports, and a varint item count then the items for sets and vectors (whose
//! items are never containers). Decoding never trusts a length or count: bad input is a [`DataError`].

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use ipnet::IpNet;
use prost::encoding::{decode_varint, encode_varint};

use super::data::{DataError, addr_from_bytes};
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
    &crate::detect::software::KNOWN_CERTS_LOG,
    &crate::detect::dns_stats::DNS_QTYPE_LOG,
    &crate::detect::capture_loss::CAPTURE_LOSS_LOG,
    &crate::detect::stats::STATS_LOG,
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

/// The type tags of the row encoding.
mod tag {
    pub const UNSET: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const COUNT: u8 = 3;
    pub const INT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const TIME: u8 = 6;
    pub const INTERVAL: u8 = 7;
    pub const STR: u8 = 8;
    pub const ENUM: u8 = 9;
    pub const ADDR: u8 = 10;
    pub const SUBNET: u8 = 11;
    pub const PORT: u8 = 12;
    pub const SET: u8 = 13;
    pub const VECTOR: u8 = 14;
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_addr(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(16);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// Appends one value in the row encoding.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    let float = |out: &mut Vec<u8>, tag: u8, x: f64| {
        out.push(tag);
        out.extend_from_slice(&x.to_le_bytes());
    };
    let items = |out: &mut Vec<u8>, tag: u8, items: &[Value]| {
        out.push(tag);
        encode_varint(items.len() as u64, out);
        items.iter().for_each(|i| encode_value(out, i));
    };
    match v {
        Value::Unset => out.push(tag::UNSET),
        Value::Bool(b) => out.push(if *b { tag::TRUE } else { tag::FALSE }),
        Value::Count(c) => {
            out.push(tag::COUNT);
            encode_varint(*c, out);
        }
        Value::Int(i) => {
            out.push(tag::INT);
            encode_varint(((i << 1) ^ (i >> 63)) as u64, out);
        }
        Value::Double(x) => float(out, tag::DOUBLE, *x),
        Value::Time(x) => float(out, tag::TIME, *x),
        Value::Interval(x) => float(out, tag::INTERVAL, *x),
        Value::Str(s) => put_bytes(out, tag::STR, s.as_bytes()),
        Value::Enum(e) => put_bytes(out, tag::ENUM, e.as_bytes()),
        Value::Addr(a) => {
            out.push(tag::ADDR);
            put_addr(out, *a);
        }
        Value::Subnet(n) => {
            out.push(tag::SUBNET);
            out.push(n.prefix_len());
            put_addr(out, n.addr());
        }
        Value::Port(p) => {
            out.push(tag::PORT);
            out.extend_from_slice(&p.to_le_bytes());
        }
        Value::Set(v) => items(out, tag::SET, v),
        Value::Vector(v) => items(out, tag::VECTOR, v),
    }
}

/// Reads values of the row encoding off the front of a byte string.
struct RowReader<'a> {
    rest: &'a [u8],
    /// Enum names this reader interned: most rows repeat a few, found here without the global table's lock.
    enums: Vec<&'static str>,
}

fn truncated() -> DataError {
    DataError("a log row ends in the middle of a value".into())
}

impl<'a> RowReader<'a> {
    fn new(bytes: &'a [u8]) -> RowReader<'a> {
        RowReader { rest: bytes, enums: Vec::new() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DataError> {
        if n > self.rest.len() {
            return Err(truncated());
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DataError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| truncated())
    }

    fn byte(&mut self) -> Result<u8, DataError> {
        Ok(self.array::<1>()?[0])
    }

    fn varint(&mut self) -> Result<u64, DataError> {
        decode_varint(&mut self.rest).map_err(|e| DataError(format!("a log row holds a bad varint: {e}")))
    }

    /// A varint length or count, bounded by the bytes left (every byte or item takes at least one byte).
    fn len(&mut self) -> Result<usize, DataError> {
        let n = self.varint()?;
        usize::try_from(n).ok().filter(|n| *n <= self.rest.len()).ok_or_else(truncated)
    }

    fn str(&mut self) -> Result<&'a str, DataError> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| DataError("a log string is not UTF-8".into()))
    }

    fn float(&mut self) -> Result<f64, DataError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn addr(&mut self) -> Result<IpAddr, DataError> {
        let n = usize::from(self.byte()?);
        addr_from_bytes(self.take(n)?)
    }

    fn enum_name(&mut self) -> Result<&'static str, DataError> {
        let name = self.str()?;
        if let Some(known) = self.enums.iter().find(|e| **e == name) {
            return Ok(known);
        }
        let interned = intern_enum(name)?;
        self.enums.push(interned);
        Ok(interned)
    }

    /// A set or vector into `slot`, reusing the items (and their string buffers) a container there already has.
    fn items_into(&mut self, slot: &mut Value, set: bool) -> Result<(), DataError> {
        let n = self.len()?;
        let mut items = match std::mem::replace(slot, Value::Unset) {
            Value::Set(v) | Value::Vector(v) => v,
            _ => Vec::new(),
        };
        items.truncate(n);
        // Grown one decoded item at a time: a huge count in a short input fails before it allocates much.
        for i in 0..n {
            match items.get_mut(i) {
                Some(item) => self.value_into(item, true)?,
                None => {
                    let mut item = Value::Unset;
                    self.value_into(&mut item, true)?;
                    items.push(item);
                }
            }
        }
        *slot = if set { Value::Set(items) } else { Value::Vector(items) };
        Ok(())
    }

    /// One value into `slot`, reusing the string buffer a string there already has (rows decoded into one reused
    /// record allocate nothing once warm). `in_container` refuses a container inside another (logs nest one
    /// container deep).
    fn value_into(&mut self, slot: &mut Value, in_container: bool) -> Result<(), DataError> {
        *slot = match self.byte()? {
            tag::UNSET => Value::Unset,
            tag::FALSE => Value::Bool(false),
            tag::TRUE => Value::Bool(true),
            tag::COUNT => Value::Count(self.varint()?),
            tag::INT => {
                let z = self.varint()?;
                Value::Int((z >> 1) as i64 ^ -((z & 1) as i64))
            }
            tag::DOUBLE => Value::Double(self.float()?),
            tag::TIME => Value::Time(self.float()?),
            tag::INTERVAL => Value::Interval(self.float()?),
            tag::STR => {
                let s = self.str()?;
                if let Value::Str(buf) = slot {
                    buf.clear();
                    buf.push_str(s);
                    return Ok(());
                }
                Value::Str(s.to_owned())
            }
            tag::ENUM => Value::Enum(self.enum_name()?),
            tag::ADDR => Value::Addr(self.addr()?),
            tag::SUBNET => {
                let prefix = self.byte()?;
                let addr = self.addr()?;
                Value::Subnet(
                    IpNet::new(addr, prefix)
                        .map_err(|_| DataError(format!("prefix /{prefix} out of range for {addr}")))?,
                )
            }
            tag::PORT => Value::Port(u16::from_le_bytes(self.array()?)),
            tag::SET | tag::VECTOR if in_container => {
                return Err(DataError("log values nest at most one container deep".into()));
            }
            tag::SET => return self.items_into(slot, true),
            tag::VECTOR => return self.items_into(slot, false),
            other => return Err(DataError(format!("unknown log value tag {other}"))),
        };
        Ok(())
    }
}

/// Appends one row (the record's values in field order).
pub fn encode_row(out: &mut Vec<u8>, values: &[Value]) {
    values.iter().for_each(|v| encode_value(out, v));
}

/// Every value takes at least a byte, so a count larger than the bytes allow is refused before any work.
fn check_fits(schema: &Schema, count: usize, len: usize) -> Result<(), DataError> {
    if count.saturating_mul(schema.fields.len()) > len {
        return Err(DataError(format!("{count} {} rows cannot fit in {len} bytes", schema.path)));
    }
    Ok(())
}

/// Decodes `count` rows of `schema` from `bytes` into one reused record, handing each to `each`; anything left
/// over, missing or malformed is an error (`bad` turns it into the caller's).
fn walk_rows<E>(
    schema: &'static Schema,
    count: usize,
    bytes: &[u8],
    bad: impl Fn(DataError) -> E,
    mut each: impl FnMut(&LogRecord) -> Result<(), E>,
) -> Result<(), E> {
    check_fits(schema, count, bytes.len()).map_err(&bad)?;
    let width = schema.fields.len();
    let mut reader = RowReader::new(bytes);
    let mut record = LogRecord { schema, values: vec![Value::Unset; width] };
    for _ in 0..count {
        for slot in &mut record.values {
            reader.value_into(slot, false).map_err(&bad)?;
        }
        each(&record)?;
    }
    if !reader.rest.is_empty() {
        let left = reader.rest.len();
        return Err(bad(DataError(format!("{left} bytes after the last of {count} {} rows", schema.path))));
    }
    Ok(())
}

/// Decodes `count` rows of `schema` from `bytes` into records.
pub fn decode_rows(schema: &'static Schema, count: usize, bytes: &[u8]) -> Result<Vec<LogRecord>, DataError> {
    let mut records = Vec::with_capacity(count);
    walk_rows(
        schema,
        count,
        bytes,
        |e| e,
        |r| {
            records.push(r.clone());
            Ok(())
        },
    )?;
    Ok(records)
}

/// The rows of one stream as they arrived. A logger keeps rows in this form up to the writer, which decodes each
/// into one reused record and formats it: no record is built per row, and no row is decoded twice.
#[derive(Debug, Clone)]
pub struct EncodedRows {
    pub schema: &'static Schema,
    pub count: usize,
    rows: Bytes,
}

impl EncodedRows {
    /// Hands each row, in order, to `each` (the record is reused: copy out what must outlive the call). A malformed
    /// row is an [`io::ErrorKind::InvalidData`] error, after the rows before it were handed out.
    pub fn try_for_each(&self, each: impl FnMut(&LogRecord) -> io::Result<()>) -> io::Result<()> {
        let bad = |e: DataError| io::Error::new(io::ErrorKind::InvalidData, e);
        walk_rows(self.schema, self.count, &self.rows, bad, each)
    }
}

/// Takes a batch in: every stream's schema by path, and a row count its bytes can hold. An unknown path fails the
/// whole batch here; the rows are decoded by the writer, which refuses the whole batch if any is malformed.
pub fn check_batch(batch: pb::LogBatch) -> Result<Vec<EncodedRows>, DataError> {
    batch
        .streams
        .into_iter()
        .map(|stream| {
            let schema =
                schema_for(&stream.path).ok_or_else(|| DataError(format!("unknown log path '{}'", stream.path)))?;
            let count = stream.count as usize;
            check_fits(schema, count, stream.rows.len())?;
            Ok(EncodedRows { schema, count, rows: stream.rows })
        })
        .collect()
}

/// The rows of one path in the row encoding, as a shipper gathers them into a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRows {
    pub path: &'static str,
    pub count: u32,
    pub rows: Vec<u8>,
}

impl From<StreamRows> for pb::LogStream {
    fn from(s: StreamRows) -> pb::LogStream {
        pb::LogStream { path: s.path.to_string(), count: s.count, rows: s.rows.into() }
    }
}

/// The encoded streams of `records`, one per path in order of first appearance; rows of one path keep their order.
pub fn encode_streams(records: &[LogRecord]) -> Vec<StreamRows> {
    // Rows per path first, so each stream's buffer is sized once (from its first row) instead of doubling.
    let mut streams: Vec<StreamRows> = Vec::new();
    for r in records {
        match streams.iter_mut().find(|s| s.path == r.schema.path) {
            Some(s) => s.count += 1,
            None => streams.push(StreamRows { path: r.schema.path, count: 1, rows: Vec::new() }),
        }
    }
    for r in records {
        let Some(s) = streams.iter_mut().find(|s| s.path == r.schema.path) else { continue };
        let first = s.rows.is_empty();
        encode_row(&mut s.rows, &r.values);
        if first {
            s.rows.reserve(s.rows.len() * (s.count as usize - 1));
        }
    }
    streams
}

/// Appends `more` to `streams` path by path (a path new to `streams` takes its buffer over without a copy).
pub fn append_streams(streams: &mut Vec<StreamRows>, more: Vec<StreamRows>) {
    for m in more {
        match streams.iter_mut().find(|s| s.path == m.path) {
            Some(s) => {
                s.rows.extend_from_slice(&m.rows);
                s.count += m.count;
            }
            None => streams.push(m),
        }
    }
}

/// Builds a batch; rows of one path keep their order.
pub fn encode_batch(seq: u64, origin: &str, records: &[LogRecord]) -> pb::LogBatch {
    let streams = encode_streams(records).into_iter().map(pb::LogStream::from).collect();
    pb::LogBatch { seq, origin: origin.to_string(), streams }
}

/// Turns a batch back into records; any unknown path or malformed row fails the whole batch.
pub fn decode_batch(batch: pb::LogBatch) -> Result<Vec<LogRecord>, DataError> {
    let mut out = Vec::with_capacity(batch_len(&batch));
    for stream in &batch.streams {
        let schema =
            schema_for(&stream.path).ok_or_else(|| DataError(format!("unknown log path '{}'", stream.path)))?;
        out.append(&mut decode_rows(schema, stream.count as usize, &stream.rows)?);
    }
    Ok(out)
}

/// Records in a batch (for accounting without decoding).
pub fn batch_len(batch: &pb::LogBatch) -> usize {
    batch.streams.iter().map(|s| s.count as usize).sum()
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

    /// Two conn records around a cluster.log record: two streams, one of them split.
    fn two_streams() -> Vec<LogRecord> {
        vec![
            conn_record("C1"),
            LogRecord::new(&CLUSTER_LOG, vec![Value::Time(2.0), Value::str("m"), Value::str("x")]),
            conn_record("C2"),
        ]
    }

    #[test]
    fn batches_round_trip() {
        let records = two_streams();
        let batch = encode_batch(7, "worker-1", &records);
        assert_eq!(batch.streams.len(), 2);
        assert_eq!(batch_len(&batch), 3);
        let back = decode_batch(batch).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], records[0]);
        assert_eq!(back[1], records[2]);
        assert_eq!(back[2], records[1]);
    }

    /// A stream with one field per kind of value (the decoder checks widths, not the declared types).
    static EVERY_KIND: Schema = Schema {
        path: "every_kind",
        fields: &[
            f("unset", "string"),
            f("no", "bool"),
            f("yes", "bool"),
            f("count", "count"),
            f("big", "count"),
            f("negative", "int"),
            f("int_min", "int"),
            f("double", "double"),
            f("ts", "time"),
            f("duration", "interval"),
            f("empty", "string"),
            f("text", "string"),
            f("proto", "enum"),
            f("v4", "addr"),
            f("v6", "addr"),
            f("net4", "subnet"),
            f("net6", "subnet"),
            f("port", "port"),
            f("set", "set[string]"),
            f("vector", "vector[count]"),
            f("empty_set", "set[addr]"),
        ],
    };

    fn every_kind() -> Vec<Value> {
        vec![
            Value::Unset,
            Value::Bool(false),
            Value::Bool(true),
            Value::Count(300),
            Value::Count(u64::MAX),
            Value::Int(-5),
            Value::Int(i64::MIN),
            Value::Double(-0.125),
            Value::Time(1_700_000_000.123456),
            Value::Interval(f64::INFINITY),
            Value::str(""),
            Value::str("é\\t\u{0}x"),
            Value::Enum("Intel::ADDR"),
            Value::Addr("10.0.0.1".parse().unwrap()),
            Value::Addr("2001:db8::1".parse().unwrap()),
            Value::Subnet("192.168.0.0/16".parse().unwrap()),
            Value::Subnet("fe80::/10".parse().unwrap()),
            Value::Port(65535),
            Value::str_set(["a,b", ""]),
            Value::Vector(vec![Value::Count(1), Value::Unset, Value::Int(-1)]),
            Value::Set(Vec::new()),
        ]
    }

    fn encoded(rows: &[Vec<Value>]) -> Vec<u8> {
        let mut out = Vec::new();
        rows.iter().for_each(|r| encode_row(&mut out, r));
        out
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        // Rows decode into one reused record: the reversed row puts every kind where another was, and the rows
        // after it refill strings and containers that were there before.
        let mut short = every_kind();
        short[18] = Value::str_set(["x"]);
        short[11] = Value::str("y");
        let rows = vec![every_kind(), every_kind().into_iter().rev().collect(), every_kind(), short, every_kind()];
        let back = decode_rows(&EVERY_KIND, rows.len(), &encoded(&rows)).unwrap();
        assert_eq!(back.iter().map(|r| r.values.clone()).collect::<Vec<_>>(), rows);
        assert!(back.iter().all(|r| std::ptr::eq(r.schema, &EVERY_KIND)));
    }

    #[test]
    fn checked_batches_hand_out_the_rows_in_order() {
        let records = two_streams();
        let streams = check_batch(encode_batch(3, "w", &records)).unwrap();
        let mut seen = Vec::new();
        for s in &streams {
            s.try_for_each(|r| {
                seen.push(r.clone());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(seen, vec![records[0].clone(), records[2].clone(), records[1].clone()]);
        assert_eq!(streams.iter().map(|s| s.count).sum::<usize>(), 3);
        let mut bad = encode_batch(4, "w", &records);
        let len = bad.streams[1].rows.len();
        bad.streams[1].rows = bad.streams[1].rows.slice(..len - 1);
        let streams = check_batch(bad).unwrap();
        let err = streams[1].try_for_each(|_| Ok(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("middle of a value"), "{err}");
        let mut unfit = encode_batch(5, "w", &records);
        unfit.streams[0].count = 100;
        assert!(check_batch(unfit).unwrap_err().to_string().contains("cannot fit"));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encoded(&[every_kind()]);
        for len in 0..bytes.len() {
            assert!(decode_rows(&EVERY_KIND, 1, &bytes[..len]).is_err(), "{len} of {} bytes", bytes.len());
        }
    }

    fn error(bytes: &[u8]) -> String {
        static ONE: Schema = Schema { path: "one", fields: &[f("x", "string")] };
        decode_rows(&ONE, 1, bytes).unwrap_err().to_string()
    }

    #[test]
    fn malformed_values_are_errors() {
        assert!(error(&[99]).contains("unknown log value tag 99"));
        assert!(error(&[tag::STR, 2, 0xff, 0xfe]).contains("not UTF-8"));
        assert!(error(&[tag::STR, 200, 1]).contains("middle of a value"));
        assert!(
            error(&[tag::STR, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).contains("varint")
        );
        assert!(error(&[tag::ADDR, 5, 1, 2, 3, 4, 5]).contains("4 or 16 bytes"));
        assert!(error(&[tag::SUBNET, 33, 4, 10, 0, 0, 0]).contains("prefix /33"));
        assert!(error(&[tag::SET, 1, tag::VECTOR, 0]).contains("one container deep"));
        assert!(error(&[tag::SET, 0xff, 0xff, 0xff, 0xff, 0x0f, tag::UNSET]).contains("middle of a value"));
        assert!(error(&[tag::UNSET, tag::UNSET]).contains("1 bytes after the last of 1 one rows"));
        assert!(error(&[]).contains("cannot fit"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x2545_f491;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let valid = encoded(&[every_kind()]);
        for _ in 0..20_000 {
            // Random bytes, and valid rows with a few bytes flipped (which reach deeper into the decoder).
            let mut bytes: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            if next() % 2 == 0 {
                bytes = valid.clone();
                for _ in 0..1 + next() % 3 {
                    let at = next() as usize % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            let _ = decode_rows(&EVERY_KIND, 1, &bytes);
            let _ = decode_rows(&CONN, (next() % 3) as usize, &bytes);
        }
    }

    #[test]
    fn bad_batches_are_refused() {
        let mut batch = encode_batch(1, "w", &[conn_record("C1")]);
        batch.streams[0].count = 2;
        assert!(decode_batch(batch).unwrap_err().to_string().contains("middle of a value"));
        let mut batch = encode_batch(1, "w", &[conn_record("C1")]);
        batch.streams[0].count = 1000;
        assert!(decode_batch(batch).unwrap_err().to_string().contains("cannot fit"));
        let mut batch = encode_batch(1, "w", &[conn_record("C1"), conn_record("C2")]);
        batch.streams[0].count = 1;
        assert!(decode_batch(batch).unwrap_err().to_string().contains("bytes after the last of 1 conn rows"));
        let unknown = pb::LogBatch {
            seq: 1,
            origin: "w".into(),
            streams: vec![pb::LogStream { path: "nope".into(), count: 0, rows: Default::default() }],
        };
        assert!(decode_batch(unknown).is_err());
    }
}
