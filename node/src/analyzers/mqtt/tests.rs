use super::parse::{MqttError, parse_pdu, remaining_length};
use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, XorShift, row};

/// The remaining length as the spec encodes it: seven bits a byte, low first, the high bit for "more".
fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A control packet: the fixed header byte, the remaining length, the body.
fn pdu(fixed_header: u8, body: &[u8]) -> Vec<u8> {
    [&[fixed_header][..], &varint(body.len()), body].concat()
}

/// `MQTT_string`.
fn string(s: &[u8]) -> Vec<u8> {
    let len = u16::try_from(s.len()).expect("a test string is short");
    [&len.to_be_bytes()[..], s].concat()
}

struct ConnectMsg<'a> {
    proto_name: &'a [u8],
    version: u8,
    client_id: &'a [u8],
    will: Option<(&'a [u8], &'a [u8])>,
    user: Option<&'a [u8]>,
    pass: Option<&'a [u8]>,
}

impl ConnectMsg<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut flags = 0x02; // clean session
        if self.will.is_some() {
            flags |= 0x04;
        }
        if self.user.is_some() {
            flags |= 0x80;
        }
        if self.pass.is_some() {
            flags |= 0x40;
        }
        let mut body = string(self.proto_name);
        body.extend([self.version, flags, 0, 60]);
        body.extend(string(self.client_id));
        if let Some((topic, msg)) = self.will {
            body.extend(string(topic));
            body.extend(string(msg));
        }
        for s in [self.user, self.pass].into_iter().flatten() {
            body.extend(string(s));
        }
        pdu(0x10, &body)
    }
}

/// The Paho client's CONNECT of Zeek's mqtt.pcap: MQTT 3.1 (`MQIsdp`, version 3).
fn paho_connect(client_id: &str) -> Vec<u8> {
    ConnectMsg {
        proto_name: b"MQIsdp",
        version: 3,
        client_id: client_id.as_bytes(),
        will: None,
        user: None,
        pass: None,
    }
    .bytes()
}

fn connack(return_code: u8) -> Vec<u8> {
    pdu(0x20, &[0, return_code])
}

fn publish(qos: u8, retain: bool, topic: &str, msg_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic.as_bytes());
    if qos != 0 {
        body.extend(msg_id.to_be_bytes());
    }
    body.extend(payload);
    pdu(0x30 | (qos << 1) | u8::from(retain), &body)
}

/// PUBACK (4), PUBREC (5), PUBREL (6, with its reserved flags 0b0010), PUBCOMP (7), UNSUBACK (11).
fn id_only(msg_type: u8, msg_id: u16) -> Vec<u8> {
    let flags = if msg_type == 6 { 0x02 } else { 0 };
    pdu(msg_type << 4 | flags, &msg_id.to_be_bytes())
}

fn subscribe(msg_id: u16, topics: &[(&str, u8)]) -> Vec<u8> {
    let mut body = msg_id.to_be_bytes().to_vec();
    for (topic, qos) in topics {
        body.extend(string(topic.as_bytes()));
        body.push(*qos);
    }
    pdu(0x82, &body)
}

fn suback(msg_id: u16, granted: &[u8]) -> Vec<u8> {
    pdu(0x90, &[&msg_id.to_be_bytes()[..], granted].concat())
}

fn unsubscribe(msg_id: u16, topics: &[&str]) -> Vec<u8> {
    let mut body = msg_id.to_be_bytes().to_vec();
    for topic in topics {
        body.extend(string(topic.as_bytes()));
    }
    pdu(0xa2, &body)
}

const PINGREQ: [u8; 2] = [0xc0, 0];
const DISCONNECT: [u8; 2] = [0xe0, 0];

/// Each `(time, from the client?, delivery)` in turn, then the connection's end at `end`.
fn run_with(mqtt: &mut Mqtt, deliveries: &[(f64, bool, Vec<u8>)], end: f64) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 1883);
    for (ts, is_orig, d) in deliveries {
        h.run(*ts, |ctx| mqtt.deliver(ctx, *is_orig, d));
    }
    h.run(end, |ctx| mqtt.finish(ctx));
    h
}

fn run(deliveries: &[(f64, bool, Vec<u8>)]) -> Harness {
    run_with(&mut Mqtt::default(), deliveries, 200.0)
}

