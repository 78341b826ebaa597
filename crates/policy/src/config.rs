//! The server configuration file, as written (TOML). Every table rejects unknown
//! keys so a typo is an error, not a silently ignored setting. Names and
//! cross-references are `Spanned` so validation can point at them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::units::{Dur, Size};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// `[server]`: identity and listeners.
    pub server: ServerSection,
    /// `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// `[authentication]`.
    #[serde(default)]
    pub authentication: AuthSection,
    /// `[accounting]`.
    #[serde(default)]
    pub accounting: AccountingSection,
    /// `[metrics]`: Prometheus exposition.
    #[serde(default)]
    pub metrics: Option<MetricsSection>,
    /// `[[device_group]]`.
    #[serde(default, rename = "device_group")]
    pub device_groups: Vec<DeviceGroupConf>,
    /// `[[group]]`.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConf>,
    /// `[[user]]`.
    #[serde(default, rename = "user")]
    pub users: Vec<UserConf>,
    /// `[[ldap]]`: directories users also come from (issue 12).
    #[serde(default)]
    pub ldap: Vec<crate::identity::LdapConf>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// This server's name in accounting records and logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// `[[server.listen]]`: where to accept connections.
    pub listen: Vec<ListenConf>,
    /// The local control socket for `tacvs server lockouts | unlock |
    /// sessions` (mode 0600; relative to the configuration file's directory).
    /// None: no control socket.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    /// Started as root: bind the listeners, open the journal, password store
    /// and control socket, then run as this user (see [`crate::run_as`]).
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    /// The group to run as with `user` (default: the user's primary group).
    #[serde(default)]
    pub group: Option<Spanned<String>>,
}

fn default_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "tacvs".into())
}

/// Whether a listener expects a PROXY protocol header (v1 or v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// No header: the TCP peer is the device.
    #[default]
    Off,
    /// A header from a trusted proxy is used; a direct connection without one is served.
    Optional,
    /// Every connection must start with a header from a trusted proxy.
    Required,
}

impl std::fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyMode::Off => "off",
            ProxyMode::Optional => "optional",
            ProxyMode::Required => "required",
        })
    }
}

/// `[[server.listen]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConf {
    /// Address and port, e.g. `"0.0.0.0:49"` or `"[::]:49"`.
    pub address: Spanned<String>,
    /// PROXY protocol intake.
    #[serde(default)]
    pub proxy_protocol: ProxyMode,
    /// Peers whose PROXY headers are believed (the directors).
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// `[server.listen.tls]`: TACACS+ over TLS 1.3 (RFC 9887) on this listener.
    #[serde(default)]
    pub tls: Option<Spanned<ListenTlsConf>>,
}

/// `[server.listen.tls]`: the listener speaks TLS 1.3 only, from the first
/// byte (after a PROXY header when it takes one), and never plain TACACS+.
/// Paths are relative to the configuration file's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTlsConf {
    /// PEM certificate chain: the server's certificate, then intermediates.
    pub certificate: Spanned<PathBuf>,
    /// Its PEM private key (unencrypted; readable by the server only).
    pub key: Spanned<PathBuf>,
    /// PEM bundle of the CAs that issue device certificates.
    #[serde(default)]
    pub client_ca: Option<Spanned<PathBuf>>,
    /// CRL files (PEM or DER) of those CAs: revoked device certificates are refused.
    #[serde(default)]
    pub crls: Vec<Spanned<PathBuf>>,
    /// Whether devices must present a certificate (mutual TLS).
    #[serde(default)]
    pub client_certificate: ClientCertificateMode,
    /// What identifies the device: its address, or its certificate's names.
    #[serde(default)]
    pub identity: IdentityMode,
    /// Session resumption: how long a ticket is good for (0 turns it off).
    #[serde(default = "default_ticket_lifetime")]
    pub ticket_lifetime: Spanned<Dur>,
    /// A handshake must complete within this long of the connection.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: Dur,
    /// Handshakes in progress at once on this listener.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one device address.
    #[serde(default = "default_max_handshakes_per_source")]
    pub max_handshakes_per_source: usize,
}

