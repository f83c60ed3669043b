use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;
use crate::logs::LogRecord;

fn col(r: &LogRecord, name: &str) -> String {
    let mut s = String::new();
    r.get(name).expect("column exists").write_tsv(&mut s, false);
    s
}

/// The second session of the smtp-basic oracle trace (smtp.pcap, 192.168.133.100:49648).
const CC_SESSION: &[(bool, &[u8])] = &[
    (false, b"220 uprise ESMTP SubEthaSMTP null\r\n"),
    (true, b"EHLO [192.168.133.100]\r\n"),
    (false, b"250-uprise\r\n250-8BITMIME\r\n250-AUTH LOGIN\r\n250 Ok\r\n"),
    (true, b"MAIL FROM:<albert@example.com>\r\n"),
    (false, b"250 Ok\r\n"),
    (true, b"RCPT TO:<ericlim220@yahoo.com>\r\n"),
    (false, b"250 Ok\r\n"),
    (true, b"RCPT TO:<felica4uu@hotmail.com>\r\n"),
    (false, b"250 Ok\r\n"),
    (true, b"RCPT TO:<davis_mark1@outlook.com>\r\n"),
    (false, b"250 Ok\r\n"),
    (true, b"DATA\r\n"),
    (false, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    (true, b"Content-Type: text/plain; charset=us-ascii\r\nMime-Version: 1.0 (Mac OS X Mail 8.2 \\(2102\\))\r\nSubject: Re: Bro SMTP CC Header\r\nFrom: Albert Zaharovits <albert@example.com>\r\nIn-Reply-To: <9ACEE03C-AB98-4046-AEC1-BF4910C61E96@example.com>\r\nDate: Sat, 25 Jul 2015 16:43:07 +0300\r\nCc: felica4uu@hotmail.com,\r\n davis_mark1@outlook.com\r\nContent-Transfer-Encoding: 7bit\r\nMessage-Id: <A6202DF2-8E58-4E41-BE0B-C8D3989A4AEE@example.com>\r\nReferences: <FA60128E-63CF-4C4E-8241-C5805EA0F66E@example.com> <9ACEE03C-AB98-4046-AEC1-BF4910C61E96@example.com>\r\nTo: ericlim220@yahoo.com\r\nX-Mailer: Apple Mail (2.2102)\r\n\r\n\r\n> On 25 Jul 2015, at 16:38, Albert Zaharovits <albert@example.com> wrote:\r\n> \r\n> \r\n>> On 25 Jul 2015, at 16:21, Albert Zaharovits <albert@example.com> wrote:\r\n>> \r\n>> Bro SMTP CC Header\r\n>> TEST\r\n> \r\n\r\n.\r\n"),
    (false, b"250 Ok\r\n"),
];

fn run(h: &mut Harness, a: &mut SmtpAnalyzer, script: &[(bool, &[u8])]) {
    for (i, (is_orig, bytes)) in script.iter().enumerate() {
        h.run(10.0 + i as f64, |ctx| a.deliver(ctx, *is_orig, bytes));
    }
    h.finish(a);
}

#[test]
fn logs_smtp_basic_cc_session_like_zeek() {
    let mut h = Harness::new(Proto::Tcp, 25);
    h.id.orig_h = "192.168.133.100".parse().unwrap();
    h.id.resp_h = "192.168.133.102".parse().unwrap();
    let mut a = SmtpAnalyzer::default();
    run(&mut h, &mut a, CC_SESSION);
    let smtp = h.logged("smtp");
    assert_eq!(smtp.len(), 1);
    let r = smtp[0];
    let expect = [
        ("ts", "10.000000"),
        ("trans_depth", "1"),
        ("helo", "[192.168.133.100]"),
        ("mailfrom", "albert@example.com"),
        ("rcptto", "ericlim220@yahoo.com,felica4uu@hotmail.com,davis_mark1@outlook.com"),
        ("date", "Sat, 25 Jul 2015 16:43:07 +0300"),
        ("from", "Albert Zaharovits <albert@example.com>"),
        ("to", "ericlim220@yahoo.com"),
        ("cc", "felica4uu@hotmail.com,davis_mark1@outlook.com"),
        ("reply_to", "-"),
        ("msg_id", "<A6202DF2-8E58-4E41-BE0B-C8D3989A4AEE@example.com>"),
        ("in_reply_to", "<9ACEE03C-AB98-4046-AEC1-BF4910C61E96@example.com>"),
        ("subject", "Re: Bro SMTP CC Header"),
        ("x_originating_ip", "-"),
        ("first_received", "-"),
        ("last_reply", "250 Ok"),
        ("path", "192.168.133.102,192.168.133.100"),
        ("user_agent", "Apple Mail (2.2102)"),
        ("tls", "F"),
    ];
    for (name, want) in expect {
        assert_eq!(col(r, name), want, "{name}");
    }
    let files = h.logged("files");
    assert_eq!(files.len(), 1);
    assert_eq!(col(r, "fuids"), col(files[0], "fuid"));
    for (name, want) in [
        ("source", "SMTP"),
        ("depth", "1"),
        ("mime_type", "text/plain"),
        ("seen_bytes", "204"),
        ("is_orig", "T"),
        ("local_orig", "T"),
        ("filename", "-"),
    ] {
        assert_eq!(col(files[0], name), want, "{name}");
    }
    assert!(h.actions.contains(&Action::Confirm("smtp")));
}

#[test]
fn multipart_message_files_depths_and_filenames() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let body: &[u8] = b"From: x@y\r\nContent-Type: multipart/mixed; boundary=\"B1\"\r\n\r\nThis is a multi-part message\r\n\r\n--B1\r\nContent-Type: multipart/alternative; boundary=\"B2\"\r\n\r\n--B2\r\nContent-Type: text/plain\r\n\r\nHello see http://example.com/x?a=1 now\r\n--B2\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body>Hi=20there</body></html>\r\n--B2--\r\n\r\n--B1\r\nContent-Type: text/plain;\r\n\tname=\"NEWS.txt\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment;\r\n\tfilename=\"NEWS.txt\"\r\n\r\nVmVyc2lvbiA0LjkuOS4yCg==\r\n\r\n--B1--\r\n.\r\n";
    let script: &[(bool, &[u8])] = &[
        (false, b"220 mail ESMTP\r\n"),
        (true, b"EHLO GP\r\n"),
        (false, b"250-mail\r\n250 HELP\r\n"),
        (true, b"AUTH LOGIN\r\n"),
        (false, b"334 VXNlcm5hbWU6\r\n"),
        (true, b"Z3VycGFydGFwQHBhdHJpb3RzLmlu\r\n"),
        (false, b"334 UGFzc3dvcmQ6\r\n"),
        (true, b"cHVuamFiQDEyMw==\r\n"),
        (false, b"235 Authentication succeeded\r\n"),
        (true, b"MAIL FROM: <gurpartap@patriots.in>\r\n"),
        (false, b"250 OK\r\n"),
        (true, b"RCPT TO: <raj@yahoo.co.in>\r\n"),
        (false, b"250 Accepted\r\n"),
        (true, b"DATA\r\n"),
        (false, b"354 Enter message\r\n"),
        (true, body),
        (false, b"250 OK id=1Mugho-0003Dg-Un\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 bye\r\n"),
    ];
    run(&mut h, &mut a, script);
    let files = h.logged("files");
    let rows: Vec<String> = files
        .iter()
        .map(|r| format!("{} {} {} {}", col(r, "depth"), col(r, "mime_type"), col(r, "filename"), col(r, "seen_bytes")))
        .collect();
    assert_eq!(rows, vec!["3 text/plain - 38", "4 text/html - 36", "5 text/plain NEWS.txt 16"]);
    let smtp = h.logged("smtp");
    assert_eq!(smtp.len(), 1);
    assert_eq!(col(smtp[0], "mailfrom"), "gurpartap@patriots.in");
    assert_eq!(col(smtp[0], "rcptto"), "raj@yahoo.co.in");
    assert_eq!(col(smtp[0], "last_reply"), "250 OK id=1Mugho-0003Dg-Un");
    assert_eq!(col(smtp[0], "fuids").split(',').count(), 3);
}

