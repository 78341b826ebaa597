//! # tacvs-server
//!
//! The TACACS+ AAA service (RFC 8907) on tokio. What it offers:
//!
//! - [`start`] a server on a compiled [`Policy`] and get a [`ServerHandle`]:
//!   its bound addresses, [`ServerHandle::reload`] (atomic; listeners matched by
//!   address), [`ServerHandle::shutdown`] (drain), the lockout view and unlock.
//! - [`signals::Signals`]: SIGHUP reloads, SIGTERM / SIGINT drain.
//! - [`journal`]: the accounting journal (fsync'd before SUCCESS) and its reader.
//! - [`logfmt`]: log formatting a peer cannot forge (used by the `tacvs` binary).
//! - Users from directories ([`directory`], `[[ldap]]`) beside the file's,
//!   behind one [`backend::CredentialBackend`] trait, with the choice of
//!   backend and the meaning of an outage decided by pure functions
//!   ([`backend::plan`], [`backend::settle`]); one-time passwords ([`otp`]).
//!
//! How it is built: pure decisions with time and bytes as inputs —
//! [`lockout`], [`cache`], [`accounts`], [`backend`], [`otp`],
//! [`listeners::plan`], and the protocol machine
//! [`tacvs_proto::ServerConnection`] — driven by thin I/O modules: one task per
//! connection (`conn`), a bounded hashing pool ([`authn`]), one journal writer
//! thread, an optional syslog sink, PROXY intake ([`proxy`]).

pub mod accounts;
pub mod authn;
pub mod author;
pub mod backend;
pub mod cache;
mod conn;
pub mod control;
pub mod deadline;
pub mod directory;
pub mod journal;
mod jsonline;
pub mod listeners;
pub mod lockout;
pub mod logfmt;
pub mod login;
pub mod logjson;
pub mod otp;
pub mod passwords;
pub mod privilege;
pub mod proxy;
pub mod sessions;
pub mod signals;
mod socket;
pub mod status;
pub mod syslog;
mod tls;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tacvs_policy::policy::Listener;
use tacvs_policy::{ConfigErrors, Policy};
use tokio::sync::watch;

use crate::authn::HashPool;
use crate::cache::{CacheSettings, CredCache};
use crate::journal::{Journal, JournalConfig};
use crate::lockout::Lockout;

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    policy: ArcSwap<Policy>,
    journal: Journal,
    authz_log: Option<journal::AuthzLog>,
    hashes: HashPool,
    cache: Mutex<CredCache>,
    lockout: Mutex<Lockout>,
    passwords: passwords::PasswordStore,
    directories: ArcSwap<directory::Directories>,
    accounts: Mutex<accounts::AccountCache>,
    otp_store: ArcSwap<otp::OtpStore>,
    otp_guard: Mutex<otp::ReplayGuard>,
    directory_ops: Arc<AtomicU64>,
    conns: AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    sessions: sessions::Registry,
    shutdown: watch::Receiver<bool>,
    handshakes: tls::Handshakes,
    /// For the status page: requests answered, by type and result.
    requests: status::RequestCounts,
    /// For the status page: the listeners in force.
    listening: Mutex<Vec<status::ListenerView>>,
    /// For the status page: when the last reload happened and how it went.
    last_reload: Mutex<Option<(Instant, bool, String)>>,
    started: Instant,
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

    /// TLS handshakes in progress.
    pub fn handshakes_in_progress(&self) -> usize {
        self.handshakes.in_progress()
    }

    /// Open connections, for `tacvs server sessions`.
    pub fn sessions(&self) -> &sessions::Registry {
        &self.sessions
    }

    /// The credential cache (short critical sections only).
    pub fn cache(&self) -> MutexGuard<'_, CredCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directories of the configuration in force.
    pub fn directories(&self) -> Arc<directory::Directories> {
        self.directories.load_full()
    }

    /// Directory users as last read (short critical sections only).
    pub fn accounts(&self) -> MutexGuard<'_, accounts::AccountCache> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The one-time password secrets file, as last read.
    pub fn otp_store(&self) -> Arc<otp::OtpStore> {
        self.otp_store.load_full()
    }

    /// The one-time codes already used (short critical sections only).
    pub fn otp_guard(&self) -> MutexGuard<'_, otp::ReplayGuard> {
        self.otp_guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Directory operations (searches and binds) sent since start.
    pub fn directory_operations(&self) -> u64 {
        self.directory_ops.load(Ordering::Relaxed)
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// Bound listener addresses at start, in configuration order (port 0
    /// resolved); [`ServerHandle::listening`] has them after reloads.
    pub local_addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    /// In configuration order; the lock also serialises reloads.
    listeners: tokio::sync::Mutex<Vec<listeners::Running>>,
    control: Option<(PathBuf, tokio::task::JoinHandle<()>)>,
    config_path: Option<PathBuf>,
}

