//! Whole packets: framing a byte stream, de-obfuscating and decoding bodies,
//! and encoding + obfuscating into a caller's buffer.

use bytes::{Bytes, BytesMut};

use crate::aaa::{AaaRequest, AcctReply, AcctRequest, AuthorResponse};
use crate::authen::{AuthenContinue, AuthenReply, AuthenStart};
use crate::error::{DecodeError, EncodeError};
use crate::header::{Flags, HEADER_LEN, Header, PacketType};
use crate::obfuscation::{Key, apply_pad};

/// A decoded body. Which variant a body is follows from the header: its type and
/// the parity of seq_no (odd = from the client), and for authentication seq_no 1
/// is START, later odd ones CONTINUE (RFC 8907 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Authentication START.
    AuthenStart(AuthenStart),
    /// Authentication REPLY.
    AuthenReply(AuthenReply),
    /// Authentication CONTINUE.
    AuthenContinue(AuthenContinue),
    /// Authorization REQUEST.
    AuthorRequest(AaaRequest),
    /// Authorization RESPONSE.
    AuthorResponse(AuthorResponse),
    /// Accounting REQUEST.
    AcctRequest(AcctRequest),
    /// Accounting REPLY.
    AcctReply(AcctReply),
}

impl Body {
    /// The header type this body travels under.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Body::AuthenStart(_) | Body::AuthenReply(_) | Body::AuthenContinue(_) => {
                PacketType::Authentication
            }
            Body::AuthorRequest(_) | Body::AuthorResponse(_) => PacketType::Authorization,
            Body::AcctRequest(_) | Body::AcctReply(_) => PacketType::Accounting,
        }
    }

    /// Append the cleartext body.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Body::AuthenStart(b) => b.encode(out),
            Body::AuthenReply(b) => b.encode(out),
            Body::AuthenContinue(b) => b.encode(out),
            Body::AuthorRequest(b) => b.encode(out),
            Body::AuthorResponse(b) => b.encode(out),
            Body::AcctRequest(b) => b.encode(out),
            Body::AcctReply(b) => b.encode(out),
        }
    }

    /// Decode a cleartext body as the header says it must be.
    pub fn decode(header: &Header, body: &Bytes) -> Result<Body, DecodeError> {
        let from_client = header.from_client();
        Ok(match (header.packet_type, from_client) {
            (PacketType::Authentication, true) if header.seq_no == 1 => {
                Body::AuthenStart(AuthenStart::decode(body)?)
            }
            (PacketType::Authentication, true) => {
                Body::AuthenContinue(AuthenContinue::decode(body)?)
            }
            (PacketType::Authentication, false) => Body::AuthenReply(AuthenReply::decode(body)?),
            (PacketType::Authorization, true) => Body::AuthorRequest(AaaRequest::decode(body)?),
            (PacketType::Authorization, false) => {
                Body::AuthorResponse(AuthorResponse::decode(body)?)
            }
            (PacketType::Accounting, true) => Body::AcctRequest(AcctRequest::decode(body)?),
            (PacketType::Accounting, false) => Body::AcctReply(AcctReply::decode(body)?),
        })
    }
}

/// Split one whole packet off the front of `buf`, if it holds one. `Ok(None)`
/// means "read more"; the header is validated (and `max_body` enforced) as soon
/// as its 12 bytes are in, so a hostile length never makes us buffer.
pub fn split_frame(
    buf: &mut BytesMut,
    max_body: u32,
) -> Result<Option<(Header, BytesMut)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let header = Header::decode(buf, max_body)?;
    let total = HEADER_LEN + header.length as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    let body = frame.split_off(HEADER_LEN);
    Ok(Some((header, body)))
}

/// De-obfuscate `body` in place with `key` (unless the header says it is in clear
/// text) and decode it.
pub fn open_body(
    header: &Header,
    mut body: BytesMut,
    key: Option<&Key>,
) -> Result<Body, DecodeError> {
    if let (Some(k), false) = (key, header.flags.unencrypted()) {
        apply_pad(header, k, &mut body);
    }
    Body::decode(header, &body.freeze())
}

/// Body bytes [`seal`] reserves before encoding (a reply with a message or
/// a few arguments fits; a longer body grows the buffer as it is written).
const REPLY_ROOM: usize = 256;

/// Encode `body` under `header` (its length is computed, its UNENCRYPTED flag set
/// from whether there is a key), obfuscate it in place, and append header + body
/// to `out`. Returns the header as sent.
pub fn seal(
    mut header: Header,
    body: &Body,
    key: Option<&Key>,
    max_body: u32,
    out: &mut Vec<u8>,
) -> Result<Header, EncodeError> {
    let start = out.len();
    // Room for the header and a usual reply's body at once: the body's
    // fields are appended piece by piece, and growing from the header's
    // 12 bytes cost a reallocation per reply.
    out.reserve(HEADER_LEN + REPLY_ROOM);
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    if let Err(e) = body.encode(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - HEADER_LEN;
    if len > max_body as usize {
        out.truncate(start);
        return Err(EncodeError::BodyTooLong { len, max: max_body });
    }
    header.length = len as u32;
    header.packet_type = body.packet_type();
    header.flags = header.flags.with(Flags::UNENCRYPTED, key.is_none());
    out[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
    if let Some(k) = key {
        apply_pad(&header, k, &mut out[start + HEADER_LEN..]);
    }
    Ok(header)
}
