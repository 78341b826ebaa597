//! The director's configuration file (TOML, `deny_unknown_fields`), validated
//! into plain settings. Errors name the file, line and what to do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::core::sched::Kind;

fn dur<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?} ({e}); write e.g. \"200ms\", \"5s\""
        ))
    })
}

fn sched<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
    String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorFile {
    /// `[director]`.
    pub director: DirectorSection,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: Option<Metrics>,
    /// `[vrrp]`: hold the virtual addresses with VRRPv3 (RFC 5798) failover.
    #[serde(default)]
    pub vrrp: Option<VrrpSection>,
    /// `[[service]]`.
    #[serde(rename = "service")]
    pub services: Vec<Service>,
}

/// `[vrrp]`: one VRRPv3 virtual router on one interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpSection {
    /// Interface the virtual addresses live on and advertisements go out of.
    pub interface: String,
    /// Virtual Router ID (1-255), the same on every director of the pair.
    pub vrid: u8,
    /// 1-254 (the higher wins); 255 only for the owner of the addresses.
    #[serde(default = "prio100")]
    pub priority: u8,
    /// Advertisement interval: 10 ms steps (centiseconds on the wire), up to 40.95 s.
    #[serde(deserialize_with = "dur", default = "sec1")]
    pub advert_interval: Duration,
    /// Take mastership from a lower-priority master.
    #[serde(default = "yes")]
    pub preempt: bool,
    /// After start-up, wait this long before preempting (let health checks settle).
    #[serde(deserialize_with = "dur", default = "zero")]
    pub preempt_delay: Duration,
    /// Virtual addresses, "10.0.0.100" (a /32) or "10.0.0.100/24".
    #[serde(deserialize_with = "vips")]
    pub vips: Vec<(std::net::Ipv4Addr, u8)>,
    /// Send advertisements to these peers instead of 224.0.0.18 (and accept
    /// advertisements only from them): for networks without multicast.
    #[serde(default)]
    pub unicast_peers: Vec<std::net::Ipv4Addr>,
    /// Source of advertisements and tie-break address; default: the
    /// interface's first IPv4 address that is not a virtual one.
    #[serde(default)]
    pub source: Option<std::net::Ipv4Addr>,
    /// Program run on every state change as `PROGRAM INSTANCE NAME STATE PRIORITY`
    /// (keepalived's convention; STATE is MASTER, BACKUP or FAULT).
    #[serde(default)]
    pub notify: Option<PathBuf>,
    /// Subtracted from the priority while a virtual service has no healthy
    /// real server, so a standby that can still serve takes over.
    #[serde(default = "penalty")]
    pub track_penalty: u8,
    /// Gratuitous ARPs sent per address on becoming master (100 ms apart).
    #[serde(default = "three_u32")]
    pub garp_count: u32,
}

fn prio100() -> u8 {
    100
}
fn sec1() -> Duration {
    Duration::from_secs(1)
}
fn yes() -> bool {
    true
}
fn zero() -> Duration {
    Duration::ZERO
}
fn penalty() -> u8 {
    50
}
fn three_u32() -> u32 {
    3
}

fn vips<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(std::net::Ipv4Addr, u8)>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            let (a, p) = s.split_once('/').unwrap_or((s, "32"));
            match (a.parse(), p.parse::<u8>()) {
                (Ok(a), Ok(p)) if p <= 32 => Ok((a, p)),
                _ => Err(serde::de::Error::custom(format!(
                    "virtual address {s:?}: write an IPv4 address, optionally with /PREFIX"
                ))),
            }
        })
        .collect()
}

/// `[director]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorSection {
    /// Name in logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// Unix socket for `tacvs director status|drain|enable|weight`.
    #[serde(default = "default_socket")]
    pub control_socket: PathBuf,
}

fn default_name() -> String {
    "director".into()
}
fn default_socket() -> PathBuf {
    PathBuf::from("./var/director.sock")
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Prometheus endpoint.
    pub listen: SocketAddr,
}

/// PROXY header sent to real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyHeader {
    /// PROXY v2 (binary).
    V2,
    /// PROXY v1 (text).
    V1,
    /// None: the real server sees the director's address.
    None,
}

/// What happens to a server whose checks fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDown {
    /// Out of scheduling.
    Remove,
    /// LVS `inhibit`: kept in the table with weight 0.
    Inhibit,
}

