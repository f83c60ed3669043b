//! Pairs our log records with Zeek's and compares them field by field.
//!
//! Zeek's uids and fuids come from its seeded random generator, so ours differ: they are treated as opaque but
//! consistent. Our conn uid is mapped to Zeek's through the connection's (proto, 5-tuple); connections sharing a
//! 5-tuple are paired in log order. File ids are mapped by their order within (mapped uid, log). Every uid-bearing
//! value of ours is then translated into Zeek's namespace before comparing text.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::tsv::{ABSENT, MASKED_TIME, ZeekLog};

/// Logs of one run, keyed by log name (`conn` for conn.log).
pub type LogSet = BTreeMap<String, ZeekLog>;

/// Our id (uid or fuid) → Zeek's.
#[derive(Debug, Default, Clone)]
pub struct IdMap {
    ours_to_zeek: HashMap<String, String>,
    zeek_taken: HashSet<String>,
}

impl IdMap {
    /// Builds the mapping from the logs both sides wrote: conn.log first (its 5-tuples are the anchor), then the
    /// other logs for connections conn.log does not list (bare mode without conn, tunnel uids).
    pub fn build(zeek: &LogSet, ours: &LogSet) -> IdMap {
        let mut map = IdMap::default();
        for name in anchor_order(zeek, ours, "conn") {
            map.pair_in_order(keyed_uids(&zeek[name]), keyed_uids(&ours[name]));
        }
        for name in anchor_order(zeek, ours, "files") {
            let zeek_fuids = keyed_fuids(&zeek[name], |uid| uid.to_owned());
            let our_fuids = keyed_fuids(&ours[name], |uid| map.translate_id(uid));
            map.pair_in_order(zeek_fuids, our_fuids);
        }
        map
    }

    /// Pairs the ids not yet mapped, key by key, in order of appearance.
    fn pair_in_order(&mut self, zeek: Vec<(String, String)>, ours: Vec<(String, String)>) {
        let mut zeek_by_key: BTreeMap<String, VecDeque<String>> = BTreeMap::new();
        for (key, id) in zeek.into_iter().filter(|(_, id)| !self.zeek_taken.contains(id)) {
            zeek_by_key.entry(key).or_default().push_back(id);
        }
        for (key, id) in ours {
            if self.ours_to_zeek.contains_key(&id) {
                continue;
            }
            if let Some(zeek_id) = zeek_by_key.get_mut(&key).and_then(VecDeque::pop_front) {
                self.zeek_taken.insert(zeek_id.clone());
                self.ours_to_zeek.insert(id, zeek_id);
            }
        }
    }

    /// Our id in Zeek's namespace; an id without a partner keeps a marker so it can never equal one of Zeek's.
    pub fn translate_id(&self, id: &str) -> String {
        match self.ours_to_zeek.get(id) {
            Some(zeek) => zeek.clone(),
            None if is_null(id) => id.to_owned(),
            None => format!("{id}(unmapped)"),
        }
    }

    pub fn len(&self) -> usize {
        self.ours_to_zeek.len()
    }
}

/// The log names present on both sides, `first` ahead of the rest.
fn anchor_order<'a>(zeek: &'a LogSet, ours: &LogSet, first: &str) -> Vec<&'a str> {
    let mut names: Vec<&str> = zeek.keys().map(String::as_str).filter(|n| ours.contains_key(*n)).collect();
    names.sort_by_key(|n| (*n != first, *n));
    names
}

fn is_null(value: &str) -> bool {
    value == "-" || value == "(empty)" || value.is_empty()
}

/// Whether a column holds uids or fuids (`uid`, `fuid`, `parent_fuid`, `orig_fuids`, `tunnel_parents`, ...).
fn is_id_field(field: &str) -> bool {
    field.contains("uid") || field == "tunnel_parents"
}

/// (connection key, uid) per record, first appearance only. The key is the 5-tuple, with `proto` when the log has it.
fn keyed_uids(log: &ZeekLog) -> Vec<(String, String)> {
    let Some(uid_col) = log.index("uid") else { return Vec::new() };
    let id_cols: Vec<usize> =
        ["proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"].iter().filter_map(|f| log.index(f)).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for record in &log.records {
        let uid = record.get(uid_col).map_or("-", String::as_str);
        if is_null(uid) || !seen.insert(uid.to_owned()) {
            continue;
        }
        let key: Vec<&str> = id_cols.iter().filter_map(|&c| record.get(c)).map(String::as_str).collect();
        out.push((key.join("|"), uid.to_owned()));
    }
    out
}

