//! tac_plus-ng configuration, the part `tacvs import` translates: devices
//! (`device`/`host` with addresses, keys and nested devices), users
//! (passwords, `member`, `profile`, `enable`), groups, profiles with `script`
//! and `enable`, and the `ruleset`. Everything else is skipped a statement at a
//! time (a statement runs to the end of its line, with any `{ … }` block it
//! opens) and recorded with its line for the report. Scripts are parsed into
//! [`Stmt`]s; a script using a construct outside the translated subset is kept
//! as [`Script::Unsupported`] with the reason, and the parser moves past it.

use super::lex::{Lexer, Tok, Token};
use crate::{ImportError, Pos, syntax};

/// Deepest nesting of script statements and conditions.
const MAX_NESTING: usize = 64;

/// A password as tac_plus-ng writes it.
#[derive(Clone, PartialEq, Eq)]
pub enum PwSpec {
    /// `clear TEXT` (and `7 TEXT`, decoded).
    Clear(String),
    /// `crypt HASH`.
    Crypt(String),
    /// `permit`: any password passes.
    Permit,
    /// `deny`: none passes.
    Deny,
    /// `login`: the login password.
    Login,
    /// `mavis`: an external backend.
    Mavis,
}

impl std::fmt::Debug for PwSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PwSpec::Clear(_) => "Clear(<redacted>)",
            PwSpec::Crypt(_) => "Crypt(<redacted>)",
            PwSpec::Permit => "Permit",
            PwSpec::Deny => "Deny",
            PwSpec::Login => "Login",
            PwSpec::Mavis => "Mavis",
        })
    }
}

/// A password and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pw {
    /// What.
    pub spec: PwSpec,
    /// Where.
    pub pos: Pos,
}

/// A device (host) and its place in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Name.
    pub name: String,
    /// Where.
    pub pos: Pos,
    /// Enclosing device (index).
    pub parent: Option<usize>,
    /// `address =` values.
    pub addresses: Vec<(String, Pos)>,
    /// `key =` values, in order.
    pub keys: Vec<(String, Pos)>,
}

/// A comparison's left side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `service`.
    Service,
    /// `cmd` (the command line).
    Cmd,
    /// `member`.
    Member,
    /// `user`.
    User,
    /// `arg[protocol]` / `protocol`.
    Protocol,
    /// Anything else (`device`, `client`, `time`, other `arg[...]`).
    Other(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `=~`.
    Match,
    /// `!~`.
    NoMatch,
}

/// A script condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Both.
    And(Box<Cond>, Box<Cond>),
    /// Either.
    Or(Box<Cond>, Box<Cond>),
    /// Not.
    Not(Box<Cond>),
    /// `VAR OP VALUE` (a pattern's text for `=~`/`!~`).
    Cmp {
        /// Left side.
        var: Var,
        /// Operator.
        op: Op,
        /// Right side.
        value: String,
        /// Where.
        pos: Pos,
    },
}

/// How an AV is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// `set`: mandatory, replacing an earlier value.
    Set,
    /// `add`: mandatory, one more value.
    Add,
    /// `optional`.
    Optional,
}

/// A script statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `{ … }`.
    Block(Vec<Stmt>),
    /// `if (…) … [else …]`.
    If {
        /// Condition.
        cond: Cond,
        /// When true.
        then: Box<Stmt>,
        /// When false.
        els: Option<Box<Stmt>>,
        /// Where.
        pos: Pos,
    },
    /// `permit`.
    Permit(Pos),
    /// `deny`.
    Deny(Pos),
    /// `return`: ends the script without a verdict.
    Return(Pos),
    /// `set|add|optional NAME = VALUE`.
    Set {
        /// How.
        kind: SetKind,
        /// Attribute.
        name: String,
        /// Value.
        value: String,
        /// Where.
        pos: Pos,
    },
    /// `profile = NAME` (rules).
    Profile(String, Pos),
    /// `message = …` and the like: no effect on decisions.
    Ignored(Pos),
}

/// A parsed script, or why it is outside the translated subset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Script {
    /// No script.
    #[default]
    None,
    /// The statements.
    Ok(Vec<Stmt>),
    /// Not translated: where and why.
    Unsupported(Pos, String),
}

impl Script {
    fn append(&mut self, next: Script) {
        *self = match (std::mem::take(self), next) {
            (Script::None, n) => n,
            (u @ Script::Unsupported(..), _) => u,
            (Script::Ok(_), u @ Script::Unsupported(..)) => u,
            (Script::Ok(mut a), Script::Ok(b)) => {
                a.extend(b);
                Script::Ok(a)
            }
            (s, Script::None) => s,
        }
    }
}