#[test]
fn connect_and_connack_write_the_connect_record() {
    let will = ConnectMsg {
        proto_name: b"MQTT",
        version: 4,
        client_id: b"sensor-7",
        will: Some((b"status/sensor-7", b"offline")),
        user: Some(b"alice"),
        pass: Some(b"secret"),
    };
    let h = run(&[(100.0, true, will.bytes()), (100.5, false, connack(0))]);
    assert_eq!(
        h.timed_columns("mqtt_connect"),
        [row(["100.000000", "MQTT", "3.1.1", "sensor-7", "Connection Accepted", "status/sensor-7", "offline"])]
    );
    assert_eq!(h.actions, [Action::Confirm("mqtt")]);
    assert!(h.weirds.is_empty());
}

#[test]
fn every_connack_writes_the_record_as_it_stands() {
    // A CONNACK without a CONNECT (joined mid-stream): the record starts then, its connect fields unset. A refused
    // connection's CONNACK, then a second attempt with MQTT 5's version and no will: the will stays from before.
    let first = ConnectMsg { proto_name: b"MQTT", version: 4, client_id: b"c1", will: None, user: None, pass: None };
    let second = ConnectMsg { version: 5, client_id: b"c2", ..first };
    let with_will = ConnectMsg { will: Some((b"t", b"")), client_id: b"c1", ..first };
    let h = run(&[
        (100.0, false, connack(2)),
        (101.0, true, with_will.bytes()),
        (101.5, false, connack(1)),
        (102.0, true, second.bytes()),
        (102.5, false, connack(9)),
    ]);
    assert_eq!(
        h.timed_columns("mqtt_connect"),
        [
            row(["100.000000", "-", "-", "-", "Refused: identifier rejected", "-", "-"]),
            row(["100.000000", "MQTT", "3.1.1", "c1", "Refused: unacceptable protocol version", "t", "(empty)"]),
            row(["100.000000", "MQTT", "5.0", "c2", "unknown-return-code-9", "t", "(empty)"]),
        ]
    );
}

#[test]
fn protocol_versions_are_named_as_the_grammars_int8_becomes_a_count() {
    assert_eq!(version_name(3), "3.1");
    assert_eq!(version_name(6), "unknown-version-6");
    assert_eq!(version_name(-1), "unknown-version-18446744073709551615");
    let odd = ConnectMsg { proto_name: b"MQTT", version: 0x80, client_id: b"", will: None, user: None, pass: None };
    let h = run(&[(1.0, true, odd.bytes()), (1.1, false, connack(0))]);
    assert_eq!(h.columns("mqtt_connect")[0][1], "unknown-version-18446744073709551488");
    assert_eq!(h.columns("mqtt_connect")[0][2], "(empty)");
}

#[test]
fn subscriptions_wait_for_their_acknowledgement() {
    let h = run(&[
        (100.0, true, subscribe(1, &[("a/b", 0), ("c/#", 2)])),
        (100.1, true, unsubscribe(2, &["x", "y,z"])),
        (100.2, false, suback(9, &[0])),
        (100.3, false, suback(1, &[1, 2])),
        (100.4, false, id_only(11, 2)),
        (100.5, false, id_only(11, 2)),
    ]);
    assert_eq!(
        h.timed_columns("mqtt_subscribe"),
        [
            // SUBACK's grammar reads one granted QoS, the first.
            row(["100.000000", "MQTT::SUBSCRIBE", "a/b,c/#", "0,2", "1", "T"]),
            row(["100.100000", "MQTT::UNSUBSCRIBE", "x,y\\x2cz", "-", "-", "T"]),
        ]
    );
    assert!(h.actions.is_empty(), "no CONNECT or PUBLISH confirms");
}

