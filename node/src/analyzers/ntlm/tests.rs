//! NTLMSSP messages built byte by byte ([MS-NLMP] 2.2.1, `build`), parsed as ntlm-protocol.pac reads them, and
//! main.zeek's record over them.

use super::build::*;
use super::{Authenticate, Message, Negotiate, NtlmError, Script, parse};
use crate::analyzers::testing::{Harness, XorShift, row};
use crate::analyzers::{Proto, fuzzing};

fn info() -> Vec<u8> {
    target_info("STRATOLAB", "STRATOLAB-DC", "StratoLab.org", "Stratolab-DC.StratoLab.org", "StratoLab.org")
}

#[test]
fn negotiate_reads_the_oem_names_its_flags_announce() {
    let flags = NEGOTIATE_OEM | OEM_DOMAIN_SUPPLIED | OEM_WORKSTATION_SUPPLIED | NEGOTIATE_VERSION;
    let m = parse(&negotiate(flags, b"CORP", b"WS01")).unwrap();
    assert_eq!(
        m,
        Message::Negotiate(Negotiate {
            flags,
            domain_name: Some(b"CORP".to_vec()),
            workstation: Some(b"WS01".to_vec())
        })
    );
    // Without the flags the names are not read.
    let m = parse(&negotiate(NEGOTIATE_UNICODE, b"CORP", b"WS01")).unwrap();
    assert_eq!(m, Message::Negotiate(Negotiate { flags: NEGOTIATE_UNICODE, ..Negotiate::default() }));
}

#[test]
fn challenge_reads_the_target_name_and_the_av_pairs_up_to_the_eol() {
    let m = parse(&challenge(WINDOWS_FLAGS, &utf16("STRATOLAB"), &info())).unwrap();
    let Message::Challenge(c) = m else { panic!("not a challenge") };
    assert_eq!(c.target_name, Some(utf16("STRATOLAB")));
    let ti = c.target_info.unwrap();
    assert_eq!(ti.nb_computer_name, Some(utf16("STRATOLAB-DC")));
    assert_eq!(ti.nb_domain_name, Some(utf16("STRATOLAB")));
    assert_eq!(ti.dns_computer_name, Some(utf16("Stratolab-DC.StratoLab.org")));
    assert_eq!(ti.dns_tree_name, Some(utf16("StratoLab.org")));
    assert_eq!(ti.target_name, None);

    // After the EOL nothing is read, even an id the grammar does not know.
    let after_eol = [av(1, &utf16("A")), av_eol(), av(0x77, b"junk")].concat();
    let Message::Challenge(c) = parse(&challenge(WINDOWS_FLAGS, b"", &after_eol)).unwrap() else { panic!() };
    assert_eq!(c.target_info.unwrap().nb_computer_name, Some(utf16("A")));

    // Without an EOL the pairs run to the end of the token; flags, timestamp and single host are read by type.
    let single_host = [&48u32.to_le_bytes()[..], &[0; 4], &1u32.to_le_bytes(), &[9; 4], &7u32.to_le_bytes()].concat();
    let pairs = [av(6, &2u32.to_le_bytes()), av(8, &single_host), av(10, &[0, 0]), av(5, &utf16("T"))].concat();
    let Message::Challenge(c) = parse(&challenge(WINDOWS_FLAGS, b"", &pairs)).unwrap() else { panic!() };
    assert_eq!(c.target_info.unwrap().dns_tree_name, Some(utf16("T")));
}

#[test]
fn an_av_pair_id_the_grammar_does_not_know_is_an_exception() {
    let pairs = [av(0x0b, b"xx"), av_eol()].concat();
    assert_eq!(parse(&challenge(WINDOWS_FLAGS, b"", &pairs)), Err(NtlmError::InvalidAvPair(0x0b)));
}

#[test]
fn authenticate_reads_domain_user_and_workstation() {
    let m = parse(&authenticate(WINDOWS_FLAGS, &utf16("CORP"), &utf16("alice"), &utf16("WS01"))).unwrap();
    assert_eq!(
        m,
        Message::Authenticate(Authenticate {
            flags: WINDOWS_FLAGS,
            domain_name: Some(utf16("CORP")),
            user_name: Some(utf16("alice")),
            workstation: Some(utf16("WS01")),
        })
    );
    // Empty strings are not read at all (`&if(length > 0)`).
    let Message::Authenticate(a) = parse(&authenticate(WINDOWS_FLAGS, b"", &utf16("bob"), b"")).unwrap() else {
        panic!()
    };
    assert_eq!((a.domain_name, a.workstation), (None, None));
}

#[test]
fn other_message_types_parse_without_an_event() {
    assert_eq!(parse(b"NTLMSSP\0\x04\0\0\0anything"), Ok(Message::Other(4)));
    // The signature is not checked.
    assert_eq!(parse(b"XXXXXXXX\x09\0\0\0"), Ok(Message::Other(9)));
}

