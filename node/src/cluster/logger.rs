//! The logger's writer: joint logs in Zeek's formats, one file per stream, rotated (default hourly) into dated
//! archive folders by an atomic rename. Files a crash left behind are archived at start-up.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread;
use std::time::Duration;

use super::logwire::EncodedRows;
use super::node::LogSettings;
use crate::logs::{DirSink, LogRecord, LogSink};
use crate::metrics::Metrics;

/// Told once a batch is written (and flushed) or failed.
pub type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

enum Job {
    Write(Vec<EncodedRows>, Option<Reply>),
    Close(Sender<()>),
}

/// A writer thread owning the log directory.
pub struct LogWriter {
    jobs: Sender<Job>,
}

impl LogWriter {
    pub fn start(settings: LogSettings, metrics: Arc<Metrics>) -> LogWriter {
        let (jobs, rx) = channel();
        thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_thread(settings, metrics, rx))
            .expect("spawning the log writer thread");
        LogWriter { jobs }
    }

    /// Writes a batch in its wire form ([`super::logwire::check_batch`]), formatted row by row.
    pub fn submit(&self, streams: Vec<EncodedRows>, reply: Option<Reply>) {
        if let Err(e) = self.jobs.send(Job::Write(streams, reply))
            && let Job::Write(_, Some(reply)) = e.0
        {
            reply(Err("the log writer has stopped".into()));
        }
    }

    /// Writes the `#close` lines and stops (waits for what was submitted before).
    pub fn close(&self) {
        let (tx, rx) = channel();
        if self.jobs.send(Job::Close(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
    }
}

fn writer_thread(settings: LogSettings, metrics: Arc<Metrics>, jobs: Receiver<Job>) {
    let mut dir = match RotatingDir::open(&settings) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(dir = %settings.dir.display(), "cannot write logs: {e}");
            for job in jobs {
                match job {
                    Job::Write(_, Some(reply)) => reply(Err(format!("cannot write logs: {e}"))),
                    Job::Write(_, None) => {}
                    Job::Close(done) => {
                        let _ = done.send(());
                        return;
                    }
                }
            }
            return;
        }
    };
    loop {
        match jobs.recv_timeout(Duration::from_millis(500)) {
            Ok(Job::Write(streams, reply)) => {
                let n = streams.iter().map(|s| s.count as u64).sum();
                let result = dir.write_encoded(&streams).map_err(|e| e.to_string());
                if result.is_ok() {
                    metrics.log_records_written.inc_by(n);
                } else if let Err(e) = &result {
                    tracing::error!("writing logs: {e}");
                }
                if let Some(reply) = reply {
                    reply(result);
                }
            }
            Ok(Job::Close(done)) => {
                if let Err(e) = dir.close() {
                    tracing::error!("closing logs: {e}");
                }
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = dir.close();
                return;
            }
        }
        if let Err(e) = dir.rotate_if_due(now_epoch()) {
            tracing::error!("rotating logs: {e}");
        }
    }
}

/// Formatted text a writer keeps between batches per stream, at most (a larger batch's buffer is shrunk back).
const MAX_KEPT_TEXT: usize = 1 << 20;

/// The current log files of one directory, rotated on a wall-clock interval.
pub struct RotatingDir {
    dir: PathBuf,
    sink: DirSink,
    /// The formatted lines of a batch's streams, reused from batch to batch.
    texts: Vec<String>,
    interval: Option<i64>,
    opened_at: i64,
    next_rotation: Option<i64>,
}

impl RotatingDir {
    pub fn open(settings: &LogSettings) -> io::Result<RotatingDir> {
        std::fs::create_dir_all(&settings.dir)?;
        for archived in archive_leftovers(&settings.dir)? {
            tracing::warn!(file = %archived.display(), "archived a log left by an earlier run");
        }
        let interval = settings.rotation.map(|d| d.as_secs() as i64).filter(|s| *s > 0);
        let now = now_epoch();
        Ok(RotatingDir {
            sink: DirSink::new(&settings.dir, settings.format)?,
            texts: Vec::new(),
            dir: settings.dir.clone(),
            interval,
            opened_at: now,
            next_rotation: interval.map(|i| next_boundary(now, i)),
        })
    }

    /// Writes and flushes, so an acknowledged record survives the process being killed.
    pub fn write(&mut self, records: &[LogRecord]) -> io::Result<()> {
        for r in records {
            self.sink.write(r)?;
        }
        self.sink.flush()
    }

