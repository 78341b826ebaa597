//! The classic tac_plus configuration grammar (tac_plus-F 4.0.4, as its
//! `config.c` reads it) into a syntax tree with source positions. What
//! tac_plus refuses (an unknown keyword, a field given twice, a `user`
//! defined twice) is refused here with the line, since such a file never ran.

use super::lex::{Lexer, Tok, Token};
use crate::model::Action;
use crate::{ImportError, Pos, syntax};

/// How a password is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    /// `cleartext "…"`.
    Cleartext,
    /// `des "…"`: crypt(3), which on glibc also reads `$1$`, `$5$`, `$6$`.
    Des,
    /// `file /etc/passwd`.
    File,
    /// `nopassword`.
    NoPassword,
    /// `PAM`.
    Pam,
    /// `skey`.
    Skey,
    /// `aceclnt` (SecurID).
    Aceclnt,
}

/// A password specification.
#[derive(Clone, PartialEq, Eq)]
pub struct Spec {
    /// How.
    pub kind: SpecKind,
    /// The text after the kind (empty for `nopassword`, `PAM`, …).
    pub value: String,
    /// Where.
    pub pos: Pos,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spec({:?}, <redacted>, {})", self.kind, self.pos)
    }
}

/// The service of a `service =` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SvcKind {
    /// `exec`: requests with `service=shell` and an empty `cmd`.
    Exec,
    /// `arap`.
    Arap,
    /// `slip`.
    Slip,
    /// `ppp protocol = …`.
    Ppp(String),
    /// Any other name.
    Named(String),
}

/// A `service = … { … }` or `cmd = … { … }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Svc {
    /// Command authorization for one command name.
    Cmd {
        /// The command (`cmd` AV), matched exactly.
        name: String,
        /// Where.
        pos: Pos,
        /// `permit`/`deny` patterns, first match wins, no match denies.
        matches: Vec<(Action, String, Pos)>,
    },
    /// Service authorization.
    Service {
        /// Which.
        kind: SvcKind,
        /// Where.
        pos: Pos,
        /// `default attribute = permit`.
        default_attribute_permit: Option<Pos>,
        /// `[optional] name = value`.
        attrs: Vec<Attr>,
    },
}

/// An attribute-value pair of a service block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// `optional`.
    pub optional: bool,
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Where.
    pub pos: Pos,
}

/// A `user` or `group`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entity {
    /// Name.
    pub name: String,
    /// Where it is declared.
    pub pos: Option<Pos>,
    /// `default service = permit|deny`.
    pub svc_default: Option<(Action, Pos)>,
    /// `login =`.
    pub login: Option<Spec>,
    /// `pap =`.
    pub pap: Option<Spec>,
    /// `chap = cleartext`.
    pub chap: Option<Spec>,
    /// `ms-chap = cleartext`.
    pub mschap: Option<Spec>,
    /// `arap = cleartext`.
    pub arap: Option<Spec>,
    /// `opap = cleartext`.
    pub opap: Option<Spec>,
    /// `global = cleartext`.
    pub global: Option<Spec>,
    /// `enable =`.
    pub enable: Option<Spec>,
    /// `acl =` (NAS address ACL for logins).
    pub acl: Option<(String, Pos)>,
    /// `enableacl =`.
    pub enableacl: Option<(String, Pos)>,
    /// `member =`.
    pub member: Option<(String, Pos)>,
    /// `expires =`.
    pub expires: Option<(String, Pos)>,
    /// `name =` (full name).
    pub full_name: Option<(String, Pos)>,
    /// `message =` / `msg =`.
    pub message: Option<Pos>,
    /// `before authorization`.
    pub before: Option<Pos>,
    /// `after authorization`.
    pub after: Option<Pos>,
    /// `maxsess =`.
    pub maxsess: Option<Pos>,
    /// Services and commands, in file order.
    pub svcs: Vec<Svc>,
}

/// A `host = … { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Name as written (an address, normally).
    pub name: String,
    /// Where.
    pub pos: Pos,
    /// `key =`.
    pub key: Option<(String, Pos)>,
    /// `prompt =`.
    pub prompt: Option<Pos>,
    /// `enable =`.
    pub enable: Option<Spec>,
}

