//! Where users come from besides the file: directories (`[[ldap]]`), how
//! directory groups map to tacvs groups (`[[ldap.group_map]]`), which source
//! wins for a user written in both (`[[user]] prefer`), and one-time passwords
//! (`[authentication.otp]`, `[[user]] otp`, `[[group]] otp`).
//!
//! This module holds the settings as written, their compiled form, and the
//! pure pieces every caller needs the same way: RFC 4515 escaping of a value
//! put into a search filter, the check of a user name before it reaches a
//! directory, filter templates, and the mapping of LDAP groups (by DN or CN)
//! to tacvs groups. Talking to a directory is the server's job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tacvs_proto::AuthenType;
use toml::Spanned;

use crate::error::{ConfigError, Locator};
use tacvs_config::Secret;

use crate::units::Dur;

/// `[[ldap]]`: one directory (OpenLDAP, Active Directory), with one or more
/// servers tried in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConf {
    /// Name in logs, metrics and `policy explain`.
    pub name: Spanned<String>,
    /// `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]`, tried in order.
    pub urls: Vec<Spanned<String>>,
    /// Upgrade `ldap://` connections with StartTLS (RFC 4511 §4.14).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the certificate authorities that sign the servers'
    /// certificates (default: the system's).
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// The service account searches run as; none: anonymous searches.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// The service account's password (never logged).
    #[serde(default)]
    pub bind_password: Option<Secret>,
    /// A file holding the service account's password (first line), relative
    /// to the configuration file's directory.
    #[serde(default)]
    pub bind_password_file: Option<Spanned<PathBuf>>,
    /// Where users are searched (subtree).
    pub base_dn: String,
    /// The search filter; `{user}` is the login name, escaped (RFC 4515).
    #[serde(default = "default_user_filter")]
    pub user_filter: Spanned<String>,
    /// `member_of` (an attribute of the user entry) or `search` (a search
    /// for the groups that list the user).
    #[serde(default)]
    pub groups: GroupSource,
    /// The user attribute that lists the groups (`member_of`).
    #[serde(default = "default_member_attribute")]
    pub member_attribute: String,
    /// Where groups are searched (`search`, nesting); default: `base_dn`.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// The group search filter; `{dn}` is the user's DN, `{user}` the login
    /// name, both escaped.
    #[serde(default = "default_group_filter")]
    pub group_filter: Spanned<String>,
    /// Nested groups: `off`, `in_chain` (Active Directory's
    /// LDAP_MATCHING_RULE_IN_CHAIN), `recursive` (bounded, cycles cut).
    #[serde(default)]
    pub nested: Nesting,
    /// How many levels of nesting `recursive` follows.
    #[serde(default = "default_max_depth")]
    pub max_depth: u8,
    /// The user attribute holding a TOTP secret (base32), if any.
    #[serde(default)]
    pub otp_attribute: Option<String>,
    /// Bound on connecting (TCP, TLS and the service bind) to one server.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Bound on one directory operation (search, bind).
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// Connections kept per server role (searches, user binds).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// A server that failed is skipped for this long before it is tried again.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: Dur,
    /// `[[ldap.group_map]]`, in order of precedence.
    #[serde(default)]
    pub group_map: Vec<GroupMapConf>,
}

fn default_user_filter() -> Spanned<String> {
    Spanned::new(0..0, "(uid={user})".into())
}
fn default_group_filter() -> Spanned<String> {
    Spanned::new(0..0, "(member={dn})".into())
}
fn default_member_attribute() -> String {
    "memberOf".into()
}
fn default_max_depth() -> u8 {
    8
}
fn default_connect_timeout() -> Dur {
    Dur::secs(2)
}
fn default_timeout() -> Dur {
    Dur::secs(3)
}
fn default_pool_size() -> usize {
    4
}
fn default_retry_interval() -> Dur {
    Dur::secs(10)
}

/// Where a user's groups come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSource {
    /// The user entry's `member_attribute` (OpenLDAP's memberof overlay, AD).
    #[default]
    MemberOf,
    /// A search for the groups whose filter matches the user.
    Search,
}

/// Whether groups of groups count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nesting {
    /// Only the groups that list the user.
    #[default]
    Off,
    /// One search with Active Directory's matching rule in chain
    /// (`1.2.840.113556.1.4.1941`) under `group_base_dn`.
    InChain,
    /// Follow groups of groups level by level, up to `max_depth`, each group
    /// once (cycles end).
    Recursive,
}

