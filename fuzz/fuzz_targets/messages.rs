//! Event messages as a node receives them (cluster/envelope.rs): arbitrary bytes decoded as a `Messages` frame, each
//! message's header filled in from the run it belongs to, each event decoded into typed values. Bad input must be
//! an error, never a panic; what decodes must encode back to messages that decode to the same events.
#![no_main]

use prost::Message as _;
use zeek_node::cluster::envelope::{Envelope, encode_event, from_wire, to_wire};
use zeek_node::cluster::proto::pb;

fn read(messages: Vec<pb::Message>) -> Vec<Envelope> {
    let mut out = Vec::new();
    let _ = from_wire(messages, |e| out.push(e));
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(batch) = pb::Messages::decode(data) else { return };
    let envelopes = read(batch.messages);
    let decoded: Vec<_> = envelopes.iter().map(|e| e.decode_event()).collect();
    // Good events, re-encoded and sent again under their headers, come back as the same events.
    let resent: Vec<Envelope> = envelopes
        .iter()
        .zip(&decoded)
        .filter_map(|(e, d)| d.as_ref().ok().map(|ev| Envelope { event: encode_event(ev.clone()), ..e.clone() }))
        .collect();
    let expected: Vec<_> = resent.iter().map(|e| (e.header.clone(), e.decode_event().ok())).collect();
    let messages = match to_wire(resent) {
        pb::frame::Body::Message(m) => vec![m],
        pb::frame::Body::Messages(b) => b.messages,
        _ => unreachable!("to_wire makes message frames"),
    };
    let back: Vec<_> = read(messages).iter().map(|e| (e.header.clone(), e.decode_event().ok())).collect();
    assert_eq!(back, expected);
});
