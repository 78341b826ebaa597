//! The compiled policy: built from a [`ServerFile`], checked as a whole, ready to
//! evaluate. Building it is the only place configuration can fail.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use regex::{Regex, RegexSet};
use tacvs_proto::{Argument, Key};
use toml::Spanned;

use crate::config::{self, ProxyMode, ServerFile};
use crate::error::{ConfigError, ConfigErrors, Locator};
use crate::hash::PasswordHash;
use crate::identity::{self, Directory, LoginMethods, OtpSettings, Prefer};

/// A permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allowed.
    Permit,
    /// Refused.
    Deny,
}

impl Action {
    fn parse(s: &Spanned<String>, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) -> Action {
        match s.get_ref().as_str() {
            "permit" => Action::Permit,
            "deny" => Action::Deny,
            _ => {
                errs.push(loc.at(s.span().start, "action is neither \"permit\" nor \"deny\""));
                Action::Deny
            }
        }
    }

    /// `permit` / `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Permit => "permit",
            Action::Deny => "deny",
        }
    }
}

/// A listener, compiled.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Address to bind.
    pub address: SocketAddr,
    /// PROXY header intake.
    pub proxy: ProxyMode,
    /// Peers allowed to send PROXY headers.
    pub trusted_proxies: Vec<IpNet>,
    /// TACACS+ over TLS 1.3 on this listener (RFC 9887); None: plain TACACS+.
    pub tls: Option<Arc<ListenerTls>>,
}

/// A TLS listener's settings, its certificates loaded and checked.
#[derive(Debug)]
pub struct ListenerTls {
    /// The rustls configuration (TLS 1.3 only, no early data).
    pub config: Arc<tacvs_tls::rustls::ServerConfig>,
    /// How the device of a connection is found.
    pub identity: config::IdentityMode,
    /// Whether devices must present a certificate.
    pub client_certificate: config::ClientCertificateMode,
    /// Bound on the handshake, from the connection.
    pub handshake_timeout: std::time::Duration,
    /// Handshakes in progress at once on the listener.
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one device address.
    pub max_handshakes_per_source: usize,
    /// Session ticket lifetime (zero: no resumption).
    pub ticket_lifetime: std::time::Duration,
    /// The server certificate, for logs.
    pub certificate: tacvs_tls::material::CertSummary,
    /// The files, for logs.
    pub files: String,
}

/// What a device group asks of TLS.
#[derive(Debug, Clone, Default)]
pub struct DeviceGroupTls {
    /// Plain TACACS+ from these devices is refused.
    pub required: bool,
    /// dNSNames that identify devices of the group (`identity = "san-dns"`).
    pub names: Vec<tacvs_tls::identity::DnsPattern>,
}

impl Listener {
    /// Whether `peer` may send a PROXY header here.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }
}

/// A group of devices that share keys.
#[derive(Debug)]
pub struct DeviceGroup {
    /// Name.
    pub name: Arc<str>,
    /// Keys to try, in order.
    pub keys: Arc<[Key]>,
    /// Command default for these devices, overriding the user's group default.
    pub default_command_action: Option<Action>,
    /// The decision's reason when that default decides, made at load.
    pub default_reason: Arc<str>,
    /// The login methods these devices may use; None: all.
    pub login_methods: Option<LoginMethods>,
    /// TLS requirements and certificate names.
    pub tls: DeviceGroupTls,
}

/// A service a group grants.
#[derive(Debug)]
pub struct ServiceGrant {
    /// `service` AV value.
    pub name: String,
    /// Required `protocol` AV value.
    pub protocol: Option<String>,
    /// AVs returned.
    pub args: Vec<Argument>,
    /// PASS_REPL instead of PASS_ADD.
    pub replace: bool,
}

/// One command rule.
#[derive(Debug)]
pub struct CommandRule {
    /// The pattern as written.
    pub pattern: String,
    /// Permit or deny.
    pub action: Action,
    /// Restricted to these device groups (indices); empty = all.
    pub device_groups: Vec<usize>,
    /// 1-based position in the group, for log lines.
    pub number: usize,
    /// Whether it is anchored.
    pub anchored: bool,
    /// The decision's reason when this rule decides (`group "G" rule N
    /// "PATTERN" ACTION`), made once at load rather than per request.
    pub reason: Arc<str>,
}

