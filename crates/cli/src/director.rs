//! `tacvs director`: run a director, or talk to a running one over its control
//! socket (`status`, `drain`, `enable`, `weight`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DirectorArgs {
    /// Configuration file (TOML); see examples/cluster/director.toml.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Ctl>,
}

#[derive(Debug, Subcommand)]
enum Ctl {
    /// Services and real servers: state, weight, connections, last check (like ipvsadm -L -n --stats).
    Status(Sock),
    /// Weight 0 for a real server: no new connections, existing ones continue.
    Drain(Target),
    /// Back to the configured weight.
    Enable(Target),
    /// Set a real server's weight.
    Weight(WeightArgs),
}

#[derive(Debug, Args)]
struct Sock {
    /// The director's control socket.
    #[arg(long, default_value = "./var/director.sock")]
    socket: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct Target {
    /// Real server, IP:PORT.
    server: SocketAddr,
    #[arg(long, default_value = "./var/director.sock")]
    socket: PathBuf,
}

#[derive(Debug, Args)]
struct WeightArgs {
    /// Real server, IP:PORT.
    server: SocketAddr,
    /// New weight.
    weight: u32,
    #[arg(long, default_value = "./var/director.sock")]
    socket: PathBuf,
}

pub async fn run(a: DirectorArgs) -> anyhow::Result<u8> {
    use tacvs_director::{Reply, Request};
    let (sock, req) = match a.cmd {
        None => {
            return serve(a.config.context("give --config FILE to run a director, or a subcommand (status, drain, enable, weight)")?).await;
        }
        Some(Ctl::Status(s)) => {
            let report = tacvs_director::status(&s.socket).await?;
            if s.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", tacvs_director::render(&report.services, report.vrrp.as_ref()));
            }
            return Ok(0);
        }
        Some(Ctl::Drain(t)) => (t.socket, Request::Drain { server: t.server }),
        Some(Ctl::Enable(t)) => (t.socket, Request::Enable { server: t.server }),
        Some(Ctl::Weight(w)) => (w.socket, Request::Weight { server: w.server, weight: w.weight }),
    };
    match tacvs_director::request(&sock, &req).await? {
        Reply::Changed { .. } => {
            println!("ok");
            Ok(0)
        }
        Reply::Error { error } => {
            eprintln!("tacvs director: {error}");
            Ok(1)
        }
        Reply::Status(_) => anyhow::bail!("the director answered another question"),
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<u8> {
    let conf = tacvs_director::config::load(&path).map_err(anyhow::Error::msg)?;
    if let Some(m) = &conf.metrics {
        PrometheusBuilder::new()
            .with_http_listener(m.listen)
            .set_buckets(crate::server::BUCKETS)?
            .install()
            .with_context(|| format!("cannot serve metrics on {}", m.listen))?;
    }
    crate::raise_nofile_limit();
    let mut d = tacvs_director::start(conf).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match tacvs_director::config::load(&path) {
                    Err(e) => tracing::error!(file = %path.display(), errors = %e, count = e.len(), "reload refused: the file has errors; keeping the running configuration"),
                    Ok(c) => match d.reload(c) {
                        Ok(()) => tracing::info!(file = %path.display(), "configuration reloaded"),
                        Err(e) => tracing::error!(file = %path.display(), error = %e, "reload refused; keeping the running configuration"),
                    },
                }
            }
        }
    }
    tracing::info!("director stopping");
    d.shutdown().await;
    Ok(0)
}
