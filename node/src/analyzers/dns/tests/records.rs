//! Every record type Zeek's DNS analyzer parses, answered in a hand-assembled reply to a hand-assembled
//! query: the dns.log `answers` and `TTLs` columns and the weirds must be what Zeek 9.1 writes. Expected
//! strings come from the reply handlers of `scripts/base/protocols/dns/main.zeek` (cited per test), from
//! btest baselines where one shows the record, and from the parsing rules of `DNS.cc`.

use super::*;

const QNAME: &str = "example.com";
const TTL: u32 = 3600;
const TYPE_TLSA: u16 = 52;

/// A name in wire form, without compression.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).expect("test label fits"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A length-prefixed character string.
fn char_string(s: &str) -> Vec<u8> {
    let mut out = vec![u8::try_from(s.len()).expect("test string fits")];
    out.extend_from_slice(s.as_bytes());
    out
}

/// A class-IN resource record.
fn rr(owner: &str, rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut out = wire_name(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).expect("test rdata fits").to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

fn answer(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    rr(QNAME, rtype, TTL, rdata)
}

/// A message with one question for `QNAME` and the given answer and additional records.
fn message(flags: u16, qtype: u16, answers: &[Vec<u8>], additional: &[Vec<u8>]) -> Vec<u8> {
    let count = |records: &[Vec<u8>]| u16::try_from(records.len()).expect("few records").to_be_bytes();
    let mut out = Vec::new();
    out.extend_from_slice(&0x1234u16.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&count(answers));
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&count(additional));
    out.extend_from_slice(&wire_name(QNAME));
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    for record in answers.iter().chain(additional) {
        out.extend_from_slice(record);
    }
    out
}

const QUERY_FLAGS: u16 = 0x0100;
const REPLY_FLAGS: u16 = 0x8180;

/// What one query and its reply leave in dns.log and weird.log.
struct Outcome {
    rtt: String,
    answers: String,
    ttls: String,
    weirds: Vec<(String, Option<String>)>,
}

impl Outcome {
    fn weird_names(&self) -> Vec<&str> {
        self.weirds.iter().map(|(name, _)| name.as_str()).collect()
    }
}

fn exchange_with(analyzer: DnsAnalyzer, qtype: u16, reply: &[u8]) -> Outcome {
    let mut h = udp("192.0.2.1", 40000, "192.0.2.53", 53);
    let mut a = analyzer;
    let query = message(QUERY_FLAGS, qtype, &[], &[]);
    h.run(1.0, |ctx| a.deliver(ctx, true, &query));
    h.run(1.5, |ctx| a.deliver(ctx, false, reply));
    h.run(2.0, |ctx| a.finish(ctx));
    let records = h.logged("dns");
    assert_eq!(records.len(), 1, "one query, one reply, one record");
    let field = |i: usize| records[0].values[i].to_tsv();
    let index = |name: &str| SCHEMA.fields.iter().position(|f| f.name == name).expect("dns.log column");
    Outcome {
        rtt: field(index("rtt")),
        answers: field(index("answers")),
        ttls: field(index("TTLs")),
        weirds: h.weirds.iter().map(|w| (w.name.clone(), w.addl.clone())).collect(),
    }
}

/// A query of `qtype` answered with `answers` (default settings: additional records skipped).
fn exchange(qtype: u16, answers: &[Vec<u8>]) -> Outcome {
    exchange_with(DnsAnalyzer::new(Proto::Udp), qtype, &message(REPLY_FLAGS, qtype, answers, &[]))
}

/// An A record that must reach `answers` unless parsing stopped before it.
fn sentinel() -> Vec<u8> {
    answer(wire::TYPE_A, &[10, 0, 0, 1])
}

