//! The director's configuration file (TOML, `deny_unknown_fields`), validated
//! into plain settings.
//!
//! Every problem is reported at once with `file:line:column` ([`ConfigErrors`]);
//! no message repeats a value from the file (a shared key written in the wrong
//! place must not reach a terminal or a log). The settings serialize back to
//! TOML, so tools generate director files as values rather than text.
//! [`check`] adds warnings about this machine (a missing interface or notify
//! program, a short key) for `tacvs check`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
pub use tacvs_config::ConfigErrors;
use tacvs_config::{ConfigError, Dur, Locator, Secret, Seg, Spans};

use crate::core::sched::{HashOn, Kind};

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorFile {
    /// `[director]`.
    pub director: DirectorSection,
    /// `[metrics]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// `[vrrp]`: hold the virtual addresses with VRRPv3 (RFC 5798) failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<VrrpSection>,
    /// `[dr]`: the direct-routing data plane (XDP) for `mode = "dr"` services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr: Option<DrSection>,
    /// `[[service]]`.
    #[serde(rename = "service")]
    pub services: Vec<Service>,
}

/// `[vrrp]`: one VRRPv3 virtual router on one interface.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    #[serde(default = "sec1")]
    pub advert_interval: Dur,
    /// Take mastership from a lower-priority master.
    #[serde(default = "yes")]
    pub preempt: bool,
    /// After start-up, wait this long before preempting (let health checks settle).
    #[serde(default)]
    pub preempt_delay: Dur,
    /// Virtual addresses, "10.0.0.100" (a /32) or "10.0.0.100/24".
    #[serde(deserialize_with = "vips", serialize_with = "vips_out")]
    pub vips: Vec<(Ipv4Addr, u8)>,
    /// Send advertisements to these peers instead of 224.0.0.18 (and accept
    /// advertisements only from them): for networks without multicast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<Ipv4Addr>,
    /// Source of advertisements and tie-break address; default: the
    /// interface's first IPv4 address that is not a virtual one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    /// Program run on every state change as `PROGRAM INSTANCE NAME STATE PRIORITY`
    /// (keepalived's convention; STATE is MASTER, BACKUP or FAULT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
fn sec1() -> Dur {
    Dur::secs(1)
}
fn yes() -> bool {
    true
}
fn penalty() -> u8 {
    50
}
fn three_u32() -> u32 {
    3
}

fn vips<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Ipv4Addr, u8)>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (a, p) = s.split_once('/').unwrap_or((s, "32"));
            match (a.parse(), p.parse::<u8>()) {
                (Ok(a), Ok(p)) if p <= 32 => Ok((a, p)),
                _ => Err(serde::de::Error::custom(format!(
                    "virtual address {} of the list is not one: write an IPv4 address, optionally with /PREFIX",
                    i + 1
                ))),
            }
        })
        .collect()
}

fn vips_out<S: Serializer>(v: &[(Ipv4Addr, u8)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(a, p)| format!("{a}/{p}")))
}

/// `[dr]`: where and how the direct-routing data plane runs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DrSection {
    /// The interface devices' packets arrive on and leave by (the servers'
    /// segment); default: `[vrrp] interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `auto` (native where the driver has XDP, else generic), `native` or
    /// `generic`.
    #[serde(default)]
    pub attach: Attach,
    /// Flow-table capacity (preallocated, about 100 bytes each): more than
    /// the flows open at once, or established ones are evicted and placed
    /// again by the table.
    #[serde(default = "flow_entries")]
    pub flow_entries: u32,
}

/// How the XDP program attaches (`[dr] attach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Attach {
    /// Native where the driver supports XDP, generic otherwise.
    #[default]
    Auto,
    /// Native (in the driver) only.
    Native,
    /// Generic (in the kernel's receive path) only.
    Generic,
}

/// The most flow entries `[dr] flow_entries` may ask for (~1.6 GB).
pub const MAX_FLOW_ENTRIES: u32 = 16 << 20;

fn flow_entries() -> u32 {
    262_144
}

impl DirectorFile {
    /// The interface the DR data plane attaches to: `[dr] interface`, else
    /// `[vrrp] interface`.
    pub fn dr_interface(&self) -> Option<&str> {
        self.dr
            .as_ref()
            .and_then(|d| d.interface.as_deref())
            .or(self.vrrp.as_ref().map(|v| v.interface.as_str()))
    }

    /// Whether any service runs in direct routing.
    pub fn has_dr(&self) -> bool {
        self.services.iter().any(|s| s.mode == Mode::Dr)
    }
}

/// `[director]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorSection {
    /// Name in logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// Unix socket for `tacvs director status|drain|enable|weight`.
    #[serde(default = "default_socket")]
    pub control_socket: PathBuf,
    /// Group (name or number) whose members may use the control socket
    /// (mode 0660); without it only root and the director's own user may
    /// (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_socket_group: Option<String>,
}

/// Where the control socket is unless configured (absolute, so `tacvs director
/// status` finds it from any directory).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/tacvs/director.sock";