/// Start serving `policy`. `config_path` is re-read by [`ServerHandle::reload`].
pub async fn start(policy: Policy, config_path: Option<PathBuf>) -> io::Result<ServerHandle> {
    // Refuse before touching anything when `[server] user` cannot be honoured.
    let privilege = privilege::plan(policy.run_as.as_ref(), nix::unistd::geteuid().as_raw());
    if let privilege::Plan::Refuse(why) = &privilege {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, why.clone()));
    }
    if let (privilege::Plan::Drop, Some(r)) = (&privilege, &policy.run_as) {
        let store = policy.auth.password_store.parent().unwrap_or(std::path::Path::new(""));
        privilege::prepare_dirs(r, &[&policy.accounting.directory, store])?;
    }
    log_warnings(&policy);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let policy = Arc::new(policy);
    let directory_ops = Arc::new(AtomicU64::new(0));
    let directories = directory::Directories::new(policy.clone(), directory_ops.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for d in &policy.directories {
        let urls: Vec<&str> = d.urls.iter().map(|u| u.url.as_str()).collect();
        tracing::info!(
            directory = %d.name,
            servers = %urls.join(" "),
            groups_mapped = d.group_map.len(),
            "directory configured (connected on first use)"
        );
    }
    // Everything privileged first (ports below 1024, the configuration's
    // files), then drop root (`[server] user`), then open the password store
    // and the journal (their directories belong to that user, who could have
    // put a symbolic link there for root to follow), then accept.
    let mut bound = Vec::new();
    for l in &policy.listeners {
        bound.push((listeners::bind(l.address)?, l.clone()));
    }
    let control_listener = match &policy.control_socket {
        Some(path) => Some((path.clone(), control::bind(path)?)),
        None => None,
    };
    if let (privilege::Plan::Drop, Some(r)) = (&privilege, &policy.run_as) {
        if let Some((path, _)) = &control_listener {
            // The user must be able to remove it at shutdown and to use it.
            std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot hand {} to {}: {e}", path.display(), r.user),
                )
            })?;
        }
        privilege::drop_to(r)?;
    } else if privilege == privilege::Plan::AlreadyThere {
        tracing::info!(user = ?policy.run_as.as_ref().map(|r| &r.user), "already running as the configured user");
    }
    let passwords = passwords::PasswordStore::open(&policy.auth.password_store)
        .map_err(|e| store_error(e, "password store"))?;
    // Read as the user on every reload too.
    let otp_store = otp::OtpStore::open(&policy.otp.secrets_file)
        .map_err(|e| store_error(e, "one-time password secrets file"))?;
    let jcfg = JournalConfig {
        dir: policy.accounting.directory.clone(),
        rotate_size: policy.accounting.rotate_size.0,
        rotate_interval: policy.accounting.rotate_interval.0,
        prefix: journal::ACCT,
        sync: true,
    };
    let authz_log = if policy.accounting.authorization_log {
        let (log, _) =
            journal::AuthzLog::open(jcfg.clone(), policy.server_name.clone()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot open the authorization log in {}: {e}{}",
                        policy.accounting.directory.display(),
                        journal_hint(&e)
                    ),
                )
            })?;
        Some(log)
    } else {
        None
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
                "cannot open the accounting journal in {}: {e}{}",
                policy.accounting.directory.display(),
                journal_hint(&e)
            ),
        )
    })?;
    if recovery.torn_bytes_cut > 0 {
        tracing::warn!(
            file = %recovery.file.display(),
            bytes = recovery.torn_bytes_cut,
            "journal ended in a torn record (crash during a write); cut it off. That record was never acknowledged"
        );
    }
    tracing::info!(file = %recovery.file.display(), "accounting journal open");
    let a = &policy.auth;
    let shared = Arc::new(Shared {
        hashes: HashPool::new(a.hash_workers, a.hash_queue),
        cache: Mutex::new(CredCache::new(CacheSettings::from_conf(&a.cache))),
        lockout: Mutex::new(Lockout::new(lockout::Settings::from_conf(&a.lockout))),
        passwords,
        directories: ArcSwap::from_pointee(directories),
        accounts: Mutex::new(accounts::AccountCache::new(accounts::Settings::from_conf(&a.cache))),
        otp_store: ArcSwap::from_pointee(otp_store),
        otp_guard: Mutex::new(otp::ReplayGuard::new(a.cache.max_entries)),
        directory_ops,
        journal,
        authz_log,
        conns: AtomicUsize::new(0),
        per_source: Mutex::new(HashMap::new()),
        sessions: sessions::Registry::default(),
        shutdown,
        handshakes: tls::Handshakes::default(),
        requests: status::RequestCounts::default(),
        listening: Mutex::default(),
        last_reload: Mutex::default(),
        started: Instant::now(),
        policy: ArcSwap::new(policy),
    });
    let policy = shared.policy();
    let mut running = Vec::new();
    for (listener, l) in bound {
        running.push(listeners::run(&shared, listener, l)?);
    }
    let local_addrs = running.iter().map(|r| r.bound).collect();
    shared.set_listening(&running);
    let control = match control_listener {
        Some((path, l)) => {
            tracing::info!(path = %path.display(), "control socket (mode 0600) for tacvs \
                server lockouts, unlock, sessions");
            Some((path.clone(), tokio::spawn(control::run(shared.clone(), l, path))))
        }
        None => None,
    };
    metrics::gauge!("tacvs_config_users").set(policy.user_count() as f64);
    Ok(ServerHandle {
        local_addrs,
        shared,
        shutdown_tx,
        listeners: tokio::sync::Mutex::new(running),
        control,
        config_path,
    })
}

