use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;
use message::STARTTLS_OID;

/// A BER TLV with a short or long-form length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    match content.len() {
        n if n < 0x80 => v.push(n as u8),
        n if n < 0x100 => v.extend([0x81, n as u8]),
        n if n < 0x1_0000 => v.extend([0x82, (n >> 8) as u8, n as u8]),
        n => v.extend([0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
    }
    v.extend(content);
    v
}

fn octets(s: &[u8]) -> Vec<u8> {
    tlv(0x04, s)
}

/// An `LDAPMessage`: a SEQUENCE of a one-byte message ID and the op.
fn msg(id: u8, op: &[u8]) -> Vec<u8> {
    tlv(0x30, &[&[0x02, 0x01, id][..], op].concat())
}

/// An `LDAPResult` op: the code (ENUMERATED), an empty matched DN, the diagnostic message.
fn result_op(tag: u8, code: u8, diagnostic: &[u8]) -> Vec<u8> {
    tlv(tag, &[&[0x0a, 0x01, code][..], &octets(b""), &octets(diagnostic)].concat())
}

/// RFC 4511 simple bind of ldapsearch's `-D cn=admin,dc=example,dc=com -w secret`, written out byte by byte.
const BIND_SIMPLE_REQUEST: &[u8] = &[
    0x30, 0x2c, // LDAPMessage SEQUENCE, 44 bytes
    0x02, 0x01, 0x01, // messageID 1
    0x60, 0x27, // [APPLICATION 0] BindRequest, 39 bytes
    0x02, 0x01, 0x03, // version 3
    0x04, 0x1a, b'c', b'n', b'=', b'a', b'd', b'm', b'i', b'n', b',', b'd', b'c', b'=', b'e', b'x', b'a', b'm', b'p',
    b'l', b'e', b',', b'd', b'c', b'=', b'c', b'o', b'm', // name
    0x80, 0x06, b's', b'e', b'c', b'r', b'e', b't', // [0] simple
];

/// `(&(&(objectClass=person)(|(cn=J*o*n)(!(uid=root))))(mail=*))` as its BER: an and of an equality, an or (of a
/// substring and a not) and a presence.
fn nested_filter() -> Vec<u8> {
    let eq = |tag: u8, attr: &[u8], value: &[u8]| tlv(tag, &[octets(attr), octets(value)].concat());
    let substrings =
        tlv(0xa4, &[octets(b"cn"), tlv(0x30, &[tlv(0x80, b"J"), tlv(0x81, b"o"), tlv(0x82, b"n")].concat())].concat());
    let or = tlv(0xa1, &[substrings, tlv(0xa2, &eq(0xa3, b"uid", b"root"))].concat());
    tlv(0xa0, &[eq(0xa3, b"objectClass", b"person"), or, tlv(0x87, b"mail")].concat())
}

fn search_request(id: u8, filter: &[u8]) -> Vec<u8> {
    let body = [
        &octets(b"dc=example,dc=com")[..],
        &[0x0a, 0x01, 0x02], // scope wholeSubtree
        &[0x0a, 0x01, 0x00], // derefAliases never
        &[0x02, 0x01, 0x00], // sizeLimit
        &[0x02, 0x01, 0x00], // timeLimit
        &[0x01, 0x01, 0x00], // typesOnly FALSE
        filter,
        &tlv(0x30, &[octets(b"cn"), octets(b"mail")].concat()),
    ]
    .concat();
    msg(id, &tlv(0x63, &body))
}

fn entry(id: u8, dn: &[u8]) -> Vec<u8> {
    let attributes = tlv(0x30, &tlv(0x30, &[octets(b"cn"), tlv(0x31, &octets(b"John"))].concat()));
    msg(id, &tlv(0x64, &[octets(dn), attributes].concat()))
}

/// bind, search with two entries, unbind: each side's messages in order.
fn session() -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, BIND_SIMPLE_REQUEST.to_vec()),
        (false, msg(1, &result_op(0x61, 0, b""))),
        (true, search_request(2, &nested_filter())),
        (
            false,
            [
                entry(2, b"cn=John,dc=example,dc=com"),
                entry(2, b"cn=Jon,dc=example,dc=com"),
                msg(2, &result_op(0x65, 0, b"")),
            ]
            .concat(),
        ),
        (true, msg(3, &tlv(0x42, b""))),
    ]
}

