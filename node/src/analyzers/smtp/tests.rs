use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;
use crate::logs::LogRecord;

fn col(r: &LogRecord, name: &str) -> String {
    r.get(name).expect("column exists").to_tsv()
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

fn localhost_harness() -> Harness {
    let mut h = Harness::new(Proto::Tcp, 25);
    h.id.orig_h = "127.0.0.1".parse().unwrap();
    h.id.resp_h = "127.0.0.1".parse().unwrap();
    h
}

fn weirds(h: &Harness) -> Vec<String> {
    h.weirds.iter().map(|w| format!("{} {} {}", w.name, w.addl.as_deref().unwrap_or("-"), w.source)).collect()
}

/// Selected smtp.log columns of every record, space-separated.
fn smtp_rows(h: &Harness, cols: &[&str]) -> Vec<String> {
    h.logged("smtp").iter().map(|r| cols.iter().map(|c| col(r, c)).collect::<Vec<_>>().join(" ")).collect()
}

/// A Postfix session up to an accepted recipient, as in Zeek's BDAT traces.
const POSTFIX_ENVELOPE: &[(bool, &[u8])] = &[
    (false, b"220 example.com ESMTP Postfix (Debian/GNU)\r\n"),
    (true, b"EHLO localhost\r\n"),
    (false, b"250-example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 CHUNKING\r\n"),
    (true, b"MAIL FROM:<zeek@localhost>\r\n"),
    (false, b"250 2.1.0 Ok\r\n"),
    (true, b"RCPT TO:<root@localhost>\r\n"),
    (false, b"250 2.1.5 Ok\r\n"),
];

fn run_after_envelope(h: &mut Harness, a: &mut SmtpAnalyzer, rest: &[(bool, &[u8])]) {
    let script: Vec<(bool, &[u8])> = POSTFIX_ENVELOPE.iter().chain(rest).copied().collect();
    run(h, a, &script);
}

/// Zeek's smtp/bdat test (RFC 3030's first example): a bodyless message in one `BDAT 86 LAST` chunk.
#[test]
fn bdat_rfc3030_example_like_zeek() {
    let mut h = localhost_harness();
    let mut a = SmtpAnalyzer::default();
    let chunk: &[u8] = b"To: Susan@random.com\r\nFrom: Sam@random.com\r\nSubject: This is a bodyless test message\r\n";
    assert_eq!(chunk.len(), 86);
    let mut client = b"BDAT 86 LAST\r\n".to_vec();
    client.extend_from_slice(chunk);
    run_after_envelope(
        &mut h,
        &mut a,
        &[
            (true, &client),
            (false, b"250 2.0.0 Ok: 86 bytes queued as 1E2891CA025\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 2.0.0 Bye\r\n"),
        ],
    );
    assert_eq!(
        smtp_rows(&h, &["trans_depth", "helo", "mailfrom", "rcptto", "from", "to", "subject", "path", "tls", "fuids"]),
        vec![
            "1 localhost zeek@localhost root@localhost Sam@random.com Susan@random.com This is a bodyless test message 127.0.0.1,127.0.0.1 F (empty)"
        ]
    );
    assert_eq!(col(h.logged("smtp")[0], "last_reply"), "250 2.0.0 Ok: 86 bytes queued as 1E2891CA025");
    assert!(h.logged("files").is_empty());
    assert_eq!(weirds(&h), Vec::<String>::new());
}

/// Zeek's smtp/bdat-cmd-invalid test: BDAT arguments that are not `<size>[ LAST]` are weirds, and what follows is
/// read as commands again.
#[test]
fn invalid_bdat_arguments_like_zeek() {
    for (command, weird) in [
        (&b"BDAT\r\n"[..], "BDAT argument bad length"),
        (b"BDAT 1234 SCRAMBLE\r\n", "BDAT chunk-size followed by junk"),
        (b"BDAT SCRAMBLE\r\n", "BDAT not followed by a valid chunk-size"),
        (b"BDAT 86LAST\r\n", "BDAT chunk-size not valid"),
        (b"BDAT 184467440737095516150\r\n", "BDAT chunk-size too large"),
    ] {
        let mut h = localhost_harness();
        let mut a = SmtpAnalyzer::default();
        run_after_envelope(
            &mut h,
            &mut a,
            &[(true, command), (false, b"521 5.5.4 Syntax: BDAT count [LAST]\r\n"), (true, b"QUIT\r\n")],
        );
        assert_eq!(weirds(&h), vec![format!("smtp_invalid_bdat_command {weird} SMTP")]);
        assert_eq!(
            smtp_rows(&h, &["trans_depth", "mailfrom", "rcptto", "last_reply", "fuids"]),
            vec!["1 zeek@localhost root@localhost 521 5.5.4 Syntax: BDAT count [LAST] (empty)"]
        );
    }
    assert_eq!(parse_bdat_arg(b"18446744073709551615 LAST"), Ok((u64::MAX, true)));
    assert_eq!(parse_bdat_arg(b"86 last"), Ok((86, true)));
    assert_eq!(parse_bdat_arg(b"-42 LAST"), Err("BDAT not followed by a valid chunk-size"));
    assert_eq!(parse_bdat_arg(b"86 LASTSCRAMBLE"), Err("BDAT chunk-size followed by junk"));
}

/// Zeek's smtp/bdat-gap test: a gap inside a BDAT chunk ends the message (its file has the missing bytes); after the
/// next reply the client's DATA message is analysed again, into the same smtp.log record.
#[test]
fn gap_inside_bdat_chunk_like_zeek() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let script: &[(bool, &[u8])] = &[
        (false, b"220 mx ESMTP\r\n"),
        (true, b"EHLO sender.example.com\r\n"),
        (false, b"250 CHUNKING\r\n"),
        (true, b"MAIL FROM:<sender@example.com>\r\n"),
        (false, b"250 OK\r\n"),
        (true, b"RCPT TO:<recipient@example.com>\r\n"),
        (false, b"250 OK\r\n"),
        (true, b"BDAT 200\r\nSubject: gap\r\n\r\nfirst body line\r\nsecond bo"),
    ];
    for (i, (is_orig, bytes)) in script.iter().enumerate() {
        h.run(10.0 + i as f64, |ctx| a.deliver(ctx, *is_orig, bytes));
    }
    h.run(20.0, |ctx| a.undelivered(ctx, true, 1000));
    let rest: &[(bool, &[u8])] = &[
        (false, b"250 OK: chunk received\r\n"),
        (true, b"DATA\r\n"),
        (false, b"354 go ahead\r\n"),
        (true, b"Subject: again\r\n\r\nwhole body\r\n.\r\n"),
        (false, b"250 OK: message queued\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 bye\r\n"),
    ];
    run(&mut h, &mut a, rest);
    assert_eq!(weirds(&h), vec!["smtp_bdat_remaining_at_end_data - SMTP", "smtp_bdat_undelivered_at_done - SMTP_BDAT"]);
    let files = h.logged("files");
    let file_rows: Vec<String> =
        files.iter().map(|f| format!("{} {}", col(f, "depth"), col(f, "missing_bytes"))).collect();
    assert_eq!(file_rows, vec!["1 1000", "2 0"]);
    assert_eq!(
        smtp_rows(&h, &["trans_depth", "helo", "mailfrom", "rcptto", "last_reply"]),
        vec!["1 sender.example.com sender@example.com recipient@example.com 250 OK: message queued"]
    );
    let fuids: Vec<String> = files.iter().map(|f| col(f, "fuid")).collect();
    assert_eq!(col(h.logged("smtp")[0], "fuids"), fuids.join(","));
}

