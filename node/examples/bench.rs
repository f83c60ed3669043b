//! Offline throughput benchmark: one analysis thread, all analyzers, over a pcap (the benchmark mix of
//! `../shared/tools/gen_mix.py`), the median of N runs; then `ndpiReader` on the same file for the ratio.
//!
//! ```text
//! cargo run --release -p zeek-node --example bench -- target/bench/mix.pcap [--runs N] [--ndpi-runs M]
//! ```
//! (scripts/bench.sh generates the mix and runs this.)
//!
//! What is measured per run: reading the file through libpcap, `Engine::process_packet` for every frame,
//! `Engine::finish`, and formatting every record as Zeek TSV into memory (the log writing minus the disk).
//! Rates are per core: packets (and wire bytes, connections) divided by the thread's CPU time; wall-clock rates
//! are printed too. Memory: peak RSS of the process, and bytes per tracked connection measured with a counting
//! global allocator: (live heap − heap before the first packet) / open connections, at the sample with the
//! most open connections (sampled every 16384 packets). That covers the connection table, analyzer state and
//! reassembly buffers, but not memory libpcap allocates with malloc. Bytes are counted in a pass of their own
//! before the timed runs (`--no-memory` skips it): the count is an atomic add per allocation and free, which the
//! zeek-node binary does not do, so the timed runs do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use zeek_node::capture::{Next, PcapSource};
use zeek_node::config::AnalysisConfig;
use zeek_node::engine::Engine;
use zeek_node::logs::format_record_tsv;

/// The zeek-node binary's allocator (mimalloc), counting live heap bytes. With `BENCH_SYSTEM_ALLOC=1` in the
/// environment it counts over the system allocator instead, so `valgrind --tool=massif` (which only sees malloc)
/// can break the heap down by call site.
struct CountingAlloc;

static LIVE_HEAP: AtomicIsize = AtomicIsize::new(0);

/// Whether allocations are counted into [`LIVE_HEAP`] (only during the memory pass).
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Adds `grown` and takes `shrunk` bytes from the live heap while counting (one atomic step).
#[inline(always)]
fn count(grown: usize, shrunk: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_HEAP.fetch_add(grown as isize - shrunk as isize, Ordering::Relaxed);
    }
}

/// Which allocator backs [`CountingAlloc`], chosen at the first allocation: 0 not yet chosen, 1 mimalloc, 2 system.
static BACKEND: AtomicU8 = AtomicU8::new(0);

fn use_system_alloc() -> bool {
    match BACKEND.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: a NUL-terminated name; getenv does not allocate (std::env would, inside the allocator).
            let set = unsafe { !libc::getenv(c"BENCH_SYSTEM_ALLOC".as_ptr()).is_null() };
            BACKEND.store(if set { 2 } else { 1 }, Ordering::Relaxed);
            set
        }
        b => b == 2,
    }
}

