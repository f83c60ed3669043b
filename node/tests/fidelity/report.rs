//! Totals per log type, the markdown report, and the committed floor of exact matches.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::matcher::LogComparison;

/// Counts for one log type (or one case's log).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub zeek: usize,
    pub exact: usize,
    pub differing: usize,
    pub missing: usize,
    pub extra: usize,
}

impl Counts {
    pub fn of(c: &LogComparison) -> Counts {
        Counts {
            zeek: c.zeek_records,
            exact: c.exact,
            differing: c.differing.len(),
            missing: c.missing.len(),
            extra: c.extra.len(),
        }
    }

    fn add(&mut self, other: &Counts) {
        self.zeek += other.zeek;
        self.exact += other.exact;
        self.differing += other.differing;
        self.missing += other.missing;
        self.extra += other.extra;
    }

    fn percent(&self) -> String {
        if self.zeek == 0 { "-".to_owned() } else { format!("{:.1}%", 100.0 * self.exact as f64 / self.zeek as f64) }
    }
}

/// How often one field differs, with the first example seen.
#[derive(Debug, Clone, Default)]
pub struct FieldTally {
    pub count: usize,
    pub example: String,
}

/// One line of the per-case table.
#[derive(Debug, Clone)]
pub struct CaseLine {
    pub case: String,
    pub run: String,
    pub log: String,
    pub counts: Counts,
    pub notes: Vec<String>,
}

/// One comparison section (the btest baselines, or zeek-default).
#[derive(Debug, Default)]
pub struct Section {
    pub by_log: BTreeMap<String, Counts>,
    pub fields: BTreeMap<String, BTreeMap<String, FieldTally>>,
    pub lines: Vec<CaseLine>,
}

/// The pseudo log type under which a case's extra assertions (`test ! -f weird.log`) are counted.
pub const ASSERTIONS: &str = "(assertions)";

impl Section {
    pub fn add(&mut self, case: &str, run: &str, log: &str, comparison: &LogComparison) {
        let counts = Counts::of(comparison);
        self.by_log.entry(log.to_owned()).or_default().add(&counts);
        let fields = self.fields.entry(log.to_owned()).or_default();
        for pair in &comparison.differing {
            for diff in &pair.diffs {
                let tally = fields.entry(diff.field.clone()).or_default();
                if tally.count == 0 {
                    tally.example = format!("{case}: `{}` → `{}`", cell(&diff.zeek), cell(&diff.ours));
                }
                tally.count += 1;
            }
        }
        let notes = comparison.notes.clone();
        self.lines.push(CaseLine { case: case.into(), run: run.into(), log: log.into(), counts, notes });
    }

    /// Counts one checked assertion.
    pub fn add_assertion(&mut self, case: &str, run: &str, description: &str, holds: bool) {
        let counts = Counts { zeek: 1, exact: usize::from(holds), missing: usize::from(!holds), ..Counts::default() };
        self.by_log.entry(ASSERTIONS.to_owned()).or_default().add(&counts);
        let notes = vec![format!("{description}: {}", if holds { "holds" } else { "FAILS" })];
        self.lines.push(CaseLine { case: case.into(), run: run.into(), log: ASSERTIONS.into(), counts, notes });
    }

    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for counts in self.by_log.values() {
            total.add(counts);
        }
        total
    }

    /// The per-log table, with the floor column when one is given.
    pub fn log_table(&self, floor: Option<&BTreeMap<String, usize>>) -> String {
        let mut out = String::from(
            "| log | Zeek records | exact | differing | missing | extra | exact % | floor |\n|---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for (log, c) in &self.by_log {
            let floor = floor.map_or("-".to_owned(), |f| f.get(log).copied().unwrap_or(0).to_string());
            let _ = writeln!(
                out,
                "| {log} | {} | {} | {} | {} | {} | {} | {floor} |",
                c.zeek,
                c.exact,
                c.differing,
                c.missing,
                c.extra,
                c.percent()
            );
        }
        let t = self.total();
        let _ = writeln!(
            out,
            "| **total** | {} | {} | {} | {} | {} | {} | |",
            t.zeek,
            t.exact,
            t.differing,
            t.missing,
            t.extra,
            t.percent()
        );
        out
    }

    /// The most frequently differing fields per log, with an example each.
    pub fn field_table(&self, top: usize) -> String {
        let mut out = String::new();
        for (log, fields) in &self.fields {
            if fields.is_empty() {
                continue;
            }
            let mut ranked: Vec<(&String, &FieldTally)> = fields.iter().collect();
            ranked.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
            let _ = writeln!(out, "\n**{log}**\n\n| field | differing records | first example (case: Zeek → ours) |");
            out.push_str("|---|--:|---|\n");
            for (field, tally) in ranked.into_iter().take(top) {
                let _ = writeln!(out, "| {field} | {} | {} |", tally.count, tally.example);
            }
        }
        out
    }

    /// Every case's logs, one line each.
    pub fn case_table(&self) -> String {
        let mut out = String::from(
            "| case | run | log | Zeek | exact | differing | missing | extra | notes |\n|---|---|---|--:|--:|--:|--:|--:|---|\n",
        );
        for l in &self.lines {
            let c = &l.counts;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                l.case,
                l.run,
                l.log,
                c.zeek,
                c.exact,
                c.differing,
                c.missing,
                c.extra,
                cell(&l.notes.join("; "))
            );
        }
        out
    }
}

