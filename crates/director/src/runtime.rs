//! Starting, reloading and stopping a director: one accept loop per virtual
//! service, one checker per real server, the control socket and, with
//! `[vrrp]`, the virtual router. [`DirectorHandle`] owns them all.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::checker::health_loop;
use crate::config::{DirectorFile, Mode, Service};
use crate::control::access::{Access, group_id};
use crate::control::protocol::{ServiceStatus, StatusReport, VrrpStatus};
use crate::control::server::{self, Live};
use crate::core::sched::Scheduler;
use crate::dr::{Dr, DrError};
use crate::failover::Router;
use crate::proxy::accept_loop;
use crate::service::{RealState, Registry, ServiceRt};

/// Seed of the `twos` scheduler's random choices (service index added).
const SEED: u64 = 0x7ac5;

/// A running director.
#[derive(Debug)]
pub struct DirectorHandle {
    /// Bound VIP addresses, in service order.
    pub local_addrs: Vec<SocketAddr>,
    live: Arc<Live>,
    /// Each service's accept loop.
    accepts: Vec<(Arc<ServiceRt>, JoinHandle<()>)>,
    tasks: Vec<JoinHandle<()>>,
    /// The settings a reload cannot change, as written at start.
    fixed: String,
    control: Option<PathBuf>,
    vrrp_task: Option<JoinHandle<()>>,
    stop_vrrp: tokio::sync::watch::Sender<bool>,
    /// Direct routing: the interface index the data plane forwards on, and
    /// the VIPs it answers for (a reload may not move a VIP between modes).
    dr: Option<(u32, Vec<IpAddr>)>,
}

/// Why a reload was refused (the running configuration stays, unchanged).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ReloadError(pub Vec<StartError>);

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Services started (new names, or a service moved to another address).
    pub added: Vec<String>,
    /// Services stopped (their open connections finish).
    pub removed: Vec<String>,
    /// Sections that changed but apply only at the next start.
    pub needs_restart: Vec<&'static str>,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("services added: {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("services removed: {}", self.removed.join(", ")));
        }
        if !self.needs_restart.is_empty() {
            parts.push(format!(
                "changed, applies at the next start: {}",
                self.needs_restart.join(" ")
            ));
        }
        if parts.is_empty() {
            f.write_str("services updated in place")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// Why reading and applying a file failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadFileError {
    /// The file has errors.
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    /// It could not be applied.
    #[error("{0}")]
    Apply(ReloadError),
}

/// The sections a reload does not apply, for comparison.
fn fixed_sections(f: &DirectorFile) -> String {
    let mut d = f.clone();
    d.services.clear();
    toml::to_string(&d).unwrap_or_default()
}

