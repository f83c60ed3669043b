//! The DNS analyzer against real traffic from the oracle cases: each test replays the payloads of one
//! case and compares the dns.log columns with Zeek's baseline line.

mod records;
mod vectors;

use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;
use vectors::*;

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).expect("test vector is hex")
}

/// One logged record as Zeek's TSV writer prints it, without `ts` and `uid`.
fn tsv(rec: &crate::logs::LogRecord) -> String {
    rec.values[2..].iter().map(|v| v.to_tsv()).collect::<Vec<_>>().join("\t")
}

/// The dns.log lines written so far, with their `ts`.
fn dns_lines(h: &Harness) -> Vec<(f64, String)> {
    h.logged("dns").into_iter().map(|r| (r.ts(), tsv(r))).collect()
}

fn udp(orig: &str, orig_p: u16, resp: &str, resp_p: u16) -> Harness {
    let mut h = Harness::new(Proto::Udp, resp_p);
    h.id.orig_h = orig.parse().unwrap();
    h.id.orig_p = orig_p;
    h.id.resp_h = resp.parse().unwrap();
    h
}

fn send(h: &mut Harness, a: &mut DnsAnalyzer, ts: f64, is_orig: bool, hex: &str) {
    let data = bytes(hex);
    h.run(ts, |ctx| a.deliver(ctx, is_orig, &data));
}

fn finish(h: &mut Harness, a: &mut DnsAnalyzer, ts: f64) {
    h.run(ts, |ctx| a.finish(ctx));
}

#[test]
fn duplicate_reply_is_logged_alone_at_the_end() {
    let mut h = udp("55.247.223.174", 27285, "222.195.43.124", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut h, &mut a, 1363716396.798072, true, DUP_QUERY);
    send(&mut h, &mut a, 1363716396.798286, false, DUP_REPLY);
    send(&mut h, &mut a, 1363716396.798374, false, DUP_REPLY);
    finish(&mut h, &mut a, 1363716500.0);
    let answers = "www-cmu.andrew.cmu.edu,RRSIG 5 cmu.edu,www-cmu-2.andrew.cmu.edu,128.2.10.163\t\
                   86400.000000,86400.000000,5.000000,21600.000000";
    let lines = dns_lines(&h);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].0, 1363716396.798072);
    assert_eq!(
        lines[0].1,
        format!(
            "55.247.223.174\t27285\t222.195.43.124\t53\tudp\t21140\t0.000214\twww.cmu.edu\t1\tC_INTERNET\t1\tA\t\
             0\tNOERROR\tT\tF\tF\tF\t1\t{answers}\tF\t0\tquery"
        )
    );
    assert_eq!(lines[1].0, 1363716396.798374);
    assert_eq!(
        lines[1].1,
        format!(
            "55.247.223.174\t27285\t222.195.43.124\t53\tudp\t21140\t-\twww.cmu.edu\t-\t-\t-\t-\t0\tNOERROR\tT\tF\tF\tF\t\
             0\t{answers}\tF\t0\tquery"
        )
    );
    assert!(h.actions.contains(&Action::Confirm("dns")));
    assert!(h.weirds.is_empty(), "{:?}", h.weirds);
}