fn default_name() -> String {
    "director".into()
}
fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Prometheus endpoint.
    pub listen: SocketAddr,
}

/// PROXY header sent to real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDown {
    /// Out of scheduling.
    Remove,
    /// LVS `inhibit`: kept in the table with weight 0.
    Inhibit,
}

/// How a service forwards connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Terminate the device's TCP connection and open one to the real server,
    /// with a PROXY header carrying the device's address.
    Proxy,
    /// Direct routing (LVS-DR): the XDP data plane rewrites the destination
    /// MAC of the devices' packets to a real server's; the server holds the
    /// VIP on `lo` and answers the devices directly.
    Dr,
}

/// `[[service]]`: a virtual service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Name in logs, status and metrics.
    pub name: String,
    /// Virtual address and port.
    pub listen: SocketAddr,
    /// Scheduler.
    #[serde(default = "wlc")]
    pub scheduler: Kind,
    /// What `sh` and `mh` hash: the device's address (`source`, IPVS's
    /// default) or its address and port (`source-port`, IPVS `sh-port` /
    /// `mh-port`: one device's connections spread over the servers).
    #[serde(default, skip_serializing_if = "HashOn::is_default")]
    pub hash: HashOn,
    /// Forwarding mode.
    #[serde(default = "proxy_mode")]
    pub mode: Mode,
    /// Header that carries the device's address.
    #[serde(default = "v2")]
    pub proxy_protocol: ProxyHeader,
    /// Bound on connecting to a real server.
    #[serde(default = "ms300")]
    pub connect_timeout: Dur,
    /// Real servers tried for one device connection before giving up.
    #[serde(default = "three")]
    pub connect_attempts: usize,
    /// A proxied connection with no traffic either way is closed after this.
    #[serde(default = "min10")]
    pub idle_timeout: Dur,
    /// Device connections open at once on this service.
    #[serde(default = "max_conns")]
    pub max_connections: usize,
    /// Device connections open at once from one source address (one address
    /// must not take every slot).
    #[serde(default = "max_per_source")]
    pub max_connections_per_source: usize,
    /// A device must send its first bytes within this long after connecting
    /// (TACACS+ clients speak first); the real server is connected only then,
    /// so a slow device never meets the server's PROXY header deadline.
    #[serde(default = "sec10")]
    pub first_bytes_timeout: Dur,
    /// Where to send devices when no real server is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    pub reals: Vec<RealConf>,
}

/// Data path of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
fn proxy_mode() -> Mode {
    Mode::Proxy
}
fn v2() -> ProxyHeader {
    ProxyHeader::V2
}
fn ms300() -> Dur {
    Dur::millis(300)
}
fn three() -> usize {
    3
}
fn min10() -> Dur {
    Dur::secs(600)
}
fn max_conns() -> usize {
    16_000
}
fn max_per_source() -> usize {
    512
}
fn sec10() -> Dur {
    Dur::secs(10)
}
fn remove() -> OnDown {
    OnDown::Remove
}

/// The kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connect (and PROXY LOCAL header).
    Tcp,
    /// A TACACS+ exchange with the server's key.
    Tacacs,
}

/// What the TACACS+ probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// An authorization REQUEST for `user` (any well-formed reply counts; FAIL
    /// or ERROR reports a misconfiguration).
    Authorize,
    /// A PAP login of `user` / `password` (FAIL reports a misconfiguration).
    Authenticate,
}

/// `[service.health]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConf {
    /// `tcp` or `tacacs`.
    pub check: CheckKind,
    /// Time between checks (sub-second allowed).
    pub interval: Dur,
    /// Bound on one check.
    pub timeout: Dur,
    /// Successes in a row to come up.
    #[serde(default = "two")]
    pub rise: u32,
    /// Failures in a row to go down.
    #[serde(default = "two")]
    pub fall: u32,
    /// The real servers' shared key (tacacs checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// `authorize` or `authenticate`.
    #[serde(default = "authorize")]
    pub probe: Probe,
    /// Probe account.
    #[serde(default = "probe_user")]
    pub user: String,
    /// Probe password (authenticate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// `[service.health.tls]`: check the real servers over TLS (RFC 9887).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HealthTls>,
}

/// `[service.health.tls]`: every check is a full TLS 1.3 handshake (no
/// resumption, so a server whose certificate went bad is seen at once), then
/// the check over it; a certificate the director cannot verify marks the
/// server misconfigured. Paths are relative to the working directory.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthTls {
    /// PEM bundle of the CA that issued the real servers' certificates.
    pub ca: std::path::PathBuf,
    /// The director's own certificate (PEM), for servers that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<std::path::PathBuf>,
    /// The name the servers' certificates carry (a DNS-ID, sent as SNI);
    /// default: each server's address (an IP-ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

