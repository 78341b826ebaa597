//! Direct routing at run time: the XDP data plane (`tacvs-xdp`) on one
//! interface, kept in step with the DR services' health checks, weights and
//! the real servers' MACs; the VRRP master's switch; counters for status and
//! metrics. What to write is decided by the pure [`crate::core::dr::plan`].
//!
//! Contract:
//! * [`Dr::open`] loads and attaches the program (inactive) and checks that
//!   every DR real server is on the interface's segment, before anything
//!   runs; a server behind a router, on another interface or unroutable
//!   refuses the start (or the reload) with the reason.
//! * The engine (`Dr::run`) re-plans every 50 ms and writes a service only
//!   when what it depends on changed; each write swaps the service's table
//!   whole (map-in-map), so no packet sees a half-built table.
//! * MACs come from the kernel's neighbour table: all servers re-read every
//!   5 s and at once when a server's checks bring it back; a missing entry is
//!   retried every 200 ms, with a UDP datagram to the server's discard port
//!   once a second to make the kernel ask (the health checks do too). A MAC
//!   once known is kept until the table shows another.
//! * [`ActiveSwitch`] is the VRRP master's switch: forward and answer ARP
//!   for the VIPs, or pass everything. Without `[vrrp]` the plane is active
//!   from the start. The program is held by a BPF link: when the process
//!   dies the kernel detaches it, and a dead director answers nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tacvs_xdp::neighbour::{self, NeighbourError};
use tacvs_xdp::{AttachMode, AttachedMode, DataPlane, MacAddr, Options};

use crate::config::{Attach, DirectorFile, Mode, OnDown};
use crate::control::protocol::{DrCounters, DrStatus};
use crate::core::dr::{RealView, plan};
use crate::core::health::State;
use crate::core::sched::HashOn;
use crate::service::{Registry, ServiceRt};

/// How often the engine re-plans.
const TICK: Duration = Duration::from_millis(50);
/// How often every MAC is read again.
const REFRESH: Duration = Duration::from_secs(5);
/// How often a missing MAC is looked up again.
const RETRY: Duration = Duration::from_millis(200);
/// How often a server with no MAC is sent a datagram to make the kernel ask.
const PROBE: Duration = Duration::from_secs(1);
/// How often counters are read for status and metrics.
const STATS: Duration = Duration::from_millis(500);

/// Why direct routing could not start (or a reload was refused).
#[derive(Debug, thiserror::Error)]
pub enum DrError {
    /// The data plane refused to load or attach.
    #[error("direct routing: {0}")]
    Plane(#[from] tacvs_xdp::DataPlaneError),
    /// A real server is not on the segment.
    #[error("direct routing, service {service:?}: {error}")]
    NotOnSegment {
        /// The service.
        service: String,
        /// Why.
        error: NeighbourError,
    },
    /// Netlink failed while checking the servers.
    #[error("direct routing: reading routes and neighbours: {0}")]
    Netlink(NeighbourError),
    /// A change that needs a restart.
    #[error("direct routing: {0}")]
    Restart(String),
    /// A service could not be written to the data plane.
    #[error("direct routing, service {service:?}: {error}")]
    Service {
        /// The service.
        service: String,
        /// Why.
        error: tacvs_xdp::DataPlaneError,
    },
}

/// What the engine last saw and wrote for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    views: Vec<RealView>,
    hash: HashOn,
    on_down: OnDown,
}

/// A real server's MAC and what is wrong when it has none.
#[derive(Debug, Default, Clone)]
struct Mac {
    mac: Option<MacAddr>,
    problem: Option<String>,
    last_try: Option<Instant>,
    last_probe: Option<Instant>,
}

/// Per real server, for status.
#[derive(Debug, Clone, Default)]
pub(crate) struct RealDr {
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub flows_per_s: f64,
    pub mac: String,
    pub problem: Option<String>,
}

/// What the engine last read: the plane, and each (VIP, server)'s counters.
type Snapshot = (DrStatus, HashMap<(SocketAddr, IpAddr), RealDr>);

/// A service and its servers' (address, weight in force, health).
type Views = Vec<(Arc<ServiceRt>, Vec<(SocketAddr, u32, State)>)>;

/// The engine's last view, read by the control socket.
#[derive(Debug, Default)]
pub(crate) struct DrCell {
    snap: Mutex<Option<Snapshot>>,
}

impl DrCell {
    /// The plane's status, if direct routing runs.
    pub fn status(&self) -> Option<DrStatus> {
        self.lock().as_ref().map(|(s, _)| s.clone())
    }

