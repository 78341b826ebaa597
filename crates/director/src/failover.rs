//! VRRPv3 at run time: the I/O around [`crate::core::vrrp::Vrrp`].
//!
//! * advertisements on a raw IP socket (protocol 112): to 224.0.0.18 or to
//!   unicast peers, TTL 255; received ones must arrive with TTL 255 (RFC 5798
//!   §7.1: only from the local link) and a valid checksum;
//! * virtual addresses added and removed through rtnetlink;
//! * gratuitous ARP for each address from an `AF_PACKET` socket, so devices and
//!   switches learn the new master's MAC at once;
//! * a notify program run on each state change;
//! * tracking: while a virtual service has no healthy real server the priority
//!   drops by `track_penalty`, so a standby that can still serve takes over.
//!
//! The state machine decides; this module only executes its actions.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use thiserror::Error;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::config::VrrpSection;
pub use crate::control::protocol::VrrpStatus;
use crate::core::vrrp::{
    Action, Advert, AdvertError, Config, IPPROTO_VRRP, State, VRRP_GROUP, Vrrp, parse_packet,
};

/// Why VRRP could not start.
#[derive(Debug, Error)]
pub enum FailoverError {
    /// The interface is missing.
    #[error("[vrrp] interface {0:?} does not exist in this network namespace: check `interface`")]
    NoInterface(String),
    /// No usable source address.
    #[error(
        "[vrrp] interface {0:?} has no IPv4 address other than the vips: add one, or set `source`"
    )]
    NoSource(String),
    /// Netlink failed.
    #[error("[vrrp] netlink on {iface:?}: {err}")]
    Netlink {
        /// Interface.
        iface: String,
        /// Error text.
        err: String,
    },
    /// A socket could not be set up.
    #[error("[vrrp] {what}: {err} (raw sockets need root or CAP_NET_RAW)")]
    Socket {
        /// Which socket.
        what: &'static str,
        /// The error.
        err: std::io::Error,
    },
}

/// keepalived's names.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Initialize => "INIT",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
    }
}

/// The virtual router's live status, written by the router and read by the
/// control socket.
#[derive(Debug, Default)]
pub struct VrrpCell {
    status: Mutex<Option<(VrrpStatus, Instant)>>,
    /// Where transitions are remembered for the status page.
    events: Arc<crate::events::Events>,
}

impl VrrpCell {
    /// A cell whose transitions go to `events`.
    pub fn with_events(events: Arc<crate::events::Events>) -> Self {
        VrrpCell { status: Mutex::default(), events }
    }

    /// Current status, if VRRP runs.
    pub fn get(&self) -> Option<VrrpStatus> {
        let g = self.status.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|(s, since)| VrrpStatus {
            state_for_s: since.elapsed().as_secs_f64(),
            ..s.clone()
        })
    }

    fn update(&self, f: impl FnOnce(&mut VrrpStatus, &mut Instant)) {
        let mut g = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, since)) = g.as_mut() {
            f(s, since);
        }
    }
}

/// The interface as netlink sees it.
struct Link {
    index: u32,
    mac: [u8; 6],
}

/// One running virtual router.
pub struct Router {
    conf: VrrpSection,
    link: Link,
    source: Ipv4Addr,
    nl: rtnetlink::Handle,
    tx: Socket,
    rx: AsyncFd<Socket>,
    arp: Option<Socket>,
    shared: Arc<VrrpCell>,
    /// Advertisements that failed to leave in a row (logged once, then on recovery).
    send_failures: std::sync::atomic::AtomicU64,
    /// Notify programs still running: waited for (bounded) when the router
    /// stops, so the FAULT of a shutdown is not killed with the process.
    notifies: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Direct routing: its VIPs are answered by the data plane while we are
    /// master, never held as addresses (a dead director's kernel would reset
    /// the devices' flows), and the switch that turns the plane on and off.
    dr: Option<(Vec<Ipv4Addr>, crate::dr::ActiveSwitch)>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("interface", &self.conf.interface)
            .field("vrid", &self.conf.vrid)
            .finish()
    }
}