/// A value made safe for a markdown table cell (and kept short).
fn cell(value: &str) -> String {
    const MAX: usize = 80;
    let mut s: String = value.replace('|', "\\|").replace('\t', "␉");
    if s.chars().count() > MAX {
        s = s.chars().take(MAX).collect::<String>() + "…";
    }
    s
}

/// The committed floor: per section, per log type, the minimum number of exactly matching records.
#[derive(Debug, Default, PartialEq)]
pub struct Floor {
    pub sections: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Floor {
    /// Reads the small TOML subset the floor file uses: `[section]` headers, `name = count` and `"name" = count`
    /// lines, `#` comments.
    pub fn parse(text: &str) -> Result<Floor, String> {
        let mut floor = Floor::default();
        let mut section = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = unquote(name.trim()).to_owned();
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| format!("line {}: expected key = count", n + 1))?;
            let value: usize = value.trim().parse().map_err(|e| format!("line {}: {e}", n + 1))?;
            floor.sections.entry(section.clone()).or_default().insert(unquote(key.trim()).to_owned(), value);
        }
        Ok(floor)
    }

    pub fn section(&self, name: &str) -> Option<&BTreeMap<String, usize>> {
        self.sections.get(name)
    }

    /// Compares a section's exact counts with its floor: (failures below the floor, hints to raise it).
    pub fn check(&self, name: &str, section: &Section) -> (Vec<String>, Vec<String>) {
        let empty = BTreeMap::new();
        let floors = self.section(name).unwrap_or(&empty);
        let mut below = Vec::new();
        let mut raise = Vec::new();
        for (log, floor) in floors {
            let exact = section.by_log.get(log).map_or(0, |c| c.exact);
            if exact < *floor {
                below.push(format!("[{name}] {log}: {exact} exact records, floor is {floor}"));
            }
        }
        for (log, counts) in &section.by_log {
            let floor = floors.get(log).copied().unwrap_or(0);
            if counts.exact > floor {
                raise.push(format!("[{name}] {} = {}", toml_key(log), counts.exact));
            }
        }
        (below, raise)
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// A TOML key: bare when it can be, quoted otherwise (`"(assertions)"`).
pub fn toml_key(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        name.to_owned()
    } else {
        format!("\"{name}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_parses_sections_comments_and_quoted_keys() {
        let floor = Floor::parse("# top\n[baseline]\nconn = 3 # note\n\"(assertions)\" = 1\n\n[zeek-default]\ndns=2\n")
            .expect("valid floor");
        assert_eq!(floor.section("baseline").unwrap()["conn"], 3);
        assert_eq!(floor.section("baseline").unwrap()["(assertions)"], 1);
        assert_eq!(floor.section("zeek-default").unwrap()["dns"], 2);
        assert!(Floor::parse("[x]\nconn three\n").is_err());
    }

    #[test]
    fn floor_check_reports_regressions_and_raises() {
        let floor = Floor::parse("[baseline]\nconn = 5\ndns = 1\n").unwrap();
        let mut section = Section::default();
        section.by_log.insert("conn".into(), Counts { zeek: 9, exact: 4, ..Counts::default() });
        section.by_log.insert("dns".into(), Counts { zeek: 9, exact: 3, ..Counts::default() });
        section.by_log.insert("(assertions)".into(), Counts { zeek: 1, exact: 1, ..Counts::default() });
        let (below, raise) = floor.check("baseline", &section);
        assert_eq!(below, ["[baseline] conn: 4 exact records, floor is 5"]);
        assert_eq!(raise, ["[baseline] \"(assertions)\" = 1", "[baseline] dns = 3"]);
    }

    #[test]
    fn committed_floor_file_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity_floor.toml");
        let text = std::fs::read_to_string(&path).expect("floor file");
        Floor::parse(&text).expect("valid floor file");
    }
}
