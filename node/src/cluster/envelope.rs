//! A published event on its way between nodes, and its wire form.
//!
//! The event travels encoded: the publisher encodes it once, a relay (the manager) forwards the bytes without
//! decoding them, and only the node that delivers it to handlers decodes it. The topic, origin and relay targets a
//! message shares with the messages queued around it (a [`Header`]) are written once per run in a `Messages` frame,
//! and a receiver shares one header among the messages of a run instead of allocating it for each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use super::data::{DataError, Event};
use super::datawire;
use super::proto::pb;

/// Where a message goes and who published it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub topic: String,
    pub origin: String,
    /// Nodes the manager is to forward the message to (a sender without a direct link to them sets this).
    pub relay_to: Vec<String>,
}

impl Header {
    pub fn new(topic: impl Into<String>, origin: impl Into<String>) -> Arc<Header> {
        Arc::new(Header { topic: topic.into(), origin: origin.into(), relay_to: Vec::new() })
    }
}

/// The headers of the messages one node publishes, by topic, with the form that asks the manager to relay: a stream
/// of publishes to one topic shares one header instead of allocating it for each (and freeing it on the link's
/// thread).
pub struct HeaderCache {
    origin: String,
    by_topic: Mutex<HashMap<String, CachedHeader, foldhash::fast::RandomState>>,
}

struct CachedHeader {
    direct: Arc<Header>,
    relayed: Option<Arc<Header>>,
}

/// Topics a cache holds before it starts over (node topics grow with the cluster, event topics are few).
const CACHED_TOPICS: usize = 4096;

impl HeaderCache {
    pub fn new(origin: &str) -> HeaderCache {
        HeaderCache { origin: origin.to_string(), by_topic: Mutex::default() }
    }

    /// The header for `topic`, asking the manager to relay to `relay_to` when that is not empty.
    pub fn get(&self, topic: &str, relay_to: &[&str]) -> Arc<Header> {
        let mut cache = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.contains_key(topic) {
            if cache.len() >= CACHED_TOPICS {
                cache.clear();
            }
            let direct = Header::new(topic, self.origin.as_str());
            cache.insert(topic.to_string(), CachedHeader { direct, relayed: None });
        }
        let Some(entry) = cache.get_mut(topic) else { unreachable!("inserted above") };
        if relay_to.is_empty() {
            return Arc::clone(&entry.direct);
        }
        match &entry.relayed {
            Some(h) if h.relay_to.iter().map(String::as_str).eq(relay_to.iter().copied()) => Arc::clone(h),
            _ => {
                let relay_to = relay_to.iter().map(|t| t.to_string()).collect();
                let h = Arc::new(Header { relay_to, ..(*entry.direct).clone() });
                entry.relayed = Some(Arc::clone(&h));
                h
            }
        }
    }
}

/// One message: a header shared with its neighbours, the HRW route it was published with, its encoded event(s).
#[derive(Debug, Clone)]
pub struct Envelope {
    pub header: Arc<Header>,
    /// Boxed: most messages have none, and envelopes are moved through queues.
    pub route: Option<Box<pb::PoolRoute>>,
    pub events: Events,
}

/// A message's events as they travel.
#[derive(Debug, Clone)]
pub enum Events {
    /// One encoded `pb::Event`.
    One(Bytes),
    /// Events published one after another to one header without a route, each a varint length and an encoded
    /// `pb::Event`, back to back: a relay forwards them as one piece, whatever their number.
    Run { bytes: Bytes, count: u32 },
}

impl Envelope {
    /// A message carrying one encoded event.
    pub fn one(header: Arc<Header>, route: Option<Box<pb::PoolRoute>>, event: Bytes) -> Envelope {
        Envelope { header, route, events: Events::One(event) }
    }

    /// About what the message adds to a frame (its events and a few bytes of framing), for sizing batches.
    pub fn wire_len(&self) -> usize {
        match &self.events {
            Events::One(b) => b.len() + 8,
            Events::Run { bytes, .. } => bytes.len() + 8,
        }
    }

    /// How many events the message carries.
    pub fn count(&self) -> u32 {
        self.events.count()
    }
}

impl Events {
    pub fn count(&self) -> u32 {
        match self {
            Events::One(_) => 1,
            Events::Run { count, .. } => *count,
        }
    }

