//! Who is at the other end of a TLS connection, from its certificate: the
//! subject, the subjectAltName entries (iPAddress, dNSName) and the SHA-256
//! fingerprint of the DER certificate. Pure: bytes in, a value out. Every
//! string here came from the peer; callers escape it before logging.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The identity a device (or a server) authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject distinguished name, RFC 4514 style (`CN=rtr1,O=Example`).
    pub subject: String,
    /// subjectAltName iPAddress entries, in certificate order.
    pub ips: Vec<IpAddr>,
    /// subjectAltName dNSName entries, in certificate order.
    pub dns: Vec<String>,
    /// SHA-256 of the DER certificate, lower-case hex (64 characters).
    pub sha256: String,
}

impl PeerIdentity {
    /// The identity in an end-entity certificate. `None` when it does not
    /// parse (a verified certificate always does).
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut ips = Vec::new();
        let mut dns = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            ips.push(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            ips.push(IpAddr::from(a));
                        }
                    }
                    GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                    _ => {}
                }
            }
        }
        Some(PeerIdentity {
            subject: cert.subject().to_string(),
            ips,
            dns,
            sha256: hex(&Sha256::digest(der)),
        })
    }

    /// The subjectAltName entries as one string: `IP:10.0.0.1,DNS:rtr1.example.net`.
    pub fn san(&self) -> String {
        let ips = self.ips.iter().map(|i| format!("IP:{i}"));
        let dns = self.dns.iter().map(|d| format!("DNS:{d}"));
        ips.chain(dns).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Display for PeerIdentity {
    /// `subject "CN=…" san IP:…,DNS:… sha256 …` (unescaped: peer strings).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subject {:?} san {} sha256 {}", self.subject, self.san(), self.sha256)
    }
}

fn hex(b: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// A dNSName pattern a device group claims: an exact name, or `*.` and a
/// suffix of at least two labels matching exactly one more label (RFC 6125
/// §6.4.3 style: `*.core.example.net` matches `rtr1.core.example.net`, not
/// `core.example.net` nor `a.rtr1.core.example.net`). Case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPattern {
    wildcard: bool,
    /// Lower case; for a wildcard, the part after `*.`.
    name: String,
}

impl DnsPattern {
    /// Parse a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<DnsPattern, String> {
        let lower = text.to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower),
        };
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !labels.iter().all(label_ok) {
            return Err(format!(
                "{text:?} is not a DNS name or a `*.suffix` pattern (letters, digits and hyphens between dots)"
            ));
        }
        if wildcard && labels.len() < 2 {
            return Err(format!(
                "{text:?}: a wildcard needs a suffix of two labels or more (e.g. *.core.example.net)"
            ));
        }
        Ok(DnsPattern { wildcard, name })
    }

    /// Whether `dns` (a certificate's dNSName) matches.
    pub fn matches(&self, dns: &str) -> bool {
        let dns = dns.to_ascii_lowercase();
        let dns = dns.strip_suffix('.').unwrap_or(&dns);
        if !self.wildcard {
            return dns == self.name;
        }
        match dns.split_once('.') {
            Some((first, rest)) => !first.is_empty() && first != "*" && rest == self.name,
            None => false,
        }
    }

    /// How specific the pattern is: an exact name beats any wildcard, a
    /// longer suffix beats a shorter one (the most specific match wins).
    pub fn specificity(&self) -> (bool, usize) {
        (!self.wildcard, self.name.len())
    }
}

impl fmt::Display for DnsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard { write!(f, "*.{}", self.name) } else { f.write_str(&self.name) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label_only() {
        let p = DnsPattern::parse("*.Core.Example.net").unwrap();
        assert!(p.matches("rtr1.core.example.net") && p.matches("RTR1.core.example.net."));
        assert!(!p.matches("core.example.net") && !p.matches("a.rtr1.core.example.net"));
        assert!(!p.matches("*.core.example.net") && !p.matches("rtr1.core.example.com"));
        let exact = DnsPattern::parse("rtr1.example.net").unwrap();
        assert!(exact.matches("rtr1.example.net") && !exact.matches("rtr2.example.net"));
        assert!(exact.specificity() > p.specificity());
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(DnsPattern::parse("*.net").unwrap_err().contains("two labels"));
        assert!(DnsPattern::parse("rtr 1.example").unwrap_err().contains("not a DNS name"));
        assert!(DnsPattern::parse("a.*.example").is_err());
        assert!(DnsPattern::parse("").is_err());
    }
}
