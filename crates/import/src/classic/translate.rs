//! Classic tac_plus's meaning carried into tacvs's model.
//!
//! tac_plus (tac_plus-F `do_author.c`, `config.c`) decides for a user by
//! walking a chain: the user, the group it is a `member` of, that group's
//! group, and so on. For a command `C ARGS` the *first* entity in the chain
//! with a `cmd = C` block decides: its `permit`/`deny` patterns are searched
//! in `ARGS` in order, the first match wins and no match denies; with no such
//! block anywhere the first `default service` in the chain decides (deny when
//! none). For a service the first matching `service` block in the chain
//! answers with its AVs; exec is also permitted (without AVs) when commands
//! are configured; otherwise the default decides.
//!
//! tacvs evaluates a user's groups in order (command rules across groups, the
//! first match wins, else the first group's default; services, the first
//! group that grants one). So each tac_plus entity with authorization content
//! becomes a tacvs group holding only its own blocks; each `cmd` block ends
//! with a rule denying that command (so no later entity is consulted, as in
//! tac_plus); a group's default is the first default of the chain starting at
//! it; and a user lists its chain in order, followed by groups standing for
//! tac_plus's implicit grants (exec when commands are configured, every
//! service under `default service = permit`) and for enable at any level.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::parse::{self, Config, Entity, Spec, SpecKind, Svc, SvcKind};
use crate::common;
use crate::model::{
    Action, Command, DeviceGroup, Group, Output, Password, STANDARD_SERVICES, Secret, Service, User,
};
use crate::regex::{Dialect, Pattern};
use crate::report::Report;
use crate::{ImportError, Options, Pos, syntax};
use ipnet::IpNet;

/// Translate a classic tac_plus configuration.
pub fn translate(
    file: &str,
    text: &str,
    opts: &Options,
    report: &mut Report,
) -> Result<Output, ImportError> {
    let cfg = parse::parse(file, text)?;
    let mut t = Translator {
        file,
        opts,
        report,
        cfg: &cfg,
        out: Output::new(file, crate::Dialect::Classic, opts),
        groups: cfg.groups.iter().map(|g| (g.name.as_str(), g)).collect(),
        entity_group: HashMap::new(),
        unanchored: 0,
        rules: 0,
        bare_shell: false,
        attrs: false,
    };
    t.settings();
    t.devices();
    t.users()?;
    t.summary();
    let mut out = t.out;
    // The groups standing for tac_plus's implicit behaviour go last.
    out.groups.sort_by_key(|g| g.name.starts_with("tac_plus: "));
    Ok(out)
}

struct Translator<'a> {
    file: &'a str,
    opts: &'a Options,
    report: &'a mut Report,
    cfg: &'a Config,
    out: Output,
    groups: HashMap<&'a str, &'a Entity>,
    /// tacvs group name of each translated entity (`user:` prefix for users).
    entity_group: HashMap<String, String>,
    unanchored: usize,
    rules: usize,
    bare_shell: bool,
    attrs: bool,
}

fn line(p: Pos) -> usize {
    p.line
}

impl<'a> Translator<'a> {
    fn settings(&mut self) {
        for (kw, pos) in &self.cfg.settings {
            let what = match kw.as_str() {
                "accounting" => format!(
                    "`accounting`: tacvs writes its own journal (JSON Lines, fsync'd before \
                        SUCCESS) under {}/acct; add [accounting.syslog] to forward records",
                    self.opts.state_dir.trim_end_matches('/')
                ),
                "logging" => "`logging`: tacvs logs to standard error (journald under systemd)".into(),
                "logauthor" => "`logauthor`: tacvs logs every authorization decision with the rule that made it".into(),
                other => format!("`{other}`: tacvs has its own limits ([limits]); not translated"),
            };
            self.report.note(line(*pos), what);
        }
        if let Some(p) = self.cfg.default_authentication {
            self.report.differs(
                line(p),
                "`default authentication = file …`: tac_plus checked users without a password \
                    here (and unknown users) against a passwd file; tacvs has no such backend \
                    and refuses them",
            );
        }
        for a in &self.cfg.acls {
            let used = self.cfg.users.iter().chain(&self.cfg.groups).any(|e| {
                e.acl.as_ref().is_some_and(|x| x.0 == a.name)
                    || e.enableacl.as_ref().is_some_and(|x| x.0 == a.name)
            });
            if !used {
                self.report.note(
                    line(a.pos),
                    format!("acl {:?} is used by no user or group; left out", a.name),
                );
            }
        }
    }

