//! MQTT control packets as Zeek's binpac grammar reads them (src/analyzer/protocol/mqtt/mqtt-protocol.pac and
//! commands/*.pac).
//!
//! The grammar's flow is a `datagram` (mqtt.pac): each delivery of the stream is parsed as one `MQTT_PDU` on its own.
//! Bytes after that PDU are ignored, and a PDU cut short by the end of the delivery is binpac's `out_of_bound`
//! exception. The PDU is the fixed header byte, the remaining length as `uint8[] &until(($element & 0x80) != 0x80)`
//! (an array that also ends at the end of the delivery, as binpac's arrays without a length do), and the command,
//! `&length` the decoded remaining length. `calc_header_length` decodes that length as the spec's algorithm with one
//! quirk kept: it reports "too large" once its multiplier passes 128³, which a fourth length byte always does, so
//! only lengths of up to three bytes (2,097,151) are accepted. Its two violations do not stop the parse: the command
//! is then read with a length of 0.

use crate::analyzers::be_u16;

/// What binpac or the grammar's functions report: a violation (Zeek's `AnalyzerViolation`, or a binpac exception
/// caught by MQTT.cc's `DeliverStream`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    #[error("malformed MQTT 'remaining length': too many bytes")]
    TooManyLengthBytes,
    #[error("malformed MQTT 'remaining length': too large")]
    LengthTooLarge,
    /// A field past the end of its record's data, as binpac's `DataPtr::GenBoundaryCheck` reports it: the field as
    /// `Type:field` (or `Type` for a record of static size, checked whole), the bytes the record needs up to the
    /// field's end and the bytes it has.
    #[error("Binpac exception: binpac exception: out_of_bound: {at}: {need} > {have}")]
    OutOfBound { at: &'static str, need: usize, have: usize },
}

/// The `MQTT_msg_type` values.
pub mod msg_type {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
}

/// `MQTT_connect`, with the `&let` flags it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub protocol_name: &'a [u8],
    /// An `int8` in the grammar.
    pub protocol_version: i8,
    pub connect_flags: u8,
    pub keep_alive: u16,
    pub client_id: &'a [u8],
    /// Topic and message, when the will flag is set.
    pub will: Option<(&'a [u8], &'a [u8])>,
    pub username: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
}

/// `MQTT_publish`, with the fixed header's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    /// Bits 1-2 of the fixed header: 0 to 3.
    pub qos: u8,
    pub retain: bool,
    pub topic: &'a [u8],
    /// Present unless `qos` is 0.
    pub msg_id: Option<u16>,
    /// `&restofdata`: the rest of the command.
    pub payload: &'a [u8],
}

/// One command, as the `Command` case type parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Connect(Connect<'a>),
    Connack {
        session_present: bool,
        return_code: u8,
    },
    Publish(Publish<'a>),
    Puback(u16),
    Pubrec(u16),
    Pubrel(u16),
    Pubcomp(u16),
    /// The topics with their requested QoS.
    Subscribe {
        msg_id: u16,
        topics: Vec<(&'a [u8], u8)>,
    },
    /// Only one granted QoS is read, whatever the number of topics.
    Suback {
        msg_id: u16,
        granted_qos: u8,
    },
    Unsubscribe {
        msg_id: u16,
        topics: Vec<&'a [u8]>,
    },
    Unsuback(u16),
    Pingreq,
    Pingresp,
    Disconnect,
    /// Types 0 and 15: the case type's `default -> unknown : empty`.
    Unknown(u8),
}

/// One delivery parsed: the remaining length's violation if any (raised first, the parse goes on), then the
/// command or the exception that ended the parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu<'a> {
    pub length_violation: Option<MqttError>,
    pub message: Result<Message<'a>, MqttError>,
}

