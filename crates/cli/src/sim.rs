//! `tacvs sim`: drive a device fleet at a target and report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tacvs_sim::{Expect, Load, Profile, SimConfig};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    sub: Option<SimSub>,
    /// Where to send, HOST:PORT: a server or a director's virtual address.
    #[arg(long, value_name = "HOST:PORT", alias = "target")]
    server: Option<String>,
    /// Shared secret. Prefer --key-file or TACVS_KEY: a command line is visible to other users.
    #[arg(long, env = "TACVS_KEY", hide_env_values = true, conflicts_with = "key_file")]
    key: Option<String>,
    /// Read the shared secret from this file (first line).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Number of simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Device source addresses, taken in order from this prefix (ADDRESS/LEN;
    /// a single ADDRESS is one device address).
    #[arg(long, value_name = "ADDRESS[/LEN]", default_value = "127.1.0.0/16",
          value_parser = crate::common::source)]
    source: ipnet::IpNet,
    /// Sockets open at once, at most: each is a descriptor, so stay under the
    /// open-file limit (`ulimit -Hn`; tacvs raises its soft limit to it).
    #[arg(long, default_value_t = 16_000)]
    max_sockets: usize,
    /// automation, interactive, mixed, or a TOML profile file (docs/config-reference.md).
    #[arg(long, default_value = "automation")]
    profile: String,
    /// Open loop: requests per second in aggregate.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: concurrent requesters.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Measured time.
    #[arg(long, default_value = "10s", value_parser = crate::common::duration)]
    duration: Duration,
    /// Time before measuring starts.
    #[arg(long, default_value = "1s", value_parser = crate::common::duration)]
    warmup: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = crate::common::duration)]
    timeout: Duration,
    /// Closed loop with a single-connect profile: sessions in flight on each
    /// device's connection (pipelining, RFC 8907 §4.3).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Print the full report as JSON (schema: docs/sim-report.md) instead of
    /// the table; with FILE, write it there and print the table.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
    /// Write one line per accounting record acknowledged with SUCCESS
    /// (device, record type, arguments), to check against the journals.
    #[arg(long, value_name = "FILE")]
    acked: Option<PathBuf>,
    #[command(flatten)]
    tls: crate::common::TlsArgs,
    /// With --tls: a certificate per device, minted at start by this CA
    /// (PEM; its key in --tls-issuer-key), each naming the device's address
    /// (subjectAltName iPAddress), instead of one shared --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_issuer_key", conflicts_with = "tls_cert")]
    tls_issuer_cert: Option<PathBuf>,
    /// The private key of --tls-issuer-cert.
    #[arg(long, value_name = "FILE", requires = "tls_issuer_cert")]
    tls_issuer_key: Option<PathBuf>,
    /// Assertions, e.g. 'errors==0' 'p99<5ms' 'throughput>=10000' 'author.p99<2ms'
    /// (quote them: < and > are shell redirections). Exit 1 if one fails.
    #[arg(long, value_name = "EXPR")]
    expect: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
enum SimSub {
    /// How many servers a fleet needs: g(n) / f(n) with headroom and N+1.
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// A report from `tacvs sim --json` against one server.
    #[arg(long)]
    report: PathBuf,
    /// Devices in the fleet to plan for.
    #[arg(long)]
    devices: u64,
    /// The fleet's workload: automation, interactive, mixed, or a TOML file
    /// (its sessions_per_hour sets the per-device rate).
    #[arg(long, default_value = "automation")]
    profile: String,
    /// p99 latency each server must stay under.
    #[arg(long, default_value = "10ms", value_parser = crate::common::duration)]
    latency_target: Duration,
    /// Spare capacity to keep, e.g. 30%.
    #[arg(long, default_value = "30%")]
    headroom: String,
}

fn plan(a: PlanArgs) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&a.report)
        .with_context(|| format!("cannot read {}", a.report.display()))?;
    let report: tacvs_sim::Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a tacvs sim JSON report", a.report.display()))?;
    let profile = Profile::load(&a.profile).map_err(anyhow::Error::msg)?;
    let headroom = headroom(&a.headroom)?;
    let target_ms = a.latency_target.as_secs_f64() * 1e3;
    match tacvs_sim::plan::plan(&report, a.devices, &profile, target_ms, headroom) {
        Ok(p) => {
            print!("{}", p.explain(&profile));
            println!(
                "=> {} servers for {} devices ({} profile)",
                p.servers, p.devices, profile.name
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("tacvs sim plan: {e}");
            Ok(2)
        }
    }
}

/// The `--expect` assertions, each checked for a known metric and scope.
fn expectations(a: &SimArgs) -> anyhow::Result<Vec<Expect>> {
    a.expect
        .iter()
        .flat_map(|e| e.split(','))
        .filter(|e| !e.trim().is_empty())
        .map(Expect::parse)
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)
}

/// What `run` would refuse before sending anything (for the documentation
/// check, which parses every documented command without running it).
#[cfg(test)]
pub(crate) fn validate(a: &SimArgs) -> anyhow::Result<()> {
    match &a.sub {
        Some(SimSub::Plan(p)) => {
            Profile::load(&p.profile).map_err(anyhow::Error::msg)?;
            headroom(&p.headroom)?;
        }
        None => {
            anyhow::ensure!(a.server.is_some(), "--server HOST:PORT is required");
            anyhow::ensure!(
                a.rate.is_some() || a.concurrency.is_some(),
                "give --rate R (open loop) or --concurrency C (closed loop)"
            );
            expectations(a)?;
            Profile::load(&a.profile).map_err(anyhow::Error::msg)?;
            a.tls.check()?;
            anyhow::ensure!(
                a.tls_issuer_cert.is_none() || a.tls.tls,
                "--tls-issuer-cert goes with --tls"
            );
        }
    }
    Ok(())
}

