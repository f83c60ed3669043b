//! GSSAPI/SPNEGO tokens, as Zeek's binpac analyzer (src/analyzer/protocol/gssapi/: gssapi.pac,
//! gssapi-protocol.pac, gssapi-analyzer.pac, GSSAPI.cc) reads them, and the analyzers it hands mechanism tokens to;
//! [`Auth`] is what a carrying analyzer (SMB, DCE-RPC) instantiates.
//!
//! Each delivery is one `GSSAPI_SELECT` (binpac's datagram), read with asn1.pac's headers ([`super::asn1`]): a
//! wrapper header whose tag and raw length byte make the token id; 0x0404 (MIC) and 0x0504 (wrap) tokens are taken
//! whole, anything else is a negotiation token: with the wrapper's tag 0x60 a `negTokenInit` (the mechanism OID,
//! a context header, then the SEQUENCE's arguments), otherwise a `negTokenResp` (the SEQUENCE's arguments). The
//! arguments run to the end of the token, each a context header whose index picks its content, read within its
//! length (an index past 3 is binpac's invalid-case exception). A mechanism token (`mechToken`, `responseToken`) is
//! an OCTET STRING: one starting with "NTLMSSP" goes to the NTLM analyzer, one starting with 0x60 is read as a
//! Kerberos token (a header, the OID, a two-byte token id) and its message goes to the KRB analyzer (a datagram,
//! `DeliverPacket`), whatever the token id. A `negTokenResp`'s `negState` raises `gssapi_neg_result`, which the
//! NTLM script takes as the authentication's outcome. Each delivery that parses whole confirms the analyzer
//! (`gssapi`); what binpac throws on is a violation (what the token forwarded before stands).

use super::asn1::{Exception, R, binary_to_int64, encoding, meta, take};
use super::ntlm;
use super::{Action, Ctx, krb};

/// What a token raised, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A mechanism token for the NTLM analyzer.
    Ntlm(&'a [u8]),
    /// A Kerberos message for the KRB analyzer.
    Krb(&'a [u8]),
    /// `gssapi_neg_result`: `binary_to_int64` of the `negState` INTEGER's content.
    NegResult(u64),
}

/// One token: what it raised and the exception that stopped it.
pub fn parse(token: &[u8]) -> (Vec<Event<'_>>, Option<Exception>) {
    let mut events = Vec::new();
    let error = select(token, &mut events).err();
    (events, error)
}

/// `GSSAPI_SELECT`.
fn select<'a>(mut input: &'a [u8], events: &mut Vec<Event<'a>>) -> R<()> {
    let wrapper = meta(&mut input)?;
    let tok_id = (u32::from(wrapper.tag) << 8) | u32::from(wrapper.len);
    if matches!(tok_id, 0x0404 | 0x0504) {
        return Ok(());
    }
    if wrapper.tag == 0x60 {
        // `GSSAPI_NEG_TOKEN` with `is_init`: the OID, the init wrapper, then `GSSAPI_NEG_TOKEN_INIT`.
        encoding(&mut input)?;
        meta(&mut input)?;
        meta(&mut input)?;
        while !input.is_empty() {
            let arg = meta(&mut input)?;
            let mut data = take(&mut input, arg.length, "GSSAPI_NEG_TOKEN_INIT_Arg")?;
            match arg.index() {
                0 | 1 | 3 => {
                    encoding(&mut data)?;
                }
                2 => mech_token(data, events)?,
                other => return Err(Exception::InvalidCase("GSSAPI_NEG_TOKEN_INIT_Arg_Data", i64::from(other))),
            }
        }
    } else {
        // `GSSAPI_NEG_TOKEN_RESP`.
        meta(&mut input)?;
        while !input.is_empty() {
            let arg = meta(&mut input)?;
            let mut data = take(&mut input, arg.length, "GSSAPI_NEG_TOKEN_RESP_Arg")?;
            match arg.index() {
                0 => {
                    let state = encoding(&mut data)?;
                    events.push(Event::NegResult(binary_to_int64(state)));
                }
                1 | 3 => {
                    encoding(&mut data)?;
                }
                2 => mech_token(data, events)?,
                other => return Err(Exception::InvalidCase("GSSAPI_NEG_TOKEN_RESP_Arg", i64::from(other))),
            }
        }
    }
    Ok(())
}