/// A store file that failed to load at start, with what to do when the
/// user the server runs as may not read it.
fn store_error(e: passwords::StoreError, what: &str) -> io::Error {
    let hint = match (&e, privilege::dropped_to()) {
        (passwords::StoreError::Read { source, .. }, Some(user))
            if source.kind() == io::ErrorKind::PermissionDenied =>
        {
            format!(
                " (the server reads its {what} after dropping root, as {user}: give {user} \
                 the file, and no symbolic link in its place)"
            )
        }
        _ => String::new(),
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("{e}{hint}"))
}

/// What to do about a journal that cannot be opened after dropping root.
fn journal_hint(e: &io::Error) -> String {
    match (e.kind(), privilege::dropped_to()) {
        (io::ErrorKind::PermissionDenied, Some(user)) => format!(
            " (the server opens its journal after dropping root, as {user}: give {user} the \
             directory and the files in it, and no symbolic links there)"
        ),
        _ => String::new(),
    }
}

/// A connection was accepted: count it against `max_connections` before any
/// work, then serve it on its own task.
pub(crate) fn admit_connection(
    shared: &Arc<Shared>,
    stream: socket::Socket,
    peer: SocketAddr,
    listener: Arc<Listener>,
) {
    let max = shared.policy.load().limits.max_connections;
    if shared.conns.fetch_add(1, Ordering::AcqRel) >= max {
        shared.conns.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("tacvs_rejects_total", "reason" => "max_connections").increment(1);
        tracing::warn!(%peer, max, "connection refused: max_connections reached");
        return;
    }
    let (active, total) = connection_metrics();
    active.increment(1.0);
    total.increment(1);
    let shared = shared.clone();
    // Boxed: the connection's state machine is large, and the runtime moves
    // a spawned future by value (into its task, and over it when it ends);
    // a box moves once, at birth.
    tokio::spawn(Box::pin(async move {
        conn::serve(&shared, stream, peer, &listener).await;
        shared.conns.fetch_sub(1, Ordering::AcqRel);
        active.decrement(1.0);
    }));
}

/// `tacvs_connections_active` and `tacvs_connections_total`, registered on
/// the first connection (a registry look-up per connection otherwise).
fn connection_metrics() -> (&'static metrics::Gauge, &'static metrics::Counter) {
    static ACTIVE: std::sync::OnceLock<metrics::Gauge> = std::sync::OnceLock::new();
    static TOTAL: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    (
        ACTIVE.get_or_init(|| metrics::gauge!("tacvs_connections_active")),
        TOTAL.get_or_init(|| metrics::counter!("tacvs_connections_total")),
    )
}

impl ServerHandle {
    /// Shared state (policy, counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The addresses listened on now, in configuration order.
    pub async fn listening(&self) -> Vec<SocketAddr> {
        self.listeners.lock().await.iter().map(|r| r.bound).collect()
    }

