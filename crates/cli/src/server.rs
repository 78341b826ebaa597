//! `tacvs server`: run the AAA server from a configuration file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use metrics_exporter_prometheus::PrometheusBuilder;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Configuration file (TOML); see examples/server.toml.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// How long SIGTERM waits for sessions in progress to finish.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    drain: Duration,
}

/// Latency buckets for request and fsync histograms (seconds).
pub const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

pub async fn run(a: ServerArgs) -> anyhow::Result<u8> {
    let policy = match tacvs_policy::load(&a.config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            anyhow::bail!(
                "{}: {} configuration error(s); nothing started",
                a.config.display(),
                e.0.len()
            );
        }
    };
    if let Some(addr) = policy.metrics {
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets(BUCKETS)
            .context("metrics buckets")?
            .install()
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    crate::raise_nofile_limit();
    let server = tacvs_server::start(policy, Some(a.config.clone())).await?;
    tacvs_server::signals::run_until_stopped(server, a.drain).await?;
    Ok(0)
}