/// An answered query leaves nothing pending, and the analyzer keeps no tracker for it: the state a DNS
/// connection holds while it waits out its inactivity timeout stays a few words.
#[test]
fn an_answered_query_leaves_no_tracker_behind() {
    let mut h = udp("55.247.223.174", 27285, "222.195.43.124", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    assert!(std::mem::size_of::<DnsAnalyzer>() <= 24, "DnsAnalyzer is {} bytes", std::mem::size_of::<DnsAnalyzer>());
    send(&mut h, &mut a, 1363716396.798072, true, DUP_QUERY);
    assert!(a.tracker.is_some(), "the query waits for its reply");
    send(&mut h, &mut a, 1363716396.798286, false, DUP_REPLY);
    assert!(a.tracker.is_none(), "nothing is pending after the reply");
    assert_eq!(dns_lines(&h).len(), 1);
}

#[test]
fn reply_first_flips_the_connection() {
    // The engine saw 207.158.192.40:53 first; Zeek's DNS analyzer turns the connection around.
    let mut h = udp("207.158.192.40", 53, "10.20.1.31", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut h, &mut a, 964953086.310131, true, REPLY_FIRST);
    assert!(h.actions.contains(&Action::FlipRoles));
    // What the engine does with that action.
    let id = h.id;
    (h.id.orig_h, h.id.orig_p, h.id.resp_h, h.id.resp_p) = (id.resp_h, id.resp_p, id.orig_h, id.orig_p);
    finish(&mut h, &mut a, 964953200.0);
    let answers = "206.109.64.186,216.1.205.81,205.149.163.211,134.53.131.135,134.53.131.192,128.104.18.148,\
                   204.152.186.139,63.77.33.226";
    let ttls = ["900.000000"; 8].join(",");
    assert_eq!(
        dns_lines(&h),
        vec![(
            964953086.310131,
            format!(
                "10.20.1.31\t53\t207.158.192.40\t53\tudp\t25701\t-\tus.v27.distributed.net\t-\t-\t-\t-\t0\tNOERROR\t\
                 T\tF\tF\tT\t0\t{answers}\t{ttls}\tF\t0\tquery"
            )
        )]
    );
}

#[test]
fn notify_and_unpaired_messages() {
    // Three connections of dns-notify, each finished on its own.
    let mut notify = udp("203.0.113.82", 57394, "203.0.113.22", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut notify, &mut a, 1774311700.130883, true, NOTIFY_QUERY);
    send(&mut notify, &mut a, 1774311700.131151, false, NOTIFY_REFUSED);
    assert_eq!(
        dns_lines(&notify)[0].1,
        "203.0.113.82\t57394\t203.0.113.22\t53\tudp\t20785\t-\tdhcp.lbnl.us\t1\tC_INTERNET\t6\tSOA\t5\tREFUSED\t\
         F\tF\tF\tF\t0\t-\t-\tT\t4\tnotify"
    );

    // The conn layer already oriented this one by port (orig = the client).
    let mut ds = udp("214.187.42.114", 53669, "203.0.113.26", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut ds, &mut a, 1774311700.120433, false, DS_REPLY_ONLY);
    assert!(dns_lines(&ds).is_empty());
    finish(&mut ds, &mut a, 1774311800.0);
    assert_eq!(
        dns_lines(&ds)[0].1,
        "214.187.42.114\t53669\t203.0.113.26\t53\tudp\t29661\t-\t-\t-\t-\t-\t-\t0\tNOERROR\tF\tF\tF\tF\t0\t-\t-\tF\t0\tquery"
    );

    let mut nxt = udp("122.243.120.210", 56882, "203.0.113.26", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut nxt, &mut a, 1774311700.188988, true, NXT_QUERY);
    finish(&mut nxt, &mut a, 1774311800.0);
    assert_eq!(
        dns_lines(&nxt)[0].1,
        "122.243.120.210\t56882\t203.0.113.26\t53\tudp\t52281\t-\t_acme-challenge.intmail.cbs.mpg.de\t1\tC_INTERNET\t\
         30\tNXT\t-\t-\tF\tF\tF\tF\t1\t-\t-\tF\t0\tquery"
    );
}

#[test]
fn multicast_messages_are_logged_without_pairing() {
    let mut h = udp("192.168.0.2", 5353, "224.0.0.251", 5353);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    for (i, msg) in [MDNS_0, MDNS_1, MDNS_2, MDNS_3].iter().enumerate() {
        send(&mut h, &mut a, 1782244119.877633 + i as f64 * 0.0002, true, msg);
    }
    finish(&mut h, &mut a, 1782244200.0);
    let id = "192.168.0.2\t5353\t224.0.0.251\t5353\tudp\t0\t-";
    let lines: Vec<String> = dns_lines(&h).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        lines,
        vec![
            format!("{id}\tinitial-query-a.local\t1\tC_INTERNET\t1\tA\t-\t-\tF\tF\tF\tF\t0\t-\t-\tF\t0\tquery"),
            format!("{id}\tinitial-query-aaaa.local\t1\tC_INTERNET\t28\tAAAA\t-\t-\tF\tF\tF\tF\t0\t-\t-\tF\t0\tquery"),
            format!(
                "{id}\tunrelated-reply-a.local\t-\t-\t-\t-\t0\tNOERROR\tT\tF\tF\tF\t0\t192.168.0.2\t120.000000\tF\t0\tquery"
            ),
            format!(
                "{id}\tunrelated-reply-aaaa.local\t-\t-\t-\t-\t0\tNOERROR\tT\tF\tF\tF\t0\tfe80::200:deff:fead:beef\t\
                 120.000000\tF\t0\tquery"
            ),
        ]
    );
}

