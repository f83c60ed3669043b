use super::*;
use crate::analyzers::{ConnId, Proto};
use crate::detect::events::HttpRequest;
use crate::detect::local::{LocalHub, LocalLayout};
use crate::logs::{LogRecord, Value};

/// Zeek's `unescape_URI` for the test inputs marked `+%` (plain `%XX` escapes are all they use).
fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// Zeek's own regex test (test-sql-injection-regex.zeek): every positive input matches, no negative one does.
#[test]
fn zeeks_btest_inputs() {
    let text = include_str!("btest-regex-inputs.txt");
    let (mut positives, mut negatives, mut wrong) = (0, 0, Vec::new());
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (uri, expected) = if let Some(encoded) = line.strip_prefix("+% ") {
            (crate::logs::bytes_to_log_string(&percent_decoded(encoded)), true)
        } else if let Some(uri) = line.strip_prefix("+ ") {
            (uri.to_string(), true)
        } else if let Some(uri) = line.strip_prefix("- ").or_else(|| line.strip_prefix("~ ")) {
            (uri.to_string(), false)
        } else {
            panic!("unreadable input line {line:?}");
        };
        if expected {
            positives += 1;
        } else {
            negatives += 1;
        }
        if is_sql_injection_bytes(uri.as_bytes()) != expected {
            wrong.push(format!("{}: {uri:?}", if expected { "Missed" } else { "False positive" }));
        }
    }
    assert_eq!((positives, negatives), (34, 31), "every input of the test was read");
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn matches_on_the_uris_bytes() {
    // A raw byte (here 0xff) counts as one byte of a class.
    assert!(is_sql_injection_bytes(b"/a?x\xff=1 union select 1"));
    // The last alternative is not case-insensitive, but has no letters; the others are.
    assert!(is_sql_injection_bytes(b"/p?q=1 UnIoN SeLeCt 2"));
    assert!(is_sql_injection_bytes(b"/x/*!12345 and*/"));
    assert!(!is_sql_injection_bytes(b"/x/*!1234 and*/"));
    // `.` is any byte but a newline, as in Zeek.
    assert!(!is_sql_injection_bytes(b"/x/*!12345\n*/"));
    assert!(!is_sql_injection_bytes(b"/index.html"));
}

#[test]
fn epochs_are_whole_intervals() {
    assert_eq!(epoch_of(0.0, 300.0), 0);
    assert_eq!(epoch_of(299.9, 300.0), 0);
    assert_eq!(epoch_of(300.0, 300.0), 1);
    assert_eq!(epoch_of(-5.0, 300.0), 0);
    assert_eq!(epoch_of(f64::NAN, 300.0), 0);
}

fn request(i: u32, attacker: &str, victim: &str, ts: f64, uri: &str) -> EngineEvent {
    EngineEvent::HttpRequest(HttpRequest {
        ts,
        uid: format!("C{i}"),
        id: ConnId {
            orig_h: attacker.parse().unwrap(),
            orig_p: 40000 + (i % 20000) as u16,
            resp_h: victim.parse().unwrap(),
            resp_p: 80,
            proto: Proto::Tcp,
        },
        method: Some("GET".into()),
        host: None,
        uri: Some(uri.into()),
        user_agent: None,
        // What the HTTP analyzer tags when sqli runs.
        tags: if is_sql_injection_bytes(uri.as_bytes()) { vec![URI_SQLI] } else { vec![] },
    })
}

/// notice.log rows as (note, uid, src, dst, ts).
fn notices(logs: &[LogRecord]) -> Vec<(String, String, String, String, String)> {
    let text = |r: &LogRecord, c: &str| r.get(c).map(Value::to_tsv).unwrap_or_default();
    let mut rows: Vec<_> = logs
        .iter()
        .filter(|r| r.schema.path == "notice")
        .map(|r| (text(r, "note"), text(r, "uid"), text(r, "src"), text(r, "dst"), text(r, "ts")))
        .collect();
    rows.sort();
    rows
}

fn run(layout: LocalLayout, events: &[EngineEvent]) -> Vec<LogRecord> {
    let mut hub = LocalHub::new(vec![Box::new(SqlInjection)], DetectConfig::default(), layout);
    for (i, ev) in events.iter().enumerate() {
        hub.engine(i % layout.workers, ev);
    }
    hub.finish();
    hub.take_logs()
}

const T0: f64 = 1_767_225_600.0;
const INJECTION: &str = "/login.php?user=1' or 1=1 --";

