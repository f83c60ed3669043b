//! A published event on its way between nodes, and its wire form.
//!
//! The event travels encoded: the publisher encodes it once, a relay (the manager) forwards the bytes without
//! decoding them, and only the node that delivers it to handlers decodes it. The topic, origin and relay targets a
//! message shares with the messages queued around it (a [`Header`]) are written once per run in a `Messages` frame,
//! and a receiver shares one header among the messages of a run instead of allocating it for each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prost::Message as _;

use super::data::{DataError, Event};
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

/// One message: a header shared with its neighbours, the HRW route it was published with, the encoded event.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub header: Arc<Header>,
    /// Boxed: most messages have none, and envelopes are moved through queues.
    pub route: Option<Box<pb::PoolRoute>>,
    /// An encoded `pb::Event`.
    pub event: Bytes,
}

impl Envelope {
    /// About what the message adds to a frame (its event and a few bytes of framing), for sizing batches.
    pub fn wire_len(&self) -> usize {
        self.event.len() + 8
    }

    /// The event, checked as [`Event::from_pb`] checks it.
    pub fn decode_event(&self) -> Result<Event, DataError> {
        let pb = pb::Event::decode(self.event.clone())
            .map_err(|e| DataError(format!("an event that does not decode: {e}")))?;
        Event::from_pb(pb)
    }
}

/// The encoded form of `event`, taking its values instead of copying them.
pub fn encode_event(event: Event) -> Bytes {
    Bytes::from(event.into_pb().encode_to_vec())
}

/// A frame that is not a valid run of messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub &'static str);

/// The wire form of messages queued together, in order: each header is written where it changes and left empty
/// where it repeats. One message goes as a `Message` frame of its own.
pub fn to_wire(envelopes: Vec<Envelope>) -> pb::frame::Body {
    let mut previous: Option<Arc<Header>> = None;
    let mut messages: Vec<pb::Message> = envelopes
        .into_iter()
        .map(|e| {
            let repeats = previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &e.header) || **p == *e.header);
            let message = if repeats {
                pb::Message { event: e.event, route: e.route.map(|r| *r), ..Default::default() }
            } else {
                pb::Message {
                    topic: e.header.topic.clone(),
                    event: e.event,
                    origin: e.header.origin.clone(),
                    relay_to: e.header.relay_to.clone(),
                    route: e.route.map(|r| *r),
                }
            };
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
        each(Envelope { header, route: m.route.map(Box::new), event: m.event });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Data;

    fn envelope(header: &Arc<Header>, n: u64) -> Envelope {
        Envelope {
            header: Arc::clone(header),
            route: None,
            event: encode_event(Event::new("T::n", vec![Data::Count(n)])),
        }
    }

    fn read(body: pb::frame::Body) -> Result<Vec<Envelope>, WireError> {
        let messages = match body {
            pb::frame::Body::Message(m) => vec![m],
            pb::frame::Body::Messages(b) => b.messages,
            _ => unreachable!(),
        };
        let mut out = Vec::new();
        from_wire(messages, |e| out.push(e))?;
        Ok(out)
    }

    #[test]
    fn headers_are_written_once_per_run_and_come_back_for_every_message() {
        let a = Header::new("zeek/cluster/node/worker-2", "worker-1");
        let same_as_a = Header::new("zeek/cluster/node/worker-2", "worker-1");
        let relayed = Arc::new(Header { relay_to: vec!["worker-3".into()], ..(*a).clone() });
        let sent = vec![envelope(&a, 1), envelope(&same_as_a, 2), envelope(&relayed, 3), envelope(&a, 4)];
        let body = to_wire(sent.clone());
        let pb::frame::Body::Messages(batch) = &body else { panic!("several messages make a Messages frame") };
        let written: Vec<bool> = batch.messages.iter().map(|m| !m.topic.is_empty()).collect();
        assert_eq!(written, [true, false, true, true]);
        let got = read(body).unwrap();
        assert_eq!(got.len(), 4);
        for (g, s) in got.iter().zip(&sent) {
            assert_eq!(*g.header, *s.header);
            assert_eq!(g.decode_event().unwrap(), s.decode_event().unwrap());
        }
        assert!(Arc::ptr_eq(&got[0].header, &got[1].header), "a run shares one header");
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
        assert!(matches!(to_wire(vec![envelope(&h, 1)]), pb::frame::Body::Message(m) if m.topic == "t"));
    }

    #[test]
    fn a_run_without_a_first_header_and_undecodable_events_are_errors() {
        let headless = pb::Message { event: encode_event(Event::new("T::n", vec![])), ..Default::default() };
        assert_eq!(from_wire(vec![headless], |_| {}), Err(WireError("a message needs a topic")));
        let garbage = Envelope { header: Header::new("t", "w"), route: None, event: Bytes::from_static(&[0xff, 0xff]) };
        assert!(garbage.decode_event().is_err());
        let nameless = Envelope { header: Header::new("t", "w"), route: None, event: Bytes::new() };
        assert!(nameless.decode_event().is_err());
    }
}
