//! The `[[ldap]]` directories, the I/O side (the `ldap3` crate over tokio,
//! TLS by rustls): find a user with the service account, bind as the user
//! with the password the device sent, read the user's groups, map them.
//!
//! Contract:
//!
//! - **Bounded.** Connecting to a server (TCP, TLS or StartTLS, the service
//!   bind) has `connect_timeout`; every operation has `timeout`; at most
//!   `pool_size` searches and `pool_size` user binds run at once per
//!   directory, and waiting for a slot is bounded by `timeout` too. So a
//!   slow or dead directory costs a login at most about
//!   `servers × (connect_timeout + timeout)`, and a failed server is skipped
//!   for `retry_interval` (no login waits on it meanwhile; when every server
//!   of a directory failed, the answer is at once "unavailable").
//! - **Servers in order.** A connection goes to the first server that is not
//!   being skipped; a server that fails (refused, timed out, TLS, the service
//!   bind refused, busy or unavailable result codes) is logged with the reason
//!   and the next is tried in the same request. Pooled connections live at
//!   most a minute, so a recovered first server gets the traffic back.
//! - **What reaches the directory.** Names are checked first (UTF-8, no NUL
//!   or control character, at most 256 bytes) and escaped into the filter
//!   (RFC 4515); an empty password is never sent (a simple bind with an empty
//!   password is an unauthenticated bind that many servers answer with
//!   success, RFC 4513 §5.1.2). A filter that matches several entries is a
//!   refusal, not a choice.
//! - **One name, one lockout.** A directory compares names as RFC 4518
//!   prepares them (slapd for `uid`: case, NFKC, spaces at either end; Active
//!   Directory likewise), so `ben`, `BEN`, ` Ben` and `ｂｅｎ` are one entry.
//!   The lockout and the per-user rate count a directory user under
//!   `prepared_name`, so no spelling buys a new set of guesses.
//! - **Groups.** From the entry's `member_attribute` or a group search; with
//!   `in_chain`, one search with Active Directory's matching rule in chain;
//!   with `recursive`, one OR-ed group search per level, at most `max_depth`
//!   levels, each group once (cycles end), at most 1,000 groups.
//! - **Secrets.** The service account's password and the users' passwords are
//!   never logged; errors name the server, the operation and the reason.
//!
//! Metrics: `tacvs_directory_operations_total{directory, op, result}`,
//! `tacvs_directory_operation_seconds{directory, op}`,
//! `tacvs_directory_server_up{directory, server}`,
//! `tacvs_directory_unavailable_total{directory}`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions};
use tacvs_policy::Policy;
use tacvs_policy::identity::{Directory, GroupSource, Nesting, escape_filter_value};
use tokio::sync::Semaphore;

use crate::accounts::Account;
use crate::backend::{BoxFuture, Checked, CredentialBackend, Identity, Lookup};
use crate::logfmt::Esc;
use crate::otp::OtpSecret;

/// Groups followed at most in one lookup.
const MAX_GROUPS: usize = 1000;
/// Group DNs OR-ed into one search of a nesting level.
const LEVEL_CHUNK: usize = 32;
/// A pooled connection is replaced after this long.
const MAX_CONN_AGE: Duration = Duration::from_secs(60);

/// Every directory of a configuration, with its pools. Built again on each
/// reload (connections of the old one close when it is dropped).
#[derive(Debug)]
pub struct Directories {
    policy: Arc<Policy>,
    dirs: Vec<DirClient>,
    ops: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Searches, as the service account.
    Search,
    /// User binds.
    Bind,
}

struct DirClient {
    index: usize,
    conf: Directory,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Per server: skipped until, and why.
    down: Mutex<Vec<Option<(Instant, String)>>>,
    search: Pool,
    bind: Pool,
    ops: Arc<AtomicU64>,
}

impl std::fmt::Debug for DirClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirClient").field("name", &self.conf.name).finish_non_exhaustive()
    }
}

struct Pool {
    permits: Semaphore,
    idle: Mutex<Vec<Pooled>>,
}

struct Pooled {
    ldap: Ldap,
    server: usize,
    born: Instant,
}

/// A user entry as found.
struct Entry {
    dn: String,
    member_of: Vec<String>,
    otp: Option<String>,
}

/// Why an operation did not give an answer.
#[derive(Debug)]
enum Trouble {
    /// The connection or server failed: try another.
    Server(String),
    /// The directory answered with an error that another server would repeat.
    Answer(String),
}