#[test]
fn the_threshold_raises_attacker_and_victim_once_per_epoch() {
    // 49 injections and harmless requests: nothing; the 50th raises both notices, with its uid and endpoints.
    let mut events: Vec<EngineEvent> = (0..49)
        .map(|i| request(i, "45.1.1.1", "10.0.0.80", T0 + f64::from(i), INJECTION))
        .chain((100..200).map(|i| request(i, "45.1.1.1", "10.0.0.80", T0 + 0.5, "/index.php?id=7")))
        .collect();
    assert!(notices(&run(LocalLayout::default(), &events)).is_empty());
    events.push(request(49, "45.1.1.1", "10.0.0.80", T0 + 49.0, INJECTION));
    // More in the same epoch raise nothing more.
    events.extend((50..80).map(|i| request(i, "45.1.1.1", "10.0.0.80", T0 + f64::from(i), INJECTION)));
    let expected = vec![
        (
            ATTACKER.to_string(),
            "C49".to_string(),
            "45.1.1.1".to_string(),
            "10.0.0.80".to_string(),
            format!("{:.6}", T0 + 49.0),
        ),
        (
            VICTIM.to_string(),
            "C49".to_string(),
            "45.1.1.1".to_string(),
            "10.0.0.80".to_string(),
            format!("{:.6}", T0 + 49.0),
        ),
    ];
    let logs = run(LocalLayout::default(), &events);
    assert_eq!(notices(&logs), expected);
    let notice = logs.iter().find(|r| r.schema.path == "notice").unwrap();
    assert_eq!(notice.get("msg").map(Value::to_tsv).as_deref(), Some("An SQL injection attacker was discovered!"));
    assert_eq!(notice.get("id.orig_h"), Some(&Value::Unset), "the script gives no $conn");
    assert_eq!(notice.get("p"), Some(&Value::Unset));
    // However the keys spread over proxies and workers.
    for (proxies, workers) in [(2, 3), (3, 2), (5, 1)] {
        assert_eq!(notices(&run(LocalLayout { proxies, workers }, &events)), expected, "{proxies}/{workers}");
    }
}

#[test]
fn sums_start_again_each_epoch_and_notices_stay_suppressed_for_an_hour() {
    // 30 injections in each of two epochs (T0 is a multiple of 300 s): neither reaches 50.
    let split: Vec<EngineEvent> =
        (0..60).map(|i| request(i, "45.1.1.1", "10.0.0.80", T0 + 270.0 + f64::from(i), INJECTION)).collect();
    assert!(notices(&run(LocalLayout::default(), &split)).is_empty());
    // 60 in an epoch, then 60 in the next: the second crossing is suppressed (identifier = the host, one hour),
    // unless suppression ends sooner.
    let twice: Vec<EngineEvent> =
        (0..120).map(|i| request(i, "45.1.1.1", "10.0.0.80", T0 + f64::from(i) * 5.0, INJECTION)).collect();
    assert_eq!(notices(&run(LocalLayout::default(), &twice)).len(), 2);
    let short = DetectConfig::from_yaml("notice: { suppress_for: 60 }").unwrap();
    let mut hub = LocalHub::new(vec![Box::new(SqlInjection)], short, LocalLayout::default());
    for ev in &twice {
        hub.engine(0, ev);
    }
    hub.finish();
    let rows = notices(&hub.take_logs());
    let times: Vec<&str> = rows.iter().map(|r| r.4.as_str()).collect();
    let (first, second) = (format!("{:.6}", T0 + 245.0), format!("{:.6}", T0 + 545.0));
    // Sorted by note, then uid: C109 (the second crossing) before C49.
    assert_eq!(times, [&second, &first, &second, &first], "{rows:?}");
    // Two attackers against one victim: the victim's sum reaches 50 first.
    let two: Vec<EngineEvent> = (0..50)
        .map(|i| {
            request(i, if i % 2 == 0 { "45.1.1.1" } else { "45.2.2.2" }, "10.0.0.80", T0 + f64::from(i), INJECTION)
        })
        .collect();
    let rows = notices(&run(LocalLayout::default(), &two));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2.as_str(), rows[0].3.as_str()), (VICTIM, "45.2.2.2", "10.0.0.80"));
}

#[test]
fn the_threshold_and_interval_are_settings() {
    let cfg = DetectConfig::from_settings(
        &[
            ("HTTP::sqli_requests_threshold".to_string(), serde_json::Value::from(3)),
            ("HTTP::sqli_requests_interval".to_string(), serde_json::Value::from("10m")),
        ]
        .into(),
    )
    .unwrap();
    assert_eq!((cfg.http.sqli_requests_threshold, cfg.http.sqli_requests_interval), (3.0, 600.0));
    let d = DetectConfig::default().http;
    assert_eq!((d.sqli_requests_threshold, d.sqli_requests_interval), (50.0, 300.0));
    let mut hub = LocalHub::new(vec![Box::new(SqlInjection)], cfg, LocalLayout::default());
    for i in 0..3 {
        hub.engine(0, &request(i, "45.1.1.1", "10.0.0.80", T0 + f64::from(i), INJECTION));
    }
    hub.finish();
    assert_eq!(notices(&hub.take_logs()).len(), 2);
}

/// The tag goes on through the one rule that picks a node's analyses (`DetectArgs::build`), for `sqli` only.
#[test]
fn only_the_sqli_analysis_has_requests_tagged() {
    use crate::cluster::layout::AnalysisSection;
    use crate::detect::cluster::DetectArgs;
    let args = |names: &[&str]| DetectArgs {
        detect: Some(names.iter().map(|n| n.to_string()).collect()),
        ..DetectArgs::default()
    };
    let mut engine = crate::config::AnalysisConfig::default();
    assert!(engine.http_uri_tags.is_empty(), "off by default");
    args(&["dos", "scan"]).build(&mut engine, &AnalysisSection::default()).unwrap();
    assert!(engine.http_uri_tags.is_empty());
    for _ in 0..2 {
        args(&["all"]).build(&mut engine, &AnalysisSection::default()).unwrap();
    }
    assert_eq!(engine.http_uri_tags.len(), 1, "once");
    let (tag, applies) = engine.http_uri_tags[0];
    assert_eq!(tag, "HTTP::URI_SQLI");
    assert!(applies(b"/a?b=1' or 1=1 --") && !applies(b"/a?b=1"));
}
