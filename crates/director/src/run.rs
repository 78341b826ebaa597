//! The director at run time: one accept loop per virtual service, one health
//! checker per real server, one control socket. Decisions come from `core`
//! (scheduler, health state machine); this module only moves bytes and time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tacvs_proto::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::task::JoinHandle;

use crate::config::{CheckKind, DirectorFile, OnDown, Probe, ProxyHeader, Service};
use crate::core::health::{CheckResult, Health, State};
use crate::core::sched::{Backend, Flow, Scheduler};

/// One real server's live state.
#[derive(Debug)]
struct Real {
    addr: SocketAddr,
    weight: u32,
    /// Operator override (drain = Some(0)).
    admin_weight: Option<u32>,
    max_conns: u32,
    health: Health,
    active: u32,
    total: u64,
    connect_failures: u64,
    last_check_ms: Option<f64>,
    last_result: String,
    /// Start order of the last check applied.
    check_seq: u64,
    cps: f64,
    rate_mark: (u64, Instant),
}

#[derive(Debug)]
struct ServiceState {
    reals: Vec<Real>,
    sched: Scheduler,
}

/// A virtual service at run time.
#[derive(Debug)]
pub struct ServiceRt {
    conf: arc_swap::ArcSwap<Service>,
    /// The bound VIP (the configured one with port 0 resolved).
    vip: SocketAddr,
    state: Mutex<ServiceState>,
    conns: AtomicUsize,
}

impl ServiceRt {
    fn conf(&self) -> Arc<Service> {
        self.conf.load_full()
    }

    fn view(st: &ServiceState, on_down: OnDown, exclude: &[usize]) -> Vec<Backend> {
        st.reals
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let weight = r.admin_weight.unwrap_or(r.weight);
                let up = r.health.schedulable() && !exclude.contains(&i);
                // inhibit: a failed server stays in the table with weight 0.
                let (weight, up) = if !r.health.schedulable() && on_down == OnDown::Inhibit {
                    (0, true)
                } else {
                    (weight, up)
                };
                Backend {
                    key: r.addr.to_string(),
                    weight,
                    active: r.active,
                    max_conns: r.max_conns,
                    up,
                }
            })
            .collect()
    }

    /// Pick a real server and count the connection on it. Servers are named by
    /// address (indices shift when a reload adds or removes servers).
    fn pick(&self, flow: Flow, exclude: &[SocketAddr]) -> Option<SocketAddr> {
        let on_down = self.conf.load().on_down;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let skip: Vec<usize> = st
            .reals
            .iter()
            .enumerate()
            .filter(|(_, r)| exclude.contains(&r.addr))
            .map(|(i, _)| i)
            .collect();
        let view = Self::view(&st, on_down, &skip);
        let i = st.sched.pick(&view, flow)?;
        let r = &mut st.reals[i];
        r.active += 1;
        r.total += 1;
        Some(r.addr)
    }

    fn with_real(&self, addr: SocketAddr, f: impl FnOnce(&mut Real)) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = st.reals.iter_mut().find(|r| r.addr == addr) {
            f(r);
        }
    }

    fn release(&self, addr: SocketAddr) {
        self.with_real(addr, |r| r.active = r.active.saturating_sub(1));
    }

    fn connect_failed(&self, addr: SocketAddr) {
        self.with_real(addr, |r| {
            r.active = r.active.saturating_sub(1);
            r.total = r.total.saturating_sub(1);
            r.connect_failures += 1;
        });
    }
}

/// What `status` reports for one real server.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RealStatus {
    /// Address.
    pub address: String,
    /// up / misconfigured / down.
    pub state: String,
    /// Weight in force (after drain/weight overrides).
    pub weight: u32,
    /// Configured weight.
    pub config_weight: u32,
    /// Open proxied connections.
    pub active: u32,
    /// Connections sent here since start.
    pub total: u64,
    /// New connections per second, over the last second or so.
    pub cps: f64,
    /// Failed connects (each retried elsewhere).
    pub connect_failures: u64,
    /// Last check result.
    pub last_check: String,
    /// Its latency, ms.
    pub last_check_ms: Option<f64>,
    /// Seconds in the current state.
    pub state_for_s: f64,
}

