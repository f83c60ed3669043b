//! Zeek's binpac grammar for Kerberos (src/analyzer/protocol/krb: `krb-protocol.pac`, `krb-types.pac`,
//! `krb-padata.pac`, `krb-asn1.pac`, `../asn1/asn1.pac`) and what its `proc_*` functions (`krb-analyzer.pac`) raise.
//!
//! The grammar is no DER decoder: `ASN1EncodingMeta` reads a one-byte tag and a length (one byte, or `0x80 | n`
//! and `n` big-endian bytes) without looking at the tag, and the types read such headers one after the other at
//! fixed places. So a field's tag never matters, only where it stands; an array without a length (the KDC-REQ-BODY's
//! arguments, KRB-ERROR's fields, a principal's name strings) runs to the end of its range (for the message's own
//! arguments the end of the datagram or TCP record, not of the body's SEQUENCE); a field with `&length` takes
//! exactly that many bytes of what is left, and what it holds must fit in them. Reading past a range's end is
//! binpac's out-of-bound exception, a `case` without a matching arm and without a default its invalid-case
//! exception: both end the message (a violation), and whatever the message raised before stands.
//!
//! The grammar is followed where it matters for what the analyzer raises, that is everywhere: confirmations and
//! events come from the `&let proc` of each message type, evaluated once the type has parsed whole (an AP-REQ in a
//! TGS-REQ's pre-authentication data raises its event even if the rest of the TGS-REQ then fails).

pub use crate::analyzers::asn1::Exception;
use crate::analyzers::asn1::{R, binary_to_int64, encoding, meta, take};

/// `KRBMessageTypes` (krb-defs.pac): the APPLICATION tag numbers of the messages.
const AS_REQ: i64 = 10;
const AS_REP: i64 = 11;
const TGS_REQ: i64 = 12;
const TGS_REP: i64 = 13;
const AP_REQ: i64 = 14;
const AP_REP: i64 = 15;
const KRB_SAFE: i64 = 20;
const KRB_PRIV: i64 = 21;
const KRB_CRED: i64 = 22;
const KRB_ERROR: i64 = 30;

/// `KRBPADataTypes`.
const PA_TGS_REQ: i64 = 1;
const PA_PW_SALT: i64 = 3;
const PA_ENCTYPE_INFO: i64 = 11;
const PA_PW_AS_REQ: i64 = 16;
const PA_PW_AS_REP: i64 = 17;
const PA_ENCTYPE_INFO2: i64 = 19;

/// `KDC_ERR_PREAUTH_REQUIRED`: only this error's e-data is read as pre-authentication data.
const KDC_ERR_PREAUTH_REQUIRED: u64 = 25;

const ASN1_SEQUENCE_TAG: u8 = 0x30;
const ASN1_APP_TAG_OFFSET: i64 = 0x60;

/// A KDC-REQ's fields as `proc_krb_kdc_req_arguments` gives them to the script (those it reads).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KdcRequest {
    pub client_name: Option<Vec<u8>>,
    pub service_realm: Option<Vec<u8>>,
    pub service_name: Option<Vec<u8>>,
    pub from: Option<f64>,
    pub till: Option<f64>,
    /// `kdc_options`' forwardable and renewable flags.
    pub options: Option<(bool, bool)>,
}

/// A ticket as `proc_ticket` makes it (the fields the script reads).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ticket {
    pub realm: Vec<u8>,
    pub service_name: Vec<u8>,
    pub cipher: u64,
}

/// A KDC-REP as the script sees it: the client's realm and name are always there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KdcResponse {
    pub client_realm: Vec<u8>,
    pub client_name: Vec<u8>,
    pub ticket: Ticket,
}

/// A KRB-ERROR's fields (`proc_error_arguments` over the fields before and after the error code).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorMsg {
    pub error_code: u64,
    pub client_realm: Option<Vec<u8>>,
    pub client_name: Option<Vec<u8>>,
    pub service_name: Option<Vec<u8>>,
    pub error_text: Option<Vec<u8>>,
}

