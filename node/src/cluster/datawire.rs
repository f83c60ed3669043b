//! Events written straight into their protobuf wire form (`pb::Event` of cluster.proto) and read straight out of it,
//! without the prost structs in between.
//!
//! A publish used to move each value into a `pb::Data` (a vector of them per event, a box per nested message) only to
//! have prost walk them and free them again, and a receiver decoded into those structs only to convert them. Here
//! the sizes are computed from the values themselves and the bytes appended to the caller's buffer, so a link can
//! encode an event directly into the run it is gathering; the reader builds the values from a borrowed slice of the
//! frame. The writer's output is byte for byte what prost writes for the same event and the reader takes anything
//! prost writes (the tests compare them over generated values), so the wire protocol does not change and any
//! protobuf implementation still reads and writes it.

use std::net::IpAddr;

use bytes::BufMut;
use ipnet::IpNet;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len};

use super::data::{
    Data, DataError, Event, EventName, MAX_DEPTH, TableEntry, Transport, addr_from_bytes, port_from_parts,
    subnet_from_parts,
};

// Field numbers of cluster.proto's `Event`, `Data`, `Subnet`, `Port`, `DataList`, `Table` and `TableEntry`.
const EVENT_NAME: u32 = 1;
const EVENT_ARGS: u32 = 2;
const DATA_BOOL: u32 = 1;
const DATA_COUNT: u32 = 2;
const DATA_INT: u32 = 3;
const DATA_DOUBLE: u32 = 4;
const DATA_TIME: u32 = 5;
const DATA_INTERVAL: u32 = 6;
const DATA_STRING: u32 = 7;
const DATA_ADDR: u32 = 8;
const DATA_SUBNET: u32 = 9;
const DATA_PORT: u32 = 10;
const DATA_ENUM: u32 = 11;
const DATA_VECTOR: u32 = 12;
const DATA_SET: u32 = 13;
const DATA_TABLE: u32 = 14;
const DATA_RECORD: u32 = 15;
const SUBNET_ADDR: u32 = 1;
const SUBNET_PREFIX: u32 = 2;
const PORT_NUMBER: u32 = 1;
const PORT_TRANSPORT: u32 = 2;
const LIST_ITEMS: u32 = 1;
const TABLE_ENTRIES: u32 = 1;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;

/// The encoded length of `event`.
pub fn event_len(event: &Event) -> usize {
    let name = if event.name.is_empty() { 0 } else { delimited_len(EVENT_NAME, event.name.len()) };
    name + event.args.iter().map(|a| delimited_len(EVENT_ARGS, data_len(a))).sum::<usize>()
}

/// Appends `event` in its wire form (exactly [`event_len`] bytes).
pub fn write_event(event: &Event, buf: &mut impl BufMut) {
    if !event.name.is_empty() {
        write_bytes(EVENT_NAME, event.name.as_bytes(), buf);
    }
    for arg in &event.args {
        write_delimited(EVENT_ARGS, data_len(arg), buf);
        write_data(arg, buf);
    }
}

/// A length-delimited field of `len` bytes with its key and length prefix.
fn delimited_len(field: u32, len: usize) -> usize {
    key_len(field) + encoded_len_varint(len as u64) + len
}