#[test]
fn ipv6_multicast_uses_its_own_connection() {
    let mut h = udp("fe80::200:deff:fead:beef", 5353, "ff02::fb", 5353);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut h, &mut a, 1782244119.878534, true, MDNS_4);
    send(&mut h, &mut a, 1782244119.878724, true, MDNS_5);
    let id = "fe80::200:deff:fead:beef\t5353\tff02::fb\t5353\tudp\t0\t-";
    let lines: Vec<String> = dns_lines(&h).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        lines,
        vec![
            format!("{id}\tv6-initial.local\t1\tC_INTERNET\t28\tAAAA\t-\t-\tF\tF\tF\tF\t0\t-\t-\tF\t0\tquery"),
            format!(
                "{id}\tv6-unrelated.local\t-\t-\t-\t-\t0\tNOERROR\tT\tF\tF\tF\t0\tfe80::1\t120.000000\tF\t0\tquery"
            ),
        ]
    );
}

#[test]
fn rrsig_answers() {
    let mut h = udp("35.184.172.191", 10267, "128.175.13.16", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut h, &mut a, 1533309955.393636, true, RRSIG_QUERY);
    send(&mut h, &mut a, 1533309955.397041, false, RRSIG_REPLY);
    assert_eq!(
        dns_lines(&h)[0].1,
        "35.184.172.191\t10267\t128.175.13.16\t53\tudp\t17129\t0.003405\tvirgo.sas.upenn.edu\t1\tC_INTERNET\t1\tA\t\
         0\tNOERROR\tT\tF\tF\tF\t1\t128.91.234.142,RRSIG 1 upenn.edu\t30.000000,30.000000\tF\t0\tquery"
    );
}

#[test]
fn tkey_over_tcp_with_additional_records() {
    let mut h = Harness::new(Proto::Tcp, 53);
    h.id.orig_h = "192.168.1.106".parse().unwrap();
    h.id.orig_p = 50138;
    h.id.resp_h = "192.168.1.108".parse().unwrap();
    let settings = Settings { skip_all_auth: true, skip_all_addl: false };
    let mut a = DnsAnalyzer::with_settings(Proto::Tcp, settings);
    let query = bytes(TKEY_QUERY_STREAM);
    // The three segments as captured, then the reply in two pieces.
    let segments = [(1676937749.533321, &query[..1460]), (1676937749.533382, &query[1460..2920])];
    for (ts, segment) in segments.into_iter().chain([(1_676_937_749.533_77, &query[2920..])]) {
        h.run(ts, |ctx| a.deliver(ctx, true, segment));
    }
    let reply = bytes(TKEY_REPLY_STREAM);
    h.run(1676937749.535171, |ctx| a.deliver(ctx, false, &reply[..1]));
    h.run(1676937749.535171, |ctx| a.deliver(ctx, false, &reply[1..]));
    h.run(1676937749.536732, |ctx| a.end_of_data(ctx, true));
    finish(&mut h, &mut a, 1676937749.6);
    let lines = dns_lines(&h);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].0, 1_676_937_749.533_77);
    assert_eq!(
        lines[0].1,
        "192.168.1.106\t50138\t192.168.1.108\t53\ttcp\t52640\t-\t\
         1068-ms-7.309-2c6e448.7a9463b8-b109-11ed-26a3-080027f220e5\t1\tC_INTERNET\t249\tTKEY\t0\tNOERROR\t\
         F\tF\tF\tF\t0\t-\t-\tF\t0\tquery"
    );
    assert!(h.weirds.is_empty(), "Zeek writes no weird.log here: {:?}", h.weirds);
}

#[test]
fn netbios_query_name_is_decoded() {
    // wikipedia.pcap: a NetBIOS name query broadcast from 141.142.220.226:137.
    let query = "ff6e011000010000000000002045434643464845444441454445434444444944444545444245474445444341410000200001";
    let mut h = udp("141.142.220.226", 137, "141.142.220.255", 137);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut h, &mut a, 1300475170.862384, true, query);
    send(&mut h, &mut a, 1300475171.612255, true, query);
    finish(&mut h, &mut a, 1300475200.0);
    let line = "141.142.220.226\t137\t141.142.220.255\t137\tudp\t65390\t-\tBRWC0CB383D1F42\t1\tC_INTERNET\t32\tNIMLOC\t\
                -\t-\tF\tF\tT\tF\t1\t-\t-\tF\t0\tnetbios-query";
    let lines: Vec<String> = dns_lines(&h).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines, vec![line.to_string(), line.to_string()]);
}

