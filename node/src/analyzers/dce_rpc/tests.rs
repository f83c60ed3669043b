use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, row};

pub(crate) const EPMAPPER: &str = "e1af8308-5d1f-11c9-91a4-08002b14a0fa";
pub(crate) const DRSUAPI: &str = "e3514235-4b06-11d1-ab04-00c04fc2dcd2";
pub(crate) const WINREG: &str = "338cd001-2244-31f1-aaaa-900038001003";
/// The NDR transfer syntax every Windows bind offers.
const NDR: &str = "8a885d04-1ceb-11c9-9fe8-08002b104860";

/// A uuid's 16 bytes as DCE/RPC sends them (the first three fields little endian).
pub(crate) fn uuid_bytes(uuid: &str) -> Vec<u8> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    let mut b: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    b[..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// A little-endian PDU of type `ptype` with `flags`, for call `call_id`, around `body` (and `auth`, when given:
/// the 8-byte auth header of that type and a blob).
pub(crate) fn pdu_with_auth(ptype: u8, flags: u8, call_id: u32, body: &[u8], auth: Option<(u8, &[u8])>) -> Vec<u8> {
    let auth_len = auth.map_or(0, |(_, blob)| blob.len());
    let frag_len = 16 + body.len() + auth.map_or(0, |_| 8) + auth_len;
    let mut m = vec![5, 0, ptype, flags, 0x10, 0, 0, 0];
    m.extend(u16::try_from(frag_len).unwrap().to_le_bytes());
    m.extend(u16::try_from(auth_len).unwrap().to_le_bytes());
    m.extend(call_id.to_le_bytes());
    m.extend(body);
    if let Some((auth_type, blob)) = auth {
        m.extend([auth_type, 2, 0, 0, 0, 0, 0, 0]);
        m.extend(blob);
    }
    m
}

/// A whole (first and last fragment) PDU.
pub(crate) fn pdu(ptype: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    pdu_with_auth(ptype, 0x03, call_id, body, None)
}

/// A bind (or alter_context) body offering `uuid` v`major`.0 as context `ctx_id`, with NDR.
pub(crate) fn bind_body(ctx_id: u16, uuid: &str, major: u16) -> Vec<u8> {
    let mut b = vec![0xb8, 0x10, 0xb8, 0x10, 0, 0, 0, 0, 1, 0, 0, 0];
    b.extend(ctx_id.to_le_bytes());
    b.extend([1, 0]);
    b.extend(uuid_bytes(uuid));
    b.extend(major.to_le_bytes());
    b.extend([0, 0]);
    b.extend(uuid_bytes(NDR));
    b.extend([2, 0, 0, 0]);
    b
}

/// A bind_ack body with secondary address `sec_addr` (NUL-terminated on the wire) accepting one context.
pub(crate) fn bind_ack_body(sec_addr: &str) -> Vec<u8> {
    let mut b = vec![0xb8, 0x10, 0xb8, 0x10, 0x34, 0x12, 0, 0];
    let addr = [sec_addr.as_bytes(), &[0]].concat();
    b.extend(u16::try_from(addr.len()).unwrap().to_le_bytes());
    b.extend(&addr);
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b.extend([1, 0, 0, 0, 0, 0, 0, 0]);
    b.extend(uuid_bytes(NDR));
    b.extend([2, 0, 0, 0]);
    b
}

pub(crate) fn request_body(ctx_id: u16, opnum: u16, stub: &[u8]) -> Vec<u8> {
    let mut b = u32::try_from(stub.len()).unwrap().to_le_bytes().to_vec();
    b.extend(ctx_id.to_le_bytes());
    b.extend(opnum.to_le_bytes());
    b.extend(stub);
    b
}

pub(crate) fn response_body(ctx_id: u16, stub: &[u8]) -> Vec<u8> {
    let mut b = u32::try_from(stub.len()).unwrap().to_le_bytes().to_vec();
    b.extend(ctx_id.to_le_bytes());
    b.extend([0, 0]);
    b.extend(stub);
    b
}

/// A bind to `uuid` on context 0, its ack naming `sec_addr`, then a request and response for each opnum.
pub(crate) fn session(uuid: &str, sec_addr: &str, opnums: &[u16]) -> Vec<(bool, Vec<u8>)> {
    let mut m = vec![
        (true, pdu(ptype::BIND, 1, &bind_body(0, uuid, 4))),
        (false, pdu(ptype::BIND_ACK, 1, &bind_ack_body(sec_addr))),
    ];
    for (i, opnum) in opnums.iter().enumerate() {
        let call = 2 + u32::try_from(i).unwrap();
        m.push((true, pdu(ptype::REQUEST, call, &request_body(0, *opnum, &[0xaa; 24]))));
        m.push((false, pdu(ptype::RESPONSE, call, &response_body(0, &[0xbb; 12]))));
    }
    m
}

/// The endpoint mapper's ept_map: map the DRSUAPI interface over TCP/IP (the request's tower is only stub bytes
/// to the analyzer).
fn ept_map_session() -> Vec<(bool, Vec<u8>)> {
    session(EPMAPPER, "135", &[3])
}

/// Each message delivered at 100.0, 100.5, 101.0, ... in two pieces split at `at` (not split when past its end).
fn run(messages: &[(bool, Vec<u8>)], at: usize) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 135);
    let mut dce = DceRpc::default();
    for (i, (is_orig, m)) in messages.iter().enumerate() {
        let (first, second) = m.split_at(at.min(m.len()));
        for piece in [first, second] {
            h.run(100.0 + i as f64 * 0.5, |ctx| dce.deliver(ctx, *is_orig, piece));
        }
    }
    h.finish(&mut dce);
    h
}