/// `[[ldap.group_map]]`: a directory group that grants a tacvs group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapConf {
    /// A group's DN (`cn=netops,ou=groups,dc=example,dc=com`) or its CN (`netops`).
    pub ldap_group: Spanned<String>,
    /// The tacvs group it grants.
    pub group: Spanned<String>,
}

/// Which entry answers for a user written in the file who is also in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    /// The `[[user]]` entry answers; directories are not asked.
    #[default]
    Local,
    /// The directory answers while one can; the `[[user]]` entry only when
    /// every directory is unreachable (break-glass).
    Directory,
}

impl Prefer {
    /// `local` / `directory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefer::Local => "local",
            Prefer::Directory => "directory",
        }
    }
}

/// How a PAP login carries its one-time code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PapOtp {
    /// The code's digits follow the password in the PAP data (`password123456`).
    #[default]
    Append,
    /// PAP logins of users with a one-time password are refused.
    Refuse,
}

/// `[authentication.otp]`: TOTP (RFC 6238) settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpConf {
    /// JSON file of user → base32 secret (written by `tacvs otp enroll`;
    /// relative to the configuration file's directory).
    pub secrets_file: PathBuf,
    /// Digits per code (6-8).
    pub digits: u8,
    /// Time step (RFC 6238 X).
    pub period: Dur,
    /// Steps accepted either side of now (clock skew).
    pub skew: u8,
    /// How PAP carries the code.
    pub pap: PapOtp,
    /// The issuer shown by authenticator apps (`tacvs otp enroll`).
    pub issuer: String,
}

impl Default for OtpConf {
    fn default() -> Self {
        OtpConf {
            secrets_file: PathBuf::from("./var/otp.json"),
            digits: 6,
            period: Dur::secs(30),
            skew: 1,
            pap: PapOtp::Append,
            issuer: "tacvs".into(),
        }
    }
}

/// The compiled OTP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpSettings {
    /// The secrets file, resolved against the configuration file's directory.
    pub secrets_file: PathBuf,
    /// Digits per code.
    pub digits: u8,
    /// Time step.
    pub period: Duration,
    /// Steps either side.
    pub skew: u8,
    /// PAP convention.
    pub pap: PapOtp,
    /// Issuer label.
    pub issuer: String,
}

/// The login methods a device group may use (`[[device_group]] login_methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginMethods(u8);

impl LoginMethods {
    const NAMES: [(&'static str, AuthenType); 5] = [
        ("ascii", AuthenType::Ascii),
        ("pap", AuthenType::Pap),
        ("chap", AuthenType::Chap),
        ("mschapv1", AuthenType::MsChapV1),
        ("mschapv2", AuthenType::MsChapV2),
    ];

    fn bit(t: AuthenType) -> u8 {
        match t {
            AuthenType::Ascii => 1,
            AuthenType::Pap => 2,
            AuthenType::Chap => 4,
            AuthenType::MsChapV1 => 8,
            AuthenType::MsChapV2 => 16,
            _ => 0,
        }
    }

    /// From the names written in the file.
    pub(crate) fn parse(
        names: &[Spanned<String>],
        loc: &Locator<'_>,
        errs: &mut Vec<ConfigError>,
    ) -> LoginMethods {
        let mut m = 0;
        for n in names {
            match Self::NAMES.iter().find(|(name, _)| *name == n.get_ref().as_str()) {
                Some((_, t)) => m |= Self::bit(*t),
                None => errs.push(loc.at(
                    n.span().start,
                    "unknown login method; one of ascii, pap, chap, mschapv1, mschapv2",
                )),
            }
        }
        LoginMethods(m)
    }

    /// Whether `t` may be used.
    pub fn allows(self, t: AuthenType) -> bool {
        self.0 & Self::bit(t) != 0
    }

    /// Whether CHAP or MS-CHAP is among them.
    pub fn has_chap(self) -> bool {
        self.0 & (4 | 8 | 16) != 0
    }
}

/// The longest user name sent to a directory (bytes). Longer names are refused
/// before any directory operation.
pub const MAX_DIRECTORY_USER: usize = 256;

/// Why a name is not sent to a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    /// Empty.
    Empty,
    /// Longer than [`MAX_DIRECTORY_USER`].
    TooLong,
    /// Not UTF-8.
    NotUtf8,
    /// Holds NUL or another control character.
    Control,
}

