//! ssl analyzer (being written).

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ssl",
    tcp_ports: &[],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(Pending),
    schemas: &[],
};

struct Pending;

impl Analyzer for Pending {
    fn deliver(&mut self, _ctx: &mut Ctx, _is_orig: bool, _data: &[u8]) {}
}

#[allow(dead_code)]
fn _proto(_: Proto) {}
