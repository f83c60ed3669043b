//! Test fixtures lifted from the oracle pcaps, replayed into a stream analyzer (shared by the ssl and ssh
//! tests).

use crate::analyzers::Analyzer;

/// Replays a fixture: repeated `[direction u8 (0 = orig)][ts f64 LE][len u32 LE][payload]` in packet
/// order, one delivery per packet, then finishes the connection a second after the last packet.
pub fn fixture(h: &mut crate::analyzers::testing::Harness, analyzer: &mut dyn Analyzer, fixture: &[u8]) {
    let mut rest = fixture;
    let mut last_ts = 0.0;
    while let Some(header) = rest.get(..13) {
        let is_orig = header[0] == 0;
        let ts = f64::from_le_bytes(header[1..9].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes")) as usize;
        let payload = &rest[13..13 + len];
        h.run(ts, |ctx| analyzer.deliver(ctx, is_orig, payload));
        last_ts = ts;
        rest = &rest[13 + len..];
    }
    h.run(last_ts + 1.0, |ctx| analyzer.finish(ctx));
}