/// (mapped uid, fuid) per file id, in order of appearance across the log's fuid columns.
fn keyed_fuids(log: &ZeekLog, uid_in_zeek_space: impl Fn(&str) -> String) -> Vec<(String, String)> {
    let fuid_cols: Vec<usize> =
        log.fields.iter().enumerate().filter(|(_, f)| f.contains("fuid")).map(|(i, _)| i).collect();
    if fuid_cols.is_empty() {
        return Vec::new();
    }
    let uid_col = log.index("uid");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for record in &log.records {
        let uid = uid_col.and_then(|c| record.get(c)).map_or("-", String::as_str);
        let key = uid_in_zeek_space(uid);
        for fuid in fuid_cols.iter().filter_map(|&c| record.get(c)).flat_map(|v| v.split(',')) {
            if !is_null(fuid) && seen.insert(fuid.to_owned()) {
                out.push((key.clone(), fuid.to_owned()));
            }
        }
    }
    out
}

/// One field that differs within a pair.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDiff {
    pub field: String,
    pub zeek: String,
    pub ours: String,
}

/// A record of Zeek's paired with one of ours that is not equal, both as the compared columns (masked columns
/// left out, our ids translated into Zeek's).
#[derive(Debug, Clone)]
pub struct DifferingPair {
    pub zeek_line: String,
    pub our_line: String,
    pub diffs: Vec<FieldDiff>,
}

/// The comparison of one log of one case.
#[derive(Debug, Clone, Default)]
pub struct LogComparison {
    pub zeek_records: usize,
    pub exact: usize,
    pub differing: Vec<DifferingPair>,
    /// Zeek's records without a partner (their TSV lines).
    pub missing: Vec<String>,
    /// Our records without a partner (translated TSV lines).
    pub extra: Vec<String>,
    /// Header differences: columns missing, extra or typed differently.
    pub notes: Vec<String>,
}

/// Compares our log (if written) with Zeek's.
pub fn compare_log(zeek: &ZeekLog, ours: Option<&ZeekLog>, ids: &IdMap) -> LogComparison {
    let Some(ours) = ours else {
        return LogComparison {
            zeek_records: zeek.records.len(),
            missing: zeek.records.iter().map(|r| r.join("\t")).collect(),
            notes: vec!["log not written".to_owned()],
            ..LogComparison::default()
        };
    };
    let columns = Columns::new(zeek, ours);
    let zeek_rows: Vec<Vec<String>> = zeek.records.iter().map(|r| columns.zeek_row(zeek, r)).collect();
    let our_rows: Vec<Vec<String>> = ours.records.iter().map(|r| columns.our_row(ours, r, ids)).collect();
    let pairing = pair_records(&zeek_rows, &our_rows, columns.bucket);

    let mut result =
        LogComparison { zeek_records: zeek.records.len(), notes: columns.notes, ..LogComparison::default() };
    for (zi, oi) in pairing.pairs {
        let diffs: Vec<FieldDiff> = columns
            .names
            .iter()
            .zip(zeek_rows[zi].iter().zip(&our_rows[oi]))
            .filter(|(_, (z, o))| z != o)
            .map(|(name, (z, o))| FieldDiff { field: name.clone(), zeek: z.clone(), ours: o.clone() })
            .collect();
        if diffs.is_empty() {
            result.exact += 1;
        } else {
            result.differing.push(DifferingPair {
                zeek_line: zeek_rows[zi].join("\t"),
                our_line: our_rows[oi].join("\t"),
                diffs,
            });
        }
    }
    result.missing = pairing.missing.iter().map(|&zi| zeek.records[zi].join("\t")).collect();
    result.extra = pairing.extra.iter().map(|&oi| our_rows[oi].join("\t")).collect();
    result
}

/// The columns compared for one log: Zeek's (minus masked ones) followed by any extra ones of ours.
struct Columns {
    names: Vec<String>,
    /// Set-typed columns compare as sorted element lists (Zeek prints sets in hash order).
    is_set: Vec<bool>,
    /// Index (in `names`) of the column that groups candidate partners: uid, fuid or fingerprint.
    bucket: Option<usize>,
    notes: Vec<String>,
}