/// What one message raised, in order. Every `proc_*` confirms the analyzer first; [`Event::Confirmed`] stands for
/// one that raises no event the scripts handle (KRB-SAFE, KRB-PRIV, KRB-CRED, a KDC message of another `msg-type`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Confirmed,
    AsRequest(KdcRequest),
    TgsRequest(KdcRequest),
    AsResponse(KdcResponse),
    TgsResponse(KdcResponse),
    Error(ErrorMsg),
    ApRequest {
        ticket: Ticket,
        in_kdc_padata: bool,
    },
    ApResponse,
    /// A PKINIT certificate `proc_padata` hands to the files framework: `is_orig` as it says (T for PA-PK-AS-REQ's,
    /// F for PA-PK-AS-REP's), whichever side sent it.
    Certificate {
        is_orig: bool,
        der: Vec<u8>,
    },
    /// `invalid_kerberos_addr_len`: a KDC-REQ's IPv4 or IPv6 address of the wrong size.
    Weird(&'static str),
}

/// One message (a datagram, or a TCP record's payload): what it raised, and the exception that stopped it.
pub fn parse(data: &[u8]) -> (Vec<Event>, Option<Exception>) {
    let mut grammar = Grammar::default();
    let mut input = data;
    let error = grammar.pdu(&mut input).err();
    (grammar.events, error)
}

/// `SequenceElement(true)`: a context tag's header, then an element; its content.
fn element<'a>(input: &mut &'a [u8]) -> R<&'a [u8]> {
    meta(input)?;
    encoding(input)
}

/// `SequenceElement(false)`: two headers.
fn two_metas(input: &mut &[u8]) -> R<()> {
    meta(input)?;
    meta(input).map(drop)
}

/// `KRB_Principal_Name` over its whole range: its name strings, as `GetStringFromPrincipalName` joins them.
fn principal_name(mut input: &[u8]) -> R<Vec<u8>> {
    meta(&mut input)?;
    meta(&mut input)?;
    encoding(&mut input)?;
    meta(&mut input)?;
    meta(&mut input)?;
    let mut names = Vec::new();
    while !input.is_empty() {
        names.push(encoding(&mut input)?);
    }
    // One string is taken whole; two or three go through `fmt("%s/%s")` as C strings, so each ends at its first
    // NUL (binpac's copies are not terminated: past their end C reads whatever follows, here nothing).
    let c_string = |s: &[u8]| s.iter().position(|&b| b == 0).map_or(s, |nul| &s[..nul]).to_vec();
    Ok(match names[..] {
        [one] => one.to_vec(),
        [a, b] => [c_string(a), c_string(b)].join(&b'/'),
        [a, b, c] => [c_string(a), c_string(b), c_string(c)].join(&b'/'),
        _ => b"unknown".to_vec(),
    })
}

/// `KRB_Time` over its range (a header, then the rest of the range) and `GetTimeFromAsn1` of it.
fn time(mut input: &[u8]) -> R<Option<f64>> {
    meta(&mut input)?;
    Ok(generalized_time(input))
}

/// `GetTimeFromAsn1`: `YYYYMMDDHHMMSSZ` (15 bytes; of 17, the last 15) through `timegm`, digit by digit as C
/// does it (any byte counts as `byte - '0'`, a signed `char`), or nothing for another length.
pub fn generalized_time(raw: &[u8]) -> Option<f64> {
    let digits = match raw.len() {
        15 => raw,
        17 => raw.get(2..)?,
        _ => return None,
    };
    let d = |i: usize| digits.get(i).map_or(0, |&b| i64::from(b as i8) - i64::from(b'0'));
    let pair = |i: usize| d(i) * 10 + d(i + 1);
    let year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    let seconds =
        crate::analyzers::ssl::x509::validity::timegm(year, pair(4) - 1, pair(6), pair(8), pair(10), pair(12));
    Some(seconds as f64)
}

/// A KDC-REQ's `KRB_Host_Address`: its type and address bytes.
struct HostAddress<'a> {
    addr_type: u64,
    address: &'a [u8],
}

