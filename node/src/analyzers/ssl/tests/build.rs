//! Builders for the handshakes and certificates the scenario tests feed the analyzer: TLS records and
//! handshake messages byte by byte as RFC 5246/8446 lay them out, and DER certificates assembled from their
//! parts (no signature is checked by Zeek or by us, so the signature bits are zeros).

pub const TLS10: u16 = 0x0301;
pub const TLS12: u16 = 0x0303;

fn u16_be(v: usize) -> [u8; 2] {
    u16::try_from(v).expect("fits in 16 bits").to_be_bytes()
}

fn u24_be(v: usize) -> [u8; 3] {
    let b = u32::try_from(v).expect("fits in 24 bits").to_be_bytes();
    [b[1], b[2], b[3]]
}

fn prefixed16(body: &[u8]) -> Vec<u8> {
    [&u16_be(body.len())[..], body].concat()
}

// ----- TLS ----------------------------------------------------------------------------------------------

pub fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
    [&[content_type][..], &version.to_be_bytes(), &u16_be(body.len()), body].concat()
}

/// A record of handshake messages.
pub fn handshakes(version: u16, messages: &[Vec<u8>]) -> Vec<u8> {
    record(22, version, &messages.concat())
}

pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    [&[msg_type][..], &u24_be(body.len()), body].concat()
}

pub fn change_cipher_spec(version: u16) -> Vec<u8> {
    record(20, version, &[1])
}

pub fn alert(version: u16, level: u8, description: u8) -> Vec<u8> {
    record(21, version, &[level, description])
}

/// An encrypted record: application data in TLS 1.3, or anything after a ChangeCipherSpec.
pub fn ciphertext(content_type: u8, version: u16, len: usize) -> Vec<u8> {
    record(content_type, version, &vec![0xA5; len])
}

pub fn extension(ext_type: u16, data: &[u8]) -> Vec<u8> {
    [&ext_type.to_be_bytes()[..], &prefixed16(data)].concat()
}

fn extensions_block(exts: &[Vec<u8>]) -> Vec<u8> {
    if exts.is_empty() { Vec::new() } else { prefixed16(&exts.concat()) }
}

pub fn client_hello(session_id: &[u8], ciphers: &[u16], exts: &[Vec<u8>]) -> Vec<u8> {
    let suites: Vec<u8> = ciphers.iter().flat_map(|c| c.to_be_bytes()).collect();
    let body = [
        &TLS12.to_be_bytes()[..],
        &[0x11; 32],
        &[u8::try_from(session_id.len()).expect("short session id")],
        session_id,
        &prefixed16(&suites),
        &[1, 0],
        &extensions_block(exts),
    ]
    .concat();
    handshake(1, &body)
}

pub fn server_hello(version: u16, random: &[u8; 32], session_id: &[u8], cipher: u16, exts: &[Vec<u8>]) -> Vec<u8> {
    let body = [
        &version.to_be_bytes()[..],
        random,
        &[u8::try_from(session_id.len()).expect("short session id")],
        session_id,
        &cipher.to_be_bytes(),
        &[0],
        &extensions_block(exts),
    ]
    .concat();
    handshake(2, &body)
}

/// server_name: (name type, name) entries.
pub fn sni(names: &[(u8, &str)]) -> Vec<u8> {
    let list: Vec<u8> = names.iter().flat_map(|(t, n)| [&[*t][..], &prefixed16(n.as_bytes())].concat()).collect();
    extension(0, &prefixed16(&list))
}

pub fn alpn(protocols: &[&str]) -> Vec<u8> {
    let list: Vec<u8> = protocols.iter().flat_map(|p| [&[p.len() as u8][..], p.as_bytes()].concat()).collect();
    extension(16, &prefixed16(&list))
}

pub fn supported_versions_offer(versions: &[u16]) -> Vec<u8> {
    let list: Vec<u8> = versions.iter().flat_map(|v| v.to_be_bytes()).collect();
    extension(43, &[&[list.len() as u8][..], &list].concat())
}

pub fn supported_version_chosen(version: u16) -> Vec<u8> {
    extension(43, &version.to_be_bytes())
}

pub fn key_share_offer(groups: &[u16]) -> Vec<u8> {
    let entries: Vec<u8> =
        groups.iter().flat_map(|g| [&g.to_be_bytes()[..], &prefixed16(&[0x42; 32])].concat()).collect();
    extension(51, &prefixed16(&entries))
}