#[test]
fn a_aaaa_and_a6_print_addresses() {
    // main.zeek dns_A_reply / dns_AAAA_reply / dns_A6_reply: fmt("%s", a).
    let v6 = "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let out = exchange(
        wire::TYPE_A,
        &[answer(wire::TYPE_A, &[192, 0, 2, 7]), answer(wire::TYPE_AAAA, &v6), answer(wire::TYPE_A6, &v6)],
    );
    assert_eq!(out.answers, "192.0.2.7,2001:db8::1,2001:db8::1");
    assert_eq!(out.ttls, "3600.000000,3600.000000,3600.000000");
    assert_eq!(out.rtt, "0.500000");
    assert!(out.weirds.is_empty(), "{:?}", out.weirds);

    // DNS.cc ParseRR_A: an A record of another size is DNS_RR_bad_length and ends the message.
    let out = exchange(wire::TYPE_A, &[answer(wire::TYPE_A, &[192, 0, 2]), sentinel()]);
    assert_eq!(out.answers, "-");
    assert_eq!(out.weird_names(), ["DNS_RR_bad_length"]);
}

#[test]
fn name_records_print_the_lower_cased_name() {
    // main.zeek dns_NS_reply, dns_CNAME_reply, dns_PTR_reply, dns_MX_reply (the exchange),
    // dns_SRV_reply (the target), dns_SOA_reply (soa$mname); ExtractName lower-cases rdata names.
    let mx = [&10u16.to_be_bytes()[..], &wire_name("Mail.Example.COM")].concat();
    let srv = [&[0, 1, 0, 2, 0x13, 0xc4][..], &wire_name("sip.example.com")].concat();
    let soa = [wire_name("ns1.example.com"), wire_name("hostmaster.example.com"), vec![0; 20]].concat();
    let out = exchange(
        wire::TYPE_CNAME,
        &[
            answer(wire::TYPE_NS, &wire_name("NS1.example.com")),
            answer(wire::TYPE_CNAME, &wire_name("www.EXAMPLE.com")),
            answer(wire::TYPE_PTR, &wire_name("host.example.com")),
            answer(wire::TYPE_MX, &mx),
            answer(wire::TYPE_SRV, &srv),
            answer(wire::TYPE_SOA, &soa),
        ],
    );
    assert_eq!(
        out.answers,
        "ns1.example.com,www.example.com,host.example.com,mail.example.com,sip.example.com,ns1.example.com"
    );
    assert!(out.weirds.is_empty(), "{:?}", out.weirds);
}

#[test]
fn txt_and_spf_list_every_string_with_its_length() {
    // main.zeek dns_TXT_reply / dns_SPF_reply: fmt("TXT %d %s", |s|, s) joined by spaces (an empty
    // string leaves "TXT 0 "), as the multiple-txt-strings baseline shows.
    let txt = [char_string("hello"), char_string(""), char_string("world")].concat();
    let spf = char_string("v=spf1 -all");
    let out = exchange(wire::TYPE_TXT, &[answer(wire::TYPE_TXT, &txt), answer(wire::TYPE_SPF, &spf)]);
    assert_eq!(out.answers, "TXT 5 hello TXT 0  TXT 5 world,SPF 11 v=spf1 -all");

    // A string running past rdlength: DNS_TXT_char_str_past_rdlen, and the record fails.
    let bad = [vec![9], b"abc".to_vec()].concat();
    let out = exchange(wire::TYPE_TXT, &[answer(wire::TYPE_TXT, &bad), sentinel()]);
    assert_eq!(out.answers, "-");
    assert_eq!(out.weird_names(), ["DNS_TXT_char_str_past_rdlen"]);
}

#[test]
fn wks_sets_rtt_without_an_answer() {
    // main.zeek dns_WKS_reply: do_reply with "" (rtt set, nothing appended); the wks baseline's dns.log has
    // an rtt and answers "-". DNS.cc raises the event without consuming the data.
    let out = exchange(wire::TYPE_WKS, &[answer(wire::TYPE_WKS, &[192, 0, 2, 1, 6, 0x40])]);
    assert_eq!((out.rtt.as_str(), out.answers.as_str(), out.ttls.as_str()), ("0.500000", "-", "-"));
}

#[test]
fn records_without_a_base_handler_leave_no_trace() {
    // HINFO, CAA, SVCB and HTTPS events have no handler in main.zeek: no answer and no rtt.
    let hinfo = [char_string("x86"), char_string("linux")].concat();
    let caa = [&[0u8, 5][..], b"issueca.example.net"].concat();
    let https = [&1u16.to_be_bytes()[..], &[0]].concat();
    for (rtype, rdata) in [(wire::TYPE_HINFO, hinfo), (wire::TYPE_CAA, caa), (wire::TYPE_HTTPS, https)] {
        let out = exchange(rtype, &[answer(rtype, &rdata)]);
        assert_eq!((out.rtt.as_str(), out.answers.as_str()), ("-", "-"), "type {rtype}");
        assert!(out.weirds.is_empty(), "type {rtype}: {:?}", out.weirds);
    }
}