/// A user group.
#[derive(Debug)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Shell privilege level granted.
    pub priv_lvl: u8,
    /// When no rule matches.
    pub default_command_action: Action,
    /// The decision's reason when that default decides, made at load.
    pub default_reason: Arc<str>,
    /// Services granted.
    pub services: Vec<ServiceGrant>,
    /// Command rules, in order.
    pub commands: Vec<CommandRule>,
    /// Members need a one-time password too.
    pub otp: bool,
    pub(crate) command_set: RegexSet,
}

/// A clear-text secret (CHAP); `Debug` hides it.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user.
#[derive(Debug)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Login password hash.
    pub password: Option<PasswordHash>,
    /// CHAP / MS-CHAP secret.
    pub chap_secret: Option<Secret>,
    /// Enable password hash.
    pub enable: Option<PasswordHash>,
    /// Group indices, in precedence order.
    pub groups: Vec<usize>,
    /// Highest priv-lvl any of the user's groups grants.
    pub max_priv: u8,
    /// Which source answers when the user is also in a directory.
    pub prefer: Prefer,
    /// A one-time password is required (the user's `otp`, or a group's).
    pub otp: bool,
}

/// Everything the server runs on, compiled from one file.
#[derive(Debug)]
pub struct Policy {
    /// This server's name.
    pub server_name: String,
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// The control socket, resolved against the configuration file's directory.
    pub control_socket: Option<std::path::PathBuf>,
    /// `[server] user` / `group`: who to run as after binding, when started as root.
    pub run_as: Option<crate::run_as::RunAs>,
    /// Connection limits and timeouts.
    pub limits: config::Limits,
    /// Authentication settings.
    pub auth: config::AuthSection,
    /// Accounting journal settings.
    pub accounting: config::AccountingSection,
    /// Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
    /// `[[ldap]]` directories, in order.
    pub directories: Vec<Directory>,
    /// One-time password settings.
    pub otp: OtpSettings,
    /// Device groups.
    pub device_groups: Vec<DeviceGroup>,
    /// User groups.
    pub groups: Vec<Group>,
    /// Verified instead of a login password for users that do not exist or have
    /// none: the algorithm and cost most users' hashes have (see
    /// [`PasswordHash::decoy`]).
    pub decoy_login: PasswordHash,
    /// The same for enable passwords.
    pub decoy_enable: PasswordHash,
    /// What compiles but is probably not what was meant (short keys,
    /// overlapping device groups); `tacvs check` prints these, the server logs them.
    pub warnings: Vec<ConfigError>,
    /// By name. Only the configuration inserts here: a peer's name is looked
    /// up, never added, so it cannot build colliding chains and a cheap hash
    /// is safe.
    users: foldhash::HashMap<String, Arc<User>>,
    v4: PrefixMap<Ipv4Net, usize>,
    v6: PrefixMap<Ipv6Net, usize>,
}

/// IPv4-mapped IPv6 (from dual-stack sockets) as plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Policy {
    /// The device group of an address: longest prefix match.
    pub fn device_group(&self, ip: IpAddr) -> Option<(usize, &DeviceGroup)> {
        let i = match canonical(ip) {
            IpAddr::V4(a) => *self.v4.get_lpm(&Ipv4Net::from(a))?.1,
            IpAddr::V6(a) => *self.v6.get_lpm(&Ipv6Net::from(a))?.1,
        };
        Some((i, &self.device_groups[i]))
    }

    /// The device group a certificate's dNSNames place a device in: the most
    /// specific matching pattern of any group (an exact name beats a
    /// wildcard), over the names in certificate order.
    pub fn device_group_by_dns(&self, names: &[String]) -> Option<(usize, &DeviceGroup)> {
        let mut best: Option<((bool, usize), usize)> = None;
        for n in names {
            for (i, g) in self.device_groups.iter().enumerate() {
                for p in g.tls.names.iter().filter(|p| p.matches(n)) {
                    if best.is_none_or(|(s, _)| p.specificity() > s) {
                        best = Some((p.specificity(), i));
                    }
                }
            }
        }
        best.map(|(_, i)| (i, &self.device_groups[i]))
    }

    /// The device group of the first of `ips` that is in one (a
    /// certificate's subjectAltName iPAddresses, in order), with that address.
    pub fn device_group_by_ips(&self, ips: &[IpAddr]) -> Option<(IpAddr, usize, &DeviceGroup)> {
        ips.iter().find_map(|&ip| self.device_group(ip).map(|(i, g)| (canonical(ip), i, g)))
    }

    /// A user by name.
    pub fn user(&self, name: &[u8]) -> Option<&Arc<User>> {
        std::str::from_utf8(name).ok().and_then(|n| self.users.get(n))
    }

    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// A user known from a directory, as authorization sees it: `groups` are
    /// the mapped tacvs groups in precedence order.
    pub fn directory_user(&self, name: &str, groups: Vec<usize>) -> User {
        let groups: Vec<usize> = groups.into_iter().filter(|&g| g < self.groups.len()).collect();
        let max_priv = groups.iter().map(|&g| self.groups[g].priv_lvl).max().unwrap_or(0);
        let otp = groups.iter().any(|&g| self.groups[g].otp);
        User {
            name: name.to_owned(),
            password: None,
            chap_secret: None,
            enable: None,
            groups,
            max_priv,
            prefer: Prefer::Directory,
            otp,
        }
    }

    /// The users of the file, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }
}