/// `[[service]]`: a virtual service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Name in logs, status and metrics.
    pub name: String,
    /// Virtual address and port.
    pub listen: SocketAddr,
    /// Scheduler.
    #[serde(deserialize_with = "sched", default = "wlc")]
    pub scheduler: Kind,
    /// Forwarding mode; this version implements `proxy`.
    #[serde(default = "proxy_mode")]
    pub mode: String,
    /// Header that carries the device's address.
    #[serde(default = "v2")]
    pub proxy_protocol: ProxyHeader,
    /// Bound on connecting to a real server.
    #[serde(deserialize_with = "dur", default = "ms300")]
    pub connect_timeout: Duration,
    /// Real servers tried for one device connection before giving up.
    #[serde(default = "three")]
    pub connect_attempts: usize,
    /// A proxied connection with no traffic either way is closed after this.
    #[serde(deserialize_with = "dur", default = "min10")]
    pub idle_timeout: Duration,
    /// Device connections open at once on this service.
    #[serde(default = "max_conns")]
    pub max_connections: usize,
    /// Where to send devices when no real server is available.
    #[serde(default)]
    pub sorry_server: Option<SocketAddr>,
    /// `remove` (default) or `inhibit` a failed server.
    #[serde(default = "remove")]
    pub on_down: OnDown,
    /// How proxied bytes move: `userspace` (pooled buffer, default) or `splice`
    /// (kernel pipes, no copy to user space; two pipes per connection).
    #[serde(default = "userspace")]
    pub copy: CopyMode,
    /// `[service.health]`.
    pub health: HealthConf,
    /// `[[service.real]]`.
    #[serde(rename = "real")]
    pub reals: Vec<Real>,
}

/// Data path of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyMode {
    /// read/write through a pooled buffer.
    Userspace,
    /// splice(2) through pipes.
    Splice,
}

fn userspace() -> CopyMode {
    CopyMode::Userspace
}

fn wlc() -> Kind {
    Kind::Wlc
}
fn proxy_mode() -> String {
    "proxy".into()
}
fn v2() -> ProxyHeader {
    ProxyHeader::V2
}
fn ms300() -> Duration {
    Duration::from_millis(300)
}
fn three() -> usize {
    3
}
fn min10() -> Duration {
    Duration::from_secs(600)
}
fn max_conns() -> usize {
    16_000
}
fn remove() -> OnDown {
    OnDown::Remove
}

/// The kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connect (and PROXY LOCAL header).
    Tcp,
    /// A TACACS+ exchange with the server's key.
    Tacacs,
}

/// What the TACACS+ probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// An authorization REQUEST for `user` (any well-formed reply counts; FAIL
    /// or ERROR reports a misconfiguration).
    Authorize,
    /// A PAP login of `user` / `password` (FAIL reports a misconfiguration).
    Authenticate,
}

/// `[service.health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConf {
    /// `tcp` or `tacacs`.
    pub check: CheckKind,
    /// Time between checks (sub-second allowed).
    #[serde(deserialize_with = "dur")]
    pub interval: Duration,
    /// Bound on one check.
    #[serde(deserialize_with = "dur")]
    pub timeout: Duration,
    /// Successes in a row to come up.
    #[serde(default = "two")]
    pub rise: u32,
    /// Failures in a row to go down.
    #[serde(default = "two")]
    pub fall: u32,
    /// The real servers' shared key (tacacs checks).
    #[serde(default)]
    pub key: Option<String>,
    /// `authorize` or `authenticate`.
    #[serde(default = "authorize")]
    pub probe: Probe,
    /// Probe account.
    #[serde(default = "probe_user")]
    pub user: String,
    /// Probe password (authenticate).
    #[serde(default)]
    pub password: Option<String>,
}

fn two() -> u32 {
    2
}
fn authorize() -> Probe {
    Probe::Authorize
}
fn probe_user() -> String {
    "tacvs-healthcheck".into()
}

/// `[[service.real]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Real {
    /// Address and port.
    pub address: SocketAddr,
    /// Weight (0 = drained).
    #[serde(default = "one")]
    pub weight: u32,
    /// Connection cap (0 = none).
    #[serde(default)]
    pub max_connections: u32,
}

fn one() -> u32 {
    1
}

