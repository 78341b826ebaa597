//! `tacvs director`: run a director, or talk to a running one over its control
//! socket (`status`, `drain`, `enable`, `weight`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

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
    /// Services and real servers: state, weight, connections, bytes, last check
    /// (like ipvsadm -L -n --stats).
    Status(StatusArgs),
    /// Weight 0 for a real server: no new connections, existing ones continue.
    Drain(Target),
    /// Back to the configured weight.
    Enable(Target),
    /// Set a real server's weight (0-65535) until `enable` or a restart.
    Weight(WeightArgs),
}

/// Where the running director's control socket is.
#[derive(Debug, Args)]
struct Sock {
    /// The director's control socket [default: the configuration's
    /// control_socket with -c, else /run/tacvs/director.sock].
    #[arg(long, env = "TACVS_DIRECTOR_SOCKET")]
    socket: Option<PathBuf>,
    /// The director's configuration file: its `[director] control_socket` is used.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

impl Sock {
    fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        match &self.config {
            Some(c) => Ok(tacvs_director::config::load(c)?.director.control_socket),
            None => Ok(PathBuf::from(tacvs_director::config::DEFAULT_CONTROL_SOCKET)),
        }
    }
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    sock: Sock,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct Target {
    /// Real server, IP:PORT.
    server: SocketAddr,
    #[command(flatten)]
    sock: Sock,
}

#[derive(Debug, Args)]
struct WeightArgs {
    /// Real server, IP:PORT.
    server: SocketAddr,
    /// New weight, 0-65535 (0 drains).
    #[arg(value_parser = clap::value_parser!(u32).range(0..=i64::from(tacvs_director::config::MAX_WEIGHT)))]
    weight: u32,
    #[command(flatten)]
    sock: Sock,
}

pub async fn run(a: DirectorArgs) -> anyhow::Result<u8> {
    use tacvs_director::{Reply, Request};
    let (sock, req) = match a.cmd {
        None => {
            return serve(a.config.context(
                "give --config FILE to run a director, or a \
                subcommand (status, drain, enable, weight)",
            )?)
            .await;
        }
        Some(Ctl::Status(s)) => {
            let report = tacvs_director::status(&s.sock.path()?).await?;
            if s.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", tacvs_director::render_report(&report));
            }
            return Ok(0);
        }
        Some(Ctl::Drain(t)) => (t.sock.path()?, Request::Drain { server: t.server }),
        Some(Ctl::Enable(t)) => (t.sock.path()?, Request::Enable { server: t.server }),
        Some(Ctl::Weight(w)) => {
            (w.sock.path()?, Request::Weight { server: w.server, weight: w.weight })
        }
    };
    match tacvs_director::request(&sock, &req).await? {
        Reply::Changed { changes } => {
            for c in &changes {
                println!("{}", describe(&req, c));
            }
            Ok(0)
        }
        Reply::Error { error } => {
            eprintln!("tacvs director: {error}");
            Ok(1)
        }
        Reply::Status(_) => anyhow::bail!("the director answered another question"),
    }
}

/// What a drain, enable or weight did, in words.
fn describe(req: &tacvs_director::Request, c: &tacvs_director::WeightChange) -> String {
    use tacvs_director::Request;
    let what = match req {
        Request::Drain { .. } => "drained",
        Request::Enable { .. } => "enabled",
        _ => "weight set for",
    };
    let after = match req {
        Request::Drain { .. } => "; its open connections continue, new ones go to other servers",
        Request::Enable { .. } => " (the configured weight)",
        _ if c.to == c.configured => " (the configured weight)",
        _ => "; `tacvs director enable` returns it to the configured weight",
    };
    format!("{what} {} in service {:?}: weight {} -> {}{after}", c.server, c.service, c.from, c.to)
}

async fn serve(path: PathBuf) -> anyhow::Result<u8> {
    let conf = tacvs_director::config::load(&path)
        .map_err(|e| anyhow::anyhow!("{e}\n{}: {} error(s)", path.display(), e.len()))?;
    // Before anything is bound or changed: a missing capability is named here,
    // not found half-way through (a VIP added, then the raw socket refused).
    tacvs_director::caps::check(&conf).map_err(|e| anyhow::anyhow!("{e}"))?;
    let site = match &conf.metrics {
        Some(m) => {
            let (site, addr) = crate::http::serve(m.listen, crate::server::BUCKETS).await?;
            tracing::info!(%addr, "metrics at http://{addr}/metrics, status page at http://{addr}/");
            Some(site)
        }
        None => None,
    };
    crate::raise_nofile_limit();
    // Handlers first: a signal sent as soon as the services are up must not
    // find the default action (which would end the process).
    let signals = tacvs_director::Signals::register()?;
    let name = conf.director.name.clone();
    let d = tacvs_director::start(conf).await?;
    if let Some(site) = site {
        let report = d.reporter();
        let version = env!("CARGO_PKG_VERSION");
        site.set_page(Box::new(move || tacvs_director::render_html(&name, version, &report())));
    }
    d.run_until_stopped(signals, &path, std::future::pending()).await?;
    Ok(0)
}