#[test]
fn publishes_are_written_when_their_qos_flow_completes() {
    let h = run(&[
        (100.0, true, publish(0, false, "t/0", 0, b"zero")),
        (101.0, true, publish(1, true, "t/1", 7, b"one")),
        (102.0, true, publish(2, false, "t/2", 8, b"two")),
        (102.5, false, id_only(4, 8)), // a PUBACK for the QoS 2 message changes nothing
        (103.0, false, id_only(5, 8)),
        (103.1, true, id_only(6, 8)),
        (103.2, false, id_only(7, 8)),
        (103.3, false, id_only(4, 7)),
        (104.0, false, publish(1, false, "t/3", 9, b"")),
        (104.1, true, id_only(4, 9)),
    ]);
    assert_eq!(
        h.timed_columns("mqtt_publish"),
        [
            row(["100.000000", "T", "F", "at most once", "ok", "t/0", "zero", "4"]),
            row(["102.000000", "T", "F", "exactly once", "ok", "t/2", "two", "3"]),
            row(["101.000000", "T", "T", "at least once", "ok", "t/1", "one", "3"]),
            row(["104.000000", "F", "F", "at least once", "ok", "t/3", "(empty)", "0"]),
        ]
    );
    assert_eq!(h.actions, [Action::Confirm("mqtt")]);
}

#[test]
fn qos_2_needs_pubrec_pubrel_and_pubcomp() {
    // Without the PUBREL the PUBCOMP does not complete it; a QoS 3 message (no such level) has an id too.
    let deliveries = [
        (100.0, true, publish(2, false, "t", 1, b"p")),
        (100.1, false, id_only(5, 1)),
        (100.2, false, id_only(7, 1)),
        (100.3, true, publish(3, false, "u", 2, b"q")),
        (100.4, false, id_only(4, 2)),
    ];
    let h = run_with(&mut Mqtt::default(), &deliveries, 100.5);
    assert!(h.logged("mqtt_publish").is_empty());
    // Until they expire.
    let h = run_with(&mut Mqtt::default(), &deliveries, 110.5);
    let statuses: Vec<String> = h.columns("mqtt_publish").into_iter().map(|r| format!("{} {}", r[2], r[3])).collect();
    assert_eq!(statuses, ["exactly once incomplete_qos", "unknown-qos-level-3 incomplete_qos"]);
    let pdu = parse_pdu(&[0x36, 0x06, 0, 1, b'u', 0, 2, b'q']);
    let Ok(Message::Publish(p)) = pdu.message else { panic!("{pdu:?}") };
    assert_eq!((p.qos, p.msg_id, p.payload), (3, Some(2), &b"q"[..]));
    assert_eq!(qos_name(3), "unknown-qos-level-3");
}

#[test]
fn a_message_id_reused_before_its_flow_ends_replaces_the_entry() {
    // A QoS 0 publish takes id 0: it deletes a pending entry of id 0.
    let h = run(&[
        (100.0, true, publish(1, false, "first", 5, b"1")),
        (100.1, false, publish(1, false, "second", 5, b"2")),
        (100.2, true, id_only(4, 5)),
        (100.3, true, publish(1, false, "zero id", 0, b"3")),
        (100.4, true, publish(0, false, "qos 0", 0, b"4")),
        (100.5, false, id_only(4, 0)),
    ]);
    let topics: Vec<String> = h.columns("mqtt_publish").into_iter().map(|r| r[4].clone()).collect();
    assert_eq!(topics, ["second", "qos 0"]);
}

#[test]
fn payloads_are_cut_at_max_payload_size_and_their_length_kept() {
    let long = vec![b'x'; 150];
    let h = run(&[(1.0, true, publish(0, false, "t", 0, &long))]);
    let cols = &h.columns("mqtt_publish")[0];
    assert_eq!((cols[5].len(), cols[6].as_str()), (MAX_PAYLOAD_SIZE, "150"));
}

/// Unacknowledged entries are written by the tables' expiry: 5 s after they were written, at the tables' checks
/// (one right after the first MQTT event, then every 10 s), while the connection lives.
#[test]
fn unacknowledged_entries_expire_at_the_tables_checks() {
    let h = run_with(
        &mut Mqtt::default(),
        &[
            (100.0, true, paho_connect("c")),
            (103.0, true, publish(1, false, "t", 1, b"p")),
            (104.0, true, subscribe(2, &[("s", 1)])),
            (109.0, true, PINGREQ.to_vec()), // the check at 110 is not due yet
        ],
        111.0,
    );
    assert_eq!(
        h.timed_columns("mqtt_publish"),
        [row(["103.000000", "T", "F", "at least once", "incomplete_qos", "t", "p", "1"])]
    );
    assert_eq!(h.timed_columns("mqtt_subscribe"), [row(["104.000000", "MQTT::SUBSCRIBE", "s", "1", "-", "F"])]);

    // The check at 110 finds the publish of 105.5 too young (not before 105): it goes with the connection.
    let h = run_with(
        &mut Mqtt::default(),
        &[(100.0, true, paho_connect("c")), (105.5, true, publish(1, false, "t", 1, b"p"))],
        119.0,
    );
    assert!(h.logged("mqtt_publish").is_empty());

    // Written at a delivery of the connection once a check is due, before that delivery's own message.
    let h = run(&[(100.0, true, publish(2, false, "late", 1, b"p")), (130.0, true, publish(0, false, "now", 0, b"q"))]);
    let topics: Vec<String> = h.columns("mqtt_publish").into_iter().map(|r| r[4].clone()).collect();
    assert_eq!(topics, ["late", "now"]);
}