/// Zeek's smtp/bdat-pipeline-8bitmime test: two messages, each sent as `BDAT <n> LAST` right behind its envelope.
/// The reply to the last chunk ends the transaction, so the second message has `trans_depth` 2.
#[test]
fn pipelined_bdat_last_messages() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let message = |subject: &str| {
        let body = format!("Subject: {subject}\r\nFrom: a@example.com\r\n\r\nbody of {subject}\r\n");
        let mut client = format!(
            "MAIL From:<owner@example.com> BODY=8BITMIME SIZE={0}\r\nRCPT To:<dest@example.com>\r\nBDAT {0} LAST\r\n",
            body.len()
        )
        .into_bytes();
        client.extend_from_slice(body.as_bytes());
        client
    };
    let (first, second) = (message("one"), message("two"));
    let script: &[(bool, &[u8])] = &[
        (false, b"220 mx ESMTP\r\n"),
        (true, b"EHLO vger.kernel.org\r\n"),
        (false, b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
        (true, &first),
        (false, b"250 OK\r\n250 Accepted\r\n250 OK id=first\r\n"),
        (true, &second),
        (false, b"250 OK\r\n250 Accepted\r\n250 OK id=second\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 closing connection\r\n"),
    ];
    run(&mut h, &mut a, script);
    assert_eq!(
        smtp_rows(&h, &["trans_depth", "mailfrom", "rcptto", "subject", "last_reply"]),
        vec![
            "1 owner@example.com dest@example.com one 250 OK id=first",
            "2 owner@example.com dest@example.com two 250 OK id=second",
        ]
    );
    assert_eq!(h.logged("files").len(), 2);
    assert_eq!(weirds(&h), Vec::<String>::new());
}