/// `GSSAPI_NEG_TOKEN_MECH_TOKEN` and `forward_blob`.
fn mech_token<'a>(mut data: &'a [u8], events: &mut Vec<Event<'a>>) -> R<()> {
    let m = meta(&mut data)?;
    let token = take(&mut data, m.length, "GSSAPI_NEG_TOKEN_MECH_TOKEN")?;
    match token.first() {
        Some(b'N') if token.starts_with(b"NTLMSSP") => events.push(Event::Ntlm(token)),
        Some(0x60) => {
            // `KRB_BLOB`: a header, the OID, the token id, the message.
            let mut blob = token;
            meta(&mut blob)?;
            encoding(&mut blob)?;
            take(&mut blob, 2, "KRB_BLOB")?;
            events.push(Event::Krb(blob));
        }
        _ => {}
    }
    Ok(())
}

/// The GSSAPI, NTLM and KRB analyzers one carrying analyzer instantiates on a connection (`forward_gssapi`,
/// `forward_auth`), with base/protocols/ntlm's record of the connection. Their confirmations add their services
/// to the connection; GSSAPI's and KRB's violations remove a confirmed one as Zeek's DPD does, NTLM's are ignored.
#[derive(Default)]
pub struct Auth {
    gssapi_confirmed: bool,
    ntlm_confirmed: bool,
    ntlm: ntlm::Script,
    krb: Option<krb::Embedded>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("gssapi_confirmed", &self.gssapi_confirmed)
            .field("ntlm_confirmed", &self.ntlm_confirmed)
            .field("ntlm", &self.ntlm)
            .field("krb", &self.krb.is_some())
            .finish()
    }
}

impl Auth {
    /// smb-gssapi.pac's `forward_gssapi`: a raw NTLMSSP blob to NTLM, anything else to GSSAPI; blobs shorter than
    /// 8 bytes nowhere.
    pub fn smb_security_blob(&mut self, ctx: &mut Ctx, blob: &[u8], is_orig: bool) {
        if blob.len() < 8 {
            return;
        }
        if blob.starts_with(b"NTLMSSP") {
            self.ntlm(ctx, blob);
        } else {
            self.gssapi(ctx, blob, is_orig);
        }
    }

    /// The GSSAPI analyzer's `DeliverStream`: one token.
    pub fn gssapi(&mut self, ctx: &mut Ctx, token: &[u8], _is_orig: bool) {
        let (events, error) = parse(token);
        for event in events {
            match event {
                Event::Ntlm(token) => self.ntlm(ctx, token),
                Event::Krb(message) => self.krb(ctx, message),
                Event::NegResult(state) => self.ntlm.neg_result(ctx, state),
            }
        }
        match error {
            None if !self.gssapi_confirmed => {
                self.gssapi_confirmed = true;
                ctx.confirm("gssapi");
            }
            None => {}
            Some(e) => ctx.embedded_violation("gssapi", e.to_string()),
        }
    }

    /// The NTLM analyzer's `DeliverStream`: one token.
    pub fn ntlm(&mut self, ctx: &mut Ctx, token: &[u8]) {
        let Ok(message) = ntlm::parse(token) else { return };
        self.ntlm.message(ctx, message);
        if !self.ntlm_confirmed {
            self.ntlm_confirmed = true;
            ctx.confirm("ntlm");
        }
    }

    /// The KRB analyzer's `DeliverPacket`: one message.
    pub fn krb(&mut self, ctx: &mut Ctx, message: &[u8]) {
        let krb = self.krb.get_or_insert_with(krb::Embedded::default);
        let mut actions = Vec::new();
        krb.deliver(&mut ctx.with_actions(&mut actions), message);
        apply_krb_actions(ctx, actions);
    }

    /// The analyzers' `Done` and the removal hooks `finalize_ntlm` and `finalize_krb`.
    pub fn finish(&mut self, ctx: &mut Ctx) {
        self.ntlm.finish(ctx);
        if let Some(krb) = &mut self.krb {
            let mut actions = Vec::new();
            krb.finish(&mut ctx.with_actions(&mut actions));
            apply_krb_actions(ctx, actions);
        }
    }
}

/// The embedded KRB analyzer's confirmation is the connection's (`krb`); its violation removes it, the carrier goes
/// on.
fn apply_krb_actions(ctx: &mut Ctx, actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::Confirm(service) => ctx.confirm(service),
            Action::Violation(reason, _) => ctx.embedded_violation("krb", reason),
            _ => {}
        }
    }
}

/// Fuzz entry point: each half of the input as a token to the GSSAPI analyzer (and what it forwards), and the
/// whole as an NTLM token.
pub fn fuzz(data: &[u8]) {
    let (first, second) = data.split_at(data.len() / 2);
    super::fuzzing::with_ctx(|ctx| {
        let mut auth = Auth::default();
        auth.gssapi(ctx, first, true);
        auth.gssapi(ctx, second, false);
        auth.ntlm(ctx, data);
        auth.smb_security_blob(ctx, data, true);
        auth.finish(ctx);
    });
}

#[cfg(test)]
mod tests;
