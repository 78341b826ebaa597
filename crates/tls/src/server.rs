//! The server's TLS configuration (RFC 9887): TLS 1.3 only, no early data,
//! client certificates verified against the client CA bundle and its CRLs,
//! session resumption by tickets with an enforced lifetime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::material::{self, CertSummary, Field, TlsError};
use crate::tickets::{Expiring, MAX_LIFETIME_SECS};

/// Whether devices must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCertificate {
    /// Mutual TLS: a device without a certificate chaining to the client CA
    /// (and not revoked) is refused at the handshake.
    #[default]
    Required,
    /// A certificate is verified if the device sends one; a device without
    /// one is served, identified by its address.
    Optional,
    /// Certificates are not asked for (server authentication only).
    None,
}

/// What a TLS listener is configured with (paths already resolved).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// PEM certificate chain, the server's certificate first.
    pub certificate: PathBuf,
    /// Its PEM private key.
    pub key: PathBuf,
    /// PEM bundle of the CAs device certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// CRL files (PEM or DER) of those CAs.
    pub crls: Vec<PathBuf>,
    /// Whether devices must present a certificate.
    pub client_certificate: ClientCertificate,
    /// Session tickets' lifetime; zero turns resumption off.
    pub ticket_lifetime: Duration,
}

/// A built server configuration and what the operator should know about it.
#[derive(Debug)]
pub struct ServerTls {
    /// For `tokio_rustls::TlsAcceptor`.
    pub config: Arc<rustls::ServerConfig>,
    /// The server certificate.
    pub certificate: CertSummary,
    /// Things that work but are probably not what was meant.
    pub warnings: Vec<(Field, String)>,
}