/// A BDAT message abandoned for another command (Zeek's `smtp_missing_bdat_last_chunk`) ends there.
#[test]
fn command_before_last_bdat_chunk_ends_the_message() {
    let mut h = localhost_harness();
    let mut a = SmtpAnalyzer::default();
    run_after_envelope(
        &mut h,
        &mut a,
        &[
            (true, b"BDAT 14\r\nSubject: x\r\n\r\n"),
            (false, b"250 chunk\r\n"),
            (true, b"RSET\r\n"),
            (false, b"250 reset\r\n"),
        ],
    );
    assert_eq!(weirds(&h), vec!["smtp_missing_bdat_last_chunk - SMTP"]);
    assert_eq!(smtp_rows(&h, &["subject", "last_reply"]), vec!["x 250 reset"]);
}

/// Zeek's smtp/mail-transactions-invalid test: a RCPT without MAIL is a weird; every MAIL FROM logs what came before.
#[test]
fn mail_transactions_invalid_like_zeek() {
    let mut h = localhost_harness();
    let mut a = SmtpAnalyzer::default();
    let script: &[(bool, &[u8])] = &[
        (false, b"220 mx ESMTP Exim\r\n"),
        (true, b"EHLO Bob-PC\r\n"),
        (false, b"250 mx Hello\r\n"),
        (true, b"MAIL FROM:<bob@example.org>\r\n"),
        (false, b"250 OK\r\n"),
        (true, b"RCPT TO:<alice@example.org>\r\n"),
        (false, b"250 Accepted\r\n"),
        (true, b"DATA\r\n"),
        (false, b"354 Enter message\r\n"),
        (true, b".\r\n"),
        (false, b"250 OK id=1pgobK-001mwq-ED\r\n"),
        (true, b"RCPT TO:<alice@example.org>\r\n"),
        (false, b"503 sender not yet given\r\n"),
        (true, b"BOGUS\r\n"),
        (false, b"500 unrecognized command\r\n"),
        (true, b"MAIL FROM:<bob@example.org>\r\n"),
        (false, b"250 OK\r\n"),
        (true, b"BOGUS\r\n"),
        (false, b"500 unrecognized command\r\n"),
        (true, b"MAIL FROM:<bob@example.org>\r\n"),
        (false, b"250 OK\r\n"),
        (true, b"RCPT TO:<alice@example.org>\r\n"),
        (false, b"250 Accepted\r\n"),
        (true, b"DATA\r\n"),
        (false, b"354 Enter message\r\n"),
        (true, b".\r\n"),
        (false, b"250 OK id=1pgobM-001mwq-Vc\r\n"),
    ];
    run(&mut h, &mut a, script);
    assert_eq!(
        smtp_rows(&h, &["trans_depth", "helo", "mailfrom", "rcptto", "last_reply"]),
        vec![
            "1 Bob-PC bob@example.org alice@example.org 250 OK id=1pgobK-001mwq-ED",
            "2 Bob-PC - alice@example.org 500 unrecognized command",
            "2 Bob-PC bob@example.org - 500 unrecognized command",
            "2 Bob-PC bob@example.org alice@example.org 250 OK id=1pgobM-001mwq-Vc",
        ]
    );
    assert_eq!(weirds(&h), vec!["smtp_mail_transaction_invalid rcpt to missing mail from SMTP"]);
}