/// dce_rpc.log's columns from `ts` on, skipping `uid` and `id`, as TSV.
fn rows(h: &Harness) -> Vec<Vec<String>> {
    h.timed_columns("dce_rpc")
}

#[test]
fn endpoint_mapper_call_is_a_row_with_its_rtt() {
    let h = run(&ept_map_session(), usize::MAX);
    assert_eq!(rows(&h), [row(["101.000000", "0.500000", "135", "epmapper", "ept_map"])]);
    assert_eq!(h.actions, [Action::Confirm("dce_rpc")]);
    assert!(h.weirds.is_empty());
}

#[test]
fn well_known_interface_calls_as_in_zeeks_context_baseline() {
    // scripts.base.protocols.dce-rpc.context: DRSBind, DRSCrackNames, DRSUnbind over a dynamic port, the pipe name
    // from the bind_ack logged with its backslashes escaped.
    let h = run(&session(DRSUAPI, "\\PIPE\\drsuapi", &[0, 0x0c, 1]), usize::MAX);
    assert_eq!(
        rows(&h),
        [
            row(["101.000000", "0.500000", "\\\\PIPE\\\\drsuapi", "drsuapi", "DRSBind"]),
            row(["102.000000", "0.500000", "\\\\PIPE\\\\drsuapi", "drsuapi", "DRSCrackNames"]),
            row(["103.000000", "0.500000", "\\\\PIPE\\\\drsuapi", "drsuapi", "DRSUnbind"]),
        ]
    );
}

#[test]
fn every_split_point_gives_the_same_rows() {
    let messages = session(DRSUAPI, "49677", &[0, 3]);
    let whole = rows(&run(&messages, usize::MAX));
    assert_eq!(whole.len(), 2);
    let longest = messages.iter().map(|(_, m)| m.len()).max().unwrap();
    for at in 0..=longest {
        let h = run(&messages, at);
        assert_eq!(rows(&h), whole, "split at {at}");
        assert_eq!(h.actions, [Action::Confirm("dce_rpc")], "split at {at}");
    }
}

#[test]
fn fragmented_request_is_reassembled_by_call_id() {
    let mut messages = session(EPMAPPER, "135", &[]);
    let body = request_body(0, 3, &[0x11; 40]);
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(20);
    // Another call's whole request sits between the fragments: reassembly goes by call id.
    messages.push((true, pdu_with_auth(ptype::REQUEST, 0x01, 7, a, None)));
    messages.push((true, pdu_with_auth(ptype::REQUEST, 0x00, 7, b, None)));
    messages.push((true, pdu_with_auth(ptype::REQUEST, 0x02, 7, c, None)));
    messages.push((false, pdu(ptype::RESPONSE, 7, &response_body(0, &[0; 8]))));
    let h = run(&messages, usize::MAX);
    assert_eq!(rows(&h), [row(["102.000000", "0.500000", "135", "epmapper", "ept_map"])]);
    assert!(h.weirds.is_empty());
}

#[test]
fn fragments_without_their_first_are_dropped_and_a_second_first_is_a_weird() {
    let mut messages = session(EPMAPPER, "135", &[]);
    // A last fragment of a call never started is dropped: the response then finds no opnum for its context
    // (`cont_id_opnum_map`'s 0) and the record still has the time it was made at, the bind's.
    messages.push((true, pdu_with_auth(ptype::REQUEST, 0x02, 9, &request_body(0, 3, &[]), None)));
    messages.push((false, pdu(ptype::RESPONSE, 9, &response_body(0, &[]))));
    let h = run(&messages, usize::MAX);
    assert_eq!(rows(&h), [row(["100.000000", "1.500000", "135", "epmapper", "ept_insert"])]);

    let mut messages = session(EPMAPPER, "135", &[]);
    messages.push((true, pdu_with_auth(ptype::REQUEST, 0x01, 9, &request_body(0, 3, &[]), None)));
    messages.push((true, pdu_with_auth(ptype::REQUEST, 0x01, 9, &request_body(0, 3, &[]), None)));
    let h = run(&messages, usize::MAX);
    assert_eq!(h.weirds.len(), 1);
    assert_eq!(h.weirds[0].name, "multiple_first_fragments_in_dce_rpc_reassembly");
}

