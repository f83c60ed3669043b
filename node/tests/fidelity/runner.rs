//! Runs the node binary on a trace and reads the logs it wrote.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::case::RunSettings;
use super::matcher::LogSet;
use super::tsv::ZeekLog;

/// What one run of the node produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub settings: RunSettings,
    pub logdir: PathBuf,
    /// `None` when the node ran to completion; otherwise why not (exit status, stderr tail, timeout).
    pub failure: Option<String>,
    pub elapsed: Duration,
    pub logs: LogSet,
}

impl RunOutcome {
    pub fn wrote(&self, file: &str) -> bool {
        self.logdir.join(file).exists()
    }
}

/// Runs `node` with `settings` on `pcap`, writing into `logdir` (emptied first), killed after `timeout`.
pub fn run_node(node: &Path, pcap: &Path, settings: &RunSettings, logdir: &Path, timeout: Duration) -> RunOutcome {
    let started = Instant::now();
    let failure = execute(node, pcap, settings, logdir, timeout).err();
    RunOutcome {
        settings: settings.clone(),
        logdir: logdir.to_path_buf(),
        failure,
        elapsed: started.elapsed(),
        logs: read_logs(logdir),
    }
}

fn execute(node: &Path, pcap: &Path, settings: &RunSettings, logdir: &Path, timeout: Duration) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(logdir);
    std::fs::create_dir_all(logdir).map_err(|e| format!("cannot create {}: {e}", logdir.display()))?;
    if let Some((_, config)) = &settings.detection {
        std::fs::write(logdir.join("detect.yaml"), config).map_err(|e| format!("cannot write detect.yaml: {e}"))?;
    }
    let mut child = Command::new(node)
        .args(settings.args(pcap, logdir))
        .current_dir(logdir)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", node.display()))?;
    // Drain stderr on a thread so a chatty node cannot block on a full pipe while we wait.
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("wait failed: {e}")),
        }
    };
    let stderr = reader.join().unwrap_or_default();
    if status.success() { Ok(()) } else { Err(format!("{status}: {}", tail(&stderr, 400))) }
}

/// The `*.log` files of a directory keyed by name (`conn` for conn.log).
pub fn read_logs(dir: &Path) -> LogSet {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter_map(|p| Some((crate::log_name(&p), ZeekLog::read(&p).ok()?)))
        .collect()
}

fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let start = text.char_indices().rev().nth(max).map_or(0, |(i, _)| i);
    text[start..].replace('\n', " ⏎ ")
}
