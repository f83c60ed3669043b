//! Request and status lines, header fields and URI unescaping, parsed the way Zeek's HTTP analyzer does
//! (HTTP.cc, MIME.cc): more lenient than RFC 9112, and with the same weirds.

/// An HTTP version as Zeek tracks it; `(0, 0)` is Zeek's "unset" value.
pub(super) type Version = (u8, u8);

pub(super) const VERSION_UNSET: Version = (0, 0);
pub(super) const VERSION_09: Version = (0, 9);

/// A request line that Zeek accepted.
#[derive(Debug, PartialEq)]
pub(super) struct RequestLine {
    pub method: Vec<u8>,
    /// The URI with `%`-escapes decoded (what http.log shows).
    pub unescaped_uri: Vec<u8>,
    /// `None`: no `HTTP/` found, an HTTP/0.9 request. `Some(VERSION_UNSET)`: a malformed version.
    pub version: Option<Version>,
}

/// The outcome of parsing a request line: the request (if any) and the weirds raised on the way.
#[derive(Debug, PartialEq)]
pub(super) struct RequestParse {
    pub request: Option<RequestLine>,
    pub weirds: Vec<&'static str>,
}

fn is_http_token_char(c: u8) -> bool {
    c > 31 && c < 127 && !b" \t()<>@,;:\\\"/[]?={}".contains(&c)
}

fn is_uri_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b":/?#[]@!$&'()*+,;=-_.~%".contains(&c)
}

/// Zeek's `skip_whitespace`: spaces and tabs.
fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    &s[n..]
}

fn starts_with_http(s: &[u8], ignore_case: bool) -> bool {
    s.len() >= 5 && if ignore_case { s[..5].eq_ignore_ascii_case(b"HTTP/") } else { &s[..5] == b"HTTP/" }
}

/// Zeek's `HTTP_Version`: only `[0-9].[0-9]` is recognised.
pub(super) fn parse_version(s: &[u8]) -> Version {
    match s {
        [major @ b'0'..=b'9', b'.', minor @ b'0'..=b'9', ..] => (major - b'0', minor - b'0'),
        _ => VERSION_UNSET,
    }
}

pub(super) fn version_string(v: Version) -> String {
    format!("{}.{}", v.0, v.1)
}

/// `HTTP_Analyzer::HTTP_RequestLine` and `ParseRequest`.
pub(super) fn parse_request_line(line: &[u8]) -> RequestParse {
    let mut weirds = vec![];
    let method_len = line.iter().take_while(|&&c| is_http_token_char(c)).count();
    if method_len == 0 {
        let with_version = line.len() >= 9 && line[line.len() - 9..line.len() - 3].eq_ignore_ascii_case(b" HTTP/");
        weirds.push(if with_version { "bad_HTTP_request_with_version" } else { "bad_HTTP_request" });
        return RequestParse { request: None, weirds };
    }
    let after_method = &line[method_len..];
    let rest = skip_ws(after_method);
    if rest.len() == after_method.len() {
        weirds.push("bad_HTTP_request");
        return RequestParse { request: None, weirds };
    }

    let mut end_of_uri = rest.iter().take_while(|&&c| is_uri_char(c)).count();
    let mut keyword = starts_with_http(rest, false);
    if !keyword && starts_with_http(rest, true) {
        weirds.push("lowercase_HTTP_keyword");
        keyword = true;
    }
    if end_of_uri >= rest.len() && keyword {
        weirds.push("missing_HTTP_uri");
        end_of_uri = 0;
    }
    // Find "HTTP/" after the URI, skipping whitespace; the URI ends where that search last stood.
    let mut version_start = end_of_uri;
    while version_start < rest.len() {
        end_of_uri = version_start;
        version_start += rest.len() - version_start - skip_ws(&rest[version_start..]).len();
        let tail = &rest[version_start..];
        if starts_with_http(tail, false) {
            break;
        }
        if starts_with_http(tail, true) {
            weirds.push("lowercase_HTTP_keyword");
            break;
        }
        version_start += 1;
    }
    let version = if version_start >= rest.len() {
        None
    } else if version_start + 8 <= rest.len() {
        Some(parse_version(&rest[version_start + 5..]))
    } else {
        // Zeek raises only an http_event here and leaves the version unset.
        Some(VERSION_UNSET)
    };
    let uri = &rest[..end_of_uri.min(rest.len())];
    if version.is_none() && (method_len < 3 || uri.is_empty()) {
        weirds.push("bad_HTTP_request");
        return RequestParse { request: None, weirds };
    }
    let (unescaped_uri, uri_weirds) = unescape_uri(uri);
    weirds.extend(uri_weirds);
    RequestParse { request: Some(RequestLine { method: line[..method_len].to_vec(), unescaped_uri, version }), weirds }
}

