//! A run's settings, and what makes one impossible before it starts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tacvs_proto::Key;
use thiserror::Error;

use crate::profile::{Profile, Style};

/// Offered load.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Requests per second in aggregate.
    Open(f64),
    /// Concurrent requesters, each sending as soon as its last request ends.
    Closed(usize),
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to send.
    pub target: SocketAddr,
    /// Shared key.
    pub key: Key,
    /// Number of devices.
    pub devices: usize,
    /// Device addresses are taken from this prefix, in order.
    pub source: IpNet,
    /// Sockets open at once, at most.
    pub max_sockets: usize,
    /// Workload.
    pub profile: Profile,
    /// Load.
    pub load: Load,
    /// Measured time.
    pub duration: Duration,
    /// Time before measuring.
    pub warmup: Duration,
    /// Per-request timeout (connect, each reply).
    pub timeout: Duration,
    /// Closed loop, single-connect: sessions in flight per connection.
    pub pipeline: usize,
    /// Write one line per accounting record the server acknowledged
    /// (`DEVICE RECORD ARGS...`, as [`ack_key`](crate::request::ack_key) forms it), so a harness can
    /// prove each is in a journal.
    pub acked: Option<std::path::PathBuf>,
    /// TACACS+ over TLS 1.3 (RFC 9887) instead of the key's obfuscation.
    pub tls: Option<SimTls>,
}

/// How the simulated devices speak TLS.
#[derive(Clone)]
pub struct SimTls {
    /// The CA bundle the server's certificate must chain to.
    pub roots: Arc<tacvs_tls::rustls::RootCertStore>,
    /// The server's reference identity (RFC 9525).
    pub server_name: tacvs_tls::rustls::pki_types::ServerName<'static>,
    /// The devices' certificates.
    pub devices: DeviceCerts,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

/// Which certificate each device presents.
#[derive(Debug, Clone)]
pub enum DeviceCerts {
    /// None (the server does not ask for one).
    None,
    /// One certificate and key for every device (PEM).
    Shared(tacvs_tls::certs::Pem),
    /// One per device, minted at start by this CA (PEM certificate and key),
    /// with the device's address as subjectAltName iPAddress and `dev-N` as
    /// its name.
    PerDevice(tacvs_tls::certs::Pem),
}

/// A run that could not start.
#[derive(Debug, Error)]
pub enum SimError {
    /// The source prefix holds fewer addresses than devices.
    #[error("--source {prefix} has {have} addresses, fewer than --devices {devices}")]
    SourceTooSmall {
        /// Prefix.
        prefix: IpNet,
        /// Addresses available.
        have: u128,
        /// Devices asked for.
        devices: usize,
    },
    /// Single-connect holds a socket per device.
    #[error(
        "single-connect keeps one socket per device: --devices {devices} exceeds --max-sockets \
            {max}; lower --devices or raise --max-sockets (at most the open-file hard limit, \
            `ulimit -Hn`: {hard_limit})"
    )]
    TooManyPersistent {
        /// Devices.
        devices: usize,
        /// Socket cap.
        max: usize,
        /// This process's open-file hard limit.
        hard_limit: u64,
    },
    /// Nothing to do.
    #[error("{0}")]
    Invalid(String),
}

impl SimConfig {
    /// Refuse what cannot run: no devices, too few source addresses, more
    /// persistent connections than sockets, a ledger with pipelining.
    pub fn check(&self) -> Result<(), SimError> {
        if self.devices == 0 {
            return Err(SimError::Invalid("--devices must be at least 1".into()));
        }
        if self.acked.is_some() && self.pipeline > 1 {
            return Err(SimError::Invalid(
                "--acked needs the session driver: drop --pipeline".into(),
            ));
        }
        let have = match self.source {
            IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
            IpNet::V6(n) => 1u128.checked_shl(128 - u32::from(n.prefix_len())).unwrap_or(u128::MAX),
        };
        if have < self.devices as u128 {
            return Err(SimError::SourceTooSmall {
                prefix: self.source,
                have,
                devices: self.devices,
            });
        }
        if self.profile.style == Style::SingleConnect && self.devices > self.max_sockets {
            return Err(SimError::TooManyPersistent {
                devices: self.devices,
                max: self.max_sockets,
                hard_limit: crate::sys::open_file_limit().1,
            });
        }
        Ok(())
    }
}

/// The `n`th address of a prefix.
pub fn nth_address(net: IpNet, n: u128) -> Option<IpAddr> {
    match net {
        IpNet::V4(v4) => {
            let size = 1u128 << (32 - v4.prefix_len());
            (n < size)
                .then(|| IpAddr::from(((u32::from(v4.network()) as u128 + n) as u32).to_be_bytes()))
        }
        IpNet::V6(v6) => {
            let bits = 128 - u32::from(v6.prefix_len());
            let size = if bits >= 128 { u128::MAX } else { 1u128 << bits };
            (n < size).then(|| IpAddr::from((u128::from(v6.network()) + n).to_be_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_a_prefix() {
        let n: IpNet = "127.1.0.0/16".parse().unwrap();
        assert_eq!(nth_address(n, 0), Some("127.1.0.0".parse().unwrap()));
        assert_eq!(nth_address(n, 257), Some("127.1.1.1".parse().unwrap()));
        assert_eq!(nth_address(n, 65536), None);
        let v6: IpNet = "fd00::/120".parse().unwrap();
        assert_eq!(nth_address(v6, 255), Some("fd00::ff".parse().unwrap()));
    }

    #[test]
    fn impossible_runs_are_refused_before_they_start() {
        let ok = SimConfig {
            target: "127.0.0.1:49".parse().unwrap(),
            key: Key::new("k"),
            devices: 256,
            source: "127.1.0.0/24".parse().unwrap(),
            max_sockets: 256,
            profile: Profile::builtin("automation").unwrap(),
            load: Load::Closed(4),
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(1),
            pipeline: 1,
            acked: None,
            tls: None,
        };
        assert!(ok.check().is_ok());
        let no_devices = SimConfig { devices: 0, ..ok.clone() };
        assert!(matches!(no_devices.check(), Err(SimError::Invalid(_))));
        let small = SimConfig { devices: 257, max_sockets: 1000, ..ok.clone() };
        assert!(matches!(small.check(), Err(SimError::SourceTooSmall { have: 256, .. })));
        let mut persistent = SimConfig { max_sockets: 100, ..ok.clone() };
        persistent.profile.style = Style::SingleConnect;
        let e = persistent.check().unwrap_err().to_string();
        assert!(e.contains("--max-sockets 100") && e.contains("ulimit -Hn"), "{e}");
        let ledger = SimConfig { pipeline: 4, acked: Some("/tmp/x".into()), ..ok };
        assert!(ledger.check().is_err());
    }
}
