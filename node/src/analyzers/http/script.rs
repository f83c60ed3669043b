//! The script layer: what Zeek's base/protocols/http/main.zeek and entities.zeek do with the analyzer's
//! events. Request/response pairing (pipelining, `trans_depth`), header fields, and when http.log is
//! written are reproduced here, including the pending-table corner cases.

use crate::logs::conn_fields;
use crate::logs::{Schema, Value, bytes_to_log_string, f};

pub static HTTP: Schema = Schema {
    path: "http",
    fields: conn_fields![
        f("trans_depth", "count"),
        f("method", "string"),
        f("host", "string"),
        f("uri", "string"),
        f("referrer", "string"),
        f("version", "string"),
        f("user_agent", "string"),
        f("origin", "string"),
        f("request_body_len", "count"),
        f("response_body_len", "count"),
        f("status_code", "count"),
        f("status_msg", "string"),
        f("info_code", "count"),
        f("info_msg", "string"),
        f("tags", "set[enum]"),
        f("username", "string"),
        f("password", "string"),
        f("proxied", "set[string]"),
        f("orig_fuids", "vector[string]"),
        f("orig_filenames", "vector[string]"),
        f("orig_mime_types", "vector[string]"),
        f("resp_fuids", "vector[string]"),
        f("resp_filenames", "vector[string]"),
        f("resp_mime_types", "vector[string]"),
    ],
};

/// `HTTP::http_methods`: other methods raise `unknown_HTTP_method`.
const KNOWN_METHODS: &[&str] = &[
    "GET",
    "POST",
    "HEAD",
    "OPTIONS",
    "PUT",
    "DELETE",
    "TRACE",
    "CONNECT",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "POLL",
    "REPORT",
    "SUBSCRIBE",
    "BMOVE",
    "SEARCH",
    // RFC 10008 (Zeek 9.1).
    "QUERY",
];

/// `HTTP::proxy_headers`.
const PROXY_HEADERS: &[&str] =
    &["FORWARDED", "X-FORWARDED-FOR", "X-FORWARDED-FROM", "CLIENT-IP", "VIA", "XROXY-CONNECTION", "PROXY-CONNECTION"];

/// `HTTP::max_files_orig` / `max_files_resp`.
const MAX_FILES: usize = 15;

/// `HTTP::max_pending_requests`.
const MAX_PENDING: usize = 100;

/// `HTTP::Info` (plus the entity state entities.zeek keeps in it).
#[derive(Debug, Default, Clone)]
struct Info {
    ts: f64,
    trans_depth: u64,
    method: Option<String>,
    host: Option<String>,
    uri: Option<String>,
    referrer: Option<String>,
    version: Option<String>,
    user_agent: Option<String>,
    origin: Option<String>,
    request_body_len: u64,
    response_body_len: u64,
    status_code: Option<u64>,
    status_msg: Option<String>,
    info_code: Option<u64>,
    info_msg: Option<String>,
    username: Option<String>,
    proxied: Option<Vec<String>>,
    /// The request had a `Range` header (main.zeek's `range_request`).
    range_request: bool,
    /// `tags`: what policy scripts added (`HTTP::URI_SQLI`), in order, each once.
    tags: Vec<&'static str>,
    orig: FileLists,
    resp: FileLists,
    /// `current_entity$filename`: `None` = no current entity, `Some(None)` = entity without a filename.
    current_entity: Option<Option<String>>,
}

#[derive(Debug, Default, Clone)]
struct FileLists {
    fuids: Option<Vec<String>>,
    filenames: Option<Vec<String>>,
    mime_types: Option<Vec<String>>,
}

fn opt_vec(v: Option<Vec<String>>) -> Value {
    v.map_or(Value::Unset, Value::str_vec)
}

fn push(list: &mut Option<Vec<String>>, item: String) {
    list.get_or_insert_with(Vec::new).push(item);
}

impl Info {
    fn into_values(self, conn_columns: Vec<Value>) -> Vec<Value> {
        let mut v = conn_columns;
        v.extend([
            Value::Count(self.trans_depth),
            Value::opt_str(self.method),
            Value::opt_str(self.host),
            Value::opt_str(self.uri),
            Value::opt_str(self.referrer),
            Value::opt_str(self.version),
            Value::opt_str(self.user_agent),
            Value::opt_str(self.origin),
            Value::Count(self.request_body_len),
            Value::Count(self.response_body_len),
            Value::opt_count(self.status_code),
            Value::opt_str(self.status_msg),
            Value::opt_count(self.info_code),
            Value::opt_str(self.info_msg),
            Value::Set(self.tags.into_iter().map(Value::Enum).collect()),
            Value::opt_str(self.username),
            Value::Unset,
            self.proxied.map_or(Value::Unset, Value::str_set),
            opt_vec(self.orig.fuids),
            opt_vec(self.orig.filenames),
            opt_vec(self.orig.mime_types),
            opt_vec(self.resp.fuids),
            opt_vec(self.resp.filenames),
            opt_vec(self.resp.mime_types),
        ]);
        v
    }