#[test]
fn naptr_prints_order_preference_flags_service_and_target() {
    // The naptr baseline (dns.log.cut): "NAPTR 100 100 s SIPS+D2T _sips._tcp.fp-de-carrier-...".
    let naptr = [
        &100u16.to_be_bytes()[..],
        &100u16.to_be_bytes(),
        &char_string("s"),
        &char_string("SIPS+D2T"),
        &char_string(""),
        &wire_name("_sips._tcp.example.com"),
    ]
    .concat();
    // main.zeek dns_NAPTR_reply: the regexp, then a space and the replacement only when it is not empty.
    let with_regexp = [
        &10u16.to_be_bytes()[..],
        &20u16.to_be_bytes(),
        &char_string("u"),
        &char_string("E2U+sip"),
        &char_string("!^.*$!sip:info@example.com!"),
        &[0],
    ]
    .concat();
    let out = exchange(35, &[answer(35, &naptr), answer(35, &with_regexp)]);
    assert_eq!(
        out.answers,
        "NAPTR 100 100 s SIPS+D2T _sips._tcp.example.com,NAPTR 10 20 u E2U+sip !^.*$!sip:info@example.com!"
    );
    assert!(out.weirds.is_empty(), "{:?}", out.weirds);
}

#[test]
fn dnssec_records() {
    // main.zeek: dns_RRSIG "RRSIG <type covered> <signer or <Root>>", dns_DNSKEY "DNSKEY <algorithm>",
    // dns_NSEC "NSEC <owner> <next>", dns_NSEC3 "NSEC3", dns_NSEC3PARAM "NSEC3PARAM", dns_DS "DS <algorithm>
    // <digest type>"; the rrsig oracle case shows "RRSIG 5 cmu.edu".
    let rrsig = |signer: &str| {
        [&wire::TYPE_A.to_be_bytes()[..], &[8, 2], &[0; 4], &[0; 4], &[0; 4], &[0, 1], &wire_name(signer), &[0xab; 8]]
            .concat()
    };
    let dnskey = [&0x0101u16.to_be_bytes()[..], &[3, 8], &[0xcd; 8]].concat();
    let nsec = [wire_name("next.example.com"), vec![0, 1, 0x40]].concat();
    let nsec3 = [&[1u8, 0][..], &10u16.to_be_bytes(), &[2, 0xaa, 0xbb], &[3, 1, 2, 3], &[0, 1, 0x40]].concat();
    let nsec3param = [&[1u8, 0][..], &10u16.to_be_bytes(), &[2, 0xaa, 0xbb]].concat();
    let ds = [&0x1234u16.to_be_bytes()[..], &[8, 2], &[0xef; 32]].concat();
    let out = exchange(
        46,
        &[
            answer(wire::TYPE_RRSIG, &rrsig("example.com")),
            answer(wire::TYPE_RRSIG, &rrsig("")),
            answer(wire::TYPE_DNSKEY, &dnskey),
            answer(wire::TYPE_NSEC, &nsec),
            answer(wire::TYPE_NSEC3, &nsec3),
            answer(wire::TYPE_NSEC3PARAM, &nsec3param),
            answer(wire::TYPE_DS, &ds),
        ],
    );
    assert_eq!(
        out.answers,
        "RRSIG 1 example.com,RRSIG 1 <Root>,DNSKEY 8,NSEC example.com next.example.com,NSEC3,NSEC3PARAM,DS 8 2"
    );
    assert!(out.weirds.is_empty(), "{:?}", out.weirds);

    // DNS.cc ParseRR_DNSKEY: RSA/MD5 (1) is not recommended; ParseRR_DS: digest type 0 is reserved.
    let md5_key = [&0x0100u16.to_be_bytes()[..], &[3, 1], &[0xcd; 8]].concat();
    let reserved_ds = [&0x1234u16.to_be_bytes()[..], &[8, 0], &[0xef; 20]].concat();
    let out = exchange(48, &[answer(wire::TYPE_DNSKEY, &md5_key), answer(wire::TYPE_DS, &reserved_ds)]);
    assert_eq!(out.answers, "DNSKEY 1,DS 8 0");
    assert_eq!(
        out.weirds,
        [
            ("DNSSEC_DNSKEY_NotRecommended_ZoneSignAlgo".to_string(), Some("1".to_string())),
            ("DNSSEC_DS_ReservedDigestType".to_string(), Some("0".to_string())),
        ]
    );
}