fn write_delimited(field: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn write_bytes(field: u32, bytes: &[u8], buf: &mut impl BufMut) {
    write_delimited(field, bytes.len(), buf);
    buf.put_slice(bytes);
}

fn varint_field_len(field: u32, value: u64) -> usize {
    key_len(field) + encoded_len_varint(value)
}

fn write_varint_field(field: u32, value: u64, buf: &mut impl BufMut) {
    encode_key(field, WireType::Varint, buf);
    encode_varint(value, buf);
}

fn write_double_field(field: u32, value: f64, buf: &mut impl BufMut) {
    encode_key(field, WireType::SixtyFourBit, buf);
    buf.put_f64_le(value);
}

/// proto3 leaves a plain (non-oneof) scalar out when it is zero; prost does the same.
fn optional_varint_len(field: u32, value: u64) -> usize {
    if value == 0 { 0 } else { varint_field_len(field, value) }
}

fn write_optional_varint(field: u32, value: u64, buf: &mut impl BufMut) {
    if value != 0 {
        write_varint_field(field, value, buf);
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn addr_len(a: &IpAddr) -> usize {
    if a.is_ipv4() { 4 } else { 16 }
}

fn write_addr(field: u32, a: &IpAddr, buf: &mut impl BufMut) {
    match a {
        IpAddr::V4(v4) => write_bytes(field, &v4.octets(), buf),
        IpAddr::V6(v6) => write_bytes(field, &v6.octets(), buf),
    }
}

fn subnet_body_len(n: &IpNet) -> usize {
    let addr = n.addr();
    delimited_len(SUBNET_ADDR, addr_len(&addr)) + optional_varint_len(SUBNET_PREFIX, u64::from(n.prefix_len()))
}

fn transport_number(t: Transport) -> u64 {
    match t {
        Transport::Unknown => 0,
        Transport::Tcp => 1,
        Transport::Udp => 2,
        Transport::Icmp => 3,
    }
}

fn port_body_len(number: u16, t: Transport) -> usize {
    optional_varint_len(PORT_NUMBER, u64::from(number)) + optional_varint_len(PORT_TRANSPORT, transport_number(t))
}

fn list_body_len(items: &[Data]) -> usize {
    items.iter().map(|d| delimited_len(LIST_ITEMS, data_len(d))).sum()
}

fn entry_body_len(key: &[Data], value: Option<&Data>) -> usize {
    key.iter().map(|k| delimited_len(ENTRY_KEY, data_len(k))).sum::<usize>()
        + value.map_or(0, |v| delimited_len(ENTRY_VALUE, data_len(v)))
}

fn table_body_len(entries: &[TableEntry]) -> usize {
    entries.iter().map(|(k, v)| delimited_len(TABLE_ENTRIES, entry_body_len(k, v.as_ref()))).sum()
}

/// The encoded length of one `Data` message's body.
fn data_len(d: &Data) -> usize {
    match d {
        Data::Unset => 0,
        Data::Bool(b) => varint_field_len(DATA_BOOL, u64::from(*b)),
        Data::Count(c) => varint_field_len(DATA_COUNT, *c),
        Data::Int(i) => varint_field_len(DATA_INT, zigzag(*i)),
        Data::Double(_) | Data::Time(_) | Data::Interval(_) => key_len(DATA_DOUBLE) + 8,
        Data::Str(s) => delimited_len(DATA_STRING, s.len()),
        Data::Enum(s) => delimited_len(DATA_ENUM, s.len()),
        Data::Addr(a) => delimited_len(DATA_ADDR, addr_len(a)),
        Data::Subnet(n) => delimited_len(DATA_SUBNET, subnet_body_len(n)),
        Data::Port(n, t) => delimited_len(DATA_PORT, port_body_len(*n, *t)),
        Data::Vector(items) => delimited_len(DATA_VECTOR, list_body_len(items)),
        Data::Set(items) => delimited_len(DATA_SET, list_body_len(items)),
        Data::Record(items) => delimited_len(DATA_RECORD, list_body_len(items)),
        Data::Table(entries) => delimited_len(DATA_TABLE, table_body_len(entries)),
    }
}

fn write_list(field: u32, items: &[Data], buf: &mut impl BufMut) {
    write_delimited(field, list_body_len(items), buf);
    for item in items {
        write_delimited(LIST_ITEMS, data_len(item), buf);
        write_data(item, buf);
    }
}

/// Writes one `Data` message's body (its length prefix is the caller's).
fn write_data(d: &Data, buf: &mut impl BufMut) {
    match d {
        Data::Unset => {}
        Data::Bool(b) => write_varint_field(DATA_BOOL, u64::from(*b), buf),
        Data::Count(c) => write_varint_field(DATA_COUNT, *c, buf),
        Data::Int(i) => write_varint_field(DATA_INT, zigzag(*i), buf),
        Data::Double(x) => write_double_field(DATA_DOUBLE, *x, buf),
        Data::Time(x) => write_double_field(DATA_TIME, *x, buf),
        Data::Interval(x) => write_double_field(DATA_INTERVAL, *x, buf),
        Data::Str(s) => write_bytes(DATA_STRING, s.as_bytes(), buf),
        Data::Enum(s) => write_bytes(DATA_ENUM, s.as_bytes(), buf),
        Data::Addr(a) => write_addr(DATA_ADDR, a, buf),
        Data::Subnet(n) => {
            write_delimited(DATA_SUBNET, subnet_body_len(n), buf);
            write_addr(SUBNET_ADDR, &n.addr(), buf);
            write_optional_varint(SUBNET_PREFIX, u64::from(n.prefix_len()), buf);
        }
        Data::Port(n, t) => {
            write_delimited(DATA_PORT, port_body_len(*n, *t), buf);
            write_optional_varint(PORT_NUMBER, u64::from(*n), buf);
            write_optional_varint(PORT_TRANSPORT, transport_number(*t), buf);
        }
        Data::Vector(items) => write_list(DATA_VECTOR, items, buf),
        Data::Set(items) => write_list(DATA_SET, items, buf),
        Data::Record(items) => write_list(DATA_RECORD, items, buf),
        Data::Table(entries) => {
            write_delimited(DATA_TABLE, table_body_len(entries), buf);
            for (key, value) in entries {
                write_delimited(TABLE_ENTRIES, entry_body_len(key, value.as_ref()), buf);
                for k in key {
                    write_delimited(ENTRY_KEY, data_len(k), buf);
                    write_data(k, buf);
                }
                if let Some(v) = value {
                    write_delimited(ENTRY_VALUE, data_len(v), buf);
                    write_data(v, buf);
                }
            }
        }
    }
}

/// Reads an event in its wire form, checked as [`Event::from_pb`] checks it: a name, values that make sense, nesting
/// at most [`MAX_DEPTH`] deep. Whatever prost writes (the canonical form) reads as prost reads it. Fields of a later
/// protocol are skipped, as protobuf readers do. Forms no protobuf writer produces may read differently from prost,
/// never unsafely: a value set twice keeps the last one (prost merges two copies of a nested message), and every
/// value read is checked, also one a later field replaces (prost checks only the one it keeps).
pub fn read_event(bytes: &[u8]) -> Result<Event, DataError> {
    EventReader::default().read(bytes)
}

/// Reads the events of one run: an event with the name of the one before shares that name instead of allocating it
/// again, and its arguments start with room for as many as the one before had (most runs are one event name
/// repeated: one exact allocation instead of growing from one argument).
#[derive(Default)]
pub struct EventReader {
    last_name: Option<EventName>,
    last_args: usize,
}

impl EventReader {
    /// As [`read_event`].
    pub fn read(&mut self, bytes: &[u8]) -> Result<Event, DataError> {
        let mut r = Reader(bytes);
        let mut name = None;
        let mut args = Vec::with_capacity(self.last_args);
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (EVENT_NAME, WireType::LengthDelimited) => name = Some(self.name(r.delimited()?)?),
                (EVENT_ARGS, WireType::LengthDelimited) => push_data(r.delimited()?, 0, &mut args)?,
                _ => r.skip_unknown(field, wire, EVENT_ARGS)?,
            }
        }
        self.last_args = args.len();
        match name {
            Some(name) if !name.is_empty() => Ok(Event { name, args }),
            _ => Err(DataError("an event needs a name".into())),
        }
    }

    fn name(&mut self, bytes: &[u8]) -> Result<EventName, DataError> {
        if let Some(last) = self.last_name.as_ref().filter(|n| same_bytes(n.as_bytes(), bytes)) {
            return Ok(last.clone());
        }
        let name = EventName::interned(utf8(bytes)?);
        self.last_name = Some(name.clone());
        Ok(name)
    }
}

/// Whether two byte strings are equal, compared eight bytes at a time in place: event names are short, and the call
/// to libc's `memcmp` that `==` makes cost more than the comparison (5% of a receiver's time per event).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let ((a_words, a_tail), (b_words, b_tail)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    a.len() == b.len()
        && a_words.iter().zip(b_words).all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && a_tail.iter().zip(b_tail).all(|(x, y)| x == y)
}