    fn files_mut(&mut self, is_orig: bool) -> &mut FileLists {
        if is_orig { &mut self.orig } else { &mut self.resp }
    }
}

/// A finished record to write: its `ts` and values after the connection columns.
pub(super) struct Record {
    pub ts: f64,
    values: Info,
}

impl Record {
    pub(super) fn into_values(self, conn_columns: Vec<Value>) -> Vec<Value> {
        self.values.into_values(conn_columns)
    }
}

/// Zeek's `pending` table of an HTTP state: a handful of records keyed by request number, kept sorted in a
/// small vector (a B-tree would allocate a whole node per connection).
#[derive(Debug, Default)]
struct Pending(Vec<(u64, Info)>);

impl Pending {
    fn position(&self, key: u64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&key, |(k, _)| *k)
    }
    fn contains_key(&self, key: &u64) -> bool {
        self.position(*key).is_ok()
    }
    fn insert(&mut self, key: u64, info: Info) {
        match self.position(key) {
            Ok(i) => self.0[i].1 = info,
            Err(i) => {
                // Usually one request is pending at a time: one slot, not the four a first push reserves.
                self.0.reserve_exact(1);
                self.0.insert(i, (key, info))
            }
        }
    }
    fn get(&self, key: &u64) -> Option<&Info> {
        self.position(*key).ok().map(|i| &self.0[i].1)
    }
    fn get_mut(&mut self, key: &u64) -> Option<&mut Info> {
        self.position(*key).ok().map(|i| &mut self.0[i].1)
    }
    fn remove(&mut self, key: &u64) -> Option<Info> {
        let info = self.position(*key).ok().map(|i| self.0.remove(i).1);
        if self.0.is_empty() {
            // A keep-alive connection idles between requests (often for minutes): without a record pending it
            // keeps no slot.
            self.0 = Vec::new();
        }
        info
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn into_iter(self) -> impl Iterator<Item = (u64, Info)> {
        self.0.into_iter()
    }
}

/// `HTTP::State` plus `c$http` (the record the last handler selected).
#[derive(Debug, Default)]
pub(super) struct Script {
    pending: Pending,
    current_request: u64,
    current_response: u64,
    trans_depth: u64,
    /// Key of `c$http` in `pending`; a record already logged is gone and later changes are lost, as in Zeek.
    current: Option<u64>,
}

/// What a handler asks the caller to do besides updating state.
#[derive(Default)]
pub(super) struct Effects {
    pub records: Vec<Record>,
    pub weirds: Vec<super::ScriptWeird>,
}

impl Script {
    fn new_session(&mut self, ts: f64) -> Info {
        self.trans_depth += 1;
        Info { ts, trans_depth: self.trans_depth, ..Default::default() }
    }

    /// `set_state`: selects (creating if needed) the record of the current request or response.
    fn set_state(&mut self, ts: f64, is_orig: bool) -> Option<&mut Info> {
        let key = if is_orig { self.current_request } else { self.current_response };
        if !self.pending.contains_key(&key) {
            let info = self.new_session(ts);
            self.pending.insert(key, info);
        }
        self.current = Some(key);
        self.pending.get_mut(&key)
    }

    fn current_mut(&mut self) -> Option<&mut Info> {
        self.current.and_then(|k| self.pending.get_mut(&k))
    }

    /// `event http_request`.
    pub(super) fn request(&mut self, ts: f64, method: &[u8], uri: &[u8], fx: &mut Effects) {
        if self.current_request < self.current_response {
            fx.weirds.push(("HTTP_response_before_request", None));
            self.current_request = self.current_response;
        }
        if self.pending.len() > MAX_PENDING {
            fx.weirds.push(("HTTP_excessive_pipelining", None));
            if self.current_response == 0 {
                self.current_response += 1;
            }
            while self.current_response < self.current_request {
                if let Some(info) = self.pending.remove(&self.current_response) {
                    fx.records.push(Record { ts: info.ts, values: info });
                }
                self.current_response += 1;
            }
        }
        self.current_request += 1;
        let method = bytes_to_log_string(method);
        if let Some(info) = self.set_state(ts, true) {
            info.method = Some(method.clone());
            info.uri = Some(bytes_to_log_string(uri));
        }
        if !KNOWN_METHODS.contains(&method.as_str()) {
            fx.weirds.push(("unknown_HTTP_method", Some(method)));
        }
    }

