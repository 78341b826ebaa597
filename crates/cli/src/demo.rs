//! `tacvs demo`: the README's main command. Needs no files: it starts a real
//! `tacvs server` in-process from the embedded `examples/server.toml`, proves
//! every protocol flow against it with the client, then drives a simulated fleet
//! of devices (each from its own 127.1.x.x address) through it and checks what
//! the devices saw against what the server journaled.

use std::collections::HashSet;
use std::time::Duration;

use clap::Args;
use tacvs_proto::Key;
use tacvs_sim::{Load, Profile, SimConfig};

const EXAMPLE: &str = include_str!("../../../examples/server.toml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated devices.
    #[arg(long, default_value_t = 2000)]
    devices: usize,
    /// Requests per second, in aggregate.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// How long the fleet runs.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

pub async fn run(a: DemoArgs) -> anyhow::Result<u8> {
    let dir = std::env::temp_dir().join(format!("tacvs-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = demo(&a, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo(a: &DemoArgs, dir: &std::path::Path) -> anyhow::Result<u8> {
    let text = EXAMPLE.replace("127.0.0.1:4949", "127.0.0.1:0").replace("\"./var/acct\"", &format!("{:?}", dir.join("acct")));
    let policy = tacvs_policy::parse("examples/server.toml (embedded)", &text, dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = tacvs_server::start(policy, None).await?;
    let addr = server.local_addrs[0];
    let key = Key::new("tacvs-demo-key");
    println!("tacvs demo: a tacvs server from the embedded examples/server.toml on {addr}, journal in {}", dir.display());

    println!("\n1. Every protocol flow, with `tacvs client`'s engine, as user bob (readonly: show only):");
    let checks = tacvs_client::selfcheck::run_as(addr, key.clone(), "bob", "bob-pass").await;
    let mut failed = 0;
    for c in &checks {
        failed += usize::from(!c.ok());
        let verdict = if c.ok() { "ok".to_owned() } else { format!("FAILED (wanted {})", c.want) };
        println!("   {:<38} {:<20} {:>7.2} ms  {verdict}", c.name, c.got, c.elapsed.as_secs_f64() * 1e3);
    }
    let journal_before = journal_lines(dir).len();

    println!(
        "\n2. A fleet of {} devices running the `automation` profile (login, 50 authorized commands with accounting for each, a watchdog) at {:.0} requests/s for {:?}:",
        a.devices, a.rate, a.duration
    );
    let cfg = SimConfig {
        target: addr,
        key,
        devices: a.devices,
        source: "127.1.0.0/16".parse()?,
        max_sockets: 4000,
        profile: Profile::builtin("automation").expect("built-in"),
        load: Load::Open(a.rate),
        duration: a.duration,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(5),
        pipeline: 1,
    };
    let report = tacvs_sim::run(cfg).await?;
    for line in report.table().lines() {
        println!("   {line}");
    }

    let lines = journal_lines(dir);
    let new = &lines[journal_before..];
    let acct_ok = report.by_type.get("acct").map_or(0, |t| t.ok) as usize;
    let devices: HashSet<&str> = new.iter().filter_map(|v| v["device"].as_str()).collect();
    let own = devices.iter().all(|d| d.starts_with("127.1."));
    println!("\n3. What the server kept:");
    println!("   {} accounting records journaled (fsync'd before each SUCCESS); the devices saw {} SUCCESS replies", new.len(), acct_ok);
    println!(
        "   {} distinct device addresses in the journal, all the devices' own (127.1.x.x): {}",
        devices.len(),
        if own { "yes" } else { "NO" }
    );

    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!("{failed} protocol check(s) failed"));
    }
    if report.total.errors > 0 {
        problems.push(format!("{} request errors: {:?}", report.total.errors, report.errors_by_kind));
    }
    if new.len() != acct_ok {
        problems.push(format!("journal has {} records but {} were acknowledged", new.len(), acct_ok));
    }
    if !own || devices.is_empty() {
        problems.push("the journal does not show the devices' own addresses".into());
    }
    server.shutdown(Duration::from_secs(2)).await;
    if problems.is_empty() {
        println!(
            "\nAll expectations met: every flow passed, no request failed, every acknowledged record is on disk with its device's own address."
        );
        Ok(0)
    } else {
        println!("\nFAILED: {}", problems.join("; "));
        Ok(1)
    }
}

fn journal_lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let files = tacvs_server::journal::journal_files(&dir.join("acct")).unwrap_or_default();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect::<Vec<_>>()
        })
        .collect()
}
