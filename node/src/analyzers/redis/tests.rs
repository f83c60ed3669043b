//! Redis: RESP built byte by byte, the rows of Zeek's `scripts.base.protocols.redis.*` baselines, sessions split at
//! every byte, malformed input, and the engine.

use super::parse::{ClientEvent, ClientParser, Known, Limits, Reply, ReplyType, ServerParser, tokenize_inline};
use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, XorShift, row};
use crate::logs::Value;

/// A command as clients send it: an array of bulk strings.
fn cmd(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        v.extend(format!("${}\r\n", p.len()).into_bytes());
        v.extend_from_slice(p);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn simple(s: &str) -> Vec<u8> {
    format!("+{s}\r\n").into_bytes()
}

fn error(s: &str) -> Vec<u8> {
    format!("-{s}\r\n").into_bytes()
}

fn int(n: i64) -> Vec<u8> {
    format!(":{n}\r\n").into_bytes()
}

fn bulk(b: &[u8]) -> Vec<u8> {
    let mut v = format!("${}\r\n", b.len()).into_bytes();
    v.extend_from_slice(b);
    v.extend_from_slice(b"\r\n");
    v
}

/// An aggregate: its type byte and count, then its children.
fn agg(ty: char, count: usize, children: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("{ty}{count}\r\n").into_bytes();
    for c in children {
        v.extend_from_slice(c);
    }
    v
}

fn array(children: &[Vec<u8>]) -> Vec<u8> {
    agg('*', children.len(), children)
}

/// Each `(from the client?, delivery)` at one-second steps, then the connection's end.
fn run_with(redis: &mut Redis, deliveries: &[(bool, Vec<u8>)]) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 6379);
    for (i, (is_orig, d)) in deliveries.iter().enumerate() {
        h.run(1.0 + i as f64, |ctx| redis.deliver(ctx, *is_orig, d));
    }
    h.run(1000.0, |ctx| redis.finish(ctx));
    h
}

fn run(deliveries: &[(bool, Vec<u8>)]) -> Harness {
    run_with(&mut Redis::default(), deliveries)
}

fn confirmed(h: &Harness) -> bool {
    h.actions.contains(&Action::Confirm("redis"))
}

/// The replies a server stream parses to, and the violation its end reports.
fn server_replies(limits: Limits, stream: &[u8]) -> (Vec<Reply>, Option<String>) {
    let mut p = ServerParser::new(limits);
    let mut out = Vec::new();
    p.feed(stream, &mut out);
    let end = p.finish(&mut out);
    (out, end)
}

fn reply_text(stream: &[u8]) -> (String, Option<String>, u8, ReplyType) {
    let (replies, end) = server_replies(Limits::default(), stream);
    assert_eq!(end, None, "{stream:?}");
    let [r] = replies.as_slice() else { panic!("one reply expected from {stream:?}: {replies:?}") };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&r.value), r.attributes.as_deref().map(text), r.min_protocol_version, r.kind)
}

fn client_events(limits: Limits, stream: &[u8]) -> Vec<ClientEvent> {
    let mut p = ClientParser::new(limits);
    let mut out = Vec::new();
    p.feed(stream, &mut out);
    if let Some(e) = p.finish() {
        out.push(ClientEvent::Error(e));
    }
    out
}

fn commands(stream: &[u8]) -> Vec<super::parse::Command> {
    client_events(Limits::default(), stream)
        .into_iter()
        .map(|e| match e {
            ClientEvent::Command(c) => c,
            ClientEvent::Error(e) => panic!("{e}"),
        })
        .collect()
}