/// A status line that Zeek accepted.
#[derive(Debug, PartialEq)]
pub(super) struct StatusLine {
    pub version: Version,
    /// 0 when the three characters are not digits.
    pub code: u32,
    /// `None` when the line has no reason phrase (Zeek then logs `<empty>`).
    pub reason: Option<Vec<u8>>,
}

/// `HTTP_Analyzer::HTTP_ReplyLine`. The flag says whether the keyword was lowercase (a weird).
pub(super) fn parse_status_line(line: &[u8]) -> (Option<StatusLine>, bool) {
    let lowercase = !starts_with_http(line, false) && starts_with_http(line, true);
    if !starts_with_http(line, true) {
        return (None, false);
    }
    let rest = &line[5..];
    let version = parse_version(rest);
    let Some(ws) = rest.iter().position(|&c| c == b' ' || c == b'\t') else {
        return (None, lowercase);
    };
    let code_start = skip_ws(&rest[ws..]);
    if code_start.len() < 3 {
        return (None, lowercase);
    }
    let code = match &code_start[..3] {
        [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            u32::from(a - b'0') * 100 + u32::from(b - b'0') * 10 + u32::from(c - b'0')
        }
        _ => 0,
    };
    let after_code = &code_start[3..];
    let reason = after_code.iter().position(|&c| c == b' ' || c == b'\t').map(|ws| skip_ws(&after_code[ws..]).to_vec());
    (Some(StatusLine { version, code, reason }), lowercase)
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Zeek's `unescape_URI`, including its `%uXXXX` handling and weirds.
pub(super) fn unescape_uri(uri: &[u8]) -> (Vec<u8>, Vec<&'static str>) {
    let mut out = Vec::with_capacity(uri.len());
    let mut weirds = vec![];
    let mut i = 0;
    while i < uri.len() {
        if uri[i] != b'%' {
            out.push(uri[i]);
            i += 1;
            continue;
        }
        let rest = &uri[i + 1..];
        match rest {
            [] => {
                out.push(b'%');
                weirds.push("illegal_%_at_end_of_URI");
                break;
            }
            [c] => {
                out.extend([b'%', *c]);
                weirds.push("partial_escape_at_end_of_URI");
                break;
            }
            [b'%', ..] => {
                // The first '%' is dropped; the second starts a new escape.
                weirds.push("double_%_in_URI");
                i += 1;
            }
            [a, b, ..] if hex_value(*a).is_some() && hex_value(*b).is_some() => {
                out.push(hex_value(*a).unwrap_or(0) << 4 | hex_value(*b).unwrap_or(0));
                i += 3;
            }
            [b'u', a, b, c, d, ..] if [a, b, c, d].iter().all(|x| hex_value(**x).is_some()) => {
                let byte = |h: u8, l: u8| hex_value(h).unwrap_or(0) << 4 | hex_value(l).unwrap_or(0);
                if !(*a == b'0' && *b == b'0') {
                    out.push(byte(*a, *b));
                }
                out.push(byte(*c, *d));
                i += 6;
            }
            [c, ..] => {
                weirds.push("unescaped_%_in_URI");
                out.extend([b'%', *c]);
                i += 2;
            }
        }
    }
    (out, weirds)
}

/// One header field (`MIME_Header`): the name and the value with leading whitespace removed, both within the
/// (unfolded) line, which the header keeps.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Header {
    line: Vec<u8>,
    name: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
    /// How many physical lines made it up (more than one is obsolete line folding).
    pub lines: usize,
}

impl Header {
    pub fn name(&self) -> &[u8] {
        &self.line[self.name.clone()]
    }

    pub fn value(&self) -> &[u8] {
        &self.line[self.value.clone()]
    }
}

fn is_field_name_char(c: u8) -> bool {
    (33..=126).contains(&c) && c != b':'
}

/// Parses a (possibly folded, already concatenated) header line; `None` for a malformed one.
pub(super) fn parse_header(line: Vec<u8>, lines: usize) -> Option<Header> {
    let start = line.iter().position(|&c| c != b' ' && c != b'\t')?;
    let name_len = line[start..].iter().take_while(|&&c| is_field_name_char(c)).count();
    if name_len == 0 {
        return None;
    }
    let after_name = skip_ws(&line[start + name_len..]);
    let value = after_name.strip_prefix(b":")?;
    let leading = value.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let value_start = line.len() - value.len() + leading;
    Some(Header { name: start..start + name_len, value: value_start..line.len(), line, lines })
}

fn is_tspecial(c: u8) -> bool {
    matches!(c, b'(' | b')' | b'<' | b'>' | b'@' | b',' | b';' | b':' | b'\\' | b'"' | b'/' | b'[' | b']' | b'?' | b'=')
}