#[test]
fn remaining_lengths_decode_as_calc_header_length() {
    assert_eq!(remaining_length(&[]), (0, None));
    assert_eq!(remaining_length(&[0x7f]), (127, None));
    assert_eq!(remaining_length(&[0x80, 0x01]), (128, None));
    assert_eq!(remaining_length(&[0xff, 0x7f]), (16_383, None));
    assert_eq!(remaining_length(&[0x80, 0x80, 0x01]), (16_384, None));
    assert_eq!(remaining_length(&[0xff, 0xff, 0x7f]), (2_097_151, None));
    // A fourth byte passes the multiplier over 128³ whatever its value: "too large".
    assert_eq!(remaining_length(&[0x80, 0x80, 0x80, 0x01]), (0, Some(MqttError::LengthTooLarge)));
    assert_eq!(remaining_length(&[0x80, 0x80, 0x80, 0x00]), (0, Some(MqttError::LengthTooLarge)));
    assert_eq!(remaining_length(&[0x80; 5]), (0, Some(MqttError::TooManyLengthBytes)));
    for n in [0, 1, 127, 128, 129, 16_383, 16_384, 70_000] {
        let body = publish(0, false, "t", 0, &vec![b'p'; n]);
        let Ok(Message::Publish(p)) = parse_pdu(&body).message else { panic!("payload of {n}") };
        assert_eq!(p.payload.len(), n);
    }
}

#[test]
fn bad_remaining_lengths_are_violations() {
    let too_large = [0x30, 0x80, 0x80, 0x80, 0x01, 0, 1, b't'];
    let too_many = [0xc0, 0x80, 0x80, 0x80, 0x80, 0x01];
    for (bytes, reason) in [
        (&too_large[..], "malformed MQTT 'remaining length': too large"),
        (&too_many[..], "malformed MQTT 'remaining length': too many bytes"),
    ] {
        let h = run(&[(1.0, true, paho_connect("c")), (2.0, true, bytes.to_vec()), (3.0, false, connack(0))]);
        assert_eq!(h.actions, [Action::Confirm("mqtt"), Action::Violation(reason.into(), None)]);
        assert!(h.logged("mqtt_connect").is_empty(), "nothing after the violation");
    }
    // The length array running to the end of the delivery: a length of 0, which a PUBLISH cannot be.
    let h = run(&[(1.0, true, vec![0x30, 0x80])]);
    assert_eq!(h.violations(), ["Binpac exception: binpac exception: out_of_bound: MQTT_string:len: 2 > 0"]);
    // Empty commands parse with any length byte missing.
    let h = run(&[(1.0, true, vec![0xc0]), (1.1, false, vec![0xd0]), (1.2, true, vec![0xf0, 0x00])]);
    assert!(h.actions.is_empty());
}

#[test]
fn each_delivery_is_one_pdu() {
    // Two PDUs in one delivery: binpac's datagram parses the first and drops the rest.
    let both = [publish(0, false, "one", 0, b"1"), publish(0, false, "two", 0, b"2")].concat();
    let h = run(&[(1.0, true, both)]);
    let topics: Vec<String> = h.columns("mqtt_publish").into_iter().map(|r| r[4].clone()).collect();
    assert_eq!(topics, ["one"]);
    assert_eq!(h.actions, [Action::Confirm("mqtt")]);
}

