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
    #[arg(long, default_value = "20s", value_parser = crate::common::duration)]
    duration: Duration,
    /// When to kill -9 the first real server (0s: never).
    #[arg(long, default_value = "10s", value_parser = crate::common::duration)]
    kill_at: Duration,
    /// Everything over TACACS+ over TLS 1.3 (RFC 9887): a lab CA made on the
    /// spot, TLS listeners on the servers, the director relaying TLS and
    /// checking the servers over TLS, every device with a certificate.
    #[arg(long)]
    tls: bool,
}

/// The demo's PKI (`--tls`), written under the demo's directory.
struct DemoPki {
    dir: PathBuf,
    fleet: tacvs_tls::certs::Pem,
}

impl DemoPki {
    fn new(dir: &Path) -> anyhow::Result<DemoPki> {
        use tacvs_tls::certs::{self, Role, Validity};
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir)?;
        let ca = certs::ca("tacvs demo CA", Validity::days(2))?;
        let put = |name: &str, text: &str| std::fs::write(dir.join(name), text);
        put("ca.pem", &ca.cert)?;
        put("ca.crl", &certs::crl(&ca, &[], 2, 1)?)?;
        let server = certs::issue(
            &ca,
            Role::Server,
            "tacvs-demo-server",
            &["127.0.0.1".into()],
            Validity::days(30),
        )?;
        put("server.pem", &server.cert)?;
        put("server.key", &server.key)?;
        let director =
            certs::issue(&ca, Role::Device, "tacvs-demo-director", &[], Validity::days(30))?;
        put("director.pem", &director.cert)?;
        put("director.key", &director.key)?;
        let fleet = certs::issue(&ca, Role::Device, "tacvs-demo-fleet", &[], Validity::days(30))?;
        Ok(DemoPki { dir, fleet })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn client(
        &self,
        vip: SocketAddr,
        id: &tacvs_tls::certs::Pem,
    ) -> anyhow::Result<tacvs_client::ClientTls> {
        let roots = tacvs_tls::client::roots(&self.dir.join("ca.pem"))?;
        let id = tacvs_tls::client::identity_from_pem(&id.cert, &id.key)?;
        Ok(tacvs_client::ClientTls {
            config: tacvs_tls::client::config(roots, Some(id))?,
            server_name: tacvs_tls::client::server_name(None, vip.ip())
                .map_err(anyhow::Error::msg)?,
        })
    }
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

/// A table of a config value at `path` (`a.b`, the first element of an array
/// of tables), for editing the embedded examples as values.
fn at<'a>(doc: &'a mut toml::Table, path: &str) -> anyhow::Result<&'a mut toml::Table> {
    let mut t = doc;
    for seg in path.split('.') {
        t = match t.get_mut(seg) {
            Some(toml::Value::Table(x)) => x,
            Some(toml::Value::Array(a)) => match a.first_mut() {
                Some(toml::Value::Table(x)) => x,
                _ => anyhow::bail!("embedded example: [[{path}]] is empty"),
            },
            _ => anyhow::bail!("embedded example: no [{path}]"),
        };
    }
    Ok(t)
}

/// examples/cluster/serverN.toml, edited as a value: a port the kernel
/// chooses, its files under `dir`, no metrics endpoint (nothing to collide
/// with). Written as TOML for the server process to read.
fn server_config(text: &str, n: u32, dir: &Path, pki: Option<&DemoPki>) -> anyhow::Result<String> {
    let d = dir.join(format!("rs{n}"));
    let mut doc: toml::Table = toml::from_str(text)?;
    at(&mut doc, "server.listen")?.insert("address".into(), "127.0.0.1:0".into());
    if let Some(p) = pki {
        let mut tls = toml::Table::new();
        for (k, f) in
            [("certificate", "server.pem"), ("key", "server.key"), ("client_ca", "ca.pem")]
        {
            tls.insert(k.into(), p.path(f).into());
        }
        tls.insert("crls".into(), toml::Value::Array(vec![p.path("ca.crl").into()]));
        tls.insert("max_handshakes_per_source".into(), 64.into());
        at(&mut doc, "server.listen")?.insert("tls".into(), tls.into());
    }
    at(&mut doc, "accounting")?
        .insert("directory".into(), d.join("acct").display().to_string().into());
    at(&mut doc, "authentication")?
        .insert("password_store".into(), d.join("passwords.json").display().to_string().into());
    doc.remove("metrics");
    Ok(toml::to_string(&doc)?)
}

