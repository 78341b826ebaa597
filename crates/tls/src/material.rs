//! Certificate material from PEM files: certificate chains, private keys,
//! CA bundles and CRLs, each checked for what an operator gets wrong (the
//! wrong file, an encrypted key, an expired certificate, a key of another
//! certificate, a CRL of another CA), with an error naming the file and
//! saying what to do.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// Which setting a [`TlsError`] is about (the configuration points at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The certificate chain.
    Certificate,
    /// The private key.
    Key,
    /// The CA bundle that device (or server) certificates must chain to.
    Ca,
    /// The CRL file at this position of the list.
    Crl(usize),
    /// The combination (e.g. a verifier that cannot be built).
    Whole,
}

/// What is wrong with the TLS material.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// Which setting.
        field: Field,
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// A file holds nothing of the kind expected.
    #[error("{path} holds no {what} (a PEM block -----BEGIN {marker}-----): {hint}")]
    Missing {
        /// Which setting.
        field: Field,
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
        /// Its PEM marker.
        marker: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// A file is not valid PEM (or DER).
    #[error("{path} is not a valid {what}: {reason}")]
    Malformed {
        /// Which setting.
        field: Field,
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// A certificate is outside its validity period.
    #[error("the certificate {subject:?} in {path} {when}: {hint}")]
    Validity {
        /// Which setting.
        field: Field,
        /// The file.
        path: PathBuf,
        /// Its subject.
        subject: String,
        /// "expired on DATE" / "is not valid before DATE".
        when: String,
        /// What to do.
        hint: &'static str,
    },
    /// The private key is not the certificate's.
    #[error(
        "the private key in {key} does not belong to the certificate in {certificate} (subject \
            {subject:?}): give the key the certificate was issued for"
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        certificate: PathBuf,
        /// The certificate's subject.
        subject: String,
    },
    /// Anything else rustls refused, said in its words.
    #[error("{0}")]
    Other(String, Field),
}

impl TlsError {
    /// The setting the error is about.
    pub fn field(&self) -> Field {
        match self {
            TlsError::Read { field, .. }
            | TlsError::Missing { field, .. }
            | TlsError::Malformed { field, .. }
            | TlsError::Validity { field, .. } => *field,
            TlsError::KeyMismatch { .. } => Field::Key,
            TlsError::Other(_, f) => *f,
        }
    }
}

fn read(field: Field, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        field,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn pem_problem(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "a PEM block is not closed (no {:?} line)",
                String::from_utf8_lossy(&end_marker)
            )
        }
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed".into(),
        pem::Error::Base64Decode(e) => format!("a PEM block is not valid base64 ({e})"),
        pem::Error::SectionTooLarge => "a PEM block is larger than 256 MiB".into(),
        other => format!("{other:?}"),
    }
}

/// Every certificate of a PEM file, in order (a chain: the end entity first).
pub fn certificates(field: Field, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(field, path)?;
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        let der = item.map_err(|e| TlsError::Malformed {
            field,
            path: path.to_owned(),
            what: "PEM certificate file",
            reason: pem_problem(e),
        })?;
        X509Certificate::from_der(&der).map_err(|e| TlsError::Malformed {
            field,
            path: path.to_owned(),
            what: "certificate",
            reason: e.to_string(),
        })?;
        out.push(der);
    }
    if out.is_empty() {
        let hint = if String::from_utf8_lossy(&bytes).contains("PRIVATE KEY") {
            "it holds a private key: give the certificate file here and the key in `key`"
        } else {
            "give a PEM file with the certificate (then any intermediate CA certificates)"
        };
        return Err(TlsError::Missing {
            field,
            path: path.to_owned(),
            what: "certificate",
            marker: "CERTIFICATE",
            hint,
        });
    }
    Ok(out)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(Field::Key, path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::Malformed {
            field: Field::Key,
            path: path.to_owned(),
            what: "private key for the server",
            reason: "it is encrypted with a passphrase; store it unencrypted (`openssl pkey \
                -in FILE -out FILE.plain`) and readable by the server's user only"
                .into(),
        });
    }
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => Err(TlsError::Missing {
            field: Field::Key,
            path: path.to_owned(),
            what: "private key",
            marker: "PRIVATE KEY",
            hint: if text.contains("CERTIFICATE") {
                "it holds a certificate: give the private key file here"
            } else {
                "give the PEM private key the certificate was issued for"
            },
        }),
        Err(e) => Err(TlsError::Malformed {
            field: Field::Key,
            path: path.to_owned(),
            what: "PEM private key file",
            reason: pem_problem(e),
        }),
    }
}

/// The CRLs of a file: PEM (`-----BEGIN X509 CRL-----`, one or more) or one DER CRL.
pub fn crls(
    index: usize,
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let field = Field::Crl(index);
    let bytes = read(field, path)?;
    let list: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(&bytes).collect::<Result<_, _>>().map_err(
            |e| TlsError::Malformed {
                field,
                path: path.to_owned(),
                what: "PEM CRL file",
                reason: pem_problem(e),
            },
        )?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if list.is_empty() {
        return Err(TlsError::Missing {
            field,
            path: path.to_owned(),
            what: "certificate revocation list",
            marker: "X509 CRL",
            hint: "give the CRL the CA publishes (PEM or DER)",
        });
    }
    for crl in &list {
        CertificateRevocationList::from_der(crl).map_err(|e| TlsError::Malformed {
            field,
            path: path.to_owned(),
            what: "certificate revocation list",
            reason: e.to_string(),
        })?;
    }
    Ok(list)
}

/// What a log line says about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Its subject, RFC 4514 style.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// End of validity, RFC 3339 (UTC).
    pub not_after: String,
    /// End of validity.
    pub not_after_time: SystemTime,
}

fn rfc3339(t: x509_parser::time::ASN1Time) -> String {
    t.to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn system_time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let s = t.timestamp();
    if s >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s as u64)
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// The summary of a DER certificate (None if it does not parse).
pub fn summary(der: &[u8]) -> Option<CertSummary> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    Some(CertSummary {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        not_after: rfc3339(c.validity().not_after),
        not_after_time: system_time(c.validity().not_after),
    })
}

/// Refuse a certificate that is not valid at `now`.
pub fn check_validity(
    field: Field,
    path: &Path,
    der: &[u8],
    now: SystemTime,
) -> Result<(), TlsError> {
    let Ok((_, c)) = X509Certificate::from_der(der) else { return Ok(()) };
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let v = c.validity();
    let when = if v.not_after.timestamp() < secs {
        format!("expired on {}", rfc3339(v.not_after))
    } else if v.not_before.timestamp() > secs {
        format!("is not valid before {}", rfc3339(v.not_before))
    } else {
        return Ok(());
    };
    Err(TlsError::Validity {
        field,
        path: path.to_owned(),
        subject: c.subject().to_string(),
        when,
        hint: "issue a new one (`tacvs cert server`), or check this machine's clock",
    })
}

/// A CRL's issuer and next update, for warnings.
pub(crate) struct CrlInfo {
    pub issuer: String,
    pub next_update: Option<(i64, String)>,
}

pub(crate) fn crl_info(der: &[u8]) -> Option<CrlInfo> {
    let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
    Some(CrlInfo {
        issuer: crl.issuer().to_string(),
        next_update: crl.next_update().map(|t| (t.timestamp(), rfc3339(t))),
    })
}

/// The subject of each certificate (for matching CRL issuers to CAs).
pub(crate) fn subjects(certs: &[CertificateDer<'_>]) -> Vec<String> {
    certs.iter().filter_map(|c| summary(c).map(|s| s.subject)).collect()
}