/// The logged rows of `path` after the six connection columns, as TSV.
fn rows(h: &Harness, path: &str) -> Vec<Vec<String>> {
    h.logged(path).iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect()
}

fn row(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

fn run(proto: Proto, deliveries: &[(bool, Vec<u8>)]) -> (Harness, Ldap) {
    let mut h = Harness::new(proto, 389);
    let mut a = Ldap::new(if proto == Proto::Tcp { &SPEC } else { &UDP_SPEC });
    for (is_orig, data) in deliveries {
        h.deliver(&mut a, *is_orig, data);
    }
    h.finish(&mut a);
    (h, a)
}

const SEARCH_ROW: [&str; 9] = [
    "2",
    "tree",
    "never",
    "dc=example,dc=com",
    "2",
    "success",
    "-",
    "(&(&(objectClass=person)(|(cn=J*o*n)(!(uid=root))))(mail=*))",
    "-",
];

#[test]
fn bind_search_and_unbind() {
    let (h, _) = run(Proto::Tcp, &session());
    assert_eq!(
        rows(&h, "ldap"),
        [
            row(&["1", "3", "bind simple", "success", "-", "cn=admin,dc=example,dc=com", "REDACTED"]),
            row(&["3", "-", "unbind", "-", "-", "-", "-"]),
        ]
    );
    assert_eq!(rows(&h, "ldap_search"), [row(&SEARCH_ROW)]);
    assert_eq!(h.actions, [Action::Confirm("ldap_tcp")]);
    assert!(h.weirds.is_empty(), "{:?}", h.weirds);
}

#[test]
fn messages_split_at_every_byte() {
    let whole = session();
    let request = &whole[2].1;
    for at in 0..=request.len() {
        let mut deliveries = whole.clone();
        deliveries.splice(2..3, [(true, request[..at].to_vec()), (true, request[at..].to_vec())]);
        let (h, _) = run(Proto::Tcp, &deliveries);
        assert_eq!(rows(&h, "ldap_search"), [row(&SEARCH_ROW)], "split at {at}");
        assert_eq!(rows(&h, "ldap").len(), 2, "split at {at}");
    }
    // Every byte in its own delivery, each side in turn.
    let single: Vec<(bool, Vec<u8>)> =
        whole.iter().flat_map(|(is_orig, data)| data.iter().map(move |&b| (*is_orig, vec![b]))).collect();
    let (h, _) = run(Proto::Tcp, &single);
    assert_eq!(rows(&h, "ldap_search"), [row(&SEARCH_ROW)]);
    assert_eq!(h.actions, [Action::Confirm("ldap_tcp")]);
}

#[test]
fn filters_render_as_zeek_renders_them() {
    let render = |filter: &[u8]| {
        bytes_to_log_string(&filter::search_filter(&mut Reader::new(filter), 0).expect("filter parses"))
    };
    let eq = |tag: u8, attr: &[u8], value: &[u8]| tlv(tag, &[octets(attr), octets(value)].concat());
    // One item in an and closes at once; values escape NUL, parentheses and stars.
    assert_eq!(render(&tlv(0xa0, &eq(0xa3, b"cn", b"a(b)*\0"))), "(&(cn=a\\28b\\29\\2a\\00))");
    assert_eq!(render(&eq(0xa5, b"uidNumber", b"1000")), "(uidNumber>=1000)");
    assert_eq!(render(&eq(0xa6, b"uidNumber", b"10")), "(uidNumber<=10)");
    assert_eq!(render(&eq(0xa8, b"sn", b"smith")), "(sn~=smith)");
    // An extensible match: the rule, the type and the value in Zeek's order (search_filter_extended's baseline).
    let ext = tlv(
        0xa9,
        &[tlv(0x81, b"2.16.840.1.113730.3.3.2.46.1"), tlv(0x82, b"departmentNumber"), tlv(0x83, b">=N4709")].concat(),
    );
    assert_eq!(render(&ext), "(departmentNumber:2.16.840.1.113730.3.3.2.46.1:=>=N4709)");
    // CLDAP's attributes in their own notations.
    let guid = [0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
    assert_eq!(render(&eq(0xa3, b"DomainGuid", &guid)), "(DomainGuid=00112233-4455-6677-8899-aabbccddeeff)");
    assert_eq!(render(&eq(0xa3, b"NtVer", &[6, 0, 0, 0])), "(NtVer=0x00000006)");
    assert_eq!(render(&eq(0xa3, b"NtVer", &[6])), "(NtVer=HEX_FORMAT_FAILED)");
    assert_eq!(render(&eq(0xa3, b"AAC", &[0x80, 0, 0, 0])), "(AAC=80:00:00:00)");
    let sid = [1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0x39, 0x30, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0];
    assert_eq!(render(&eq(0xa3, b"DomainSid", &sid)), "(DomainSid=S-1-5-21-12345-1-2)");
    // A substring filter with only a final part, and an or of three nesting to the left.
    let final_only = tlv(0xa4, &[octets(b"cn"), tlv(0x30, &tlv(0x82, b"son"))].concat());
    assert_eq!(render(&final_only), "(cn=*son)");
    let three = tlv(0xa1, &[tlv(0x87, b"a"), tlv(0x87, b"b"), tlv(0x87, b"c")].concat());
    assert_eq!(render(&three), "(|(|(a=*)(b=*))(c=*))");
    // Bytes that are not UTF-8 stay raw (escaped by the log writer).
    assert_eq!(render(&eq(0xa3, b"cn", b"\xe9")), format!("(cn={})", crate::logs::bytes_to_log_string(b"\xe9")));
}

#[test]
fn cldap_over_udp() {
    let eq = |attr: &[u8], value: &[u8]| tlv(0xa3, &[octets(attr), octets(value)].concat());
    let filter = tlv(0xa0, &[eq(b"DnsDomain", b"example.com"), eq(b"NtVer", &[6, 0, 0, 0])].concat());
    let body = [
        &octets(b"")[..],
        &[0x0a, 0x01, 0x00],
        &[0x0a, 0x01, 0x00],
        &[0x02, 0x01, 0x00],
        &[0x02, 0x01, 0x00],
        &[0x01, 0x01, 0x00],
        &filter,
        &tlv(0x30, &octets(b"Netlogon")),
    ]
    .concat();
    let request = msg(7, &tlv(0x63, &body));
    let netlogon = tlv(0x30, &tlv(0x30, &[octets(b"Netlogon"), tlv(0x31, &octets(&[0x17, 0, 0, 0]))].concat()));
    let reply = [msg(7, &tlv(0x64, &[octets(b""), netlogon].concat())), msg(7, &result_op(0x65, 0, b""))].concat();
    let (h, _) = run(Proto::Udp, &[(true, request), (false, reply)]);
    assert_eq!(
        rows(&h, "ldap_search"),
        [row(&["7", "base", "never", "-", "1", "success", "-", "(&(DnsDomain=example.com)(NtVer=0x00000006))", "-"])]
    );
    assert_eq!(h.actions, [Action::Confirm("ldap_udp")]);
    // A datagram that ends inside its message is a violation.
    let (h, _) = run(Proto::Udp, &[(true, msg(1, &tlv(0x42, b""))[..4].to_vec())]);
    assert!(matches!(h.actions.as_slice(), [Action::Violation(..)]), "{:?}", h.actions);
}

#[test]
fn starttls_hands_the_connection_to_tls() {
    let request = msg(1, &tlv(0x77, &tlv(0x80, STARTTLS_OID.as_bytes())));
    let response = msg(1, &result_op(0x78, 0, b""));
    let client_hello = vec![0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00];
    let (h, a) = run(Proto::Tcp, &[(true, request), (false, response), (true, client_hello)]);
    assert_eq!(
        rows(&h, "ldap"),
        [row(&["1", "-", "extended", "success", "-", "1.3.6.1.4.1.1466.20037 (StartTLS)", "-"])]
    );
    assert_eq!(h.actions, [Action::Confirm("ldap_tcp"), Action::StartTls]);
    assert!(a.stopped);
    // A refused StartTLS keeps the analysis going.
    let refused = msg(1, &result_op(0x78, 2, b"no"));
    let request = msg(1, &tlv(0x77, &tlv(0x80, STARTTLS_OID.as_bytes())));
    let (h, _) = run(Proto::Tcp, &[(true, request), (false, refused), (true, msg(2, &tlv(0x42, b"")))]);
    assert_eq!(rows(&h, "ldap").len(), 2);
    assert_eq!(h.actions, [Action::Confirm("ldap_tcp")]);
}

/// A SASL GSSAPI bind that succeeded: the next messages start with a four-byte length, and are passed over.
#[test]
fn sasl_wrapped_messages_are_passed_over() {
    let bind = msg(1, &tlv(0x60, &[&[0x02, 0x01, 0x03][..], &octets(b""), &tlv(0xa3, &octets(b"GSSAPI"))].concat()));
    let wrapped = [&[0, 0, 0, 8][..], &[0x60, 0x06, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]].concat();
    let (h, _) = run(
        Proto::Tcp,
        &[(true, bind), (false, msg(1, &result_op(0x61, 0, b""))), (true, wrapped.clone()), (false, wrapped)],
    );
    assert_eq!(rows(&h, "ldap"), [row(&["1", "3", "bind SASL", "success", "-", "-", "GSSAPI"])]);
    assert_eq!(h.actions, [Action::Confirm("ldap_tcp")]);
}

/// GSS-SPNEGO with MS KRB5 accepted: unsealed wrap tokens carry plain messages (Zeek's sasl-signed-clear tests).
#[test]
fn unsealed_kerberos_wrap_tokens_are_read() {
    let spnego_init = octets(&[&[0x60, 0x08, 0x06, 0x06][..], &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02]].concat());
    let creds = tlv(0xa3, &[octets(b"GSS-SPNEGO"), spnego_init].concat());
    let bind = msg(7, &tlv(0x60, &[&[0x02, 0x01, 0x03][..], &octets(b""), &creds].concat()));
    let mech = tlv(0xa1, &tlv(0x06, &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02]));
    let neg_token_resp = tlv(0x30, &[tlv(0xa0, &[0x0a, 0x01, 0x00]), mech, tlv(0xa2, b"token")].concat());
    let server_creds = tlv(0x87, &tlv(0xa1, &neg_token_resp));
    let response = msg(7, &tlv(0x61, &[&[0x0a, 0x01, 0x00][..], &octets(b""), &octets(b""), &server_creds].concat()));
    let inner = msg(8, &tlv(0x42, b""));
    // Token ID 0x0504, flags (not sealed), filler, EC 0 and RRC 0, sequence number, then the payload.
    let token = [&[0x05, 0x04, 0x00, 0xff, 0, 0, 0, 0][..], &[0; 8], &inner].concat();
    let wrapped = [&(token.len() as u32).to_be_bytes()[..], &token].concat();
    let (h, _) = run(Proto::Tcp, &[(true, bind), (false, response), (true, wrapped)]);
    assert_eq!(
        rows(&h, "ldap"),
        [
            row(&["7", "3", "bind SASL", "success", "-", "-", "GSS-SPNEGO"]),
            row(&["8", "-", "unbind", "-", "-", "-", "-"]),
        ]
    );
}