/// Zeek's smtp/one-side test: only the client's half of the session; each message is logged by the next MAIL FROM
/// or the end of the connection, all with `trans_depth` 1 and no reply.
#[test]
fn client_side_only_like_zeek() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let message = |to: &str, subject: &str| {
        format!(
            "MAIL FROM:<robin@icir.org>\r\nRCPT TO:<{to}>\r\nDATA\r\nFrom: robin@icir.org\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n.\r\n"
        )
    };
    let (first, second) = (message("robin@icir.org", "Hello1!"), message("rsommer@lbl.gov", "Hello2!"));
    let script: &[(bool, &[u8])] =
        &[(true, b"EHLO enzo.icir.org\r\n"), (true, first.as_bytes()), (true, second.as_bytes()), (true, b"QUIT\r\n")];
    run(&mut h, &mut a, script);
    assert_eq!(
        smtp_rows(&h, &["trans_depth", "helo", "mailfrom", "rcptto", "from", "to", "subject", "last_reply"]),
        vec![
            "1 enzo.icir.org robin@icir.org robin@icir.org robin@icir.org robin@icir.org Hello1! -",
            "1 enzo.icir.org robin@icir.org rsommer@lbl.gov robin@icir.org rsommer@lbl.gov Hello2! -",
        ]
    );
}

/// A server line without a reply code is a violation (Zeek's reason, with the code it replaced by -1, and the line).
#[test]
fn reply_without_code_is_a_violation() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    h.deliver(&mut a, false, b"220 mx ESMTP\r\n");
    h.deliver(&mut a, true, b"EHLO c\r\n");
    h.deliver(&mut a, false, b"hello there, this line is longer than forty bytes\r\n");
    // The line is the violation's data, cut to analyzer.log's 40 bytes.
    let data: &[u8] = b"hello there, this line is longer than fo";
    assert!(h.actions.contains(&Action::Violation("reply code -1 out of range".into(), Some(data.into()))));
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

