//! `tacvs lab run`: bring the topology up, drive the fleet at the VIP from
//! the devices namespace, apply the fault schedule on time, watch both
//! directors (VRRP state, real server states) every 20 ms, then check what
//! was measured against the scenario's bounds and write the report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::measure;
use crate::report::{Accounting, Applied, Check, Event, LabReport, ServersSaw, table};
use crate::scenario::{Action, Scenario};
use crate::topo::{self, FLEET, Front, KEY, Lab, LabError, Role, Spec, VIP};

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Namespace prefix.
    pub prefix: String,
    /// Base directory; the run uses `DIR/<scenario>`.
    pub dir: PathBuf,
    /// The `tacvs` binary.
    pub bin: PathBuf,
    /// Multiply the workload's rate (CI runs scenarios scaled down).
    pub scale: f64,
    /// Leave the lab up afterwards.
    pub keep: bool,
    /// Measure for this long instead of the scenario's duration (CI runs
    /// the story short); fault times stay as written.
    pub duration: Option<Duration>,
}

#[derive(Debug, Default)]
struct Watch {
    events: Vec<(Instant, String, String)>,
    /// Per director: VRRP state and each real server's state.
    last: HashMap<u8, (String, HashMap<String, String>)>,
}

impl Watch {
    fn master(&self) -> Option<u8> {
        let mut m: Vec<u8> =
            self.last.iter().filter(|(_, (s, _))| s == "MASTER").map(|(d, _)| *d).collect();
        m.sort_unstable();
        (m.len() == 1).then(|| m[0])
    }
}

async fn poll_once(lab: &Lab, w: &Mutex<Watch>) {
    for d in 1..=lab.spec.directors {
        let sock = lab.control_socket(d);
        let reply =
            tokio::time::timeout(Duration::from_millis(200), tacvs_director::status(&sock)).await;
        let now = Instant::now();
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        // Each state carries how long it has held (state_for_s): an event is
        // dated when the director changed, not when the poll noticed.
        let since =
            |held_s: f64| now.checked_sub(Duration::from_secs_f64(held_s.max(0.0))).unwrap_or(now);
        let (state, vrrp_at, reals) = match reply {
            Ok(Ok(report)) => {
                let (state, at) = match &report.vrrp {
                    Some(v) => (v.state.clone(), since(v.state_for_s)),
                    None => ("NONE".to_owned(), now),
                };
                let mut reals = HashMap::new();
                for r in report.services.iter().take(1).flat_map(|s| &s.reals) {
                    reals.insert(
                        server_name(lab, &r.address),
                        (r.state.clone(), since(r.state_for_s)),
                    );
                }
                (state, at, reals)
            }
            _ => ("unreachable".to_owned(), now, HashMap::new()),
        };
        let name = format!("d{d}");
        let prev = w.last.get(&d).cloned();
        if prev.as_ref().map(|p| &p.0) != Some(&state) {
            w.events.push((vrrp_at, name.clone(), state.clone()));
        }
        for (s, (st, at)) in &reals {
            if prev.as_ref().and_then(|p| p.1.get(s)) != Some(st) {
                w.events.push((*at, name.clone(), format!("{s} {st}")));
            }
        }
        let reals = reals.into_iter().map(|(s, (st, _))| (s, st)).collect();
        w.last.insert(d, (state, reals));
    }
}

/// The lab's name for a real server ("s2"), found by its address in the
/// topology; an address the lab did not create keeps its own text.
fn server_name(lab: &Lab, address: &str) -> String {
    let ip = address.parse::<std::net::SocketAddr>().map(|a| a.ip());
    (1..=lab.spec.servers)
        .map(Role::Server)
        .find(|r| ip.as_ref().is_ok_and(|ip| *ip == std::net::IpAddr::V4(r.addr())))
        .map_or_else(|| address.to_owned(), Role::short)
}

