//! Error values. Every failure names the packet and field at fault so a log line
//! can say exactly what a peer sent wrong.

use thiserror::Error;

/// Why bytes from the network could not be decoded. (Fields are named by the
/// message text.)
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than the fixed part of a structure needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated { what: &'static str, need: usize, have: usize },
    /// RFC 8907 §4.1: the major version is always 0xC.
    #[error("unsupported TACACS+ major version {0:#x} (expected 0xc)")]
    BadMajorVersion(u8),
    /// RFC 8907 §4.1: minor version 0 (default) or 1.
    #[error("unsupported TACACS+ minor version {0} (expected 0 or 1)")]
    BadMinorVersion(u8),
    /// RFC 8907 §4.1: type is 1 (authentication), 2 (authorization) or 3 (accounting).
    #[error("unknown packet type {0:#04x} (expected 1, 2 or 3)")]
    UnknownPacketType(u8),
    /// RFC 8907 §4.1: seq_no starts at 1; 0 never appears on the wire.
    #[error("seq_no 0 is invalid (sequences start at 1)")]
    ZeroSeqNo,
    /// The header announces a body larger than this endpoint accepts.
    #[error("body length {len} exceeds the limit of {max} bytes")]
    BodyTooLong { len: u32, max: u32 },
    /// The declared field lengths need more bytes than the body holds. After
    /// de-obfuscation this is how a wrong shared key shows (RFC 8907 §4.5).
    #[error(
        "{packet}: field lengths need {declared} bytes but the body has {actual} (wrong key or corrupt packet)"
    )]
    FieldsOverflow { packet: &'static str, declared: usize, actual: usize },
    /// The body holds bytes after the last declared field: also a wrong key or corruption.
    #[error(
        "{packet}: {trailing} trailing bytes after the last field (wrong key or corrupt packet)"
    )]
    TrailingBytes { packet: &'static str, trailing: usize },
    /// A one-byte code that the RFC does not define for this field.
    #[error("{packet}: unknown {field} value {value:#04x}")]
    UnknownValue { packet: &'static str, field: &'static str, value: u8 },
    /// A field that parsed but breaks a rule of the RFC.
    #[error("{packet}: invalid {field}: {reason}")]
    Invalid { packet: &'static str, field: &'static str, reason: &'static str },
}

impl DecodeError {
    /// True when the error is of the kind a wrong shared key produces: the
    /// de-obfuscated field lengths do not add up to the body. Decoders check
    /// lengths before code points and contents, so an unknown value or a bad AV
    /// in a body whose lengths add up is a malformed packet, not a key mismatch.
    pub fn is_body_garbled(&self) -> bool {
        matches!(
            self,
            DecodeError::FieldsOverflow { .. }
                | DecodeError::TrailingBytes { .. }
                | DecodeError::Truncated { .. }
        )
    }
}

/// Why a value could not be put on the wire.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A field is longer than its length field can express.
    #[error("{field} is {len} bytes, the wire format allows at most {max}")]
    FieldTooLong { field: &'static str, len: usize, max: usize },
    /// More arguments than the one-byte arg_cnt allows.
    #[error("{count} arguments, the wire format allows at most 255")]
    TooManyArgs { count: usize },
    /// The encoded body would exceed the configured body limit.
    #[error("body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLong { len: usize, max: u32 },
}
