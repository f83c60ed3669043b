//! Replays SSH connections lifted from the oracle pcaps and compares with Zeek's own ssh.log
//! (`/work/shared/oracle/dev/<case>/zeek-default/ssh.log`).

use super::*;
use crate::analyzers::Action;
use crate::analyzers::ssl::replay;
use crate::analyzers::testing::Harness;

fn replay_conn(fixture: &[u8], orig: &str, resp: &str, resp_p: u16) -> Harness {
    let mut h = Harness::new(Proto::Tcp, resp_p);
    h.id.orig_h = orig.parse().unwrap();
    h.id.resp_h = resp.parse().unwrap();
    let mut a = SshAnalyzer::default();
    replay::fixture(&mut h, &mut a, fixture);
    h
}

/// The ssh.log line without uid and connection id: ts, then version .. host_key_fingerprint.
fn logged_line(h: &Harness) -> String {
    let ssh = h.logged("ssh");
    assert_eq!(ssh.len(), 1, "one ssh record");
    let field = |v: &Value| v.to_tsv();
    let mut fields = vec![field(&ssh[0].values[0])];
    fields.extend(ssh[0].values[6..].iter().map(field));
    fields.join("\t")
}

#[test]
fn compressed_session_has_no_auth_guess() {
    let h = replay_conn(include_bytes!("testdata/basic-0.bin"), "192.168.1.79", "131.159.21.1", 22);
    assert_eq!(
        logged_line(&h),
        "1324071333.792887\t2\t-\t0\tOUTBOUND\tSSH-2.0-OpenSSH_5.9\tSSH-2.0-OpenSSH_5.8\taes128-ctr\thmac-md5\t\
         zlib@openssh.com\tecdh-sha2-nistp256\tecdsa-sha2-nistp256\tSHA256:7jxvLCM56/Ox9xUroSjhu5kuqWLYA9Dz"
    );
    assert!(h.actions.contains(&Action::Confirm("ssh")));
}

#[test]
fn success_after_two_failures() {
    let h = replay_conn(include_bytes!("testdata/basic-2.bin"), "192.168.2.1", "192.168.2.158", 22);
    assert_eq!(
        logged_line(&h),
        "1419870189.489202\t2\tT\t3\t-\tSSH-2.0-OpenSSH_6.2\tSSH-1.99-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2\taes128-ctr\t\
         hmac-md5-etm@openssh.com\tnone\tdiffie-hellman-group-exchange-sha256\tssh-rsa\t\
         SHA256:AsAEaFFok7sBOBX8wOBxotEu4GJiuodW"
    );
}

#[test]
fn ssh1_session_logs_banners_only() {
    let h = replay_conn(include_bytes!("testdata/basic-3.bin"), "192.168.2.1", "192.168.2.158", 22);
    assert_eq!(
        logged_line(&h),
        "1419870206.111841\t1\t-\t0\t-\tSSH-1.5-OpenSSH_6.2\tSSH-1.99-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2\t-\t-\t-\t-\t-\t-"
    );
}

/// Off port 22 Zeek attaches by signature once the client banner arrives (ts .344957) and replays the
/// server banner then; replayed from the first packet, the record starts with the server banner.
#[test]
fn paramiko_server_on_another_port() {
    let h = replay_conn(include_bytes!("testdata/basic-4.bin"), "192.168.2.1", "192.168.2.158", 2200);
    assert_eq!(
        logged_line(&h),
        "1419996264.319006\t2\tT\t1\t-\tSSH-2.0-OpenSSH_6.2\tSSH-2.0-paramiko_1.15.2\taes128-ctr\thmac-md5\tnone\t\
         diffie-hellman-group-exchange-sha1\tssh-rsa\tSHA256:OhNL391d/beeFnxxg18AwWVYTAHww+D4"
    );
}

#[test]
fn arcfour_success_on_second_attempt() {
    let h = replay_conn(include_bytes!("testdata/basic-13.bin"), "192.168.2.1", "192.168.2.158", 22);
    assert_eq!(
        logged_line(&h),
        "1420851448.310534\t2\tT\t2\t-\tSSH-2.0-OpenSSH_6.2\tSSH-1.99-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2\tarcfour256\t\
         hmac-md5-etm@openssh.com\tnone\tdiffie-hellman-group-exchange-sha256\tssh-rsa\t\
         SHA256:AsAEaFFok7sBOBX8wOBxotEu4GJiuodW"
    );
}

