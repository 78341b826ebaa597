//! `tacvs`: the one binary. Each subcommand lives in its own module.

mod admin;
mod client;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// TACACS+ virtual server: a fast RFC 8907 AAA server, a director (virtual IP,
/// schedulers, health checks, failover), a device-fleet simulator and a lab.
#[derive(Debug, Parser)]
#[command(name = "tacvs", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to a TACACS+ server: authenticate, authorize or account, print the reply.
    ///
    /// Exit status: 0 on PASS / SUCCESS, 1 on FAIL, 2 on ERROR, a wrong key or a
    /// transport failure.
    Client(Box<client::ClientArgs>),
    /// Run the demonstration on loopback (no files needed).
    Demo(demo::DemoArgs),
    /// Hash a password for a `[[user]]` entry.
    HashPassword(admin::HashArgs),
    /// Validate a configuration file without starting anything.
    Check(admin::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tacvs: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Command::Client(a) => client::run(*a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::HashPassword(a) => admin::hash_password(a),
            Command::Check(a) => admin::check(a),
        }
    });
    match code {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            eprintln!("tacvs: {e:#}");
            ExitCode::from(2)
        }
    }
}