impl HealthTls {
    /// The client configuration of the checks, read from the files now.
    pub fn client_config(
        &self,
    ) -> Result<std::sync::Arc<tacvs_tls::rustls::ClientConfig>, (&'static str, String)> {
        let roots = tacvs_tls::client::roots(&self.ca).map_err(|e| ("ca", e.to_string()))?;
        let id = match (&self.certificate, &self.key) {
            (Some(c), Some(k)) => Some(tacvs_tls::client::identity(c, k).map_err(|e| {
                (
                    if e.field() == tacvs_tls::material::Field::Key {
                        "key"
                    } else {
                        "certificate"
                    },
                    e.to_string(),
                )
            })?),
            (None, None) => None,
            (Some(_), None) => return Err(("certificate", "certificate needs key".into())),
            (None, Some(_)) => return Err(("key", "key needs certificate".into())),
        };
        let mut c =
            tacvs_tls::client::config(roots, id).map_err(|e| ("certificate", e.to_string()))?;
        // A resumed handshake does not look at the certificate again.
        std::sync::Arc::make_mut(&mut c).resumption =
            tacvs_tls::rustls::client::Resumption::disabled();
        Ok(c)
    }
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealConf {
    /// Address and port.
    pub address: SocketAddr,
    /// Weight (0 = drained), at most [`MAX_WEIGHT`].
    #[serde(default = "one")]
    pub weight: u32,
    /// Connection cap (0 = none).
    #[serde(default)]
    pub max_connections: u32,
}

/// The largest weight (LVS's bound).
pub const MAX_WEIGHT: u32 = 65_535;

fn one() -> u32 {
    1
}

macro_rules! names {
    ($($t:ty { $($v:ident => $s:literal),* $(,)? })*) => {$(
        impl $t {
            /// The word used in the configuration file, logs and status.
            pub fn name(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}

names! {
    ProxyHeader { V2 => "v2", V1 => "v1", None => "none" }
    OnDown { Remove => "remove", Inhibit => "inhibit" }
    Mode { Proxy => "proxy", Dr => "dr" }
    Attach { Auto => "auto", Native => "native", Generic => "generic" }
    CopyMode { Userspace => "userspace", Splice => "splice" }
    CheckKind { Tcp => "tcp", Tacacs => "tacacs" }
    Probe { Authorize => "authorize", Authenticate => "authenticate" }
}

/// Read and validate a director file.
pub fn load(path: &Path) -> Result<DirectorFile, ConfigErrors> {
    let (name, text) = read(path)?;
    parse(&name, &text)
}

fn read(path: &Path) -> Result<(String, String), ConfigErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(t) => Ok((name, t)),
        Err(e) => Err(Locator::new(&name, "").whole(format!("cannot read: {e}")).into()),
    }
}

/// Validate director configuration text.
pub fn parse(file: &str, text: &str) -> Result<DirectorFile, ConfigErrors> {
    let loc = Locator::new(file, text);
    let f: DirectorFile = tacvs_config::from_toml(&loc)?;
    let spans = Spans::new(loc);
    let errs = validate(&f, &spans);
    if errs.is_empty() { Ok(f) } else { Err(ConfigErrors(errs)) }
}

/// A valid file and what `tacvs check` warns about.
#[derive(Debug)]
pub struct Checked {
    /// The settings.
    pub file: DirectorFile,
    /// Things that work but deserve a look (a missing interface, a short key).
    pub warnings: Vec<ConfigError>,
}

/// Validate a file as `tacvs check` does: [`parse`], then warnings about this
/// machine (the interface and notify program must exist where the director runs).
pub fn check(path: &Path) -> Result<Checked, ConfigErrors> {
    let (name, text) = read(path)?;
    check_text(&name, &text)
}

/// [`check`] on text.
pub fn check_text(file: &str, text: &str) -> Result<Checked, ConfigErrors> {
    let f = parse(file, text)?;
    let spans = Spans::new(Locator::new(file, text));
    let warnings = warnings(&f, &spans);
    Ok(Checked { file: f, warnings })
}

fn validate(f: &DirectorFile, sp: &Spans<'_>) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    if f.services.is_empty() {
        errs.push(sp.locator().whole("no [[service]]: add a virtual service"));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut listens: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, s) in f.services.iter().enumerate() {
        let at = |field: &'static str| [Seg::Key("service"), Seg::Idx(i), Seg::Key(field)];
        let hat = |field: &'static str| {
            [Seg::Key("service"), Seg::Idx(i), Seg::Key("health"), Seg::Key(field)]
        };
        let svc = format!("service {:?}", s.name);
        if let Some(&first) = names.get(s.name.as_str()) {
            errs.push(sp.at(
                &at("name"),
                format!(
                    "{svc} is defined twice (first at line {}); names must be unique",
                    line(sp, &[Seg::Key("service"), Seg::Idx(first), Seg::Key("name")])
                ),
            ));
        } else {
            names.insert(&s.name, i);
        }
        if s.listen.port() != 0
            && let Some(&first) = listens.get(&s.listen)
        {
            errs.push(sp.at(
                &at("listen"),
                format!(
                    "{svc} listens on the address of service {:?}; each service needs its own address and port",
                    f.services[first].name
                ),
            ));
        } else {
            listens.insert(s.listen, i);
        }
        if s.mode == Mode::Dr {
            dr_service(f, i, sp, &mut errs);
        }
        if s.reals.is_empty() {
            errs.push(
                sp.at(&at("name"), format!("{svc} has no [[service.real]] servers; add one")),
            );
        }
        if s.connect_attempts == 0 {
            errs.push(sp.at(
                &at("connect_attempts"),
                format!("{svc}: connect_attempts must be at least 1"),
            ));
        }
        for (field, n) in [
            ("max_connections", s.max_connections),
            ("max_connections_per_source", s.max_connections_per_source),
        ] {
            if n == 0 {
                errs.push(sp.at(&at(field), format!("{svc}: {field} must be at least 1")));
            }
        }
        for (field, d) in [
            ("connect_timeout", s.connect_timeout),
            ("idle_timeout", s.idle_timeout),
            ("first_bytes_timeout", s.first_bytes_timeout),
        ] {
            if d.get().is_zero() {
                errs.push(sp.at(&at(field), format!("{svc}: {field} must be above zero")));
            }
        }
        let h = &s.health;
        if let Some(n) = h.tls.as_ref().and_then(|t| t.server_name.as_ref())
            && tacvs_tls::client::server_name(Some(n), std::net::Ipv4Addr::LOCALHOST.into())
                .is_err()
        {
            let path = [
                Seg::Key("service"),
                Seg::Idx(i),
                Seg::Key("health"),
                Seg::Key("tls"),
                Seg::Key("server_name"),
            ];
            let msg = format!("{svc}: server_name is neither a DNS name nor an address");
            errs.push(sp.at(&path, msg));
        }
        if h.check == CheckKind::Tacacs
            && h.tls.is_none()
            && h.key.as_ref().is_none_or(Secret::is_empty)
        {
            errs.push(sp.at(
                &hat("check"),
                format!(
                    "{svc}: a tacacs health check needs key = \"...\" (the real servers' \
                    key for the director's address)"
                ),
            ));
        }
        if h.probe == Probe::Authenticate && h.password.is_none() {
            errs.push(sp.at(
                &hat("probe"),
                format!("{svc}: probe = \"authenticate\" needs password = \"...\""),
            ));
        }
        for (field, d) in [("interval", h.interval), ("timeout", h.timeout)] {
            if d.get().is_zero() {
                errs.push(sp.at(&hat(field), format!("{svc}: health {field} must be above zero")));
            }
        }
        for (field, n) in [("rise", h.rise), ("fall", h.fall)] {
            if n == 0 {
                errs.push(sp.at(
                    &hat(field),
                    format!("{svc}: {field} must be at least 1 (checks in a row to change state)"),
                ));
            }
        }
        let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
        for (j, r) in s.reals.iter().enumerate() {
            let rat = |field: &'static str| {
                [Seg::Key("service"), Seg::Idx(i), Seg::Key("real"), Seg::Idx(j), Seg::Key(field)]
            };
            if let Some(&first) = seen.get(&r.address) {
                let first_line = line(
                    sp,
                    &[
                        Seg::Key("service"),
                        Seg::Idx(i),
                        Seg::Key("real"),
                        Seg::Idx(first),
                        Seg::Key("address"),
                    ],
                );
                errs.push(sp.at(
                    &rat("address"),
                    format!(
                        "{svc}: real server {} is listed twice (first at line \
                        {first_line}); remove one",
                        r.address
                    ),
                ));
            } else {
                seen.insert(r.address, j);
            }
            if r.weight > MAX_WEIGHT {
                errs.push(sp.at(&rat("weight"), format!("{svc}: weight must be 0-{MAX_WEIGHT}")));
            }
        }
    }
    if let Some(d) = &f.dr {
        let at = |field: &'static str| [Seg::Key("dr"), Seg::Key(field)];
        if let Some(i) = &d.interface
            && !interface_name(i)
        {
            errs.push(sp.at(
                &at("interface"),
                "[dr] interface is not an interface name (1-15 characters, no '/' or space)",
            ));
        }
        if d.flow_entries == 0 || d.flow_entries > MAX_FLOW_ENTRIES {
            errs.push(sp.at(
                &at("flow_entries"),
                format!("[dr] flow_entries must be 1-{MAX_FLOW_ENTRIES}"),
            ));
        }
    }
    if f.has_dr() && f.dr_interface().is_none() {
        errs.push(sp.locator().whole(
            "direct routing needs an interface: add [dr] interface = \"eth0\" (or a [vrrp] \
                section, whose interface is used)",
        ));
    }
    if let Some(v) = &f.vrrp {
        let at = |field: &'static str| [Seg::Key("vrrp"), Seg::Key(field)];
        if !interface_name(&v.interface) {
            errs.push(sp.at(
                &at("interface"),
                "[vrrp] interface is not an interface name (1-15 characters, no '/' or space)",
            ));
        }
        if v.vrid == 0 {
            errs.push(sp.at(&at("vrid"), "[vrrp] vrid must be 1-255"));
        }
        if v.priority == 0 {
            errs.push(sp.at(
                &at("priority"),
                "[vrrp] priority must be 1-255 (0 is reserved for a master giving up)",
            ));
        }
        let ms = v.advert_interval.get().as_millis();
        if !(10..=40_950).contains(&ms) || ms % 10 != 0 {
            errs.push(sp.at(
                &at("advert_interval"),
                "[vrrp] advert_interval must be \
                10ms-40.95s in 10 ms steps (it travels in centiseconds)",
            ));
        }
        if v.vips.is_empty() {
            errs.push(
                sp.at(&at("vips"), "[vrrp] no vips: list the virtual addresses this pair holds"),
            );
        }
        for (i, s) in f.services.iter().enumerate() {
            if let IpAddr::V4(ip) = s.listen.ip()
                && !ip.is_unspecified()
                && !ip.is_loopback()
                && !v.vips.iter().any(|(a, _)| *a == ip)
            {
                errs.push(sp.at(
                    &[Seg::Key("service"), Seg::Idx(i), Seg::Key("listen")],
                    format!(
                        "service {:?} listens on {ip}, which is not one of the [vrrp] vips: \
                            devices would miss it after a failover",
                        s.name
                    ),
                ));
            }
        }
    }
    errs.sort_by_key(|e| e.line().unwrap_or(0));
    errs
}

