//! Messages built byte by byte in DER, shaped like Zeek's krb test traces (kinit.trace, tgs), through the
//! analyzers; field values as in the btest baselines' kerberos.log.

use super::*;
use crate::analyzers::Action;
use crate::analyzers::ssl::tests::build;
use crate::analyzers::testing::{Harness, XorShift, row};
use crate::logs::LogRecord;

/// A DER element: tag, definite length (short or long form), content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut v = vec![tag];
    match len {
        0..=0x7f => v.push(len as u8),
        0x80..=0xff => v.extend([0x81, len as u8]),
        _ => v.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    v.extend(content);
    v
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// `[n] EXPLICIT`.
fn ctx(n: u8, content: Vec<u8>) -> Vec<u8> {
    tlv(0xa0 + n, &content)
}

fn int(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take(7).take_while(|&&b| b == 0).count();
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

fn general_string(s: &str) -> Vec<u8> {
    tlv(0x1b, s.as_bytes())
}

fn principal(name_type: u64, names: &[&str]) -> Vec<u8> {
    seq(&[ctx(0, int(name_type)), ctx(1, seq(&names.iter().map(|n| general_string(n)).collect::<Vec<_>>()))])
}

fn encrypted_data(etype: u64, kvno: Option<u64>) -> Vec<u8> {
    let mut parts = vec![ctx(0, int(etype))];
    parts.extend(kvno.map(|k| ctx(1, int(k))));
    parts.push(ctx(2, tlv(0x04, &[0x5a; 24])));
    seq(&parts)
}

pub(crate) fn ticket(realm: &str, sname: &[&str], etype: u64) -> Vec<u8> {
    tlv(
        0x61,
        &seq(&[
            ctx(0, int(5)),
            ctx(1, general_string(realm)),
            ctx(2, principal(2, sname)),
            ctx(3, encrypted_data(etype, Some(2))),
        ]),
    )
}

const FORWARDABLE: u32 = 0x4000_0000;
const RENEWABLE: u32 = 0x0080_0000;

/// A KDC-REQ-BODY: options, optional cname, realm, sname, optional from, till, nonce, etypes, and `extra` fields.
struct Body<'a> {
    options: u32,
    cname: Option<&'a [&'a str]>,
    realm: &'a str,
    sname: &'a [&'a str],
    from: Option<&'a str>,
    till: &'a str,
    extra: Vec<Vec<u8>>,
}

impl Body<'_> {
    fn der(&self) -> Vec<u8> {
        let mut parts = vec![ctx(0, tlv(0x03, &[&[0u8][..], &self.options.to_be_bytes()].concat()))];
        parts.extend(self.cname.map(|c| ctx(1, principal(1, c))));
        parts.push(ctx(2, general_string(self.realm)));
        parts.push(ctx(3, principal(2, self.sname)));
        parts.extend(self.from.map(|t| ctx(4, tlv(0x18, t.as_bytes()))));
        parts.push(ctx(5, tlv(0x18, self.till.as_bytes())));
        parts.push(ctx(7, int(0x1234_5678)));
        parts.push(ctx(8, seq(&[int(18), int(17), int(23)])));
        parts.extend(self.extra.iter().cloned());
        seq(&parts)
    }
}

fn kinit_body() -> Body<'static> {
    Body {
        options: 0,
        cname: Some(&["valid_client_principal"]),
        realm: "VLADG.NET",
        sname: &["krbtgt", "VLADG.NET"],
        from: None,
        till: "20150119225459Z",
        extra: vec![],
    }
}

fn pa_data(pa_type: u64, value: &[u8]) -> Vec<u8> {
    seq(&[ctx(1, int(pa_type)), ctx(2, tlv(0x04, value))])
}

/// An AS-REQ (`0x6a`, msg-type 10) or TGS-REQ (`0x6c`, 12).
fn kdc_req(app: u8, msg_type: u64, padata: &[Vec<u8>], body: &Body) -> Vec<u8> {
    let mut parts = vec![ctx(1, int(5)), ctx(2, int(msg_type))];
    if !padata.is_empty() {
        parts.push(ctx(3, seq(padata)));
    }
    parts.push(ctx(4, body.der()));
    tlv(app, &seq(&parts))
}