/// A profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Name (`user NAME` for an inline one).
    pub name: String,
    /// Where.
    pub pos: Pos,
    /// Its script.
    pub script: Script,
    /// `enable [N] = …`.
    pub enable: Vec<(u8, Pw)>,
    /// `parent = …` (not followed).
    pub parent: Option<Pos>,
}

/// How a user's profile is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileRef {
    /// `profile = NAME`.
    Named(String, Pos),
    /// `profile { … }`.
    Inline(Box<Profile>),
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name.
    pub name: String,
    /// Where.
    pub pos: Pos,
    /// `password login`.
    pub login: Option<Pw>,
    /// `password pap`.
    pub pap: Option<Pw>,
    /// `password chap`.
    pub chap: Option<Pw>,
    /// `password mschap`.
    pub mschap: Option<Pw>,
    /// `member =`.
    pub members: Vec<(String, Pos)>,
    /// `profile`.
    pub profile: Option<ProfileRef>,
    /// `enable [N] = …`.
    pub enable: Vec<(u8, Pw)>,
}

/// A group and the group it is declared in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDef {
    /// Name.
    pub name: String,
    /// Where.
    pub pos: Pos,
    /// Enclosing group.
    pub parent: Option<String>,
}

/// A ruleset rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Name.
    pub name: String,
    /// Where.
    pub pos: Pos,
    /// `enabled = yes`.
    pub enabled: bool,
    /// Its script.
    pub script: Script,
}

/// A construct skipped by the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its first word(s).
    pub what: String,
    /// Where.
    pub pos: Pos,
    /// Whether leaving it out can change a decision.
    pub differs: bool,
}

/// The translated subset of a tac_plus-ng file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Devices, parents before children.
    pub devices: Vec<Device>,
    /// Users.
    pub users: Vec<User>,
    /// Groups.
    pub groups: Vec<GroupDef>,
    /// Profiles.
    pub profiles: Vec<Profile>,
    /// Ruleset rules, in order.
    pub rules: Vec<Rule>,
    /// `pap password = login` was given.
    pub pap_is_login: bool,
    /// Whether an `id = tac_plus-ng` section was found.
    pub found: bool,
    /// What was skipped.
    pub skipped: Vec<Skipped>,
}

struct Parser<'a> {
    file: &'a str,
    lex: Lexer<'a>,
    peeked: Option<Token>,
    last: Pos,
    /// Braces open, counted on every token consumed.
    depth: usize,
}