#[test]
fn reassembly_is_bounded() {
    let mut messages = session(EPMAPPER, "135", &[]);
    messages.push((true, pdu_with_auth(ptype::REQUEST, 0x01, 9, &request_body(0, 3, &[]), None)));
    for _ in 0..8 {
        messages.push((true, pdu_with_auth(ptype::REQUEST, 0x00, 9, &[0x55; 4000], None)));
    }
    let h = run(&messages, usize::MAX);
    assert_eq!(h.weirds.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["too_much_dce_rpc_fragment_data"]);

    let mut messages = session(EPMAPPER, "135", &[]);
    for call in 0..=u32::try_from(MAX_CMD_REASSEMBLY).unwrap() {
        messages.push((true, pdu_with_auth(ptype::REQUEST, 0x01, 100 + call, &request_body(0, 3, &[]), None)));
    }
    let h = run(&messages, usize::MAX);
    assert_eq!(h.weirds.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["too_many_dce_rpc_msgs_in_reassembly"]);
}

#[test]
fn ignored_operations_are_not_logged() {
    // winreg's OpenLocalMachine (2) is in `ignored_operations`, BaseRegQueryInfoKey (0x10) is not.
    let h = run(&session(WINREG, "\\PIPE\\winreg", &[2, 0x10]), usize::MAX);
    assert_eq!(rows(&h), [row(["102.000000", "0.500000", "\\\\PIPE\\\\winreg", "winreg", "BaseRegQueryInfoKey"])]);
}

#[test]
fn unknown_interfaces_and_opnums_take_the_defaults() {
    let h = run(&session("01020304-0506-0708-090a-0b0c0d0e0f10", "135", &[7]), usize::MAX);
    assert_eq!(
        rows(&h),
        [row(["101.000000", "0.500000", "135", "unknown-01020304-0506-0708-090a-0b0c0d0e0f10", "unknown-7"])]
    );
    assert_eq!(operation_name(DRSUAPI, 0x19), "unknown-25");
    // srvsvc's table skips 0x36.
    assert_eq!(operation_name("4b324fc8-1670-01d3-1278-5a47bf6ee188", 0x35), "NetrServerTransportDelEx");
    assert_eq!(operation_name("4b324fc8-1670-01d3-1278-5a47bf6ee188", 0x36), "unknown-54");
    assert_eq!(operation_name("4b324fc8-1670-01d3-1278-5a47bf6ee188", 0x37), "NetrServerAliasEnum");
}

#[test]
fn operations_of_the_whole_table_are_named_and_gaps_take_the_default() {
    const ITYPEINFO: &str = "00020401-0000-0000-c000-000000000046";
    const DHCPSRV2: &str = "5b821720-f63b-11d0-aad2-00c04fc324db";
    const NDDEAPI: &str = "2f5f3220-c126-1076-b549-074d078619da";
    const HEALTH_REPORT2: &str = "20d15747-6c48-4254-a358-65039fd8c63c";
    const REMOTE_FW: &str = "6b5bdd1e-528c-422c-af8c-a4079be4fe48";
    // Names as consts.zeek spells them, its duplicates and typos included.
    assert_eq!(operation_name("f5cc59b4-4264-101a-8c59-08002b2f8426", 0x05), "FrsBackupComplete");
    assert_eq!(operation_name("76f03f96-cdfd-44fc-a22c-64950a001209", 0x4a), "RpcAsyncLogJobInfoForBranchOffice");
    assert_eq!(operation_name("5ca4a760-ebb1-11cf-8611-00a0245420ed", 0x46), "RpcWinStationGetAllProcesses_NT6");
    assert_eq!(operation_name("b97db8b2-4c63-11cf-bff6-08002be23f2f", 0x50), "Opnum80NotUsedOnWire");
    assert_eq!(operation_name("70b51430-b6ca-11d0-b9b9-00a0c922e750", 0x05), "DeleteChildKEys");
    assert_eq!(operation_name("82ad4280-036b-11cf-972c-00aa006887b0", 0x02), "R_InsetInfoGetSites");
    assert_eq!(operation_name("f50aac00-c7f3-428e-a022-a6b71bfb9d43", 0x04), "KeyrCloseKeyService");
    assert_eq!(operation_name("ccd8c074-d0e5-4a40-92b4-d074faa6ba28", 0x04), "WitnessrRegisterEx");
    assert_eq!(operation_name("ccd8c074-d0e5-4a40-92b4-d074faa6ba28", 0x05), "unknown-5");
    // Runs: an opnum before the first, in a gap between two, or past the last takes the default.
    assert_eq!(operation_name(ITYPEINFO, 0x02), "unknown-2");
    assert_eq!(operation_name(ITYPEINFO, 0x03), "GetTypeAttr");
    assert_eq!(operation_name(ITYPEINFO, 0x09), "GetImplTypeFlags");
    assert_eq!(operation_name(ITYPEINFO, 0x0a), "unknown-10");
    assert_eq!(operation_name(ITYPEINFO, 0x0b), "unknown-11");
    assert_eq!(operation_name(ITYPEINFO, 0x0c), "GetDocumentation");
    assert_eq!(operation_name(ITYPEINFO, 0x0e), "GetRefTypeInfo");
    assert_eq!(operation_name(ITYPEINFO, 0x0f), "unknown-15");
    assert_eq!(operation_name(ITYPEINFO, 0x10), "CreateInstance");
    assert_eq!(operation_name(ITYPEINFO, 0x12), "GetContainingTypeLib");
    assert_eq!(operation_name(ITYPEINFO, 0x13), "unknown-19");
    assert_eq!(operation_name(DHCPSRV2, 0x43), "R_DhcpGetMibInfoV6");
    assert_eq!(operation_name(DHCPSRV2, 0x44), "unknown-68");
    assert_eq!(operation_name(DHCPSRV2, 0x45), "R_DhcpGetServerBindingInfoV6");
    assert_eq!(operation_name(DHCPSRV2, 0x84), "R_DhcpV4GetClientInfoEx");
    assert_eq!(operation_name(NDDEAPI, 0x10), "NDdeTrustedShareEnumW");
    assert_eq!(operation_name(NDDEAPI, 0x11), "unknown-17");
    assert_eq!(operation_name(NDDEAPI, 0x12), "NDdeSpecialCommand");
    // 0x10 here is sixteen, as the table has it, not the ten after 0x09.
    assert_eq!(operation_name(HEALTH_REPORT2, 0x09), "GetReport");
    assert_eq!(operation_name(HEALTH_REPORT2, 0x0a), "unknown-10");
    assert_eq!(operation_name(HEALTH_REPORT2, 0x10), "GetCompressedReport");
    assert_eq!(operation_name(REMOTE_FW, 0x43), "RRPC_FWEnumFirewallRules2_20");
    assert_eq!(operation_name(REMOTE_FW, 0x44), "unknown-68");
    assert_eq!(operation_name(REMOTE_FW, 0x51), "RRPC_FWQueryFirewallRules2_26");
    assert_eq!(operation_name(REMOTE_FW, 0x52), "unknown-82");
    // efsrpc and efsrpc2 start at EfsRpcOpenFileRaw and end at 0x2c.
    for efs in ["df1941c5-fe89-4e79-bf10-463657acf44d", "c681d488-d850-11d0-8c52-00c04fd90f7e"] {
        assert_eq!(operation_name(efs, 0), "EfsRpcOpenFileRaw");
        assert_eq!(operation_name(efs, 0x16), "EfsRpcQueryProtectors");
        assert_eq!(operation_name(efs, 0x2c), "Opnum44NotUsedOnWire");
        assert_eq!(operation_name(efs, 0x2d), "unknown-45");
    }
    // And through the analyzer: a Witness call is logged with both names.
    let h = run(&session("ccd8c074-d0e5-4a40-92b4-d074faa6ba28", "49670", &[1]), usize::MAX);
    assert_eq!(rows(&h), [row(["101.000000", "0.500000", "49670", "Witness", "WitnessrRegister"])]);
}