/// A command's elements, and what `parse_command` makes of them: the known command, the key and the value.
type CommandCase<'a> = (&'a [&'a [u8]], Option<Known>, Option<&'a [u8]>, Option<&'a [u8]>);

#[test]
fn commands_name_their_key_and_value_as_redis_spicy_does() {
    let cases: [CommandCase; 8] = [
        (&[b"SET", b"k", b"v", b"EX", b"10"], Some(Known::Set), Some(b"k"), Some(b"v")),
        (&[b"get", b"k"], Some(Known::Get), Some(b"k"), None),
        (&[b"KEYS", b"*"], Some(Known::Keys), Some(b"*"), None),
        // BITOP's destination comes second, BLMPOP's first key fourth.
        (&[b"BITOP", b"AND", b"dest", b"a"], Some(Known::Bitop), Some(b"dest"), None),
        (&[b"BLMPOP", b"0", b"1", b"list", b"LEFT"], Some(Known::Blmpop), Some(b"list"), None),
        (&[b"AUTH", b"user", b"secret"], Some(Known::Auth), None, None),
        (&[b"PING"], None, None, None),
        (&[b"SET", b"only-key"], Some(Known::Set), Some(b"only-key"), None),
    ];
    for (parts, known, key, value) in cases {
        let [c] = commands(&cmd(parts)).try_into().expect("one command");
        assert_eq!((c.known, c.key(), c.value()), (known, key, value), "{parts:?}");
        assert_eq!(c.name(), parts[0]);
        assert_eq!(c.raw.len(), parts.len());
    }
}

#[test]
fn inline_commands_keep_quoted_tokens_whole() {
    // scripts.base.protocols.redis.pipeline-with-quotes: the quotes stay part of the value.
    let tokens = |s: &[u8]| tokenize_inline(s).into_iter().map(|t| t.to_vec()).collect::<Vec<_>>();
    assert_eq!(tokens(b"SET key \"my value with spaces\""), [&b"SET"[..], b"key", b"\"my value with spaces\""]);
    assert_eq!(tokens(b"SET key2 'my value'  x"), [&b"SET"[..], b"key2", b"'my value'", b"x"]);
    assert_eq!(tokens(b"SET k \"a \\\" b\""), [&b"SET"[..], b"k", b"\"a \\\" b\""]);
    assert_eq!(tokens(b"SET bad1 \"unclosed double"), [&b"SET"[..], b"bad1", b"\"unclosed double"]);
    assert_eq!(tokens(b"  \t"), Vec::<Vec<u8>>::new());
    assert_eq!(tokens(b"a\0b\rc\nd"), [&b"a"[..], b"b", b"c", b"d"]);
    // A quote in the middle of a token opens a quoted run there.
    assert_eq!(tokens(b"ab'c d'e f"), [&b"ab'c d'e"[..], b"f"]);
}

#[test]
fn client_errors_end_the_client_side() {
    let error = |stream: &[u8]| match client_events(Limits::default(), stream).last() {
        Some(ClientEvent::Error(e)) => e.clone(),
        other => panic!("no error for {stream:?}: {other:?}"),
    };
    assert!(error(b"*1\r\n+PING\r\n").starts_with("&requires failed"));
    assert!(error(b"*x\r\n").contains("integer"));
    assert!(error(b"*-2\r\n").starts_with("&requires failed"));
    // An empty array or line has no command name (the grammar asserts one).
    assert!(error(b"*0\r\n").starts_with("assertion failure"));
    assert!(error(b"*-1\r\n").starts_with("assertion failure"));
    assert!(error(b" \r\n").starts_with("assertion failure"));
    // A null bulk string has no content to take.
    assert!(error(b"*1\r\n$-1\r\n\r\n").contains("unset field"));
    assert!(error(&[b'A'; 1024]).contains("1024"));
    assert!(error(b"*2\r\n$4\r\nPING\r\n").starts_with("expected more data"));
    assert!(error(b"*20001\r\n").starts_with("too many elements 20001 > 20000"));
    // An inline command of 1022 bytes and its CRLF fits.
    let mut longest = vec![b'A'; 1022];
    longest.extend_from_slice(b"\r\n");
    assert_eq!(commands(&longest).len(), 1);
}

#[test]
fn bulk_strings_consume_up_to_the_next_crlf_after_their_content() {
    // `: skip RedisBytes` after the content takes whatever precedes the CRLF.
    let [c] = commands(b"*2\r\n$3\r\nGETxyz\r\n$1\r\nk\r\n").try_into().expect("one command");
    assert_eq!(c.raw, [b"GET".to_vec(), b"k".to_vec()]);
}

#[test]
fn replies_render_as_stringify_does() {
    let (v, a, min, kind) = reply_text(&simple("OK"));
    assert_eq!((v.as_str(), a, min, kind), ("OK", None, 2, ReplyType::Reply));
    assert_eq!(reply_text(&error("ERR nope")), ("ERR nope".into(), None, 2, ReplyType::Error));
    assert_eq!(reply_text(&int(-42)).0, "-42");
    assert_eq!(reply_text(&bulk(b"hello")).0, "hello");
    // A null bulk string and a null array are empty.
    assert_eq!(reply_text(b"$-1\r\n").0, "");
    assert_eq!(reply_text(b"*-1\r\n").0, "[]");
    assert_eq!(reply_text(&array(&[int(1), bulk(b"a"), array(&[])])).0, "[1, a, []]");
    // RESP3 types, each making the reply RESP3's.
    for (stream, text, kind) in [
        (&b"_\r\n"[..], "null", ReplyType::Reply),
        (b"#t\r\n", "T", ReplyType::Reply),
        (b"#f\r\n", "F", ReplyType::Reply),
        (b",3.14\r\n", "3.14", ReplyType::Reply),
        (
            b"(3492890328409238509324850943850943825024385\r\n",
            "3492890328409238509324850943850943825024385",
            ReplyType::Reply,
        ),
        (b"!21\r\nSYNTAX invalid syntax\r\n", "SYNTAX invalid syntax", ReplyType::Error),
        (b"=15\r\ntxt:Some string\r\n", "txt:Some string", ReplyType::Reply),
        (b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", "{a: 1, b: 2}", ReplyType::Reply),
        (b"~2\r\n+x\r\n+y\r\n", "(x, y)", ReplyType::Reply),
        (b">2\r\n+message\r\n+hi\r\n", "[message, hi]", ReplyType::Push),
    ] {
        assert_eq!(reply_text(stream), (text.into(), None, 3, kind), "{stream:?}");
    }
    // A RESP3 type inside a RESP2 array does not count.
    assert_eq!(reply_text(b"*1\r\n_\r\n"), ("[null]".into(), None, 2, ReplyType::Reply));
}

/// scripts.base.protocols.redis.attributes: the attribute map is rendered apart, and makes the reply RESP3's.
#[test]
fn attributes_baseline() {
    let with_attributes = [
        &b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"[..],
        &array(&[int(2039123), int(9543892)]),
    ]
    .concat();
    assert_eq!(
        reply_text(&with_attributes),
        ("[2039123, 9543892]".into(), Some("{key-popularity: {a: 0.1923, b: 0.0012}}".into()), 3, ReplyType::Reply)
    );
    // Nested values' attributes are parsed and not rendered.
    assert_eq!(reply_text(b"*1\r\n|1\r\n+k\r\n+v\r\n:5\r\n").0, "[5]");
    // A second attribute map is no type: parsing resumes after the first line, at the second map.
    let (replies, end) = server_replies(Limits::default(), b"|0\r\n|0\r\n+x\r\n");
    assert_eq!(replies.len(), 1);
    assert_eq!((replies[0].value.as_slice(), replies[0].attributes.as_deref()), (&b"x"[..], Some(&b"{}"[..])));
    assert!(end.is_some_and(|e| e.starts_with("successful synchronization never confirmed: no matching case")));

    let h = run(&[(true, cmd(&[b"FAKE"])), (false, array(&[int(1), int(2), int(3)]))]);
    assert_eq!(h.columns("redis"), [row(["FAKE", "-", "-", "T", "[1, 2, 3]"])]);
    let h = run(&[(true, cmd(&[b"FAKE2"])), (false, with_attributes)]);
    assert_eq!(h.columns("redis"), [row(["FAKE2", "-", "-", "T", "[2039123, 9543892]"])]);
}

/// The start of the COMMAND reply in the large-requests-responses trace, as its baselines show it.
const COMMAND_REPLY_250: &str = "[fcall_ro, [summary, Invokes a read-only function., since, 7.0.0, group, scripting, \
complexity, Depends on the function that is executed., arguments, [[name, function, type, string, display_text, \
function], [name, numkeys, type, integer, display_text";

fn command_reply() -> Vec<u8> {
    let b = |s: &str| bulk(s.as_bytes());
    let arg = |name: &str, ty: &str| array(&[b("name"), b(name), b("type"), b(ty), b("display_text"), b(name)]);
    array(&[
        b("fcall_ro"),
        array(&[
            b("summary"),
            b("Invokes a read-only function."),
            b("since"),
            b("7.0.0"),
            b("group"),
            b("scripting"),
            b("complexity"),
            b("Depends on the function that is executed."),
            b("arguments"),
            array(&[arg("function", "string"), arg("numkeys", "integer"), arg("key", "key")]),
        ]),
    ])
}

fn large_session() -> Vec<(bool, Vec<u8>)> {
    let x500 = vec![b'X'; 500];
    let x1000 = vec![b'X'; 1000];
    vec![
        (true, cmd(&[b"COMMAND", b"DOCS"])),
        (false, command_reply()),
        (true, cmd(&[b"SET", b"FIVE_HUNDRED_X", &x500])),
        (false, simple("OK")),
        (true, cmd(&[b"SET", b"THOUSAND_X", &x1000])),
        (false, simple("OK")),
        (true, cmd(&[b"GET", b"FIVE_HUNDRED_X"])),
        (false, bulk(&x500)),
        (true, cmd(&[b"GET", b"THOUSAND_X"])),
        (false, bulk(&x1000)),
    ]
}

/// scripts.base.protocols.redis.large-requests-responses: every element and reply is cut at `max_value_size`
/// (250, 10, and 0 for no cut).
#[test]
fn large_requests_responses_baselines() {
    assert_eq!(COMMAND_REPLY_250.len(), 250);
    let x = |n: usize| "X".repeat(n);
    let h = run(&large_session());
    assert_eq!(
        h.columns("redis"),
        [
            row(["COMMAND", "-", "-", "T", COMMAND_REPLY_250]),
            row(["SET", "FIVE_HUNDRED_X", &x(250), "T", "OK"]),
            row(["SET", "THOUSAND_X", &x(250), "T", "OK"]),
            row(["GET", "FIVE_HUNDRED_X", "-", "T", &x(250)]),
            row(["GET", "THOUSAND_X", "-", "T", &x(250)]),
        ]
    );
    let smaller = Limits { max_value_size: 10, ..Limits::default() };
    let h = run_with(&mut Redis::with_limits(smaller, 10_000), &large_session());
    assert_eq!(
        h.columns("redis"),
        [
            row(["COMMAND", "-", "-", "T", "[fcall_ro,"]),
            row(["SET", "FIVE_HUNDR", "XXXXXXXXXX", "T", "OK"]),
            row(["SET", "THOUSAND_X", "XXXXXXXXXX", "T", "OK"]),
            row(["GET", "FIVE_HUNDR", "-", "T", "XXXXXXXXXX"]),
            row(["GET", "THOUSAND_X", "-", "T", "XXXXXXXXXX"]),
        ]
    );
    let uncapped = Limits { max_value_size: 0, ..Limits::default() };
    let h = run_with(&mut Redis::with_limits(uncapped, 10_000), &large_session());
    let rows = h.columns("redis");
    assert_eq!(rows[1], row(["SET", "FIVE_HUNDRED_X", &x(500), "T", "OK"]));
    assert_eq!(rows[4], row(["GET", "THOUSAND_X", "-", "T", &x(1000)]));
    assert!(rows[0][4].len() > 250 && rows[0][4].starts_with(COMMAND_REPLY_250));
}

/// scripts.base.protocols.redis.pipelined and pipelined-with-commands: commands sent before any reply pair with
/// the replies in order.
#[test]
fn pipelined_baselines() {
    let ping = cmd(&[b"PING"]);
    let h = run(&[
        (true, [&ping[..], &ping, &ping].concat()),
        (false, [simple("PONG"), simple("PONG"), simple("PONG")].concat()),
    ]);
    assert_eq!(h.columns("redis"), vec![row(["PING", "-", "-", "T", "PONG"]); 3]);

    let h = run(&[
        (true, [ping.clone(), ping.clone(), cmd(&[b"SET", b"HI", b"3"]), cmd(&[b"GET", b"HI"])].concat()),
        (false, [simple("PONG"), simple("PONG"), simple("OK"), bulk(b"3")].concat()),
    ]);
    assert_eq!(
        h.columns("redis"),
        [
            row(["PING", "-", "-", "T", "PONG"]),
            row(["PING", "-", "-", "T", "PONG"]),
            row(["SET", "HI", "3", "T", "OK"]),
            row(["GET", "HI", "-", "T", "3"]),
        ]
    );
    assert!(confirmed(&h));
    assert!(h.violations().is_empty());
}

fn client_reply(mode: &[u8]) -> Vec<u8> {
    cmd(&[b"CLIENT", b"REPLY", mode])
}

/// scripts.base.protocols.redis.client-reply-off: OFF silences the replies up to ON (which is answered), SKIP the
/// next command's; the silenced commands are written without a reply when the next reply passes them.
#[test]
fn client_reply_off_baseline() {
    let ping = cmd(&[b"PING"]);
    let h = run(&[
        (true, ping.clone()),
        (false, simple("PONG")),
        (true, client_reply(b"OFF")),
        (true, ping.clone()),
        (true, client_reply(b"ON")),
        (false, simple("OK")),
        (true, ping.clone()),
        (false, simple("PONG")),
        (true, client_reply(b"SKIP")),
        (true, ping.clone()),
        (true, ping.clone()),
        (false, simple("PONG")),
    ]);
    assert_eq!(
        h.columns("redis"),
        [
            row(["PING", "-", "-", "T", "PONG"]),
            row(["CLIENT", "-", "-", "-", "-"]),
            row(["PING", "-", "-", "-", "-"]),
            row(["CLIENT", "-", "-", "T", "OK"]),
            row(["PING", "-", "-", "T", "PONG"]),
            row(["CLIENT", "-", "-", "-", "-"]),
            row(["PING", "-", "-", "-", "-"]),
            row(["PING", "-", "-", "T", "PONG"]),
        ]
    );
}

/// scripts.base.protocols.redis.client-skip-while-off: SKIP while replies are off opens no range.
#[test]
fn client_skip_while_off_baseline() {
    let ping = cmd(&[b"PING"]);
    let h = run(&[
        (true, ping.clone()),
        (false, simple("PONG")),
        (true, client_reply(b"off")),
        (true, ping.clone()),
        (true, client_reply(b"skip")),
        (true, client_reply(b"on")),
        (false, simple("OK")),
        (true, ping.clone()),
        (false, simple("PONG")),
        (true, ping.clone()),
        (false, simple("PONG")),
    ]);
    assert_eq!(
        h.columns("redis"),
        [
            row(["PING", "-", "-", "T", "PONG"]),
            row(["CLIENT", "-", "-", "-", "-"]),
            row(["PING", "-", "-", "-", "-"]),
            row(["CLIENT", "-", "-", "-", "-"]),
            row(["CLIENT", "-", "-", "T", "OK"]),
            row(["PING", "-", "-", "T", "PONG"]),
            row(["PING", "-", "-", "T", "PONG"]),
        ]
    );
}

/// scripts.base.protocols.redis.excessive-pipelining with `max_pending_commands = 5`: the seventh command finds six
/// pending, raises the limit weird (`6 > 5`, source REDIS), marks the analysis partial and starts the state afresh;
/// the replies beyond the new state's five commands are written without one at the end.
#[test]
fn excessive_pipelining_baseline() {
    let ping = cmd(&[b"PING"]);
    let h = run_with(
        &mut Redis::with_limits(Limits::default(), 5),
        &[(true, ping.repeat(12)), (false, simple("PONG").repeat(12))],
    );
    let mut expected = vec![row(["PING", "-", "-", "T", "PONG"]); 5];
    expected.extend(vec![row(["-", "-", "-", "T", "PONG"]); 7]);
    assert_eq!(h.columns("redis"), expected);
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref(), w.source)).collect();
    assert_eq!(weirds, [("Redis_excessive_pipelining", Some("6 > 5"), "REDIS")]);
    assert!(h.actions.contains(&Action::Partial { is_orig: true }));
}

