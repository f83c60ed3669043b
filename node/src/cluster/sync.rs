//! Offline clusters follow packet time (`zeek-node cluster -r`): the workers of a trace run are held at time
//! barriers, so whatever one node's analysis causes on another (a URL the manager hands to every worker, a scanner
//! the workers stop reporting, an FTP data channel announced on one worker and seen on another) has happened before
//! any worker analyses packets later than the barrier, as it would live.
//!
//! The protocol, with the manager as coordinator:
//!
//! 1. A worker analyses its packets up to the granted time. At the first packet at or after it, the worker sends
//!    `Sync::reached(name, ts)` to the manager and waits (a worker at the end of its trace reports `+inf`).
//! 2. Once every worker of the view waits, the manager settles the cluster in *waves*: it sends
//!    `Sync::flush(wave, time, participants)` to every participant (manager, proxies, workers); each one moves its
//!    analyses' clock to `time` and sends `Sync::mark(wave, me)` to every other participant, on the same routes
//!    its events take, so a mark arrives after everything its sender published before it. A participant that has
//!    every mark of the wave reports `Sync::settled(wave, me, handled)`: the cluster events its analyses handled
//!    since its previous report. A wave in which nobody handled anything proves every event is delivered (the
//!    classic counting argument: any undelivered event was published while handling one, which a report counts).
//! 3. The manager grants the next barrier, `Sync::grant(until, n)` (`n` counts grants): one interval after the
//!    earliest waiting worker's packet. Every worker then does what needs the settled cluster (FTP data
//!    connections analysed again now that other workers' expectations are in, records released that waited for
//!    other workers' reports: `worker.rs`); workers whose next packet is before `until` go on, the others report
//!    `Sync::reached` again. Every wave thus follows every worker's barrier work of the previous grant, and what
//!    that work published is delivered by the next wave.
//!
//! Waves that do not complete (a node left) are restarted with the new view; a worker that hears nothing from the
//! manager for [`GRANT_TIMEOUT`], or gets no grant in [`MAX_GRANT_WAIT`], stops waiting and goes on
//! unsynchronised, so a dead manager or a wave that cannot complete never stalls a run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::data::{Data, Event};
use super::node::{Node, Received, lock};
use super::role::Role;
use super::topic;

pub const REACHED: &str = "Sync::reached";
pub const GRANT: &str = "Sync::grant";
pub const FLUSH: &str = "Sync::flush";
pub const MARK: &str = "Sync::mark";
pub const SETTLED: &str = "Sync::settled";

/// A wave that has not completed in this long is started again (with the current view's members), at once when a
/// participant left the view. Each restart of the same wave waits twice as long, up to [`MAX_WAVE_TIMEOUT`]: on a
/// loaded machine a wave may take longer than this, and restarting it on a fixed period threw its late reports
/// away again and again.
const WAVE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_WAVE_TIMEOUT: Duration = Duration::from_secs(32);
/// A worker that has not heard from the manager in this long while it waits for a grant gives up on barriers. A
/// manager that is only slow (a loaded machine) is waited for: giving up changes the logs (an event from another
/// worker may then come after the packets it was meant for).
pub const GRANT_TIMEOUT: Duration = Duration::from_secs(30);
/// A worker that has had no grant in this long gives up on barriers even while it hears the manager: its waves do
/// not complete (a node whose link passes heartbeats but not the waves' messages), and an offline run must end.
/// Waves restarted with growing patience complete well within it on a loaded machine.
pub const MAX_GRANT_WAIT: Duration = Duration::from_secs(60);

/// Cluster events handled by this node's analyses (and by the worker's expectation handler), counted for the
/// waves: a node reports how many it handled since its previous report.
#[derive(Clone, Default)]
pub struct Activity(Arc<AtomicU64>);