impl BadName {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BadName::Empty => "empty user name",
            BadName::TooLong => "user name longer than 256 bytes",
            BadName::NotUtf8 => "user name is not UTF-8",
            BadName::Control => "user name holds a control character (NUL, CR, LF, ...)",
        }
    }
}

/// The login name as it may go into a directory filter, or why not.
pub fn directory_user(raw: &[u8]) -> Result<&str, BadName> {
    if raw.is_empty() {
        return Err(BadName::Empty);
    }
    if raw.len() > MAX_DIRECTORY_USER {
        return Err(BadName::TooLong);
    }
    let s = std::str::from_utf8(raw).map_err(|_| BadName::NotUtf8)?;
    if s.chars().any(crate::authz::hostile_char) {
        return Err(BadName::Control);
    }
    Ok(s)
}

/// RFC 4515 §3: a value inside a filter with `*`, `(`, `)`, `\` and NUL
/// written as `\XX`. Every other byte outside printable ASCII is escaped too,
/// so the filter text stays plain ASCII whatever the name holds.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for &b in value.as_bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => out.push_str(&format!("\\{b:02x}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

/// A search filter with `{user}` / `{dn}` placeholders, checked at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTemplate {
    text: String,
}

impl FilterTemplate {
    /// Check `text`: parenthesised, balanced, only the `allowed` placeholders,
    /// and at least one of them.
    pub fn parse(text: &str, allowed: &[&str]) -> Result<FilterTemplate, String> {
        let t = text.trim();
        if !t.starts_with('(') || !t.ends_with(')') {
            return Err("a filter is written in parentheses, e.g. \"(uid={user})\"".into());
        }
        let mut depth = 0i32;
        for c in t.chars() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err("the filter's parentheses do not balance".into());
                    }
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err("the filter's parentheses do not balance".into());
        }
        let mut rest = t;
        let mut used = 0;
        while let Some(i) = rest.find('{') {
            let Some(j) = rest[i..].find('}') else {
                return Err("a `{` without its `}`".into());
            };
            let name = &rest[i + 1..i + j];
            if !allowed.contains(&name) {
                let list: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
                return Err(format!(
                    "unknown placeholder {{{name}}}; this filter takes {}",
                    list.join(" and ")
                ));
            }
            used += 1;
            rest = &rest[i + j + 1..];
        }
        if used == 0 {
            let list: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
            return Err(format!("the filter names no one: put {} in it", list.join(" or ")));
        }
        Ok(FilterTemplate { text: t.to_owned() })
    }

    /// The filter for this user (and DN), each value escaped (RFC 4515).
    /// One pass over the template: a value that holds `{dn}` stays text.
    pub fn render(&self, user: &str, dn: &str) -> String {
        let mut out = String::with_capacity(self.text.len() + user.len() + dn.len());
        let mut rest = self.text.as_str();
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(r) = after.strip_prefix("{user}") {
                out.push_str(&escape_filter_value(user));
                rest = r;
            } else if let Some(r) = after.strip_prefix("{dn}") {
                out.push_str(&escape_filter_value(dn));
                rest = r;
            } else {
                out.push('{');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        out
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A DN compared as directories do for our purpose: case-insensitive, spaces
/// around `,` and `=` ignored.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        match part.split_once('=') {
            Some((a, v)) => {
                out.push_str(&a.trim().to_lowercase());
                out.push('=');
                out.push_str(&v.trim().to_lowercase());
            }
            None => out.push_str(&part.trim().to_lowercase()),
        }
    }
    out
}

/// The value of a DN's first RDN when it is a `cn` (`netops` of
/// `cn=netops,ou=groups,...`).
pub fn dn_cn(dn: &str) -> Option<String> {
    let first = dn.split(',').next()?;
    let (a, v) = first.split_once('=')?;
    a.trim().eq_ignore_ascii_case("cn").then(|| v.trim().to_lowercase())
}

/// What a map entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapGroupRef {
    /// A whole DN, normalised.
    Dn(String),
    /// A CN, lower case.
    Cn(String),
}

