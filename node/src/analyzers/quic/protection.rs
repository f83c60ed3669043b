//! Initial packet protection (RFC 9001 §5, RFC 9369 §3.3): keys derived from the client's first Destination
//! Connection ID, header protection removed, the payload opened with AES-128-GCM. This is what Zeek's
//! decrypt_crypto.cc does, with its limits: the packet number is used as sent (truncated; Initial packet numbers
//! are small), and a payload over 10000 bytes is refused.

use ring::aead::quic::{AES_128, HeaderProtectionKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{self, HKDF_SHA256, KeyType, Salt};

use super::QuicError;
use super::wire::{Family, VERSION_2, family};

const SALT_V1: [u8; 20] = hex20(*b"38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
const SALT_V2: [u8; 20] = hex20(*b"0dede3def700a6db819381be6e269dcbf9bd2ed9");
/// Drafts 22 and mvfst faceb001.
const SALT_DRAFT_22: [u8; 20] = hex20(*b"7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a");
/// Drafts 23-28 and the later mvfst versions.
const SALT_DRAFT_23: [u8; 20] = hex20(*b"c3eef712c72ebb5a11a7d2432bb46365bef9f502");
/// Drafts 29-32 (33 and 34 use v1's).
const SALT_DRAFT_29: [u8; 20] = hex20(*b"afbfec289993d24c9e9786f19c6111e04390a899");

/// A salt written as hex, decoded at compile time so the constants read as the RFCs print them.
const fn hex20(text: [u8; 40]) -> [u8; 20] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("salt constants are lowercase hex"),
        }
    }
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < 20 {
        out[i] = nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]);
        i += 1;
    }
    out
}

fn initial_salt(version: u32) -> &'static [u8; 20] {
    match version {
        VERSION_2 => &SALT_V2,
        0xff00_0016 | 0xface_b001 => &SALT_DRAFT_22,
        0xff00_0017..=0xff00_001c | 0xface_b002..=0xface_b013 => &SALT_DRAFT_23,
        0xff00_001d..=0xff00_0020 => &SALT_DRAFT_29,
        _ => &SALT_V1,
    }
}

pub const KEY_LEN: usize = 16;
pub const IV_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const SAMPLE_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// Zeek's decrypt refuses payloads over this (jumbo frames fit).
const MAX_PAYLOAD_LEN: u64 = 10_000;

/// The raw Initial keys of one direction (RFC 9001 §5.2; A.1 lists them for its example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialSecrets {
    pub key: [u8; KEY_LEN],
    pub iv: [u8; IV_LEN],
    pub hp: [u8; KEY_LEN],
}

/// An output length for ring's HKDF (it takes lengths as a key type).
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(secret: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    let out_len = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
    let label_len = [u8::try_from(b"tls13 ".len() + label.len()).unwrap_or(u8::MAX)];
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0]];
    // Fails only for outputs longer than 255 hash lengths; ours are at most one.
    if let Ok(okm) = secret.expand(&info, Len(out.len())) {
        let _ = okm.fill(out);
    }
}

/// The Initial secrets of the client (`from_client`) or the server for connection id `dcid`.
pub fn initial_secrets(version: u32, dcid: &[u8], from_client: bool) -> InitialSecrets {
    let initial = Salt::new(HKDF_SHA256, initial_salt(version)).extract(dcid);
    let mut secret = [0u8; SECRET_LEN];
    expand_label(&initial, if from_client { b"client in" } else { b"server in" }, &mut secret);
    let secret = hkdf::Prk::new_less_safe(HKDF_SHA256, &secret);
    let (key_label, iv_label, hp_label): (&[u8], &[u8], &[u8]) = match family(version) {
        Some(Family::V2) => (b"quicv2 key", b"quicv2 iv", b"quicv2 hp"),
        _ => (b"quic key", b"quic iv", b"quic hp"),
    };
    let mut keys = InitialSecrets { key: [0; KEY_LEN], iv: [0; IV_LEN], hp: [0; KEY_LEN] };
    expand_label(&secret, key_label, &mut keys.key);
    expand_label(&secret, iv_label, &mut keys.iv);
    expand_label(&secret, hp_label, &mut keys.hp);
    keys
}

/// One direction's Initial keys, ready to open packets.
pub struct Opener {
    aead: LessSafeKey,
    iv: [u8; IV_LEN],
    hp: HeaderProtectionKey,
}

