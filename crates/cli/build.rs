//! Records the git commit the binary is built from, for `tacvs --version`
//! (and every subcommand's). A build outside a git checkout (a source
//! tarball) says "unknown"; `TACVS_GIT_COMMIT` overrides both.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TACVS_GIT_COMMIT");
    let commit = std::env::var("TACVS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it
    // names (a commit), both in the checkout's git directory.
    // Only files that exist: a missing one would rerun this on every build.
    let watch = |p: PathBuf| {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        watch(dir.join("HEAD"));
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"])
            && let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from)
        {
            watch(common.join(&r));
            watch(common.join("packed-refs"));
        }
    }
    println!("cargo:rustc-env=TACVS_GIT_COMMIT={commit}");
}
