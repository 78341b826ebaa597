//! Schedulers: which real server gets the next connection. The LVS set (rr,
//! wrr, lc, wlc, sed, nq, fo, ovf, sh, dh, mh) plus `twos` (power of two
//! choices). Each sees the servers' current weights, active connection counts,
//! caps and health; a server is *available* when it is up, has weight > 0
//! (weight 0 = drained or inhibited) and is under its connection cap.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::core::maglev::Maglev;

/// What a scheduler sees of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Stable identity (its address), used by the hashing schedulers.
    pub key: String,
    /// Weight; 0 takes no new connections.
    pub weight: u32,
    /// Connections open now.
    pub active: u32,
    /// Cap on open connections (0 = none).
    pub max_conns: u32,
    /// Passing health checks.
    pub up: bool,
}

impl Backend {
    /// A healthy backend with no connections.
    pub fn new(key: impl Into<String>, weight: u32) -> Backend {
        Backend { key: key.into(), weight, active: 0, max_conns: 0, up: true }
    }

    /// Whether it can take a new connection.
    pub fn available(&self) -> bool {
        self.up && self.weight > 0 && (self.max_conns == 0 || self.active < self.max_conns)
    }
}

/// Scheduler names, as in configuration (`scheduler = "wlc"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Round robin.
    Rr,
    /// Weighted round robin (smooth).
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Shortest expected delay: (active + 1) / weight.
    Sed,
    /// Never queue: an idle server if any, else sed.
    Nq,
    /// Weighted failover: the available server of highest weight.
    Fo,
    /// Overflow: the highest-weight server while its active count is below its weight.
    Ovf,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Maglev hashing (minimal disruption).
    Mh,
    /// Power of two random choices, by weighted load.
    Twos,
}

const KINDS: [(Kind, &str); 12] = [
    (Kind::Rr, "rr"),
    (Kind::Wrr, "wrr"),
    (Kind::Lc, "lc"),
    (Kind::Wlc, "wlc"),
    (Kind::Sed, "sed"),
    (Kind::Nq, "nq"),
    (Kind::Fo, "fo"),
    (Kind::Ovf, "ovf"),
    (Kind::Sh, "sh"),
    (Kind::Dh, "dh"),
    (Kind::Mh, "mh"),
    (Kind::Twos, "twos"),
];

impl Kind {
    /// The name used in configuration, logs and status (`wlc`).
    pub fn name(self) -> &'static str {
        KINDS.iter().find(|(k, _)| *k == self).map_or("?", |(_, n)| n)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;
    /// The error does not repeat the text (configuration errors never echo values).
    fn from_str(s: &str) -> Result<Kind, String> {
        KINDS.iter().find(|(_, n)| *n == s).map(|(k, _)| *k).ok_or_else(|| {
            "unknown scheduler; one of rr, wrr, lc, wlc, sed, nq, fo, ovf, sh, dh, mh, twos".into()
        })
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What the hashing schedulers (`sh`, `mh`) hash: IPVS's default, the
/// source address, or with `sh-port`/`mh-port` the address and port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum HashOn {
    /// The device's address: all its connections go to one server.
    #[default]
    Source,
    /// The device's address and port: its connections spread.
    SourcePort,
}

impl HashOn {
    /// The configuration word.
    pub fn name(self) -> &'static str {
        match self {
            HashOn::Source => "source",
            HashOn::SourcePort => "source-port",
        }
    }

    /// Whether it is the default (not written back).
    pub fn is_default(&self) -> bool {
        *self == HashOn::Source
    }
}

/// The connection being scheduled.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// The device.
    pub client: SocketAddr,
    /// The virtual service address it connected to.
    pub vip: SocketAddr,
}

/// A scheduler with its state (round-robin position, weights credit, tables).
#[derive(Debug, Clone)]
pub struct Scheduler {
    kind: Kind,
    hash: HashOn,
    rr_next: usize,
    wrr_current: Vec<i64>,
    maglev: Option<(Vec<(String, u32)>, Maglev)>,
    rng: u64,
}

/// FNV-1a, for the source/destination hashes (stable across runs and builds).
pub fn hash_addr(ip: IpAddr) -> u64 {
    hash_bytes(ip, None)
}

/// The hash of a device for `sh`/`mh`: its address, and its port when `on`
/// says so. The DR data plane computes the same (`tacvs_xdp::flow_hash`).
pub fn hash_source(client: SocketAddr, on: HashOn) -> u64 {
    hash_bytes(client.ip(), (on == HashOn::SourcePort).then_some(client.port()))
}

