//! `tacvs dr`: direct routing helpers. `real-server setup` prepares this
//! machine to be a DR real server; `real-server check` says what would stop
//! it from answering DR traffic (`tacvs_xdp::realserver`).

use std::net::IpAddr;

use clap::{Args, Subcommand};

/// `tacvs dr ...`
#[derive(Debug, Args)]
pub struct DrArgs {
    #[command(subcommand)]
    command: DrCommand,
}

#[derive(Debug, Subcommand)]
enum DrCommand {
    /// This machine as a DR real server.
    #[command(subcommand)]
    RealServer(RealServerCommand),
    /// Hold an XDP_PASS program on an interface until stopped (SIGTERM or
    /// Ctrl-C). On a veth, native XDP_TX from the other end needs it; the
    /// lab runs it on the bridge's ports to the directors.
    XdpPass {
        /// The interface (in this network namespace).
        #[arg(long)]
        interface: String,
    },
}

#[derive(Debug, Subcommand)]
enum RealServerCommand {
    /// Put each VIP on lo (/32 or /128), bring lo up, and set
    /// net.ipv4.conf.{all,lo}.arp_ignore=1 and arp_announce=2 (needs root;
    /// not persistent: see docs/operations.md for /etc/sysctl.d).
    Setup {
        /// A virtual address the directors forward to this server (repeatable).
        #[arg(long = "vip", required = true)]
        vips: Vec<IpAddr>,
    },
    /// Say what would stop this machine from answering DR traffic for a VIP.
    ///
    /// Exit status: 0 when ready, 1 when something is wrong.
    Check {
        /// The virtual address.
        #[arg(long)]
        vip: IpAddr,
        /// Also check that something listens on this TCP port.
        #[arg(long)]
        port: Option<u16>,
    },
}

pub async fn run(args: DrArgs) -> anyhow::Result<u8> {
    let cmd = match args.command {
        DrCommand::RealServer(cmd) => cmd,
        DrCommand::XdpPass { interface } => {
            let _held = tacvs_xdp::PassProgram::attach(&interface)?;
            println!("XDP_PASS attached to {interface}; held until this process stops");
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return Ok(0);
        }
    };
    match cmd {
        RealServerCommand::Setup { vips } => {
            let done = tacvs_xdp::realserver::setup(&vips).await?;
            if done.is_empty() {
                println!("already set up: nothing to change");
            }
            for d in done {
                println!("{d}");
            }
            Ok(0)
        }
        RealServerCommand::Check { vip, port } => {
            let facts = tacvs_xdp::realserver::gather(vip, port).await?;
            let problems = tacvs_xdp::realserver::check(&facts);
            if problems.is_empty() {
                println!("ready for direct routing to {vip}");
                return Ok(0);
            }
            for p in &problems {
                println!("problem: {}\n    fix: {}", p.what, p.fix);
            }
            Ok(1)
        }
    }
}
