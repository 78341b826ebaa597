//! Session state machines for both roles (RFC 8907 §4.1–§4.4). Bytes and
//! requests go in, bytes to send and events come out; nothing here touches a
//! socket or a clock, so a test can drive a client and a server against each
//! other in memory.

pub mod client;
pub mod server;

use thiserror::Error;

use crate::error::{DecodeError, EncodeError};
use crate::header::PacketType;

/// Hand the pending output to the caller: swapped in when the caller's buffer is
/// empty (no copy, the common case), appended otherwise.
pub(crate) fn hand_over(out: &mut Vec<u8>, buf: &mut Vec<u8>) {
    if buf.is_empty() {
        std::mem::swap(out, buf);
    } else {
        buf.extend_from_slice(out);
        out.clear();
    }
}

/// A peer broke a rule of the protocol. The machine has already queued whatever
/// reply the RFC asks for; the connection closes once it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The header or body did not decode.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// No configured key de-obfuscates the body into a well-formed packet.
    #[error(
        "body does not decode with any of the {keys} configured key(s): wrong shared key? ({error})"
    )]
    WrongKey {
        /// How many keys were tried.
        keys: usize,
        /// What the decoder said with the first key.
        error: DecodeError,
    },
    /// RFC 8907 §4.5: clear-text bodies are refused while a key is configured.
    #[error("packet has the UNENCRYPTED flag but a key is configured; refusing clear text")]
    UnencryptedRefused,
    /// RFC 9887 §4: a packet without `TAC_PLUS_UNENCRYPTED_FLAG` on a TLS
    /// connection (obfuscation is not used inside TLS).
    #[error(
        "packet without the UNENCRYPTED flag on a TLS connection: inside TLS the body is sent \
            in clear with the flag set (RFC 9887 §4), never obfuscated with a shared key"
    )]
    ObfuscatedOverTls,
    /// A packet that only the other role may send.
    #[error(
        "{0} packet with seq_no {1} travels the wrong way (client packets are odd, server packets even)"
    )]
    WrongDirection(PacketType, u8),
    /// seq_no is not the next one in the session.
    #[error("session {session_id:#010x}: seq_no {got}, expected {expected}")]
    SeqOutOfOrder {
        /// Session.
        session_id: u32,
        /// Next valid seq_no.
        expected: u8,
        /// What arrived.
        got: u8,
    },
    /// The session reached seq_no 255 and cannot continue (§4.1: never wraps).
    #[error("session {0:#010x}: seq_no would wrap past 255; session terminated")]
    SeqWrapped(u32),
    /// A packet for a session that does not exist (or no longer does).
    #[error("session {session_id:#010x}: no such session for a packet with seq_no {seq_no}")]
    UnknownSession {
        /// Session.
        session_id: u32,
        /// seq_no of the stray packet.
        seq_no: u8,
    },
    /// seq_no 1 for a session that is already running.
    #[error("session {0:#010x}: started twice")]
    DuplicateSession(u32),
    /// A packet's type differs from its session's.
    #[error("session {session_id:#010x}: {got} packet in a {expected} session")]
    TypeMismatch {
        /// Session.
        session_id: u32,
        /// The session's type.
        expected: &'static str,
        /// The packet's type.
        got: &'static str,
    },
    /// A packet arrived when the session was not waiting for one.
    #[error("session {session_id:#010x}: unexpected {what}")]
    Unexpected {
        /// Session.
        session_id: u32,
        /// What arrived.
        what: &'static str,
    },
    /// More concurrent sessions on a single connection than allowed.
    #[error("more than {0} concurrent sessions on one connection")]
    TooManySessions(usize),
    /// A second session on a connection without single-connect mode (§4.3).
    #[error("a new session on a connection that did not negotiate single-connect mode")]
    NotSingleConnect,
}

/// The local application asked for something the session cannot do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// No session with this id is open.
    #[error("no open session {0:#010x}")]
    NoSuchSession(u32),
    /// The session is not waiting for this (e.g. a second reply, or a CONTINUE
    /// before the server asked for one).
    #[error("session {session_id:#010x} is not waiting for {what}")]
    NotExpected {
        /// Session.
        session_id: u32,
        /// What was attempted.
        what: &'static str,
    },
    /// A reply status that the RFC does not allow here.
    #[error("status {status} is not allowed {context}")]
    BadStatus {
        /// The status.
        status: &'static str,
        /// Why.
        context: &'static str,
    },
    /// The session would need seq_no 256.
    #[error("session {0:#010x} has run out of sequence numbers")]
    SeqExhausted(u32),
    /// A session id that is already in use on this connection.
    #[error("session id {0:#010x} is already in use on this connection")]
    DuplicateSession(u32),
    /// This connection cannot carry another session (single-connect was not negotiated).
    #[error("this connection cannot carry another session: single-connect mode was not negotiated")]
    ConnectionNotReusable,
    /// The connection has failed or is closing.
    #[error("the connection is closing")]
    Closing,
    /// A field does not fit the wire format.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