impl Opener {
    pub fn new(secrets: &InitialSecrets) -> Option<Opener> {
        Some(Opener {
            aead: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &secrets.key).ok()?),
            iv: secrets.iv,
            hp: HeaderProtectionKey::new(&AES_128, &secrets.hp).ok()?,
        })
    }

    /// The header-protection mask for the sample at `pn_offset + 4` (RFC 9001 §5.4.2).
    fn mask(&self, packet: &[u8], pn_offset: usize) -> Result<[u8; 5], QuicError> {
        let sample = packet.get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN).ok_or(QuicError::Truncated("sample"))?;
        self.hp.new_mask(sample).map_err(|_| QuicError::DecryptionFailed)
    }

    /// Removes header protection from a long header whose packet number starts at `pn_offset` (RFC 9001 §5.4.1).
    pub fn unprotect_header(&self, packet: &[u8], pn_offset: usize) -> Result<UnprotectedHeader, QuicError> {
        let mask = self.mask(packet, pn_offset)?;
        let first_byte = packet[0] ^ (mask[0] & 0x0f);
        let pn_len = usize::from(first_byte & 0x03) + 1;
        let packet_number = packet[pn_offset..pn_offset + pn_len]
            .iter()
            .zip(&mask[1..])
            .fold(0u64, |n, (byte, m)| n << 8 | u64::from(byte ^ m));
        Ok(UnprotectedHeader { first_byte, pn_len, packet_number })
    }

    /// Removes header protection from the long-header Initial `packet` (the bytes up to the end of its payload) and
    /// opens its payload. Returns the plaintext frames.
    pub fn open(&self, packet: &[u8], pn_offset: usize, payload_len: u64) -> Result<Vec<u8>, QuicError> {
        let header = self.unprotect_header(packet, pn_offset)?;
        if payload_len < (header.pn_len + TAG_LEN) as u64 {
            return Err(QuicError::Truncated("initial payload"));
        }
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(QuicError::PayloadTooLarge(payload_len));
        }
        let header_len = pn_offset + header.pn_len;
        let end = pn_offset + payload_len as usize;
        let (Some(protected), Some(sealed)) = (packet.get(..header_len), packet.get(header_len..end)) else {
            return Err(QuicError::Truncated("initial payload"));
        };
        // The associated data is the header as sent before protection.
        let mut aad = protected.to_vec();
        aad[0] = header.first_byte;
        let pn_bytes = header.packet_number.to_be_bytes();
        aad[pn_offset..].copy_from_slice(&pn_bytes[8 - header.pn_len..]);
        let mut in_out = sealed.to_vec();
        let plain_len = self
            .aead
            .open_in_place(nonce(&self.iv, header.packet_number), Aad::from(&aad), &mut in_out)
            .map_err(|_| QuicError::DecryptionFailed)?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }
}

/// What header protection hid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnprotectedHeader {
    pub first_byte: u8,
    pub pn_len: usize,
    /// As sent (truncated), which is what Zeek uses for the nonce.
    pub packet_number: u64,
}

/// The AEAD nonce: the IV with the packet number XORed into its low bytes (RFC 9001 §5.3).
fn nonce(iv: &[u8; IV_LEN], packet_number: u64) -> Nonce {
    let mut nonce = *iv;
    for (n, p) in nonce[IV_LEN - 8..].iter_mut().zip(packet_number.to_be_bytes()) {
        *n ^= p;
    }
    Nonce::assume_unique_for_key(nonce)
}

#[cfg(test)]
pub(super) mod sealing {
    //! The sealing side, for tests that build protected packets (the analyzer itself only opens).
    use super::*;

    /// Protects `header` (whose last `pn_len` bytes are the packet number) and `plaintext` as RFC 9001 §5 does.
    pub fn seal(secrets: &InitialSecrets, header: &[u8], pn_len: usize, plaintext: &[u8]) -> Vec<u8> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &secrets.key).expect("key length"));
        let pn_offset = header.len() - pn_len;
        let packet_number = header[pn_offset..].iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
        let mut payload = plaintext.to_vec();
        key.seal_in_place_append_tag(nonce(&secrets.iv, packet_number), Aad::from(header), &mut payload).expect("seal");
        let mut packet = header.to_vec();
        packet.extend_from_slice(&payload);
        let hp = HeaderProtectionKey::new(&AES_128, &secrets.hp).expect("hp key length");
        let mask = hp.new_mask(&packet[pn_offset + 4..pn_offset + 4 + SAMPLE_LEN]).expect("sample");
        packet[0] ^= mask[0] & 0x0f;
        for (byte, m) in packet[pn_offset..pn_offset + pn_len].iter_mut().zip(&mask[1..]) {
            *byte ^= m;
        }
        packet
    }
}