#[test]
fn operations_name_each_uuid_and_opnum_once() {
    let mut seen = std::collections::HashSet::new();
    for (uuid, first, names) in consts::OPERATIONS {
        assert!(!names.is_empty(), "empty run for {uuid} at {first}");
        for opnum in (0..names.len()).map(|i| usize::from(*first) + i) {
            assert!(seen.insert((*uuid, opnum)), "{uuid} opnum {opnum} named twice");
        }
        // consts.zeek names every interface of `operations` in `uuid_endpoint_map`, in lower case.
        assert!(consts::ENDPOINTS.iter().any(|(u, _)| u == uuid), "{uuid} has no endpoint");
        assert_eq!(*uuid, uuid.to_ascii_lowercase());
    }
    // The whole table: 142 interfaces, 2446 (uuid, opnum) pairs.
    assert_eq!(seen.iter().map(|(u, _)| *u).collect::<std::collections::HashSet<_>>().len(), 142);
    assert_eq!(seen.len(), 2446);
}

#[test]
fn a_call_pending_at_the_end_is_written_with_what_the_record_kept() {
    // finalize_dce_rpc writes `c$dce_rpc` when an event came after the last response: the record is the one the
    // response filled, so it keeps that operation and rtt with the new request's time.
    let mut messages = ept_map_session();
    messages.push((true, pdu(ptype::REQUEST, 5, &request_body(0, 2, &[]))));
    let h = run(&messages, usize::MAX);
    assert_eq!(
        rows(&h),
        [
            row(["101.000000", "0.500000", "135", "epmapper", "ept_map"]),
            row(["102.000000", "0.500000", "135", "epmapper", "ept_map"]),
        ]
    );
    // A request whose bind was never seen has nothing to name it.
    let h = run(&[(true, pdu(ptype::REQUEST, 5, &request_body(0, 2, &[])))], usize::MAX);
    assert!(rows(&h).is_empty());
}

#[test]
fn alter_context_binds_another_interface_for_a_new_context() {
    let mut messages = session(EPMAPPER, "135", &[]);
    messages.push((true, pdu(ptype::ALTER_CONTEXT, 3, &bind_body(1, DRSUAPI, 4))));
    messages.push((false, pdu(ptype::ALTER_CONTEXT_RESP, 3, &bind_ack_body(""))));
    messages.push((true, pdu(ptype::REQUEST, 4, &request_body(1, 0x0c, &[]))));
    messages.push((false, pdu(ptype::RESPONSE, 4, &response_body(1, &[]))));
    let h = run(&messages, usize::MAX);
    assert_eq!(rows(&h), [row(["102.000000", "0.500000", "135", "drsuapi", "DRSCrackNames"])]);
}

