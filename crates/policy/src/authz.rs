//! Authorization evaluation (RFC 8907 §6): pure, with the reason for every decision.
//!
//! What a request can and cannot do:
//!
//! - A command is the `cmd` AV and every `cmd-arg` joined by single spaces.
//!   When a request carries several non-empty `cmd` AVs (mandatory or
//!   optional), every resulting line must be permitted.
//! - A command holding a control character (CR, LF, NUL, ESC, DEL, C1), a Unicode
//!   line or paragraph separator or a bidirectional control is refused: a
//!   device could act on text a rule never saw (`show x\rconfigure ...`).
//! - Service authorization follows RFC 8907 §6.1–6.2 for the AVs the server
//!   sets itself: a *mandatory* AV in the request that disagrees with the
//!   server's value (for `priv-lvl`: above what the user's group grants) fails
//!   the request; an *optional* one that disagrees is replaced, answering
//!   PASS_REPL with the corrected list; one that agrees stands, and the server
//!   does not add a second value for it.

use std::fmt;
use std::sync::Arc;

use tacvs_proto::{AaaRequest, Argument, AuthorStatus};

use crate::policy::{Action, Policy, User};

/// The command line an authorization asks about: `cmd` and every `cmd-arg`
/// joined by single spaces, without the `<cr>` some devices append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub String);

impl CommandLine {
    /// The first command line of the request; `None` when there is no
    /// non-empty `cmd`.
    pub fn from_args(args: &[Argument]) -> Option<CommandLine> {
        let cmd = args.iter().find(|a| a.name() == b"cmd" && !a.value().is_empty())?;
        Some(Self::with_args(cmd, args))
    }

    /// Every command line of the request: one per non-empty `cmd` AV, each
    /// with all the `cmd-arg`s.
    pub fn all_from_args(args: &[Argument]) -> Vec<CommandLine> {
        args.iter()
            .filter(|a| a.name() == b"cmd" && !a.value().is_empty())
            .map(|cmd| Self::with_args(cmd, args))
            .collect()
    }

    fn with_args(cmd: &Argument, args: &[Argument]) -> CommandLine {
        let words = || args.iter().filter(|a| a.name() == b"cmd-arg" && a.value() != b"<cr>");
        // One allocation per request: the line's length is known before it
        // is built (unless bytes that are not UTF-8 widen it to U+FFFD).
        let len = cmd.value().len() + words().map(|a| 1 + a.value().len()).sum::<usize>();
        let mut line = String::with_capacity(len);
        line.push_str(&String::from_utf8_lossy(cmd.value()));
        for a in words() {
            line.push(' ');
            line.push_str(&String::from_utf8_lossy(a.value()));
        }
        CommandLine(line)
    }

    /// The first character no command may hold, if any (see [`hostile_char`]).
    pub fn hostile(&self) -> Option<char> {
        // Printable ASCII (nearly every command) holds none: no decoding.
        if self.0.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        self.0.chars().find(|&c| hostile_char(c))
    }
}

/// Whether `c` must never reach a device inside a command, nor a log line
/// raw: C0 and C1 controls and DEL, the Unicode line and paragraph separators,
/// and the characters that reorder displayed text (bidi marks, embeddings,
/// overrides and isolates; the byte-order mark).
pub fn hostile_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{feff}'
                | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `tacvs policy explain` prints: the decision and what led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The decision, as the server would answer.
    pub decision: AuthorDecision,
    /// Each group, rule and grant looked at, in order, in words.
    pub steps: Vec<String>,
}

/// Notes for an explanation; nothing (not even the text) when off, so the
/// server's path pays one branch.
struct Trace(Option<Vec<String>>);

impl Trace {
    fn note(&mut self, f: impl FnOnce() -> String) {
        if let Some(v) = &mut self.0 {
            v.push(f());
        }
    }

    /// Every rule of `g`, whether it matched the line and applies to `dg`.
    fn rules(
        &mut self,
        p: &Policy,
        g: &crate::policy::Group,
        matched: &regex::SetMatches,
        dg: usize,
    ) {
        let Some(v) = &mut self.0 else { return };
        if g.commands.is_empty() {
            v.push(format!("group {:?}: no command rules", g.name));
        }
        for (i, r) in g.commands.iter().enumerate() {
            let scope = if r.device_groups.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> =
                    r.device_groups.iter().map(|&d| &*p.device_groups[d].name).collect();
                format!(" (device groups {})", names.join(", "))
            };
            let what = match (
                matched.matched(i),
                r.device_groups.is_empty() || r.device_groups.contains(&dg),
            ) {
                (true, true) => "matches",
                (true, false) => "matches, but not for this device's group",
                (false, _) => "does not match",
            };
            v.push(format!(
                "group {:?} rule {} {:?} {}{scope}: {what}",
                g.name,
                r.number,
                r.pattern,
                r.action.as_str()
            ));
        }
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
    /// The rule or fact that decided, for the log (shared: most are made at
    /// load).
    pub reason: Arc<str>,
}

