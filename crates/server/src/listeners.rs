//! Listening sockets, matched to the configuration **by address** across
//! reloads: a reload keeps the socket of every address that stays (its PROXY
//! and trust settings follow the address, whatever its position in the file),
//! binds the addresses that are new, and closes those that are gone. If a new
//! address cannot be bound, the reload is refused and nothing changes.
//!
//! Connections already open keep the settings they were accepted with; a
//! closed listener's open connections run until they end.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tacvs_policy::policy::Listener;
use tokio::task::JoinHandle;

use crate::Shared;

/// What a reload does to the listeners: pure, from the configured addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// (new index, old index): the same address in both.
    pub keep: Vec<(usize, usize)>,
    /// New indices to bind.
    pub add: Vec<usize>,
    /// Old indices to close.
    pub remove: Vec<usize>,
}

/// Match `new` configured addresses to `old` ones. Equal addresses pair up in
/// order (several `IP:0` listeners are told apart by their position among
/// themselves only).
pub fn plan(old: &[SocketAddr], new: &[SocketAddr]) -> Plan {
    let mut used = vec![false; old.len()];
    let mut p = Plan::default();
    for (ni, a) in new.iter().enumerate() {
        match (0..old.len()).find(|&oi| !used[oi] && old[oi] == *a) {
            Some(oi) => {
                used[oi] = true;
                p.keep.push((ni, oi));
            }
            None => p.add.push(ni),
        }
    }
    p.remove = (0..old.len()).filter(|&oi| !used[oi]).collect();
    p
}

/// One listening socket and its accept task.
#[derive(Debug)]
pub(crate) struct Running {
    /// The address as configured (port 0 stays 0).
    pub configured: SocketAddr,
    /// The address bound.
    pub bound: SocketAddr,
    /// PROXY and trust settings, replaced by a reload.
    pub settings: Arc<ArcSwap<Listener>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Close the socket: the accept task ends and drops it.
    pub async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Bind `l.address` (the error says what to do about the usual causes).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<crate::socket::Listening> {
    crate::socket::bind(addr).map_err(|e| bind_error(addr, e))
}

/// `cannot listen on ADDR: ERROR (HINT)`.
pub fn bind_error(addr: SocketAddr, e: io::Error) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            match crate::privilege::dropped_to() {
                Some(user) => format!(
                    "; the server dropped root after start and runs as {user}, which cannot bind \
                 ports below 1024: restart the server to listen there (it binds as root, then \
                 drops again), or grant the binary CAP_NET_BIND_SERVICE (`setcap \
                 cap_net_bind_service=+ep $(command -v tacvs)`) so that a reload can"
                ),
                None => format!(
                    "; ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: start as \
                 root with [server] user = \"tacvs\" (it binds, then runs as that user), or run \
                 `setcap cap_net_bind_service=+ep $(command -v tacvs)` once, or give the service \
                 AmbientCapabilities=CAP_NET_BIND_SERVICE, or listen on a port above 1023 (e.g. \
                 {})",
                    SocketAddr::new(addr.ip(), 4949)
                ),
            }
        }
        io::ErrorKind::AddrInUse => format!(
            "; another process listens there (`ss -ltnp 'sport = :{}'` shows which)",
            addr.port()
        ),
        io::ErrorKind::AddrNotAvailable => {
            "; no interface of this machine has that address".to_owned()
        }
        _ => String::new(),
    };
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}{hint}"))
}

/// Start accepting on `listener` with `settings`.
pub(crate) fn run(
    shared: &Arc<Shared>,
    listener: crate::socket::Listening,
    settings: Listener,
) -> io::Result<Running> {
    let bound = listener.local_addr()?;
    let configured = settings.address;
    tracing::info!(
        addr = %bound,
        proxy_protocol = %settings.proxy,
        trusted_proxies = %trusted(&settings),
        tls = %tls(&settings),
        "listening"
    );
    let settings = Arc::new(ArcSwap::from_pointee(settings));
    let task = tokio::spawn(accept_loop(shared.clone(), listener, settings.clone()));
    Ok(Running { configured, bound, settings, task })
}

/// The TLS settings, for logs: `off`, or the certificate and identity.
pub(crate) fn tls(l: &Listener) -> String {
    match &l.tls {
        None => "off".into(),
        Some(t) => format!(
            "TLS 1.3; certificate {:?} valid until {}; identity by {}; client certificates {}; {}",
            t.certificate.subject,
            t.certificate.not_after,
            t.identity,
            match t.client_certificate {
                tacvs_policy::config::ClientCertificateMode::Required => "required",
                tacvs_policy::config::ClientCertificateMode::Optional => "optional",
                tacvs_policy::config::ClientCertificateMode::None => "not asked for",
            },
            t.files
        ),
    }
}

/// The trusted proxies, for logs.
pub(crate) fn trusted(l: &Listener) -> String {
    if l.trusted_proxies.is_empty() {
        return "none".into();
    }
    l.trusted_proxies.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: crate::socket::Listening,
    settings: Arc<ArcSwap<Listener>>,
) {
    let mut shutdown = shared.shutdown.clone();
    // One wait for the signal for the loop's life: a new one per connection
    // would join and leave the signal's waiter list (a lock each) per accept.
    let stopping = shutdown.changed();
    tokio::pin!(stopping);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut stopping => return,
        };
        let (stream, peer) = match accepted {
            Ok(v) => {
                backoff = Duration::from_millis(5);
                v
            }
            Err(e) => {
                // EMFILE and friends: wait and retry rather than spin.
                tracing::warn!(error = %e, retry_in = %humantime::format_duration(backoff), "accept failed");
                metrics::counter!("tacvs_accept_errors_total").increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        crate::admit_connection(&shared, stream, peer, settings.load_full());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reordered_addresses_keep_their_sockets() {
        let p =
            plan(&[a("10.0.0.1:49"), a("10.0.0.1:4949")], &[a("10.0.0.1:4949"), a("10.0.0.1:49")]);
        assert_eq!(p, Plan { keep: vec![(0, 1), (1, 0)], add: vec![], remove: vec![] });
    }

    #[test]
    fn new_addresses_are_bound_and_missing_ones_closed() {
        let p = plan(&[a("10.0.0.1:49"), a("10.0.0.2:49")], &[a("10.0.0.2:49"), a("10.0.0.3:49")]);
        assert_eq!(p, Plan { keep: vec![(0, 1)], add: vec![1], remove: vec![0] });
    }

    #[test]
    fn equal_addresses_pair_up_in_order() {
        let z = a("127.0.0.1:0");
        let p = plan(&[z, z], &[z]);
        assert_eq!(p, Plan { keep: vec![(0, 0)], add: vec![], remove: vec![1] });
    }

    #[test]
    fn a_privileged_port_refused_says_how_to_allow_it() {
        let e = bind_error(a("0.0.0.0:49"), io::Error::from(io::ErrorKind::PermissionDenied));
        let m = e.to_string();
        assert!(m.starts_with("cannot listen on 0.0.0.0:49: "), "{m}");
        assert!(m.contains("CAP_NET_BIND_SERVICE") && m.contains("setcap"), "{m}");
        let e = bind_error(a("0.0.0.0:4949"), io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!e.to_string().contains("CAP_NET_BIND_SERVICE"), "only below 1024");
    }
}
