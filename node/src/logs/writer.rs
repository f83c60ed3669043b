//! Zeek's ASCII (TSV) writer and JSON-lines writer, and the sinks that use them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::rotation::{self, Rotation, now_epoch};
use super::{LogRecord, Schema};

/// The on-disk format of logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Tsv,
    Json,
}

/// Where log records go. Standalone nodes write files; cluster nodes ship records to loggers.
pub trait LogSink: Send {
    fn write(&mut self, record: &LogRecord) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// Ends every stream (TSV: the `#close` line).
    fn close(&mut self) -> io::Result<()>;
    /// Called now and then while a live capture runs (every few thousand packets, and while the link is idle):
    /// time for the sink's own timers, such as flushing what it buffered and rotating its files.
    fn housekeeping(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// A packet was analysed: the engine's network time and its counters after it, for sinks whose analyses
    /// measure the engine in network time (capture-loss). Most sinks ignore it.
    fn packet_analysed(&mut self, _network_time: f64, _stats: &crate::engine::EngineStats) {}
    /// Whether [`Self::packet_analysed`] does anything: asked once per run, so that a run without such analyses
    /// spends nothing per packet on the report.
    fn wants_packet_reports(&self) -> bool {
        false
    }
    /// Reading live: the capture's own counters (drops, packets on the link), reported now and then (when the
    /// capture is idle or every few thousand packets) to the sinks that want packet reports.
    fn capture_counters(&mut self, _stats: &crate::capture::CaptureStats) {}
    /// The input ended (before the engine logs what is still open): network time and the counters then, as
    /// Zeek's termination sees them when it runs the events still scheduled.
    fn input_ended(&mut self, _network_time: f64, _stats: &crate::engine::EngineStats) {}
}

/// Formats `secs` since the epoch (UTC) the way Zeek's header lines do: `YYYY-MM-DD-HH-MM-SS`.
pub fn format_header_time(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil_from_epoch(secs);
    format!("{y:04}-{m:02}-{d:02}-{hh:02}-{mm:02}-{ss:02}")
}

/// Converts epoch seconds to a UTC civil date and time (Howard Hinnant's days-from-civil inverse).
pub fn civil_from_epoch(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, (rem / 60 % 60) as u32, (rem % 60) as u32)
}

/// The TSV header of a stream, `#separator` through `#types`.
pub fn format_header(schema: &Schema, open_secs: i64) -> String {
    let mut h = String::with_capacity(512);
    h.push_str("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n");
    h.push_str("#path\t");
    h.push_str(schema.path);
    h.push_str("\n#open\t");
    h.push_str(&format_header_time(open_secs));
    h.push_str("\n#fields");
    for field in schema.fields {
        h.push('\t');
        h.push_str(field.name);
    }
    h.push_str("\n#types");
    for field in schema.fields {
        h.push('\t');
        h.push_str(field.ty);
    }
    h.push('\n');
    h
}

/// Appends one TSV line for `record`.
pub fn format_record_tsv(out: &mut String, record: &LogRecord) {
    for (i, v) in record.values.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        v.write_tsv(out, false);
    }
    out.push('\n');
}

/// Appends one JSON line for `record`; unset fields are left out, as Zeek does.
pub fn format_record_json(out: &mut String, record: &LogRecord) {
    out.push('{');
    let mut first = true;
    for (field, v) in record.schema.fields.iter().zip(&record.values) {
        if v.is_unset() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(field.name);
        out.push_str("\":");
        v.write_json(out);
    }
    out.push_str("}\n");
}

struct OpenLog {
    out: BufWriter<File>,
    path: PathBuf,
}

/// How long records may wait in a live sink's buffers before they are written out: what `tail -f conn.log` shows
/// of a running sensor, and what a kill -9 can lose, is at most this old.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Writes each stream to `<dir>/<path>.log`, opening files on their first record; with a rotation, archives them
/// on its interval ([`rotation`]).
pub struct DirSink {
    dir: PathBuf,
    format: LogFormat,
    open: HashMap<&'static str, OpenLog>,
    line: String,
    rotation: Option<Rotation>,
    /// How long archives are kept ([`rotation::expire_archives`]); `None`: for good.
    retention: Option<Duration>,
    last_flush: Instant,
}