/// Wait until one director is MASTER and, on it, every real server is up.
pub async fn wait_ready(lab: &Lab, within: Duration) -> Result<u8, LabError> {
    let w = Mutex::new(Watch::default());
    let until = Instant::now() + within;
    loop {
        poll_once(lab, &w).await;
        {
            let w = w.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = w.master()
                && w.last.get(&m).is_some_and(|(_, r)| {
                    r.len() == usize::from(lab.spec.servers) && r.values().all(|s| s == "up")
                })
                && w.last.values().all(|(s, _)| s != "unreachable")
            {
                return Ok(m);
            }
            if Instant::now() > until {
                return Err(LabError::NotReady(format!(
                    "no director became MASTER with every real server up within {within:?}: \
                        {:?}; see the logs under {}",
                    w.last,
                    lab.spec.dir.display()
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the director poller however `drive` returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Run a scenario end to end; the report is also written to
/// `DIR/<name>/report.{json,txt,svg}`. A lab already up under the same
/// prefix is torn down first, and `DIR/<name>` is replaced.
pub async fn run(sc: &Scenario, opts: &RunOptions) -> Result<LabReport, LabError> {
    let mut sc = sc.clone();
    if let Some(d) = opts.duration {
        sc.workload.duration = d;
    }
    let sc = &sc;
    let dir = opts.dir.join(&sc.name);
    let spec = Spec {
        prefix: opts.prefix.clone(),
        dir: dir.clone(),
        bin: opts.bin.clone(),
        servers: sc.topology.servers,
        directors: sc.topology.directors,
        director: sc.director.clone(),
        tls: sc.topology.tls,
        front: sc.topology.front,
        nat: sc.nat.clone(),
        steer: sc.measure.director_cpu,
    };
    let lab = Lab::new(spec)?;
    // A fresh run: a previous run's journals would count as this one's.
    lab.down()?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|err| LabError::Io { path: dir.display().to_string(), err })?;
    }
    let lab2 = lab.clone();
    let st = tokio::task::spawn_blocking(move || lab2.up())
        .await
        .map_err(|e| LabError::NotReady(e.to_string()))??;
    let result = drive(sc, opts, &lab, st).await;
    if !opts.keep {
        let lab2 = lab.clone();
        let _ = tokio::task::spawn_blocking(move || lab2.down()).await;
    }
    let report = result?;
    write_report(&report, &dir)?;
    Ok(report)
}

/// Wait until the front answers: a `tacvs director` MASTER with every real
/// server up; HAProxy listening on the VIP; the NAT's rules are in place
/// once `up` returns.
pub async fn wait_front(lab: &Lab, within: Duration) -> Result<(), LabError> {
    match lab.spec.front {
        Front::Proxy | Front::Dr => wait_ready(lab, within).await.map(|_| ()),
        Front::Nat => Ok(()),
        Front::HaproxyTcp | Front::HaproxyProxyV2 => {
            let want = format!("{}:0031", topo::hex_addr(VIP));
            let until = Instant::now() + within;
            loop {
                let pid = lab
                    .state()
                    .and_then(|st| {
                        st.procs.iter().find(|p| p.role == Role::Director(1)).map(|p| p.pid)
                    })
                    .unwrap_or(0);
                let tcp =
                    std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
                if tcp.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
                }) {
                    return Ok(());
                }
                if Instant::now() > until {
                    return Err(LabError::NotReady(format!(
                        "HAProxy does not listen on {VIP}:49 after {within:?}: see {}",
                        lab.role_dir(Role::Director(1)).join("haproxy.log").display()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One `tacvs sim` in the devices namespace, writing `NAME.json` (and
/// `NAME-acked.txt`) in `dir`.
#[allow(clippy::too_many_arguments)]
fn start_sim(
    lab: &Lab,
    dir: &Path,
    name: &str,
    w: &crate::scenario::Workload,
    devices: usize,
    source: &str,
    profile: &str,
    rate: f64,
    max_sockets: usize,
) -> Result<(tokio::process::Child, PathBuf, PathBuf, PathBuf), LabError> {
    let json = dir.join(format!("{name}.json"));
    let acked = dir.join(format!("{name}-acked.txt"));
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|err| LabError::Io { path: log_path.display().to_string(), err })?;
    let args: Vec<String> = vec![
        "sim".into(),
        "--server".into(),
        format!("{VIP}:49"),
        "--devices".into(),
        devices.to_string(),
        "--source".into(),
        source.into(),
        "--profile".into(),
        profile.into(),
        "--rate".into(),
        format!("{rate}"),
        "--duration".into(),
        humantime::format_duration(w.duration).to_string(),
        "--warmup".into(),
        humantime::format_duration(w.warmup).to_string(),
        "--timeout".into(),
        humantime::format_duration(w.timeout).to_string(),
        "--max-sockets".into(),
        max_sockets.to_string(),
        "--json".into(),
        json.display().to_string(),
        "--acked".into(),
        acked.display().to_string(),
    ];
    let mut args = args;
    if lab.spec.tls {
        // Each device with its own certificate (naming its address), minted by the lab CA.
        let pki = lab.pki_dir();
        let ca = pki.join("ca.pem").display().to_string();
        let key = pki.join("ca.key").display().to_string();
        for a in ["--tls", "--tls-ca", &ca, "--tls-issuer-cert", &ca, "--tls-issuer-key", &key] {
            args.push(a.to_owned());
        }
    }
    let ns = lab.ns(Role::Devices);
    let child =
        tokio::process::Command::from(lab.command(&ns, &lab.spec.bin.display().to_string()))
            .args(&args)
            .env("TACVS_KEY", KEY)
            .stdout(
                log.try_clone()
                    .map_err(|err| LabError::Io { path: log_path.display().to_string(), err })?,
            )
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LabError::Command {
                cmd: format!("ip netns exec {ns} tacvs sim"),
                err: e.to_string(),
            })?;
    Ok((child, json, acked, log_path))
}

async fn wait_sim(
    child: &mut tokio::process::Child,
    until: Instant,
    json: &Path,
    log: &Path,
) -> Result<tacvs_sim::Report, LabError> {
    match tokio::time::timeout(until.saturating_duration_since(Instant::now()), child.wait()).await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(LabError::Command { cmd: "tacvs sim".into(), err: e.to_string() });
        }
        Err(_) => {
            return Err(LabError::NotReady(format!(
                "tacvs sim did not finish: see {}",
                log.display()
            )));
        }
    }
    std::fs::read(json).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| {
        LabError::NotReady(format!("tacvs sim wrote no report: see {}", log.display()))
    })
}

async fn drive(
    sc: &Scenario,
    opts: &RunOptions,
    lab: &Lab,
    st: topo::State,
) -> Result<LabReport, LabError> {
    wait_front(lab, Duration::from_secs(20)).await?;
    let dir = lab.spec.dir.clone();
    let mut pids: HashMap<String, u32> = st.procs.iter().map(|p| (p.role.short(), p.pid)).collect();
    let measuring = sc.measure.director_cpu;
    // The directors' idle cost, subtracted from what the load costs.
    let idle = if measuring {
        let a = measure::Snap::take(lab);
        tokio::time::sleep(Duration::from_secs(2)).await;
        Some((a, measure::Snap::take(lab)))
    } else {
        None
    };
    let watch = Arc::new(Mutex::new(Watch::default()));
    let poller = lab.spec.front.is_tacvs().then(|| {
        let w2 = watch.clone();
        let lab2 = lab.clone();
        // Faults are timed from the directors' own clocks at 20 ms; a run
        // without faults polls less, so its cost stays out of the numbers.
        let every = if sc.faults.is_empty() {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(20)
        };
        AbortOnDrop(tokio::spawn(async move {
            loop {
                poll_once(&lab2, &w2).await;
                tokio::time::sleep(every).await;
            }
        }))
    });

    let w = &sc.workload;
    let rate = w.rate_for(sc.topology.devices) * opts.scale;
    let t0_wall = SystemTime::now();
    let t0 = Instant::now();
    let (mut sim, sim_json, acked, log_path) = start_sim(
        lab,
        &dir,
        "sim",
        w,
        sc.topology.devices,
        FLEET,
        &w.profile,
        rate,
        w.max_sockets,
    )?;
    let mut second = match &w.single_connect {
        None => None,
        Some(sc1) => {
            let profile = dir.join("single-connect.toml");
            std::fs::write(
                &profile,
                "# Written by `tacvs lab`: the automation profile on one long-lived connection per device.\n\
                 name = \"automation-single-connect\"\nstyle = \"single-connect\"\nwatchdogs = 1\n",
            )
            .map_err(|err| LabError::Io { path: profile.display().to_string(), err })?;
            Some(start_sim(
                lab,
                &dir,
                "single-connect",
                w,
                sc1.devices,
                crate::scenario::SINGLE_CONNECT_SOURCE,
                &profile.display().to_string(),
                sc1.rate * opts.scale,
                sc1.devices + 64,
            )?)
        }
    };
    // The measured window's reads, and conntrack's peak, off the fault path.
    let window = measuring.then(|| {
        let lab2 = lab.clone();
        let (from, to) = (t0 + w.warmup, t0 + w.warmup + w.duration);
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            // The XDP program's own time, counted over the window only.
            let stats =
                (lab2.spec.front == Front::Dr).then(tacvs_xdp::enable_run_time_stats).and_then(
                    |r| r.map_err(|e| tracing::warn!(error = %e, "no BPF run-time stats")).ok(),
                );
            let a = measure::Snap::take(&lab2);
            let mut peak = 0;
            while Instant::now() < to {
                if lab2.spec.front == Front::Nat {
                    peak = peak.max(measure::conntrack_count(&lab2));
                }
                tokio::time::sleep(
                    Duration::from_secs(1).min(to.saturating_duration_since(Instant::now())),
                )
                .await;
            }
            let b = measure::Snap::take(&lab2);
            drop(stats);
            if lab2.spec.front == Front::Nat {
                peak = peak.max(measure::conntrack_count(&lab2));
            }
            (a, b, peak)
        })
    });

    let mut applied = Vec::new();
    for f in &sc.faults {
        tokio::time::sleep_until((t0 + f.at).into()).await;
        let master = watch.lock().unwrap_or_else(|e| e.into_inner()).master();
        let resolved = match f.target.as_str() {
            "master" => master.map(|m| format!("d{m}")),
            "backup" => master.map(|m| format!("d{}", 3 - m)),
            t => Some(t.to_owned()),
        };
        let at = t0.elapsed().as_secs_f64();
        let result = match &resolved {
            None => "skipped: no single MASTER at that moment".to_owned(),
            Some(r) => apply(lab, &mut pids, f.action, r, &f.args),
        };
        tracing::info!(
            at,
            action = %f.action,
            target = %f.target,
            resolved = resolved.as_deref().unwrap_or("none"),
            %result,
            "fault"
        );
        applied.push(Applied {
            at_s: at,
            action: f.action.to_string(),
            target: f.target.clone(),
            resolved: resolved.unwrap_or_default(),
            result,
        });
    }
    let until = t0 + w.warmup + w.duration + w.timeout + Duration::from_secs(60);
    let report = wait_sim(&mut sim, until, &sim_json, &log_path).await?;
    let mut acked_files = vec![acked];
    let single = match &mut second {
        None => None,
        Some((child, json, acked, log)) => {
            acked_files.push(acked.clone());
            Some(wait_sim(child, until, json, log).await?)
        }
    };
    let cost = match (idle, window) {
        (Some((i0, i1)), Some(task)) => {
            let (a, b, peak) =
                task.await.map_err(|e| LabError::NotReady(format!("measuring: {e}")))?;
            let requests = report.total.requests + single.as_ref().map_or(0, |s| s.total.requests);
            let mut c = measure::cost(&i0, &i1, &a, &b, requests);
            let lab2 = lab.clone();
            let c = tokio::task::spawn_blocking(move || {
                measure::memory(&lab2, &mut c, peak);
                c
            })
            .await
            .map_err(|e| LabError::NotReady(format!("measuring: {e}")))?;
            Some(c)
        }
        _ => None,
    };
    // The data plane's attach mode, as the director reports it.
    let attach = if lab.spec.front == Front::Dr {
        let m = watch.lock().unwrap_or_else(|e| e.into_inner()).master().unwrap_or(1);
        tacvs_director::status(&lab.control_socket(m))
            .await
            .ok()
            .and_then(|r| r.dr)
            .map(|d| d.attach)
    } else {
        None
    };
    drop(poller);
    // The sim's clock starts a little after t0 (process start-up): express
    // every lab time on the sim's clock, as its series is.
    let offset = (report.started_unix_ms as f64 - unix_ms(t0_wall) as f64) / 1000.0;
    for a in &mut applied {
        a.at_s -= offset;
    }
    let events: Vec<Event> = {
        let w = watch.lock().unwrap_or_else(|e| e.into_inner());
        w.events
            .iter()
            .filter(|(t, _, _)| *t >= t0)
            .map(|(t, d, what)| Event {
                t_s: (*t - t0).as_secs_f64() - offset,
                director: d.clone(),
                what: what.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut events = events;
    events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let (accounting, servers_saw) = accounting(lab, &acked_files);
    let checks = checks(sc, opts.scale, &report, single.as_ref(), &applied, &events, &accounting);
    Ok(LabReport {
        scenario: sc.name.clone(),
        description: sc.description.clone(),
        front: lab.spec.front.name().into(),
        servers: sc.topology.servers,
        directors: sc.topology.directors,
        devices: sc.topology.devices,
        rate,
        faults: applied,
        events,
        checks,
        accounting,
        servers_saw,
        director_cost: cost,
        attach,
        sim: report,
        single_connect: single,
    })
}

/// Apply one fault; returns "ok" or what went wrong.
fn apply(
    lab: &Lab,
    pids: &mut HashMap<String, u32>,
    action: Action,
    target: &str,
    args: &str,
) -> String {
    let Some(role) = Role::parse(target) else { return format!("no such target {target:?}") };
    let ns = lab.ns(role);
    let pid = pids.get(target).copied();
    let sig = |s: i32| match pid {
        Some(p) if topo::alive(p) => {
            if topo::signal(p, s) {
                "ok".to_owned()
            } else {
                format!("signal to {p} failed")
            }
        }
        _ => format!("{target} is not running"),
    };
    let r = match action {
        Action::Kill => {
            let r = sig(libc::SIGKILL);
            topo::reap(&pid.into_iter().collect::<Vec<_>>());
            Ok(r)
        }
        Action::Stop => Ok(sig(libc::SIGSTOP)),
        Action::Cont => Ok(sig(libc::SIGCONT)),
        Action::Start => {
            if pid.is_some_and(topo::alive) {
                Ok(format!("{target} is already running"))
            } else {
                lab.spawn(role).map(|p| {
                    pids.insert(target.to_owned(), p);
                    "ok".to_owned()
                })
            }
        }
        Action::LinkDown => {
            topo::sh("ip", &["-n", &ns, "link", "set", "eth0", "down"]).map(|_| "ok".to_owned())
        }
        Action::LinkUp => topo::sh("ip", &["-n", &ns, "link", "set", "eth0", "up"]).map(|_| {
            // Taking the link down flushed the route to the fleet.
            if role != Role::Devices {
                let _ = topo::sh(
                    "ip",
                    &["-n", &ns, "route", "replace", FLEET, "via", &topo::DEV_ADDR.to_string()],
                );
            }
            "ok".to_owned()
        }),
        Action::Netem => {
            if !topo::have_netem(&ns) {
                Ok("skipped: this kernel has no sch_netem".to_owned())
            } else {
                let mut a =
                    vec!["-n", ns.as_str(), "qdisc", "replace", "dev", "eth0", "root", "netem"];
                a.extend(args.split_whitespace());
                topo::sh("tc", &a).map(|_| "ok".to_owned())
            }
        }
        Action::ClearNetem if !topo::have_netem(&ns) => {
            Ok("skipped: this kernel has no sch_netem".to_owned())
        }
        Action::Shape => {
            let mut a = vec!["-n", ns.as_str(), "qdisc", "replace", "dev", "eth0", "root", "tbf"];
            a.extend(args.split_whitespace());
            topo::sh("tc", &a).map(|_| "ok".to_owned())
        }
        Action::ClearNetem | Action::ClearShape => {
            Ok(topo::sh("tc", &["-n", &ns, "qdisc", "del", "dev", "eth0", "root"])
                .map(|_| "ok".to_owned())
                .unwrap_or_else(|_| "nothing to clear".to_owned()))
        }
    };
    r.unwrap_or_else(|e| e.to_string())
}

/// Every acknowledged record must be in some real server's journal, and
/// whose addresses the servers journaled. Behind HAProxy without PROXY
/// headers the servers journal the director's address, so there records are
/// matched on their type and arguments alone (the task id names the device).
fn accounting(lab: &Lab, acked: &[PathBuf]) -> (Accounting, ServersSaw) {
    let by_device = lab.spec.front != Front::HaproxyTcp;
    let key = |k: &str| -> String {
        if by_device {
            k.to_owned()
        } else {
            k.split_once(' ').map_or(k, |(_, rest)| rest).to_owned()
        }
    };
    let fleet: ipnet::Ipv4Net = FLEET.parse().expect("a prefix");
    let mut saw = ServersSaw::default();
    let mut have: HashMap<String, i64> = HashMap::new();
    let mut journaled = 0;
    for s in 1..=lab.spec.servers {
        let dir = lab.role_dir(Role::Server(s)).join("acct");
        for line in tacvs_server::journal::read_lines(&dir).unwrap_or_default() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            let args: Vec<String> = v["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            let device = v["device"].as_str().unwrap_or_default();
            match device.parse::<std::net::Ipv4Addr>() {
                Ok(a) if fleet.contains(&a) => saw.devices += 1,
                _ => {
                    saw.other += 1;
                    if saw.other_examples.len() < 3
                        && !saw.other_examples.iter().any(|e| e == device)
                    {
                        saw.other_examples.push(device.to_owned());
                    }
                }
            }
            let k = tacvs_sim::ack_key(device, v["record"].as_str().unwrap_or_default(), &args);
            *have.entry(key(&k)).or_insert(0) += 1;
            journaled += 1;
        }
    }
    let mut out = Accounting { journaled, ..Default::default() };
    for file in acked {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            out.acknowledged += 1;
            let n = have.entry(key(line)).or_insert(0);
            *n -= 1;
            if *n < 0 {
                out.missing += 1;
                if out.missing_examples.len() < 10 {
                    out.missing_examples.push(line.to_owned());
                }
            }
        }
    }
    (out, saw)
}

fn ms(d: f64) -> String {
    format!("{:.0} ms", d * 1000.0)
}

fn checks(
    sc: &Scenario,
    scale: f64,
    r: &tacvs_sim::Report,
    single: Option<&tacvs_sim::Report>,
    applied: &[Applied],
    events: &[Event],
    acct: &Accounting,
) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(s) = single {
        let c = &s.connections;
        let bound = sc.checks.max_broken_sessions;
        out.push(Check {
            name: "established single-connect sessions broken".into(),
            measured: format!(
                "{} of {} requests on kept connections ({} answered after ≥ 1 s)",
                c.kept_errors, c.kept, c.kept_over_1s
            ),
            bound: bound.map_or("-".into(), |b| b.to_string()),
            ok: bound.is_none_or(|b| c.kept_errors <= b),
        });
    }
    if !applied.is_empty() {
        let c = &r.connections;
        out.push(Check {
            name: "new sessions: failed / delayed ≥ 1 s (reported)".into(),
            measured: format!("{} / {} of {}", c.new_errors, c.new_over_1s, c.new),
            bound: "-".into(),
            ok: true,
        });
    }
    for e in &sc.workload.expect {
        if let Ok(x) = tacvs_sim::Expect::parse(e) {
            let x = x.scaled(scale);
            let res = x.check(r);
            let bound = if scale == 1.0 { e.clone() } else { format!("{e} at ×{scale}") };
            out.push(Check {
                name: format!("sim {e}"),
                measured: res.clone().unwrap_or_else(|m| m),
                bound,
                ok: res.is_ok(),
            });
        }
    }
    out.push(Check {
        name: "acknowledged accounting records missing from the journals".into(),
        measured: format!(
            "{} of {} ({} journaled)",
            acct.missing, acct.acknowledged, acct.journaled
        ),
        bound: "0".into(),
        ok: acct.missing == 0
            && (acct.acknowledged > 0 || r.by_type.get("acct").is_none_or(|t| t.requests == 0)),
    });
    let d = &sc.director;
    // Events are dated by the director itself; 25 ms covers timer and
    // scheduling jitter on a loaded machine.
    let removal_bound = sc
        .checks
        .max_removal
        .unwrap_or(d.health_interval * d.fall + d.health_timeout + Duration::from_millis(25));
    // A fault that did not happen tested nothing: the run fails.
    for a in applied.iter().filter(|a| a.result != "ok") {
        out.push(Check {
            name: format!("{} of {} at {:.2}s applied", a.action, a.target, a.at_s),
            measured: a.result.clone(),
            bound: "ok".into(),
            ok: false,
        });
    }
    let mut explained =
        Explained::new(sc.workload.rate_for(sc.topology.devices) * scale, sc.topology.servers);
    // Without a director-side connect to retry elsewhere (DR, NAT), a
    // killed server's share fails until it is out, as a hung one's does.
    explained.no_retry =
        !matches!(sc.topology.front, Front::Proxy | Front::HaproxyTcp | Front::HaproxyProxyV2);
    for a in applied.iter().filter(|a| a.result == "ok") {
        let Some(role) = Role::parse(&a.resolved) else { continue };
        explained.add(a, role, events, removal_bound, sc.checks.max_failover);
        let director_fault = matches!(role, Role::Director(_))
            && matches!(a.action.as_str(), "kill" | "stop" | "link-down");
        if director_fault {
            let other = match role {
                Role::Director(i) => format!("d{}", 3 - i),
                _ => unreachable!("checked"),
            };
            let took = events
                .iter()
                .find(|e| e.t_s >= a.at_s && e.director == other && e.what == "MASTER")
                .map(|e| e.t_s - a.at_s);
            let bound = sc.checks.max_failover;
            out.push(Check {
                name: format!(
                    "{} of {} at {:.2}s: {other} MASTER within",
                    a.action, a.resolved, a.at_s
                ),
                measured: took.map_or("never".into(), ms),
                bound: bound.map_or("-".into(), |b| ms(b.as_secs_f64())),
                ok: took.is_some_and(|t| bound.is_none_or(|b| t <= b.as_secs_f64())),
            });
            // Until when did new sessions fail? The failure window that began
            // at the fault.
            let window =
                r.outages.iter().find(|o| o.to_s >= a.at_s - 0.05 && o.from_s <= a.at_s + 2.0);
            out.push(Check {
                name: format!("{} of {}: new sessions failing until", a.action, a.resolved),
                measured: window.map_or("no failed request".into(), |o| {
                    format!(
                        "{} after the fault ({} failed)",
                        ms((o.last_start_s - a.at_s).max(0.0)),
                        o.errors
                    )
                }),
                bound: bound.map_or("-".into(), |b| ms(b.as_secs_f64())),
                ok: window.is_none_or(|o| {
                    bound.is_none_or(|b| o.last_start_s - a.at_s <= b.as_secs_f64())
                }),
            });
        }
        let server_fault = matches!(role, Role::Server(_))
            && matches!(a.action.as_str(), "kill" | "stop" | "link-down");
        if server_fault {
            let what = format!("{} down", a.resolved);
            let took =
                events.iter().find(|e| e.t_s >= a.at_s && e.what == what).map(|e| e.t_s - a.at_s);
            out.push(Check {
                name: format!(
                    "{} of {} at {:.2}s: out of scheduling within",
                    a.action, a.resolved, a.at_s
                ),
                measured: took.map_or("never".into(), ms),
                bound: ms(removal_bound.as_secs_f64()),
                ok: took.is_some_and(|t| t <= removal_bound.as_secs_f64()),
            });
        }
    }
    out.push(Check {
        name: "failed requests, at most what the faults explain".into(),
        measured: r.total.errors.to_string(),
        bound: explained.describe(),
        ok: r.total.errors <= explained.total(),
    });
    if let Some(b) = sc.checks.max_outage {
        let worst = r.outages.iter().map(|o| o.last_start_s - o.from_s).fold(0.0, f64::max);
        out.push(Check {
            name: "longest window in which new sessions failed".into(),
            measured: ms(worst),
            bound: ms(b.as_secs_f64()),
            ok: worst <= b.as_secs_f64(),
        });
    }
    out
}

/// How many failed requests the applied faults account for, each from what
/// it can break: the requests in flight at that moment (50 ms of traffic,
/// ten times the p99 of full-size runs, plus 10), and the requests sent
/// into a window the directors measured — a takeover (the other director
/// MASTER), or a hung or cut-off server still in scheduling (its share of
/// the traffic until it was out) — a killed one too where the front cannot
/// retry a refused connect elsewhere (DR, NAT). Fixed from the scenario and
/// the directors' own times, never from the run's latency, so a collapse
/// cannot widen it.
#[derive(Debug)]
struct Explained {
    rate: f64,
    servers: f64,
    parts: Vec<(String, u64)>,
    /// The front cannot retry a refused connect on another server.
    no_retry: bool,
}

impl Explained {
    fn new(rate: f64, servers: u8) -> Explained {
        Explained { rate, servers: f64::from(servers.max(1)), parts: Vec::new(), no_retry: false }
    }

    fn in_flight(&self) -> u64 {
        (self.rate * 0.05).ceil() as u64 + 10
    }

    fn add(
        &mut self,
        a: &Applied,
        role: Role,
        events: &[Event],
        removal_bound: Duration,
        failover_bound: Option<Duration>,
    ) {
        let after = |what: &dyn Fn(&Event) -> bool| {
            events.iter().find(|e| e.t_s >= a.at_s && what(e)).map(|e| e.t_s - a.at_s)
        };
        let in_flight = self.in_flight();
        let (why, n) = match (role, a.action.as_str()) {
            (Role::Director(i), "kill" | "stop" | "link-down") => {
                let other = format!("d{}", 3 - i);
                let window = after(&|e| e.director == other && e.what == "MASTER")
                    .or(failover_bound.map(|b| b.as_secs_f64()))
                    .unwrap_or(1.0);
                (
                    format!("{} in flight + {:.0} ms takeover", in_flight, window * 1e3),
                    in_flight + (self.rate * window).ceil() as u64,
                )
            }
            (Role::Server(_), "stop" | "link-down") | (Role::Server(_), "kill")
                if a.action != "kill" || self.no_retry =>
            {
                let what = format!("{} down", a.resolved);
                let window = after(&|e| e.what == what).unwrap_or(removal_bound.as_secs_f64());
                (
                    format!(
                        "{} in flight + 1/{} of {:.0} ms until out",
                        in_flight,
                        self.servers,
                        window * 1e3
                    ),
                    in_flight + (self.rate / self.servers * window).ceil() as u64,
                )
            }
            (Role::Server(_), "cont" | "start") => return,
            _ => (format!("{in_flight} in flight"), in_flight),
        };
        self.parts.push((format!("{} of {}: {why}", a.action, a.resolved), n));
    }

    fn total(&self) -> u64 {
        self.parts.iter().map(|(_, n)| n).sum()
    }

    fn describe(&self) -> String {
        if self.parts.is_empty() {
            return "0 (no fault)".into();
        }
        let parts: Vec<String> = self.parts.iter().map(|(w, n)| format!("{n} ({w})")).collect();
        format!("{} = {}", self.total(), parts.join(" + "))
    }
}

fn write_report(r: &LabReport, dir: &Path) -> Result<(), LabError> {
    crate::report::write_three(dir, "report", r, &table(r), |p| crate::chart::svg(r, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topo::DirectorSettings;

    fn lab(dir: &Path) -> Lab {
        Lab::new(Spec {
            prefix: "unit".into(),
            dir: dir.into(),
            bin: "tacvs".into(),
            servers: 2,
            directors: 2,
            director: DirectorSettings::default(),
            tls: false,
            front: Front::Proxy,
            nat: crate::topo::NatSettings::default(),
            steer: false,
        })
        .unwrap()
    }

    #[test]
    fn accounting_is_checked_record_by_record() {
        let dir = std::env::temp_dir().join(format!("tacvs-lab-acct-{}", std::process::id()));
        let l = lab(&dir);
        let line = |dev: &str, rec: &str, task: &str| {
            let args = [format!("task_id={task}"), "service=shell".into()];
            serde_json::json!({"device": dev, "record": rec, "args": args}).to_string()
        };
        for (s, lines) in [
            (1, vec![line("10.100.0.1", "start", "0-1"), line("10.100.0.1", "stop", "0-1")]),
            (2, vec![line("10.100.0.2", "start", "1-1")]),
        ] {
            let d = l.role_dir(Role::Server(s)).join("acct");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("acct-20261126T000000Z-0.jsonl"), lines.join("\n") + "\n")
                .unwrap();
        }
        let key = |dev: &str, rec: &str, task: &str| {
            tacvs_sim::ack_key(dev, rec, &[format!("task_id={task}"), "service=shell".into()])
        };
        let acked = dir.join("acked.txt");
        std::fs::write(
            &acked,
            [key("10.100.0.1", "start", "0-1"), key("10.100.0.2", "start", "1-1")].join("\n"),
        )
        .unwrap();
        let a = accounting(&l, std::slice::from_ref(&acked)).0;
        assert_eq!((a.acknowledged, a.journaled, a.missing), (2, 3, 0));
        // Acknowledged twice, journaled once: one is missing. And one never journaled.
        std::fs::write(
            &acked,
            [
                key("10.100.0.2", "start", "1-1"),
                key("10.100.0.2", "start", "1-1"),
                key("10.100.0.3", "stop", "2-1"),
            ]
            .join("\n"),
        )
        .unwrap();
        let a = accounting(&l, std::slice::from_ref(&acked)).0;
        assert_eq!((a.acknowledged, a.missing), (3, 2));
        assert!(
            a.missing_examples.iter().any(|m| m.starts_with("10.100.0.3 stop")),
            "{:?}",
            a.missing_examples
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn scenario(extra: &str) -> Scenario {
        Scenario::parse(
            "t.toml",
            &format!(
                "name = \"t\"\n[topology]\nservers = 3\ndevices = 10\n[workload]\nrate = \
                100\nduration = \"20s\"\nexpect = [\"throughput>=90\"]\n{extra}"
            ),
        )
        .unwrap()
    }

    fn applied(at: f64, action: &str, target: &str) -> Applied {
        Applied {
            at_s: at,
            action: action.into(),
            target: target.into(),
            resolved: target.into(),
            result: "ok".into(),
        }
    }

    fn ev(t: f64, d: &str, what: &str) -> Event {
        Event { t_s: t, director: d.into(), what: what.into() }
    }

    #[test]
    fn checks_measure_faults_from_events_and_outages() {
        let sc = scenario("[checks]\nmax_failover = \"1s\"\nmax_outage = \"1s\"\n");
        let mut r = tacvs_sim::Report::default();
        r.total.throughput = 60.0;
        r.total.errors = 73;
        r.outages = vec![tacvs_sim::report::Outage {
            from_s: 8.0,
            to_s: 8.4,
            last_start_s: 8.35,
            errors: 40,
        }];
        let acct = Accounting { acknowledged: 5, journaled: 5, ..Default::default() };
        let faults =
            [applied(8.0, "kill", "d1"), applied(12.0, "kill", "s2"), applied(14.0, "stop", "s3")];
        let events =
            [ev(8.34, "d2", "MASTER"), ev(12.25, "d1", "s2 down"), ev(15.0, "d2", "s3 down")];
        let c = checks(&sc, 0.5, &r, None, &faults, &events, &acct);
        let get = |name: &str| {
            c.iter().find(|c| c.name.contains(name)).unwrap_or_else(|| panic!("{name}: {c:#?}"))
        };
        assert!(get("throughput").ok, "100 req/s at ×0.5 expects 45: {:?}", get("throughput"));
        assert!(get("d2 MASTER within").ok && get("d2 MASTER within").measured == "340 ms");
        assert!(
            get("new sessions failing until").ok
                && get("new sessions failing until").measured.starts_with("350 ms")
        );
        assert!(get("kill of s2").ok && get("kill of s2").measured == "250 ms");
        // fall 2 × 200 ms + 300 ms (+25 ms jitter) = 725 ms: s3 took 1 s.
        assert!(!get("stop of s3").ok && get("stop of s3").bound == "725 ms");
        assert!(get("missing from the journals").ok);
        // Errors explained: 100 req/s × 0.5 = 50 req/s, 13 in flight per fault;
        // d1 killed: 13 + 50 × 0.34 s = 30; s2 killed: 13; s3 hung until it
        // was out at 1 s: 13 + 50/3 × 1 s = 30; total 73.
        let explained = get("faults explain");
        assert!(
            explained.ok && explained.bound.starts_with("73 = 30 (kill of d1"),
            "{explained:?}"
        );
        r.total.errors = 74;
        let c = checks(&sc, 0.5, &r, None, &faults, &events, &acct);
        assert!(!c.iter().any(|c| c.name.contains("faults explain") && c.ok), "{c:#?}");
        // A fault that did not happen fails the run.
        let mut skipped = applied(3.0, "netem", "s1");
        skipped.result = "skipped: this kernel has no sch_netem".into();
        let c = checks(&sc, 0.5, &r, None, &[skipped], &events, &acct);
        assert!(c.iter().any(|c| c.name.contains("netem of s1") && !c.ok), "{c:#?}");
        let no_master = checks(&sc, 1.0, &r, None, &faults[..1], &[], &acct);
        assert!(
            no_master
                .iter()
                .any(|c| c.name.contains("MASTER within") && !c.ok && c.measured == "never")
        );
    }
}
