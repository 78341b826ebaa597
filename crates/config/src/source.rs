//! Reading a TOML configuration into typed settings, with errors that point at
//! the place and **never repeat a value from the file**.
//!
//! A value in the wrong place may be a secret: `keys = "the key"` (a string
//! where a list belongs) makes serde say `invalid type: string "the key",
//! expected a sequence`, and a reload logs it. [`from_toml`] renders every
//! serde and TOML error through [`redact`], which keeps the kind of mistake
//! (`invalid type: a string, expected a sequence`) and drops the value; the
//! line and column say where to look. Unknown keys are not named either (a
//! key pasted on its own line would be one); the closest known key is
//! suggested instead.
//!
//! [`Spans`] finds where a setting was written, so validation after
//! deserializing can point at the exact key or value too, without making every
//! field of the typed settings a `Spanned`.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, ConfigErrors, Locator};

/// Deserialize `loc.src` into `T`; an error names its place and never the value.
pub fn from_toml<T: DeserializeOwned>(loc: &Locator<'_>) -> Result<T, ConfigErrors> {
    toml::from_str(loc.src).map_err(|e| {
        let msg = redact(e.message());
        ConfigErrors(vec![match e.span() {
            Some(span) => loc.at(span.start, msg),
            None => loc.whole(msg),
        }])
    })
}

/// A serde or TOML error message without any value from the input.
///
/// serde writes the unexpected value between the message's prefix and its
/// last `, expected ` (the expectation is static text from the program, so the
/// last occurrence is the real one whatever the value contains).
pub fn redact(msg: &str) -> String {
    let msg = msg.trim();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return match rest.rfind(", expected ") {
                Some(cut) => format!("{prefix}{}{}", unexpected_kind(&rest[..cut]), &rest[cut..]),
                None => format!("{prefix}{}", unexpected_kind(rest)),
            };
        }
    }
    for (prefix, what) in [("unknown variant ", "value"), ("unknown field ", "key")] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return match rest.rfind(", expected ") {
                Some(cut) => {
                    let expected = &rest[cut + ", expected ".len()..];
                    format!("unknown {what}; expected {expected}")
                }
                None => format!("unknown {what}; this table takes none"),
            };
        }
    }
    msg.to_owned()
}

/// What serde's `Unexpected` shows, without its value.
fn unexpected_kind(u: &str) -> &'static str {
    const VALUELESS: [(&str, &str); 12] = [
        ("sequence", "a list"),
        ("map", "a table"),
        ("unit value", "nothing"),
        ("Option value", "an optional value"),
        ("newtype struct", "a value"),
        ("enum", "a choice"),
        ("unit variant", "a choice"),
        ("newtype variant", "a choice"),
        ("tuple variant", "a choice"),
        ("struct variant", "a choice"),
        ("byte array", "bytes"),
        ("datetime", "a date-time"),
    ];
    if let Some((_, k)) = VALUELESS.iter().find(|(s, _)| *s == u) {
        return k;
    }
    const VALUED: [(&str, &str); 5] = [
        ("string ", "a string"),
        ("integer ", "an integer"),
        ("floating point ", "a number with a fraction"),
        ("boolean ", "a boolean"),
        ("character ", "a character"),
    ];
    VALUED.iter().find(|(p, _)| u.starts_with(p)).map_or("a value", |(_, k)| k)
}

/// One step of a path into the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A key of a table.
    Key(&'a str),
    /// An element of an array (or of an array of tables).
    Idx(usize),
}

impl<'a> From<&'a str> for Seg<'a> {
    fn from(k: &'a str) -> Self {
        Seg::Key(k)
    }
}

impl From<usize> for Seg<'_> {
    fn from(i: usize) -> Self {
        Seg::Idx(i)
    }
}