fn as_req(body: &Body) -> Vec<u8> {
    kdc_req(0x6a, 10, &[pa_data(128, &seq(&[ctx(0, tlv(0x01, &[0xff]))]))], body)
}

/// An AS-REP (`0x6b`, 11) or TGS-REP (`0x6d`, 13).
fn kdc_rep(app: u8, msg_type: u64, padata: &[Vec<u8>], crealm: &str, cname: &[&str], tkt: Vec<u8>) -> Vec<u8> {
    let mut parts = vec![ctx(0, int(5)), ctx(1, int(msg_type))];
    if !padata.is_empty() {
        parts.push(ctx(2, seq(padata)));
    }
    parts.extend([
        ctx(3, general_string(crealm)),
        ctx(4, principal(1, cname)),
        ctx(5, tkt),
        ctx(6, encrypted_data(18, Some(3))),
    ]);
    tlv(app, &seq(&parts))
}

fn as_rep() -> Vec<u8> {
    kdc_rep(0x6b, 11, &[], "VLADG.NET", &["valid_client_principal"], ticket("VLADG.NET", &["krbtgt", "VLADG.NET"], 18))
}

/// A KRB-ERROR (`0x7e`) with `code`, and optionally client name and realm, service, e-text and e-data.
struct Error<'a> {
    code: u64,
    crealm: Option<&'a str>,
    cname: Option<&'a [&'a str]>,
    sname: &'a [&'a str],
    text: Option<&'a str>,
    data: Option<Vec<u8>>,
}

impl Error<'_> {
    fn der(&self) -> Vec<u8> {
        let mut parts = vec![
            ctx(0, int(5)),
            ctx(1, int(30)),
            ctx(4, tlv(0x18, b"20150119225403Z")),
            ctx(5, int(123_456)),
            ctx(6, int(self.code)),
        ];
        parts.extend(self.crealm.map(|r| ctx(7, general_string(r))));
        parts.extend(self.cname.map(|c| ctx(8, principal(1, c))));
        parts.push(ctx(9, general_string("VLADG.NET")));
        parts.push(ctx(10, principal(2, self.sname)));
        parts.extend(self.text.map(|t| ctx(11, general_string(t))));
        parts.extend(self.data.clone().map(|d| ctx(12, tlv(0x04, &d))));
        tlv(0x7e, &seq(&parts))
    }
}

/// An AP-REQ (`0x6e`) with a ticket.
pub(crate) fn ap_req(tkt: Vec<u8>) -> Vec<u8> {
    tlv(
        0x6e,
        &seq(&[
            ctx(0, int(5)),
            ctx(1, int(14)),
            ctx(2, tlv(0x03, &[0, 0x20, 0, 0, 0])),
            ctx(3, tkt),
            ctx(4, encrypted_data(18, None)),
        ]),
    )
}

pub(crate) fn ap_rep() -> Vec<u8> {
    tlv(0x6f, &seq(&[ctx(0, int(5)), ctx(1, int(15)), ctx(2, encrypted_data(18, None))]))
}

/// kerberos.log's columns after `id`, as TSV.
fn rows(h: &Harness) -> Vec<Vec<String>> {
    h.columns("kerberos")
}

/// `datagrams` to the UDP analyzer at 100.0, 101.0, ..., then the connection's end.
fn udp(datagrams: &[(bool, Vec<u8>)]) -> Harness {
    let mut h = Harness::new(Proto::Udp, 88);
    let mut krb = KrbUdp::new(Some(KnownCerts::default()));
    for (i, (is_orig, data)) in datagrams.iter().enumerate() {
        h.run(100.0 + i as f64, |ctx| krb.deliver(ctx, *is_orig, data));
    }
    h.finish(&mut krb);
    h
}

/// Each message as a TCP record, every record's bytes in deliveries of at most `chunk` bytes.
fn tcp(messages: &[(bool, Vec<u8>)], chunk: usize) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 88);
    let mut krb = KrbTcp::new(Some(KnownCerts::default()));
    for (i, (is_orig, message)) in messages.iter().enumerate() {
        let record = [&(message.len() as u32).to_be_bytes()[..], message].concat();
        for piece in record.chunks(chunk) {
            h.run(100.0 + i as f64, |ctx| krb.deliver(ctx, *is_orig, piece));
        }
    }
    h.finish(&mut krb);
    h
}