    /// One real server's counters in one service.
    pub fn real(&self, vip: SocketAddr, server: IpAddr) -> Option<RealDr> {
        self.lock().as_ref().and_then(|(_, r)| r.get(&(vip, server)).cloned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Snapshot>> {
        self.snap.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The DR data plane and its bookkeeping.
#[derive(Debug)]
pub struct Dr {
    plane: Arc<Mutex<DataPlane>>,
    interface: String,
    ifindex: u32,
    mode: AttachedMode,
    flow_entries: u32,
    cell: Arc<DrCell>,
}

/// A handle that flips the plane on and off (the VRRP master's switch).
#[derive(Debug, Clone)]
pub struct ActiveSwitch(Arc<Mutex<DataPlane>>);

impl ActiveSwitch {
    /// Forward and answer ARP for the VIPs (`true`), or pass everything.
    pub fn set(&self, active: bool) {
        let r = self.0.lock().unwrap_or_else(|e| e.into_inner()).set_active(active);
        match r {
            Ok(()) => tracing::info!(
                "{}",
                if active {
                    "direct routing active: forwarding and answering ARP for the DR VIPs"
                } else {
                    "direct routing inactive: the DR VIPs' packets pass to the kernel"
                }
            ),
            Err(e) => tracing::error!(error = %e, active, "cannot switch the DR data plane"),
        }
    }
}

fn attach_mode(a: Attach) -> AttachMode {
    match a {
        Attach::Auto => AttachMode::Auto,
        Attach::Native => AttachMode::Native,
        Attach::Generic => AttachMode::Generic,
    }
}

/// Send a datagram to `ip`'s discard port: the kernel resolves the neighbour
/// to send it (the reply, if any, is an ICMP error nobody reads).
fn probe(ip: IpAddr) {
    let any: SocketAddr =
        if ip.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { "[::]:0".parse().expect("literal") };
    if let Ok(s) = std::net::UdpSocket::bind(any) {
        let _ = s.send_to(&[], SocketAddr::new(ip, 9));
    }
}

/// Refuse real servers that are not on the segment of interface `ifindex`
/// (a MAC not known yet is fine: the kernel learns it); probe those without
/// one so that it does.
pub async fn check_segment(ifindex: u32, conf: &DirectorFile) -> Result<(), DrError> {
    for s in conf.services.iter().filter(|s| s.mode == Mode::Dr) {
        let ips: Vec<IpAddr> = s.reals.iter().map(|r| r.address.ip()).collect();
        let found = neighbour::resolve_many(ifindex, &ips).await.map_err(DrError::Netlink)?;
        for (ip, r) in found {
            match r {
                Ok(_) => {}
                Err(e) if e.is_pending() => probe(ip),
                Err(error) => {
                    return Err(DrError::NotOnSegment { service: s.name.clone(), error });
                }
            }
        }
    }
    Ok(())
}

impl Dr {
    /// Load and attach the data plane (inactive) on the file's DR interface,
    /// and check every DR real server is on its segment.
    pub async fn open(conf: &DirectorFile) -> Result<Dr, DrError> {
        let interface = conf.dr_interface().unwrap_or("eth0").to_owned();
        let section = conf.dr.clone().unwrap_or(crate::config::DrSection {
            interface: None,
            attach: Attach::Auto,
            flow_entries: 262_144,
        });
        let mut plane =
            DataPlane::load(Options { flow_entries: section.flow_entries, ..Options::default() })?;
        let mode = plane.attach(&interface, attach_mode(section.attach))?;
        let (ifindex, _) = tacvs_xdp::interface(&interface)?;
        let dr = Dr {
            plane: Arc::new(Mutex::new(plane)),
            interface,
            ifindex,
            mode,
            flow_entries: section.flow_entries,
            cell: Arc::default(),
        };
        check_segment(dr.ifindex, conf).await?;
        tracing::info!(
            interface = %dr.interface,
            mode = %mode,
            flow_entries = dr.flow_entries,
            "direct routing data plane attached (inactive until active)"
        );
        Ok(dr)
    }

    /// The index of the interface the plane forwards on.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The switch VRRP flips.
    pub fn switch(&self) -> ActiveSwitch {
        ActiveSwitch(self.plane.clone())
    }

    pub(crate) fn cell(&self) -> Arc<DrCell> {
        self.cell.clone()
    }

    /// Keep the plane in step with `services` until the task is aborted (the
    /// plane is detached when the last handle on it goes).
    pub(crate) async fn run(self, services: Arc<crate::control::server::Live>) {
        let mut engine = Engine {
            dr: self,
            written: HashMap::new(),
            macs: HashMap::new(),
            states: HashMap::new(),
            last_refresh: None,
            last_stats: None,
            prev_flows: HashMap::new(),
            last_error: None,
            metrics: HashMap::new(),
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            engine.step(&services.services).await;
        }
    }
}

type RealMetrics = [metrics::Counter; 3];

struct Engine {
    dr: Dr,
    written: HashMap<SocketAddr, Written>,
    macs: HashMap<IpAddr, Mac>,
    /// Each (VIP, server)'s last health state, to re-read MACs when one
    /// comes back.
    states: HashMap<(SocketAddr, IpAddr), State>,
    last_refresh: Option<Instant>,
    last_stats: Option<Instant>,
    prev_flows: HashMap<(SocketAddr, IpAddr), (u64, Instant)>,
    last_error: Option<String>,
    metrics: HashMap<(String, IpAddr), RealMetrics>,
}

impl Engine {
    async fn step(&mut self, registry: &Registry) {
        let now = Instant::now();
        let services: Vec<Arc<ServiceRt>> = registry
            .load()
            .iter()
            .filter(|s| s.conf().mode == Mode::Dr && !s.is_retired())
            .cloned()
            .collect();
        let views: Views = services
            .iter()
            .map(|s| {
                let st = s.state();
                let v = st
                    .reals
                    .iter()
                    .map(|r| (r.addr, r.effective_weight(), r.health.state()))
                    .collect();
                (s.clone(), v)
            })
            .collect();
        self.macs_step(&views, now).await;
        for (svc, reals) in &views {
            self.write(svc, reals);
        }
        let live: Vec<SocketAddr> = services.iter().map(|s| s.vip()).collect();
        let gone: Vec<SocketAddr> =
            self.written.keys().filter(|v| !live.contains(v)).copied().collect();
        for vip in gone {
            self.written.remove(&vip);
            let r = self.dr.plane.lock().unwrap_or_else(|e| e.into_inner()).remove_service(vip);
            match r {
                Ok(()) => {
                    tracing::info!(%vip, "direct routing: service removed from the data plane")
                }
                Err(e) => {
                    tracing::error!(%vip, error = %e, "direct routing: cannot remove a service")
                }
            }
        }
        if self.last_stats.is_none_or(|t| now - t >= STATS) {
            self.last_stats = Some(now);
            self.stats(&services, now);
        }
    }

    /// Read MACs: all of them every [`REFRESH`] or when a server came back,
    /// the missing ones every [`RETRY`].
    async fn macs_step(&mut self, views: &Views, now: Instant) {
        let mut came_back = false;
        let mut wanted: Vec<IpAddr> = Vec::new();
        for (svc, reals) in views {
            for &(addr, _, state) in reals {
                let key = (svc.vip(), addr.ip());
                if let Some(before) = self.states.insert(key, state)
                    && before == State::Down
                    && state != State::Down
                {
                    came_back = true;
                }
                if !wanted.contains(&addr.ip()) {
                    wanted.push(addr.ip());
                }
            }
        }
        self.macs.retain(|ip, _| wanted.contains(ip));
        let refresh = came_back || self.last_refresh.is_none_or(|t| now - t >= REFRESH);
        let missing: Vec<IpAddr> = wanted
            .iter()
            .copied()
            .filter(|ip| {
                let m = self.macs.entry(*ip).or_default();
                m.mac.is_none() && m.last_try.is_none_or(|t| now - t >= RETRY)
            })
            .collect();
        let ask: Vec<IpAddr> = if refresh { wanted } else { missing };
        if ask.is_empty() {
            return;
        }
        if refresh {
            self.last_refresh = Some(now);
        }
        let found = match neighbour::resolve_many(self.dr.ifindex, &ask).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "direct routing: cannot read the neighbour table");
                return;
            }
        };
        for (ip, r) in found {
            let m = self.macs.entry(ip).or_default();
            m.last_try = Some(now);
            match r {
                Ok(mac) => {
                    if m.mac != Some(mac) {
                        match m.mac {
                            None => {
                                tracing::info!(server = %ip, %mac, "direct routing: real server's MAC learned")
                            }
                            Some(old) => {
                                tracing::warn!(server = %ip, %old, new = %mac, "direct \
                                    routing: real server's MAC changed")
                            }
                        }
                    }
                    m.mac = Some(mac);
                    m.problem = None;
                }
                Err(e) => {
                    let text = e.to_string();
                    if m.problem.as_deref() != Some(text.as_str()) {
                        if e.is_pending() && m.mac.is_some() {
                            tracing::debug!(server = %ip, error = %text, "direct routing: \
                                neighbour entry gone; keeping the last MAC");
                        } else {
                            tracing::warn!(server = %ip, error = %text, "direct routing: no \
                                MAC for a real server; it takes no flows until it has one");
                        }
                    }
                    if e.is_pending()
                        && m.mac.is_none()
                        && m.last_probe.is_none_or(|t| now - t >= PROBE)
                    {
                        m.last_probe = Some(now);
                        probe(ip);
                    }
                    m.problem = Some(text);
                }
            }
        }
    }

    /// Write a service when anything its table depends on changed.
    fn write(&mut self, svc: &ServiceRt, reals: &[(SocketAddr, u32, State)]) {
        let conf = svc.conf();
        let views: Vec<RealView> = reals
            .iter()
            .map(|&(addr, weight, state)| RealView {
                addr,
                weight,
                state,
                mac: self.macs.get(&addr.ip()).and_then(|m| m.mac),
            })
            .collect();
        let want = Written { views, hash: conf.hash, on_down: conf.on_down };
        if self.written.get(&svc.vip()) == Some(&want) {
            return;
        }
        let service = plan(svc.vip(), want.hash, want.on_down, &want.views);
        let r = self.dr.plane.lock().unwrap_or_else(|e| e.into_inner()).set_service(&service);
        match r {
            Ok(()) => {
                let taking = want.views.iter().filter(|v| v.takes_new()).count();
                tracing::info!(
                    service = %conf.name,
                    vip = %svc.vip(),
                    taking_new_flows = taking,
                    listed = service.reals.len(),
                    slots = service.table.len(),
                    "direct routing: table written"
                );
                self.written.insert(svc.vip(), want);
                self.last_error = None;
            }
            Err(e) => {
                let text = e.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(service = %conf.name, error = %text, "direct routing: \
                        cannot write the service to the data plane; retrying");
                }
                self.last_error = Some(text);
            }
        }
    }

