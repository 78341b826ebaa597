//! The sources' regular expressions, read in their own dialect and written in
//! the `regex` crate's syntax with the same meaning.
//!
//! Classic tac_plus compiles command patterns with POSIX `regcomp(REG_EXTENDED)`
//! (glibc): `\d` is the letter `d`, a backslash inside brackets is itself,
//! `^` and `$` are anchors wherever they stand, `*` first is an error, an
//! unmatched `)` is itself. tac_plus-ng built with PCRE2 (its usual build)
//! reads `/…/` as PCRE. Both *search*: a pattern matches if it matches
//! anywhere in the subject unless it is anchored.
//!
//! A pattern is parsed into a tree, its alternatives are spread out until every
//! anchor stands at the start or end of a branch (`(^ip|^ipv6) route` becomes
//! `^ip route|^ipv6 route`), and each branch is written without anchors; the
//! caller then places the subject (the whole line, or the arguments after a
//! command name) and makes unanchored ends explicit with `(?s:.*)`. A pattern
//! with no equivalent (a back-reference, an anchor inside a repetition, a
//! lookaround) is refused with the reason, never approximated.
//!
//! Hostile input: patterns are bounded in length, nesting and repetition
//! counts, and the spreading of alternatives is bounded; every path returns an
//! error rather than panicking.

use std::fmt;

/// Longest pattern read.
pub const MAX_PATTERN: usize = 4096;
/// Deepest nesting of groups.
const MAX_DEPTH: usize = 64;
/// Most branches after spreading alternatives that hold anchors.
const MAX_BRANCHES: usize = 256;
/// Largest repetition count kept (glibc allows 32767; the result must stay
/// small enough for the server to compile).
const MAX_REPEAT: u32 = 1000;

/// Which program's reading of the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// POSIX extended, as glibc's `regcomp(REG_EXTENDED)` reads it.
    Posix,
    /// PCRE (tac_plus-ng built with PCRE2).
    Pcre,
}

/// Why a pattern was not translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexError {
    /// Character position in the pattern.
    pub pos: usize,
    /// The source program refuses the pattern too (it would not have started).
    pub invalid: bool,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.msg, self.pos + 1)
    }
}

fn invalid(pos: usize, msg: impl Into<String>) -> RegexError {
    RegexError { pos, invalid: true, msg: msg.into() }
}

fn untranslatable(pos: usize, msg: impl Into<String>) -> RegexError {
    RegexError { pos, invalid: false, msg: msg.into() }
}

/// `\w`, `\s`, `\d` and their negations, ASCII as in the C locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perl {
    Word(bool),
    Space(bool),
    Digit(bool),
}