#[test]
fn other_operations_and_pending_records() {
    let modify_change = tlv(
        0x30,
        &[
            &[0x0a, 0x01, 0x02][..],
            &tlv(0x30, &[octets(b"msDS-SupportedEncryptionTypes"), tlv(0x31, &octets(b"28"))].concat()),
        ]
        .concat(),
    );
    let modify = msg(2, &tlv(0x66, &[octets(b"CN=PC,DC=example"), tlv(0x30, &modify_change)].concat()));
    let delete = msg(3, &tlv(0x4a, b"uid=jdoe,dc=example"));
    let abandon = msg(4, &tlv(0x50, &[0x02]));
    let whoami = msg(5, &tlv(0x77, &tlv(0x80, b"1.3.6.1.4.1.4203.1.11.3")));
    let unanswered = msg(0, &tlv(0x4a, b"uid=nobody"));
    let (h, _) = run(
        Proto::Tcp,
        &[
            (true, [modify, delete, abandon, whoami, unanswered].concat()),
            (false, [msg(2, &result_op(0x67, 0, b"")), msg(3, &result_op(0x6b, 32, b"gone"))].concat()),
        ],
    );
    assert_eq!(
        rows(&h, "ldap"),
        [
            row(&["4", "-", "abandon", "-", "-", "-", "2"]),
            row(&["2", "-", "modify", "success", "-", "CN=PC,DC=example", "replace(msDS-SupportedEncryptionTypes=28)"]),
            row(&["3", "-", "delete", "no such object", "gone", "-", "uid=jdoe,dc=example"]),
            // Pending at the end: the extended request; message ID 0 is not written.
            row(&["5", "-", "extended", "-", "-", "1.3.6.1.4.1.4203.1.11.3 (whoami)", "-"]),
        ]
    );
}