/// Read and compile a configuration file.
pub fn load(path: &Path) -> Result<Policy, ConfigErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::File {
            file: name.clone(),
            msg: format!("cannot read: {e}"),
        }])
    })?;
    parse(&name, &src, path.parent().unwrap_or(Path::new(".")))
}

/// Compile configuration text. `base` resolves relative key files.
pub fn parse(file: &str, src: &str, base: &Path) -> Result<Policy, ConfigErrors> {
    let loc = Locator { file, src };
    // Errors never repeat a value: it may be a key written in the wrong place.
    let raw: ServerFile = tacvs_config::from_toml(&loc).map_err(|e| {
        if let Ok(t) = src.parse::<toml::Table>()
            && t.contains_key("director")
            && !t.contains_key("server")
        {
            return ConfigErrors(vec![loc.whole(
                "this is a director configuration (it has a [director] table): run it with \
                 `tacvs director -c FILE`; `tacvs server` takes a server configuration (see \
                 examples/server.toml)",
            )]);
        }
        e
    })?;
    let mut errs = Vec::new();
    let mut warns = Vec::new();
    let mut policy = compile(raw, &loc, base, &mut errs, &mut warns);
    policy.warnings = warns;
    if errs.is_empty() { Ok(policy) } else { Err(ConfigErrors(errs)) }
}

fn names<'a, T>(
    items: &'a [T],
    name: impl Fn(&'a T) -> &'a Spanned<String>,
    what: &str,
    loc: &Locator<'_>,
    errs: &mut Vec<ConfigError>,
) -> HashMap<&'a str, usize> {
    let mut map = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        let n = name(it);
        if n.get_ref().is_empty() {
            errs.push(loc.at(n.span().start, format!("{what} name is empty")));
        }
        if map.insert(n.get_ref().as_str(), i).is_some() {
            errs.push(loc.at(
                n.span().start,
                format!("{what} {:?} is defined twice; names must be unique", n.get_ref()),
            ));
        }
    }
    map
}

/// Keys shorter than this draw a warning.
pub const MIN_KEY_CHARS: usize = 16;

/// The most `[limits] max_sessions_per_connection` may be.
pub const MAX_SESSIONS_PER_CONNECTION: usize = 4096;

fn short_key(what: &str, n: usize, len: usize) -> String {
    format!(
        "{what}: key #{n} is {len} characters long; a short key can be guessed offline from one \
         captured packet: use at least {MIN_KEY_CHARS} random characters"
    )
}

