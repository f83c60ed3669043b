//! The oracle fidelity test: runs the node on every case of the Zeek oracle (../shared/oracle/dev) the way Zeek
//! ran it, and compares our logs with Zeek's record by record and field by field.
//!
//! `cargo test -p zeek-node --test fidelity` prints a per-log match table, writes it to
//! `target/fidelity-report.md`, and fails when a log type's exact matches fall below `tests/fidelity_floor.toml`.
//! Environment:
//! * `ZEEK_ORACLE_DIR` — the folder holding the case folders (default `<workspace>/../shared/oracle/dev`).
//! * `ZEEK_FIDELITY_CASE=name[,name]` — run only these cases (the floor is not checked then).
//! * `ZEEK_FIDELITY_VERBOSE=1` — print every differing record pair, missing and extra record.
//! * `ZEEK_FIDELITY_DEFAULT=0` — skip the extra comparison with `zeek-default/` (full mode, real timestamps).
//! * `ZEEK_FIDELITY_TIMEOUT=secs` — per-run limit (default 30).
//!
//! See docs/FIDELITY.md.

#[path = "fidelity/case.rs"]
mod case;
#[path = "fidelity/matcher.rs"]
mod matcher;
#[path = "fidelity/report.rs"]
mod report;
#[path = "fidelity/runner.rs"]
mod runner;
#[path = "fidelity/tsv.rs"]
mod tsv;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use case::{Case, RunSettings};
use matcher::{IdMap, LogComparison, LogSet, compare_log};
use report::{Floor, Section};
use runner::{RunOutcome, run_node};
use tsv::ZeekLog;

/// The folder of oracle cases, if present (a clone without ../shared skips the test).
pub fn oracle_root() -> Option<PathBuf> {
    let dir = match std::env::var_os("ZEEK_ORACLE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/dev"),
    };
    dir.is_dir().then(|| dir.canonicalize().unwrap_or(dir))
}

/// Every case folder under `root`, sorted by name.
pub fn load_cases(root: &Path) -> Vec<Case> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs.iter().filter_map(|d| Case::load(d)).collect()
}

/// A log file's name without `.log` (`conn`, `conn.ignore_checksums_nets`).
pub fn log_name(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_suffix(".log").unwrap_or(&name).to_owned()
}

/// Which comparison a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Against {
    /// The btest baselines in the case folder (ts masked, bare mode where the test used it).
    Baseline,
    /// `zeek-default/`: plain `zeek -r` output with real timestamps.
    ZeekDefault,
}

/// One log compared.
struct Compared {
    against: Against,
    run: String,
    log: String,
    comparison: LogComparison,
}

struct AssertionResult {
    run: String,
    description: String,
    holds: bool,
}

struct CaseResult {
    name: String,
    compared: Vec<Compared>,
    assertions: Vec<AssertionResult>,
    runs: Vec<RunOutcome>,
}

struct Settings {
    node: PathBuf,
    out_root: PathBuf,
    timeout: Duration,
    with_default: bool,
}

/// Runs one case: every distinct run its baselines need (plus the full-mode run for zeek-default), then compares.
fn check_case(case: &Case, settings: &Settings) -> CaseResult {
    // Output of runs an earlier version of this test made must not linger next to this run's.
    let _ = std::fs::remove_dir_all(settings.out_root.join(&case.name));
    let mut runs: BTreeMap<RunSettings, RunOutcome> = BTreeMap::new();
    let mut groups: BTreeMap<RunSettings, Vec<PathBuf>> = BTreeMap::new();
    for baseline in &case.baselines {
        groups.entry(case.run_for(baseline)).or_default().push(baseline.file.clone());
    }
    let mut planned: Vec<(Against, RunSettings, Vec<PathBuf>)> =
        groups.into_iter().map(|(s, files)| (Against::Baseline, s, files)).collect();
    if settings.with_default && !case.default_logs.is_empty() {
        planned.push((Against::ZeekDefault, case.default_run(), case.default_logs.clone()));
    }

    let mut compared = Vec::new();
    for (against, wanted, files) in planned {
        let outcome = ensure_run(&mut runs, case, settings, &wanted);
        compared.extend(compare_run(against, &files, outcome));
    }

    let baseline_outcome = ensure_run(&mut runs, case, settings, &case.baseline_run());
    let assertions = case
        .assertions
        .iter()
        .map(|a| AssertionResult {
            run: baseline_outcome.settings.label(),
            description: a.describe(),
            holds: baseline_outcome.failure.is_none() && baseline_outcome.wrote(&a.file) == a.must_exist,
        })
        .collect();
    CaseResult { name: case.name.clone(), compared, assertions, runs: runs.into_values().collect() }
}