/// Read and validate a director file.
pub fn load(path: &Path) -> Result<DirectorFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Validate director configuration text.
pub fn parse(file: &str, text: &str) -> Result<DirectorFile, String> {
    let f: DirectorFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => format!("{file}:{l}: {}", e.message().trim()),
            None => format!("{file}: {}", e.message().trim()),
        }
    })?;
    let mut errs = Vec::new();
    if f.services.is_empty() {
        errs.push(format!("{file}: no [[service]]: add a virtual service"));
    }
    for s in &f.services {
        let at = format!("{file}: service {:?}", s.name);
        if s.mode != "proxy" {
            errs.push(format!(
                "{at}: mode {:?} is not available in this version; use \"proxy\"",
                s.mode
            ));
        }
        if s.reals.is_empty() {
            errs.push(format!("{at}: no [[service.real]] servers"));
        }
        if s.connect_attempts == 0 || s.max_connections == 0 {
            errs.push(format!("{at}: connect_attempts and max_connections must be at least 1"));
        }
        if s.health.check == CheckKind::Tacacs && s.health.key.as_deref().is_none_or(str::is_empty)
        {
            errs.push(format!("{at}: a tacacs health check needs key = \"...\" (the real servers' key for the director's address)"));
        }
        if s.health.probe == Probe::Authenticate && s.health.password.is_none() {
            errs.push(format!("{at}: probe = \"authenticate\" needs password = \"...\""));
        }
        if s.health.interval.is_zero() || s.health.timeout.is_zero() {
            errs.push(format!("{at}: health interval and timeout must be above zero"));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &s.reals {
            if !seen.insert(r.address) {
                errs.push(format!("{at}: real server {} is listed twice", r.address));
            }
        }
    }
    if let Some(v) = &f.vrrp {
        let at = format!("{file}: [vrrp]");
        if v.interface.is_empty() || v.interface.len() > 15 {
            errs.push(format!("{at}: interface {:?} is not an interface name", v.interface));
        }
        if v.vrid == 0 {
            errs.push(format!("{at}: vrid must be 1-255"));
        }
        if v.priority == 0 {
            errs.push(format!(
                "{at}: priority must be 1-255 (0 is reserved for a master giving up)"
            ));
        }
        let ms = v.advert_interval.as_millis();
        if !(10..=40_950).contains(&ms) || ms % 10 != 0 {
            errs.push(format!("{at}: advert_interval must be 10ms-40.95s in 10 ms steps (it travels in centiseconds)"));
        }
        if v.vips.is_empty() {
            errs.push(format!("{at}: no vips: list the virtual addresses this pair holds"));
        }
        for s in &f.services {
            if let std::net::IpAddr::V4(ip) = s.listen.ip()
                && !ip.is_unspecified()
                && !ip.is_loopback()
                && !v.vips.iter().any(|(a, _)| *a == ip)
            {
                errs.push(format!(
                    "{at}: service {:?} listens on {ip}, which is not one of the vips: devices would miss it after a failover",
                    s.name
                ));
            }
        }
    }
    let mut names = std::collections::HashSet::new();
    for s in &f.services {
        if !names.insert(&s.name) {
            errs.push(format!("{file}: service name {:?} is used twice", s.name));
        }
    }
    if errs.is_empty() { Ok(f) } else { Err(errs.join("\n")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = r#"
[[service]]
name = "tacacs"
listen = "10.49.0.100:49"
  [service.health]
  check = "tcp"
  interval = "200ms"
  timeout = "300ms"
  [[service.real]]
  address = "10.49.1.1:49"
"#;

    #[test]
    fn vrrp_section_defaults_and_vips() {
        let text = format!(
            "[director]\n[vrrp]\ninterface = \"eth0\"\nvrid = 49\nvips = [\"10.49.0.100\", \"10.49.0.101/24\"]\n{SERVICE}"
        );
        let f = parse("d.toml", &text).unwrap();
        let v = f.vrrp.unwrap();
        assert_eq!(
            (v.priority, v.advert_interval, v.preempt, v.track_penalty),
            (100, Duration::from_secs(1), true, 50)
        );
        assert_eq!(
            v.vips,
            vec![("10.49.0.100".parse().unwrap(), 32), ("10.49.0.101".parse().unwrap(), 24)]
        );
    }

    #[test]
    fn vrrp_errors_name_the_field() {
        let bad = |vrrp: &str| {
            parse("d.toml", &format!("[director]\n[vrrp]\n{vrrp}\n{SERVICE}")).unwrap_err()
        };
        let e = bad(
            "interface = \"eth0\"\nvrid = 0\npriority = 0\nadvert_interval = \"15ms\"\nvips = []",
        );
        for want in ["vrid must be 1-255", "priority must be 1-255", "10 ms steps", "no vips"] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = bad("interface = \"eth0\"\nvrid = 1\nvips = [\"10.49.0.7\"]");
        assert!(e.contains("listens on 10.49.0.100, which is not one of the vips"), "{e}");
        let e = bad("interface = \"eth0\"\nvrid = 1\nvips = [\"10.49.0.300\"]");
        assert!(e.starts_with("d.toml:") && e.contains("optionally with /PREFIX"), "{e}");
    }
}

#[cfg(test)]
mod examples {
    #[test]
    fn shipped_examples_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster");
        for f in ["director.toml", "director-ha.toml"] {
            super::load(&dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
