//! `tacvs policy explain` (one decision and everything that led to it) and
//! `tacvs policy diff` (the authorization log replayed against two
//! configurations: every decision that would change).
//!
//! Exit status: explain 0 when permitted, 1 when refused; diff 0 when no
//! decision changes, 1 when some do; 2 on a usage or set-up error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use tacvs_policy::{AuthorDecision, Policy, User};
use tacvs_proto::{AaaRequest, Argument, AuthorStatus};
use tacvs_server::backend::{self, Identity, Lookup, Need, Plan};
use tacvs_server::journal::AuthzRecord;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print the decision for one request and every group, LDAP group, rule
    /// and grant that led to it (directory users are looked up).
    Explain(ExplainArgs),
    /// Replay the authorization log (`authz-*.jsonl` in the journal directory)
    /// against OLD and NEW and list every decision that would change.
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The server's configuration file.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// The user.
    #[arg(long)]
    user: String,
    /// The command line (none: the service itself, as an exec authorization).
    #[arg(long)]
    cmd: Option<String>,
    /// The service AV.
    #[arg(long, default_value = "shell")]
    service: String,
    /// The device's address (default: the first device group).
    #[arg(long)]
    device: Option<IpAddr>,
    /// Directory groups (DNs) to use instead of asking the directory.
    #[arg(long = "ldap-group")]
    ldap_groups: Vec<String>,
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// The configuration in force.
    old: PathBuf,
    /// The configuration to compare.
    new: PathBuf,
    /// The journal directory holding the authorization log.
    #[arg(long)]
    replay: PathBuf,
}

pub async fn run(a: PolicyArgs) -> anyhow::Result<u8> {
    match a.command {
        PolicyCommand::Explain(e) => explain(e).await,
        PolicyCommand::Diff(d) => diff(d),
    }
}

fn load(path: &Path) -> anyhow::Result<Policy> {
    tacvs_policy::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn request(user: &str, service: &str, cmd: Option<&str>) -> anyhow::Result<AaaRequest> {
    let mut args = vec![Argument::new("service", service, true).map_err(anyhow::Error::msg)?];
    if let Some(line) = cmd {
        let mut words = line.split_whitespace();
        if let Some(first) = words.next() {
            args.push(Argument::new("cmd", first, true).map_err(anyhow::Error::msg)?);
            for w in words {
                args.push(Argument::new("cmd-arg", w, true).map_err(anyhow::Error::msg)?);
            }
        }
    }
    Ok(AaaRequest::new(user.to_owned(), args))
}

fn status_word(s: AuthorStatus) -> &'static str {
    match s {
        AuthorStatus::PassAdd => "PERMIT (PASS_ADD)",
        AuthorStatus::PassRepl => "PERMIT (PASS_REPL)",
        AuthorStatus::Fail => "DENY (FAIL)",
        _ => "ERROR",
    }
}

/// The mapped groups of `ldap_groups` in `dir`, printed.
fn mapped(policy: &Policy, dir: usize, ldap_groups: &[String], out: &mut String) -> Vec<usize> {
    let d = &policy.directories[dir];
    let hits = d.map_groups(ldap_groups);
    for (g, m) in &hits {
        out.push_str(&format!(
            "  group_map: {:?} -> group {:?}\n",
            m.ldap_group, policy.groups[*g].name
        ));
    }
    if hits.is_empty() {
        out.push_str(&format!("  group_map of {:?}: no entry matches\n", d.name));
    }
    hits.into_iter().map(|(g, _)| g).collect()
}