fn interface_name(i: &str) -> bool {
    !i.is_empty() && i.len() <= 15 && !i.contains(['/', ' '])
}

/// Settings that only the proxy uses (warned about when written in a DR
/// service: the data plane has no connections to time or cap, and sends no
/// PROXY header — warnings, not errors, so a file written back from the
/// settings, defaults included, still loads).
const PROXY_ONLY: [&str; 8] = [
    "proxy_protocol",
    "connect_timeout",
    "connect_attempts",
    "idle_timeout",
    "max_connections",
    "max_connections_per_source",
    "first_bytes_timeout",
    "copy",
];

/// The rules of a `mode = "dr"` service (the `i`th).
fn dr_service(f: &DirectorFile, i: usize, sp: &Spans<'_>, errs: &mut Vec<ConfigError>) {
    let s = &f.services[i];
    let at = |field: &'static str| [Seg::Key("service"), Seg::Idx(i), Seg::Key(field)];
    let svc = format!("service {:?}", s.name);
    let ip = s.listen.ip();
    if !ip.is_ipv4() || ip.is_unspecified() || ip.is_loopback() || s.listen.port() == 0 {
        errs.push(sp.at(
            &at("listen"),
            format!(
                "{svc}: direct routing needs a specific IPv4 virtual address and port (the \
                data plane answers ARP for it; IPv6 neighbour discovery is not answered)"
            ),
        ));
    }
    if !matches!(s.scheduler, Kind::Mh | Kind::Sh) {
        let place = if sp.has(&at("scheduler")) { at("scheduler") } else { at("mode") };
        errs.push(sp.at(
            &place,
            format!(
                "{svc}: in direct routing the data plane picks servers from a Maglev \
                lookup table, so only scheduler = \"mh\" or \"sh\" is meaningful (both build \
                that table; `hash` chooses the device's address or address and port)"
            ),
        ));
    }
    if s.sorry_server.is_some() {
        errs.push(sp.at(
            &at("sorry_server"),
            format!(
                "{svc}: direct routing has no sorry server (new flows are dropped while no \
                server is available, and devices retransmit): remove sorry_server"
            ),
        ));
    }
    for (j, r) in s.reals.iter().enumerate() {
        let rat = |field: &'static str| {
            [Seg::Key("service"), Seg::Idx(i), Seg::Key("real"), Seg::Idx(j), Seg::Key(field)]
        };
        if r.address.port() != s.listen.port() || !r.address.is_ipv4() {
            errs.push(sp.at(
                &rat("address"),
                format!(
                    "{svc}: in direct routing a real server receives the packet as the \
                    device sent it (to the VIP's port {}), so its address must be IPv4 with \
                    that port",
                    s.listen.port()
                ),
            ));
        }
        if r.max_connections > 0 {
            errs.push(sp.at(
                &rat("max_connections"),
                format!(
                    "{svc}: direct routing keeps no connection counts (the replies bypass \
                    the director): remove max_connections"
                ),
            ));
        }
    }
    for (k, other) in f.services.iter().enumerate() {
        if other.mode == Mode::Proxy && other.listen.ip() == ip {
            errs.push(sp.at(
                &at("listen"),
                format!(
                    "{svc}: its virtual address is also service {:?}'s, in proxy mode; the \
                    director holds a proxy VIP as its own address but must not hold a DR VIP \
                    (a dead director's kernel would reset the devices' flows): give the DR \
                    service its own address",
                    f.services[k].name
                ),
            ));
        }
    }
}