    /// Hands each encoded event to `each`, in order. A run whose framing does not add up (a length past its end, a
    /// count that is not the number of events) is refused before any event is handed out.
    pub fn for_each(&self, mut each: impl FnMut(&[u8])) -> Result<(), WireError> {
        match self {
            Events::One(b) => each(b),
            Events::Run { bytes, count } => {
                check_run(bytes, *count)?;
                let mut rest: &[u8] = bytes;
                // The framing was checked whole above, so every length read here is whole.
                while let Some((len, header)) = read_len(rest) {
                    each(&rest[header..header + len]);
                    rest = &rest[header + len..];
                }
            }
        }
        Ok(())
    }

    /// Whether a run's framing adds up (a single event always does).
    pub fn check(&self) -> Result<(), WireError> {
        match self {
            Events::One(_) => Ok(()),
            Events::Run { bytes, count } => check_run(bytes, *count),
        }
    }
}

/// A varint length at the start of `b` and the bytes it took, if it is whole and the data it announces is there.
/// Events under 128 bytes (most) have a one-byte length, read without prost's general varint path.
#[inline]
fn read_len(b: &[u8]) -> Option<(usize, usize)> {
    let (len, header) = match b.first() {
        Some(&byte) if byte < 0x80 => (usize::from(byte), 1),
        _ => {
            let mut rest = b;
            let len = usize::try_from(prost::encoding::decode_varint(&mut rest).ok()?).ok()?;
            (len, b.len() - rest.len())
        }
    };
    (len <= b.len() - header).then_some((len, header))
}

fn check_run(mut b: &[u8], count: u32) -> Result<(), WireError> {
    let mut seen: u32 = 0;
    while !b.is_empty() {
        let (len, header) = read_len(b).ok_or(WireError("a run of events that ends inside an event"))?;
        b = &b[header + len..];
        seen = seen.saturating_add(1);
    }
    if seen == count { Ok(()) } else { Err(WireError("a run of events whose count is not its number of events")) }
}

/// The encoded form of `event`.
pub fn encode_event(event: &Event) -> Bytes {
    let mut buf = Vec::with_capacity(datawire::event_len(event));
    datawire::write_event(event, &mut buf);
    Bytes::from(buf)
}

/// The event, checked as [`Event::from_pb`] checks it.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DataError> {
    datawire::read_event(bytes)
}

/// A frame that is not a valid run of messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub &'static str);

/// A run being gathered by [`to_wire`]: its first piece (one event, or a run a link gathered) stays as it is until
/// something joins it, so a lone run is not copied.
struct RunBuilder {
    header: Arc<Header>,
    first: Option<Events>,
    bytes: BytesMut,
    count: u32,
}

impl RunBuilder {
    fn new(header: Arc<Header>, events: Events) -> RunBuilder {
        let mut run = RunBuilder { header, first: None, bytes: BytesMut::new(), count: 0 };
        run.push(events);
        run
    }

    fn joins(&self, e: &Envelope) -> bool {
        e.route.is_none() && (Arc::ptr_eq(&self.header, &e.header) || *self.header == *e.header)
    }

    fn push(&mut self, events: Events) {
        if self.count == 0 {
            self.count = events.count();
            self.first = Some(events);
            return;
        }
        if let Some(first) = self.first.take() {
            self.append(first);
        }
        self.count += events.count();
        self.append(events);
    }

    fn append(&mut self, events: Events) {
        match events {
            Events::One(b) => append_framed(&mut self.bytes, &b),
            Events::Run { bytes, .. } => self.bytes.extend_from_slice(&bytes),
        }
    }

    fn finish(self) -> Envelope {
        let events = match self.first {
            Some(first) => first,
            None => Events::Run { bytes: self.bytes.freeze(), count: self.count },
        };
        Envelope { header: self.header, route: None, events }
    }
}

