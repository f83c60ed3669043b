//! NTLMSSP messages ([MS-NLMP] 2.2.1) and SPNEGO tokens (RFC 4178) built byte by byte, for the tests of the NTLM
//! and GSSAPI analyzers and of the analyzers that carry them.

/// UTF-16LE of `s`, as NTLMSSP's unicode strings.
pub fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
pub const NEGOTIATE_OEM: u32 = 0x0000_0002;
pub const OEM_DOMAIN_SUPPLIED: u32 = 0x0000_1000;
pub const OEM_WORKSTATION_SUPPLIED: u32 = 0x0000_2000;
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;

/// Windows' usual flags (unicode, NTLM, extended session security, target info, version, 128/56-bit, key
/// exchange).
pub const WINDOWS_FLAGS: u32 = 0xe288_8215 | NEGOTIATE_VERSION;

/// A message: the signature, its type, the fixed fields (`StringData` entries pointing into the payload, which
/// starts after the fixed fields and an 8-byte version), the flags placed by `flags_after` (the number of
/// `StringData` entries before them) and the payload strings in order.
fn message(msg_type: u32, flags: u32, flags_after: usize, extra: &[u8], strings: &[&[u8]]) -> Vec<u8> {
    let fixed = 12 + 4 + 8 * strings.len() + extra.len();
    let payload_start = fixed + 8; // the version
    let mut fields = Vec::new();
    let mut payload = Vec::new();
    for s in strings {
        let offset = u32::try_from(payload_start + payload.len()).unwrap();
        let len = u16::try_from(s.len()).unwrap();
        fields.push([len.to_le_bytes().as_slice(), &len.to_le_bytes(), &offset.to_le_bytes()].concat());
        payload.extend_from_slice(s);
    }
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend(msg_type.to_le_bytes());
    for (i, field) in fields.iter().enumerate() {
        if i == flags_after {
            m.extend(flags.to_le_bytes());
            m.extend(extra);
        }
        m.extend(field);
    }
    if flags_after >= fields.len() {
        m.extend(flags.to_le_bytes());
        m.extend(extra);
    }
    assert_eq!(m.len(), fixed);
    m.extend([10, 0, 0x61, 0x4a, 0, 0, 0, 15]); // version 10.0.19041, NTLM revision 15
    m.extend(payload);
    m
}

/// NEGOTIATE_MESSAGE with the OEM domain and workstation names.
pub fn negotiate(flags: u32, domain: &[u8], workstation: &[u8]) -> Vec<u8> {
    message(1, flags, 0, &[], &[domain, workstation])
}

/// An AV pair.
pub fn av(id: u16, value: &[u8]) -> Vec<u8> {
    [&id.to_le_bytes()[..], &u16::try_from(value.len()).unwrap().to_le_bytes(), value].concat()
}

/// MsvAvEOL.
pub fn av_eol() -> Vec<u8> {
    av(0, &[])
}

/// A server's target info: the NetBIOS and DNS names of its domain and computer, its tree, a timestamp, the EOL.
pub fn target_info(nb_domain: &str, nb_computer: &str, dns_domain: &str, dns_computer: &str, tree: &str) -> Vec<u8> {
    [
        av(2, &utf16(nb_domain)),
        av(1, &utf16(nb_computer)),
        av(4, &utf16(dns_domain)),
        av(3, &utf16(dns_computer)),
        av(5, &utf16(tree)),
        av(7, &0x01d9_0000_0000_0000u64.to_le_bytes()),
        av_eol(),
    ]
    .concat()
}

/// CHALLENGE_MESSAGE: the target name, the flags, the server challenge, reserved bytes, the target info.
pub fn challenge(flags: u32, target_name: &[u8], target_info: &[u8]) -> Vec<u8> {
    let extra = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0, 0, 0, 0, 0];
    message(2, flags, 1, &extra, &[target_name, target_info])
}

/// AUTHENTICATE_MESSAGE: LM and NT responses, the domain, user and workstation names, a session key.
pub fn authenticate(flags: u32, domain: &[u8], user: &[u8], workstation: &[u8]) -> Vec<u8> {
    let lm = [0u8; 24];
    let nt = [0x5au8; 48];
    let key = [0xa5u8; 16];
    message(3, flags, 6, &[], &[&lm, &nt, domain, user, workstation, &key])
}