#[test]
fn big_endian_pdus_parse_by_their_drep() {
    let mut bind = pdu(ptype::BIND, 1, &bind_body(0, EPMAPPER, 3));
    bind[4] = 0x00;
    // The header's lengths and call id, and the body's counts, big endian now.
    bind[8..10].reverse();
    bind[12..16].reverse();
    bind[16..18].reverse();
    bind[18..20].reverse();
    bind[28..30].reverse();
    let h = run(&[(true, bind)], usize::MAX);
    assert_eq!(h.actions, [Action::Confirm("dce_rpc")]);
}

#[test]
fn auth_verifiers_of_other_types_are_weirds() {
    let request = pdu_with_auth(ptype::REQUEST, 0x03, 2, &request_body(0, 3, &[0; 8]), Some((0x44, &[1; 16])));
    let ntlm = pdu_with_auth(ptype::REQUEST, 0x03, 3, &request_body(0, 3, &[0; 8]), Some((0x0a, &[1; 16])));
    let h = run(&[(true, request), (true, ntlm)], usize::MAX);
    assert_eq!(h.weirds.len(), 1);
    assert_eq!((h.weirds[0].name.as_str(), h.weirds[0].addl.as_deref()), ("netlogon_dce_rpc_auth_type", Some("68")));
    // The NTLM blob goes to the NTLM analyzer, which takes a token of an unknown message type (here 0x01010101)
    // without an event, and confirms.
    assert_eq!(h.actions, [Action::Confirm("dce_rpc"), Action::Confirm("ntlm")]);
    assert!(h.logged("ntlm").is_empty());
}

/// `AUTH3`: the client's third leg of a bind's authentication.
const AUTH3: u8 = 16;

/// A bind carrying NTLMSSP (auth type 0x0a) in its verifiers: NEGOTIATE in the bind, CHALLENGE in the bind_ack,
/// AUTHENTICATE in an AUTH3, then a call.
#[test]
fn a_bind_with_ntlmssp_verifiers_writes_ntlm_log_at_the_end() {
    use crate::analyzers::ntlm::build::*;
    let info = target_info("CORP", "DC01", "corp.local", "dc01.corp.local", "corp.local");
    let negotiate_msg = negotiate(WINDOWS_FLAGS, b"", b"");
    let challenge_msg = challenge(WINDOWS_FLAGS, &utf16("CORP"), &info);
    let authenticate_msg = authenticate(WINDOWS_FLAGS, &utf16("CORP"), &utf16("alice"), &utf16("WS01"));
    let messages = [
        (true, pdu_with_auth(ptype::BIND, 0x03, 1, &bind_body(0, DRSUAPI, 4), Some((0x0a, &negotiate_msg)))),
        (false, pdu_with_auth(ptype::BIND_ACK, 0x03, 1, &bind_ack_body("49677"), Some((0x0a, &challenge_msg)))),
        (true, pdu_with_auth(AUTH3, 0x03, 1, &[0; 4], Some((0x0a, &authenticate_msg)))),
        (true, pdu(ptype::REQUEST, 2, &request_body(0, 3, &[0; 8]))),
        (false, pdu(ptype::RESPONSE, 2, &response_body(0, &[0; 8]))),
    ];
    for at in [usize::MAX, 3, 30, 70] {
        let h = run(&messages, at);
        assert_eq!(
            h.timed_columns("ntlm"),
            [row(["100.000000", "alice", "WS01", "CORP", "DC01", "dc01.corp.local", "corp.local", "-"])],
            "split at {at}"
        );
        assert_eq!(h.actions, [Action::Confirm("ntlm"), Action::Confirm("dce_rpc")]);
        assert_eq!(rows(&h).len(), 1);
    }
}

/// The same in SPNEGO (auth type 0x09): the final negTokenResp in the alter_context_resp gives the outcome, and
/// the record is written then.
#[test]
fn a_bind_with_spnego_verifiers_writes_ntlm_log_with_the_outcome() {
    use crate::analyzers::ntlm::build::*;
    let [init, challenge_resp, authenticate_resp, done] = spnego_ntlm_exchange(0);
    let messages = [
        (true, pdu_with_auth(ptype::BIND, 0x03, 1, &bind_body(0, DRSUAPI, 4), Some((0x09, &init)))),
        (false, pdu_with_auth(ptype::BIND_ACK, 0x03, 1, &bind_ack_body("49677"), Some((0x09, &challenge_resp)))),
        (
            true,
            pdu_with_auth(ptype::ALTER_CONTEXT, 0x03, 2, &bind_body(0, DRSUAPI, 4), Some((0x09, &authenticate_resp))),
        ),
        (false, pdu_with_auth(ptype::ALTER_CONTEXT_RESP, 0x03, 2, &bind_ack_body(""), Some((0x09, &done)))),
    ];
    let h = run(&messages, usize::MAX);
    let ntlm = h.timed_columns("ntlm");
    assert_eq!(ntlm.len(), 1);
    assert_eq!(ntlm[0][0], "100.000000", "the time of the first NTLM event");
    assert_eq!(ntlm[0][1..4], row(["User1", "WS01", "ADHACKING.LOCAL"]));
    assert_eq!(ntlm[0][7], "T");
    assert_eq!(h.actions, [Action::Confirm("ntlm"), Action::Confirm("gssapi"), Action::Confirm("dce_rpc")]);
}

