//! Zeek's names for TLS numbers (`base/protocols/ssl/consts.zeek`): versions, cipher suites, curves and
//! alerts, each with Zeek's `unknown-N` fallback.

use tls_parser::TlsCipherSuite;

pub const SSLV2: u16 = 0x0002;
pub const SSLV3: u16 = 0x0300;
pub const TLSV10: u16 = 0x0301;
pub const TLSV12: u16 = 0x0303;
pub const TLSV13: u16 = 0x0304;
const DTLSV10: u16 = 0xFEFF;
const DTLSV12: u16 = 0xFEFD;
const DTLSV13: u16 = 0xFEFC;

/// A TLS 1.3 draft version (`0x7Fxx`).
pub fn is_tls13_draft(version: u16) -> bool {
    version >> 8 == 0x7F
}

/// `SSL::version_strings`.
pub fn version_name(version: u16) -> String {
    let name = match version {
        SSLV2 => "SSLv2",
        SSLV3 => "SSLv3",
        TLSV10 => "TLSv10",
        0x0302 => "TLSv11",
        TLSV12 => "TLSv12",
        TLSV13 => "TLSv13",
        DTLSV10 => "DTLSv10",
        DTLSV12 => "DTLSv12",
        DTLSV13 => "DTLSv13",
        // Zeek's own arithmetic for drafts: `i / 0xFF == 0x7F` and `i % 0x7F`.
        v if u32::from(v) / 0xFF == 0x7F => return format!("TLSv13-draft{}", v % 0x7F),
        v => return format!("unknown-{v}"),
    };
    name.to_string()
}

