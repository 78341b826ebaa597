//! Attribute-value pairs, RFC 8907 §6.1: `name=value` is mandatory, `name*value`
//! optional. The first `=` or `*` separates; names never contain either.

use std::fmt;

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};

/// One AV pair, stored as its wire string (zero-copy when decoded).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Argument {
    raw: Bytes,
    sep: usize,
}

impl Argument {
    /// A mandatory (`=`) or optional (`*`) argument. Fails when the name is empty
    /// or holds a separator, or the whole pair exceeds 255 bytes.
    pub fn new(name: &str, value: &str, mandatory: bool) -> Result<Self, EncodeError> {
        if name.is_empty() || name.contains(['=', '*']) {
            return Err(EncodeError::FieldTooLong {
                field: "argument name (empty or holds '=' / '*')",
                len: name.len(),
                max: 0,
            });
        }
        let mut raw = Vec::with_capacity(name.len() + 1 + value.len());
        raw.extend_from_slice(name.as_bytes());
        raw.push(if mandatory { b'=' } else { b'*' });
        raw.extend_from_slice(value.as_bytes());
        if raw.len() > 255 {
            return Err(EncodeError::FieldTooLong { field: "argument", len: raw.len(), max: 255 });
        }
        Ok(Argument { sep: name.len(), raw: raw.into() })
    }

    /// Parse `name=value` / `name*value` (as typed on a command line or read off the wire).
    pub fn parse(raw: Bytes, packet: &'static str) -> Result<Self, DecodeError> {
        let sep = raw.iter().position(|&b| b == b'=' || b == b'*').ok_or(DecodeError::Invalid {
            packet,
            field: "argument",
            reason: "no '=' or '*' separator",
        })?;
        if sep == 0 {
            return Err(DecodeError::Invalid {
                packet,
                field: "argument",
                reason: "empty attribute name",
            });
        }
        Ok(Argument { raw, sep })
    }

    /// The attribute name.
    pub fn name(&self) -> &[u8] {
        &self.raw[..self.sep]
    }
    /// The value (may be empty).
    pub fn value(&self) -> &[u8] {
        &self.raw[self.sep + 1..]
    }
    /// The name as text (lossy for non-UTF-8 bytes).
    pub fn name_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.name())
    }
    /// The value as text (lossy for non-UTF-8 bytes).
    pub fn value_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.value())
    }
    /// `=` (mandatory) versus `*` (optional).
    pub fn mandatory(&self) -> bool {
        self.raw[self.sep] == b'='
    }
    /// The wire form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }
}

impl fmt::Debug for Argument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.raw))
    }
}

impl fmt::Display for Argument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.raw))
    }
}

impl std::str::FromStr for Argument {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() > 255 {
            return Err(format!("argument {s:?} is {} bytes, at most 255 fit", s.len()));
        }
        Argument::parse(Bytes::copy_from_slice(s.as_bytes()), "argument").map_err(|_| {
            format!("argument {s:?} must look like name=value (mandatory) or name*value (optional)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let a: Argument = "cmd-arg=a=b".parse().unwrap();
        assert_eq!(a.name(), b"cmd-arg");
        assert_eq!(a.value(), b"a=b");
        assert!(a.mandatory());
        let o: Argument = "timeout*30".parse().unwrap();
        assert!(!o.mandatory());
        assert_eq!(o.value(), b"30");
        let e: Argument = "cmd=".parse().unwrap();
        assert_eq!(e.value(), b"");
        assert!("noval".parse::<Argument>().is_err());
        assert!("=x".parse::<Argument>().is_err());
        assert_eq!(Argument::new("service", "shell", true).unwrap().as_bytes(), b"service=shell");
        assert!(Argument::new("", "x", true).is_err());
        assert!(Argument::new("a", &"x".repeat(300), true).is_err());
    }
}
