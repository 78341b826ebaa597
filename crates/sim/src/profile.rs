//! Workload profiles: what one simulated device does, request by request.
//! Built in: `automation` (a config push: login, then 50 authorized commands each
//! with its accounting record, the pattern that overloaded the original
//! servers), `interactive` (a person: login, exec, a few commands), `mixed`
//! (alternating devices). Or a TOML file with the same fields.

use std::path::Path;

use serde::Deserialize;

/// How a device uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// A new TCP connection per session (most devices).
    PerSession,
    /// One persistent single-connect connection per device.
    SingleConnect,
}

/// How a device logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Login {
    /// PAP, one exchange.
    Pap,
    /// ASCII, GETPASS and CONTINUE.
    Ascii,
}

/// A profile as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name in reports.
    pub name: String,
    /// Connection style.
    #[serde(default = "per_session")]
    pub style: Style,
    /// Login method.
    #[serde(default = "pap")]
    pub login: Login,
    /// User the device logs in as.
    #[serde(default = "user")]
    pub user: String,
    /// That user's password.
    #[serde(default = "password")]
    pub password: String,
    /// Commands authorized per session.
    #[serde(default = "fifty")]
    pub commands: usize,
    /// An accounting STOP record for each command.
    #[serde(default = "yes")]
    pub command_accounting: bool,
    /// Accounting START/STOP around the session.
    #[serde(default = "yes")]
    pub session_accounting: bool,
    /// Interim accounting WATCHDOG records per session, spread over its commands.
    #[serde(default)]
    pub watchdogs: usize,
    /// Command lines to cycle through.
    #[serde(default = "command_lines")]
    pub command_lines: Vec<String>,
    /// How often one device runs this session, per hour (for `tacvs sim plan`).
    #[serde(default = "four")]
    pub sessions_per_hour: f64,
    /// For `mixed`: odd devices run this profile instead.
    #[serde(skip)]
    pub alternate: Option<Box<Profile>>,
}

fn per_session() -> Style {
    Style::PerSession
}
fn pap() -> Login {
    Login::Pap
}
fn user() -> String {
    "alice".into()
}
fn password() -> String {
    "alice-pass".into()
}
fn fifty() -> usize {
    50
}
fn yes() -> bool {
    true
}
fn four() -> f64 {
    4.0
}
fn command_lines() -> Vec<String> {
    [
        "show version",
        "show running-config",
        "show interfaces status",
        "show ip route",
        "configure terminal",
        "interface GigabitEthernet0/1",
        "description uplink",
        "no shutdown",
        "end",
        "write memory",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One request a device sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Authenticate.
    Login,
    /// Authorize the exec shell.
    Exec,
    /// Authorize command number n.
    Command(usize),
    /// Accounting START of the session.
    AcctStart,
    /// Accounting STOP for command n.
    AcctCommand(usize),
    /// Accounting STOP of the session.
    AcctStop,
    /// An interim accounting WATCHDOG record.
    AcctWatchdog,
}

impl Profile {
    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Option<Profile> {
        let automation = Profile {
            name: "automation".into(),
            style: Style::PerSession,
            login: Login::Pap,
            user: user(),
            password: password(),
            commands: 50,
            command_accounting: true,
            session_accounting: true,
            watchdogs: 1,
            command_lines: command_lines(),
            // A config push or audit every 15 minutes.
            sessions_per_hour: 4.0,
            alternate: None,
        };
        let interactive = Profile {
            name: "interactive".into(),
            login: Login::Ascii,
            commands: 3,
            command_lines: vec![
                "show version".into(),
                "show ip interface brief".into(),
                "show logging".into(),
            ],
            sessions_per_hour: 1.0,
            ..automation.clone()
        };
        match name {
            "automation" => Some(automation),
            "interactive" => Some(interactive),
            "mixed" => Some(Profile {
                name: "mixed".into(),
                alternate: Some(Box::new(interactive)),
                ..automation
            }),
            _ => None,
        }
    }

    /// A built-in name or a TOML file.
    pub fn load(spec: &str) -> Result<Profile, String> {
        if let Some(p) = Profile::builtin(spec) {
            return Ok(p);
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "--profile {spec:?}: not a built-in (automation, interactive, \
                mixed) and not a readable file: {e}"
            )
        })?;
        Profile::parse(&path.display().to_string(), &text)
    }

    /// A profile file's text; `file` names it in errors (`file:line: what`).
    pub fn parse(file: &str, text: &str) -> Result<Profile, String> {
        let p: Profile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => format!("{file}:{l}: {}", e.message().trim()),
                None => format!("{file}: {}", e.message().trim()),
            }
        })?;
        if p.command_lines.is_empty() && p.commands > 0 {
            return Err(format!("{file}: command_lines is empty"));
        }
        Ok(p)
    }

    /// The requests of one session, in order.
    pub fn script(&self) -> Vec<Op> {
        let mut s = vec![Op::Login];
        if self.session_accounting {
            s.push(Op::Exec);
            s.push(Op::AcctStart);
        }
        // Watchdogs after evenly spaced commands (all at the end if there are none).
        let every = if self.watchdogs > 0 {
            (self.commands / (self.watchdogs + 1)).max(1)
        } else {
            usize::MAX
        };
        let mut sent = 0;
        for i in 0..self.commands {
            s.push(Op::Command(i));
            if self.command_accounting {
                s.push(Op::AcctCommand(i));
            }
            if sent < self.watchdogs && (i + 1) % every == 0 {
                s.push(Op::AcctWatchdog);
                sent += 1;
            }
        }
        s.extend(std::iter::repeat_n(Op::AcctWatchdog, self.watchdogs - sent));
        if self.session_accounting {
            s.push(Op::AcctStop);
        }
        s
    }

    /// The profile device `i` runs.
    pub fn for_device(&self, i: usize) -> &Profile {
        match (&self.alternate, self.variant(i)) {
            (Some(alt), 1) => alt,
            _ => self,
        }
    }

    /// Which profile device `i` runs: 0 this one, 1 its alternate (`mixed`: odd devices).
    pub fn variant(&self, i: usize) -> usize {
        usize::from(self.alternate.is_some() && i % 2 == 1)
    }

    /// Requests per second one device makes on average (its profile's session
    /// length × sessions per hour, averaged over alternating profiles).
    pub fn device_rate(&self) -> f64 {
        let one = |p: &Profile| p.script().len() as f64 * p.sessions_per_hour / 3600.0;
        match &self.alternate {
            Some(alt) => (one(self) + one(alt)) / 2.0,
            None => one(self),
        }
    }

    /// Requests per session, averaged over the devices' profiles.
    pub fn requests_per_session(&self) -> f64 {
        match &self.alternate {
            Some(alt) => (self.script().len() + alt.script().len()) as f64 / 2.0,
            None => self.script().len() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automation_is_login_plus_fifty_commands_with_accounting() {
        let p = Profile::builtin("automation").unwrap();
        let s = p.script();
        assert_eq!(s.len(), 1 + 2 + 100 + 1 + 1);
        assert_eq!(s.iter().filter(|o| **o == Op::AcctWatchdog).count(), 1);
        assert_eq!(s[0], Op::Login);
        assert_eq!(s[3], Op::Command(0));
        assert_eq!(s[4], Op::AcctCommand(0));
        let m = Profile::builtin("mixed").unwrap();
        assert_eq!(m.for_device(1).name, "interactive");
        assert_eq!(m.for_device(2).name, "mixed");
        assert!(Profile::load("nope-not-a-file").unwrap_err().contains("built-in"));
    }
}