pub fn key_share_chosen(ext_type: u16, group: u16) -> Vec<u8> {
    extension(ext_type, &[&group.to_be_bytes()[..], &prefixed16(&[0x24; 32])].concat())
}

/// The key_share of a HelloRetryRequest: only the group the server wants.
pub fn key_share_retry(group: u16) -> Vec<u8> {
    extension(51, &group.to_be_bytes())
}

/// pre_shared_key as the client offers it: one identity and one binder.
pub fn psk_offer() -> Vec<u8> {
    let identities = prefixed16(&[&prefixed16(&[0x77; 16])[..], &[0, 0, 0, 1]].concat());
    let binders = prefixed16(&[&[32u8][..], &[0x55; 32]].concat());
    extension(41, &[identities, binders].concat())
}

pub fn psk_selected() -> Vec<u8> {
    extension(41, &[0, 0])
}

pub fn session_ticket(ticket: &[u8]) -> Vec<u8> {
    extension(35, ticket)
}

pub fn certificate(certs: &[Vec<u8>]) -> Vec<u8> {
    let list: Vec<u8> = certs.iter().flat_map(|c| [&u24_be(c.len())[..], c].concat()).collect();
    handshake(11, &[&u24_be(list.len())[..], &list].concat())
}

/// ServerKeyExchange of an ECDHE suite over a named curve (TLS 1.2: with a signature algorithm).
pub fn ecdhe_key_exchange(curve: u16) -> Vec<u8> {
    let body = [&[3u8][..], &curve.to_be_bytes(), &[65], &[4; 65], &[4, 1], &prefixed16(&[9; 64])].concat();
    handshake(12, &body)
}

/// ServerKeyExchange of a DHE suite: p, g, Ys and the signature.
pub fn dhe_key_exchange() -> Vec<u8> {
    let body = [prefixed16(&[0xFF; 64]), prefixed16(&[2]), prefixed16(&[7; 64]), vec![4, 1], prefixed16(&[9; 64])];
    handshake(12, &body.concat())
}

pub fn empty_message(msg_type: u8) -> Vec<u8> {
    handshake(msg_type, &[])
}

pub fn client_key_exchange() -> Vec<u8> {
    handshake(16, &[&[65u8][..], &[4; 65]].concat())
}

pub fn new_session_ticket() -> Vec<u8> {
    handshake(4, &[&[0, 0, 0x1C, 0x20][..], &prefixed16(&[0x33; 48])].concat())
}

// ----- DER ----------------------------------------------------------------------------------------------

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.push(0x82);
        out.extend(u16_be(len));
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &items.concat())
}

pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().expect("numeric arc")).collect();
    let mut content = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut groups = vec![(arc & 0x7F) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push(0x80 | (rest & 0x7F) as u8);
            rest >>= 7;
        }
        content.extend(groups.iter().rev());
    }
    tlv(0x06, &content)
}

/// An INTEGER with exactly these content bytes (so tests can write non-minimal or negative ones).
pub fn int(content: &[u8]) -> Vec<u8> {
    tlv(0x02, content)
}

/// A positive INTEGER of `bits` bits (leading one bit, then the filler), with DER's sign byte.
pub fn int_of_bits(bits: usize, filler: u8) -> Vec<u8> {
    let mut content = vec![filler; bits.div_ceil(8)];
    let top = bits % 8;
    content[0] = if top == 0 { 0x80 } else { 1 << (top - 1) };
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    int(&content)
}

pub fn bit_string(content: &[u8]) -> Vec<u8> {
    tlv(0x03, &[&[0u8][..], content].concat())
}

/// A distinguished name: RDNs in DER order (most significant first), each a set of (OID, string tag, value).
pub fn name(rdns: &[&[(&str, u8, &[u8])]]) -> Vec<u8> {
    let sets: Vec<Vec<u8>> = rdns
        .iter()
        .map(|rdn| {
            let attrs: Vec<Vec<u8>> = rdn.iter().map(|(o, tag, v)| seq(&[oid(o), tlv(*tag, v)])).collect();
            tlv(0x31, &attrs.concat())
        })
        .collect();
    seq(&sets)
}

pub const PRINTABLE: u8 = 0x13;
pub const UTF8: u8 = 0x0C;
pub const T61: u8 = 0x14;
pub const BMP: u8 = 0x1E;
pub const VISIBLE: u8 = 0x1A;
pub const BITS: u8 = 0x03;
pub const OCTETS: u8 = 0x04;