// SAFETY: delegates to mimalloc or the system allocator (the same one for the whole process) and only adds
// bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: same contract as the caller's.
        unsafe { if use_system_alloc() { System.alloc(layout) } else { zeek_node::alloc::Mimalloc.alloc(layout) } }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, layout.size());
        // SAFETY: same contract as the caller's.
        unsafe {
            if use_system_alloc() {
                System.dealloc(ptr, layout)
            } else {
                zeek_node::alloc::Mimalloc.dealloc(ptr, layout)
            }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: same contract as the caller's.
        unsafe {
            if use_system_alloc() {
                System.alloc_zeroed(layout)
            } else {
                zeek_node::alloc::Mimalloc.alloc_zeroed(layout)
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size, layout.size());
        // SAFETY: same contract as the caller's.
        unsafe {
            if use_system_alloc() {
                System.realloc(ptr, layout, new_size)
            } else {
                zeek_node::alloc::Mimalloc.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SAMPLE_EVERY: u64 = 16384;

struct Args {
    pcap: PathBuf,
    runs: usize,
    ndpi_runs: usize,
    /// Run the memory pass (bytes per connection) before the timed runs.
    memory: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut pcap = None;
    let mut runs = 5;
    let mut ndpi_runs = None;
    let mut memory = true;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--runs" => runs = number("--runs")?.max(1),
            "--ndpi-runs" => ndpi_runs = Some(number("--ndpi-runs")?),
            "--no-memory" => memory = false,
            "--bench" => {} // passed by `cargo bench`
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => pcap = Some(PathBuf::from(arg)),
        }
    }
    let pcap = pcap.ok_or("usage: bench PCAP [--runs N] [--ndpi-runs M] [--no-memory]")?;
    Ok(Args { pcap, runs, ndpi_runs: ndpi_runs.unwrap_or(runs), memory })
}

/// One timed pass over the trace.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    packets: u64,
    wire_bytes: u64,
    connections: u64,
    records: u64,
    wall: Duration,
    cpu: Duration,
    peak_open_connections: u64,
    bytes_per_connection: Option<f64>,
}

fn thread_cpu_time() -> Duration {
    // SAFETY: plain old data, filled by the kernel.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One pass over the trace; with `count_memory` the allocator counts the live heap and the pass samples bytes per
/// connection (its rates are not used: counting costs an atomic step per allocation and free).
fn analyse(pcap: &Path, count_memory: bool) -> Result<Run, String> {
    COUNTING.store(count_memory, Ordering::Relaxed);
    let mut source = PcapSource::open_file(pcap, None).map_err(|e| e.to_string())?;
    let link = source.link_type();
    let heap_before = LIVE_HEAP.load(Ordering::Relaxed);
    let mut engine = Engine::new(AnalysisConfig::default());
    let mut tsv = String::with_capacity(1 << 16);
    let mut run = Run::default();
    let (wall0, cpu0) = (Instant::now(), thread_cpu_time());
    let mut format_records = |engine: &mut Engine, run: &mut Run| {
        for record in engine.drain_records() {
            format_record_tsv(&mut tsv, &record);
            run.records += 1;
        }
        tsv.clear();
    };
    loop {
        match source.next_packet().map_err(|e| e.to_string())? {
            Next::Packet(p) => engine.process_packet(p.ts, link, p.data),
            Next::Idle => continue,
            Next::End | Next::Truncated(_) => break,
        }
        if engine.pending_records() > 0 {
            format_records(&mut engine, &mut run);
        }
        run.packets += 1;
        if count_memory && run.packets % SAMPLE_EVERY == 0 {
            sample_memory(&engine, heap_before, &mut run);
        }
    }
    engine.finish();
    format_records(&mut engine, &mut run);
    COUNTING.store(false, Ordering::Relaxed);
    run.wall = wall0.elapsed();
    run.cpu = thread_cpu_time().saturating_sub(cpu0);
    let stats = engine.stats();
    run.wire_bytes = stats.bytes;
    run.connections = stats.connections;
    Ok(run)
}

fn sample_memory(engine: &Engine, heap_before: isize, run: &mut Run) {
    let open = engine.stats().active_connections;
    if open > run.peak_open_connections {
        let heap = (LIVE_HEAP.load(Ordering::Relaxed) - heap_before).max(0);
        run.peak_open_connections = open;
        run.bytes_per_connection = Some(heap as f64 / open as f64);
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One ndpiReader run: wall-clock and CPU time, and peak RSS of that process.
struct NdpiRun {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

fn cpu_of(u: &libc::rusage) -> Duration {
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Runs ndpiReader and collects its own resource usage with wait4 (RUSAGE_CHILDREN would also count whatever
/// this process's parent image ran before exec, e.g. the cargo build in scripts/bench.sh).
fn run_ndpi(pcap: &Path) -> Result<NdpiRun, String> {
    let start = Instant::now();
    // -q: no per-protocol report, only the analysis.
    let child = Command::new("ndpiReader")
        .arg("-q")
        .arg("-i")
        .arg(pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("ndpiReader: {e} (Debian package libndpi-bin)"))?;
    let mut status = 0;
    // SAFETY: plain old data, filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; valid pointers.
    let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if rc < 0 {
        return Err(format!("waiting for ndpiReader: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("ndpiReader failed (wait status {status})"));
    }
    Ok(NdpiRun { wall, cpu: cpu_of(&usage), max_rss_kib: usage.ru_maxrss as u64 })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let memory = if args.memory {
        match analyse(&args.pcap, true) {
            Ok(run) => Some(run),
            Err(e) => {
                eprintln!("bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let mut runs = Vec::with_capacity(args.runs);
    for i in 0..args.runs {
        match analyse(&args.pcap, false) {
            Ok(run) => {
                println!(
                    "run {}: {} packets, {} connections, {} records in {:.2} s CPU ({:.2} s wall)",
                    i + 1,
                    run.packets,
                    run.connections,
                    run.records,
                    run.cpu.as_secs_f64(),
                    run.wall.as_secs_f64()
                );
                runs.push(run);
            }
            Err(e) => {
                eprintln!("bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let first = runs[0];
    let rate = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let pps = rate(&|r| r.packets as f64 / r.cpu.as_secs_f64());
    let gbps = rate(&|r| r.wire_bytes as f64 * 8.0 / r.cpu.as_secs_f64() / 1e9);
    let cps = rate(&|r| r.connections as f64 / r.cpu.as_secs_f64());
    let wall_pps = rate(&|r| r.packets as f64 / r.wall.as_secs_f64());
    let rss_mib = peak_rss_kib().map_or(f64::NAN, |k| k as f64 / 1024.0);

    println!("\nzeek-node, 1 thread, all analyzers, median of {} runs (per core = per CPU second):", runs.len());
    println!("  packets/s        {:>12.0}   (wall clock: {wall_pps:.0})", pps);
    println!("  Gbit/s           {:>12.3}", gbps);
    println!("  connections/s    {:>12.0}", cps);
    println!("  peak RSS         {:>12.1} MiB", rss_mib);
    if let Some(memory) = memory {
        println!(
            "  bytes/connection {:>12.0}   (live heap / open connections at peak: {} open; counted in a pass of \
             its own)",
            memory.bytes_per_connection.unwrap_or(f64::NAN),
            memory.peak_open_connections
        );
    }

    let mut ndpi = Vec::new();
    for _ in 0..args.ndpi_runs {
        match run_ndpi(&args.pcap) {
            Ok(r) => ndpi.push(r),
            Err(e) => {
                println!("\nndpiReader: {e}; no ratio");
                break;
            }
        }
    }
    if !ndpi.is_empty() {
        let packets = first.packets as f64;
        let ndpi_cpu_pps = median(ndpi.iter().map(|r| packets / r.cpu.as_secs_f64()).collect());
        let ndpi_wall_pps = median(ndpi.iter().map(|r| packets / r.wall.as_secs_f64()).collect());
        let ndpi_rss_mib = ndpi.iter().map(|r| r.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        println!("\nndpiReader -q -i (same file), median of {} runs:", ndpi.len());
        println!("  packets/s        {:>12.0}   (per CPU second of the process)", ndpi_cpu_pps);
        println!("  packets/s        {:>12.0}   (wall clock)", ndpi_wall_pps);
        println!("  Gbit/s           {:>12.3}", first.wire_bytes as f64 * 8.0 / (packets / ndpi_cpu_pps) / 1e9);
        println!("  peak RSS         {:>12.1} MiB", ndpi_rss_mib);
        println!("\nratio zeek-node / ndpiReader (packets per CPU second): {:.2}", pps / ndpi_cpu_pps);
    }
    ExitCode::SUCCESS
}