#[test]
fn strings_outside_the_token_are_exceptions() {
    // Short of the signature and type, of the fixed fields, of the version.
    assert_eq!(parse(b"NTLMSSP\0\x01\0"), Err(NtlmError::OutOfBound("NTLM_SSP_Token")));
    let negotiate_msg = negotiate(NEGOTIATE_VERSION, b"", b"");
    assert_eq!(parse(&negotiate_msg[..30]), Err(NtlmError::OutOfBound("NTLM_StringData")));
    assert_eq!(parse(&negotiate_msg[..36]), Err(NtlmError::OutOfBound("NTLM_Version")));
    // A string past the end.
    let mut m = negotiate(OEM_DOMAIN_SUPPLIED, b"CORP", b"");
    m[16] = 200; // the domain's length
    assert_eq!(parse(&m), Err(NtlmError::OutOfBound("NTLM_String")));
    // An offset before the payload wraps past it.
    let mut m = negotiate(OEM_DOMAIN_SUPPLIED, b"CORP", b"");
    m[20..24].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(parse(&m), Err(NtlmError::OutOfBound("NTLM_String")));
    // A truncated AV pair.
    let m = challenge(NEGOTIATE_TARGET_INFO, b"", &av(1, &utf16("ABC")));
    assert_eq!(parse(&m[..m.len() - 1]), Err(NtlmError::OutOfBound("Fixed_Length_String")));
}

fn script_rows(tokens: &[Vec<u8>], neg_results: &[u64]) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut script = Script::default();
    for (i, token) in tokens.iter().enumerate() {
        h.run(1.0 + i as f64, |ctx| script.message(ctx, parse(token).unwrap()));
    }
    for state in neg_results {
        h.run(10.0, |ctx| script.neg_result(ctx, *state));
    }
    h.run(20.0, |ctx| script.finish(ctx));
    h
}

#[test]
fn the_record_takes_the_servers_and_the_clients_names_and_is_written_once() {
    let tokens = [
        negotiate(WINDOWS_FLAGS, b"", b""),
        challenge(WINDOWS_FLAGS, &utf16("STRATOLAB"), &info()),
        authenticate(WINDOWS_FLAGS, &utf16("ADHACKING.LOCAL"), &utf16("User1"), &utf16("WS01")),
    ];
    // Accept-incomplete sets nothing; accept-completed sets success and writes; a later result writes nothing.
    let h = script_rows(&tokens, &[1, 0, 2]);
    assert_eq!(h.timed_columns("ntlm"), [crate::analyzers::ntlm::build::user1_row("1.000000")]);
    // Rejected.
    let h = script_rows(&tokens, &[2]);
    assert_eq!(h.columns("ntlm")[0][6], "F");
}

#[test]
fn a_record_without_an_outcome_is_written_at_the_end() {
    // As Zeek's LDAP baseline sasl-gss-spnego-ntlm: a challenge only.
    let h = script_rows(&[challenge(WINDOWS_FLAGS, &utf16("STRATOLAB"), &info())], &[1]);
    assert_eq!(
        h.columns("ntlm"),
        [row(["-", "-", "-", "STRATOLAB-DC", "Stratolab-DC.StratoLab.org", "StratoLab.org", "-"])]
    );
    // No NTLM event, no record (a neg result alone does not start one).
    let h = script_rows(&[], &[0]);
    assert!(h.logged("ntlm").is_empty());
}

#[test]
fn oem_names_go_through_the_utf16_conversion_as_in_zeek() {
    // "WS1" as UTF-16: 'W','S' make U+5357 and the odd byte '1' a unit of its own.
    let m = authenticate(NEGOTIATE_OEM, b"", b"", b"WS1");
    let h = script_rows(&[m], &[]);
    assert_eq!(h.columns("ntlm")[0][1], "\u{5357}1");
    // A lone high surrogate at the end fails: the raw bytes and a weird.
    let h = script_rows(&[authenticate(WINDOWS_FLAGS, b"", &[0x41, 0, 0x00, 0xd8], b"")], &[]);
    let raw = crate::logs::Value::str(crate::logs::bytes_to_log_string(&[0x41, 0, 0x00, 0xd8])).to_tsv();
    assert_eq!(h.columns("ntlm")[0][0], raw);
    assert_eq!(h.weirds[0].name, "utf16_conversion_failed");
}

#[test]
fn mutated_messages_never_panic() {
    let seeds = [
        negotiate(OEM_DOMAIN_SUPPLIED | OEM_WORKSTATION_SUPPLIED | NEGOTIATE_VERSION, b"CORP", b"WS01"),
        challenge(WINDOWS_FLAGS, &utf16("STRATOLAB"), &info()),
        authenticate(WINDOWS_FLAGS, &utf16("CORP"), &utf16("alice"), &utf16("WS01")),
    ];
    let mut rng = XorShift(0x1234_5678_9abc_def0);
    for seed in &seeds {
        for _ in 0..3000 {
            let mut m = seed.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % m.len();
                m[i] = rng.next() as u8;
            }
            let cut = (rng.next() as usize) % (m.len() + 1);
            for data in [&m[..], &m[..cut]] {
                if let Ok(message) = parse(data) {
                    fuzzing::with_ctx(|ctx| {
                        let mut s = Script::default();
                        s.message(ctx, message);
                        s.finish(ctx);
                    });
                }
            }
        }
    }
}