/// The reader's contract with prost on any input, for the tests and the `events` fuzz target: reading never panics;
/// an event read writes back to bytes that read as the same event; and an input in canonical form (what prost writes
/// for what it reads from it) reads as prost reads it. Returns what broke the contract.
pub fn check_reader_against_prost(bytes: &[u8]) -> Result<(), String> {
    use prost::Message as _;
    let ours = read_event(bytes);
    if let Ok(event) = &ours {
        let mut again = Vec::new();
        write_event(event, &mut again);
        let reread = read_event(&again).map_err(|e| format!("{event:?} was read but its own encoding is not: {e}"))?;
        if !same_values(&reread, event) {
            return Err(format!("{event:?} reads back as {reread:?}"));
        }
    }
    let Ok(theirs) = super::proto::pb::Event::decode(bytes) else { return Ok(()) };
    if theirs.encode_to_vec() != bytes {
        return Ok(());
    }
    match (ours, Event::from_pb(theirs)) {
        (Ok(a), Ok(b)) if same_values(&a, &b) => Ok(()),
        (Err(_), Err(_)) => Ok(()),
        (a, b) => Err(format!("canonical input read differently: ours {a:?}, prost's {b:?}")),
    }
}

/// Equal values, NaN included (compared by their encoding).
fn same_values(a: &Event, b: &Event) -> bool {
    let encode = |e: &Event| {
        let mut v = Vec::new();
        write_event(e, &mut v);
        v
    };
    encode(a) == encode(b)
}