/// examples/cluster/director.toml, edited as a value: a port the kernel
/// chooses for the virtual service, the two servers' real addresses, the
/// control socket under `dir`.
fn director_config(
    dir: &Path,
    reals: [SocketAddr; 2],
    pki: Option<&DemoPki>,
) -> anyhow::Result<String> {
    let mut doc: toml::Table = toml::from_str(DIRECTOR)?;
    if let Some(p) = pki {
        let mut tls = toml::Table::new();
        for (k, f) in [("ca", "ca.pem"), ("certificate", "director.pem"), ("key", "director.key")] {
            tls.insert(k.into(), p.path(f).into());
        }
        at(&mut doc, "service.health")?.insert("tls".into(), tls.into());
    }
    at(&mut doc, "director")?
        .insert("control_socket".into(), dir.join("director.sock").display().to_string().into());
    let service = at(&mut doc, "service")?;
    service.insert("listen".into(), "127.0.0.1:0".into());
    let Some(toml::Value::Array(list)) = service.get_mut("real") else {
        anyhow::bail!("embedded example: no [[service.real]]");
    };
    anyhow::ensure!(list.len() == 2, "embedded example: two real servers expected");
    for (r, addr) in list.iter_mut().zip(reals) {
        if let toml::Value::Table(t) = r {
            t.insert("address".into(), addr.to_string().into());
        }
    }
    Ok(toml::to_string(&doc)?)
}

/// The devices' addresses (the fleet's prefix); the self-check uses one too.
const DEVICES: &str = "127.1.0.0/16";
const SELFCHECK_DEVICE: &str = "127.1.255.254";

/// An address a device has: in the fleet's prefix. The director's own
/// (127.0.0.1) never is, so a server that saw it was told no PROXY header.
fn is_device(addr: &str) -> bool {
    let fleet: ipnet::IpNet = DEVICES.parse().expect("constant");
    addr.parse::<std::net::IpAddr>().is_ok_and(|a| fleet.contains(&a))
}

/// Failed requests a kill of one of two servers can explain: one per
/// connection the director had open to it just before (`open`, read from its
/// status), plus every request the fleet could have started in the `gap`
/// between that read and the kill. Connections after the kill are retried on
/// the other server, so they explain nothing. Measured rather than derived
/// from the rate: a fixed 50 ms of traffic failed a run on a loaded machine
/// (33 errors against a bound of 30) with nothing else wrong.
fn in_flight_bound(open: u32, rate: f64, gap: Duration) -> u64 {
    u64::from(open) + (rate * gap.as_secs_f64()).ceil() as u64 + 1
}

/// A duration as people write it (`200ms`, `1m 30s`).
fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let lines = tacvs_server::journal::read_lines(&dir.join("acct")).unwrap_or_default();
    lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