#[test]
fn binds_sshfp_and_loc() {
    // main.zeek: dns_BINDS "BIND9 signing signal", dns_SSHFP "SSHFP: <hex fingerprint>"
    // (bytestring_to_hexstr, lower case), dns_LOC fmt("LOC:  %d %d %d", size, horiz_pre, vert_pre).
    let binds = [8u8, 0x12, 0x34, 0, 1];
    let sshfp = [1u8, 2, 0xde, 0xad, 0xbe, 0xef];
    let loc = [&[0u8, 0x12, 0x16, 0x13][..], &[0x80; 12]].concat();
    let out = exchange(
        29,
        &[answer(wire::TYPE_BINDS, &binds), answer(wire::TYPE_SSHFP, &sshfp), answer(wire::TYPE_LOC, &loc)],
    );
    assert_eq!(out.answers, "BIND9 signing signal,SSHFP: deadbeef,LOC:  18 22 19");
    assert!(out.weirds.is_empty(), "{:?}", out.weirds);
}

#[test]
fn loc_of_the_wrong_size_ends_the_message() {
    // zeek/zeek#5357 (btest loc-invalid-length): rdlength != 16 is dns_invalid_loc_length and the record is
    // rejected, so nothing after it is read.
    let short = [&[0u8, 0x12, 0x16, 0x13][..], &[0x80; 11]].concat();
    let out = exchange(29, &[answer(wire::TYPE_LOC, &short), sentinel()]);
    assert_eq!(out.answers, "-");
    assert_eq!(out.weird_names(), ["dns_invalid_loc_length"]);
}

#[test]
fn unknown_types_are_named_by_number() {
    // main.zeek dns_unknown_reply: fmt("<unknown type=%s>", ans$qtype); DNS.cc: DNS_RR_unknown_type with the
    // type as addl, the data skipped by rdlength.
    let out = exchange(TYPE_TLSA, &[answer(TYPE_TLSA, &[3, 1, 1, 0xaa, 0xbb]), sentinel()]);
    assert_eq!(out.answers, "<unknown type=52>,10.0.0.1");
    assert_eq!(out.ttls, "3600.000000,3600.000000");
    assert_eq!(out.weirds, [("DNS_RR_unknown_type".to_string(), Some("52".to_string()))]);
}

#[test]
fn ttls_are_unsigned_seconds() {
    // DNS.cc ExtractLong: the TTL is read as an unsigned 32-bit count of seconds (btest huge-ttl).
    let out =
        exchange(wire::TYPE_A, &[rr(QNAME, wire::TYPE_A, u32::MAX, &[192, 0, 2, 7]), rr(QNAME, 1, 0, &[1, 1, 1, 1])]);
    assert_eq!(out.ttls, "4294967295.000000,0.000000");
}

/// An HTTPS record: priority 1, root target, then `params`.
fn https_rdata(params: &[u8]) -> Vec<u8> {
    [&1u16.to_be_bytes()[..], &[0], params].concat()
}

fn svc_param(key: u16, value: &[u8]) -> Vec<u8> {
    [&key.to_be_bytes()[..], &u16::try_from(value.len()).unwrap().to_be_bytes(), value].concat()
}