fn hash_bytes(ip: IpAddr, port: Option<u16>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    match ip {
        IpAddr::V4(a) => feed(&a.octets()),
        IpAddr::V6(a) => feed(&a.octets()),
    }
    if let Some(p) = port {
        feed(&p.to_be_bytes());
    }
    // Finalize (splitmix64) so nearby addresses spread.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Scheduler {
    /// A scheduler; `seed` drives `twos`' random choices (inject for tests).
    pub fn new(kind: Kind, seed: u64) -> Scheduler {
        Scheduler {
            kind,
            hash: HashOn::Source,
            rr_next: 0,
            wrr_current: Vec::new(),
            maglev: None,
            rng: seed | 1,
        }
    }

    /// What `sh` and `mh` hash (default: the source address).
    pub fn hashing(mut self, on: HashOn) -> Scheduler {
        self.hash = on;
        self
    }

    /// Which scheduler this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: fast, and deterministic for a given seed.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The server (index into `servers`) for a new connection, or None when no
    /// server is available.
    pub fn pick(&mut self, servers: &[Backend], flow: Flow) -> Option<usize> {
        let avail = |i: &usize| servers[*i].available();
        let n = servers.len();
        if n == 0 {
            return None;
        }
        match self.kind {
            Kind::Rr => {
                let start = self.rr_next % n;
                let i = (0..n).map(|k| (start + k) % n).find(|i| avail(i))?;
                self.rr_next = i + 1;
                Some(i)
            }
            Kind::Wrr => {
                // Smooth weighted round robin: each pick adds every server's weight
                // to its credit, takes the largest, and charges it the total.
                if self.wrr_current.len() != n {
                    self.wrr_current = vec![0; n];
                }
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for i in (0..n).filter(|i| avail(i)) {
                    let w = i64::from(servers[i].weight);
                    self.wrr_current[i] += w;
                    total += w;
                    if best.is_none_or(|b| self.wrr_current[i] > self.wrr_current[b]) {
                        best = Some(i);
                    }
                }
                let b = best?;
                self.wrr_current[b] -= total;
                Some(b)
            }
            // Ties (common with short connections: everyone at zero) rotate, so
            // the first server is not favoured.
            Kind::Lc => {
                self.rotate(n, |start| min_ratio(servers, start, |b| u64::from(b.active), false))
            }
            Kind::Wlc => {
                self.rotate(n, |start| min_ratio(servers, start, |b| u64::from(b.active), true))
            }
            Kind::Sed => {
                self.rotate(n, |start| min_ratio(servers, start, |b| u64::from(b.active) + 1, true))
            }
            Kind::Nq => self.rotate(n, |start| {
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| avail(&i) && servers[i].active == 0)
                    .or_else(|| min_ratio(servers, start, |b| u64::from(b.active) + 1, true))
            }),
            Kind::Fo => (0..n)
                .filter(|i| avail(i))
                .max_by_key(|&i| (servers[i].weight, std::cmp::Reverse(i))),
            Kind::Ovf => {
                let mut order: Vec<usize> = (0..n).filter(|i| avail(i)).collect();
                order.sort_by_key(|&i| (std::cmp::Reverse(servers[i].weight), i));
                order
                    .iter()
                    .copied()
                    .find(|&i| servers[i].active < servers[i].weight)
                    .or(order.first().copied())
            }
            Kind::Sh => weighted_hash(servers, hash_source(flow.client, self.hash)),
            Kind::Dh => weighted_hash(servers, hash_addr(flow.vip.ip())),
            Kind::Mh => {
                // The table is rebuilt only when a key or a weight changed; a
                // pick compares in place (no copy of the keys).
                let weight = |b: &Backend| if b.up { b.weight } else { 0 };
                let same = self.maglev.as_ref().is_some_and(|(have, _)| {
                    have.len() == n
                        && have
                            .iter()
                            .zip(servers)
                            .all(|((k, w), b)| *k == b.key && *w == weight(b))
                });
                if !same {
                    let want: Vec<(String, u32)> =
                        servers.iter().map(|b| (b.key.clone(), weight(b))).collect();
                    let table = Maglev::new(&want);
                    self.maglev = Some((want, table));
                }
                let (_, table) = self.maglev.as_ref()?;
                let i = table.lookup(hash_source(flow.client, self.hash))?;
                // A full server (cap reached) falls back to the next available one.
                if avail(&i) { Some(i) } else { (1..n).map(|k| (i + k) % n).find(|j| avail(j)) }
            }
            Kind::Twos => {
                let cands: Vec<usize> = (0..n).filter(|i| avail(i)).collect();
                match cands.len() {
                    0 => None,
                    1 => Some(cands[0]),
                    m => {
                        let a = cands[(self.random() % m as u64) as usize];
                        let mut b = cands[(self.random() % m as u64) as usize];
                        if b == a {
                            b = cands[(cands.iter().position(|&x| x == a).unwrap_or(0) + 1) % m];
                        }
                        // Lower active/weight wins.
                        let la = u64::from(servers[a].active) * u64::from(servers[b].weight);
                        let lb = u64::from(servers[b].active) * u64::from(servers[a].weight);
                        Some(if lb < la { b } else { a })
                    }
                }
            }
        }
    }
}

impl Scheduler {
    /// Run a tie-breaking pick starting at a rotating index.
    fn rotate(&mut self, n: usize, f: impl FnOnce(usize) -> Option<usize>) -> Option<usize> {
        let start = self.rr_next % n;
        self.rr_next = self.rr_next.wrapping_add(1);
        f(start)
    }
}

/// The available server minimizing load(b) (divided by its weight when
/// `weighted`), scanning from `start` so ties rotate.
fn min_ratio(
    servers: &[Backend],
    start: usize,
    load: impl Fn(&Backend) -> u64,
    weighted: bool,
) -> Option<usize> {
    let n = servers.len();
    let w = |b: &Backend| if weighted { u64::from(b.weight) } else { 1 };
    let mut best: Option<usize> = None;
    for i in (0..n).map(|k| (start + k) % n).filter(|&i| servers[i].available()) {
        let s = &servers[i];
        best = match best {
            None => Some(i),
            // load(i)/w(i) < load(b)/w(b)  <=>  load(i)*w(b) < load(b)*w(i)
            Some(b) if load(s) * w(&servers[b]) < load(&servers[b]) * w(s) => Some(i),
            keep => keep,
        };
    }
    best
}

/// Hash onto the available servers in proportion to their weights.
fn weighted_hash(servers: &[Backend], h: u64) -> Option<usize> {
    let total: u64 = servers.iter().filter(|s| s.available()).map(|s| u64::from(s.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut point = h % total;
    for (i, s) in servers.iter().enumerate().filter(|(_, s)| s.available()) {
        let w = u64::from(s.weight);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}
