//! The 12-byte packet header, RFC 8907 §4.1. It is never obfuscated.

use crate::error::DecodeError;

/// Length of the header on the wire.
pub const HEADER_LEN: usize = 12;
/// Major version, the high nibble of the version byte (RFC 8907 §4.1).
pub const MAJOR_VERSION: u8 = 0xc;
/// Default body limit: RFC 8907 allows 2^32-1, nothing real needs more than this.
pub const DEFAULT_MAX_BODY: u32 = 64 * 1024;

/// Minor version, the low nibble of the version byte. RFC 8907 §5.4.1: ASCII
/// authentication and all authorization/accounting use `Default`, the
/// single-exchange PAP/CHAP/MS-CHAP logins use `V1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinorVersion {
    /// TAC_PLUS_MINOR_VER_DEFAULT (0).
    Default,
    /// TAC_PLUS_MINOR_VER_ONE (1).
    V1,
}

impl MinorVersion {
    /// The full version byte (major in the high nibble).
    pub fn version_byte(self) -> u8 {
        (MAJOR_VERSION << 4) | self as u8
    }
}

/// Packet type, RFC 8907 §4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// TAC_PLUS_AUTHEN (1).
    Authentication = 1,
    /// TAC_PLUS_AUTHOR (2).
    Authorization = 2,
    /// TAC_PLUS_ACCT (3).
    Accounting = 3,
}

impl PacketType {
    /// Decode the type byte.
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        match v {
            1 => Ok(PacketType::Authentication),
            2 => Ok(PacketType::Authorization),
            3 => Ok(PacketType::Accounting),
            other => Err(DecodeError::UnknownPacketType(other)),
        }
    }

    /// Short lower-case name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Authentication => "authen",
            PacketType::Authorization => "author",
            PacketType::Accounting => "acct",
        }
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Header flags, RFC 8907 §4.1. Unknown bits are kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// TAC_PLUS_UNENCRYPTED_FLAG: the body is not obfuscated (deprecated, §4.5).
    pub const UNENCRYPTED: u8 = 0x01;
    /// TAC_PLUS_SINGLE_CONNECT_FLAG: multiplex sessions on one connection (§4.3).
    pub const SINGLE_CONNECT: u8 = 0x04;

    /// Whether the UNENCRYPTED flag is set.
    pub fn unencrypted(self) -> bool {
        self.0 & Self::UNENCRYPTED != 0
    }
    /// Whether the SINGLE_CONNECT flag is set.
    pub fn single_connect(self) -> bool {
        self.0 & Self::SINGLE_CONNECT != 0
    }
    /// Set or clear a flag bit.
    pub fn with(self, bit: u8, on: bool) -> Self {
        if on { Flags(self.0 | bit) } else { Flags(self.0 & !bit) }
    }
}

/// A decoded packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Minor version (the major version is checked on decode).
    pub minor: MinorVersion,
    /// Packet type.
    pub packet_type: PacketType,
    /// Sequence number: 1 for the first packet of a session, odd from the client,
    /// even from the server (§4.1).
    pub seq_no: u8,
    /// Flags byte.
    pub flags: Flags,
    /// Random session identifier chosen by the client.
    pub session_id: u32,
    /// Length of the body that follows.
    pub length: u32,
}

impl Header {
    /// Decode a header. `buf` must hold at least [`HEADER_LEN`] bytes; extra bytes
    /// are ignored. `max_body` bounds the body length this endpoint will buffer.
    pub fn decode(buf: &[u8], max_body: u32) -> Result<Header, DecodeError> {
        let h: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::Truncated { what: "header", need: HEADER_LEN, have: buf.len() })?;
        let major = h[0] >> 4;
        if major != MAJOR_VERSION {
            return Err(DecodeError::BadMajorVersion(major));
        }
        let minor = match h[0] & 0x0f {
            0 => MinorVersion::Default,
            1 => MinorVersion::V1,
            other => return Err(DecodeError::BadMinorVersion(other)),
        };
        let packet_type = PacketType::from_u8(h[1])?;
        let seq_no = h[2];
        if seq_no == 0 {
            return Err(DecodeError::ZeroSeqNo);
        }
        let length = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        if length > max_body {
            return Err(DecodeError::BodyTooLong { len: length, max: max_body });
        }
        Ok(Header {
            minor,
            packet_type,
            seq_no,
            flags: Flags(h[3]),
            session_id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            length,
        })
    }

    /// The 12 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let s = self.session_id.to_be_bytes();
        let l = self.length.to_be_bytes();
        [
            self.minor.version_byte(),
            self.packet_type as u8,
            self.seq_no,
            self.flags.0,
            s[0],
            s[1],
            s[2],
            s[3],
            l[0],
            l[1],
            l[2],
            l[3],
        ]
    }

    /// Whether this packet travels from client to server (odd seq_no, §4.1).
    pub fn from_client(&self) -> bool {
        self.seq_no % 2 == 1
    }
}