/// scripts.base.protocols.redis.pubsub (RESP2): SUBSCRIBE and PSUBSCRIBE expect no reply and enter subscribed
/// mode, whose replies are pushes; RESET leaves it, and its reply writes the subscriptions without one.
#[test]
fn pubsub_baseline() {
    let push = |parts: &[&[u8]]| array(&parts.iter().map(|p| bulk(p)).collect::<Vec<_>>());
    let subscriber = run(&[
        (true, cmd(&[b"SUBSCRIBE", b"Foo"])),
        (false, array(&[bulk(b"subscribe"), bulk(b"Foo"), int(1)])),
        (true, cmd(&[b"PSUBSCRIBE", b"F*"])),
        (false, array(&[bulk(b"psubscribe"), bulk(b"F*"), int(2)])),
        (false, push(&[b"message", b"Foo", b"Hi there :)"])),
        (false, push(&[b"pmessage", b"F*", b"Foo", b"Hi there :)"])),
        (false, push(&[b"pmessage", b"F*", b"FeeFooFiiFum", b"Hello! :)"])),
        (true, cmd(&[b"RESET"])),
        (false, simple("RESET")),
        (true, cmd(&[b"GET", b"sanity_check"])),
        (false, bulk(b"you_are_sane")),
    ]);
    assert_eq!(
        subscriber.columns("redis"),
        [
            row(["SUBSCRIBE", "-", "-", "-", "-"]),
            row(["PSUBSCRIBE", "-", "-", "-", "-"]),
            row(["RESET", "-", "-", "T", "RESET"]),
            row(["GET", "sanity_check", "-", "T", "you_are_sane"]),
        ]
    );
    // The publishers' replies are integers (pubsub-resp3's `T 2` and `T 1` rows).
    let publisher = run(&[(true, cmd(&[b"PUBLISH", b"Foo", b"Hi:)"])), (false, int(2))]);
    assert_eq!(publisher.columns("redis"), [row(["PUBLISH", "-", "-", "T", "2"])]);
    let setter = run(&[(true, cmd(&[b"SET", b"sanity_check", b"you_are_sane"])), (false, simple("OK"))]);
    assert_eq!(setter.columns("redis"), [row(["SET", "sanity_check", "you_are_sane", "T", "OK"])]);
}

