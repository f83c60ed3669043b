//! Test-only scenarios (`zeek-node run --test-scenario NAME`): small event emitters and observers that let the
//! integration tests (tests/cluster.rs) drive the five communication patterns, log shipping and proxy state with
//! real processes. Nothing here runs unless a test asks for it. Every observation is written as a `cluster_test`
//! log record, shipped to the loggers like any other log, so the tests read what the cluster really delivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::data::{Data, Event};
use super::node::{Node, Received};
use super::role::Role;
use super::topic;
use crate::logs::{LogRecord, Schema, Value, f};

pub static TEST_LOG: Schema = Schema {
    path: "cluster_test",
    fields: &[f("ts", "time"), f("node", "string"), f("event", "string"), f("detail", "string"), f("n", "count")],
};

/// Scenario names and their `key=value` arguments.
#[derive(Debug, Clone, Default)]
pub struct Scenarios {
    pub names: Vec<String>,
    pub args: HashMap<String, String>,
}

impl Scenarios {
    pub fn parse(names: &[String], args: &[String]) -> anyhow::Result<Scenarios> {
        let mut s = Scenarios { names: names.to_vec(), args: HashMap::new() };
        for a in args {
            let (k, v) = a.split_once('=').ok_or_else(|| anyhow::anyhow!("--test-arg wants KEY=VALUE, not {a}"))?;
            s.args.insert(k.to_string(), v.to_string());
        }
        for n in &s.names {
            if !["patterns", "emit", "counter"].contains(&n.as_str()) {
                anyhow::bail!("unknown test scenario '{n}' (patterns, emit, counter)");
            }
        }
        Ok(s)
    }

