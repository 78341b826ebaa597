//! Configuration errors that point at the file, line and column at fault.

use std::fmt;

use thiserror::Error;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A problem at a place in the file.
    #[error("{file}:{line}:{col}: {msg}")]
    At {
        /// File name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters, not bytes).
        col: usize,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A problem with the file as a whole.
    #[error("{file}: {msg}")]
    File {
        /// File name as given.
        file: String,
        /// What is wrong and what to do.
        msg: String,
    },
}

impl ConfigError {
    /// What is wrong, without the place.
    pub fn message(&self) -> &str {
        match self {
            ConfigError::At { msg, .. } | ConfigError::File { msg, .. } => msg,
        }
    }

    /// The 1-based line, when the problem has a place.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::At { line, .. } => Some(*line),
            ConfigError::File { .. } => None,
        }
    }
}

/// Every problem found in one file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in file order where they have a place.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Maps byte offsets of a source text to line and column.
#[derive(Debug, Clone, Copy)]
pub struct Locator<'a> {
    /// File name as given (in every message).
    pub file: &'a str,
    /// The file's text.
    pub src: &'a str,
}

impl<'a> Locator<'a> {
    /// A locator for `src`, read from `file`.
    pub fn new(file: &'a str, src: &'a str) -> Self {
        Locator { file, src }
    }

    /// Line and column (1-based; the column counts characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// A problem at a byte offset.
    pub fn at(&self, offset: usize, msg: impl Into<String>) -> ConfigError {
        let (line, col) = self.position(offset);
        ConfigError::At { file: self.file.to_owned(), line, col, msg: msg.into() }
    }

    /// A problem with the file as a whole.
    pub fn whole(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::File { file: self.file.to_owned(), msg: msg.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let src = "a = 1\nb = \"é\" x\n";
        let l = Locator::new("f.toml", src);
        assert_eq!(l.position(0), (1, 1));
        assert_eq!(l.position(6), (2, 1));
        let x = src.find('x').unwrap();
        assert_eq!(l.position(x), (2, 9), "é is one column");
        assert_eq!(l.position(999), (3, 1));
        assert_eq!(l.at(6, "bad").to_string(), "f.toml:2:1: bad");
        assert_eq!(l.whole("bad").to_string(), "f.toml: bad");
    }
}
