//! ftp analyzer (being written).

use super::{Analyzer, AnalyzerSpec, Ctx};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ftp",
    tcp_ports: &[],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(Pending),
    schemas: &[],
};

/// FTP data connections are attached only by expectation (PORT/PASV), never by port or content.
pub static DATA_SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ftp-data",
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