impl Perl {
    fn class_name(self) -> &'static str {
        match self {
            Perl::Word(false) => "[:word:]",
            Perl::Word(true) => "[:^word:]",
            Perl::Space(false) => "[:space:]",
            Perl::Space(true) => "[:^space:]",
            Perl::Digit(false) => "[:digit:]",
            Perl::Digit(true) => "[:^digit:]",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassItem {
    Char(char),
    Range(char, char),
    Named(&'static str),
    Perl(Perl),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Empty,
    Lit(char),
    Any,
    Class { negated: bool, items: Vec<ClassItem> },
    Perl(Perl),
    Start,
    End,
    WordBoundary(bool),
    WordStart,
    WordEnd,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Group(Box<Node>),
    Repeat { node: Box<Node>, min: u32, max: Option<u32> },
}

impl Node {
    fn has_anchor(&self) -> bool {
        match self {
            Node::Start | Node::End => true,
            Node::Concat(v) | Node::Alt(v) => v.iter().any(Node::has_anchor),
            Node::Group(n) => n.has_anchor(),
            Node::Repeat { node, .. } => node.has_anchor(),
            _ => false,
        }
    }

    fn nullable(&self) -> bool {
        match self {
            Node::Empty
            | Node::Start
            | Node::End
            | Node::WordBoundary(_)
            | Node::WordStart
            | Node::WordEnd => true,
            Node::Lit(_) | Node::Any | Node::Class { .. } | Node::Perl(_) => false,
            Node::Concat(v) => v.iter().all(Node::nullable),
            Node::Alt(v) => v.iter().any(Node::nullable),
            Node::Group(n) => n.nullable(),
            Node::Repeat { node, min, .. } => *min == 0 || node.nullable(),
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            Node::Empty => {}
            Node::Lit(c) => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            Node::Any => out.push_str("(?s:.)"),
            Node::Perl(p) => {
                out.push('[');
                out.push_str(p.class_name());
                out.push(']');
            }
            Node::Class { negated, items } => {
                out.push('[');
                if *negated {
                    out.push('^');
                }
                for it in items {
                    match it {
                        ClassItem::Char(c) => class_char(*c, out),
                        ClassItem::Range(a, b) => {
                            class_char(*a, out);
                            out.push('-');
                            class_char(*b, out);
                        }
                        ClassItem::Named(n) => {
                            out.push_str("[:");
                            out.push_str(n);
                            out.push_str(":]");
                        }
                        ClassItem::Perl(p) => out.push_str(p.class_name()),
                    }
                }
                out.push(']');
            }
            // Anchors never reach rendering: branches are spread first.
            Node::Start => out.push_str("(?:^)"),
            Node::End => out.push_str("(?:$)"),
            Node::WordBoundary(false) => out.push_str(r"(?-u:\b)"),
            Node::WordBoundary(true) => out.push_str(r"(?-u:\B)"),
            Node::WordStart => out.push_str(r"\b{start}"),
            Node::WordEnd => out.push_str(r"\b{end}"),
            Node::Concat(v) => v.iter().for_each(|n| n.render(out)),
            Node::Alt(v) => {
                out.push_str("(?:");
                for (i, n) in v.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    n.render(out);
                }
                out.push(')');
            }
            Node::Group(n) => {
                out.push_str("(?:");
                n.render(out);
                out.push(')');
            }
            Node::Repeat { node, min: 0, max: None } if **node == Node::Any => {
                out.push_str("(?s:.*)");
            }
            Node::Repeat { node, min, max } => {
                out.push_str("(?:");
                node.render(out);
                out.push(')');
                match (min, max) {
                    (0, None) => out.push('*'),
                    (1, None) => out.push('+'),
                    (0, Some(1)) => out.push('?'),
                    (m, None) => out.push_str(&format!("{{{m},}}")),
                    (m, Some(n)) if m == n => out.push_str(&format!("{{{m}}}")),
                    (m, Some(n)) => out.push_str(&format!("{{{m},{n}}}")),
                }
            }
        }
    }
}

/// A character inside `[...]`: letters and digits as themselves, anything else
/// by code point, so no character can act as class syntax.
fn class_char(c: char, out: &mut String) {
    // Characters with no meaning inside a class are written as themselves.
    if c.is_ascii_alphanumeric() || ".,/:;@!#%'\"<>=_`{}()*+?|$".contains(c) {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:X}}}", c as u32));
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    dialect: Dialect,
    depth: usize,
    /// Untranslated meanings worth telling the operator (e.g. `\d` in POSIX).
    notes: &'a mut Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).copied()
    }

    fn alt(&mut self) -> Result<Node, RegexError> {
        let mut alts = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 { alts.pop().unwrap_or(Node::Empty) } else { Node::Alt(alts) })
    }

    fn concat(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some('|') => break,
                Some(')') if self.depth > 0 => break,
                _ => {}
            }
            let atom = self.atom(items.is_empty())?;
            let atom = self.quantifiers(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    fn atom(&mut self, first: bool) -> Result<Node, RegexError> {
        let at = self.pos;
        let Some(c) = self.peek() else { return Ok(Node::Empty) };
        self.pos += 1;
        Ok(match c {
            '(' => self.group(at)?,
            // glibc reads an unmatched `)` as itself.
            ')' => match self.dialect {
                Dialect::Posix => Node::Lit(')'),
                Dialect::Pcre => return Err(invalid(at, "unmatched `)`")),
            },
            '[' => self.bracket(at)?,
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '\\' => self.escape(at)?,
            '*' | '+' | '?' => {
                return Err(invalid(
                    at,
                    format!("`{c}` has nothing to repeat{}", if first { "" } else { " here" }),
                ));
            }
            '{' => match self.dialect {
                Dialect::Posix => return Err(invalid(at, "`{` has nothing to repeat")),
                Dialect::Pcre => Node::Lit('{'),
            },
            other => Node::Lit(other),
        })
    }

    fn group(&mut self, at: usize) -> Result<Node, RegexError> {
        if self.depth >= MAX_DEPTH {
            return Err(untranslatable(at, format!("groups nested deeper than {MAX_DEPTH}")));
        }
        if self.dialect == Dialect::Pcre && self.peek() == Some('?') {
            match (self.peek_at(1), self.peek_at(2)) {
                (Some(':'), _) => self.pos += 2,
                (Some('<'), Some(c)) if c != '=' && c != '!' => self.skip_group_name(at, '>')?,
                (Some('P'), Some('<')) => {
                    self.pos += 1;
                    self.skip_group_name(at, '>')?;
                }
                (Some('\''), _) => self.skip_group_name(at, '\'')?,
                _ => {
                    return Err(untranslatable(
                        at,
                        "PCRE `(?…)` constructs other than groups (lookaround, inline flags) have no equivalent",
                    ));
                }
            }
        }
        self.depth += 1;
        let inner = self.alt()?;
        self.depth -= 1;
        if self.peek() != Some(')') {
            return Err(invalid(at, "`(` is never closed"));
        }
        self.pos += 1;
        Ok(Node::Group(Box::new(inner)))
    }

    fn skip_group_name(&mut self, at: usize, close: char) -> Result<(), RegexError> {
        // At `?` followed by `<`/`'`: skip to the closing delimiter.
        self.pos += 2;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == close {
                return Ok(());
            }
            if !(c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
        }
        Err(invalid(at, "malformed group name"))
    }

    fn escape(&mut self, at: usize) -> Result<Node, RegexError> {
        let Some(c) = self.peek() else {
            return Err(invalid(at, "the pattern ends with a lone backslash"));
        };
        self.pos += 1;
        let backref = || untranslatable(at, format!("back-reference `\\{c}` has no equivalent"));
        match self.dialect {
            Dialect::Posix => Ok(match c {
                'w' => Node::Perl(Perl::Word(false)),
                'W' => Node::Perl(Perl::Word(true)),
                's' => Node::Perl(Perl::Space(false)),
                'S' => Node::Perl(Perl::Space(true)),
                'b' => Node::WordBoundary(false),
                'B' => Node::WordBoundary(true),
                '<' => Node::WordStart,
                '>' => Node::WordEnd,
                '`' => Node::Start,
                '\'' => Node::End,
                '1'..='9' => return Err(backref()),
                other => {
                    if other.is_ascii_alphabetic() {
                        self.notes.push(format!(
                            "`\\{other}` is the letter `{other}` to POSIX regcomp (not a character class); kept so"
                        ));
                    }
                    Node::Lit(other)
                }
            }),
            Dialect::Pcre => Ok(match c {
                'w' => Node::Perl(Perl::Word(false)),
                'W' => Node::Perl(Perl::Word(true)),
                's' => Node::Perl(Perl::Space(false)),
                'S' => Node::Perl(Perl::Space(true)),
                'd' => Node::Perl(Perl::Digit(false)),
                'D' => Node::Perl(Perl::Digit(true)),
                'b' => Node::WordBoundary(false),
                'B' => Node::WordBoundary(true),
                'A' => Node::Start,
                'z' | 'Z' => Node::End,
                'n' => Node::Lit('\n'),
                't' => Node::Lit('\t'),
                'r' => Node::Lit('\r'),
                'f' => Node::Lit('\x0c'),
                'e' => Node::Lit('\x1b'),
                'a' => Node::Lit('\x07'),
                'x' => Node::Lit(self.hex(at)?),
                '1'..='9' => return Err(backref()),
                other if other.is_ascii_alphanumeric() => {
                    return Err(untranslatable(
                        at,
                        format!("PCRE escape `\\{other}` has no equivalent here"),
                    ));
                }
                other => Node::Lit(other),
            }),
        }
    }

    fn hex(&mut self, at: usize) -> Result<char, RegexError> {
        let braced = self.peek() == Some('{');
        if braced {
            self.pos += 1;
        }
        let mut v: u32 = 0;
        let mut n = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
            if n == 6 || (!braced && n == 2) {
                break;
            }
            v = v * 16 + d;
            n += 1;
            self.pos += 1;
        }
        if braced {
            if self.peek() != Some('}') {
                return Err(invalid(at, "`\\x{` is not closed"));
            }
            self.pos += 1;
        }
        char::from_u32(v).ok_or_else(|| invalid(at, "`\\x` names no character"))
    }

    fn bracket(&mut self, at: usize) -> Result<Node, RegexError> {
        let mut negated = false;
        if self.peek() == Some('^') {
            negated = true;
            self.pos += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(invalid(at, "`[` is never closed"));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            let item_at = self.pos;
            let lo = match self.class_atom(at)? {
                ClassAtom::Char(c) => c,
                ClassAtom::Item(it) => {
                    items.push(it);
                    continue;
                }
            };
            // A range `lo-hi`, unless the `-` is the last thing before `]`.
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                let hi = match self.class_atom(at)? {
                    ClassAtom::Char(c) => c,
                    ClassAtom::Item(_) => {
                        return Err(invalid(item_at, "a range cannot end in a class"));
                    }
                };
                if hi < lo {
                    return Err(invalid(item_at, format!("range `{lo}-{hi}` is backwards")));
                }
                items.push(ClassItem::Range(lo, hi));
            } else {
                items.push(ClassItem::Char(lo));
            }
        }
        Ok(Node::Class { negated, items })
    }

    fn class_atom(&mut self, at: usize) -> Result<ClassAtom, RegexError> {
        let Some(c) = self.peek() else { return Err(invalid(at, "`[` is never closed")) };
        self.pos += 1;
        if c == '[' && matches!(self.peek(), Some(':' | '=' | '.')) {
            let kind = self.peek().unwrap_or(':');
            self.pos += 1;
            let start = self.pos;
            while self.pos + 1 < self.chars.len()
                && !(self.chars[self.pos] == kind && self.chars[self.pos + 1] == ']')
            {
                self.pos += 1;
            }
            if self.pos + 1 >= self.chars.len() {
                return Err(invalid(at, format!("`[{kind}` is never closed")));
            }
            let name: String = self.chars[start..self.pos].iter().collect();
            self.pos += 2;
            return match kind {
                ':' => match NAMED.iter().find(|n| **n == name) {
                    Some(n) => Ok(ClassAtom::Item(ClassItem::Named(n))),
                    None => Err(invalid(at, format!("unknown class `[:{name}:]`"))),
                },
                _ => {
                    let mut cs = name.chars();
                    match (cs.next(), cs.next()) {
                        (Some(one), None) => Ok(ClassAtom::Char(one)),
                        _ => Err(untranslatable(
                            at,
                            format!("collating element `[{kind}{name}{kind}]` has no equivalent"),
                        )),
                    }
                }
            };
        }
        if c == '\\' && self.dialect == Dialect::Pcre {
            let Some(e) = self.peek() else { return Err(invalid(at, "`[` is never closed")) };
            self.pos += 1;
            return Ok(match e {
                'w' => ClassAtom::Item(ClassItem::Perl(Perl::Word(false))),
                'W' => ClassAtom::Item(ClassItem::Perl(Perl::Word(true))),
                's' => ClassAtom::Item(ClassItem::Perl(Perl::Space(false))),
                'S' => ClassAtom::Item(ClassItem::Perl(Perl::Space(true))),
                'd' => ClassAtom::Item(ClassItem::Perl(Perl::Digit(false))),
                'D' => ClassAtom::Item(ClassItem::Perl(Perl::Digit(true))),
                'n' => ClassAtom::Char('\n'),
                't' => ClassAtom::Char('\t'),
                'r' => ClassAtom::Char('\r'),
                'x' => ClassAtom::Char(self.hex(at)?),
                other if other.is_ascii_alphanumeric() => {
                    return Err(untranslatable(
                        at,
                        format!("PCRE escape `\\{other}` in a class has no equivalent here"),
                    ));
                }
                other => ClassAtom::Char(other),
            });
        }
        // POSIX: a backslash inside brackets is itself.
        Ok(ClassAtom::Char(c))
    }

    fn quantifiers(&mut self, mut atom: Node) -> Result<Node, RegexError> {
        loop {
            let at = self.pos;
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => match self.interval()? {
                    Some(b) => b,
                    None => return Ok(atom),
                },
                _ => return Ok(atom),
            };
            if self.chars.get(at) != Some(&'{') {
                self.pos += 1;
            }
            if atom.has_anchor() {
                return Err(untranslatable(at, "a repeated anchor has no equivalent"));
            }
            if self.dialect == Dialect::Pcre {
                match self.peek() {
                    // Lazy: the same strings match.
                    Some('?') => self.pos += 1,
                    Some('+') => {
                        return Err(untranslatable(
                            at,
                            "a possessive quantifier has no equivalent",
                        ));
                    }
                    _ => {}
                }
            }
            atom = Node::Repeat { node: Box::new(atom), min, max };
        }
    }

    /// `{m}`, `{m,}`, `{m,n}` at `self.pos`; consumes it. POSIX: anything else
    /// is an error. PCRE: anything else is a literal `{` (returns `None`).
    fn interval(&mut self) -> Result<Option<(u32, Option<u32>)>, RegexError> {
        let at = self.pos;
        let mut i = self.pos + 1;
        let num = |i: &mut usize, chars: &[char]| -> Option<u32> {
            let start = *i;
            let mut v: u32 = 0;
            while *i < chars.len() && chars[*i].is_ascii_digit() {
                v = v.saturating_mul(10).saturating_add(chars[*i].to_digit(10).unwrap_or(0));
                *i += 1;
            }
            (*i > start).then_some(v)
        };
        let min = num(&mut i, &self.chars);
        let mut max = min;
        if min.is_some() && self.chars.get(i) == Some(&',') {
            i += 1;
            max = num(&mut i, &self.chars);
        }
        let closed = self.chars.get(i) == Some(&'}');
        let Some(min) = min.filter(|_| closed) else {
            return match self.dialect {
                Dialect::Posix => Err(invalid(at, "malformed `{m,n}` repetition")),
                Dialect::Pcre => Ok(None),
            };
        };
        if let Some(m) = max
            && m < min
        {
            return Err(invalid(at, format!("repetition `{{{min},{m}}}` is backwards")));
        }
        if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
            return Err(untranslatable(at, format!("repetition counts above {MAX_REPEAT}")));
        }
        self.pos = i + 1;
        Ok(Some((min, max)))
    }
}