fn violations(h: &Harness) -> usize {
    h.actions.iter().filter(|a| matches!(a, Action::Violation(..))).count()
}

#[test]
fn an_as_exchange_over_udp_makes_one_record() {
    let h = udp(&[(true, as_req(&kinit_body())), (false, as_rep())]);
    assert_eq!(
        rows(&h),
        [row([
            "AS",
            "valid_client_principal/VLADG.NET",
            "krbtgt/VLADG.NET",
            "T",
            "-",
            "-",
            "1421708099.000000",
            "aes256-cts-hmac-sha1-96",
            "F",
            "F",
            "-",
            "-",
            "-",
            "-"
        ])]
    );
    assert_eq!(h.logged("kerberos")[0].values[0].to_tsv(), "100.000000", "ts is the request's");
    assert_eq!(h.actions, [Action::Confirm("krb")]);
}

#[test]
fn options_from_and_a_second_exchange_on_the_same_connection() {
    let body = Body { options: FORWARDABLE | RENEWABLE, from: Some("20150119230645Z"), ..kinit_body() };
    let h = udp(&[(true, as_req(&body)), (false, as_rep()), (true, as_req(&kinit_body())), (false, as_rep())]);
    let rows = rows(&h);
    assert_eq!(rows.len(), 1, "a written record takes no more: one per connection");
    assert_eq!(rows[0][5..10], ["1421708805.000000", "1421708099.000000", "aes256-cts-hmac-sha1-96", "T", "T"]);
}

#[test]
fn a_tgs_exchange_over_tcp_split_at_every_byte() {
    // The TGS-REQ carries the TGT in an AP-REQ (PA-TGS-REQ): that only starts the record.
    let tgs_req = kdc_req(
        0x6c,
        12,
        &[pa_data(1, &ap_req(ticket("VLADG.NET", &["krbtgt", "VLADG.NET"], 18)))],
        &Body {
            options: FORWARDABLE,
            cname: None,
            sname: &["krbtgt", "VLADG.NET"],
            till: "19700101000000Z",
            ..kinit_body()
        },
    );
    let tgs_rep = kdc_rep(0x6d, 13, &[], "VLADG.NET", &["vladg"], ticket("VLADG.NET", &["krbtgt", "VLADG.NET"], 18));
    let expected = row([
        "TGS",
        "vladg/VLADG.NET",
        "krbtgt/VLADG.NET",
        "T",
        "-",
        "-",
        "0.000000",
        "aes256-cts-hmac-sha1-96",
        "T",
        "F",
        "-",
        "-",
        "-",
        "-",
    ]);
    let messages = [(true, tgs_req), (false, tgs_rep)];
    let longest = messages.iter().map(|(_, m)| m.len() + 4).max().unwrap();
    for chunk in 1..=longest {
        let h = tcp(&messages, chunk);
        assert_eq!(rows(&h), std::slice::from_ref(&expected), "chunks of {chunk}");
        assert_eq!(h.actions, [Action::Confirm("krb_tcp")], "chunks of {chunk}");
    }
    // Both records in one delivery each way, and the UDP analyzer on the same messages.
    assert_eq!(rows(&tcp(&messages, usize::MAX)), std::slice::from_ref(&expected));
    assert_eq!(rows(&udp(&messages)), [expected]);
}

