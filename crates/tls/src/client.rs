//! The client's TLS configuration: TLS 1.3 only, the server verified against
//! a CA bundle and identified per RFC 9525 (a DNS-ID, sent as SNI, or an
//! IP-ID, matched against the certificate's subjectAltName only: the subject
//! CN is never used), optionally a client certificate. Session resumption is
//! on (tickets are kept per configuration); early data is never sent.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::material::{self, Field, TlsError};

/// The CA bundle as trust anchors.
pub fn roots(ca: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in material::certificates(Field::Ca, ca)? {
        roots.add(c).map_err(|e| TlsError::Malformed {
            field: Field::Ca,
            path: ca.to_owned(),
            what: "CA certificate",
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

/// A client certificate chain and its key, from PEM files.
pub fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    Ok((material::certificates(Field::Certificate, cert)?, material::private_key(key)?))
}

/// A client configuration trusting `roots`, presenting `identity` if given.
pub fn config(
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let b = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Other(e.to_string(), Field::Whole))?
        .with_root_certificates(roots);
    let mut c = match identity {
        Some((chain, key)) => b.with_client_auth_cert(chain, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Other(
                "the client key does not belong to the client certificate".into(),
                Field::Key,
            ),
            other => TlsError::Other(
                format!("the client certificate cannot be used: {other}"),
                Field::Key,
            ),
        })?,
        None => b.with_no_client_auth(),
    };
    c.enable_early_data = false;
    Ok(Arc::new(c))
}

/// The reference identity of the server (RFC 9525): `name` when given (a
/// DNS-ID, or an IP-ID if it is an address), else the server's address as
/// an IP-ID. A DNS-ID is sent as SNI; an IP address is not (RFC 6066 §3).
pub fn server_name(name: Option<&str>, addr: IpAddr) -> Result<ServerName<'static>, String> {
    match name {
        Some(n) => ServerName::try_from(n.to_owned()).map_err(|_| {
            format!("{n:?} is neither a DNS name nor an IP address: give the name in the server's certificate")
        }),
        None => Ok(ServerName::IpAddress(addr.into())),
    }
}

/// A client certificate chain and its key from PEM text (e.g. minted by
/// [`crate::certs::issue`]).
pub fn identity_from_pem(
    cert: &str,
    key: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |what: &'static str| TlsError::Other(format!("not a PEM {what}"), Field::Certificate);
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| bad("private key"))?;
    Ok((chain, key))
}
