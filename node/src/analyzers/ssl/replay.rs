//! Drivers that feed a stream analyzer from bytes: arbitrary fuzz input, and (in tests) packet
//! fixtures lifted from the oracle pcaps.
//!
//! (Shared by the ssl and ssh analyzers; it belongs in `analyzers::testing` once that is not test-only.)

use crate::analyzers::{Analyzer, ConnId, Ctx, Proto};
use crate::conn::UidGenerator;

/// Input layout: repeated `[control, len, bytes...]`; `control`'s low bit is the direction, and
/// `len` bytes (capped by what is left) form one delivery. Control values 0xFE/0xFF end a direction
/// or report a gap, so those paths are exercised too. The connection is finished at the end.
pub fn fuzz_input(analyzer: &mut dyn Analyzer, resp_p: u16, data: &[u8]) {
    let id = ConnId {
        orig_h: "10.0.0.1".parse().expect("literal address"),
        orig_p: 40000,
        resp_h: "192.0.2.1".parse().expect("literal address"),
        resp_p,
        proto: Proto::Tcp,
    };
    let mut records = Vec::new();
    let mut actions = Vec::new();
    let mut weirds = Vec::new();
    let mut ids = UidGenerator::new(1);
    let mut ctx = Ctx {
        ts: 1.0,
        start_ts: 0.0,
        uid: "CFuzz",
        id: &id,
        partial: false,
        cfg: &crate::config::AnalysisConfig::default(),
        records: &mut records,
        actions: &mut actions,
        weirds: &mut weirds,
        ids: &mut ids,
    };
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let is_orig = control & 1 == 0;
        let n = usize::from(*len).min(tail.len());
        match control {
            0xFE => analyzer.end_of_data(&mut ctx, is_orig),
            0xFF => analyzer.undelivered(&mut ctx, is_orig, u64::from(*len)),
            _ => analyzer.deliver(&mut ctx, is_orig, &tail[..n]),
        }
        ctx.ts += 0.001;
        rest = &tail[n..];
    }
    analyzer.finish(&mut ctx);
}

/// Replays a fixture: repeated `[direction u8 (0 = orig)][ts f64 LE][len u32 LE][payload]` in packet
/// order, one delivery per packet, then finishes the connection a second after the last packet.
#[cfg(test)]
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