impl Activity {
    pub fn handled(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// What a participant does when a wave starts: move its analyses' clock to the barrier's packet time.
pub type OnFlush = Arc<dyn Fn(&Node, f64) + Send + Sync>;

#[derive(Default)]
struct Participant {
    wave: u64,
    expected: BTreeSet<String>,
    marks: BTreeMap<u64, BTreeSet<String>>,
    reported: bool,
}

/// Makes this node take part in the waves (every role but loggers). `on_flush` runs before the marks go out.
pub fn participate(node: &Node, activity: Activity, on_flush: OnFlush) {
    let state = Arc::new(Mutex::new(Participant::default()));
    let st = Arc::clone(&state);
    let act = activity.clone();
    node.on(
        FLUSH,
        Arc::new(move |n: &Node, r: &Received| {
            let (Some(wave), Some(time), Some(Data::Vector(names))) =
                (arg_count(r, 0), arg_f64(r, 1), r.event.args.get(2))
            else {
                return;
            };
            on_flush(n, time);
            let mut p = lock(&st);
            if wave < p.wave {
                return;
            }
            let others: BTreeSet<String> =
                names.iter().filter_map(Data::as_str).filter(|m| *m != n.name()).map(str::to_string).collect();
            for other in &others {
                let mark = Event::new(MARK, vec![Data::Count(wave), Data::Str(n.name().to_string())]);
                if let Err(e) = n.publish(&topic::node_topic(other), mark) {
                    tracing::debug!(peer = %other, "sync mark not sent: {e}");
                }
            }
            p.wave = wave;
            p.expected = others;
            p.reported = false;
            p.marks.retain(|w, _| *w >= wave);
            report_if_complete(n, &mut p, &act);
        }),
    );
    node.on(
        MARK,
        Arc::new(move |n: &Node, r: &Received| {
            let (Some(wave), Some(from)) = (arg_count(r, 0), r.event.args.get(1).and_then(Data::as_str)) else {
                return;
            };
            let mut p = lock(&state);
            if wave < p.wave {
                return;
            }
            p.marks.entry(wave).or_default().insert(from.to_string());
            report_if_complete(n, &mut p, &activity);
        }),
    );
}

fn report_if_complete(node: &Node, p: &mut Participant, activity: &Activity) {
    if p.reported || p.wave == 0 {
        return;
    }
    let have = p.marks.get(&p.wave);
    if !p.expected.iter().all(|m| have.is_some_and(|h| h.contains(m))) {
        return;
    }
    p.reported = true;
    let handled = activity.take();
    let settled =
        Event::new(SETTLED, vec![Data::Count(p.wave), Data::Str(node.name().to_string()), Data::Count(handled)]);
    if let Err(e) = node.publish(topic::MANAGER, settled) {
        tracing::debug!("sync report not sent: {e}");
    }
}

fn arg_count(r: &Received, i: usize) -> Option<u64> {
    r.event.args.get(i).and_then(Data::as_count)
}

fn arg_f64(r: &Received, i: usize) -> Option<f64> {
    match r.event.args.get(i)? {
        Data::Double(v) | Data::Time(v) => Some(*v),
        _ => None,
    }
}

/// The next barrier after a worker's packet at `ts`: the end of its `interval`-long slot of packet time.
pub fn next_barrier(ts: f64, interval: f64) -> f64 {
    if !ts.is_finite() {
        return f64::INFINITY;
    }
    ((ts / interval).floor() + 1.0) * interval
}

#[derive(Default)]
struct Coordinator {
    /// Workers that wait, with the time of their next packet.
    waiting: BTreeMap<String, f64>,
    wave: u64,
    /// The wave in progress: its participants, their reports, when it started.
    participants: BTreeSet<String>,
    reports: BTreeMap<String, u64>,
    started: Option<Instant>,
    /// How long the wave in progress may take before it is started again.
    patience: Duration,
    /// The earliest waiting packet time the wave settles for.
    time: f64,
    granted: f64,
    grants: u64,
}

/// The manager's side: collects the workers' reports, settles the cluster in waves and grants barriers.
pub fn coordinate(node: &Node, interval: f64) {
    let state = Arc::new(Mutex::new(Coordinator::default()));
    let st = Arc::clone(&state);
    node.on(
        REACHED,
        Arc::new(move |n: &Node, r: &Received| {
            let (Some(worker), Some(ts)) = (r.event.args.first().and_then(Data::as_str), arg_f64(r, 1)) else {
                return;
            };
            let mut c = lock(&st);
            c.waiting.insert(worker.to_string(), ts);
            maybe_start_wave(n, &mut c);
        }),
    );
    let st = Arc::clone(&state);
    node.on(
        SETTLED,
        Arc::new(move |n: &Node, r: &Received| {
            let (Some(wave), Some(name), Some(handled)) =
                (arg_count(r, 0), r.event.args.get(1).and_then(Data::as_str), arg_count(r, 2))
            else {
                return;
            };
            let mut c = lock(&st);
            if wave != c.wave || c.started.is_none() {
                return;
            }
            c.reports.insert(name.to_string(), handled);
            if c.participants.iter().all(|p| c.reports.contains_key(p)) {
                if c.reports.values().all(|h| *h == 0) {
                    c.started = None;
                    grant(n, &mut c, interval);
                } else {
                    start_wave(n, &mut c);
                }
            }
        }),
    );
    // A wave stuck on a node that left is started again; a worker that left is no longer waited for.
    let node = node.clone();
    tokio::spawn(async move {
        let mut shutdown = node.shutdown_signal();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            let mut c = lock(&state);
            match c.started {
                Some(at) if at.elapsed() > c.patience || participant_left(&node, &c) => {
                    tracing::info!(wave = c.wave, waited = ?at.elapsed(), "sync wave incomplete; starting it again");
                    let patience = (c.patience * 2).min(MAX_WAVE_TIMEOUT);
                    start_wave(&node, &mut c);
                    c.patience = patience;
                }
                Some(_) => {}
                None => maybe_start_wave(&node, &mut c),
            }
        }
    });
}

/// Whether a node the wave in progress waits for is no longer in the view (it will never report).
fn participant_left(node: &Node, c: &Coordinator) -> bool {
    let view = node.view();
    c.participants.iter().any(|p| !c.reports.contains_key(p) && !view.members.iter().any(|m| &m.name == p))
}

fn maybe_start_wave(node: &Node, c: &mut Coordinator) {
    if c.started.is_some() {
        return;
    }
    let view = node.view();
    let workers = view.pool(Role::Worker);
    if workers.is_empty() || !workers.iter().all(|w| c.waiting.contains_key(*w)) {
        return;
    }
    c.time = workers.iter().filter_map(|w| c.waiting.get(*w)).copied().fold(f64::INFINITY, f64::min);
    start_wave(node, c);
}

fn start_wave(node: &Node, c: &mut Coordinator) {
    let view = node.view();
    c.wave += 1;
    c.participants = view.members.iter().filter(|m| m.role != Role::Logger).map(|m| m.name.clone()).collect();
    c.reports.clear();
    c.started = Some(Instant::now());
    c.patience = WAVE_TIMEOUT;
    let names = c.participants.iter().map(|p| Data::Str(p.clone())).collect();
    // The analyses' clocks move to the barrier; a finished trace leaves them where they are.
    let time = if c.time.is_finite() { c.time } else { 0.0 };
    let flush = Event::new(FLUSH, vec![Data::Count(c.wave), Data::Double(time), Data::Vector(names)]);
    for p in c.participants.clone() {
        let sent = if p == node.name() {
            node.publish(topic::MANAGER, &flush)
        } else {
            node.publish(&topic::node_topic(&p), &flush)
        };
        if let Err(e) = sent {
            tracing::debug!(peer = %p, "sync flush not sent: {e}");
        }
    }
}

fn grant(node: &Node, c: &mut Coordinator, interval: f64) {
    let until = next_barrier(c.time, interval);
    c.granted = until;
    c.grants += 1;
    // Every worker reports again after its barrier work, even one whose next packet is still beyond `until`.
    c.waiting.clear();
    if let Err(e) = node.publish(topic::WORKER, Event::new(GRANT, vec![Data::Double(until), Data::Count(c.grants)])) {
        tracing::warn!("sync grant not sent: {e}");
    }
}

/// A barrier the cluster settled at: every worker had analysed its packets before `at`, and every event published
/// before the wave has been delivered. Packets before `next` may be analysed now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    pub at: f64,
    pub next: f64,
}

