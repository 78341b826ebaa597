//! # tacvs-import
//!
//! `tacvs import`: a classic tac_plus (Shrubbery / tac_plus-F) or tac_plus-ng
//! configuration translated into a tacvs server file, with a report of every
//! construct that could not be carried over exactly.
//!
//! Shape: each dialect has a tokenizer and parser (pure, bounded, with line
//! numbers: hostile input gets an error, never a panic) and a translator that
//! walks the parsed file with the source program's own evaluation rules and
//! produces an [`model::Output`]: device groups, groups, users. The output is
//! written as TOML ([`model::Output::to_toml`]) and, before it is handed back,
//! compiled by the policy crate exactly as `tacvs check` would.
//!
//! The contract: no decision changes silently. Where tacvs would decide a
//! request differently from the source (an unverifiable DES hash, a
//! per-user ACL, a script the translator does not follow), the output takes
//! the stricter side and the [`report::Report`] says so with the source line
//! (severity `DIFFERS`). Command patterns keep their unanchored meaning
//! (written as explicit `(?s:.*)`) unless the caller asks to anchor them, and
//! then every rule that changes is reported.

pub mod classic;
pub mod model;
pub mod ng;
pub mod regex;
pub mod report;

use std::fmt;

pub use model::Output;
pub use report::{Report, Severity};
use tacvs_policy::HashAlgorithm;
use thiserror::Error;

/// Largest configuration file read.
pub const MAX_INPUT: usize = 16 << 20;

/// Which program the configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Classic tac_plus: Cisco's, Shrubbery's tac_plus-F, Facebook's fork.
    Classic,
    /// Marc Huber's tac_plus-ng.
    Ng,
}

impl Dialect {
    /// Guess from the text: tac_plus-ng files hold `id = tac_plus-ng`.
    pub fn detect(text: &str) -> Dialect {
        let ng = text.lines().any(|l| {
            let l = l.split('#').next().unwrap_or("");
            let w: Vec<&str> = l
                .split(|c: char| c.is_whitespace() || c == '=')
                .filter(|w| !w.is_empty())
                .collect();
            w.len() >= 2 && w[0] == "id" && w[1] == "tac_plus-ng"
        });
        if ng { Dialect::Ng } else { Dialect::Classic }
    }

    /// The program's name.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Classic => "tac_plus",
            Dialect::Ng => "tac_plus-ng",
        }
    }
}

/// How to translate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Anchor command patterns at both ends (changes meanings; reported).
    pub anchor: bool,
    /// `[[server.listen]]` addresses of the output.
    pub listen: Vec<String>,
    /// Where the output's journal and password store live.
    pub state_dir: String,
    /// Algorithm for hashing clear-text passwords of the source.
    pub hash: HashAlgorithm,
    /// Today, as days since 1970-01-01 (for `expires` dates).
    pub today: i64,
}

impl Default for Options {
    fn default() -> Self {
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| (d.as_secs() / 86_400) as i64);
        Options {
            anchor: false,
            listen: vec!["0.0.0.0:49".into()],
            state_dir: "/var/lib/tacvs".into(),
            hash: HashAlgorithm::Sha512Crypt,
            today,
        }
    }
}

/// Why nothing was produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    /// The source file is malformed where its own program would refuse it too.
    #[error("{file}:{line}:{col}: {msg}")]
    Syntax {
        /// File name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// The file as a whole.
    #[error("{file}: {msg}")]
    File {
        /// File name as given.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// The translation does not pass the server's own validation: a defect of
    /// `tacvs import`, reported with the validation errors.
    #[error(
        "{file}: the translated configuration does not pass `tacvs check` (a defect in tacvs import, please report it):\n{errors}"
    )]
    Invalid {
        /// Source file name.
        file: String,
        /// The validation errors.
        errors: String,
    },
}

/// A position in the source, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A syntax error at `pos` of `file`.
pub(crate) fn syntax(file: &str, pos: Pos, msg: impl Into<String>) -> ImportError {
    ImportError::Syntax { file: file.to_owned(), line: pos.line, col: pos.col, msg: msg.into() }
}

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    /// The translated model (users' clear-text passwords are hashed in `toml`).
    pub output: Output,
    /// The tacvs server file, validated.
    pub toml: String,
    /// Everything not carried over exactly.
    pub report: Report,
}

/// Parse and translate without writing TOML: the model and the report.
pub fn translate(
    file: &str,
    text: &str,
    dialect: Dialect,
    opts: &Options,
) -> Result<(Output, Report), ImportError> {
    if text.len() > MAX_INPUT {
        return Err(ImportError::File {
            file: file.to_owned(),
            msg: format!("larger than {} MiB; split it or raise the limit", MAX_INPUT >> 20),
        });
    }
    let mut report = Report::new(file);
    let output = match dialect {
        Dialect::Classic => classic::translate(file, text, opts, &mut report)?,
        Dialect::Ng => ng::translate(file, text, opts, &mut report)?,
    };
    report.finish();
    Ok((output, report))
}

/// Translate `text` (named `file` in messages) from `dialect` into a tacvs
/// server file, hash clear-text passwords with `opts.hash`, and check the
/// result as `tacvs check` does.
pub fn import(
    file: &str,
    text: &str,
    dialect: Dialect,
    opts: &Options,
) -> Result<Imported, ImportError> {
    let (output, report) = translate(file, text, dialect, opts)?;
    let alg = opts.hash;
    let toml = output
        .to_toml(&|pw: &[u8]| tacvs_policy::PasswordHash::create(alg, pw))
        .map_err(|msg| ImportError::File { file: file.to_owned(), msg })?;
    check(file, &toml)?;
    Ok(Imported { output, toml, report })
}

/// Compile `toml` as the server would; any error is a defect of the importer.
pub fn check(file: &str, toml: &str) -> Result<(), ImportError> {
    tacvs_policy::parse("imported.toml", toml, std::path::Path::new("."))
        .map(drop)
        .map_err(|e| ImportError::Invalid { file: file.to_owned(), errors: e.to_string() })
}