/// A PDU split anywhere inside is cut short in its first delivery: binpac's `out_of_bound`, a violation, and
/// nothing logged; split only between PDUs, every row is there.
#[test]
fn a_pdu_split_at_any_byte_is_cut_short() {
    let message = publish(1, false, "sensors/t", 3, b"21.5");
    for at in 1..message.len() {
        let (first, second) = message.split_at(at);
        let h = run(&[(1.0, true, first.to_vec()), (1.1, true, second.to_vec()), (1.2, false, id_only(4, 3))]);
        assert!(h.logged("mqtt_publish").is_empty(), "split at {at}");
        let reason = h.violations();
        assert_eq!(reason.len(), 1, "split at {at}");
        assert!(reason[0].starts_with("Binpac exception: binpac exception: out_of_bound: "), "split at {at}");
    }
    let whole = run(&[(1.0, true, message.clone()), (1.2, false, id_only(4, 3))]);
    assert_eq!(whole.logged("mqtt_publish").len(), 1);
}

#[test]
fn cut_short_fields_are_named_as_binpac_names_them() {
    let cases: [(Vec<u8>, &str); 8] = [
        ([0x30, 0x05, 0, 3].to_vec(), "MQTT_PDU:command: 7 > 4"),
        (pdu(0x30, &[0, 9, b'a']), "MQTT_string:str: 11 > 3"),
        (pdu(0x30, &[0]), "MQTT_string:len: 2 > 1"),
        (pdu(0x32, &[0, 1, b'a', 0]), "MQTT_publish:msg_id: 5 > 4"),
        (pdu(0x20, &[0]), "MQTT_connack: 2 > 1"),
        (pdu(0x90, &[0, 1]), "MQTT_suback: 3 > 2"),
        // Offsets count from the topic's own record.
        (pdu(0x82, &[0, 1, 0, 1, b'a']), "MQTT_subscribe_topic:requested_QoS: 4 > 3"),
        // Version, flags and keep-alive are checked at once.
        (pdu(0x10, &[0, 4, b'M', b'Q', b'T', b'T', 4]), "MQTT_connect:keep_alive: 10 > 7"),
    ];
    for (bytes, at) in cases {
        let reason = parse_pdu(&bytes).message.map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(reason, Err(format!("Binpac exception: binpac exception: out_of_bound: {at}")), "{bytes:02x?}");
    }
}

