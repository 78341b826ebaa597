//! Challenge-response arithmetic for the single-exchange logins of RFC 8907
//! §5.4.2: CHAP (RFC 1994), MS-CHAPv1 (RFC 2433) and MS-CHAPv2 (RFC 2759), and
//! the layout of their START data field. Pure functions, no I/O.
//!
//! Written by hand: no maintained crate offers the MS-CHAP response arithmetic;
//! the primitives (MD4, MD5, SHA-1, DES) come from RustCrypto.

use des::Des;
use des::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use md4::Md4;
use md5::{Digest, Md5};
use sha1::Sha1;
use thiserror::Error;

use crate::values::AuthenType;

/// Length of an MS-CHAP (v1 and v2) response field.
pub const MSCHAP_RESPONSE_LEN: usize = 49;

/// Why CHAP-style START data is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChapError {
    /// The data field has the wrong size for its type.
    #[error("{kind} data is {len} bytes, expected {expected}")]
    BadLength {
        /// CHAP flavour.
        kind: &'static str,
        /// Actual length.
        len: usize,
        /// What it must be.
        expected: &'static str,
    },
    /// Not a challenge-response type.
    #[error("authen_type {0} carries no challenge/response")]
    NotChallengeResponse(AuthenType),
}

/// The START data of a CHAP-style login: PPP id, challenge, response (§5.4.2.3–5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapData<'a> {
    /// PPP identifier.
    pub id: u8,
    /// The challenge the NAS issued.
    pub challenge: &'a [u8],
    /// The peer's response.
    pub response: &'a [u8],
}

impl<'a> ChapData<'a> {
    /// Split START data for `ty`.
    pub fn parse(ty: AuthenType, data: &'a [u8]) -> Result<Self, ChapError> {
        let (kind, resp_len, challenge_len) = match ty {
            AuthenType::Chap => ("CHAP", 16, None),
            AuthenType::MsChapV1 => ("MS-CHAPv1", MSCHAP_RESPONSE_LEN, Some(8)),
            AuthenType::MsChapV2 => ("MS-CHAPv2", MSCHAP_RESPONSE_LEN, Some(16)),
            other => return Err(ChapError::NotChallengeResponse(other)),
        };
        let expected = match ty {
            AuthenType::Chap => "1 + challenge (at least 1) + 16",
            AuthenType::MsChapV1 => "1 + 8 + 49 = 58",
            _ => "1 + 16 + 49 = 66",
        };
        let bad = || ChapError::BadLength { kind, len: data.len(), expected };
        let min = 1 + challenge_len.unwrap_or(1) + resp_len;
        if data.len() < min || challenge_len.is_some_and(|c| data.len() != 1 + c + resp_len) {
            return Err(bad());
        }
        let (challenge, response) = data[1..].split_at(data.len() - 1 - resp_len);
        Ok(ChapData { id: data[0], challenge, response })
    }

    /// Serialize as START data.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.challenge.len() + self.response.len());
        v.push(self.id);
        v.extend_from_slice(self.challenge);
        v.extend_from_slice(self.response);
        v
    }
}

/// RFC 1994 §4.1: MD5(id || secret || challenge).
pub fn chap_response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([id]);
    h.update(secret);
    h.update(challenge);
    h.finalize().into()
}

/// RFC 2759 §8.3 NtPasswordHash: MD4 of the UTF-16LE password.
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let mut h = Md4::new();
    for u in password.encode_utf16() {
        h.update(u.to_le_bytes());
    }
    h.finalize().into()
}

fn des_key(k7: &[u8]) -> [u8; 8] {
    // Spread 56 bits over 8 bytes; DES ignores the low (parity) bit of each.
    [
        k7[0],
        (k7[0] << 7) | (k7[1] >> 1),
        (k7[1] << 6) | (k7[2] >> 2),
        (k7[2] << 5) | (k7[3] >> 3),
        (k7[3] << 4) | (k7[4] >> 4),
        (k7[4] << 3) | (k7[5] >> 5),
        (k7[5] << 2) | (k7[6] >> 6),
        k7[6] << 1,
    ]
}

/// RFC 2759 §8.5 ChallengeResponse: three DES encryptions of the 8-byte challenge.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(password_hash);
    let mut out = [0u8; 24];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let cipher =
            Des::new_from_slice(&des_key(&z[i * 7..i * 7 + 7])).expect("DES key is 8 bytes");
        let mut block = GenericArray::clone_from_slice(challenge);
        cipher.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }
    out
}

/// RFC 2433 §A.5 NtChallengeResponse (MS-CHAPv1).
pub fn mschapv1_nt_response(challenge: &[u8; 8], password: &str) -> [u8; 24] {
    challenge_response(challenge, &nt_password_hash(password))
}

/// The 49-byte MS-CHAPv1 response field: no LM response, NT response, flags = 1 (use NT).
pub fn mschapv1_response(challenge: &[u8; 8], password: &str) -> [u8; MSCHAP_RESPONSE_LEN] {
    let mut r = [0u8; MSCHAP_RESPONSE_LEN];
    r[24..48].copy_from_slice(&mschapv1_nt_response(challenge, password));
    r[48] = 1;
    r
}