#[test]
fn errors_name_the_client_and_the_error() {
    let enterprise = Body { cname: Some(&["enterprise_principal@AD.VLADG.NET"]), options: FORWARDABLE, ..kinit_body() };
    let not_found = Error {
        code: 6,
        crealm: Some("VLADG.NET"),
        cname: Some(&["enterprise_principal@AD.VLADG.NET"]),
        sname: &["krbtgt", "VLADG.NET"],
        text: Some("CLIENT_NOT_FOUND"),
        data: None,
    };
    let h = udp(&[(true, as_req(&enterprise)), (false, not_found.der())]);
    assert_eq!(
        rows(&h),
        [row([
            "AS",
            "enterprise_principal@AD.VLADG.NET/VLADG.NET",
            "krbtgt/VLADG.NET",
            "F",
            "CLIENT_NOT_FOUND",
            "-",
            "1421708099.000000",
            "-",
            "T",
            "F",
            "-",
            "-",
            "-",
            "-"
        ])]
    );
    // Without a request: the client from the error (no slash without a name), the code's name without a text,
    // nothing for a code the table does not list.
    type Case<'a> = (Option<&'a str>, Option<&'a [&'a str]>, u64, &'a str, &'a str);
    let cases: [Case; 4] = [
        (Some("VLADG.NET"), Some(&["vladg"]), 24, "vladg/VLADG.NET", "KDC_ERR_PREAUTH_FAILED"),
        (Some("VLADG.NET"), None, 37, "VLADG.NET", "KRB_AP_ERR_SKEW"),
        (None, Some(&["vladg"]), 99, "vladg/", "-"),
        (None, None, 43, "-", "-"),
    ];
    for (crealm, cname, code, client, error_msg) in cases {
        let error = Error { code, crealm, cname, sname: &["host", "x.vladg.net"], text: None, data: None };
        let rows = rows(&udp(&[(false, error.der())]));
        assert_eq!(rows[0][..5], ["-", client, "host/x.vladg.net", "F", error_msg], "code {code}");
    }
}

#[test]
fn an_ignored_error_drops_the_record_and_the_retry_starts_another() {
    // Windows' first AS-REQ without pre-authentication, its KDC_ERR_PREAUTH_REQUIRED (with the supported methods
    // in e-data), the retry with PA-ENC-TIMESTAMP and its AS-REP.
    let methods = seq(&[pa_data(2, &[]), pa_data(19, &seq(&[seq(&[ctx(0, int(18))])]))]);
    let preauth = Error {
        code: 25,
        crealm: None,
        cname: None,
        sname: &["krbtgt", "VLADG.NET"],
        text: Some("NEEDED_PREAUTH"),
        data: Some(methods),
    };
    let retry = kdc_req(0x6a, 10, &[pa_data(2, &encrypted_data(18, None))], &kinit_body());
    let h = udp(&[(true, as_req(&kinit_body())), (false, preauth.der()), (true, retry), (false, as_rep())]);
    let logged = h.logged("kerberos");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].values[0].to_tsv(), "102.000000", "the retry's record");
    assert_eq!(rows(&h)[0][..4], ["AS", "valid_client_principal/VLADG.NET", "krbtgt/VLADG.NET", "T"]);
    assert_eq!(violations(&h), 0);
}

#[test]
fn a_request_without_answer_is_written_at_the_end() {
    let h = udp(&[(true, as_req(&Body { cname: None, ..kinit_body() }))]);
    assert_eq!(rows(&h)[0][..5], ["AS", "/VLADG.NET", "krbtgt/VLADG.NET", "-", "-"]);
}

#[test]
fn a_standalone_ap_exchange() {
    let h = udp(&[(true, ap_req(ticket("UNIX.DESHAW.COM", &["ldap", "king.nyc.deshaw.com"], 16))), (false, ap_rep())]);
    assert_eq!(
        rows(&h),
        [row([
            "AP",
            "/UNIX.DESHAW.COM",
            "ldap/king.nyc.deshaw.com",
            "T",
            "-",
            "-",
            "-",
            "des3-cbc-sha1-kd",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-"
        ])]
    );
}

