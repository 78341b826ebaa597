//! `tacvs lab up|down|status|run`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tacvs_lab::topo::{self, DirectorSettings, Front, Lab, Role, Spec};

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    cmd: LabCmd,
}

#[derive(Debug, Args, Clone)]
struct Common {
    /// Name prefix of every namespace the lab creates (nothing else is touched).
    #[arg(long, default_value = "tacvs-lab")]
    prefix: String,
    /// Working directory: configurations, journals, logs, reports.
    #[arg(long, default_value = "./var/lab")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum LabCmd {
    /// Build the topology and start every server and director (idempotent).
    Up {
        #[command(flatten)]
        c: Common,
        /// Real servers.
        #[arg(long, default_value_t = 3)]
        servers: u8,
        /// Directors (1 or 2).
        #[arg(long, default_value_t = 2)]
        directors: u8,
        /// Everything over TACACS+ over TLS 1.3 (a lab CA in DIR/pki).
        #[arg(long)]
        tls: bool,
        /// What the directors run: proxy, dr, haproxy-tcp, haproxy-proxy-v2, nat.
        #[arg(long, default_value = "proxy", value_parser = parse_front)]
        front: Front,
        /// Direct routing: auto, native or generic XDP.
        #[arg(long, default_value = "auto", value_parser = ["auto", "native", "generic"])]
        attach: String,
    },
    /// Stop every lab process and delete the namespaces (safe to repeat, and after a crash).
    Down {
        #[command(flatten)]
        c: Common,
    },
    /// Namespaces, processes, VRRP state and real servers (exit 1 when no lab is up).
    Status {
        #[command(flatten)]
        c: Common,
    },
    /// Run a scenario (a file, or baseline, server-crash, director-failover,
    /// flapping-server, case-2016) and write report.{json,txt,svg}.
    ///
    /// Exit status: 0 when every check holds, 1 when one fails, 2 on a set-up error.
    Run {
        /// Scenario file or shipped name.
        scenario: String,
        #[command(flatten)]
        c: Common,
        /// Multiply the workload's rate (e.g. 0.5 on a busy CI machine).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Leave the lab running afterwards (then `tacvs lab down`).
        #[arg(long)]
        keep: bool,
        /// Run the scenario over TACACS+ over TLS 1.3 (as `[topology] tls = true`).
        #[arg(long)]
        tls: bool,
    },
    /// Run several scenarios one after the other (e.g. 'story-*': the 2016
    /// story's fronts), each at every --devices size, into one table and one
    /// chart: DIR/compare/compare.{txt,json,svg}.
    ///
    /// Exit status: 0 when every run happened and held its checks, 1 otherwise.
    Compare {
        /// Scenario files or shipped names; a shipped name may hold `*`.
        #[arg(required = true)]
        scenarios: Vec<String>,
        #[command(flatten)]
        c: Common,
        /// Fleet sizes, e.g. 1000,15000,50000 (default: each scenario's own).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<usize>,
        /// Multiply the workload's rate.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Measure this long instead of each scenario's duration.
        #[arg(long, value_parser = crate::common::duration)]
        duration: Option<std::time::Duration>,
    },
}

fn parse_front(s: &str) -> Result<Front, String> {
    [Front::Proxy, Front::Dr, Front::HaproxyTcp, Front::HaproxyProxyV2, Front::Nat]
        .into_iter()
        .find(|f| f.name() == s)
        .ok_or_else(|| "one of proxy, dr, haproxy-tcp, haproxy-proxy-v2, nat".into())
}

/// The scenarios named (a `*` in a shipped name matches several).
fn scenarios(names: &[String]) -> anyhow::Result<Vec<tacvs_lab::Scenario>> {
    let mut out = Vec::new();
    for n in names {
        if n.contains('*') && !std::path::Path::new(n).exists() {
            let m = tacvs_lab::compare::shipped_matching(n);
            anyhow::ensure!(!m.is_empty(), "no shipped scenario matches {n:?}");
            for name in m {
                out.push(tacvs_lab::Scenario::load(name).map_err(anyhow::Error::msg)?);
            }
        } else {
            out.push(tacvs_lab::Scenario::load(n).map_err(anyhow::Error::msg)?);
        }
    }
    Ok(out)
}

fn need_root() -> anyhow::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    anyhow::ensure!(uid == 0, "the lab creates network namespaces and raw sockets: run it as root");
    Ok(())
}

fn lab_for(
    c: &Common,
    servers: u8,
    directors: u8,
    tls: bool,
    front: Front,
    attach: String,
) -> anyhow::Result<Lab> {
    let bin = std::env::current_exe().context("cannot find the tacvs binary itself")?;
    let dir = std::path::absolute(&c.dir).with_context(|| format!("--dir {}", c.dir.display()))?;
    Ok(Lab::new(Spec {
        prefix: c.prefix.clone(),
        dir,
        bin,
        servers,
        directors,
        director: DirectorSettings { attach, ..DirectorSettings::default() },
        tls,
        front,
        nat: Default::default(),
        steer: false,
    })?)
}

/// What `run` would refuse before touching anything (for the documentation
/// check, which parses every documented command without running it).
#[cfg(test)]
pub(crate) fn validate(a: &LabArgs) -> anyhow::Result<()> {
    if let LabCmd::Run { scenario, scale, .. } = &a.cmd {
        tacvs_lab::Scenario::load(scenario).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(*scale > 0.0, "--scale must be above 0");
    }
    if let LabCmd::Compare { scenarios: names, scale, .. } = &a.cmd {
        scenarios(names)?;
        anyhow::ensure!(*scale > 0.0, "--scale must be above 0");
    }
    Ok(())
}

