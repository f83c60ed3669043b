//! Zeek's limits on what one log record may carry (since 8.1, `Log::default_max_field_string_bytes` and its three
//! siblings in init-bare.zeek): a string is cut at 4096 bytes, a container at 100 elements, and once a record's
//! strings reach 256000 bytes in all (its containers 500 elements) later strings are written empty (later
//! containers without elements). Strings inside containers count as strings. The logging manager applies them to
//! every stream before any writer sees the record, and reports a cut with the connection-less weirds
//! `log_string_field_truncated` / `log_container_field_truncated`, whose `addl` is the stream's `Log::ID`. HTTP's
//! stream sets no limit on one string (`HTTP::default_max_field_string_bytes = 0`): URIs are kept whole. Checked
//! against Zeek's `field-length-limiting` btest baselines (unit tests below).

use super::{LogRecord, Schema, Value};

/// One stream's limits; 0 is no limit, as in Zeek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLimits {
    pub max_field_string_bytes: usize,
    pub max_total_string_bytes: usize,
    pub max_field_container_elements: usize,
    pub max_total_container_elements: usize,
}

/// init-bare.zeek's defaults.
pub const DEFAULT_LIMITS: FieldLimits = FieldLimits {
    max_field_string_bytes: 4096,
    max_total_string_bytes: 256_000,
    max_field_container_elements: 100,
    max_total_container_elements: 500,
};

/// The limits Zeek's scripts give a stream.
#[inline]
pub fn limits_for(schema: &'static Schema) -> FieldLimits {
    if std::ptr::eq(schema, &crate::analyzers::http::HTTP) {
        FieldLimits { max_field_string_bytes: 0, ..DEFAULT_LIMITS }
    } else {
        DEFAULT_LIMITS
    }
}

/// What [`apply`] cut.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cuts {
    pub string: bool,
    pub container: bool,
}

/// Cuts a record's values to `limits`, in field order as Zeek's manager walks them.
pub fn apply(values: &mut [Value], limits: FieldLimits) -> Cuts {
    let mut budget = Budget {
        limits,
        string_bytes_left: nonzero_or_max(limits.max_total_string_bytes),
        elements_left: nonzero_or_max(limits.max_total_container_elements),
        cuts: Cuts::default(),
    };
    for value in values {
        budget.value(value);
    }
    budget.cuts
}

/// Applies its stream's limits to `record` and gives the weirds Zeek's logging manager raises for the cuts (name
/// and `addl`): none for almost every record, at the cost of one pass over its values.
#[inline]
pub fn limit_record(record: &mut LogRecord) -> Vec<(&'static str, String)> {
    let limits = limits_for(record.schema);
    if !may_exceed(&record.values, limits) {
        return Vec::new();
    }
    let cuts = apply(&mut record.values, limits);
    let mut weirds = Vec::new();
    if cuts.string {
        weirds.push(("log_string_field_truncated", stream_id(record.schema.path)));
    }
    if cuts.container {
        weirds.push(("log_container_field_truncated", stream_id(record.schema.path)));
    }
    weirds
}

/// Whether a record can need cutting at all: the cheap test run on every record (a string's UTF-8 length is never
/// below the bytes it stands for, and most records carry a few short strings). One pass, no early exits: the
/// branches cost more than the sums on records of twenty short values.
#[inline]
pub fn may_exceed(values: &[Value], limits: FieldLimits) -> bool {
    let mut longest = 0usize;
    let mut string_bytes = 0usize;
    let mut largest = 0usize;
    let mut elements = 0usize;
    for v in values {
        match v {
            Value::Str(s) => {
                longest = longest.max(s.len());
                string_bytes += s.len();
            }
            Value::Set(items) | Value::Vector(items) => {
                largest = largest.max(items.len());
                elements += items.len();
                for item in items {
                    if let Value::Str(s) = item {
                        longest = longest.max(s.len());
                        string_bytes += s.len();
                    }
                }
            }
            _ => {}
        }
    }
    longest > nonzero_or_max(limits.max_field_string_bytes)
        || string_bytes > nonzero_or_max(limits.max_total_string_bytes)
        || largest > nonzero_or_max(limits.max_field_container_elements)
        || elements > nonzero_or_max(limits.max_total_container_elements)
}

#[inline]
fn nonzero_or_max(limit: usize) -> usize {
    if limit == 0 { usize::MAX } else { limit }
}

struct Budget {
    limits: FieldLimits,
    string_bytes_left: usize,
    elements_left: usize,
    cuts: Cuts,
}