fn compile(
    raw: ServerFile,
    loc: &Locator<'_>,
    base: &Path,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> Policy {
    // Listeners.
    let mut listeners = Vec::new();
    if raw.server.listen.is_empty() {
        errs.push(loc.whole(
            "[server] has no [[server.listen]] entry: add one, e.g. address = \"0.0.0.0:49\"",
        ));
    }
    for l in &raw.server.listen {
        let address = match l.address.get_ref().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                errs.push(loc.at(
                    l.address.span().start,
                    "listen address is not IP:PORT (e.g. \"0.0.0.0:49\", \"[::]:49\")",
                ));
                continue;
            }
        };
        let trusted: Vec<IpNet> =
            l.trusted_proxies.iter().filter_map(|p| parse_net(p, loc, errs)).collect();
        if l.proxy_protocol != ProxyMode::Off && trusted.is_empty() {
            errs.push(loc.at(
                l.address.span().start,
                "proxy_protocol is on but trusted_proxies is empty: list the directors' addresses",
            ));
        }
        let tls = l.tls.as_ref().and_then(|t| compile_listen_tls(t, loc, base, errs, warns));
        listeners.push(Listener {
            address,
            proxy: l.proxy_protocol,
            trusted_proxies: trusted,
            tls,
        });
    }
    let lim = &raw.limits;
    if lim.max_connections == 0
        || lim.max_connections_per_source == 0
        || lim.max_sessions_per_connection == 0
    {
        errs.push(loc.whole(
            "[limits]: max_connections, max_connections_per_source and \
            max_sessions_per_connection must be at least 1",
        ));
    }
    if lim.max_sessions_per_connection > MAX_SESSIONS_PER_CONNECTION {
        // The server's table of a connection's sessions uses a fast hash
        // that is safe against ids a peer picks because it is this small.
        errs.push(loc.whole(format!(
            "[limits] max_sessions_per_connection must be at most {MAX_SESSIONS_PER_CONNECTION} \
            (a device keeps a few sessions in flight on one connection)"
        )));
    }
    if lim.max_body.0 < 64 || lim.max_body.0 > u32::MAX as u64 {
        errs.push(loc.whole("[limits] max_body must be between 64 bytes and 4GiB"));
    }
    if raw.authentication.max_login_attempts == 0 || raw.authentication.hash_workers == 0 {
        errs.push(
            loc.whole("[authentication]: max_login_attempts and hash_workers must be at least 1"),
        );
    }
    if let Some(s) = &raw.accounting.syslog {
        let t = s.target.get_ref();
        let net_ok = |a: &str| a.parse::<SocketAddr>().is_ok();
        let ok = t
            .strip_prefix("udp://")
            .map(net_ok)
            .or_else(|| t.strip_prefix("tcp://").map(net_ok))
            .unwrap_or(t.starts_with("unix:///"));
        if !ok {
            errs.push(loc.at(
                s.target.span().start,
                "syslog target must be udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH",
            ));
        }
        if facility_code(s.facility.get_ref()).is_none() {
            errs.push(loc.at(
                s.facility.span().start,
                "unknown syslog facility (e.g. local0..local7, auth, daemon)",
            ));
        }
    }

    // Device groups.
    let dg_names = names(&raw.device_groups, |d| &d.name, "device group", loc, errs);
    let mut v4 = PrefixMap::new();
    let mut v6 = PrefixMap::new();
    let mut seen: HashMap<IpNet, String> = HashMap::new();
    let mut placed: Vec<(IpNet, usize, usize)> = Vec::new();
    let mut device_groups = Vec::new();
    for (i, d) in raw.device_groups.iter().enumerate() {
        if d.prefixes.is_empty() {
            errs.push(loc.at(
                d.name.span().start,
                format!("device group {:?} has no prefixes", d.name.get_ref()),
            ));
        }
        for p in &d.prefixes {
            let Some(net) = parse_net(p, loc, errs) else {
                continue;
            };
            placed.push((net, i, p.span().start));
            if let Some(other) = seen.insert(net, d.name.get_ref().clone()) {
                errs.push(loc.at(
                    p.span().start,
                    format!("prefix {net} is already in device group {other:?}"),
                ));
            }
            match net {
                IpNet::V4(n) => v4.insert(n, i),
                IpNet::V6(n) => v6.insert(n, i),
            };
        }
        let mut keys: Vec<Key> = Vec::new();
        let what = format!("device group {:?}", d.name.get_ref());
        for k in &d.keys {
            if k.is_empty() {
                errs.push(loc.at(d.name.span().start, format!("{what} has an empty key")));
            } else if k.chars().count() < MIN_KEY_CHARS {
                let n = keys.len() + 1;
                warns.push(loc.at(d.name.span().start, short_key(&what, n, k.chars().count())));
            }
            keys.push(Key::new(k.as_bytes()));
        }
        for kf in &d.key_files {
            let path = base.join(kf.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(t) => match t
                    .lines()
                    .next()
                    .map(|l| l.trim_end_matches('\r'))
                    .filter(|l| !l.is_empty())
                {
                    Some(k) => {
                        if k.chars().count() < MIN_KEY_CHARS {
                            let n = keys.len() + 1;
                            warns.push(
                                loc.at(kf.span().start, short_key(&what, n, k.chars().count())),
                            );
                        }
                        keys.push(Key::new(k.as_bytes()))
                    }
                    None => errs.push(loc.at(
                        kf.span().start,
                        "the key file is empty: put the key on its first line",
                    )),
                },
                Err(e) => {
                    errs.push(loc.at(kf.span().start, format!("cannot read the key file: {e}")))
                }
            }
        }
        let tls = compile_group_tls(d.tls.as_ref(), loc, errs);
        if keys.is_empty() && !tls.required {
            errs.push(loc.at(
                d.name.span().start,
                format!(
                    "device group {:?} has no key: add keys = [\"...\"] or key_files (a group \
                        whose devices all use TLS needs none: [device_group.tls] required = \
                        true)",
                    d.name.get_ref()
                ),
            ));
        }
        let default_command_action =
            d.default_command_action.as_ref().map(|a| Action::parse(a, loc, errs));
        let login_methods = d.login_methods.as_ref().map(|m| LoginMethods::parse(m, loc, errs));
        let default_reason = default_command_action.map_or_else(Arc::default, |a: Action| {
            let why = format!("default of device group {:?}", d.name.get_ref());
            crate::authz::no_rule_matched(&why, a).into()
        });
        device_groups.push(DeviceGroup {
            name: d.name.get_ref().as_str().into(),
            keys: keys.into(),
            default_command_action,
            default_reason,
            login_methods,
            tls,
        });
    }

    // A prefix inside another group's: legal (the longest prefix wins), but say so.
    for &(net, gi, at) in &placed {
        let Some(outer) = net.supernet() else { continue };
        let covering = match outer {
            IpNet::V4(o) => v4.get_lpm(&o).map(|(n, &g)| (IpNet::V4(n), g)),
            IpNet::V6(o) => v6.get_lpm(&o).map(|(n, &g)| (IpNet::V6(n), g)),
        };
        if let Some((wide, gj)) = covering
            && gj != gi
        {
            let (inner, outer) = (&raw.device_groups[gi].name, &raw.device_groups[gj].name);
            warns.push(loc.at(
                at,
                format!(
                    "prefix {net} of device group {:?} lies inside {wide} of device group {:?}: \
                     devices in {net} belong to {:?} (the longest prefix wins)",
                    inner.get_ref(),
                    outer.get_ref(),
                    inner.get_ref()
                ),
            ));
        }
    }

    check_tls_identities(&raw, &listeners, &device_groups, loc, errs, warns);

    // Groups.
    let g_names = names(&raw.groups, |g| &g.name, "group", loc, errs);
    let mut groups = Vec::new();
    for g in &raw.groups {
        if g.priv_lvl > 15 {
            errs.push(loc.at(
                g.name.span().start,
                format!("group {:?}: priv_lvl {} is above 15", g.name.get_ref(), g.priv_lvl),
            ));
        }
        let default_command_action = Action::parse(&g.default_command_action, loc, errs);
        let mut services = Vec::new();
        for s in &g.services {
            let args = s
                .args
                .iter()
                .filter_map(|a| match a.get_ref().parse::<Argument>() {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errs.push(loc.at(a.span().start, e));
                        None
                    }
                })
                .collect();
            services.push(ServiceGrant {
                name: s.name.clone(),
                protocol: s.protocol.clone(),
                args,
                replace: s.replace,
            });
        }
        let mut commands = Vec::new();
        let mut patterns = Vec::new();
        for (n, c) in g.commands.iter().enumerate() {
            let text = c.pattern.get_ref();
            let full = if c.anchored { format!("^(?:{text})$") } else { text.clone() };
            if let Err(e) = Regex::new(&full) {
                errs.push(loc.at(
                    c.pattern.span().start,
                    format!(
                        "command pattern is not a valid regular expression: {}",
                        regex_problem(&e)
                    ),
                ));
            }
            patterns.push(full);
            let action = Action::parse(&c.action, loc, errs);
            let dgs = c
                .device_groups
                .iter()
                .filter_map(|d| match dg_names.get(d.get_ref().as_str()) {
                    Some(&i) => Some(i),
                    None => {
                        errs.push(loc.at(
                            d.span().start,
                            format!("no device group named {:?}", d.get_ref()),
                        ));
                        None
                    }
                })
                .collect();
            let reason = format!(
                "group {:?} rule {} {:?} {}",
                g.name.get_ref(),
                n + 1,
                text,
                action.as_str()
            );
            commands.push(CommandRule {
                reason: reason.into(),
                pattern: text.clone(),
                action,
                device_groups: dgs,
                number: n + 1,
                anchored: c.anchored,
            });
        }
        let command_set = RegexSet::new(&patterns).unwrap_or_else(|_| RegexSet::empty());
        let why = format!("default of group {:?}", g.name.get_ref());
        groups.push(Group {
            name: g.name.get_ref().clone(),
            priv_lvl: g.priv_lvl.min(15),
            default_command_action,
            default_reason: crate::authz::no_rule_matched(&why, default_command_action).into(),
            services,
            commands,
            otp: g.otp,
            command_set,
        });
    }

    // Users.
    let _ = names(&raw.users, |u| &u.name, "user", loc, errs);
    let mut users = foldhash::HashMap::default();
    for u in &raw.users {
        let hash = |h: &Option<Spanned<String>>, errs: &mut Vec<ConfigError>| {
            h.as_ref().and_then(|h| match PasswordHash::parse(h.get_ref()) {
                Ok(p) => Some(p),
                Err(e) => {
                    errs.push(loc.at(h.span().start, format!("user {:?}: {e}", u.name.get_ref())));
                    None
                }
            })
        };
        let password = hash(&u.password, errs);
        let enable = hash(&u.enable, errs);
        let gs: Vec<usize> = u
            .groups
            .iter()
            .filter_map(|g| match g_names.get(g.get_ref().as_str()) {
                Some(&i) => Some(i),
                None => {
                    errs.push(loc.at(
                        g.span().start,
                        format!("user {:?}: no group named {:?}", u.name.get_ref(), g.get_ref()),
                    ));
                    None
                }
            })
            .collect();
        let max_priv = gs.iter().map(|&i| groups[i].priv_lvl).max().unwrap_or(0);
        let otp = u.otp || gs.iter().any(|&i| groups[i].otp);
        if u.prefer == Prefer::Directory && raw.ldap.is_empty() {
            warns.push(loc.at(
                u.name.span().start,
                format!(
                    "user {:?} has prefer = \"directory\" but no [[ldap]] directory is \
                        configured: the local entry answers",
                    u.name.get_ref()
                ),
            ));
        }
        let user = User {
            name: u.name.get_ref().clone(),
            password,
            chap_secret: u.chap_secret.clone().map(Secret),
            enable,
            groups: gs,
            max_priv,
            prefer: u.prefer,
            otp,
        };
        users.insert(user.name.clone(), Arc::new(user));
    }

    let directories = identity::compile_directories(&raw.ldap, &g_names, loc, base, errs, warns);
    if !directories.is_empty() {
        for (d, dg) in raw.device_groups.iter().zip(&device_groups) {
            if let Some(m) = dg.login_methods
                && m.has_chap()
            {
                warns.push(loc.at(
                    d.name.span().start,
                    format!(
                        "device group {:?} logs in with CHAP or MS-CHAP, which cannot be \
                            checked against a directory (a bind needs the password itself): \
                            directory users from these devices will fail; use PAP or ASCII \
                            there, or give those users local entries with chap_secret",
                        dg.name
                    ),
                ));
            }
        }
    }
    let otp = identity::compile_otp(&raw.authentication.otp, loc, base, errs);
    let run_as = crate::run_as::compile(&raw.server, loc, errs);
    if let Some(r) = &run_as {
        let store_dir = raw.authentication.password_store.parent().unwrap_or(Path::new("."));
        let dirs = [
            ("[accounting] directory", raw.accounting.directory.as_path()),
            ("the directory of [authentication] password_store", store_dir),
        ];
        crate::run_as::ownership_warnings(r, &dirs, loc, warns);
        crate::run_as::file_ownership_warning(
            r,
            "[authentication.otp] secrets_file",
            &otp.secrets_file,
            loc,
            warns,
        );
    }
    let logins: Vec<&PasswordHash> = users.values().filter_map(|u| u.password.as_ref()).collect();
    let enables: Vec<&PasswordHash> = users.values().filter_map(|u| u.enable.as_ref()).collect();
    let decoy_login = decoy_for(&logins, None);
    let decoy_enable = decoy_for(&enables, Some(&decoy_login));
    Policy {
        server_name: raw.server.name,
        listeners,
        control_socket: raw.server.control_socket.map(|p| base.join(p)),
        run_as,
        limits: raw.limits,
        auth: raw.authentication,
        accounting: raw.accounting,
        metrics: raw.metrics.map(|m| m.listen),
        directories,
        otp,
        device_groups,
        groups,
        decoy_login,
        decoy_enable,
        warnings: Vec::new(),
        users,
        v4,
        v6,
    }
}