fn default_ticket_lifetime() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(3600)))
}

fn default_handshake_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}

fn default_max_handshakes() -> usize {
    256
}

fn default_max_handshakes_per_source() -> usize {
    8
}

/// `client_certificate`: mutual TLS or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertificateMode {
    /// A device must present a certificate chaining to `client_ca`, not revoked.
    #[default]
    Required,
    /// A certificate is checked when one is sent; devices without one are served.
    Optional,
    /// No certificate is asked for.
    None,
}

/// `identity`: how a TLS connection's device is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMode {
    /// The connection's source address (after PROXY), as on plain listeners.
    #[default]
    Address,
    /// The certificate's subjectAltName iPAddress, looked up in the device groups' prefixes.
    SanIp,
    /// The certificate's subjectAltName dNSName, matched against the device groups' `tls.names`.
    SanDns,
}

impl std::fmt::Display for IdentityMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdentityMode::Address => "address",
            IdentityMode::SanIp => "san-ip",
            IdentityMode::SanDns => "san-dns",
        })
    }
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections open at once, over all listeners.
    pub max_connections: usize,
    /// Connections open at once from one source address.
    pub max_connections_per_source: usize,
    /// A single-connect connection with no session in progress is closed after
    /// this long without a packet.
    pub idle_timeout: Dur,
    /// A session waiting for the device (an ASCII prompt answered) must see the
    /// device's next packet begin within this long of our reply; also how long
    /// a reply may wait for the device to read it.
    pub read_timeout: Dur,
    /// A new connection's first packet (after any PROXY header) must be whole
    /// within this long of the connection: a silent connection holds its slot
    /// no longer.
    pub first_packet_timeout: Dur,
    /// Once a packet's first byte has arrived, the whole packet must arrive
    /// within this long (bytes dripped slowly do not extend it).
    pub packet_timeout: Dur,
    /// Largest packet body accepted.
    pub max_body: Size,
    /// Sessions in progress on one single-connect connection.
    pub max_sessions_per_connection: usize,
    /// Time allowed for a PROXY header to arrive.
    pub proxy_header_timeout: Dur,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // The machines' open-file hard limit is 20,000; keep room for journals and metrics.
            max_connections: 18_000,
            max_connections_per_source: 512,
            idle_timeout: Dur(Duration::from_secs(600)),
            read_timeout: Dur(Duration::from_secs(30)),
            first_packet_timeout: Dur(Duration::from_secs(10)),
            packet_timeout: Dur(Duration::from_secs(10)),
            max_body: Size(64 * 1024),
            max_sessions_per_connection: 64,
            proxy_header_timeout: Dur(Duration::from_secs(5)),
        }
    }
}

/// `[authentication]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Password tries in one ASCII login before FAIL.
    pub max_login_attempts: u8,
    /// Threads that verify password hashes (off the async threads).
    pub hash_workers: usize,
    /// Hash verifications waiting for a worker before new ones fail fast.
    pub hash_queue: usize,
    /// `[authentication.lockout]`.
    pub lockout: LockoutConf,
    /// `[authentication.cache]`: verified-credential cache.
    pub cache: CacheConf,
    /// Let users change their login password with TACACS+ CHPASS (ASCII).
    pub change_password: bool,
    /// Where changed passwords are kept (hashes; they override the file's).
    pub password_store: PathBuf,
    /// Shortest new password accepted.
    pub min_password_length: usize,
    /// `[authentication.otp]`: one-time passwords (TOTP).
    pub otp: crate::identity::OtpConf,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            max_login_attempts: 3,
            hash_workers: 2,
            hash_queue: 4096,
            lockout: LockoutConf::default(),
            cache: CacheConf::default(),
            change_password: false,
            password_store: PathBuf::from("./var/passwords.json"),
            min_password_length: 8,
            otp: crate::identity::OtpConf::default(),
        }
    }
}