/// `--headroom 30%` or `0.3`, as a fraction.
fn headroom(text: &str) -> anyhow::Result<f64> {
    text.trim_end_matches('%')
        .parse::<f64>()
        .map(|v| if text.ends_with('%') { v / 100.0 } else { v })
        .with_context(|| format!("--headroom {text:?}: write e.g. 30% or 0.3"))
}

pub async fn run(a: SimArgs) -> anyhow::Result<u8> {
    if let Some(SimSub::Plan(p)) = a.sub {
        return plan(p);
    }
    let Some(server) = a.server.clone() else {
        anyhow::bail!("--server HOST:PORT is required (or use `tacvs sim plan`)");
    };
    a.tls.check()?;
    anyhow::ensure!(a.tls_issuer_cert.is_none() || a.tls.tls, "--tls-issuer-cert goes with --tls");
    // Over TLS the key is never used (RFC 9887 §4).
    let key = if a.tls.tls {
        tacvs_proto::Key::new("")
    } else {
        crate::common::read_key(a.key.as_deref(), a.key_file.as_deref())?
    };
    let expects = expectations(&a)?;
    let profile = Profile::load(&a.profile).map_err(anyhow::Error::msg)?;
    let target = tokio::net::lookup_host(&server)
        .await
        .with_context(|| {
            format!("cannot resolve --server {server:?} (expected HOST:PORT, e.g. 127.0.0.1:49)")
        })?
        .next()
        .with_context(|| format!("--server {server:?} resolves to no address"))?;
    let load = match (a.rate, a.concurrency) {
        (Some(r), _) if r > 0.0 => Load::Open(r),
        (None, Some(c)) if c > 0 => Load::Closed(c),
        _ => anyhow::bail!("give --rate R (open loop) or --concurrency C (closed loop)"),
    };
    let cfg = SimConfig {
        target,
        key,
        devices: a.devices,
        source: a.source,
        max_sockets: a.max_sockets,
        profile,
        load,
        duration: a.duration,
        warmup: a.warmup,
        timeout: a.timeout,
        pipeline: a.pipeline,
        acked: a.acked.clone(),
        tls: sim_tls(&a, &server, target.ip())?,
    };
    crate::raise_nofile_limit();
    let progress = std::sync::Arc::new(tacvs_sim::Progress::default());
    let total = cfg.warmup + cfg.duration;
    let ticker = tokio::spawn(show_progress(progress.clone(), total));
    let report = tacvs_sim::run_with_progress(cfg, progress).await;
    ticker.abort();
    let report = report?;
    // `--json` alone: the JSON report is standard output, people's lines go
    // to standard error.
    let json_stdout = a.json.as_deref() == Some(std::path::Path::new("-"));
    let mut human = String::new();
    if json_stdout {
        println!("{}", serde_json::to_string_pretty(&report)?);
        eprint!("{}", report.table());
    } else {
        human.push_str(&report.table());
    }
    if let Some(path) = a.json.as_ref().filter(|_| !json_stdout) {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut failed = 0;
    for e in &expects {
        match e.check(&report) {
            Ok(m) => human.push_str(&format!("expect ok:     {m}\n")),
            Err(m) => {
                human.push_str(&format!("expect FAILED: {m}\n"));
                failed += 1;
            }
        }
    }
    // A run in which nothing was answered measured nothing: say so and fail,
    // whatever was expected.
    if let Some(why) = report.unanswered() {
        human.push_str(&format!("FAILED: {why}\n"));
        failed += 1;
    }
    if json_stdout {
        eprint!("{human}");
    } else {
        print!("{human}");
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// The fleet's TLS settings from --tls and its companions.
fn sim_tls(
    a: &SimArgs,
    server: &str,
    addr: std::net::IpAddr,
) -> anyhow::Result<Option<tacvs_sim::SimTls>> {
    let Some(ca) = a.tls.tls.then_some(a.tls.tls_ca.as_ref()).flatten() else { return Ok(None) };
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let devices = match (&a.tls.tls_cert, &a.tls.tls_key, &a.tls_issuer_cert, &a.tls_issuer_key) {
        (Some(c), Some(k), _, _) => {
            tacvs_tls::client::identity(c, k)?; // checked now, with the file names
            tacvs_sim::DeviceCerts::Shared(tacvs_tls::certs::Pem { cert: read(c)?, key: read(k)? })
        }
        (_, _, Some(c), Some(k)) => tacvs_sim::DeviceCerts::PerDevice(tacvs_tls::certs::Pem {
            cert: read(c)?,
            key: read(k)?,
        }),
        _ => tacvs_sim::DeviceCerts::None,
    };
    Ok(Some(tacvs_sim::SimTls {
        roots: tacvs_tls::client::roots(ca)?,
        server_name: a.tls.server_name(server, addr)?,
        devices,
    }))
}

/// A live line on a terminal (indicatif draws nothing when stderr is not one).
async fn show_progress(p: std::sync::Arc<tacvs_sim::Progress>, total: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    let bar = indicatif::ProgressBar::new(total.as_secs().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = tokio::time::Instant::now();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = p.requests.load(Relaxed);
        bar.set_position(start.elapsed().as_secs());
        bar.set_message(format!(
            "{n} requests, {}/s, {} errors, p99 {:.2} ms",
            n - last,
            p.errors.load(Relaxed),
            p.last_p99_us.load(Relaxed) as f64 / 1e3
        ));
        last = n;
    }
}
