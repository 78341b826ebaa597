//! `tacvs demo`: the README's main command. Needs no files. It starts two real
//! `tacvs server` processes (the embedded examples/cluster configs) and a
//! director in front of them on loopback, proves every protocol flow through the
//! virtual IP, then drives a fleet of simulated devices (each from its own
//! 127.1.x.x address) through it, `kill -9`s one server half-way, and checks
//! what the devices saw against what the servers kept.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use tacvs_proto::Key;
use tacvs_sim::{Load, Profile, SimConfig};

const SERVER1: &str = include_str!("../../../examples/cluster/server1.toml");
const SERVER2: &str = include_str!("../../../examples/cluster/server2.toml");
const DIRECTOR: &str = include_str!("../../../examples/cluster/director.toml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated devices.
    #[arg(long, default_value_t = 5000)]
    devices: usize,
    /// Requests per second, in aggregate.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// How long the fleet runs.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// When to kill -9 the first real server (0s: never).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    kill_at: Duration,
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `tacvs server -c config` as a child and wait for its listening address.
fn spawn_server(config: &Path, cwd: &Path) -> anyhow::Result<(Proc, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--log-format",
            "json",
            "--log-level",
            "warn,tacvs_server=info",
            "server",
            "--config",
        ])
        .arg(config)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("\"listening\"")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(a) = v["addr"].as_str().and_then(|a| a.parse::<SocketAddr>().ok())
            {
                let _ = tx.send(a);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| anyhow::anyhow!("server {} did not start", config.display()))?;
    Ok((Proc(child), addr))
}