/// A script construct outside the subset.
struct Unsupported(Pos, String);

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<Option<&Token>, ImportError> {
        if self.peeked.is_none() {
            self.peeked = self.lex.next_token(false)?;
        }
        Ok(self.peeked.as_ref())
    }

    fn peek_tok(&mut self) -> Result<Option<Tok>, ImportError> {
        Ok(self.peek()?.map(|t| t.tok.clone()))
    }

    fn take(&mut self, t: Token) -> Token {
        self.last = t.pos;
        match t.tok {
            Tok::Open => self.depth += 1,
            Tok::Close => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        t
    }

    fn next(&mut self) -> Result<Token, ImportError> {
        self.peek()?;
        match self.peeked.take() {
            Some(t) => Ok(self.take(t)),
            None => {
                Err(syntax(self.file, self.last, "the file ends inside a block (a `}` is missing)"))
            }
        }
    }

    /// The next token read as a `/…/` pattern where one starts.
    fn next_regex(&mut self) -> Result<Token, ImportError> {
        let t = match self.peeked.take() {
            Some(t) => Some(t),
            None => self.lex.next_token(true)?,
        };
        match t {
            Some(t) => Ok(self.take(t)),
            None => Err(syntax(self.file, self.last, "the file ends inside a condition")),
        }
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> ImportError {
        syntax(self.file, pos, msg)
    }

    fn expect(&mut self, want: Tok) -> Result<Pos, ImportError> {
        let t = self.next()?;
        if t.tok == want {
            Ok(t.pos)
        } else {
            Err(self.err(t.pos, format!("expected `{}`, found `{}`", want.text(), t.tok.text())))
        }
    }

    fn word(&mut self) -> Result<(String, Pos), ImportError> {
        let t = self.next()?;
        match t.tok {
            Tok::Word(w) | Tok::Str(w) => Ok((w, t.pos)),
            other => {
                Err(self.err(t.pos, format!("expected a name or value, found `{}`", other.text())))
            }
        }
    }

    fn optional_assign(&mut self) -> Result<(), ImportError> {
        if self.peek_tok()? == Some(Tok::Assign) {
            self.next()?;
        }
        Ok(())
    }

    /// Skip one statement: the rest of the line of `start`, and any block it
    /// opens. Stops before a `}` that closes the enclosing block.
    fn skip_statement(&mut self) -> Result<(), ImportError> {
        let base = self.depth;
        let mut first = true;
        loop {
            let Some(t) = self.peek()?.cloned() else { return Ok(()) };
            if self.depth == base && (t.tok == Tok::Close || (t.line_start && !first)) {
                return Ok(());
            }
            first = false;
            self.next()?;
        }
    }

    /// Skip to the `}` closing the block whose contents are at `depth`, and
    /// past it.
    fn skip_block_to(&mut self, depth: usize) -> Result<(), ImportError> {
        while self.depth >= depth {
            self.next()?;
        }
        Ok(())
    }

    fn skipped(
        &mut self,
        c: &mut Config,
        what: String,
        pos: Pos,
        differs: bool,
    ) -> Result<(), ImportError> {
        c.skipped.push(Skipped { what, pos, differs });
        self.skip_statement()
    }

    fn file(&mut self) -> Result<Config, ImportError> {
        let mut c = Config::default();
        while let Some(t) = self.peek()?.cloned() {
            let Tok::Word(w) = &t.tok else {
                return Err(
                    self.err(t.pos, format!("unexpected `{}` at the top level", t.tok.text()))
                );
            };
            if w == "id" {
                self.next()?;
                self.optional_assign()?;
                let (id, _) = self.word()?;
                let open = self.expect(Tok::Open)?;
                if id == "tac_plus-ng" {
                    c.found = true;
                    self.body(&mut c)?;
                } else {
                    let depth = self.depth;
                    c.skipped.push(Skipped {
                        what: format!("id = {id}"),
                        pos: open,
                        differs: false,
                    });
                    self.skip_block_to(depth)?;
                }
            } else {
                let w = w.clone();
                self.skipped(&mut c, w, t.pos, true)?;
            }
        }
        Ok(c)
    }

    fn body(&mut self, c: &mut Config) -> Result<(), ImportError> {
        loop {
            let t = self.next()?;
            let kw = match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Word(w) => w.clone(),
                other => return Err(self.err(t.pos, format!("unexpected `{}`", other.text()))),
            };
            match kw.as_str() {
                "device" | "host" => self.device(c, None, t.pos)?,
                "user" => {
                    let u = self.user(c, t.pos)?;
                    c.users.push(u);
                }
                "group" => self.group(c, None)?,
                "profile" => {
                    self.optional_assign()?;
                    let (name, pos) = self.word()?;
                    self.expect(Tok::Open)?;
                    let p = self.profile_body(c, name, pos)?;
                    c.profiles.push(p);
                }
                "ruleset" => self.ruleset(c)?,
                "pap" if self.peek_tok()? == Some(Tok::Word("password".into())) => {
                    self.next()?;
                    self.expect(Tok::Assign)?;
                    let (v, _) = self.word()?;
                    c.pap_is_login = v == "login";
                }
                // Logs and logging settings: no decision depends on them.
                "log" | "access" | "authorization" | "accounting" | "debug" | "dns" | "syslog"
                | "connection" | "context" | "warning" | "retire" | "umask" | "date" => {
                    self.skipped(c, kw, t.pos, false)?
                }
                _ => self.skipped(c, kw, t.pos, true)?,
            }
        }
    }

    fn device(
        &mut self,
        c: &mut Config,
        parent: Option<usize>,
        pos: Pos,
    ) -> Result<(), ImportError> {
        self.optional_assign()?;
        let (name, _) = self.word()?;
        self.expect(Tok::Open)?;
        let me = c.devices.len();
        c.devices.push(Device { name, pos, parent, addresses: Vec::new(), keys: Vec::new() });
        loop {
            let t = self.next()?;
            let kw = match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Word(w) => w.clone(),
                other => {
                    return Err(
                        self.err(t.pos, format!("unexpected `{}` in a device", other.text()))
                    );
                }
            };
            match kw.as_str() {
                "address" => {
                    self.expect(Tok::Assign)?;
                    loop {
                        let (a, p) = self.word()?;
                        c.devices[me].addresses.push((a, p));
                        if self.peek_tok()? != Some(Tok::Comma) {
                            break;
                        }
                        self.next()?;
                    }
                }
                "key" if self.peek_tok()? == Some(Tok::Assign) => {
                    self.next()?;
                    let k = self.word()?;
                    c.devices[me].keys.push(k);
                }
                "device" | "host" => self.device(c, Some(me), t.pos)?,
                // Banners, messages, timeouts: no decision depends on them.
                "welcome" | "motd" | "banner" | "failed" | "reject" | "message" | "timeout"
                | "idle" | "connection" | "dns" | "context" | "single-connection" | "debug"
                | "anonymous-enable" | "augmented-enable" | "hushlogin" | "password"
                | "user-message" | "fingerprint" | "tls" | "radius" => {
                    self.skipped(c, format!("device {}: {kw}", c.devices[me].name), t.pos, false)?
                }
                _ => {
                    self.skipped(c, format!("device {}: {kw}", c.devices[me].name), t.pos, true)?
                }
            }
        }
    }

    fn group(&mut self, c: &mut Config, parent: Option<String>) -> Result<(), ImportError> {
        self.optional_assign()?;
        let (name, pos) = self.word()?;
        c.groups.push(GroupDef { name: name.clone(), pos, parent });
        if self.peek_tok()? != Some(Tok::Open) {
            return Ok(());
        }
        self.next()?;
        loop {
            let t = self.next()?;
            match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Word(w) if w == "group" => self.group(c, Some(name.clone()))?,
                Tok::Word(w) => {
                    let w = w.clone();
                    self.skipped(c, format!("group {name}: {w}"), t.pos, true)?
                }
                other => {
                    return Err(
                        self.err(t.pos, format!("unexpected `{}` in a group", other.text()))
                    );
                }
            }
        }
    }

    /// After `=`: `clear X`, `crypt X`, `7 X`, `permit`, `deny`, `login`, `mavis`.
    fn pw(&mut self) -> Result<Pw, ImportError> {
        let (kind, pos) = self.word()?;
        let spec = match kind.as_str() {
            "clear" => PwSpec::Clear(self.word()?.0),
            "crypt" => PwSpec::Crypt(self.word()?.0),
            "7" => {
                let (enc, p) = self.word()?;
                PwSpec::Clear(
                    decode_type7(&enc)
                        .ok_or_else(|| self.err(p, "type 7 password is malformed"))?,
                )
            }
            "permit" => PwSpec::Permit,
            "deny" => PwSpec::Deny,
            "login" => PwSpec::Login,
            "mavis" => PwSpec::Mavis,
            other => {
                return Err(self.err(
                    pos,
                    format!(
                        "expected clear, crypt, 7, permit, deny, login or mavis, found `{other}`"
                    ),
                ));
            }
        };
        Ok(Pw { spec, pos })
    }

    fn enable(&mut self) -> Result<(u8, Pw), ImportError> {
        let mut level = 15u8;
        if let Some(Tok::Word(w)) = self.peek_tok()?
            && let Ok(n) = w.parse::<u32>()
        {
            self.next()?;
            level = n.min(15) as u8;
        }
        self.expect(Tok::Assign)?;
        Ok((level, self.pw()?))
    }

    fn user(&mut self, c: &mut Config, pos: Pos) -> Result<User, ImportError> {
        self.optional_assign()?;
        let (name, _) = self.word()?;
        self.expect(Tok::Open)?;
        let mut u = User {
            name,
            pos,
            login: None,
            pap: None,
            chap: None,
            mschap: None,
            members: Vec::new(),
            profile: None,
            enable: Vec::new(),
        };
        loop {
            let t = self.next()?;
            let kw = match &t.tok {
                Tok::Close => return Ok(u),
                Tok::Word(w) => w.clone(),
                other => {
                    return Err(self.err(
                        t.pos,
                        format!("unexpected `{}` in user {:?}", other.text(), u.name),
                    ));
                }
            };
            match kw.as_str() {
                "password" => {
                    if self.peek_tok()? == Some(Tok::Open) {
                        self.next()?;
                        while self.peek_tok()? != Some(Tok::Close) {
                            self.password_entry(&mut u)?;
                        }
                        self.next()?;
                    } else {
                        self.password_entry(&mut u)?;
                    }
                }
                "member" => {
                    self.expect(Tok::Assign)?;
                    loop {
                        u.members.push(self.word()?);
                        if self.peek_tok()? != Some(Tok::Comma) {
                            break;
                        }
                        self.next()?;
                    }
                }
                "profile" => {
                    if self.peek_tok()? == Some(Tok::Open) {
                        self.next()?;
                        let p = self.profile_body(c, format!("user {}", u.name), t.pos)?;
                        u.profile = Some(ProfileRef::Inline(Box::new(p)));
                    } else {
                        self.expect(Tok::Assign)?;
                        let (p, ppos) = self.word()?;
                        u.profile = Some(ProfileRef::Named(p, ppos));
                    }
                }
                "enable" => {
                    let e = self.enable()?;
                    u.enable.push(e);
                }
                "debug" | "hushlogin" | "message" | "alias" => {
                    self.skipped(c, format!("user {}: {kw}", u.name), t.pos, false)?
                }
                _ => self.skipped(c, format!("user {}: {kw}", u.name), t.pos, true)?,
            }
        }
    }

    fn password_entry(&mut self, u: &mut User) -> Result<(), ImportError> {
        let (which, pos) = self.word()?;
        if self.peek_tok()? == Some(Tok::Word("fallback".into())) {
            return Err(self.err(pos, "`fallback` passwords are not supported by tacvs import"));
        }
        self.expect(Tok::Assign)?;
        let pw = self.pw()?;
        let slot = match which.as_str() {
            "login" => &mut u.login,
            "pap" => &mut u.pap,
            "chap" => &mut u.chap,
            "mschap" => &mut u.mschap,
            other => return Err(self.err(pos, format!("unknown password type `{other}`"))),
        };
        *slot = Some(pw);
        Ok(())
    }

    fn profile_body(
        &mut self,
        c: &mut Config,
        name: String,
        pos: Pos,
    ) -> Result<Profile, ImportError> {
        let mut p = Profile { name, pos, script: Script::None, enable: Vec::new(), parent: None };
        loop {
            let t = self.next()?;
            let kw = match &t.tok {
                Tok::Close => return Ok(p),
                Tok::Word(w) => w.clone(),
                other => {
                    return Err(self.err(
                        t.pos,
                        format!("unexpected `{}` in profile {:?}", other.text(), p.name),
                    ));
                }
            };
            match kw.as_str() {
                "script" => {
                    let s = self.script()?;
                    p.script.append(s);
                }
                "enable" => {
                    let e = self.enable()?;
                    p.enable.push(e);
                }
                "parent" => {
                    p.parent = Some(t.pos);
                    self.skip_statement()?;
                }
                "debug" | "hushlogin" => {
                    self.skipped(c, format!("profile {}: {kw}", p.name), t.pos, false)?
                }
                _ => self.skipped(c, format!("profile {}: {kw}", p.name), t.pos, true)?,
            }
        }
    }

    fn ruleset(&mut self, c: &mut Config) -> Result<(), ImportError> {
        self.expect(Tok::Open)?;
        loop {
            let t = self.next()?;
            match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Word(w) if w == "rule" => {
                    self.optional_assign()?;
                    let (name, pos) = self.word()?;
                    self.expect(Tok::Open)?;
                    let mut r = Rule { name, pos, enabled: true, script: Script::None };
                    loop {
                        let t = self.next()?;
                        match &t.tok {
                            Tok::Close => break,
                            Tok::Word(w) if w == "enabled" => {
                                self.expect(Tok::Assign)?;
                                r.enabled = matches!(self.word()?.0.as_str(), "yes" | "true" | "1");
                            }
                            Tok::Word(w) if w == "script" => {
                                let s = self.script()?;
                                r.script.append(s);
                            }
                            Tok::Word(w) => {
                                let w = w.clone();
                                self.skipped(c, format!("rule {}: {w}", r.name), t.pos, true)?
                            }
                            other => {
                                return Err(self.err(
                                    t.pos,
                                    format!("unexpected `{}` in a rule", other.text()),
                                ));
                            }
                        }
                    }
                    c.rules.push(r);
                }
                Tok::Word(w) => {
                    let w = w.clone();
                    self.skipped(c, format!("ruleset: {w}"), t.pos, true)?
                }
                other => {
                    return Err(
                        self.err(t.pos, format!("unexpected `{}` in the ruleset", other.text()))
                    );
                }
            }
        }
    }

    /// `script { … }` (or `script = NAME`, which names an acl: unsupported).
    fn script(&mut self) -> Result<Script, ImportError> {
        let t = self.next()?;
        match t.tok {
            Tok::Open => {}
            Tok::Assign => {
                self.word()?;
                return Ok(Script::Unsupported(
                    t.pos,
                    "`script = NAME` (a named acl) is not followed".into(),
                ));
            }
            other => {
                return Err(self
                    .err(t.pos, format!("expected `{{` after script, found `{}`", other.text())));
            }
        }
        let inside = self.depth;
        let mut stmts = Vec::new();
        loop {
            if self.peek_tok()? == Some(Tok::Close) {
                self.next()?;
                return Ok(Script::Ok(stmts));
            }
            match self.stmt(0)? {
                Ok(s) => stmts.push(s),
                Err(Unsupported(pos, why)) => {
                    self.skip_block_to(inside)?;
                    return Ok(Script::Unsupported(pos, why));
                }
            }
        }
    }

    fn stmt(&mut self, nesting: usize) -> Result<Result<Stmt, Unsupported>, ImportError> {
        let t = self.next()?;
        if nesting > MAX_NESTING {
            return Ok(Err(Unsupported(
                t.pos,
                format!("statements nested deeper than {MAX_NESTING}"),
            )));
        }
        let kw = match &t.tok {
            Tok::Open => {
                let mut v = Vec::new();
                loop {
                    if self.peek_tok()? == Some(Tok::Close) {
                        self.next()?;
                        return Ok(Ok(Stmt::Block(v)));
                    }
                    match self.stmt(nesting + 1)? {
                        Ok(s) => v.push(s),
                        e @ Err(_) => return Ok(e),
                    }
                }
            }
            Tok::Word(w) => w.clone(),
            other => {
                return Ok(Err(Unsupported(
                    t.pos,
                    format!("`{}` where a statement was expected", other.text()),
                )));
            }
        };
        Ok(Ok(match kw.as_str() {
            "permit" => Stmt::Permit(t.pos),
            "deny" => Stmt::Deny(t.pos),
            "return" => Stmt::Return(t.pos),
            "if" => {
                if self.next()?.tok != Tok::LParen {
                    return Ok(Err(Unsupported(t.pos, "`if` without `(`".into())));
                }
                let cond = match self.cond(nesting)? {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(e)),
                };
                if self.next()?.tok != Tok::RParen {
                    return Ok(Err(Unsupported(t.pos, "condition without `)`".into())));
                }
                let then = match self.stmt(nesting + 1)? {
                    Ok(s) => Box::new(s),
                    Err(e) => return Ok(Err(e)),
                };
                let els = if self.peek_tok()? == Some(Tok::Word("else".into())) {
                    self.next()?;
                    match self.stmt(nesting + 1)? {
                        Ok(s) => Some(Box::new(s)),
                        Err(e) => return Ok(Err(e)),
                    }
                } else {
                    None
                };
                Stmt::If { cond, then, els, pos: t.pos }
            }
            "set" | "add" | "optional" => {
                let kind = match kw.as_str() {
                    "set" => SetKind::Set,
                    "add" => SetKind::Add,
                    _ => SetKind::Optional,
                };
                let (name, _) = self.word()?;
                if self.next()?.tok != Tok::Assign {
                    return Ok(Err(Unsupported(t.pos, format!("`{kw} {name}` without `=`"))));
                }
                let (value, _) = self.word()?;
                Stmt::Set { kind, name, value, pos: t.pos }
            }
            "profile" => {
                if self.next()?.tok != Tok::Assign {
                    return Ok(Err(Unsupported(t.pos, "`profile` without `=`".into())));
                }
                Stmt::Profile(self.word()?.0, t.pos)
            }
            "message" | "context" | "attr" => {
                if self.next()?.tok != Tok::Assign {
                    return Ok(Err(Unsupported(t.pos, format!("`{kw}` without `=`"))));
                }
                self.word()?;
                Stmt::Ignored(t.pos)
            }
            other => {
                return Ok(Err(Unsupported(
                    t.pos,
                    format!("statement `{other}` is not translated"),
                )));
            }
        }))
    }

    fn cond(&mut self, nesting: usize) -> Result<Result<Cond, Unsupported>, ImportError> {
        let mut left = match self.and(nesting)? {
            Ok(c) => c,
            e => return Ok(e),
        };
        while matches!(self.peek_tok()?, Some(Tok::Or))
            || self.peek_tok()? == Some(Tok::Word("or".into()))
        {
            self.next()?;
            let right = match self.and(nesting)? {
                Ok(c) => c,
                e => return Ok(e),
            };
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(Ok(left))
    }

    fn and(&mut self, nesting: usize) -> Result<Result<Cond, Unsupported>, ImportError> {
        let mut left = match self.unary(nesting)? {
            Ok(c) => c,
            e => return Ok(e),
        };
        while matches!(self.peek_tok()?, Some(Tok::And))
            || self.peek_tok()? == Some(Tok::Word("and".into()))
        {
            self.next()?;
            let right = match self.unary(nesting)? {
                Ok(c) => c,
                e => return Ok(e),
            };
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(Ok(left))
    }

    fn unary(&mut self, nesting: usize) -> Result<Result<Cond, Unsupported>, ImportError> {
        let t = self.next()?;
        if nesting > MAX_NESTING {
            return Ok(Err(Unsupported(
                t.pos,
                format!("conditions nested deeper than {MAX_NESTING}"),
            )));
        }
        match &t.tok {
            Tok::Not => {
                return Ok(self.unary(nesting + 1)?.map(|c| Cond::Not(Box::new(c))));
            }
            Tok::Word(w) if w == "not" => {
                return Ok(self.unary(nesting + 1)?.map(|c| Cond::Not(Box::new(c))));
            }
            Tok::LParen => {
                let c = match self.cond(nesting + 1)? {
                    Ok(c) => c,
                    e => return Ok(e),
                };
                if self.next()?.tok != Tok::RParen {
                    return Ok(Err(Unsupported(t.pos, "`(` without `)` in a condition".into())));
                }
                return Ok(Ok(c));
            }
            _ => {}
        }
        let Tok::Word(name) = &t.tok else {
            return Ok(Err(Unsupported(
                t.pos,
                format!("`{}` where a condition was expected", t.tok.text()),
            )));
        };
        let mut var = match name.as_str() {
            "service" => Var::Service,
            "cmd" => Var::Cmd,
            "member" => Var::Member,
            "user" => Var::User,
            "protocol" => Var::Protocol,
            other => Var::Other(other.to_owned()),
        };
        if self.peek_tok()? == Some(Tok::LBracket) {
            self.next()?;
            let (inner, _) = self.word()?;
            if self.next()?.tok != Tok::RBracket {
                return Ok(Err(Unsupported(t.pos, "`[` without `]`".into())));
            }
            var = if name == "arg" && inner == "protocol" {
                Var::Protocol
            } else {
                Var::Other(format!("{name}[{inner}]"))
            };
        }
        let op_tok = self.next()?;
        let op = match op_tok.tok {
            Tok::Eq => Op::Eq,
            Tok::Ne => Op::Ne,
            Tok::Match => Op::Match,
            Tok::NoMatch => Op::NoMatch,
            other => {
                return Ok(Err(Unsupported(
                    op_tok.pos,
                    format!("`{}` where a comparison was expected", other.text()),
                )));
            }
        };
        let value = if matches!(op, Op::Match | Op::NoMatch) {
            let v = self.next_regex()?;
            match v.tok {
                Tok::Regex(r) => r,
                other => {
                    return Ok(Err(Unsupported(
                        v.pos,
                        format!("`{}` where a /pattern/ was expected", other.text()),
                    )));
                }
            }
        } else {
            self.word()?.0
        };
        Ok(Ok(Cond::Cmp { var, op, value, pos: t.pos }))
    }
}

/// Decode a Cisco "type 7" obfuscated password (the XOR table every Cisco
/// device uses); `None` when malformed.
pub fn decode_type7(s: &str) -> Option<String> {
    const XLAT: &[u8] = b"dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87";
    if s.len() < 4 || !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    let seed: usize = s.get(..2)?.parse().ok()?;
    let mut out = Vec::with_capacity(s.len() / 2);
    for (i, pair) in s.as_bytes()[2..].chunks(2).enumerate() {
        let byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        out.push(byte ^ XLAT[(seed + i) % XLAT.len()]);
    }
    String::from_utf8(out).ok()
}

/// Parse a tac_plus-ng configuration.
pub fn parse(file: &str, text: &str) -> Result<Config, ImportError> {
    let mut p = Parser {
        file,
        lex: Lexer::new(file, text),
        peeked: None,
        last: Pos { line: 1, col: 1 },
        depth: 0,
    };
    let c = p.file()?;
    // tac_plus-ng refuses a name defined twice.
    let mut seen = std::collections::HashMap::new();
    let lists: [(&str, Vec<(&str, Pos)>); 5] = [
        ("user", c.users.iter().map(|u| (u.name.as_str(), u.pos)).collect()),
        ("device", c.devices.iter().map(|d| (d.name.as_str(), d.pos)).collect()),
        ("group", c.groups.iter().map(|g| (g.name.as_str(), g.pos)).collect()),
        ("profile", c.profiles.iter().map(|p| (p.name.as_str(), p.pos)).collect()),
        ("rule", c.rules.iter().map(|r| (r.name.as_str(), r.pos)).collect()),
    ];
    for (kind, names) in lists {
        seen.clear();
        for (name, pos) in names {
            if let Some(first) = seen.insert(name, pos) {
                return Err(syntax(
                    file,
                    pos,
                    format!(
                        "{kind} {name:?} defined twice (first on line {}); tac_plus-ng refuses this file",
                        first.line
                    ),
                ));
            }
        }
    }
    if !c.found {
        return Err(ImportError::File {
            file: file.to_owned(),
            msg: "no `id = tac_plus-ng { … }` section: is this a tac_plus-ng file?".into(),
        });
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_decodes() {
        // The well-known example: `cisco` as a Cisco device shows it.
        assert_eq!(decode_type7("02050D480809").as_deref(), Some("cisco"));
        assert_eq!(decode_type7("0"), None);
        assert_eq!(decode_type7("zz0102"), None);
    }

    #[test]
    fn the_subset_and_what_is_skipped() {
        let c = parse(
            "t",
            r#"
id = spawnd { listen { port = 49 } }
id = tac_plus-ng {
    log accesslog { destination = /tmp/a.log }
    mavis module = external { exec = /bin/x }
    device world {
        address = 0.0.0.0/0, ::/0
        key = demo
        welcome banner = "hi\n"
        device lab { address = 10.1.0.0/16 key = labkey }
    }
    group admins
    group ops { group noc }
    profile admin {
        script {
            if (service == shell) {
                if (cmd == "")
                    set priv-lvl = 15
                permit
            }
        }
    }
    profile weird {
        script { if (cmd =~ /^show/) rewrite user = x  permit }
    }
    user alice {
        password login = clear alice-pw
        password pap = login
        member = admins, noc
    }
    user bob {
        password { login = crypt $6$x$y pap = 7 02050D480809 }
        profile { script { permit } }
    }
    ruleset {
        rule admins {
            enabled = yes
            script { if (member == admins && cmd =~ /a\/b/) { profile = admin permit } }
        }
    }
}
"#,
        )
        .unwrap();
        assert_eq!(c.devices.len(), 2);
        assert_eq!(c.devices[1].parent, Some(0));
        assert_eq!(c.devices[0].addresses.len(), 2);
        assert_eq!(
            c.groups.iter().find(|g| g.name == "noc").unwrap().parent.as_deref(),
            Some("ops")
        );
        assert_eq!(c.users[0].members.len(), 2);
        assert_eq!(c.users[0].pap.as_ref().unwrap().spec, PwSpec::Login);
        assert_eq!(c.users[1].pap.as_ref().unwrap().spec, PwSpec::Clear("cisco".into()));
        assert!(matches!(c.users[1].profile, Some(ProfileRef::Inline(_))));
        let Script::Ok(s) = &c.profiles[0].script else { panic!("{:?}", c.profiles[0].script) };
        assert!(matches!(&s[0], Stmt::If { .. }));
        assert!(
            matches!(c.profiles[1].script, Script::Unsupported(..)),
            "{:?}",
            c.profiles[1].script
        );
        let Script::Ok(r) = &c.rules[0].script else { panic!() };
        let Stmt::If { cond: Cond::And(_, b), .. } = &r[0] else { panic!() };
        assert!(matches!(&**b, Cond::Cmp { op: Op::Match, value, .. } if value == "a/b"));
        let skipped: Vec<&str> = c.skipped.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(skipped, vec!["id = spawnd", "log", "mavis", "device world: welcome"]);
        assert!(c.skipped[2].differs && !c.skipped[1].differs);
    }

    #[test]
    fn errors_have_lines() {
        for (text, want) in [
            ("id = tac_plus-ng {\n user a {\n", "ends inside a block"),
            ("id = tac_plus-ng {\n user a { password login = frob x } }", "expected clear"),
            ("key = x", "no `id = tac_plus-ng"),
            ("id = tac_plus-ng { user a { } user a { } }", "user \"a\" defined twice"),
            (
                "id = tac_plus-ng { device d { } device e { device d { } } }",
                "device \"d\" defined twice",
            ),
        ] {
            let e = parse("t", text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn deep_scripts_are_refused_not_overflowed() {
        let deep = format!(
            "id = tac_plus-ng {{ profile p {{ script {{ {} permit {} }} }} }}",
            "{ ".repeat(500),
            "} ".repeat(500)
        );
        let c = parse("t", &deep).unwrap();
        assert!(matches!(c.profiles[0].script, Script::Unsupported(..)));
        let conds = format!(
            "id = tac_plus-ng {{ profile p {{ script {{ if ({} service == shell {}) permit }} }} }}",
            "( ".repeat(500),
            ") ".repeat(500)
        );
        let c = parse("t", &conds).unwrap();
        assert!(matches!(c.profiles[0].script, Script::Unsupported(..)));
    }
}