/// A decoy with the algorithm and cost most of `hashes` share (ties: the
/// lowest in sort order, so the choice does not depend on hash-map order);
/// `fallback`, or a default sha512-crypt, when there are none.
fn decoy_for(hashes: &[&PasswordHash], fallback: Option<&PasswordHash>) -> PasswordHash {
    let mut counts: HashMap<(String, String), (usize, &PasswordHash)> = HashMap::new();
    for h in hashes {
        let e = counts.entry((format!("{:?}", h.algorithm()), h.cost())).or_insert((0, h));
        e.0 += 1;
    }
    let best = counts
        .iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| b.0.cmp(a.0)))
        .map(|(_, &(_, h))| h);
    match (best, fallback) {
        (Some(h), _) => h.decoy(),
        (None, Some(f)) => f.clone(),
        (None, None) => {
            let text = PasswordHash::create(crate::HashAlgorithm::Sha512Crypt, &rand_bytes())
                .expect("sha512-crypt of random bytes");
            PasswordHash::parse(&text).expect("a hash we just made parses")
        }
    }
}

fn rand_bytes() -> [u8; 16] {
    let b: [u8; 16] = rand::random();
    b.map(|x| b'a' + x % 26)
}

fn parse_net(s: &Spanned<String>, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) -> Option<IpNet> {
    let t = s.get_ref();
    let parsed = t.parse::<IpNet>().ok().or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from));
    match parsed {
        Some(n) if n.trunc() != n => {
            errs.push(loc.at(
                s.span().start,
                format!("prefix {t:?} has host bits set; did you mean {}?", n.trunc()),
            ));
            None
        }
        Some(n) => Some(n),
        None => {
            errs.push(
                loc.at(s.span().start, "not an IP prefix (e.g. \"10.0.0.0/8\", \"2001:db8::/32\")"),
            );
            None
        }
    }
}