/// A listening socket; a VRRP virtual address is bound with IP_FREEBIND, as
/// a backup does not hold it yet.
fn listen(addr: SocketAddr, freebind: bool) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    if freebind {
        s.set_freebind_v4(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    TcpListener::from_std(s.into())
}

/// Why a director could not start. Nothing runs (and nothing was logged as
/// up) when `start` returns one.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A virtual service's address could not be bound.
    #[error("service {service:?}: cannot listen on {addr}: {error}{}", listen_hint(.error, .addr))]
    Listen {
        /// The service.
        service: String,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        error: std::io::Error,
    },
    /// The control socket could not be made.
    #[error("control socket {}: {error}", .path.display())]
    ControlSocket {
        /// Its path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// `control_socket_group` names no group here.
    #[error("[director] control_socket_group: no group {0:?} on this machine")]
    ControlGroup(String),
    /// VRRP could not start.
    #[error(transparent)]
    Vrrp(#[from] crate::failover::FailoverError),
    /// Direct routing could not start, or a reload cannot change it.
    #[error(transparent)]
    Dr(#[from] Box<DrError>),
}

/// What to do about a bind error.
fn listen_hint(e: &std::io::Error, addr: &SocketAddr) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied if addr.port() < 1024 => format!(
            " (port {} is privileged: run as root, or give the binary CAP_NET_BIND_SERVICE, \
                e.g. `setcap cap_net_bind_service=+ep $(command -v tacvs)`)",
            addr.port()
        ),
        K::AddrInUse => format!(
            " (another process listens there: `ss -ltnp 'sport = :{}'` shows which)",
            addr.port()
        ),
        K::AddrNotAvailable => format!(
            " ({} is not an address of this machine: add it to an interface, or list it in [vrrp] vips)",
            addr.ip()
        ),
        _ => String::new(),
    }
}

/// The director's signal handlers: SIGHUP reloads, SIGTERM and SIGINT stop.
/// Register them with [`Signals::register`] *before* [`start`]: from then on
/// a signal is queued for [`DirectorHandle::run_until_stopped`] instead of
/// ending the process with its default action (a SIGHUP sent as soon as
/// "virtual service up" was logged used to kill the director).
#[derive(Debug)]
pub struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Install the SIGHUP, SIGTERM and SIGINT handlers.
    pub fn register() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Start every service, its health checkers, the control socket and VRRP.
/// Everything that can fail (binding every address, the control socket, VRRP's
/// sockets) is done before anything runs or is announced.
pub async fn start(conf: DirectorFile) -> Result<DirectorHandle, StartError> {
    let now = Instant::now();
    let fixed = fixed_sections(&conf);
    let vips: Vec<std::net::IpAddr> =
        conf.vrrp.iter().flat_map(|v| v.vips.iter().map(|a| a.0.into())).collect();
    let mut bound = Vec::new();
    for s in &conf.services {
        let l = bind(s, &vips)?;
        bound.push((s.clone(), l));
    }
    let control = conf.director.control_socket.clone();
    let sock_err = |error| StartError::ControlSocket { path: control.clone(), error };
    let group = match &conf.director.control_socket_group {
        None => None,
        Some(name) => Some(group_id(name).ok_or_else(|| StartError::ControlGroup(name.clone()))?),
    };
    if let Some(dir) = control.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(sock_err)?;
    }
    let _ = std::fs::remove_file(&control);
    let ul = UnixListener::bind(&control).map_err(sock_err)?;
    // From here on, a failure removes the socket file it made.
    let undo = |e: StartError| {
        let _ = std::fs::remove_file(&control);
        e
    };
    let access = Access::secure(&control, group).map_err(|e| undo(sock_err(e)))?;
    let dr = match conf.has_dr() {
        true => Some(Dr::open(&conf).await.map_err(|e| undo(Box::new(e).into()))?),
        false => None,
    };
    let dr_vips = dr_vips(&conf);
    let mut live = Live::default();
    if let Some(d) = &dr {
        live.dr = d.cell();
    }
    let live = Arc::new(live);
    let router = match conf.vrrp {
        Some(v) => {
            let announce = dr.as_ref().map(|d| {
                let v4 = dr_vips
                    .iter()
                    .filter_map(|ip| match ip {
                        IpAddr::V4(a) => Some(*a),
                        IpAddr::V6(_) => None,
                    })
                    .collect();
                (v4, d.switch())
            });
            Some(Router::new(v, live.vrrp.clone(), announce).await.map_err(|e| undo(e.into()))?)
        }
        None => None,
    };
    if let (Some(d), None) = (&dr, &router) {
        // No VRRP: this director alone answers for the DR VIPs.
        d.switch().set(true);
    }

    // Everything is bound: run.
    let mut services = Vec::new();
    let mut tasks = Vec::new();
    let mut accepts = Vec::new();
    for (si, (s, (vip, listener))) in bound.into_iter().enumerate() {
        let (rt, accept) =
            launch(s, vip, listener, SEED + si as u64, now, &mut tasks, &live.events);
        if let Some(a) = accept {
            accepts.push((rt.clone(), a));
        }
        services.push(rt);
    }
    let local_addrs = services.iter().map(|s| s.vip()).collect();
    live.services.store(Arc::new(services));
    let dr_state = dr.as_ref().map(|d| (d.ifindex(), dr_vips.clone()));
    if let Some(d) = dr {
        tasks.push(tokio::spawn(d.run(live.clone())));
    }
    let (stop_vrrp, stopped) = tokio::sync::watch::channel(false);
    let vrrp_task = router.map(|router| {
        let tracked = live.clone();
        tokio::spawn(router.run(move || all_served(&tracked.services), stopped))
    });
    tasks.push(tokio::spawn(server::serve(live.clone(), ul, access)));
    Ok(DirectorHandle {
        local_addrs,
        live,
        accepts,
        tasks,
        fixed,
        control: Some(control),
        vrrp_task,
        stop_vrrp,
        dr: dr_state,
    })
}