/// scripts.base.protocols.redis.pubsub-resp3: after HELLO 3 the hello's map reply is logged, subscriptions do not
/// enter subscribed mode, and RESP3 pushes are no replies.
#[test]
fn resp3_hello_and_pushes() {
    let b = |s: &str| bulk(s.as_bytes());
    let hello_reply = agg(
        '%',
        7,
        &[
            b("server"),
            b("redis"),
            b("version"),
            b("7.2.5"),
            b("proto"),
            int(3),
            b("id"),
            int(4),
            b("mode"),
            b("standalone"),
            b("role"),
            b("master"),
            b("modules"),
            array(&[]),
        ],
    );
    let push = |parts: &[Vec<u8>]| agg('>', parts.len(), parts);
    let h = run(&[
        (true, cmd(&[b"HELLO", b"3"])),
        (false, hello_reply),
        (true, cmd(&[b"SUBSCRIBE", b"Foo"])),
        (false, push(&[b("subscribe"), b("Foo"), int(1)])),
        (false, push(&[b("message"), b("Foo"), b("Hi:)")])),
        (true, cmd(&[b"GET", b"k"])),
        (false, b("v")),
    ]);
    assert_eq!(
        h.columns("redis"),
        [
            row([
                "HELLO",
                "-",
                "-",
                "T",
                "{server: redis, version: 7.2.5, proto: 3, id: 4, mode: standalone, role: master, modules: []}",
            ]),
            row(["SUBSCRIBE", "-", "-", "-", "-"]),
            row(["GET", "k", "-", "T", "v"]),
        ]
    );
}

/// A RESP2 client in subscribed mode: any known command but a subscription leaves it, unknown ones do not.
#[test]
fn subscribed_mode_follows_known_commands() {
    let h = run(&[
        (true, cmd(&[b"SUBSCRIBE", b"a"])),
        (false, array(&[bulk(b"subscribe"), bulk(b"a"), int(1)])),
        (true, cmd(&[b"PING"])),
        // Still subscribed: this is a push.
        (false, array(&[bulk(b"pong"), bulk(b"")])),
        (true, cmd(&[b"UNSUBSCRIBE", b"a"])),
        (false, array(&[bulk(b"unsubscribe"), bulk(b"a"), int(0)])),
        (true, cmd(&[b"GET", b"k"])),
        (false, bulk(b"v")),
    ]);
    // UNSUBSCRIBE is known and not a subscription: it ends subscribed mode, but expects no reply, so its
    // answer goes to the next command that expects one... which is PING.
    assert_eq!(
        h.columns("redis"),
        [
            row(["SUBSCRIBE", "-", "-", "-", "-"]),
            row(["PING", "-", "-", "T", "[unsubscribe, a, 0]"]),
            row(["UNSUBSCRIBE", "-", "-", "-", "-"]),
            row(["GET", "k", "-", "T", "v"]),
        ]
    );
}