/// The first MIME token of a header value (`get_value_token`).
pub(super) fn value_token(value: &[u8]) -> &[u8] {
    let v = skip_ws(value);
    let n = v.iter().take_while(|&&c| (33..=126).contains(&c) && !is_tspecial(c)).count();
    &v[..n]
}

/// What follows the first token (`get_value_after_token`), leading whitespace removed.
pub(super) fn value_after_token(value: &[u8]) -> &[u8] {
    let v = skip_ws(value);
    skip_ws(&v[value_token(v).len()..])
}

/// Zeek's `util::atoi_n`: an optional sign, then digits up to the first non-digit; the first character
/// must be a digit. An empty input reads as 0. A number beyond 64 bits fails (9.1: a chunk size of 2^64 is
/// `HTTP_bad_chunk_size`, a `Content-Length` of 2^64-1 `HTTP_bad_content_length`).
pub(super) fn atoi_n(s: &[u8], base: u32) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for (i, &c) in digits.iter().enumerate() {
        match (c as char).to_digit(base) {
            Some(d) => n = n.checked_mul(i64::from(base))?.checked_add(i64::from(d))?,
            None if i > 0 => break,
            None => return None,
        }
    }
    Some(if neg { -n } else { n })
}

/// A valid `Content-Range` of a 206 reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ContentRange {
    /// The part's offset in the file.
    pub first: i64,
    /// `last - first + 1`.
    pub length: i64,
    /// The whole file's length; 0 when unknown (`*`, or unparsable: a weird).
    pub instance_length: i64,
}

/// Why a `Content-Range` was not used: the weird and its addl.
#[derive(Debug, PartialEq)]
pub(super) struct RangeError {
    pub weird: &'static str,
    pub addl: Option<Vec<u8>>,
}

/// `HTTP_Entity::SubmitHeader` for `Content-Range: bytes first-last/instance` (spaces ignored), with Zeek's
/// weirds. An unparsable instance length is a weird but keeps the range.
pub(super) fn content_range(value: &[u8]) -> Result<ContentRange, (RangeError, Option<ContentRange>)> {
    let fail = |weird: &'static str, addl: Option<&[u8]>| (RangeError { weird, addl: addl.map(<[u8]>::to_vec) }, None);
    if value_token(value) != b"bytes" {
        return Err(fail("HTTP_content_range_unknown_byte_unit", None));
    }
    let range: Vec<u8> = value_after_token(value).iter().copied().filter(|c| *c != b' ').collect();
    let Some(slash) = range.iter().position(|c| *c == b'/') else {
        return Err(fail("HTTP_content_range_cannot_parse", None));
    };
    let (spec, instance) = (&range[..slash], &range[slash + 1..]);
    let Some(dash) = spec.iter().position(|c| *c == b'-') else {
        return Err(fail("HTTP_content_range_cannot_parse", None));
    };
    let (Some(first), Some(last)) = (atoi_n(&spec[..dash], 10), atoi_n(&spec[dash + 1..], 10)) else {
        return Err(fail("HTTP_content_range_cannot_parse", Some(&range)));
    };
    if first < 0 || last < 0 {
        return Err(fail("HTTP_content_range_invalid", Some(&range)));
    }
    if last < first {
        return Err(fail("HTTP_non_positive_content_range", Some(&range)));
    }
    if last - first > i64::MAX - 1 {
        return Err(fail("HTTP_content_range_overflow", Some(&range)));
    }
    let length = last - first + 1;
    if instance == b"*" {
        return Ok(ContentRange { first, length, instance_length: 0 });
    }
    match atoi_n(instance, 10) {
        Some(instance_length) => Ok(ContentRange { first, length, instance_length }),
        None => {
            let kept = ContentRange { first, length, instance_length: 0 };
            Err((fail("HTTP_content_range_invalid_instance", Some(&range)).0, Some(kept)))
        }
    }
}

