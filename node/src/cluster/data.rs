//! Typed event arguments (Zeek's value types) and their wire form.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

use super::proto::pb;

/// A port's transport, as Zeek's `port` type carries it (`80/tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Unknown,
    Tcp,
    Udp,
    Icmp,
}

/// One Zeek value: an event argument, a table key or value, a record field.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// An unset `&optional` value.
    Unset,
    Bool(bool),
    Count(u64),
    Int(i64),
    Double(f64),
    /// Seconds since the epoch.
    Time(f64),
    /// Seconds.
    Interval(f64),
    Str(String),
    Addr(IpAddr),
    Subnet(IpNet),
    Port(u16, Transport),
    Enum(String),
    Vector(Vec<Data>),
    Set(Vec<Data>),
    /// Entries of a table; a `None` value makes it a set-like table keyed by tuples.
    Table(Vec<TableEntry>),
    /// Fields in declaration order.
    Record(Vec<Data>),
}

/// One entry of a `Data::Table`: the key's values and the value (none in a set-like table).
pub type TableEntry = (Vec<Data>, Option<Data>);

/// An event: a namespaced name (`DoS::aggregate_stats`) and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: EventName,
    pub args: Vec<Data>,
}

/// An event's name, shared rather than copied: a stream of events mostly repeats one name, so a publisher's copy and
/// a receiver's decoded events share one allocation instead of making one each. Names read from the wire are
/// interned for the life of the process (see [`EventName::interned`]).
#[derive(Clone)]
pub struct EventName(NameRepr);

#[derive(Clone)]
enum NameRepr {
    /// Kept for the life of the process: cloning and dropping it touch no reference count, which on a receiver was
    /// an atomic increment and decrement per event.
    Interned(&'static str),
    Shared(Arc<str>),
}

/// Distinct names interned at most, and the longest interned: a peer sending ever new names leaks at most a few
/// hundred kilobytes before further names are shared the ordinary way.
const INTERNED_NAMES: usize = 4096;
const INTERNED_NAME_BYTES: usize = 128;

static INTERNED: std::sync::LazyLock<RwLock<HashSet<&'static str, foldhash::fast::RandomState>>> =
    std::sync::LazyLock::new(RwLock::default);

/// Names compare by pointer first: a receiver's names are interned and a publisher's are shared, so the pointer
/// settles most comparisons (a dispatcher compares each event's name with the one before).
impl PartialEq for EventName {
    fn eq(&self, other: &EventName) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        std::ptr::eq(a, b) || a == b
    }
}

impl Eq for EventName {}

impl PartialOrd for EventName {
    fn partial_cmp(&self, other: &EventName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventName {
    fn cmp(&self, other: &EventName) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for EventName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EventName").field(&self.as_str()).finish()
    }
}

/// `publish` takes an event by value or by reference.
impl From<Event> for std::borrow::Cow<'_, Event> {
    fn from(event: Event) -> Self {
        std::borrow::Cow::Owned(event)
    }
}

impl<'a> From<&'a Event> for std::borrow::Cow<'a, Event> {
    fn from(event: &'a Event) -> Self {
        std::borrow::Cow::Borrowed(event)
    }
}

impl EventName {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            NameRepr::Interned(s) => s,
            NameRepr::Shared(s) => s,
        }
    }

    /// The name `s`, one copy of it kept for the life of the process and shared by every name interned as `s`; past
    /// [`INTERNED_NAMES`] names, or for a name longer than [`INTERNED_NAME_BYTES`], an ordinary shared name. For the
    /// names a receiver reads from the wire: a stream of events repeats a few names, and their events are cloned and
    /// dropped without touching a reference count.
    pub fn interned(s: &str) -> EventName {
        let known = INTERNED.read().unwrap_or_else(|e| e.into_inner()).get(s).copied();
        if let Some(name) = known {
            return EventName(NameRepr::Interned(name));
        }
        if s.len() > INTERNED_NAME_BYTES {
            return EventName::from(s);
        }
        let mut names = INTERNED.write().unwrap_or_else(|e| e.into_inner());
        if let Some(name) = names.get(s) {
            return EventName(NameRepr::Interned(name));
        }
        if names.len() >= INTERNED_NAMES {
            return EventName::from(s);
        }
        let name: &'static str = Box::leak(s.into());
        names.insert(name);
        EventName(NameRepr::Interned(name))
    }
}