/// scripts.base.protocols.redis.pipeline-with-quotes: inline commands keep their quotes; the error reply is not a
/// success; the command the server closed on is written at the end without a reply.
#[test]
fn pipeline_with_quotes_baseline() {
    let lines: &[&[u8]] = &[
        b"SET key \"my value with spaces\"",
        b"SET key2 'my value with single quotes'",
        b"SET key3 'my value with \"double\" inners'",
        b"SET key4 \"my value with 'single' inners\"",
        b"SET key5 \"my value with \\\"escaped\\\" quotes\"",
        b"SET key6 'my value with \\'escaped\\' quotes'",
        b"SET bad1 \"unclosed double quotes",
        b"SET bad2 'unclosed single quotes",
    ];
    let client: Vec<u8> = lines.iter().flat_map(|l| [*l, b"\r\n"].concat()).collect();
    let server = [simple("OK").repeat(6), error("ERR Protocol error: unbalanced quotes in request")].concat();
    let h = run(&[(true, client), (false, server)]);
    assert_eq!(
        h.columns("redis"),
        [
            row(["SET", "key", "\"my value with spaces\"", "T", "OK"]),
            row(["SET", "key2", "'my value with single quotes'", "T", "OK"]),
            row(["SET", "key3", "'my value with \"double\" inners'", "T", "OK"]),
            row(["SET", "key4", "\"my value with 'single' inners\"", "T", "OK"]),
            row(["SET", "key5", "\"my value with \\\\\"escaped\\\\\" quotes\"", "T", "OK"]),
            row(["SET", "key6", "'my value with \\\\'escaped\\\\' quotes'", "T", "OK"]),
            row(["SET", "bad1", "\"unclosed double quotes", "F", "ERR Protocol error: unbalanced quotes in request"]),
            row(["SET", "bad2", "'unclosed single quotes", "-", "-"]),
        ]
    );
}

/// scripts.base.protocols.redis.almost-redis: two good replies, then server lines that are not RESP. Parsing goes
/// on after each line in Spicy's trial mode; at the end the never-confirmed synchronization is a violation, so the
/// commands still pending are not written.
#[test]
fn almost_redis_baseline() {
    let h = run(&[
        (true, [cmd(&[b"AUTH", b"password"]), cmd(&[b"PING"])].concat()),
        (false, b"+OK\r\n+OK\r\nnot RESP\r\nStill not RESP\r\nNope\r\n".to_vec()),
        (true, [cmd(&[b"GET", b"a"]), cmd(&[b"GET", b"b"])].concat()),
    ]);
    assert_eq!(h.columns("redis"), [row(["AUTH", "-", "-", "T", "OK"]), row(["PING", "-", "-", "T", "OK"])]);
    assert!(confirmed(&h));
    assert_eq!(
        h.violations(),
        ["successful synchronization never confirmed: no matching case in switch statement for value '78'"]
    );
}

/// scripts.base.protocols.redis.start-with-server: server data before any client data is a violation (the
/// parsers' shared context), and nothing is logged.
#[test]
fn start_with_server_baseline() {
    let h = run(&[(false, simple("OK")), (true, cmd(&[b"PING"])), (false, simple("PONG"))]);
    assert!(h.columns("redis").is_empty());
    assert_eq!(h.violations(), ["Server responses must come after a client request is seen"]);
    assert!(!confirmed(&h));
}

/// scripts.base.protocols.redis.element-object-exhaustion: an array announcing more than
/// `max_aggregate_elements` children fails at its header; parsing resumes after that line, each null a reply of
/// its own (the first answers PING), and the end reports the never-confirmed synchronization.
#[test]
fn element_object_exhaustion_baseline() {
    let response = [&b"*1000\r\n"[..], &b"_\r\n".repeat(1000)].concat();
    let limited = Limits { max_aggregate_elements: 500, ..Limits::default() };
    let h =
        run_with(&mut Redis::with_limits(limited, 10_000), &[(true, b"PING\r\n".to_vec()), (false, response.clone())]);
    assert_eq!(h.columns("redis"), [row(["PING", "-", "-", "T", "null"])]);
    assert_eq!(h.violations(), ["successful synchronization never confirmed: too many elements 1000 > 500"]);

    // The default limit takes the array whole, rendered up to 250 bytes.
    let h = run(&[(true, b"PING\r\n".to_vec()), (false, response)]);
    let rows = h.columns("redis");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][4].len(), 250);
    assert!(rows[0][4].starts_with("[null, null, "));
    assert!(h.violations().is_empty());
}

#[test]
fn aggregate_limit_counts_every_child_of_one_reply() {
    let limits = Limits { max_aggregate_elements: 4, ..Limits::default() };
    // 2 + 2 children: at the limit.
    let (replies, end) = server_replies(limits, &array(&[array(&[int(1), int(2)]), int(3)]));
    assert_eq!((replies.len(), end), (1, None));
    // A map's pairs count once each; a set's members too.
    let (replies, end) = server_replies(limits, b"%2\r\n+a\r\n~2\r\n+x\r\n+y\r\n+b\r\n:1\r\n");
    assert_eq!((replies.len(), end), (1, None));
    // Each reply counts afresh.
    let (replies, end) = server_replies(limits, &array(&[int(1), int(2), int(3), int(4)]).repeat(3));
    assert_eq!((replies.len(), end), (3, None));
    // 3 + 2 children: over it, at the second array's header; after the outer header, [1, 2], 3 and 4 each stand
    // alone.
    let (replies, end) = server_replies(limits, &array(&[array(&[int(1), int(2)]), int(3), int(4)]));
    let texts: Vec<_> = replies.iter().map(|r| r.value.clone()).collect();
    assert_eq!(texts, [b"[1, 2]".to_vec(), b"3".to_vec(), b"4".to_vec()]);
    assert_eq!(end.as_deref(), Some("successful synchronization never confirmed: too many elements 5 > 4"));
}

#[test]
fn nesting_deeper_than_twenty_units_is_an_error() {
    let nested = |depth: usize| {
        let mut v = b"*0\r\n".to_vec();
        for _ in 1..depth {
            v = [&b"*1\r\n"[..], &v].concat();
        }
        v
    };
    assert_eq!(reply_text(&nested(20)).0, format!("{}{}", "[".repeat(20), "]".repeat(20)));
    let (_, end) = server_replies(Limits::default(), &nested(21));
    assert!(end.is_some_and(|e| e.ends_with("exceeded max recursion depth")));
}

/// An element that fails after its first line is parsed again from there (Spicy searches for the next CRLF from
/// the element's start): the lines it held become replies of their own.
#[test]
fn synchronization_resumes_after_the_failed_elements_first_line() {
    let (replies, end) = server_replies(Limits::default(), b"*3\r\n+a\r\n:1\r\n?bad\r\n+b\r\n");
    let texts: Vec<_> = replies.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
    assert_eq!(texts, ["a", "1", "b"]);
    assert!(end.is_some_and(|e| e.starts_with("successful synchronization never confirmed")));
    // A first line without a CRLF: the search goes on in the next delivery.
    let mut p = ServerParser::new(Limits::default());
    let mut out = Vec::new();
    p.feed(b"junk", &mut out);
    p.feed(b" more\r", &mut out);
    p.feed(b"\n+OK\r\n", &mut out);
    assert_eq!(out.iter().map(|r| r.value.clone()).collect::<Vec<_>>(), [b"OK".to_vec()]);
    assert!(p.in_trial_mode());
    // Cut short at the end, with no CRLF to resume after: the error itself.
    let (_, end) = server_replies(Limits::default(), b"+OK");
    assert_eq!(end.as_deref(), Some("expected more data: end of server data reached inside a unit"));
    // Cut short after its first line: what followed it is parsed again.
    let (replies, end) = server_replies(Limits::default(), b"*2\r\n+OK\r\n");
    assert_eq!(replies.iter().map(|r| r.value.clone()).collect::<Vec<_>>(), [b"OK".to_vec()]);
    assert!(end.is_some_and(|e| e.starts_with("successful synchronization never confirmed: expected more data")));
}

