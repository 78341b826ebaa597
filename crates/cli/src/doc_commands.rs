//! Every `tacvs` command in README.md and docs/*.md works as written.
//!
//! Each command line of a code block (and each inline `tacvs …` span with an
//! option and no `…`) is given to bash exactly as printed, with `tacvs` (and the
//! `ip netns exec NS`, `taskset -c N` and `sudo` in front of it) replaced by
//! shell functions that record the arguments bash passes. So an unquoted `<`
//! that bash takes for a redirection fails here as it fails for a reader.
//! The recorded arguments are then parsed with the real clap definitions and
//! checked as `tacvs` would before doing anything (expectations, profiles,
//! scenarios; inline spans, which may leave out what their prose supplies,
//! are only parsed). The commands that are safe to run here — `tacvs check`, and the
//! client and simulator commands aimed at the example server's address — are
//! then run against the example server, started in this process on a port of
//! its own.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::Parser;

use crate::{Cli, Command};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A command as the documentation prints it.
#[derive(Debug, Clone)]
struct DocCommand {
    /// `README.md:55`.
    at: String,
    /// The command line, continuation lines joined.
    line: String,
    /// From an inline code span (a reference in prose) rather than a block.
    inline: bool,
}

/// Whether a shell line runs `tacvs` (possibly through `sudo`, `taskset -c N`
/// or `ip netns exec NS`).
fn runs_tacvs(line: &str) -> bool {
    let w: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    loop {
        match w.get(i).copied() {
            Some("sudo") => i += 1,
            Some("taskset") => i += 3,
            Some("ip") if w.get(i + 1) == Some(&"netns") => i += 4,
            Some("tacvs") => return true,
            _ => return false,
        }
    }
}

/// The commands of one Markdown file: lines of fenced and indented code
/// blocks that run `tacvs`, and inline spans that are a whole `tacvs`
/// command (they start with it and hold an option; no `…` placeholder).
fn extract(name: &str, text: &str) -> Vec<DocCommand> {
    let mut out = Vec::new();
    let mut fenced: Option<bool> = None; // Some(shell?) inside a fence
    let mut prev_blank = true;
    let mut in_indented = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(rest) = raw.trim_start().strip_prefix("```") {
            fenced = match fenced {
                Some(_) => None,
                None => Some(matches!(rest.trim(), "" | "sh" | "bash" | "console" | "shell")),
            };
            continue;
        }
        let code = match fenced {
            Some(shell) => shell.then_some(raw),
            None => {
                let indented = raw.starts_with("    ") || raw.starts_with('\t');
                in_indented = indented && (in_indented || prev_blank);
                prev_blank = raw.trim().is_empty();
                if in_indented {
                    Some(raw)
                } else {
                    // Inline spans of prose.
                    for span in raw.split('`').skip(1).step_by(2) {
                        if runs_tacvs(span)
                            && span.contains(" -")
                            && !span.contains("...")
                            && !span.contains('…')
                        {
                            out.push(DocCommand {
                                at: format!("{name}:{n}"),
                                line: span.to_owned(),
                                inline: true,
                            });
                        }
                    }
                    None
                }
            }
        };
        let Some(code) = code else { continue };
        let code = code.trim();
        let (start, joined) = match pending.take() {
            Some((s, mut acc)) => {
                acc.push(' ');
                acc.push_str(code);
                (s, acc)
            }
            None => (n, code.to_owned()),
        };
        if let Some(body) = joined.strip_suffix('\\') {
            pending = Some((start, body.trim_end().to_owned()));
            continue;
        }
        if runs_tacvs(&joined) {
            out.push(DocCommand { at: format!("{name}:{start}"), line: joined, inline: false });
        }
    }
    out
}

fn documented() -> Vec<DocCommand> {
    let root = workspace();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let name = f.strip_prefix(&root).unwrap().display().to_string();
        out.extend(extract(&name, &std::fs::read_to_string(&f).unwrap()));
    }
    out
}

/// Shell functions standing in for `tacvs` and what the docs put before it:
/// each `tacvs` call writes its arguments, NUL-separated, to its own file.
const SHIMS: &str = r#"
tacvs() { printf '%s\0' tacvs "$@" > "$TACVS_DOC_ARGV/$(date +%s%N)-$BASHPID"; }
sudo() { "$@"; }
taskset() { while [ "$#" -gt 0 ] && [ "$1" != tacvs ]; do shift; done; "$@"; }
ip() {
  if [ "$1" = netns ] && [ "$2" = exec ]; then shift 3; "$@"; return; fi
  echo "ip $*: not something this check runs" >&2; return 1
}
"#;

