//! A file's mime type from its first bytes, for every protocol that carries files (HTTP, SMTP, POP3, FTP): Zeek's
//! file-magic signatures (scripts/base/frameworks/files/magic/*.sig) for the types that traffic carries. As in Zeek
//! every matching signature is a candidate and the strongest wins (text/plain, at -20, only when nothing else
//! matches). The patterns are anchored at the start of the buffer, as Zeek's signature patterns are.

use std::sync::OnceLock;

/// How many leading bytes Zeek buffers before sniffing (`default_file_bof_buffer_size`).
pub(crate) const BOF_BUFFER_SIZE: usize = 4096;

struct Magic {
    mime: &'static str,
    strength: i32,
    matches: fn(&[u8]) -> bool,
}

const fn sig(mime: &'static str, strength: i32, matches: fn(&[u8]) -> bool) -> Magic {
    Magic { mime, strength, matches }
}

static SIGNATURES: &[Magic] = &[
    // general.sig
    sig("text/plain", -20, is_plaintext),
    sig("text/json", 1, is_json_object),
    sig("text/json", 1, is_json_array),
    sig("text/json", 0, is_empty_json),
    sig("application/xml", 10, is_xml_declaration),
    sig("text/html", 100, |d| markup_tag(d, true, |t| tag_is_spaced(t, b"!doctype", b"html") || ci(t, b"html"))),
    sig("text/html", 100, |d| markup_tag(d, true, |t| tag_is_spaced(t, b"meta", b"http-equiv"))),
    sig("text/html", 49, |d| markup_tag(d, true, |t| tag_is_spaced(t, b"!doctype", b"html"))),
    sig("text/html", 20, |d| {
        markup_tag(d, true, |t| [&b"head"[..], b"html", b"title", b"body"].iter().any(|n| ci(t, n)))
    }),
    sig("text/rss", 90, |d| markup_tag(d, true, |t| ci(t, b"rss"))),
    sig("text/atom", 100, |d| markup_tag(d, true, is_atom_tag)),
    sig("application/soap+xml", 49, |d| markup_tag(d, true, is_soap_envelope)),
    sig("application/xml-rpc", 49, |d| markup_tag(d, true, |t| ci(t, b"methodresponse>"))),
    sig("text/x-cross-domain-policy", 49, |d| {
        markup_tag(d, false, |t| tag_is_spaced(t, b"!doctype", b"cross-domain-policy") || ci(t, b"cross-domain-policy"))
    }),
    sig("text/ini", 20, is_ini),
    sig("application/ocsp-request", 71, |d| found_at(d, 11..=19, b"\x06\x05\x2b\x0e\x03\x02\x1a")),
    sig("application/ocsp-response", 71, |d| found_at(d, 11..=19, b"\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x01")),
    sig("application/x-shockwave-flash", 60, |d| [&b"FWS"[..], b"CWS", b"ZWS"].iter().any(|m| d.starts_with(m))),
    sig("application/vnd.ms-tnef", 100, |d| d.starts_with(b"\x78\x9f\x3e\x22")),
    sig("application/x-pem", 0, |d| d.starts_with(b"-----BEGIN CERTIFICATE-----")),
    sig("application/vnd.tcpdump.pcap", 70, |d| {
        d.starts_with(b"\xa1\xb2\xc3\xd4") || d.starts_with(b"\xd4\xc3\xb2\xa1")
    }),
    sig("application/vnd.tcpdump.pcap", 100, |d| {
        d.starts_with(b"\x0a\x0d\x0d\x0a")
            && d.get(8..12).is_some_and(|m| m == b"\x1a\x2b\x3c\x4d" || m == b"\x4d\x3c\x2b\x1a")
    }),
    // programming.sig
    sig("text/x-shellscript", 250, |d| {
        shebang(d, &[b"bash", b"tcsh", b"csh", b"zsh", b"fash", b"aesh", b"ksh", b"sh"])
    }),
    sig("text/x-perl", 60, |d| shebang(d, &[b"perl"])),
    sig("text/x-ruby", 60, |d| shebang(d, &[b"ruby"])),
    sig("text/x-python", 60, |d| shebang(d, &[b"python"])),
    sig("text/x-awk", 60, |d| shebang(d, &[b"gawk", b"nawk", b"awk"])),
    sig("text/x-tcl", 60, |d| shebang(d, &[b"wish", b"tcl"])),
    sig("text/x-lua", 49, |d| shebang(d, &[b"lua"])),
    sig("text/x-php", 60, |d| shebang(d, &[b"php"])),
    sig("text/x-php", 40, |d| find(d, b"<?php").is_some()),
    sig("application/javascript", 60, |d| shebang(d, &[b"node"])),
    sig("application/javascript", 60, is_script_tag_javascript),
    sig("application/javascript", 60, |d| skip_ws(d).starts_with(b"for (;;);")),
    sig("application/javascript", 60, is_document_write),
    sig("application/javascript", 60, |d| {
        d.strip_prefix(b"(function()")
            .is_some_and(|r| r.iter().find(|c| !matches!(c, b' ' | b'\t' | b'\n')) == Some(&b'{'))
    }),
    sig("application/javascript", 60, |d| {
        skip_ws(d)
            .strip_prefix(b"<script>")
            .map(skip_ws)
            .is_some_and(|r| r.starts_with(b"var ") || r.starts_with(b"function "))
    }),
    sig("text/x-msdos-batch", 110, |d| {
        let rest = d.strip_prefix(b"@").map(|r| &r[r.iter().take_while(|c| **c == b' ').count()..]);
        rest.is_some_and(|r| tag_is_spaced(r, b"echo", b"off"))
    }),
    sig("text/x-msdos-batch", 60, |d| d.strip_prefix(b"@").is_some_and(|r| ci(r, b"rem"))),
    sig("text/x-msdos-batch", 70, |d| d.strip_prefix(b"@").is_some_and(|r| ci(r, b"set "))),
    // image.sig
    sig("image/tiff", 70, |d| {
        d.starts_with(b"MM\x00\x2a")
            || d.starts_with(b"MM\x00\x2b")
            || d.starts_with(b"II\x2a\x00")
            || d.starts_with(b"II\x2b\x00")
    }),
    sig("image/gif", 70, |d| d.starts_with(b"GIF8")),
    sig("image/jpeg", 52, |d| d.starts_with(b"\xff\xd8")),
    sig("image/x-ms-bmp", 50, |d| {
        d.starts_with(b"BM")
            && d.get(14).is_some_and(|c| b"\x0c\x28\x40\x6c\x7c\x80".contains(c))
            && d.get(15) == Some(&0)
    }),
    sig("image/x-icon", 70, |d| d.starts_with(b"\x00\x00\x01\x00")),
    sig("image/x-cursor", 70, |d| d.starts_with(b"\x00\x00\x02\x00")),
    sig("image/vnd.adobe.photoshop", 70, |d| d.starts_with(b"8BPS")),
    sig("image/png", 110, |d| d.starts_with(b"\x89PNG")),
    sig("image/webp", 70, |d| d.starts_with(b"RIFF") && d.get(8..12) == Some(b"WEBP")),
    // archive.sig, java.sig
    sig("application/zip", 10, |d| d.len() >= 6 && d.starts_with(b"PK\x03\x04")),
    sig("application/zip", 10, |d| d.starts_with(b"PK\x07\x08PK\x03\x04")),
    sig("application/java-archive", 100, is_jar),
    sig("application/x-rar", 70, |d| d.starts_with(b"Rar!")),
    sig("application/x-gzip", 100, |d| d.starts_with(b"\x1f\x8b")),
    sig("application/vnd.ms-cab-compressed", 110, |d| d.starts_with(b"MSCF\x00\x00\x00\x00")),
    sig("application/x-xar", 100, |d| d.starts_with(b"xar!")),
    sig("application/x-rpm", 70, |d| d.starts_with(b"drpm") || d.starts_with(b"\xed\xab\xee\xdb")),
    sig("application/x-7z-compressed", 50, |d| d.starts_with(b"7z\xbc\xaf\x27\x1c")),
    sig("application/x-xz", 90, |d| d.starts_with(b"\xfd7zXZ\x00")),
    sig("application/x-bzip2", 60, |d| d.starts_with(b"BZh")),
    sig("application/x-lzma", 71, |d| d.starts_with(b"\x5d\x00\x00")),
    sig("application/x-compress", 50, |d| d.starts_with(b"\x1f\x9d")),
    sig("application/x-java-applet", 71, |d| {
        d.starts_with(b"\xca\xfe\xba\xbe") && d.get(7).is_some_and(|c| (0x2d..=0x34).contains(c))
    }),
    sig("application/x-java-jnlp-file", 100, |d| d.starts_with(b"<jnlp ")),
    // font.sig
    sig("application/font-woff2", 70, |d| d.starts_with(b"wOF2")),
    sig("application/font-woff", 70, |d| d.starts_with(b"wOFF")),
    sig("application/x-font-ttf", 80, |d| d.starts_with(b"\x00\x01\x00\x00\x00")),
    sig("application/vnd.ms-opentype", 70, |d| d.starts_with(b"OTTO")),
    sig("application/vnd.ms-fontobject", 50, |d| d.get(34..36) == Some(b"LP")),
    // executable.sig
    sig(crate::analyzers::pe::MIME_TYPE, 51, |d| d.starts_with(crate::analyzers::pe::DOS_SIGNATURE)),
    sig("application/x-object", 50, |d| elf_type(d) == Some(1)),
    sig("application/x-executable", 50, |d| elf_type(d) == Some(2)),
    sig("application/x-sharedlib", 50, |d| elf_type(d) == Some(3)),
    sig("application/x-coredump", 50, |d| elf_type(d) == Some(4)),
    sig("application/x-mach-o-executable", 100, |d| {
        d.starts_with(b"\xce\xfa\xed\xfe") || d.starts_with(b"\xcf\xfa\xed\xfe")
    }),
    sig("application/x-mach-o-executable", 100, |d| {
        d.starts_with(b"\xca\xfe\xba\xbe") && d.get(6) == Some(&0) && d.get(7).is_some_and(|c| (1..=0x14).contains(c))
    }),
    // libmagic.sig
    sig("application/pdf", 80, |d| d.starts_with(b"%PDF-")),
    // video.sig, audio.sig
    sig("video/x-flv", 60, |d| d.starts_with(b"FLV")),
    sig("video/mpeg", 50, |d| d.starts_with(b"\x00\x00\x01") && d.get(3).is_some_and(|c| (0xb0..=0xbb).contains(c))),
    sig("video/mpv", 71, |d| d.starts_with(b"\x00\x00\x01\xb3")),
    sig("video/h264", 41, |d| d.starts_with(b"\x00\x00\x00\x01") && d.get(4).is_some_and(|c| c & 0x1f == 7)),
    sig("video/webm", 70, |d| is_ebml_doc(d, b"webm")),
    sig("video/x-matroska", 110, |d| is_ebml_doc(d, b"matroska")),
    sig("video/quicktime", 70, |d| d.get(4..8).is_some_and(|b| b == b"mdat" || b == b"moov")),
    sig("video/mp4", 70, |d| ftyp_is(d, &[b"isom", b"mp41", b"mp42"])),
    sig("video/3gpp", 60, |d| ftyp_is(d, &[b"3ge", b"3gg", b"3gp", b"3gs", b"3g2", b"avc1", b"mmp4"])),
    sig("audio/m4a", 70, |d| ftyp_is(d, &[b"m4a"])),
    sig("audio/mpeg", 20, |d| {
        d.first() == Some(&0xff) && d.get(1).is_some_and(|c| b"\xe2\xe3\xf2\xf3\xf6\xf7\xfa\xfb\xfc\xfd".contains(c))
    }),
];