/// The virtual addresses of the file's DR services.
fn dr_vips(conf: &DirectorFile) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> =
        conf.services.iter().filter(|s| s.mode == Mode::Dr).map(|s| s.listen.ip()).collect();
    v.sort();
    v.dedup();
    v
}

/// Bind a service's address (with IP_FREEBIND when it is a VRRP address).
/// A DR service binds nothing: the data plane takes its packets.
fn bind(s: &Service, vips: &[IpAddr]) -> Result<(SocketAddr, Option<TcpListener>), StartError> {
    if s.mode == Mode::Dr {
        return Ok((s.listen, None));
    }
    listen(s.listen, vips.contains(&s.listen.ip()))
        .and_then(|l| Ok((l.local_addr()?, Some(l))))
        .map_err(|error| StartError::Listen { service: s.name.clone(), addr: s.listen, error })
}

/// Run a bound service: its accept loop (returned; none in DR, where the
/// data plane forwards) and its checkers (pushed onto `tasks`).
fn launch(
    s: Service,
    vip: SocketAddr,
    listener: Option<TcpListener>,
    seed: u64,
    now: Instant,
    tasks: &mut Vec<JoinHandle<()>>,
    events: &Arc<crate::events::Events>,
) -> (Arc<ServiceRt>, Option<JoinHandle<()>>) {
    tracing::info!(
        service = %s.name,
        %vip,
        mode = %s.mode,
        scheduler = %s.scheduler,
        real_servers = s.reals.len(),
        "virtual service up"
    );
    let rt = Arc::new(ServiceRt::new(s, vip, seed, now, events.clone()));
    for r in &rt.conf().reals {
        tasks.push(tokio::spawn(health_loop(rt.clone(), r.address)));
    }
    let accept = listener.map(|l| tokio::spawn(accept_loop(rt.clone(), l)));
    (rt, accept)
}

/// Whether every virtual service has a real server in state up (VRRP tracking).
fn all_served(services: &Registry) -> bool {
    services.load().iter().all(|s| s.served())
}

impl DirectorHandle {
    /// The status table.
    pub fn status(&self) -> Vec<ServiceStatus> {
        self.report().services
    }

    /// Services and VRRP, as the control socket reports them.
    pub fn report(&self) -> StatusReport {
        self.live.status()
    }