async fn explain(a: ExplainArgs) -> anyhow::Result<u8> {
    let policy = Arc::new(load(&a.config)?);
    let mut out = String::new();
    let dg = match a.device {
        Some(ip) => {
            let (i, g) = policy
                .device_group(ip)
                .with_context(|| format!("{ip} is in no device group of {}", a.config.display()))?;
            out.push_str(&format!("device {ip}: device group {:?}\n", g.name));
            i
        }
        None => {
            let g =
                policy.device_groups.first().context("the configuration has no device group")?;
            out.push_str(&format!(
                "device: not given; device group {:?} (the first) is assumed\n",
                g.name
            ));
            0
        }
    };
    let req = request(&a.user, &a.service, a.cmd.as_deref())?;
    let local = policy.user(a.user.as_bytes()).cloned();
    let plan = backend::plan(
        local.as_ref().map(|u| u.prefer),
        !policy.directories.is_empty(),
        Need::Authorization,
    );
    let user: Option<User> = match plan {
        Plan::Local => {
            match &local {
                Some(u) => out.push_str(&format!("user {:?}: [[user]] of the file\n", u.name)),
                None => out.push_str(&format!("user {:?}: not in the file\n", a.user)),
            }
            local.as_deref().map(clone_user)
        }
        Plan::Directory { break_glass } => {
            let why = if break_glass {
                "in the file with prefer = \"directory\": the directory answers"
            } else {
                "not in the file: the directories answer"
            };
            out.push_str(&format!("user {:?}: {why}\n", a.user));
            if !a.ldap_groups.is_empty() {
                out.push_str("  directory groups (given with --ldap-group; no directory asked):\n");
                for g in &a.ldap_groups {
                    out.push_str(&format!("    {g}\n"));
                }
                let groups = mapped(&policy, 0, &a.ldap_groups, &mut out);
                Some(policy.directory_user(&a.user, groups))
            } else {
                let ops = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let dirs = tacvs_server::directory::Directories::new(policy.clone(), ops)
                    .map_err(anyhow::Error::msg)?;
                match dirs.find(a.user.as_bytes()).await {
                    Lookup::Found(Identity::Directory(acct)) => {
                        out.push_str(&format!(
                            "  directory {:?}: {}\n  directory groups:\n",
                            acct.directory_name, acct.dn
                        ));
                        for g in &acct.ldap_groups {
                            out.push_str(&format!("    {g}\n"));
                        }
                        let groups = mapped(&policy, acct.directory, &acct.ldap_groups, &mut out);
                        Some(policy.directory_user(&a.user, groups))
                    }
                    Lookup::Found(Identity::Local(_)) | Lookup::NoSuchUser => {
                        out.push_str("  in no directory\n");
                        None
                    }
                    Lookup::Unavailable(why) => {
                        out.push_str(&format!("  directory unavailable: {why}\n"));
                        if break_glass {
                            out.push_str("  the [[user]] entry answers (break-glass)\n");
                            local.as_deref().map(clone_user)
                        } else {
                            print!("{out}");
                            println!(
                                "decision: ERROR (the server answers ERROR while no directory answers)"
                            );
                            return Ok(2);
                        }
                    }
                }
            }
        }
    };
    let Some(user) = user else {
        print!("{out}");
        println!("decision: {} — unknown user", status_word(AuthorStatus::Fail));
        return Ok(1);
    };
    let names: Vec<&str> = user.groups.iter().map(|&g| policy.groups[g].name.as_str()).collect();
    out.push_str(&format!(
        "groups, in precedence order: {}\n",
        if names.is_empty() { "(none)".to_owned() } else { names.join(", ") }
    ));
    let e = policy.explain(dg, &user, &req);
    for s in &e.steps {
        out.push_str(&format!("  {s}\n"));
    }
    print!("{out}");
    print_decision(&e.decision);
    Ok(if matches!(e.decision.status, AuthorStatus::PassAdd | AuthorStatus::PassRepl) {
        0
    } else {
        1
    })
}

fn print_decision(d: &AuthorDecision) {
    println!("decision: {} — {}", status_word(d.status), d.reason);
    if !d.args.is_empty() {
        let args: Vec<String> = d.args.iter().map(|a| a.to_string()).collect();
        println!("attributes returned: {}", args.join(" "));
    }
}

