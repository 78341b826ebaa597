//! One virtual service's live state: its configuration (swapped whole on a
//! reload), each real server's health, weight and connection counts, and the
//! scheduler. The proxy asks it for a server (`pick`) and gives
//! the connection back (`release`); the checker feeds it results;
//! the control socket reads a [`ServiceStatus`] and sets weight overrides.
//!
//! Every decision is in `core` (scheduler, health machine); this module keeps
//! the books under one lock per service, held for a pick or an update only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::config::{OnDown, RealConf, Service};
use crate::control::protocol::{RealStatus, ServiceStatus};
use crate::core::health::{Health, State};
use crate::core::sched::{Backend, Flow, Scheduler};

/// Bytes moved on the connections to one real server, counted by the relays
/// without taking the service's lock.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Device → server.
    pub bytes_in: AtomicU64,
    /// Server → device.
    pub bytes_out: AtomicU64,
}

/// A real server's metrics, registered once (no label formatting per
/// connection) and set from the start, not only after a first change.
#[derive(Debug)]
struct RealMetrics {
    /// 1 for the current state, 0 for the others: up, misconfigured, down.
    state: [metrics::Gauge; 3],
    weight: metrics::Gauge,
    active: metrics::Gauge,
    connections: metrics::Counter,
    connect_failures: metrics::Counter,
}

const STATES: [State; 3] = [State::Up, State::Misconfigured, State::Down];

impl RealMetrics {
    fn new(service: &str, server: SocketAddr) -> Self {
        let (svc, srv) = (service.to_owned(), server.to_string());
        let labels = || [("service", svc.clone()), ("server", srv.clone())];
        RealMetrics {
            state: STATES.map(|st| {
                let mut l = labels().to_vec();
                l.push(("state", state_name(st).to_owned()));
                metrics::gauge!("tacvs_director_real_state", &l)
            }),
            weight: metrics::gauge!("tacvs_director_real_weight", &labels()),
            active: metrics::gauge!("tacvs_director_real_active_connections", &labels()),
            connections: metrics::counter!("tacvs_director_connections_total", &labels()),
            connect_failures: metrics::counter!("tacvs_director_connect_failures_total", &labels()),
        }
    }
}

/// One real server's live state.
#[derive(Debug)]
pub(crate) struct RealState {
    pub addr: SocketAddr,
    /// Configured weight.
    pub weight: u32,
    /// Operator override (drain = Some(0)).
    pub admin_weight: Option<u32>,
    pub max_conns: u32,
    pub health: Health,
    /// Proxied connections open now.
    pub active: u32,
    pub total: u64,
    pub connect_failures: u64,
    pub last_check_ms: Option<f64>,
    pub last_result: String,
    /// Start order of the last check applied.
    pub check_seq: u64,
    pub cps: f64,
    pub rate_mark: (u64, Instant),
    pub traffic: Arc<Traffic>,
    metrics: RealMetrics,
}

impl RealState {
    pub fn new(r: &RealConf, s: &Service, now: Instant) -> RealState {
        let real = RealState {
            addr: r.address,
            weight: r.weight,
            admin_weight: None,
            max_conns: r.max_connections,
            // Start up: devices are served at once, and `fall` quick checks
            // remove a dead server well under a second.
            health: Health::new(s.health.rise, s.health.fall, State::Up, now),
            active: 0,
            total: 0,
            connect_failures: 0,
            last_check_ms: None,
            last_result: "not checked yet".into(),
            check_seq: 0,
            cps: 0.0,
            rate_mark: (0, now),
            traffic: Arc::default(),
            metrics: RealMetrics::new(&s.name, r.address),
        };
        real.publish(s.on_down);
        real
    }

    /// A server removed by a reload: its gauges go to zero (no state holds).
    pub fn retire(&self) {
        for g in self.metrics.state.iter().chain([&self.metrics.weight]) {
            g.set(0.0);
        }
    }

    /// Set the state and weight gauges to what holds now.
    pub fn publish(&self, on_down: OnDown) {
        let now = self.health.state();
        for (g, st) in self.metrics.state.iter().zip(STATES) {
            g.set(if st == now { 1.0 } else { 0.0 });
        }
        self.metrics.weight.set(f64::from(self.weight_in_force(on_down)));
        self.metrics.active.set(f64::from(self.active));
    }

    /// The weight set (an operator's override, else the configured one).
    pub fn effective_weight(&self) -> u32 {
        self.admin_weight.unwrap_or(self.weight)
    }