fn utf8(b: &[u8]) -> Result<&str, DataError> {
    std::str::from_utf8(b).map_err(|_| malformed("a string that is not UTF-8"))
}

/// A cursor over a message's bytes.
struct Reader<'a>(&'a [u8]);

/// The field number and wire type of a key that fits one byte (every field of cluster.proto's messages), read
/// without prost's general varint path; `None` for any other key, which prost reads (and refuses) as before.
#[inline]
fn one_byte_key(key: u8) -> Option<(u32, WireType)> {
    let wire = match key & 0x07 {
        0 => WireType::Varint,
        1 => WireType::SixtyFourBit,
        2 => WireType::LengthDelimited,
        3 => WireType::StartGroup,
        4 => WireType::EndGroup,
        5 => WireType::ThirtyTwoBit,
        _ => return None,
    };
    (0x08..0x80).contains(&key).then_some((u32::from(key >> 3), wire))
}

fn malformed(what: impl std::fmt::Display) -> DataError {
    DataError(format!("an event that does not decode: {what}"))
}

impl<'a> Reader<'a> {
    /// The next field's number and wire type; `None` at the end of the message.
    #[inline(always)]
    fn key(&mut self) -> Result<Option<(u32, WireType)>, DataError> {
        let Some((&first, rest)) = self.0.split_first() else { return Ok(None) };
        if let Some(key) = one_byte_key(first) {
            self.0 = rest;
            return Ok(Some(key));
        }
        decode_key(&mut self.0).map(Some).map_err(malformed)
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, DataError> {
        match self.0.split_first() {
            Some((&byte, rest)) if byte < 0x80 => {
                self.0 = rest;
                Ok(u64::from(byte))
            }
            _ => decode_varint(&mut self.0).map_err(malformed),
        }
    }

    #[inline(always)]
    fn delimited(&mut self) -> Result<&'a [u8], DataError> {
        let len = usize::try_from(self.varint()?).map_err(malformed)?;
        if len > self.0.len() {
            return Err(malformed("a field longer than its message"));
        }
        let (field, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(field)
    }

    #[inline(always)]
    fn string(&mut self) -> Result<String, DataError> {
        utf8(self.delimited()?).map(str::to_string)
    }

    fn double(&mut self) -> Result<f64, DataError> {
        let Some((bytes, rest)) = self.0.split_first_chunk::<8>() else {
            return Err(malformed("a double cut short"));
        };
        self.0 = rest;
        Ok(f64::from_le_bytes(*bytes))
    }

    /// Passes over a field of a later protocol (a number past `last_known`), as protobuf readers do; a known field
    /// with another wire type than its own is an error, as prost makes it one.
    fn skip_unknown(&mut self, field: u32, wire: WireType, last_known: u32) -> Result<(), DataError> {
        if field <= last_known {
            return Err(malformed(format!("field {field} with wire type {wire:?}")));
        }
        self.skip(field, wire, 0)
    }

    fn skip(&mut self, field: u32, wire: WireType, depth: usize) -> Result<(), DataError> {
        let len = match wire {
            WireType::Varint => return self.varint().map(drop),
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => return self.delimited().map(drop),
            WireType::StartGroup => return self.skip_group(field, depth),
            WireType::EndGroup => return Err(malformed(format!("a group end without its start in field {field}"))),
        };
        if len > self.0.len() {
            return Err(malformed("a field longer than its message"));
        }
        self.0 = &self.0[len..];
        Ok(())
    }

    /// A (deprecated) protobuf group: fields up to the end marker of the same number, nested at most as deep as
    /// prost allows.
    fn skip_group(&mut self, field: u32, depth: usize) -> Result<(), DataError> {
        if depth >= GROUP_DEPTH {
            return Err(malformed("groups nested too deep"));
        }
        loop {
            match self.key()? {
                None => return Err(malformed(format!("group {field} without its end"))),
                Some((inner, WireType::EndGroup)) if inner == field => return Ok(()),
                Some((_, WireType::EndGroup)) => return Err(malformed("a group closed by another field")),
                Some((inner, wire)) => self.skip(inner, wire, depth + 1)?,
            }
        }
    }
}

/// prost's recursion limit, for skipping groups.
const GROUP_DEPTH: usize = 100;

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// One `Data` message's value from its body.
fn read_data(body: &[u8], depth: usize) -> Result<Data, DataError> {
    let mut value = Data::Unset;
    read_data_into(body, depth, &mut value)?;
    Ok(value)
}

/// Appends one `Data` message's value to `out` (an empty body is `Data::Unset`). Each kind of value is written
/// straight into `out`: a value built in a variable first, as [`read_data`] does, was copied through the stack twice
/// more, each copy stalling on the stores of the one before (a fifth of reading a small event).
#[inline(always)]
fn push_data(body: &[u8], depth: usize, out: &mut Vec<Data>) -> Result<(), DataError> {
    let start = out.len();
    read_data_into(body, depth, &mut Append { out: &mut *out, start })?;
    if out.len() == start {
        out.push(Data::Unset);
    }
    Ok(())
}

/// Where the values a `Data` message sets go, in order; the last one is the message's value.
trait PutData {
    fn put(&mut self, value: Data);
}

/// Kept as the one value.
impl PutData for Data {
    #[inline(always)]
    fn put(&mut self, value: Data) {
        *self = value;
    }
}

/// Appended to a vector, in place of the one the same message set before.
struct Append<'a> {
    out: &'a mut Vec<Data>,
    start: usize,
}

