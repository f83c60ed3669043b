//! The whole engine (decode, sessions, TCP reassembly, every analyzer, log records) over arbitrary frames.
//! The first byte picks the link type and whether checksums are checked; time advances 0.25 s per frame so
//! timers fire too.
#![no_main]

mod frames;

use zeek_node::config::AnalysisConfig;
use zeek_node::engine::Engine;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else { return };
    let link = frames::LINKS[usize::from(*selector & 0x7f) % frames::LINKS.len()];
    let cfg = AnalysisConfig { ignore_checksums: selector & 0x80 == 0, ..AnalysisConfig::default() };
    let mut engine = Engine::new(cfg);
    for (i, frame) in frames::frames(rest).enumerate() {
        engine.process_packet(1_300_000_000.0 + i as f64 * 0.25, link, frame);
        engine.drain_records().for_each(drop);
    }
    engine.finish();
    engine.drain_records().for_each(drop);
});
