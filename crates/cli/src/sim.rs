//! `tacvs sim`: drive a device fleet at a target and report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tacvs_proto::Key;
use tacvs_sim::{Expect, Load, Profile, SimConfig};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Target, HOST:PORT (a server or a director's VIP).
    #[arg(long)]
    target: String,
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
    /// Assertions, e.g. errors==0, p99<5ms, throughput>=10000, author.p99<2ms.
    /// Exit 1 if one fails.
    #[arg(long)]
    expect: Vec<String>,
}

pub async fn run(a: SimArgs) -> anyhow::Result<u8> {
    let key = match (&a.key, &a.key_file) {
        (_, Some(f)) => {
            let t = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
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
    let target = tokio::net::lookup_host(&a.target)
        .await
        .with_context(|| format!("cannot resolve --target {:?}", a.target))?
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
    };
    let report = tacvs_sim::run(cfg).await?;
    print!("{}", report.table());
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("cannot write {}", path.display()))?;
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