enum ClassAtom {
    Char(char),
    Item(ClassItem),
}

const NAMED: &[&str] = &[
    "alpha", "digit", "alnum", "upper", "lower", "space", "blank", "punct", "print", "graph",
    "cntrl", "xdigit",
];

/// One alternative of a pattern with its anchors set apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Branch {
    start: bool,
    end: bool,
    core: Vec<Node>,
}

/// A parsed pattern, ready to be written for a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    branches: Vec<Branch>,
    /// What the operator should know about how it was read.
    pub notes: Vec<String>,
}

impl Pattern {
    /// Read `src` as `dialect` does.
    pub fn parse(src: &str, dialect: Dialect) -> Result<Pattern, RegexError> {
        if src.len() > MAX_PATTERN {
            return Err(untranslatable(0, format!("longer than {MAX_PATTERN} bytes")));
        }
        let mut notes = Vec::new();
        let mut p =
            Parser { chars: src.chars().collect(), pos: 0, dialect, depth: 0, notes: &mut notes };
        let node = p.alt()?;
        if p.pos != p.chars.len() {
            // Only a `)` closing nothing stops the top level (PCRE).
            return Err(invalid(p.pos, "unmatched `)`"));
        }
        let mut branches = Vec::new();
        for seq in spread(&node)? {
            if let Some(b) = place_anchors(seq) {
                branches.push(b);
            }
        }
        notes.dedup();
        Ok(Pattern { branches, notes })
    }

