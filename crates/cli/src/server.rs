//! `tacvs server`: run the AAA server from a configuration file, or talk to a
//! running one over its control socket (`lockouts`, `unlock`, `sessions`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tacvs_server::control::{self, LockoutView, Reply, Request, SessionView};

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCommand>,
    /// Configuration file (TOML); see examples/server.toml. Also tells the
    /// control commands where the control socket is.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// How long SIGTERM waits for sessions in progress to finish.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    drain: Duration,
}

#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// List locked (user, device) pairs, and users and devices whose login
    /// attempts are being slowed.
    Lockouts(ControlArgs),
    /// Clear the locks and limits of a user name, or of a device address.
    Unlock {
        /// A user name, or a device's IP address.
        subject: String,
        #[command(flatten)]
        at: ControlArgs,
    },
    /// List open connections: device, device group, user, since, state.
    Sessions(ControlArgs),
}

#[derive(Debug, Args)]
struct ControlArgs {
    /// The control socket (default: `[server] control_socket` of --config).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print the reply as JSON.
    #[arg(long)]
    json: bool,
}

/// Latency buckets for request and fsync histograms (seconds).
pub const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

pub async fn run(a: ServerArgs) -> anyhow::Result<u8> {
    match a.command {
        Some(ServerCommand::Lockouts(c)) => control_command(&a.config, c, Request::Lockouts).await,
        Some(ServerCommand::Unlock { subject, at }) => {
            control_command(&a.config, at, Request::Unlock { subject }).await
        }
        Some(ServerCommand::Sessions(c)) => control_command(&a.config, c, Request::Sessions).await,
        None => {
            let config = a.config.context(
                "tacvs server needs --config FILE (see examples/server.toml), or a command: lockouts, unlock, sessions",
            )?;
            serve(config, a.drain).await
        }
    }
}

async fn serve(config: PathBuf, drain: Duration) -> anyhow::Result<u8> {
    let policy = match tacvs_policy::load(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            anyhow::bail!(
                "{}: {} configuration error(s); nothing started",
                config.display(),
                e.0.len()
            );
        }
    };
    let site = match policy.metrics {
        Some(addr) => {
            let (site, addr) = crate::http::serve(addr, BUCKETS).await?;
            tracing::info!(%addr, "metrics at http://{addr}/metrics, status page at http://{addr}/");
            Some(site)
        }
        None => None,
    };
    crate::raise_nofile_limit();
    // Handlers first: a signal sent as soon as "listening" is logged must not
    // find the default action (which would kill sessions in progress).
    let signals = tacvs_server::signals::Signals::register()?;
    let server = tacvs_server::start(policy, Some(config.clone())).await?;
    if let Some(site) = site {
        let shared = server.shared().clone();
        let version = env!("CARGO_PKG_VERSION");
        site.set_page(Box::new(move || tacvs_server::status::render_html(&shared.status(version))));
    }
    signals.run_until_stopped(server, drain).await;
    Ok(0)
}

async fn control_command(
    config: &Option<PathBuf>,
    c: ControlArgs,
    req: Request,
) -> anyhow::Result<u8> {
    let socket = match (c.socket, config) {
        (Some(s), _) => s,
        (None, Some(file)) => {
            let policy = tacvs_policy::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
            policy.control_socket.with_context(|| {
                format!(
                    "{} has no [server] control_socket: add one (e.g. control_socket = \
                        \"/run/tacvs/server.sock\") and restart the server",
                    file.display()
                )
            })?
        }
        (None, None) => anyhow::bail!(
            "which server? give its configuration (-c FILE) or its control socket (--socket PATH)"
        ),
    };
    let reply = control::request(&socket, &req).await?;
    if c.json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(u8::from(matches!(reply, Reply::Error { .. })));
    }
    match reply {
        Reply::Lockouts { entries } => print!("{}", lockouts_table(&entries)),
        Reply::Sessions { sessions } => print!("{}", sessions_table(&sessions)),
        Reply::Unlocked { removed: 0 } => println!("nothing was locked or slowed for that"),
        Reply::Unlocked { removed: 1 } => println!("unlocked (1 entry cleared)"),
        Reply::Unlocked { removed } => println!("unlocked ({removed} entries cleared)"),
        Reply::Error { message } => {
            eprintln!("tacvs: the server refused: {message}");
            return Ok(1);
        }
    }
    Ok(0)
}

fn seconds(s: f64) -> String {
    humantime::format_duration(Duration::from_secs(s.ceil().max(1.0) as u64)).to_string()
}

fn lockouts_table(entries: &[LockoutView]) -> String {
    if entries.is_empty() {
        return "no locks, nothing slowed\n".into();
    }
    let rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| {
            let user = e.user.clone().unwrap_or_else(|| "(every user)".into());
            let device = e.device.map_or("(every device)".into(), |d| d.to_string());
            let detail = if e.state == "locked" {
                format!("{} left (lock #{} in a row)", seconds(e.seconds_left), e.count)
            } else {
                format!("{} attempts left, one more in {}", e.count, seconds(e.seconds_left))
            };
            [user, device, e.state.clone(), detail]
        })
        .collect();
    table(["USER", "DEVICE", "STATE", "DETAIL"], &rows)
}

fn sessions_table(sessions: &[SessionView]) -> String {
    if sessions.is_empty() {
        return "no open connections\n".into();
    }
    let rows: Vec<[String; 6]> = sessions
        .iter()
        .map(|s| {
            [
                s.device.clone(),
                s.device_group.clone(),
                s.user.clone().unwrap_or_else(|| "-".into()),
                s.since.clone(),
                s.state.clone(),
                s.requests.to_string(),
            ]
        })
        .collect();
    table(["DEVICE", "GROUP", "USER", "SINCE", "STATE", "REQUESTS"], &rows)
}

/// Columns padded to their widest cell.
fn table<const N: usize>(titles: [&str; N], rows: &[[String; N]]) -> String {
    let mut width = titles.map(str::len);
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(titles.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_print_as_a_table_in_words() {
        let t = lockouts_table(&[
            LockoutView {
                state: "locked".into(),
                user: Some("bob".into()),
                device: Some("10.0.0.1".parse().unwrap()),
                seconds_left: 250.2,
                count: 1,
            },
            LockoutView {
                state: "user slowed".into(),
                user: Some("alice".into()),
                device: None,
                seconds_left: 12.0,
                count: 0,
            },
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["USER", "DEVICE", "STATE", "DETAIL"]
        );
        assert!(
            lines[1].contains("bob") && lines[1].contains("4m 11s left (lock #1 in a row)"),
            "{t}"
        );
        assert!(
            lines[2].contains("(every device)")
                && lines[2].contains("0 attempts left, one more in 12s"),
            "{t}"
        );
        assert_eq!(lockouts_table(&[]), "no locks, nothing slowed\n");
    }
}