    /// Whether `on_down = "inhibit"` holds it at weight 0 (it failed its checks).
    pub fn inhibited(&self, on_down: OnDown) -> bool {
        on_down == OnDown::Inhibit && !self.health.schedulable()
    }

    /// The weight in force: 0 while inhibited, else [`RealState::effective_weight`].
    pub fn weight_in_force(&self, on_down: OnDown) -> u32 {
        if self.inhibited(on_down) { 0 } else { self.effective_weight() }
    }
}

/// The books of one service, under its lock.
#[derive(Debug)]
pub(crate) struct ServiceState {
    pub reals: Vec<RealState>,
    pub sched: Scheduler,
    /// What the scheduler sees, one entry per real server in the same order.
    /// Kept between picks: the keys (addresses as text, for the hashing
    /// schedulers) are written when the servers change, not on every pick.
    view: Vec<Backend>,
}

impl ServiceState {
    pub fn new(reals: Vec<RealState>, sched: Scheduler) -> Self {
        let mut st = ServiceState { reals, sched, view: Vec::new() };
        st.servers_changed();
        st
    }

    /// Call after `reals` gained, lost or reordered servers.
    pub fn servers_changed(&mut self) {
        self.view = self.reals.iter().map(|r| Backend::new(r.addr.to_string(), 0)).collect();
    }

    pub fn real_mut(&mut self, addr: SocketAddr) -> Option<&mut RealState> {
        self.reals.iter_mut().find(|r| r.addr == addr)
    }

    /// Refresh the scheduler's view. `exclude`d servers (already tried for this
    /// connection) are shown down.
    fn refresh_view(&mut self, on_down: OnDown, exclude: &[SocketAddr]) {
        debug_assert_eq!(self.view.len(), self.reals.len());
        for (b, r) in self.view.iter_mut().zip(&self.reals) {
            // inhibit: a failed server stays in the table with weight 0.
            let (weight, up) = if r.inhibited(on_down) {
                (0, true)
            } else {
                (r.effective_weight(), r.health.schedulable() && !exclude.contains(&r.addr))
            };
            b.weight = weight;
            b.up = up;
            b.active = r.active;
            b.max_conns = r.max_conns;
        }
    }
}

/// The running services, replaced whole when a reload adds or removes one.
pub(crate) type Registry = ArcSwap<Vec<Arc<ServiceRt>>>;

/// A virtual service at run time.
#[derive(Debug)]
pub struct ServiceRt {
    conf: ArcSwap<Service>,
    /// The bound VIP (the configured one with port 0 resolved).
    vip: SocketAddr,
    state: Mutex<ServiceState>,
    /// Device connections open now.
    conns: AtomicUsize,
    /// Device connections open now per source address.
    sources: Mutex<HashMap<IpAddr, usize>>,
    /// Removed by a reload: its checkers stop.
    retired: AtomicBool,
    /// Where health changes are remembered for the status page.
    pub(crate) events: Arc<crate::events::Events>,
}

/// Why a device connection was refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The service's `max_connections`.
    Service,
    /// The source's `max_connections_per_source`.
    Source,
}

impl Full {
    /// The metrics label.
    pub fn reason(self) -> &'static str {
        match self {
            Full::Service => "max_connections",
            Full::Source => "max_connections_per_source",
        }
    }
}

/// A device connection counted against its service and its source; the
/// counts go down when it is dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    svc: Arc<ServiceRt>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.svc.conns.fetch_sub(1, Ordering::AcqRel);
        let mut m = self.svc.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.source);
            }
        }
    }
}