    /// `add c$http$tags[tag]` in a policy script's `http_request` handler: the request just seen gets `tag`.
    pub(super) fn tag_request(&mut self, tag: &'static str) {
        if let Some(info) = self.current_mut()
            && !info.tags.contains(&tag)
        {
            info.tags.push(tag);
        }
    }

    /// `event http_reply`.
    pub(super) fn reply(&mut self, ts: f64, version: &str, code: u32, reason: &str) {
        let informational = |c: Option<u64>| c.is_some_and(|c| (100..=199).contains(&c));
        let advance = match self.pending.get(&self.current_response) {
            None => true,
            Some(info) => info.status_code.is_some() && !informational(info.status_code),
        };
        if advance {
            self.current_response += 1;
        }
        if let Some(info) = self.set_state(ts, false) {
            info.status_code = Some(u64::from(code));
            info.status_msg = Some(reason.to_string());
            info.version = Some(version.to_string());
            if (100..=199).contains(&code) {
                info.info_code = Some(u64::from(code));
                info.info_msg = Some(reason.to_string());
            }
        }
    }

    /// `c$http`'s host, URI and user agent (of the request the last handler selected).
    pub(super) fn current_request(&self) -> (Option<String>, Option<String>, Option<String>) {
        match self.current.and_then(|k| self.pending.get(&k)) {
            Some(info) => (info.host.clone(), info.uri.clone(), info.user_agent.clone()),
            None => (None, None, None),
        }
    }

    /// `c$http$method`: the method of the request the last handler selected.
    pub(super) fn current_method(&self) -> Option<&str> {
        self.current.and_then(|k| self.pending.get(&k)).and_then(|info| info.method.as_deref())
    }

    /// `event http_begin_entity`.
    pub(super) fn begin_entity(&mut self, ts: f64, is_orig: bool) {
        if let Some(info) = self.set_state(ts, is_orig) {
            info.current_entity = Some(None);
        }
    }

    /// `event http_end_entity`.
    pub(super) fn end_entity(&mut self) {
        if let Some(info) = self.current_mut() {
            info.current_entity = None;
        }
    }

    /// `event http_header` (main.zeek and entities.zeek). False when the record has no current entity (the
    /// other direction's entity ended it): entities.zeek's `missing_HTTP_entity` weird.
    pub(super) fn header(&mut self, ts: f64, is_orig: bool, name: &[u8], value: &[u8], fx: &mut Effects) -> bool {
        let Some(info) = self.set_state(ts, is_orig) else { return true };
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        if is_orig {
            let field = if is("REFERER") {
                Some(&mut info.referrer)
            } else if is("HOST") {
                Some(&mut info.host)
            } else if is("ORIGIN") {
                Some(&mut info.origin)
            } else if is("RANGE") {
                info.range_request = true;
                None
            } else if is("USER-AGENT") {
                Some(&mut info.user_agent)
            } else {
                None
            };
            if let Some(field) = field {
                *field = Some(bytes_to_log_string(value));
            } else if let Some(proxy) = PROXY_HEADERS.iter().find(|p| is(p)) {
                let entry = format!("{proxy} -> {}", bytes_to_log_string(value));
                let set = info.proxied.get_or_insert_with(Vec::new);
                if !set.contains(&entry) {
                    set.push(entry);
                }
            } else if (is("AUTHORIZATION") || is("PROXY-AUTHORIZATION"))
                && let Some((user, problems)) = basic_auth_user(value)
            {
                info.username = Some(user);
                fx.weirds.extend(problems.into_iter().map(|p| ("base64_illegal_encoding", Some(p))));
            }
        }
        let Some(entity) = info.current_entity.as_mut() else { return false };
        let names_file = (is("CONTENT-DISPOSITION") && has_param(value, b"filename", true))
            || (is("CONTENT-TYPE") && has_param(value, b"name", false));
        if names_file {
            *entity = Some(filename_from_disposition(value));
        }
        true
    }