#[test]
fn principal_names_and_times_as_zeek_reads_them() {
    // One string whole, two or three joined (each to its first NUL), more are "unknown"; an unknown cipher.
    for (names, expected) in [
        (&["a\0b"][..], r"a\x00b"),
        (&["host", "x\0y"][..], "host/x"),
        (&["a", "b", "c"][..], "a/b/c"),
        (&["a", "b", "c", "d"][..], "unknown"),
    ] {
        let rep = kdc_rep(0x6b, 11, &[], "R", &["c"], ticket("R", names, 99));
        assert_eq!(rows(&udp(&[(false, rep)]))[0][1..3], ["c/R", expected], "{names:?}");
    }
    assert_eq!(
        rows(&udp(&[(false, kdc_rep(0x6b, 11, &[], "R", &["c"], ticket("R", &["s"], 99)))]))[0][7],
        "unknown-99"
    );
    assert_eq!(parse::generalized_time(b"20370913024805Z"), Some(2136422885.0));
    assert_eq!(parse::generalized_time(b"xx20370913024805Z"), Some(2136422885.0), "of 17 bytes, the last 15");
    assert_eq!(parse::generalized_time(b"19700101000000Z"), Some(0.0));
    assert_eq!(
        parse::generalized_time(b"20151301000000Z"),
        parse::generalized_time(b"20160101000000Z"),
        "timegm carries"
    );
    assert_eq!(parse::generalized_time(b"2037091302480Z"), None);
    // A till of another length is not set.
    let h = udp(&[(true, as_req(&Body { till: "2037091302480Z", ..kinit_body() }))]);
    assert_eq!(rows(&h)[0][6], "-");
}

#[test]
fn wrong_sized_addresses_are_weird() {
    let address = |t: u64, a: &[u8]| seq(&[ctx(0, int(t)), ctx(1, tlv(0x04, a))]);
    let body =
        Body { extra: vec![ctx(9, seq(&[address(2, &[10, 0, 0, 1]), address(2, &[10, 0, 0])]))], ..kinit_body() };
    let h = udp(&[(true, as_req(&body))]);
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.source)).collect();
    assert_eq!(weirds, [("invalid_kerberos_addr_len", "KRB")]);
}

#[test]
fn pkinit_certificates_become_files_and_x509_records() {
    let client = build::Cert::new("client.vladg.net").der();
    let server = build::Cert::new("kdc.vladg.net").der();
    // A ContentInfo of signedData: SignedData { version, digestAlgorithms, encapContentInfo, [0] certificates }.
    let content_info = |cert: &[u8]| {
        seq(&[
            tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]),
            ctx(
                0,
                seq(&[
                    int(3),
                    tlv(0x31, &seq(&[tlv(0x06, &[0x2b, 0x0e, 0x03, 0x02, 0x1a])])),
                    seq(&[]),
                    ctx(0, cert.to_vec()),
                ]),
            ),
        ])
    };
    // PA-PK-AS-REQ ::= SEQUENCE { signedAuthPack [0] IMPLICIT ContentInfo, ... }; PA-PK-AS-REP ::= dhInfo [0]
    // DHRepInfo ::= SEQUENCE { dhSignedData [0] IMPLICIT ContentInfo, ... }.
    let pk_as_req = seq(&[tlv(0x80, &content_info(&client))]);
    let pk_as_rep = ctx(0, seq(&[tlv(0x80, &content_info(&server))]));
    let request = kdc_req(0x6a, 10, &[pa_data(16, &pk_as_req)], &kinit_body());
    let reply = kdc_rep(
        0x6b,
        11,
        &[pa_data(17, &pk_as_rep)],
        "VLADG.NET",
        &["valid_client_principal"],
        ticket("VLADG.NET", &["krbtgt", "VLADG.NET"], 18),
    );
    let h = udp(&[(true, request), (false, reply)]);
    let rows = rows(&h);
    let (client_fuid, server_fuid) = (&rows[0][11], &rows[0][13]);
    assert!(client_fuid.starts_with('F') && server_fuid.starts_with('F') && client_fuid != server_fuid);
    assert_eq!([&rows[0][10], &rows[0][12]], ["CN=client.vladg.net,C=US", "CN=kdc.vladg.net,C=US"]);
    let subjects: Vec<_> = h.logged("x509").iter().map(|r| r.get("certificate.subject").unwrap().to_tsv()).collect();
    assert_eq!(subjects, ["CN=client.vladg.net,C=US", "CN=kdc.vladg.net,C=US"]);
    assert_eq!(violations(&h), 0);
}