#[test]
fn malformed_input_is_a_violation_and_never_panics() {
    let violation = |messages: &[(bool, Vec<u8>)]| {
        let h = run(messages, usize::MAX);
        assert!(rows(&h).is_empty());
        assert!(matches!(h.actions[..], [Action::Violation(..)]), "{:?}", h.actions);
        h
    };
    // Version 4.
    let mut v4 = pdu(ptype::BIND, 1, &bind_body(0, EPMAPPER, 3));
    v4[0] = 4;
    let h = violation(&[(true, v4)]);
    assert_eq!(
        h.actions,
        [Action::Violation(
            "Binpac exception: binpac exception: &enforce violation : DCE_RPC_Header:rpc_vers".into(),
            None
        )]
    );
    // A frag_length shorter than the header.
    let mut short = pdu(ptype::BIND, 1, &[]);
    short[8] = 10;
    violation(&[(true, short)]);
    // A bind announcing more contexts than it holds.
    let mut body = bind_body(0, EPMAPPER, 3);
    body[8] = 5;
    violation(&[(true, pdu(ptype::BIND, 1, &body))]);
    // A request too short for its fixed fields.
    violation(&[(true, pdu(ptype::REQUEST, 1, &[0, 0, 0]))]);

    // After the confirmation a broken PDU is skipped (DPD::ignore_violations) and the next one parses.
    let mut messages = session(EPMAPPER, "135", &[]);
    messages.push((true, pdu(ptype::REQUEST, 2, &[1, 2])));
    messages.push((true, pdu(ptype::REQUEST, 3, &request_body(0, 3, &[]))));
    messages.push((false, pdu(ptype::RESPONSE, 3, &response_body(0, &[]))));
    let h = run(&messages, usize::MAX);
    assert_eq!(h.actions, [Action::Confirm("dce_rpc")]);
    assert_eq!(rows(&h), [row(["101.500000", "0.500000", "135", "epmapper", "ept_map"])]);

    // Arbitrary bytes, and every truncation of a real session.
    let junk: Vec<u8> = (0..2000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fuzz(&junk);
    let stream: Vec<u8> = ept_map_session().into_iter().flat_map(|(_, m)| m).collect();
    for end in 0..stream.len() {
        fuzz(&stream[..end]);
        let mut flipped = stream.clone();
        flipped[end] ^= 0xff;
        fuzz(&flipped);
    }
}

#[test]
fn a_content_gap_ends_the_analysis() {
    let messages = ept_map_session();
    let mut h = Harness::new(Proto::Tcp, 135);
    let mut dce = DceRpc::default();
    h.deliver(&mut dce, true, &messages[0].1);
    h.run(1.0, |ctx| dce.undelivered(ctx, false, 10));
    for (is_orig, m) in &messages[1..] {
        h.deliver(&mut dce, *is_orig, m);
    }
    h.finish(&mut dce);
    assert!(rows(&h).is_empty());
}

#[test]
fn named_pipes_have_an_analyzer_each_and_share_the_script_state() {
    // Two pipes interleaved: each has its own context ids, opnums and fragment buffers (one analyzer per file id),
    // and its own backing record; `named_pipe` is the bind_ack's secondary address, as over TCP.
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut pipes = NamedPipes::default();
    let mut auth = Auth::default();
    let winreg = session(WINREG, "\\PIPE\\winreg", &[0x10]);
    let drsuapi = session(DRSUAPI, "", &[3]);
    for (i, ((o1, m1), (o2, m2))) in winreg.iter().zip(&drsuapi).enumerate() {
        let ts = 100.0 + i as f64;
        h.run(ts, |ctx| pipes.deliver(ctx, 7, *o1, m1, &mut auth));
        h.run(ts + 0.25, |ctx| pipes.deliver(ctx, 9, *o2, m2, &mut auth));
    }
    assert_eq!(pipes.len(), 2);
    assert_eq!(
        rows(&h),
        [
            row(["102.000000", "1.000000", "\\\\PIPE\\\\winreg", "winreg", "BaseRegQueryInfoKey"]),
            row(["102.250000", "1.000000", "-", "drsuapi", "DRSGetNCChanges"]),
        ]
    );
    // Each pipe's first PDU confirms (the service is the connection's, so the engine keeps it once).
    assert_eq!(h.actions.iter().filter(|a| matches!(a, Action::Confirm("dce_rpc"))).count(), 2);
    assert!(!h.actions.iter().any(|a| matches!(a, Action::Violation(..))));

    // A request after the last response is written again by the removal hook, once per backing record in the
    // order they were made; a closed pipe's record is gone.
    h.run(110.0, |ctx| pipes.deliver(ctx, 9, true, &pdu(ptype::REQUEST, 9, &request_body(0, 3, &[])), &mut auth));
    h.run(111.0, |ctx| pipes.deliver(ctx, 7, true, &pdu(ptype::REQUEST, 9, &request_body(0, 0x10, &[])), &mut auth));
    pipes.close(9);
    assert_eq!(pipes.len(), 1);
    h.run(120.0, |ctx| pipes.finish(ctx));
    assert_eq!(rows(&h)[2..], [row(["111.000000", "1.000000", "\\\\PIPE\\\\winreg", "winreg", "BaseRegQueryInfoKey"])]);
}

#[test]
fn named_pipes_are_bounded_and_never_stop_on_a_violation() {
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut pipes = NamedPipes::default();
    let mut auth = Auth::default();
    // Garbage on a pipe is an exception Zeek ignores for DCE_RPC: the SMB analyzer must not be detached, and the
    // pipe goes on with the next PDU.
    h.run(1.0, |ctx| pipes.deliver(ctx, 1, true, &[4, 0, 11, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0], &mut auth));
    for (is_orig, m) in session(EPMAPPER, "135", &[3]) {
        h.run(2.0, |ctx| pipes.deliver(ctx, 1, is_orig, &m, &mut auth));
    }
    assert!(!h.actions.iter().any(|a| matches!(a, Action::Violation(..))));
    assert_eq!(rows(&h).len(), 1);
    // At SMB::max_dce_rpc_analyzers pipes, a new one discards them all with a weird.
    for fid in 2..=MAX_DCE_RPC_ANALYZERS as u64 {
        h.run(3.0, |ctx| pipes.deliver(ctx, fid, true, &[5], &mut auth));
    }
    assert_eq!(pipes.len(), MAX_DCE_RPC_ANALYZERS);
    assert!(h.weirds.is_empty());
    h.run(4.0, |ctx| pipes.deliver(ctx, 5000, true, &[5], &mut auth));
    assert_eq!(pipes.len(), 1);
    assert_eq!(h.weirds.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["SMB_discarded_dce_rpc_analyzers"]);
}

#[test]
fn pipe_names_are_normalised_for_the_common_interfaces() {
    assert_eq!(normalize_named_pipe_name("\\PIPE\\WinReg"), "winreg");
    assert_eq!(normalize_named_pipe_name("lsass"), "lsass");
}

#[test]
fn uuids_are_written_as_zeek_writes_them() {
    let bytes: [u8; 16] = uuid_bytes(EPMAPPER).try_into().unwrap();
    assert_eq!(uuid_to_string(&bytes), EPMAPPER);
    assert_eq!(endpoint_name(EPMAPPER), "epmapper");
}

#[test]
fn signature_wants_version_5_a_known_type_and_a_whole_pdu() {
    assert!(detect(Proto::Tcp, true, &[5, 0, 11, 3, 0x10]));
    assert!(detect(Proto::Tcp, false, &[5, 1, 0x13, 3]));
    assert!(!detect(Proto::Tcp, true, &[5, 0, 0x14, 3]));
    assert!(!detect(Proto::Tcp, true, &[5, 0, 11, 1]));
    assert!(!detect(Proto::Tcp, true, &[4, 0, 11, 3]));
    assert!(!detect(Proto::Udp, true, &[5, 0, 11, 3]));
}

/// Through the engine: the endpoint mapper on 135 and a bind on a dynamic port found by the signature, each
/// confirming `dce_rpc` in conn.log, their records carrying the connection's uid.
#[test]
fn engine_logs_carry_the_connection_and_service() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    let conversations = [(135u16, ept_map_session()), (49677, session(DRSUAPI, "49677", &[3]))];
    let mut frames = Vec::new();
    for (i, (port, messages)) in conversations.iter().enumerate() {
        let messages: Vec<(bool, &[u8])> = messages.iter().map(|(o, m)| (*o, &m[..])).collect();
        let client_port = 50000 + u16::try_from(i).unwrap();
        frames.extend(tcp_conversation(([10, 0, 0, 1], client_port), ([10, 0, 0, 2], *port), &messages));
    }
    let records = engine_records(&frames);
    for (port, operation) in [("135", "ept_map"), ("49677", "DRSGetNCChanges")] {
        let conn = records.iter().find(|r| r.schema.path == "conn" && field(r, "id.resp_p") == port).unwrap();
        assert_eq!(field(conn, "service"), "dce_rpc");
        let logged: Vec<_> =
            records.iter().filter(|r| r.schema.path == "dce_rpc" && field(r, "id.resp_p") == port).collect();
        assert_eq!(logged.len(), 1, "{port}");
        assert_eq!(
            (field(logged[0], "uid"), field(logged[0], "operation")),
            (field(conn, "uid"), operation.to_string())
        );
        assert_eq!(field(logged[0], "named_pipe"), if port == "135" { "135" } else { "49677" });
    }
}

