//! ICMPv6 neighbour discovery (RFC 4861): the checks Zeek's ICMP analyzer makes before it hands a router or
//! neighbour message's options to scripts, and the weirds it raises for malformed ones.

/// What is wrong with a neighbour-discovery message, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdWeird {
    /// The body is shorter than the fixed fields before the options. Zeek reports this without a connection
    /// (`icmp6_ra_bad_opt_offset`, ...), `addl` being "<options offset> (length <body length>)".
    BadOptOffset { name: &'static str, offset: usize, body_len: usize },
    /// An option is cut short or has length zero: a weird on the connection.
    BadOption(&'static str),
}

impl NdWeird {
    /// The weird's `addl` column.
    pub fn addl(self) -> Option<String> {
        match self {
            NdWeird::BadOptOffset { offset, body_len, .. } => Some(format!("{offset} (length {body_len})")),
            NdWeird::BadOption(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NdWeird::BadOptOffset { name, .. } | NdWeird::BadOption(name) => name,
        }
    }
}

/// Where the options start in the body (after the 8-byte ICMPv6 header) of each neighbour-discovery message,
/// and the weird for a body too short to reach them. Router solicitations have no fixed part.
fn options_offset(icmp_type: u8) -> Option<(usize, &'static str)> {
    match icmp_type {
        133 => Some((0, "")),
        134 => Some((8, "icmp6_ra_bad_opt_offset")), // reachable time, retrans timer
        135 => Some((16, "icmp6_ns_bad_opt_offset")), // target address
        136 => Some((16, "icmp6_na_bad_opt_offset")), // target address
        137 => Some((32, "icmp6_redirect_bad_opt_offset")), // target and destination addresses
        _ => None,
    }
}

/// Checks a neighbour-discovery message of type `icmp_type` whose body (as captured) is `body`.
pub fn check_nd(icmp_type: u8, body: &[u8]) -> Option<NdWeird> {
    let (offset, name) = options_offset(icmp_type)?;
    match body.get(offset..) {
        Some(options) => check_options(options).map(NdWeird::BadOption),
        None => Some(NdWeird::BadOptOffset { name, offset, body_len: body.len() }),
    }
}

/// Walks type-length-value options whose length counts 8-octet units, as Zeek's `BuildNDOptionsVal` does.
fn check_options(mut options: &[u8]) -> Option<&'static str> {
    while !options.is_empty() {
        let [_, units, ..] = *options else { return Some("truncated_ICMPv6_ND_options") };
        if units == 0 {
            return Some("zero_length_ICMPv6_ND_option");
        }
        // A last option longer than the capture ends the walk quietly, as in Zeek.
        options = options.get(usize::from(units) * 8..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK_ADDR_OPTION: [u8; 8] = [1, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];

    #[test]
    fn body_shorter_than_the_fixed_fields_is_a_bad_offset() {
        let w = check_nd(134, &[0; 4]).unwrap();
        assert_eq!(w.name(), "icmp6_ra_bad_opt_offset");
        assert_eq!(w.addl().as_deref(), Some("8 (length 4)"));
        assert_eq!(check_nd(136, &[0; 8]).unwrap().addl().as_deref(), Some("16 (length 8)"));
        assert_eq!(check_nd(135, &[0; 8]).unwrap().name(), "icmp6_ns_bad_opt_offset");
        assert_eq!(check_nd(137, &[0; 16]).unwrap().addl().as_deref(), Some("32 (length 16)"));
    }

    #[test]
    fn exact_fixed_part_and_whole_options_are_fine() {
        assert_eq!(check_nd(134, &[0; 8]), None);
        let mut na = vec![0; 16];
        na.extend_from_slice(&LINK_ADDR_OPTION);
        assert_eq!(check_nd(136, &na), None);
        assert_eq!(check_nd(133, &[]), None);
        assert_eq!(check_nd(128, &[]), None, "echo is no neighbour discovery");
    }

    #[test]
    fn malformed_options_are_named() {
        assert_eq!(check_nd(133, &[1]), Some(NdWeird::BadOption("truncated_ICMPv6_ND_options")));
        assert_eq!(check_nd(133, &[1, 0, 0, 0]), Some(NdWeird::BadOption("zero_length_ICMPv6_ND_option")));
        let mut two = LINK_ADDR_OPTION.to_vec();
        two.extend_from_slice(&[3, 0]);
        assert_eq!(check_nd(133, &two), Some(NdWeird::BadOption("zero_length_ICMPv6_ND_option")));
        assert_eq!(check_nd(133, &[3, 4, 0]), None, "an option cut by the capture ends the walk");
    }
}