#[test]
fn starttls_marks_tls_and_logs_at_end() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let script: &[(bool, &[u8])] = &[
        (false, b"220 mx ESMTP\r\n"),
        (true, b"EHLO client\r\n"),
        (false, b"250-mx\r\n250 STARTTLS\r\n"),
        (true, b"STARTTLS\r\n"),
        (false, b"220 2.0.0 Ready to start TLS\r\n"),
        (true, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n"),
    ];
    run(&mut h, &mut a, script);
    assert!(h.actions.contains(&Action::StartTls));
    let smtp = h.logged("smtp");
    assert_eq!(smtp.len(), 1);
    assert_eq!(col(smtp[0], "tls"), "T");
    assert_eq!(col(smtp[0], "helo"), "client");
    assert_eq!(col(smtp[0], "last_reply"), "220 2.0.0 Ready to start TLS");
    assert_eq!(col(smtp[0], "fuids"), "(empty)");
}

#[test]
fn bdat_chunks_form_one_message() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let part1: &[u8] = b"Subject: chunked\r\nReceived: from a ([192.0.2.9]) by b\r\n\r\nhel";
    let part2: &[u8] = b"lo\r\n";
    let cmd1 = format!("BDAT {}\r\n", part1.len());
    let cmd2 = format!("BDAT {} LAST\r\n", part2.len());
    let mut client = cmd1.into_bytes();
    client.extend_from_slice(part1);
    client.extend_from_slice(cmd2.as_bytes());
    let script: &[(bool, &[u8])] = &[
        (false, b"220 mx ESMTP\r\n"),
        (true, b"EHLO c\r\n"),
        (false, b"250 CHUNKING\r\n"),
        (true, b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"),
        (false, b"250 ok\r\n250 ok\r\n"),
        (true, &client),
        (true, part2),
        (false, b"250 chunk ok\r\n250 message ok\r\n"),
    ];
    run(&mut h, &mut a, script);
    let smtp = h.logged("smtp");
    assert_eq!(smtp.len(), 1);
    assert_eq!(col(smtp[0], "subject"), "chunked");
    assert_eq!(col(smtp[0], "first_received"), "from a ([192.0.2.9]) by b");
    assert_eq!(col(smtp[0], "path"), "192.0.2.1,10.0.0.1,192.0.2.9");
    let files = h.logged("files");
    assert_eq!(files.len(), 1);
    assert_eq!(col(files[0], "seen_bytes"), "7");
}