/// The outcome of a run with `wanted` settings, running the node the first time it is asked for.
fn ensure_run<'a>(
    runs: &'a mut BTreeMap<RunSettings, RunOutcome>,
    case: &Case,
    settings: &Settings,
    wanted: &RunSettings,
) -> &'a RunOutcome {
    runs.entry(wanted.clone()).or_insert_with(|| {
        let logdir = settings.out_root.join(&case.name).join(wanted.label());
        run_node(&settings.node, &case.pcap, wanted, &logdir, settings.timeout)
    })
}

/// Compares the logs of one run with the Zeek logs it should reproduce.
fn compare_run(against: Against, zeek_files: &[PathBuf], outcome: &RunOutcome) -> Vec<Compared> {
    // Keyed by `#path`, so a variant baseline (conn.ignore_checksums_nets.log) meets our conn.log.
    let zeek: LogSet = zeek_files
        .iter()
        .filter_map(|f| ZeekLog::read(f).ok())
        .map(|log| (if log.path.is_empty() { "?".to_owned() } else { log.path.clone() }, log))
        .collect();
    let ids = IdMap::build(&zeek, &outcome.logs);
    zeek.iter()
        .map(|(name, log)| {
            let mut comparison = compare_log(log, outcome.logs.get(name), &ids);
            if let Some(failure) = &outcome.failure {
                comparison.notes.insert(0, format!("run failed: {failure}"));
            }
            Compared { against, run: outcome.settings.label(), log: name.clone(), comparison }
        })
        .collect()
}

/// Runs the cases on a few threads (each run is a separate node process).
fn check_all(cases: &[Case], settings: &Settings) -> Vec<CaseResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CaseResult>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4).min(cases.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let result = check_case(case, settings);
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(result);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default().into_iter().flatten().collect()
}

/// Every differing pair, missing and extra record of one comparison (verbose mode).
fn describe_differences(case: &str, c: &Compared) -> String {
    let mut out = String::new();
    let title = format!("{case} / {} ({:?}, run {})", c.log, c.against, c.run);
    for pair in &c.comparison.differing {
        let _ = writeln!(out, "~ {title}\n  zeek: {}\n  ours: {}", pair.zeek_line, pair.our_line);
        for d in &pair.diffs {
            let _ = writeln!(out, "    {}: zeek `{}` ours `{}`", d.field, d.zeek, d.ours);
        }
    }
    for line in &c.comparison.missing {
        let _ = writeln!(out, "- {title} missing: {line}");
    }
    for line in &c.comparison.extra {
        let _ = writeln!(out, "+ {title} extra:   {line}");
    }
    out
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Everything the cases produced, summed up.
#[derive(Default)]
struct Totals {
    baseline: Section,
    default: Section,
    failed_runs: Vec<String>,
    /// Every difference spelled out (verbose mode only).
    details: String,
}

fn totals(results: &[CaseResult], verbose: bool) -> Totals {
    let mut t = Totals::default();
    for result in results {
        for c in &result.compared {
            let section = if c.against == Against::Baseline { &mut t.baseline } else { &mut t.default };
            section.add(&result.name, &c.run, &c.log, &c.comparison);
            if verbose {
                t.details.push_str(&describe_differences(&result.name, c));
            }
        }
        for a in &result.assertions {
            t.baseline.add_assertion(&result.name, &a.run, &a.description, a.holds);
        }
        for run in &result.runs {
            if let Some(failure) = &run.failure {
                t.failed_runs.push(format!("{} [{}]: {failure}", result.name, run.settings.display()));
            }
        }
    }
    t
}

/// The markdown report: (the whole report, the shorter part printed on the console).
fn render_report(
    intro: &str,
    t: &Totals,
    floor: &Floor,
    results: &[CaseResult],
    with_default: bool,
) -> (String, String) {
    let mut console = format!("# Oracle fidelity report\n\n{intro}\n\n");
    let _ = writeln!(
        console,
        "## Against the btest baselines (ts masked)\n\n{}\n### Most frequently differing fields\n{}",
        t.baseline.log_table(floor.section("baseline")),
        t.baseline.field_table(8)
    );
    let default_table = format!(
        "## Against zeek-default/ (full mode, real ts)\n\n{}",
        t.default.log_table(floor.section("zeek-default"))
    );
    let mut full = console.clone();
    let _ = writeln!(full, "### Per case\n\n{}", t.baseline.case_table());
    if with_default {
        let _ = writeln!(
            full,
            "{default_table}\n### Most frequently differing fields\n{}\n### Per case\n\n{}",
            t.default.field_table(8),
            t.default.case_table()
        );
        console.push_str(&default_table);
    }
    full.push_str(&runs_table(results));
    (full, console)
}

fn runs_table(results: &[CaseResult]) -> String {
    let mut out = String::from("## Runs\n\n| case | command | time | result |\n|---|---|--:|---|\n");
    for result in results {
        for run in &result.runs {
            let outcome = run.failure.as_deref().unwrap_or("ok").replace('|', "\\|");
            let command = run.settings.display();
            let _ = writeln!(out, "| {} | `{command}` | {:.2}s | {outcome} |", result.name, run.elapsed.as_secs_f64());
        }
    }
    out
}

fn floor_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity_floor.toml")
}