#[test]
fn garbage_is_a_weird_or_a_violation_never_a_panic() {
    let mut h = udp("10.0.0.1", 40000, "192.0.2.1", 53);
    let mut a = DnsAnalyzer::new(Proto::Udp);
    send(&mut h, &mut a, 1.0, true, "0102");
    assert_eq!(h.weirds[0].name, "DNS_truncated_len_lt_hdr_len");
    send(&mut h, &mut a, 1.0, true, "00000000ffff000000000000");
    assert!(h.actions.iter().any(|x| matches!(x, Action::Violation(..))));
    fuzz(&bytes(DUP_REPLY));
    fuzz(&bytes(TKEY_QUERY_STREAM));
}

#[test]
fn tcp_framing_splits_and_joins_messages() {
    let mut framer = TcpFramer::default();
    assert!(framer.push(&[0]).is_empty());
    assert!(framer.push(&[3, b'a']).is_empty());
    assert_eq!(framer.push(&[b'b', b'c', 0, 1, b'x', 0]), vec![b"abc".to_vec(), b"x".to_vec()]);
    assert!(framer.push(&[5, b'p']).is_empty());
    assert_eq!(framer.flush(), Some(b"p".to_vec()));
}

mod fuzzing {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            super::fuzz(&data);
        }

        #[test]
        fn mutated_replies_never_panic(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
            let mut data = super::bytes(super::DUP_REPLY);
            for (at, byte) in flips {
                let i = at % data.len();
                data[i] = byte;
            }
            super::fuzz(&data);
        }
    }
}

/// Zeek 9.1's `scripts.base.protocols.dns.max-queries` and `max-compression-depth` baselines through the engine: a
/// query with more questions than `dns_max_queries` is the weird `DNS_Conn_count_too_large` (`N > max`), a violation
/// (no service) and history `DX`; a reply seen first whose name chains deeper than `dns_max_compression_chain_depth`
/// is `DNS_max_compression_chain_depth_exceeded`, and the flipped connection's history is `D^X` (the letter goes to
/// the side that sent the message as it was delivered).
#[test]
fn limits_make_the_analysis_partial() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::ipv4_udp;
    let (client, server) = (([1, 2, 3, 4], 12345), ([5, 6, 7, 8], 53));

    let mut query = vec![0x00, 0x01, 0x01, 0x00, 0x00, 26, 0, 0, 0, 0, 0, 0];
    for _ in 0..26 {
        query.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
    }
    let records = engine_records(&[ipv4_udp(client, server, &query)]);
    let conn = records.iter().find(|r| r.schema.path == "conn").expect("conn.log");
    assert_eq!((field(conn, "history").as_str(), field(conn, "service").as_str()), ("DX", "-"));
    let weirds: Vec<(String, String)> =
        records.iter().filter(|r| r.schema.path == "weird").map(|r| (field(r, "name"), field(r, "addl"))).collect();
    assert_eq!(weirds, [("DNS_Conn_count_too_large".to_string(), "26 > 25".to_string())]);

    // A reply: the question "a"; a TXT answer whose one string holds a chain of 30 backward compression pointers
    // ending at the question's name; a second answer owned by a pointer to the chain's last link.
    let mut message = vec![0x00, 0x02, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0, 0, 0, 0];
    message.extend_from_slice(&[1, b'a', 0, 0, 16, 0, 1]);
    message.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 61, 60]);
    let mut target = 12u16;
    for _ in 0..30 {
        let here = u16::try_from(message.len()).expect("short message");
        message.extend_from_slice(&(0xc000 | target).to_be_bytes());
        target = here;
    }
    message.extend_from_slice(&(0xc000 | target).to_be_bytes());
    message.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    // Both ports 53, as the dev trace dns53.pcap has them, so that only the DNS analyzer flips the roles.
    let records = engine_records(&[ipv4_udp(server, ([1, 2, 3, 4], 53), &message)]);
    let weirds: Vec<String> = records.iter().filter(|r| r.schema.path == "weird").map(|r| field(r, "name")).collect();
    assert_eq!(weirds, ["DNS_max_compression_chain_depth_exceeded"]);
    let conn = records.iter().find(|r| r.schema.path == "conn").expect("conn.log");
    // (The baseline's service is `dns`: its chain is somewhere that leaves the message confirmed, which this one,
    // failing an answer, does not.)
    assert_eq!(field(conn, "history"), "D^X");
}