/// Build the RFC 8907 §4.1 reply to a packet whose type cannot be determined:
/// the same cleartext header, seq_no + 1 and a zero length. `None` when the
/// first two bytes are not even present or seq_no would wrap.
pub fn undecodable_reply(raw_header: &[u8]) -> Option<[u8; HEADER_LEN]> {
    let h: &[u8; HEADER_LEN] = raw_header.get(..HEADER_LEN)?.try_into().ok()?;
    let mut out = *h;
    out[2] = h[2].checked_add(1)?;
    out[8..12].copy_from_slice(&[0, 0, 0, 0]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects() {
        let h = Header {
            minor: MinorVersion::V1,
            packet_type: PacketType::Authorization,
            seq_no: 3,
            flags: Flags(Flags::SINGLE_CONNECT),
            session_id: 0xdead_beef,
            length: 42,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 0xc1);
        assert_eq!(Header::decode(&b, DEFAULT_MAX_BODY), Ok(h));
        assert!(matches!(
            Header::decode(&b[..11], 100),
            Err(DecodeError::Truncated { need: 12, have: 11, .. })
        ));
        let mut bad = b;
        bad[0] = 0xd0;
        assert_eq!(Header::decode(&bad, 100), Err(DecodeError::BadMajorVersion(0xd)));
        bad = b;
        bad[0] = 0xc2;
        assert_eq!(Header::decode(&bad, 100), Err(DecodeError::BadMinorVersion(2)));
        bad = b;
        bad[1] = 9;
        assert_eq!(Header::decode(&bad, 100), Err(DecodeError::UnknownPacketType(9)));
        bad = b;
        bad[2] = 0;
        assert_eq!(Header::decode(&bad, 100), Err(DecodeError::ZeroSeqNo));
        assert_eq!(Header::decode(&b, 41), Err(DecodeError::BodyTooLong { len: 42, max: 41 }));
        // The cap is inclusive: a body of exactly `max_body` is allowed.
        assert_eq!(Header::decode(&b, 42).map(|h| h.length), Ok(42));
    }

    #[test]
    fn undecodable_reply_bumps_seq_and_zeroes_length() {
        let raw = [0xd0, 9, 1, 0, 1, 2, 3, 4, 0, 0, 0, 7];
        assert_eq!(undecodable_reply(&raw), Some([0xd0, 9, 2, 0, 1, 2, 3, 4, 0, 0, 0, 0]));
        let mut wrap = raw;
        wrap[2] = 255;
        assert_eq!(undecodable_reply(&wrap), None);
    }
}

/// What a peer that does not speak TACACS+ seems to speak, from the first bytes
/// it sent: a short name for an error message that tells the operator what they
/// connected to, or `None` when the bytes may be a TACACS+ header.
pub fn foreign_protocol(first: &[u8]) -> Option<&'static str> {
    const HTTP: [&[u8]; 7] = [b"GET ", b"POST", b"HEAD", b"PUT ", b"OPTI", b"HTTP", b"CONN"];
    if HTTP.iter().any(|m| first.starts_with(m)) {
        Some("HTTP")
    } else if first.starts_with(&[0x16, 0x03]) {
        Some("TLS")
    } else if first.starts_with(b"SSH-") {
        Some("SSH")
    } else if first.starts_with(b"PROXY") || first.starts_with(b"\r\n\r\n\0\r\nQUIT\n") {
        Some("a PROXY protocol header")
    } else if first.first().is_some_and(|&b| b >> 4 != 0xc) {
        Some("something other than TACACS+ (its first byte is not a TACACS+ version)")
    } else {
        None
    }
}

#[cfg(test)]
mod foreign_tests {
    use super::foreign_protocol;

    #[test]
    fn names_what_a_peer_speaks_and_leaves_tacacs_alone() {
        assert_eq!(foreign_protocol(b"HTTP/1.1 400 Bad Request\r\n"), Some("HTTP"));
        assert_eq!(foreign_protocol(b"SSH-2.0-OpenSSH_9.2\r\n"), Some("SSH"));
        assert_eq!(foreign_protocol(&[0x16, 0x03, 0x01, 0x00]), Some("TLS"));
        assert_eq!(foreign_protocol(b"PROXY TCP4 "), Some("a PROXY protocol header"));
        assert!(foreign_protocol(&[0x42]).is_some());
        assert_eq!(foreign_protocol(&[0xc1, 0x02, 0x02, 0x00]), None);
        assert_eq!(foreign_protocol(&[0xc0]), None);
        assert_eq!(foreign_protocol(b""), None);
    }
}