/// RFC 2759 §8.2 ChallengeHash.
pub fn mschapv2_challenge_hash(
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 8] {
    let mut h = Sha1::new();
    h.update(peer_challenge);
    h.update(auth_challenge);
    h.update(user);
    let d = h.finalize();
    d[..8].try_into().expect("SHA-1 is 20 bytes")
}

/// RFC 2759 §8.1 GenerateNTResponse.
pub fn mschapv2_nt_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
    password: &str,
) -> [u8; 24] {
    let ch = mschapv2_challenge_hash(peer_challenge, auth_challenge, user);
    challenge_response(&ch, &nt_password_hash(password))
}

/// The 49-byte MS-CHAPv2 response field: peer challenge, 8 reserved zero bytes,
/// NT response, flags 0 (RFC 2759 §4).
pub fn mschapv2_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
    password: &str,
) -> [u8; MSCHAP_RESPONSE_LEN] {
    let mut r = [0u8; MSCHAP_RESPONSE_LEN];
    r[..16].copy_from_slice(peer_challenge);
    r[24..48].copy_from_slice(&mschapv2_nt_response(
        auth_challenge,
        peer_challenge,
        user,
        password,
    ));
    r
}

/// Compare without an early exit, so timing does not reveal how much matched.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Check CHAP / MS-CHAPv1 / MS-CHAPv2 START data against the user's clear-text
/// secret. `user` is the START user field (MS-CHAPv2 hashes it in).
pub fn verify(ty: AuthenType, data: &[u8], user: &[u8], secret: &str) -> Result<bool, ChapError> {
    let d = ChapData::parse(ty, data)?;
    Ok(match ty {
        AuthenType::Chap => ct_eq(&chap_response(d.id, secret.as_bytes(), d.challenge), d.response),
        AuthenType::MsChapV1 => {
            let ch: &[u8; 8] = d.challenge.try_into().expect("length checked by parse");
            ct_eq(&mschapv1_nt_response(ch, secret), &d.response[24..48])
        }
        _ => {
            let ch: &[u8; 16] = d.challenge.try_into().expect("length checked by parse");
            let peer: &[u8; 16] = d.response[..16].try_into().expect("length checked by parse");
            ct_eq(&mschapv2_nt_response(ch, peer, user, secret), &d.response[24..48])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rfc2759_vectors() {
        // RFC 2759 §9.2.
        let auth: [u8; 16] = h("5B5D7C7D7B3F2F3E3C2C602132262628").try_into().unwrap();
        let peer: [u8; 16] = h("21402324255E262A28295F2B3A337C7E").try_into().unwrap();
        assert_eq!(mschapv2_challenge_hash(&peer, &auth, b"User").to_vec(), h("D02E4386BCE91226"));
        assert_eq!(nt_password_hash("clientPass").to_vec(), h("44EBBA8D5312B8D611474411F56989AE"));
        assert_eq!(
            mschapv2_nt_response(&auth, &peer, b"User", "clientPass").to_vec(),
            h("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
        );
    }

    #[test]
    fn rfc2433_vector() {
        // RFC 2433 Appendix B.
        let ch: [u8; 8] = h("102DB5DF085D3041").try_into().unwrap();
        assert_eq!(nt_password_hash("MyPw").to_vec(), h("FC156AF7EDCD6C0EDDE3337D427F4EAC"));
        assert_eq!(
            mschapv1_nt_response(&ch, "MyPw").to_vec(),
            h("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61")
        );
        // CHAP-MD5 with the same challenge (PEAR Crypt_CHAP's published vector).
        assert_eq!(chap_response(1, b"MyPw", &ch).to_vec(), h("8f028814450d66d94c72331ef455a172"));
    }

    #[test]
    fn verify_roundtrips_and_rejects() {
        let challenge = b"0123456789abcdef";
        let chap =
            ChapData { id: 7, challenge, response: &chap_response(7, b"pw", challenge) }.to_vec();
        assert_eq!(verify(AuthenType::Chap, &chap, b"u", "pw"), Ok(true));
        assert_eq!(verify(AuthenType::Chap, &chap, b"u", "px"), Ok(false));

        let ch8 = *b"12345678";
        let v1 =
            ChapData { id: 1, challenge: &ch8, response: &mschapv1_response(&ch8, "pw") }.to_vec();
        assert_eq!(verify(AuthenType::MsChapV1, &v1, b"u", "pw"), Ok(true));
        assert_eq!(verify(AuthenType::MsChapV1, &v1, b"u", "nope"), Ok(false));

        let peer = [9u8; 16];
        let v2 = ChapData {
            id: 2,
            challenge,
            response: &mschapv2_response(challenge, &peer, b"u", "pw"),
        }
        .to_vec();
        assert_eq!(verify(AuthenType::MsChapV2, &v2, b"u", "pw"), Ok(true));
        assert_eq!(verify(AuthenType::MsChapV2, &v2, b"other", "pw"), Ok(false));

        assert!(verify(AuthenType::MsChapV2, &v2[..60], b"u", "pw").is_err());
        assert!(verify(AuthenType::Chap, &[1; 16], b"u", "pw").is_err());
        assert!(verify(AuthenType::Pap, b"x", b"u", "pw").is_err());
    }
}