/// An event as a link appends it to a run: still typed (written straight into the run) or already encoded (one the
/// node forwards).
#[derive(Debug, Clone, Copy)]
pub enum EventRef<'a> {
    Typed(&'a Event),
    Encoded(&'a [u8]),
}

/// Events published one after another to one header, gathered where they are published (a link's outbox) and
/// written straight into their run's bytes: no buffer, queue entry or free per event.
#[derive(Debug)]
pub struct OpenRun {
    pub header: Arc<Header>,
    bytes: BytesMut,
    count: u32,
}

impl OpenRun {
    pub fn new(header: Arc<Header>, room: usize) -> OpenRun {
        OpenRun { header, bytes: BytesMut::with_capacity(room), count: 0 }
    }

    /// Appends one event, framed as in a run.
    pub fn push(&mut self, event: EventRef<'_>) {
        match event {
            EventRef::Typed(e) => {
                let len = datawire::event_len(e);
                prost::encoding::encode_varint(len as u64, &mut self.bytes);
                self.bytes.reserve(len);
                datawire::write_event(e, &mut self.bytes);
            }
            EventRef::Encoded(b) => append_framed(&mut self.bytes, b),
        }
        self.count += 1;
    }

    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn into_envelope(self) -> Envelope {
        Envelope {
            header: self.header,
            route: None,
            events: Events::Run { bytes: self.bytes.freeze(), count: self.count },
        }
    }
}

fn append_framed(buf: &mut BytesMut, event: &[u8]) {
    prost::encoding::encode_varint(event.len() as u64, buf);
    buf.extend_from_slice(event);
}

/// The wire form of messages queued together, in order: consecutive messages with one header and no route go as one
/// run of events; each header is written where it changes and left empty where it repeats. One message goes as a
/// `Message` frame of its own.
pub fn to_wire(envelopes: Vec<Envelope>) -> pb::frame::Body {
    let mut merged: Vec<Envelope> = Vec::with_capacity(envelopes.len().min(16));
    let mut run: Option<RunBuilder> = None;
    for e in envelopes {
        match &mut run {
            Some(r) if r.joins(&e) => r.push(e.events),
            _ => {
                merged.extend(run.take().map(RunBuilder::finish));
                if e.route.is_none() {
                    run = Some(RunBuilder::new(e.header, e.events));
                } else {
                    merged.push(e);
                }
            }
        }
    }
    merged.extend(run.map(RunBuilder::finish));

    let mut previous: Option<Arc<Header>> = None;
    let mut messages: Vec<pb::Message> = merged
        .into_iter()
        .map(|e| {
            let repeats = previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &e.header) || **p == *e.header);
            let mut message = match e.events {
                Events::One(event) => pb::Message { event, ..Default::default() },
                Events::Run { bytes, count } => pb::Message { events: bytes, event_count: count, ..Default::default() },
            };
            message.route = e.route.map(|r| *r);
            if !repeats {
                message.topic = e.header.topic.clone();
                message.origin = e.header.origin.clone();
                message.relay_to = e.header.relay_to.clone();
            }
            previous = Some(e.header);
            message
        })
        .collect();
    match messages.pop() {
        Some(only) if messages.is_empty() => pb::frame::Body::Message(only),
        Some(last) => {
            messages.push(last);
            pb::frame::Body::Messages(pb::Messages { messages })
        }
        None => pb::frame::Body::Messages(pb::Messages::default()),
    }
}

