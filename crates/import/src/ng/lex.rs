//! The tac_plus-ng tokenizer for the part of its language `tacvs import`
//! reads: words, `"…"` strings, `{ } ( ) [ ] ,`, the operators `=`, `==`,
//! `!=`, `=~`, `!~`, `!`, `&&`, `||`, `#` comments, and `/…/` patterns, read
//! only where the parser asks for one (after `=~`/`!~`). Each token records
//! its position and whether it starts a line, so unknown statements can be
//! skipped whole. Pull-based and bounded like the classic tokenizer.

use crate::common::Cursor;
use crate::{ImportError, Pos, syntax};

/// Longest token accepted.
pub const MAX_TOKEN: usize = 64 * 1024;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word.
    Word(String),
    /// A quoted string.
    Str(String),
    /// A `/…/` pattern (its text, `\/` unescaped).
    Regex(String),
    /// `{`.
    Open,
    /// `}`.
    Close,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `[`.
    LBracket,
    /// `]`.
    RBracket,
    /// `,`.
    Comma,
    /// `=`.
    Assign,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `=~`.
    Match,
    /// `!~`.
    NoMatch,
    /// `!`.
    Not,
    /// `&&`.
    And,
    /// `||`.
    Or,
}

impl Tok {
    /// For messages.
    pub fn text(&self) -> String {
        match self {
            Tok::Word(w) => w.clone(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Regex(r) => format!("/{r}/"),
            Tok::Open => "{".into(),
            Tok::Close => "}".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::LBracket => "[".into(),
            Tok::RBracket => "]".into(),
            Tok::Comma => ",".into(),
            Tok::Assign => "=".into(),
            Tok::Eq => "==".into(),
            Tok::Ne => "!=".into(),
            Tok::Match => "=~".into(),
            Tok::NoMatch => "!~".into(),
            Tok::Not => "!".into(),
            Tok::And => "&&".into(),
            Tok::Or => "||".into(),
        }
    }
}

/// A token, where it starts, and whether it is the first on its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// Where it starts.
    pub pos: Pos,
    /// First token of its line.
    pub line_start: bool,
}

/// The tokenizer.
#[derive(Debug)]
pub struct Lexer<'a> {
    c: Cursor<'a>,
    last_line: usize,
}

const SPECIAL: &[char] = &['{', '}', '(', ')', '[', ']', ',', '=', '!', '"'];

