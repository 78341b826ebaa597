//! # tacvs-server
//!
//! The TACACS+ AAA service: listeners (IPv4 and IPv6, optional PROXY intake from
//! trusted directors), one task per connection driving the sans-IO
//! [`tacvs_proto::ServerConnection`], authentication against local users with a
//! bounded hashing pool, a verified-credential cache and lockout, authorization
//! by the compiled policy, and accounting into a journal that is fsync'd before
//! SUCCESS is sent. Configuration reloads atomically ([`ServerHandle::reload`]).

pub mod authn;
pub mod cache;
mod conn;
pub mod journal;
pub mod lockout;
pub mod logfmt;
pub mod passwords;
pub mod proxy;
pub mod syslog;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tacvs_policy::{ConfigErrors, Policy};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::authn::HashPool;
use crate::cache::{CacheSettings, CredCache};
use crate::journal::{Journal, JournalConfig};
use crate::lockout::Lockout;

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    policy: ArcSwap<Policy>,
    journal: Journal,
    hashes: HashPool,
    cache: Mutex<CredCache>,
    lockout: Mutex<Lockout>,
    passwords: passwords::PasswordStore,
    conns: AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::Relaxed)
    }

    /// Password-hash verifications started so far (real or decoy).
    pub fn hash_verifications(&self) -> u64 {
        self.hashes.verifications()
    }

    /// The lockout state (short critical sections only).
    pub fn lockout(&self) -> MutexGuard<'_, Lockout> {
        self.lockout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The credential cache (short critical sections only).
    pub fn cache(&self) -> MutexGuard<'_, CredCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// Bound listener addresses, in configuration order (port 0 resolved).
    pub local_addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    config_path: Option<PathBuf>,
}

/// Start serving `policy`. `config_path` is re-read by [`ServerHandle::reload`].
pub async fn start(policy: Policy, config_path: Option<PathBuf>) -> io::Result<ServerHandle> {
    let jcfg = JournalConfig {
        dir: policy.accounting.directory.clone(),
        rotate_size: policy.accounting.rotate_size.0,
        rotate_interval: policy.accounting.rotate_interval.0,
    };
    let committed = match &policy.accounting.syslog {
        Some(conf) => {
            let target = syslog::Target::parse(conf.target.get_ref())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let settings = syslog::SyslogSettings {
                target,
                facility: tacvs_policy::policy::facility_code(conf.facility.get_ref())
                    .unwrap_or(22),
                app_name: conf.app_name.clone(),
                hostname: policy.server_name.clone(),
            };
            let (tx, rx) = tokio::sync::mpsc::channel(16_384);
            tracing::info!(syslog_target = %conf.target.get_ref(), "forwarding accounting records to syslog");
            tokio::spawn(syslog::run(settings, rx));
            Some(tx)
        }
        None => None,
    };
    let (journal, recovery, _writer) = Journal::open(jcfg, committed).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot open the accounting journal in {}: {e}",
                policy.accounting.directory.display()
            ),
        )
    })?;
    if recovery.torn_bytes_cut > 0 {
        tracing::warn!(file = %recovery.file.display(), bytes = recovery.torn_bytes_cut, "journal ended in a torn record (crash during a write); cut it off. That record was never acknowledged");
    }
    tracing::info!(file = %recovery.file.display(), "accounting journal open");
    let a = &policy.auth;
    let passwords = passwords::PasswordStore::open(&a.password_store)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let shared = Arc::new(Shared {
        hashes: HashPool::new(a.hash_workers, a.hash_queue),
        cache: Mutex::new(CredCache::new(CacheSettings::from_conf(&a.cache))),
        lockout: Mutex::new(Lockout::new(lockout::Settings::from_conf(&a.lockout))),
        passwords,
        journal,
        conns: AtomicUsize::new(0),
        per_source: Mutex::new(HashMap::new()),
        shutdown,
        policy: ArcSwap::from_pointee(policy),
    });
    let policy = shared.policy();
    let mut local_addrs = Vec::new();
    let mut accept_tasks = Vec::new();
    for (i, l) in policy.listeners.iter().enumerate() {
        let socket = if l.address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(l.address).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e} (is another server running there?)", l.address),
            )
        })?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, proxy_protocol = ?l.proxy, "listening");
        local_addrs.push(addr);
        accept_tasks.push(tokio::spawn(accept_loop(shared.clone(), listener, i)));
    }
    metrics::gauge!("tacvs_config_users").set(policy.user_count() as f64);
    Ok(ServerHandle { local_addrs, shared, shutdown_tx, accept_tasks, config_path })
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, index: usize) {
    let mut shutdown = shared.shutdown.clone();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(v) => {
                backoff = Duration::from_millis(5);
                v
            }
            Err(e) => {
                // EMFILE and friends: wait and retry rather than spin.
                tracing::warn!(error = %e, retry_in = ?backoff, "accept failed");
                metrics::counter!("tacvs_accept_errors_total").increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let max = shared.policy.load().limits.max_connections;
        if shared.conns.fetch_add(1, Ordering::AcqRel) >= max {
            shared.conns.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("tacvs_rejects_total", "reason" => "max_connections").increment(1);
            tracing::warn!(%peer, max, "connection refused: max_connections reached");
            drop(stream);
            continue;
        }
        metrics::gauge!("tacvs_connections_active").increment(1.0);
        metrics::counter!("tacvs_connections_total").increment(1);
        let shared = shared.clone();
        tokio::spawn(async move {
            conn::serve(&shared, stream, peer, index).await;
            shared.conns.fetch_sub(1, Ordering::AcqRel);
            metrics::gauge!("tacvs_connections_active").decrement(1.0);
        });
    }
}