    /// No subject can match (every branch needs an impossible position, like `a^b`).
    pub fn never_matches(&self) -> bool {
        self.branches.is_empty()
    }

    /// Every branch is anchored at both ends: anchoring changes nothing.
    pub fn fully_anchored(&self) -> bool {
        self.branches.iter().all(|b| b.start && b.end)
    }

    /// Some branch is anchored at the end of the subject.
    pub fn has_end_anchor(&self) -> bool {
        self.branches.iter().any(|b| b.end)
    }

    /// The pattern's meaning as a `regex` pattern that must match a whole
    /// subject: the source's search semantics (unanchored ends become
    /// `(?s:.*)`), or with `anchor` the whole subject must match. `None`
    /// when nothing can match.
    pub fn whole(&self, anchor: bool) -> Option<String> {
        if self.branches.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, b) in self.branches.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            // `.*` at an unanchored end already stands for what it would add.
            let any = |n: Option<&Node>| {
                matches!(
                    n,
                    Some(Node::Repeat { node, min: 0, max: None }) if **node == Node::Any
                )
            };
            if !b.start && !anchor && !any(b.core.first()) {
                out.push_str("(?s:.*)");
            }
            for n in &b.core {
                n.render(&mut out);
            }
            if !b.end && !anchor && !any(b.core.last()) {
                out.push_str("(?s:.*)");
            }
        }
        Some(out)
    }

    /// Branches that end in the literal text `<cr>` (Cisco IOS sends it as a
    /// last argument; tacvs drops it before matching): the `<cr>` is removed
    /// and the branch anchored at the end instead, which is what it meant.
    /// Returns how many branches changed.
    pub fn strip_trailing_cr(&mut self) -> usize {
        let cr: Vec<Node> = "<cr>".chars().map(Node::Lit).collect();
        let mut n = 0;
        for b in &mut self.branches {
            if b.core.len() >= cr.len() && b.core[b.core.len() - cr.len()..] == cr[..] {
                b.core.truncate(b.core.len() - cr.len());
                if b.core.last() == Some(&Node::Lit(' ')) {
                    b.core.pop();
                }
                b.end = true;
                n += 1;
            }
        }
        n
    }

    /// Whether any branch still holds the text `<cr>`.
    pub fn mentions_cr(&self) -> bool {
        self.branches.iter().any(|b| {
            let mut s = String::new();
            b.core.iter().for_each(|n| n.render(&mut s));
            s.contains("<cr>")
        })
    }
}

