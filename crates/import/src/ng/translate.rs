//! tac_plus-ng's meaning carried into tacvs's model.
//!
//! tac_plus-ng authorizes a request by finding the user's profile (the
//! user's own `profile`, else the first enabled `ruleset` rule whose script
//! ends in `permit`, with the `profile = …` it set; a `deny`, or no rule
//! deciding, refuses everything) and running the profile's script: the first
//! `permit` or `deny` reached decides, with the AVs `set` on the way; a script
//! that ends without one refuses.
//!
//! The translation runs those scripts with what is known about the request:
//! the user and its groups (with the groups enclosing them), the service, and
//! for commands a command line matched symbolically. A service request is
//! decided outright for each service (and `protocol`) the script names, which
//! gives tacvs's service grants. A command request is walked in order,
//! producing an ordered list of (command pattern, verdict) pairs: tacvs's
//! first-match command rules, the last unconditional verdict being the
//! group's default. Where a decision depends on something tacvs cannot test
//! (the device, the client address, the time, a negated or second command
//! pattern), the translation stops there and refuses what is left (stricter),
//! and the report says where and why.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::parse::{
    self, Cond, Config, Op, Profile, ProfileRef, Pw, PwSpec, Script, SetKind, Stmt, Var,
};
use crate::common;
use crate::model::{
    Action, Command, DeviceGroup, Group, Output, Password, STANDARD_SERVICES, Secret, Service, User,
};
use crate::regex::{Dialect, Pattern};
use crate::report::Report;
use crate::{ImportError, Options, Pos, syntax};
use ipnet::IpNet;

/// Translate a tac_plus-ng configuration.
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
        out: Output::new(file, crate::Dialect::Ng, opts),
        unanchored: 0,
        commands: false,
        bare_shell: false,
        noted: HashSet::new(),
    };
    t.skipped();
    t.devices();
    t.users()?;
    t.summary();
    let mut out = t.out;
    out.groups.sort_by_key(|g| g.name.starts_with("tac_plus-ng: "));
    Ok(out)
}

struct Translator<'a> {
    file: &'a str,
    opts: &'a Options,
    report: &'a mut Report,
    cfg: &'a Config,
    out: Output,
    unanchored: usize,
    commands: bool,
    bare_shell: bool,
    /// Profiles whose patterns were reported (a profile compiles once per user).
    noted: HashSet<String>,
}

/// What is known about the command of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmdFact {
    /// No command: exec or another service.
    Empty,
    /// A command, matched symbolically.
    Command,
    /// Not known (ruleset rules run for every request).
    Unknown,
}

/// What is known about a request while running a script.
#[derive(Debug, Clone, Copy)]
struct Facts<'a> {
    user: &'a str,
    members: &'a HashSet<String>,
    service: Option<&'a str>,
    cmd: CmdFact,
    /// `None`: unknown; `Some(None)`: no protocol AV.
    protocol: Option<Option<&'a str>>,
}

/// A condition's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    T,
    F,
    /// True exactly when the command line matches one of these patterns.
    Cmd(Vec<String>),
    /// Not decidable here.
    Unknown(Pos, String),
}

/// The end of running a script (or part of one) statically.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Flow {
    Continue,
    Permit,
    Deny,
    Return,
}

/// AVs set on the way, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Avs(Vec<(String, String, bool)>);

impl Avs {
    fn apply(&mut self, kind: SetKind, name: &str, value: &str) {
        if kind == SetKind::Set {
            self.0.retain(|(n, _, _)| n != name);
        }
        self.0.push((name.to_owned(), value.to_owned(), kind == SetKind::Optional));
    }

    fn args(&self) -> Vec<String> {
        self.0.iter().map(|(n, v, o)| format!("{n}{}{v}", if *o { '*' } else { '=' })).collect()
    }
}

/// A decided service request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decided {
    Permit(Avs),
    Refuse,
    Unsupported(Pos, String),
}

/// A command rule of the walk: a guard (`None` = every command) and a verdict.
type Walked = Vec<(Option<Vec<String>>, Action, Pos)>;

struct Unsup(Pos, String);

fn line(p: Pos) -> usize {
    p.line
}

impl<'a> Translator<'a> {
    fn skipped(&mut self) {
        for s in &self.cfg.skipped {
            if s.differs {
                self.report.differs(
                    line(s.pos),
                    format!(
                        "`{}` is not translated; decisions that depend on it may differ",
                        s.what
                    ),
                );
            } else {
                self.report.note(
                    line(s.pos),
                    format!("`{}` is not translated (no decision depends on it)", s.what),
                );
            }
        }
        for p in &self.cfg.profiles {
            if let Some(pos) = p.parent {
                self.report.differs(
                    line(pos),
                    format!(
                        "profile {:?}: `parent` is not followed; requests its script \
                        leaves undecided are refused",
                        p.name
                    ),
                );
            }
        }
    }