/// Through the engine: a bind with SPNEGO verifiers on 135 adds the child analyzers' services (in the order they
/// confirmed: the verifier is forwarded before the PDU confirms) and writes ntlm.log with the connection's uid.
#[test]
fn spnego_verifiers_through_the_engine() {
    use crate::analyzers::ntlm::build::*;
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    let [init, challenge_resp, authenticate_resp, done] = spnego_ntlm_exchange(0);
    let messages = [
        (true, pdu_with_auth(ptype::BIND, 0x03, 1, &bind_body(0, EPMAPPER, 3), Some((0x09, &init)))),
        (false, pdu_with_auth(ptype::BIND_ACK, 0x03, 1, &bind_ack_body("135"), Some((0x09, &challenge_resp)))),
        (
            true,
            pdu_with_auth(ptype::ALTER_CONTEXT, 0x03, 2, &bind_body(0, EPMAPPER, 3), Some((0x09, &authenticate_resp))),
        ),
        (false, pdu_with_auth(ptype::ALTER_CONTEXT_RESP, 0x03, 2, &bind_ack_body(""), Some((0x09, &done)))),
    ];
    let borrowed: Vec<(bool, &[u8])> = messages.iter().map(|(o, m)| (*o, &m[..])).collect();
    let records = engine_records(&tcp_conversation(([10, 0, 0, 1], 50000), ([10, 0, 0, 2], 135), &borrowed));
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "ntlm,gssapi,dce_rpc");
    let ntlm: Vec<_> = records.iter().filter(|r| r.schema.path == "ntlm").collect();
    assert_eq!(ntlm.len(), 1);
    assert_eq!((field(ntlm[0], "uid"), field(ntlm[0], "username")), (field(conn, "uid"), "User1".to_string()));
    assert_eq!(field(ntlm[0], "success"), "T");
}