fn host_address<'a>(input: &mut &'a [u8]) -> R<HostAddress<'a>> {
    two_metas(input)?;
    let addr_type = binary_to_int64(encoding(input)?);
    let address = element(input)?;
    Ok(HostAddress { addr_type, address })
}

/// `KRB_Ticket(in_sequence)`, with `proc_ticket`'s fields.
fn ticket(input: &mut &[u8], in_sequence: bool) -> R<Ticket> {
    if in_sequence {
        meta(input)?;
    }
    meta(input)?;
    meta(input)?;
    element(input)?;
    let realm = element(input)?.to_vec();
    let sname_meta = meta(input)?;
    let service_name = principal_name(take(input, sname_meta.length, "KRB_Principal_Name")?)?;
    let cipher = encrypted_data_in_seq(input)?;
    Ok(Ticket { realm, service_name, cipher })
}

/// `KRB_Ticket_Sequence`: tickets without their outer header, to the end of the sequence's length.
fn ticket_sequence(input: &mut &[u8]) -> R<()> {
    let seq = meta(input)?;
    let mut tickets = take(input, seq.length, "KRB_Ticket_Sequence")?;
    while !tickets.is_empty() {
        ticket(&mut tickets, false)?;
    }
    Ok(())
}

/// `KRB_Encrypted_Data_in_Seq`: a header, then `KRB_Encrypted_Data` in its length; the encryption type.
fn encrypted_data_in_seq(input: &mut &[u8]) -> R<u64> {
    let index_meta = meta(input)?;
    let mut data = take(input, index_meta.length, "KRB_Encrypted_Data")?;
    meta(&mut data)?;
    let etype = binary_to_int64(element(&mut data)?);
    let kvno_meta = meta(&mut data)?;
    // `have_kvno`: the second header is `[1] kvno`, then `[2] cipher`'s header follows; else it is `[2]`'s.
    let cipher_length = if kvno_meta.index() == 1 {
        encoding(&mut data)?;
        meta(&mut data)?.length
    } else {
        kvno_meta.length
    };
    let mut cipher = take(&mut data, cipher_length, "ASN1OctetString")?;
    encoding(&mut cipher)?;
    Ok(etype)
}

/// The grammar's state: what the message raised so far.
#[derive(Default)]
struct Grammar {
    events: Vec<Event>,
}

/// `KRB_PA_Data`'s element as far as `proc_padata` uses it: PKINIT certificates.
enum PaElement {
    ClientCertificate(Vec<u8>),
    ServerCertificate(Vec<u8>),
    Other,
}

impl Grammar {
    /// `KRB_PDU`: the APPLICATION header chooses the message.
    fn pdu(&mut self, input: &mut &[u8]) -> R<()> {
        let app = meta(input)?;
        match i64::from(app.tag) - ASN1_APP_TAG_OFFSET {
            AS_REQ => self.kdc_req(input, AS_REQ),
            TGS_REQ => self.kdc_req(input, TGS_REQ),
            AS_REP => self.kdc_rep(input, AS_REP),
            TGS_REP => self.kdc_rep(input, TGS_REP),
            AP_REQ => self.ap_req(input, false),
            AP_REP => {
                element(input)?;
                element(input)?;
                encrypted_data_in_seq(input)?;
                self.events.push(Event::ApResponse);
                Ok(())
            }
            KRB_SAFE => self.safe(input),
            KRB_PRIV => {
                element(input)?;
                element(input)?;
                encrypted_data_in_seq(input)?;
                self.events.push(Event::Confirmed);
                Ok(())
            }
            KRB_CRED => {
                element(input)?;
                element(input)?;
                two_metas(input)?;
                ticket_sequence(input)?;
                encrypted_data_in_seq(input)?;
                self.events.push(Event::Confirmed);
                Ok(())
            }
            KRB_ERROR => self.error(input),
            other => Err(Exception::InvalidCase("KRB_PDU", other)),
        }
    }