/// Zeek's smtp/address-limits test with the default limits (1000): more recipients, Received hops, To and Cc
/// addresses than main.zeek keeps are its script weirds, raised by `Reporter::conn_weird(name, c)` without a
/// source (baseline weird.log: `smtp_too_many_rcptto_addresses`, `smtp_max_path_length_exceeded`,
/// `smtp_too_many_to_addresses`, `smtp_too_many_cc_addresses`, each with source `-`).
#[test]
fn address_limits_are_script_weirds_without_a_source() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let mut steps: Vec<(bool, String)> = vec![(false, "220 mx ESMTP\r\n".into())];
    let mut say = |client: String| {
        steps.push((true, client));
        steps.push((false, "250 ok\r\n".into()));
    };
    say("EHLO client\r\n".into());
    say("MAIL FROM:<a@example.org>\r\n".into());
    for i in 0..1001 {
        say(format!("RCPT TO:<r{i}@example.org>\r\n"));
    }
    steps.push((true, "DATA\r\n".into()));
    steps.push((false, "354 go ahead\r\n".into()));
    // The path starts with the two hosts of the connection: 998 more hops reach the limit, the next one is over.
    let mut message = String::new();
    for i in 0..1000 {
        message.push_str(&format!("Received: from h{i} ([10.1.{}.{}]) by mx\r\n", i / 256, i % 256));
    }
    let many = |user: &str| (0..1001).map(|i| format!("{user}{i}@example.org")).collect::<Vec<_>>().join(", ");
    message.push_str(&format!("To: {}\r\nCc: {}\r\nSubject: many\r\n\r\nbody\r\n.\r\n", many("t"), many("c")));
    steps.push((true, message));
    steps.push((false, "250 queued\r\n".into()));
    let script: Vec<(bool, &[u8])> = steps.iter().map(|(o, d)| (*o, d.as_bytes())).collect();
    run(&mut h, &mut a, &script);
    let mut distinct: Vec<String> = vec![];
    for w in weirds(&h) {
        if !distinct.contains(&w) {
            distinct.push(w);
        }
    }
    assert_eq!(
        distinct,
        [
            "smtp_too_many_rcptto_addresses - ",
            "smtp_max_path_length_exceeded - ",
            "smtp_too_many_to_addresses - ",
            "smtp_too_many_cc_addresses - ",
        ]
    );
    assert_eq!(h.logged("smtp").len(), 1);
}

#[test]
fn commands_whose_argument_starts_with_raw_bytes_are_just_other_commands() {
    // A byte that is not UTF-8 is one character of the log string standing for it: the `from:`/`to:` tests must not
    // cut into it (the engine fuzz target's crash).
    let mut h = localhost_harness();
    let mut a = SmtpAnalyzer::default();
    let script: &[(bool, &[u8])] = &[
        (false, b"220 example.com ESMTP\r\n"),
        (true, b"HELO x\r\n"),
        (false, b"250 ok\r\n"),
        (true, b"MAIL fr\xffom:<a@b>\r\n"),
        (false, b"250 ok\r\n"),
        (true, b"RCPT t\xff:<c@d>\r\n"),
        (false, b"250 ok\r\n"),
        (true, b"MAIL \xc3\xa9rom:<a@b>\r\n"),
        (false, b"250 ok\r\n"),
    ];
    run(&mut h, &mut a, script);
    assert!(smtp_rows(&h, &["mailfrom"]).iter().all(|r| r == "-"), "{:?}", smtp_rows(&h, &["mailfrom"]));
}

/// Zeek's SMTP analyzer splits with NUL-sensitive ContentLine analyzers: a bare CR ends a line (the byte after it
/// is `line_terminated_with_single_CR`), the first NUL of a direction is dropped as `NUL_in_line`, later ones stay
/// (`ContentLine.cc`, `SMTP.cc`); the source is the splitter, CONTENTLINE. A scanner's binary probe on port 25
/// shows both.
#[test]
fn the_line_splitter_is_zeeks_contentline() {
    let mut h = Harness::new(Proto::Tcp, 25);
    let mut a = SmtpAnalyzer::default();
    let probe: &[(bool, &[u8])] =
        &[(false, b"220 mx ESMTP\r\n"), (true, b"HE\0LO a\rMAIL FROM:<x\0@y>\r\n"), (false, b"250 ok\r\n250 ok\r\n")];
    run(&mut h, &mut a, probe);
    assert_eq!(weirds(&h), ["NUL_in_line - CONTENTLINE", "line_terminated_with_single_CR - CONTENTLINE"]);
    assert_eq!(smtp_rows(&h, &["helo", "mailfrom"]), ["a x\\x00@y"]);

    // Nothing of a connection joined mid-stream is analysed.
    let mut h = Harness::new(Proto::Tcp, 25);
    h.partial = true;
    run(&mut h, &mut SmtpAnalyzer::default(), probe);
    assert!(h.weirds.is_empty() && h.logged("smtp").is_empty());
}