impl Columns {
    fn new(zeek: &ZeekLog, ours: &ZeekLog) -> Columns {
        let masked = |field: &String| {
            let col = zeek.index(field);
            !zeek.records.is_empty()
                && zeek.records.iter().all(|r| col.and_then(|c| r.get(c)).is_some_and(|v| v == MASKED_TIME))
        };
        let mut names: Vec<String> = zeek.fields.iter().filter(|f| !masked(f)).cloned().collect();
        let mut notes = Vec::new();
        let missing_cols: Vec<&str> =
            zeek.fields.iter().filter(|f| ours.index(f).is_none()).map(String::as_str).collect();
        if !missing_cols.is_empty() {
            notes.push(format!("columns missing: {}", missing_cols.join(" ")));
        }
        let extra_cols: Vec<String> = ours.fields.iter().filter(|f| zeek.index(f).is_none()).cloned().collect();
        if !extra_cols.is_empty() {
            notes.push(format!("columns extra: {}", extra_cols.join(" ")));
        }
        for field in &zeek.fields {
            if let (Some(z), Some(o)) = (zeek.type_of(field), ours.type_of(field))
                && z != o
            {
                notes.push(format!("type of {field}: zeek {z}, ours {o}"));
            }
        }
        if missing_cols.is_empty() && extra_cols.is_empty() && zeek.fields != ours.fields {
            notes.push("column order differs".to_owned());
        }
        names.extend(extra_cols);
        let is_set = names.iter().map(|n| zeek.type_of(n).or(ours.type_of(n)).is_some_and(is_set_type)).collect();
        let bucket = ["uid", "fuid", "fingerprint"].iter().find_map(|b| names.iter().position(|n| n == b));
        Columns { names, is_set, bucket, notes }
    }

    fn zeek_row(&self, log: &ZeekLog, record: &[String]) -> Vec<String> {
        self.names.iter().zip(&self.is_set).map(|(name, &set)| normalize(log.value(record, name), set)).collect()
    }

    fn our_row(&self, log: &ZeekLog, record: &[String], ids: &IdMap) -> Vec<String> {
        self.names
            .iter()
            .zip(&self.is_set)
            .map(|(name, &set)| {
                let value = log.value(record, name);
                let value = if is_id_field(name) && value != ABSENT { translate_ids(value, ids) } else { value.into() };
                normalize(&value, set)
            })
            .collect()
    }
}

fn is_set_type(ty: &str) -> bool {
    ty.starts_with("set[")
}

fn normalize(value: &str, is_set: bool) -> String {
    if !is_set || is_null(value) {
        return value.to_owned();
    }
    let mut elements: Vec<&str> = value.split(',').collect();
    elements.sort_unstable();
    elements.join(",")
}

fn translate_ids(value: &str, ids: &IdMap) -> String {
    if is_null(value) {
        return value.to_owned();
    }
    value.split(',').map(|id| ids.translate_id(id)).collect::<Vec<_>>().join(",")
}

/// Which records pair up.
#[derive(Debug, Default, PartialEq)]
pub struct Pairing {
    pub pairs: Vec<(usize, usize)>,
    pub missing: Vec<usize>,
    pub extra: Vec<usize>,
}

/// Above this many candidate pairs a group is paired in order instead of by best match (keeps the test fast).
const MAX_SCORED_PAIRS: usize = 4_000_000;

/// A multiset match: identical rows first, then best match by number of equal fields within a bucket (same uid),
/// then best match across buckets for rows that agree on at least half of their fields.
pub fn pair_records(zeek: &[Vec<String>], ours: &[Vec<String>], bucket: Option<usize>) -> Pairing {
    let mut pairs = Vec::new();
    let mut our_free: BTreeSet<usize> = (0..ours.len()).collect();
    let mut zeek_free: Vec<usize> = Vec::new();

    let mut identical: HashMap<&[String], VecDeque<usize>> = HashMap::new();
    for (oi, row) in ours.iter().enumerate() {
        identical.entry(row.as_slice()).or_default().push_back(oi);
    }
    for (zi, row) in zeek.iter().enumerate() {
        match identical.get_mut(row.as_slice()).and_then(VecDeque::pop_front) {
            Some(oi) => {
                our_free.remove(&oi);
                pairs.push((zi, oi));
            }
            None => zeek_free.push(zi),
        }
    }

    let bucket_of = |row: &Vec<String>| bucket.and_then(|b| row.get(b)).cloned().unwrap_or_default();
    let mut groups: BTreeMap<String, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for &zi in &zeek_free {
        groups.entry(bucket_of(&zeek[zi])).or_default().0.push(zi);
    }
    for &oi in &our_free {
        groups.entry(bucket_of(&ours[oi])).or_default().1.push(oi);
    }
    for (zs, os) in groups.values() {
        pairs.extend(best_matches(zeek, ours, zs, os, 0));
    }

    let paired_z: HashSet<usize> = pairs.iter().map(|p| p.0).collect();
    let paired_o: HashSet<usize> = pairs.iter().map(|p| p.1).collect();
    let zs: Vec<usize> = zeek_free.into_iter().filter(|z| !paired_z.contains(z)).collect();
    let os: Vec<usize> = our_free.into_iter().filter(|o| !paired_o.contains(o)).collect();
    let half = zeek.first().or(ours.first()).map_or(0, |r| r.len().div_ceil(2));
    pairs.extend(best_matches(zeek, ours, &zs, &os, half));

    let paired_z: HashSet<usize> = pairs.iter().map(|p| p.0).collect();
    let paired_o: HashSet<usize> = pairs.iter().map(|p| p.1).collect();
    pairs.sort_unstable();
    Pairing {
        pairs,
        missing: (0..zeek.len()).filter(|z| !paired_z.contains(z)).collect(),
        extra: (0..ours.len()).filter(|o| !paired_o.contains(o)).collect(),
    }
}