/// Build the configuration, checking every file. `now` is for validity checks.
pub fn server_config(s: &ServerSettings, now: SystemTime) -> Result<ServerTls, TlsError> {
    let provider = crate::provider();
    let chain = material::certificates(Field::Certificate, &s.certificate)?;
    material::check_validity(Field::Certificate, &s.certificate, &chain[0], now)?;
    let certificate = material::summary(&chain[0]).ok_or_else(|| {
        TlsError::Other(
            format!("{}: unreadable certificate", s.certificate.display()),
            Field::Certificate,
        )
    })?;
    let key = material::private_key(&s.key)?;
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            key: s.key.clone(),
            certificate: s.certificate.clone(),
            subject: certificate.subject.clone(),
        },
        other => TlsError::Other(
            format!("{}: the private key cannot be used: {other}", s.key.display()),
            Field::Key,
        ),
    })?;
    let mut warnings = Vec::new();
    let mut trust = Sha256::new();
    let verifier = match (s.client_certificate, &s.client_ca) {
        (ClientCertificate::None, _) => WebPkiClientVerifier::no_client_auth(),
        (_, None) => {
            return Err(TlsError::Other(
                "client_ca is required to verify device certificates (or set client_certificate = \"none\")".into(),
                Field::Ca,
            ));
        }
        (mode, Some(ca)) => {
            let cas = material::certificates(Field::Ca, ca)?;
            let mut roots = RootCertStore::empty();
            for c in &cas {
                trust.update(c.as_ref());
                roots.add(c.clone()).map_err(|e| TlsError::Malformed {
                    field: Field::Ca,
                    path: ca.clone(),
                    what: "CA certificate",
                    reason: e.to_string(),
                })?;
            }
            let ca_subjects = material::subjects(&cas);
            let mut crls = Vec::new();
            for (i, path) in s.crls.iter().enumerate() {
                for crl in material::crls(i, path)? {
                    trust.update(crl.as_ref());
                    if let Some(info) = material::crl_info(&crl) {
                        if !ca_subjects.contains(&info.issuer) {
                            warnings.push((
                                Field::Crl(i),
                                format!(
                                    "{}: this CRL was issued by {:?}, which is not in \
                                        client_ca: it revokes nothing here",
                                    path.display(),
                                    info.issuer
                                ),
                            ));
                        }
                        let secs = now
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64);
                        if let Some((next, text)) = info.next_update
                            && next < secs
                        {
                            warnings.push((
                                Field::Crl(i),
                                format!(
                                    "{}: the CRL's next update was due {text}: fetch the CA's \
                                        current CRL (this one is still used)",
                                    path.display()
                                ),
                            ));
                        }
                    }
                    crls.push(crl);
                }
            }
            if s.crls.is_empty() {
                warnings.push((
                    Field::Ca,
                    "no crls: a revoked device certificate is accepted until it expires (RFC \
                        9887 asks for revocation checking)"
                        .into(),
                ));
            }
            let mut b = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
                .with_crls(crls)
                // The CA hierarchy's own CRLs are not required: device
                // certificates are what gets revoked. A device whose issuer
                // has no CRL among those given is refused (status unknown).
                .only_check_end_entity_revocation();
            if s.crls.is_empty() {
                b = b.allow_unknown_revocation_status();
            }
            if mode == ClientCertificate::Optional {
                b = b.allow_unauthenticated();
            }
            b.build().map_err(|e| {
                TlsError::Other(
                    format!("cannot verify devices with this client_ca and crls: {e}"),
                    Field::Ca,
                )
            })?
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Other(e.to_string(), Field::Whole))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    // RFC 9887: no 0-RTT. rustls' default, stated: tickets advertise no
    // early data, and early data a client sends anyway is skipped.
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    let lifetime = s.ticket_lifetime.as_secs();
    if lifetime == 0 {
        config.send_tls13_tickets = 0;
    } else {
        if lifetime > MAX_LIFETIME_SECS {
            return Err(TlsError::Other(
                format!(
                    "ticket_lifetime is at most 12h (the ticket keys' life); {}s given",
                    lifetime
                ),
                Field::Whole,
            ));
        }
        config.ticketer = Arc::new(
            Expiring::new(trust.finalize().into(), lifetime as u32)
                .map_err(|e| TlsError::Other(e.to_string(), Field::Whole))?,
        );
        config.send_tls13_tickets = 1;
    }
    if let Some(days) = certificate
        .not_after_time
        .duration_since(now)
        .ok()
        .map(|d| d.as_secs() / 86_400)
        .filter(|&d| d < 14)
    {
        warnings.push((
            Field::Certificate,
            format!(
                "{}: the server certificate expires in {days} day(s), on {}: renew it",
                s.certificate.display(),
                certificate.not_after
            ),
        ));
    }
    Ok(ServerTls { config: Arc::new(config), certificate, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{self, Role, Validity};

    struct Files(PathBuf);

    impl Files {
        fn new(tag: &str) -> Files {
            let d = std::env::temp_dir().join(format!("tacvs-tls-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Files(d)
        }
        fn put(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn settings(f: &Files, server: &certs::Pem, ca: &certs::Pem) -> ServerSettings {
        ServerSettings {
            certificate: f.put("server.pem", &server.cert),
            key: f.put("server.key", &server.key),
            client_ca: Some(f.put("ca.pem", &ca.cert)),
            crls: vec![f.put("ca.crl", &certs::crl(ca, &[], 7, 1).unwrap())],
            client_certificate: ClientCertificate::Required,
            ticket_lifetime: Duration::from_secs(3600),
        }
    }

    #[test]
    fn each_wrong_file_is_named_with_what_is_wrong() {
        let f = Files::new("wrong");
        let ca = certs::ca("CA", Validity::days(10)).unwrap();
        let srv =
            certs::issue(&ca, Role::Server, "aaa", &["127.0.0.1".into()], Validity::days(100))
                .unwrap();
        let good = settings(&f, &srv, &ca);
        let t = server_config(&good, SystemTime::now()).unwrap();
        assert_eq!(t.certificate.subject, "CN=aaa");
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);

        let other = certs::issue(&ca, Role::Server, "x", &[], Validity::days(100)).unwrap();
        let s = ServerSettings { key: f.put("other.key", &other.key), ..good.clone() };
        let e = server_config(&s, SystemTime::now()).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }) && e.field() == Field::Key, "{e}");
        assert!(e.to_string().contains("other.key") && e.to_string().contains("CN=aaa"), "{e}");

        let s = ServerSettings { certificate: good.key.clone(), ..good.clone() };
        let e = server_config(&s, SystemTime::now()).unwrap_err().to_string();
        assert!(e.contains("holds no certificate") && e.contains("holds a private key"), "{e}");

        let s = ServerSettings { key: f.0.join("absent.key"), ..good.clone() };
        let e = server_config(&s, SystemTime::now()).unwrap_err().to_string();
        assert!(e.starts_with("cannot read") && e.contains("absent.key"), "{e}");

        let later = SystemTime::now() + Duration::from_secs(200 * 86_400);
        let e = server_config(&good, later).unwrap_err();
        assert!(e.to_string().contains("expired on"), "{e}");

        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let s = ServerSettings { key: f.put("enc.key", encrypted), ..good.clone() };
        assert!(
            server_config(&s, SystemTime::now()).unwrap_err().to_string().contains("passphrase")
        );

        let s = ServerSettings {
            crls: vec![
                f.put("bad.crl", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
            ],
            ..good.clone()
        };
        let e = server_config(&s, SystemTime::now()).unwrap_err();
        assert_eq!(e.field(), Field::Crl(0), "{e}");

        let s = ServerSettings { ticket_lifetime: Duration::from_secs(13 * 3600), ..good.clone() };
        assert!(server_config(&s, SystemTime::now()).unwrap_err().to_string().contains("12h"));
    }

    #[test]
    fn warnings_for_a_foreign_crl_a_missing_crl_and_a_certificate_about_to_expire() {
        let f = Files::new("warn");
        let ca = certs::ca("CA", Validity::days(10)).unwrap();
        let other = certs::ca("Other CA", Validity::days(10)).unwrap();
        let srv = certs::issue(&ca, Role::Server, "aaa", &[], Validity::days(3)).unwrap();
        let mut s = settings(&f, &srv, &ca);
        s.crls = vec![f.put("other.crl", &certs::crl(&other, &[], 7, 1).unwrap())];
        let t = server_config(&s, SystemTime::now()).unwrap();
        let text: Vec<&str> = t.warnings.iter().map(|(_, w)| w.as_str()).collect();
        assert!(text.iter().any(|w| w.contains("not in client_ca")), "{text:?}");
        assert!(text.iter().any(|w| w.contains("expires in 2 day(s)")), "{text:?}");
        s.crls.clear();
        let t = server_config(&s, SystemTime::now()).unwrap();
        assert!(t.warnings.iter().any(|(_, w)| w.contains("no crls")));
    }
}
