//! VRRPv3 for IPv4 (RFC 5798): the advertisement codec and the Initialize /
//! Backup / Master state machine of §6.4, pure: time and received packets in,
//! actions out (send an advertisement, add or remove the virtual addresses,
//! announce them with gratuitous ARP). Priority can change at run time
//! (tracking: a director with no healthy real server steps down), and
//! preemption can wait a delay after start-up (as keepalived's
//! `preempt_delay`). Sockets, netlink and ARP live in the I/O layer.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use thiserror::Error;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The VRRP IPv4 multicast group.
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// A VRRPv3 advertisement (RFC 5798 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Virtual Router ID, 1-255.
    pub vrid: u8,
    /// Sender's priority (0 = it is giving up mastership, 255 = owner).
    pub priority: u8,
    /// Max Advertise Interval, centiseconds (12 bits).
    pub interval_cs: u16,
    /// The virtual addresses.
    pub addrs: Vec<Ipv4Addr>,
}

/// Why an advertisement was dropped (RFC 5798 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdvertError {
    /// Shorter than the header or than the addresses it announces.
    #[error("truncated VRRP packet ({0} bytes)")]
    Truncated(usize),
    /// Not version 3.
    #[error("VRRP version {0}, expected 3")]
    Version(u8),
    /// Not an ADVERTISEMENT.
    #[error("VRRP type {0}, expected 1 (ADVERTISEMENT)")]
    Type(u8),
    /// Checksum mismatch.
    #[error("bad VRRP checksum")]
    Checksum,
    /// Trailing bytes after the addresses.
    #[error("VRRP packet length {len} does not match {count} addresses")]
    Length {
        /// Bytes.
        len: usize,
        /// Count IPvX Addr field.
        count: u8,
    },
    /// The IPv4 header around it is malformed.
    #[error("malformed IPv4 header: {0}")]
    IpHeader(&'static str),
    /// Sent from further than the local link (§7.1: TTL must be 255).
    #[error("IP TTL {0}, expected 255 (a VRRP packet never crosses a router)")]
    Ttl(u8),
}

/// An advertisement as a raw socket delivers it: IPv4 header and all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination (224.0.0.18 or our unicast address).
    pub dst: Ipv4Addr,
    /// The advertisement.
    pub advert: Advert,
}