#[test]
fn svcb_params_are_checked_and_the_next_record_still_read() {
    // Well-formed alpn and port: no weird, and parsing goes on after the record.
    let good = https_rdata(&[svc_param(1, b"\x02h2\x02h3"), svc_param(3, &443u16.to_be_bytes())].concat());
    let out = exchange(wire::TYPE_HTTPS, &[answer(wire::TYPE_HTTPS, &good), sentinel()]);
    assert_eq!(out.answers, "10.0.0.1");
    assert!(out.weirds.is_empty(), "{:?}", out.weirds);

    // Baselines svcb-alpn-malformed-len (raw \x02h2\x08h3 and \x02h2\x01h3) and svcb-port-malformed
    // (raw \x01\xbb\x00): the weird is raised, the record still parses.
    for (param, weird) in [
        (svc_param(1, b"\x02h2\x08h3"), "DNS_SVCB_alpn_length_invalid"),
        (svc_param(1, b"\x02h2\x01h3"), "DNS_SVCB_alpn_length_invalid"),
        (svc_param(3, b"\x01\xbb\x00"), "DNS_SVCB_port_length_invalid"),
    ] {
        let out = exchange(wire::TYPE_HTTPS, &[answer(wire::TYPE_HTTPS, &https_rdata(&param)), sentinel()]);
        assert_eq!(out.answers, "10.0.0.1");
        assert_eq!(out.weird_names(), [weird]);
    }
}

#[test]
fn svcb_shorter_than_its_minimum_ends_the_message() {
    // zeek/zeek#5461 and the svcb-rdlength-mismatch baseline: rdlength 2 (a priority only) is
    // DNS_SVCB_wrong_length, checked against the record and not the rest of the message.
    let out = exchange(wire::TYPE_SVCB, &[answer(wire::TYPE_SVCB, &1u16.to_be_bytes()), sentinel()]);
    assert_eq!(out.answers, "-");
    assert_eq!(out.weird_names(), ["DNS_SVCB_wrong_length"]);
}

/// An OPT record (root owner, class = UDP size) with the given options.
fn opt(options: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&wire::TYPE_EDNS.to_be_bytes());
    out.extend_from_slice(&1232u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&u16::try_from(options.len()).unwrap().to_be_bytes());
    out.extend_from_slice(options);
    out
}

fn reading_additional() -> DnsAnalyzer {
    DnsAnalyzer::with_settings(Proto::Udp, Settings { skip_all_auth: true, skip_all_addl: false })
}

#[test]
fn edns_options_stay_inside_their_record() {
    // zeek/zeek#5359: options are read within the OPT record, so one that is not last is fine ...
    let cookie = svc_param(10, &[7; 8]);
    let reply = message(REPLY_FLAGS, wire::TYPE_A, &[sentinel()], &[opt(&cookie), sentinel()]);
    let out = exchange_with(reading_additional(), wire::TYPE_A, &reply);
    assert_eq!(out.answers, "10.0.0.1");
    assert!(out.weirds.is_empty(), "{:?}", out.weirds);

    // ... and an option running past the record is EDNS_truncated_option (btest edns-bad-length).
    let mut overrun = svc_param(10, &[7; 8]);
    overrun[3] = 12;
    let reply = message(REPLY_FLAGS, wire::TYPE_A, &[sentinel()], &[opt(&overrun), sentinel()]);
    let out = exchange_with(reading_additional(), wire::TYPE_A, &reply);
    assert_eq!(out.answers, "10.0.0.1");
    assert_eq!(out.weird_names(), ["EDNS_truncated_option"]);
}

#[test]
fn malformed_names_end_the_message() {
    // zeek/zeek#5358 (btest invalid-names): a label running past the message keeps its own weird and the
    // name fails, so the records after it are not read.
    let cut_label = [vec![3], b"www".to_vec(), vec![60], b"short".to_vec()].concat();
    let mut reply = message(REPLY_FLAGS, wire::TYPE_CNAME, &[sentinel()], &[]);
    reply[7] = 2;
    // A second answer cut off right after its owner's last label, before the terminating zero.
    reply.extend_from_slice(&rr(QNAME, wire::TYPE_A, TTL, &[10, 0, 0, 2])[..12]);
    let out = exchange_with(DnsAnalyzer::new(Proto::Udp), wire::TYPE_CNAME, &reply);
    assert_eq!(out.answers, "10.0.0.1");
    assert_eq!(out.weird_names(), ["dns_invalid_name"]);
    let out = exchange(wire::TYPE_CNAME, &[answer(wire::TYPE_CNAME, &cut_label), sentinel()]);
    assert_eq!(out.answers, "-");
    assert_eq!(out.weird_names(), ["DNS_label_len_gt_pkt"]);
}