/// Failed-login lockout and guessing limits (`[authentication.lockout]`). Every
/// attempt counts from the moment it is admitted, before its hash is computed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConf {
    /// Failures of one user from one device address within `window` that lock
    /// that pair; 0 turns the lockout and the rates below off.
    pub max_failures: u32,
    /// How far back failures count.
    pub window: Dur,
    /// How long the first lock lasts; each further lock of the pair doubles it.
    pub duration: Dur,
    /// The longest a doubled lock lasts.
    pub max_duration: Dur,
    /// Attempts one user may fail from all devices in a burst before the next
    /// ones are slowed to one per `user_refill` (0 = no such limit). Logins in
    /// flight count until they pass, so this is also how many uncached logins
    /// of one user can be checked at once.
    pub user_burst: u32,
    /// One attempt back per user this often.
    pub user_refill: Dur,
    /// Attempts one device address may fail over all users in a burst before the
    /// next ones are slowed to one per `source_refill` (0 = no such limit).
    pub source_burst: u32,
    /// One attempt back per device this often.
    pub source_refill: Dur,
    /// Users, devices and (user, device) pairs tracked at most, each.
    pub max_entries: usize,
}

impl Default for LockoutConf {
    fn default() -> Self {
        LockoutConf {
            max_failures: 10,
            window: Dur(Duration::from_secs(300)),
            duration: Dur(Duration::from_secs(300)),
            max_duration: Dur(Duration::from_secs(3600)),
            user_burst: 60,
            user_refill: Dur(Duration::from_secs(20)),
            source_burst: 100,
            source_refill: Dur(Duration::from_secs(1)),
            max_entries: 100_000,
        }
    }
}

/// Verified-credential cache: remembers that (user, password) verified, keyed by a
/// per-process-secret HMAC, so repeated automation logins skip the slow hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConf {
    /// On or off.
    pub enabled: bool,
    /// How long a verified credential is trusted.
    pub ttl: Dur,
    /// Entries kept at most.
    pub max_entries: usize,
    /// While every directory is unreachable, a directory credential (and the
    /// user's groups) verified within this long still passes.
    pub outage_ttl: Dur,
    /// How long a directory user's groups are trusted (authorization asks the
    /// directory again after this).
    pub group_ttl: Dur,
}

impl Default for CacheConf {
    fn default() -> Self {
        CacheConf {
            enabled: true,
            ttl: Dur(Duration::from_secs(60)),
            max_entries: 100_000,
            outage_ttl: Dur(Duration::from_secs(900)),
            group_ttl: Dur(Duration::from_secs(300)),
        }
    }
}

/// `[accounting]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountingSection {
    /// Directory of the JSON Lines journal.
    pub directory: PathBuf,
    /// Start a new journal file past this size.
    pub rotate_size: Size,
    /// Start a new journal file after this long.
    pub rotate_interval: Dur,
    /// `[accounting.syslog]`: forward committed records.
    pub syslog: Option<SyslogConf>,
    /// Keep every authorization decision in `authz-*.jsonl` files beside
    /// the journal (for `tacvs policy diff --replay`).
    pub authorization_log: bool,
}

impl Default for AccountingSection {
    fn default() -> Self {
        AccountingSection {
            directory: PathBuf::from("./var/acct"),
            rotate_size: Size(256 << 20),
            rotate_interval: Dur(Duration::from_secs(86_400)),
            syslog: None,
            authorization_log: true,
        }
    }
}

/// `[accounting.syslog]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConf {
    /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///path`.
    pub target: Spanned<String>,
    /// RFC 5424 facility name, e.g. `local6`.
    #[serde(default = "default_facility")]
    pub facility: Spanned<String>,
    /// APP-NAME field.
    #[serde(default = "default_app")]
    pub app_name: String,
}

fn default_facility() -> Spanned<String> {
    Spanned::new(0..0, "local6".into())
}