    fn devices(&mut self) {
        let mut seen: HashSet<IpNet> = HashSet::new();
        if let Some((key, pos)) = &self.cfg.key {
            let prefixes = ["0.0.0.0/0", "::/0"];
            seen.extend(prefixes.iter().filter_map(|p| p.parse::<IpNet>().ok()));
            self.out.device_groups.push(DeviceGroup {
                name: "tac_plus key (every device)".into(),
                prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
                keys: vec![Secret(key.clone())],
                comment: format!(
                    "line {}: key (devices without a host entry of their own)",
                    pos.line
                ),
            });
        } else {
            self.report.differs(
                0,
                "no top-level `key`: tac_plus served devices without a host key unencrypted; \
                    tacvs serves only the hosts listed with a key",
            );
        }
        for h in &self.cfg.hosts {
            if let Some(p) = h.prompt {
                self.report.note(
                    line(p),
                    format!(
                        "host {:?}: `prompt` is not translated (tacvs sends its own prompts)",
                        h.name
                    ),
                );
            }
            if let Some(e) = &h.enable {
                self.report.differs(
                    line(e.pos),
                    format!(
                        "host {:?}: a device-wide enable password is not translated; tacvs \
                        checks each user's own `enable`",
                        h.name
                    ),
                );
            }
            let net = match (h.name.parse::<IpAddr>(), h.name.parse::<IpNet>()) {
                (Ok(ip), _) => IpNet::from(ip),
                (_, Ok(net)) => {
                    self.report.note(
                        line(h.pos),
                        format!(
                            "host {:?}: tac_plus-F matches host names as address text; \
                            read here as a prefix",
                            h.name
                        ),
                    );
                    net.trunc()
                }
                _ => {
                    self.report.note(
                        line(h.pos),
                        format!(
                            "host {:?} is not an address: tac_plus looks hosts up by the \
                            device's address text, so it never matched; left out",
                            h.name
                        ),
                    );
                    continue;
                }
            };
            let Some((key, kpos)) = &h.key else {
                if self.cfg.key.is_none() {
                    self.report.differs(
                        line(h.pos),
                        format!(
                            "host {:?} has no key and there is no top-level key: tac_plus \
                            talked to it unencrypted; tacvs refuses it",
                            h.name
                        ),
                    );
                }
                continue;
            };
            if !seen.insert(net) {
                self.report.note(
                    line(h.pos),
                    format!("host {:?}: its address is already listed; left out", h.name),
                );
                continue;
            }
            self.out.device_groups.push(DeviceGroup {
                name: format!("host {}", h.name),
                prefixes: vec![net.to_string()],
                keys: vec![Secret(key.clone())],
                comment: format!("line {}: host = {} {{ key = … }}", kpos.line, h.name),
            });
        }
    }

