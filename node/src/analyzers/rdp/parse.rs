//! Zeek's binpac grammar for RDP (`rdp-protocol.pac`) over one TPKT, reporting what `rdp-analyzer.pac` raises as
//! [`Event`]s in the order binpac raises them: a record's `&let` procedures run once its fields are parsed, so an
//! inner record's event comes before its parent's, and the events of the blocks before a failure stand.

/// Where binpac throws; Zeek's violation reason is `Binpac exception: ` and binpac's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdpError {
    /// A field reaches past the end of its record (`ExceptionOutOfBound`; binpac also prints the sizes).
    #[error("Binpac exception: binpac exception: out_of_bound: {0}")]
    OutOfBound(&'static str),
    /// A `RE/.../` field that does not match (`ExceptionStringMismatch`).
    #[error("Binpac exception: binpac exception: string mismatch: expected pattern: \"{0}\"")]
    StringMismatch(&'static str),
    /// A `case` without a `default` given another value (`ExceptionInvalidCaseIndex`).
    #[error("Binpac exception: binpac exception: invalid index for case: {0}: {1}")]
    InvalidCase(&'static str, u32),
    /// An `&enforce` that does not hold.
    #[error("Binpac exception: binpac exception: &enforce violation : {0}")]
    Enforce(&'static str),
}

/// The Client Core Data fields the script reads (`RDP::ClientCoreData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCore<'a> {
    pub desktop_width: u16,
    pub desktop_height: u16,
    pub keyboard_layout: u32,
    pub client_build: u32,
    /// UTF-16LE, 32 bytes.
    pub client_name: &'a [u8],
    pub high_color_depth: u16,
    pub early_capability_flags: u16,
    /// UTF-16LE, 64 bytes.
    pub dig_product_id: &'a [u8],
}

/// What the analyzer raises, with the confirmations `rdp-analyzer.pac` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// `rdp_connect_request`: the cookie's value (empty without a `Cookie: mstshash=`).
    ConnectRequest { cookie: &'a [u8] },
    /// `go_encrypted` (`rdp_begin_encryption`): the selected protocol, or 0 for RDP's own encryption.
    BeginEncryption { method: u32 },
    /// `rdp_negotiation_response`.
    NegotiationResponse { selected_protocol: u32 },
    /// `rdp_negotiation_failure`.
    NegotiationFailure { failure_code: u32 },
    /// `rdp_client_core_data`, after an `AnalyzerConfirmation`.
    ClientCoreData(ClientCore<'a>),
    /// `rdp_client_network_data`: the channels' 8-byte names (raised only when there is at least one).
    ClientNetworkData(Vec<&'a [u8]>),
    /// `rdp_gcc_server_create_response`, after an `AnalyzerConfirmation`.
    GccServerCreateResponse { result: u8 },
    /// `rdp_server_certificate`.
    ServerCertificate { cert_type: u32, permanently_issued: bool },
    /// One X.509 certificate of the server's chain, handed to the files framework.
    X509Certificate(&'a [u8]),
    /// `rdp_server_security`, after an `AnalyzerConfirmation`.
    ServerSecurity { encryption_method: u32, encryption_level: u32 },
}

impl Event<'_> {
    /// `rdp-analyzer.pac` calls `AnalyzerConfirmation` before raising this one.
    pub fn confirms(&self) -> bool {
        matches!(self, Event::ClientCoreData(_) | Event::GccServerCreateResponse { .. } | Event::ServerSecurity { .. })
    }
}

/// A cursor over one binpac record: `&length` records get a reader of their own bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RdpError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len()).ok_or(RdpError::OutOfBound(what))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn bytes_u64(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], RdpError> {
        self.bytes(usize::try_from(n).map_err(|_| RdpError::OutOfBound(what))?, what)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RdpError> {
        let b = self.bytes(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, RdpError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16_le(&mut self, what: &'static str) -> Result<u16, RdpError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u16_be(&mut self, what: &'static str) -> Result<u16, RdpError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32_le(&mut self, what: &'static str) -> Result<u32, RdpError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A fixed `RE/.../` field: `pattern` must come next.
    fn literal(&mut self, pattern: &'static [u8], shown: &'static str) -> Result<(), RdpError> {
        if !self.rest().starts_with(pattern) {
            return Err(RdpError::StringMismatch(shown));
        }
        self.pos += pattern.len();
        Ok(())
    }

    /// `asn1.pac`'s `ASN1EncodingMeta` (tag, length, long-form length bytes): its length.
    fn asn1_meta(&mut self, what: &'static str) -> Result<u64, RdpError> {
        let _tag = self.u8(what)?;
        let len = self.u8(what)?;
        if len & 0x80 == 0 {
            return Ok(u64::from(len));
        }
        // `binary_to_int64`; a length past 64 bits can never fit the record anyway.
        let more = self.bytes(usize::from(len & 0x7f), what)?;
        more.iter()
            .try_fold(0u64, |acc, &b| acc.checked_mul(256).map(|v| v | u64::from(b)))
            .ok_or(RdpError::OutOfBound(what))
    }

    /// `ASN1Encoding`: the meta, then its content.
    fn asn1_encoding(&mut self, what: &'static str) -> Result<&'a [u8], RdpError> {
        let len = self.asn1_meta(what)?;
        self.bytes_u64(len, what)
    }

    /// `ASN1SequenceMeta` and the padding field of its length that follows it in the MCS headers.
    fn asn1_skipped_sequence(&mut self, what: &'static str) -> Result<(), RdpError> {
        let len = self.asn1_meta(what)?;
        self.bytes_u64(len, what).map(|_| ())
    }
}

const PDU_CONNECT_CONFIRM: u8 = 0xd0;
const PDU_CONNECT_REQUEST: u8 = 0xe0;
const PDU_DATA: u8 = 0xf0;
const MCS_CONNECT_INITIAL: u8 = 0x65;
const MCS_CONNECT_RESPONSE: u8 = 0x66;
const COOKIE: &[u8] = b"Cookie: mstshash=";

/// `TPKT` over one whole TPKT (`frame`, `tpkt_len` bytes, header included): binpac's flow unit.
pub fn tpkt<'a>(frame: &'a [u8], events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    let mut r = Reader::new(frame);
    r.bytes(4, "TPKT")?;
    let cotp_len = r.u8("COTP:cotp_len")?;
    match r.u8("COTP:pdu")? {
        PDU_CONNECT_CONFIRM => connect_confirm(&mut r, cotp_len, events),
        PDU_CONNECT_REQUEST => connect_request(&mut r, cotp_len, events),
        PDU_DATA => dt_data(&mut r, events),
        // Unsupported PDUs are consumed and thrown away.
        _ => Ok(()),
    }
}

/// The grammar's "terrifying little case statement": whether the COTP header (`cotp_len` bytes after its length
/// byte) has bytes left after the `consumed` bytes of the record that started after the PDU type.
fn cotp_has_more(consumed: usize, cotp_len: u8) -> bool {
    consumed + 2 != usize::from(cotp_len) + 1
}

/// `Connect_Request`: references and class, the optional `Cookie: mstshash=` cookie (Zeek 7.2 on), then an
/// `RDP_Negotiation_Request` if the COTP header goes on.
fn connect_request<'a>(r: &mut Reader<'a>, cotp_len: u8, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    let start = r.pos;
    r.bytes(5, "Connect_Request")?;
    let mut cookie: &[u8] = &[];
    if r.rest().starts_with(COOKIE) {
        r.pos += COOKIE.len();
        let value_len = r.rest().iter().take_while(|&&b| b != b'\r').count();
        cookie = r.bytes(value_len, "Connect_Request:cookie_value")?;
        r.literal(b"\r\n", "\\x0d\\x0a")?;
    }
    if cotp_has_more(r.pos - start, cotp_len) {
        // type, flags, length, requested_protocols: nothing of it is logged.
        r.bytes(8, "RDP_Negotiation_Request")?;
    }
    events.push(Event::ConnectRequest { cookie });
    Ok(())
}

/// `Connect_Confirm`: references and flags, then a negotiation response or failure if the COTP header goes on.
fn connect_confirm<'a>(r: &mut Reader<'a>, cotp_len: u8, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    r.bytes(5, "Connect_Confirm")?;
    if !cotp_has_more(5, cotp_len) {
        return Ok(());
    }
    match r.u8("Connect_Confirm_Record:response_type")? {
        0x02 => {
            let mut rec = Reader::new(r.bytes(7, "RDP_Negotiation_Response")?);
            rec.u8("RDP_Negotiation_Response:flags")?;
            if rec.u16_le("RDP_Negotiation_Response:length")? != 8 {
                return Err(RdpError::Enforce("RDP_Negotiation_Response:length"));
            }
            let selected_protocol = rec.u32_le("RDP_Negotiation_Response:selected_protocol")?;
            // The type's own `&let` (`enc_ssl`) comes before the analyzer's `proc`.
            if selected_protocol > 0 {
                events.push(Event::BeginEncryption { method: selected_protocol });
            }
            events.push(Event::NegotiationResponse { selected_protocol });
        }
        0x03 => {
            let mut rec = Reader::new(r.bytes(7, "RDP_Negotiation_Failure")?);
            rec.bytes(3, "RDP_Negotiation_Failure")?;
            let failure_code = rec.u32_le("RDP_Negotiation_Failure:failure_code")?;
            events.push(Event::NegotiationFailure { failure_code });
        }
        other => return Err(RdpError::InvalidCase("Connect_Confirm_Record", u32::from(other))),
    }
    Ok(())
}

/// `DT_Data`: an MCS Connect Initial (client) or Connect Response (server); other data is not parsed.
fn dt_data<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    r.bytes(2, "DT_Data")?;
    match r.u8("DT_Data:application_type")? {
        MCS_CONNECT_INITIAL => client_header(r, events),
        MCS_CONNECT_RESPONSE => server_header(r, events),
        _ => Ok(()),
    }
}

/// `Client_Header`: the MCS Connect-Initial's BER fields skipped as the grammar reads them, the GCC Conference
/// Create Request (with its `Duca` key), then the client's data blocks.
fn client_header<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    r.asn1_encoding("Client_Header:type_length")?;
    r.asn1_encoding("Client_Header:calling_domain_selector")?;
    r.asn1_encoding("Client_Header:called_domain_selector")?;
    r.asn1_encoding("Client_Header:upward_flag")?;
    r.asn1_skipped_sequence("Client_Header:target_parameters")?;
    r.asn1_skipped_sequence("Client_Header:minimum_parameters")?;
    r.asn1_skipped_sequence("Client_Header:maximum_parameters")?;
    r.bytes(4, "Client_Header:user_data_length")?;
    let key_len = r.u16_be("GCC_Client_Connection_Data:key_object_length")?;
    r.bytes(usize::from(key_len) + 2, "GCC_Client_Connection_Data")?;
    r.bytes(8, "GCC_Client_Create_Request")?;
    r.literal(b"Duca", "Duca")?;
    r.bytes(2, "GCC_Client_Create_Request:user_data_value_length")?;
    data_blocks(r, events)
}

/// `Server_Header`: the MCS Connect-Response's fields, the GCC Conference Create Response (its `McDn` key and the
/// result the script logs), then the server's data blocks.
fn server_header<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    r.bytes(3, "Server_Header:type_length")?;
    r.asn1_encoding("Server_Header:connect_response_result")?;
    r.asn1_encoding("Server_Header:connect_response_called_id")?;
    r.asn1_skipped_sequence("Server_Header:connect_response_domain_parameters")?;
    r.bytes(4, "Server_Header:user_data_length")?;
    let key_len = r.u16_be("GCC_Server_Connection_Data:key_object_length")?;
    r.bytes(usize::from(key_len) + 1, "GCC_Server_Connection_Data")?;
    // extension_bit, node_id (2), tag_length, tag, then the result.
    r.bytes(5, "GCC_Server_Create_Response")?;
    let result = r.u8("GCC_Server_Create_Response:result")?;
    r.bytes(3, "GCC_Server_Create_Response")?;
    r.literal(b"McDn", "McDn")?;
    r.bytes(2, "GCC_Server_Create_Response:user_data_value_length")?;
    events.push(Event::GccServerCreateResponse { result });
    data_blocks(r, events)
}

/// `Data_Block[] &until($input.length() == 0)`: type, length, and `length - 4` bytes of block.
fn data_blocks<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    while !r.is_empty() {
        let block_type = r.u16_le("Data_Header:type")?;
        let length = r.u16_le("Data_Header:length")?;
        // A length under the header's own four bytes is a negative `&length` to binpac: no block can be read.
        let body_len = length.checked_sub(4).ok_or(RdpError::OutOfBound("Data_Block:block"))?;
        let mut block = Reader::new(r.bytes(usize::from(body_len), "Data_Block:block")?);
        match block_type {
            0xc001 => client_core_data(&mut block, events)?,
            0xc002 => {
                block.bytes(8, "Client_Security_Data")?;
            }
            0xc003 => client_network_data(&mut block, events)?,
            0xc004 => {
                block.bytes(8, "Client_Cluster_Data")?;
            }
            0x0c01 => {
                block.bytes(4, "Server_Core_Data")?;
                if length != 8 {
                    block.bytes(4, "Server_Core_Data:client_requested_protocols")?;
                }
            }
            0x0c02 => server_security_data(&mut block, events)?,
            0x0c03 => {
                block.bytes(4, "Server_Network_Data")?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `Client_Core_Data` up to `dig_product_id` (the optional fields the grammar reads are required to it).
fn client_core_data<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    const WHAT: &str = "Client_Core_Data";
    r.bytes(4, WHAT)?;
    let desktop_width = r.u16_le(WHAT)?;
    let desktop_height = r.u16_le(WHAT)?;
    r.bytes(4, WHAT)?;
    let keyboard_layout = r.u32_le(WHAT)?;
    let client_build = r.u32_le(WHAT)?;
    let client_name = r.bytes(32, "Client_Core_Data:client_name")?;
    // keyboard type, subtype and function keys, the IME file name, postBeta2ColorDepth, clientProductId and
    // serialNumber.
    r.bytes(12 + 64 + 8, WHAT)?;
    let high_color_depth = r.u16_le(WHAT)?;
    r.bytes(2, WHAT)?;
    let early_capability_flags = r.u16_le(WHAT)?;
    let dig_product_id = r.bytes(64, "Client_Core_Data:dig_product_id")?;
    events.push(Event::ClientCoreData(ClientCore {
        desktop_width,
        desktop_height,
        keyboard_layout,
        client_build,
        client_name,
        high_color_depth,
        early_capability_flags,
        dig_product_id,
    }));
    Ok(())
}

/// `Client_Network_Data`: a count, then that many 12-byte channel definitions (8-byte name, options).
fn client_network_data<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    const WHAT: &str = "Client_Network_Data:channel_def_array";
    let count = r.u32_le("Client_Network_Data:channel_count")?;
    // The count comes from the wire: what is reserved is bounded by what the block holds.
    let mut names = Vec::with_capacity(r.rest().len() / 12);
    for _ in 0..count {
        names.push(r.bytes(8, WHAT)?);
        r.bytes(4, WHAT)?;
    }
    if !names.is_empty() {
        events.push(Event::ClientNetworkData(names));
    }
    Ok(())
}

/// `Server_Security_Data`: method, level, the server random and the certificate (`&length` bounded); RDP's own
/// encryption starts after it when both method and level are set.
fn server_security_data<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    let encryption_method = r.u32_le("Server_Security_Data:encryption_method")?;
    let encryption_level = r.u32_le("Server_Security_Data:encryption_level")?;
    let random_len = r.u32_le("Server_Security_Data:server_random_length")?;
    let cert_len = r.u32_le("Server_Security_Data:server_cert_length")?;
    r.bytes_u64(u64::from(random_len), "Server_Security_Data:server_random")?;
    let mut cert = Reader::new(r.bytes_u64(u64::from(cert_len), "Server_Security_Data:server_certificate")?);
    server_certificate(&mut cert, events)?;
    if encryption_method > 0 && encryption_level > 0 {
        events.push(Event::BeginEncryption { method: 0 });
    }
    events.push(Event::ServerSecurity { encryption_method, encryption_level });
    Ok(())
}

/// `Server_Certificate`: the version's low 31 bits are the type (1 proprietary, 2 X.509; no other case), its top
/// bit clear for a permanent one.
fn server_certificate<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Result<(), RdpError> {
    let version = r.u32_le("Server_Certificate:version")?;
    let cert_type = version & 0x7fff_ffff;
    match cert_type {
        1 => proprietary_certificate(r)?,
        2 => {
            let count = r.u32_le("X509:num_of_certs")?;
            for _ in 0..count {
                let len = r.u32_le("X509_Cert_Data:cert_len")?;
                events.push(Event::X509Certificate(r.bytes_u64(u64::from(len), "X509_Cert_Data:cert")?));
            }
        }
        other => return Err(RdpError::InvalidCase("Server_Certificate", other)),
    }
    events.push(Event::ServerCertificate { cert_type, permanently_issued: version & 0x8000_0000 == 0 });
    Ok(())
}

/// `Server_Proprietary_Cert` with its `Public_Key_Blob` (`&length` bounded): nothing of it is logged.
fn proprietary_certificate(r: &mut Reader) -> Result<(), RdpError> {
    r.bytes(8, "Server_Proprietary_Cert")?;
    r.u16_le("Server_Proprietary_Cert:public_key_blob_type")?;
    let blob_len = r.u16_le("Server_Proprietary_Cert:public_key_blob_length")?;
    let mut blob = Reader::new(r.bytes(usize::from(blob_len), "Server_Proprietary_Cert:public_key_blob")?);
    blob.bytes(4, "Public_Key_Blob:magic")?;
    let key_len = blob.u32_le("Public_Key_Blob:key_length")?;
    blob.bytes(8, "Public_Key_Blob")?;
    blob.bytes_u64(u64::from(key_len), "Public_Key_Blob:modulus")?;
    r.u16_le("Server_Proprietary_Cert:signature_blob_type")?;
    let sig_len = r.u16_le("Server_Proprietary_Cert:signature_blob_length")?;
    r.bytes(usize::from(sig_len), "Server_Proprietary_Cert:signature_blob")?;
    Ok(())
}