    fn devices(&mut self) {
        let mut seen: HashSet<IpNet> = HashSet::new();
        for (i, d) in self.cfg.devices.iter().enumerate() {
            if d.addresses.is_empty() {
                continue;
            }
            let mut keys = None;
            let mut at = Some(i);
            while let Some(j) = at {
                let dev = &self.cfg.devices[j];
                if !dev.keys.is_empty() {
                    keys = Some(&dev.keys);
                    break;
                }
                at = dev.parent;
            }
            let Some(keys) = keys else {
                self.report.differs(
                    line(d.pos),
                    format!("device {:?} has no key (nor does a device it is in); tacvs refuses its devices", d.name),
                );
                continue;
            };
            let mut prefixes = Vec::new();
            for (a, pos) in &d.addresses {
                let net = match (a.parse::<IpAddr>(), a.parse::<IpNet>()) {
                    (Ok(ip), _) => IpNet::from(ip),
                    (_, Ok(n)) => n.trunc(),
                    _ => {
                        self.report.differs(
                            line(*pos),
                            format!(
                                "device {:?}: address {a:?} is not an address or prefix \
                                tacvs reads; left out",
                                d.name
                            ),
                        );
                        continue;
                    }
                };
                if !seen.insert(net) {
                    self.report.differs(
                        line(*pos),
                        format!(
                            "device {:?}: {net} is listed by another device already; left out here",
                            d.name
                        ),
                    );
                    continue;
                }
                prefixes.push(net.to_string());
            }
            if prefixes.is_empty() {
                continue;
            }
            self.out.device_groups.push(DeviceGroup {
                name: format!("device {}", d.name),
                prefixes,
                keys: keys.iter().map(|(k, _)| Secret(k.clone())).collect(),
                comment: format!("line {}: device {}", d.pos.line, d.name),
            });
        }
        if self.out.device_groups.is_empty() {
            self.report
                .differs(0, "no device with an address and a key: tacvs will refuse every device");
        }
    }

    fn members(&self, u: &parse::User) -> Result<HashSet<String>, ImportError> {
        let parents: HashMap<&str, Option<&str>> =
            self.cfg.groups.iter().map(|g| (g.name.as_str(), g.parent.as_deref())).collect();
        let mut set = HashSet::new();
        for (g, pos) in &u.members {
            if !parents.contains_key(g.as_str()) {
                return Err(syntax(
                    self.file,
                    *pos,
                    format!("group {g:?} is not defined (tac_plus-ng refuses this file)"),
                ));
            }
            let mut at = Some(g.as_str());
            while let Some(name) = at {
                if !set.insert(name.to_owned()) {
                    break;
                }
                at = parents.get(name).copied().flatten();
            }
        }
        Ok(set)
    }

    fn users(&mut self) -> Result<(), ImportError> {
        let mut rule_reported: HashSet<usize> = HashSet::new();
        for u in &self.cfg.users {
            let members = self.members(u)?;
            let facts = Facts {
                user: &u.name,
                members: &members,
                service: None,
                cmd: CmdFact::Unknown,
                protocol: None,
            };
            let profile: Option<&Profile> = match &u.profile {
                Some(ProfileRef::Inline(p)) => Some(p),
                Some(ProfileRef::Named(name, pos)) => {
                    Some(self.cfg.profiles.iter().find(|p| &p.name == name).ok_or_else(|| {
                        syntax(
                            self.file,
                            *pos,
                            format!(
                                "profile {name:?} is not defined (tac_plus-ng refuses this file)"
                            ),
                        )
                    })?)
                }
                None => self.ruleset(u, facts, &mut rule_reported)?,
            };
            let mut groups = Vec::new();
            if let Some(p) = profile {
                groups.push(self.profile_group(p, u, &members));
            }
            let user = self.user(u, profile, groups);
            self.out.users.push(user);
        }
        Ok(())
    }