    /// [`RotatingDir::write`] for a peer's rows in their wire form. Every row is decoded and formatted before any
    /// is written, so a malformed row refuses the whole batch (one decode per row, where checking first would take
    /// two).
    pub fn write_encoded(&mut self, streams: &[EncodedRows]) -> io::Result<()> {
        let mut texts = std::mem::take(&mut self.texts);
        texts.resize_with(texts.len().max(streams.len()), String::new);
        let result = self.format_encoded(streams, &mut texts).and_then(|()| {
            streams.iter().zip(&texts).try_for_each(|(s, text)| self.sink.write_lines(s.schema, text))?;
            self.sink.flush()
        });
        for text in &mut texts {
            text.clear();
            text.shrink_to(MAX_KEPT_TEXT);
        }
        self.texts = texts;
        result
    }

    fn format_encoded(&self, streams: &[EncodedRows], texts: &mut [String]) -> io::Result<()> {
        for (s, text) in streams.iter().zip(texts) {
            s.try_for_each(|r| {
                self.sink.format(text, r);
                Ok(())
            })?;
        }
        Ok(())
    }

    pub fn rotate_if_due(&mut self, now: i64) -> io::Result<()> {
        match self.next_rotation {
            Some(at) if now >= at => self.rotate(now),
            _ => Ok(()),
        }
    }

    /// Closes the current files and renames them into `<dir>/<date>/<path>.<open>-<close>.log`.
    pub fn rotate(&mut self, now: i64) -> io::Result<()> {
        let files = self.sink.paths();
        self.sink.close()?;
        for f in files {
            archive(&self.dir, &f, self.opened_at, now)?;
        }
        self.opened_at = now;
        self.next_rotation = self.interval.map(|i| next_boundary(now, i));
        Ok(())
    }

    pub fn close(&mut self) -> io::Result<()> {
        self.sink.close()
    }
}

/// The next multiple of `interval` after `now` (hourly rotation happens on the hour, as Zeek's does).
fn next_boundary(now: i64, interval: i64) -> i64 {
    (now / interval + 1) * interval
}

fn hms(secs: i64) -> String {
    let (_, _, _, h, m, s) = crate::logs::civil_from_epoch(secs);
    format!("{h:02}:{m:02}:{s:02}")
}

fn date(secs: i64) -> String {
    let (y, m, d, ..) = crate::logs::civil_from_epoch(secs);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Moves one log file into the dated archive folder of its open time. The rename is atomic on one file system;
/// an existing name gets a numeric suffix instead of being overwritten.
pub fn archive(dir: &Path, file: &Path, opened: i64, closed: i64) -> io::Result<PathBuf> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("log");
    let folder = dir.join(date(opened));
    std::fs::create_dir_all(&folder)?;
    let base = format!("{stem}.{}-{}", hms(opened), hms(closed));
    let mut target = folder.join(format!("{base}.log"));
    let mut n = 1;
    while target.exists() {
        target = folder.join(format!("{base}-{n}.log"));
        n += 1;
    }
    std::fs::rename(file, &target)?;
    Ok(target)
}

/// Archives the `*.log` files in `dir` (what a crashed or killed logger left), using the `#open` header line for the
/// open time when there is one and the file's modification time otherwise.
pub fn archive_leftovers(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() || path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        let modified = std::fs::metadata(&path)?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(now_epoch, |d| d.as_secs() as i64);
        let opened = header_open_time(&path).unwrap_or(modified);
        out.push(archive(dir, &path, opened, modified)?);
    }
    Ok(out)
}

fn header_open_time(path: &Path) -> Option<i64> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    let line = io::BufReader::new(file).lines().take(8).map_while(Result::ok).find(|l| l.starts_with("#open"))?;
    parse_header_time(line.split('\t').nth(1)?)
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub use crate::logs::format_header_time as header_time;

