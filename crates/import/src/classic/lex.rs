//! The classic tac_plus tokenizer, as its `getsym()` reads a file: `=`, `{`,
//! `}` and `"…"` strings (escapes `\"`, `\\`, and `\n` kept as the two
//! characters) at the start of a token, `#` comments to the end of the line,
//! and bare words that run to a blank, `=` or the end of the line (so `{`
//! inside a word is part of it, as in tac_plus). Pull-based, one token at a
//! time, each with its line and column; a token longer than
//! [`MAX_TOKEN`] is an error.

use crate::common::Cursor;
use crate::{ImportError, Pos, syntax};

/// Longest token accepted (tac_plus itself stops at 255 bytes).
pub const MAX_TOKEN: usize = 64 * 1024;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// `=`.
    Eq,
    /// `{`.
    Open,
    /// `}`.
    Close,
    /// A bare word: may be a keyword.
    Word(String),
    /// A quoted string: never a keyword.
    Str(String),
}

impl Tok {
    /// The token's text, for messages.
    pub fn text(&self) -> String {
        match self {
            Tok::Eq => "=".into(),
            Tok::Open => "{".into(),
            Tok::Close => "}".into(),
            Tok::Word(w) => w.clone(),
            Tok::Str(s) => format!("\"{s}\""),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// Where it starts.
    pub pos: Pos,
}

/// The tokenizer.
#[derive(Debug)]
pub struct Lexer<'a> {
    c: Cursor<'a>,
}

impl<'a> Lexer<'a> {
    /// Tokens of `text`, named `file` in errors.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Lexer { c: Cursor::new(file, text) }
    }

    fn bump(&mut self) -> Option<char> {
        self.c.bump()
    }

    /// The next token, `None` at the end.
    pub fn next_token(&mut self) -> Result<Option<Token>, ImportError> {
        loop {
            let Some(&c) = self.c.chars.peek() else { return Ok(None) };
            match c {
                ' ' | '\t' | '\n' | '\r' => {
                    self.bump();
                }
                '#' => {
                    while self.c.chars.peek().is_some_and(|&c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let pos = self.c.pos();
        let Some(c) = self.bump() else { return Ok(None) };
        let tok = match c {
            '=' => Tok::Eq,
            '{' => Tok::Open,
            '}' => Tok::Close,
            '"' => Tok::Str(self.string(pos)?),
            first => {
                let mut w = String::new();
                w.push(first);
                while let Some(&c) = self.c.chars.peek() {
                    if matches!(c, ' ' | '\t' | '=' | '\n' | '\r') {
                        break;
                    }
                    self.push_bounded(&mut w, c, pos)?;
                    self.bump();
                }
                Tok::Word(w)
            }
        };
        Ok(Some(Token { tok, pos }))
    }

    fn push_bounded(&self, s: &mut String, c: char, pos: Pos) -> Result<(), ImportError> {
        self.c.push(s, c, pos, MAX_TOKEN)
    }

    fn string(&mut self, pos: Pos) -> Result<String, ImportError> {
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(syntax(self.c.file, pos, "quoted string is never closed"));
            };
            match c {
                '"' => return Ok(s),
                '\\' => match self.bump() {
                    // tac_plus keeps `\n` as backslash and n.
                    Some('n') => {
                        self.push_bounded(&mut s, '\\', pos)?;
                        self.push_bounded(&mut s, 'n', pos)?;
                    }
                    Some(e @ ('"' | '\\')) => self.push_bounded(&mut s, e, pos)?,
                    Some(other) => {
                        return Err(syntax(
                            self.c.file,
                            pos,
                            format!(
                                "`\\{}` in a quoted string: tac_plus accepts only \\\", \\\\ and \\n there",
                                crate::report::printable(&other.to_string())
                            ),
                        ));
                    }
                    None => return Err(syntax(self.c.file, pos, "quoted string is never closed")),
                },
                other => self.push_bounded(&mut s, other, pos)?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Token>, ImportError> {
        let mut l = Lexer::new("t", text);
        let mut v = Vec::new();
        while let Some(t) = l.next_token()? {
            v.push(t);
        }
        Ok(v)
    }

    #[test]
    fn tokens_with_positions() {
        let v = all("key = \"a b\"  # comment\nuser=bob{x {\n}").unwrap();
        let toks: Vec<Tok> = v.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            toks,
            vec![
                Tok::Word("key".into()),
                Tok::Eq,
                Tok::Str("a b".into()),
                Tok::Word("user".into()),
                Tok::Eq,
                Tok::Word("bob{x".into()),
                Tok::Open,
                Tok::Close,
            ]
        );
        assert_eq!(v[3].pos, Pos { line: 2, col: 1 });
        assert_eq!(v[6].pos, Pos { line: 2, col: 12 });
    }

    #[test]
    fn string_escapes_are_tac_plus_ones() {
        let v = all(r#""a\"b\\c\nd""#).unwrap();
        assert_eq!(v[0].tok, Tok::Str("a\"b\\c\\nd".into()));
        assert!(all(r#""a\tb""#).is_err());
        assert!(all("\"never closed").is_err());
    }

    #[test]
    fn a_huge_token_is_refused() {
        let big = "x".repeat(MAX_TOKEN + 1);
        assert!(all(&big).unwrap_err().to_string().contains("longer than"));
    }
}