    /// A function that takes [`report`](Self::report) later (the status
    /// page), independent of this handle's lifetime.
    pub fn reporter(&self) -> impl Fn() -> StatusReport + Send + Sync + 'static {
        let live = self.live.clone();
        move || live.status()
    }

    /// Set a real server's weight override (`None` = back to configured);
    /// returns how many services had it.
    pub fn set_weight(&self, server: SocketAddr, weight: Option<u32>) -> usize {
        server::set_weight(&self.live.services.load(), server, weight).len()
    }

    /// VRRP state, when `[vrrp]` is configured.
    pub fn vrrp(&self) -> Option<VrrpStatus> {
        self.live.vrrp.get()
    }

    /// Stop: a VRRP master first hands over (priority-0 advertisement, so the
    /// backup takes over after Skew_Time rather than Master_Down_Interval) and
    /// removes the virtual addresses; then everything else stops.
    pub async fn shutdown(mut self) {
        let _ = self.stop_vrrp.send(true);
        if let Some(t) = self.vrrp_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        self.stop();
    }

    /// Stop everything at once (no VRRP hand-over: as a crash would).
    pub fn stop(self) {
        for t in self.tasks.iter().chain(self.accepts.iter().map(|(_, t)| t)).chain(&self.vrrp_task)
        {
            t.abort();
        }
        if let Some(p) = &self.control {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Apply a new configuration (SIGHUP). Services are matched by name:
    ///
    /// * a kept service takes its new scheduler, real servers (added ones
    ///   start checked-up; removed ones take no new connections and their open
    ///   ones finish), weights, caps, timeouts and health settings;
    /// * a new service (or one whose address changed) is bound and started;
    /// * a service no longer in the file stops accepting; its open connections
    ///   finish.
    ///
    /// Every new address is bound before anything changes: if one cannot be,
    /// the reload is refused and the running configuration stays whole.
    /// `[director]`, `[vrrp]` and `[metrics]` apply at the next start
    /// ([`Reloaded::needs_restart`] says which changed).
    pub fn reload(&mut self, new: DirectorFile) -> Result<Reloaded, ReloadError> {
        let r = self.apply(new);
        match &r {
            Ok(done) => self.live.reloaded(true, done.to_string()),
            Err(e) => self.live.reloaded(false, format!("refused: {e}")),
        }
        r
    }

    /// Read `path` and [`DirectorHandle::reload`] it; a file with errors
    /// changes nothing, nor does one whose DR real servers are not on the
    /// data plane's segment. The outcome is logged and shown by `status`.
    pub async fn reload_file(&mut self, path: &Path) -> Result<Reloaded, ReloadFileError> {
        let file = path.display();
        let r = match crate::config::load(path) {
            Err(e) => {
                self.live.reloaded(false, format!("refused: {e}"));
                Err(ReloadFileError::Config(e))
            }
            Ok(c) => match self.dr.as_ref().map(|(i, _)| *i) {
                Some(ifindex) if c.has_dr() => match crate::dr::check_segment(ifindex, &c).await {
                    Ok(()) => self.reload(c).map_err(ReloadFileError::Apply),
                    Err(e) => {
                        let e = ReloadError(vec![Box::new(e).into()]);
                        self.live.reloaded(false, format!("refused: {e}"));
                        Err(ReloadFileError::Apply(e))
                    }
                },
                _ => self.reload(c).map_err(ReloadFileError::Apply),
            },
        };
        match &r {
            Ok(done) => tracing::info!(%file, changes = %done, "configuration reloaded"),
            Err(ReloadFileError::Config(e)) => {
                tracing::error!(%file, errors = %e, count = e.len(), "reload refused: the file \
                    has errors; the running configuration stays")
            }
            Err(ReloadFileError::Apply(e)) => {
                tracing::error!(%file, error = %e, "reload refused; the running configuration stays")
            }
        }
        if let Ok(done) = &r {
            for section in &done.needs_restart {
                tracing::warn!(%file, section, "this section changed; it applies at the next start");
            }
        }
        r
    }

    /// Serve until SIGTERM or SIGINT (or `stop` completes), reloading `path`
    /// on SIGHUP; then hand over VRRP mastership and stop. `signals` were
    /// registered before [`start`], so a signal sent as soon as the services
    /// were up is handled, not fatal and not lost.
    pub async fn run_until_stopped(
        mut self,
        mut signals: Signals,
        path: &Path,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = signals.term.recv() => break,
                _ = signals.int.recv() => break,
                _ = &mut stop => break,
                _ = signals.hup.recv() => {
                    let _ = self.reload_file(path).await;
                }
            }
        }
        tracing::info!("director stopping");
        self.shutdown().await;
        Ok(())
    }

    fn apply(&mut self, new: DirectorFile) -> Result<Reloaded, ReloadError> {
        let now = Instant::now();
        let running = self.live.services.load_full();
        let kept = |s: &Service| {
            running
                .iter()
                .find(|rt| {
                    let c = rt.conf();
                    c.name == s.name && c.listen == s.listen && c.mode == s.mode
                })
                .cloned()
        };
        // The data plane is attached at start, and VRRP knows then which
        // VIPs it must not hold: both need a restart to change.
        let now_dr = dr_vips(&new);
        match &self.dr {
            None if !now_dr.is_empty() => {
                return Err(ReloadError(vec![Box::new(DrError::Restart(
                    "the director started without direct routing: restart it to add mode = \"dr\" services".into(),
                ))
                .into()]));
            }
            Some((_, was)) if new.vrrp.is_some() && *was != now_dr => {
                return Err(ReloadError(vec![
                    Box::new(DrError::Restart(
                        "the set of virtual addresses in direct routing changed: VRRP holds proxy \
                        VIPs as addresses and only announces DR ones, so restart the director \
                        to move an address between modes"
                            .into(),
                    ))
                    .into(),
                ]));
            }
            _ => {}
        }
        let vips: Vec<IpAddr> =
            new.vrrp.iter().flat_map(|v| v.vips.iter().map(|a| a.0.into())).collect();
        // Bind first; change nothing unless every new address is ours.
        let mut bound = Vec::new();
        let mut refused = Vec::new();
        for s in new.services.iter().filter(|s| kept(s).is_none()) {
            match bind(s, &vips) {
                Ok(l) => bound.push((s.name.clone(), l)),
                Err(e) => refused.push(e),
            }
        }
        if !refused.is_empty() {
            return Err(ReloadError(refused));
        }
        let mut report = Reloaded::default();
        let fixed = fixed_sections(&new);
        if fixed != self.fixed {
            let old: toml::Table = toml::from_str(&self.fixed).unwrap_or_default();
            let now_t: toml::Table = toml::from_str(&fixed).unwrap_or_default();
            for (section, name) in
                [("director", "[director]"), ("vrrp", "[vrrp]"), ("metrics", "[metrics]")]
            {
                if old.get(section) != now_t.get(section) {
                    report.needs_restart.push(name);
                }
            }
        }
        let mut services = Vec::new();
        for (si, s) in new.services.into_iter().enumerate() {
            match kept(&s) {
                Some(rt) => {
                    update(&rt, s, now, &mut self.tasks);
                    services.push(rt);
                }
                None => {
                    let i = bound.iter().position(|(n, _)| *n == s.name).expect("bound above");
                    let (_, (vip, listener)) = bound.swap_remove(i);
                    report.added.push(s.name.clone());
                    let seed = SEED + si as u64;
                    let (rt, accept) =
                        launch(s, vip, listener, seed, now, &mut self.tasks, &self.live.events);
                    if let Some(a) = accept {
                        self.accepts.push((rt.clone(), a));
                    }
                    services.push(rt);
                }
            }
        }
        for old in running.iter().filter(|o| !services.iter().any(|n| Arc::ptr_eq(n, o))) {
            let name = old.conf().name.clone();
            // The listener closes with its accept loop; connections already
            // accepted run in their own tasks and finish.
            if let Some(i) = self.accepts.iter().position(|(rt, _)| Arc::ptr_eq(rt, old)) {
                let (_, t) = self.accepts.remove(i);
                t.abort();
            }
            old.retire();
            tracing::info!(service = %name, vip = %old.vip(), "virtual service removed; its open connections finish");
            report.removed.push(name);
        }
        self.local_addrs = services.iter().map(|s| s.vip()).collect();
        self.live.services.store(Arc::new(services));
        self.fixed = fixed;
        if let Some((_, vips)) = &mut self.dr {
            *vips = now_dr;
        }
        Ok(report)
    }
}