/// Where things were written in a TOML text (empty if the text does not parse;
/// errors then fall back to the file as a whole).
#[derive(Debug)]
pub struct Spans<'a> {
    loc: Locator<'a>,
    doc: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Spans<'a> {
    /// Index `loc.src`.
    pub fn new(loc: Locator<'a>) -> Self {
        Spans { loc, doc: DeTable::parse(loc.src).ok() }
    }

    /// The locator it reports with.
    pub fn locator(&self) -> &Locator<'a> {
        &self.loc
    }

    fn walk(&self, path: &[Seg<'_>]) -> (Option<Range<usize>>, Option<Range<usize>>, usize) {
        let Some(doc) = &self.doc else { return (None, None, 0) };
        let mut value: Option<&Spanned<DeValue<'a>>> = None;
        let mut key = None;
        for (depth, seg) in path.iter().enumerate() {
            let next = match (value.map(|v| v.get_ref()), seg) {
                (None, Seg::Key(k)) => doc.get_ref().get_key_value(*k),
                (Some(DeValue::Table(t)), Seg::Key(k)) => t.get_key_value(*k),
                (Some(DeValue::Array(a)), Seg::Idx(i)) => match a.get(*i) {
                    Some(v) => {
                        value = Some(v);
                        continue;
                    }
                    None => return (key, value.map(|v| v.span()), depth),
                },
                _ => None,
            };
            match next {
                Some((k, v)) => {
                    key = Some(k.span());
                    value = Some(v);
                }
                None => return (key, value.map(|v| v.span()), depth),
            }
        }
        (key, value.map(|v| v.span()), path.len())
    }

    /// The span of the value at `path`, or of the deepest part of the path that
    /// exists (a missing key is reported at its table).
    pub fn value(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let (key, value, _) = self.walk(path);
        value.or(key)
    }

    /// The span of the key at the end of `path` (its value's when it is an
    /// array element), or of the deepest part that exists.
    pub fn key(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let (key, value, depth) = self.walk(path);
        match path.last() {
            Some(Seg::Key(_)) if depth == path.len() => key.or(value),
            _ => value.or(key),
        }
    }

    /// Whether `path` is written in the file.
    pub fn has(&self, path: &[Seg<'_>]) -> bool {
        self.walk(path).2 == path.len()
    }

    /// A problem at the value at `path` (or the nearest place that exists).
    pub fn at(&self, path: &[Seg<'_>], msg: impl Into<String>) -> ConfigError {
        match self.value(path) {
            Some(s) => self.loc.at(s.start, msg),
            None => self.loc.whole(msg),
        }
    }

    /// A problem at the key at the end of `path`.
    pub fn at_key(&self, path: &[Seg<'_>], msg: impl Into<String>) -> ConfigError {
        match self.key(path) {
            Some(s) => self.loc.at(s.start, msg),
            None => self.loc.whole(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        keys: Vec<String>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        port: Option<u16>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        On,
        Off,
    }

    fn err(src: &str) -> String {
        from_toml::<File>(&Locator::new("f.toml", src)).unwrap_err().to_string()
    }

    #[test]
    fn a_value_in_the_wrong_place_is_described_not_shown() {
        assert_eq!(
            err("keys = \"hunter2\""),
            "f.toml:1:8: invalid type: a string, expected a sequence"
        );
        let e = err("keys = []\nmode = \"hunter2, expected `on`\"");
        assert_eq!(e, "f.toml:2:8: unknown value; expected `on` or `off`");
        let e = err("keys = []\nport = 70000");
        assert!(e.starts_with("f.toml:2:8: invalid value: an integer, expected u16"), "{e}");
        let e = err("keys = []\nhunter2 = 1");
        assert_eq!(e, "f.toml:2:1: unknown key; expected one of `keys`, `mode`, `port`");
        let e = err("keys = hunter2");
        assert!(e.starts_with("f.toml:1:8: ") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn redact_keeps_messages_without_values() {
        for m in ["missing field `keys`", "duplicate key", "invalid length 2, expected 3"] {
            assert_eq!(redact(m), m);
        }
        assert_eq!(
            redact("invalid type: map, expected a string"),
            "invalid type: a table, expected a string"
        );
        assert_eq!(
            redact("invalid type: string \"a\\\", expected x\", expected a sequence"),
            "invalid type: a string, expected a sequence"
        );
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let src = "[a]\nx = 1\n[[s]]\nname = \"one\"\n[[s]]\nname = \"two\"\n  [s.h]\n  fall = 0\n";
        let sp = Spans::new(Locator::new("f.toml", src));
        let at = |p: &[Seg<'_>]| sp.at(p, "m").to_string();
        assert_eq!(at(&["a".into(), "x".into()]), "f.toml:2:5: m");
        assert_eq!(at(&["s".into(), 1.into(), "name".into()]), "f.toml:6:8: m");
        assert_eq!(at(&["s".into(), 1.into(), "h".into(), "fall".into()]), "f.toml:8:10: m");
        assert_eq!(
            sp.at_key(&["s".into(), 1.into(), "h".into(), "fall".into()], "m").to_string(),
            "f.toml:8:3: m"
        );
        assert!(sp.has(&["s".into(), 0.into(), "name".into()]));
        assert!(!sp.has(&["s".into(), 0.into(), "h".into()]));
        // A missing key is reported at the nearest place that exists.
        assert!(at(&["s".into(), 0.into(), "nope".into()]).starts_with("f.toml:"));
        let broken = Spans::new(Locator::new("f.toml", "x = "));
        assert_eq!(broken.at(&["x".into()], "m").to_string(), "f.toml: m");
    }
}