/// The latest grant a worker heard of.
#[derive(Default)]
struct Granted {
    until: f64,
    /// The manager's number for it.
    number: u64,
    /// Grants taken so far.
    taken: u64,
}

/// A worker's side: holds the packet loop at each barrier until the manager grants the next one.
#[derive(Clone)]
pub struct Gate {
    node: Node,
    granted: Arc<(Mutex<Granted>, Condvar)>,
    /// Set when the manager stopped answering: the worker runs on without barriers.
    off: Arc<AtomicBool>,
    /// Since when the worker has had no link to the manager while waiting (reset when it has one again).
    unlinked_since: Arc<Mutex<Option<Instant>>>,
}

impl Gate {
    /// Registers the grant handler on a worker.
    pub fn install(node: &Node) -> Gate {
        let gate =
            Gate { node: node.clone(), granted: Arc::default(), off: Arc::default(), unlinked_since: Arc::default() };
        let granted = Arc::clone(&gate.granted);
        node.on(
            GRANT,
            Arc::new(move |_: &Node, r: &Received| {
                let (Some(until), Some(number)) = (arg_f64(r, 0), arg_count(r, 1)) else { return };
                let (lock_, cv) = &*granted;
                let mut g = lock(lock_);
                // A restarted manager numbers from 1 again: its grants count when they move time on.
                if number > g.number || until > g.until {
                    *g = Granted { until, number, taken: g.taken + 1 };
                    cv.notify_all();
                }
            }),
        );
        gate
    }