    /// The chain of a user: itself, then its groups through `member`.
    fn chain(&self, user: &'a Entity) -> Result<Vec<&'a Entity>, ImportError> {
        let mut chain = vec![user];
        let mut seen: HashSet<&str> = HashSet::new();
        let mut e = user;
        while let Some((name, pos)) = &e.member {
            let Some(g) = self.groups.get(name.as_str()) else {
                return Err(syntax(
                    self.file,
                    *pos,
                    format!(
                        "{:?} is a member of group {name:?}, which does not exist (tac_plus refuses this file)",
                        e.name
                    ),
                ));
            };
            if !seen.insert(name.as_str()) {
                return Err(syntax(
                    self.file,
                    *pos,
                    format!(
                        "groups are members of each other in a circle through {name:?} (tac_plus refuses this file)"
                    ),
                ));
            }
            chain.push(g);
            e = g;
        }
        Ok(chain)
    }

    fn users(&mut self) -> Result<(), ImportError> {
        let mut used_groups: HashSet<&str> = HashSet::new();
        for user in &self.cfg.users {
            let chain = self.chain(user)?;
            used_groups.extend(chain[1..].iter().map(|g| g.name.as_str()));
            let upos = user.pos.map_or(0, line);
            if user.name == "DEFAULT" {
                self.report.differs(
                    upos,
                    "user DEFAULT: tac_plus authorized (and authenticated) unknown users as \
                        DEFAULT; tacvs refuses unknown users; left out",
                );
                continue;
            }
            if user.name.starts_with("$enab") && user.name.ends_with('$') {
                self.report.differs(
                    upos,
                    format!(
                        "user {:?}: tac_plus used it for enable requests of users without \
                        an enable password of their own; tacvs checks only each user's \
                        `enable`; left out",
                        user.name
                    ),
                );
                continue;
            }
            let mut groups = Vec::new();
            for (i, e) in chain.iter().enumerate() {
                if e.svcs.is_empty() && e.svc_default.is_none() {
                    continue;
                }
                let key = if i == 0 { format!("user:{}", e.name) } else { e.name.clone() };
                let name = match self.entity_group.get(&key) {
                    Some(n) => n.clone(),
                    None => self.entity(e, &chain[i..], i == 0)?,
                };
                groups.push(name);
            }
            let dflt =
                chain.iter().find_map(|e| e.svc_default).map(|d| d.0).unwrap_or(Action::Deny);
            let has = |f: &dyn Fn(&Svc) -> bool| chain.iter().any(|e| e.svcs.iter().any(f));
            let has_cmds = has(&|s| matches!(s, Svc::Cmd { .. }));
            let has_exec = has(&|s| matches!(s, Svc::Service { kind: SvcKind::Exec, .. }));
            let has_ppp = has(&|s| matches!(s, Svc::Service { kind: SvcKind::Ppp(_), .. }));
            let has_lcp =
                has(&|s| matches!(s, Svc::Service { kind: SvcKind::Ppp(p), .. } if p == "lcp"));
            if dflt == Action::Permit {
                if let Some((e, pos)) = chain.iter().find_map(|e| e.svc_default.map(|d| (e, d.1))) {
                    let kind = if std::ptr::eq(*e, user) { "user" } else { "group" };
                    self.report.differs(
                        line(pos),
                        format!(
                            "`default service = permit` of {kind} {:?} permits every service \
                                in tac_plus; tacvs grants services by name, so {} gets {} and \
                                no other service",
                            e.name,
                            if kind == "user" { "it" } else { "each member" },
                            STANDARD_SERVICES.join(", ")
                        ),
                    );
                }
                groups.push(self.implicit_default_permit());
            } else {
                let exec = has_cmds && !has_exec;
                let lcp = has_ppp && !has_lcp;
                if exec || lcp {
                    groups.push(self.implicit(exec, lcp));
                }
            }
            let u = self.user(user, &chain, groups)?;
            self.out.users.push(u);
        }
        for g in &self.cfg.groups {
            if !used_groups.contains(g.name.as_str()) {
                self.report.note(
                    g.pos.map_or(0, line),
                    format!("group {:?} has no users; left out", g.name),
                );
            }
        }
        Ok(())
    }

    /// The tacvs group of one entity: its own services and commands, the
    /// default of the chain starting at it.
    fn entity(
        &mut self,
        e: &'a Entity,
        chain: &[&'a Entity],
        is_user: bool,
    ) -> Result<String, ImportError> {
        let key = if is_user { format!("user:{}", e.name) } else { e.name.clone() };
        let name = self.out.unique_group_name(&key);
        let default_action =
            chain.iter().find_map(|x| x.svc_default).map(|d| d.0).unwrap_or(Action::Deny);
        let mut services: Vec<Service> = Vec::new();
        let mut priv_lvl = 1u8;
        let mut commands = Vec::new();
        let mut seen_svc: HashSet<String> = HashSet::new();
        let mut seen_cmd: HashSet<&str> = HashSet::new();
        for s in &e.svcs {
            match s {
                Svc::Service { kind, pos, default_attribute_permit, attrs } => {
                    let (svc, protocol) = match kind {
                        SvcKind::Exec => ("shell".to_owned(), None),
                        SvcKind::Arap => ("arap".into(), None),
                        SvcKind::Slip => ("slip".into(), None),
                        SvcKind::Ppp(p) => ("ppp".into(), Some(p.clone())),
                        SvcKind::Named(n) if n == "shell" => {
                            self.report.note(
                                line(*pos),
                                "`service = shell` never matched in tac_plus (service=shell \
                                    requests are `service = exec` and `cmd`); left out",
                            );
                            continue;
                        }
                        SvcKind::Named(n) => (n.clone(), None),
                    };
                    let id = format!("{svc}/{}", protocol.as_deref().unwrap_or(""));
                    if !seen_svc.insert(id) {
                        self.report.note(
                            line(*pos),
                            format!(
                                "a second `service = {svc}` block \
                            in {:?}: tac_plus uses only the first; left out",
                                e.name
                            ),
                        );
                        continue;
                    }
                    if let Some(p) = default_attribute_permit {
                        self.report.differs(
                            line(*p),
                            "`default attribute = permit`: tac_plus let any AV the device sent \
                                through; tacvs answers by RFC 8907 §6.1-6.2 (a mandatory AV it \
                                does not grant fails the request)",
                        );
                    }
                    let mut args = Vec::new();
                    for a in attrs {
                        self.attrs = true;
                        let text =
                            format!("{}{}{}", a.name, if a.optional { '*' } else { '=' }, a.value);
                        if text.parse::<tacvs_proto::Argument>().is_err()
                            || a.name.contains(['=', '*'])
                        {
                            self.report.differs(
                                line(a.pos),
                                format!("AV {:?} cannot be sent by tacvs; left out", text),
                            );
                            continue;
                        }
                        if svc == "shell" && a.name == "priv-lvl" && !a.optional {
                            match a.value.trim().parse::<u8>() {
                                Ok(v) if v <= 15 => priv_lvl = v,
                                _ => self.report.note(
                                    line(a.pos),
                                    format!("priv-lvl {:?} is not 0-15; sent as written", a.value),
                                ),
                            }
                        }
                        args.push(text);
                    }
                    if svc == "shell"
                        && !args
                            .iter()
                            .any(|a| a.starts_with("priv-lvl=") || a.starts_with("priv-lvl*"))
                    {
                        self.bare_shell = true;
                    }
                    services.push(Service { name: svc, protocol, args });
                }
                Svc::Cmd { name: cmd, pos, matches } => {
                    if cmd.is_empty() {
                        self.report.note(
                            line(*pos),
                            "`cmd = \"\"` never matched (an empty cmd \
                            is exec authorization); left out",
                        );
                        continue;
                    }
                    if !seen_cmd.insert(cmd.as_str()) {
                        self.report.note(
                            line(*pos),
                            format!(
                                "a second `cmd = {cmd}` block in \
                            {:?}: tac_plus uses only the first; left out",
                                e.name
                            ),
                        );
                        continue;
                    }
                    if cmd.contains(' ') {
                        self.report.note(
                            line(*pos),
                            format!(
                                "`cmd = {cmd:?}` holds a space: tacvs matches the whole \
                                command line, so this block also applies when a device sends \
                                `{cmd}` as a command and its arguments"
                            ),
                        );
                    }
                    self.command_block(cmd, *pos, matches, &mut commands)?;
                }
            }
        }
        let comment = match e.pos {
            Some(p) if is_user => format!("line {}: user {}'s own authorization", p.line, e.name),
            Some(p) => format!("line {}: group {}", p.line, e.name),
            None => e.name.clone(),
        };
        self.out.groups.push(Group {
            name: name.clone(),
            priv_lvl,
            default_action,
            services,
            commands,
            comment,
        });
        self.entity_group.insert(key, name.clone());
        Ok(name)
    }

    fn command_block(
        &mut self,
        cmd: &str,
        pos: Pos,
        matches: &[(Action, String, Pos)],
        commands: &mut Vec<Command>,
    ) -> Result<(), ImportError> {
        let name = regex::escape(cmd);
        // The shape a translated `.*` takes, so a block ending in one needs no
        // closing rule.
        let everything = format!("{name}(?: (?:(?s:.*)))?");
        for (action, re, rpos) in matches {
            self.rules += 1;
            let src = format!("line {}: cmd = {cmd} {{ {} {re:?} }}", rpos.line, action.as_str());
            let mut p = match Pattern::parse(re, Dialect::Posix) {
                Ok(p) => p,
                Err(e) if e.invalid => {
                    return Err(syntax(
                        self.file,
                        *rpos,
                        format!("pattern {re:?}: {e}; tac_plus refuses it (regcomp fails)"),
                    ));
                }
                Err(e) => {
                    self.fail_safe(cmd, *action, *rpos, re, &e.to_string(), &everything, commands);
                    if *action == Action::Deny {
                        return Ok(());
                    }
                    continue;
                }
            };
            for n in &p.notes {
                self.report.note(line(*rpos), format!("pattern {re:?}: {n}"));
            }
            let had_end = p.has_end_anchor();
            if p.strip_trailing_cr() > 0 {
                self.report.note(
                    line(*rpos),
                    format!(
                        "pattern {re:?} ends in `<cr>`, which tacvs drops from command \
                        lines: translated as the end of the arguments"
                    ),
                );
            } else if had_end {
                self.report.differs(
                    line(*rpos),
                    format!(
                        "pattern {re:?} ends with `$`: tac_plus saw the `<cr>` argument \
                        Cisco IOS appends, so `$` never matched the end of IOS arguments; \
                        tacvs drops `<cr>`, so this rule now matches such commands too"
                    ),
                );
            }
            if p.mentions_cr() {
                self.report.differs(
                    line(*rpos),
                    format!(
                        "pattern {re:?} holds `<cr>` other than at its end; tacvs drops \
                        `<cr>` from command lines, so that part never matches"
                    ),
                );
            }
            if p.never_matches() {
                self.report.note(
                    line(*rpos),
                    format!(
                        "pattern {re:?} can never match (an \
                    anchor where no position fits); left out"
                    ),
                );
                continue;
            }
            if self.opts.anchor && !p.fully_anchored() {
                self.report.differs(
                    line(*rpos),
                    format!(
                        "--anchor: {} {re:?} now applies only when the whole argument text \
                        matches it (tac_plus: anywhere in it)",
                        action.as_str()
                    ),
                );
            } else if !p.fully_anchored() {
                self.unanchored += 1;
            }
            let args = p.whole(self.opts.anchor).unwrap_or_default();
            let empty_ok =
                regex::Regex::new(&format!("^(?:{args})$")).is_ok_and(|r| r.is_match(""));
            let pattern = format!("{name}(?: (?:{args})){}", if empty_ok { "?" } else { "" });
            if let Err(e) = regex::Regex::new(&format!("^(?:{pattern})$")) {
                self.fail_safe(
                    cmd,
                    *action,
                    *rpos,
                    re,
                    &format!("too large once translated ({e})"),
                    &everything,
                    commands,
                );
                if *action == Action::Deny {
                    return Ok(());
                }
                continue;
            }
            commands.push(Command { pattern, action: *action, comment: src });
        }
        if commands.last().is_none_or(|c| c.pattern != everything) {
            commands.push(Command {
                pattern: everything,
                action: Action::Deny,
                comment: format!(
                    "line {}: cmd = {cmd}: no pattern matched, so tac_plus denies \
                    (and consults no group)",
                    pos.line
                ),
            });
        }
        Ok(())
    }

    /// A rule with no equivalent: a deny becomes a deny of every remaining
    /// use of the command (stricter), a permit is dropped (stricter).
    #[allow(clippy::too_many_arguments)]
    fn fail_safe(
        &mut self,
        cmd: &str,
        action: Action,
        pos: Pos,
        re: &str,
        why: &str,
        everything: &str,
        commands: &mut Vec<Command>,
    ) {
        match action {
            Action::Permit => self.report.differs(
                line(pos),
                format!(
                    "permit {re:?} for `{cmd}` not translated ({why}); left out, so what \
                    it permitted falls to the next rules"
                ),
            ),
            Action::Deny => {
                self.report.differs(
                    line(pos),
                    format!(
                        "deny {re:?} for `{cmd}` not translated ({why}); every remaining \
                        `{cmd}` command is denied instead"
                    ),
                );
                commands.push(Command {
                    pattern: everything.to_owned(),
                    action: Action::Deny,
                    comment: format!(
                        "line {}: stands for deny {re:?}, which has no equivalent",
                        pos.line
                    ),
                });
            }
        }
    }

    fn implicit(&mut self, exec: bool, lcp: bool) -> String {
        let (name, what) = match (exec, lcp) {
            (true, true) => (
                "tac_plus: implicit exec and ppp lcp",
                "exec (commands are configured) and ppp lcp (ppp is configured)",
            ),
            (true, false) => ("tac_plus: implicit exec", "exec, because commands are configured"),
            _ => ("tac_plus: implicit ppp lcp", "ppp lcp, because ppp is configured"),
        };
        if self.out.group(name).is_none() {
            let mut services = Vec::new();
            if exec {
                self.bare_shell = true;
                services.push(Service { name: "shell".into(), protocol: None, args: Vec::new() });
            }
            if lcp {
                services.push(Service {
                    name: "ppp".into(),
                    protocol: Some("lcp".into()),
                    args: Vec::new(),
                });
            }
            self.out.groups.push(Group {
                name: name.into(),
                priv_lvl: 1,
                default_action: Action::Deny,
                services,
                commands: Vec::new(),
                comment: format!(
                    "tac_plus permits {what} without AVs; listed after the user's groups"
                ),
            });
        }
        name.into()
    }

    fn implicit_default_permit(&mut self) -> String {
        let name = "tac_plus: default service = permit";
        if self.out.group(name).is_none() {
            self.bare_shell = true;
            self.out.groups.push(Group {
                name: name.into(),
                priv_lvl: 1,
                default_action: Action::Permit,
                services: STANDARD_SERVICES
                    .iter()
                    .map(|s| Service { name: (*s).into(), protocol: None, args: Vec::new() })
                    .collect(),
                commands: Vec::new(),
                comment: "tac_plus's `default service = permit` for services no block names; \
                    listed after the user's groups"
                    .into(),
            });
        }
        name.into()
    }

    fn enable_any_level(&mut self) -> String {
        let name = "tac_plus: enable at any level";
        if self.out.group(name).is_none() {
            self.out.groups.push(Group {
                name: name.into(),
                priv_lvl: 15,
                default_action: Action::Deny,
                services: Vec::new(),
                commands: Vec::new(),
                comment: "tac_plus accepts a user's enable password for any level; tacvs only \
                    up to its groups' highest priv_lvl, so this group (no services, no rules) \
                    raises it to 15"
                    .into(),
            });
        }
        name.into()
    }

    /// A password spec as tacvs can hold it; `None` (with a report item) when
    /// tacvs cannot verify it. `what` names the password in messages.
    fn password(&mut self, who: &str, what: &str, s: &Spec) -> Option<Password> {
        let fix = common::fix(who);
        match s.kind {
            SpecKind::Cleartext => Some(Password::Clear(Secret(s.value.clone()))),
            SpecKind::Des => common::crypt(self.report, who, what, &s.value, line(s.pos)),
            SpecKind::NoPassword => {
                self.report.differs(
                    line(s.pos),
                    format!(
                        "user {who:?}: `nopassword` let any {what} pass in tac_plus; tacvs \
                        always checks one, so this check fails until you {fix}"
                    ),
                );
                None
            }
            SpecKind::File | SpecKind::Pam | SpecKind::Skey | SpecKind::Aceclnt => {
                let kind = match s.kind {
                    SpecKind::File => "a passwd file",
                    SpecKind::Pam => "PAM",
                    SpecKind::Skey => "S/Key",
                    _ => "SecurID (aceclnt)",
                };
                self.report.differs(
                    line(s.pos),
                    format!(
                        "user {who:?}: the {what} is checked by {kind} in tac_plus; tacvs \
                        has no such backend, so this check fails until you {fix}"
                    ),
                );
                None
            }
        }
    }

    fn user(
        &mut self,
        user: &'a Entity,
        chain: &[&'a Entity],
        mut groups: Vec<String>,
    ) -> Result<User, ImportError> {
        let who = user.name.as_str();
        let upos = user.pos.map_or(0, line);
        let resolve = |f: &dyn Fn(&'a Entity) -> Option<&'a Spec>| chain.iter().find_map(|e| f(e));
        let global = resolve(&|e| e.global.as_ref());
        let login = resolve(&|e| e.login.as_ref()).or(global);
        let pap = resolve(&|e| e.pap.as_ref()).or(global);
        let same = |a: Option<&Spec>, b: Option<&Spec>| match (a, b) {
            (Some(a), Some(b)) => a.kind == b.kind && a.value == b.value,
            (None, None) => true,
            _ => false,
        };
        // tac_plus checks ASCII logins against `login` and PAP against `pap`
        // (each falling back to `global` only); tacvs has one password for both.
        let (mut password, both) = match (login, pap) {
            (Some(l), _) if same(login, pap) => (self.password(who, "login password", l), None),
            (None, None) => (None, None),
            (Some(l), p) => {
                let at = p.map_or(line(l.pos), |p| line(p.pos));
                let had = if p.is_some() {
                    "a different `pap` password"
                } else {
                    "no password (PAP logins failed)"
                };
                let why = common::pap_differs(who, "tac_plus", had);
                (self.password(who, "login password", l), Some((at, why)))
            }
            (None, Some(p)) => {
                let why = common::ascii_from_pap(who, "tac_plus");
                (self.password(who, "PAP password", p), Some((line(p.pos), why)))
            }
        };
        // CHAP and MS-CHAP fall back to `global`, like logins (default_fn.c).
        let chap = resolve(&|e| e.chap.as_ref()).or(global);
        let mschap = resolve(&|e| e.mschap.as_ref()).or(global);
        let chap_secret = common::chap_secret(
            self.report,
            who,
            chap.map(|c| (c.value.as_str(), line(c.pos))),
            mschap.map(|m| (m.value.as_str(), line(m.pos))),
            "ms-chap",
        );
        for (spec, what) in
            [(resolve(&|e| e.arap.as_ref()), "arap"), (resolve(&|e| e.opap.as_ref()), "opap")]
        {
            if let Some(s) = spec {
                self.report.differs(
                    line(s.pos),
                    format!("user {who:?}: `{what}` is not supported by tacvs; left out"),
                );
            }
        }
        let mut enable = match resolve(&|e| e.enable.as_ref()) {
            Some(s) => self.password(who, "enable password", s),
            None => None,
        };
        if let Some((acl, pos)) = chain.iter().find_map(|e| e.acl.as_ref()) {
            if password.is_some() || enable.is_some() {
                self.report.differs(
                    line(*pos),
                    format!(
                        "user {who:?}: logins were limited to devices acl {acl:?} permits; \
                        tacvs cannot limit a user's logins by device, so the user is imported \
                        without passwords (no login anywhere) until you decide"
                    ),
                );
            }
            password = None;
            enable = None;
        }
        if let Some((acl, pos)) = chain.iter().find_map(|e| e.enableacl.as_ref())
            && enable.is_some()
        {
            self.report.differs(
                line(*pos),
                format!(
                    "user {who:?}: enable was limited to devices enableacl {acl:?} \
                    permits; tacvs cannot, so the enable password is left out (enable fails) \
                    until you decide"
                ),
            );
            enable = None;
        }
        if let Some((date, pos)) = chain.iter().find_map(|e| e.expires.as_ref()) {
            match parse_expiry(date) {
                Some(day) if day <= self.opts.today => {
                    self.report.note(
                        line(*pos),
                        format!(
                            "user {who:?} expired on {date}: tac_plus refused its logins, \
                            and it is imported without a password"
                        ),
                    );
                    password = None;
                }
                Some(_) => self.report.differs(
                    line(*pos),
                    format!(
                        "user {who:?} expires on {date}: tacvs has no expiry dates, so \
                        after it the user can still log in; remove the user then"
                    ),
                ),
                None => {
                    self.report.differs(
                        line(*pos),
                        format!(
                            "user {who:?}: expiry date {date:?} is not `Mon DD YYYY`; \
                            imported without a password to be safe"
                        ),
                    );
                    password = None;
                }
            }
        }
        for e in chain {
            if let Some(p) = e.before.or(e.after) {
                self.report.differs(
                    line(p),
                    format!(
                        "user {who:?}: `before`/`after authorization` programs of {:?} are \
                        not run by tacvs; it decides by the rules alone",
                        e.name
                    ),
                );
            }
            if let Some(p) = e.maxsess {
                self.report.differs(
                    line(p),
                    format!(
                        "user {who:?}: `maxsess` is not \
                    translated; tacvs does not limit sessions per user"
                    ),
                );
            }
            if let Some(p) = e.message {
                self.report.note(line(p), format!("user {who:?}: `message` is not translated"));
            }
        }
        // Said only when the password survives (an expired user fails both ways).
        if let (Some((at, why)), Some(_)) = (both, &password) {
            self.report.differs(at, why);
        }
        if enable.is_some() {
            groups.push(self.enable_any_level());
        }
        let mut comment = format!("line {upos}: user {who}");
        if let Some((full, _)) = &user.full_name {
            comment.push_str(&format!(" ({full})"));
        }
        if password.is_none() {
            comment.push_str(": no login password (see the import report)");
        }
        Ok(User { name: user.name.clone(), password, chap_secret, enable, groups, comment })
    }

    fn summary(&mut self) {
        if self.rules > 0 {
            self.report.note(
                0,
                "command lines: tacvs matches `cmd` and its arguments joined by spaces, \
                    without the `<cr>` argument Cisco IOS appends; each `cmd = C` block \
                    becomes rules matching `C` followed by its arguments",
            );
        }
        if self.unanchored > 0 && !self.opts.anchor {
            self.report.note(
                0,
                format!(
                    "{} pattern(s) are unanchored as in tac_plus (they match anywhere in \
                    the arguments) and are written with explicit `(?s:.*)`; `--anchor` would \
                    make them match whole arguments and list each change",
                    self.unanchored
                ),
            );
        }
        if self.bare_shell {
            self.report.note(
                0,
                "exec authorizations tac_plus answered without AVs are answered with \
                    priv-lvl=1 by tacvs, the level a device assumes when none is sent",
            );
        }
        if self.attrs {
            self.report.note(
                0,
                "AVs a device sends with exec and service requests are reconciled by tacvs's \
                    RFC 8907 §6.1-6.2 rules, which agree with tac_plus's for the usual \
                    exchanges (priv-lvl, timeouts, ACL names)",
            );
        }
    }
}

/// tac_plus's `expires = "Jan 31 2030"` as days since 1970-01-01.
fn parse_expiry(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] =
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let mut w = s.split_whitespace();
    let month = w.next()?.to_ascii_lowercase();
    let m = MONTHS.iter().position(|x| month.get(..3) == Some(*x))? as i64 + 1;
    let d: i64 = w.next()?.trim_end_matches(',').parse().ok().filter(|d| (1..=31).contains(d))?;
    let y: i64 = w.next()?.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    if w.next().is_some() {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn classic(text: &str) -> Result<(Output, Report), ImportError> {
        let mut r = Report::new("t.conf");
        let o = translate("t.conf", &format!("key = k\n{text}"), &Options::default(), &mut r)?;
        Ok((o, r))
    }

    fn differs(r: &Report) -> String {
        r.items
            .iter()
            .filter(|i| i.severity == Severity::Differs)
            .map(|i| format!("{}: {}\n", i.line, i.text))
            .collect()
    }

    #[test]
    fn what_tac_plus_refuses_to_start_with_is_an_error() {
        for (text, want) in [
            ("user = a { member = nope }", "does not exist"),
            (
                "group = x { member = y }\ngroup = y { member = x }\nuser = a { member = x }",
                "circle",
            ),
            ("user = a { cmd = show { permit \"*x\" } }", "regcomp fails"),
        ] {
            let e = classic(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn logins_limited_by_an_acl_get_no_password() {
        let (o, r) = classic(
            "acl = mgmt { permit = ^10\\. }\nuser = a { login = cleartext x enable = cleartext y acl = mgmt }",
        )
        .unwrap();
        assert!(o.users[0].password.is_none() && o.users[0].enable.is_none());
        assert!(differs(&r).contains("acl \"mgmt\""), "{r}");
    }

    #[test]
    fn special_users_are_left_out_and_said_so() {
        let (o, r) = classic(
            "user = DEFAULT { default service = permit }\nuser = $enab15$ \
                { login = cleartext e }\nuser = b { login = cleartext x }",
        )
        .unwrap();
        assert_eq!(o.users.len(), 1);
        let d = differs(&r);
        assert!(d.contains("user DEFAULT") && d.contains("$enab15$"), "{d}");
    }

    #[test]
    fn an_untranslatable_deny_denies_the_rest_of_its_command() {
        let (o, r) = classic(
            "user = a { login = cleartext x service = exec { } cmd = show { deny \"(a)\\\\1\" permit .* } }",
        )
        .unwrap();
        let g = o.group("user:a").unwrap();
        assert_eq!(g.commands.len(), 1, "{g:?}");
        assert_eq!(g.commands[0].action, Action::Deny);
        assert!(differs(&r).contains("back-reference"), "{r}");
    }

    #[test]
    fn blocks_tac_plus_never_consults_are_notes() {
        let (o, r) = classic(
            "user = a { login = cleartext x service = shell { } cmd = show { permit x } cmd = show { permit y } }",
        )
        .unwrap();
        let g = o.group("user:a").unwrap();
        assert!(g.services.is_empty());
        assert_eq!(g.commands.len(), 2, "one rule and the block's closing deny: {g:?}");
        assert!(
            r.to_string().contains("never matched")
                && r.to_string().contains("uses only the first"),
            "{r}"
        );
        assert!(!r.has_differences() || !differs(&r).contains("service = shell"), "{r}");
    }

    #[test]
    fn expiry_dates() {
        assert_eq!(parse_expiry("Jan 1 1970"), Some(0));
        assert_eq!(parse_expiry("Mar 1 2000"), Some(11_017));
        assert_eq!(parse_expiry("december 31 2099"), Some(47_481));
        assert_eq!(parse_expiry("Foo 1 2000"), None);
        assert_eq!(parse_expiry("Jan 40 2000"), None);
        assert_eq!(parse_expiry("Jan 1"), None);
    }
}