#[test]
fn malformed_messages_are_violations_without_panics() {
    let error = Error { code: 6, crealm: None, cname: None, sname: &["a"], text: None, data: None }.der();
    let messages = [
        as_req(&kinit_body()),
        as_rep(),
        error,
        ap_req(ticket("R", &["s"], 1)),
        ap_rep(),
        kdc_rep(0x6b, 11, &[], "", &[], vec![]),
    ];
    for message in &messages {
        // Cut inside an element, a message is a violation; cut between the arguments of a list that runs to the
        // end of the message (the request body's, the error's fields), it is whole.
        for cut in 0..message.len() {
            assert!(violations(&udp(&[(true, message[..cut].to_vec())])) <= 1);
            assert!(violations(&tcp(&[(true, message[..cut].to_vec())], 7)) <= 1);
        }
        assert_eq!(violations(&udp(&[(true, message[..message.len() - 1].to_vec())])), 1, "{message:02x?}");
    }
    // Not a Kerberos message: binpac's invalid case.
    let h = udp(&[(true, b"GET / HTTP/1.1\r\n".to_vec()), (true, as_req(&kinit_body()))]);
    assert_eq!(
        h.actions,
        [Action::Violation("Binpac exception: binpac exception: invalid index for case: KRB_PDU: -25".into(), None)]
    );
    assert!(rows(&h).is_empty(), "nothing after the violation");
    // KRB-SAFE's body runs to the end of the message: Zeek's grammar never parses one.
    let safe = tlv(0x74, &seq(&[ctx(0, int(5)), ctx(1, int(20)), ctx(2, seq(&[ctx(0, tlv(0x04, b"x"))]))]));
    assert_eq!(violations(&udp(&[(true, safe)])), 1);
    // An AP-REQ parsed inside a TGS-REQ that then fails: its confirmation and record stand.
    let mut broken = kdc_req(0x6c, 12, &[pa_data(1, &ap_req(ticket("R", &["s"], 1)))], &kinit_body());
    broken.push(0x30);
    let h = udp(&[(true, broken)]);
    assert!(matches!(h.actions[..], [Action::Confirm("krb"), Action::Violation(..)]));
    assert_eq!(rows(&h)[0][..3], ["-", "-", "-"]);
}

#[test]
fn tcp_records_beyond_the_buffer_are_skipped_and_gaps_stop() {
    // A record longer than MAX_MESSAGE is skipped; the next one parses.
    let mut h = Harness::new(Proto::Tcp, 88);
    let mut krb = KrbTcp::new(Some(KnownCerts::default()));
    let big = (MAX_MESSAGE + 1) as u32;
    h.deliver(&mut krb, true, &big.to_be_bytes());
    h.deliver(&mut krb, true, &vec![0x6a; big as usize]);
    let req = as_req(&kinit_body());
    h.deliver(&mut krb, true, &[&(req.len() as u32).to_be_bytes()[..], &req].concat());
    h.finish(&mut krb);
    assert_eq!(rows(&h).len(), 1);
    assert_eq!(h.actions, [Action::Confirm("krb_tcp")]);
    // Past binpac's 10 MiB, the buffer's exception.
    let mut h = Harness::new(Proto::Tcp, 88);
    let mut krb = KrbTcp::new(Some(KnownCerts::default()));
    h.deliver(&mut krb, true, &u32::MAX.to_be_bytes());
    for _ in 0..11 {
        h.deliver(&mut krb, true, &vec![0; 1 << 20]);
    }
    assert_eq!(violations(&h), 1);
    // After a gap, or on a connection joined mid-stream, nothing is parsed.
    let record = [&(req.len() as u32).to_be_bytes()[..], &req].concat();
    let mut h = Harness::new(Proto::Tcp, 88);
    let mut krb = KrbTcp::new(Some(KnownCerts::default()));
    h.run(1.0, |ctx| krb.undelivered(ctx, false, 10));
    h.deliver(&mut krb, true, &record);
    assert!(h.actions.is_empty());
    let mut h = Harness::new(Proto::Tcp, 88);
    h.partial = true;
    let mut krb = KrbTcp::new(Some(KnownCerts::default()));
    h.deliver(&mut krb, true, &record);
    h.finish(&mut krb);
    assert!(h.actions.is_empty() && h.records.is_empty());
}