/// A DER element: its tag, its length (long form from 128 bytes) and its content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut v = vec![tag];
    if len < 0x80 {
        v.push(len as u8);
    } else if len < 0x100 {
        v.extend([0x81, len as u8]);
    } else {
        v.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    v.extend_from_slice(content);
    v
}

/// SPNEGO's OID 1.3.6.1.5.5.2.
pub const SPNEGO_OID: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// NTLMSSP's mechanism OID 1.3.6.1.4.1.311.2.2.10.
pub const NTLMSSP_OID: &[u8] = &[0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
/// Kerberos 5's OID 1.2.840.113554.1.2.2 and Microsoft's 1.2.840.48018.1.2.2.
pub const KRB5_OID: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
pub const MS_KRB5_OID: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// An initial context token `[APPLICATION 0] { SPNEGO OID, negTokenInit { mechTypes, mechToken } }`.
pub fn neg_token_init(mech_types: &[&[u8]], mech_token: &[u8]) -> Vec<u8> {
    let types = tlv(0xa0, &tlv(0x30, &mech_types.concat()));
    let token = tlv(0xa2, &tlv(0x04, mech_token));
    tlv(0x60, &[SPNEGO_OID, &tlv(0xa0, &tlv(0x30, &[types, token].concat()))].concat())
}

/// A server's `negTokenInit2` in an SMB2 negotiate response: its mechanisms and the `negHints` Windows sends.
pub fn neg_token_init2(mech_types: &[&[u8]]) -> Vec<u8> {
    let types = tlv(0xa0, &tlv(0x30, &mech_types.concat()));
    let hints = tlv(0xa3, &tlv(0x30, &tlv(0xa0, &tlv(0x1b, b"not_defined_in_RFC4178@please_ignore"))));
    tlv(0x60, &[SPNEGO_OID, &tlv(0xa0, &tlv(0x30, &[types, hints].concat()))].concat())
}

/// `negTokenResp { negState, supportedMech, responseToken }`, each when given.
pub fn neg_token_resp(state: Option<u8>, mech: Option<&[u8]>, response_token: Option<&[u8]>) -> Vec<u8> {
    let mut args = Vec::new();
    if let Some(state) = state {
        args.extend(tlv(0xa0, &tlv(0x0a, &[state])));
    }
    if let Some(mech) = mech {
        args.extend(tlv(0xa1, mech));
    }
    if let Some(token) = response_token {
        args.extend(tlv(0xa2, &tlv(0x04, token)));
    }
    tlv(0xa1, &tlv(0x30, &args))
}

/// A Kerberos mechanism token (RFC 4121 4.1): `[APPLICATION 0] { OID, token id, message }`.
pub fn krb5_token(oid: &[u8], token_id: [u8; 2], message: &[u8]) -> Vec<u8> {
    tlv(0x60, &[oid, &token_id, message].concat())
}

/// The client's and server's tokens of an NTLM authentication in SPNEGO: NEGOTIATE in a negTokenInit,
/// CHALLENGE in an accept-incomplete negTokenResp, AUTHENTICATE in a negTokenResp, the final negState.
pub fn spnego_ntlm_exchange(final_state: u8) -> [Vec<u8>; 4] {
    let info = target_info("STRATOLAB", "STRATOLAB-DC", "StratoLab.org", "Stratolab-DC.StratoLab.org", "StratoLab.org");
    [
        neg_token_init(&[NTLMSSP_OID], &negotiate(WINDOWS_FLAGS, b"", b"")),
        neg_token_resp(Some(1), Some(NTLMSSP_OID), Some(&challenge(WINDOWS_FLAGS, &utf16("STRATOLAB"), &info))),
        neg_token_resp(
            None,
            None,
            Some(&authenticate(WINDOWS_FLAGS, &utf16("ADHACKING.LOCAL"), &utf16("User1"), &utf16("WS01"))),
        ),
        neg_token_resp(Some(final_state), None, None),
    ]
}

/// The ntlm.log columns (after `uid` and the connection's `id`) of the tests' authentication: User1 of
/// ADHACKING.LOCAL from WS01 against the names of Zeek's LDAP NTLM baseline, at `ts`, accepted.
pub fn user1_row(ts: &str) -> Vec<String> {
    crate::analyzers::testing::row([
        ts,
        "User1",
        "WS01",
        "ADHACKING.LOCAL",
        "STRATOLAB-DC",
        "Stratolab-DC.StratoLab.org",
        "StratoLab.org",
        "T",
    ])
}
