//! What several subcommands share, so that each spells it the same way: the
//! shared key (`--key`, `--key-file`, `TACVS_KEY`), durations (`3s`, `800ms`),
//! source addresses (`ADDRESS[/LEN]`) and TACACS+ over TLS (`--tls`,
//! `--tls-ca`, `--tls-cert`, `--tls-key`, `--sni`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use tacvs_proto::Key;

/// The shared key from `--key-file FILE` (its first line) or `--key` /
/// `TACVS_KEY`; never echoed in an error.
pub fn read_key(key: Option<&str>, key_file: Option<&Path>) -> anyhow::Result<Key> {
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            bail!(
                "the key file {} is empty: put the shared secret on its first line",
                path.display()
            );
        }
        return Ok(Key::new(line));
    }
    match key {
        Some(k) if !k.is_empty() => Ok(Key::new(k)),
        _ => bail!("no shared key: pass --key, --key-file FILE or set TACVS_KEY"),
    }
}

/// TACACS+ over TLS 1.3 (RFC 9887), for the commands that connect to a server.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Speak TACACS+ over TLS 1.3 (RFC 9887): nothing is obfuscated, the
    /// shared key is not used.
    #[arg(long, global = true)]
    pub tls: bool,
    /// CA bundle (PEM) the server's certificate must chain to.
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Our certificate (PEM), for servers that require one (mutual TLS).
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_key: Option<PathBuf>,
    /// The server's name in its certificate (a DNS-ID, sent as SNI);
    /// default: the host of --server (its address is then an IP-ID).
    #[arg(long, value_name = "NAME", global = true)]
    pub sni: Option<String>,
}

impl TlsArgs {
    /// Refuse what cannot work, before connecting.
    pub fn check(&self) -> anyhow::Result<()> {
        let any = self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.sni.is_some();
        if !self.tls {
            if any {
                bail!("--tls-ca, --tls-cert, --tls-key and --sni go with --tls");
            }
            return Ok(());
        }
        if self.tls_ca.is_none() {
            bail!(
                "--tls needs --tls-ca FILE: the CA certificate that issued the server's certificate"
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("--tls-cert and --tls-key go together: the certificate and its private key");
        }
        Ok(())
    }

    /// The server's reference identity: --sni, else the host of `server`
    /// when it is a name, else the address it resolved to.
    pub fn server_name(
        &self,
        server: &str,
        addr: IpAddr,
    ) -> anyhow::Result<tacvs_tls::rustls::pki_types::ServerName<'static>> {
        let host = server.rsplit_once(':').map_or(server, |(h, _)| h).trim_matches(['[', ']']);
        let name = self.sni.as_deref().or((host.parse::<IpAddr>().is_err()).then_some(host));
        tacvs_tls::client::server_name(name, addr).map_err(anyhow::Error::msg)
    }

    /// The client's TLS settings for `server` (as given) at `addr`; None without --tls.
    pub fn client(
        &self,
        server: &str,
        addr: IpAddr,
    ) -> anyhow::Result<Option<tacvs_client::ClientTls>> {
        self.check()?;
        let Some(ca) = self.tls.then_some(self.tls_ca.as_ref()).flatten() else { return Ok(None) };
        let roots = tacvs_tls::client::roots(ca)?;
        let id = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some(tacvs_tls::client::identity(c, k)?),
            _ => None,
        };
        let config = tacvs_tls::client::config(roots, id)?;
        Ok(Some(tacvs_client::ClientTls { config, server_name: self.server_name(server, addr)? }))
    }
}

/// A duration as the documentation writes them: a number and a unit.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("{s:?} is not a duration: write a number and a unit, e.g. 3s, 800ms or 2m")
    })
}

/// `ADDRESS` or `ADDRESS/LEN`: one source address, or a prefix of them.
pub fn source(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{s:?} is not an address or a prefix: write e.g. 127.1.0.7 or 127.1.0.0/16")
    })
}

/// The one address of a `--source` given to something that sends from one.
pub fn single_address(net: IpNet) -> anyhow::Result<IpAddr> {
    if net.prefix_len() != net.max_prefix_len() {
        bail!(
            "--source {net} is a prefix: this command sends from one address (write e.g. {})",
            net.network()
        );
    }
    Ok(net.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_errors_suggest_the_documented_form() {
        assert_eq!(duration("800ms"), Ok(Duration::from_millis(800)));
        assert_eq!(duration("3s"), Ok(Duration::from_secs(3)));
        let e = duration("3").unwrap_err();
        assert!(e.contains("3s") && !e.contains("3sec"), "{e}");
    }

    #[test]
    fn sources_are_an_address_or_a_prefix() {
        assert_eq!(source("10.0.0.7").unwrap().to_string(), "10.0.0.7/32");
        assert_eq!(source("fd00::/120").unwrap().to_string(), "fd00::/120");
        assert!(source("10.0.0.0/33").is_err() && source("bob").is_err());
        assert_eq!(single_address(source("10.0.0.7/32").unwrap()).unwrap().to_string(), "10.0.0.7");
        let e = single_address(source("10.0.0.0/24").unwrap()).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/24 is a prefix"), "{e}");
    }
}