/// What is wrong with a pattern, without the pattern (it may be a key written
/// in the wrong place): the regex crate's last line, `error: ...`.
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(why) => why.to_owned(),
        None if text.contains('\n') => "syntax error".to_owned(),
        None => text,
    }
}

/// RFC 5424 facility code by name.
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "authpriv" => 10,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// `[server.listen.tls]`: load and check the certificate material now, so a
/// bad file is an error at its line (at start, in `tacvs check`, and on a
/// reload, which then keeps the running configuration).
fn compile_listen_tls(
    t: &Spanned<config::ListenTlsConf>,
    loc: &Locator<'_>,
    base: &Path,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> Option<Arc<ListenerTls>> {
    use config::{ClientCertificateMode as M, IdentityMode as I};
    use tacvs_tls::material::Field;
    use tacvs_tls::server::ClientCertificate;
    let c = t.get_ref();
    let at = t.span().start;
    let path = |p: &Spanned<std::path::PathBuf>| base.join(p.get_ref());
    let mut ok = true;
    if c.identity != I::Address && c.client_certificate != M::Required {
        errs.push(loc.at(
            at,
            format!(
                "identity = \"{}\" takes the device from its certificate: client_certificate must be \"required\"",
                c.identity
            ),
        ));
        ok = false;
    }
    if c.client_certificate != M::None && c.client_ca.is_none() {
        errs.push(loc.at(
            at,
            "client_ca is missing: give the PEM bundle of the CA that issues device certificates \
             (or client_certificate = \"none\" for server authentication only)",
        ));
        ok = false;
    }
    if c.max_handshakes == 0 || c.max_handshakes_per_source == 0 {
        errs.push(loc.at(at, "max_handshakes and max_handshakes_per_source must be at least 1"));
        ok = false;
    }
    if c.handshake_timeout.0.is_zero() {
        errs.push(loc.at(at, "handshake_timeout must be above zero (e.g. \"5s\")"));
        ok = false;
    }
    let lifetime = c.ticket_lifetime.get_ref().0;
    if lifetime.as_secs() > tacvs_tls::MAX_LIFETIME_SECS {
        errs.push(loc.at(
            c.ticket_lifetime.span().start,
            "ticket_lifetime is at most 12h (the ticket keys' life); 0 turns resumption off",
        ));
        ok = false;
    }
    if !ok {
        return None;
    }
    let settings = tacvs_tls::server::ServerSettings {
        certificate: path(&c.certificate),
        key: path(&c.key),
        client_ca: c.client_ca.as_ref().map(path),
        crls: c.crls.iter().map(path).collect(),
        client_certificate: match c.client_certificate {
            M::Required => ClientCertificate::Required,
            M::Optional => ClientCertificate::Optional,
            M::None => ClientCertificate::None,
        },
        ticket_lifetime: lifetime,
    };
    let span_of = |f: Field| match f {
        Field::Certificate => c.certificate.span().start,
        Field::Key => c.key.span().start,
        Field::Ca => c.client_ca.as_ref().map_or(at, |p| p.span().start),
        Field::Crl(i) => c.crls.get(i).map_or(at, |p| p.span().start),
        Field::Whole => at,
    };
    match tacvs_tls::server::server_config(&settings, std::time::SystemTime::now()) {
        Ok(built) => {
            for (f, w) in built.warnings {
                warns.push(loc.at(span_of(f), w));
            }
            let files = format!(
                "certificate {}, client_ca {}, {} CRL file(s)",
                settings.certificate.display(),
                settings.client_ca.as_ref().map_or("none".into(), |p| p.display().to_string()),
                settings.crls.len()
            );
            Some(Arc::new(ListenerTls {
                config: built.config,
                identity: c.identity,
                client_certificate: c.client_certificate,
                handshake_timeout: c.handshake_timeout.0,
                max_handshakes: c.max_handshakes,
                max_handshakes_per_source: c.max_handshakes_per_source,
                ticket_lifetime: lifetime,
                certificate: built.certificate,
                files,
            }))
        }
        Err(e) => {
            errs.push(loc.at(span_of(e.field()), e.to_string()));
            None
        }
    }
}

fn compile_group_tls(
    t: Option<&config::DeviceGroupTlsConf>,
    loc: &Locator<'_>,
    errs: &mut Vec<ConfigError>,
) -> DeviceGroupTls {
    let Some(t) = t else { return DeviceGroupTls::default() };
    let names = t
        .names
        .iter()
        .filter_map(|n| match tacvs_tls::identity::DnsPattern::parse(n.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(loc.at(n.span().start, e));
                None
            }
        })
        .collect();
    DeviceGroupTls { required: t.required, names }
}