/// Zeek's mqtt.pcap as its baselines describe it (scripts.base.protocols.mqtt.mqtt): a Paho client subscribes to
/// `SampleTopic` and gets the retained message, a second one publishes to it and disconnects, and the first gets
/// that message. The baseline rows, ts and uid aside (masked there), through the engine.
#[test]
fn zeeks_mqtt_trace_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::{tcp_conversation, tcp_exchange};

    const CLIENT: [u8; 4] = [10, 0, 1, 4];
    const BROKER: ([u8; 4], u16) = ([198, 41, 30, 241], 1883);
    let (connect1, connect2) = (paho_connect("paho/34AAE54A75D839566E"), paho_connect("paho/DDE4DDAF4108D3E363"));
    let retained = publish(0, true, "SampleTopic", 0, b"Hello from the Paho blocking client");
    let hello = publish(0, false, "SampleTopic", 0, b"Hello MQTT");
    let subscriber: Vec<(bool, &[u8])> = vec![
        (true, &connect1),
        (false, &[0x20, 2, 0, 0]),
        (true, &[0x82, 16, 0, 1, 0, 11, b'S', b'a', b'm', b'p', b'l', b'e', b'T', b'o', b'p', b'i', b'c', 0]),
        (false, &[0x90, 3, 0, 1, 0]),
        (false, &retained),
        (false, &hello),
    ];
    let publisher: Vec<(bool, &[u8])> =
        vec![(true, &connect2), (false, &[0x20, 2, 0, 0]), (true, &hello), (true, &DISCONNECT)];
    let first = tcp_exchange((CLIENT, 49327), BROKER, &subscriber);
    let second = tcp_conversation((CLIENT, 49330), BROKER, &publisher);
    // The subscriber's handshake and messages, the publisher's connection, then the forwarded message.
    let cut = first.len() - 1;
    let frames: Vec<Vec<u8>> = [&first[..cut], &second[..], &first[cut..]].concat();
    let records = engine_records(&frames);

    let logged = |path: &str| -> Vec<Vec<String>> {
        records
            .iter()
            .filter(|r| r.schema.path == path)
            .map(|r| r.values[2..].iter().map(Value::to_tsv).collect())
            .collect()
    };
    let ids =
        |port: &str| [CLIENT.map(|b| b.to_string()).join("."), port.into(), "198.41.30.241".into(), "1883".into()];
    let with_id = |port: &str, rest: &[&str]| -> Vec<String> {
        ids(port).into_iter().chain(rest.iter().map(|s| s.to_string())).collect()
    };
    assert_eq!(
        logged("mqtt_connect"),
        [
            with_id("49327", &["MQIsdp", "3.1", "paho/34AAE54A75D839566E", "Connection Accepted", "-", "-"]),
            with_id("49330", &["MQIsdp", "3.1", "paho/DDE4DDAF4108D3E363", "Connection Accepted", "-", "-"]),
        ]
    );
    assert_eq!(logged("mqtt_subscribe"), [with_id("49327", &["MQTT::SUBSCRIBE", "SampleTopic", "0", "0", "T"])]);
    assert_eq!(
        logged("mqtt_publish"),
        [
            with_id(
                "49327",
                &["F", "T", "at most once", "ok", "SampleTopic", "Hello from the Paho blocking client", "35"]
            ),
            with_id("49330", &["T", "F", "at most once", "ok", "SampleTopic", "Hello MQTT", "10"]),
            with_id("49327", &["F", "F", "at most once", "ok", "SampleTopic", "Hello MQTT", "10"]),
        ]
    );
    // Every record carries its connection's uid; conn.log names the service.
    for conn in records.iter().filter(|r| r.schema.path == "conn") {
        assert_eq!(field(conn, "service"), "mqtt");
        let uid = field(conn, "uid");
        let port = field(conn, "id.orig_p");
        for r in records.iter().filter(|r| r.schema.path.starts_with("mqtt") && field(r, "id.orig_p") == port) {
            assert_eq!(field(r, "uid"), uid);
        }
    }
    assert_eq!(records.iter().filter(|r| r.schema.path == "conn").count(), 2);
}

/// scripts.base.protocols.mqtt.mqtt-payload-cap: `MQTT::max_payload_size = 8` cuts the payloads, not their lengths.
#[test]
fn payload_cap_baseline() {
    let h = run_with(
        &mut Mqtt::with_max_payload(8),
        &[
            (1.0, false, publish(0, true, "SampleTopic", 0, b"Hello from the Paho blocking client")),
            (2.0, true, publish(0, false, "SampleTopic", 0, b"Hello MQTT")),
        ],
        3.0,
    );
    assert_eq!(
        h.columns("mqtt_publish"),
        [
            row(["F", "T", "at most once", "ok", "SampleTopic", "Hello fr", "35"]),
            row(["T", "F", "at most once", "ok", "SampleTopic", "Hello MQ", "10"]),
        ]
    );
}

fn session() -> Vec<(f64, bool, Vec<u8>)> {
    let connect = ConnectMsg {
        proto_name: b"MQTT",
        version: 4,
        client_id: b"id",
        will: Some((b"w", b"bye")),
        user: Some(b"u"),
        pass: Some(b"p"),
    };
    vec![
        (1.0, true, connect.bytes()),
        (1.1, false, connack(0)),
        (1.2, true, subscribe(1, &[("a", 1), ("b", 2)])),
        (1.3, false, suback(1, &[1, 2])),
        (1.4, true, publish(2, false, "a", 2, &[0x01, 0, b'\\'])),
        (1.5, false, id_only(5, 2)),
        (1.6, true, id_only(6, 2)),
        (1.7, false, id_only(7, 2)),
        (1.8, true, unsubscribe(3, &["a"])),
        (1.9, false, id_only(11, 3)),
        (2.0, true, PINGREQ.to_vec()),
        (2.1, false, vec![0xd0, 0]),
        (2.2, true, DISCONNECT.to_vec()),
    ]
}