pub fn rsa_key(bits: usize, exponent: &[u8]) -> Vec<u8> {
    rsa_key_labelled("1.2.840.113549.1.1.1", true, bits, exponent)
}

/// An RSA public key under another algorithm identifier (RDP's md5WithRSAEncryption with NULL parameters,
/// RSA-PSS without any).
pub fn rsa_key_labelled(algorithm: &str, null_params: bool, bits: usize, exponent: &[u8]) -> Vec<u8> {
    let key = seq(&[int_of_bits(bits, 0x5A), int(exponent)]);
    let identifier = if null_params { seq(&[oid(algorithm), tlv(0x05, &[])]) } else { seq(&[oid(algorithm)]) };
    seq(&[identifier, bit_string(&key)])
}

/// The P-384 base point, uncompressed: a public key OpenSSL accepts as on the curve.
pub const P384_GENERATOR: &str = "04\
    AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7\
    3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F";

pub fn ec_key(curve: &str, point: &[u8]) -> Vec<u8> {
    seq(&[seq(&[oid("1.2.840.10045.2.1"), oid(curve)]), bit_string(point)])
}

pub fn dsa_key(p_bits: usize) -> Vec<u8> {
    let params = seq(&[int_of_bits(p_bits, 0x3C), int_of_bits(256, 0x2D), int_of_bits(p_bits - 1, 0x11)]);
    seq(&[seq(&[oid("1.2.840.10040.4.1"), params]), bit_string(&int_of_bits(p_bits - 2, 0x19))])
}

/// A key whose algorithm takes no parameters (Ed25519, ML-DSA, ...).
pub fn bare_key(algorithm: &str, key_len: usize) -> Vec<u8> {
    seq(&[seq(&[oid(algorithm)]), bit_string(&vec![0x61; key_len])])
}

pub fn extension_der(ext_oid: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![oid(ext_oid)];
    if critical {
        parts.push(tlv(0x01, &[0xFF]));
    }
    parts.push(tlv(OCTETS, value));
    seq(&parts)
}

/// A subjectAltName general name: context tag 1 (email), 2 (DNS), 6 (URI) or 7 (IP address).
pub fn general_name(tag: u8, value: &[u8]) -> Vec<u8> {
    tlv(0x80 | tag, value)
}

pub fn subject_alt_name(names: &[Vec<u8>]) -> Vec<u8> {
    extension_der("2.5.29.17", false, &seq(names))
}

pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> Vec<u8> {
    let mut parts = Vec::new();
    if ca {
        parts.push(tlv(0x01, &[0xFF]));
    }
    if let Some(len) = path_len {
        parts.push(int(&[len]));
    }
    extension_der("2.5.29.19", true, &seq(&parts))
}

pub struct Cert {
    pub serial: Vec<u8>,
    pub signature: &'static str,
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    pub not_before: Vec<u8>,
    pub not_after: Vec<u8>,
    pub key: Vec<u8>,
    pub extensions: Vec<Vec<u8>>,
}

impl Cert {
    /// A v3 certificate for `cn`, valid through 2025, with a 2048-bit RSA key and nothing else.
    pub fn new(cn: &str) -> Cert {
        let dn = name(&[&[("2.5.4.6", PRINTABLE, b"US")], &[("2.5.4.3", UTF8, cn.as_bytes())]]);
        Cert {
            serial: vec![0x01, 0x23],
            signature: "1.2.840.113549.1.1.11",
            issuer: dn.clone(),
            subject: dn,
            not_before: tlv(0x17, b"250101000000Z"),
            not_after: tlv(0x17, b"251231235959Z"),
            key: rsa_key(2048, &[1, 0, 1]),
            extensions: Vec::new(),
        }
    }

    pub fn der(&self) -> Vec<u8> {
        let signature = seq(&[oid(self.signature)]);
        let mut tbs = vec![
            tlv(0xA0, &int(&[2])),
            int(&self.serial),
            signature.clone(),
            self.issuer.clone(),
            seq(&[self.not_before.clone(), self.not_after.clone()]),
            self.subject.clone(),
            self.key.clone(),
        ];
        if !self.extensions.is_empty() {
            tbs.push(tlv(0xA3, &seq(&self.extensions)));
        }
        seq(&[seq(&tbs), signature, bit_string(&[0x5C; 32])])
    }
}