/// Identities that cannot work: `san-dns` with no names to match, a group
/// that requires TLS with no TLS listener to use, one name in two groups.
fn check_tls_identities(
    raw: &ServerFile,
    listeners: &[Listener],
    groups: &[DeviceGroup],
    loc: &Locator<'_>,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) {
    let any_names = groups.iter().any(|g| !g.tls.names.is_empty());
    for (l, conf) in listeners.iter().zip(&raw.server.listen) {
        if let (Some(t), Some(c)) = (&l.tls, &conf.tls)
            && t.identity == config::IdentityMode::SanDns
            && !any_names
        {
            errs.push(loc.at(
                c.span().start,
                "identity = \"san-dns\" but no device group lists names: add \
                    [device_group.tls] names = [\"*.example.net\"]",
            ));
        }
    }
    let tls_listener = raw.server.listen.iter().any(|l| l.tls.is_some());
    for (g, d) in groups.iter().zip(&raw.device_groups) {
        if g.tls.required && !tls_listener {
            warns.push(loc.at(
                d.name.span().start,
                format!(
                    "device group {:?} requires TLS but no listener has a [server.listen.tls] \
                        section: its devices cannot connect",
                    g.name
                ),
            ));
        }
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (g, d) in groups.iter().zip(&raw.device_groups) {
        for (p, n) in g.tls.names.iter().zip(d.tls.iter().flat_map(|t| &t.names)) {
            if let Some(other) = seen.insert(p.to_string(), &g.name)
                && other != &*g.name
            {
                errs.push(loc.at(
                    n.span().start,
                    format!("the name {p} is already in device group {other:?}"),
                ));
            }
        }
    }
}
