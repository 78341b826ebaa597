//! What an import produces: the tacvs server file's device groups, groups and
//! users as values, written out as TOML with `toml_edit` (so each table can
//! carry a comment naming its source line). The policy crate's structs are
//! deserialize-only, so the output is built here and then validated by the
//! policy crate itself.

use std::fmt;

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use crate::Dialect;
use crate::report::printable;

/// Services granted where the source permits every service (tacvs has no
/// wildcard service): the `service` values RFC 8907 and the common NASes use.
pub const STANDARD_SERVICES: &[&str] = &[
    "shell",
    "ppp",
    "arap",
    "slip",
    "tty-daemon",
    "connection",
    "system",
    "firewall",
    "multicast",
    "raccess",
    "x25",
];

/// A clear-text secret from the source (a key, a password); `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A password as the output holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// Clear text from the source, hashed when the TOML is written.
    Clear(Secret),
    /// A hash tacvs verifies as it is (`$6$`, `$5$`, `$y$`, `$2b$`, `$argon2…`).
    Hash(String),
}

/// Permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allowed.
    Permit,
    /// Refused.
    Deny,
}

impl Action {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Permit => "permit",
            Action::Deny => "deny",
        }
    }
}

/// `[[device_group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGroup {
    /// Name.
    pub name: String,
    /// Prefixes, as text (`10.0.0.0/8`).
    pub prefixes: Vec<String>,
    /// Keys, tried in order.
    pub keys: Vec<Secret>,
    /// Where it came from.
    pub comment: String,
}

/// `[[group.service]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `service` AV value.
    pub name: String,
    /// Required `protocol` AV value.
    pub protocol: Option<String>,
    /// AVs returned (`name=value`, `name*value`).
    pub args: Vec<String>,
}

/// `[[group.command]]` (always anchored: unanchored meanings are written out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Pattern over the whole command line.
    pub pattern: String,
    /// What a match decides.
    pub action: Action,
    /// Where it came from.
    pub comment: String,
}

/// `[[group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// `priv_lvl`.
    pub priv_lvl: u8,
    /// `default_command_action`.
    pub default_action: Action,
    /// Services, first match wins.
    pub services: Vec<Service>,
    /// Command rules, first match wins.
    pub commands: Vec<Command>,
    /// Where it came from.
    pub comment: String,
}

/// `[[user]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Login (ASCII and PAP) password.
    pub password: Option<Password>,
    /// CHAP / MS-CHAP secret.
    pub chap_secret: Option<Secret>,
    /// Enable password.
    pub enable: Option<Password>,
    /// Groups, in order.
    pub groups: Vec<String>,
    /// Where it came from.
    pub comment: String,
}

/// The whole translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Source file name.
    pub source: String,
    /// Source program.
    pub dialect: Dialect,
    /// Listener addresses.
    pub listen: Vec<String>,
    /// Directory for the journal and password store.
    pub state_dir: String,
    /// Device groups.
    pub device_groups: Vec<DeviceGroup>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Users.
    pub users: Vec<User>,
}

/// A comment line: never more than one line, whatever the source held.
fn comment(text: &str) -> String {
    format!("# {}\n", printable(text))
}

impl Output {
    /// An output with nothing in it yet.
    pub fn new(source: &str, dialect: Dialect, opts: &crate::Options) -> Self {
        Output {
            source: source.to_owned(),
            dialect,
            listen: opts.listen.clone(),
            state_dir: opts.state_dir.clone(),
            device_groups: Vec::new(),
            groups: Vec::new(),
            users: Vec::new(),
        }
    }