/// Parse and validate a packet from a raw IPPROTO_VRRP socket (§7.1): IPv4
/// header (version, IHL, total length, protocol), TTL 255, then the
/// advertisement and its checksum over the pseudo-header.
pub fn parse_packet(pkt: &[u8]) -> Result<Received, AdvertError> {
    if pkt.len() < 20 {
        return Err(AdvertError::IpHeader("shorter than 20 bytes"));
    }
    if pkt[0] >> 4 != 4 {
        return Err(AdvertError::IpHeader("not IPv4"));
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return Err(AdvertError::IpHeader("header length"));
    }
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    // The kernel hands a raw socket the whole datagram; a total length that
    // disagrees is a forged or damaged packet.
    if total != pkt.len() {
        return Err(AdvertError::IpHeader("total length"));
    }
    if pkt[9] != IPPROTO_VRRP {
        return Err(AdvertError::IpHeader("protocol is not 112"));
    }
    if pkt[8] != 255 {
        return Err(AdvertError::Ttl(pkt[8]));
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let advert = Advert::decode(&pkt[ihl..], src, dst)?;
    Ok(Received { src, dst, advert })
}

/// An IPv4 header for `payload` (tests and fuzz seeds; the kernel builds the
/// real ones). Header checksum left zero: receivers of raw sockets do not see it checked.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0xc0];
    p.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, ttl, IPPROTO_VRRP, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn checksum(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> u16 {
    // RFC 5798 §5.2.8: the IPv4 pseudo-header, then the VRRP message.
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&[0, IPPROTO_VRRP]);
    add(&(msg.len() as u16).to_be_bytes());
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Advert {
    /// Encode with the checksum for `src` → `dst`.
    pub fn encode(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut m = Vec::with_capacity(8 + 4 * self.addrs.len());
        m.push(0x31); // version 3, type 1
        m.push(self.vrid);
        m.push(self.priority);
        m.push(self.addrs.len() as u8);
        m.extend_from_slice(&(self.interval_cs & 0x0fff).to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        for a in &self.addrs {
            m.extend_from_slice(&a.octets());
        }
        let c = checksum(src, dst, &m);
        m[6..8].copy_from_slice(&c.to_be_bytes());
        m
    }

    /// Decode and verify a VRRP message received from `src` to `dst`.
    pub fn decode(b: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<Advert, AdvertError> {
        if b.len() < 8 {
            return Err(AdvertError::Truncated(b.len()));
        }
        if b[0] >> 4 != 3 {
            return Err(AdvertError::Version(b[0] >> 4));
        }
        if b[0] & 0x0f != 1 {
            return Err(AdvertError::Type(b[0] & 0x0f));
        }
        let count = b[3];
        if b.len() != 8 + 4 * count as usize {
            return Err(if b.len() < 8 + 4 * count as usize {
                AdvertError::Truncated(b.len())
            } else {
                AdvertError::Length { len: b.len(), count }
            });
        }
        if checksum(src, dst, b) != 0 {
            return Err(AdvertError::Checksum);
        }
        Ok(Advert {
            vrid: b[1],
            priority: b[2],
            interval_cs: u16::from_be_bytes([b[4], b[5]]) & 0x0fff,
            addrs: b[8..].chunks(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect(),
        })
    }
}

/// Router settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Virtual Router ID.
    pub vrid: u8,
    /// Priority, 1-254 (255: owns the addresses).
    pub priority: u8,
    /// Advertisement interval.
    pub interval: Duration,
    /// Take over from a lower-priority master.
    pub preempt: bool,
    /// Do not preempt before this long after start-up.
    pub preempt_delay: Duration,
    /// This router's primary address (tie-break and packet source).
    pub primary: Ipv4Addr,
    /// The virtual addresses.
    pub vips: Vec<Ipv4Addr>,
}

/// RFC 5798 §6.4 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not running.
    Initialize,
    /// Watching the master.
    Backup,
    /// Holding the virtual addresses.
    Master,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority.
    Advertise(u8),
    /// Add the virtual addresses to the interface.
    AddVips,
    /// Remove them.
    RemoveVips,
    /// Announce them (gratuitous ARP).
    GratuitousArp,
    /// A state change (for logs, hooks and metrics).
    Transition {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Why.
        reason: String,
    },
}

/// One virtual router.
#[derive(Debug, Clone)]
pub struct Vrrp {
    cfg: Config,
    state: State,
    master_interval: Duration,
    deadline: Option<Instant>,
    started: Instant,
}

fn cs(d: Duration) -> u16 {
    (d.as_millis() / 10).clamp(1, 0x0fff) as u16
}

impl Vrrp {
    /// A router in Initialize.
    pub fn new(cfg: Config, now: Instant) -> Vrrp {
        let master_interval = cfg.interval;
        Vrrp { cfg, state: State::Initialize, master_interval, deadline: None, started: now }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Current priority.
    pub fn priority(&self) -> u8 {
        self.cfg.priority
    }

    /// When [`Vrrp::on_timer`] must be called next.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The advertisement this router sends.
    pub fn advert(&self, priority: u8) -> Advert {
        Advert {
            vrid: self.cfg.vrid,
            priority,
            interval_cs: cs(self.cfg.interval),
            addrs: self.cfg.vips.clone(),
        }
    }

    /// RFC 5798 §6.1: Skew_Time = ((256 - Priority) × Master_Adver_Interval) / 256.
    pub fn skew(&self) -> Duration {
        self.master_interval * (256 - u32::from(self.cfg.priority)) / 256
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_interval * 3 + self.skew()
    }

    fn to(&mut self, to: State, reason: &str, out: &mut Vec<Action>) {
        out.push(Action::Transition { from: self.state, to, reason: reason.to_owned() });
        self.state = to;
    }

    fn become_master(&mut self, now: Instant, reason: &str) -> Vec<Action> {
        let mut out =
            vec![Action::Advertise(self.cfg.priority), Action::AddVips, Action::GratuitousArp];
        self.to(State::Master, reason, &mut out);
        self.deadline = Some(now + self.cfg.interval);
        out
    }

    fn become_backup(&mut self, now: Instant, reason: &str) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::RemoveVips);
        }
        self.to(State::Backup, reason, &mut out);
        self.deadline = Some(now + self.master_down_interval());
        out
    }

    /// Startup event (§6.4.1).
    pub fn startup(&mut self, now: Instant) -> Vec<Action> {
        self.started = now;
        if self.cfg.priority == 255 {
            self.become_master(now, "address owner (priority 255)")
        } else {
            self.master_interval = self.cfg.interval;
            self.become_backup(now, "started")
        }
    }

    /// Shutdown event: a master gives up with priority 0 so a backup takes over
    /// after Skew_Time instead of Master_Down_Interval.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::Advertise(0));
            out.push(Action::RemoveVips);
        }
        self.to(State::Initialize, "shutdown", &mut out);
        self.deadline = None;
        out
    }

    /// The interface lost its carrier (or was set down): no advertisement can
    /// leave, so give up the addresses at once and wait (keepalived's FAULT
    /// state; RFC 5798 leaves it to the implementation). [`Vrrp::startup`]
    /// when the link returns.
    pub fn interface_down(&mut self, reason: &str) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Initialize {
            return out;
        }
        if self.state == State::Master {
            out.push(Action::RemoveVips);
        }
        self.to(State::Initialize, reason, &mut out);
        self.deadline = None;
        out
    }

    /// The deadline passed.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match (self.state, self.deadline) {
            (_, Some(d)) if now < d => Vec::new(),
            (State::Backup, Some(_)) => {
                self.become_master(now, "no advertisement within Master_Down_Interval")
            }
            (State::Master, Some(_)) => {
                self.deadline = Some(now + self.cfg.interval);
                vec![Action::Advertise(self.cfg.priority)]
            }
            _ => Vec::new(),
        }
    }

    /// An advertisement for our VRID arrived from `src` (already validated:
    /// TTL 255, checksum, VRID; §7.1).
    pub fn on_advert(&mut self, adv: &Advert, src: Ipv4Addr, now: Instant) -> Vec<Action> {
        let interval = Duration::from_millis(u64::from(adv.interval_cs) * 10);
        match self.state {
            State::Initialize => Vec::new(),
            State::Backup => {
                if adv.priority == 0 {
                    // The master is leaving: take over after Skew_Time.
                    self.deadline = Some(now + self.skew());
                    return Vec::new();
                }
                let may_preempt = self.cfg.preempt && now >= self.started + self.cfg.preempt_delay;
                if !may_preempt || adv.priority >= self.cfg.priority {
                    self.master_interval = interval;
                    self.deadline = Some(now + self.master_down_interval());
                }
                // Else: a lower-priority master while we may preempt — let the
                // Master_Down_Timer run out and take over.
                Vec::new()
            }
            State::Master => {
                if adv.priority == 0 {
                    self.deadline = Some(now + self.cfg.interval);
                    return vec![Action::Advertise(self.cfg.priority)];
                }
                let wins = adv.priority > self.cfg.priority
                    || (adv.priority == self.cfg.priority
                        && u32::from(src) > u32::from(self.cfg.primary));
                if wins {
                    self.master_interval = interval;
                    let why = format!(
                        "{src} advertises priority {} (ours {})",
                        adv.priority, self.cfg.priority
                    );
                    return self.become_backup(now, &why);
                }
                // Another router believes it is master (it missed our
                // advertisements, e.g. on a loaded or lossy link) and has
                // announced the addresses with its own MAC: RFC 5798 §6.4.3
                // discards the advertisement, which leaves the devices'
                // neighbour caches on a router that is about to yield them
                // (every new session times out until those entries age out).
                // Like keepalived's `vrrp_garp_lower_prio_repeat`: advertise
                // at once so it backs off, and announce the addresses again.
                if src == self.cfg.primary {
                    return Vec::new(); // our own advertisement, looped back
                }
                self.deadline = Some(now + self.cfg.interval);
                vec![Action::Advertise(self.cfg.priority), Action::GratuitousArp]
            }
        }
    }

    /// Change the priority (tracking). A master keeps advertising the new value;
    /// a master that drops to a value another router beats loses on its next
    /// advertisement from that router.
    pub fn set_priority(&mut self, p: u8, now: Instant) -> Vec<Action> {
        let p = p.clamp(1, 254);
        if p == self.cfg.priority {
            return Vec::new();
        }
        self.cfg.priority = p;
        if self.state == State::Master {
            // Tell the others at once, so a better backup can preempt.
            self.deadline = Some(now + self.cfg.interval);
            return vec![Action::Advertise(p)];
        }
        Vec::new()
    }
}
