//! The log row decoder (cluster/logwire.rs) over arbitrary bytes: the first byte picks a stream, the second a row
//! count, the rest are the rows. Bad input must be an error, never a panic; rows that decode must format, and encode
//! back to bytes that decode to the same encoding (the encoding is canonical after one round).
#![no_main]

use zeek_node::cluster::logwire::{decode_rows, encode_row, schema_for};
use zeek_node::logs::{LogRecord, format_record_json, format_record_tsv};

const PATHS: &[&str] = &["conn", "cluster", "dns", "http", "ssl", "notice", "files", "weird"];

fn encode(records: &[LogRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    records.iter().for_each(|r| encode_row(&mut out, &r.values));
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [pick, count, rows @ ..] = data else { return };
    let Some(schema) = schema_for(PATHS[usize::from(*pick) % PATHS.len()]) else { return };
    let count = usize::from(*count % 8);
    let Ok(records) = decode_rows(schema, count, rows) else { return };
    let mut text = String::new();
    for r in &records {
        format_record_tsv(&mut text, r);
        format_record_json(&mut text, r);
    }
    let once = encode(&records);
    let again = decode_rows(schema, count, &once).expect("re-encoded rows decode");
    assert_eq!(encode(&again), once);
});