impl Directories {
    /// Build the clients of `policy`'s directories: TLS settings (reading CA
    /// files) and filters are checked here; nothing is connected yet.
    pub fn new(policy: Arc<Policy>, ops: Arc<AtomicU64>) -> Result<Directories, String> {
        let mut dirs = Vec::new();
        for (index, d) in policy.directories.iter().enumerate() {
            for (what, f) in [("user_filter", &d.user_filter), ("group_filter", &d.group_filter)] {
                ldap3::parse_filter(f.render("x", "cn=x,dc=x")).map_err(|_| {
                    format!("[[ldap]] {:?}: {what} is not an LDAP search filter (RFC 4515)", d.name)
                })?;
            }
            let needs_tls = d.starttls || d.urls.iter().any(|u| u.tls);
            let tls = if needs_tls { Some(tls_config(d)?) } else { None };
            dirs.push(DirClient {
                index,
                conf: d.clone(),
                tls,
                down: Mutex::new(vec![None; d.urls.len()]),
                search: Pool::new(d.pool_size),
                bind: Pool::new(d.pool_size),
                ops: ops.clone(),
            });
        }
        Ok(Directories { policy, dirs, ops })
    }

    /// Whether any directory is configured.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The configuration these clients were built from.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Directory operations sent so far (binds and searches), since start.
    pub fn operations(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Find `user` in the directories, in order: the first that has the user
    /// answers; when one is unreachable and no other has the user, the
    /// answer is unavailable (the user may be in the one that did not answer).
    pub async fn find(&self, user: &[u8]) -> Lookup {
        let name = match tacvs_policy::identity::directory_user(user) {
            Ok(n) => n,
            Err(bad) => {
                tracing::info!(user = %Esc(user), reason = bad.as_str(), "name not sent to the directory");
                return Lookup::NoSuchUser;
            }
        };
        let mut trouble = Vec::new();
        for d in &self.dirs {
            match d.find(&self.policy, name).await {
                Ok(Some(a)) => return Lookup::Found(Identity::Directory(a)),
                Ok(None) => {}
                Err(why) => {
                    metrics::counter!(
                        "tacvs_directory_unavailable_total",
                        "directory" => d.conf.name.clone()
                    )
                    .increment(1);
                    tracing::warn!(directory = %d.conf.name, reason = %why, "directory unavailable");
                    trouble.push(format!("{}: {why}", d.conf.name));
                }
            }
        }
        if trouble.is_empty() {
            Lookup::NoSuchUser
        } else {
            Lookup::Unavailable(trouble.join("; "))
        }
    }

    /// Bind as the account with `password`.
    pub async fn bind(&self, account: &Account, password: &[u8]) -> Checked {
        let Some(d) = self.dirs.get(account.directory) else {
            return Checked::Unavailable("the directory is no longer configured".into());
        };
        // Never an unauthenticated bind (RFC 4513 §5.1.2).
        if password.is_empty() {
            return Checked::Wrong("empty password (never sent to a directory)");
        }
        let Ok(pw) = std::str::from_utf8(password) else {
            return Checked::Wrong("password is not UTF-8");
        };
        match d.bind(&account.dn, pw).await {
            Ok(0) => Checked::Pass,
            Ok(49) => Checked::Wrong("wrong password (or the account is locked or disabled)"),
            Ok(53) => Checked::Wrong(
                "the directory refused the bind (unwilling to perform: account disabled or password expired?)",
            ),
            Ok(_) => Checked::Wrong("the directory refused the bind"),
            Err(why) => {
                metrics::counter!("tacvs_directory_unavailable_total", "directory" => d.conf.name.clone()).increment(1);
                tracing::warn!(directory = %d.conf.name, reason = %why, "directory unavailable");
                Checked::Unavailable(format!("{}: {why}", d.conf.name))
            }
        }
    }
}

impl CredentialBackend for Directories {
    fn kind(&self) -> &'static str {
        "ldap"
    }

    fn lookup<'a>(&'a self, user: &'a [u8]) -> BoxFuture<'a, Lookup> {
        Box::pin(self.find(user))
    }

    fn check<'a>(&'a self, who: &'a Identity, password: Vec<u8>) -> BoxFuture<'a, Checked> {
        Box::pin(async move {
            match who {
                Identity::Directory(a) => self.bind(a, &password).await,
                Identity::Local(_) => Checked::Wrong("not a directory user"),
            }
        })
    }
}