/// The address a source is counted under: an IPv4-mapped IPv6 address is the
/// IPv4 address it carries.
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl ServiceRt {
    pub(crate) fn new(
        conf: Service,
        vip: SocketAddr,
        seed: u64,
        now: Instant,
        events: Arc<crate::events::Events>,
    ) -> Self {
        let reals = conf.reals.iter().map(|r| RealState::new(r, &conf, now)).collect();
        ServiceRt {
            state: Mutex::new(ServiceState::new(
                reals,
                Scheduler::new(conf.scheduler, seed).hashing(conf.hash),
            )),
            conf: ArcSwap::from_pointee(conf),
            vip,
            conns: AtomicUsize::new(0),
            sources: Mutex::new(HashMap::new()),
            retired: AtomicBool::new(false),
            events,
        }
    }

    /// Removed by a reload: checks stop and the gauges of its servers go to zero.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        for r in &self.state().reals {
            r.retire();
        }
    }

    /// Whether a reload removed it.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// The configuration in force.
    pub fn conf(&self) -> Arc<Service> {
        self.conf.load_full()
    }

    pub(crate) fn set_conf(&self, conf: Service) {
        self.conf.store(Arc::new(conf));
    }

    /// The bound virtual address.
    pub fn vip(&self) -> SocketAddr {
        self.vip
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ServiceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a device connection from `source` if both the service and the
    /// source are under their caps (before any work is queued for it).
    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Slot, Full> {
        let conf = self.conf.load();
        if self.conns.fetch_add(1, Ordering::AcqRel) >= conf.max_connections {
            self.conns.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Service);
        }
        let source = source_key(source);
        let mut m = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(source).or_insert(0);
        if *n >= conf.max_connections_per_source {
            if *n == 0 {
                m.remove(&source);
            }
            drop(m);
            self.conns.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Source);
        }
        *n += 1;
        Ok(Slot { svc: self.clone(), source })
    }

    /// Device connections open now from `source`.
    pub fn connections_from(&self, source: IpAddr) -> usize {
        let m = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&source_key(source)).copied().unwrap_or(0)
    }

    /// Pick a real server and count the connection on it. Servers are named by
    /// address (indices shift when a reload adds or removes servers).
    pub(crate) fn pick(
        &self,
        flow: Flow,
        exclude: &[SocketAddr],
    ) -> Option<(SocketAddr, Arc<Traffic>)> {
        let on_down = self.conf.load().on_down;
        let mut st = self.state();
        st.refresh_view(on_down, exclude);
        let ServiceState { sched, view, .. } = &mut *st;
        let i = sched.pick(view, flow)?;
        let r = &mut st.reals[i];
        r.active += 1;
        r.total += 1;
        r.metrics.active.increment(1.0);
        Some((r.addr, r.traffic.clone()))
    }

    fn with_real(&self, addr: SocketAddr, f: impl FnOnce(&mut RealState)) {
        if let Some(r) = self.state().real_mut(addr) {
            f(r);
        }
    }

    /// A connection picked by [`ServiceRt::pick`] closed.
    pub(crate) fn release(&self, addr: SocketAddr) {
        self.with_real(addr, |r| {
            r.active = r.active.saturating_sub(1);
            r.metrics.active.set(f64::from(r.active));
        });
    }

    /// The connection to a picked server is up.
    pub(crate) fn connected(&self, addr: SocketAddr) {
        self.with_real(addr, |r| r.metrics.connections.increment(1));
    }

    /// The connect to a picked server failed (it will be retried elsewhere).
    pub(crate) fn connect_failed(&self, addr: SocketAddr) {
        self.with_real(addr, |r| {
            r.active = r.active.saturating_sub(1);
            r.total = r.total.saturating_sub(1);
            r.connect_failures += 1;
            r.metrics.active.set(f64::from(r.active));
            r.metrics.connect_failures.increment(1);
        });
    }

    /// Set (or clear, with `None`) the weight override of `server`; whether
    /// the service has it.
    pub(crate) fn set_weight(&self, server: SocketAddr, weight: Option<u32>) -> bool {
        let mut found = false;
        let on_down = self.conf.load().on_down;
        self.with_real(server, |r| {
            r.admin_weight = weight;
            r.publish(on_down);
            found = true;
        });
        if found {
            let name = self.conf().name.clone();
            match weight {
                Some(w) => tracing::info!(service = %name, %server, weight = w, "weight override"),
                None => {
                    tracing::info!(service = %name, %server, "weight override cleared: configured weight again")
                }
            }
        }
        found
    }

    /// Whether a real server is up with a weight above zero (VRRP tracking).
    pub(crate) fn served(&self) -> bool {
        self.state().reals.iter().any(|r| r.health.state() == State::Up && r.effective_weight() > 0)
    }

    /// What `status` shows.
    pub fn status(&self, now: Instant) -> ServiceStatus {
        let conf = self.conf();
        let st = self.state();
        ServiceStatus {
            name: conf.name.clone(),
            listen: self.vip.to_string(),
            scheduler: conf.scheduler.name().into(),
            mode: conf.mode.name().into(),
            active: self.conns.load(Ordering::Relaxed),
            reals: st
                .reals
                .iter()
                .map(|r| RealStatus {
                    address: r.addr.to_string(),
                    state: state_name(r.health.state()).into(),
                    weight: r.weight_in_force(conf.on_down),
                    config_weight: r.weight,
                    active: r.active,
                    total: r.total,
                    cps: r.cps,
                    connect_failures: r.connect_failures,
                    last_check: r.last_result.clone(),
                    last_check_ms: r.last_check_ms,
                    state_for_s: (now - r.health.since()).as_secs_f64(),
                    bytes_in: r.traffic.bytes_in.load(Ordering::Relaxed),
                    bytes_out: r.traffic.bytes_out.load(Ordering::Relaxed),
                    packets: 0,
                    mac: String::new(),
                })
                .collect(),
        }
    }
}