#[test]
fn bind_response_without_request_is_a_weird() {
    let (h, _) = run(Proto::Tcp, &[(false, msg(9, &result_op(0x61, 49, b"80090308: LdapErr")))]);
    assert_eq!(rows(&h, "ldap"), [row(&["9", "-", "bind", "invalid credentials", "80090308: LdapErr", "-", "-"])]);
    assert_eq!(h.weirds.len(), 1);
    assert_eq!((h.weirds[0].name.as_str(), h.weirds[0].addl.as_deref()), ("LDAP_bind_without_opcode", Some("9: bind")));
}

#[test]
fn malformed_input_is_a_violation() {
    let cases: Vec<Vec<u8>> = vec![
        // Not a SEQUENCE.
        vec![0x31, 0x03, 0x02, 0x01, 0x01],
        // A message ID of no bytes.
        vec![0x30, 0x04, 0x02, 0x00, 0x42, 0x00],
        // An opcode the grammar has no case for ([APPLICATION 17]).
        msg(1, &tlv(0x71, b"")),
        // An unbind with content (the op's `&size` not consumed).
        msg(1, &tlv(0x42, b"x")),
        // An indefinite length.
        vec![0x30, 0x80, 0x02, 0x01, 0x01, 0x42, 0x00, 0x00, 0x00],
        // A bind whose authentication is universal.
        msg(1, &tlv(0x60, &[&[0x02, 0x01, 0x03][..], &octets(b""), &octets(b"pw")].concat())),
        // A search filter of an unknown type.
        search_request(2, &tlv(0xaa, b"")),
    ];
    for case in cases {
        let (h, a) = run(Proto::Tcp, &[(true, case.clone()), (true, msg(2, &tlv(0x42, b"")))]);
        // The violation's data is the delivery it happened in (Zeek's Spicy glue), cut to 40 bytes.
        let data = crate::analyzers::failure_data(&case);
        assert!(
            matches!(h.actions.as_slice(), [Action::Violation(_, d)] if *d == data),
            "{case:02x?}: {:?}",
            h.actions
        );
        assert!(a.stopped && h.records.is_empty(), "{case:02x?}");
    }
    // A filter nested deeper than Zeek allows.
    let mut deep = tlv(0x87, b"cn");
    for _ in 0..150 {
        deep = tlv(0xa2, &deep);
    }
    let request = search_request(2, &deep);
    let (h, _) = run(Proto::Tcp, &[(true, request.clone())]);
    assert_eq!(
        h.actions,
        [Action::Violation("LDAP exceeded max filter recursion depth".into(), Some(request[..40].into()))]
    );
    // Arbitrary bytes never panic.
    let mut noise = vec![0x30u8];
    for i in 0..4000u32 {
        noise.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
    }
    for chunk in [1, 7, 64] {
        let deliveries: Vec<(bool, Vec<u8>)> =
            noise.chunks(chunk).enumerate().map(|(i, c)| (i % 3 == 0, c.to_vec())).collect();
        run(Proto::Tcp, &deliveries);
        run(Proto::Udp, &deliveries);
    }
}