#[test]
fn error_replies_are_no_success_and_still_pair() {
    let h = run(&[
        (true, [cmd(&[b"GET", b"a"]), cmd(&[b"NOPE"]), cmd(&[b"GET", b"b"])].concat()),
        (false, [bulk(b"1"), error("ERR unknown command 'NOPE'"), b"!5\r\nWRONG\r\n".to_vec()].concat()),
    ]);
    assert_eq!(
        h.columns("redis"),
        [
            row(["GET", "a", "-", "T", "1"]),
            row(["NOPE", "-", "-", "F", "ERR unknown command 'NOPE'"]),
            row(["GET", "b", "-", "F", "WRONG"]),
        ]
    );
}

/// `finalize_redis`: pending commands are written at the end only once some reply was counted, and not after a
/// violation.
#[test]
fn the_end_writes_what_is_pending() {
    let h = run(&[(true, cmd(&[b"PING"])), (false, simple("PONG")), (true, cmd(&[b"GET", b"later"]))]);
    assert_eq!(h.columns("redis"), [row(["PING", "-", "-", "T", "PONG"]), row(["GET", "later", "-", "-", "-"])]);
    // No reply yet: nothing.
    let h = run(&[(true, cmd(&[b"GET", b"k"]))]);
    assert!(h.columns("redis").is_empty());
    // A client error: the violation suppresses the flush.
    let h = run(&[
        (true, cmd(&[b"PING"])),
        (false, simple("PONG")),
        (true, [cmd(&[b"GET", b"x"]), b"*1\r\n:1\r\n".to_vec()].concat()),
    ]);
    assert_eq!(h.columns("redis"), [row(["PING", "-", "-", "T", "PONG"])]);
    assert_eq!(h.violations().len(), 1);
    // A client cut short inside a command at the end: a violation too.
    let h = run(&[(true, cmd(&[b"PING"])), (false, simple("PONG")), (true, b"*2\r\n$3\r\nGET".to_vec())]);
    assert_eq!(h.columns("redis"), [row(["PING", "-", "-", "T", "PONG"])]);
    assert_eq!(h.violations(), ["expected more data: end of client data reached inside a unit"]);
}

#[test]
fn a_gap_ends_its_direction_silently() {
    let mut redis = Redis::default();
    let mut h = Harness::new(Proto::Tcp, 6379);
    h.deliver(&mut redis, true, &cmd(&[b"GET", b"k"]));
    h.deliver(&mut redis, false, b"$5\r\nhel");
    h.run(1.5, |ctx| redis.undelivered(ctx, false, 100));
    h.deliver(&mut redis, false, b"lo\r\n+OK\r\n");
    h.deliver(&mut redis, true, &cmd(&[b"GET", b"j"]));
    h.finish(&mut redis);
    assert!(h.violations().is_empty());
    assert!(h.columns("redis").is_empty(), "no reply was ever counted");
}

/// The `reply_num` bookkeeping stays small however many CLIENT REPLY SKIP commands come.
#[test]
fn closed_no_reply_ranges_are_dropped_once_passed() {
    let mut deliveries = Vec::new();
    for _ in 0..1000 {
        deliveries.push((true, client_reply(b"SKIP")));
        deliveries.push((true, cmd(&[b"PING"])));
        deliveries.push((true, cmd(&[b"PING"])));
        deliveries.push((false, simple("PONG")));
    }
    let h = run(&deliveries);
    let rows = h.columns("redis");
    assert_eq!(rows.len(), 3000);
    assert_eq!(
        rows[0..3],
        [row(["CLIENT", "-", "-", "-", "-"]), row(["PING", "-", "-", "-", "-"]), row(["PING", "-", "-", "T", "PONG"])]
    );
}

/// A whole session.
fn session() -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, cmd(&[b"HELLO", b"2"])),
        (false, array(&[bulk(b"server"), bulk(b"redis")])),
        (
            true,
            [cmd(&[b"SET", b"k", b"v"]), b"GET k\r\n".to_vec(), client_reply(b"SKIP"), cmd(&[b"DEL", b"k"])].concat(),
        ),
        (true, cmd(&[b"PING"])),
        (false, [simple("OK"), bulk(b"v"), b"|1\r\n+ttl\r\n:3\r\n%1\r\n+a\r\n#t\r\n".to_vec()].concat()),
        (true, cmd(&[b"SUBSCRIBE", b"c"])),
        (false, array(&[bulk(b"subscribe"), bulk(b"c"), int(1)])),
        (true, cmd(&[b"QUIT"])),
        (false, simple("OK")),
    ]
}

fn session_rows(deliveries: &[(bool, Vec<u8>)]) -> (Vec<Vec<String>>, Vec<Action>) {
    let h = run(deliveries);
    (h.columns("redis"), h.actions)
}

#[test]
fn a_session_split_at_every_byte_logs_the_same() {
    let whole = session_rows(&session());
    assert_eq!(
        whole.0,
        [
            row(["HELLO", "-", "-", "T", "[server, redis]"]),
            row(["SET", "k", "v", "T", "OK"]),
            row(["GET", "k", "-", "T", "v"]),
            row(["CLIENT", "-", "-", "-", "-"]),
            row(["DEL", "k", "-", "-", "-"]),
            row(["PING", "-", "-", "T", "{a: T}"]),
            row(["SUBSCRIBE", "-", "-", "-", "-"]),
            // The attribute made the connection RESP3, so SUBSCRIBE entered no subscribed mode: its RESP2
            // confirmation is a reply, which goes to the next command (QUIT, not yet sent), and QUIT's OK has none.
            row(["QUIT", "-", "-", "T", "[subscribe, c, 1]"]),
            row(["-", "-", "-", "T", "OK"]),
        ]
    );
    for (i, (is_orig, d)) in session().iter().enumerate() {
        for cut in 1..d.len() {
            let mut split = session();
            split.splice(i..=i, [(*is_orig, d[..cut].to_vec()), (*is_orig, d[cut..].to_vec())]);
            assert_eq!(session_rows(&split), whole, "delivery {i} cut at {cut}");
        }
    }
    // Byte by byte throughout.
    let single: Vec<(bool, Vec<u8>)> =
        session().into_iter().flat_map(|(o, d)| d.into_iter().map(move |b| (o, vec![b]))).collect();
    assert_eq!(session_rows(&single), whole);
}

