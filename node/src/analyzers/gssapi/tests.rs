//! SPNEGO tokens built byte by byte (RFC 4178, `ntlm::build`) around NTLMSSP messages and Kerberos tokens, read as
//! gssapi-protocol.pac reads them, and what the analyzers they are handed to write.

use super::{Auth, Event, parse};
use crate::analyzers::asn1::Exception;
use crate::analyzers::krb::tests::{ap_rep, ap_req, ticket};
use crate::analyzers::ntlm::build::*;
use crate::analyzers::testing::{Harness, XorShift, row};
use crate::analyzers::{Action, Proto, fuzzing};

#[test]
fn neg_token_init_hands_its_ntlmssp_mech_token_over() {
    let negotiate_msg = negotiate(WINDOWS_FLAGS, b"", b"");
    let token = neg_token_init(&[NTLMSSP_OID, MS_KRB5_OID], &negotiate_msg);
    assert_eq!(parse(&token), (vec![Event::Ntlm(&negotiate_msg)], None));
}

#[test]
fn neg_token_resp_raises_its_state_and_hands_its_response_token_over() {
    let challenge_msg = challenge(WINDOWS_FLAGS, &utf16("S"), &av_eol());
    let token = neg_token_resp(Some(1), Some(NTLMSSP_OID), Some(&challenge_msg));
    assert_eq!(parse(&token), (vec![Event::NegResult(1), Event::Ntlm(&challenge_msg)], None));
    assert_eq!(parse(&neg_token_resp(Some(0), None, None)), (vec![Event::NegResult(0)], None));
    // Long-form lengths, as tokens past 127 bytes have them.
    let big = authenticate(WINDOWS_FLAGS, &utf16(&"D".repeat(100)), &utf16("u"), &utf16("w"));
    assert!(big.len() > 255);
    assert_eq!(parse(&neg_token_resp(None, None, Some(&big))), (vec![Event::Ntlm(&big)], None));
}

#[test]
fn kerberos_mech_tokens_hand_their_message_over_whatever_the_token_id() {
    let ap = ap_req(ticket("CORP.LOCAL", &["cifs", "fs1.corp.local"], 18));
    let token = neg_token_init(&[MS_KRB5_OID, KRB5_OID], &krb5_token(KRB5_OID, [1, 0], &ap));
    assert_eq!(parse(&token), (vec![Event::Krb(&ap)], None));
    let rep = ap_rep();
    let token = neg_token_resp(Some(0), Some(MS_KRB5_OID), Some(&krb5_token(KRB5_OID, [2, 0], &rep)));
    assert_eq!(parse(&token), (vec![Event::NegResult(0), Event::Krb(&rep)], None));
}

#[test]
fn other_mech_tokens_and_mic_and_wrap_tokens_raise_nothing() {
    // "N" without the NTLMSSP signature, another first byte.
    assert_eq!(parse(&neg_token_init(&[NTLMSSP_OID], b"NTLM")), (vec![], None));
    assert_eq!(parse(&neg_token_init(&[NTLMSSP_OID], b"\x01\x02")), (vec![], None));
    assert_eq!(parse(b"\x04\x04\xff\xff\xff"), (vec![], None));
    assert_eq!(parse(b"\x05\x04\x06\xff\x00"), (vec![], None));
}

#[test]
fn what_binpac_throws_on_stops_the_token_after_what_it_raised() {
    // An argument index past 3.
    let token = [neg_token_resp(Some(1), None, None), vec![0xa7, 0x02, 0x05, 0x00]].concat();
    // The outer wrapper's length is not checked: the arguments run to the token's end.
    let (events, error) = parse(&token);
    assert_eq!(events, [Event::NegResult(1)]);
    assert_eq!(error, Some(Exception::InvalidCase("GSSAPI_NEG_TOKEN_RESP_Arg", 7)));
    // An argument longer than the token.
    let mut token = neg_token_resp(Some(0), None, None);
    token[5] = 0x40;
    assert_eq!(parse(&token).1, Some(Exception::OutOfBound("GSSAPI_NEG_TOKEN_RESP_Arg")));
    // A truncated Kerberos token.
    let token = neg_token_init(&[KRB5_OID], &[0x60, 0x0b, 0x06, 0x09, 0x2a]);
    assert_eq!(parse(&token), (vec![], Some(Exception::OutOfBound("ASN1Encoding"))));
    assert_eq!(parse(&[]), (vec![], Some(Exception::OutOfBound("ASN1EncodingMeta"))));
}

