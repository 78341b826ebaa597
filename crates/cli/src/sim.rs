//! `tacvs sim`: drive a device fleet at a target and report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tacvs_proto::Key;
use tacvs_sim::{Expect, Load, Profile, SimConfig};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    sub: Option<SimSub>,
    /// Target, HOST:PORT (a server or a director's VIP).
    #[arg(long)]
    target: Option<String>,
    /// Shared key (or --key-file, or TACVS_KEY).
    #[arg(long, env = "TACVS_KEY", hide_env_values = true, conflicts_with = "key_file")]
    key: Option<String>,
    /// File whose first line is the key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Number of simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Device source addresses, taken in order from this prefix.
    #[arg(long, default_value = "127.1.0.0/16")]
    source: ipnet::IpNet,
    /// Sockets open at once, at most (the open-file hard limit here is 20,000).
    #[arg(long, default_value_t = 16_000)]
    max_sockets: usize,
    /// automation, interactive, mixed, or a TOML profile file.
    #[arg(long, default_value = "automation")]
    profile: String,
    /// Open loop: requests per second in aggregate.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: concurrent requesters.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Measured time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time before measuring starts.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Closed loop with a single-connect profile: sessions in flight on each
    /// device's connection (pipelining, RFC 8907 §4.3).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Write the full report as JSON (schema: docs/sim-report.md).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write one line per accounting record acknowledged with SUCCESS
    /// (device, record type, arguments), to check against the journals.
    #[arg(long)]
    acked: Option<PathBuf>,
    /// Assertions, e.g. errors==0, p99<5ms, throughput>=10000, author.p99<2ms.
    /// Exit 1 if one fails.
    #[arg(long)]
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
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
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
    let headroom: f64 = a
        .headroom
        .trim_end_matches('%')
        .parse::<f64>()
        .map(|v| if a.headroom.ends_with('%') { v / 100.0 } else { v })
        .with_context(|| format!("--headroom {:?}: write e.g. 30% or 0.3", a.headroom))?;
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

pub async fn run(a: SimArgs) -> anyhow::Result<u8> {
    if let Some(SimSub::Plan(p)) = a.sub {
        return plan(p);
    }
    let Some(target) = a.target.clone() else {
        anyhow::bail!("--target HOST:PORT is required (or use `tacvs sim plan`)");
    };
    let key = match (&a.key, &a.key_file) {
        (_, Some(f)) => {
            let t = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            Key::new(t.lines().next().unwrap_or("").trim_end_matches('\r'))
        }
        (Some(k), None) => Key::new(k.as_str()),
        (None, None) => anyhow::bail!("no shared key: pass --key, --key-file or set TACVS_KEY"),
    };
    let expects: Vec<Expect> = a
        .expect
        .iter()
        .flat_map(|e| e.split(','))
        .filter(|e| !e.trim().is_empty())
        .map(Expect::parse)
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    let profile = Profile::load(&a.profile).map_err(anyhow::Error::msg)?;
    let target = tokio::net::lookup_host(&target)
        .await
        .with_context(|| format!("cannot resolve --target {target:?}"))?
        .next()
        .context("no address")?;
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
    };
    crate::raise_nofile_limit();
    let progress = std::sync::Arc::new(tacvs_sim::Progress::default());
    let total = cfg.warmup + cfg.duration;
    let ticker = tokio::spawn(show_progress(progress.clone(), total));
    let report = tacvs_sim::run_with_progress(cfg, progress).await;
    ticker.abort();
    let report = report?;
    print!("{}", report.table());
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut failed = 0;
    for e in &expects {
        match e.check(&report) {
            Ok(m) => println!("expect ok:     {m}"),
            Err(m) => {
                println!("expect FAILED: {m}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
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
