//! Log rotation, as Zeek's does it: the current files of a directory are closed on a wall-clock interval (on the
//! hour, for hourly rotation) and renamed into dated archive folders, `<dir>/<date>/<path>.<open>-<close>.log`, by
//! an atomic rename; files an earlier run left behind (a crash, a kill) are archived before new ones are opened.
//! A cluster's loggers rotate their joint logs so; a standalone sensor with `--rotate`. Archives older than the
//! retention are deleted after each rotation, as zeekctl's `expire-logs` does with its `LogExpireInterval`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When a directory's current files were opened and when they are next archived.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    interval: i64,
    pub(crate) opened_at: i64,
    next: i64,
}

impl Rotation {
    /// A schedule of `interval` (whole seconds, at least one) from `now`.
    pub fn new(interval: Duration, now: i64) -> Rotation {
        let interval = (interval.as_secs() as i64).max(1);
        Rotation { interval, opened_at: now, next: next_boundary(now, interval) }
    }

    pub fn is_due(&self, now: i64) -> bool {
        now >= self.next
    }

    /// The files were archived at `now`: the next ones open now.
    pub fn rotated(&mut self, now: i64) {
        self.opened_at = now;
        self.next = next_boundary(now, self.interval);
    }
}

/// The next multiple of `interval` after `now` (hourly rotation happens on the hour, as Zeek's does).
pub fn next_boundary(now: i64, interval: i64) -> i64 {
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

/// Whether `name` is an archive folder's, `YYYY-MM-DD` (what [`archive`] creates; nothing else is ever expired).
fn is_archive_folder(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// Deletes the archived logs in `dir`'s dated folders last written before `now - keep`, and the folders this
/// empties; the current files and anything outside the dated folders are left alone. Returns what it deleted.
pub fn expire_archives(dir: &Path, keep: Duration, now: std::time::SystemTime) -> io::Result<Vec<PathBuf>> {
    let Some(cutoff) = now.checked_sub(keep) else { return Ok(Vec::new()) };
    let mut deleted = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let folder = entry.path();
        if !entry.file_type()?.is_dir() || !entry.file_name().to_str().is_some_and(is_archive_folder) {
            continue;
        }
        for file in std::fs::read_dir(&folder)? {
            let file = file?;
            let meta = file.metadata()?;
            if meta.is_file() && meta.modified()? < cutoff {
                std::fs::remove_file(file.path())?;
                deleted.push(file.path());
            }
        }
        // Fails, as it should, while the folder still holds a file.
        let _ = std::fs::remove_dir(&folder);
    }
    Ok(deleted)
}

/// [`expire_archives`] as a writer runs it, saying what it deleted.
pub fn expire_and_report(dir: &Path, keep: Duration) -> io::Result<()> {
    let deleted = expire_archives(dir, keep, std::time::SystemTime::now())?;
    if !deleted.is_empty() {
        tracing::info!(files = deleted.len(), keep_secs = keep.as_secs(), dir = %dir.display(), "deleted archived logs older than the retention");
    }
    Ok(())
}

/// Archives what an earlier run left in `dir` before a writer opens its files there, saying which files it moved.
pub fn archive_earlier_logs(dir: &Path) -> io::Result<()> {
    for archived in archive_leftovers(dir)? {
        tracing::warn!(file = %archived.display(), "archived a log left by an earlier run");
    }
    Ok(())
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

    #[test]
    fn header_times_round_trip() {
        assert_eq!(parse_header_time("2011-03-18-19-06-07"), Some(1_300_475_167));
        assert_eq!(parse_header_time("2000-02-29-00-00-00"), Some(951_782_400));
        assert_eq!(parse_header_time("garbage"), None);
        assert_eq!(crate::logs::format_header_time(1_300_475_167), "2011-03-18-19-06-07");
        assert_eq!(next_boundary(3599, 3600), 3600);
        assert_eq!(next_boundary(3600, 3600), 7200);
    }

    /// Writes `path` (and its folder) last modified `age` ago.
    fn file_aged(path: &Path, age: Duration) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(path).unwrap();
        file.set_modified(std::time::SystemTime::now() - age).unwrap();
    }

    /// Archives last written before the retention go, and the dated folders they empty; current files, newer
    /// archives and whatever else is in the directory stay.
    #[test]
    fn archives_older_than_the_retention_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let day = Duration::from_secs(86_400);
        file_aged(&d.join("conn.log"), 30 * day);
        file_aged(&d.join("2020-01-01/conn.00:00:00-01:00:00.log"), 30 * day);
        file_aged(&d.join("2020-01-01/dns.00:00:00-01:00:00-1.log"), 8 * day);
        file_aged(&d.join("2020-01-02/conn.00:00:00-01:00:00.log"), 8 * day);
        file_aged(&d.join("2020-01-02/conn.01:00:00-02:00:00.log"), 6 * day);
        file_aged(&d.join("notes/old.log"), 30 * day);
        file_aged(&d.join("2020-1-3/conn.log"), 30 * day);

        let mut deleted = expire_archives(d, 7 * day, std::time::SystemTime::now()).unwrap();
        deleted.sort();
        let names: Vec<_> = deleted.iter().map(|p| p.strip_prefix(d).unwrap().to_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "2020-01-01/conn.00:00:00-01:00:00.log",
                "2020-01-01/dns.00:00:00-01:00:00-1.log",
                "2020-01-02/conn.00:00:00-01:00:00.log"
            ]
        );
        assert!(!d.join("2020-01-01").exists(), "an emptied dated folder goes");
        for kept in ["conn.log", "2020-01-02/conn.01:00:00-02:00:00.log", "notes/old.log", "2020-1-3/conn.log"] {
            assert!(d.join(kept).exists(), "{kept} is kept");
        }
        assert!(expire_archives(d, 7 * day, std::time::SystemTime::now()).unwrap().is_empty());
    }
}
