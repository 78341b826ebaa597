//! What both dialects share: the character cursor their tokenizers read with,
//! and the password facts both report the same way.

use tacvs_policy::PasswordHash;

use crate::model::{Password, Secret};
use crate::report::Report;
use crate::{ImportError, Pos, syntax};

/// Characters of a source with their line and column, for the tokenizers.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    pub file: &'a str,
    pub chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    col: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Cursor { file, chars: text.chars().peekable(), line: 1, col: 1 }
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    pub fn pos(&self) -> Pos {
        Pos { line: self.line, col: self.col }
    }

    /// Append `c` to a token, refusing tokens longer than `max` bytes.
    pub fn push(&self, s: &mut String, c: char, pos: Pos, max: usize) -> Result<(), ImportError> {
        if s.len() >= max {
            return Err(syntax(self.file, pos, format!("token longer than {max} bytes")));
        }
        s.push(c);
        Ok(())
    }
}

/// What the operator does for a password tacvs cannot take over.
pub(crate) fn fix(who: &str) -> String {
    format!("set one with `tacvs hash-password` (password = \"…\" in user {who:?})")
}

/// A crypt(3) hash from the source: kept when tacvs verifies it, else
/// reported (the check fails until a new hash is set).
pub(crate) fn crypt(
    report: &mut Report,
    who: &str,
    what: &str,
    hash: &str,
    line: usize,
) -> Option<Password> {
    if PasswordHash::parse(hash).is_ok() {
        return Some(Password::Hash(hash.to_owned()));
    }
    let alg = if hash.starts_with("$1$") {
        "an MD5-crypt (`$1$`) hash"
    } else if hash.len() == 13 {
        "a DES-crypt hash"
    } else {
        "a crypt(3) hash of a kind tacvs does not read"
    };
    report.differs(
        line,
        format!(
            "user {who:?}: the {what} is {alg}, which tacvs cannot verify; imported without \
                it, so this check fails until you {}",
            fix(who)
        ),
    );
    None
}

/// tacvs's one secret for CHAP and MS-CHAP from the source's two (clear text
/// and line each); `mschap_word` is how the source spells the second.
pub(crate) fn chap_secret(
    report: &mut Report,
    who: &str,
    chap: Option<(&str, usize)>,
    mschap: Option<(&str, usize)>,
    mschap_word: &str,
) -> Option<Secret> {
    let one = "tacvs has one secret for CHAP and MS-CHAP;";
    match (chap, mschap) {
        (Some((c, _)), Some((m, _))) if c == m => Some(Secret(c.to_owned())),
        (Some((c, at)), m) => {
            let (at, what) = match m {
                Some((_, mat)) => (mat, format!("MS-CHAP with the `{mschap_word}` secret fails")),
                None => (at, "MS-CHAP, which had no secret, now passes with it".to_owned()),
            };
            report.differs(
                at,
                format!("user {who:?}: {one} the `chap` one is used for both ({what})"),
            );
            Some(Secret(c.to_owned()))
        }
        (None, Some((m, at))) => {
            report.differs(
                at,
                format!(
                    "user {who:?}: {one} the `{mschap_word}` one is used for both (CHAP, \
                    which had no secret, now passes with it)"
                ),
            );
            Some(Secret(m.to_owned()))
        }
        (None, None) => None,
    }
}

/// The report text for PAP checked against another password than ASCII
/// logins (`pap_had`: "a different `pap` password" or "no password (PAP
/// logins failed)").
pub(crate) fn pap_differs(who: &str, program: &str, pap_had: &str) -> String {
    format!(
        "user {who:?}: PAP used {pap_had} in {program}; tacvs has one password for ASCII and \
            PAP logins and uses the login password for both"
    )
}

/// The report text for a user whose only password is the PAP one.
pub(crate) fn ascii_from_pap(who: &str, program: &str) -> String {
    format!(
        "user {who:?}: no usable `login` password (ASCII logins failed in {program}); tacvs \
            uses the `pap` password for ASCII logins too"
    )
}