/// Spread alternatives that hold anchors into separate sequences of top-level
/// items, so that anchors appear only as items of a sequence.
fn spread(node: &Node) -> Result<Vec<Vec<Node>>, RegexError> {
    if !node.has_anchor() {
        return Ok(vec![vec![node.clone()]]);
    }
    Ok(match node {
        Node::Start | Node::End => vec![vec![node.clone()]],
        Node::Group(n) => spread(n)?,
        Node::Alt(v) => {
            let mut out = Vec::new();
            for n in v {
                out.extend(spread(n)?);
                if out.len() > MAX_BRANCHES {
                    return Err(too_many());
                }
            }
            out
        }
        Node::Concat(v) => {
            let mut out: Vec<Vec<Node>> = vec![Vec::new()];
            for n in v {
                let parts = spread(n)?;
                if out.len().saturating_mul(parts.len()) > MAX_BRANCHES {
                    return Err(too_many());
                }
                let mut next = Vec::with_capacity(out.len() * parts.len());
                for prefix in &out {
                    for part in &parts {
                        let mut s = prefix.clone();
                        s.extend(part.iter().cloned());
                        next.push(s);
                    }
                }
                out = next;
            }
            out
        }
        // Quantifiers on anchors are refused while parsing.
        _ => return Err(untranslatable(0, "an anchor inside a repetition has no equivalent")),
    })
}