/// The argument vectors bash passes to `tacvs` for `line`, or what bash said.
fn through_bash(line: &str, scratch: &Path) -> Result<Vec<Vec<String>>, String> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    let out = Process::new("bash")
        .args(["--norc", "--noprofile", "-c", &format!("{SHIMS}\n{line}\nwait\n")])
        .env("TACVS_DOC_ARGV", scratch)
        .current_dir(scratch)
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(format!("bash: {}", stderr.trim()));
    }
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(scratch).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    Ok(files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .unwrap()
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .collect())
}

/// Relative paths the docs give (run from the repository) made absolute, so
/// that the check does not depend on the test's working directory.
fn anchored(argv: &[String], root: &Path) -> Vec<String> {
    argv.iter()
        .map(|a| {
            let p = Path::new(a);
            if !a.is_empty() && !a.starts_with('-') && p.is_relative() && root.join(p).is_file() {
                root.join(p).display().to_string()
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Parse with the real definitions and check as `tacvs` would before acting.
fn check(argv: &[String]) -> Result<Option<Cli>, String> {
    let cli = match parse(argv)? {
        Some(c) => c,
        None => return Ok(None),
    };
    let checked = match &cli.command {
        Command::Client(a) => crate::client::validate(a),
        Command::Sim(a) => crate::sim::validate(a),
        Command::Lab(a) => crate::lab::validate(a),
        _ => Ok(()),
    };
    checked.map_err(|e| format!("{e:#}"))?;
    Ok(Some(cli))
}

/// Parse with the real definitions; `None` for `--help` and `--version`,
/// which print and exit 0.
fn parse(argv: &[String]) -> Result<Option<Cli>, String> {
    match Cli::try_parse_from(argv) {
        Ok(c) => Ok(Some(c)),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.render().to_string()),
    }
}

#[test]
fn every_documented_command_parses_as_bash_and_tacvs_see_it() {
    let root = workspace();
    let scratch = std::env::temp_dir().join(format!("tacvs-doc-argv-{}", std::process::id()));
    let cmds = documented();
    assert!(cmds.len() >= 20, "found only {} commands: is the extraction broken?", cmds.len());
    let mut bad = Vec::new();
    for c in &cmds {
        match through_bash(&c.line, &scratch) {
            Err(e) => bad.push(format!("{}: `{}`: {e}", c.at, c.line)),
            Ok(argvs) if argvs.is_empty() => {
                bad.push(format!("{}: `{}`: bash ran no tacvs command", c.at, c.line))
            }
            Ok(argvs) => {
                for argv in argvs {
                    // An inline span names a command in prose (a table
                    // cell may leave out --server): clap must take it.
                    let argv = anchored(&argv, &root);
                    let res =
                        if c.inline { parse(&argv).map(|_| ()) } else { check(&argv).map(|_| ()) };
                    if let Err(e) = res {
                        bad.push(format!("{}: `{}`: {e}", c.at, c.line));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(bad.is_empty(), "documented commands that do not work as written:\n{}", bad.join("\n"));
}

#[test]
fn the_check_catches_what_a_reader_would_hit() {
    let scratch = std::env::temp_dir().join(format!("tacvs-doc-neg-{}", std::process::id()));
    // The README's old line: bash reads `<20ms` as "input from the file 20ms".
    let unquoted =
        "tacvs sim --target 127.0.0.1:4949 --key k --rate 10 --expect errors==0,p99<20ms";
    let e = through_bash(unquoted, &scratch).unwrap_err();
    assert!(e.contains("20ms"), "{e}");
    let quoted =
        "tacvs sim --server 127.0.0.1:4949 --key k --rate 10 --expect 'errors==0,p99<20ms'";
    let argvs = through_bash(quoted, &scratch).unwrap();
    assert_eq!(argvs.len(), 1);
    assert_eq!(argvs[0].last().unwrap(), "errors==0,p99<20ms");
    check(&argvs[0]).unwrap();
    // A synopsis is not a command: `[--json]` is no option.
    let argvs = through_bash("tacvs director status [--json]", &scratch).unwrap();
    assert!(check(&argvs[0]).is_err());
    // An expectation tacvs would refuse.
    let argvs = through_bash("tacvs sim --server h:1 --rate 1 --expect 'p98<1'", &scratch).unwrap();
    assert!(check(&argvs[0]).unwrap_err().contains("unknown metric"));
    // Prefixes and continuation lines.
    let cmds = extract(
        "x.md",
        "text `tacvs sim --server a:1 --rate 1` and `tacvs sim ... --json FILE`\n\n    ip \
            netns exec ns tacvs lab run nope \\\n        --scale 2\n",
    );
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert!(cmds[0].inline && cmds[1].at == "x.md:3", "{cmds:?}");
    let argvs = through_bash(&cmds[1].line, &scratch).unwrap();
    assert_eq!(argvs[0], ["tacvs", "lab", "run", "nope", "--scale", "2"]);
    assert!(check(&argvs[0]).unwrap_err().contains("no scenario"));
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The example server's address in the docs, and what the run uses instead.
const EXAMPLE_ADDR: &str = "127.0.0.1:4949";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_commands_against_the_example_server_succeed() {
    let root = workspace();
    let dir = std::env::temp_dir().join(format!("tacvs-doc-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // examples/server.toml as shipped, on a port of its own, its files here.
    let text = std::fs::read_to_string(root.join("examples/server.toml"))
        .unwrap()
        .replace(EXAMPLE_ADDR, "127.0.0.1:0")
        .replace("\"./var/", &format!("\"{}/", dir.display()));
    let policy =
        tacvs_policy::parse("examples/server.toml", &text, &root.join("examples")).unwrap();
    let srv = tacvs_server::start(policy, None).await.unwrap();
    let addr = srv.local_addrs[0].to_string();
    let scratch = dir.join("argv");
    let mut ran = Vec::new();
    let mut bad = Vec::new();
    for c in documented().into_iter().filter(|c| !c.inline) {
        let Ok(argvs) = through_bash(&c.line, &scratch) else { continue };
        for argv in argvs {
            let argv = anchored(&argv, &root);
            let sub = argv.get(1).map(String::as_str);
            let aimed = argv.iter().any(|a| a == EXAMPLE_ADDR);
            let runnable = match sub {
                Some("check") => argv.get(2).is_some_and(|f| Path::new(f).is_file()),
                Some("client") | Some("sim") => aimed,
                _ => false,
            };
            if !runnable {
                continue;
            }
            let argv = shortened(&argv, &addr);
            let Ok(Some(cli)) = check(&argv) else { continue }; // reported by the parse test
            let code = crate::dispatch(cli.command).await;
            match code {
                Ok(0) => ran.push(format!("{}: {}", c.at, argv[1..].join(" "))),
                other => bad.push(format!("{}: `{}` → {other:?}", c.at, argv.join(" "))),
            }
        }
    }
    srv.shutdown(std::time::Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(bad.is_empty(), "documented commands that failed:\n{}", bad.join("\n"));
    // At least the README's check, client and sim lines ran.
    for sub in ["check", "client", "sim"] {
        assert!(
            ran.iter().any(|r| r.contains(&format!(": {sub} "))),
            "no documented `tacvs {sub}` ran: {ran:#?}"
        );
    }
}

/// A documented command made to fit a test: the example server's address
/// replaced by the one it got, and a simulation cut to one second at no more
/// than 300 requests/s without its `--expect` (a statement about a release
/// build on a machine of its own; the parse test checks it).
fn shortened(argv: &[String], addr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = argv.iter().map(|a| if a == EXAMPLE_ADDR { addr.to_owned() } else { a.clone() });
    let sim = argv.get(1).is_some_and(|s| s == "sim");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--duration" | "--warmup" if sim => {
                it.next();
            }
            "--expect" if sim => {
                it.next();
            }
            "--rate" if sim => {
                let r: f64 = it.next().and_then(|r| r.parse().ok()).unwrap_or(300.0);
                out.extend(["--rate".into(), r.min(300.0).to_string()]);
            }
            _ => out.push(a),
        }
    }
    if sim {
        out.extend(["--duration", "1s", "--warmup", "0s"].map(String::from));
    }
    out
}