/// What `status` reports for one service.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// VIP:port.
    pub listen: String,
    /// Scheduler name.
    pub scheduler: String,
    /// Device connections open.
    pub active: usize,
    /// Real servers.
    pub reals: Vec<RealStatus>,
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Up => "up",
        State::Misconfigured => "misconfigured",
        State::Down => "down",
    }
}

/// A running director.
#[derive(Debug)]
pub struct DirectorHandle {
    /// Bound VIP addresses, in service order.
    pub local_addrs: Vec<SocketAddr>,
    services: Vec<Arc<ServiceRt>>,
    tasks: Vec<JoinHandle<()>>,
    control: Option<PathBuf>,
    vrrp: Arc<crate::failover::Shared>,
    vrrp_task: Option<JoinHandle<()>>,
    stop_vrrp: tokio::sync::watch::Sender<bool>,
}

impl DirectorHandle {
    /// The status table.
    pub fn status(&self) -> Vec<ServiceStatus> {
        status(&self.services)
    }

    /// Set a real server's weight override (`None` = back to configured);
    /// returns how many services had it.
    pub fn set_weight(&self, server: SocketAddr, weight: Option<u32>) -> usize {
        set_weight(&self.services, server, weight)
    }

    /// VRRP state, when `[vrrp]` is configured.
    pub fn vrrp(&self) -> Option<crate::failover::VrrpStatus> {
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
}

/// Whether every virtual service has a real server in state up (VRRP tracking).
fn all_served(services: &[Arc<ServiceRt>]) -> bool {
    services.iter().all(|s| {
        let st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        st.reals
            .iter()
            .any(|r| r.health.state() == State::Up && r.admin_weight.unwrap_or(r.weight) > 0)
    })
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

fn status(services: &[Arc<ServiceRt>]) -> Vec<ServiceStatus> {
    let now = Instant::now();
    services
        .iter()
        .map(|s| {
            let conf = s.conf();
            let st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            ServiceStatus {
                name: conf.name.clone(),
                listen: s.vip.to_string(),
                scheduler: conf.scheduler.name().into(),
                active: s.conns.load(Ordering::Relaxed),
                reals: st
                    .reals
                    .iter()
                    .map(|r| RealStatus {
                        address: r.addr.to_string(),
                        state: state_name(r.health.state()).into(),
                        weight: r.admin_weight.unwrap_or(r.weight),
                        config_weight: r.weight,
                        active: r.active,
                        total: r.total,
                        cps: r.cps,
                        connect_failures: r.connect_failures,
                        last_check: r.last_result.clone(),
                        last_check_ms: r.last_check_ms,
                        state_for_s: (now - r.health.since()).as_secs_f64(),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn set_weight(services: &[Arc<ServiceRt>], server: SocketAddr, weight: Option<u32>) -> usize {
    let mut n = 0;
    for s in services {
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        for r in st.reals.iter_mut().filter(|r| r.addr == server) {
            r.admin_weight = weight;
            n += 1;
            tracing::info!(service = %s.conf().name, %server, weight = ?weight, "weight override");
        }
    }
    n
}

/// Start every service, its health checkers and the control socket.
pub async fn start(conf: DirectorFile) -> std::io::Result<DirectorHandle> {
    let now = Instant::now();
    let mut services = Vec::new();
    let mut tasks = Vec::new();
    let mut local_addrs = Vec::new();
    let vips: Vec<std::net::IpAddr> =
        conf.vrrp.iter().flat_map(|v| v.vips.iter().map(|a| a.0.into())).collect();
    for (si, s) in conf.services.into_iter().enumerate() {
        let reals = s.reals.iter().map(|r| new_real(r, &s, now)).collect();
        let listener = listen(s.listen, vips.contains(&s.listen.ip())).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("service {:?}: cannot listen on {}: {e}", s.name, s.listen),
            )
        })?;
        local_addrs.push(listener.local_addr()?);
        tracing::info!(service = %s.name, vip = %listener.local_addr()?, scheduler = %s.scheduler, "virtual service up");
        let vip = listener.local_addr()?;
        let rt = Arc::new(ServiceRt {
            vip,
            state: Mutex::new(ServiceState {
                reals,
                sched: Scheduler::new(s.scheduler, 0x7ac5 + si as u64),
            }),
            conf: arc_swap::ArcSwap::from_pointee(s),
            conns: AtomicUsize::new(0),
        });
        for r in &rt.conf().reals {
            tasks.push(tokio::spawn(health_loop(rt.clone(), r.address)));
        }
        tasks.push(tokio::spawn(accept_loop(rt.clone(), listener)));
        services.push(rt);
    }
    let control = conf.director.control_socket.clone();
    if let Some(dir) = control.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&control);
    let ul = UnixListener::bind(&control).map_err(|e| {
        std::io::Error::new(e.kind(), format!("control socket {}: {e}", control.display()))
    })?;
    let vrrp = Arc::new(crate::failover::Shared::default());
    let (stop_vrrp, stopped) = tokio::sync::watch::channel(false);
    let vrrp_task = match conf.vrrp {
        Some(v) => {
            let router = crate::failover::Router::new(v, vrrp.clone())
                .await
                .map_err(std::io::Error::other)?;
            let tracked = services.clone();
            Some(tokio::spawn(router.run(move || all_served(&tracked), stopped)))
        }
        None => None,
    };
    tasks.push(tokio::spawn(control_loop(services.clone(), vrrp.clone(), ul)));
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

fn new_real(r: &crate::config::RealConf, s: &Service, now: Instant) -> Real {
    Real {
        addr: r.address,
        weight: r.weight,
        admin_weight: None,
        max_conns: r.max_connections,
        // Start up: devices are served at once, and `fall` quick checks remove a
        // dead server well under a second.
        health: Health::new(s.health.rise, s.health.fall, State::Up, now),
        active: 0,
        total: 0,
        connect_failures: 0,
        last_check_ms: None,
        last_result: "not checked yet".into(),
        check_seq: 0,
        cps: 0.0,
        rate_mark: (0, now),
    }
}

async fn accept_loop(svc: Arc<ServiceRt>, listener: TcpListener) {
    let vip = svc.vip;
    loop {
        let (device, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(service = %svc.conf().name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if svc.conns.fetch_add(1, Ordering::AcqRel) >= svc.conf.load().max_connections {
            svc.conns.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("tacvs_director_rejects_total", "service" => svc.conf().name.clone(), "reason" => "max_connections")
                .increment(1);
            continue;
        }
        let svc2 = svc.clone();
        tokio::spawn(async move {
            proxy(&svc2, device, peer, vip).await;
            svc2.conns.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// The PROXY header announcing `device` → `vip`.
pub fn proxy_header(kind: ProxyHeader, device: SocketAddr, vip: SocketAddr) -> Vec<u8> {
    let (device, vip) = match (device, vip) {
        // Mixed families cannot share a header; map v4 into v6.
        (SocketAddr::V4(d), SocketAddr::V6(_)) => {
            (SocketAddr::new(d.ip().to_ipv6_mapped().into(), d.port()), vip)
        }
        (SocketAddr::V6(_), SocketAddr::V4(v)) => {
            (device, SocketAddr::new(v.ip().to_ipv6_mapped().into(), v.port()))
        }
        pair => pair,
    };
    match kind {
        ProxyHeader::None => Vec::new(),
        ProxyHeader::V1 => {
            let fam = if device.is_ipv4() { "TCP4" } else { "TCP6" };
            format!("PROXY {fam} {} {} {} {}\r\n", device.ip(), vip.ip(), device.port(), vip.port())
                .into_bytes()
        }
        ProxyHeader::V2 => {
            let addrs: ppp::v2::Addresses = (device, vip).into();
            ppp::v2::Builder::with_addresses(
                ppp::v2::Version::Two | ppp::v2::Command::Proxy,
                ppp::v2::Protocol::Stream,
                addrs,
            )
            .build()
            .unwrap_or_default()
        }
    }
}

/// A PROXY v2 LOCAL header (health checks: "this is the director itself").
pub fn proxy_local() -> Vec<u8> {
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Local,
        ppp::v2::Protocol::Unspecified,
        ppp::v2::Addresses::Unspecified,
    )
    .build()
    .unwrap_or_default()
}

async fn proxy(svc: &ServiceRt, device: TcpStream, peer: SocketAddr, vip: SocketAddr) {
    device.set_nodelay(true).ok();
    let conf = svc.conf();
    let flow = Flow { client: peer, vip };
    let mut tried = Vec::new();
    let mut chosen = None;
    for _ in 0..conf.connect_attempts {
        let Some(addr) = svc.pick(flow, &tried) else { break };
        match tokio::time::timeout(conf.connect_timeout.get(), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                chosen = Some((Some(addr), addr, s));
                break;
            }
            // Per-connection detail at debug: a dead server fails many connects
            // before its checks take it out; status and metrics count them.
            Ok(Err(e)) => {
                tracing::debug!(service = %conf.name, server = %addr, error = %e, "connect failed; trying another server")
            }
            Err(_) => {
                tracing::debug!(service = %conf.name, server = %addr, "connect timed out; trying another server")
            }
        }
        svc.connect_failed(addr);
        metrics::counter!("tacvs_director_connect_failures_total", "service" => conf.name.clone(), "server" => addr.to_string())
            .increment(1);
        tried.push(addr);
    }
    drop(tried);
    let (counted, addr, server) = match chosen {
        Some(c) => c,
        None => match conf.sorry_server {
            Some(sorry) => {
                match tokio::time::timeout(conf.connect_timeout.get(), TcpStream::connect(sorry))
                    .await
                {
                    Ok(Ok(s)) => {
                        tracing::warn!(service = %conf.name, device = %peer, %sorry, "no real server available; using the sorry server");
                        (None, sorry, s)
                    }
                    _ => return,
                }
            }
            None => {
                tracing::warn!(service = %conf.name, device = %peer, "no real server available; closing");
                metrics::counter!("tacvs_director_rejects_total", "service" => conf.name.clone(), "reason" => "no_server").increment(1);
                return;
            }
        },
    };
    server.set_nodelay(true).ok();
    metrics::counter!("tacvs_director_connections_total", "service" => conf.name.clone(), "server" => addr.to_string()).increment(1);
    // The device speaks first (RFC 8907): send the PROXY header and its first
    // bytes in one segment, so the server wakes once, not twice.
    let mut first = take_buf();
    first.extend_from_slice(&proxy_header(conf.proxy_protocol, peer, vip));
    let got =
        match tokio::time::timeout(conf.idle_timeout.get(), read_some(&device, &mut first)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
    let sent = write_all(&server, &first).await.is_ok();
    // Not kept for the connection's life: idle connections should cost little.
    give_buf(first);
    if sent {
        if got == 0 {
            let _ = socket2::SockRef::from(&server).shutdown(std::net::Shutdown::Write);
        }
        match conf.copy {
            crate::config::CopyMode::Userspace => {
                relay(&device, &server, conf.idle_timeout.get(), got > 0).await
            }
            crate::config::CopyMode::Splice => {
                if let Err(e) =
                    crate::splice::relay(&device, &server, conf.idle_timeout.get(), got > 0).await
                {
                    tracing::debug!(service = %conf.name, error = %e, "splice relay ended");
                }
            }
        }
    }
    if let Some(a) = counted {
        svc.release(a);
    }
}

thread_local! {
    /// Relay buffers, reused: only connections moving bytes hold one, and the
    /// heap does not fragment into per-connection holes.
    static POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_buf() -> Vec<u8> {
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(8192))
}

fn give_buf(mut b: Vec<u8>) {
    b.clear();
    if b.capacity() <= 64 * 1024 {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < 256 {
                p.push(b);
            }
        });
    }
}

/// Read what is available (at least one byte, or 0 at end of stream) onto `buf`.
async fn read_some(s: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        s.readable().await?;
        buf.reserve(4096);
        match s.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(s: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copy both ways until both sides have closed (a half-close is passed on) or
/// nothing moved for `idle`. Buffers exist only while bytes move: an idle
/// proxied connection holds none (thousands of idle single-connect devices).
pub async fn relay(a: &TcpStream, b: &TcpStream, idle: Duration, a_open: bool) {
    let (mut a_open, mut b_open) = (a_open, true);
    while a_open || b_open {
        let from_a = tokio::select! {
            r = a.readable(), if a_open => { if r.is_err() { return } true }
            r = b.readable(), if b_open => { if r.is_err() { return } false }
            _ = tokio::time::sleep(idle) => return,
        };
        let (src, dst) = if from_a { (a, b) } else { (b, a) };
        let mut buf = take_buf();
        match src.try_read_buf(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => give_buf(buf),
            Ok(0) | Err(_) => {
                give_buf(buf);
                if from_a {
                    a_open = false
                } else {
                    b_open = false
                }
                let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
            }
            Ok(_) => {
                let ok = write_all(dst, &buf).await.is_ok();
                give_buf(buf);
                if !ok {
                    return;
                }
            }
        }
    }
}

/// One checker per real server. A check starts on every tick even while the
/// previous one still waits for its timeout (timeout > interval), so a hung
/// server is out of scheduling within fall × interval + timeout, not fall ×
/// timeout; results are applied in the order the checks started.
async fn health_loop(svc: Arc<ServiceRt>, addr: SocketAddr) {
    let mut interval = svc.conf.load().health.interval.get();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sid: u32 = 0x5000_0000 ^ u32::from(addr.port());
    let mut seq: u64 = 0;
    let mut running = tokio::task::JoinSet::new();
    loop {
        tick.tick().await;
        while running.try_join_next().is_some() {}
        let conf = svc.conf();
        if !conf.reals.iter().any(|r| r.address == addr) {
            return; // removed by a reload
        }
        if conf.health.interval.get() != interval {
            interval = conf.health.interval.get();
            tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        sid = sid.wrapping_add(2);
        seq += 1;
        let (svc, started, this_sid) = (svc.clone(), seq, sid);
        // Dropped with the loop (a removed server's checks stop at once).
        running.spawn(async move {
            let t = Instant::now();
            let result =
                match tokio::time::timeout(conf.health.timeout.get(), check(&conf, addr, this_sid))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => CheckResult::Failed {
                        reason: format!("no answer within {}", conf.health.timeout),
                    },
                };
            record(&svc, &conf, addr, started, t.elapsed().as_secs_f64() * 1e3, result);
        });
    }
}

/// Apply one check's result (ignored if a later-started check already reported).
fn record(
    svc: &ServiceRt,
    conf: &Service,
    addr: SocketAddr,
    seq: u64,
    ms: f64,
    result: CheckResult,
) {
    let mut st = svc.state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(r) = st.reals.iter_mut().find(|r| r.addr == addr) else { return };
    if seq <= r.check_seq {
        return;
    }
    r.check_seq = seq;
    r.last_check_ms = Some(ms);
    r.last_result = match &result {
        CheckResult::Ok { .. } => "ok".into(),
        CheckResult::Misconfigured { reason, .. } => format!("misconfigured: {reason}"),
        CheckResult::Failed { reason } => format!("failed: {reason}"),
    };
    let now = Instant::now();
    let (mark_total, mark_at) = r.rate_mark;
    if now - mark_at >= Duration::from_secs(1) {
        r.cps = (r.total - mark_total.min(r.total)) as f64 / (now - mark_at).as_secs_f64();
        r.rate_mark = (r.total, now);
    }
    if let Some(tr) = r.health.observe(result, now) {
        let what = if tr.to == State::Down {
            "real server out of scheduling"
        } else {
            "real server state change"
        };
        tracing::warn!(service = %conf.name, server = %addr, from = state_name(tr.from), to = state_name(tr.to), reason = %tr.reason, "{what}");
        metrics::counter!("tacvs_director_state_changes_total", "service" => conf.name.clone(), "server" => addr.to_string(), "to" => state_name(tr.to)).increment(1);
    }
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

impl DirectorHandle {
    /// Apply a new configuration to the running services (SIGHUP): scheduler,
    /// real servers (added ones start checked-up, removed ones take no new
    /// connections and their open ones finish), weights, caps, timeouts and
    /// health settings. Services are matched by name; a service added, removed
    /// or moved to another address needs a restart, and the reload is refused.
    pub fn reload(&mut self, new: DirectorFile) -> Result<(), ReloadError> {
        let mut problems = Vec::new();
        for s in &new.services {
            match self.services.iter().find(|rt| rt.conf().name == s.name) {
                None => problems.push(ReloadProblem::Added(s.name.clone())),
                Some(rt) if rt.conf().listen != s.listen => {
                    problems.push(ReloadProblem::Moved(s.name.clone(), s.listen))
                }
                _ => {}
            }
        }
        for rt in &self.services {
            if !new.services.iter().any(|s| s.name == rt.conf().name) {
                problems.push(ReloadProblem::Removed(rt.conf().name.clone()));
            }
        }
        if !problems.is_empty() {
            return Err(ReloadError(problems));
        }
        let now = Instant::now();
        for s in new.services {
            let rt = self
                .services
                .iter()
                .find(|rt| rt.conf().name == s.name)
                .expect("checked above")
                .clone();
            let old = rt.conf();
            {
                let mut st = rt.state.lock().unwrap_or_else(|e| e.into_inner());
                if old.scheduler != s.scheduler {
                    st.sched = Scheduler::new(s.scheduler, 0x7ac5);
                    tracing::info!(service = %s.name, scheduler = %s.scheduler, "scheduler changed");
                }
                let mut next = Vec::new();
                for r in &s.reals {
                    match st.reals.iter().position(|x| x.addr == r.address) {
                        Some(i) => {
                            let mut kept = st.reals.swap_remove(i);
                            kept.weight = r.weight;
                            kept.max_conns = r.max_connections;
                            next.push(kept);
                        }
                        None => {
                            tracing::info!(service = %s.name, server = %r.address, "real server added");
                            next.push(new_real(r, &s, now));
                            self.tasks.push(tokio::spawn(health_loop(rt.clone(), r.address)));
                        }
                    }
                }
                for gone in &st.reals {
                    tracing::info!(service = %s.name, server = %gone.addr, active = gone.active, "real server removed; its open connections finish");
                }
                st.reals = next;
            }
            rt.conf.store(Arc::new(s));
        }
        Ok(())
    }
}

/// One health check.
async fn check(s: &Service, addr: SocketAddr, sid: u32) -> CheckResult {
    let t = Instant::now();
    let mut stream = match TcpStream::connect(addr).await {
        Ok(st) => st,
        Err(e) => return CheckResult::Failed { reason: format!("connect: {e}") },
    };
    if s.proxy_protocol != ProxyHeader::None
        && let Err(e) = stream.write_all(&proxy_local()).await
    {
        return CheckResult::Failed { reason: format!("write: {e}") };
    }
    if s.health.check == CheckKind::Tcp {
        return CheckResult::Ok { latency: t.elapsed() };
    }
    let h = &s.health;
    let key = Key::new(h.key.as_ref().map(|k| k.expose().as_bytes().to_vec()).unwrap_or_default());
    let mut m = ClientConnection::new(ClientConfig::default(), Some(key));
    let started = match h.probe {
        Probe::Authorize => m.authorize(
            sid,
            AaaRequest::new(
                h.user.clone(),
                vec![Argument::new("service", "shell", true).expect("static")],
            ),
        ),
        Probe::Authenticate => m.start_authen(
            sid,
            AuthenStart {
                action: AuthenAction::Login,
                priv_lvl: PrivLvl::USER,
                authen_type: AuthenType::Pap,
                authen_service: AuthenService::Login,
                user: Bytes::from(h.user.clone()),
                port: Bytes::from_static(b"tacvs-director"),
                rem_addr: Bytes::new(),
                data: Bytes::from(
                    h.password.as_ref().map(|p| p.expose().as_bytes().to_vec()).unwrap_or_default(),
                ),
            },
        ),
    };
    if let Err(e) = started {
        return CheckResult::Failed { reason: format!("probe: {e}") };
    }
    let mut out = Vec::new();
    m.poll_transmit(&mut out);
    if let Err(e) = stream.write_all(&out).await {
        return CheckResult::Failed { reason: format!("write: {e}") };
    }
    let mut buf = BytesMut::with_capacity(512);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) => return CheckResult::Failed { reason: "closed without a reply".into() },
            Err(e) => return CheckResult::Failed { reason: format!("read: {e}") },
            Ok(_) => {}
        }
        m.handle_input(&mut buf);
        if let Some(ev) = m.poll_event() {
            let latency = t.elapsed();
            return match ev {
                ClientEvent::AuthorResponse { response, .. } => match response.status {
                    AuthorStatus::PassAdd | AuthorStatus::PassRepl => CheckResult::Ok { latency },
                    other => CheckResult::Misconfigured {
                        reason: format!("probe user {:?} got {other}", h.user),
                        latency,
                    },
                },
                ClientEvent::AuthenReply { reply, .. } => match reply.status {
                    AuthenStatus::Pass => CheckResult::Ok { latency },
                    other => CheckResult::Misconfigured {
                        reason: format!("probe login {:?} got {other}", h.user),
                        latency,
                    },
                },
                ClientEvent::SessionFailed { error, .. } => {
                    CheckResult::Misconfigured { reason: format!("{error}"), latency }
                }
                other => CheckResult::Failed { reason: format!("unexpected: {other:?}") },
            };
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct ControlRequest {
    cmd: String,
    #[serde(default)]
    server: Option<SocketAddr>,
    #[serde(default)]
    weight: Option<u32>,
}

async fn control_loop(
    services: Vec<Arc<ServiceRt>>,
    vrrp: Arc<crate::failover::Shared>,
    ul: UnixListener,
) {
    while let Ok((mut s, _)) = ul.accept().await {
        let services = services.clone();
        let vrrp = vrrp.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.contains(&b'\n') && buf.len() < 4096 {
                match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let reply = match serde_json::from_slice::<ControlRequest>(
                buf.split(|&b| b == b'\n').next().unwrap_or_default(),
            ) {
                Err(e) => serde_json::json!({"ok": false, "error": format!("bad request: {e}")}),
                Ok(r) => match (r.cmd.as_str(), r.server) {
                    ("status", _) => {
                        serde_json::json!({"ok": true, "services": status(&services), "vrrp": vrrp.get()})
                    }
                    ("drain", Some(a)) => counted(set_weight(&services, a, Some(0)), a),
                    ("enable", Some(a)) => counted(set_weight(&services, a, None), a),
                    ("weight", Some(a)) => match r.weight {
                        Some(w) => counted(set_weight(&services, a, Some(w)), a),
                        None => serde_json::json!({"ok": false, "error": "weight needs a number"}),
                    },
                    (c, _) => {
                        serde_json::json!({"ok": false, "error": format!("unknown command {c:?} or missing server")})
                    }
                },
            };
            let mut line = reply.to_string();
            line.push('\n');
            let _ = s.write_all(line.as_bytes()).await;
        });
    }
}

fn counted(n: usize, a: SocketAddr) -> serde_json::Value {
    if n == 0 {
        serde_json::json!({"ok": false, "error": format!("no real server {a} in any service")})
    } else {
        serde_json::json!({"ok": true, "changed": n})
    }
}

/// Send one control request to a director's socket and return the reply.
pub async fn control(
    socket: &std::path::Path,
    request: &serde_json::Value,
) -> std::io::Result<serde_json::Value> {
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    let mut line = request.to_string();
    line.push('\n');
    s.write_all(line.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::other("control socket timed out"))??;
    serde_json::from_slice(&out)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Render status like `ipvsadm -L -n --stats`, VRRP first when configured.
pub fn render(services: &[ServiceStatus], vrrp: Option<&crate::failover::VrrpStatus>) -> String {
    let mut s = String::new();
    if let Some(v) = vrrp {
        s.push_str(&format!(
            "VRRP vrid {} on {} ({}): {} priority {} (configured {}), master {}, {:.1} s in state, {} changes, last: {}\n  VIPs {}\n",
            v.vrid,
            v.interface,
            v.source,
            v.state,
            v.priority,
            v.config_priority,
            if v.master.is_empty() { "-" } else { &v.master },
            v.state_for_s,
            v.transitions,
            v.reason,
            v.vips.join(" ")
        ));
    }
    for svc in services {
        s.push_str(&format!(
            "TCP  {} {} ({}), {} active\n",
            svc.listen, svc.scheduler, svc.name, svc.active
        ));
        s.push_str(&format!(
            "  {:<22} {:<14} {:>6} {:>7} {:>10} {:>8}  {}\n",
            "-> RemoteAddress:Port",
            "State",
            "Weight",
            "ActConn",
            "TotConn",
            "CheckMs",
            "LastCheck"
        ));
        for r in &svc.reals {
            let w = if r.weight != r.config_weight {
                format!("{}*", r.weight)
            } else {
                r.weight.to_string()
            };
            s.push_str(&format!(
                "  -> {:<19} {:<14} {:>6} {:>7} {:>10} {:>8.1} {:>8}  {}\n",
                r.address,
                r.state,
                w,
                r.active,
                r.total,
                r.cps,
                r.last_check_ms.map(|m| format!("{m:.2}")).unwrap_or_else(|| "-".into()),
                r.last_check
            ));
        }
    }
    s
}