impl std::ops::Deref for EventName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for EventName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for EventName {
    fn from(s: &str) -> EventName {
        EventName(NameRepr::Shared(s.into()))
    }
}

impl From<String> for EventName {
    fn from(s: String) -> EventName {
        EventName(NameRepr::Shared(s.into()))
    }
}

impl PartialEq<str> for EventName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Event {
    pub fn new(name: impl Into<EventName>, args: Vec<Data>) -> Self {
        Event { name: name.into(), args }
    }

    pub fn to_pb(&self) -> pb::Event {
        pb::Event { name: self.name.to_string(), args: self.args.iter().map(Data::to_pb).collect() }
    }

    /// The wire form, taking the values instead of copying them (a publish's event is not used again).
    pub fn into_pb(self) -> pb::Event {
        pb::Event { name: self.name.to_string(), args: self.args.into_iter().map(Data::into_pb).collect() }
    }

    pub fn from_pb(e: pb::Event) -> Result<Self, DataError> {
        if e.name.is_empty() {
            return Err(DataError("an event needs a name".into()));
        }
        let args = e.args.into_iter().map(|a| Data::from_pb(a, 0)).collect::<Result<_, _>>()?;
        Ok(Event { name: e.name.into(), args })
    }
}

/// A value on the wire that does not make sense (a 5-byte address, a /40 IPv4 subnet, nesting too deep).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value: {0}")]
pub struct DataError(pub String);

/// Containers nest at most this deep; a deeper value is refused rather than recursed into.
pub(super) const MAX_DEPTH: usize = 32;

pub fn addr_to_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

pub fn addr_from_bytes(b: &[u8]) -> Result<IpAddr, DataError> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return Ok(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(b) {
        return Ok(IpAddr::V6(Ipv6Addr::from(v6)));
    }
    Err(DataError(format!("an address has 4 or 16 bytes, not {}", b.len())))
}

pub fn subnet_to_pb(n: &IpNet) -> pb::Subnet {
    pb::Subnet { addr: addr_to_bytes(n.addr()), prefix: u32::from(n.prefix_len()) }
}

pub fn subnet_from_pb(s: &pb::Subnet) -> Result<IpNet, DataError> {
    subnet_from_parts(&s.addr, s.prefix)
}

/// A subnet from its wire fields: a 4- or 16-byte address and a prefix length that fits it.
pub fn subnet_from_parts(addr: &[u8], prefix: u32) -> Result<IpNet, DataError> {
    let addr = addr_from_bytes(addr)?;
    let prefix = u8::try_from(prefix).map_err(|_| DataError(format!("prefix /{prefix} out of range")))?;
    IpNet::new(addr, prefix).map_err(|_| DataError(format!("prefix /{prefix} out of range for {addr}")))
}

pub fn port_from_pb(p: &pb::Port) -> Result<(u16, Transport), DataError> {
    port_from_parts(p.number, p.transport)
}

/// A port from its wire fields; an unknown transport number reads as `Transport::Unknown`, as Zeek's `unknown`.
pub fn port_from_parts(number: u32, transport: i32) -> Result<(u16, Transport), DataError> {
    let number = u16::try_from(number).map_err(|_| DataError(format!("port {number} out of range")))?;
    let transport = match pb::Transport::try_from(transport) {
        Ok(pb::Transport::Tcp) => Transport::Tcp,
        Ok(pb::Transport::Udp) => Transport::Udp,
        Ok(pb::Transport::Icmp) => Transport::Icmp,
        _ => Transport::Unknown,
    };
    Ok((number, transport))
}

