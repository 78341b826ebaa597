//! `tacvs hash-password` and `tacvs check`.

use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;
use tacvs_policy::{HashAlgorithm, PasswordHash};

#[derive(Debug, Args)]
pub struct HashArgs {
    /// sha512-crypt (default), sha256-crypt, yescrypt, bcrypt or argon2id.
    #[arg(long, short = 'a', default_value = "sha512-crypt")]
    algorithm: HashAlgorithm,
    /// Read the password from standard input (first line) instead of prompting.
    #[arg(long)]
    stdin: bool,
}

pub fn hash_password(a: HashArgs) -> anyhow::Result<u8> {
    let pw = if a.stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        // Without a terminal (a pipe, cron, CI) there is nothing to prompt on.
        let no_tty = |e: std::io::Error| {
            anyhow::anyhow!(
                "cannot prompt for the password ({e}): without a terminal, pipe it in with \
                    --stdin (echo \"$PW\" | tacvs hash-password --stdin)"
            )
        };
        let p1 = rpassword::prompt_password("Password: ").map_err(no_tty)?;
        let p2 = rpassword::prompt_password("Again: ").map_err(no_tty)?;
        anyhow::ensure!(p1 == p2, "the passwords differ");
        p1
    };
    anyhow::ensure!(!pw.is_empty(), "empty password");
    println!("{}", PasswordHash::create(a.algorithm, pw.as_bytes()).map_err(anyhow::Error::msg)?);
    Ok(0)
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file to validate.
    file: PathBuf,
}

pub fn check(a: CheckArgs) -> anyhow::Result<u8> {
    // A director file has a [director] table; anything else is a server file.
    let text = std::fs::read_to_string(&a.file).unwrap_or_default();
    if text.lines().any(|l| l.trim() == "[director]") {
        return match tacvs_director::config::check_text(&a.file.display().to_string(), &text) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                let d = &c.file;
                let reals: usize = d.services.iter().map(|s| s.reals.len()).sum();
                println!(
                    "{}: OK (director {:?}: {} service(s), {} real server(s)){}",
                    a.file.display(),
                    d.director.name,
                    d.services.len(),
                    reals,
                    match c.warnings.len() {
                        0 => String::new(),
                        n => format!(", {n} warning(s)"),
                    }
                );
                Ok(0)
            }
            Err(errs) => {
                eprintln!("{errs}");
                eprintln!("{}: {} error(s)", a.file.display(), errs.len());
                Ok(1)
            }
        };
    }
    match tacvs_policy::load(&a.file) {
        Ok(p) => {
            // Directory TLS settings (CA files) and filters, as the server builds them.
            let p = std::sync::Arc::new(p);
            let ops = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            if let Err(e) = tacvs_server::directory::Directories::new(p.clone(), ops) {
                eprintln!("{}: {e}", a.file.display());
                eprintln!("{}: 1 error(s)", a.file.display());
                return Ok(1);
            }
            for w in &p.warnings {
                eprintln!("warning: {w}");
            }
            let warned = match p.warnings.len() {
                0 => String::new(),
                n => format!(", {n} warning(s) above"),
            };
            let dirs = match p.directories.len() {
                0 => String::new(),
                n => format!(", {n} directory(ies)"),
            };
            println!(
                "{}: OK (server {:?}: {} listener(s), {} device group(s), {} group(s), {} user(s){dirs}{warned})",
                a.file.display(),
                p.server_name,
                p.listeners.len(),
                p.device_groups.len(),
                p.groups.len(),
                p.user_count()
            );
            Ok(0)
        }
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("{}: {} error(s)", a.file.display(), errs.0.len());
            Ok(1)
        }
    }
}