/// A `type/subtype; boundary=...` content type, as far as the multipart parser needs it.
pub(super) fn multipart_boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let v = skip_ws(content_type);
    let slash = v.iter().position(|&c| c == b'/')?;
    if !v[..slash].trim_ascii().eq_ignore_ascii_case(b"multipart") {
        return None;
    }
    let params = &v[slash..];
    let mut rest = params;
    while let Some(semi) = rest.iter().position(|&c| c == b';') {
        rest = skip_ws(&rest[semi + 1..]);
        let Some(eq) = rest.iter().position(|&c| c == b'=') else { break };
        if rest[..eq].trim_ascii().eq_ignore_ascii_case(b"boundary") {
            let raw = skip_ws(&rest[eq + 1..]);
            let value = match raw.strip_prefix(b"\"") {
                Some(quoted) => &quoted[..quoted.iter().position(|&c| c == b'"').unwrap_or(quoted.len())],
                None => &raw[..raw.iter().position(|&c| c == b';' || c.is_ascii_whitespace()).unwrap_or(raw.len())],
            };
            return (!value.is_empty()).then(|| value.to_vec());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(line: &[u8]) -> RequestParse {
        parse_request_line(line)
    }

    #[test]
    fn request_lines_as_in_methods_pcap() {
        let ok = request(b"OPTIONS * HTTP/1.1");
        assert_eq!(ok.request.as_ref().map(|r| r.unescaped_uri.clone()), Some(b"*".to_vec()));
        assert_eq!(ok.request.unwrap().version, Some((1, 1)));

        let no_uri = request(b"OPTIONS HTTP/1.1");
        assert_eq!(no_uri.weirds, vec!["missing_HTTP_uri"]);
        assert_eq!(no_uri.request.unwrap().unescaped_uri, b"");

        assert_eq!(request(b"OPTIONSHTTP/1.1").weirds, vec!["bad_HTTP_request"]);
        assert_eq!(request(b"OPTIONS").weirds, vec!["bad_HTTP_request"]);
        assert_eq!(request(b"GET/ HTTP/1.1").weirds, vec!["bad_HTTP_request"]);
        assert_eq!(request("ÃÂÃ/ HTTP/1.1".as_bytes()).weirds, vec!["bad_HTTP_request_with_version"]);
        assert_eq!(request("ÃÂÃ / HTTP/1.".as_bytes()).weirds, vec!["bad_HTTP_request"]);

        let v09 = request(b"CCM_POST /HTTP/1.1").request.unwrap();
        assert_eq!(
            (v09.method.as_slice(), v09.unescaped_uri.as_slice(), v09.version),
            (&b"CCM_POST"[..], &b"/HTTP/1.1"[..], None)
        );
        let bad_version = request(b"GET / HTTP/1.").request.unwrap();
        assert_eq!((bad_version.unescaped_uri.as_slice(), bad_version.version), (&b"/"[..], Some(VERSION_UNSET)));
    }

    #[test]
    fn http09_needs_three_char_method_and_uri() {
        assert_eq!(request(b"GET /zeek.html").request.unwrap().version, None);
        assert_eq!(request(b"GET ").weirds, vec!["bad_HTTP_request"]);
        assert_eq!(request(b"T /zeek.html").weirds, vec!["bad_HTTP_request"]);
    }

    #[test]
    fn uri_unescaping() {
        assert_eq!(unescape_uri(b"/s?q=Wireshark+%21&x").0, b"/s?q=Wireshark+!&x");
        assert_eq!(unescape_uri(b"/%u0041%%41").0, b"/AA");
        assert_eq!(unescape_uri(b"/%zz%").1, vec!["unescaped_%_in_URI", "illegal_%_at_end_of_URI"]);
    }

    #[test]
    fn status_lines() {
        let (s, _) = parse_status_line(b"HTTP/1.1 204");
        assert_eq!(s, Some(StatusLine { version: (1, 1), code: 204, reason: None }));
        let (s, _) = parse_status_line(b"HTTP/1.0 400 Bad Request");
        assert_eq!(s.unwrap().reason, Some(b"Bad Request".to_vec()));
        assert_eq!(parse_status_line(b"bad method").0, None);
    }

    #[test]
    fn headers_and_tokens() {
        let h = parse_header(b"  Content-Length:        946".to_vec(), 1).unwrap();
        assert_eq!((h.name(), h.value()), (&b"Content-Length"[..], &b"946"[..]));
        assert_eq!(parse_header(b"no colon here".to_vec(), 1), None);
        assert_eq!(parse_header(b"X-Empty:".to_vec(), 1).map(|h| h.value().to_vec()), Some(vec![]));
        assert_eq!(value_token(b"chunked, gzip"), b"chunked");
        assert_eq!(atoi_n(b"f67", 16), Some(0xf67));
        assert_eq!(atoi_n(b"", 16), Some(0));
        assert_eq!(atoi_n(b"x1", 10), None);
        assert_eq!(atoi_n(b"9223372036854775807", 10), Some(i64::MAX));
        assert_eq!(atoi_n(b"18446744073709551615", 10), None, "261/cl-uint64max");
        assert_eq!(atoi_n(b"10000000000000000", 16), None, "261/chunk-2pow64-overflow");
        assert_eq!(
            multipart_boundary(b"multipart/form-data; boundary=----WebKitFormBoundaryBtaeRs4vBuzQzpSa"),
            Some(b"----WebKitFormBoundaryBtaeRs4vBuzQzpSa".to_vec())
        );
    }
}
