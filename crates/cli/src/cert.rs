//! `tacvs cert`: certificates for a lab or a first deployment of TACACS+
//! over TLS — a small CA, server and device certificates, and a CRL to
//! revoke devices (`tacvs_tls::certs`, rcgen). Keys are written mode 0600;
//! nothing is overwritten without `--force`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tacvs_tls::certs::{self, Pem, Role, Validity};

#[derive(Debug, Args)]
pub struct CertArgs {
    #[command(subcommand)]
    sub: CertSub,
}

#[derive(Debug, Subcommand)]
enum CertSub {
    /// Make a CA: OUT/ca.pem (give it to servers as client_ca and to devices)
    /// and OUT/ca.key (keep it private: it signs every certificate).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's name (its subject CN).
        #[arg(long, default_value = "tacvs CA")]
        name: String,
        /// Days of validity.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Make a server certificate: OUT.pem and OUT.key.
    Server(Issue),
    /// Make a device (client) certificate: OUT.pem and OUT.key. Also for a
    /// director's TLS health checks.
    Device(Issue),
    /// Make a CRL of the CA revoking the given certificates: OUT (PEM).
    Crl {
        #[command(flatten)]
        ca: CaFiles,
        /// A certificate (PEM) to revoke; repeat for more. None: an empty CRL.
        #[arg(long, value_name = "FILE")]
        revoke: Vec<PathBuf>,
        /// Days until the CRL's next update.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// The CRL file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// The CA that signs.
#[derive(Debug, Args)]
struct CaFiles {
    /// The CA certificate (from `tacvs cert ca`).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// Its key.
    #[arg(long, value_name = "FILE")]
    ca_key: PathBuf,
}

#[derive(Debug, Args)]
struct Issue {
    #[command(flatten)]
    ca: CaFiles,
    /// Its name (subject CN).
    #[arg(long)]
    name: String,
    /// A subjectAltName: an IP address or a DNS name; repeat for more. A
    /// server needs the address or name devices connect to; a device its
    /// address (identity = "san-ip") or name ("san-dns").
    #[arg(long, value_name = "IP|DNS")]
    san: Vec<String>,
    /// Days of validity.
    #[arg(long, default_value_t = 825)]
    days: u32,
    /// Write OUT.pem and OUT.key.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Replace files that exist.
    #[arg(long)]
    force: bool,
}

fn write(path: &Path, text: &str, private: bool, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists: remove it, choose another --out, or pass --force", path.display());
    }
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn read_ca(c: &CaFiles) -> anyhow::Result<Pem> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    Ok(Pem { cert: read(&c.ca)?, key: read(&c.ca_key)? })
}

fn with_ext(p: &Path, ext: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

pub fn run(a: CertArgs) -> anyhow::Result<u8> {
    match a.sub {
        CertSub::Ca { out, name, days, force } => {
            let ca = certs::ca(&name, Validity::days(days))?;
            write(&out.join("ca.pem"), &ca.cert, false, force)?;
            write(&out.join("ca.key"), &ca.key, true, force)?;
        }
        CertSub::Server(i) => issue(i, Role::Server)?,
        CertSub::Device(i) => issue(i, Role::Device)?,
        CertSub::Crl { ca, revoke, days, out } => {
            let pem = read_ca(&ca)?;
            let mut serials = Vec::new();
            for r in &revoke {
                let text = std::fs::read_to_string(r)
                    .with_context(|| format!("cannot read {}", r.display()))?;
                serials.push(certs::serial_of(&text).with_context(|| format!("{}", r.display()))?);
            }
            // Numbered by the time: each new CRL supersedes the last.
            let number = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs());
            let crl = certs::crl(&pem, &serials, days, number)?;
            write(&out, &crl, false, true)?;
            println!(
                "revokes {} certificate(s); next update in {days} days: give it to the servers \
                    as crls = [...] and reload them (SIGHUP)",
                serials.len()
            );
        }
    }
    Ok(0)
}

fn issue(i: Issue, role: Role) -> anyhow::Result<()> {
    let ca = read_ca(&i.ca)?;
    if role == Role::Server && i.san.is_empty() {
        bail!(
            "a server certificate needs --san: the address or name devices connect to (RFC \
                9525: the name is checked against subjectAltName only)"
        );
    }
    let p = certs::issue(&ca, role, &i.name, &i.san, Validity::days(i.days))?;
    write(&with_ext(&i.out, ".pem"), &p.cert, false, i.force)?;
    write(&with_ext(&i.out, ".key"), &p.key, true, i.force)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_a_server_a_device_and_a_crl_that_revokes_it() {
        let d = std::env::temp_dir().join(format!("tacvs-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let ca = CaFiles { ca: d.join("ca.pem"), ca_key: d.join("ca.key") };
        run(CertArgs {
            sub: CertSub::Ca { out: d.clone(), name: "t".into(), days: 2, force: false },
        })
        .unwrap();
        let again = run(CertArgs {
            sub: CertSub::Ca { out: d.clone(), name: "t".into(), days: 2, force: false },
        });
        assert!(again.unwrap_err().to_string().contains("--force"), "no silent overwrite");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(d.join("ca.key")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let iss = |san: Vec<String>, out: &str| Issue {
            ca: CaFiles { ca: ca.ca.clone(), ca_key: ca.ca_key.clone() },
            name: out.into(),
            san,
            days: 30,
            out: d.join(out),
            force: false,
        };
        assert!(issue(iss(vec![], "srv"), Role::Server).unwrap_err().to_string().contains("--san"));
        issue(iss(vec!["127.0.0.1".into()], "srv"), Role::Server).unwrap();
        issue(iss(vec!["10.1.1.1".into()], "rtr1"), Role::Device).unwrap();
        let out = d.join("ca.crl");
        run(CertArgs {
            sub: CertSub::Crl { ca, revoke: vec![d.join("rtr1.pem")], days: 7, out: out.clone() },
        })
        .unwrap();
        // The server accepts the lot.
        let s = tacvs_tls::server::ServerSettings {
            certificate: d.join("srv.pem"),
            key: d.join("srv.key"),
            client_ca: Some(d.join("ca.pem")),
            crls: vec![out],
            client_certificate: tacvs_tls::server::ClientCertificate::Required,
            ticket_lifetime: std::time::Duration::from_secs(60),
        };
        let t = tacvs_tls::server::server_config(&s, std::time::SystemTime::now()).unwrap();
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[cfg(test)]
mod example {
    use super::*;

    /// examples/tls/server.toml compiles once its header's commands made its
    /// certificates (run here as the functions they call).
    #[test]
    fn the_tls_example_works_with_the_certificates_its_comments_make() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let d = std::env::temp_dir().join(format!("tacvs-tls-example-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let pki = d.join("pki");
        run(CertArgs {
            sub: CertSub::Ca { out: pki.clone(), name: "tacvs CA".into(), days: 2, force: false },
        })
        .unwrap();
        let ca = || CaFiles { ca: pki.join("ca.pem"), ca_key: pki.join("ca.key") };
        let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let srv = Issue {
            ca: ca(),
            name: "aaa1".into(),
            san: sans,
            days: 30,
            out: pki.join("server"),
            force: false,
        };
        issue(srv, Role::Server).unwrap();
        run(CertArgs {
            sub: CertSub::Crl { ca: ca(), revoke: vec![], days: 7, out: pki.join("ca.crl") },
        })
        .unwrap();
        let text = std::fs::read_to_string(root.join("examples/tls/server.toml")).unwrap();
        std::fs::write(d.join("server.toml"), text).unwrap();
        let p = tacvs_policy::load(&d.join("server.toml")).unwrap();
        assert!(p.listeners[0].tls.is_some() && p.warnings.is_empty(), "{:?}", p.warnings);
        let _ = std::fs::remove_dir_all(&d);
    }
}