/// Parses Zeek's header time `YYYY-MM-DD-HH-MM-SS` (UTC).
pub fn parse_header_time(s: &str) -> Option<i64> {
    let p: Vec<i64> = s.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [y, mo, d, h, mi, se] = p.as_slice() else { return None };
    // Days from civil (Howard Hinnant), the inverse of civil_from_epoch.
    let y = if *mo <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::logwire::CLUSTER_LOG;
    use crate::logs::{LogFormat, Value};

    fn rec(msg: &str) -> LogRecord {
        LogRecord::new(&CLUSTER_LOG, vec![Value::Time(1.0), Value::str("n"), Value::str(msg)])
    }

    #[test]
    fn header_times_round_trip() {
        assert_eq!(parse_header_time("2011-03-18-19-06-07"), Some(1_300_475_167));
        assert_eq!(parse_header_time("2000-02-29-00-00-00"), Some(951_782_400));
        assert_eq!(parse_header_time("garbage"), None);
        assert_eq!(header_time(1_300_475_167), "2011-03-18-19-06-07");
        assert_eq!(next_boundary(3599, 3600), 3600);
        assert_eq!(next_boundary(3600, 3600), 7200);
    }

    #[test]
    fn rotation_archives_into_dated_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let settings =
            LogSettings { dir: tmp.path().into(), format: LogFormat::Tsv, rotation: Some(Duration::from_secs(3600)) };
        let mut d = RotatingDir::open(&settings).unwrap();
        d.write(&[rec("a")]).unwrap();
        d.opened_at = 1_300_475_167;
        d.rotate(1_300_478_400).unwrap();
        let archived = tmp.path().join("2011-03-18/cluster.19:06:07-20:00:00.log");
        let text = std::fs::read_to_string(&archived).unwrap();
        assert!(text.contains("\ta\n") && text.contains("#close"), "{text}");
        assert!(!tmp.path().join("cluster.log").exists());
        d.write(&[rec("b")]).unwrap();
        d.close().unwrap();
        assert!(std::fs::read_to_string(tmp.path().join("cluster.log")).unwrap().contains("\tb\n"));
    }

    fn encoded(records: &[LogRecord]) -> Vec<EncodedRows> {
        crate::cluster::logwire::check_batch(crate::cluster::logwire::encode_batch(1, "w", records)).unwrap()
    }

    fn open_dir(dir: &Path, format: LogFormat) -> RotatingDir {
        RotatingDir::open(&LogSettings { dir: dir.into(), format, rotation: None }).unwrap()
    }

    #[test]
    fn rows_in_wire_form_are_written_as_the_records_would_be() {
        let mut conn = vec![Value::Unset; crate::logs::CONN.fields.len()];
        conn[0] = Value::Time(1.25);
        conn[1] = Value::str("C\tx");
        conn[20] = Value::str_set(["a,b", ""]);
        let records = vec![rec("a"), LogRecord::new(&crate::logs::CONN, conn), rec(""), rec("-")];
        for format in [LogFormat::Tsv, LogFormat::Json] {
            let (direct, wire) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            // Streams go in order of first appearance, each in record order, as a batch groups them.
            let mut grouped = records.clone();
            grouped.sort_by_key(|r| r.schema.path != "cluster");
            let mut d = open_dir(direct.path(), format);
            d.write(&grouped).unwrap();
            let mut w = open_dir(wire.path(), format);
            w.write_encoded(&encoded(&records)).unwrap();
            w.write_encoded(&encoded(&records[..1])).unwrap();
            d.write(&records[..1]).unwrap();
            for name in ["cluster.log", "conn.log"] {
                let read = |dir: &Path| std::fs::read_to_string(dir.join(name)).unwrap();
                let without_open =
                    |t: String| t.lines().filter(|l| !l.starts_with("#open")).collect::<Vec<_>>().join("\n");
                assert_eq!(without_open(read(wire.path())), without_open(read(direct.path())), "{format:?} {name}");
            }
        }
    }

    #[test]
    fn a_malformed_row_refuses_the_whole_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = open_dir(tmp.path(), LogFormat::Tsv);
        let mut batch = crate::cluster::logwire::encode_batch(1, "w", &[rec("a"), rec("b")]);
        let rows = &mut batch.streams[0].rows;
        *rows = rows.slice(..rows.len() - 1);
        let streams = crate::cluster::logwire::check_batch(batch).unwrap();
        let err = d.write_encoded(&streams).unwrap_err();
        assert!(err.to_string().contains("middle of a value"), "{err}");
        assert!(!tmp.path().join("cluster.log").exists(), "nothing of a refused batch is written");
        d.write_encoded(&encoded(&[rec("c")])).unwrap();
        let text = std::fs::read_to_string(tmp.path().join("cluster.log")).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 1, "{text}");
    }

    #[test]
    fn leftovers_of_a_crash_are_archived() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("conn.log"), "#separator \\x09\n#path\tconn\n#open\t2011-03-18-19-06-07\nx\n")
            .unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "not a log").unwrap();
        let moved = archive_leftovers(tmp.path()).unwrap();
        assert_eq!(moved.len(), 1);
        assert!(moved[0].starts_with(tmp.path().join("2011-03-18")));
        assert!(moved[0].file_name().unwrap().to_str().unwrap().starts_with("conn.19:06:07-"));
        assert!(tmp.path().join("notes.txt").exists());
    }
}