pub async fn run(a: DemoArgs) -> anyhow::Result<u8> {
    let dir = std::env::temp_dir().join(format!("tacvs-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = demo(&a, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn server_config(text: &str, n: u32, dir: &Path) -> String {
    let d = dir.join(format!("rs{n}"));
    text.replace(&format!("127.0.0.1:490{n}"), "127.0.0.1:0")
        .replace(&format!("\"./var/rs{n}/acct\""), &format!("{:?}", d.join("acct")))
        .replace(
            &format!("\"./var/rs{n}/passwords.json\""),
            &format!("{:?}", d.join("passwords.json")),
        )
        // No metrics endpoint for the demo's servers: nothing to collide with.
        .replace(&format!("[metrics]\nlisten = \"127.0.0.1:945{n}\""), "")
}

fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let lines = tacvs_server::journal::read_lines(&dir.join("acct")).unwrap_or_default();
    lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

async fn demo(a: &DemoArgs, dir: &Path) -> anyhow::Result<u8> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (n, text) in [(1, SERVER1), (2, SERVER2)] {
        let p = dir.join(format!("server{n}.toml"));
        std::fs::write(&p, server_config(text, n, dir))?;
        paths.push(p);
    }
    let (mut rs1, a1) = spawn_server(&paths[0], dir)?;
    let (_rs2, a2) = spawn_server(&paths[1], dir)?;
    let dtext = DIRECTOR
        .replace("127.0.0.1:4900", "127.0.0.1:0")
        .replace("127.0.0.1:4901", &a1.to_string())
        .replace("127.0.0.1:4902", &a2.to_string())
        .replace("\"./var/director.sock\"", &format!("{:?}", dir.join("director.sock")));
    let conf = tacvs_director::config::parse("examples/cluster/director.toml (embedded)", &dtext)
        .map_err(anyhow::Error::msg)?;
    let (interval, timeout, fall) = (
        conf.services[0].health.interval.get(),
        conf.services[0].health.timeout.get(),
        conf.services[0].health.fall,
    );
    let director = tacvs_director::start(conf).await?;
    let vip = director.local_addrs[0];
    println!(
        "tacvs demo: director on {vip} (wlc, TACACS+ health checks every {interval:?}) in front of two tacvs servers: rs1 {a1}, rs2 {a2}"
    );
    tokio::time::sleep(interval * 2).await;

    println!("\n1. Every protocol flow through the virtual IP, as user bob (readonly: show only):");
    let checks =
        tacvs_client::selfcheck::run_as(vip, Key::new("tacvs-demo-key"), "bob", "bob-pass").await;
    let mut failed = 0;
    for c in &checks {
        failed += usize::from(!c.ok());
        let verdict = if c.ok() { "ok".to_owned() } else { format!("FAILED (wanted {})", c.want) };
        println!(
            "   {:<38} {:<20} {:>7.2} ms  {verdict}",
            c.name,
            c.got,
            c.elapsed.as_secs_f64() * 1e3
        );
    }
    let before: usize = [1, 2].iter().map(|n| journal(&dir.join(format!("rs{n}"))).len()).sum();

    let kill = !a.kill_at.is_zero() && a.kill_at < a.duration;
    println!(
        "\n2. {} devices run the `automation` profile (login, 50 authorized commands each with accounting, a watchdog) at {:.0} requests/s for {:?}{}:",
        a.devices,
        a.rate,
        a.duration,
        if kill {
            format!("; rs1 is killed with SIGKILL at {:?}", a.kill_at)
        } else {
            String::new()
        }
    );
    let cfg = SimConfig {
        target: vip,
        key: Key::new("tacvs-demo-key"),
        devices: a.devices,
        source: "127.1.0.0/16".parse()?,
        max_sockets: 4000,
        profile: Profile::builtin("automation").expect("built-in"),
        load: Load::Open(a.rate),
        duration: a.duration,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(5),
        pipeline: 1,
        acked: None,
    };
    let sim = tokio::spawn(tacvs_sim::run(cfg));
    let mut left_after = None;
    if kill {
        tokio::time::sleep(a.kill_at).await;
        let t = Instant::now();
        let _ = rs1.0.kill();
        let _ = rs1.0.wait();
        while t.elapsed() < Duration::from_secs(5) {
            let st = director.status();
            if st[0].reals.iter().any(|r| r.address == a1.to_string() && r.state == "down") {
                left_after = Some(t.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let report = sim.await??;
    for line in report.table().lines() {
        println!("   {line}");
    }

    println!("\n3. What the servers kept (accounting is fsync'd before each SUCCESS):");
    let mut devices_ok = true;
    let mut seen_devices = 0;
    let mut kept = 0;
    let st = director.status();
    for (n, addr) in [(1, a1), (2, a2)] {
        let j = journal(&dir.join(format!("rs{n}")));
        kept += j.len();
        let addrs: HashSet<&str> = j.iter().filter_map(|v| v["device"].as_str()).collect();
        let own = addrs.iter().filter(|d| d.starts_with("127.1.")).count();
        let all_own = addrs.iter().all(|d| d.starts_with("127.1.") || *d == "127.0.0.1");
        devices_ok &= all_own;
        seen_devices += own;
        let total =
            st[0].reals.iter().find(|r| r.address == addr.to_string()).map_or(0, |r| r.total);
        println!(
            "   rs{n} ({addr}): {total} connections from the director, {} accounting records from {own} distinct device addresses; devices' own addresses only: {}",
            j.len(),
            if all_own { "yes" } else { "NO" }
        );
    }
    let acct_ok = report.by_type.get("acct").map_or(0, |t| t.ok) as usize;
    let new_records = kept.saturating_sub(before);
    println!("   {new_records} records journaled for {acct_ok} SUCCESS replies the devices saw");
    // Checks overlap when the timeout exceeds the interval, so this is the
    // worst case; 25 ms covers timer jitter.
    let bound = fall * interval + timeout + Duration::from_millis(25);
    if let Some(t) = left_after {
        println!(
            "   rs1 left scheduling {:.0} ms after the kill (bound: fall × interval + timeout = {:?})",
            t.as_secs_f64() * 1e3,
            fall * interval + timeout
        );
    }
    print!(
        "{}",
        tacvs_director::render(&st, None).lines().map(|l| format!("   {l}\n")).collect::<String>()
    );

    // The expectations, stated.
    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!("{failed} protocol check(s) failed"));
    }
    // Requests on rs1's connections at the moment of the kill can fail; the
    // open-loop rate × p99 bounds how many were in flight.
    let in_flight_bound = if kill {
        ((a.rate * report.total.latency_ms.p99.max(5.0) / 1000.0).ceil() as u64).max(10) * 2
    } else {
        0
    };
    if report.total.errors > in_flight_bound {
        problems.push(format!(
            "{} failed requests (more than the {in_flight_bound} that could have been in flight on rs1): {:?}",
            report.total.errors, report.errors_by_kind
        ));
    }
    if new_records < acct_ok {
        problems.push(format!("only {new_records} records on disk for {acct_ok} acknowledged"));
    }
    if !devices_ok || seen_devices == 0 {
        problems.push("a server saw an address that is not a device's own".into());
    }
    match (kill, left_after) {
        (true, None) => problems.push("rs1 never left scheduling".into()),
        (true, Some(t)) if t > bound => {
            problems.push(format!("rs1 took {t:?} to leave scheduling (bound {bound:?})"))
        }
        _ => {}
    }
    director.stop();
    if problems.is_empty() {
        println!(
            "\nAll expectations met: every flow passed; failures only among requests in flight on the killed server ({}); every acknowledged record on disk; every server saw the devices' own addresses.",
            report.total.errors
        );
        Ok(0)
    } else {
        println!("\nFAILED: {}", problems.join("; "));
        Ok(1)
    }
}