fn too_many() -> RegexError {
    untranslatable(0, format!("more than {MAX_BRANCHES} alternatives once anchors are spread"))
}

/// A sequence's anchors set apart. Whatever stands before the last `^` must
/// match empty (it is dropped), likewise after the first `$`; a sequence where
/// that is impossible can never match (`None`).
fn place_anchors(seq: Vec<Node>) -> Option<Branch> {
    let last_start = seq.iter().rposition(|n| *n == Node::Start);
    let first_end = seq.iter().position(|n| *n == Node::End);
    match (last_start, first_end) {
        (Some(s), Some(e)) if e < s => {
            // `$…^`: the position is both ends, so the subject is empty.
            seq.iter().all(Node::nullable).then_some(Branch {
                start: true,
                end: true,
                core: Vec::new(),
            })
        }
        _ => {
            let from = last_start.map_or(0, |s| s + 1);
            let to = first_end.unwrap_or(seq.len());
            if !seq[..from].iter().all(Node::nullable) || !seq[to..].iter().all(Node::nullable) {
                return None;
            }
            Some(Branch {
                start: last_start.is_some(),
                end: first_end.is_some(),
                core: seq[from..to].to_vec(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(p: &str, d: Dialect, anchor: bool) -> regex::Regex {
        let pat = Pattern::parse(p, d).unwrap();
        let w = pat.whole(anchor).unwrap();
        regex::Regex::new(&format!("^(?:{w})$")).unwrap()
    }

    #[test]
    fn unanchored_patterns_search() {
        let r = whole("ip", Dialect::Posix, false);
        assert!(r.is_match("ip route"));
        assert!(r.is_match("bgp ip"));
        assert!(r.is_match("zip"));
        assert!(!r.is_match("version"));
        let r = whole("ip", Dialect::Posix, true);
        assert!(r.is_match("ip") && !r.is_match("ip route"));
    }

    #[test]
    fn anchors_are_kept_at_branch_ends() {
        let r = whole("^ip|route$", Dialect::Posix, false);
        assert!(r.is_match("ip x"));
        assert!(r.is_match("x route"));
        assert!(!r.is_match("x ip"));
        assert!(!r.is_match("route x"));
        let r = whole("(^ip|^ipv6) route", Dialect::Posix, false);
        assert!(r.is_match("ipv6 route x"));
        assert!(!r.is_match("x ip route"));
        assert!(whole("^$", Dialect::Posix, false).is_match(""));
        assert!(!whole("^$", Dialect::Posix, false).is_match("x"));
        let p = Pattern::parse("^ip$", Dialect::Posix).unwrap();
        assert!(p.fully_anchored() && p.has_end_anchor());
        assert!(!Pattern::parse("^ip", Dialect::Posix).unwrap().fully_anchored());
    }

    #[test]
    fn impossible_anchors_never_match() {
        assert!(Pattern::parse("a^b", Dialect::Posix).unwrap().never_matches());
        assert!(Pattern::parse("a$b", Dialect::Posix).unwrap().never_matches());
        // Nullable items before `^` are dropped: `a*^b` is `^b`.
        let r = whole("a*^b", Dialect::Posix, false);
        assert!(r.is_match("bc") && !r.is_match("ab"));
        let r = whole("$^", Dialect::Posix, false);
        assert!(r.is_match("") && !r.is_match("a"));
    }

    #[test]
    fn posix_reads_escapes_and_brackets_as_glibc_does() {
        // `\d` is the letter d to glibc regcomp; noted.
        let p = Pattern::parse(r"\d", Dialect::Posix).unwrap();
        assert!(p.notes[0].contains("letter `d`"));
        let r = whole(r"^\d$", Dialect::Posix, false);
        assert!(r.is_match("d") && !r.is_match("1"));
        // A backslash in brackets is itself.
        let r = whole(r"^[\d]$", Dialect::Posix, false);
        assert!(r.is_match("\\") && r.is_match("d") && !r.is_match("1"));
        // `]` first in brackets is a member; `-` last is a member.
        let r = whole(r"^[]a-]+$", Dialect::Posix, false);
        assert!(r.is_match("]-a") && !r.is_match("b"));
        let r = whole(r"^[[:digit:]]{2,3}$", Dialect::Posix, false);
        assert!(r.is_match("12") && r.is_match("123") && !r.is_match("1234"));
        let r = whole(r"^\w+\s\W$", Dialect::Posix, false);
        assert!(r.is_match("ab_1 -") && !r.is_match("ab x"));
        // An unmatched `)` is itself.
        let r = whole("^a)$", Dialect::Posix, false);
        assert!(r.is_match("a)"));
        // Metacharacters of the target syntax are literals.
        let r = whole("^a&&b~~c$", Dialect::Posix, false);
        assert!(r.is_match("a&&b~~c"));
        let r = whole("^[&~-]+$", Dialect::Posix, false);
        assert!(r.is_match("&~-"));
        let r = whole(r"\<ip\>", Dialect::Posix, false);
        assert!(r.is_match("show ip x") && !r.is_match("zip"));
    }

    #[test]
    fn pcre_reads_perl_classes() {
        let r = whole(r"^\d+$", Dialect::Pcre, false);
        assert!(r.is_match("123") && !r.is_match("d"));
        let r = whole(r"^show (?:ip|ipv6) route\b", Dialect::Pcre, false);
        assert!(r.is_match("show ipv6 route x"));
        let r = whole(r"^a{x}$", Dialect::Pcre, false);
        assert!(r.is_match("a{x}"));
        let r = whole(r"^[\d\-]+$", Dialect::Pcre, false);
        assert!(r.is_match("1-2"));
        assert!(whole("^sh.*?ver$", Dialect::Pcre, false).is_match("show ver"));
    }

    #[test]
    fn what_the_source_refuses_and_what_has_no_equivalent() {
        for (p, d) in [
            ("*a", Dialect::Posix),
            ("a|*b", Dialect::Posix),
            ("(a", Dialect::Posix),
            ("[a", Dialect::Posix),
            ("[z-a]", Dialect::Posix),
            ("a{2,1}", Dialect::Posix),
            ("a{x}", Dialect::Posix),
            ("{1}", Dialect::Posix),
            ("a\\", Dialect::Posix),
            ("[[:nope:]]", Dialect::Posix),
            ("a)", Dialect::Pcre),
        ] {
            let e = Pattern::parse(p, d).unwrap_err();
            assert!(e.invalid, "{p}: {e}");
        }
        for (p, d) in [
            (r"(a)\1", Dialect::Posix),
            ("(^a)*", Dialect::Posix),
            ("^*", Dialect::Posix),
            ("a{1001}", Dialect::Posix),
            ("(?=a)", Dialect::Pcre),
            ("a*+", Dialect::Pcre),
            ("[[.space.]]", Dialect::Posix),
        ] {
            let e = Pattern::parse(p, d).unwrap_err();
            assert!(!e.invalid, "{p}: {e}");
        }
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(!Pattern::parse(&deep, Dialect::Posix).unwrap_err().invalid);
        let wide = "(^a|^b)(^c|^d|c)".repeat(8);
        assert!(Pattern::parse(&wide, Dialect::Posix).is_err());
    }

    #[test]
    fn a_trailing_cr_becomes_an_end_anchor() {
        let mut p = Pattern::parse("^version <cr>$", Dialect::Posix).unwrap();
        assert_eq!(p.strip_trailing_cr(), 1);
        let w = p.whole(false).unwrap();
        let r = regex::Regex::new(&format!("^(?:{w})$")).unwrap();
        assert!(r.is_match("version") && !r.is_match("version x"));
        assert!(!p.mentions_cr());
        let p = Pattern::parse("<cr> x", Dialect::Posix).unwrap();
        assert!(p.mentions_cr());
    }

    /// A small POSIX-ERE subset generated with the subjects it is tried on:
    /// the translation must agree with a direct reading of the same pattern
    /// by the `regex` crate (whose syntax agrees with ERE on this subset),
    /// searched with `is_match`.
    fn ere() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just(" ".to_owned()),
            Just(".".to_owned()),
            Just("[ab]".to_owned()),
            Just("[^a]".to_owned()),
            Just("^".to_owned()),
            Just("$".to_owned()),
        ];
        let quant = prop_oneof![Just(""), Just("*"), Just("+"), Just("?"), Just("{1,2}")];
        let piece = (atom, quant)
            .prop_map(|(a, q)| if a == "^" || a == "$" { a } else { format!("{a}{q}") });
        let seq = prop::collection::vec(piece, 1..4).prop_map(|v| v.concat());
        let group =
            prop::collection::vec(seq.clone(), 1..3).prop_map(|v| format!("({})", v.join("|")));
        let item = prop_oneof![seq, group];
        prop::collection::vec(item, 1..3).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn translation_agrees_with_search(p in ere(), subjects in prop::collection::vec("[ab ]{0,5}", 8)) {
            let direct = regex::Regex::new(&p).unwrap();
            let pat = Pattern::parse(&p, Dialect::Posix).unwrap();
            match pat.whole(false) {
                None => {
                    for s in &subjects {
                        prop_assert!(!direct.is_match(s), "{p:?} never matches, yet matches {s:?}");
                    }
                }
                Some(w) => {
                    let ours = regex::Regex::new(&format!("^(?:{w})$")).unwrap();
                    for s in &subjects {
                        prop_assert_eq!(ours.is_match(s), direct.is_match(s), "{:?} on {:?} via {:?}", p, s, w);
                    }
                }
            }
        }

        #[test]
        fn anchored_translation_matches_whole_subjects(p in ere(), subjects in prop::collection::vec("[ab ]{0,5}", 8)) {
            let direct = regex::Regex::new(&format!("^(?:{p})$")).unwrap();
            let pat = Pattern::parse(&p, Dialect::Posix).unwrap();
            if let Some(w) = pat.whole(true) {
                let ours = regex::Regex::new(&format!("^(?:{w})$")).unwrap();
                for s in &subjects {
                    // Where the source anchors a branch itself, both agree;
                    // `--anchor` only adds anchors.
                    if direct.is_match(s) {
                        prop_assert!(ours.is_match(s), "{:?} on {:?} via {:?}", p, s, w);
                    }
                }
            }
        }

        #[test]
        fn any_text_is_refused_or_translated_never_a_panic(p in "\\PC{0,40}", d in prop_oneof![Just(Dialect::Posix), Just(Dialect::Pcre)]) {
            if let Ok(pat) = Pattern::parse(&p, d)
                && let Some(w) = pat.whole(false)
            {
                prop_assert!(
                    regex::RegexBuilder::new(&format!("^(?:{w})$")).size_limit(1 << 24).build().is_ok(),
                    "{p:?} -> {w:?}"
                );
            }
        }
    }
}