    /// Re-read the configuration file and apply it ([`apply`](Self::apply)).
    /// On error the running configuration stays and the errors are returned
    /// (and logged).
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let Some(path) = self.config_path.clone() else {
            return Ok(());
        };
        let t = Instant::now();
        // Compiling reads key files and computes decoy hashes: off the async threads.
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || tacvs_policy::load(&p))
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))
            .and_then(|r| r.map_err(ReloadError::Config));
        let result = match loaded {
            Ok(p) => self.apply(p).await,
            Err(e) => Err(e),
        };
        let said = match &result {
            Ok(()) => "the new configuration is in force".to_owned(),
            Err(e) => e.to_string(),
        };
        *self.shared.last_reload.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), result.is_ok(), said));
        match &result {
            Ok(()) => {
                tracing::info!(
                    file = %path.display(),
                    took = %humantime::format_duration(t.elapsed()),
                    "configuration reloaded"
                );
                metrics::counter!("tacvs_reloads_total", "result" => "ok").increment(1);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), errors = %e, "reload refused; the running configuration stays");
                metrics::counter!("tacvs_reloads_total", "result" => "error").increment(1);
            }
        }
        result
    }

    /// Put a compiled policy in force, atomically. Keys, users, groups, rules,
    /// limits and the lockout and cache settings apply to new sessions at once,
    /// including on open single-connect connections. Listeners are matched by
    /// address (see [`listeners`]): a new address that cannot be bound refuses
    /// the whole change. Settings read only at start (journal, syslog, metrics,
    /// hash pool, password store) are logged as needing a restart.
    pub async fn apply(&self, policy: Policy) -> Result<(), ReloadError> {
        let mut running = self.listeners.lock().await;
        let old: Vec<SocketAddr> = running.iter().map(|r| r.configured).collect();
        let new: Vec<SocketAddr> = policy.listeners.iter().map(|l| l.address).collect();
        let plan = listeners::plan(&old, &new);
        // Bind what is new first: if that fails nothing has changed yet.
        let mut bound = Vec::new();
        for &ni in &plan.add {
            bound.push((ni, listeners::bind(new[ni]).map_err(ReloadError::Listen)?));
        }
        log_warnings(&policy);
        for what in restart_needed(&self.shared.policy(), &policy) {
            tracing::warn!(
                setting = what,
                "changed in the file, but read only at start: restart the server to apply it"
            );
        }
        let settings: Vec<Listener> = policy.listeners.clone();
        metrics::gauge!("tacvs_config_users").set(policy.user_count() as f64);
        let policy = Arc::new(policy);
        // Directories and one-time secrets are checked before anything changes.
        let directories =
            directory::Directories::new(policy.clone(), self.shared.directory_ops.clone())
                .map_err(ReloadError::Identity)?;
        let otp_store = otp::OtpStore::open(&policy.otp.secrets_file)
            .map_err(|e| ReloadError::Identity(e.to_string()))?;
        {
            let mut cache = self.shared.cache();
            let mut accounts = self.shared.accounts();
            cache.set_settings(CacheSettings::from_conf(&policy.auth.cache));
            accounts.set_settings(accounts::Settings::from_conf(&policy.auth.cache));
            self.shared.lockout().set_settings(lockout::Settings::from_conf(&policy.auth.lockout));
            self.shared.directories.store(Arc::new(directories));
            self.shared.otp_store.store(Arc::new(otp_store));
            self.shared.policy.store(policy);
            // Passwords and groups may have changed: forget verified
            // credentials and directory users, and refuse to cache what a
            // check that began before now finds.
            cache.clear();
            accounts.clear();
        }
        let mut slots: Vec<Option<listeners::Running>> = running.drain(..).map(Some).collect();
        let mut next: Vec<Option<listeners::Running>> = (0..new.len()).map(|_| None).collect();
        for &(ni, oi) in &plan.keep {
            let r = slots[oi].take().expect("each old listener is kept once");
            let (was, now) = (r.settings.load_full(), &settings[ni]);
            if was.proxy != now.proxy || was.trusted_proxies != now.trusted_proxies {
                tracing::info!(
                    address = %r.bound,
                    proxy_protocol = %now.proxy,
                    trusted_proxies = %listeners::trusted(now),
                    "listener settings changed (new connections)"
                );
            }
            if was.tls.is_some() || now.tls.is_some() {
                // Certificates, keys, CAs and CRLs are re-read by every reload.
                tracing::info!(address = %r.bound, tls = %listeners::tls(now), "TLS settings \
                    reloaded (new connections)");
            }
            r.settings.store(Arc::new(now.clone()));
            next[ni] = Some(r);
        }
        for (ni, listener) in bound {
            let r = listeners::run(&self.shared, listener, settings[ni].clone())
                .map_err(ReloadError::Listen)?;
            next[ni] = Some(r);
        }
        for r in slots.into_iter().flatten() {
            tracing::info!(address = %r.bound, "stopped listening (removed from the \
                configuration); connections already open continue");
            r.close().await;
        }
        *running = next.into_iter().flatten().collect();
        self.shared.set_listening(&running);
        Ok(())
    }

    /// Stop accepting, let connections finish their sessions for up to `drain`,
    /// then return (open connections are then dropped).
    pub async fn shutdown(mut self, drain: Duration) {
        let _ = self.shutdown_tx.send(true);
        if let Some((path, task)) = self.control.take() {
            task.abort();
            let _ = task.await;
            let _ = std::fs::remove_file(path);
        }
        for r in self.listeners.lock().await.drain(..) {
            r.close().await;
        }
        let deadline = Instant::now() + drain;
        while self.shared.connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.shared.connections();
        if left > 0 {
            tracing::warn!(connections = left, "shutdown: drain time is up; closing the rest");
        }
        if let Some(log) = &self.shared.authz_log {
            log.flush();
        }
    }
}

