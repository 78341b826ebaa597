//! Authorization evaluation (RFC 8907 §6): pure, with the reason for every decision.

use std::fmt;

use tacvs_proto::{AaaRequest, Argument, AuthorStatus};

use crate::policy::{Action, Policy, User};

/// The command line an authorization asks about: `cmd` and every `cmd-arg`
/// joined by single spaces, without the `<cr>` some devices append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub String);

impl CommandLine {
    /// Build from the request's AVs; `None` when there is no non-empty `cmd`.
    pub fn from_args(args: &[Argument]) -> Option<CommandLine> {
        let cmd = args.iter().find(|a| a.name() == b"cmd")?;
        if cmd.value().is_empty() {
            return None;
        }
        let mut line = String::from_utf8_lossy(cmd.value()).into_owned();
        for a in args.iter().filter(|a| a.name() == b"cmd-arg") {
            if a.value() == b"<cr>" {
                continue;
            }
            line.push(' ');
            line.push_str(&String::from_utf8_lossy(a.value()));
        }
        Some(CommandLine(line))
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to answer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorDecision {
    /// RESPONSE status.
    pub status: AuthorStatus,
    /// AVs to return.
    pub args: Vec<Argument>,
    /// server_msg for the user.
    pub server_msg: String,
    /// The rule or fact that decided, for the log.
    pub reason: String,
}

impl AuthorDecision {
    fn fail(msg: &str, reason: String) -> Self {
        AuthorDecision {
            status: AuthorStatus::Fail,
            args: Vec::new(),
            server_msg: msg.into(),
            reason,
        }
    }
}

impl Policy {
    /// Decide an authorization REQUEST from a device of group `device_group`.
    pub fn authorize(&self, device_group: usize, req: &AaaRequest) -> AuthorDecision {
        let Some(user) = self.user(&req.user) else {
            return AuthorDecision::fail(
                "",
                format!("unknown user {:?}", String::from_utf8_lossy(&req.user)),
            );
        };
        let Some(service) =
            req.arg(b"service").map(|a| String::from_utf8_lossy(a.value()).into_owned())
        else {
            return AuthorDecision::fail(
                "no service requested",
                "request has no service AV (RFC 8907 §6.1 makes it mandatory)".into(),
            );
        };
        match CommandLine::from_args(&req.args) {
            Some(line) => self.authorize_command(device_group, user, &service, &line),
            None => self.authorize_service(user, &service, req),
        }
    }

    fn authorize_command(
        &self,
        dg: usize,
        user: &User,
        service: &str,
        line: &CommandLine,
    ) -> AuthorDecision {
        if !user.groups.iter().any(|&g| self.groups[g].services.iter().any(|s| s.name == service)) {
            return AuthorDecision::fail(
                "command authorization failed",
                format!("no group of user {:?} grants service {service:?}", user.name),
            );
        }
        for &gi in &user.groups {
            let g = &self.groups[gi];
            for idx in g.command_set.matches(&line.0).iter() {
                let rule = &g.commands[idx];
                if !rule.device_groups.is_empty() && !rule.device_groups.contains(&dg) {
                    continue;
                }
                let reason = format!(
                    "group {:?} rule {} {:?} {}",
                    g.name,
                    rule.number,
                    rule.pattern,
                    rule.action.as_str()
                );
                return decide(rule.action, reason);
            }
        }
        let (action, why) = match self.device_groups[dg].default_command_action {
            Some(a) => (a, format!("default of device group {:?}", self.device_groups[dg].name)),
            None => match user.groups.first() {
                Some(&g) => (
                    self.groups[g].default_command_action,
                    format!("default of group {:?}", self.groups[g].name),
                ),
                None => (Action::Deny, "user has no groups".into()),
            },
        };
        decide(action, format!("no rule matched; {why} is {}", action.as_str()))
    }

    fn authorize_service(&self, user: &User, service: &str, req: &AaaRequest) -> AuthorDecision {
        let protocol = req.arg(b"protocol").map(|a| a.value());
        for &gi in &user.groups {
            let g = &self.groups[gi];
            for s in &g.services {
                if s.name != service
                    || s.protocol.as_deref().is_some_and(|p| Some(p.as_bytes()) != protocol)
                {
                    continue;
                }
                let mut args = s.args.clone();
                if service == "shell"
                    && !args.iter().any(|a| a.name() == b"priv-lvl")
                    && let Ok(a) = Argument::new("priv-lvl", &g.priv_lvl.to_string(), true)
                {
                    args.insert(0, a);
                }
                let status = if s.replace { AuthorStatus::PassRepl } else { AuthorStatus::PassAdd };
                return AuthorDecision {
                    status,
                    args,
                    server_msg: String::new(),
                    reason: format!("group {:?} grants service {service:?}", g.name),
                };
            }
        }
        AuthorDecision::fail(
            "service not authorized",
            format!("no group of user {:?} grants service {service:?}", user.name),
        )
    }
}

fn decide(action: Action, reason: String) -> AuthorDecision {
    match action {
        Action::Permit => AuthorDecision {
            status: AuthorStatus::PassAdd,
            args: Vec::new(),
            server_msg: String::new(),
            reason,
        },
        Action::Deny => AuthorDecision::fail("command denied", reason),
    }
}
