//! Content sniffing for files.log `mime_type`: a subset of Zeek's file-magic signatures
//! (scripts/base/frameworks/files/magic/*.sig). As in Zeek, every matching signature is a candidate and
//! the one with the highest strength wins; only the beginning of the file (the BOF buffer) is looked at.

/// How many leading bytes Zeek buffers before sniffing (`default_file_bof_buffer_size`).
pub const BOF_BUFFER_SIZE: usize = 4096;

struct Signature {
    mime: &'static str,
    strength: i32,
    matches: fn(&[u8]) -> bool,
}

static SIGNATURES: &[Signature] = &[
    Signature { mime: "text/plain", strength: -20, matches: is_plaintext },
    Signature { mime: "application/xml", strength: 10, matches: |d| markup_tag_is(d, &[b"?xml "]) },
    Signature {
        mime: "text/html",
        strength: 100,
        matches: |d| markup_tag_is(d, &[b"!doctype html", b"html", b"meta http-equiv"]),
    },
    Signature { mime: "text/html", strength: 20, matches: |d| markup_tag_is(d, &[b"head", b"title", b"body"]) },
    Signature { mime: "text/json", strength: 1, matches: looks_like_json },
    Signature { mime: "application/x-pem", strength: 0, matches: |d| d.starts_with(b"-----BEGIN CERTIFICATE-----") },
    Signature { mime: "application/pdf", strength: 80, matches: |d| d.starts_with(b"%PDF") },
    Signature { mime: "application/zip", strength: 10, matches: |d| d.len() >= 6 && d.starts_with(b"PK\x03\x04") },
    Signature { mime: "application/x-gzip", strength: 100, matches: |d| d.starts_with(b"\x1f\x8b") },
    Signature { mime: "application/x-bzip2", strength: 90, matches: |d| d.starts_with(b"BZh") },
    Signature { mime: "application/x-7z-compressed", strength: 90, matches: |d| d.starts_with(b"7z\xbc\xaf\x27\x1c") },
    Signature { mime: "application/x-rar", strength: 90, matches: |d| d.starts_with(b"Rar!") },
    Signature { mime: "image/png", strength: 70, matches: |d| d.starts_with(b"\x89PNG") },
    Signature { mime: "image/jpeg", strength: 52, matches: |d| d.starts_with(b"\xff\xd8") },
    Signature { mime: "image/gif", strength: 70, matches: |d| d.starts_with(b"GIF8") },
    Signature { mime: "application/x-dosexec", strength: 51, matches: |d| d.starts_with(b"MZ") },
    Signature { mime: "application/x-executable", strength: 50, matches: |d| d.starts_with(b"\x7fELF") },
    Signature {
        mime: "application/vnd.tcpdump.pcap",
        strength: 70,
        matches: |d| d.starts_with(b"\xa1\xb2\xc3\xd4") || d.starts_with(b"\xd4\xc3\xb2\xa1"),
    },
];

/// The sniffed MIME type of a file that starts with `bof`, or `None` when no signature matches.
pub fn sniff_mime(bof: &[u8]) -> Option<&'static str> {
    let mut best: Option<&Signature> = None;
    for sig in SIGNATURES {
        if (sig.matches)(bof) && best.is_none_or(|b| sig.strength > b.strength) {
            best = Some(sig);
        }
    }
    best.map(|s| s.mime)
}

/// Zeek's `file-plaintext`: an optional byte-order mark, then ten printable or whitespace ASCII bytes.
fn is_plaintext(d: &[u8]) -> bool {
    const BOMS: &[&[u8]] = &[b"\xef\xbb\xbf", b"\x00\x00\xfe\xff", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\xff\xfe"];
    let body = BOMS.iter().find(|b| d.starts_with(b)).map_or(d, |b| &d[b.len()..]);
    body.len() >= 10
        && body[..10]
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) || matches!(c, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
}

/// Skips the UTF-8 BOM, blanks, comments and an `<?xml ...?>` prolog, then checks whether the next tag
/// starts (case-insensitively) with one of `names`: the common prefix of Zeek's HTML/XML signatures.
fn markup_tag_is(d: &[u8], names: &[&[u8]]) -> bool {
    let mut rest = d.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(d);
    loop {
        rest = trim_blank_start(rest);
        if let Some(after) = rest.strip_prefix(b"<!--".as_slice()) {
            match find(after, b"-->") {
                Some(end) => rest = &after[end + 3..],
                None => return false,
            }
        } else if rest.starts_with(b"<?xml ") && !names.contains(&b"?xml ".as_slice()) {
            match find(rest, b"?>") {
                Some(end) => rest = &rest[end + 2..],
                None => return false,
            }
        } else {
            break;
        }
    }
    let Some(tag) = rest.strip_prefix(b"<".as_slice()) else { return false };
    names.iter().any(|name| tag.len() >= name.len() && tag[..name.len()].eq_ignore_ascii_case(name))
}

fn looks_like_json(d: &[u8]) -> bool {
    let rest = trim_blank_start(d.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(d));
    match rest.first() {
        Some(b'{') => {
            let inner = trim_blank_start(&rest[1..]);
            inner.first() == Some(&b'"') || inner.first() == Some(&b'}')
        }
        Some(b'[') => matches!(trim_blank_start(&rest[1..]).first(), Some(b'"' | b'{' | b'[' | b']' | b'0'..=b'9')),
        _ => false,
    }
}

fn trim_blank_start(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')).count();
    &d[n..]
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_like_zeek() {
        assert_eq!(sniff_mime(b"User-agent: *\r\nDisallow: /\r\n"), Some("text/plain"));
        assert_eq!(sniff_mime(b"<html xmlns:v=\"urn:schemas-microsoft-com:vml\""), Some("text/html"));
        assert_eq!(sniff_mime(b"\r\n<!-- x --><!DOCTYPE HTML PUBLIC"), Some("text/html"));
        assert_eq!(sniff_mime(b"<?xml version=\"1.0\"?><html>"), Some("text/html"));
        assert_eq!(sniff_mime(b"<?xml version=\"1.0\"?><a/>"), Some("application/xml"));
        assert_eq!(sniff_mime(b"\x1f\x8b\x08\x00"), Some("application/x-gzip"));
        assert_eq!(sniff_mime(b"short"), None);
        assert_eq!(sniff_mime(b""), None);
    }
}
