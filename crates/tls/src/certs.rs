//! Certificates for people who have none (`tacvs cert`): a small CA, server
//! certificates, device certificates (subjectAltName iPAddress / dNSName) and
//! CRLs, with rcgen. ECDSA P-256 keys, random 128-bit serials. Meant for a lab
//! or a first deployment; a real PKI replaces it without changing anything
//! else.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use thiserror::Error;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a certificate could not be made.
#[derive(Debug, Error)]
pub enum CertError {
    /// rcgen refused (a bad name, a key it cannot use).
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    /// The CA files do not fit together or do not parse.
    #[error("{0}")]
    Input(String),
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem").field("key", &"<redacted>").finish_non_exhaustive()
    }
}

/// The validity period of a certificate.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Not before.
    pub from: OffsetDateTime,
    /// Not after.
    pub until: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clock skew) for `days` days.
    pub fn days(days: u32) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity { from: now - Duration::hours(1), until: now + Duration::days(i64::from(days)) }
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A TACACS+ server (extended key usage serverAuth).
    Server,
    /// A device, or anything else that connects (clientAuth): a director's
    /// health checks, the simulator.
    Device,
}

fn serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] = (b[0] & 0x7f) | 0x01; // positive, 16 bytes
    SerialNumber::from_slice(&b)
}

/// A self-signed CA certificate named `name`.
pub fn ca(name: &str, v: Validity) -> Result<Pem, CertError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = v.from;
    p.not_after = v.until;
    p.serial_number = Some(serial());
    let key = KeyPair::generate()?;
    let cert = p.self_signed(&key)?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

fn issuer(ca: &Pem) -> Result<Issuer<'static, KeyPair>, CertError> {
    let key = KeyPair::from_pem(&ca.key)
        .map_err(|e| CertError::Input(format!("the CA key does not parse: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, key)
        .map_err(|e| CertError::Input(format!("the CA certificate does not parse: {e}")))?;
    let der = pem_der(&ca.cert)?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| CertError::Input(e.to_string()))?;
    if *cert.public_key().subject_public_key.data != *rcgen::PublicKeyData::der_bytes(issuer.key())
    {
        return Err(CertError::Input(
            "the CA key does not belong to the CA certificate: give the key `tacvs cert ca` wrote beside it".into(),
        ));
    }
    Ok(issuer)
}

fn pem_der(pem: &str) -> Result<Vec<u8>, CertError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|_| CertError::Input("not a PEM certificate".into()))
}

/// A certificate for `role`, named `cn`, with `names` as subjectAltNames
/// (each an IP address or a DNS name), signed by `ca`.
pub fn issue(
    ca: &Pem,
    role: Role,
    cn: &str,
    names: &[String],
    v: Validity,
) -> Result<Pem, CertError> {
    let issuer = issuer(ca)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => crate::identity::DnsPattern::parse(n)
                .map_err(CertError::Input)
                .and_then(|_| n.clone().try_into().map_err(|_| CertError::Input(n.clone())))
                .map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![match role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Device => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    p.use_authority_key_identifier_extension = true;
    p.not_before = v.from;
    p.not_after = v.until;
    p.serial_number = Some(serial());
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

/// The serial number of a PEM certificate.
pub fn serial_of(cert_pem: &str) -> Result<Vec<u8>, CertError> {
    let der = pem_der(cert_pem)?;
    let (_, c) = X509Certificate::from_der(&der).map_err(|e| CertError::Input(e.to_string()))?;
    Ok(c.raw_serial().to_vec())
}

/// A CRL of `ca` revoking the certificates with these serials, valid for
/// `days` days (its next update), numbered `number`.
pub fn crl(ca: &Pem, revoked: &[Vec<u8>], days: u32, number: u64) -> Result<String, CertError> {
    let issuer = issuer(ca)?;
    let now = OffsetDateTime::now_utc();
    let p = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(i64::from(days.max(1))),
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: now - Duration::minutes(5),
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(p.signed_by(&issuer)?.pem()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PeerIdentity;

    #[test]
    fn a_device_certificate_carries_its_names_and_chains_to_the_ca() {
        let ca = ca("tacvs test CA", Validity::days(30)).unwrap();
        let dev = issue(
            &ca,
            Role::Device,
            "rtr1",
            &["10.1.2.3".into(), "rtr1.core.example.net".into()],
            Validity::days(30),
        )
        .unwrap();
        let der = pem_der(&dev.cert).unwrap();
        let id = PeerIdentity::from_der(&der).unwrap();
        assert_eq!(id.subject, "CN=rtr1");
        assert_eq!(id.ips, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(id.dns, ["rtr1.core.example.net"]);
        assert_eq!(id.sha256.len(), 64);
        assert_eq!(id.san(), "IP:10.1.2.3,DNS:rtr1.core.example.net");
        assert_ne!(serial_of(&dev.cert).unwrap(), serial_of(&ca.cert).unwrap());
        assert!(crl(&ca, &[serial_of(&dev.cert).unwrap()], 7, 1).unwrap().contains("X509 CRL"));
    }

    #[test]
    fn a_ca_key_of_another_ca_is_refused() {
        let a = ca("a", Validity::days(1)).unwrap();
        let b = ca("b", Validity::days(1)).unwrap();
        let mixed = Pem { cert: a.cert.clone(), key: b.key.clone() };
        let e = issue(&mixed, Role::Device, "x", &[], Validity::days(1)).unwrap_err();
        assert!(e.to_string().contains("does not belong"), "{e}");
        assert!(issue(&a, Role::Device, "x", &["not a name!".into()], Validity::days(1)).is_err());
    }
}