/// Reads the messages of one frame in order, handing each to `each` with its header filled in (shared by the run
/// it belongs to). Stops at the first message that has no header to take: a first message without a topic.
pub fn from_wire(messages: Vec<pb::Message>, mut each: impl FnMut(Envelope)) -> Result<(), WireError> {
    let mut current: Option<Arc<Header>> = None;
    for m in messages {
        let header = if m.topic.is_empty() {
            match &current {
                Some(h) => Arc::clone(h),
                None => return Err(WireError("a message needs a topic")),
            }
        } else {
            let h = Arc::new(Header { topic: m.topic, origin: m.origin, relay_to: m.relay_to });
            current = Some(Arc::clone(&h));
            h
        };
        let events = match m.event_count {
            0 => Events::One(m.event),
            count if m.route.is_none() && m.event.is_empty() => Events::Run { bytes: m.events, count },
            _ => return Err(WireError("a run of events with a route or a single event")),
        };
        each(Envelope { header, route: m.route.map(Box::new), events });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Data;

    fn envelope(header: &Arc<Header>, n: u64) -> Envelope {
        Envelope::one(Arc::clone(header), None, encode_event(&Event::new("T::n", vec![Data::Count(n)])))
    }

    fn messages_of(body: pb::frame::Body) -> Vec<pb::Message> {
        match body {
            pb::frame::Body::Message(m) => vec![m],
            pb::frame::Body::Messages(b) => b.messages,
            _ => unreachable!(),
        }
    }

    fn read(body: pb::frame::Body) -> Result<Vec<Envelope>, WireError> {
        let mut out = Vec::new();
        from_wire(messages_of(body), |e| out.push(e))?;
        Ok(out)
    }

    /// Every event of the envelopes, in order, with its header.
    fn events_of(envelopes: &[Envelope]) -> Vec<(Header, Event)> {
        let mut out = Vec::new();
        for e in envelopes {
            e.events.for_each(|b| out.push(((*e.header).clone(), decode_event(b).unwrap()))).unwrap();
        }
        out
    }

    fn routed(header: &Arc<Header>, n: u64) -> Envelope {
        let route = pb::PoolRoute { pool: "proxy".into(), key: vec![n as u8], epoch: 1, hops: 0 };
        Envelope { route: Some(Box::new(route)), ..envelope(header, n) }
    }

    #[test]
    fn messages_with_one_header_and_no_route_travel_as_one_run() {
        let a = Header::new("zeek/cluster/node/worker-2", "worker-1");
        let same_as_a = Header::new("zeek/cluster/node/worker-2", "worker-1");
        let relayed = Arc::new(Header { relay_to: vec!["worker-3".into()], ..(*a).clone() });
        let sent = vec![
            envelope(&a, 1),
            envelope(&same_as_a, 2),
            envelope(&relayed, 3),
            routed(&relayed, 4),
            envelope(&a, 5),
            envelope(&a, 6),
            envelope(&a, 7),
        ];
        let body = to_wire(sent.clone());
        let pb::frame::Body::Messages(batch) = &body else { panic!("several messages make a Messages frame") };
        let shape: Vec<(bool, u32)> = batch.messages.iter().map(|m| (!m.topic.is_empty(), m.event_count)).collect();
        // a run of two; one relayed event; the routed one (same header: not written again); a run of three.
        assert_eq!(shape, [(true, 2), (true, 0), (false, 0), (true, 3)]);
        let got = read(body).unwrap();
        assert_eq!(events_of(&got), events_of(&sent));
        assert_eq!(got.iter().map(Envelope::count).sum::<u32>(), 7);
        assert!(got[2].route.is_some() && got[3].route.is_none());
    }

    #[test]
    fn a_relayed_run_joins_the_messages_around_it() {
        let h = Header::new("t", "manager");
        let mut run = read(to_wire(vec![envelope(&h, 1), envelope(&h, 2)])).unwrap();
        assert_eq!(run.len(), 1, "one run");
        let sent = vec![envelope(&h, 0), run.remove(0), envelope(&h, 3)];
        let got = read(to_wire(sent.clone())).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].count(), 4);
        assert_eq!(events_of(&got), events_of(&sent));
    }

    #[test]
    fn a_node_shares_one_header_per_topic_and_relay_list() {
        let cache = HeaderCache::new("worker-1");
        let a = cache.get("t", &[]);
        assert!(Arc::ptr_eq(&a, &cache.get("t", &[])));
        assert_eq!(*a, *Header::new("t", "worker-1"));
        let relayed = cache.get("t", &["worker-2"]);
        assert_eq!(relayed.relay_to, ["worker-2"]);
        assert!(Arc::ptr_eq(&relayed, &cache.get("t", &["worker-2"])));
        assert_eq!(cache.get("t", &["worker-3"]).relay_to, ["worker-3"]);
        assert_ne!(cache.get("u", &[]).topic, a.topic);
    }

    #[test]
    fn a_lone_message_is_a_message_frame() {
        let h = Header::new("t", "w");
        assert!(
            matches!(to_wire(vec![envelope(&h, 1)]), pb::frame::Body::Message(m) if m.topic == "t" && m.event_count == 0)
        );
    }

    #[test]
    fn malformed_runs_headless_messages_and_undecodable_events_are_errors() {
        let headless = pb::Message { event: encode_event(&Event::new("T::n", vec![])), ..Default::default() };
        assert_eq!(from_wire(vec![headless], |_| {}), Err(WireError("a message needs a topic")));
        assert!(decode_event(&[0xff, 0xff]).is_err());
        assert!(decode_event(&[]).is_err(), "an event needs a name");

        let h = Header::new("t", "w");
        let run = messages_of(to_wire(vec![envelope(&h, 1), envelope(&h, 2)]))[0].events.clone();
        let message =
            |events: Bytes, event_count| pb::Message { topic: "t".into(), events, event_count, ..Default::default() };
        // What reading the run hands out, and how it ends.
        let read_run = |events: Bytes, count: u32| {
            let mut got = Vec::new();
            from_wire(vec![message(events, count)], |e| got.push(e)).unwrap();
            let mut handed = 0;
            let end = got[0].events.for_each(|_| handed += 1);
            (handed, end)
        };
        let ends_inside = Err(WireError("a run of events that ends inside an event"));
        assert_eq!(
            read_run(run.clone(), 3),
            (0, Err(WireError("a run of events whose count is not its number of events")))
        );
        assert_eq!(read_run(run.slice(..run.len() - 1), 2), (0, ends_inside.clone()));
        assert_eq!(read_run(Bytes::from_static(&[0xff]), 1), (0, ends_inside));
        assert_eq!(read_run(run.clone(), 2), (2, Ok(())));
        let with_route = pb::Message { route: Some(pb::PoolRoute::default()), ..message(run, 2) };
        assert!(from_wire(vec![with_route], |_| {}).is_err(), "a run has no route");
    }
}