    /// `KRB_KDC_REQ`, then `proc_krb_kdc_req_msg`.
    fn kdc_req(&mut self, input: &mut &[u8], pkt_type: i64) -> R<()> {
        meta(input)?;
        element(input)?;
        let msg_type = binary_to_int64(element(input)?);
        let (padata, _) = self.pa_data_optional(input, pkt_type, 3)?;
        meta(input)?;
        let mut req = KdcRequest::default();
        let mut addresses = Vec::new();
        // `body_args`: to the end of the datagram or record, whatever the body's header says.
        while !input.is_empty() {
            let arg = meta(input)?;
            let mut data = take(input, arg.length, "KRB_REQ_Arg")?;
            match arg.index() {
                0 => {
                    meta(&mut data)?;
                    let [_pad, a, b, c, d, ..] = *data else { return Err(Exception::OutOfBound("KRB_KDC_Options")) };
                    let flags = u32::from_be_bytes([a, b, c, d]);
                    req.options = Some((flags & 0x4000_0000 != 0, flags & 0x0080_0000 != 0));
                }
                1 => req.client_name = Some(principal_name(data)?),
                2 => req.service_realm = Some(encoding(&mut data)?.to_vec()),
                3 => req.service_name = Some(principal_name(data)?),
                4 => req.from = time(data)?,
                5 => req.till = time(data)?,
                6 => {
                    time(data)?;
                }
                7 | 10 => {
                    encoding(&mut data)?;
                }
                8 => {
                    meta(&mut data)?;
                    while !data.is_empty() {
                        encoding(&mut data)?;
                    }
                }
                9 => {
                    meta(&mut data)?;
                    while !data.is_empty() {
                        let a = host_address(&mut data)?;
                        addresses.push((a.addr_type, a.address.len()));
                    }
                }
                11 => ticket_sequence(&mut data)?,
                _ => {}
            }
        }
        self.events.push(Event::Confirmed);
        let request = match msg_type as i64 {
            AS_REQ => Event::AsRequest,
            TGS_REQ => Event::TgsRequest,
            _ => return Ok(()),
        };
        // `proc_krb_kdc_req_arguments`: the pre-authentication data (certificates to the files framework), the
        // addresses (`proc_host_address`), then the event.
        self.certificates(padata);
        for (addr_type, len) in addresses {
            if (addr_type == 2 && len != 4) || (addr_type == 24 && len != 16) {
                self.events.push(Event::Weird("invalid_kerberos_addr_len"));
            }
        }
        self.events.push(request(req));
        Ok(())
    }

    /// `KRB_KDC_REP`, then `proc_krb_kdc_rep_msg`.
    fn kdc_rep(&mut self, input: &mut &[u8], pkt_type: i64) -> R<()> {
        meta(input)?;
        element(input)?;
        let msg_type = binary_to_int64(element(input)?);
        let (padata, realm_length) = self.pa_data_optional(input, pkt_type, 2)?;
        let mut realm = take(input, realm_length, "ASN1OctetString")?;
        let client_realm = encoding(&mut realm)?.to_vec();
        let cname_meta = meta(input)?;
        let client_name = principal_name(take(input, cname_meta.length, "KRB_Principal_Name")?)?;
        let ticket = ticket(input, true)?;
        encrypted_data_in_seq(input)?;
        self.events.push(Event::Confirmed);
        let response = match msg_type as i64 {
            AS_REP => Event::AsResponse,
            TGS_REP => Event::TgsResponse,
            _ => return Ok(()),
        };
        self.certificates(padata);
        self.events.push(response(KdcResponse { client_realm, client_name, ticket }));
        Ok(())
    }

    /// `proc_padata`'s side effect for a KDC message: each PKINIT certificate becomes a file.
    fn certificates(&mut self, padata: Vec<PaElement>) {
        for element in padata {
            match element {
                PaElement::ClientCertificate(der) => self.events.push(Event::Certificate { is_orig: true, der }),
                PaElement::ServerCertificate(der) => self.events.push(Event::Certificate { is_orig: false, der }),
                PaElement::Other => {}
            }
        }
    }

