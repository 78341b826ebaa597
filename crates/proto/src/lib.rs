//! # tacvs-proto
//!
//! The TACACS+ protocol (RFC 8907) without I/O: the wire format of every packet
//! in both directions, body obfuscation, and the session state machines of the
//! client and the server. Callers feed bytes in and get decoded requests,
//! replies and bytes to send out; sockets, clocks and randomness stay with them.
//!
//! Every decoder is strict and bounded: lengths are checked against the bytes
//! actually present before anything is sliced or allocated, and every failure
//! is a precise [`DecodeError`] value.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aaa;
pub mod authen;
pub mod av;
pub mod chap;
mod codec;
pub mod error;
pub mod header;
pub mod obfuscation;
pub mod packet;
pub mod session;
pub mod values;

pub use aaa::{AaaRequest, AcctFlags, AcctReply, AcctRequest, AuthorRequest, AuthorResponse};
pub use authen::{AuthenContinue, AuthenReply, AuthenStart};
pub use av::Argument;
pub use error::{DecodeError, EncodeError};
pub use header::{
    DEFAULT_MAX_BODY, Flags, HEADER_LEN, Header, MinorVersion, PacketType, foreign_protocol,
};
pub use obfuscation::Key;
pub use packet::{Body, open_body, seal, split_frame};
pub use session::client::{
    ClientConfig, ClientConnection, ClientConnectionError, ClientEvent, ClientSessionError,
};
pub use session::server::{CloseReason, Request, ServerConfig, ServerConnection, ServerEvent};
pub use session::{ProtocolError, SessionError};
pub use values::{
    AcctStatus, AuthenAction, AuthenMethod, AuthenService, AuthenStatus, AuthenType, AuthorStatus,
    PrivLvl,
};