fn transport_to_pb(t: Transport) -> pb::Transport {
    match t {
        Transport::Unknown => pb::Transport::Unknown,
        Transport::Tcp => pb::Transport::Tcp,
        Transport::Udp => pb::Transport::Udp,
        Transport::Icmp => pb::Transport::Icmp,
    }
}

fn list(items: Vec<Data>) -> pb::DataList {
    pb::DataList { items: items.into_iter().map(Data::into_pb).collect() }
}

impl Data {
    pub fn to_pb(&self) -> pb::Data {
        self.clone().into_pb()
    }

    /// The wire form, moving strings and containers instead of copying them.
    pub fn into_pb(self) -> pb::Data {
        use pb::data::Kind;
        let kind = match self {
            Data::Unset => None,
            Data::Bool(b) => Some(Kind::Bool(b)),
            Data::Count(c) => Some(Kind::Count(c)),
            Data::Int(i) => Some(Kind::Int(i)),
            Data::Double(d) => Some(Kind::Double(d)),
            Data::Time(t) => Some(Kind::Time(t)),
            Data::Interval(t) => Some(Kind::Interval(t)),
            Data::Str(s) => Some(Kind::String(s)),
            Data::Addr(a) => Some(Kind::Addr(addr_to_bytes(a))),
            Data::Subnet(n) => Some(Kind::Subnet(subnet_to_pb(&n))),
            Data::Port(n, t) => {
                Some(Kind::Port(pb::Port { number: u32::from(n), transport: transport_to_pb(t) as i32 }))
            }
            Data::Enum(e) => Some(Kind::Enum(e)),
            Data::Vector(v) => Some(Kind::Vector(list(v))),
            Data::Set(v) => Some(Kind::Set(list(v))),
            Data::Table(entries) => Some(Kind::Table(pb::Table {
                entries: entries
                    .into_iter()
                    .map(|(k, v)| pb::TableEntry {
                        key: k.into_iter().map(Data::into_pb).collect(),
                        value: v.map(Data::into_pb),
                    })
                    .collect(),
            })),
            Data::Record(fields) => Some(Kind::Record(list(fields))),
        };
        pb::Data { kind }
    }

    pub fn from_pb(d: pb::Data, depth: usize) -> Result<Data, DataError> {
        use pb::data::Kind;
        if depth > MAX_DEPTH {
            return Err(DataError(format!("values nest deeper than {MAX_DEPTH}")));
        }
        let items = |l: pb::DataList| -> Result<Vec<Data>, DataError> {
            l.items.into_iter().map(|i| Data::from_pb(i, depth + 1)).collect()
        };
        Ok(match d.kind {
            None => Data::Unset,
            Some(Kind::Bool(b)) => Data::Bool(b),
            Some(Kind::Count(c)) => Data::Count(c),
            Some(Kind::Int(i)) => Data::Int(i),
            Some(Kind::Double(x)) => Data::Double(x),
            Some(Kind::Time(t)) => Data::Time(t),
            Some(Kind::Interval(t)) => Data::Interval(t),
            Some(Kind::String(s)) => Data::Str(s),
            Some(Kind::Addr(a)) => Data::Addr(addr_from_bytes(&a)?),
            Some(Kind::Subnet(s)) => Data::Subnet(subnet_from_pb(&s)?),
            Some(Kind::Port(p)) => {
                let (n, t) = port_from_pb(&p)?;
                Data::Port(n, t)
            }
            Some(Kind::Enum(e)) => Data::Enum(e),
            Some(Kind::Vector(l)) => Data::Vector(items(l)?),
            Some(Kind::Set(l)) => Data::Set(items(l)?),
            Some(Kind::Record(l)) => Data::Record(items(l)?),
            Some(Kind::Table(t)) => Data::Table(
                t.entries
                    .into_iter()
                    .map(|e| {
                        let key = e.key.into_iter().map(|k| Data::from_pb(k, depth + 1)).collect::<Result<_, _>>()?;
                        let value = e.value.map(|v| Data::from_pb(v, depth + 1)).transpose()?;
                        Ok((key, value))
                    })
                    .collect::<Result<_, DataError>>()?,
            ),
        })
    }

