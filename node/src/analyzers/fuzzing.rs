//! The fuzz driver every analyzer's `fuzz` entry point uses (cargo-fuzz targets in fuzz/ call those).

use super::{Analyzer, ConnId, Ctx, Proto};
use crate::conn::UidGenerator;

/// Feeds `analyzer` from arbitrary bytes. Input layout: repeated `[control, len, bytes...]`; `control`'s low bit
/// is the direction, and `len` bytes (capped by what is left) form one delivery. Control values 0xFE/0xFF end a
/// direction or report a gap, so those paths are exercised too. The connection is finished at the end. Returns
/// how much the analyzer wrote: records, weirds and actions (shared state expired included).
pub fn drive(analyzer: &mut dyn Analyzer, proto: Proto, resp_p: u16, data: &[u8]) -> usize {
    with_conn(proto, resp_p, |ctx| {
        let mut rest = data;
        while let [control, len, tail @ ..] = rest {
            let is_orig = control & 1 == 0;
            let n = usize::from(*len).min(tail.len());
            match control {
                0xFE => analyzer.end_of_data(ctx, is_orig),
                0xFF => analyzer.undelivered(ctx, is_orig, u64::from(*len)),
                _ => analyzer.deliver(ctx, is_orig, &tail[..n]),
            }
            ctx.ts += 0.001;
            rest = &tail[n..];
        }
        analyzer.finish(ctx);
    })
}

/// Runs `f` with a context on a TCP connection to port 445 (parsers that other analyzers embed); returns what
/// was written, as [`drive`] does.
pub fn with_ctx(f: impl FnOnce(&mut Ctx)) -> usize {
    with_conn(Proto::Tcp, 445, f)
}

fn with_conn(proto: Proto, resp_p: u16, f: impl FnOnce(&mut Ctx)) -> usize {
    let id = ConnId {
        orig_h: "10.0.0.1".parse().expect("literal address"),
        orig_p: 40000,
        resp_h: "192.0.2.1".parse().expect("literal address"),
        resp_p,
        proto,
    };
    let mut records = Vec::new();
    let mut actions = Vec::new();
    let mut weirds = Vec::new();
    let mut ids = UidGenerator::new(1);
    let cfg = crate::config::AnalysisConfig::default();
    let mut shared = super::SharedState::default();
    let mut ctx = Ctx {
        ts: 1.0,
        start_ts: 0.0,
        uid: "CFuzz",
        id: &id,
        partial: false,
        cfg: &cfg,
        records: &mut records,
        actions: &mut actions,
        weirds: &mut weirds,
        ids: &mut ids,
        shared: &mut shared,
    };
    f(&mut ctx);
    shared.expire(f64::INFINITY, true, &mut records);
    records.len() + weirds.len() + actions.len()
}