impl Budget {
    fn value(&mut self, value: &mut Value) {
        match value {
            Value::Str(s) => self.string(s),
            Value::Set(items) | Value::Vector(items) => {
                let keep =
                    items.len().min(nonzero_or_max(self.limits.max_field_container_elements)).min(self.elements_left);
                if keep < items.len() {
                    items.truncate(keep);
                    self.cuts.container = true;
                }
                self.elements_left = self.elements_left.saturating_sub(keep);
                for item in items {
                    if let Value::Str(s) = item {
                        self.string(s);
                    }
                }
            }
            _ => {}
        }
    }

    fn string(&mut self, s: &mut String) {
        let allowed = nonzero_or_max(self.limits.max_field_string_bytes).min(self.string_bytes_left);
        let kept = cut_to_wire_bytes(s, allowed);
        if kept.cut {
            self.cuts.string = true;
        }
        self.string_bytes_left = self.string_bytes_left.saturating_sub(kept.bytes);
    }
}

struct Kept {
    bytes: usize,
    cut: bool,
}

/// Cuts a log string to `max` of the bytes it stands for (a raw byte kept by `bytes_to_log_string` is one byte,
/// any other character its UTF-8 length). A cut inside a character leaves its first bytes, which are no longer
/// UTF-8, as raw bytes: Zeek cuts bytes, and its writer escapes what the cut left of the character.
fn cut_to_wire_bytes(s: &mut String, max: usize) -> Kept {
    if s.len() <= max {
        // Never more bytes on the wire than in the string.
        return Kept { bytes: super::value::wire_len(s), cut: false };
    }
    let mut bytes = 0;
    for (at, c) in s.char_indices() {
        let len = if super::value::is_raw_byte(c) { 1 } else { c.len_utf8() };
        if bytes + len > max {
            let partial: Vec<u8> = c.to_string().as_bytes()[..max - bytes].to_vec();
            s.truncate(at);
            super::value::push_log_bytes(s, &partial);
            return Kept { bytes: max, cut: true };
        }
        bytes += len;
    }
    Kept { bytes, cut: false }
}