fn tls_config(d: &Directory) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &d.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect())
                .map_err(|e| format!("[[ldap]] {:?}: ca_file {}: {e}", d.name, path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "[[ldap]] {:?}: ca_file {} holds no certificate (PEM)",
                    d.name,
                    path.display()
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    format!("[[ldap]] {:?}: ca_file {}: {e}", d.name, path.display())
                })?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// What an `ldap3` error means, in words (never a password: errors carry
/// none).
fn describe(e: &LdapError) -> String {
    match e {
        LdapError::Io { source } => format!("connection failed: {source}"),
        LdapError::Timeout { .. } => "no answer in time".into(),
        LdapError::Rustls { source } => format!("TLS failed: {source}"),
        LdapError::LdapResult { result } => {
            format!("result code {} ({})", result.rc, result.text.trim())
        }
        other => other.to_string(),
    }
}

impl Pool {
    fn new(size: usize) -> Pool {
        Pool { permits: Semaphore::new(size.max(1)), idle: Mutex::new(Vec::new()) }
    }

    fn take(&self, now: Instant) -> Option<Pooled> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut p) = idle.pop() {
            if now.saturating_duration_since(p.born) < MAX_CONN_AGE && !p.ldap.is_closed() {
                return Some(p);
            }
        }
        None
    }

    fn put(&self, p: Pooled) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(p);
    }
}

impl DirClient {
    fn op_done(&self, op: &'static str, result: &'static str, took: Duration) {
        let name = self.conf.name.clone();
        metrics::counter!(
            "tacvs_directory_operations_total",
            "directory" => name.clone(),
            "op" => op,
            "result" => result
        )
        .increment(1);
        metrics::histogram!("tacvs_directory_operation_seconds", "directory" => name, "op" => op)
            .record(took.as_secs_f64());
    }

    /// Servers to try now, in order: those not being skipped.
    fn order(&self, now: Instant) -> Result<Vec<usize>, String> {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let up: Vec<usize> = (0..down.len())
            .filter(|&i| down[i].as_ref().is_none_or(|(until, _)| *until <= now))
            .collect();
        if up.is_empty() {
            let why: Vec<String> = down
                .iter()
                .zip(&self.conf.urls)
                .filter_map(|(d, u)| d.as_ref().map(|(_, r)| format!("{}: {r}", u.url)))
                .collect();
            return Err(format!(
                "every server failed within the last {} ({})",
                crate::lockout::human(self.conf.retry_interval),
                why.join("; ")
            ));
        }
        Ok(up)
    }

    fn mark(&self, server: usize, failure: Option<String>) {
        let url = &self.conf.urls[server].url;
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let was_down = down[server].is_some();
        match failure {
            Some(why) => {
                if !was_down {
                    tracing::warn!(
                        directory = %self.conf.name,
                        server = %url,
                        reason = %why,
                        skipped_for = %crate::lockout::human(self.conf.retry_interval),
                        "directory server failed; trying the next"
                    );
                }
                down[server] = Some((Instant::now() + self.conf.retry_interval, why));
                metrics::gauge!(
                    "tacvs_directory_server_up",
                    "directory" => self.conf.name.clone(),
                    "server" => url.clone()
                )
                .set(0.0);
            }
            None if was_down => {
                tracing::info!(directory = %self.conf.name, server = %url, "directory server answers again");
                down[server] = None;
                metrics::gauge!(
                    "tacvs_directory_server_up",
                    "directory" => self.conf.name.clone(),
                    "server" => url.clone()
                )
                .set(1.0);
            }
            None => {}
        }
    }

    /// A new connection for `role`, to the first server that takes it.
    async fn connect(&self, role: Role) -> Result<Pooled, String> {
        let mut why = Vec::new();
        for server in self.order(Instant::now())? {
            let t = Instant::now();
            let budget = self.conf.connect_timeout + self.conf.timeout;
            match tokio::time::timeout(budget, self.open(server, role)).await {
                Ok(Ok(ldap)) => {
                    self.op_done("connect", "ok", t.elapsed());
                    self.mark(server, None);
                    return Ok(Pooled { ldap, server, born: Instant::now() });
                }
                Ok(Err(e)) => {
                    self.op_done("connect", "error", t.elapsed());
                    self.mark(server, Some(e.clone()));
                    why.push(format!("{}: {e}", self.conf.urls[server].url));
                }
                Err(_) => {
                    self.op_done("connect", "timeout", t.elapsed());
                    let e = format!("no connection within {}", humantime::format_duration(budget));
                    self.mark(server, Some(e.clone()));
                    why.push(format!("{}: {e}", self.conf.urls[server].url));
                }
            }
        }
        Err(why.join("; "))
    }

