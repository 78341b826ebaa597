//! `tacvs generate` (hidden): shell completions and man pages made from the
//! clap definitions themselves, so they cannot drift from the binary. The
//! Debian package runs it at build time (scripts/package).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Subcommand};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// The completion script for SHELL, on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Man pages into DIR: tacvs.1 and one per subcommand (tacvs-server.1, …).
    Man {
        /// Where to write them (created if missing).
        dir: PathBuf,
    },
}

pub fn run(a: GenerateArgs) -> anyhow::Result<u8> {
    let mut cmd = crate::Cli::command();
    match a.what {
        What::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "tacvs", &mut std::io::stdout());
        }
        What::Man { dir } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(cmd, &dir)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_subcommand() {
        let dir = std::env::temp_dir().join(format!("tacvs-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        run(GenerateArgs { what: What::Man { dir: dir.clone() } }).unwrap();
        let cmd = crate::Cli::command();
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let page = dir.join(format!("tacvs-{}.1", sub.get_name()));
            let text = std::fs::read_to_string(&page)
                .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
            assert!(text.contains(".TH"), "{}", page.display());
        }
        let top = std::fs::read_to_string(dir.join("tacvs.1")).unwrap();
        assert!(
            top.contains("import") && !top.contains("generate"),
            "the hidden command stays hidden"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
