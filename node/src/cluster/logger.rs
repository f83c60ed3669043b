//! The logger's writer: joint logs in Zeek's formats, one file per stream, rotated (default hourly) into dated
//! archive folders by an atomic rename. Files a crash left behind are archived at start-up.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread;
use std::time::Duration;

use super::logwire::EncodedRows;
use super::node::LogSettings;
use crate::logs::rotation::{archive_earlier_logs, now_epoch};
use crate::logs::{DirSink, LogRecord, LogSink};
use crate::metrics::Metrics;
use crate::watchdog::Progress;

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
    /// Starts the writer thread, which moves `progress` on as it writes (a hung log filesystem stalls it).
    pub fn start(settings: LogSettings, metrics: Arc<Metrics>, progress: Progress) -> LogWriter {
        let (jobs, rx) = channel();
        thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_thread(settings, metrics, rx, progress))
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

fn writer_thread(settings: LogSettings, metrics: Arc<Metrics>, jobs: Receiver<Job>, mut progress: Progress) {
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
        // Each turn waits half a second at most, so a writer that does not come round again is stuck in a write.
        progress.advanced();
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
    sink: DirSink,
    /// The formatted lines of a batch's streams, reused from batch to batch.
    texts: Vec<String>,
}

impl RotatingDir {
    pub fn open(settings: &LogSettings) -> io::Result<RotatingDir> {
        let sink = match settings.rotation.filter(|d| !d.is_zero()) {
            Some(interval) => DirSink::rotating(&settings.dir, settings.format, interval, settings.retention)?,
            None => {
                // Without rotation too, what an earlier run left is archived rather than overwritten.
                let sink = DirSink::new(&settings.dir, settings.format)?;
                archive_earlier_logs(&settings.dir)?;
                sink
            }
        };
        Ok(RotatingDir { sink, texts: Vec::new() })
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
        self.sink.rotate_if_due(now)
    }

    /// Closes the current files and archives them ([`DirSink::rotate`]).
    pub fn rotate(&mut self, now: i64) -> io::Result<()> {
        self.sink.rotate(now)
    }

    pub fn close(&mut self) -> io::Result<()> {
        self.sink.close()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cluster::logwire::CLUSTER_LOG;
    use crate::logs::{LogFormat, Value};

    fn rec(msg: &str) -> LogRecord {
        LogRecord::new(&CLUSTER_LOG, vec![Value::Time(1.0), Value::str("n"), Value::str(msg)])
    }

    #[test]
    fn rotation_archives_into_dated_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = LogSettings {
            dir: tmp.path().into(),
            format: LogFormat::Tsv,
            rotation: Some(Duration::from_secs(3600)),
            retention: None,
        };
        let mut d = RotatingDir::open(&settings).unwrap();
        d.write(&[rec("a")]).unwrap();
        d.sink.set_opened_at(1_300_475_167);
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
        RotatingDir::open(&LogSettings { dir: dir.into(), format, rotation: None, retention: None }).unwrap()
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
        let moved = crate::logs::rotation::archive_leftovers(tmp.path()).unwrap();
        assert_eq!(moved.len(), 1);
        assert!(moved[0].starts_with(tmp.path().join("2011-03-18")));
        assert!(moved[0].file_name().unwrap().to_str().unwrap().starts_with("conn.19:06:07-"));
        assert!(tmp.path().join("notes.txt").exists());
    }
}
