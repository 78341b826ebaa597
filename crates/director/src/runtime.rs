//! Starting, reloading and stopping a director: one accept loop per virtual
//! service, one checker per real server, the control socket and, with
//! `[vrrp]`, the virtual router. [`DirectorHandle`] owns them all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::checker::health_loop;
use crate::config::DirectorFile;
use crate::control::access::{Access, group_id};
use crate::control::protocol::{ServiceStatus, StatusReport, VrrpStatus};
use crate::control::server;
use crate::core::sched::Scheduler;
use crate::failover::{Router, VrrpCell};
use crate::proxy::accept_loop;
use crate::service::{RealState, Registry, ServiceRt};

/// Seed of the `twos` scheduler's random choices (service index added).
const SEED: u64 = 0x7ac5;

/// A running director.
#[derive(Debug)]
pub struct DirectorHandle {
    /// Bound VIP addresses, in service order.
    pub local_addrs: Vec<SocketAddr>,
    services: Arc<Registry>,
    tasks: Vec<JoinHandle<()>>,
    control: Option<PathBuf>,
    vrrp: Arc<VrrpCell>,
    vrrp_task: Option<JoinHandle<()>>,
    stop_vrrp: tokio::sync::watch::Sender<bool>,
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ReloadError(pub Vec<ReloadProblem>);

/// One reason a reload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadProblem {
    /// A service that is not running.
    #[error("service {0:?} is new: restart the director to add it")]
    Added(String),
    /// A running service missing from the new file.
    #[error("service {0:?} was removed: restart the director to remove it")]
    Removed(String),
    /// A service on another address.
    #[error("service {0:?} moved to {1}: restart the director to change addresses")]
    Moved(String, SocketAddr),
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
}

/// What to do about a bind error.
fn listen_hint(e: &std::io::Error, addr: &SocketAddr) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied if addr.port() < 1024 => format!(
            " (port {} is privileged: run as root, or give the binary CAP_NET_BIND_SERVICE, e.g. `setcap cap_net_bind_service=+ep $(command -v tacvs)`)",
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

/// Start every service, its health checkers, the control socket and VRRP.
/// Everything that can fail (binding every address, the control socket, VRRP's
/// sockets) is done before anything runs or is announced.
pub async fn start(conf: DirectorFile) -> Result<DirectorHandle, StartError> {
    let now = Instant::now();
    let vips: Vec<std::net::IpAddr> =
        conf.vrrp.iter().flat_map(|v| v.vips.iter().map(|a| a.0.into())).collect();
    let mut bound = Vec::new();
    for s in conf.services {
        match listen(s.listen, vips.contains(&s.listen.ip())).and_then(|l| Ok((l.local_addr()?, l)))
        {
            Ok((vip, l)) => bound.push((s, vip, l)),
            Err(error) => {
                return Err(StartError::Listen { service: s.name, addr: s.listen, error });
            }
        }
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
    let vrrp = Arc::new(VrrpCell::default());
    let router = match conf.vrrp {
        Some(v) => Some(Router::new(v, vrrp.clone()).await.map_err(|e| undo(e.into()))?),
        None => None,
    };

    // Everything is bound: run.
    let mut services = Vec::new();
    let mut tasks = Vec::new();
    let mut local_addrs = Vec::new();
    for (si, (s, vip, listener)) in bound.into_iter().enumerate() {
        local_addrs.push(vip);
        tracing::info!(service = %s.name, %vip, scheduler = %s.scheduler, real_servers = s.reals.len(), "virtual service up");
        let rt = Arc::new(ServiceRt::new(s, vip, SEED + si as u64, now));
        for r in &rt.conf().reals {
            tasks.push(tokio::spawn(health_loop(rt.clone(), r.address)));
        }
        tasks.push(tokio::spawn(accept_loop(rt.clone(), listener)));
        services.push(rt);
    }
    let services = Arc::new(ArcSwap::from_pointee(services));
    let (stop_vrrp, stopped) = tokio::sync::watch::channel(false);
    let vrrp_task = router.map(|router| {
        let tracked = services.clone();
        tokio::spawn(router.run(move || all_served(&tracked), stopped))
    });
    tasks.push(tokio::spawn(server::serve(services.clone(), vrrp.clone(), ul, access)));
    Ok(DirectorHandle {
        local_addrs,
        services,
        tasks,
        control: Some(control),
        vrrp,
        vrrp_task,
        stop_vrrp,
    })
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
        server::status(&self.services.load(), &self.vrrp)
    }

    /// Set a real server's weight override (`None` = back to configured);
    /// returns how many services had it.
    pub fn set_weight(&self, server: SocketAddr, weight: Option<u32>) -> usize {
        server::set_weight(&self.services.load(), server, weight).len()
    }

    /// VRRP state, when `[vrrp]` is configured.
    pub fn vrrp(&self) -> Option<VrrpStatus> {
        self.vrrp.get()
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
        for t in self.tasks.iter().chain(&self.vrrp_task) {
            t.abort();
        }
        if let Some(p) = &self.control {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Apply a new configuration to the running services (SIGHUP): scheduler,
    /// real servers (added ones start checked-up, removed ones take no new
    /// connections and their open ones finish), weights, caps, timeouts and
    /// health settings. Services are matched by name; a service added, removed
    /// or moved to another address needs a restart, and the reload is refused.
    pub fn reload(&mut self, new: DirectorFile) -> Result<(), ReloadError> {
        let services = self.services.load_full();
        let by_name = |name: &str| services.iter().find(|rt| rt.conf().name == name).cloned();
        let mut problems = Vec::new();
        for s in &new.services {
            match by_name(&s.name) {
                None => problems.push(ReloadProblem::Added(s.name.clone())),
                Some(rt) if rt.conf().listen != s.listen => {
                    problems.push(ReloadProblem::Moved(s.name.clone(), s.listen))
                }
                _ => {}
            }
        }
        for rt in services.iter() {
            if !new.services.iter().any(|s| s.name == rt.conf().name) {
                problems.push(ReloadProblem::Removed(rt.conf().name.clone()));
            }
        }
        if !problems.is_empty() {
            return Err(ReloadError(problems));
        }
        let now = Instant::now();
        for s in new.services {
            let rt = by_name(&s.name).expect("checked above");
            let old = rt.conf();
            let mut added = Vec::new();
            {
                let mut st = rt.state();
                if old.scheduler != s.scheduler {
                    st.sched = Scheduler::new(s.scheduler, SEED);
                    tracing::info!(service = %s.name, scheduler = %s.scheduler, "scheduler changed");
                }
                let mut next = Vec::new();
                for r in &s.reals {
                    match st.reals.iter().position(|x| x.addr == r.address) {
                        Some(i) => {
                            let mut kept = st.reals.swap_remove(i);
                            kept.weight = r.weight;
                            kept.max_conns = r.max_connections;
                            kept.publish();
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
                    tracing::info!(service = %s.name, server = %gone.addr, active = gone.active, "real server removed; its open connections finish");
                }
                st.reals = next;
                st.servers_changed();
            }
            rt.set_conf(s);
            // After the new configuration is in place: a checker stops when its
            // server is not in the configuration.
            for addr in added {
                self.tasks.push(tokio::spawn(health_loop(rt.clone(), addr)));
            }
        }
        Ok(())
    }
}