    /// `event file_over_new_connection` for an HTTP file: records its fuid (and filename).
    /// Returns the key of the record the file belongs to (`f$http`) and the filename.
    pub(super) fn file_started(&mut self, is_orig: bool, fuid: &str) -> (Option<u64>, Option<String>) {
        let key = self.current;
        let Some(info) = self.current_mut() else { return (None, None) };
        let filename = info.current_entity.clone().flatten();
        let lists = info.files_mut(is_orig);
        if lists.fuids.as_ref().is_some_and(|v| v.len() >= MAX_FILES) {
            return (key, filename);
        }
        push(&mut lists.fuids, fuid.to_string());
        if let Some(name) = &filename {
            push(&mut lists.filenames, name.clone());
        }
        (key, filename)
    }

    /// The URL of `c$http` when it is a range request: what names its reply's file (files.zeek's
    /// `get_file_handle`, `build_url`).
    pub(super) fn range_request_url(&self) -> Option<String> {
        let info = self.current.and_then(|k| self.pending.get(&k))?;
        info.range_request.then(|| {
            format!(
                "{}{}",
                info.host.as_deref().unwrap_or_default(),
                info.uri.as_deref().unwrap_or("/<missed_request>")
            )
        })
    }

    /// `event file_sniff`: adds the mime type to the record the file belongs to.
    pub(super) fn file_sniffed(&mut self, key: Option<u64>, is_orig: bool, mime: &str) {
        let Some(info) = key.and_then(|k| self.pending.get_mut(&k)) else { return };
        let lists = info.files_mut(is_orig);
        if lists.mime_types.as_ref().is_none_or(|v| v.len() < MAX_FILES) {
            push(&mut lists.mime_types, mime.to_string());
        }
    }

    /// `event http_message_done` (priorities 5 and -5): body length, and the log write after a reply.
    pub(super) fn message_done(&mut self, ts: f64, is_orig: bool, body_length: u64) -> Option<Record> {
        let info = self.set_state(ts, is_orig)?;
        if is_orig {
            info.request_body_len = body_length;
            return None;
        }
        info.response_body_len = body_length;
        if info.status_code.is_some_and(|c| (100..=199).contains(&c)) {
            return None;
        }
        let info = self.pending.remove(&self.current_response)?;
        Some(Record { ts: info.ts, values: info })
    }

    /// `hook finalize_http`: every pending record except index 0.
    pub(super) fn finalize(&mut self) -> Vec<Record> {
        let pending = std::mem::take(&mut self.pending);
        pending.into_iter().filter(|(k, _)| *k != 0).map(|(_, info)| Record { ts: info.ts, values: info }).collect()
    }
}

/// entities.zeek's `/param[[:blank:]]*\*?=/` (`extended`: the RFC 2231 `*` is allowed, as for `filename`).
fn has_param(value: &[u8], param: &[u8], extended: bool) -> bool {
    let lower = value.to_ascii_lowercase();
    lower.windows(param.len()).enumerate().any(|(i, w)| {
        w == param && {
            let rest = &lower[i + param.len()..];
            let rest = &rest[rest.iter().take_while(|c| **c == b' ' || **c == b'\t').count()..];
            rest.starts_with(b"=") || (extended && rest.starts_with(b"*="))
        }
    })
}