/// The tokens of `exchange` through an [`Auth`] as a carrier hands them over (client, server, ...).
fn run(tokens: &[Vec<u8>]) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut auth = Auth::default();
    for (i, token) in tokens.iter().enumerate() {
        h.run(1.0 + i as f64, |ctx| auth.gssapi(ctx, token, i % 2 == 0));
    }
    h.run(10.0, |ctx| auth.finish(ctx));
    h
}

#[test]
fn an_ntlm_authentication_in_spnego_writes_one_ntlm_record_with_its_outcome() {
    let h = run(&spnego_ntlm_exchange(0));
    assert_eq!(h.timed_columns("ntlm"), [crate::analyzers::ntlm::build::user1_row("1.000000")]);
    // NTLM confirms inside the first token, GSSAPI once that token is through.
    assert_eq!(h.actions, [Action::Confirm("ntlm"), Action::Confirm("gssapi")]);
    let h = run(&spnego_ntlm_exchange(2));
    assert_eq!(h.columns("ntlm")[0][6], "F");
}

#[test]
fn a_kerberos_authentication_in_spnego_writes_kerberos_log_as_a_standalone_ap_exchange() {
    let ap = ap_req(ticket("CORP.LOCAL", &["cifs", "fs1.corp.local"], 18));
    let tokens = [
        neg_token_init(&[MS_KRB5_OID, KRB5_OID], &krb5_token(KRB5_OID, [1, 0], &ap)),
        neg_token_resp(Some(0), Some(MS_KRB5_OID), Some(&krb5_token(KRB5_OID, [2, 0], &ap_rep()))),
    ];
    let h = run(&tokens);
    assert_eq!(
        h.timed_columns("kerberos"),
        [row([
            "1.000000",
            "AP",
            "/CORP.LOCAL",
            "cifs/fs1.corp.local",
            "T",
            "-",
            "-",
            "-",
            "aes256-cts-hmac-sha1-96",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-"
        ])]
    );
    assert_eq!(h.actions, [Action::Confirm("krb"), Action::Confirm("gssapi")]);
    assert!(h.logged("ntlm").is_empty());
}

#[test]
fn a_violation_of_gssapi_or_of_the_kerberos_analyzer_is_the_embedded_analyzers() {
    let h = run(&[vec![0xa1, 0x03, 0x30, 0x01, 0xa9]]);
    assert!(matches!(&h.actions[..], [Action::EmbeddedViolation { analyzer: "gssapi", .. }]));
    // A Kerberos message the grammar does not know (APPLICATION 3).
    let h = run(&[neg_token_init(&[KRB5_OID], &krb5_token(KRB5_OID, [1, 0], &[0x63, 0x00]))]);
    assert!(matches!(&h.actions[..], [Action::EmbeddedViolation { analyzer: "krb", .. }, Action::Confirm("gssapi")]));
}

#[test]
fn smb_blobs_raw_ntlmssp_to_ntlm_others_to_gssapi_short_ones_nowhere() {
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut auth = Auth::default();
    h.run(1.0, |ctx| auth.smb_security_blob(ctx, b"\x60\x02\x05\x00", true));
    assert!(h.actions.is_empty());
    h.run(1.0, |ctx| auth.smb_security_blob(ctx, &negotiate(WINDOWS_FLAGS, b"", b""), true));
    assert_eq!(h.actions, [Action::Confirm("ntlm")]);
    h.run(1.0, |ctx| auth.smb_security_blob(ctx, &neg_token_resp(Some(1), None, None), false));
    assert_eq!(h.actions, [Action::Confirm("ntlm"), Action::Confirm("gssapi")]);
}

#[test]
fn mutated_tokens_never_panic() {
    let mut seeds: Vec<Vec<u8>> = spnego_ntlm_exchange(0).to_vec();
    seeds.push(neg_token_init(&[KRB5_OID], &krb5_token(KRB5_OID, [1, 0], &ap_req(ticket("R", &["a", "b"], 23)))));
    let mut rng = XorShift(0x0bad_cafe_dead_beef);
    for seed in &seeds {
        for _ in 0..2000 {
            let mut m = seed.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % m.len();
                m[i] = rng.next() as u8;
            }
            let cut = (rng.next() as usize) % (m.len() + 1);
            fuzzing::with_ctx(|ctx| {
                let mut auth = Auth::default();
                auth.gssapi(ctx, &m, true);
                auth.gssapi(ctx, &m[..cut], false);
                auth.finish(ctx);
            });
        }
    }
    super::fuzz(&seeds[1]);
}