/// A search result entry longer than the buffer is read from its start: the entry still counts.
#[test]
fn oversized_messages_are_read_from_their_start() {
    let big = tlv(0x04, &vec![b'x'; MAX_MESSAGE + 100]);
    let attributes = tlv(0x30, &tlv(0x30, &[octets(b"jpegPhoto"), tlv(0x31, &big)].concat()));
    let huge_entry = msg(2, &tlv(0x64, &[octets(b"cn=big"), attributes].concat()));
    assert!(huge_entry.len() > MAX_MESSAGE);
    let reply = [huge_entry, msg(2, &result_op(0x65, 0, b""))].concat();
    let deliveries: Vec<(bool, Vec<u8>)> = std::iter::once((true, search_request(2, &tlv(0x87, b"cn"))))
        .chain(reply.chunks(1460).map(|c| (false, c.to_vec())))
        .collect();
    let (h, a) = run(Proto::Tcp, &deliveries);
    assert_eq!(rows(&h, "ldap_search")[0][4], "1");
    assert_eq!(h.actions, [Action::Confirm("ldap_tcp")]);
    assert!(a.sides.iter().all(|s| s.buf.capacity() <= 2 * MAX_MESSAGE));
}

#[test]
fn too_many_pending_messages_are_flushed_with_a_weird() {
    let adds: Vec<u8> = (1..=(MAX_PENDING + 1) as u32)
        .flat_map(|id| tlv(0x30, &[&[0x02, 0x02, (id >> 8) as u8, id as u8][..], &tlv(0x68, b"")].concat()))
        .collect();
    let (h, _) = run(Proto::Tcp, &[(true, adds)]);
    assert_eq!(h.logged("ldap").len(), MAX_PENDING + 1);
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref())).collect();
    assert_eq!(weirds, [("LDAP_max_pending_messages_exceeded", Some("500"))]);
    assert_eq!(rows(&h, "ldap")[0][..3], row(&["1", "-", "add"])[..]);
}

