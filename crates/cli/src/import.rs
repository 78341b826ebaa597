//! `tacvs import`: a classic tac_plus or tac_plus-ng configuration translated
//! into a tacvs server file, with the report of what could not be kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use tacvs_import::{Dialect, Options};
use tacvs_policy::HashAlgorithm;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum From {
    /// `tac_plus-ng` when the file has `id = tac_plus-ng`, else `tac_plus`.
    Auto,
    /// Classic tac_plus (Cisco, Shrubbery tac_plus-F, Facebook's fork).
    #[value(name = "tac_plus")]
    TacPlus,
    /// Marc Huber's tac_plus-ng.
    #[value(name = "tac_plus-ng")]
    TacPlusNg,
}

/// Exit status: 0 when every decision is kept, 1 when the report lists
/// decisions tacvs makes differently (the output is written; read the report),
/// 2 when the file cannot be read or translated.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tac_plus or tac_plus-ng configuration file.
    file: PathBuf,
    /// Which program the file is for.
    #[arg(long, value_enum, default_value = "auto")]
    from: From,
    /// Write the tacvs configuration here (mode 0600: it holds keys) instead
    /// of standard output.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Write the report here instead of standard error.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Anchor command patterns at both ends (tac_plus matches them anywhere);
    /// the report lists every rule this changes.
    #[arg(long)]
    anchor: bool,
    /// Listener address of the output (repeatable).
    #[arg(long, default_value = "0.0.0.0:49")]
    listen: Vec<String>,
    /// Directory for the output's journal and password store.
    #[arg(long, default_value = "/var/lib/tacvs")]
    state_dir: String,
    /// Algorithm for hashing the file's clear-text passwords: sha512-crypt,
    /// sha256-crypt, yescrypt, bcrypt or argon2id.
    #[arg(long, default_value = "sha512-crypt")]
    hash: HashAlgorithm,
}

pub fn run(a: ImportArgs) -> anyhow::Result<u8> {
    let name = a.file.display().to_string();
    if let Some(out) = &a.output
        && same_file(out, &a.file)
    {
        anyhow::bail!("--output {} is the file being imported", out.display());
    }
    let text = read(&a.file)?;
    let dialect = match a.from {
        From::Auto => Dialect::detect(&text),
        From::TacPlus => Dialect::Classic,
        From::TacPlusNg => Dialect::Ng,
    };
    let opts = Options {
        anchor: a.anchor,
        listen: a.listen,
        state_dir: a.state_dir,
        hash: a.hash,
        ..Options::default()
    };
    let imported = match tacvs_import::import(&name, &text, dialect, &opts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{name}: nothing written");
            return Ok(2);
        }
    };
    let report = format!("{}\n", imported.report);
    match &a.output {
        Some(path) => write_private(path, imported.toml.as_bytes())?,
        None => std::io::stdout().write_all(imported.toml.as_bytes())?,
    }
    match &a.report {
        Some(path) => std::fs::write(path, &report)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => eprint!("{report}"),
    }
    Ok(if imported.report.has_differences() { 1 } else { 0 })
}

fn read(path: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= tacvs_import::MAX_INPUT as u64,
        "{} is larger than {} MiB",
        path.display(),
        tacvs_import::MAX_INPUT >> 20
    );
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (byte {} is not); convert it (e.g. iconv -f latin1 -t utf-8)",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Write `data` to `path` readable by its owner only, replacing it atomically.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tacvs-import.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> ImportArgs {
        let mut v = vec!["tacvs", "import"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Import(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_a_private_file_and_says_whether_decisions_differ() {
        let dir = std::env::temp_dir().join(format!("tacvs-cli-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("tac_plus.conf");
        let out = dir.join("server.toml");
        let rep = dir.join("report.txt");
        let o = out.to_str().unwrap();
        let r = rep.to_str().unwrap();
        let s = src.to_str().unwrap();

        std::fs::write(&src, "key = k\nuser = a \
            { login = cleartext \"secret-pw\" pap = cleartext \"secret-pw\" service = exec { priv-lvl = 15 } }\n").unwrap();
        assert_eq!(run(parse(&["-o", o, "--report", r, "--hash", "sha256-crypt", s])).unwrap(), 0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        let toml = std::fs::read_to_string(&out).unwrap();
        assert!(toml.contains("$5$") && !toml.contains("secret-pw"), "{toml}");
        tacvs_policy::load(&out).unwrap();
        assert!(std::fs::read_to_string(&rep).unwrap().contains("every decision is kept"));

        std::fs::write(&src, "key = k\nuser = a { login = des \"abZl.OFHvCz/Y\" }\n").unwrap();
        assert_eq!(run(parse(&["-o", o, "--report", r, s])).unwrap(), 1);
        assert!(std::fs::read_to_string(&rep).unwrap().contains("DES-crypt"));

        std::fs::write(&src, "key = k\nuser = a { bogus = 1 }\n").unwrap();
        assert_eq!(run(parse(&["-o", o, "--report", r, s])).unwrap(), 2);
        assert!(run(parse(&["-o", s, s])).is_err(), "never overwrites its input");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