/// Greedy best match: highest number of equal fields first, ties to the pair closest in log order. Pairs scoring
/// below `min_score` stay unpaired.
fn best_matches(
    zeek: &[Vec<String>],
    ours: &[Vec<String>],
    zs: &[usize],
    os: &[usize],
    min_score: usize,
) -> Vec<(usize, usize)> {
    if zs.is_empty() || os.is_empty() {
        return Vec::new();
    }
    if zs.len() * os.len() > MAX_SCORED_PAIRS {
        return zs
            .iter()
            .copied()
            .zip(os.iter().copied())
            .filter(|&(z, o)| score(&zeek[z], &ours[o]) >= min_score)
            .collect();
    }
    let mut candidates: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(zs.len() * os.len());
    for (zr, &zi) in zs.iter().enumerate() {
        for (or, &oi) in os.iter().enumerate() {
            let s = score(&zeek[zi], &ours[oi]);
            if s >= min_score {
                candidates.push((s, zr.abs_diff(or), zi, oi));
            }
        }
    }
    candidates.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
    let mut taken_z = HashSet::new();
    let mut taken_o = HashSet::new();
    let mut pairs = Vec::new();
    for (_, _, zi, oi) in candidates {
        if !taken_z.contains(&zi) && !taken_o.contains(&oi) {
            taken_z.insert(zi);
            taken_o.insert(oi);
            pairs.push((zi, oi));
        }
    }
    pairs
}

