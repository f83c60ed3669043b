//! Event messages as a node receives them (cluster/envelope.rs): arbitrary bytes decoded as a `Messages` frame, each
//! message's header filled in from the run it belongs to, each event (alone or in a run) decoded into typed values.
//! Bad input must be an error, never a panic; what decodes must encode back to messages that decode to the same
//! events, in order.
#![no_main]

use prost::Message as _;
use zeek_node::cluster::envelope::{Envelope, Header, decode_event, encode_event, from_wire, to_wire};
use zeek_node::cluster::proto::pb;
use zeek_node::cluster::Event;

/// Every event that decodes, with its message's header and route, in order.
fn events(messages: Vec<pb::Message>) -> Vec<(Header, Option<pb::PoolRoute>, Event)> {
    let mut out = Vec::new();
    let _ = from_wire(messages, |e| {
        let _ = e.events.for_each(|b| {
            if let Ok(ev) = decode_event(b) {
                out.push(((*e.header).clone(), e.route.as_deref().cloned(), ev));
            }
        });
    });
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(batch) = pb::Messages::decode(data) else { return };
    let expected = events(batch.messages);
    // Good events, re-encoded and sent again under their headers, come back as the same events.
    let resent: Vec<Envelope> = expected
        .iter()
        .map(|(h, route, ev)| Envelope::one(h.clone().into(), route.clone().map(Box::new), encode_event(ev)))
        .collect();
    let messages = match to_wire(resent) {
        pb::frame::Body::Message(m) => vec![m],
        pb::frame::Body::Messages(b) => b.messages,
        _ => unreachable!("to_wire makes message frames"),
    };
    assert_eq!(events(messages), expected);
});