#[test]
fn six_failures_outbound() {
    let h = replay_conn(include_bytes!("testdata/basic-16.bin"), "192.168.1.32", "128.2.10.238", 22);
    assert_eq!(
        logged_line(&h),
        "1420868281.665872\t2\tF\t6\tOUTBOUND\tSSH-2.0-OpenSSH_6.6\t\
         SSH-1.99-OpenSSH_3.4+p1+gssapi+OpenSSH_3.7.1buf_fix+2006100301\taes128-cbc\thmac-md5\tnone\t\
         diffie-hellman-group-exchange-sha1\tssh-rsa\tSHA256:iQ3XaGC5uGTsd0VhG9bwEECvSzliEA/3"
    );
}

#[test]
fn single_failure_umac() {
    let h = replay_conn(include_bytes!("testdata/basic-20.bin"), "192.168.1.32", "131.103.20.168", 22);
    assert_eq!(
        logged_line(&h),
        "1421041177.031508\t2\tF\t1\tOUTBOUND\tSSH-2.0-OpenSSH_6.7\tSSH-2.0-OpenSSH_5.3\taes128-ctr\t\
         umac-64@openssh.com\tnone\tdiffie-hellman-group-exchange-sha256\tssh-rsa\t\
         SHA256:zzXQOXSRBEiUtuE8AikJYKwbHaxvSc0o"
    );
}

#[test]
fn server_text_before_banner_is_skipped() {
    let h = replay_conn(include_bytes!("testdata/pre-banner.bin"), "10.0.2.1", "10.0.2.10", 22);
    assert_eq!(
        logged_line(&h),
        "1741784125.931129\t2\t-\t0\t-\tSSH-2.0-OpenSSH_9.7\tSSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u5\taes192-ctr\t\
         hmac-sha2-256\tzlib@openssh.com\tsntrup761x25519-sha512@openssh.com\tssh-ed25519\t\
         SHA256:r320Lqxo0ynw5yApL29KprGBbs+TkC9q"
    );
}

#[test]
fn password_guessing_counts_failures() {
    let h = replay_conn(include_bytes!("testdata/guess-0.bin"), "192.168.56.1", "192.168.56.103", 22);
    assert_eq!(
        logged_line(&h),
        "1427726689.214476\t2\tF\t4\t-\tSSH-2.0-OpenSSH_6.2\tSSH-2.0-OpenSSH_6.7p1 Debian-3\taes128-ctr\t\
         hmac-sha1-etm@openssh.com\tnone\tdiffie-hellman-group-exchange-sha256\tssh-rsa\t\
         SHA256:KBspzi0h3rpWg063mgd1Zv63TZ+SqaFe"
    );
}

/// Only one side of a session: banners are logged, nothing can be framed or guessed.
#[test]
fn half_duplex_sides() {
    let fixture: &[u8] = include_bytes!("testdata/basic-2.bin");
    for keep_orig in [true, false] {
        let mut one_side = Vec::new();
        let mut rest = fixture;
        while rest.len() >= 13 {
            let len = u32::from_le_bytes(rest[9..13].try_into().unwrap()) as usize;
            if (rest[0] == 0) == keep_orig {
                one_side.extend_from_slice(&rest[..13 + len]);
            }
            rest = &rest[13 + len..];
        }
        let h = replay_conn(&one_side, "192.168.2.1", "192.168.2.158", 22);
        let line = logged_line(&h);
        let expected_tail = if keep_orig {
            "-\t-\t0\t-\tSSH-2.0-OpenSSH_6.2\t-\t-\t-\t-\t-\t-\t-"
        } else {
            "-\t-\t0\t-\t-\tSSH-1.99-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2\t-\t-\t-\t-\t-\t-"
        };
        assert!(line.ends_with(expected_tail), "{line}");
    }
}