impl DirSink {
    pub fn new(dir: impl Into<PathBuf>, format: LogFormat) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let (open, line, last_flush) = (HashMap::new(), String::with_capacity(1024), Instant::now());
        Ok(DirSink { dir, format, open, line, rotation: None, retention: None, last_flush })
    }

    /// A sink whose files are archived every `interval` (on its multiples of wall-clock time); the logs an earlier
    /// run left in `dir` are archived first, so a restart overwrites nothing. With a `retention`, archives last
    /// written longer ago are deleted at start and after each rotation.
    pub fn rotating(
        dir: impl Into<PathBuf>,
        format: LogFormat,
        interval: Duration,
        retention: Option<Duration>,
    ) -> io::Result<Self> {
        let mut sink = DirSink::new(dir, format)?;
        rotation::archive_earlier_logs(&sink.dir)?;
        sink.rotation = Some(Rotation::new(interval, now_epoch()));
        sink.retention = retention;
        sink.expire()?;
        Ok(sink)
    }

    fn expire(&self) -> io::Result<()> {
        match self.retention {
            Some(keep) => rotation::expire_and_report(&self.dir, keep),
            None => Ok(()),
        }
    }

    /// Archives the current files if the rotation is due at `now` (seconds since the epoch).
    pub fn rotate_if_due(&mut self, now: i64) -> io::Result<()> {
        match self.rotation {
            Some(r) if r.is_due(now) => self.rotate(now),
            _ => Ok(()),
        }
    }

    /// Closes the current files and renames them into `<dir>/<date>/<path>.<open>-<close>.log`; the next records
    /// open new ones.
    pub fn rotate(&mut self, now: i64) -> io::Result<()> {
        let files = self.paths();
        self.close()?;
        let opened_at = self.rotation.map_or(now, |r| r.opened_at);
        for f in files {
            rotation::archive(&self.dir, &f, opened_at, now)?;
        }
        if let Some(r) = &mut self.rotation {
            r.rotated(now);
        }
        self.expire()
    }

    #[cfg(test)]
    pub(crate) fn set_opened_at(&mut self, at: i64) {
        if let Some(r) = &mut self.rotation {
            r.opened_at = at;
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files written so far.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.open.values().map(|o| o.path.clone()).collect()
    }

    fn stream(&mut self, schema: &'static Schema) -> io::Result<&mut OpenLog> {
        match self.open.entry(schema.path) {
            Entry::Occupied(open) => Ok(open.into_mut()),
            Entry::Vacant(slot) => {
                let path = self.dir.join(format!("{}.log", schema.path));
                let mut out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
                if self.format == LogFormat::Tsv {
                    out.write_all(format_header(schema, now_epoch()).as_bytes())?;
                }
                Ok(slot.insert(OpenLog { out, path }))
            }
        }
    }
}

impl DirSink {
    /// Appends the line of `record` in this sink's format.
    pub fn format(&self, out: &mut String, record: &LogRecord) {
        match self.format {
            LogFormat::Tsv => format_record_tsv(out, record),
            LogFormat::Json => format_record_json(out, record),
        }
    }

    /// Appends lines made by [`DirSink::format`] to the file of `schema`.
    pub fn write_lines(&mut self, schema: &'static Schema, lines: &str) -> io::Result<()> {
        self.stream(schema)?.out.write_all(lines.as_bytes())
    }
}

impl LogSink for DirSink {
    fn write(&mut self, record: &LogRecord) -> io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        self.format(&mut line, record);
        let result = self.write_lines(record.schema, &line);
        self.line = line;
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        self.open.values_mut().try_for_each(|o| o.out.flush())
    }

    fn housekeeping(&mut self) -> io::Result<()> {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        if self.rotation.is_some() {
            self.rotate_if_due(now_epoch())?;
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        let close = format!("#close\t{}\n", format_header_time(now_epoch()));
        for o in self.open.values_mut() {
            if self.format == LogFormat::Tsv {
                o.out.write_all(close.as_bytes())?;
            }
            o.out.flush()?;
        }
        self.open.clear();
        Ok(())
    }
}

/// Keeps records in memory: for tests and for shipping batches.
#[derive(Default)]
pub struct MemorySink {
    pub records: Vec<LogRecord>,
}

impl LogSink for MemorySink {
    fn write(&mut self, record: &LogRecord) -> io::Result<()> {
        self.records.push(record.clone());
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn close(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{CONN, Value};

    #[test]
    fn header_matches_zeek_layout() {
        let h = format_header(&CONN, 0);
        assert!(
            h.starts_with("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n")
        );
        assert!(h.contains("#open\t1970-01-01-00-00-00\n"));
        assert!(h.contains("\n#types\ttime\tstring\taddr\tport\t"));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(format_header_time(1_300_475_167), "2011-03-18-19-06-07");
        assert_eq!(format_header_time(951_782_400), "2000-02-29-00-00-00");
    }

    #[test]
    fn json_omits_unset() {
        let mut values = vec![Value::Unset; CONN.fields.len()];
        values[0] = Value::Time(1.5);
        values[1] = Value::str("C1");
        let mut out = String::new();
        format_record_json(&mut out, &LogRecord::new(&CONN, values));
        assert_eq!(out, "{\"ts\":1.500000,\"uid\":\"C1\"}\n");
    }
}