fn line(sp: &Spans<'_>, path: &[Seg<'_>]) -> String {
    sp.at(path, "").line().map_or_else(|| "?".into(), |l| l.to_string())
}

fn warnings(f: &DirectorFile, sp: &Spans<'_>) -> Vec<ConfigError> {
    let mut w = Vec::new();
    // The TLS files of health checks are read here (`tacvs check`) and by
    // the checks themselves, which fail with the reason while they do not load.
    for (i, s) in f.services.iter().enumerate() {
        if let Some(t) = &s.health.tls
            && let Err((field, e)) = t.client_config()
        {
            let path = [
                Seg::Key("service"),
                Seg::Idx(i),
                Seg::Key("health"),
                Seg::Key("tls"),
                Seg::Key(field),
            ];
            w.push(sp.at(
                &path,
                format!("service {:?}: [service.health.tls] {field}: {e}; its checks fail until it loads", s.name),
            ));
        }
    }
    if let Some(g) = &f.director.control_socket_group
        && crate::control::access::group_id(g).is_none()
    {
        w.push(sp.at(
            &[Seg::Key("director"), Seg::Key("control_socket_group")],
            "[director] control_socket_group names no group on this machine; the director will not start here",
        ));
    }
    if let Some(i) = f.dr.as_ref().and_then(|d| d.interface.as_deref())
        && !Path::new("/sys/class/net").join(i).exists()
    {
        w.push(sp.at(
            &[Seg::Key("dr"), Seg::Key("interface")],
            "[dr] interface does not exist on this machine (in this network namespace); the \
                director will not start here",
        ));
    }
    if let Some(v) = &f.vrrp {
        if !Path::new("/sys/class/net").join(&v.interface).exists() {
            w.push(sp.at(
                &[Seg::Key("vrrp"), Seg::Key("interface")],
                "[vrrp] interface does not exist on this machine (in this network namespace); \
                    the director will not start here",
            ));
        }
        if let Some(p) = &v.notify {
            use std::os::unix::fs::PermissionsExt;
            let problem = match std::fs::metadata(p) {
                Err(e) => Some(format!("cannot be read ({e})")),
                Ok(m) if !m.is_file() => Some("is not a file".into()),
                Ok(m) if m.permissions().mode() & 0o111 == 0 => Some("is not executable".into()),
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                w.push(sp.at(
                    &[Seg::Key("vrrp"), Seg::Key("notify")],
                    format!(
                        "[vrrp] the notify program {problem}; state changes would not be announced"
                    ),
                ));
            }
        }
    }
    for (i, s) in f.services.iter().enumerate() {
        if s.mode == Mode::Dr {
            for field in PROXY_ONLY
                .iter()
                .filter(|k| sp.has(&[Seg::Key("service"), Seg::Idx(i), Seg::Key(k)]))
            {
                let why = if *field == "proxy_protocol" {
                    " (it sends no PROXY header: the real servers see the devices' own addresses)"
                } else {
                    ""
                };
                w.push(sp.at(
                    &[Seg::Key("service"), Seg::Idx(i), Seg::Key(field)],
                    format!("service {:?}: {field} applies to proxy mode only; direct routing ignores it{why}", s.name),
                ));
            }
        }
        if let Some(k) = &s.health.key
            && k.chars() < 16
        {
            w.push(sp.at(
                &[Seg::Key("service"), Seg::Idx(i), Seg::Key("health"), Seg::Key("key")],
                format!(
                    "service {:?}: the health-check key is shorter than 16 characters; \
                    TACACS+ obfuscation is only as strong as the key",
                    s.name
                ),
            ));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::sched::HashOn;

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

    fn errors(text: &str) -> Vec<String> {
        parse("d.toml", text).unwrap_err().0.iter().map(ToString::to_string).collect()
    }

    fn one_error(text: &str) -> String {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        e[0].clone()
    }

    #[test]
    fn vrrp_section_defaults_and_vips() {
        let text = format!(
            "[director]\n[vrrp]\ninterface = \"eth0\"\nvrid = 49\nvips = [\"10.49.0.100\", \
                \"10.49.0.101/24\"]\n{SERVICE}"
        );
        let f = parse("d.toml", &text).unwrap();
        let v = f.vrrp.unwrap();
        assert_eq!(
            (v.priority, v.advert_interval.get(), v.preempt, v.track_penalty),
            (100, Duration::from_secs(1), true, 50)
        );
        assert_eq!(
            v.vips,
            vec![("10.49.0.100".parse().unwrap(), 32), ("10.49.0.101".parse().unwrap(), 24)]
        );
        assert_eq!(f.director.control_socket, Path::new(DEFAULT_CONTROL_SOCKET));
        assert!(f.director.control_socket.is_absolute());
    }

    #[test]
    fn vrrp_errors_name_the_field_and_its_place() {
        let bad = |vrrp: &str| errors(&format!("[director]\n[vrrp]\n{vrrp}\n{SERVICE}"));
        let e = bad(
            "interface = \"eth0\"\nvrid = 0\npriority = 0\nadvert_interval = \"15ms\"\nvips = []",
        );
        assert_eq!(
            e,
            [
                "d.toml:4:8: [vrrp] vrid must be 1-255",
                "d.toml:5:12: [vrrp] priority must be 1-255 (0 is reserved for a master giving up)",
                "d.toml:6:19: [vrrp] advert_interval must be 10ms-40.95s in 10 ms steps (it travels in centiseconds)",
                "d.toml:7:8: [vrrp] no vips: list the virtual addresses this pair holds",
                "d.toml:11:10: service \"tacacs\" listens on 10.49.0.100, which is not one of \
                    the [vrrp] vips: devices would miss it after a failover",
            ]
        );
        let e = bad("interface = \"eth0\"\nvrid = 1\nvips = [\"10.49.0.7\"]");
        assert!(
            e[0].contains("listens on 10.49.0.100, which is not one of the [vrrp] vips"),
            "{e:?}"
        );
        assert!(e[0].starts_with("d.toml:9:10: "), "{e:?}");
        let e = bad("interface = \"eth0\"\nvrid = 1\nvips = [\"10.49.0.300\"]");
        assert!(
            e[0].starts_with("d.toml:5:8:") && e[0].contains("optionally with /PREFIX"),
            "{e:?}"
        );
    }

    #[test]
    fn fall_and_rise_zero_are_rejected_at_their_place() {
        let text = format!(
            "[director]\n{}",
            SERVICE.replace(
                "  timeout = \"300ms\"\n",
                "  timeout = \"300ms\"\n  fall = 0\n  rise = 0\n"
            )
        );
        assert_eq!(
            errors(&text),
            [
                "d.toml:10:10: service \"tacacs\": fall must be at least 1 (checks in a row to change state)",
                "d.toml:11:10: service \"tacacs\": rise must be at least 1 (checks in a row to change state)",
            ]
        );
    }

    #[test]
    fn a_duplicate_real_server_names_both_lines() {
        let text =
            format!("[director]\n{SERVICE}  [[service.real]]\n  address = \"10.49.1.1:49\"\n");
        assert_eq!(
            one_error(&text),
            "d.toml:13:13: service \"tacacs\": real server 10.49.1.1:49 is listed twice (first at line 11); remove one"
        );
    }

    #[test]
    fn service_level_errors_each_at_their_field() {
        let text = format!(
            "[director]\n{}",
            SERVICE
                .replace(
                    "listen = \"10.49.0.100:49\"\n",
                    "listen = \"10.49.0.100:49\"\nconnect_attempts = 0\nmax_connections = 0\n"
                )
                .replace("check = \"tcp\"", "check = \"tacacs\"\n  probe = \"authenticate\"")
                .replace(
                    "address = \"10.49.1.1:49\"",
                    "address = \"10.49.1.1:49\"\n  weight = 100000"
                )
        );
        let e = errors(&text);
        let want = [
            ("d.toml:6:20:", "connect_attempts must be at least 1"),
            ("d.toml:7:19:", "max_connections must be at least 1"),
            ("d.toml:9:11:", "a tacacs health check needs key"),
            ("d.toml:10:11:", "needs password"),
            ("d.toml:15:12:", "weight must be 0-65535"),
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for ((at, what), got) in want.iter().zip(&e) {
            assert!(got.starts_with(at) && got.contains(what), "{at} {what}: {got}");
        }
        let zero = format!(
            "[director]\n{}",
            SERVICE.replace(
                "listen = \"10.49.0.100:49\"\n",
                "listen = \"10.49.0.100:49\"\nmax_connections_per_source = 0\nfirst_bytes_timeout = \"0s\"\n"
            )
        );
        assert_eq!(
            errors(&zero),
            [
                "d.toml:6:30: service \"tacacs\": max_connections_per_source must be at least 1",
                "d.toml:7:23: service \"tacacs\": first_bytes_timeout must be above zero",
            ]
        );
        let twice =
            format!("[director]\n{SERVICE}{}", SERVICE.replace("10.49.0.100:49", "10.49.0.101:49"));
        assert!(
            one_error(&twice)
                .starts_with("d.toml:14:8: service \"tacacs\" is defined twice (first at line 4)")
        );
        let same_vip =
            format!("[director]\n{SERVICE}{}", SERVICE.replace("\"tacacs\"", "\"other\""));
        assert!(one_error(&same_vip).contains("listens on the address of service \"tacacs\""));
        assert_eq!(
            one_error("service = []\n[director]\n"),
            "d.toml: no [[service]]: add a virtual service"
        );
    }

    #[test]
    fn direct_routing_services_say_what_does_not_apply() {
        let dr = |extra: &str, real: &str| {
            format!(
                "[director]\n[dr]\ninterface = \"eth0\"\n{}",
                SERVICE
                    .replace(
                        "listen = \"10.49.0.100:49\"\n",
                        &format!("listen = \"10.49.0.100:49\"\nmode = \"dr\"\n{extra}")
                    )
                    .replace("address = \"10.49.1.1:49\"", real)
            )
        };
        let ok = dr("scheduler = \"mh\"\nhash = \"source-port\"\n", "address = \"10.49.1.1:49\"");
        let f = parse("d.toml", &ok).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((f.services[0].mode, f.services[0].hash), (Mode::Dr, HashOn::SourcePort));
        assert_eq!(f.dr_interface(), Some("eth0"));
        // The default scheduler (wlc) means nothing to a lookup table.
        let e = one_error(&dr("", "address = \"10.49.1.1:49\""));
        assert!(
            e.starts_with("d.toml:8:8: ") && e.contains("only scheduler = \"mh\" or \"sh\""),
            "{e}"
        );
        let e = errors(&dr(
            "scheduler = \"wlc\"\nproxy_protocol = \"none\"\nsorry_server = \"10.49.2.1:49\"\n",
            "address = \"10.49.1.1:4949\"\n  max_connections = 5",
        ));
        let want = [
            ("d.toml:9:13:", "only scheduler = \"mh\" or \"sh\""),
            ("d.toml:11:16:", "no sorry server"),
            ("d.toml:17:13:", "must be IPv4 with that port"),
            ("d.toml:18:21:", "keeps no connection counts"),
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for ((at, what), got) in want.iter().zip(&e) {
            assert!(got.starts_with(at) && got.contains(what), "{at} {what}: {got}");
        }
        let any = dr("scheduler = \"sh\"\n", "address = \"10.49.1.1:49\"")
            .replace("10.49.0.100:49", "0.0.0.0:49");
        assert!(one_error(&any).contains("specific IPv4 virtual address"));
        // No interface: neither [dr] nor [vrrp].
        let bare = dr("scheduler = \"sh\"\n", "address = \"10.49.1.1:49\"")
            .replace("[dr]\ninterface = \"eth0\"\n", "");
        assert!(one_error(&bare).contains("add [dr] interface"), "{}", one_error(&bare));
        // A proxy service on the same VIP.
        let mixed = format!(
            "{}{}",
            dr("scheduler = \"mh\"\n", "address = \"10.49.1.1:49\""),
            SERVICE.replace("\"tacacs\"", "\"other\"").replace("10.49.0.100:49", "10.49.0.100:50")
        );
        assert!(one_error(&mixed).contains("must not hold a DR VIP"), "{}", one_error(&mixed));
        // Written back from the settings (defaults included), a DR file loads.
        let again = toml::to_string(&f).unwrap();
        let g = parse("again.toml", &again).unwrap_or_else(|e| panic!("{e}\n{again}"));
        assert_eq!(g.services[0].mode, Mode::Dr);
        // Proxy-only settings are warned about, not refused.
        let c = check_text(
            "d.toml",
            &dr("scheduler = \"mh\"\nidle_timeout = \"1m\"\n", "address = \"10.49.1.1:49\""),
        )
        .unwrap();
        let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        assert!(
            w.iter().any(|w| w.starts_with("d.toml:10:16: ")
                && w.contains("idle_timeout applies to proxy mode only")),
            "{w:?}"
        );
    }

    #[test]
    fn the_secret_fields_are_redacted_and_serialize_back() {
        let text = format!(
            "[director]\n{}",
            SERVICE.replace(
                "check = \"tcp\"",
                "check = \"tacacs\"\n  key = \"hunter2-the-key\"\n  probe = \
                    \"authenticate\"\n  password = \"hunter3-probe\""
            )
        );
        let f = parse("d.toml", &text).unwrap();
        let dbg = format!("{f:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("hunter3"), "{dbg}");
        let again = toml::to_string(&f).unwrap();
        let g = parse("again.toml", &again).unwrap_or_else(|e| panic!("{e}\n{again}"));
        assert_eq!(g.services[0].health.key.as_ref().unwrap().expose(), "hunter2-the-key");
        assert_eq!(format!("{g:?}"), dbg);
    }

    #[test]
    fn check_warns_about_this_machine_with_places() {
        let text = format!(
            "[director]\n[vrrp]\ninterface = \"tacvs-nope0\"\nvrid = 1\nvips = \
                [\"10.49.0.100\"]\nnotify = \"/nonexistent/notify.sh\"\n{}",
            SERVICE.replace("check = \"tcp\"", "check = \"tacacs\"\n  key = \"short\"")
        );
        let c = check_text("d.toml", &text).unwrap();
        let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(w[0].starts_with("d.toml:3:13: [vrrp] interface does not exist"), "{w:?}");
        assert!(w[1].starts_with("d.toml:6:10: [vrrp] the notify program cannot be read"), "{w:?}");
        assert!(w[2].starts_with("d.toml:13:9: ") && w[2].contains("shorter than 16"), "{w:?}");
        let ok = check_text("d.toml", &format!("[director]\n{SERVICE}")).unwrap();
        assert!(ok.warnings.is_empty());
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