impl<'a> Lexer<'a> {
    /// Tokens of `text`, named `file` in errors.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Lexer { c: Cursor::new(file, text), last_line: 0 }
    }

    fn bump(&mut self) -> Option<char> {
        self.c.bump()
    }

    fn skip_blank(&mut self) {
        loop {
            match self.c.chars.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => {
                    while self.c.chars.peek().is_some_and(|&c| c != '\n') {
                        self.bump();
                    }
                }
                _ => return,
            }
        }
    }

    fn push(&self, s: &mut String, c: char, pos: Pos) -> Result<(), ImportError> {
        self.c.push(s, c, pos, MAX_TOKEN)
    }

    fn token(&mut self, tok: Tok, pos: Pos) -> Token {
        let line_start = pos.line != self.last_line;
        self.last_line = pos.line;
        Token { tok, pos, line_start }
    }

    /// The next token; `regex` reads a `/…/` pattern here.
    pub fn next_token(&mut self, regex: bool) -> Result<Option<Token>, ImportError> {
        self.skip_blank();
        let pos = self.c.pos();
        let Some(c) = self.bump() else { return Ok(None) };
        let two = |l: &mut Self, next: char| {
            if l.c.chars.peek() == Some(&next) {
                l.bump();
                true
            } else {
                false
            }
        };
        let tok = match c {
            '/' if regex => {
                let mut s = String::new();
                loop {
                    match self.bump() {
                        None | Some('\n') => {
                            return Err(syntax(self.c.file, pos, "`/` pattern is never closed"));
                        }
                        Some('/') => break,
                        Some('\\') => match self.bump() {
                            Some('/') => self.push(&mut s, '/', pos)?,
                            Some(e) => {
                                self.push(&mut s, '\\', pos)?;
                                self.push(&mut s, e, pos)?;
                            }
                            None => {
                                return Err(syntax(
                                    self.c.file,
                                    pos,
                                    "`/` pattern is never closed",
                                ));
                            }
                        },
                        Some(c) => self.push(&mut s, c, pos)?,
                    }
                }
                Tok::Regex(s)
            }
            '{' => Tok::Open,
            '}' => Tok::Close,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '=' if two(self, '=') => Tok::Eq,
            '=' if two(self, '~') => Tok::Match,
            '=' => Tok::Assign,
            '!' if two(self, '=') => Tok::Ne,
            '!' if two(self, '~') => Tok::NoMatch,
            '!' => Tok::Not,
            '&' if two(self, '&') => Tok::And,
            '|' if two(self, '|') => Tok::Or,
            '"' => {
                let mut s = String::new();
                loop {
                    match self.bump() {
                        None => {
                            return Err(syntax(self.c.file, pos, "quoted string is never closed"));
                        }
                        Some('"') => break,
                        Some('\\') => {
                            let e = match self.bump() {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some(other) => other,
                                None => {
                                    return Err(syntax(
                                        self.c.file,
                                        pos,
                                        "quoted string is never closed",
                                    ));
                                }
                            };
                            self.push(&mut s, e, pos)?;
                        }
                        Some(c) => self.push(&mut s, c, pos)?,
                    }
                }
                Tok::Str(s)
            }
            first => {
                let mut w = String::new();
                w.push(first);
                while let Some(&c) = self.c.chars.peek() {
                    if c.is_whitespace() || SPECIAL.contains(&c) {
                        break;
                    }
                    // `&&` and `||` end a word; a lone `&` or `|` is part of it.
                    if c == '&' || c == '|' {
                        let mut ahead = self.c.chars.clone();
                        ahead.next();
                        if ahead.peek() == Some(&c) {
                            break;
                        }
                    }
                    self.push(&mut w, c, pos)?;
                    self.bump();
                }
                Tok::Word(w)
            }
        };
        Ok(Some(self.token(tok, pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, regex_after_match: bool) -> Vec<Tok> {
        let mut l = Lexer::new("t", text);
        let mut v: Vec<Tok> = Vec::new();
        loop {
            let want = regex_after_match && matches!(v.last(), Some(Tok::Match | Tok::NoMatch));
            match l.next_token(want).unwrap() {
                Some(t) => v.push(t.tok),
                None => return v,
            }
        }
    }

    #[test]
    fn operators_words_and_patterns() {
        let v =
            all(r#"if (cmd =~ /^show \/x/ && member != "a b") { set priv-lvl = 15 } # c"#, true);
        assert_eq!(
            v,
            vec![
                Tok::Word("if".into()),
                Tok::LParen,
                Tok::Word("cmd".into()),
                Tok::Match,
                Tok::Regex("^show /x".into()),
                Tok::And,
                Tok::Word("member".into()),
                Tok::Ne,
                Tok::Str("a b".into()),
                Tok::RParen,
                Tok::Open,
                Tok::Word("set".into()),
                Tok::Word("priv-lvl".into()),
                Tok::Assign,
                Tok::Word("15".into()),
                Tok::Close,
            ]
        );
        let v = all("a&&b c|d", false);
        assert_eq!(
            v,
            vec![Tok::Word("a".into()), Tok::And, Tok::Word("b".into()), Tok::Word("c|d".into())]
        );
        let v = all("address = 10.0.0.0/8,::/0 arg[protocol]", false);
        assert_eq!(v[2], Tok::Word("10.0.0.0/8".into()));
        assert_eq!(v[3], Tok::Comma);
        assert_eq!(v[4], Tok::Word("::/0".into()));
        assert_eq!(v[6], Tok::LBracket);
    }

    #[test]
    fn line_starts_are_marked() {
        let mut l = Lexer::new("t", "a b\n c");
        let t: Vec<bool> =
            std::iter::from_fn(|| l.next_token(false).unwrap()).map(|t| t.line_start).collect();
        assert_eq!(t, vec![true, false, true]);
    }

    #[test]
    fn unclosed_things_are_errors() {
        let mut l = Lexer::new("t", "\"abc");
        assert!(l.next_token(false).is_err());
        let mut l = Lexer::new("t", "/abc");
        assert!(l.next_token(true).is_err());
    }
}