#[test]
fn the_udp_signature_is_zeeks_as_written() {
    let tgs = kdc_req(0x6c, 12, &[], &Body { options: 0, cname: None, ..kinit_body() });
    let sig = |d: &[u8]| SPEC.detect.is_some_and(|s| s.matches(Proto::Udp, true, d, b""));
    assert!(!sig(&tgs), "a DER TGS-REQ has a1 03 02 01 05");
    assert!(sig(&[0x6c, 1, 2, 3, 0x30, 4, 5, 6, 0xa1, 0x03, 0x02, 0x05]));
    assert!(!sig(&[0x6c, b'\n', 2, 3, 0x30, 4, 5, 6, 0xa1, 0x03, 0x02, 0x05]));
    assert!(!SPEC.detect.is_some_and(|s| s.matches(
        Proto::Tcp,
        true,
        &[0x6c, 1, 2, 3, 0x30, 4, 5, 6, 0xa1, 3, 2, 5],
        b""
    )));
}

/// Through the engine: port 88 attaches `krb` (UDP) and `krb_tcp` (TCP), conn.log names those services, and the
/// records carry their connection's uid.
#[test]
fn both_transports_through_the_engine() {
    use crate::decode::LinkType;
    use crate::decode::test_frames::{ipv4_udp, tcp_exchange};
    use crate::engine::Engine;

    const CLIENT: [u8; 4] = [192, 168, 1, 31];
    const SERVER: [u8; 4] = [192, 168, 1, 32];
    let request = as_req(&kinit_body());
    let reply = as_rep();
    let record = |m: &[u8]| [&(m.len() as u32).to_be_bytes()[..], m].concat();
    let mut engine = Engine::new(crate::config::AnalysisConfig { ignore_checksums: true, ..Default::default() });
    engine.process_packet(1.0, LinkType::Raw, &ipv4_udp((CLIENT, 63081), (SERVER, 88), &request));
    engine.process_packet(1.5, LinkType::Raw, &ipv4_udp((SERVER, 88), (CLIENT, 63081), &reply));
    let (req_record, rep_record) = (record(&request), record(&reply));
    let frames = tcp_exchange((CLIENT, 51493), (SERVER, 88), &[(true, &req_record), (false, &rep_record)]);
    for (i, frame) in frames.iter().enumerate() {
        engine.process_packet(2.0 + i as f64 * 0.01, LinkType::Raw, frame);
    }
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let field = |r: &LogRecord, name: &str| r.get(name).map(Value::to_tsv).unwrap_or_default();
    for (port, service) in [("63081", "krb"), ("51493", "krb_tcp")] {
        let conn = records.iter().find(|r| r.schema.path == "conn" && field(r, "id.orig_p") == port).unwrap();
        assert_eq!(field(conn, "service"), service);
        let logged: Vec<_> =
            records.iter().filter(|r| r.schema.path == "kerberos" && field(r, "id.orig_p") == port).collect();
        assert_eq!(logged.len(), 1, "{service}");
        assert_eq!(field(logged[0], "uid"), field(conn, "uid"));
        assert_eq!(field(logged[0], "client"), "valid_client_principal/VLADG.NET");
        assert_eq!(field(logged[0], "success"), "T");
    }
}

/// Valid messages with bytes flipped, through both analyzers' fuzz entry point: nothing panics.
#[test]
fn mutated_messages_never_panic() {
    let messages = [as_req(&kinit_body()), as_rep(), ap_req(ticket("R", &["s", "t"], 18)), ap_rep()];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d_u64);
    let mut next = || rng.next();
    for message in &messages {
        for _ in 0..300 {
            let mut m = message.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % m.len() as u64) as usize;
                m[at] = next() as u8;
            }
            // As one datagram or record: the fuzz driver's `[control, len, bytes]` framing, in 255-byte pieces.
            let framed: Vec<u8> = m.chunks(255).flat_map(|c| [&[0, c.len() as u8][..], c].concat()).collect();
            fuzz(&framed);
            let h = udp(&[(true, m.clone())]);
            assert!(violations(&h) <= 1);
        }
    }
}