#[test]
fn a_whole_session_logs_each_flow() {
    let h = run(&session());
    assert_eq!(h.columns("mqtt_connect"), [row(["MQTT", "3.1.1", "id", "Connection Accepted", "w", "bye"])]);
    assert_eq!(
        h.columns("mqtt_subscribe"),
        [row(["MQTT::SUBSCRIBE", "a,b", "1,2", "1", "T"]), row(["MQTT::UNSUBSCRIBE", "a", "-", "-", "T"])]
    );
    assert_eq!(h.columns("mqtt_publish"), [row(["T", "F", "exactly once", "ok", "a", "\\x01\\x00\\\\", "3"])]);
    assert_eq!(h.actions, [Action::Confirm("mqtt")]);
}

#[test]
fn mutated_and_truncated_sessions_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let session = session();
    for _ in 0..3000 {
        let mut mutated = session.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() % mutated.len() as u64) as usize;
            let d = &mut mutated[i].2;
            match rng.next() % 3 {
                0 if !d.is_empty() => {
                    let at = (rng.next() % d.len() as u64) as usize;
                    d[at] = rng.next() as u8;
                }
                1 => d.truncate((rng.next() % (d.len() as u64 + 1)) as usize),
                _ => d.extend((0..rng.next() % 8).map(|_| rng.next() as u8)),
            }
        }
        let h = run(&mutated);
        assert!(h.violations().len() <= 1);
    }
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
        fuzz(&bytes);
        let _ = parse_pdu(&bytes);
    }
}

/// A PUBLISH larger than a segment, through the engine: its first segment is cut short, a violation after the
/// CONNECT confirmed, so analyzer.log says why and nothing more of the connection is analysed.
#[test]
fn a_publish_over_two_segments_ends_the_analysis() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    let big = publish(0, false, "bulk", 0, &vec![b'b'; 3000]);
    let (head, tail) = big.split_at(1400);
    let small = publish(0, false, "small", 0, b"s");
    let connect = paho_connect("c");
    let messages: Vec<(bool, &[u8])> =
        vec![(true, &connect), (false, &[0x20, 2, 0, 0]), (true, head), (true, tail), (true, &small)];
    let records = engine_records(&tcp_conversation(([10, 0, 0, 1], 50000), ([10, 0, 0, 2], 1883), &messages));
    let of = |path: &str| records.iter().filter(|r| r.schema.path == path).collect::<Vec<_>>();
    assert_eq!(of("mqtt_connect").len(), 1);
    assert!(of("mqtt_publish").is_empty());
    let failed = of("analyzer");
    assert_eq!(failed.len(), 1);
    assert_eq!(field(failed[0], "analyzer_name"), "MQTT");
    assert_eq!(
        field(failed[0], "failure_reason"),
        "Binpac exception: binpac exception: out_of_bound: MQTT_PDU:command: 3009 > 1400"
    );
}

/// A capture's clock that jumps far ahead passes over the checks that would find nothing, keeping their times.
#[test]
fn expiry_checks_keep_their_times_over_clock_jumps() {
    let topics = |end: f64| -> Vec<String> {
        let deliveries = [
            (100.0, true, publish(1, false, "old", 1, b"p")),
            (1e12 + 6.0, true, publish(1, false, "new", 2, b"q")),
            (1e12 + 9.5, true, PINGREQ.to_vec()),
        ];
        let h = run_with(&mut Mqtt::default(), &deliveries, end);
        h.columns("mqtt_publish").into_iter().map(|r| r[4].clone()).collect()
    };
    // Checks are at 100 + 10k: "old" expires at 110 (written when the clock jumped); "new" not at 1e12 + 10, for
    // it was written at 1e12 + 6, but at 1e12 + 20.
    assert_eq!(topics(1e12 + 19.9), ["old"]);
    assert_eq!(topics(1e12 + 20.0), ["old", "new"]);
}

/// One connection's pending entries are bounded: past 4 MiB of topics and payloads, an entry is written at once, as
/// its expiry would write it.
#[test]
fn pending_entries_are_bounded() {
    let topic = "t".repeat(60_000);
    let deliveries: Vec<(f64, bool, Vec<u8>)> =
        (1..=80).map(|id| (100.0, true, publish(1, false, &topic, id, b"p"))).collect();
    let h = run_with(&mut Mqtt::default(), &deliveries, 101.0);
    let rows = h.columns("mqtt_publish");
    // 69 entries of 60,001 bytes fit in 4 MiB.
    assert_eq!(rows.len(), 80 - 69);
    assert!(rows.iter().all(|r| r[3] == "incomplete_qos"));
}