#[test]
fn helpers_follow_zeek_utils() {
    assert_eq!(extract_email_addrs("FROM: <gurpartap@patriots.in>"), vec!["gurpartap@patriots.in"]);
    assert_eq!(extract_email_addrs("TO:<a@b.c> NOTIFY=NEVER"), vec!["a@b.c"]);
    assert_eq!(
        split_mime_email_addresses("\"Doe, John\" <j@x.org>, b@y.org"),
        vec!["\"Doe, John\" <j@x.org>", "b@y.org"]
    );
    assert_eq!(extract_ip_addresses("from mail ([10.1.2.3]) by x (1.2.3.4) ", true), vec!["10.1.2.3", "1.2.3.4"]);
    assert_eq!(extract_ip_addresses("x1.2.3.4y", true), Vec::<String>::new());
    assert_eq!(extract_ip_addresses("[2001:db8::1]", true), vec!["2001:db8::1"]);
    assert_eq!(
        extract_urls(b"see http://a.example/x?y=1 and <https://b.example/>."),
        vec!["http://a.example/x?y=1", "https://b.example/"]
    );
    assert_eq!(filename_from_disposition("attachment;\tfilename=\"NEWS.txt\""), Some("NEWS.txt".into()));
}

#[test]
fn detects_smtp() {
    assert!(detect(Proto::Tcp, false, b"220-xc90.websitewelcome.com ESMTP Exim 4.69\r\n"));
    // FTP greets with 220 too: the client's HELO/EHLO, required with it, tells them apart.
    assert!(detect(Proto::Tcp, false, b"220 ftp.NetBSD.org FTP server ready.\r\n"));
    assert!(!detect(Proto::Tcp, false, b"554 no SMTP service here\r\n"));
    assert!(detect(Proto::Tcp, true, b"EHLO GP\r\n"));
    assert!(!detect(Proto::Tcp, true, b"USER GP\r\n"));
}

proptest::proptest! {
    #[test]
    fn fuzz_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..800)) {
        fuzz(&data);
    }

    #[test]
    fn fuzz_never_panics_on_smtp_like_text(lines in proptest::collection::vec("(220|250|354|334|235)[ -][ -~]{0,30}|(EHLO|MAIL FROM:|RCPT TO:|DATA|BDAT 5|BDAT 3 LAST|STARTTLS|\\.|--B|Content-Type: multipart/mixed; boundary=B|Content-Transfer-Encoding: base64)[ -~]{0,30}", 0..40)) {
        let mut data = vec![3u8];
        for l in lines {
            data.extend_from_slice(l.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        fuzz(&data);
    }
}