    fn stats(&mut self, services: &[Arc<ServiceRt>], now: Instant) {
        let (stats, active) = {
            let p = self.dr.plane.lock().unwrap_or_else(|e| e.into_inner());
            (p.stats(), p.active().unwrap_or(false))
        };
        let stats = match stats {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "direct routing: cannot read the counters");
                return;
            }
        };
        let g = stats.global;
        let status = DrStatus {
            interface: self.dr.interface.clone(),
            attach: self.dr.mode.to_string(),
            active,
            flow_entries: self.dr.flow_entries,
            counters: DrCounters {
                no_server: g.no_server,
                fragments: g.vip_fragments,
                not_tcp: g.vip_not_tcp,
                inactive: g.inactive,
                other_mac: g.other_mac,
                arp_replies: g.arp_replies,
                stale_flows: g.stale_flows,
                flow_insert_failed: g.flow_insert_failed,
            },
        };
        metrics::gauge!("tacvs_director_dr_active").set(if active { 1.0 } else { 0.0 });
        for (what, n) in [
            ("no_server", g.no_server),
            ("fragment", g.vip_fragments),
            ("not_tcp", g.vip_not_tcp),
            ("inactive", g.inactive),
            ("other_mac", g.other_mac),
            ("arp_reply", g.arp_replies),
            ("stale_flow", g.stale_flows),
            ("flow_insert_failed", g.flow_insert_failed),
        ] {
            metrics::counter!("tacvs_director_dr_events_total", "what" => what).absolute(n);
        }
        let mut reals = HashMap::new();
        for svc in services {
            let name = svc.conf().name.clone();
            let Some(ss) = stats.services.iter().find(|s| s.vip == svc.vip()) else { continue };
            for r in &ss.reals {
                let key = (svc.vip(), r.addr);
                let c = r.counters;
                let fps = match self.prev_flows.insert(key, (c.new_flows, now)) {
                    Some((before, at)) if now > at && c.new_flows >= before => {
                        (c.new_flows - before) as f64 / (now - at).as_secs_f64()
                    }
                    _ => 0.0,
                };
                let m = self.metrics.entry((name.clone(), r.addr)).or_insert_with(|| {
                    let labels = [("service", name.clone()), ("server", r.addr.to_string())];
                    [
                        metrics::counter!("tacvs_director_dr_packets_total", &labels),
                        metrics::counter!("tacvs_director_dr_bytes_total", &labels),
                        metrics::counter!("tacvs_director_dr_flows_total", &labels),
                    ]
                });
                m[0].absolute(c.packets);
                m[1].absolute(c.bytes);
                m[2].absolute(c.new_flows);
                reals.insert(
                    key,
                    RealDr {
                        packets: c.packets,
                        bytes: c.bytes,
                        flows: c.new_flows,
                        flows_per_s: fps,
                        mac: r.mac.to_string(),
                        problem: self.macs.get(&r.addr).and_then(|m| m.problem.clone()),
                    },
                );
            }
            // Servers the plane does not list: why (no MAC, removed while down).
            for real in &svc.state().reals {
                let key = (svc.vip(), real.addr.ip());
                let mac = self.macs.get(&real.addr.ip());
                reals.entry(key).or_insert_with(|| RealDr {
                    mac: mac.and_then(|m| m.mac).map_or_else(|| "-".into(), |m| m.to_string()),
                    problem: mac.and_then(|m| m.problem.clone()),
                    ..RealDr::default()
                });
            }
        }
        *self.dr.cell.lock() = Some((status, reals));
    }
}