/// Apply a service's new settings to its running state.
fn update(rt: &Arc<ServiceRt>, s: Service, now: Instant, tasks: &mut Vec<JoinHandle<()>>) {
    let old = rt.conf();
    let mut added = Vec::new();
    {
        let mut st = rt.state();
        if old.scheduler != s.scheduler || old.hash != s.hash {
            st.sched = Scheduler::new(s.scheduler, SEED).hashing(s.hash);
            tracing::info!(service = %s.name, scheduler = %s.scheduler, "scheduler changed");
        }
        let mut next = Vec::new();
        for r in &s.reals {
            match st.reals.iter().position(|x| x.addr == r.address) {
                Some(i) => {
                    let mut kept = st.reals.swap_remove(i);
                    kept.weight = r.weight;
                    kept.max_conns = r.max_connections;
                    kept.publish(s.on_down);
                    next.push(kept);
                }
                None => {
                    tracing::info!(service = %s.name, server = %r.address, "real server added");
                    next.push(RealState::new(r, &s, now));
                    added.push(r.address);
                }
            }
        }
        for gone in &st.reals {
            gone.retire();
            tracing::info!(service = %s.name, server = %gone.addr, active = gone.active, "real \
                server removed; its open connections finish");
        }
        st.reals = next;
        st.servers_changed();
    }
    rt.set_conf(s);
    // After the new configuration is in place: a checker stops when its
    // server is not in the configuration.
    for addr in added {
        tasks.push(tokio::spawn(health_loop(rt.clone(), addr)));
    }
}