fn clone_user(u: &User) -> User {
    User {
        name: u.name.clone(),
        password: None,
        chap_secret: None,
        enable: None,
        groups: u.groups.clone(),
        max_priv: u.max_priv,
        prefer: u.prefer,
        otp: u.otp,
    }
}

/// What `policy` decides for a recorded request, offline: the file's users
/// as the file says, directory users with the groups recorded at the time.
fn replay(policy: &Policy, r: &AuthzRecord<'_>) -> (String, String) {
    let Ok(ip) = r.device.parse::<IpAddr>() else {
        return ("ERROR".into(), "the record's device is not an address".into());
    };
    let Some((dg, _)) = policy.device_group(ip) else {
        return ("REFUSED".into(), "the device is in no device group (connection refused)".into());
    };
    let args: Vec<Argument> = r.args.iter().filter_map(|a| a.parse().ok()).collect();
    let req = AaaRequest::new(r.user.to_string(), args);
    let local = policy.user(r.user.as_bytes());
    let plan =
        backend::plan(local.map(|u| u.prefer), !policy.directories.is_empty(), Need::Authorization);
    let d = match plan {
        Plan::Local => policy.authorize(dg, &req),
        Plan::Directory { .. } if r.directory.is_empty() => {
            return (
                "UNKNOWN".into(),
                "a directory user now, but the record has no directory groups (the file answered then)"
                    .into(),
            );
        }
        Plan::Directory { .. } => {
            let di = policy.directories.iter().position(|d| d.name == r.directory).unwrap_or(0);
            let groups: Vec<usize> = policy.directories[di]
                .map_groups(&r.ldap_groups)
                .into_iter()
                .map(|(g, _)| g)
                .collect();
            if groups.is_empty() {
                return ("FAIL".into(), "directory user in no mapped group".into());
            }
            let mut d = policy.authorize_as(dg, &policy.directory_user(&r.user, groups), &req);
            d.reason =
                format!("{} (groups from directory {:?}, as recorded)", d.reason, r.directory)
                    .into();
            d
        }
    };
    (d.status.as_str().to_ascii_uppercase(), d.reason.to_string())
}

fn diff(a: DiffArgs) -> anyhow::Result<u8> {
    let old = load(&a.old)?;
    let new = load(&a.new)?;
    let records = tacvs_server::journal::read_authz_records(&a.replay)
        .with_context(|| format!("cannot read the authorization log in {}", a.replay.display()))?;
    anyhow::ensure!(
        !records.is_empty(),
        "{} holds no authorization records (authz-*.jsonl): the server writes them when \
            [accounting] authorization_log = true",
        a.replay.display()
    );
    // Each distinct request once, with how often it was made.
    let mut distinct: BTreeMap<(String, String, Vec<String>), (usize, &AuthzRecord<'_>)> =
        BTreeMap::new();
    for r in &records {
        let key = (r.device.to_string(), r.user.to_string(), r.args.clone());
        distinct.entry(key).or_insert((0, r)).0 += 1;
    }
    let mut changes = Vec::new();
    for (count, r) in distinct.values() {
        let (o, or) = replay(&old, r);
        let (n, nr) = replay(&new, r);
        if o != n {
            let args: Vec<&str> = r
                .args
                .iter()
                .filter(|a| a.starts_with("cmd") || a.starts_with("service"))
                .map(String::as_str)
                .collect();
            changes.push(format!(
                "{} on {} ({}): {} — {o} -> {n} ({count} request{})\n    old: {or}\n    new: {nr}",
                r.user,
                r.device,
                r.device_group,
                args.join(" "),
                if *count == 1 { "" } else { "s" }
            ));
        }
    }
    println!(
        "replayed {} authorization requests ({} distinct) from {}",
        records.len(),
        distinct.len(),
        a.replay.display()
    );
    if changes.is_empty() {
        println!("no decision changes");
        return Ok(0);
    }
    println!("{} decision(s) change:", changes.len());
    for c in &changes {
        println!("  {c}");
    }
    Ok(1)
}