#[test]
fn signatures_follow_zeeks_dpd_rules() {
    let tcp = SPEC.detect.expect("a signature");
    let udp = UDP_SPEC.detect.expect("a signature");
    let reply = msg(1, &result_op(0x61, 0, b""));
    assert!(tcp.matches(Proto::Tcp, false, &reply, BIND_SIMPLE_REQUEST));
    assert!(!tcp.matches(Proto::Tcp, false, &reply, b""), "the client's request is required");
    // A StartTLS first and a two-byte message ID; a long-form length.
    let extended = tlv(0x30, &[&[0x02, 0x02, 0x01, 0x00][..], &tlv(0x77, &tlv(0x80, b"1.3"))].concat());
    assert!(tcp.matches(Proto::Tcp, true, &extended, &reply));
    let long = [&[0x30, 0x81, 0x05, 0x02, 0x01, 0x01][..], &[0x4a, 0x01, b'x']].concat();
    assert!(tcp.matches(Proto::Tcp, true, &long, &reply));
    // A delete starts TCP detection but not CLDAP's; a response does not start either.
    assert!(!udp.matches(Proto::Udp, true, &long, &reply));
    assert!(udp.matches(Proto::Udp, true, &search_request(1, &tlv(0x87, b"cn")), &reply));
    assert!(!tcp.matches(Proto::Tcp, true, &reply, &reply));
    assert!(!udp.matches(Proto::Tcp, true, BIND_SIMPLE_REQUEST, &reply));
    // `.` does not match a newline: message ID 10.
    assert!(!tcp.matches(Proto::Tcp, true, &msg(10, &tlv(0x42, b"")), &reply));
}

/// Through the engine: port 389 over TCP and UDP, and the signature on another port; conn.log names `ldap_tcp` or
/// `ldap_udp`, and the records carry their connection's uid.
#[test]
fn through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::{ipv4_udp, tcp_exchange};

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    let bind_response = msg(1, &result_op(0x61, 0, b""));
    let mut frames =
        tcp_exchange((CLIENT, 40000), (SERVER, 389), &[(true, BIND_SIMPLE_REQUEST), (false, &bind_response)]);
    frames.extend(tcp_exchange(
        (CLIENT, 40001),
        (SERVER, 10389),
        &[(true, BIND_SIMPLE_REQUEST), (false, &bind_response)],
    ));
    let search = search_request(2, &tlv(0x87, b"objectClass"));
    frames.push(ipv4_udp((CLIENT, 40002), (SERVER, 389), &search));
    frames.push(ipv4_udp((SERVER, 389), (CLIENT, 40002), &msg(2, &result_op(0x65, 0, b""))));
    let records = engine_records(&frames);
    let conn = |port: &str| records.iter().find(|r| r.schema.path == "conn" && field(r, "id.orig_p") == port).unwrap();
    let services: Vec<String> = ["40000", "40001", "40002"].iter().map(|p| field(conn(p), "service")).collect();
    assert_eq!(services, ["ldap_tcp", "ldap_tcp", "ldap_udp"]);
    let logged = |path: &str| -> Vec<[String; 3]> {
        records
            .iter()
            .filter(|r| r.schema.path == path)
            .map(|r| ["uid", "id.orig_p", "message_id"].map(|f| field(r, f)))
            .collect()
    };
    let uid = |port: &str| field(conn(port), "uid");
    assert_eq!(
        logged("ldap"),
        [[uid("40000"), "40000".into(), "1".into()], [uid("40001"), "40001".into(), "1".into()]]
    );
    assert_eq!(logged("ldap_search"), [[uid("40002"), "40002".into(), "2".into()]]);
}