    /// `KRB_AP_REQ`, then `proc_krb_ap_req_msg`. The grammar read here starts at the AP-REQ's SEQUENCE header (its
    /// APPLICATION header is the PDU's, or the pre-authentication wrapper's second one).
    fn ap_req(&mut self, input: &mut &[u8], in_kdc_padata: bool) -> R<()> {
        meta(input)?;
        element(input)?;
        element(input)?;
        // `KRB_AP_Options`: two headers, the flags, a padding byte.
        two_metas(input)?;
        take(input, 5, "KRB_AP_Options")?;
        let ticket = ticket(input, true)?;
        encrypted_data_in_seq(input)?;
        self.events.push(Event::ApRequest { ticket, in_kdc_padata });
        Ok(())
    }

    /// `KRB_PA_Data_Optional`: the pre-authentication data if the first header is `[desired_index]`, and the
    /// length of the header after it (the next field's, read here or already).
    fn pa_data_optional(&mut self, input: &mut &[u8], pkt_type: i64, desired_index: u8) -> R<(Vec<PaElement>, u64)> {
        let first = meta(input)?;
        if first.index() != desired_index {
            return Ok((Vec::new(), first.length));
        }
        let mut range = take(input, first.length, "KRB_PA_Data_Sequence")?;
        let padata = self.pa_data_sequence(&mut range, pkt_type)?;
        let next = meta(input)?;
        Ok((padata, next.length))
    }

    /// `KRB_PA_Data_Sequence` over the rest of its range: a SEQUENCE of `KRB_PA_Data`, or anything else skipped.
    fn pa_data_sequence(&mut self, input: &mut &[u8], pkt_type: i64) -> R<Vec<PaElement>> {
        let m = meta(input)?;
        if m.tag != ASN1_SEQUENCE_TAG {
            take(input, m.length, "KRB_PA_Data_Container")?;
            return Ok(Vec::new());
        }
        let mut elements = Vec::new();
        while !input.is_empty() {
            elements.push(self.pa_data(input, pkt_type)?);
        }
        Ok(elements)
    }

    /// `KRB_PA_Data`: its type, then (but in a KRB-ERROR) `KRB_PA_Data_Element`.
    fn pa_data(&mut self, input: &mut &[u8], pkt_type: i64) -> R<PaElement> {
        meta(input)?;
        let data_type = binary_to_int64(element(input)?) as i64;
        let elem_meta = meta(input)?;
        if pkt_type == KRB_ERROR {
            take(input, elem_meta.length, "KRB_PA_Data")?;
            return Ok(PaElement::Other);
        }
        match data_type {
            // These two are read where they stand, without the element's length.
            PA_TGS_REQ => {
                two_metas(input)?;
                self.ap_req(input, true)?;
                Ok(PaElement::Other)
            }
            PA_PW_SALT => encoding(input).map(|_| PaElement::Other),
            _ => {
                let mut data = take(input, elem_meta.length, "KRB_PA_Data_Element")?;
                match data_type {
                    PA_PW_AS_REQ => pk_as_req(&mut data).map(|c| PaElement::ClientCertificate(c.to_vec())),
                    PA_PW_AS_REP => pk_as_rep(&mut data).map(|c| PaElement::ServerCertificate(c.to_vec())),
                    PA_ENCTYPE_INFO | PA_ENCTYPE_INFO2 => enctype_info(&mut data).map(|_| PaElement::Other),
                    _ => encoding(&mut data).map(|_| PaElement::Other),
                }
            }
        }
    }