/// Zeek's `Log::ID` of a stream, the `addl` of the weirds above.
pub fn stream_id(path: &str) -> String {
    let id = match path {
        "analyzer" => "Analyzer::Logging::LOG",
        "conn" => "Conn::LOG",
        "dce_rpc" => "DCE_RPC::LOG",
        "dhcp" => "DHCP::LOG",
        "dnp3" => "DNP3::LOG",
        "dns" => "DNS::LOG",
        "files" => "Files::LOG",
        "ftp" => "FTP::LOG",
        "http" => "HTTP::LOG",
        "intel" => "Intel::LOG",
        "irc" => "IRC::LOG",
        "kerberos" => "KRB::LOG",
        "known_certs" => "Known::CERTS_LOG",
        "known_hosts" => "Known::HOSTS_LOG",
        "known_services" => "Known::SERVICES_LOG",
        "ldap" => "LDAP::LDAP_LOG",
        "ldap_search" => "LDAP::LDAP_SEARCH_LOG",
        "modbus" => "Modbus::LOG",
        "mqtt_connect" => "MQTT::CONNECT_LOG",
        "mqtt_publish" => "MQTT::PUBLISH_LOG",
        "mqtt_subscribe" => "MQTT::SUBSCRIBE_LOG",
        "mysql" => "MySQL::LOG",
        "notice" => "Notice::LOG",
        "ntlm" => "NTLM::LOG",
        "ntp" => "NTP::LOG",
        "pe" => "PE::LOG",
        "postgresql" => "PostgreSQL::LOG",
        "quic" => "QUIC::LOG",
        "radius" => "RADIUS::LOG",
        "rdp" => "RDP::LOG",
        "redis" => "Redis::LOG",
        "rfb" => "RFB::LOG",
        "sip" => "SIP::LOG",
        "smb_files" => "SMB::FILES_LOG",
        "smb_mapping" => "SMB::MAPPING_LOG",
        "smtp" => "SMTP::LOG",
        "snmp" => "SNMP::LOG",
        "socks" => "SOCKS::LOG",
        "software" => "Software::LOG",
        "ssh" => "SSH::LOG",
        "ssl" => "SSL::LOG",
        "syslog" => "Syslog::LOG",
        "tunnel" => "Tunnel::LOG",
        "websocket" => "WebSocket::LOG",
        "weird" => "Weird::LOG",
        "x509" => "X509::LOG",
        other => return format!("{other}::LOG"),
    };
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::bytes_to_log_string;

    /// The `field-length-limiting` btest's record: two vectors of ten ten-byte strings.
    fn record() -> Vec<Value> {
        vec![Value::str_vec(vec!["ABCDEFGHIJ"; 10]), Value::str_vec(vec!["ABCDEFGHIJ"; 10])]
    }

    fn tsv(values: &[Value]) -> String {
        values.iter().map(Value::to_tsv).collect::<Vec<_>>().join("\t")
    }

    fn with(limits: FieldLimits) -> (String, Cuts) {
        let mut r = record();
        let cuts = apply(&mut r, limits);
        (tsv(&r), cuts)
    }

    #[test]
    fn zeeks_field_length_limiting_baselines() {
        let full = "ABCDEFGHIJ,".repeat(10);
        let full = full.trim_end_matches(',');
        // 1: each string at most 5 bytes.
        let (out, cuts) = with(FieldLimits { max_field_string_bytes: 5, ..DEFAULT_LIMITS });
        let five = ["ABCDE"; 10].join(",");
        assert_eq!(out, format!("{five}\t{five}"));
        assert_eq!(cuts, Cuts { string: true, container: false });
        // 3: 85 bytes in all: eight whole strings, half of the ninth, then empty strings.
        let (out, cuts) = with(FieldLimits { max_total_string_bytes: 85, ..DEFAULT_LIMITS });
        let first = format!("{},ABCDE,(empty)", ["ABCDEFGHIJ"; 8].join(","));
        assert_eq!(out, format!("{first}\t{}", ["(empty)"; 10].join(",")));
        assert!(cuts.string);
        // 4: each container at most 5 elements.
        let (out, cuts) = with(FieldLimits { max_field_container_elements: 5, ..DEFAULT_LIMITS });
        let five_elements = ["ABCDEFGHIJ"; 5].join(",");
        assert_eq!(out, format!("{five_elements}\t{five_elements}"));
        assert_eq!(cuts, Cuts { string: false, container: true });
        // 5: 15 elements in all.
        let (out, _) = with(FieldLimits { max_total_container_elements: 15, ..DEFAULT_LIMITS });
        assert_eq!(out, format!("{full}\t{five_elements}"));
        // 6: 5 elements in all: the second container is empty.
        let (out, _) = with(FieldLimits { max_total_container_elements: 5, ..DEFAULT_LIMITS });
        assert_eq!(out, format!("{five_elements}\t(empty)"));
        // The defaults leave the record alone.
        let (out, cuts) = with(DEFAULT_LIMITS);
        assert_eq!(out, format!("{full}\t{full}"));
        assert_eq!(cuts, Cuts::default());
        assert!(!may_exceed(&record(), DEFAULT_LIMITS));
    }

    #[test]
    fn strings_are_cut_in_wire_bytes() {
        let limits = FieldLimits { max_field_string_bytes: 4, ..DEFAULT_LIMITS };
        // A raw byte is one byte; a cut inside "é" leaves its first byte, written as a raw byte.
        let mut v = vec![Value::str(bytes_to_log_string(b"\xff\xfeab"))];
        assert!(!apply(&mut v, limits).string);
        let mut v = vec![Value::str("abcé")];
        assert!(apply(&mut v, limits).string);
        assert_eq!(v[0].to_tsv(), "abc\\xc3");
        // A string of exactly the limit is whole.
        let mut v = vec![Value::str("abcd"), Value::str("abcde")];
        let cuts = apply(&mut v, limits);
        assert_eq!((v[0].to_tsv(), v[1].to_tsv(), cuts.string), ("abcd".into(), "abcd".into(), true));
    }

    #[test]
    fn the_cheap_test_finds_every_record_apply_would_cut() {
        let limits = FieldLimits {
            max_field_string_bytes: 6,
            max_total_string_bytes: 20,
            max_field_container_elements: 3,
            max_total_container_elements: 5,
        };
        let mut x = 0x2545_f491_u32;
        let mut next = |n: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % n
        };
        for _ in 0..2000 {
            let mut values: Vec<Value> = (0..next(4))
                .map(|_| {
                    let s = |n: &mut dyn FnMut(u32) -> u32| "é".repeat(n(5) as usize) + &"a".repeat(n(4) as usize);
                    if next(2) == 0 {
                        Value::str(s(&mut next))
                    } else {
                        Value::Vector((0..next(5)).map(|_| Value::str(s(&mut next))).collect())
                    }
                })
                .collect();
            let before = values.clone();
            let cuts = apply(&mut values, limits);
            if cuts != Cuts::default() || values != before {
                assert!(may_exceed(&before, limits), "{before:?}");
            }
        }
    }

    #[test]
    fn http_keeps_long_strings_and_streams_have_zeeks_ids() {
        assert_eq!(limits_for(&crate::analyzers::http::HTTP).max_field_string_bytes, 0);
        assert_eq!(limits_for(&crate::logs::CONN), DEFAULT_LIMITS);
        assert_eq!(stream_id("dns"), "DNS::LOG");
        assert_eq!(stream_id("smb_files"), "SMB::FILES_LOG");
        assert_eq!(stream_id("new_one"), "new_one::LOG");
    }
}