    /// A group name not used yet, from `base`.
    pub fn unique_group_name(&self, base: &str) -> String {
        let taken = |n: &str| self.groups.iter().any(|g| g.name == n);
        if !taken(base) {
            return base.to_owned();
        }
        (2..).map(|i| format!("{base} ({i})")).find(|n| !taken(n)).unwrap_or_default()
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The server file. Clear-text passwords go through `hash`.
    pub fn to_toml(
        &self,
        hash: &dyn Fn(&[u8]) -> Result<String, String>,
    ) -> Result<String, String> {
        let mut doc = DocumentMut::new();
        let mut server = Table::new();
        let mut listen = ArrayOfTables::new();
        for a in &self.listen {
            let mut t = Table::new();
            t["address"] = value(a.as_str());
            listen.push(t);
        }
        server["listen"] = Item::ArrayOfTables(listen);
        doc["server"] = Item::Table(server);

        let state = self.state_dir.trim_end_matches('/');
        let mut auth = Table::new();
        auth["password_store"] = value(format!("{state}/passwords.json"));
        doc["authentication"] = Item::Table(auth);
        let mut acct = Table::new();
        acct["directory"] = value(format!("{state}/acct"));
        doc["accounting"] = Item::Table(acct);

        let mut dgs = ArrayOfTables::new();
        for d in &self.device_groups {
            let mut t = Table::new();
            t.decor_mut().set_prefix(format!("\n{}", comment(&d.comment)));
            t["name"] = value(d.name.as_str());
            t["prefixes"] = value(Array::from_iter(d.prefixes.iter().map(String::as_str)));
            t["keys"] = value(Array::from_iter(d.keys.iter().map(|k| k.0.as_str())));
            dgs.push(t);
        }
        doc["device_group"] = Item::ArrayOfTables(dgs);

        let mut groups = ArrayOfTables::new();
        for g in &self.groups {
            let mut t = Table::new();
            t.decor_mut().set_prefix(format!("\n{}", comment(&g.comment)));
            t["name"] = value(g.name.as_str());
            t["priv_lvl"] = value(i64::from(g.priv_lvl));
            t["default_command_action"] = value(g.default_action.as_str());
            let mut services = ArrayOfTables::new();
            for s in &g.services {
                let mut st = Table::new();
                st["name"] = value(s.name.as_str());
                if let Some(p) = &s.protocol {
                    st["protocol"] = value(p.as_str());
                }
                if !s.args.is_empty() {
                    st["args"] = value(Array::from_iter(s.args.iter().map(String::as_str)));
                }
                services.push(st);
            }
            if !services.is_empty() {
                t["service"] = Item::ArrayOfTables(services);
            }
            let mut commands = ArrayOfTables::new();
            for c in &g.commands {
                let mut ct = Table::new();
                ct.decor_mut().set_prefix(comment(&c.comment));
                ct["match"] = value(c.pattern.as_str());
                ct["action"] = value(c.action.as_str());
                commands.push(ct);
            }
            if !commands.is_empty() {
                t["command"] = Item::ArrayOfTables(commands);
            }
            groups.push(t);
        }
        doc["group"] = Item::ArrayOfTables(groups);

        let mut users = ArrayOfTables::new();
        for u in &self.users {
            let mut t = Table::new();
            t.decor_mut().set_prefix(format!("\n{}", comment(&u.comment)));
            t["name"] = value(u.name.as_str());
            let hashed = |p: &Password| match p {
                Password::Hash(h) => Ok(h.clone()),
                Password::Clear(s) => hash(s.0.as_bytes()),
            };
            if let Some(p) = &u.password {
                t["password"] = value(hashed(p)?);
            }
            if let Some(s) = &u.chap_secret {
                t["chap_secret"] = value(s.0.as_str());
            }
            if let Some(p) = &u.enable {
                t["enable"] = value(hashed(p)?);
            }
            t["groups"] = value(Array::from_iter(u.groups.iter().map(String::as_str)));
            users.push(t);
        }
        doc["user"] = Item::ArrayOfTables(users);

        let header = format!(
            "{}{}{}\n",
            comment(&format!(
                "Translated from {} ({}) by `tacvs import`.",
                self.source,
                self.dialect.name()
            )),
            comment(
                "Read the import report before using it; `tacvs check` this file after every edit."
            ),
            comment(
                "It holds the devices' keys and CHAP secrets in clear text: keep it readable by root and tacvs only."
            ),
        );
        Ok(format!("{header}{doc}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_text_cannot_escape_a_comment_or_a_string() {
        let mut o = Output::new("x\n[evil]", Dialect::Classic, &crate::Options::default());
        o.device_groups.push(DeviceGroup {
            name: "d\"\n[server]".into(),
            prefixes: vec!["0.0.0.0/0".into()],
            keys: vec![Secret("k\"]\nx=1".into())],
            comment: "line 1\n[[user]]\nname = \"root\"".into(),
        });
        let text = o.to_toml(&|_| Ok("$6$x$y".into())).unwrap();
        let parsed: toml_edit::DocumentMut = text.parse().unwrap();
        assert!(parsed.get("evil").is_none(), "{text}");
        assert!(parsed.get("user").is_none(), "{text}");
        assert_eq!(parsed["device_group"][0]["name"].as_str(), Some("d\"\n[server]"));
        assert_eq!(parsed["device_group"][0]["keys"][0].as_str(), Some("k\"]\nx=1"));
        assert!(!format!("{:?}", o.device_groups[0].keys[0]).contains('k'));
    }
}