    fn num(&self, key: &str, default: u64) -> u64 {
        self.args.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// Writes one observation.
pub fn observe(node: &Node, event: &str, detail: &str, n: u64) {
    let record = LogRecord::new(
        &TEST_LOG,
        vec![
            Value::Time(node.wall_time()),
            Value::str(node.name()),
            Value::str(event),
            Value::str(detail),
            Value::Count(n),
        ],
    );
    node.log(vec![record]);
}

fn node_number(name: &str) -> u64 {
    name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(1)
}

fn arg_count(r: &Received, i: usize) -> u64 {
    r.event.args.get(i).and_then(Data::as_count).unwrap_or(0)
}

fn arg_str(r: &Received, i: usize) -> String {
    r.event.args.get(i).and_then(Data::as_str).unwrap_or_default().to_string()
}

/// Installs the scenarios' handlers. Returns a task whose end means "this node's work is done" (the node then
/// leaves), or `None` if the node should run until it is stopped.
pub fn install(node: &Node, s: &Scenarios) -> Option<tokio::task::JoinHandle<()>> {
    if s.has("patterns") {
        patterns(node);
    }
    if s.has("counter") {
        counter_handlers(node);
    }
    let mut done = None;
    if s.has("emit") && node.role() == Role::Worker {
        done = Some(tokio::spawn(emit(node.clone(), s.clone())));
    }
    if s.has("counter") && node.role() == Role::Worker {
        done = Some(tokio::spawn(count(node.clone(), s.clone())));
    }
    done
}

async fn after_ready(node: &Node) {
    if !node.wait_ready(Duration::from_secs(60)).await {
        tracing::warn!("test scenario: the cluster did not get ready; going on");
    }
    // Let the direct links come up as well (messages would be relayed by the manager meanwhile).
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The five communication patterns of DESIGN.md §1, plus a node-topic publish for the isolation test.
fn patterns(node: &Node) {
    type Simple = fn(&Node, &Received);
    let handlers: &[(&str, Simple)] = &[
        ("Test::intel", |n, r| observe(n, "intel", &arg_str(r, 0), 0)),
        ("Test::finding", |n, r| observe(n, "finding", r.origin(), 0)),
        ("Test::hrw", |n, r| observe(n, "hrw", r.origin(), arg_count(r, 0))),
        ("Test::rr", |n, r| observe(n, "rr", r.origin(), arg_count(r, 0))),
        ("Test::url", |n, r| {
            observe(n, "url", &arg_str(r, 0), 0);
            let _ = n.publish(topic::WORKER, Event::new("Test::url_seen", r.event.args.clone()));
        }),
        ("Test::url_seen", |n, r| observe(n, "url_seen", &arg_str(r, 0), 0)),
        ("Test::direct", |n, r| observe(n, "direct", r.origin(), 0)),
        ("Test::count_request", |n, _| {
            let reply = Event::new("Test::count_reply", vec![Data::Count(node_number(n.name()))]);
            let _ = n.publish(topic::MANAGER, reply);
        }),
    ];
    for (name, h) in handlers {
        let h = *h;
        node.on(name, Arc::new(move |n: &Node, r: &Received| h(n, r)));
    }
    // Pattern 5's aggregate on the manager: replies and their sum.
    let tally = Arc::new(Mutex::new((0u64, 0u64)));
    node.on(
        "Test::count_reply",
        Arc::new(move |n: &Node, r: &Received| {
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            t.0 += 1;
            t.1 += arg_count(r, 0);
            observe(n, "count_reply", r.origin(), arg_count(r, 0));
            if t.0 == n.view().pool(Role::Worker).len() as u64 {
                observe(n, "count_total", "", t.1);
            }
        }),
    );
    let node = node.clone();
    tokio::spawn(async move {
        after_ready(&node).await;
        match node.role() {
            Role::Manager => {
                let _ = node.publish(topic::WORKER, Event::new("Test::intel", vec![Data::Str("evil.example".into())]));
                let _ = node.publish(topic::WORKER, Event::new("Test::count_request", vec![]));
                let _ = node.publish(&topic::node_topic("worker-10"), Event::new("Test::direct", vec![]));
            }
            Role::Worker => {
                let _ = node.publish(topic::MANAGER, Event::new("Test::finding", vec![Data::Str(node.name().into())]));
                for k in 0..20u64 {
                    let _ =
                        node.publish_hrw(Role::Proxy, &Data::Count(k), Event::new("Test::hrw", vec![Data::Count(k)]));
                    let _ = node.publish_rr(Role::Proxy, "test", Event::new("Test::rr", vec![Data::Count(k)]));
                }
                if node_number(node.name()) == 1 {
                    let url = Data::Str("http://evil.example/click".into());
                    let _ = node.publish(topic::MANAGER, Event::new("Test::url", vec![url]));
                }
            }
            _ => {}
        }
    });
}

/// Emits `emit_count` numbered records at `emit_rate` per second (0 = as fast as the shipper takes them).
async fn emit(node: Node, s: Scenarios) {
    after_ready(&node).await;
    let total = s.num("emit_count", 10_000);
    let rate = s.num("emit_rate", 0);
    let chunk = 500u64;
    let started = std::time::Instant::now();
    let mut sent = 0;
    while sent < total {
        let n = chunk.min(total - sent);
        let records = (sent..sent + n)
            .map(|i| {
                LogRecord::new(
                    &TEST_LOG,
                    vec![
                        Value::Time(node.wall_time()),
                        Value::str(node.name()),
                        Value::str("emit"),
                        Value::str(""),
                        Value::Count(i),
                    ],
                )
            })
            .collect();
        node.log(records);
        sent += n;
        let due = if rate > 0 {
            Duration::from_secs_f64(sent as f64 / rate as f64)
        } else {
            Duration::from_millis(sent / chunk)
        };
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    observe(&node, "emit_done", "", total);
}

fn counter_handlers(node: &Node) {
    node.on(
        "Test::incr",
        Arc::new(|n: &Node, r: &Received| {
            if let Some(key) = r.event.args.first() {
                n.state().incr("test_counts", key, 1, 0.0);
            }
        }),
    );
    node.on(
        "Test::dump",
        Arc::new(|n: &Node, _r: &Received| {
            let entries: Vec<(u64, u64)> = n
                .state()
                .entries("test_counts")
                .iter()
                .map(|e| (e.key.as_count().unwrap_or(u64::MAX), e.value.count().unwrap_or(0)))
                .collect();
            for (k, c) in entries {
                observe(n, "count", &k.to_string(), c);
            }
            observe(n, "dump_done", "", 0);
        }),
    );
}

/// Sends `counter_total` increments spread over `counter_keys` keys by HRW to the proxies, paced at
/// `counter_rate` per second, then asks every proxy to dump its counts.
async fn count(node: Node, s: Scenarios) {
    after_ready(&node).await;
    let total = s.num("counter_total", 6000);
    let keys = s.num("counter_keys", 50).max(1);
    let rate = s.num("counter_rate", 1000).max(1);
    let started = std::time::Instant::now();
    for i in 0..total {
        let key = Data::Count(i % keys);
        if let Err(e) = node.publish_hrw(Role::Proxy, &key, Event::new("Test::incr", vec![key.clone()])) {
            observe(&node, "incr_error", &e.to_string(), i);
        }
        if i % 50 == 49 {
            let due = Duration::from_secs_f64((i + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    observe(&node, "incr_done", "", total);
    tokio::time::sleep(Duration::from_millis(s.num("settle_ms", 2000))).await;
    let _ = node.publish(topic::PROXY, Event::new("Test::dump", vec![]));
    tokio::time::sleep(Duration::from_secs(1)).await;
}
