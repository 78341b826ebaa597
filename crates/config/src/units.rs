//! Config value types that parse from human strings: durations ("200ms", "5m")
//! and sizes ("128MiB"). A bad value is reported by the TOML parser at its place;
//! the message describes the mistake without repeating the value (it may be a
//! secret written in the wrong field).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written like `250ms`, `30s`, `5m`, `24h`. Shown the same way.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// From whole seconds.
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    /// From milliseconds.
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Parse `250ms`, `1m 30s`, ...; the error says what is wrong without
    /// quoting the text.
    pub fn parse(s: &str) -> Result<Dur, String> {
        use humantime::DurationError as E;
        humantime::parse_duration(s).map(Dur).map_err(|e| {
            let what = match e {
                E::Empty => "it is empty".to_owned(),
                E::InvalidCharacter(at) => format!("character {} is not allowed", at + 1),
                E::NumberExpected(at) => format!("a number is missing at character {}", at + 1),
                E::UnknownUnit { start, .. } => {
                    format!("the unit at character {} is not a unit", start + 1)
                }
                E::NumberOverflow => "the number is too large".to_owned(),
            };
            format!(
                "invalid duration: {what}; write a number and a unit (ms, s, m, h, d), e.g. \"250ms\", \"30s\", \"5m\""
            )
        })
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Duration {
        d.0
    }
}

impl From<Duration> for Dur {
    fn from(d: Duration) -> Dur {
        Dur(d)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes, written as a number or like `64KiB`, `128MiB`, `1GiB`, `500MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl Size {
    /// Parse a size string.
    pub fn parse(s: &str) -> Option<u64> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().ok()?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => Size::parse(&s).map(Size).ok_or_else(|| {
                serde::de::Error::custom(
                    "invalid size; write a byte count or a number and a unit (KB, KiB, MB, \
                        MiB, GB, GiB), e.g. \"64KiB\", \"128MiB\", \"1GiB\"",
                )
            }),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("128MiB"), Some(128 << 20));
        assert_eq!(Size::parse("10"), Some(10));
        assert_eq!(Size::parse("5 GB"), Some(5_000_000_000));
        assert_eq!(Size::parse("12XB"), None);
        assert_eq!(Size::parse("99999999999999999999GiB"), None);
    }

    #[test]
    fn durations_parse_show_and_never_quote_the_text() {
        assert_eq!(Dur::parse("250ms"), Ok(Dur::millis(250)));
        assert_eq!(Dur::parse("1m 30s"), Ok(Dur::secs(90)));
        assert_eq!(Dur::millis(1500).to_string(), "1s 500ms");
        assert_eq!(format!("{:?}", Dur::secs(5)), "5s");
        for bad in ["", "soon-hunter2", "5 hunter2", "hunter2", "9999999999999999999999h"] {
            let e = Dur::parse(bad).unwrap_err();
            assert!(e.starts_with("invalid duration"), "{e}");
            assert!(bad.is_empty() || !e.contains("hunter2"), "{e}");
        }
    }
}