fn sock_err(what: &'static str) -> impl FnOnce(std::io::Error) -> FailoverError {
    move |err| FailoverError::Socket { what, err }
}

impl Router {
    /// Look up the interface, open the sockets, remove virtual addresses a
    /// crashed predecessor may have left (two holders of one address would
    /// split the devices between them).
    pub async fn new(
        conf: VrrpSection,
        shared: Arc<VrrpCell>,
        dr: Option<(Vec<Ipv4Addr>, crate::dr::ActiveSwitch)>,
    ) -> Result<Router, FailoverError> {
        let iface = conf.interface.clone();
        let nlerr = |e: rtnetlink::Error| FailoverError::Netlink {
            iface: iface.clone(),
            err: e.to_string(),
        };
        let (conn, nl, _) = rtnetlink::new_connection().map_err(sock_err("netlink socket"))?;
        tokio::spawn(conn);
        let msg = match nl.link().get().match_name(iface.clone()).execute().try_next().await {
            Ok(Some(m)) => m,
            Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => {
                return Err(FailoverError::NoInterface(iface));
            }
            Err(e) => return Err(nlerr(e)),
        };
        let mut mac = [0u8; 6];
        for a in &msg.attributes {
            if let LinkAttribute::Address(m) = a
                && m.len() == 6
            {
                mac.copy_from_slice(m);
            }
        }
        let link = Link { index: msg.header.index, mac };
        let addrs = interface_v4(&nl, link.index).await.map_err(nlerr)?;
        let vips: Vec<Ipv4Addr> = conf.vips.iter().map(|v| v.0).collect();
        let source = match conf.source {
            Some(s) => s,
            None => addrs
                .iter()
                .find(|a| !vips.contains(a))
                .copied()
                .ok_or_else(|| FailoverError::NoSource(iface.clone()))?,
        };
        let stale: Vec<Ipv4Addr> = addrs.iter().filter(|a| vips.contains(a)).copied().collect();
        if !stale.is_empty() {
            tracing::warn!(interface = %iface, addresses = %list(&stale), "virtual addresses \
                already on the interface at start-up (a previous run?): removing them until we \
                are master");
            set_vips(&nl, link.index, &conf.vips, false).await;
        }

        // Sending: bound to our address so it is the advertisement's source.
        let tx =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(IPPROTO_VRRP))))
                .map_err(sock_err("raw socket"))?;
        tx.bind_device(Some(iface.as_bytes())).map_err(sock_err("bind to interface"))?;
        tx.bind(&SocketAddrV4::new(source, 0).into())
            .map_err(sock_err("bind to source address"))?;
        tx.set_multicast_ttl_v4(255).map_err(sock_err("multicast TTL"))?;
        tx.set_ttl_v4(255).map_err(sock_err("TTL"))?;
        tx.set_multicast_loop_v4(false).map_err(sock_err("multicast loop"))?;
        tx.set_multicast_if_v4(&source).map_err(sock_err("multicast interface"))?;
        // Receiving: not bound to an address (that would filter out 224.0.0.18).
        let rx =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(IPPROTO_VRRP))))
                .map_err(sock_err("raw socket"))?;
        rx.bind_device(Some(iface.as_bytes())).map_err(sock_err("bind to interface"))?;
        if conf.unicast_peers.is_empty() {
            rx.join_multicast_v4(&VRRP_GROUP, &source).map_err(sock_err("join 224.0.0.18"))?;
        }
        rx.set_nonblocking(true).map_err(sock_err("non-blocking"))?;
        #[allow(unsafe_code)]
        // SAFETY: socket2::Socket owns its descriptor, keeps it open until it
        // is dropped and returns the same one from every as_raw_fd call; the
        // AsyncFd owns the Socket, so the descriptor outlives the registration.
        let rx = unsafe { AsyncFd::register(rx) }.map_err(|e| FailoverError::Socket {
            what: "register with the runtime",
            err: e.into(),
        })?;
        let arp = match arp_socket(link.index) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(interface = %iface, error = %e, "no gratuitous ARP (packet \
                    socket refused); devices learn the new master when their ARP entries \
                    expire");
                None
            }
        };
        *shared.status.lock().unwrap_or_else(|e| e.into_inner()) = Some((
            VrrpStatus {
                interface: iface,
                vrid: conf.vrid,
                state: "INIT".into(),
                priority: conf.priority,
                config_priority: conf.priority,
                vips: conf.vips.iter().map(|(a, p)| format!("{a}/{p}")).collect(),
                source: source.to_string(),
                master: String::new(),
                state_for_s: 0.0,
                transitions: 0,
                reason: "starting".into(),
            },
            Instant::now(),
        ));
        Ok(Router {
            conf,
            link,
            source,
            nl,
            tx,
            rx,
            arp,
            shared,
            send_failures: 0.into(),
            notifies: Default::default(),
            dr,
        })
    }

    /// Run until `stop` turns true, then give up mastership (priority 0) and
    /// remove the addresses. `healthy` tells whether every virtual service
    /// has a healthy real server (tracking).
    pub async fn run(
        self,
        healthy: impl Fn() -> bool + Send + 'static,
        mut stop: watch::Receiver<bool>,
    ) {
        let c = &self.conf;
        let core = Config {
            vrid: c.vrid,
            priority: c.priority,
            interval: c.advert_interval.get(),
            preempt: c.preempt,
            preempt_delay: c.preempt_delay.get(),
            primary: self.source,
            vips: c.vips.iter().map(|v| v.0).collect(),
        };
        let mut vrrp = Vrrp::new(core, Instant::now());
        let acts = vrrp.startup(Instant::now());
        self.execute(&vrrp, acts).await;
        let mut buf = vec![0u8; 2048];
        let track = Duration::from_millis(100).min(c.advert_interval.get());
        let mut next_track = Instant::now();
        let mut degraded = false;
        let mut link_up = true;
        loop {
            let now = Instant::now();
            if now >= next_track {
                next_track = now + track;
                match (self.link_running().await, link_up) {
                    (false, true) => {
                        link_up = false;
                        let acts =
                            vrrp.interface_down(&format!("interface {} is down", c.interface));
                        self.execute(&vrrp, acts).await;
                    }
                    (true, false) => {
                        link_up = true;
                        tracing::warn!(interface = %c.interface, "interface up again: rejoining as backup");
                        let acts = vrrp.startup(Instant::now());
                        self.execute(&vrrp, acts).await;
                    }
                    _ => {}
                }
                let bad = !healthy();
                if bad != degraded {
                    degraded = bad;
                    let p = if bad {
                        c.priority.saturating_sub(c.track_penalty).max(1)
                    } else {
                        c.priority
                    };
                    tracing::warn!(
                        vrid = c.vrid,
                        priority = p,
                        "{}",
                        if bad {
                            "a virtual service has no healthy real server: priority lowered"
                        } else {
                            "every virtual service healthy again: priority restored"
                        }
                    );
                    self.shared.update(|s, _| s.priority = p);
                    metrics::gauge!("tacvs_vrrp_priority", "vrid" => c.vrid.to_string())
                        .set(f64::from(p));
                    let acts = vrrp.set_priority(p, now);
                    self.execute(&vrrp, acts).await;
                }
            }
            let wake = vrrp.deadline().map_or(next_track, |d| d.min(next_track));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {
                    let acts = vrrp.on_timer(Instant::now());
                    self.execute(&vrrp, acts).await;
                }
                r = self.rx.readable() => {
                    let Ok(mut guard) = r else { continue };
                    // Drain what is queued; each datagram is one IP packet.
                    loop {
                        match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
                            Ok(Ok(n)) => {
                                if let Some((adv, src)) = self.accept(&buf[..n]) {
                                    let backup = vrrp.state() == State::Backup;
                                    self.shared.update(|s, _| {
                                        if backup {
                                            s.master = src.to_string();
                                        }
                                    });
                                    let acts = vrrp.on_advert(&adv, src, Instant::now());
                                    self.execute(&vrrp, acts).await;
                                }
                            }
                            Ok(Err(e)) => {
                                // Not "would block": do not spin on a socket that keeps failing.
                                tracing::warn!(error = %e, "vrrp receive");
                                guard.clear_ready();
                                break;
                            }
                            Err(_would_block) => break,
                        }
                    }
                }
                _ = stop.changed() => break,
            }
        }
        let acts = vrrp.shutdown();
        self.execute(&vrrp, acts).await;
        // The notify programs of the last transitions (FAULT) finish before
        // the process exits, as keepalived's do; 1.5 s at most, inside the
        // director's 2 s wait for this task.
        let pending = std::mem::take(&mut *self.notifies.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::time::timeout(Duration::from_millis(1500), async {
            for t in pending {
                let _ = t.await;
            }
        })
        .await;
    }

    /// Validate a received packet (RFC 5798 §7.1, in [`parse_packet`]), then
    /// keep it only from a configured unicast peer (when there are any) and
    /// for our VRID.
    fn accept(&self, pkt: &[u8]) -> Option<(Advert, Ipv4Addr)> {
        let r = match parse_packet(pkt) {
            Ok(r) => r,
            Err(e) => {
                let why = match e {
                    AdvertError::Ttl(_) => "ttl",
                    AdvertError::IpHeader(_) => "ip_header",
                    _ => "malformed",
                };
                metrics::counter!("tacvs_vrrp_rejected_total", "reason" => why).increment(1);
                tracing::debug!(error = %e, "vrrp packet dropped");
                return None;
            }
        };
        if r.src == self.source {
            return None; // our own, looped back
        }
        if !self.conf.unicast_peers.is_empty() && !self.conf.unicast_peers.contains(&r.src) {
            metrics::counter!("tacvs_vrrp_rejected_total", "reason" => "not_a_peer").increment(1);
            tracing::debug!(src = %r.src, "vrrp advertisement from a host that is not a unicast peer");
            return None;
        }
        if r.advert.vrid != self.conf.vrid {
            return None; // another virtual router on this link
        }
        let ours: Vec<Ipv4Addr> = self.conf.vips.iter().map(|v| v.0).collect();
        if r.advert.addrs != ours {
            // RFC 5798 §7.1: MAY log; the advertisement is still processed.
            metrics::counter!("tacvs_vrrp_address_mismatch_total").increment(1);
            tracing::debug!(
                src = %r.src,
                theirs = %list(&r.advert.addrs),
                ours = %list(&ours),
                "vrrp peer lists other virtual addresses"
            );
        }
        metrics::counter!("tacvs_vrrp_adverts_received_total").increment(1);
        Some((r.advert, r.src))
    }

    async fn execute(&self, vrrp: &Vrrp, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Advertise(p) => self.advertise(vrrp, p),
                Action::AddVips => {
                    if let Some((_, switch)) = &self.dr {
                        switch.set(true);
                    }
                    set_vips(&self.nl, self.link.index, &self.held(), true).await
                }
                Action::RemoveVips => {
                    if let Some((_, switch)) = &self.dr {
                        switch.set(false);
                    }
                    set_vips(&self.nl, self.link.index, &self.held(), false).await
                }
                Action::GratuitousArp => self.garp(),
                Action::Transition { from, to, reason } => {
                    let name = state_name(to);
                    self.shared.events.record(
                        format!("VRRP {} on {}", self.conf.vrid, self.conf.interface),
                        state_name(from),
                        name,
                        reason.to_string(),
                    );
                    tracing::warn!(
                        vrid = self.conf.vrid,
                        interface = %self.conf.interface,
                        from = state_name(from),
                        to = name,
                        %reason,
                        "vrrp state change"
                    );
                    metrics::counter!("tacvs_vrrp_transitions_total", "to" => name).increment(1);
                    metrics::gauge!("tacvs_vrrp_master", "vrid" => self.conf.vrid.to_string())
                        .set(if to == State::Master { 1.0 } else { 0.0 });
                    let me = self.source.to_string();
                    self.shared.update(|s, since| {
                        s.state = name.into();
                        s.reason = reason.clone();
                        s.transitions += 1;
                        if to == State::Master {
                            s.master = me;
                        }
                        *since = Instant::now();
                    });
                    if let Some(prog) = &self.conf.notify {
                        let state = if to == State::Initialize { "FAULT" } else { name };
                        let t = notify(
                            prog.clone(),
                            format!("vrid{}", self.conf.vrid),
                            state,
                            vrrp.priority(),
                        );
                        let mut n = self.notifies.lock().unwrap_or_else(|e| e.into_inner());
                        n.retain(|t| !t.is_finished());
                        n.push(t);
                    }
                }
            }
        }
    }

    /// The virtual addresses held as addresses of the interface while master:
    /// all but those only direct routing uses.
    fn held(&self) -> Vec<(Ipv4Addr, u8)> {
        let dr: &[Ipv4Addr] = self.dr.as_ref().map_or(&[], |(v, _)| v);
        self.conf.vips.iter().filter(|(a, _)| !dr.contains(a)).copied().collect()
    }

    fn advertise(&self, vrrp: &Vrrp, priority: u8) {
        use std::sync::atomic::Ordering::Relaxed;
        let adv = vrrp.advert(priority);
        let dsts: Vec<Ipv4Addr> = if self.conf.unicast_peers.is_empty() {
            vec![VRRP_GROUP]
        } else {
            self.conf.unicast_peers.clone()
        };
        for dst in dsts {
            let pkt = adv.encode(self.source, dst);
            match self.tx.send_to(&pkt, &SockAddr::from(SocketAddrV4::new(dst, 0))) {
                Ok(_) => {
                    metrics::counter!("tacvs_vrrp_adverts_sent_total").increment(1);
                    let failed = self.send_failures.swap(0, Relaxed);
                    if failed > 0 {
                        tracing::warn!(%dst, failed, "vrrp advertisements leave again");
                    }
                }
                Err(e) => {
                    metrics::counter!("tacvs_vrrp_send_errors_total").increment(1);
                    // Every 100 ms while a link is down: say it once.
                    if self.send_failures.fetch_add(1, Relaxed) == 0 {
                        tracing::warn!(%dst, error = %e, "vrrp advertisement not sent (further \
                            failures counted in tacvs_vrrp_send_errors_total)");
                    }
                }
            }
        }
    }

    /// Whether the interface is up with a carrier.
    async fn link_running(&self) -> bool {
        use rtnetlink::packet_route::link::LinkFlags;
        match self.nl.link().get().match_index(self.link.index).execute().try_next().await {
            Ok(Some(m)) => {
                m.header.flags.contains(LinkFlags::Up)
                    && m.header.flags.contains(LinkFlags::Running)
            }
            // Gone (deleted) counts as down; a netlink hiccup does not.
            Ok(None) => false,
            Err(rtnetlink::Error::NetlinkError(_)) => false,
            Err(_) => true,
        }
    }

    fn garp(&self) {
        let Some(arp) = &self.arp else { return };
        let vips: Vec<Ipv4Addr> = self.conf.vips.iter().map(|v| v.0).collect();
        let frames: Vec<Vec<u8>> = vips.iter().map(|ip| garp_frame(self.link.mac, *ip)).collect();
        let Ok(arp) = arp.try_clone() else { return };
        let (count, iface) = (self.conf.garp_count, self.conf.interface.clone());
        // Spaced out so one lost frame does not leave a device pointing at the
        // old master; off the state machine's path.
        tokio::spawn(async move {
            for i in 0..count {
                for f in &frames {
                    if let Err(e) = arp.send(f) {
                        tracing::warn!(interface = %iface, error = %e, "gratuitous ARP not sent");
                    }
                }
                if i + 1 < count {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
}

/// Addresses for a log line: "10.0.0.1 10.0.0.2".
fn list(addrs: &[Ipv4Addr]) -> String {
    addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

async fn interface_v4(
    nl: &rtnetlink::Handle,
    index: u32,
) -> Result<Vec<Ipv4Addr>, rtnetlink::Error> {
    let mut out = Vec::new();
    let mut s = nl.address().get().set_link_index_filter(index).execute();
    while let Some(m) = s.try_next().await? {
        for a in &m.attributes {
            if let AddressAttribute::Local(std::net::IpAddr::V4(ip)) = a {
                out.push(*ip);
            }
        }
    }
    Ok(out)
}

/// Add (or remove) the virtual addresses; "already there" / "not there" are
/// not errors (a restart, or an operator's hand).
async fn set_vips(nl: &rtnetlink::Handle, index: u32, vips: &[(Ipv4Addr, u8)], add: bool) {
    for &(ip, plen) in vips {
        let r = if add {
            nl.address().add(index, ip.into(), plen).execute().await
        } else {
            let mut found = None;
            let mut s = nl
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(ip.into())
                .execute();
            while let Ok(Some(m)) = s.try_next().await {
                found = Some(m);
            }
            match found {
                Some(m) => nl.address().del(m).execute().await,
                None => Ok(()),
            }
        };
        match r {
            Ok(()) => {
                tracing::info!(
                    address = %ip,
                    prefix = plen,
                    "{}",
                    if add { "virtual address added" } else { "virtual address removed" }
                )
            }
            Err(rtnetlink::Error::NetlinkError(e)) if add && e.raw_code() == -libc::EEXIST => {}
            Err(e) => {
                metrics::counter!("tacvs_vrrp_netlink_errors_total").increment(1);
                tracing::error!(
                    address = %ip,
                    error = %e,
                    "cannot {} virtual address",
                    if add { "add" } else { "remove" }
                );
            }
        }
    }
}

fn notify(
    prog: std::path::PathBuf,
    instance: String,
    state: &'static str,
    priority: u8,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let child = tokio::process::Command::new(&prog)
            .args(["INSTANCE", &instance, state, &priority.to_string()])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let r = match child {
            Ok(mut c) => tokio::time::timeout(Duration::from_secs(30), c.wait()).await,
            Err(e) => {
                tracing::error!(program = %prog.display(), error = %e, "notify program could not start");
                return;
            }
        };
        match r {
            Ok(Ok(st)) if st.success() => {
                tracing::info!(program = %prog.display(), state, "notify program ran")
            }
            Ok(Ok(st)) => {
                tracing::warn!(program = %prog.display(), state, status = %st, "notify program failed")
            }
            Ok(Err(e)) => tracing::warn!(program = %prog.display(), error = %e, "notify program"),
            Err(_) => {
                tracing::warn!(program = %prog.display(), "notify program still running after 30 s: killed")
            }
        }
    })
}

/// A gratuitous ARP request (RFC 5227 §3 "ARP Announcement"): sender and
/// target protocol address both the virtual address, broadcast.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// A raw `AF_PACKET` socket bound to the interface.
fn arp_socket(ifindex: u32) -> std::io::Result<Socket> {
    const ETH_P_ARP: u16 = 0x0806;
    let s =
        Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))))?;
    let mut storage = socket2::SockAddrStorage::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: SockAddrStorage is a sockaddr_storage, large enough and aligned
    // for a sockaddr_ll; the length given is sockaddr_ll's.
    let addr = unsafe {
        let ll = storage.view_as::<libc::sockaddr_ll>();
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ETH_P_ARP.to_be();
        ll.sll_ifindex = ifindex as i32;
        SockAddr::new(storage, std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t)
    };
    s.bind(&addr)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_frame_layout() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 49, 0, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "an ARP request");
        assert_eq!(&f[28..32], &[10, 49, 0, 100], "sender IP is the VIP");
        assert_eq!(&f[38..42], &[10, 49, 0, 100], "target IP is the VIP");
        assert_eq!(&f[22..28], &f[6..12], "sender MAC is the source MAC");
    }
}