fn read_floor() -> Floor {
    let path = floor_path();
    std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| Floor::parse(&t))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Both sections against the floor: (log types below it, `name = count` lines to raise it to).
fn check_floor(floor: &Floor, t: &Totals, with_default: bool) -> (Vec<String>, Vec<String>) {
    let (mut below, mut raise) = floor.check("baseline", &t.baseline);
    if with_default {
        let (b, r) = floor.check("zeek-default", &t.default);
        below.extend(b);
        raise.extend(r);
    }
    (below, raise)
}

fn floor_section(below: &[String], raise: &[String]) -> String {
    let mut out = String::from("## Floor\n\n");
    if below.is_empty() && raise.is_empty() {
        out.push_str("Every exact count equals its floor.\n");
    }
    if !below.is_empty() {
        let _ = writeln!(out, "Below the floor (the test fails):\n\n    {}\n", below.join("\n    "));
    }
    if !raise.is_empty() {
        let path = floor_path();
        let _ = writeln!(
            out,
            "Fidelity improved; raise the floor in `{}`:\n\n    {}\n",
            path.display(),
            raise.join("\n    ")
        );
    }
    out
}

#[test]
fn oracle_fidelity() {
    let Some(root) = oracle_root() else {
        println!("fidelity: no oracle found (set ZEEK_ORACLE_DIR or check out ../shared); skipped");
        return;
    };
    let started = Instant::now();
    let node = PathBuf::from(env!("CARGO_BIN_EXE_zeek-node"));
    // target/<profile>/zeek-node → target/
    let target = node.parent().and_then(Path::parent).map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let filter: Option<Vec<String>> = std::env::var("ZEEK_FIDELITY_CASE")
        .ok()
        .filter(|f| !f.is_empty())
        .map(|f| f.split(',').map(String::from).collect());
    let cases: Vec<Case> =
        load_cases(&root).into_iter().filter(|c| filter.as_ref().is_none_or(|names| names.contains(&c.name))).collect();
    assert!(!cases.is_empty(), "no oracle case selected under {}", root.display());
    let settings = Settings {
        node,
        out_root: target.join("fidelity"),
        timeout: Duration::from_secs(
            std::env::var("ZEEK_FIDELITY_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(30),
        ),
        with_default: std::env::var("ZEEK_FIDELITY_DEFAULT").map_or(true, |v| v != "0"),
    };
    let floor = read_floor();

    let results = check_all(&cases, &settings);
    let t = totals(&results, env_flag("ZEEK_FIDELITY_VERBOSE"));
    let intro = format!(
        "{} case(s) from `{}`, {:.1}s; our logs are in `{}`.{}",
        results.len(),
        root.display(),
        started.elapsed().as_secs_f64(),
        settings.out_root.display(),
        if filter.is_some() { " Filtered by ZEEK_FIDELITY_CASE: the floor is not checked." } else { "" }
    );
    let (mut full, mut console) = render_report(&intro, &t, &floor, &results, settings.with_default);
    // A filtered run cannot reach the floor, so it is only checked on the whole set.
    let (below, raise) =
        if filter.is_none() { check_floor(&floor, &t, settings.with_default) } else { Default::default() };
    if filter.is_none() {
        let section = floor_section(&below, &raise);
        full.push_str(&section);
        console.push_str(&section);
    }
    let report_path = target.join("fidelity-report.md");
    let _ = std::fs::write(&report_path, &full);
    println!("{console}\n{}full report: {}", t.details, report_path.display());

    assert!(
        t.failed_runs.is_empty(),
        "the node failed on {} run(s):\n{}",
        t.failed_runs.len(),
        t.failed_runs.join("\n")
    );
    assert!(below.is_empty(), "fidelity fell below the floor:\n{}", below.join("\n"));
}