    /// `KRB_SAFE_MSG`: its body's arguments run to the end of the message, so the checksum after them never fits.
    fn safe(&mut self, input: &mut &[u8]) -> R<()> {
        element(input)?;
        element(input)?;
        meta(input)?;
        while !input.is_empty() {
            let arg = meta(input)?;
            let mut data = take(input, arg.length, "KRB_SAFE_Arg")?;
            match arg.index() {
                0 | 2 | 3 => {
                    encoding(&mut data)?;
                }
                1 => {
                    time(data)?;
                }
                4 | 5 => {
                    host_address(&mut data)?;
                }
                other => return Err(Exception::InvalidCase("KRB_SAFE_Arg_Data", i64::from(other))),
            }
        }
        element(input)?;
        element(input)?;
        self.events.push(Event::Confirmed);
        Ok(())
    }

    /// `KRB_ERROR_MSG`: the fields up to `[6] error-code`, its INTEGER, the fields after; `proc_krb_error_msg`.
    fn error(&mut self, input: &mut &[u8]) -> R<()> {
        meta(input)?;
        let mut msg = ErrorMsg::default();
        loop {
            if self.error_arg(input, 0, &mut msg)? == 6 {
                break;
            }
        }
        msg.error_code = binary_to_int64(encoding(input)?);
        let code = msg.error_code;
        while !input.is_empty() {
            self.error_arg(input, code, &mut msg)?;
        }
        self.events.push(Event::Error(msg));
        Ok(())
    }

    /// `KRB_ERROR_Arg`: one field into `msg`; its index.
    fn error_arg(&mut self, input: &mut &[u8], error_code: u64, msg: &mut ErrorMsg) -> R<u8> {
        let arg = meta(input)?;
        let index = arg.index();
        // `[6]`'s content (the error code) is read by the message itself.
        if index == 6 {
            return Ok(index);
        }
        let mut data = take(input, arg.length, "KRB_ERROR_Arg")?;
        match index {
            0 | 1 | 3 | 5 => {
                encoding(&mut data)?;
            }
            2 | 4 => {
                time(data)?;
            }
            7 => msg.client_realm = Some(encoding(&mut data)?.to_vec()),
            8 => msg.client_name = Some(principal_name(data)?),
            9 => {
                encoding(&mut data)?;
            }
            10 => msg.service_name = Some(principal_name(data)?),
            11 => msg.error_text = Some(encoding(&mut data)?.to_vec()),
            12 if error_code == KDC_ERR_PREAUTH_REQUIRED => {
                self.pa_data_sequence(&mut data, KRB_ERROR)?;
            }
            12 => {}
            other => return Err(Exception::InvalidCase("KRB_ERROR_Arg_Data", i64::from(other))),
        }
        Ok(index)
    }
}

/// `KRB_PA_PK_AS_Req`: the signed AuthPack's headers and fields, to the first certificate's bytes.
fn pk_as_req<'a>(input: &mut &'a [u8]) -> R<&'a [u8]> {
    for _ in 0..4 {
        meta(input)?;
    }
    encoding(input)?;
    meta(input)?;
    meta(input)?;
    pk_certificates(input)
}

/// `KRB_PA_PK_AS_Rep`: one header more than the request's before the content type.
fn pk_as_rep<'a>(input: &mut &'a [u8]) -> R<&'a [u8]> {
    for _ in 0..5 {
        meta(input)?;
    }
    encoding(input)?;
    meta(input)?;
    meta(input)?;
    pk_certificates(input)
}

/// The SignedData's version, digest algorithms and encapsulated content, then the certificates' header and as many
/// bytes as it says (`cert`).
fn pk_certificates<'a>(input: &mut &'a [u8]) -> R<&'a [u8]> {
    for _ in 0..3 {
        encoding(input)?;
    }
    let cert_meta = meta(input)?;
    take(input, cert_meta.length, "KRB_PA_PK_AS_Req")
}

/// `KRB_PA_ENCTYPE_INFO`: three headers, the encryption type, and a salt when the second header is long enough.
fn enctype_info(input: &mut &[u8]) -> R<()> {
    meta(input)?;
    let second = meta(input)?;
    meta(input)?;
    encoding(input)?;
    if second.length > 7 {
        meta(input)?;
        let salt = meta(input)?;
        take(input, salt.length, "KRB_PA_ENCTYPE_INFO")?;
    }
    Ok(())
}