/// `extract_filename_from_content_disposition` (base/utils/files.zeek).
fn filename_from_disposition(value: &[u8]) -> String {
    let lower = value.to_ascii_lowercase();
    // The regex `^.*name[[:blank:]]*\*?=[[:blank:]]*` is greedy: the last such "name=" wins.
    let mut start = 0;
    for (i, _) in lower.windows(4).enumerate().filter(|(_, w)| *w == b"name") {
        let mut j = i + 4;
        while lower.get(j).is_some_and(|c| *c == b' ' || *c == b'\t') {
            j += 1;
        }
        if lower.get(j) == Some(&b'*') {
            j += 1;
        }
        if lower.get(j) == Some(&b'=') {
            j += 1;
            while lower.get(j).is_some_and(|c| *c == b' ' || *c == b'\t') {
                j += 1;
            }
            start = j;
        }
    }
    let mut name = &value[start.min(value.len())..];
    if let Some(quoted) = name.strip_prefix(b"\"") {
        name = &quoted[..quoted.iter().position(|&c| c == b'"').unwrap_or(quoted.len())];
    }
    // RFC 2231 `charset'language'` prefix.
    let charset_char = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&+-^_`{}~".contains(c);
    let cs = name.iter().take_while(|c| charset_char(c)).count();
    if cs > 0 && name.get(cs) == Some(&b'\'') {
        let lang = name[cs + 1..].iter().take_while(|c| charset_char(c)).count();
        if name.get(cs + 1 + lang) == Some(&b'\'') {
            name = &name[cs + 2 + lang..];
        }
    }
    bytes_to_log_string(&super::parse::unescape_uri(name).0)
}

/// The user of a `Basic` Authorization header, as main.zeek derives it, and what `decode_base64_conn` reports
/// about the encoding (`base64_illegal_encoding` weirds).
fn basic_auth_user(value: &[u8]) -> Option<(String, Vec<String>)> {
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = value[5..].trim_ascii_start();
    let decoded = decode_base64(encoded);
    let user = match decoded.iter().position(|&c| c == b':') {
        Some(colon) => bytes_to_log_string(&decoded[..colon]),
        None => format!("<problem-decoding> ({})", bytes_to_log_string(value)),
    };
    Some((user, base64_problems(encoded)))
}

/// Zeek's `Base64Converter` complaints: the first character outside the alphabet (printed as a C `char`), and a
/// last group short of four characters (`=` counts as one).
fn base64_problems(encoded: &[u8]) -> Vec<String> {
    let in_alphabet = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=');
    let mut problems = Vec::new();
    if let Some(&bad) = encoded.iter().find(|c| !in_alphabet(c)) {
        problems.push(format!("character {} ignored by Base64 decoding", bad as i8));
    }
    let partial = encoded.iter().filter(|c| in_alphabet(c)).count() % 4;
    if partial != 0 {
        problems.push(format!("incomplete base64 group, padding with {} bits of 0", (4 - partial) * 6));
    }
    problems
}

/// A lenient base64 decoder: skips characters outside the alphabet, stops at padding.
pub(crate) fn decode_base64(input: &[u8]) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in input.iter().take_while(|&&c| c != b'=') {
        let Some(v) = sextet(c) else { continue };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_from_content_disposition() {
        assert_eq!(filename_from_disposition(b"form-data; name=\"file1\"; filename=\"test.txt\""), "test.txt");
        assert_eq!(filename_from_disposition(b"attachment; filename*=UTF-8''a%20b.txt"), "a b.txt");
        assert!(has_param(b"form-data; name=\"x\"; filename=\"y\"", b"filename", true));
        assert!(!has_param(b"form-data; name=\"x\"", b"filename", true));
        assert!(has_param(b"attachment; filename*=UTF-8''a", b"filename", true));
        // entities.zeek's pattern for Content-Type has no `*`.
        assert!(!has_param(b"text/plain; name*=UTF-8''a", b"name", false));
    }

    #[test]
    fn basic_auth() {
        let user = |v: &[u8]| basic_auth_user(v).map(|(user, _)| user);
        assert_eq!(user(b"Basic dXNlcjpwYXNz").as_deref(), Some("user"));
        assert_eq!(user(b"Basic Zm9v").as_deref(), Some("<problem-decoding> (Basic Zm9v)"));
        assert_eq!(user(b"Bearer x"), None);
        // http-basic-auth-extra-space and -colon: blanks after "Basic", a colon in the password.
        assert_eq!(user(b"Basic  dXNlcjpwYTpzcw==").as_deref(), Some("user"));
        assert!(basic_auth_user(b"Basic dXNlcjpwYXNz").is_some_and(|(_, problems)| problems.is_empty()));
        assert_eq!(
            basic_auth_user(b"Basic dXNlcjpw*YXN").map(|(_, problems)| problems),
            Some(vec![
                "character 42 ignored by Base64 decoding".to_string(),
                "incomplete base64 group, padding with 6 bits of 0".to_string()
            ])
        );
    }

    #[test]
    fn pipelined_pairing_and_informational_replies() {
        let mut s = Script::default();
        let mut fx = Effects::default();
        s.request(1.0, b"GET", b"/a", &mut fx);
        s.request(1.1, b"GET", b"/b", &mut fx);
        s.reply(1.2, "1.1", 100, "Continue");
        assert!(s.message_done(1.2, false, 0).is_none());
        s.reply(1.3, "1.1", 200, "OK");
        let first = s.message_done(1.3, false, 5).unwrap();
        assert_eq!(
            (first.values.trans_depth, first.values.info_code, first.values.status_code),
            (1, Some(100), Some(200))
        );
        s.reply(1.4, "1.1", 404, "Not Found");
        let second = s.message_done(1.4, false, 0).unwrap();
        assert_eq!((second.values.trans_depth, second.values.uri.as_deref()), (2, Some("/b")));
        assert!(s.finalize().is_empty());
    }
}