    /// The profile the ruleset gives `u`, if any.
    fn ruleset(
        &mut self,
        u: &parse::User,
        facts: Facts<'_>,
        reported: &mut HashSet<usize>,
    ) -> Result<Option<&'a Profile>, ImportError> {
        let cfg = self.cfg;
        for (i, rule) in cfg.rules.iter().enumerate() {
            if !rule.enabled {
                continue;
            }
            let stmts = match &rule.script {
                Script::None => continue,
                Script::Ok(s) => s,
                Script::Unsupported(pos, why) => {
                    if reported.insert(i) {
                        self.report.differs(
                            line(*pos),
                            format!(
                                "rule {:?} is not translated ({why}); users who reach it \
                                get no authorization",
                                rule.name
                            ),
                        );
                    }
                    self.report.differs(
                        line(u.pos),
                        format!(
                            "user {:?} reaches rule {:?}, \
                        which is not translated: no authorization",
                            u.name, rule.name
                        ),
                    );
                    return Ok(None);
                }
            };
            let mut avs = Avs::default();
            let mut profile = None;
            match run(stmts, facts, &mut avs, &mut profile) {
                Ok(Flow::Permit) => {
                    let Some((name, pos)) = profile else {
                        self.report.note(
                            line(u.pos),
                            format!(
                                "user {:?}: rule {:?} permits \
                            without a profile, so every request is \
                            refused",
                                u.name, rule.name
                            ),
                        );
                        return Ok(None);
                    };
                    return cfg.profiles.iter().find(|p| p.name == name).map(Some).ok_or_else(
                        || {
                            syntax(
                                self.file,
                                pos,
                                format!(
                                    "profile {name:?} is not \
                            defined (tac_plus-ng refuses this file)"
                                ),
                            )
                        },
                    );
                }
                Ok(Flow::Deny) => return Ok(None),
                Ok(Flow::Continue | Flow::Return) => continue,
                Err(Unsup(pos, why)) => {
                    self.report.differs(
                        line(pos),
                        format!(
                            "user {:?}: rule {:?} decides by {why}; the user gets no authorization",
                            u.name, rule.name
                        ),
                    );
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// The tacvs group for profile `p` as it applies to `u` (scripts may test
    /// the user and its groups); equal results share one group.
    fn profile_group(&mut self, p: &Profile, u: &parse::User, members: &HashSet<String>) -> String {
        let mut g = self.compile(p, u, members);
        let same = self.out.groups.iter().find(|x| {
            x.priv_lvl == g.priv_lvl
                && x.default_action == g.default_action
                && x.services == g.services
                && x.commands == g.commands
                && x.comment == g.comment
        });
        if let Some(x) = same {
            return x.name.clone();
        }
        let base = if self.out.group(&p.name).is_some() {
            format!("{} (for user {})", p.name, u.name)
        } else {
            p.name.clone()
        };
        g.name = self.out.unique_group_name(&base);
        let name = g.name.clone();
        self.out.groups.push(g);
        name
    }

    fn compile(&mut self, p: &Profile, u: &parse::User, members: &HashSet<String>) -> Group {
        let mut g = Group {
            name: String::new(),
            priv_lvl: 1,
            default_action: Action::Deny,
            services: Vec::new(),
            commands: Vec::new(),
            comment: format!("line {}: profile {}", p.pos.line, p.name),
        };
        let stmts = match &p.script {
            Script::None => return g,
            Script::Ok(s) => s,
            Script::Unsupported(pos, why) => {
                self.report.differs(
                    line(*pos),
                    format!("profile {:?}: script not translated ({why}); its users are refused everything", p.name),
                );
                return g;
            }
        };
        let base = Facts {
            user: &u.name,
            members,
            service: None,
            cmd: CmdFact::Empty,
            protocol: Some(None),
        };

        // Services.
        let mut services: Vec<String> = vec!["shell".into()];
        let mut protocols: Vec<String> = Vec::new();
        literals(stmts, &mut services, &mut protocols);
        let mut dedup = HashSet::new();
        services.retain(|s| dedup.insert(s.clone()));
        for s in &services {
            let f = Facts { service: Some(s), ..base };
            let general = decide(stmts, f);
            let mut grants = Vec::new();
            let mut general_ok = true;
            for proto in &protocols {
                let d = decide(stmts, Facts { protocol: Some(Some(proto)), ..f });
                if d == general {
                    continue;
                }
                match d {
                    Decided::Permit(avs) => grants.push(Service {
                        name: s.clone(),
                        protocol: Some(proto.clone()),
                        args: avs.args(),
                    }),
                    Decided::Refuse => {
                        if matches!(general, Decided::Permit(_)) {
                            self.report.differs(
                                line(p.pos),
                                format!(
                                    "profile {:?}: service {s} is refused for protocol \
                                    {proto} but permitted for others; tacvs cannot grant a \
                                    service except for one protocol, so it is refused for \
                                    every protocol",
                                    p.name
                                ),
                            );
                            general_ok = false;
                        }
                    }
                    Decided::Unsupported(pos, why) => {
                        self.report.differs(
                            line(pos),
                            format!(
                                "profile {:?}: service {s} with \
                            protocol {proto} is decided by {why}; refused",
                                p.name
                            ),
                        );
                    }
                }
            }
            match general {
                Decided::Permit(avs) if general_ok => {
                    let args = avs.args();
                    if s == "shell" {
                        match args
                            .iter()
                            .find_map(|a| a.strip_prefix("priv-lvl="))
                            .map(str::parse::<u8>)
                        {
                            Some(Ok(v)) if v <= 15 => g.priv_lvl = v,
                            Some(_) => {}
                            None => self.bare_shell = true,
                        }
                    }
                    grants.push(Service { name: s.clone(), protocol: None, args });
                }
                Decided::Unsupported(pos, why) => {
                    self.report.differs(
                        line(pos),
                        format!("profile {:?}: service {s} is decided by {why}; refused", p.name),
                    );
                }
                _ => {}
            }
            g.services.extend(grants);
        }
        for sv in &g.services {
            if sv.args.iter().any(|a| a.parse::<tacvs_proto::Argument>().is_err()) {
                self.report.differs(
                    line(p.pos),
                    format!(
                        "profile {:?}: an AV of service {} cannot be sent by tacvs",
                        p.name, sv.name
                    ),
                );
            }
        }
        g.services.retain(|sv| sv.args.iter().all(|a| a.parse::<tacvs_proto::Argument>().is_ok()));
        let other = decide(stmts, Facts { service: Some("\u{1}any other service"), ..base });
        if let Decided::Permit(avs) = other {
            self.report.differs(
                line(p.pos),
                format!(
                    "profile {:?} permits services its script does not name; tacvs grants \
                    services by name, so it grants {} and refuses \
                    others",
                    p.name,
                    STANDARD_SERVICES.join(", ")
                ),
            );
            for s in STANDARD_SERVICES {
                if !services.iter().any(|x| x == s) {
                    g.services.push(Service {
                        name: (*s).into(),
                        protocol: None,
                        args: avs.args(),
                    });
                }
            }
        }

        // Commands.
        let f = Facts { service: Some("shell"), cmd: CmdFact::Command, ..base };
        let mut walked = Walked::new();
        let stop = walk(stmts, f, None, &mut walked, self.opts.anchor).err();
        let mut permits_some = false;
        for (guard, action, pos) in walked {
            permits_some |= action == Action::Permit;
            match guard {
                None => {
                    g.default_action = action;
                    break;
                }
                Some(patterns) => {
                    self.commands = true;
                    g.commands.push(Command {
                        pattern: patterns.join("|"),
                        action,
                        comment: format!(
                            "line {}: {} (profile {})",
                            pos.line,
                            action.as_str(),
                            p.name
                        ),
                    });
                }
            }
        }
        if let Some(Unsup(pos, why)) = stop {
            self.report.differs(
                line(pos),
                format!(
                    "profile {:?}: commands from here on are decided by {why}; tacvs refuses them",
                    p.name
                ),
            );
        }
        if permits_some && !g.services.iter().any(|s| s.name == "shell") {
            self.report.differs(
                line(p.pos),
                format!(
                    "profile {:?} permits commands but not exec; tacvs authorizes commands \
                    only for users granted the shell service, so they are refused",
                    p.name
                ),
            );
        }
        self.pattern_notes(stmts, p);
        g
    }

    /// Report items for the command patterns of a script, once each.
    fn pattern_notes(&mut self, stmts: &[Stmt], p: &Profile) {
        if !self.noted.insert(p.name.clone()) {
            return;
        }
        let mut pats = Vec::new();
        cmd_patterns(stmts, &mut pats);
        for (re, pos) in pats {
            let Ok(mut pat) = Pattern::parse(&re, Dialect::Pcre) else { continue };
            let had_end = pat.has_end_anchor();
            if pat.strip_trailing_cr() > 0 {
                self.report.note(
                    line(pos),
                    format!(
                        "pattern /{re}/ ends in `<cr>`, which \
                    tacvs drops from command lines: translated as the end of the line"
                    ),
                );
            } else if had_end {
                self.report.differs(
                    line(pos),
                    format!(
                        "pattern /{re}/ ends with `$`: for devices that send a `<cr>` \
                        argument (Cisco IOS) tac_plus-ng saw it at the end of the command; \
                        tacvs drops `<cr>`, so this rule now matches such commands too"
                    ),
                );
            }
            if self.opts.anchor && !pat.fully_anchored() {
                self.report.differs(
                    line(pos),
                    format!(
                        "--anchor: /{re}/ in profile {:?} now applies only when the whole \
                        command line matches it (tac_plus-ng: anywhere in it)",
                        p.name
                    ),
                );
            } else if !pat.fully_anchored() {
                self.unanchored += 1;
            }
        }
    }

    fn password(&mut self, who: &str, what: &str, pw: &Pw, login: Option<&Pw>) -> Option<Password> {
        let fix = common::fix(who);
        match &pw.spec {
            PwSpec::Clear(c) => Some(Password::Clear(Secret(c.clone()))),
            PwSpec::Crypt(h) => common::crypt(self.report, who, what, h, line(pw.pos)),
            PwSpec::Permit => {
                self.report.differs(
                    line(pw.pos),
                    format!(
                        "user {who:?}: `{what} = permit` let \
                    any password pass; tacvs always checks one, so this check fails until you \
                    {fix}"
                    ),
                );
                None
            }
            PwSpec::Deny => None,
            PwSpec::Login => match login {
                Some(l) if l.spec != PwSpec::Login => self.password(who, what, l, None),
                _ => None,
            },
            PwSpec::Mavis => {
                self.report.differs(
                    line(pw.pos),
                    format!(
                        "user {who:?}: the {what} is checked \
                    by a MAVIS backend; tacvs has none, so this check fails until you {fix}"
                    ),
                );
                None
            }
        }
    }

    fn user(
        &mut self,
        u: &parse::User,
        profile: Option<&Profile>,
        mut groups: Vec<String>,
    ) -> User {
        let who = u.name.as_str();
        let login = u.login.as_ref();
        let mut password = login.and_then(|l| self.password(who, "login password", l, None));
        // PAP: `password pap = login` (or the realm's `pap password = login`)
        // is the login password; otherwise tac_plus-ng checks `pap` only.
        let pap_same = match &u.pap {
            None => self.cfg.pap_is_login,
            Some(p) => p.spec == PwSpec::Login || login.is_some_and(|l| l.spec == p.spec),
        };
        if !pap_same {
            match (&password, &u.pap) {
                (Some(_), Some(p)) => self.report.differs(
                    line(p.pos),
                    common::pap_differs(who, "tac_plus-ng", "a different `pap` password"),
                ),
                (Some(_), None) => self.report.differs(
                    line(u.pos),
                    common::pap_differs(who, "tac_plus-ng", "no password (PAP logins failed)"),
                ),
                (None, Some(p)) => {
                    password = self.password(who, "PAP password", p, login);
                    if password.is_some() {
                        self.report
                            .differs(line(p.pos), common::ascii_from_pap(who, "tac_plus-ng"));
                    }
                }
                (None, None) => {}
            }
        }
        fn clear(pw: &Option<Pw>) -> Option<(&str, usize)> {
            match pw {
                Some(Pw { spec: PwSpec::Clear(c), pos }) => Some((c.as_str(), line(*pos))),
                _ => None,
            }
        }
        let chap_secret =
            common::chap_secret(self.report, who, clear(&u.chap), clear(&u.mschap), "mschap");
        // Enable: the user's levels, then its profile's.
        let mut levels: Vec<(u8, &Pw)> = u.enable.iter().map(|(l, p)| (*l, p)).collect();
        if let Some(p) = profile {
            for (l, pw) in &p.enable {
                if !levels.iter().any(|(x, _)| x == l) {
                    levels.push((*l, pw));
                }
            }
        }
        let usable: Vec<(u8, &Pw)> =
            levels.iter().copied().filter(|(_, p)| !matches!(p.spec, PwSpec::Deny)).collect();
        let mut enable = None;
        if let Some(&(top, pw)) = usable.iter().max_by_key(|(l, _)| *l) {
            let resolve = |p: &Pw| {
                if p.spec == PwSpec::Login {
                    login.map(|l| l.spec.clone())
                } else {
                    Some(p.spec.clone())
                }
            };
            if usable.iter().any(|(_, p)| resolve(p) != resolve(pw)) {
                self.report.differs(
                    line(pw.pos),
                    format!(
                        "user {who:?}: enable passwords differ by level; tacvs has one, \
                        the level {top} one, for every level up to {top}"
                    ),
                );
            }
            enable = self.password(who, "enable password", pw, login);
            if enable.is_some() {
                self.report.note(
                    line(pw.pos),
                    format!("user {who:?}: tacvs accepts the enable password for every level up to {top}"),
                );
                groups.push(self.enable_up_to(top));
            }
        }
        let mut comment = format!("line {}: user {who}", u.pos.line);
        if password.is_none() {
            comment.push_str(": no login password (see the import report)");
        }
        User { name: u.name.clone(), password, chap_secret, enable, groups, comment }
    }

    fn enable_up_to(&mut self, level: u8) -> String {
        let name = format!("tac_plus-ng: enable up to {level}");
        if self.out.group(&name).is_none() {
            self.out.groups.push(Group {
                name: name.clone(),
                priv_lvl: level,
                default_action: Action::Deny,
                services: Vec::new(),
                commands: Vec::new(),
                comment: format!(
                    "tacvs accepts an enable password only up to the user's \
                    groups' highest priv_lvl; this group (no services, no rules) raises it to \
                    {level}"
                ),
            });
        }
        name
    }

    fn summary(&mut self) {
        if self.commands {
            self.report.note(
                0,
                "command lines: tacvs matches `cmd` and its arguments joined by spaces, \
                    without the `<cr>` argument Cisco IOS appends",
            );
        }
        if self.unanchored > 0 && !self.opts.anchor {
            self.report.note(
                0,
                format!(
                    "{} command pattern(s) are unanchored as in tac_plus-ng (they match \
                    anywhere in the line) and are written with explicit `(?s:.*)`; `--anchor` \
                    would anchor them and list each change",
                    self.unanchored
                ),
            );
        }
        if self.bare_shell {
            self.report.note(
                0,
                "exec authorizations tac_plus-ng answered without priv-lvl are \
                answered with priv-lvl=1 by tacvs, the level a device assumes when none is \
                sent",
            );
        }
        self.report.note(
            0,
            "tac_plus-ng `/…/` patterns are read as PCRE (tac_plus-ng built \
            with PCRE2, its usual build)",
        );
    }
}

/// Service and protocol values a script compares against.
fn literals(stmts: &[Stmt], services: &mut Vec<String>, protocols: &mut Vec<String>) {
    fn cond(c: &Cond, services: &mut Vec<String>, protocols: &mut Vec<String>) {
        match c {
            Cond::And(a, b) | Cond::Or(a, b) => {
                cond(a, services, protocols);
                cond(b, services, protocols);
            }
            Cond::Not(a) => cond(a, services, protocols),
            Cond::Cmp { var: Var::Service, op: Op::Eq | Op::Ne, value, .. } => {
                services.push(value.clone())
            }
            Cond::Cmp { var: Var::Protocol, op: Op::Eq | Op::Ne, value, .. } => {
                protocols.push(value.clone())
            }
            Cond::Cmp { .. } => {}
        }
    }
    for s in stmts {
        match s {
            Stmt::Block(v) => literals(v, services, protocols),
            Stmt::If { cond: c, then, els, .. } => {
                cond(c, services, protocols);
                literals(std::slice::from_ref(then), services, protocols);
                if let Some(e) = els {
                    literals(std::slice::from_ref(e), services, protocols);
                }
            }
            _ => {}
        }
    }
}

/// Command patterns (`cmd =~ /…/`) of a script.
fn cmd_patterns(stmts: &[Stmt], out: &mut Vec<(String, Pos)>) {
    fn cond(c: &Cond, out: &mut Vec<(String, Pos)>) {
        match c {
            Cond::And(a, b) | Cond::Or(a, b) => {
                cond(a, out);
                cond(b, out);
            }
            Cond::Not(a) => cond(a, out),
            Cond::Cmp { var: Var::Cmd, op: Op::Match | Op::NoMatch, value, pos } => {
                out.push((value.clone(), *pos))
            }
            Cond::Cmp { .. } => {}
        }
    }
    for s in stmts {
        match s {
            Stmt::Block(v) => cmd_patterns(v, out),
            Stmt::If { cond: c, then, els, .. } => {
                cond(c, out);
                cmd_patterns(std::slice::from_ref(then), out);
                if let Some(e) = els {
                    cmd_patterns(std::slice::from_ref(e), out);
                }
            }
            _ => {}
        }
    }
}

/// A `/…/` pattern as a whole-subject pattern, or why not.
fn whole_pattern(re: &str, pos: Pos, anchor: bool) -> Result<Option<String>, Unsup> {
    let mut p = Pattern::parse(re, Dialect::Pcre)
        .map_err(|e| Unsup(pos, format!("pattern /{re}/, which has no equivalent ({e})")))?;
    p.strip_trailing_cr();
    Ok(p.whole(anchor))
}

fn matches_text(re: &str, pos: Pos, text: &str) -> Result<bool, Unsup> {
    match whole_pattern(re, pos, false)? {
        None => Ok(false),
        Some(w) => regex::Regex::new(&format!("^(?:{w})$"))
            .map(|r| r.is_match(text))
            .map_err(|e| Unsup(pos, format!("pattern /{re}/, too large once translated ({e})"))),
    }
}

fn eval(c: &Cond, f: Facts<'_>, anchor: bool) -> V {
    let unknown = |pos: Pos, what: &str| V::Unknown(pos, what.to_owned());
    let tf = |b: bool| if b { V::T } else { V::F };
    match c {
        Cond::Not(a) => match eval(a, f, anchor) {
            V::T => V::F,
            V::F => V::T,
            V::Cmd(_) => unknown(cond_pos(a), "a negated command pattern"),
            u => u,
        },
        Cond::And(a, b) => {
            let (x, y) = (eval(a, f, anchor), eval(b, f, anchor));
            match (x, y) {
                (V::F, _) | (_, V::F) => V::F,
                (V::T, y) => y,
                (x, V::T) => x,
                (V::Cmd(_), V::Cmd(_)) => unknown(cond_pos(b), "two command patterns at once"),
                (u @ V::Unknown(..), _) | (_, u @ V::Unknown(..)) => u,
            }
        }
        Cond::Or(a, b) => {
            let (x, y) = (eval(a, f, anchor), eval(b, f, anchor));
            match (x, y) {
                (V::T, _) | (_, V::T) => V::T,
                (V::F, y) => y,
                (x, V::F) => x,
                (V::Cmd(mut p), V::Cmd(q)) => {
                    p.extend(q);
                    V::Cmd(p)
                }
                (u @ V::Unknown(..), _) | (_, u @ V::Unknown(..)) => u,
            }
        }
        Cond::Cmp { var, op, value, pos } => {
            let pos = *pos;
            // Static comparison of a known text.
            let text = |t: &str| -> V {
                match op {
                    Op::Eq => tf(t == value),
                    Op::Ne => tf(t != value),
                    Op::Match | Op::NoMatch => match matches_text(value, pos, t) {
                        Ok(m) => tf(m == (*op == Op::Match)),
                        Err(Unsup(p, w)) => V::Unknown(p, w),
                    },
                }
            };
            match var {
                Var::Service => match f.service {
                    Some(s) => text(s),
                    None => unknown(pos, "the service (in a ruleset rule)"),
                },
                Var::User => text(f.user),
                Var::Member => {
                    let any = |pred: &dyn Fn(&str) -> V| -> V {
                        let mut out = V::F;
                        for m in f.members {
                            match pred(m) {
                                V::T => return V::T,
                                u @ V::Unknown(..) => out = u,
                                _ => {}
                            }
                        }
                        out
                    };
                    match op {
                        Op::Eq => tf(f.members.contains(value)),
                        Op::Ne => tf(!f.members.contains(value)),
                        Op::Match => any(&|m| text_match(value, pos, m, true)),
                        Op::NoMatch => match any(&|m| text_match(value, pos, m, true)) {
                            V::T => V::F,
                            V::F => V::T,
                            u => u,
                        },
                    }
                }
                Var::Protocol => match f.protocol {
                    Some(Some(p)) => text(p),
                    Some(None) => text(""),
                    None => unknown(pos, "the protocol (in a ruleset rule)"),
                },
                Var::Cmd => match f.cmd {
                    CmdFact::Empty => text(""),
                    CmdFact::Unknown => unknown(pos, "the command (in a ruleset rule)"),
                    CmdFact::Command => match op {
                        Op::Eq if value.is_empty() => V::F,
                        Op::Ne if value.is_empty() => V::T,
                        Op::Eq => V::Cmd(vec![regex::escape(value)]),
                        Op::Match => match whole_pattern(value, pos, anchor) {
                            Ok(Some(w)) => V::Cmd(vec![w]),
                            Ok(None) => V::F,
                            Err(Unsup(p, w)) => V::Unknown(p, w),
                        },
                        Op::Ne | Op::NoMatch => unknown(pos, "a negated command pattern"),
                    },
                },
                Var::Other(name) => unknown(pos, &format!("`{name}`, which tacvs cannot test")),
            }
        }
    }
}

fn text_match(re: &str, pos: Pos, t: &str, want: bool) -> V {
    match matches_text(re, pos, t) {
        Ok(m) => {
            if m == want {
                V::T
            } else {
                V::F
            }
        }
        Err(Unsup(p, w)) => V::Unknown(p, w),
    }
}

fn cond_pos(c: &Cond) -> Pos {
    match c {
        Cond::And(a, _) | Cond::Or(a, _) | Cond::Not(a) => cond_pos(a),
        Cond::Cmp { pos, .. } => *pos,
    }
}

/// Run statements with every condition decided.
fn run(
    stmts: &[Stmt],
    f: Facts<'_>,
    avs: &mut Avs,
    profile: &mut Option<(String, Pos)>,
) -> Result<Flow, Unsup> {
    for s in stmts {
        let flow = match s {
            Stmt::Block(v) => run(v, f, avs, profile)?,
            Stmt::If { cond, then, els, .. } => match eval(cond, f, false) {
                V::T => run(std::slice::from_ref(then), f, avs, profile)?,
                V::F => match els {
                    Some(e) => run(std::slice::from_ref(e), f, avs, profile)?,
                    None => Flow::Continue,
                },
                V::Cmd(_) => return Err(Unsup(cond_pos(cond), "the command".into())),
                V::Unknown(pos, why) => return Err(Unsup(pos, why)),
            },
            Stmt::Permit(_) => Flow::Permit,
            Stmt::Deny(_) => Flow::Deny,
            Stmt::Return(_) => Flow::Return,
            Stmt::Set { kind, name, value, .. } => {
                avs.apply(*kind, name, value);
                Flow::Continue
            }
            Stmt::Profile(name, pos) => {
                *profile = Some((name.clone(), *pos));
                Flow::Continue
            }
            Stmt::Ignored(_) => Flow::Continue,
        };
        if flow != Flow::Continue {
            return Ok(flow);
        }
    }
    Ok(Flow::Continue)
}

/// Decide a service request.
fn decide(stmts: &[Stmt], f: Facts<'_>) -> Decided {
    let mut avs = Avs::default();
    let mut profile = None;
    match run(stmts, f, &mut avs, &mut profile) {
        Ok(Flow::Permit) => Decided::Permit(avs),
        Ok(_) => Decided::Refuse,
        Err(Unsup(pos, why)) => Decided::Unsupported(pos, why),
    }
}

/// Walk statements for a command request, appending (guard, verdict) rules in
/// order. Returns whether every path through `stmts` under `guard` ends in a
/// verdict; an `Err` stops the translation at that statement.
fn walk(
    stmts: &[Stmt],
    f: Facts<'_>,
    guard: Option<&Vec<String>>,
    out: &mut Walked,
    anchor: bool,
) -> Result<bool, Unsup> {
    for s in stmts {
        let ended = match s {
            Stmt::Block(v) => walk(v, f, guard, out, anchor)?,
            Stmt::If { cond, then, els, .. } => match eval(cond, f, anchor) {
                V::T => walk(std::slice::from_ref(then), f, guard, out, anchor)?,
                V::F => match els {
                    Some(e) => walk(std::slice::from_ref(e), f, guard, out, anchor)?,
                    None => false,
                },
                V::Cmd(p) => {
                    if guard.is_some() {
                        return Err(Unsup(
                            cond_pos(cond),
                            "a command pattern inside another".into(),
                        ));
                    }
                    if let Some(e) = els
                        && has_verdict(e)
                    {
                        return Err(Unsup(
                            cond_pos(cond),
                            "the `else` of a command pattern".into(),
                        ));
                    }
                    walk(std::slice::from_ref(then), f, Some(&p), out, anchor)?;
                    false
                }
                V::Unknown(pos, why) => return Err(Unsup(pos, why)),
            },
            Stmt::Permit(pos) => {
                out.push((guard.cloned(), Action::Permit, *pos));
                true
            }
            // No verdict refuses, like `deny`.
            Stmt::Deny(pos) | Stmt::Return(pos) => {
                out.push((guard.cloned(), Action::Deny, *pos));
                true
            }
            Stmt::Set { .. } | Stmt::Profile(..) | Stmt::Ignored(_) => false,
        };
        if ended {
            return Ok(true);
        }
    }
    Ok(false)
}

fn has_verdict(s: &Stmt) -> bool {
    match s {
        Stmt::Permit(_) | Stmt::Deny(_) | Stmt::Return(_) => true,
        Stmt::Block(v) => v.iter().any(has_verdict),
        Stmt::If { then, els, .. } => has_verdict(then) || els.as_deref().is_some_and(has_verdict),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn ng(body: &str, anchor: bool) -> (Output, Report) {
        let text = format!(
            "id = tac_plus-ng {{\n device all {{ address = 0.0.0.0/0 key = k }}\n group g\n{body}\n}}\n"
        );
        let mut r = Report::new("t.cfg");
        let opts = Options { anchor, ..Options::default() };
        let o = translate("t.cfg", &text, &opts, &mut r).unwrap();
        (o, r)
    }

    fn differs(r: &Report) -> Vec<String> {
        r.items.iter().filter(|i| i.severity == Severity::Differs).map(|i| i.text.clone()).collect()
    }

    #[test]
    fn a_device_condition_stops_the_translation_and_refuses_the_rest() {
        let (o, r) = ng(
            r#"profile p { script { if (service == shell) {
                if (cmd == "") permit
                if (cmd =~ /^show/) permit
                if (device == core) permit
                permit } } }
               user u { password login = clear x profile = p }"#,
            false,
        );
        let g = o.group("p").unwrap();
        assert_eq!(g.commands.len(), 1, "{g:?}");
        assert_eq!(g.default_action, Action::Deny);
        assert!(differs(&r).iter().any(|d| d.contains("`device`")), "{r}");
    }

    #[test]
    fn else_and_nested_patterns_are_refused_not_guessed() {
        let (o, r) = ng(
            r#"profile p { script { if (service == shell) {
                if (cmd == "") permit
                if (cmd =~ /^show/) { if (cmd =~ /run/) deny permit }
                permit } } }
               user u { password login = clear x profile = p }"#,
            false,
        );
        let g = o.group("p").unwrap();
        assert!(g.commands.is_empty() && g.default_action == Action::Deny, "{g:?}");
        assert!(differs(&r).iter().any(|d| d.contains("inside another")), "{r}");
        let (o, r) = ng(
            r#"profile p { script { if (service == shell) {
                if (cmd =~ /^show/) permit else deny
                permit } } }
               user u { password login = clear x profile = p }"#,
            false,
        );
        assert!(o.group("p").unwrap().commands.is_empty());
        assert!(differs(&r).iter().any(|d| d.contains("`else`")), "{r}");
    }

    #[test]
    fn the_ruleset_decides_by_membership_and_unsupported_rules_refuse() {
        let (o, r) = ng(
            r#"profile p { script { permit } }
               user a { password login = clear x member = g }
               user b { password login = clear x }
               ruleset {
                 rule one { script { if (member == g) { profile = p permit } } }
                 rule two { script { if (client == lab) { profile = p permit } } }
               }"#,
            false,
        );
        assert_eq!(o.users[0].groups.first().map(String::as_str), Some("p"));
        assert!(o.users[1].groups.is_empty());
        assert!(differs(&r).iter().any(|d| d.contains("user \"b\": rule \"two\"")), "{r}");
        // Permitting every service is reported and becomes the standard list.
        assert!(
            differs(&r).iter().any(|d| d.contains("permits services its script does not name")),
            "{r}"
        );
        assert!(o.group("p").unwrap().services.iter().any(|s| s.name == "ppp"));
    }

    #[test]
    fn anchoring_lists_each_unanchored_pattern() {
        let body = r#"profile p { script { if (service == shell) {
                if (cmd == "") permit
                if (cmd =~ /^show/) permit
                if (cmd =~ /^ping$/) permit
                deny } } }
               user u { password login = clear x profile = p }"#;
        let (o, r) = ng(body, true);
        let anchored: Vec<_> =
            differs(&r).into_iter().filter(|d| d.starts_with("--anchor")).collect();
        assert_eq!(anchored.len(), 1, "{r}");
        let re = regex::Regex::new(&format!("^(?:{})$", o.group("p").unwrap().commands[0].pattern))
            .unwrap();
        assert!(re.is_match("show") && !re.is_match("show version"));
        let (o, _) = ng(body, false);
        let re = regex::Regex::new(&format!("^(?:{})$", o.group("p").unwrap().commands[0].pattern))
            .unwrap();
        assert!(re.is_match("show version"));
    }
}