/// Cipher suites Zeek names that are not in the IANA registry tls-parser carries.
const EXTRA_CIPHERS: &[(u32, &str)] = &[
    (0x010080, "SSLv20_CK_RC4_128_WITH_MD5"),
    (0x020080, "SSLv20_CK_RC4_128_EXPORT40_WITH_MD5"),
    (0x030080, "SSLv20_CK_RC2_128_CBC_WITH_MD5"),
    (0x040080, "SSLv20_CK_RC2_128_CBC_EXPORT40_WITH_MD5"),
    (0x050080, "SSLv20_CK_IDEA_128_CBC_WITH_MD5"),
    (0x060040, "SSLv20_CK_DES_64_CBC_WITH_MD5"),
    (0x0700C0, "SSLv20_CK_DES_192_EDE3_CBC_WITH_MD5"),
    (0x001C, "SSL_FORTEZZA_KEA_WITH_NULL_SHA"),
    (0x001D, "SSL_FORTEZZA_KEA_WITH_FORTEZZA_CBC_SHA"),
    (0x0072, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_RMD"),
    (0x0073, "TLS_DHE_DSS_WITH_AES_128_CBC_RMD"),
    (0x0074, "TLS_DHE_DSS_WITH_AES_256_CBC_RMD"),
    (0x0077, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_RMD"),
    (0x0078, "TLS_DHE_RSA_WITH_AES_128_CBC_RMD"),
    (0x0079, "TLS_DHE_RSA_WITH_AES_256_CBC_RMD"),
    (0x007C, "TLS_RSA_WITH_3DES_EDE_CBC_RMD"),
    (0x007D, "TLS_RSA_WITH_AES_128_CBC_RMD"),
    (0x007E, "TLS_RSA_WITH_AES_256_CBC_RMD"),
    (0x0080, "TLS_GOSTR341094_WITH_28147_CNT_IMIT"),
    (0x0081, "TLS_GOSTR341001_WITH_28147_CNT_IMIT"),
    (0x0082, "TLS_GOSTR341094_WITH_NULL_GOSTR3411"),
    (0x0083, "TLS_GOSTR341001_WITH_NULL_GOSTR3411"),
    (0x1306, "TLS_AEGIS_256_SHA384"),
    (0x1307, "TLS_AEGIS_128L_SHA256"),
    (0x16B7, "TLS_CECPQ1_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xCC13, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
    (0xCC14, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
    (0xCC15, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
    // draft-ietf-tls-ecdhe-psk-aead-05's code point; RFC 8442 moved the suite to 0xD005.
    (0xD004, "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256_OLD"),
    // RFC 9189 and RFC 9367 (GOST).
    (0xC100, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC"),
    (0xC101, "TLS_GOSTR341112_256_WITH_MAGMA_CTR_OMAC"),
    (0xC102, "TLS_GOSTR341112_256_WITH_28147_CNT_IMIT"),
    (0xC103, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L"),
    (0xC104, "TLS_GOSTR341112_256_WITH_MAGMA_MGM_L"),
    (0xC105, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_S"),
    (0xC106, "TLS_GOSTR341112_256_WITH_MAGMA_MGM_S"),
    (0xFEFE, "SSL_RSA_FIPS_WITH_DES_CBC_SHA"),
    (0xFEFF, "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA"),
    (0xFFE0, "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA_2"),
    (0xFFE1, "SSL_RSA_FIPS_WITH_DES_CBC_SHA_2"),
    (0xFF80, "SSL_RSA_WITH_RC2_CBC_MD5"),
    (0xFF81, "SSL_RSA_WITH_IDEA_CBC_MD5"),
    (0xFF82, "SSL_RSA_WITH_DES_CBC_MD5"),
    (0xFF83, "SSL_RSA_WITH_3DES_EDE_CBC_MD5"),
    (0x16B8, "TLS_CECPQ1_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0x16B9, "TLS_CECPQ1_RSA_WITH_AES_256_GCM_SHA384"),
    (0x16BA, "TLS_CECPQ1_ECDSA_WITH_AES_256_GCM_SHA384"),
];

/// IANA suites `SSL::cipher_desc` has no entry for (it skips from 0x002B to 0x002F).
fn zeek_lacks_cipher(cipher: u32) -> bool {
    matches!(cipher, 0x002C..=0x002E)
}

/// `SSL::cipher_desc`: the IANA name, with Zeek's upper-case `ANON`, GREASE values by name, `unknown-N` else.
pub fn cipher_name(cipher: u32) -> String {
    if let Some((_, name)) = EXTRA_CIPHERS.iter().find(|(id, _)| *id == cipher) {
        return (*name).to_string();
    }
    let code = u16::try_from(cipher).ok().filter(|_| !zeek_lacks_cipher(cipher));
    match code {
        Some(g) if is_grease(g) => format!("grease_0x{g:04X}"),
        Some(c) => match TlsCipherSuite::from_id(c) {
            Some(suite) => suite.name.replace("_anon_", "_ANON_"),
            None => format!("unknown-{cipher}"),
        },
        None => format!("unknown-{cipher}"),
    }
}

/// Whether Zeek parses the server key exchange of this suite for a named curve: the suites its
/// `ServerKeyExchange` case lists as ECDHE and ECDH_anon (tls-handshake-protocol.pac). ECDHE_PSK suites with
/// GCM, CCM or ChaCha20 are not on that list, so they log no curve.
pub fn cipher_has_ecdh_params(cipher: u32) -> bool {
    matches!(
        cipher,
        0xC006..=0xC00A // ECDHE_ECDSA with NULL, RC4, 3DES, AES
            | 0xC010..=0xC019 // ECDHE_RSA, ECDH_anon
            | 0xC023 | 0xC024 | 0xC027 | 0xC028 // AES-CBC with SHA-2
            | 0xC02B | 0xC02C | 0xC02F | 0xC030 // AES-GCM
            | 0xC033..=0xC03B // ECDHE_PSK with RC4, 3DES, AES-CBC, NULL
            | 0xC048 | 0xC049 | 0xC04C | 0xC04D | 0xC05C | 0xC05D | 0xC060 | 0xC061 | 0xC070 | 0xC071 // ARIA
            | 0xC072 | 0xC073 | 0xC076 | 0xC077 | 0xC086 | 0xC087 | 0xC08A | 0xC08B | 0xC09A | 0xC09B // Camellia
            | 0xC0AC..=0xC0AF // ECDHE_ECDSA with AES-CCM
            | 0xCCA8 | 0xCCA9 // ChaCha20-Poly1305 (RFC 7905)
    )
}

/// `SSL::ec_curves`.
pub fn curve_name(curve: u16) -> String {
    const SECT_AND_SECP: [&str; 25] = [
        "sect163k1",
        "sect163r1",
        "sect163r2",
        "sect193r1",
        "sect193r2",
        "sect233k1",
        "sect233r1",
        "sect239k1",
        "sect283k1",
        "sect283r1",
        "sect409k1",
        "sect409r1",
        "sect571k1",
        "sect571r1",
        "secp160k1",
        "secp160r1",
        "secp160r2",
        "secp192k1",
        "secp192r1",
        "secp224k1",
        "secp224r1",
        "secp256k1",
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ];
    let name = match curve {
        1..=25 => SECT_AND_SECP[usize::from(curve - 1)],
        26 => "brainpoolP256r1",
        27 => "brainpoolP384r1",
        28 => "brainpoolP512r1",
        29 => "x25519",
        30 => "x448",
        31 => "brainpoolP256r1tls13",
        32 => "brainpoolP384r1tls13",
        33 => "brainpoolP512r1tls13",
        34 => "GC256A",
        35 => "GC256B",
        36 => "GC256C",
        37 => "GC256D",
        38 => "GC512A",
        39 => "GC512B",
        40 => "GC512C",
        41 => "curveSM2",
        256 => "ffdhe2048",
        257 => "ffdhe3072",
        258 => "ffdhe4096",
        259 => "ffdhe6144",
        260 => "ffdhe8192",
        512 => "MLKEM512",
        513 => "MLKEM768",
        514 => "MLKEM1024",
        4587 => "SecP256r1MLKEM768",
        4588 => "X25519MLKEM768",
        4589 => "SecP384r1MLKEM1024",
        4590 => "curveSM2MLKEM768",
        16696 => "CECPQ2",
        25497 => "X25519Kyber768Draft00",
        25498 => "SecP256r1Kyber768Draft00",
        0xFF01 => "arbitrary_explicit_prime_curves",
        0xFF02 => "arbitrary_explicit_char2_curves",
        g if is_grease(g) => return format!("grease_0x{g:04X}"),
        c => return format!("unknown-{c}"),
    };
    name.to_string()
}

/// GREASE values (RFC 8701): `0x?A?A` with both bytes equal.
fn is_grease(v: u16) -> bool {
    v & 0x0F0F == 0x0A0A && v >> 8 == v & 0xFF
}

/// `SSL::alert_descriptions`.
pub fn alert_name(desc: u8) -> String {
    let name = match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        117 => "general_error",
        120 => "no_application_protocol",
        121 => "ech_required",
        d => return format!("unknown-{d}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_zeek() {
        assert_eq!(version_name(TLSV10), "TLSv10");
        assert_eq!(version_name(0x7F12), "TLSv13-draft18");
        assert_eq!(version_name(0x1234), "unknown-4660");
        assert_eq!(cipher_name(0xC011), "TLS_ECDHE_RSA_WITH_RC4_128_SHA");
        assert_eq!(cipher_name(0x0004), "TLS_RSA_WITH_RC4_128_MD5");
        assert_eq!(cipher_name(0x1302), "TLS_AES_256_GCM_SHA384");
        assert_eq!(cipher_name(0x0018), "TLS_DH_ANON_WITH_RC4_128_MD5");
        assert_eq!(cipher_name(0x010080), "SSLv20_CK_RC4_128_WITH_MD5");
        // consts.zeek's own entries beyond the IANA registry, its gaps and its GREASE names.
        assert_eq!(cipher_name(0xCC13), "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD");
        assert_eq!(cipher_name(0xFEFF), "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA");
        assert_eq!(cipher_name(0x0060), "TLS_RSA_EXPORT1024_WITH_RC4_56_MD5");
        assert_eq!(cipher_name(0x002C), "unknown-44");
        assert_eq!(cipher_name(0x2A2A), "grease_0x2A2A");
        assert_eq!(cipher_name(0xABCD), "unknown-43981");
        assert_eq!(cipher_name(0xCCA9), "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
        assert_eq!(cipher_name(0x1301), "TLS_AES_128_GCM_SHA256");
        assert_eq!(cipher_name(0xD004), "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256_OLD");
        assert_eq!(cipher_name(0xD005), "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256");
        assert_eq!(cipher_name(0xC100), "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC");
        assert_eq!(cipher_name(0xC106), "TLS_GOSTR341112_256_WITH_MAGMA_MGM_S");
        assert_eq!(cipher_name(0xC107), "unknown-49415");
        assert!(cipher_has_ecdh_params(0xC030));
        assert!(cipher_has_ecdh_params(0xCCA8));
        assert!(cipher_has_ecdh_params(0xC018));
        assert!(!cipher_has_ecdh_params(0x0004));
        assert!(!cipher_has_ecdh_params(0x009E));
        // ECDHE_PSK with GCM or ChaCha20 is missing from Zeek's ServerKeyExchange list.
        assert!(!cipher_has_ecdh_params(0xD001));
        assert!(!cipher_has_ecdh_params(0xCCAC));
        assert_eq!(curve_name(23), "secp256r1");
        assert_eq!(curve_name(29), "x25519");
        assert_eq!(curve_name(0x1A1A), "grease_0x1A1A");
        assert_eq!(alert_name(40), "handshake_failure");
    }
}
