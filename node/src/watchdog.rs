//! Notices a run's thread that stopped making progress: a parser caught in a loop, a log directory on a hung
//! filesystem. Such a thread analyses nothing more while the process still answers every probe, so the sensor
//! goes blind without anyone told. Zeek has its watchdog (`-W`) for the same reason.
//!
//! Each thread of a run holds a [`Progress`] and moves it on at points it passes often while it works (every few
//! thousand packets, every batch, every idle wake-up); a thread about to block waiting for input says so, since
//! waiting on an idle link is not being stuck. [`Watchdog::check`], called by whoever watches the run (the metrics
//! reporter, twice a second), names every thread that has been working on the same step for longer than the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a thread may work on one step before it counts as stalled, unless told otherwise (`--stall-limit`).
/// Well above the longest step a healthy node takes (writing out a large table's connections when a run ends).
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(30);

/// The low bit of a progress word: the thread is waiting for input, not working.
const WAITING: u64 = 1;

/// A thread's progress, as it reports it: its own step count, shifted up by one, with [`WAITING`] below.
pub struct Progress {
    word: Arc<AtomicU64>,
    steps: u64,
}

impl Progress {
    /// A handle nobody watches, for a run without a watchdog: the thread's code stays the same.
    pub fn unwatched() -> Self {
        Progress { word: Arc::default(), steps: 0 }
    }

    /// The thread moved on (and is working).
    #[inline]
    pub fn advanced(&mut self) {
        self.steps += 1;
        self.word.store(self.steps << 1, Ordering::Relaxed);
    }

    /// The thread is about to block until input arrives: however long that takes, it is not stuck.
    #[inline]
    pub fn waiting(&mut self) {
        self.word.store(self.steps << 1 | WAITING, Ordering::Relaxed);
    }
}

impl Drop for Progress {
    /// A thread that ended is not stuck either.
    fn drop(&mut self) {
        self.waiting();
    }
}

/// A thread that made no progress for at least the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub thread: String,
    pub since: Duration,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (no progress for {} s)", self.thread, self.since.as_secs())
    }
}

/// The threads of a run, and what the last check saw of each.
#[derive(Debug)]
pub struct Watchdog {
    limit: Duration,
    threads: Mutex<Vec<Watched>>,
}

#[derive(Debug)]
struct Watched {
    name: String,
    word: Arc<AtomicU64>,
    /// The word at the last check, and since when it has been that.
    seen: u64,
    since: Instant,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new(DEFAULT_STALL_LIMIT)
    }
}

impl Watchdog {
    pub fn new(limit: Duration) -> Self {
        Watchdog { limit, threads: Mutex::new(Vec::new()) }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The progress handle of a new thread called `name` ("analysis thread 1"); it starts out working.
    pub fn watch(&self, name: impl Into<String>) -> Progress {
        let word = Arc::new(AtomicU64::new(0));
        let watched = Watched { name: name.into(), word: Arc::clone(&word), seen: 0, since: Instant::now() };
        self.lock().push(watched);
        Progress { word, steps: 0 }
    }

    /// The threads that have been working on one step for at least the limit at `now`. Threads that ended are
    /// forgotten.
    pub fn check(&self, now: Instant) -> Vec<Stall> {
        let mut threads = self.lock();
        threads.retain(|t| Arc::strong_count(&t.word) > 1);
        let mut stalls = Vec::new();
        for t in threads.iter_mut() {
            let word = t.word.load(Ordering::Relaxed);
            if word != t.seen || word & WAITING != 0 {
                t.seen = word;
                t.since = now;
                continue;
            }
            let since = now.saturating_duration_since(t.since);
            if since >= self.limit {
                stalls.push(Stall { thread: t.name.clone(), since });
            }
        }
        stalls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_thread_on_one_step_past_the_limit_is_stalled() {
        let dog = Watchdog::new(LIMIT);
        let start = Instant::now();
        let mut worker = dog.watch("analysis thread 0");
        worker.advanced();
        assert!(dog.check(at(start, 0)).is_empty());
        assert!(dog.check(at(start, 29)).is_empty());
        let stalls = dog.check(at(start, 31));
        assert_eq!(stalls.len(), 1);
        assert_eq!(stalls[0].thread, "analysis thread 0");
        assert!(stalls[0].since >= Duration::from_secs(31), "{:?}", stalls[0]);
        // It moves on: no longer stalled, and the clock starts again.
        worker.advanced();
        assert!(dog.check(at(start, 32)).is_empty());
        assert!(dog.check(at(start, 61)).is_empty());
        assert_eq!(dog.check(at(start, 63)).len(), 1);
    }

    #[test]
    fn waiting_for_input_is_not_stalling() {
        let dog = Watchdog::new(LIMIT);
        let start = Instant::now();
        let mut reader = dog.watch("analysis thread 1");
        reader.waiting();
        assert!(dog.check(at(start, 0)).is_empty());
        assert!(dog.check(at(start, 3600)).is_empty(), "an idle link for an hour");
        // Input came, and the thread has been working on it since.
        reader.advanced();
        assert!(dog.check(at(start, 3601)).is_empty());
        assert_eq!(dog.check(at(start, 3640)).len(), 1);
    }

    #[test]
    fn only_the_stuck_thread_is_named_and_ended_threads_are_forgotten() {
        let dog = Watchdog::new(LIMIT);
        let start = Instant::now();
        let mut busy = dog.watch("capture thread 0");
        let _stuck = dog.watch("capture thread 1");
        let ended = dog.watch("log writer");
        dog.check(at(start, 0));
        busy.advanced();
        drop(ended);
        let stalls = dog.check(at(start, 40));
        assert_eq!(stalls.iter().map(|s| s.thread.as_str()).collect::<Vec<_>>(), ["capture thread 1"]);
        assert_eq!(dog.lock().len(), 2, "the ended thread is no longer watched");
    }
}