/// binpac's parse of one record's fields in order: `data` runs from the record's start to the end of what it may
/// use (its parent's end), `pos` is the next field's offset from that start.
struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8]) -> Self {
        Fields { data, pos: 0 }
    }

    /// The next `n` bytes. binpac checks a run of fields of static size at once, under the last one's name, so a
    /// caller takes such a run whole.
    fn take(&mut self, n: usize, at: &'static str) -> Result<&'a [u8], MqttError> {
        let need = self.pos.saturating_add(n);
        let taken = self.data.get(self.pos..need).ok_or(MqttError::OutOfBound { at, need, have: self.data.len() })?;
        self.pos = need;
        Ok(taken)
    }

    fn u8(&mut self, at: &'static str) -> Result<u8, MqttError> {
        self.take(1, at).map(|b| b[0])
    }

    fn u16(&mut self, at: &'static str) -> Result<u16, MqttError> {
        self.take(2, at).map(|b| be_u16(b, 0))
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// A record nested here (`MQTT_string`, `MQTT_subscribe_topic`): parsed from this position to the same end, and
    /// passed over once parsed.
    fn nested<T>(&mut self, parse: impl FnOnce(&mut Fields<'a>) -> Result<T, MqttError>) -> Result<T, MqttError> {
        let mut inner = Fields::new(self.rest());
        let value = parse(&mut inner)?;
        self.pos += inner.pos;
        Ok(value)
    }

    /// `MQTT_string`: a 16-bit length and that many bytes.
    fn string(&mut self) -> Result<&'a [u8], MqttError> {
        self.nested(|s| {
            let len = s.u16("MQTT_string:len")?;
            s.take(usize::from(len), "MQTT_string:str")
        })
    }

    /// A record of static size: binpac checks its whole size at once, under the record's name.
    fn fixed(&mut self, size: usize, at: &'static str) -> Result<Fields<'a>, MqttError> {
        let have = self.data.len().saturating_sub(self.pos);
        self.take(size, at).map(Fields::new).map_err(|_| MqttError::OutOfBound { at, need: size, have })
    }
}

/// `calc_header_length` over the remaining length's bytes: the length, or 0 with its violation.
pub fn remaining_length(bytes: &[u8]) -> (u32, Option<MqttError>) {
    if bytes.len() > 4 {
        return (0, Some(MqttError::TooManyLengthBytes));
    }
    let mut multiplier: u32 = 1;
    let mut value: u32 = 0;
    for b in bytes {
        value += u32::from(b & 0x7f) * multiplier;
        multiplier *= 128;
        if multiplier > 128 * 128 * 128 {
            return (0, Some(MqttError::LengthTooLarge));
        }
    }
    (value, None)
}

/// One delivery as one `MQTT_PDU`; what follows the PDU is ignored. `data` is not empty (Zeek delivers no empty
/// chunks; an empty one is the fixed header's `out_of_bound`).
pub fn parse_pdu(data: &[u8]) -> Pdu<'_> {
    let Some((&fixed_header, after_header)) = data.split_first() else {
        let message = Err(MqttError::OutOfBound { at: "MQTT_PDU:fixed_header", need: 1, have: 0 });
        return Pdu { length_violation: None, message };
    };
    // The array ends at its first byte without the continuation bit, or at the end of the delivery.
    let length_bytes = after_header.iter().position(|b| b & 0x80 == 0).map_or(after_header.len(), |at| at + 1);
    let length_field = after_header.get(..length_bytes).unwrap_or_default();
    let (real_length, length_violation) = remaining_length(length_field);
    // The command's `&length` is checked against the delivery before the command is parsed.
    let command_at = 1 + length_bytes;
    let need = usize::try_from(real_length).unwrap_or(usize::MAX).saturating_add(command_at);
    let message = data
        .get(command_at..need)
        .ok_or(MqttError::OutOfBound { at: "MQTT_PDU:command", need, have: data.len() })
        .and_then(|command| parse_command(fixed_header, command));
    Pdu { length_violation, message }
}

/// The `Command` case type over the command's `&length` bytes; bytes after the last field are passed over.
fn parse_command(fixed_header: u8, command: &[u8]) -> Result<Message<'_>, MqttError> {
    use msg_type::*;
    let mut f = Fields::new(command);
    Ok(match fixed_header >> 4 {
        CONNECT => Message::Connect(connect(&mut f)?),
        CONNACK => {
            let mut r = f.fixed(2, "MQTT_connack")?;
            let flags = r.u8("MQTT_connack")?;
            Message::Connack { session_present: flags & 0x01 != 0, return_code: r.u8("MQTT_connack")? }
        }
        PUBLISH => {
            let qos = (fixed_header & 0x06) >> 1;
            let topic = f.string()?;
            let msg_id = if qos == 0 { None } else { Some(f.u16("MQTT_publish:msg_id")?) };
            Message::Publish(Publish {
                dup: fixed_header & 0x08 != 0,
                qos,
                retain: fixed_header & 0x01 != 0,
                topic,
                msg_id,
                payload: f.rest(),
            })
        }
        PUBACK => Message::Puback(f.fixed(2, "MQTT_puback")?.u16("MQTT_puback")?),
        PUBREC => Message::Pubrec(f.fixed(2, "MQTT_pubrec")?.u16("MQTT_pubrec")?),
        PUBREL => Message::Pubrel(f.fixed(2, "MQTT_pubrel")?.u16("MQTT_pubrel")?),
        PUBCOMP => Message::Pubcomp(f.fixed(2, "MQTT_pubcomp")?.u16("MQTT_pubcomp")?),
        SUBSCRIBE => {
            let msg_id = f.u16("MQTT_subscribe:msg_id")?;
            // `MQTT_subscribe_topic[]`: topics until the command's end.
            let mut topics = Vec::new();
            while !f.is_empty() {
                topics.push(f.nested(|t| Ok((t.string()?, t.u8("MQTT_subscribe_topic:requested_QoS")?)))?);
            }
            Message::Subscribe { msg_id, topics }
        }
        SUBACK => {
            let mut r = f.fixed(3, "MQTT_suback")?;
            Message::Suback { msg_id: r.u16("MQTT_suback")?, granted_qos: r.u8("MQTT_suback")? }
        }
        UNSUBSCRIBE => {
            let msg_id = f.u16("MQTT_unsubscribe:msg_id")?;
            let mut topics = Vec::new();
            while !f.is_empty() {
                topics.push(f.string()?);
            }
            Message::Unsubscribe { msg_id, topics }
        }
        UNSUBACK => Message::Unsuback(f.fixed(2, "MQTT_unsuback")?.u16("MQTT_unsuback")?),
        PINGREQ => Message::Pingreq,
        PINGRESP => Message::Pingresp,
        DISCONNECT => Message::Disconnect,
        other => Message::Unknown(other),
    })
}

/// `MQTT_connect`: the variable header, then the payload's fields as the connect flags ask.
fn connect<'a>(f: &mut Fields<'a>) -> Result<Connect<'a>, MqttError> {
    let protocol_name = f.string()?;
    // Version, flags and keep-alive have static sizes: checked at once, as the last of them.
    let fixed = f.take(4, "MQTT_connect:keep_alive")?;
    let protocol_version = i8::from_be_bytes([fixed[0]]);
    let connect_flags = fixed[1];
    let keep_alive = be_u16(fixed, 2);
    let client_id = f.string()?;
    let will = if connect_flags & 0x04 != 0 { Some((f.string()?, f.string()?)) } else { None };
    let username = if connect_flags & 0x80 != 0 { Some(f.string()?) } else { None };
    let password = if connect_flags & 0x40 != 0 { Some(f.string()?) } else { None };
    Ok(Connect { protocol_name, protocol_version, connect_flags, keep_alive, client_id, will, username, password })
}
