//! # tacvs-tls
//!
//! TACACS+ over TLS 1.3 (RFC 9887) for every tacvs role, on rustls with the
//! *ring* crypto provider. What it offers:
//!
//! - [`material`]: PEM certificate chains, keys, CA bundles and CRLs read and
//!   checked, with errors that name the file and say what to do.
//! - [`server::server_config`]: a listener's configuration — TLS 1.3 only, no
//!   early data, device certificates verified against the client CA and its
//!   CRLs, resumption by tickets whose lifetime is enforced.
//! - [`client`]: a client configuration (CA bundle, optional client
//!   certificate) and the server's reference identity per RFC 9525.
//! - [`identity::PeerIdentity`]: subject, subjectAltName and SHA-256
//!   fingerprint of the certificate a peer authenticated with, and
//!   [`identity::DnsPattern`] to match dNSNames to device groups.
//! - [`certs`]: a small CA, server and device certificates and CRLs for a lab
//!   or a first deployment (`tacvs cert`).
//! - [`failure`]: a failed handshake in words and as a metrics label.
//!
//! Nothing here does I/O beyond reading the files it is given; the
//! handshakes run in `tokio-rustls` in the server, client and director.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certs;
pub mod client;
pub mod identity;
pub mod material;
pub mod server;
mod tickets;

use std::sync::Arc;

pub use rustls;
pub use tickets::MAX_LIFETIME_SECS;

/// The crypto provider of every configuration here: *ring* (see
/// docs/design.md: aws-lc-rs needs cmake and a long C build).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether the first bytes of a connection are a TLS handshake record (a
/// ClientHello: content type 22, legacy version 3.x). TACACS+ starts with
/// 0xc0 or 0xc1, so one byte tells them apart; more are checked when present.
pub fn looks_like_tls(first: &[u8]) -> bool {
    match first {
        [] => false,
        [0x16] => true,
        [0x16, 0x03, ..] => true,
        _ => false,
    }
}

/// A failed handshake: a short label for metrics and a sentence for the log.
pub fn failure(e: &std::io::Error) -> (&'static str, String) {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E, PeerIncompatible as P};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                ("closed", "the peer closed the connection during the handshake".into())
            }
            _ => ("io", format!("the handshake failed: {e}")),
        };
    };
    let cert = |c: &C| -> (&'static str, String) {
        match c {
            C::UnknownIssuer => (
                "unknown_ca",
                "the certificate does not chain to a trusted CA (another CA's certificate, or \
                    the CA file is not the issuer's)"
                    .into(),
            ),
            C::Revoked => ("revoked", "the certificate is revoked (listed in the CRL)".into()),
            C::UnknownRevocationStatus => (
                "revocation_unknown",
                "no CRL of the certificate's issuer was given, so its revocation status is \
                    unknown: add the issuer's CRL"
                    .into(),
            ),
            C::Expired | C::ExpiredContext { .. } => {
                ("expired", "the certificate has expired".into())
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                ("not_yet_valid", "the certificate is not valid yet (check the clocks)".into())
            }
            C::NotValidForName => {
                ("wrong_name", "the certificate is not issued for the name asked for".into())
            }
            C::NotValidForNameContext { expected, presented } => (
                "wrong_name",
                format!(
                    "the certificate is not issued for {} (it names {}): give its name with \
                        --sni, or issue it for this address",
                    expected.to_str(),
                    if presented.is_empty() { "nothing".into() } else { presented.join(", ") }
                ),
            ),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => (
                "wrong_purpose",
                "the certificate is not for this use (a server certificate presented as a \
                    client's, or the reverse)"
                    .into(),
            ),
            other => ("bad_certificate", format!("the certificate was refused: {other:?}")),
        }
    };
    match err {
        E::InvalidCertificate(c) => cert(c),
        E::NoCertificatesPresented => (
            "no_certificate",
            "the peer presented no certificate, and one is required (mutual TLS)".into(),
        ),
        E::AlertReceived(A::CertificateRequired) => (
            "no_certificate",
            "the server requires a client certificate: give one (--tls-cert, --tls-key)".into(),
        ),
        E::AlertReceived(A::ProtocolVersion)
        | E::PeerIncompatible(P::SupportedVersionsExtensionRequired) => (
            "protocol_version",
            "the peer does not speak TLS 1.3 (TLS 1.2 and below are refused, RFC 9887)".into(),
        ),
        E::PeerIncompatible(p) => {
            ("incompatible", format!("the peer's TLS is incompatible: {p:?}"))
        }
        E::AlertReceived(A::CertificateRevoked) => {
            ("revoked", "the peer says our certificate is revoked (it is in the peer's CRL)".into())
        }
        E::AlertReceived(A::CertificateExpired) => {
            ("expired", "the peer says our certificate has expired".into())
        }
        E::AlertReceived(A::UnknownCA) => (
            "unknown_ca",
            "the peer does not trust the CA of our certificate (its client_ca is another CA)"
                .into(),
        ),
        E::AlertReceived(
            a @ (A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateUnknown
            | A::DecryptError
            | A::AccessDenied),
        ) => (
            "refused_by_peer",
            format!(
                "the peer refused our certificate ({a:?}): check that its CA trusts ours and that ours is valid"
            ),
        ),
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => {
            ("not_tls", "the peer does not speak TLS (plain TACACS+ sent to a TLS port?)".into())
        }
        other => ("other", format!("the handshake failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_is_told_from_tacacs() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(looks_like_tls(&[0x16]));
        assert!(!looks_like_tls(&[0xc0, 0x02, 0x01]) && !looks_like_tls(&[0xc1]));
        assert!(!looks_like_tls(&[0x16, 0x01]) && !looks_like_tls(&[]));
    }
}