pub async fn run(a: LabArgs) -> anyhow::Result<u8> {
    // `status` only reads (the state file, `ip netns list`, the control sockets).
    if !matches!(a.cmd, LabCmd::Status { .. }) {
        need_root()?;
    }
    match a.cmd {
        LabCmd::Up { c, servers, directors, tls, front, attach } => {
            let lab = lab_for(&c, servers, directors, tls, front, attach)?;
            let l2 = lab.clone();
            tokio::task::spawn_blocking(move || l2.up()).await??;
            tacvs_lab::runner::wait_front(&lab, std::time::Duration::from_secs(20)).await?;
            println!(
                "lab {} is up ({} front) at {} ; devices: ip netns exec {}-dev tacvs sim \
                    --server {}:49 --source {} --key {} --rate 100",
                c.prefix,
                front.name(),
                topo::VIP,
                c.prefix,
                topo::VIP,
                topo::FLEET,
                topo::KEY
            );
            print!("{}", status(&lab).await);
            Ok(0)
        }
        LabCmd::Down { c } => {
            let dir = std::path::absolute(&c.dir)?;
            topo::down(&c.prefix, Some(&dir.join("lab.json")))?;
            // Scenario runs keep their state in DIR/<scenario>/.
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let st = e.path().join("lab.json");
                if st.exists() {
                    topo::down(&c.prefix, Some(&st))?;
                }
            }
            let left = topo::namespaces(&c.prefix);
            anyhow::ensure!(left.is_empty(), "namespaces left: {}", left.join(" "));
            println!("lab {} is down", c.prefix);
            Ok(0)
        }
        LabCmd::Status { c } => {
            let dir = std::path::absolute(&c.dir)?;
            let st: Option<topo::State> = std::fs::read(dir.join("lab.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(st) = st else {
                let ns = topo::namespaces(&c.prefix);
                println!(
                    "lab {}: not up (no {}); namespaces with the prefix: {}",
                    c.prefix,
                    dir.join("lab.json").display(),
                    if ns.is_empty() { "none".to_owned() } else { ns.join(" ") }
                );
                // Not up is not a healthy lab: scripts testing `lab status` must see it.
                return Ok(1);
            };
            let lab = Lab::new(st.spec.clone())?;
            print!("{}", status(&lab).await);
            Ok(0)
        }
        LabCmd::Run { scenario, c, scale, keep, tls } => {
            let mut sc = tacvs_lab::Scenario::load(&scenario).map_err(anyhow::Error::msg)?;
            sc.topology.tls |= tls;
            anyhow::ensure!(scale > 0.0, "--scale must be above 0");
            let bin = std::env::current_exe()?;
            let opts = tacvs_lab::RunOptions {
                prefix: c.prefix.clone(),
                dir: std::path::absolute(&c.dir)?,
                bin,
                scale,
                keep,
                duration: None,
            };
            println!(
                "tacvs lab: running {} ({}), reports in {}",
                sc.name,
                sc.description,
                opts.dir.join(&sc.name).display()
            );
            let r = tacvs_lab::run(&sc, &opts).await?;
            print!("{}", tacvs_lab::report::table(&r));
            println!("report: {}", opts.dir.join(&sc.name).join("report.{json,txt,svg}").display());
            Ok(if r.ok() { 0 } else { 1 })
        }
        LabCmd::Compare { scenarios: names, c, devices, scale, duration } => {
            let list = scenarios(&names)?;
            anyhow::ensure!(scale > 0.0, "--scale must be above 0");
            let opts = tacvs_lab::RunOptions {
                prefix: c.prefix.clone(),
                dir: std::path::absolute(&c.dir)?,
                bin: std::env::current_exe()?,
                scale,
                keep: false,
                duration,
            };
            let sizes = if devices.is_empty() {
                "each scenario's own size".to_owned()
            } else {
                devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            println!(
                "tacvs lab compare: {} at {sizes} devices; results in {}",
                list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                opts.dir.join("compare").display()
            );
            let c = tacvs_lab::compare::compare(&list, &devices, &opts, |r| {
                println!(
                    "  {} at {} devices: {}",
                    r.scenario,
                    r.devices,
                    match &r.error {
                        Some(e) => format!("not run: {e}"),
                        None => format!(
                            "{:.0} req/s, p99 {:.2} ms, {} failed, {}",
                            r.throughput,
                            r.p99_ms,
                            r.failures,
                            if r.ok { "checks pass" } else { "checks FAIL" }
                        ),
                    }
                )
            })
            .await?;
            print!("{}", tacvs_lab::compare::table(&c));
            println!("chart: {}", opts.dir.join("compare").join("compare.svg").display());
            Ok(if c.ok() { 0 } else { 1 })
        }
    }
}

async fn status(lab: &Lab) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let st = lab.state();
    let ns = topo::namespaces(&lab.spec.prefix);
    let _ = writeln!(s, "namespaces: {}", ns.join(" "));
    for p in st.iter().flat_map(|st| st.procs.iter()) {
        let _ = writeln!(
            s,
            "  {:<4} pid {:<8} {}",
            p.role.short(),
            p.pid,
            if topo::alive(p.pid) { "running" } else { "NOT RUNNING" }
        );
    }
    for d in 1..=lab.spec.directors {
        let reply = tacvs_director::status(&lab.control_socket(d)).await;
        match reply {
            Ok(r) => {
                let _ = writeln!(s, "director d{d} ({}):", Role::Director(d).addr());
                for l in tacvs_director::render_report(&r).lines() {
                    let _ = writeln!(s, "  {l}");
                }
            }
            Err(e) => {
                let _ = writeln!(s, "director d{d}: {e}");
            }
        }
    }
    s
}
