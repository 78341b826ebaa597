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
        /// 1-based column.
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

/// Every problem found in one file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

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
pub(crate) struct Locator<'a> {
    pub file: &'a str,
    pub src: &'a str,
}

impl Locator<'_> {
    pub fn at(&self, offset: usize, msg: impl Into<String>) -> ConfigError {
        let before = &self.src[..offset.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
        ConfigError::At { file: self.file.to_owned(), line, col, msg: msg.into() }
    }

    pub fn whole(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::File { file: self.file.to_owned(), msg: msg.into() }
    }
}