fn score(a: &[String], b: &[String]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\t\
history\ttunnel_parents\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tset[string]\n";

    fn conn(rows: &[&str]) -> ZeekLog {
        ZeekLog::parse(&format!("{HEADER}{}\n", rows.join("\n")))
    }

    fn set_of(name: &str, log: ZeekLog) -> LogSet {
        LogSet::from([(name.to_owned(), log)])
    }

    const ZEEK_ROWS: [&str; 3] = [
        "XXXXXXXXXX.XXXXXX\tCa\t10.0.0.1\t1000\t10.0.0.2\t80\ttcp\tShADadFf\t-",
        "XXXXXXXXXX.XXXXXX\tCb\t10.0.0.1\t1001\t10.0.0.2\t80\ttcp\tS\t-",
        "XXXXXXXXXX.XXXXXX\tCc\t10.0.0.3\t5\t10.0.0.4\t6\tudp\tD\tCa,Cb",
    ];

    #[test]
    fn a_log_matches_itself_exactly() {
        let zeek = conn(&ZEEK_ROWS);
        let ids = IdMap::build(&set_of("conn", zeek.clone()), &set_of("conn", zeek.clone()));
        let result = compare_log(&zeek, Some(&zeek), &ids);
        assert_eq!((result.zeek_records, result.exact), (3, 3));
        assert!(result.differing.is_empty() && result.missing.is_empty() && result.extra.is_empty());
    }

    #[test]
    fn uids_are_mapped_through_the_five_tuple_and_sets_ignore_order() {
        let zeek = conn(&ZEEK_ROWS);
        // Our own uids, our own write order, and the set written in the other order.
        let ours = conn(&[
            "1.000000\tCy\t10.0.0.3\t5\t10.0.0.4\t6\tudp\tD\tCx,Cw",
            "1.000000\tCw\t10.0.0.1\t1000\t10.0.0.2\t80\ttcp\tShADadFf\t-",
            "1.000000\tCx\t10.0.0.1\t1001\t10.0.0.2\t80\ttcp\tS\t-",
        ]);
        let ids = IdMap::build(&set_of("conn", zeek.clone()), &set_of("conn", ours.clone()));
        assert_eq!(ids.len(), 3);
        let result = compare_log(&zeek, Some(&ours), &ids);
        assert_eq!(result.exact, 3, "{result:?}");
    }

    #[test]
    fn a_perturbed_field_is_counted_on_its_pair() {
        let zeek = conn(&ZEEK_ROWS);
        let mut ours = zeek.clone();
        ours.records[1][7] = "Sr".into();
        let ids = IdMap::build(&set_of("conn", zeek.clone()), &set_of("conn", ours.clone()));
        let result = compare_log(&zeek, Some(&ours), &ids);
        assert_eq!(result.exact, 2);
        assert_eq!(result.differing.len(), 1);
        assert_eq!(
            result.differing[0].diffs,
            [FieldDiff { field: "history".into(), zeek: "S".into(), ours: "Sr".into() }]
        );
    }

    #[test]
    fn a_changed_five_tuple_still_pairs_with_its_closest_record() {
        let zeek = conn(&ZEEK_ROWS);
        let mut ours = zeek.clone();
        ours.records[0][3] = "2000".into();
        let ids = IdMap::build(&set_of("conn", zeek.clone()), &set_of("conn", ours.clone()));
        let result = compare_log(&zeek, Some(&ours), &ids);
        assert_eq!(result.exact, 1);
        let fields: BTreeSet<&str> =
            result.differing.iter().flat_map(|p| p.diffs.iter().map(|d| d.field.as_str())).collect();
        // Ca is unmapped now, so the uid and the tunnel parent that points at it differ too.
        assert_eq!(fields, BTreeSet::from(["id.orig_p", "uid", "tunnel_parents"]));
        assert!(result.missing.is_empty() && result.extra.is_empty());
    }

    #[test]
    fn missing_and_extra_records_and_missing_log() {
        let zeek = conn(&ZEEK_ROWS);
        let ours = conn(&[ZEEK_ROWS[0], "XXXXXXXXXX.XXXXXX\tCq\t9.9.9.9\t1\t8.8.8.8\t2\ticmp\t-\t-"]);
        let ids = IdMap::build(&set_of("conn", zeek.clone()), &set_of("conn", ours.clone()));
        let result = compare_log(&zeek, Some(&ours), &ids);
        assert_eq!((result.exact, result.missing.len(), result.extra.len()), (1, 2, 1), "{result:?}");

        let absent = compare_log(&zeek, None, &IdMap::default());
        assert_eq!((absent.exact, absent.missing.len()), (0, 3));
    }

    #[test]
    fn extra_and_missing_columns_make_records_differ() {
        let zeek = conn(&ZEEK_ROWS[..1]);
        let ours = ZeekLog::parse(
            "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\thistory\tnew\n\
             0\tCa\t10.0.0.1\t1000\t10.0.0.2\t80\ttcp\tShADadFf\tx\n",
        );
        let ids = IdMap::build(&set_of("conn", zeek.clone()), &set_of("conn", ours.clone()));
        let result = compare_log(&zeek, Some(&ours), &ids);
        let fields: Vec<&str> = result.differing[0].diffs.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["tunnel_parents", "new"]);
        assert_eq!(result.notes, ["columns missing: tunnel_parents", "columns extra: new"]);
    }

    #[test]
    fn file_ids_are_mapped_by_order_within_a_connection() {
        let header = "#fields\tts\tfuid\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tmime_type\n";
        let zeek_files = ZeekLog::parse(&format!(
            "{header}X\tFa\tCa\t1.1.1.1\t1\t2.2.2.2\t2\ttext/plain\nX\tFb\tCa\t1.1.1.1\t1\t2.2.2.2\t2\ttext/html\n"
        ));
        let our_files = ZeekLog::parse(&format!(
            "{header}X\tF1\tC9\t1.1.1.1\t1\t2.2.2.2\t2\ttext/plain\nX\tF2\tC9\t1.1.1.1\t1\t2.2.2.2\t2\ttext/html\n"
        ));
        let zeek = set_of("files", zeek_files.clone());
        let ours = set_of("files", our_files.clone());
        let ids = IdMap::build(&zeek, &ours);
        assert_eq!(ids.translate_id("F2"), "Fb");
        assert_eq!(ids.translate_id("C9"), "Ca");
        assert_eq!(compare_log(&zeek_files, Some(&our_files), &ids).exact, 2);
    }

    #[test]
    fn every_oracle_baseline_matches_itself() {
        let Some(root) = crate::oracle_root() else { return };
        for case in crate::load_cases(&root) {
            let logs: LogSet = case
                .baselines
                .iter()
                .map(|b| (crate::log_name(&b.file), ZeekLog::read(&b.file).expect("baseline")))
                .collect();
            let ids = IdMap::build(&logs, &logs);
            for (name, log) in &logs {
                let result = compare_log(log, Some(log), &ids);
                assert_eq!(result.exact, log.records.len(), "{}/{name}", case.name);
            }
        }
    }
}