impl AuthorDecision {
    fn fail(msg: &str, reason: impl Into<Arc<str>>) -> Self {
        AuthorDecision {
            status: AuthorStatus::Fail,
            args: Vec::new(),
            server_msg: msg.into(),
            reason: reason.into(),
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
        self.authorize_as(device_group, user, req)
    }

    /// Decide for `user` (a `[[user]]` entry, or a directory user from
    /// [`Policy::directory_user`]) a REQUEST from a device of group `device_group`.
    pub fn authorize_as(
        &self,
        device_group: usize,
        user: &User,
        req: &AaaRequest,
    ) -> AuthorDecision {
        self.decide(device_group, user, req, &mut Trace(None))
    }

    /// [`authorize_as`](Self::authorize_as), with every group, rule and
    /// service grant that was looked at, in order (`tacvs policy explain`).
    pub fn explain(&self, device_group: usize, user: &User, req: &AaaRequest) -> Explanation {
        let mut t = Trace(Some(Vec::new()));
        let decision = self.decide(device_group, user, req, &mut t);
        Explanation { decision, steps: t.0.unwrap_or_default() }
    }

    fn decide(
        &self,
        device_group: usize,
        user: &User,
        req: &AaaRequest,
        t: &mut Trace,
    ) -> AuthorDecision {
        let Some(service) = req.arg(b"service").map(|a| String::from_utf8_lossy(a.value())) else {
            return AuthorDecision::fail(
                "no service requested",
                "request has no service AV (RFC 8907 §6.1 makes it mandatory)",
            );
        };
        // Every non-empty `cmd` AV makes a line; each must be permitted. The
        // common request has one: no list is built.
        let mut cmds = req.args.iter().filter(|a| a.name() == b"cmd" && !a.value().is_empty());
        let Some(first) = cmds.next() else {
            return self.authorize_service(user, &service, req, t);
        };
        let several = cmds.next().is_some();
        let mut permitted = 0;
        let mut last = None;
        for cmd in std::iter::once(first)
            .chain(req.args.iter().filter(|a| a.name() == b"cmd" && !a.value().is_empty()).skip(1))
        {
            let line = CommandLine::with_args(cmd, &req.args);
            if let Some(c) = line.hostile() {
                return AuthorDecision::fail(
                    "command denied",
                    format!("command holds the control character U+{:04X}", c as u32),
                );
            }
            t.note(|| format!("command line {:?}", line.0));
            let d = self.authorize_command(device_group, user, &service, &line, t);
            if d.status != AuthorStatus::PassAdd {
                return if several {
                    AuthorDecision { reason: format!("{:?}: {}", line.0, d.reason).into(), ..d }
                } else {
                    d
                };
            }
            permitted += 1;
            last = Some(d);
        }
        let d = last.expect("at least one line");
        if several {
            return AuthorDecision {
                reason: format!("all {permitted} cmd AVs permitted; last: {}", d.reason).into(),
                ..d
            };
        }
        d
    }

    fn authorize_command(
        &self,
        dg: usize,
        user: &User,
        service: &str,
        line: &CommandLine,
        t: &mut Trace,
    ) -> AuthorDecision {
        if !user.groups.iter().any(|&g| self.groups[g].services.iter().any(|s| s.name == service)) {
            return AuthorDecision::fail(
                "command authorization failed",
                format!("no group of user {:?} grants service {service:?}", user.name),
            );
        }
        for &gi in &user.groups {
            let g = &self.groups[gi];
            let matched = g.command_set.matches(&line.0);
            t.rules(self, g, &matched, dg);
            for idx in matched.iter() {
                let rule = &g.commands[idx];
                if !rule.device_groups.is_empty() && !rule.device_groups.contains(&dg) {
                    continue;
                }
                return decide(rule.action, rule.reason.clone());
            }
        }
        let d = &self.device_groups[dg];
        match (d.default_command_action, user.groups.first()) {
            (Some(a), _) => decide(a, d.default_reason.clone()),
            (None, Some(&g)) => {
                let g = &self.groups[g];
                decide(g.default_command_action, g.default_reason.clone())
            }
            (None, None) => {
                decide(Action::Deny, no_rule_matched("user has no groups", Action::Deny).into())
            }
        }
    }

    fn authorize_service(
        &self,
        user: &User,
        service: &str,
        req: &AaaRequest,
        t: &mut Trace,
    ) -> AuthorDecision {
        let protocol = req.arg(b"protocol").map(|a| a.value());
        for &gi in &user.groups {
            let g = &self.groups[gi];
            for s in &g.services {
                if s.name != service
                    || s.protocol.as_deref().is_some_and(|p| Some(p.as_bytes()) != protocol)
                {
                    t.note(|| {
                        format!(
                            "group {:?}: grants service {:?}{}: not this request",
                            g.name,
                            s.name,
                            s.protocol
                                .as_deref()
                                .map(|p| format!(" protocol {p:?}"))
                                .unwrap_or_default()
                        )
                    });
                    continue;
                }
                let mut args = s.args.clone();
                if service == "shell"
                    && !args.iter().any(|a| a.name() == b"priv-lvl")
                    && let Ok(a) = Argument::new("priv-lvl", &g.priv_lvl.to_string(), true)
                {
                    args.insert(0, a);
                }
                let reason = format!("group {:?} grants service {service:?}", g.name);
                return reconcile(&req.args, args, s.replace, reason);
            }
        }
        AuthorDecision::fail(
            "service not authorized",
            format!("no group of user {:?} grants service {service:?}", user.name),
        )
    }
}

/// Answer a granted service request whose AVs may overlap the server's
/// (RFC 8907 §6.1–6.2; see the module doc).
fn reconcile(
    request: &[Argument],
    server: Vec<Argument>,
    replace: bool,
    reason: String,
) -> AuthorDecision {
    // Which request AVs the server also sets; an answer only when one does
    // (the common exec request carries just `service`).
    let mut agreed: Vec<usize> = Vec::new();
    let mut substitute: Vec<(usize, usize)> = Vec::new();
    for (i, r) in request.iter().enumerate() {
        if matches!(r.name(), b"service" | b"protocol" | b"cmd" | b"cmd-arg") {
            continue;
        }
        let Some(si) = server.iter().position(|a| a.name() == r.name()) else { continue };
        if agrees(r, &server[si]) {
            agreed.push(si);
        } else if r.mandatory() {
            return AuthorDecision::fail(
                "authorization failed: a mandatory attribute is not allowed",
                format!(
                    "mandatory {} in the request conflicts with the server's {} (RFC 8907 §6.1); {reason}",
                    r, server[si]
                ),
            );
        } else {
            substitute.push((i, si));
        }
    }
    let decision = |status, args, reason: String| AuthorDecision {
        status,
        args,
        server_msg: String::new(),
        reason: reason.into(),
    };
    if replace {
        // The configured list replaces the request's, as written.
        return decision(AuthorStatus::PassRepl, server, reason);
    }
    if substitute.is_empty() {
        if agreed.is_empty() {
            return decision(AuthorStatus::PassAdd, server, reason);
        }
        // The request's value stands; do not send a second one.
        let args = server
            .into_iter()
            .enumerate()
            .filter(|(si, _)| !agreed.contains(si))
            .map(|(_, a)| a)
            .collect();
        return decision(AuthorStatus::PassAdd, args, reason);
    }
    // Optional AVs replaced: the answer must list every AV to use (PASS_REPL).
    let mut args: Vec<Argument> = request.to_vec();
    let mut replaced = Vec::new();
    for &(i, si) in &substitute {
        replaced.push(format!("{} -> {}", args[i], server[si]));
        args[i] = server[si].clone();
    }
    let used: Vec<usize> = substitute.iter().map(|&(_, si)| si).chain(agreed).collect();
    args.extend(
        server.into_iter().enumerate().filter(|(si, _)| !used.contains(si)).map(|(_, a)| a),
    );
    let reason = format!("{reason}; optional {} replaced", replaced.join(", "));
    decision(AuthorStatus::PassRepl, args, reason)
}

/// Whether a request's AV agrees with the server's value for it: `priv-lvl`
/// at or below the server's, anything else equal.
fn agrees(request: &Argument, server: &Argument) -> bool {
    if request.name() == b"priv-lvl" {
        let level = |a: &Argument| std::str::from_utf8(a.value()).ok()?.trim().parse::<u8>().ok();
        return matches!((level(request), level(server)), (Some(r), Some(s)) if r <= s);
    }
    request.value() == server.value()
}

/// The reason of a command decided by a default (`why`: which default).
pub(crate) fn no_rule_matched(why: &str, action: Action) -> String {
    format!("no rule matched; {why} is {}", action.as_str())
}

fn decide(action: Action, reason: Arc<str>) -> AuthorDecision {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The printable-ASCII shortcut finds what the full scan finds, and
        /// the line is the words joined as they were before the capacity
        /// was computed first.
        #[test]
        fn command_lines_and_their_hostile_characters(
            cmd in proptest::collection::vec(any::<u8>(), 0..12),
            words in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..10),
                    "[ -~]{0,10}".prop_map(String::into_bytes),
                    Just(b"<cr>".to_vec()),
                ],
                0..5,
            ),
            other in any::<bool>(),
        ) {
            let arg = |name: &str, v: &[u8]| {
                let mut b = name.as_bytes().to_vec();
                b.push(b'=');
                b.extend_from_slice(v);
                Argument::parse(b.into(), "test").unwrap()
            };
            let mut args: Vec<Argument> = words.iter().map(|w| arg("cmd-arg", w)).collect();
            if other {
                args.push(arg("service", b"shell"));
            }
            let line = CommandLine::with_args(&arg("cmd", &cmd), &args);
            let mut want = String::from_utf8_lossy(&cmd).into_owned();
            for w in words.iter().filter(|w| w.as_slice() != b"<cr>") {
                want.push(' ');
                want.push_str(&String::from_utf8_lossy(w));
            }
            prop_assert_eq!(&line.0, &want);
            prop_assert_eq!(line.hostile(), want.chars().find(|&c| hostile_char(c)));
        }
    }
}