/// The word for a health state in logs, status and metrics.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Up => "up",
        State::Misconfigured => "misconfigured",
        State::Down => "down",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(text: &str) -> Arc<ServiceRt> {
        let f = crate::config::parse(
            "t.toml",
            &format!(
                "[director]\n[[service]]\nname = \"s\"\nlisten = \
                    \"127.0.0.1:0\"\n{text}\n[service.health]\ncheck = \"tcp\"\ninterval = \
                    \"1s\"\ntimeout = \"1s\"\n[[service.real]]\naddress = \"127.0.0.1:1\"\n"
            ),
        )
        .unwrap();
        let s = f.services.into_iter().next().unwrap();
        Arc::new(ServiceRt::new(
            s,
            "127.0.0.1:49".parse().unwrap(),
            1,
            Instant::now(),
            Arc::default(),
        ))
    }

    /// A recorder that keeps every gauge's value, by name and labels.
    #[derive(Debug, Default)]
    struct Gauges(Mutex<HashMap<String, Arc<Mutex<f64>>>>);

    #[derive(Debug)]
    struct Cell(Arc<Mutex<f64>>);

    impl metrics::GaugeFn for Cell {
        fn increment(&self, v: f64) {
            *self.0.lock().unwrap() += v;
        }
        fn decrement(&self, v: f64) {
            *self.0.lock().unwrap() -= v;
        }
        fn set(&self, v: f64) {
            *self.0.lock().unwrap() = v;
        }
    }

    impl metrics::Recorder for Gauges {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            metrics::Counter::noop()
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            let labels: Vec<String> =
                key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let cell = self.0.lock().unwrap().entry(name).or_default().clone();
            metrics::Gauge::from_arc(Arc::new(Cell(cell)))
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    impl Gauges {
        fn get(&self, name: &str) -> Option<f64> {
            self.0.lock().unwrap().get(name).map(|c| *c.lock().unwrap())
        }
    }

    #[test]
    fn state_weight_and_connections_are_gauges_from_the_start() {
        let rec = Gauges::default();
        let svc = metrics::with_local_recorder(&rec, || service(""));
        let real = "127.0.0.1:1".parse().unwrap();
        let g = |what: &str| rec.get(&format!("tacvs_director_real_{what}"));
        let labels = "service=s,server=127.0.0.1:1";
        // Before any check, change or connection.
        assert_eq!(g(&format!("state{{{labels},state=up}}")), Some(1.0));
        assert_eq!(g(&format!("state{{{labels},state=misconfigured}}")), Some(0.0));
        assert_eq!(g(&format!("state{{{labels},state=down}}")), Some(0.0));
        assert_eq!(g(&format!("weight{{{labels}}}")), Some(1.0));
        assert_eq!(g(&format!("active_connections{{{labels}}}")), Some(0.0));
        let flow = Flow { client: "10.0.0.1:1000".parse().unwrap(), vip: svc.vip() };
        let (picked, _) = svc.pick(flow, &[]).unwrap();
        assert_eq!(picked, real);
        assert_eq!(g(&format!("active_connections{{{labels}}}")), Some(1.0));
        svc.release(real);
        assert_eq!(g(&format!("active_connections{{{labels}}}")), Some(0.0));
        assert!(svc.set_weight(real, Some(0)));
        assert_eq!(g(&format!("weight{{{labels}}}")), Some(0.0));
    }

    #[test]
    fn slots_are_counted_per_service_and_per_source_and_given_back() {
        let svc = service("max_connections = 3\nmax_connections_per_source = 2");
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = svc.admit(a).unwrap();
        let s2 = svc.admit(mapped).unwrap();
        assert_eq!(svc.admit(a).unwrap_err(), Full::Source, "the mapped form is the same source");
        assert_eq!(svc.connections_from(a), 2);
        let s3 = svc.admit(b).unwrap();
        assert_eq!(svc.admit("10.0.0.3".parse().unwrap()).unwrap_err(), Full::Service);
        drop(s1);
        assert_eq!(svc.connections_from(mapped), 1);
        let s4 = svc.admit(a).unwrap();
        drop((s2, s3, s4));
        assert_eq!(svc.connections_from(a), 0);
        assert!(svc.sources.lock().unwrap().is_empty(), "no entry kept for a gone source");
        assert_eq!(svc.conns.load(Ordering::Relaxed), 0);
    }
}