/// An `acl = … { permit = … deny = … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Name.
    pub name: String,
    /// Where.
    pub pos: Pos,
    /// Entries over the NAS address.
    pub entries: Vec<(Action, String, Pos)>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Top-level `key =`.
    pub key: Option<(String, Pos)>,
    /// `host` blocks.
    pub hosts: Vec<Host>,
    /// `user` blocks.
    pub users: Vec<Entity>,
    /// `group` blocks.
    pub groups: Vec<Entity>,
    /// `acl` blocks.
    pub acls: Vec<Acl>,
    /// `default authentication = file …`.
    pub default_authentication: Option<Pos>,
    /// Settings with no effect on decisions (accounting, logging, limits): the
    /// keyword and where.
    pub settings: Vec<(String, Pos)>,
}

struct Parser<'a> {
    file: &'a str,
    lex: Lexer<'a>,
    peeked: Option<Token>,
    last: Pos,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<Option<&Token>, ImportError> {
        if self.peeked.is_none() {
            self.peeked = self.lex.next_token()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn next(&mut self) -> Result<Token, ImportError> {
        self.peek()?;
        match self.peeked.take() {
            Some(t) => {
                self.last = t.pos;
                Ok(t)
            }
            None => {
                Err(syntax(self.file, self.last, "the file ends in the middle of a declaration"))
            }
        }
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> ImportError {
        syntax(self.file, pos, msg)
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Pos, ImportError> {
        let t = self.next()?;
        if t.tok == want {
            Ok(t.pos)
        } else {
            Err(self.err(t.pos, format!("expected {what}, found `{}`", t.tok.text())))
        }
    }

    /// A keyword (an unquoted word).
    fn keyword(&mut self, kw: &str) -> Result<Pos, ImportError> {
        let t = self.next()?;
        match &t.tok {
            Tok::Word(w) if w == kw => Ok(t.pos),
            other => Err(self.err(t.pos, format!("expected `{kw}`, found `{}`", other.text()))),
        }
    }

    /// A value: any word or string.
    fn value(&mut self) -> Result<(String, Pos), ImportError> {
        let t = self.next()?;
        match t.tok {
            Tok::Word(w) | Tok::Str(w) => Ok((w, t.pos)),
            other => Err(self.err(t.pos, format!("expected a value, found `{}`", other.text()))),
        }
    }

    fn eq_value(&mut self) -> Result<(String, Pos), ImportError> {
        self.expect(Tok::Eq, "`=`")?;
        self.value()
    }

    fn permission(&mut self) -> Result<(Action, Pos), ImportError> {
        let t = self.next()?;
        match &t.tok {
            Tok::Word(w) if w == "permit" => Ok((Action::Permit, t.pos)),
            Tok::Word(w) if w == "deny" => Ok((Action::Deny, t.pos)),
            other => {
                Err(self.err(t.pos, format!("expected permit or deny, found `{}`", other.text())))
            }
        }
    }

    fn peek_word(&mut self) -> Result<Option<String>, ImportError> {
        Ok(match self.peek()? {
            Some(Token { tok: Tok::Word(w), .. }) => Some(w.clone()),
            _ => None,
        })
    }

    fn config(&mut self) -> Result<Config, ImportError> {
        let mut c = Config::default();
        while let Some(t) = self.peek()?.cloned() {
            let Tok::Word(kw) = &t.tok else {
                return Err(self.err(t.pos, format!("unrecognised token `{}`", t.tok.text())));
            };
            match kw.as_str() {
                "key" => {
                    self.next()?;
                    let (k, pos) = self.eq_value()?;
                    if let Some((_, first)) = &c.key {
                        return Err(self.err(
                            pos,
                            format!("key defined twice (first on line {})", first.line),
                        ));
                    }
                    c.key = Some((k, pos));
                }
                "accounting" => {
                    self.next()?;
                    match self.peek_word()?.as_deref() {
                        Some("file") => {
                            self.next()?;
                            self.eq_value()?;
                        }
                        Some("syslog") => {
                            self.next()?;
                        }
                        _ => {
                            return Err(self.err(
                                t.pos,
                                "expected `accounting file = …` or `accounting syslog`",
                            ));
                        }
                    }
                    c.settings.push(("accounting".into(), t.pos));
                }
                "default" => {
                    self.next()?;
                    self.keyword("authentication")?;
                    self.expect(Tok::Eq, "`=`")?;
                    self.keyword("file")?;
                    self.value()?;
                    if c.default_authentication.is_some() {
                        return Err(self.err(t.pos, "default authentication defined twice"));
                    }
                    c.default_authentication = Some(t.pos);
                }
                "logging" | "maxprocs" | "maxprocsperclt" | "readtimeout" | "writetimeout"
                | "accepttimeout" => {
                    self.next()?;
                    self.eq_value()?;
                    c.settings.push((kw.clone(), t.pos));
                }
                "logauthor" => {
                    self.next()?;
                    c.settings.push((kw.clone(), t.pos));
                }
                "host" => c.hosts.push(self.host()?),
                "user" => c.users.push(self.entity()?),
                "group" => c.groups.push(self.entity()?),
                "acl" => c.acls.push(self.acl()?),
                other => {
                    return Err(
                        self.err(t.pos, format!("unrecognised keyword `{other}` at the top level"))
                    );
                }
            }
        }
        Ok(c)
    }

    fn host(&mut self) -> Result<Host, ImportError> {
        self.next()?;
        let (name, pos) = self.eq_value()?;
        self.expect(Tok::Open, "`{`")?;
        let mut h = Host { name, pos, key: None, prompt: None, enable: None };
        loop {
            let t = self.next()?;
            let dup =
                |p: &Parser<'_>, what: &str| p.err(t.pos, format!("{what} given twice for host"));
            match &t.tok {
                Tok::Close => return Ok(h),
                Tok::Word(w) if w == "key" => {
                    if h.key.is_some() {
                        return Err(dup(self, "key"));
                    }
                    h.key = Some(self.eq_value()?);
                }
                Tok::Word(w) if w == "prompt" => {
                    if h.prompt.is_some() {
                        return Err(dup(self, "prompt"));
                    }
                    self.eq_value()?;
                    h.prompt = Some(t.pos);
                }
                Tok::Word(w) if w == "enable" => {
                    if h.enable.is_some() {
                        return Err(dup(self, "enable"));
                    }
                    self.expect(Tok::Eq, "`=`")?;
                    h.enable = Some(self.spec(&["cleartext", "des", "nopassword"])?);
                }
                other => {
                    return Err(self
                        .err(t.pos, format!("unrecognised keyword `{}` for host", other.text())));
                }
            }
        }
    }

    fn acl(&mut self) -> Result<Acl, ImportError> {
        self.next()?;
        let (name, pos) = self.eq_value()?;
        self.expect(Tok::Open, "`{`")?;
        let mut a = Acl { name, pos, entries: Vec::new() };
        loop {
            if matches!(self.peek()?, Some(Token { tok: Tok::Close, .. })) {
                self.next()?;
                return Ok(a);
            }
            let (action, p) = self.permission()?;
            let (re, _) = self.eq_value()?;
            a.entries.push((action, re, p));
        }
    }

    /// A password spec after `=`, one of `allowed` kinds.
    fn spec(&mut self, allowed: &[&str]) -> Result<Spec, ImportError> {
        let t = self.next()?;
        let word = match &t.tok {
            Tok::Word(w) => w.as_str(),
            other => {
                return Err(self.err(
                    t.pos,
                    format!("expected one of {}, found `{}`", allowed.join(", "), other.text()),
                ));
            }
        };
        if !allowed.contains(&word) {
            return Err(
                self.err(t.pos, format!("expected one of {}, found `{word}`", allowed.join(", ")))
            );
        }
        let (kind, takes_value) = match word {
            "cleartext" => (SpecKind::Cleartext, true),
            "des" => (SpecKind::Des, true),
            "file" => (SpecKind::File, true),
            "nopassword" => (SpecKind::NoPassword, false),
            "PAM" => (SpecKind::Pam, false),
            "skey" => (SpecKind::Skey, false),
            _ => (SpecKind::Aceclnt, false),
        };
        let value = if takes_value { self.value()?.0 } else { String::new() };
        Ok(Spec { kind, value, pos: t.pos })
    }

    fn entity(&mut self) -> Result<Entity, ImportError> {
        let kind_tok = self.next()?;
        let what = if kind_tok.tok == Tok::Word("user".into()) { "user" } else { "group" };
        let (name, pos) = self.eq_value()?;
        self.expect(Tok::Open, "`{`")?;
        let mut e = Entity { name, pos: Some(pos), ..Entity::default() };
        loop {
            let t = self.next()?;
            let kw = match &t.tok {
                Tok::Close => return Ok(e),
                Tok::Word(w) => w.clone(),
                other => {
                    return Err(self.err(
                        t.pos,
                        format!("unrecognised `{}` for {what} {:?}", other.text(), e.name),
                    ));
                }
            };
            let twice = |p: &Parser<'_>| {
                p.err(t.pos, format!("`{kw}` given twice for {what} {:?}", e.name))
            };
            macro_rules! once {
                ($field:expr, $v:expr) => {{
                    if $field.is_some() {
                        return Err(twice(self));
                    }
                    $field = Some($v);
                }};
            }
            match kw.as_str() {
                "default" => {
                    self.keyword("service")?;
                    self.expect(Tok::Eq, "`=`")?;
                    let (a, _) = self.permission()?;
                    once!(e.svc_default, (a, t.pos));
                }
                "login" => {
                    self.expect(Tok::Eq, "`=`")?;
                    let s = self.spec(&[
                        "cleartext",
                        "des",
                        "file",
                        "nopassword",
                        "PAM",
                        "skey",
                        "aceclnt",
                    ])?;
                    once!(e.login, s);
                }
                "pap" => {
                    self.expect(Tok::Eq, "`=`")?;
                    let s = self.spec(&["cleartext", "des", "file", "PAM"])?;
                    once!(e.pap, s);
                }
                "chap" | "ms-chap" | "arap" | "opap" | "global" => {
                    self.expect(Tok::Eq, "`=`")?;
                    let s = self.spec(&["cleartext"])?;
                    match kw.as_str() {
                        "chap" => once!(e.chap, s),
                        "ms-chap" => once!(e.mschap, s),
                        "arap" => once!(e.arap, s),
                        "opap" => once!(e.opap, s),
                        _ => once!(e.global, s),
                    }
                }
                "enable" => {
                    self.expect(Tok::Eq, "`=`")?;
                    let s =
                        self.spec(&["cleartext", "des", "file", "nopassword", "skey", "aceclnt"])?;
                    once!(e.enable, s);
                }
                "acl" => {
                    let v = self.eq_value()?;
                    once!(e.acl, v);
                }
                "enableacl" => {
                    let v = self.eq_value()?;
                    once!(e.enableacl, v);
                }
                "member" => {
                    let v = self.eq_value()?;
                    once!(e.member, v);
                }
                "expires" => {
                    let v = self.eq_value()?;
                    once!(e.expires, v);
                }
                "name" => {
                    let v = self.eq_value()?;
                    once!(e.full_name, v);
                }
                "message" | "msg" => {
                    self.eq_value()?;
                    once!(e.message, t.pos);
                }
                "maxsess" => {
                    self.eq_value()?;
                    once!(e.maxsess, t.pos);
                }
                "before" | "after" => {
                    self.keyword("authorization")?;
                    // The grammar documents `=`; tac_plus's parser takes the
                    // next token as the program. Both are read.
                    if matches!(self.peek()?, Some(Token { tok: Tok::Eq, .. })) {
                        self.next()?;
                    }
                    self.value()?;
                    if kw == "before" { e.before = Some(t.pos) } else { e.after = Some(t.pos) }
                }
                "service" => e.svcs.push(self.service(t.pos)?),
                "cmd" => e.svcs.push(self.cmd(t.pos)?),
                "password" => {
                    return Err(self.err(
                        t.pos,
                        "`password = …` is obsolete in tac_plus (it \
                        refuses it): use `login = des …`",
                    ));
                }
                other => {
                    return Err(self.err(
                        t.pos,
                        format!("unrecognised keyword `{other}` for {what} {:?}", e.name),
                    ));
                }
            }
        }
    }

    fn service(&mut self, pos: Pos) -> Result<Svc, ImportError> {
        self.expect(Tok::Eq, "`=`")?;
        let (name, _) = self.value()?;
        let kind = match name.as_str() {
            "exec" => SvcKind::Exec,
            "arap" => SvcKind::Arap,
            "slip" => SvcKind::Slip,
            "ppp" => {
                self.keyword("protocol")?;
                SvcKind::Ppp(self.eq_value()?.0)
            }
            _ => SvcKind::Named(name),
        };
        self.expect(Tok::Open, "`{`")?;
        let mut default_attribute_permit = None;
        if self.peek_word()?.as_deref() == Some("default") {
            let t = self.next()?;
            self.keyword("attribute")?;
            self.expect(Tok::Eq, "`=`")?;
            self.keyword("permit")?;
            default_attribute_permit = Some(t.pos);
        }
        let mut attrs = Vec::new();
        loop {
            let t = self.next()?;
            let (optional, name, apos) = match t.tok {
                Tok::Close => break,
                Tok::Word(w) if w == "optional" => {
                    let (n, _) = self.value()?;
                    (true, n, t.pos)
                }
                Tok::Word(w) | Tok::Str(w) => (false, w, t.pos),
                other => {
                    return Err(
                        self.err(t.pos, format!("expected an attribute, found `{}`", other.text()))
                    );
                }
            };
            let (value, _) = self.eq_value()?;
            attrs.push(Attr { optional, name, value, pos: apos });
        }
        Ok(Svc::Service { kind, pos, default_attribute_permit, attrs })
    }

    fn cmd(&mut self, pos: Pos) -> Result<Svc, ImportError> {
        let (name, _) = self.eq_value()?;
        self.expect(Tok::Open, "`{`")?;
        let mut matches = Vec::new();
        loop {
            if matches!(self.peek()?, Some(Token { tok: Tok::Close, .. })) {
                self.next()?;
                return Ok(Svc::Cmd { name, pos, matches });
            }
            let (action, p) = self.permission()?;
            let (re, _) = self.value()?;
            matches.push((action, re, p));
        }
    }
}

/// Parse a classic tac_plus configuration.
pub fn parse(file: &str, text: &str) -> Result<Config, ImportError> {
    let mut p =
        Parser { file, lex: Lexer::new(file, text), peeked: None, last: Pos { line: 1, col: 1 } };
    let c = p.config()?;
    let mut seen = std::collections::HashMap::new();
    for (kind, list) in [("user", &c.users), ("group", &c.groups)] {
        seen.clear();
        for e in list {
            let pos = e.pos.unwrap_or(Pos { line: 1, col: 1 });
            if let Some(first) = seen.insert(e.name.as_str(), pos) {
                return Err(syntax(
                    file,
                    pos,
                    format!("{kind} {:?} defined twice (first on line {})", e.name, first.line),
                ));
            }
        }
    }
    seen.clear();
    for h in &c.hosts {
        if let Some(first) = seen.insert(h.name.as_str(), h.pos) {
            return Err(syntax(
                file,
                h.pos,
                format!("host {:?} defined twice (first on line {})", h.name, first.line),
            ));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_file() {
        let c = parse(
            "t",
            r#"
key = "fleet-key"
accounting file = /var/log/tac_plus.acct
host = 10.1.1.1 { key = "host-key" prompt = "hi" }
acl = mgmt { permit = ^10\.1\. deny = .* }
group = ops {
    default service = permit
    service = exec { priv-lvl = 15 optional idletime = 30 }
    service = ppp protocol = ip { addr = 1.2.3.4 }
}
user = bob {
    login = des "abcdefghijklm"
    member = ops
    cmd = show { permit "ip" deny .* }
    before authorization "/bin/true"
}
"#,
        )
        .unwrap();
        assert_eq!(c.key.as_ref().unwrap().0, "fleet-key");
        assert_eq!(c.hosts[0].key.as_ref().unwrap().0, "host-key");
        assert_eq!(c.acls[0].entries.len(), 2);
        let ops = &c.groups[0];
        assert_eq!(ops.svc_default.unwrap().0, Action::Permit);
        assert_eq!(ops.svcs.len(), 2);
        let bob = &c.users[0];
        assert_eq!(bob.login.as_ref().unwrap().kind, SpecKind::Des);
        assert_eq!(bob.member.as_ref().unwrap().0, "ops");
        let Svc::Cmd { name, matches, .. } = &bob.svcs[0] else { panic!() };
        assert_eq!(name, "show");
        assert_eq!(matches[0], (Action::Permit, "ip".into(), Pos { line: 14, col: 18 }));
        assert!(bob.before.is_some());
        assert!(!format!("{:?}", bob.login).contains("abcdefg"));
    }

    #[test]
    fn what_tac_plus_refuses_is_refused_with_the_line() {
        for (text, want) in [
            ("user = a { login = cleartext x login = cleartext y }", "given twice"),
            ("user = a { }\nuser = a { }", "defined twice"),
            ("key = a\nkey = b", "key defined twice"),
            ("user = a { bogus = 1 }", "unrecognised keyword `bogus`"),
            ("frobnicate = 1", "unrecognised keyword"),
            ("user = a { cmd = show { maybe x } }", "permit or deny"),
            ("user = a {", "ends in the middle"),
            ("user = a { password = x }", "obsolete"),
        ] {
            let e = parse("t", text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with("t:"), "{e}");
        }
    }
}