impl PutData for Append<'_> {
    #[inline(always)]
    fn put(&mut self, value: Data) {
        self.out.truncate(self.start);
        self.out.push(value);
    }
}

/// Hands each value one `Data` message's body sets to `to`.
#[inline(always)]
fn read_data_into(body: &[u8], depth: usize, to: &mut impl PutData) -> Result<(), DataError> {
    if depth > MAX_DEPTH {
        return Err(DataError(format!("values nest deeper than {MAX_DEPTH}")));
    }
    let mut r = Reader(body);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (DATA_BOOL, WireType::Varint) => to.put(Data::Bool(r.varint()? != 0)),
            (DATA_COUNT, WireType::Varint) => to.put(Data::Count(r.varint()?)),
            (DATA_INT, WireType::Varint) => to.put(Data::Int(unzigzag(r.varint()?))),
            (DATA_DOUBLE, WireType::SixtyFourBit) => to.put(Data::Double(r.double()?)),
            (DATA_TIME, WireType::SixtyFourBit) => to.put(Data::Time(r.double()?)),
            (DATA_INTERVAL, WireType::SixtyFourBit) => to.put(Data::Interval(r.double()?)),
            (DATA_STRING, WireType::LengthDelimited) => to.put(Data::Str(r.string()?)),
            (DATA_ENUM, WireType::LengthDelimited) => to.put(Data::Enum(r.string()?)),
            (DATA_ADDR, WireType::LengthDelimited) => to.put(Data::Addr(addr_from_bytes(r.delimited()?)?)),
            (DATA_SUBNET, WireType::LengthDelimited) => to.put(Data::Subnet(read_subnet(r.delimited()?)?)),
            (DATA_PORT, WireType::LengthDelimited) => {
                let (number, transport) = read_port(r.delimited()?)?;
                to.put(Data::Port(number, transport));
            }
            (DATA_VECTOR, WireType::LengthDelimited) => to.put(Data::Vector(read_list(r.delimited()?, depth)?)),
            (DATA_SET, WireType::LengthDelimited) => to.put(Data::Set(read_list(r.delimited()?, depth)?)),
            (DATA_RECORD, WireType::LengthDelimited) => to.put(Data::Record(read_list(r.delimited()?, depth)?)),
            (DATA_TABLE, WireType::LengthDelimited) => to.put(Data::Table(read_table(r.delimited()?, depth)?)),
            _ => r.skip_unknown(field, wire, DATA_RECORD)?,
        }
    }
    Ok(())
}