async fn demo(a: &DemoArgs, dir: &Path) -> anyhow::Result<u8> {
    let pki = if a.tls { Some(DemoPki::new(dir)?) } else { None };
    let mut paths: Vec<PathBuf> = Vec::new();
    for (n, text) in [(1, SERVER1), (2, SERVER2)] {
        let p = dir.join(format!("server{n}.toml"));
        std::fs::write(&p, server_config(text, n, dir, pki.as_ref())?)?;
        paths.push(p);
    }
    let (mut rs1, a1) = spawn_server(&paths[0], dir)?;
    let (_rs2, a2) = spawn_server(&paths[1], dir)?;
    let dtext = director_config(dir, [a1, a2], pki.as_ref())?;
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
        "tacvs demo: director on {vip} (wlc, TACACS+ health checks every {}) in front of two \
            tacvs servers: rs1 {a1}, rs2 {a2}{}",
        human(interval),
        if a.tls {
            "; everything over TLS 1.3 (RFC 9887), certificates from a CA made for the demo"
        } else {
            ""
        }
    );
    // Both real servers up (their checks have risen), within a bound.
    let ready = Instant::now();
    // Over TLS, up only once a check over TLS has passed.
    while !director.status()[0]
        .reals
        .iter()
        .all(|r| r.state == "up" && (!a.tls || r.last_check == "ok"))
    {
        if ready.elapsed() > (fall + 2) * (interval + timeout) + Duration::from_secs(5) {
            let st = director.status();
            let states: Vec<String> =
                st[0].reals.iter().map(|r| format!("{} {}", r.address, r.state)).collect();
            anyhow::bail!("the director did not see both servers up: {}", states.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    println!("\n1. Every protocol flow through the virtual IP, as user bob (readonly: show only):");
    // From a device's own address (not 127.0.0.1, which is also where the
    // director connects from): every address a server records is a device's.
    let checks = match &pki {
        None => {
            tacvs_client::selfcheck::run_from(
                vip,
                Key::new("tacvs-demo-key"),
                "bob",
                "bob-pass",
                Some(SELFCHECK_DEVICE.parse()?),
            )
            .await
        }
        Some(p) => {
            let tls = p.client(vip, &p.fleet)?;
            tacvs_client::selfcheck::run_tls(
                vip,
                tls,
                "bob",
                "bob-pass",
                Some(SELFCHECK_DEVICE.parse()?),
            )
            .await
        }
    };
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
        "\n2. {} devices run the `automation` profile (login, 50 authorized commands each with \
            accounting, a watchdog) at {:.0} requests/s for {}{}:",
        a.devices,
        a.rate,
        human(a.duration),
        if kill {
            format!("; rs1 is killed with SIGKILL at {}", human(a.kill_at))
        } else {
            String::new()
        }
    );
    let cfg = SimConfig {
        target: vip,
        key: Key::new("tacvs-demo-key"),
        devices: a.devices,
        source: DEVICES.parse()?,
        max_sockets: 4000,
        profile: Profile::builtin("automation").expect("built-in"),
        load: Load::Open(a.rate),
        duration: a.duration,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(5),
        pipeline: 1,
        acked: None,
        tls: match &pki {
            Some(p) => Some(tacvs_sim::SimTls {
                roots: tacvs_tls::client::roots(&p.dir.join("ca.pem"))?,
                server_name: tacvs_tls::client::server_name(None, vip.ip())
                    .map_err(anyhow::Error::msg)?,
                devices: tacvs_sim::DeviceCerts::Shared(p.fleet.clone()),
            }),
            None => None,
        },
    };
    let sim = tokio::spawn(tacvs_sim::run(cfg));
    let mut left_after = None;
    let mut in_flight = 0;
    if kill {
        tokio::time::sleep(a.kill_at).await;
        let read = Instant::now();
        let open = director.status()[0]
            .reals
            .iter()
            .find(|r| r.address == a1.to_string())
            .map_or(0, |r| r.active);
        let t = Instant::now();
        let _ = rs1.0.kill();
        in_flight = in_flight_bound(open, a.rate, t - read);
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
    let mut tls_ok = true;
    let mut seen_devices = 0;
    let mut kept = 0;
    let st = director.status();
    for (n, addr) in [(1, a1), (2, a2)] {
        let j = journal(&dir.join(format!("rs{n}")));
        kept += j.len();
        let addrs: HashSet<&str> = j.iter().filter_map(|v| v["device"].as_str()).collect();
        if a.tls {
            // Every record carries the certificate the device authenticated with.
            tls_ok &= j.iter().all(|v| v["tls"]["subject"] == "CN=tacvs-demo-fleet");
        }
        let own = addrs.iter().filter(|d| is_device(d)).count();
        let all_own = addrs.iter().all(|d| is_device(d));
        devices_ok &= all_own;
        seen_devices += own;
        let total =
            st[0].reals.iter().find(|r| r.address == addr.to_string()).map_or(0, |r| r.total);
        println!(
            "   rs{n} ({addr}): {total} connections from the director, {} accounting records \
                from {own} distinct device addresses; devices' own addresses only: {}",
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
            "   rs1 left scheduling {:.0} ms after the kill (bound: fall × interval + timeout = {})",
            t.as_secs_f64() * 1e3,
            human(fall * interval + timeout)
        );
        println!(
            "   {} requests failed; at most {in_flight} could have been in flight on rs1 (its \
                open connections at the kill)",
            report.total.errors
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
    if report.total.errors > in_flight {
        problems.push(format!(
            "{} failed requests (more than the {in_flight} that could have been in flight on rs1): {}",
            report.total.errors,
            report
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if new_records < acct_ok {
        problems.push(format!("only {new_records} records on disk for {acct_ok} acknowledged"));
    }
    if a.tls {
        println!(
            "   every record names the device's certificate (tls.subject CN=tacvs-demo-fleet): {}",
            if tls_ok { "yes" } else { "NO" }
        );
        if !tls_ok {
            problems.push("a journal record without the device's certificate".into());
        }
    }
    if !devices_ok || seen_devices == 0 {
        problems.push("a server saw an address that is not a device's own".into());
    }
    match (kill, left_after) {
        (true, None) => problems.push("rs1 never left scheduling".into()),
        (true, Some(t)) if t > bound => problems.push(format!(
            "rs1 took {:.0} ms to leave scheduling (bound {})",
            t.as_secs_f64() * 1e3,
            human(bound)
        )),
        _ => {}
    }
    director.stop();
    if problems.is_empty() {
        println!(
            "\nAll expectations met: every flow passed; failures only among requests in flight \
                on the killed server ({}); every acknowledged record on disk; every server saw \
                the devices' own addresses.",
            report.total.errors
        );
        Ok(0)
    } else {
        println!("\nFAILED: {}", problems.join("; "));
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fleet_addresses_are_devices() {
        assert!(is_device("127.1.0.7") && is_device(SELFCHECK_DEVICE));
        assert!(!is_device("127.0.0.1") && !is_device("::1") && !is_device("garbage"));
    }

    #[test]
    fn the_error_bound_is_the_open_connections_and_the_gap() {
        assert_eq!(in_flight_bound(0, 400.0, Duration::ZERO), 1);
        assert_eq!(in_flight_bound(12, 400.0, Duration::from_millis(1)), 12 + 1 + 1);
        assert_eq!(in_flight_bound(12, 2000.0, Duration::from_micros(2500)), 12 + 5 + 1);
    }
}
