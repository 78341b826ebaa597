//! `tacvs`: the one binary. Each subcommand lives in its own module.

mod admin;
mod cert;
mod client;
mod common;
mod demo;
mod director;
#[cfg(test)]
mod doc_commands;
#[cfg(test)]
mod doc_config;
mod dr;
mod generate;
mod http;
mod import;
mod lab;
mod logout;
mod otp;
mod policy;
mod server;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `tacvs --version` (and every subcommand's): the release and the commit.
const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TACVS_GIT_COMMIT"), ")");

/// TACACS+ virtual server: a fast RFC 8907 AAA server, a director (virtual IP,
/// schedulers, health checks, failover), a device-fleet simulator and a lab.

#[derive(Debug, Parser)]
#[command(name = "tacvs", version = VERSION, propagate_version = true, about, long_about = None)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, global = true, env = "TACVS_LOG", default_value = "info")]
    log_level: String,
    /// Threads that run connections (the async runtime's workers). Default:
    /// the CPUs this process may run on (its affinity mask, so `taskset -c 0`
    /// or a one-CPU cpuset means one). With one, the runtime is
    /// single-threaded: no work stealing, no cross-thread wake-ups.
    #[arg(long, global = true, env = "TACVS_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Log to standard error (INFO and DEBUG lines gathered: crate::logout);
/// the returned handle writes what is left at exit.
fn init_logging(format: LogFormat, level: &str) -> logout::LogOut<std::io::Stderr> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let out = logout::LogOut::new(std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(out.clone())
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        // Peer strings escaped, values with spaces quoted: one line per event.
        LogFormat::Text => b.fmt_fields(tacvs_server::logfmt::SafeFields).try_init(),
        // The stock JSON keys and order, written by hand (logjson).
        LogFormat::Json => b
            .json()
            .flatten_event(true)
            .event_format(tacvs_server::logjson::JsonEvent::default())
            .try_init(),
    };
    // A panic's message comes after the lines that led to it.
    let flush = out.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush.flush();
        default(info);
    }));
    out
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to a TACACS+ server: authenticate, authorize or account, print the reply.
    ///
    /// Exit status: 0 on PASS / SUCCESS, 1 on FAIL, 2 on ERROR, a wrong key or a
    /// transport failure.
    Client(Box<client::ClientArgs>),
    /// Run the TACACS+ AAA server (SIGHUP reloads, SIGTERM drains and stops),
    /// or ask a running one: lockouts, unlock, sessions.
    Server(server::ServerArgs),
    /// Run a director (virtual service in front of real servers), or control one.
    Director(Box<director::DirectorArgs>),
    /// Simulate a fleet of devices against a target and report what happened.
    ///
    /// Exit status: 0 when every --expect holds, 1 when one fails, 2 on a usage
    /// or set-up error.
    Sim(Box<sim::SimArgs>),
    /// Run the demonstration on loopback (no files needed): two tacvs servers
    /// behind a director, every protocol flow through it, then a simulated
    /// device fleet while one server is killed.
    Demo(demo::DemoArgs),
    /// The whole topology in network namespaces (devices, two directors with
    /// VRRP, N real servers): up, down, status, and scenarios with faults.
    Lab(lab::LabArgs),
    /// Hash a password for a `[[user]]` entry.
    HashPassword(admin::HashArgs),
    /// Validate a configuration file without starting anything.
    Check(admin::CheckArgs),
    /// Direct routing: set up or check a real server.
    Dr(dr::DrArgs),
    /// Translate a tac_plus or tac_plus-ng configuration into a tacvs server file.
    Import(import::ImportArgs),
    /// Shell completions and man pages, for packaging.
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
    /// One-time passwords: enroll a user (otpauth URI and QR code).
    Otp(otp::OtpArgs),
    /// Policy dry-run: explain one decision, or diff two configurations over the authorization log.
    Policy(policy::PolicyArgs),
    /// Certificates for TACACS+ over TLS in a lab or a first deployment: a
    /// CA, server and device certificates, a CRL that revokes devices.
    Cert(cert::CertArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo runs a server in-process: keep its per-request log lines out of
    // the report unless a level was asked for.
    let level = if matches!(cli.command, Command::Demo(_)) && cli.log_level == "info" {
        "warn"
    } else {
        &cli.log_level
    };
    let log = init_logging(cli.log_format, level);
    let threads = cli.threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(1)
    });
    let built = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tacvs: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(dispatch(cli.command));
    // Tasks still running log as the runtime stops: then write every line.
    drop(rt);
    log.flush();
    match code {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            eprintln!("tacvs: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run one subcommand; its exit status.
async fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Client(a) => client::run(*a).await,
        Command::Server(a) => server::run(a).await,
        Command::Sim(a) => sim::run(*a).await,
        Command::Director(a) => director::run(*a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Lab(a) => lab::run(a).await,
        Command::HashPassword(a) => admin::hash_password(a),
        Command::Check(a) => admin::check(a),
        Command::Dr(a) => dr::run(a).await,
        Command::Import(a) => import::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Otp(a) => otp::run(a),
        Command::Policy(a) => policy::run(a).await,
        Command::Cert(a) => cert::run(a),
    }
}

/// Raise the open-file soft limit to the hard limit: every connection is a
/// descriptor.
pub(crate) fn raise_nofile_limit() {
    #[allow(unsafe_code)]
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            let want = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                tracing::info!(from = r.rlim_cur, to = r.rlim_max, "raised the open-file limit");
            }
        }
    }
}