    pub fn as_count(&self) -> Option<u64> {
        match self {
            Data::Count(c) => Some(*c),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::Str(s) | Data::Enum(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_addr(&self) -> Option<IpAddr> {
        match self {
            Data::Addr(a) => Some(*a),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(d: Data) {
        assert_eq!(Data::from_pb(d.to_pb(), 0), Ok(d));
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Data::Unset);
        round_trip(Data::Bool(true));
        round_trip(Data::Count(u64::MAX));
        round_trip(Data::Int(-5));
        round_trip(Data::Double(0.25));
        round_trip(Data::Time(1_300_475_167.096_535));
        round_trip(Data::Interval(3.5));
        round_trip(Data::Str("a\tb".into()));
        round_trip(Data::Addr("2001:db8::1".parse().unwrap()));
        round_trip(Data::Subnet("10.0.0.0/8".parse().unwrap()));
        round_trip(Data::Port(443, Transport::Tcp));
        round_trip(Data::Enum("Intel::ADDR".into()));
        round_trip(Data::Vector(vec![Data::Count(1), Data::Unset]));
        round_trip(Data::Set(vec![Data::Str("x".into())]));
        round_trip(Data::Table(vec![(vec![Data::Addr("1.2.3.4".parse().unwrap())], Some(Data::Count(3)))]));
        round_trip(Data::Record(vec![Data::Addr("1.2.3.4".parse().unwrap()), Data::Port(53, Transport::Udp)]));
    }

    #[test]
    fn interned_names_are_names_like_any_other_and_long_ones_are_not_kept() {
        use std::hash::BuildHasher as _;
        let shared = EventName::from("Test::interned");
        let interned = EventName::interned("Test::interned");
        assert_eq!(interned, shared);
        assert_eq!(interned, "Test::interned");
        let hasher = std::hash::RandomState::new();
        assert_eq!(hasher.hash_one(&interned), hasher.hash_one(&shared));
        assert_eq!(interned.cmp(&EventName::from("Test::a")), std::cmp::Ordering::Greater);
        assert_eq!(format!("{interned:?}"), format!("{shared:?}"));
        assert_eq!(format!("{interned:?}"), r#"EventName("Test::interned")"#);
        let again = EventName::interned("Test::interned");
        assert!(std::ptr::eq(interned.as_str(), again.as_str()), "one copy per name");
        let long = "L".repeat(INTERNED_NAME_BYTES + 1);
        let (a, b) = (EventName::interned(&long), EventName::interned(&long));
        assert_eq!(a, b);
        assert!(!std::ptr::eq(a.as_str(), b.as_str()), "a long name is not kept for the life of the process");
    }

    #[test]
    fn malformed_values_are_errors() {
        let bad_addr = pb::Data { kind: Some(pb::data::Kind::Addr(vec![1, 2, 3])) };
        assert!(Data::from_pb(bad_addr, 0).is_err());
        let bad_subnet =
            pb::Data { kind: Some(pb::data::Kind::Subnet(pb::Subnet { addr: vec![1, 2, 3, 4], prefix: 40 })) };
        assert!(Data::from_pb(bad_subnet, 0).is_err());
        let bad_port = pb::Data { kind: Some(pb::data::Kind::Port(pb::Port { number: 70_000, transport: 1 })) };
        assert!(Data::from_pb(bad_port, 0).is_err());
        let mut deep = Data::Count(1);
        for _ in 0..40 {
            deep = Data::Vector(vec![deep]);
        }
        assert!(Data::from_pb(deep.to_pb(), 0).is_err());
        let nameless = pb::Event { name: String::new(), args: vec![] };
        assert!(Event::from_pb(nameless).is_err());
    }
}