fn read_subnet(body: &[u8]) -> Result<IpNet, DataError> {
    let mut r = Reader(body);
    let (mut addr, mut prefix): (&[u8], u32) = (&[], 0);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (SUBNET_ADDR, WireType::LengthDelimited) => addr = r.delimited()?,
            // uint32 fields keep the low 32 bits of their varint, as prost reads them.
            (SUBNET_PREFIX, WireType::Varint) => prefix = r.varint()? as u32,
            _ => r.skip_unknown(field, wire, SUBNET_PREFIX)?,
        }
    }
    subnet_from_parts(addr, prefix)
}

fn read_port(body: &[u8]) -> Result<(u16, Transport), DataError> {
    let mut r = Reader(body);
    let (mut number, mut transport) = (0u32, 0i32);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (PORT_NUMBER, WireType::Varint) => number = r.varint()? as u32,
            (PORT_TRANSPORT, WireType::Varint) => transport = r.varint()? as i32,
            _ => r.skip_unknown(field, wire, PORT_TRANSPORT)?,
        }
    }
    port_from_parts(number, transport)
}

/// The items of a `DataList` (vector, set or record) inside a value at `depth`.
fn read_list(body: &[u8], depth: usize) -> Result<Vec<Data>, DataError> {
    let mut r = Reader(body);
    let mut items = Vec::new();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (LIST_ITEMS, WireType::LengthDelimited) => push_data(r.delimited()?, depth + 1, &mut items)?,
            _ => r.skip_unknown(field, wire, LIST_ITEMS)?,
        }
    }
    Ok(items)
}

fn read_table(body: &[u8], depth: usize) -> Result<Vec<TableEntry>, DataError> {
    let mut r = Reader(body);
    let mut entries = Vec::new();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (TABLE_ENTRIES, WireType::LengthDelimited) => entries.push(read_entry(r.delimited()?, depth)?),
            _ => r.skip_unknown(field, wire, TABLE_ENTRIES)?,
        }
    }
    Ok(entries)
}