fn default_app() -> String {
    "tacvs".into()
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the Prometheus text endpoint.
    pub listen: SocketAddr,
}

/// `[[device_group]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroupConf {
    /// Name used in logs and command rules.
    pub name: Spanned<String>,
    /// Addresses of the devices, as CIDR prefixes.
    pub prefixes: Vec<Spanned<String>>,
    /// Shared keys, tried in order (rotation).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Files holding a key each (first line), tried after `keys`.
    #[serde(default)]
    pub key_files: Vec<Spanned<PathBuf>>,
    /// Command action when no rule matches, for devices of this group.
    #[serde(default)]
    pub default_command_action: Option<Spanned<String>>,
    /// The login methods these devices use (`ascii`, `pap`, `chap`,
    /// `mschapv1`, `mschapv2`); others are refused. None: all.
    #[serde(default)]
    pub login_methods: Option<Vec<Spanned<String>>>,
    /// `[device_group.tls]`: TLS requirements and certificate names.
    #[serde(default)]
    pub tls: Option<DeviceGroupTlsConf>,
}

/// `[device_group.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroupTlsConf {
    /// Devices of this group must use TLS: plain connections from its
    /// prefixes are refused (and counted).
    #[serde(default)]
    pub required: bool,
    /// dNSNames (`rtr1.example.net`, `*.core.example.net`) that place a
    /// device in this group on listeners with `identity = "san-dns"`.
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
}

/// `[[group]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConf {
    /// Name users refer to.
    pub name: Spanned<String>,
    /// Privilege level granted for the shell (0-15).
    #[serde(default = "one")]
    pub priv_lvl: u8,
    /// `permit` or `deny` when no command rule matches.
    #[serde(default = "deny")]
    pub default_command_action: Spanned<String>,
    /// `[[group.service]]`.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConf>,
    /// `[[group.command]]`, evaluated in order.
    #[serde(default, rename = "command")]
    pub commands: Vec<CommandConf>,
    /// Members log in with a one-time password as well.
    #[serde(default)]
    pub otp: bool,
}

fn one() -> u8 {
    1
}

fn deny() -> Spanned<String> {
    Spanned::new(0..0, "deny".into())
}

/// `[[group.service]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConf {
    /// The `service` AV this grants, e.g. `shell`, `ppp`.
    pub name: String,
    /// Only when the request's `protocol` AV is this.
    #[serde(default)]
    pub protocol: Option<String>,
    /// AVs to return, `NAME=VALUE` or `NAME*VALUE`.
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
    /// Answer PASS_REPL (use exactly these AVs) instead of PASS_ADD.
    #[serde(default)]
    pub replace: bool,
}

/// `[[group.command]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConf {
    /// Regular expression over the whole command line (`cmd` and `cmd-arg`s
    /// joined by single spaces).
    #[serde(rename = "match")]
    pub pattern: Spanned<String>,
    /// `permit` or `deny`.
    pub action: Spanned<String>,
    /// Anchored at both ends (default). `false` matches anywhere in the line and
    /// must be written on purpose.
    #[serde(default = "yes")]
    pub anchored: bool,
    /// Only for devices in these groups.
    #[serde(default)]
    pub device_groups: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// `[[user]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConf {
    /// Login name.
    pub name: Spanned<String>,
    /// Password hash (`$6$`, `$5$`, `$y$`, `$2b$`, `$argon2id$`); see `tacvs hash-password`.
    #[serde(default)]
    pub password: Option<Spanned<String>>,
    /// Clear-text secret for CHAP / MS-CHAP, which need the password itself.
    #[serde(default)]
    pub chap_secret: Option<String>,
    /// Enable password hash.
    #[serde(default)]
    pub enable: Option<Spanned<String>>,
    /// Groups, in order of precedence.
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    /// When the user is also in a directory: which answers.
    #[serde(default)]
    pub prefer: crate::identity::Prefer,
    /// This user logs in with a one-time password as well.
    #[serde(default)]
    pub otp: bool,
}