    /// Whether a packet at `ts` may be analysed now without waiting.
    pub fn open_for(&self, ts: f64) -> bool {
        self.is_off() || ts < lock(&self.granted.0).until
    }

    /// Whether the worker gave up on barriers (the manager stopped answering).
    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::Relaxed)
    }

    /// Reports that this worker's next packet is at `ts` (`+inf`: the trace ended) and waits until the barrier
    /// after it is granted, or `stop` is set. Everything the worker published before must already be sent.
    /// `on_settled` runs at every grant, before the worker goes on or reports again. Called with `+inf` again
    /// after the trace ended, it waits for one more wave.
    pub fn wait(&self, ts: f64, stop: &AtomicBool, on_settled: &mut dyn FnMut(Settled)) {
        if self.open_for(ts) {
            return;
        }
        loop {
            let (at, seen) = {
                let g = lock(&self.granted.0);
                (g.until, g.taken)
            };
            let reached = Event::new(REACHED, vec![Data::Str(self.node.name().to_string()), Data::Double(ts)]);
            if let Err(e) = self.node.publish(topic::MANAGER, reached) {
                tracing::warn!("cannot reach the manager ({e}); going on without time barriers");
                self.off.store(true, Ordering::Relaxed);
                return;
            }
            let Some(next) = self.next_grant(seen, stop) else { return };
            on_settled(Settled { at, next });
            if ts < next || (ts.is_infinite() && next.is_infinite()) {
                return;
            }
        }
    }

    /// Waits for the grant after the `seen`-th; `None` when stopped, when the manager has been silent for
    /// [`GRANT_TIMEOUT`], or when no grant came in [`MAX_GRANT_WAIT`].
    fn next_grant(&self, seen: u64, stop: &AtomicBool) -> Option<f64> {
        let (lock_, cv) = &*self.granted;
        let waiting_since = Instant::now();
        let mut g = lock(lock_);
        while g.taken <= seen {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let silent = self.manager_silent_for();
            let waited = waiting_since.elapsed();
            if silent >= GRANT_TIMEOUT || waited >= MAX_GRANT_WAIT {
                tracing::error!(
                    "no time barrier granted in {waited:?} (the manager silent for {silent:?}); going on without \
                     them: events from other workers may now come after the packets they were meant for"
                );
                self.off.store(true, Ordering::Relaxed);
                return None;
            }
            g = cv.wait_timeout(g, Duration::from_millis(200)).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        Some(g.until)
    }

    /// How long the manager has said nothing on its link (heartbeats included), or since this wait began when
    /// there is no link to it.
    fn manager_silent_for(&self) -> Duration {
        let heard = self.node.link(self.node.manager_name()).map(|l| l.last_heard_ms());
        let mut unlinked_since = lock(&self.unlinked_since);
        match heard {
            Some(heard) => {
                *unlinked_since = None;
                Duration::from_millis(self.node.now_ms().saturating_sub(heard))
            }
            None => unlinked_since.get_or_insert_with(Instant::now).elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barriers_end_the_interval_of_a_packet() {
        assert_eq!(next_barrier(10.2, 1.0), 11.0);
        assert_eq!(next_barrier(11.0, 1.0), 12.0);
        assert_eq!(next_barrier(3.0, 5.0), 5.0);
        assert!(next_barrier(f64::INFINITY, 1.0).is_infinite());
    }
}