/// DCE/RPC in SMB pipes shares the SMB analyzer's authentication record: an NTLM exchange in the pipe after the
/// session's own (already written) writes nothing more, and one pipe alone writes its record once.
#[test]
fn named_pipes_share_the_carriers_ntlm_record() {
    use crate::analyzers::gssapi::Auth;
    use crate::analyzers::ntlm::build::*;
    let negotiate_msg = negotiate(WINDOWS_FLAGS, b"", b"");
    let authenticate_msg = authenticate(WINDOWS_FLAGS, &utf16("CORP"), &utf16("bob"), &utf16("WS02"));
    let bind = pdu_with_auth(ptype::BIND, 0x03, 1, &bind_body(0, WINREG, 1), Some((0x0a, &negotiate_msg)));
    let auth3 = pdu_with_auth(16, 0x03, 1, &[0; 4], Some((0x0a, &authenticate_msg)));

    let mut h = Harness::new(Proto::Tcp, 445);
    let mut auth = Auth::default();
    // The SMB session's own SPNEGO exchange, written at its accept-completed.
    for (i, token) in spnego_ntlm_exchange(0).iter().enumerate() {
        h.run(1.0, |ctx| auth.gssapi(ctx, token, i % 2 == 0));
    }
    let mut pipes = NamedPipes::default();
    for m in [&bind, &auth3] {
        h.run(2.0, |ctx| pipes.deliver(ctx, 5, true, m, &mut auth));
    }
    h.run(2.5, |ctx| pipes.finish(ctx));
    h.run(3.0, |ctx| auth.finish(ctx));
    let ntlm = h.columns("ntlm");
    assert_eq!(ntlm.len(), 1);
    assert_eq!(ntlm[0][0], "User1");

    // A pipe's exchange alone: written once, at the end, with the last names.
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut auth = Auth::default();
    let mut pipes = NamedPipes::default();
    for m in [&bind, &auth3] {
        h.run(2.0, |ctx| pipes.deliver(ctx, 5, true, m, &mut auth));
    }
    h.run(2.5, |ctx| pipes.finish(ctx));
    assert!(h.logged("ntlm").is_empty(), "the pipes hold no record of their own");
    h.run(3.0, |ctx| auth.finish(ctx));
    assert_eq!(h.columns("ntlm"), [row(["bob", "WS02", "CORP", "-", "-", "-", "-"])]);
}

/// Zeek's `named-pipe-fragment` baseline: a pipe flooded with first fragments raises
/// `too_many_dce_rpc_msgs_in_reassembly` once and stops (the skip flag is honoured); another pipe goes on.
#[test]
fn a_pipe_past_the_reassembly_limit_stops_alone() {
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut pipes = NamedPipes::default();
    let mut auth = Auth::default();
    for call in 0..60 {
        let first = pdu_with_auth(ptype::REQUEST, 0x01, call, &request_body(0, 1, &[0; 8]), None);
        h.run(1.0, |ctx| pipes.deliver(ctx, 1, true, &first, &mut auth));
    }
    let names: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.source)).collect();
    assert_eq!(names, [("too_many_dce_rpc_msgs_in_reassembly", "DCE_RPC")]);
    for (is_orig, m) in session(EPMAPPER, "135", &[3]) {
        h.run(2.0, |ctx| pipes.deliver(ctx, 2, is_orig, &m, &mut auth));
    }
    assert_eq!(rows(&h).len(), 1);
}