    async fn open(&self, server: usize, role: Role) -> Result<Ldap, String> {
        let url = &self.conf.urls[server];
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.conf.connect_timeout);
        if let Some(tls) = &self.tls
            && (url.tls || self.conf.starttls)
        {
            settings = settings.set_config(tls.clone()).set_starttls(!url.tls);
        }
        let (conn, mut ldap) =
            LdapConnAsync::with_settings(settings, &url.url).await.map_err(|e| describe(&e))?;
        let name = self.conf.name.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(directory = %name, error = %describe(&e), "directory connection ended");
            }
        });
        if role == Role::Search
            && let (Some(dn), Some(pw)) = (&self.conf.bind_dn, &self.conf.bind_password)
        {
            self.ops.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            let r = ldap.with_timeout(self.conf.timeout).simple_bind(dn, pw.expose()).await;
            self.op_done("service_bind", if r.is_ok() { "ok" } else { "error" }, t.elapsed());
            let r = r.map_err(|e| describe(&e))?;
            if r.rc != 0 {
                return Err(format!(
                    "the service account's bind was refused (result code {}): check bind_dn and bind_password",
                    r.rc
                ));
            }
        }
        Ok(ldap)
    }

    /// Run `f` on a connection of `role`: a pooled one or a new one, on
    /// another server when a server fails.
    async fn run<T, F, Fut>(&self, role: Role, op: &'static str, mut f: F) -> Result<T, String>
    where
        F: FnMut(Ldap) -> Fut,
        Fut: std::future::Future<Output = Result<Result<T, Trouble>, LdapError>>,
    {
        let pool = match role {
            Role::Search => &self.search,
            Role::Bind => &self.bind,
        };
        let _permit = match tokio::time::timeout(self.conf.timeout, pool.permits.acquire()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(format!(
                    "all {} connections busy for {}",
                    self.conf.pool_size,
                    humantime::format_duration(self.conf.timeout)
                ));
            }
        };
        let mut why = Vec::new();
        // Each server once, plus one retry of a stale pooled connection.
        for _ in 0..=self.conf.urls.len() {
            let (conn, fresh) = match pool.take(Instant::now()) {
                Some(c) => (c, false),
                None => match self.connect(role).await {
                    Ok(c) => (c, true),
                    Err(e) => {
                        why.push(e);
                        break;
                    }
                },
            };
            let mut ldap = conn.ldap.clone();
            ldap.with_timeout(self.conf.timeout);
            self.ops.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            let out =
                tokio::time::timeout(self.conf.timeout + Duration::from_millis(50), f(ldap)).await;
            let url = &self.conf.urls[conn.server].url;
            match out {
                Ok(Ok(Ok(v))) => {
                    self.op_done(op, "ok", t.elapsed());
                    pool.put(conn);
                    return Ok(v);
                }
                Ok(Ok(Err(Trouble::Answer(e)))) => {
                    self.op_done(op, "error", t.elapsed());
                    pool.put(conn);
                    return Err(format!("{url}: {op}: {e}"));
                }
                Ok(Ok(Err(Trouble::Server(e)))) => {
                    self.op_done(op, "error", t.elapsed());
                    self.mark(conn.server, Some(e.clone()));
                    why.push(format!("{url}: {op}: {e}"));
                }
                Ok(Err(e)) => {
                    self.op_done(op, "error", t.elapsed());
                    let e = describe(&e);
                    if fresh {
                        self.mark(conn.server, Some(e.clone()));
                    }
                    why.push(format!("{url}: {op}: {e}"));
                }
                Err(_) => {
                    self.op_done(op, "timeout", t.elapsed());
                    let e = format!(
                        "no answer within {}",
                        humantime::format_duration(self.conf.timeout)
                    );
                    self.mark(conn.server, Some(e.clone()));
                    why.push(format!("{url}: {op}: {e}"));
                }
            }
        }
        Err(why.join("; "))
    }

    /// A search; the entries (references dropped). `limit` 0: the server's.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<Vec<SearchEntry>, String> {
        self.run(Role::Search, "search", |mut ldap| async move {
            let r = ldap
                .with_search_options(SearchOptions::new().sizelimit(limit))
                .search(base, scope, filter, attrs)
                .await?;
            let rc = r.1.rc;
            // 4: sizeLimitExceeded, the entries up to the limit came back.
            if rc != 0 && rc != 4 {
                let text = r.1.text.trim().to_owned();
                return Ok(Err(match rc {
                    51..=53 | 80 => Trouble::Server(format!("result code {rc} ({text})")),
                    32 => Trouble::Answer(format!(
                        "the search base does not exist (result code 32): check base_dn / group_base_dn ({text})"
                    )),
                    _ => Trouble::Answer(format!("result code {rc} ({text})")),
                }));
            }
            let mut out = Vec::new();
            for e in r.0.into_iter().filter(|e| !e.is_ref()) {
                // ldap3 panics on BER it cannot parse: a broken server is a failed server.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    SearchEntry::construct(e)
                })) {
                    Ok(se) => out.push(se),
                    Err(_) => {
                        return Ok(Err(Trouble::Server("an entry that does not parse".into())));
                    }
                }
            }
            Ok(Ok(out))
        })
        .await
    }

    async fn bind(&self, dn: &str, password: &str) -> Result<u32, String> {
        self.run(Role::Bind, "bind", |mut ldap| async move {
            let r = ldap.simple_bind(dn, password).await?;
            Ok(match r.rc {
                51 | 52 => {
                    Err(Trouble::Server(format!("result code {} (busy or unavailable)", r.rc)))
                }
                rc => Ok(rc),
            })
        })
        .await
    }

    async fn find_entry(&self, name: &str) -> Result<Option<Entry>, String> {
        let filter = self.conf.user_filter.render(name, "");
        let mut attrs: Vec<&str> = Vec::new();
        if self.conf.groups == GroupSource::MemberOf && self.conf.nested != Nesting::InChain {
            attrs.push(&self.conf.member_attribute);
        }
        if let Some(a) = &self.conf.otp_attribute {
            attrs.push(a);
        }
        if attrs.is_empty() {
            attrs.push("1.1"); // RFC 4511 §4.5.1.8: no attributes
        }
        let mut entries =
            self.search(&self.conf.base_dn, Scope::Subtree, &filter, &attrs, 2).await?;
        if entries.len() > 1 {
            tracing::warn!(
                directory = %self.conf.name,
                user = %Esc(name.as_bytes()),
                "user_filter matches several entries; refusing rather than choosing (make the filter match one entry)"
            );
            return Ok(None);
        }
        let Some(e) = entries.pop() else { return Ok(None) };
        let attr = |want: &str| -> Vec<String> {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(want))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let member_of = attr(&self.conf.member_attribute);
        let otp = self.conf.otp_attribute.as_deref().and_then(|a| attr(a).into_iter().next());
        Ok(Some(Entry { dn: e.dn.clone(), member_of, otp }))
    }

    async fn group_dns(&self, filter: &str) -> Result<Vec<String>, String> {
        let limit = MAX_GROUPS as i32;
        let found =
            self.search(&self.conf.group_base_dn, Scope::Subtree, filter, &["1.1"], limit).await?;
        Ok(found.into_iter().map(|e| e.dn).collect())
    }

    /// The user's groups (DNs), nesting followed as configured.
    async fn groups(&self, name: &str, entry: &Entry) -> Result<Vec<String>, String> {
        let direct = match (self.conf.nested, self.conf.groups) {
            (Nesting::InChain, _) => {
                let f =
                    format!("(member:1.2.840.113556.1.4.1941:={})", escape_filter_value(&entry.dn));
                return self.group_dns(&f).await;
            }
            (_, GroupSource::MemberOf) => entry.member_of.clone(),
            (_, GroupSource::Search) => {
                self.group_dns(&self.conf.group_filter.render(name, &entry.dn)).await?
            }
        };
        if self.conf.nested != Nesting::Recursive {
            return Ok(direct);
        }
        let norm = tacvs_policy::identity::normalize_dn;
        let mut seen: HashSet<String> = direct.iter().map(|g| norm(g)).collect();
        let mut all = direct.clone();
        let mut level = direct;
        for _ in 0..self.conf.max_depth {
            let mut next = Vec::new();
            for chunk in level.chunks(LEVEL_CHUNK) {
                let f: String =
                    chunk.iter().map(|g| self.conf.group_filter.render("", g)).collect();
                for g in self.group_dns(&format!("(|{f})")).await? {
                    if all.len() >= MAX_GROUPS {
                        break;
                    }
                    if seen.insert(norm(&g)) {
                        all.push(g.clone());
                        next.push(g);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(all)
    }

    /// Look `name` up: `Ok(None)` when this directory does not have it.
    async fn find(&self, policy: &Arc<Policy>, name: &str) -> Result<Option<Arc<Account>>, String> {
        let Some(entry) = self.find_entry(name).await? else { return Ok(None) };
        let ldap_groups = self.groups(name, &entry).await?;
        let mapped: Vec<usize> =
            self.conf.map_groups(&ldap_groups).into_iter().map(|(g, _)| g).collect();
        let mut user = policy.directory_user(name, mapped);
        let otp_secret = match &entry.otp {
            None => None,
            Some(text) => {
                // Present means enrolled: a code is required, even if the
                // value is broken (then nobody can log in until it is fixed).
                user.otp = true;
                match OtpSecret::from_base32(text) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(
                            directory = %self.conf.name,
                            user = %Esc(name.as_bytes()),
                            attribute = self.conf.otp_attribute.as_deref().unwrap_or_default(),
                            problem = %e,
                            "the user's TOTP secret attribute is not usable; the user cannot log in until it is fixed"
                        );
                        None
                    }
                }
            }
        };
        Ok(Some(Arc::new(Account {
            directory: self.index,
            directory_name: self.conf.name.clone(),
            dn: entry.dn,
            ldap_groups,
            user: Arc::new(user),
            policy: policy.clone(),
            otp_secret,
        })))
    }
}

/// `user` as directories compare names (RFC 4518 string preparation, as
/// slapd applies it to `uid` and Active Directory to `sAMAccountName`):
/// characters mapped to nothing removed (§2.2), NFKC, lower case (with `ß`
/// as `ss` and a final sigma as `σ`, as case folding has them), whitespace
/// at either end dropped and each run inside as one space (§2.6.1). The key
/// a directory user's failures and rate are counted under. More spellings
/// meet here than a given directory joins, which only makes their lockout
/// shared. Bytes that are not UTF-8 are kept as they are (the directory
/// path refuses such names). A plain lower-case ASCII name is returned as
/// it is, without a copy.
pub(crate) fn prepared_name(user: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    use unicode_normalization::UnicodeNormalization;
    let plain = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(b);
    if user.iter().all(plain) {
        return Cow::Borrowed(user);
    }
    let Ok(text) = std::str::from_utf8(user) else { return Cow::Borrowed(user) };
    let mapped = text.chars().filter(|&c| {
        !matches!(c, '\u{ad}' | '\u{34f}' | '\u{1806}' | '\u{180b}'..='\u{180e}' | '\u{200b}'..='\u{200d}'
            | '\u{2060}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{fffc}')
    });
    let folded: String = mapped
        .nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .collect::<String>()
        .replace('ß', "ss")
        // Lower case can undo the normal form (a capital with a combining
        // mark); once more keeps the key stable.
        .nfkc()
        .collect::<String>();
    let mut out = String::with_capacity(folded.len());
    for word in folded.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    Cow::Owned(out.into_bytes())
}

#[cfg(test)]
mod prepared_tests {
    use super::prepared_name;

    #[test]
    fn spellings_a_directory_joins_have_one_key() {
        let ben = prepared_name(b"ben");
        for s in [
            "BEN",
            "Ben ",
            " ben",
            "\u{ff42}\u{ff45}\u{ff4e}",
            "BEN\u{a0}",
            "b\u{200b}e\u{ad}n",
            "\tbEn\u{3000}",
        ] {
            assert_eq!(prepared_name(s.as_bytes()), ben, "{s:?}");
        }
        assert_eq!(prepared_name("Anna  Maria".as_bytes()).as_ref(), b"anna maria");
        assert_eq!(prepared_name("STRASSE".as_bytes()), prepared_name("stra\u{df}e".as_bytes()));
        assert_eq!(
            prepared_name("\u{3a3}\u{3bf}\u{3c2}".as_bytes()),
            prepared_name("\u{3c3}\u{3bf}\u{3c3}".as_bytes())
        );
    }

    #[test]
    fn different_names_stay_apart_and_plain_ones_are_not_copied() {
        assert_ne!(prepared_name(b"ben"), prepared_name(b"ben2"));
        assert_ne!(prepared_name(b"b en"), prepared_name(b"ben"));
        assert!(matches!(prepared_name(b"svc.backup-01@corp"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(prepared_name(b"\xff\xfe").as_ref(), b"\xff\xfe");
    }

    proptest::proptest! {
        #[test]
        fn preparing_twice_changes_nothing(s in "\\PC{0,24}") {
            let once = prepared_name(s.as_bytes()).into_owned();
            proptest::prop_assert_eq!(prepared_name(&once).into_owned(), once);
        }
    }
}