/// One compiled `[[ldap.group_map]]` entry.
#[derive(Debug, Clone)]
pub struct GroupMapping {
    /// As written.
    pub ldap_group: String,
    /// What it matches.
    pub matches: LdapGroupRef,
    /// The tacvs group index it grants.
    pub group: usize,
}

impl GroupMapping {
    /// Whether the LDAP group `dn` is this entry's.
    pub fn matches(&self, dn: &str) -> bool {
        match &self.matches {
            LdapGroupRef::Dn(want) => normalize_dn(dn) == *want,
            LdapGroupRef::Cn(want) => dn_cn(dn).as_deref() == Some(want.as_str()),
        }
    }
}

/// A parsed server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    /// As written (`ldaps://dc1.example.com:636`).
    pub url: String,
    /// `ldaps://`.
    pub tls: bool,
    /// Host name or address (for the certificate check and logs).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl LdapUrl {
    /// `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]` (IPv6 in brackets); no
    /// path, user or query.
    pub fn parse(s: &str) -> Result<LdapUrl, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("ldaps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("ldap://") {
            (false, r)
        } else {
            return Err("a directory URL starts with ldap:// or ldaps://".into());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '@', '#']) {
            return Err("write ldap://HOST[:PORT] or ldaps://HOST[:PORT], without a path".into());
        }
        let default_port = if tls { 636 } else { 389 };
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let Some((h, after)) = r.split_once(']') else {
                return Err("an IPv6 address in brackets is not closed".into());
            };
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| "the port is not a number from 1 to 65535")?,
                None if after.is_empty() => default_port,
                None => return Err("unexpected text after the address".into()),
            };
            (h.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| "the port is not a number")?),
                None => (rest.to_owned(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err("the URL has no host or a port of 0".into());
        }
        Ok(LdapUrl { url: s.to_owned(), tls, host, port })
    }

    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// One compiled `[[ldap]]` directory.
#[derive(Debug, Clone)]
pub struct Directory {
    /// Name.
    pub name: String,
    /// Servers, in order.
    pub urls: Vec<LdapUrl>,
    /// StartTLS on `ldap://`.
    pub starttls: bool,
    /// CA file, resolved.
    pub ca_file: Option<PathBuf>,
    /// Service account DN.
    pub bind_dn: Option<String>,
    /// Service account password.
    pub bind_password: Option<Secret>,
    /// Search base for users.
    pub base_dn: String,
    /// User filter.
    pub user_filter: FilterTemplate,
    /// Where groups come from.
    pub groups: GroupSource,
    /// The user attribute listing groups.
    pub member_attribute: String,
    /// Search base for groups.
    pub group_base_dn: String,
    /// Group filter.
    pub group_filter: FilterTemplate,
    /// Nesting.
    pub nested: Nesting,
    /// Levels followed by `recursive`.
    pub max_depth: u8,
    /// TOTP secret attribute.
    pub otp_attribute: Option<String>,
    /// Connect bound.
    pub connect_timeout: Duration,
    /// Operation bound.
    pub timeout: Duration,
    /// Connections per role.
    pub pool_size: usize,
    /// Skip a failed server for this long.
    pub retry_interval: Duration,
    /// Group map, in order.
    pub group_map: Vec<GroupMapping>,
}

impl Directory {
    /// The tacvs groups `ldap_groups` (DNs) grant, in map order, each once;
    /// with the map entries that matched (for `policy explain`).
    pub fn map_groups(&self, ldap_groups: &[String]) -> Vec<(usize, &GroupMapping)> {
        let mut out: Vec<(usize, &GroupMapping)> = Vec::new();
        for m in &self.group_map {
            if out.iter().any(|(g, _)| *g == m.group) {
                continue;
            }
            if ldap_groups.iter().any(|dn| m.matches(dn)) {
                out.push((m.group, m));
            }
        }
        out
    }
}