#[test]
fn the_server_parser_gives_the_same_replies_at_every_split() {
    let stream = [
        &b"+OK\r\n$-1\r\n"[..],
        &command_reply(),
        b"not resp\r\n:1\r\n|1\r\n+a\r\n+b\r\n*2\r\n_\r\n#f\r\n*1\r\n?\r\n:2\r\n",
        &bulk(&[b'Z'; 300]),
        b"!3\r\nerr\r\n>1\r\n+p\r\n%1\r\n+k\r\n~0\r\n=4\r\ntxt:\r\n",
    ]
    .concat();
    let whole = server_replies(Limits::default(), &stream);
    let texts: Vec<String> = whole.0.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
    assert_eq!(texts.len(), 11, "{texts:?}");
    assert_eq!(texts[4], "[null, F]");
    assert_eq!(texts[9], "{k: ()}");
    for cut in 1..stream.len() {
        let mut p = ServerParser::new(Limits::default());
        let mut out = Vec::new();
        p.feed(&stream[..cut], &mut out);
        p.feed(&stream[cut..], &mut out);
        let end = p.finish(&mut out);
        assert_eq!((out, end), whole, "cut at {cut}");
    }
}

/// Arbitrary and mutated input never panics, and the parsers stay bounded.
#[test]
fn mutated_and_random_sessions_never_panic() {
    let mut rng = XorShift(0x5eed_1234_dead_beef);
    let base: Vec<u8> = session().into_iter().flat_map(|(_, d)| d).collect();
    for round in 0..400 {
        let mut deliveries = session();
        for (_, d) in deliveries.iter_mut() {
            for _ in 0..(rng.next() % 4) {
                if d.is_empty() {
                    break;
                }
                let at = (rng.next() as usize) % d.len();
                d[at] = match rng.next() % 4 {
                    0 => b'\r',
                    1 => b'\n',
                    2 => base[(rng.next() as usize) % base.len()],
                    _ => rng.next() as u8,
                };
            }
            if rng.next().is_multiple_of(5) {
                let cut = (rng.next() as usize) % (d.len() + 1);
                d.truncate(cut);
            }
        }
        let limits = Limits { max_value_size: round % 7, max_aggregate_elements: (round % 5) as u64 };
        let _ = run_with(&mut Redis::with_limits(limits, (round % 3) as u64), &deliveries);
        let _ = run(&deliveries);
        let random: Vec<u8> = (0..(rng.next() % 300)).map(|_| rng.next() as u8).collect();
        fuzz(&random);
    }
}

#[test]
fn the_server_signature_is_dpd_sigs() {
    for good in [
        &b"+OK\r\n"[..],
        b"-ERR x\r\n",
        b"_\r\n",
        b",1.5\r\n",
        b":1\r\n",
        b"$-1\r\n",
        b"*+3\r\n",
        b"%2.\r\n",
        b"`7.25\r\n",
        b"+\r\r\n",
    ] {
        assert!(server_signature(good), "{good:?}");
    }
    for bad in
        [&b"+OK"[..], b"+OK\n\r\n", b"+\n", b":\r\n", b":x\r\n", b"*3 \r\n", b"|1\r\n", b"HTTP/1.1 200 OK\r\n", b""]
    {
        assert!(!server_signature(bad), "{bad:?}");
    }
    assert!(SPEC.detect.is_some_and(|s| s.matches(Proto::Tcp, false, b"+PONG\r\n", b"")));
    assert!(!SPEC.detect.is_some_and(|s| s.matches(Proto::Tcp, true, b"+PONG\r\n", b"")));
}

/// Through the engine: Redis on its port, and by the signature on another (django-cloud's 10625); conn.log's
/// service and the rows.
#[test]
fn redis_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    const CLIENT: [u8; 4] = [192, 168, 1, 4];
    let messages: Vec<(bool, Vec<u8>)> = vec![
        (true, cmd(&[b"GET", b":1:factorial_3"])),
        (false, b"$-1\r\n".to_vec()),
        (true, cmd(&[b"SET", b":1:factorial_1", b"1"])),
        (false, simple("OK")),
    ];
    let borrowed: Vec<(bool, &[u8])> = messages.iter().map(|(o, d)| (*o, d.as_slice())).collect();
    let mut frames = tcp_conversation((CLIENT, 50044), ([18, 234, 186, 95], 10625), &borrowed);
    frames.extend(tcp_conversation((CLIENT, 50045), ([127, 0, 0, 1], 6379), &borrowed));
    let records = engine_records(&frames);
    let redis: Vec<Vec<String>> = records
        .iter()
        .filter(|r| r.schema.path == "redis")
        .map(|r| r.values[2..].iter().map(Value::to_tsv).collect())
        .collect();
    let with_id = |h: &str, p: &str, rp: &str, rest: [&str; 5]| -> Vec<String> {
        ["192.168.1.4", p, h, rp].into_iter().chain(rest).map(String::from).collect()
    };
    assert_eq!(
        redis,
        [
            with_id("18.234.186.95", "50044", "10625", ["GET", ":1:factorial_3", "-", "T", "(empty)"]),
            with_id("18.234.186.95", "50044", "10625", ["SET", ":1:factorial_1", "1", "T", "OK"]),
            with_id("127.0.0.1", "50045", "6379", ["GET", ":1:factorial_3", "-", "T", "(empty)"]),
            with_id("127.0.0.1", "50045", "6379", ["SET", ":1:factorial_1", "1", "T", "OK"]),
        ]
    );
    let conns: Vec<_> = records.iter().filter(|r| r.schema.path == "conn").collect();
    assert_eq!(conns.len(), 2);
    for conn in conns {
        assert_eq!(field(conn, "service"), "redis");
    }
}