fn log_warnings(p: &Policy) {
    for w in &p.warnings {
        tracing::warn!(warning = %w, "configuration");
    }
}

/// Settings that differ between `old` and `new` but are read only at start.
pub fn restart_needed(old: &Policy, new: &Policy) -> Vec<&'static str> {
    let (a, b) = (&old.accounting, &new.accounting);
    let syslog = |s: &Option<tacvs_policy::config::SyslogConf>| {
        s.as_ref()
            .map(|c| (c.target.get_ref().clone(), c.facility.get_ref().clone(), c.app_name.clone()))
    };
    let mut out = Vec::new();
    let mut check = |changed: bool, what| {
        if changed {
            out.push(what);
        }
    };
    check(a.directory != b.directory, "[accounting] directory");
    check(a.rotate_size != b.rotate_size, "[accounting] rotate_size");
    check(a.rotate_interval != b.rotate_interval, "[accounting] rotate_interval");
    check(syslog(&a.syslog) != syslog(&b.syslog), "[accounting.syslog]");
    check(a.authorization_log != b.authorization_log, "[accounting] authorization_log");
    check(old.metrics != new.metrics, "[metrics] listen");
    check(old.control_socket != new.control_socket, "[server] control_socket");
    check(old.run_as != new.run_as, "[server] user / group");
    check(old.auth.hash_workers != new.auth.hash_workers, "[authentication] hash_workers");
    check(old.auth.hash_queue != new.auth.hash_queue, "[authentication] hash_queue");
    check(old.auth.password_store != new.auth.password_store, "[authentication] password_store");
    out
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not compile.
    #[error("{0}")]
    Config(ConfigErrors),
    /// A new listener address cannot be bound.
    #[error("{0}; nothing was changed")]
    Listen(io::Error),
    /// Something failed inside the server.
    #[error("reload failed: {0}")]
    Internal(String),
    /// A directory's TLS settings or filters, or the one-time password
    /// secrets file, are not usable.
    #[error("{0}; nothing was changed")]
    Identity(String),
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) as plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    tacvs_policy::policy::canonical(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "[server]\n[[server.listen]]\naddress = \
                \"127.0.0.1:0\"\n{extra}\n[[device_group]]\nname = \"d\"\nprefixes = \
                [\"10.0.0.0/8\"]\nkeys = [\"0123456789abcdef\"]\n"
        );
        tacvs_policy::parse("t.toml", &text, std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn settings_read_only_at_start_are_named_when_a_reload_changes_them() {
        let base = policy("");
        assert!(restart_needed(&base, &policy("")).is_empty());
        let changed = policy(
            "[accounting]\ndirectory = \"/elsewhere\"\n[authentication]\nhash_workers = \
                7\n[metrics]\nlisten = \"127.0.0.1:9\"",
        );
        assert_eq!(
            restart_needed(&base, &changed),
            ["[accounting] directory", "[metrics] listen", "[authentication] hash_workers"]
        );
        let limits =
            policy("[limits]\nmax_connections = 5\n[authentication.lockout]\nmax_failures = 3");
        assert!(restart_needed(&base, &limits).is_empty(), "limits and lockout apply live");
    }
}