/// Compile the `[[ldap]]` sections. `group_names` resolves map targets.
pub(crate) fn compile_directories(
    raw: &[LdapConf],
    group_names: &HashMap<&str, usize>,
    loc: &Locator<'_>,
    base: &Path,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> Vec<Directory> {
    let mut seen: HashMap<&str, ()> = HashMap::new();
    let mut out = Vec::new();
    for d in raw {
        let name = d.name.get_ref();
        let at = d.name.span().start;
        if name.is_empty() {
            errs.push(loc.at(at, "[[ldap]] name is empty"));
        }
        if seen.insert(name.as_str(), ()).is_some() {
            errs.push(
                loc.at(at, format!("[[ldap]] {name:?} is defined twice; names must be unique")),
            );
        }
        let what = format!("[[ldap]] {name:?}");
        if d.urls.is_empty() {
            errs.push(
                loc.at(at, format!("{what} has no urls: add urls = [\"ldaps://dc1.example.com\"]")),
            );
        }
        let mut urls = Vec::new();
        for u in &d.urls {
            match LdapUrl::parse(u.get_ref()) {
                Ok(url) => {
                    if !url.tls && !d.starttls && !url.is_loopback() {
                        warns.push(loc.at(
                            u.span().start,
                            format!(
                                "{what}: {} carries the users' passwords in clear: use ldaps:// or starttls = true",
                                url.url
                            ),
                        ));
                    }
                    if url.tls && d.starttls {
                        warns.push(loc.at(
                            u.span().start,
                            format!(
                                "{what}: starttls applies to ldap:// URLs; {} is TLS already",
                                url.url
                            ),
                        ));
                    }
                    urls.push(url);
                }
                Err(e) => errs.push(loc.at(u.span().start, format!("{what}: {e}"))),
            }
        }
        let ca_file = d.ca_file.as_ref().map(|f| {
            let p = base.join(f.get_ref());
            if let Err(e) = std::fs::metadata(&p) {
                errs.push(loc.at(f.span().start, format!("{what}: cannot read the CA file: {e}")));
            }
            p
        });
        let mut bind_password = d.bind_password.clone();
        if let Some(f) = &d.bind_password_file {
            if bind_password.is_some() {
                warns.push(loc.at(
                    f.span().start,
                    format!(
                        "{what}: both bind_password and bind_password_file: the file's is used"
                    ),
                ));
            }
            match std::fs::read_to_string(base.join(f.get_ref())) {
                Ok(t) => match t.lines().next().map(|l| l.trim_end_matches('\r')) {
                    Some(l) if !l.is_empty() => bind_password = Some(Secret::new(l)),
                    _ => errs.push(loc.at(
                        f.span().start,
                        format!(
                            "{what}: the password file is empty: put the password on its first line"
                        ),
                    )),
                },
                Err(e) => errs.push(
                    loc.at(f.span().start, format!("{what}: cannot read the password file: {e}")),
                ),
            }
        }
        match (&d.bind_dn, &bind_password) {
            (Some(_), None) => errs.push(
                loc.at(at, format!("{what}: bind_dn needs bind_password or bind_password_file")),
            ),
            (None, Some(_)) => {
                errs.push(loc.at(at, format!("{what}: a bind password without bind_dn")))
            }
            (Some(_), Some(p)) if p.is_empty() => errs.push(loc.at(
                at,
                format!(
                    "{what}: the service account's password is empty (an unauthenticated \
                    bind, RFC 4513 §5.1.2): set it"
                ),
            )),
            _ => {}
        }
        if d.base_dn.trim().is_empty() {
            errs.push(loc.at(at, format!("{what}: base_dn is empty")));
        }
        let template = |t: &Spanned<String>, allowed: &[&str], errs: &mut Vec<ConfigError>| {
            FilterTemplate::parse(t.get_ref(), allowed).unwrap_or_else(|e| {
                errs.push(loc.at(t.span().start, format!("{what}: {e}")));
                FilterTemplate { text: String::new() }
            })
        };
        let user_filter = template(&d.user_filter, &["user"], errs);
        let group_filter = template(&d.group_filter, &["dn", "user"], errs);
        if d.pool_size == 0 {
            errs.push(loc.at(at, format!("{what}: pool_size must be at least 1")));
        }
        if d.timeout.0.is_zero() || d.connect_timeout.0.is_zero() {
            errs.push(loc.at(at, format!("{what}: timeout and connect_timeout must be above 0")));
        }
        if d.nested == Nesting::Recursive && d.max_depth == 0 {
            errs.push(
                loc.at(at, format!("{what}: nested = \"recursive\" needs max_depth of 1 or more")),
            );
        }
        if d.group_map.is_empty() {
            warns.push(loc.at(
                at,
                format!("{what} has no [[ldap.group_map]]: every directory user will be refused (in no mapped group)"),
            ));
        }
        let mut group_map = Vec::new();
        for m in &d.group_map {
            let Some(&gi) = group_names.get(m.group.get_ref().as_str()) else {
                errs.push(loc.at(
                    m.group.span().start,
                    format!("{what}: no group named {:?}", m.group.get_ref()),
                ));
                continue;
            };
            let text = m.ldap_group.get_ref().trim();
            if text.is_empty() {
                errs.push(
                    loc.at(m.ldap_group.span().start, format!("{what}: ldap_group is empty")),
                );
                continue;
            }
            let matches = if text.contains('=') {
                LdapGroupRef::Dn(normalize_dn(text))
            } else {
                LdapGroupRef::Cn(text.to_lowercase())
            };
            group_map.push(GroupMapping { ldap_group: text.to_owned(), matches, group: gi });
        }
        out.push(Directory {
            name: name.clone(),
            urls,
            starttls: d.starttls,
            ca_file,
            bind_dn: d.bind_dn.clone(),
            bind_password,
            base_dn: d.base_dn.clone(),
            user_filter,
            groups: d.groups,
            member_attribute: d.member_attribute.clone(),
            group_base_dn: d.group_base_dn.clone().unwrap_or_else(|| d.base_dn.clone()),
            group_filter,
            nested: d.nested,
            max_depth: d.max_depth,
            otp_attribute: d.otp_attribute.clone(),
            connect_timeout: d.connect_timeout.0,
            timeout: d.timeout.0,
            pool_size: d.pool_size.max(1),
            retry_interval: d.retry_interval.0,
            group_map,
        });
    }
    out
}

/// Compile `[authentication.otp]`.
pub(crate) fn compile_otp(
    c: &OtpConf,
    loc: &Locator<'_>,
    base: &Path,
    errs: &mut Vec<ConfigError>,
) -> OtpSettings {
    if !(6..=8).contains(&c.digits) {
        errs.push(loc.whole("[authentication.otp] digits must be 6, 7 or 8"));
    }
    if c.period.0.as_secs() == 0 || c.period.0.subsec_nanos() != 0 {
        errs.push(loc.whole("[authentication.otp] period must be whole seconds, at least 1s"));
    }
    if c.skew > 10 {
        errs.push(loc.whole("[authentication.otp] skew above 10 steps accepts too many codes"));
    }
    OtpSettings {
        secrets_file: base.join(&c.secrets_file),
        digits: c.digits,
        period: c.period.0,
        skew: c.skew,
        pap: c.pap,
        issuer: c.issuer.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped_per_rfc_4515() {
        assert_eq!(escape_filter_value("alice"), "alice");
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value(")(uid=*"), "\\29\\28uid=\\2a");
        assert_eq!(escape_filter_value("a\\b"), "a\\5cb");
        assert_eq!(escape_filter_value("a\0b"), "a\\00b");
        assert_eq!(escape_filter_value("jos\u{e9}"), "jos\\c3\\a9");
    }

    #[test]
    fn names_that_never_reach_a_directory() {
        assert_eq!(directory_user(b""), Err(BadName::Empty));
        assert_eq!(directory_user(b"a\0b"), Err(BadName::Control));
        assert_eq!(directory_user(b"a\nb"), Err(BadName::Control));
        assert_eq!(directory_user(&[b'a'; 257]), Err(BadName::TooLong));
        assert_eq!(directory_user(&[0xff, 0xfe]), Err(BadName::NotUtf8));
        assert_eq!(directory_user(&[b'a'; 256]).map(str::len), Ok(256));
        assert_eq!(directory_user(b"*)(uid=*"), Ok("*)(uid=*"), "escaped later, not refused");
    }

    #[test]
    fn templates_render_escaped_and_refuse_what_cannot_work() {
        let t = FilterTemplate::parse("(&(objectClass=person)(uid={user}))", &["user"]).unwrap();
        assert_eq!(t.render("alic*", ""), "(&(objectClass=person)(uid=alic\\2a))");
        let g = FilterTemplate::parse("(member={dn})", &["dn", "user"]).unwrap();
        assert_eq!(g.render("x", "cn=a(b),dc=x"), "(member=cn=a\\28b\\29,dc=x)");
        let both = FilterTemplate::parse("(|(member={dn})(memberUid={user}))", &["dn", "user"]);
        assert_eq!(both.unwrap().render("{dn}", "cn=g"), "(|(member=cn=g)(memberUid={dn}))");
        assert!(
            FilterTemplate::parse("uid={user}", &["user"]).unwrap_err().contains("parentheses")
        );
        assert!(FilterTemplate::parse("((uid={user})", &["user"]).unwrap_err().contains("balance"));
        assert!(
            FilterTemplate::parse("(uid=alice)", &["user"]).unwrap_err().contains("names no one")
        );
        assert!(FilterTemplate::parse("(uid={name})", &["user"]).unwrap_err().contains("{name}"));
    }

    #[test]
    fn group_map_matches_dn_or_cn_in_map_order_each_group_once() {
        let mk = |t: &str, g| GroupMapping {
            ldap_group: t.into(),
            matches: if t.contains('=') {
                LdapGroupRef::Dn(normalize_dn(t))
            } else {
                LdapGroupRef::Cn(t.to_lowercase())
            },
            group: g,
        };
        let d = Directory {
            name: "d".into(),
            urls: vec![],
            starttls: false,
            ca_file: None,
            bind_dn: None,
            bind_password: None,
            base_dn: "dc=x".into(),
            user_filter: FilterTemplate::parse("(uid={user})", &["user"]).unwrap(),
            groups: GroupSource::MemberOf,
            member_attribute: "memberOf".into(),
            group_base_dn: "dc=x".into(),
            group_filter: FilterTemplate::parse("(member={dn})", &["dn"]).unwrap(),
            nested: Nesting::Off,
            max_depth: 8,
            otp_attribute: None,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            pool_size: 1,
            retry_interval: Duration::from_secs(1),
            group_map: vec![
                mk("cn=NetOps, ou=Groups, dc=x", 0),
                mk("readonly", 1),
                mk("netops", 0),
                mk("auditors", 2),
            ],
        };
        let got: Vec<usize> = d
            .map_groups(&["cn=readonly,ou=other,dc=x".into(), "CN=netops,OU=groups,DC=x".into()])
            .iter()
            .map(|(g, _)| *g)
            .collect();
        assert_eq!(got, [0, 1], "map order decides, netops once");
        assert!(d.map_groups(&["cn=nobody,dc=x".into()]).is_empty());
        assert!(d.map_groups(&["ou=netops,dc=x".into()]).is_empty(), "a CN entry needs a cn RDN");
    }

    proptest::proptest! {
        /// Whatever a device sends as a name, the escaped value holds no
        /// filter syntax: no `*`, `(`, `)`, NUL, and every `\` starts a
        /// two-digit hex escape; unescaping gives the name back.
        #[test]
        fn escaped_values_carry_no_filter_syntax(name in ".{0,64}") {
            let e = escape_filter_value(&name);
            proptest::prop_assert!(!e.contains(['*', '(', ')', '\0']), "{e}");
            let b = e.as_bytes();
            let mut back = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\' {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    back.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    proptest::prop_assert!((0x20..0x7f).contains(&b[i]));
                    back.push(b[i]);
                    i += 1;
                }
            }
            proptest::prop_assert_eq!(back, name.as_bytes());
        }

        /// A template renders any name and DN into a filter whose parentheses
        /// still balance.
        #[test]
        fn rendered_filters_stay_balanced(user in ".{0,32}", dn in ".{0,32}") {
            let t = FilterTemplate::parse("(|(member={dn})(memberUid={user}))", &["dn", "user"]).unwrap();
            let f = t.render(&user, &dn);
            let mut depth = 0i32;
            for c in f.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                proptest::prop_assert!(depth >= 0);
            }
            proptest::prop_assert_eq!(depth, 0);
        }
    }

    #[test]
    fn urls_parse_with_default_ports() {
        let u = LdapUrl::parse("ldaps://dc1.example.com").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "dc1.example.com", 636));
        let u = LdapUrl::parse("ldap://127.0.0.1:3890/").unwrap();
        assert_eq!((u.tls, u.port, u.is_loopback()), (false, 3890, true));
        let u = LdapUrl::parse("ldap://[::1]:389").unwrap();
        assert_eq!(u.host, "::1");
        assert!(LdapUrl::parse("http://x").is_err());
        assert!(LdapUrl::parse("ldap://x/dc=example").is_err());
        assert!(LdapUrl::parse("ldap://x:0").is_err());
    }
}