#[test]
fn names_and_versions() {
    // scripts.base.protocols.ssh.set_version (client, server).
    use VersionVerdict::*;
    assert_eq!(logged_version("SSH-1.5-x", "SSH-1.5-y"), Known(1));
    assert_eq!(logged_version("SSH-1.99-x", "SSH-1.5-y"), Known(1));
    assert_eq!(logged_version("SSH-1.5-x", "SSH-1.99-y"), Known(1));
    assert_eq!(logged_version("SSH-1.99-x", "SSH-1.99-y"), Known(2));
    assert_eq!(logged_version("SSH-2.0-x", "SSH-2.0-y"), Known(2));
    assert_eq!(logged_version("SSH-1.99-x", "SSH-2.0-y"), Known(2));
    assert_eq!(logged_version("SSH-2.0-x", "SSH-1.99-y"), Known(2));
    assert_eq!(logged_version("SSH-1.5-x", "SSH-2.0-y"), Mismatch);
    assert_eq!(logged_version("SSH-2.0-x", "SSH-1.5-y"), Mismatch);
    assert_eq!(logged_version("SSH", "SSH-1.5-y"), Undetermined);
    assert_eq!(logged_version("SSH-2.0-x", "SSH"), Undetermined);
    assert_eq!(logged_version("", "SSH-2.0-y"), Pending);
    assert_eq!(logged_version("", ""), Pending);
    assert_eq!(Mismatch.weird(), Some("SSH_version_mismatch"));
    assert_eq!(Undetermined.weird(), Some("SSH_cannot_determine_version"));
    assert_eq!(NameList::parse(b"a,,b,").names().collect::<Vec<_>>(), ["a", "b"]);
    let raw = crate::logs::bytes_to_log_string(b"\xff");
    assert_eq!(NameList::parse(b",\xff,c").names().collect::<Vec<_>>(), [raw.as_str(), "c"]);
    let list = |names: &[u8]| NameList::parse(names);
    assert_eq!(bidirectional_alg(&[list(b"x"), list(b"y")], &[list(b"x"), list(b"y")]), "To server: x, to client: y");
    assert_eq!(negotiated_alg(&list(b"c,a,b"), &list(b"b,a")), "a", "the client's order decides");
    assert_eq!(negotiated_alg(&list(b"a"), &list(b"b")), "Algorithm negotiation failed");
    assert!(!list(b"ab").contains("a"), "whole names only");
    assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
    assert!(detect(Proto::Tcp, true, b"SSH-2.0-OpenSSH\r\n"));
    assert!(!detect(Proto::Tcp, true, b"HTTP/1.1 200"));
}

mod fuzz_props {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::super::fuzz(&data);
        }

        #[test]
        fn never_panics_after_banners(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut input = vec![0u8, 10];
            input.extend(b"SSH-2.0-a\n");
            input.extend([1u8, 10]);
            input.extend(b"SSH-2.0-b\n");
            for chunk in body.chunks(200) {
                input.extend([chunk.first().copied().unwrap_or(0) & 1, chunk.len() as u8]);
                input.extend(chunk);
            }
            super::super::fuzz(&input);
        }
    }
}

/// scripts.base.protocols.ssh.set_version: an SSH1 client against an SSH2 server leaves `version` unset and raises
/// `SSH_version_mismatch` with "<server> vs <client>".
#[test]
fn version_mismatch_is_unset_with_a_weird() {
    let mut h = Harness::new(Proto::Tcp, 22);
    let mut a = SshAnalyzer::default();
    h.deliver(&mut a, true, b"SSH-1.5-OpenSSH_6.2\r\n");
    h.deliver(&mut a, false, b"SSH-2.0-OpenSSH_5.9\r\n");
    h.finish(&mut a);
    let line = logged_line(&h);
    assert!(line.contains("\t-\t-\t0\t-\tSSH-1.5-OpenSSH_6.2\tSSH-2.0-OpenSSH_5.9\t"), "{line}");
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref())).collect();
    assert_eq!(weirds, [("SSH_version_mismatch", Some("SSH-2.0-OpenSSH_5.9 vs SSH-1.5-OpenSSH_6.2"))]);
}

/// A connection picked up mid-stream carries no banner; Zeek analyses nothing there.
#[test]
fn mid_stream_pickup_logs_nothing() {
    let mut h = Harness::new(Proto::Tcp, 22);
    let mut a = SshAnalyzer::default();
    h.deliver(&mut a, true, b"\x00\x00\x00\x80\xdf\xa2\xfb junk\n more junk\n");
    h.finish(&mut a);
    assert!(h.logged("ssh").is_empty());
}

/// Every SSH connection's state (docs/BENCHMARKS.md, "Where the memory goes"): a field that grows it should be a
/// decision, not an accident.
#[test]
fn analyzer_state_stays_small() {
    let size = std::mem::size_of::<SshAnalyzer>();
    assert!(size <= 312, "SshAnalyzer is {size} bytes");
}