fn read_entry(body: &[u8], depth: usize) -> Result<TableEntry, DataError> {
    let mut r = Reader(body);
    let (mut key, mut value) = (Vec::new(), None);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (ENTRY_KEY, WireType::LengthDelimited) => push_data(r.delimited()?, depth + 1, &mut key)?,
            (ENTRY_VALUE, WireType::LengthDelimited) => value = Some(read_data(r.delimited()?, depth + 1)?),
            _ => r.skip_unknown(field, wire, ENTRY_VALUE)?,
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message as _;

    fn direct(e: &Event) -> Vec<u8> {
        let mut buf = Vec::with_capacity(event_len(e));
        write_event(e, &mut buf);
        assert_eq!(buf.len(), event_len(e), "the computed length is what was written");
        buf
    }

    fn scalar() -> impl Strategy<Value = Data> {
        let transport =
            prop_oneof![Just(Transport::Unknown), Just(Transport::Tcp), Just(Transport::Udp), Just(Transport::Icmp)];
        prop_oneof![
            Just(Data::Unset),
            any::<bool>().prop_map(Data::Bool),
            any::<u64>().prop_map(Data::Count),
            any::<i64>().prop_map(Data::Int),
            any::<f64>().prop_map(Data::Double),
            any::<f64>().prop_map(Data::Time),
            any::<f64>().prop_map(Data::Interval),
            ".{0,40}".prop_map(Data::Str),
            "[A-Za-z:]{0,20}".prop_map(Data::Enum),
            any::<[u8; 4]>().prop_map(|o| Data::Addr(IpAddr::from(o))),
            any::<[u8; 16]>().prop_map(|o| Data::Addr(IpAddr::from(o))),
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(o, p)| Data::Subnet(IpNet::new(IpAddr::from(o), p).unwrap())),
            (any::<[u8; 16]>(), 0u8..=128).prop_map(|(o, p)| Data::Subnet(IpNet::new(IpAddr::from(o), p).unwrap())),
            (any::<u16>(), transport).prop_map(|(n, t)| Data::Port(n, t)),
        ]
    }

    fn value() -> impl Strategy<Value = Data> {
        scalar().prop_recursive(4, 64, 6, |inner| {
            let entry = (prop::collection::vec(inner.clone(), 0..3), prop::option::of(inner.clone()));
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Data::Vector),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Data::Set),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Data::Record),
                prop::collection::vec(entry, 0..4).prop_map(Data::Table),
            ]
        })
    }

    proptest! {
        #[test]
        fn writes_what_prost_writes(name in "[A-Za-z:_]{0,30}", args in prop::collection::vec(value(), 0..8)) {
            let event = Event::new(name, args);
            prop_assert_eq!(direct(&event), event.to_pb().encode_to_vec());
        }

        #[test]
        fn reads_back_what_it_wrote(name in "[A-Za-z:_]{1,30}", args in prop::collection::vec(value(), 0..8)) {
            let event = Event::new(name, args);
            let read = read_event(&direct(&event)).unwrap();
            prop_assert!(same_values(&read, &event), "{read:?} != {event:?}");
        }

        /// Damaged events (cut, a byte changed) keep the reader's contract with prost.
        #[test]
        fn reads_damaged_events_as_prost_does(
            args in prop::collection::vec(value(), 1..5),
            cut in any::<prop::sample::Index>(),
            flip in any::<(prop::sample::Index, u8)>(),
        ) {
            let mut bytes = direct(&Event::new("A::b", args));
            let i = flip.0.index(bytes.len());
            bytes[i] ^= flip.1;
            bytes.truncate(cut.index(bytes.len() + 1));
            prop_assert_eq!(check_reader_against_prost(&bytes), Ok(()));
        }

        /// Whole events are canonical: the contract then says they read as prost reads them.
        #[test]
        fn reads_whole_events_as_prost_does(args in prop::collection::vec(value(), 0..8)) {
            prop_assert_eq!(check_reader_against_prost(&direct(&Event::new("A::b", args))), Ok(()));
        }
    }

    #[test]
    fn a_known_field_with_another_wire_type_is_refused_and_a_later_protocols_fields_are_skipped() {
        // name (field 1) as a varint
        assert!(read_event(&[0x08, 0x01]).unwrap_err().0.contains("wire type"));
        // name "A", then field 9 as a varint and as a group (start 9, a varint field 1 inside, end 9)
        let later = [0x0a, 0x01, b'A', 0x48, 0x05, 0x4b, 0x08, 0x01, 0x4c];
        assert_eq!(read_event(&later).unwrap(), Event::new("A", vec![]));
        let unclosed_group = [0x0a, 0x01, b'A', 0x4b, 0x08, 0x01];
        assert!(read_event(&unclosed_group).is_err());
    }

    #[test]
    fn values_that_make_no_sense_are_refused() {
        use crate::cluster::proto::pb;
        let event = |d: pb::Data| pb::Event { name: "A::b".into(), args: vec![d] }.encode_to_vec();
        let kind = |k| pb::Data { kind: Some(k) };
        let five_byte_addr = event(kind(pb::data::Kind::Addr(vec![1, 2, 3, 4, 5])));
        assert!(read_event(&five_byte_addr).unwrap_err().0.contains("4 or 16 bytes"));
        let wide_prefix = event(kind(pb::data::Kind::Subnet(pb::Subnet { addr: vec![10, 0, 0, 0], prefix: 33 })));
        assert!(read_event(&wide_prefix).is_err());
        let big_port = event(kind(pb::data::Kind::Port(pb::Port { number: 65_536, transport: 1 })));
        assert!(read_event(&big_port).is_err());
        let mut deep = Data::Count(1);
        for _ in 0..=MAX_DEPTH {
            deep = Data::Vector(vec![deep]);
        }
        assert!(read_event(&direct(&Event::new("A::b", vec![deep]))).unwrap_err().0.contains("nest deeper"));
        assert!(read_event(&direct(&Event::new("", vec![]))).is_err(), "an event needs a name");
        let not_utf8 = [0x0a, 0x02, 0xff, 0xfe];
        assert!(read_event(&not_utf8).is_err());
    }

    #[test]
    fn one_byte_keys_read_as_prost_reads_them() {
        for first in 0..=u8::MAX {
            // A second byte continues a longer key; after a one-byte key it is the next field's.
            let bytes = [first, 0x01];
            let ours = Reader(&bytes).key();
            let theirs = decode_key(&mut &bytes[..]);
            match (ours, theirs) {
                (Ok(Some(a)), Ok(b)) => assert_eq!(a, b, "key byte {first:#04x}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("key byte {first:#04x}: ours {a:?}, prost's {b:?}"),
            }
        }
    }

    #[test]
    fn a_value_set_twice_keeps_the_last_and_an_empty_one_is_unset() {
        use crate::cluster::proto::pb;
        // A `Data` body setting a string, then a count: a value in the event's arguments and in a vector.
        let twice = [0x3a, 0x01, b'a', 0x10, 0x05];
        let arg = |body: &[u8]| [&[0x12, body.len() as u8][..], body].concat();
        let name = pb::Event { name: "A::b".into(), args: vec![] }.encode_to_vec();
        let vector = [&[0x62, twice.len() as u8 + 2, 0x0a, twice.len() as u8][..], &twice].concat();
        let bytes = [name, arg(&twice), arg(&[]), arg(&vector)].concat();
        let event = read_event(&bytes).unwrap();
        assert_eq!(event.args, [Data::Count(5), Data::Unset, Data::Vector(vec![Data::Count(5)])]);
        assert_eq!(event, Event::from_pb(pb::Event::decode(&bytes[..]).unwrap()).unwrap(), "as prost reads it");
    }

    #[test]
    fn a_run_of_events_shares_their_name_and_sizes_each_by_the_one_before() {
        let first = Event::new("A::b", vec![Data::Count(1), Data::Str("x".into()), Data::Unset]);
        let second = Event::new("A::b", vec![Data::Count(2)]);
        let third = Event::new("C::d", vec![Data::Bool(true), Data::Count(3)]);
        let mut reader = EventReader::default();
        let read: Vec<Event> = [&first, &second, &third].map(|e| reader.read(&direct(e)).unwrap()).into();
        assert_eq!(read, [first, second, third]);
        assert!(std::ptr::eq(read[0].name.as_str(), read[1].name.as_str()), "one name for the run");
        assert_eq!(read[1].args.capacity(), 3, "room for as many arguments as the event before had");
    }

    #[test]
    fn zero_values_and_empty_containers_match_prost() {
        let event = Event::new(
            "A::b",
            vec![
                Data::Bool(false),
                Data::Count(0),
                Data::Int(0),
                Data::Double(0.0),
                Data::Str(String::new()),
                Data::Port(0, Transport::Unknown),
                Data::Subnet("0.0.0.0/0".parse().unwrap()),
                Data::Vector(vec![]),
                Data::Table(vec![(vec![], None), (vec![Data::Unset], Some(Data::Unset))]),
                Data::Int(i64::MIN),
            ],
        );
        assert_eq!(direct(&event), event.to_pb().encode_to_vec());
    }
}