impl ServerHandle {
    /// Shared state (policy, counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Re-read the configuration file and swap it in atomically. On error the
    /// running configuration stays and the errors are returned (and logged).
    /// Keys, users, groups, rules, limits and the lockout and cache settings
    /// apply to new sessions at once, including on open single-connect
    /// connections.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let Some(path) = self.config_path.clone() else {
            return Ok(());
        };
        let t = Instant::now();
        // Compiling reads key files and computes decoy hashes: off the async threads.
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || tacvs_policy::load(&p))
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))?;
        match loaded {
            Ok(p) => {
                self.swap(p);
                tracing::info!(file = %path.display(), took = %humantime::format_duration(t.elapsed()), "configuration reloaded");
                metrics::counter!("tacvs_reloads_total", "result" => "ok").increment(1);
                Ok(())
            }
            Err(e) => {
                tracing::error!(file = %path.display(), errors = %e, "reload failed; keeping the running configuration");
                metrics::counter!("tacvs_reloads_total", "result" => "error").increment(1);
                Err(ReloadError::Config(e))
            }
        }
    }

    /// Swap in an already compiled policy.
    pub fn swap(&self, policy: Policy) {
        metrics::gauge!("tacvs_config_users").set(policy.user_count() as f64);
        {
            let mut cache = self.shared.cache();
            cache.set_settings(CacheSettings::from_conf(&policy.auth.cache));
            self.shared.lockout().set_settings(lockout::Settings::from_conf(&policy.auth.lockout));
            self.shared.policy.store(Arc::new(policy));
            // Passwords may have changed: forget verified credentials, and refuse
            // to cache what a verification that began before now finds.
            cache.clear();
        }
    }

    /// Stop accepting, let connections finish their sessions for up to `drain`,
    /// then return (open connections are then dropped).
    pub async fn shutdown(self, drain: Duration) {
        let _ = self.shutdown_tx.send(true);
        for t in &self.accept_tasks {
            t.abort();
        }
        let deadline = Instant::now() + drain;
        while self.shared.connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.shared.connections();
        if left > 0 {
            tracing::warn!(connections = left, "shutdown: drain time is up; closing the rest");
        }
    }
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not compile.
    #[error("{0}")]
    Config(ConfigErrors),
    /// Something failed inside the server.
    #[error("reload failed: {0}")]
    Internal(String),
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) as plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    tacvs_policy::policy::canonical(ip)
}