/// Through the engine, the exhaustion trace as its generator builds it (1400-byte segments): a violation after the
/// confirmation leaves conn.log's service and writes analyzer.log.
#[test]
fn exhaustion_through_the_engine_writes_analyzer_log() {
    use crate::analyzers::testing::{engine_records_with, field};
    use crate::decode::test_frames::tcp_conversation;

    let response = [&b"*1000\r\n"[..], &b"_\r\n".repeat(1000)].concat();
    let mut messages: Vec<(bool, &[u8])> = vec![(true, b"PING\r\n")];
    messages.extend(response.chunks(1400).map(|c| (false, c)));
    let frames = tcp_conversation(([192, 0, 2, 1], 40000), ([192, 0, 2, 2], 6379), &messages);
    // The engine's Redis has the default limit: check the baseline's setting through the analyzer's own test, and
    // here that a default run confirms without a violation.
    let records = engine_records_with(crate::config::AnalysisConfig::default(), &frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").expect("conn.log");
    assert_eq!(field(conn, "service"), "redis");
    assert!(!records.iter().any(|r| r.schema.path == "analyzer"));

    // A stream that confirms and then never leaves trial mode.
    let messages: Vec<(bool, &[u8])> = vec![(true, b"PING\r\n"), (false, b"+PONG\r\nnot RESP\r\n")];
    let frames = tcp_conversation(([192, 0, 2, 1], 40001), ([192, 0, 2, 2], 6379), &messages);
    let records = engine_records_with(crate::config::AnalysisConfig::default(), &frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").expect("conn.log");
    assert_eq!(field(conn, "service"), "-");
    let analyzer: Vec<_> = records.iter().filter(|r| r.schema.path == "analyzer").collect();
    assert_eq!(analyzer.len(), 1);
    assert_eq!(field(analyzer[0], "analyzer_name"), "REDIS");
    assert_eq!(
        field(analyzer[0], "failure_reason"),
        "successful synchronization never confirmed: no matching case in switch statement for value '110'"
    );
    // The violation came before the removal hook: PING's row was written at its reply, nothing after.
    let redis: Vec<_> = records.iter().filter(|r| r.schema.path == "redis").collect();
    assert_eq!(redis.len(), 1);
    assert_eq!(field(redis[0], "reply.value"), "PONG");
}

/// Through the engine: the pipelining limit's weird and conn.log's `X` (Zeek 9.1's limit marker).
#[test]
fn excessive_pipelining_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    let commands = cmd(&[b"PING"]).repeat(10_003);
    let replies = simple("PONG").repeat(10_003);
    let mut messages: Vec<(bool, &[u8])> = commands.chunks(1400).map(|c| (true, c)).collect();
    messages.extend(replies.chunks(1400).map(|c| (false, c)));
    let frames = tcp_conversation(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 6379), &messages);
    let records = engine_records(&frames);
    let weird: Vec<_> = records.iter().filter(|r| r.schema.path == "weird").collect();
    assert_eq!(weird.len(), 1);
    assert_eq!(
        (field(weird[0], "name"), field(weird[0], "addl"), field(weird[0], "source")),
        ("Redis_excessive_pipelining".into(), "10001 > 10000".into(), "REDIS".into())
    );
    let conn = records.iter().find(|r| r.schema.path == "conn").expect("conn.log");
    assert!(field(conn, "history").contains('X'), "{}", field(conn, "history"));
    // The 10002nd command met the limit; the state started afresh with the last one, which the first reply
    // answers; the other replies have no command and are written at the end.
    let rows: Vec<_> = records.iter().filter(|r| r.schema.path == "redis").collect();
    assert_eq!(rows.len(), 10_003);
    assert_eq!(field(rows[0], "cmd.name"), "PING");
    assert_eq!(field(rows[1], "cmd.name"), "-");
}

/// Redis over TLS on 6379 (scripts.base.protocols.redis.tls): no redis.log.
#[test]
fn tls_on_the_redis_port_logs_nothing() {
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03];
    hello.extend((0..200u8).map(|i| i.wrapping_mul(37) | 0x80));
    let mut server_hello = vec![0x16, 0x03, 0x03, 0x00, 0x5a, 0x02];
    server_hello.extend((0..90u8).map(|i| i.wrapping_mul(11) | 0x80));
    let h = run(&[(true, hello), (false, server_hello), (true, vec![0x17, 0x03, 0x03, 0x00, 0x10])]);
    assert!(h.columns("redis").is_empty());
    assert!(!confirmed(&h));
}

/// scripts.base.protocols.redis.client-reply-off-2conn: two connections turn replies off; each writes its silenced
/// commands at its own end.
#[test]
fn client_reply_off_two_connections_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    let (ping, pong, off) = (cmd(&[b"PING"]), simple("PONG"), client_reply(b"OFF"));
    let messages: Vec<(bool, &[u8])> = vec![(true, &ping), (false, &pong), (true, &off), (true, &ping)];
    let server = ([10, 0, 0, 2], 6379);
    let first = tcp_conversation(([10, 0, 0, 1], 61211), server, &messages);
    let second = tcp_conversation(([10, 0, 0, 1], 61212), server, &messages);
    // Both handshakes, PINGs and PONGs; then the first connection's rest and end, then the second's.
    let frames: Vec<Vec<u8>> = [&first[..5], &second[..5], &first[5..], &second[5..]].concat();
    let records = engine_records(&frames);
    let rows: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r.schema.path == "redis")
        .map(|r| (field(r, "id.orig_p"), field(r, "cmd.name"), field(r, "reply.value")))
        .collect();
    let r = |p: &str, c: &str, v: &str| (p.to_string(), c.to_string(), v.to_string());
    assert_eq!(
        rows,
        [
            r("61211", "PING", "PONG"),
            r("61212", "PING", "PONG"),
            r("61211", "CLIENT", "-"),
            r("61211", "PING", "-"),
            r("61212", "CLIENT", "-"),
            r("61212", "PING", "-"),
        ]
    );
}

/// analyzer.log's `failure_data`: a parse error inside a delivery carries that delivery (Spicy's `Process`), one at
/// the end of a direction carries nothing (`Finish`).
#[test]
fn violations_carry_the_delivery_they_happened_in() {
    let failure_data = |h: &Harness| -> Vec<Option<Vec<u8>>> {
        h.actions
            .iter()
            .filter_map(|a| match a {
                Action::Violation(_, data) => Some(data.as_deref().map(<[u8]>::to_vec)),
                _ => None,
            })
            .collect()
    };
    let bad = [cmd(&[b"GET", b"x"]), b"*1\r\n:1\r\n".to_vec()].concat();
    let h = run(&[(true, cmd(&[b"PING"])), (false, simple("PONG")), (true, bad.clone())]);
    assert_eq!(failure_data(&h), [Some(bad)]);
    let h = run(&[(false, simple("OK"))]);
    assert_eq!(failure_data(&h), [Some(simple("OK"))]);
    let h = run(&[(true, cmd(&[b"PING"])), (false, simple("PONG")), (true, b"*2\r\n$3\r\nGET".to_vec())]);
    assert_eq!(failure_data(&h), [None]);
}
