//! Shared secret and body obfuscation, RFC 8907 §4.5.
//!
//! pseudo_pad = MD5_1 || MD5_2 || ... truncated to the body length, where
//! MD5_1 = MD5(session_id, key, version, seq_no) and
//! MD5_n = MD5(session_id, key, version, seq_no, MD5_{n-1}).
//! The body is XORed with the pad in place: the same call obfuscates and
//! de-obfuscates, and no second buffer is ever allocated.

use std::fmt;

use md5::{Digest, Md5};

use crate::header::Header;

/// A TACACS+ shared secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// Wrap secret bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Key(secret.into())
    }
    /// The secret bytes, for obfuscation only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(<redacted {} bytes>)", self.0.len())
    }
}

/// XOR `body` with the MD5 pseudo-pad for this header and key, in place.
pub fn apply_pad(header: &Header, key: &Key, body: &mut [u8]) {
    if body.is_empty() {
        return;
    }
    // Hash the fixed prefix once; each 16-byte block clones this state instead of
    // re-hashing the key.
    let mut prefix = Md5::new();
    prefix.update(header.session_id.to_be_bytes());
    prefix.update(&key.0);
    prefix.update([header.minor.version_byte(), header.seq_no]);

    let mut pad = prefix.clone().finalize();
    let mut chunks = body.chunks_mut(16);
    for (i, chunk) in chunks.by_ref().enumerate() {
        if i > 0 {
            let mut h = prefix.clone();
            h.update(pad);
            pad = h.finalize();
        }
        for (b, p) in chunk.iter_mut().zip(pad.iter()) {
            *b ^= p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{Flags, MinorVersion, PacketType};

    fn hdr(seq: u8) -> Header {
        Header {
            minor: MinorVersion::Default,
            packet_type: PacketType::Authentication,
            seq_no: seq,
            flags: Flags::default(),
            session_id: 0x0102_0304,
            length: 0,
        }
    }

    #[test]
    fn pad_matches_rfc_construction() {
        // Build the pad the slow, literal way and compare.
        let key = Key::new("secret");
        let h = hdr(1);
        let mut body = vec![0u8; 40];
        apply_pad(&h, &key, &mut body);
        let mut expected = Vec::new();
        let mut prev: Vec<u8> = Vec::new();
        while expected.len() < 40 {
            let mut m = Md5::new();
            m.update([1, 2, 3, 4]);
            m.update(b"secret");
            m.update([0xc0, 1]);
            m.update(&prev);
            prev = m.finalize().to_vec();
            expected.extend_from_slice(&prev);
        }
        expected.truncate(40);
        assert_eq!(body, expected);
    }

    #[test]
    fn involution_and_seq_dependence() {
        let key = Key::new("k");
        let orig: Vec<u8> = (0..=200u8).collect();
        let mut b = orig.clone();
        apply_pad(&hdr(1), &key, &mut b);
        assert_ne!(b, orig);
        let mut c = orig.clone();
        apply_pad(&hdr(3), &key, &mut c);
        assert_ne!(b, c);
        apply_pad(&hdr(1), &key, &mut b);
        assert_eq!(b, orig);
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(format!("{:?}", Key::new("hunter2")), "Key(<redacted 7 bytes>)");
    }
}
