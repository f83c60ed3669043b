//! RFB (VNC): Zeek attaches its binpac analyzer only by signature (base/protocols/rfb/dpd.sig: both directions start
//! with `RFB`; no ports are registered) and confirms in `proc_rfb_version` once the *client's* 12-byte
//! `ProtocolVersion` parsed (src/analyzer/protocol/rfb/rfb-protocol.pac `RFBProtocolVersion`: the literals `RFB `
//! and `.` around two 3-byte fields, then one byte). A version of either side that does not parse is a violation;
//! the analyzer ignores connections joined mid-stream (RFB.cc, `TCP()->IsPartial()`).

use super::{AnalyzerSpec, Proto, Signature, confirmer_spec};

/// `RFB xxx.yyy` and its line end.
const VERSION_LEN: usize = 12;

confirmer_spec!(RFB, "rfb", tcp: &[], udp: &[], detect: Some(Signature::both_sides(detect_rfb)), both: false, check: rfb_check, skip_partial: true);

fn detect_rfb(proto: Proto, _is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Tcp && data.starts_with(b"RFB")
}

fn rfb_check(is_orig: bool, head: &[u8]) -> Option<bool> {
    // binpac parses the version once all 12 bytes are there.
    let version = head.get(..VERSION_LEN)?;
    if !(version.starts_with(b"RFB ") && version[7] == b'.') {
        return Some(false);
    }
    is_orig.then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    fn run(partial: bool, deliveries: &[(bool, &[u8])]) -> Vec<Action> {
        let mut h = Harness::new(Proto::Tcp, 5900);
        h.partial = partial;
        let mut rfb = (RFB.new)(Proto::Tcp);
        for (is_orig, data) in deliveries {
            h.deliver(rfb.as_mut(), *is_orig, data);
        }
        h.actions
    }

    #[test]
    fn rfb_confirms_on_the_clients_version() {
        // RFC 6143 §7.1.1: the server's ProtocolVersion, then the client's (here in two segments).
        let actions = run(false, &[(false, b"RFB 003.008\n"), (true, b"RFB 003"), (true, b".008\n")]);
        assert_eq!(actions, [Action::Confirm("rfb")]);
        assert_eq!(run(false, &[(false, b"RFB 003.008\n")]), [], "the server's version alone");
        assert!(detect_rfb(Proto::Tcp, true, b"RFB 003.889\n") && !detect_rfb(Proto::Tcp, true, b"SSH-2.0-x\r\n"));
    }

    #[test]
    fn rfb_rejects_a_malformed_version_and_mid_stream_connections() {
        let actions = run(false, &[(false, b"RFB 003.008\n"), (true, b"RFB 003,008\n")]);
        assert!(matches!(actions[..], [Action::Violation(_)]));
        assert!(matches!(run(false, &[(false, b"RFB3.8 hello!\n")])[..], [Action::Violation(_)]));
        assert_eq!(run(true, &[(false, b"RFB 003.008\n"), (true, b"RFB 003.008\n")]), []);
    }
}