/// The strongest signature matching a file that starts with `bof` (the first in [`SIGNATURES`] among equals);
/// `None` when none does.
pub(crate) fn sniff_mime(bof: &[u8]) -> Option<&'static str> {
    by_strength().iter().find(|magic| (magic.matches)(bof)).map(|m| m.mime)
}

/// [`SIGNATURES`] strongest first (a stable sort keeps table order among equals): the first match is the answer, so
/// a strong match spares the weaker signatures' scans of the buffer.
fn by_strength() -> &'static [&'static Magic] {
    static SORTED: OnceLock<Vec<&'static Magic>> = OnceLock::new();
    SORTED.get_or_init(|| {
        let mut sorted: Vec<&Magic> = SIGNATURES.iter().collect();
        sorted.sort_by_key(|m| std::cmp::Reverse(m.strength));
        sorted
    })
}

/// `file-plaintext`: an optional byte-order mark, then ten printable ASCII or whitespace bytes.
fn is_plaintext(d: &[u8]) -> bool {
    let printable = |c: &u8| (0x20..=0x7e).contains(c) || matches!(c, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let ten_printable = |rest: &[u8]| rest.len() >= 10 && rest[..10].iter().all(printable);
    const BOMS: &[&[u8]] = &[b"", b"\xef\xbb\xbf", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xff\xfe\x00\x00"];
    BOMS.iter().any(|bom| d.strip_prefix(*bom).is_some_and(ten_printable))
}

/// The byte-order marks the text signatures allow (`(\xef\xbb\xbf|\xff\xfe|\xfe\xff)?`).
fn after_bom(d: &[u8]) -> &[u8] {
    [&b"\xef\xbb\xbf"[..], b"\xff\xfe", b"\xfe\xff"].iter().find_map(|bom| d.strip_prefix(*bom)).unwrap_or(d)
}

/// `[\x0d\x0a[:blank:]]*`.
fn skip_ws(d: &[u8]) -> &[u8] {
    &d[d.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')).count()..]
}

fn ci(d: &[u8], prefix: &[u8]) -> bool {
    d.len() >= prefix.len() && d[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `first {1,}second`, case-insensitively (the spaces are literal spaces).
fn tag_is_spaced(t: &[u8], first: &[u8], second: &[u8]) -> bool {
    if !ci(t, first) {
        return false;
    }
    let rest = &t[first.len()..];
    let spaces = rest.iter().take_while(|c| **c == b' ').count();
    spaces > 0 && ci(&rest[spaces..], second)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// `([\x0d\x0a[:blank:]]*(<!--.*-->)?[\x0d\x0a[:blank:]]*)*`: blanks and comments.
fn skip_ws_and_comments(mut d: &[u8]) -> &[u8] {
    loop {
        d = skip_ws(d);
        match d.strip_prefix(b"<!--").and_then(|c| find(c, b"-->").map(|end| &c[end + 3..])) {
            Some(rest) => d = rest,
            None => return d,
        }
    }
}

/// The prefix of the markup signatures: a BOM (when `bom`), blanks and comments, an optional `<?xml ...?>`
/// declaration and more blanks and comments; then `tag` decides on what follows the first `<`.
fn markup_tag(d: &[u8], bom: bool, tag: impl Fn(&[u8]) -> bool) -> bool {
    let mut rest = skip_ws_and_comments(if bom { after_bom(d) } else { d });
    if let Some(declaration) = rest.strip_prefix(b"<?xml ")
        && let Some(end) = find(declaration, b"?>")
    {
        let after = skip_ws_and_comments(&declaration[end + 2..]);
        if after.strip_prefix(b"<").is_some_and(&tag) {
            return true;
        }
        rest = after;
    }
    rest.strip_prefix(b"<").is_some_and(tag)
}

/// `file-xml`: `<?xml ` after blanks and comments, in UTF-8 or with NULs between the characters (UTF-16).
fn is_xml_declaration(d: &[u8]) -> bool {
    let mut rest = skip_ws_and_comments(after_bom(d));
    for &c in b"<?xml " {
        rest = rest.strip_prefix(b"\x00").unwrap_or(rest);
        match rest.split_first() {
            Some((first, tail)) if *first == c => rest = tail,
            _ => return false,
        }
    }
    true
}

fn is_atom_tag(t: &[u8]) -> bool {
    let in_tag = |name: &[u8], attr: &[u8]| {
        ci(t, name) && {
            let tag = &t[..t.iter().position(|c| *c == b'>').unwrap_or(t.len())];
            tag.windows(attr.len()).any(|w| w.eq_ignore_ascii_case(attr))
        }
    };
    in_tag(b"rss", b"xmlns:atom")
        || in_tag(b"feed", b"xmlns=\"http://www.w3.org/2005/Atom")
        || in_tag(b"feed", b"xmlns='http://www.w3.org/2005/Atom")
        || in_tag(b"feed", b"xmlns=http://www.w3.org/2005/Atom")
}

fn is_soap_envelope(t: &[u8]) -> bool {
    let rest = if ci(t, b"soap-env:") {
        &t[9..]
    } else if ci(t, b"soap:") {
        &t[5..]
    } else {
        return false;
    };
    ci(rest, b"envelope")
}

/// `"[^"]{1,}"`: a non-empty quoted string; the rest after it.
fn quoted(d: &[u8]) -> Option<&[u8]> {
    let inner = d.strip_prefix(b"\"")?;
    let end = inner.iter().position(|c| *c == b'"')?;
    (end > 0).then(|| &inner[end + 1..])
}

/// `file-json`: `{` then a quoted or bare key, `:` and the start of a value.
fn is_json_object(d: &[u8]) -> bool {
    let Some(rest) = skip_ws(after_bom(d)).strip_prefix(b"{") else { return false };
    let rest = skip_ws(rest);
    let after_key = match rest.first() {
        Some(b'"') => quoted(rest),
        Some(c) if c.is_ascii_alphabetic() => {
            Some(&rest[rest.iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'\\' | b'_')).count()..])
        }
        _ => None,
    };
    let Some(value) = after_key.and_then(|r| skip_ws(r).strip_prefix(b":")).map(skip_ws) else { return false };
    matches!(value.first(), Some(b'"' | b'[' | b'{' | b'0'..=b'9'))
        || value.starts_with(b"true")
        || value.starts_with(b"false")
}

/// `file-json2`: `[` then a first element followed by `,`, or a nested object or array.
fn is_json_array(d: &[u8]) -> bool {
    let Some(rest) = skip_ws(after_bom(d)).strip_prefix(b"[") else { return false };
    let rest = skip_ws(rest);
    if rest.starts_with(b"{") || rest.starts_with(b"[") {
        return true;
    }
    let after_element = if rest.starts_with(b"\"") {
        quoted(rest)
    } else if rest.starts_with(b"true") {
        Some(&rest[4..])
    } else if rest.starts_with(b"false") {
        Some(&rest[5..])
    } else {
        let int = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let frac = match rest[int..].strip_prefix(b".") {
            Some(f) if f.first().is_some_and(u8::is_ascii_digit) => {
                1 + f.iter().take_while(|c| c.is_ascii_digit()).count()
            }
            _ => 0,
        };
        (int > 0).then(|| &rest[int + frac..])
    };
    after_element.is_some_and(|r| skip_ws(r).starts_with(b","))
}

/// `file-json3`: `[]` or `{}` and nothing else but blanks.
fn is_empty_json(d: &[u8]) -> bool {
    let rest = skip_ws(after_bom(d));
    (rest.starts_with(b"[]") || rest.starts_with(b"{}")) && skip_ws(&rest[2..]).is_empty()
}

/// `file-ini`: a `[section]` line first.
fn is_ini(d: &[u8]) -> bool {
    let rest = after_bom(d);
    let rest = &rest[rest.iter().take_while(|c| matches!(c, b'\x00' | b' ' | b'\t' | b'\r' | b'\n')).count()..];
    let Some(line) = rest.strip_prefix(b"[") else { return false };
    let Some(eol) = line.iter().position(|c| matches!(c, b'\r' | b'\n')) else { return false };
    let line = &line[..eol];
    (1..line.len()).any(|k| line[k] == b']' && line[k + 1..].iter().all(|c| matches!(c, b' ' | b'\t' | b'\x00')))
}

/// `^#![^\n]{1,15}bin/(env[[:space:]]+)?name`: a script's interpreter line.
fn shebang(d: &[u8], names: &[&[u8]]) -> bool {
    let Some(line) = d.strip_prefix(b"#!") else { return false };
    (1..=15).take_while(|&at| line.get(at - 1).is_some_and(|c| *c != b'\n')).any(|at| {
        let Some(after) = line.get(at..).and_then(|r| r.strip_prefix(b"bin/")) else { return false };
        let env = after
            .strip_prefix(b"env")
            .map(|r| &r[r.iter().take_while(|c| c.is_ascii_whitespace() || **c == 0x0b).count()..]);
        let program = match env {
            Some(rest) if rest.len() < after.len() - 3 => rest,
            _ => after,
        };
        names.iter().any(|name| program.starts_with(name))
    })
}

/// `file-javascript2`: `<script type=javascript` (or `language=`, quoted or not, `text/` or not).
fn is_script_tag_javascript(d: &[u8]) -> bool {
    let Some(tag) = skip_ws(d).strip_prefix(b"<").filter(|t| ci(t, b"script")) else { return false };
    let rest = &tag[6..];
    let blanks = rest.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    if blanks == 0 {
        return false;
    }
    let rest = &rest[blanks..];
    let Some(value) = [&b"type="[..], b"language="].iter().find(|a| ci(rest, a)).map(|a| &rest[a.len()..]) else {
        return false;
    };
    let value = value.strip_prefix(b"'").or_else(|| value.strip_prefix(b"\"")).unwrap_or(value);
    let value = if ci(value, b"text/") { &value[5..] } else { value };
    ci(value, b"javascript")
}

/// `file-javascript4`: `document.write(`, `document.writeln(`; the pattern's `[:blank:]?` outside brackets is one
/// optional character of `:blank`.
fn is_document_write(d: &[u8]) -> bool {
    let Some(rest) = skip_ws(d).strip_prefix(b"document.write") else { return false };
    let rest = rest.strip_prefix(b"ln").unwrap_or(rest);
    rest.starts_with(b"(") || (rest.first().is_some_and(|c| b":blank".contains(c)) && rest.get(1) == Some(&b'('))
}

/// `^.{a,b}needle`.
fn found_at(d: &[u8], offsets: std::ops::RangeInclusive<usize>, needle: &[u8]) -> bool {
    offsets.into_iter().any(|at| d.get(at..at + needle.len()) == Some(needle))
}

/// `file-jar`: a zip whose first entry is the manifest.
fn is_jar(d: &[u8]) -> bool {
    const MANIFEST: &[u8] = b"META-INF/MANIFEST.MF";
    d.starts_with(b"PK\x03\x04")
        && (9..=208)
            .any(|at| d.get(at - 4..at - 2) == Some(b"\x14\x00") && d.get(at..at + MANIFEST.len()) == Some(MANIFEST))
}

/// The ELF `e_type` of the executable.sig patterns (1 object, 2 executable, 3 shared library, 4 core dump).
fn elf_type(d: &[u8]) -> Option<u8> {
    if !d.starts_with(b"\x7fELF") || !matches!(d.get(4), Some(1 | 2)) {
        return None;
    }
    match (d.get(5)?, d.get(16)?, d.get(17)?) {
        (1, t, 0) | (2, 0, t) if (1..=4).contains(t) => Some(*t),
        _ => None,
    }
}

/// `(\x1a\x45\xdf\xa3)(.*)(B\x82)(.{1})(doc_type)`: an EBML header naming its document type.
fn is_ebml_doc(d: &[u8], doc_type: &[u8]) -> bool {
    d.starts_with(b"\x1a\x45\xdf\xa3")
        && (4..d.len())
            .any(|at| d[at..].starts_with(b"B\x82") && d.get(at + 3..).is_some_and(|r| r.starts_with(doc_type)))
}

/// `^....ftyp(brand)`.
fn ftyp_is(d: &[u8], brands: &[&[u8]]) -> bool {
    d.get(4..8) == Some(b"ftyp") && brands.iter().any(|b| d.get(8..8 + b.len()) == Some(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_like_zeek_magic() {
        assert_eq!(sniff_mime(b"<html>\n  The Zeek Network Security Monitor\n</html>\n"), Some("text/html"));
        assert_eq!(sniff_mime(b"<!DOCTYPE html>\n<html lang=en>"), Some("text/html"));
        assert_eq!(sniff_mime(b"\r\n<!-- x --><!DOCTYPE HTML PUBLIC"), Some("text/html"));
        assert_eq!(sniff_mime(b"<?xml version=\"1.0\"?><html>"), Some("text/html"));
        assert_eq!(sniff_mime(b"<?xml version=\"1.0\"?><a/>"), Some("application/xml"));
        assert_eq!(sniff_mime(b"<?xml version=\"1.0\"?>\n<rss version=\"2.0\">"), Some("text/rss"));
        assert_eq!(sniff_mime(b"bad method\n"), Some("text/plain"));
        assert_eq!(sniff_mime(b"HTTP/1.0 400 Bad Request\r\n"), Some("text/plain"));
        assert_eq!(sniff_mime(b"GIF89a\x01\x00"), Some("image/gif"));
        assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\n"), Some("image/png"));
        assert_eq!(sniff_mime(b"MZ\x90\x00"), Some("application/x-dosexec"));
        assert_eq!(sniff_mime(b"MSCF\x00\x00\x00\x00\x12\x34"), Some("application/vnd.ms-cab-compressed"));
        assert_eq!(sniff_mime(b"\x00\x00\x00\x20ftypisom\x00\x00"), Some("video/mp4"));
        assert_eq!(sniff_mime(b"RIFF\x10\x00\x00\x00WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_mime(b"wOF2\x00\x01\x00\x00"), Some("application/font-woff2"));
        assert_eq!(sniff_mime(b"short"), None);
        assert_eq!(sniff_mime(b"\x00\x01\x02binary data"), None);
    }

    /// version-mismatch: a script served as `document.write(...)` is `application/javascript` in the baseline
    /// (the other script of the trace, with no such idiom at its start, is text/plain).
    #[test]
    fn scripts_by_their_first_line() {
        assert_eq!(sniff_mime(b"document.write('<a href=\"http://x/\">');\n"), Some("application/javascript"));
        assert_eq!(sniff_mime(b"\n\tdocument.writeln (x)"), Some("text/plain"));
        assert_eq!(sniff_mime(b"var azId = 1000000326207; function srad() {}"), Some("text/plain"));
        assert_eq!(sniff_mime(b"(function() {\n  var x = 1;\n})();"), Some("application/javascript"));
        assert_eq!(sniff_mime(b"<SCRIPT language=\"JavaScript\">var a;</SCRIPT>"), Some("application/javascript"));
        assert_eq!(sniff_mime(b"<script>\nvar a = 1;</script>"), Some("application/javascript"));
        assert_eq!(sniff_mime(b"for (;;);{\"payload\":1}"), Some("application/javascript"));
        assert_eq!(sniff_mime(b"#!/bin/sh\necho hi\n"), Some("text/x-shellscript"));
        assert_eq!(sniff_mime(b"#!/usr/bin/env python3\nprint()\n"), Some("text/x-python"));
        assert_eq!(sniff_mime(b"@echo off\r\nset x=1\r\n"), Some("text/x-msdos-batch"));
        assert_eq!(
            sniff_mime(b"<html><body><?php echo 1; ?>"),
            Some("text/html"),
            "the html tag (100) outranks <?php anywhere (40)"
        );
    }

    /// query-method-non-standard-port: the request and reply bodies are JSON (`orig_mime_types` and
    /// `resp_mime_types` `text/json` in the baseline), which outranks text/plain.
    #[test]
    fn json_outranks_plain_text() {
        assert_eq!(sniff_mime(b"{\"select\": \"name,email\", \"limit\": 10}"), Some("text/json"));
        assert_eq!(sniff_mime(b"\n  {\n  \"users\" : [ {\"id\": 1} ]}"), Some("text/json"));
        assert_eq!(sniff_mime(b"{key: true}"), Some("text/json"));
        assert_eq!(sniff_mime(b"[1.5, 2, 3]"), Some("text/json"));
        assert_eq!(sniff_mime(b"[{\"a\":1}]"), Some("text/json"));
        assert_eq!(sniff_mime(b"[\"one\" , \"two\"]"), Some("text/json"));
        assert_eq!(sniff_mime(b"{}"), Some("text/json"));
        assert_eq!(sniff_mime(b"[ ]  x"), None, "too short for text/plain, not an empty document");
        assert_eq!(sniff_mime(b"{not json at all}"), Some("text/plain"));
        assert_eq!(sniff_mime(b"[section]\nkey=value\n"), Some("text/ini"));
    }

    #[test]
    fn binary_signatures() {
        let ocsp = b"\x30\x45\x30\x43\x30\x41\x30\x3f\x30\x3d\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00";
        assert_eq!(sniff_mime(ocsp), Some("application/ocsp-request"));
        let elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00";
        assert_eq!(sniff_mime(elf), Some("application/x-executable"));
        let jar = [&b"PK\x03\x04\x14\x00\x08\x08\x08\x00\x00\x00\x21\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x14\x00\x04\x00"[..], b"META-INF/MANIFEST.MF"].concat();
        assert_eq!(sniff_mime(&jar), Some("application/java-archive"));
        assert_eq!(sniff_mime(b"PK\x03\x04\x14\x00\x00\x00"), Some("application/zip"));
        assert_eq!(sniff_mime(b"%PDF-1.4\n"), Some("application/pdf"));
    }

    #[test]
    fn sniffs_mail_parts_like_zeek() {
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
