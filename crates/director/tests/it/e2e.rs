//! The director end to end on loopback: devices from distinct 127.x addresses →
//! VIP → two real tacvs servers (PROXY v2 required, trusted from the director).
//! Servers journal the devices' own addresses; a killed server leaves scheduling
//! within fall × interval + timeout and costs at most the requests in flight;
//! drain and weight work over the control socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tacvs_client::{Client, ClientOptions};
use tacvs_director::{self as director, DirectorHandle, Reply, Request};
use tacvs_proto::*;

pub(crate) const KEY: &str = "director-test-key";

pub(crate) fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tacvs-dir-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) async fn real_server(dir: &Path) -> tacvs_server::ServerHandle {
    real_server_with(dir, "").await
}

/// A real server; `limits` is the body of its `[limits]` table.
pub(crate) async fn real_server_with(dir: &Path, limits: &str) -> tacvs_server::ServerHandle {
    let pw =
        tacvs_policy::PasswordHash::create(tacvs_policy::HashAlgorithm::Sha256Crypt, b"alice-pass")
            .unwrap();
    let text = format!(
        r#"
[server]
name = "{name}"
[[server.listen]]
address = "127.0.0.1:0"
proxy_protocol = "required"
trusted_proxies = ["127.0.0.1/32"]
[limits]
{limits}
[accounting]
directory = "{dir}/acct"
[[device_group]]
name = "devices"
prefixes = ["127.0.0.0/8"]
keys = ["{KEY}"]
[[group]]
name = "ops"
default_command_action = "permit"
  [[group.service]]
  name = "shell"
[[user]]
name = "alice"
password = "{pw}"
groups = ["ops"]
[[user]]
name = "tacvs-healthcheck"
groups = ["ops"]
"#,
        name = dir.file_name().unwrap().to_string_lossy(),
        dir = dir.display()
    );
    let policy = tacvs_policy::parse("rs.toml", &text, dir).unwrap();
    tacvs_server::start(policy, None).await.unwrap()
}

fn director_conf(reals: &[SocketAddr], dir: &Path, scheduler: &str) -> String {
    let mut s = format!(
        r#"
[director]
name = "dir-test"
control_socket = "{}/director.sock"
[[service]]
name = "tacacs"
listen = "127.0.0.1:0"
scheduler = "{scheduler}"
connect_timeout = "200ms"
  [service.health]
  check = "tacacs"
  interval = "100ms"
  timeout = "200ms"
  rise = 2
  fall = 2
  key = "{KEY}"
"#,
        dir.display()
    );
    for r in reals {
        s.push_str(&format!("  [[service.real]]\n  address = \"{r}\"\n"));
    }
    s
}

pub(crate) fn journal(dir: &Path) -> Vec<serde_json::Value> {
    tacvs_server::journal::read_lines(&dir.join("acct"))
        .unwrap_or_default()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_state(
    d: &DirectorHandle,
    server: SocketAddr,
    state: &str,
    within: Duration,
) -> Duration {
    let t = Instant::now();
    loop {
        let st = d.status();
        if st[0].reals.iter().any(|r| r.address == server.to_string() && r.state == state) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < within,
            "{server} not {state} after {within:?}: {}",
            director::render(&st, None)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) async fn account(
    vip: SocketAddr,
    src: &str,
    n: u32,
) -> Result<AcctStatus, tacvs_client::ClientError> {
    let opts = ClientOptions {
        source: Some(src.parse().unwrap()),
        timeout: Duration::from_secs(2),
        ..ClientOptions::new(vip, Some(Key::new(KEY)))
    };
    let args = vec![
        Argument::new("task_id", &n.to_string(), true).unwrap(),
        "service=shell".parse().unwrap(),
    ];
    Client::new(opts)
        .account(AcctRequest { flags: AcctFlags::Stop, request: AaaRequest::new("alice", args) })
        .await
        .map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_reach_real_servers_with_their_own_addresses() {
    let (d1, d2, dd) = (tmp("a1"), tmp("a2"), tmp("ad"));
    let (s1, s2) = (real_server(&d1).await, real_server(&d2).await);
    let conf = tacvs_director::config::parse(
        "director.toml",
        &director_conf(&[s1.local_addrs[0], s2.local_addrs[0]], &dd, "rr"),
    )
    .unwrap();
    let dir = director::start(conf).await.unwrap();
    let vip = dir.local_addrs[0];
    for i in 0..40u32 {
        let src = format!("127.6.{}.{}", i / 200, i % 200 + 1);
        assert_eq!(account(vip, &src, i).await.unwrap(), AcctStatus::Success);
    }
    let (j1, j2) = (journal(&d1), journal(&d2));
    assert_eq!(j1.len() + j2.len(), 40);
    assert!(j1.len() >= 15 && j2.len() >= 15, "round robin: {} / {}", j1.len(), j2.len());
    for rec in j1.iter().chain(j2.iter()) {
        let dev = rec["device"].as_str().unwrap();
        assert!(dev.starts_with("127.6."), "server saw {dev}, not the device's own address");
    }
    let st = dir.status();
    assert!(
        st[0].reals.iter().all(|r| r.state == "up" && r.last_check == "ok"),
        "{}",
        director::render(&st, None)
    );
    assert_eq!(st[0].reals.iter().map(|r| r.total).sum::<u64>(), 40);

    // drain / enable / weight over the control socket.
    let (a1, sock) = (s1.local_addrs[0], dd.join("director.sock"));
    let r = director::request(&sock, &Request::Drain { server: a1 }).await.unwrap();
    assert!(
        matches!(&r, Reply::Changed { changes } if changes.len() == 1 && changes[0].to == 0),
        "{r:?}"
    );
    let before = journal(&d1).len();
    for i in 100..120u32 {
        assert_eq!(account(vip, "127.6.9.9", i).await.unwrap(), AcctStatus::Success);
    }
    assert_eq!(journal(&d1).len(), before, "a drained server takes no new connections");
    let r = director::request(&sock, &Request::Weight { server: a1, weight: 3 }).await.unwrap();
    assert!(matches!(r, Reply::Changed { .. }), "{r:?}");
    let status = director::status(&sock).await.unwrap();
    let text = director::render(&status.services, status.vrrp.as_ref());
    assert!(text.contains("3*"), "weight override shown: {text}");
    let nowhere = "127.0.0.1:1".parse().unwrap();
    let r = director::request(&sock, &Request::Enable { server: nowhere }).await.unwrap();
    assert!(matches!(r, Reply::Error { .. }), "{r:?}");
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    s2.shutdown(Duration::from_millis(100)).await;
    for d in [d1, d2, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_leaves_scheduling_fast_and_costs_only_in_flight_requests() {
    let (d1, d2, dd) = (tmp("k1"), tmp("k2"), tmp("kd"));
    let (s1, s2) = (real_server(&d1).await, real_server(&d2).await);
    let dead = s1.local_addrs[0];
    let conf = tacvs_director::config::parse(
        "director.toml",
        &director_conf(&[dead, s2.local_addrs[0]], &dd, "wlc"),
    )
    .unwrap();
    let dir = Arc::new(director::start(conf).await.unwrap());
    let vip = dir.local_addrs[0];
    wait_state(&dir, dead, "up", Duration::from_secs(2)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                match account(vip, &format!("127.7.0.{}", w + 1), n).await {
                    Ok(AcctStatus::Success) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    s1.shutdown(Duration::ZERO).await;
    let took = wait_state(&dir, dead, "down", Duration::from_secs(2)).await;
    // fall × interval + timeout = 2 × 100 ms + 200 ms, plus one interval of phase.
    assert!(
        took <= Duration::from_millis(2 * 100 + 200 + 100 + 50),
        "left scheduling after {took:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 100, "{ok}");
    // Connects to the dead server are retried on the other one; only requests
    // already on the dead server's connections can fail: at most one per worker.
    assert!(failed <= workers, "{failed} failed requests with {workers} in flight");
    let st = dir.status();
    let d = st[0].reals.iter().find(|r| r.address == dead.to_string()).unwrap();
    assert!(d.last_check.starts_with("failed"), "{}", director::render(&st, None));
    s2.shutdown(Duration::from_millis(100)).await;
    for d in [d1, d2, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_reweight_and_reload_under_load_fail_nothing() {
    let (d1, d2, d3, dd) = (tmp("r1"), tmp("r2"), tmp("r3"), tmp("rd"));
    let (s1, s2, s3) = (real_server(&d1).await, real_server(&d2).await, real_server(&d3).await);
    let (a1, a2, a3) = (s1.local_addrs[0], s2.local_addrs[0], s3.local_addrs[0]);
    let text = director_conf(&[a1, a2], &dd, "wlc");
    let mut dir =
        director::start(tacvs_director::config::parse("d.toml", &text).unwrap()).await.unwrap();
    let vip = dir.local_addrs[0];
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for w in 0..6u32 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match account(vip, &format!("127.8.0.{}", w + 1), n).await {
                    Ok(AcctStatus::Success) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("{other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
            }
        }));
    }
    let total = |d: &DirectorHandle, a: SocketAddr| {
        d.status()[0].reals.iter().find(|r| r.address == a.to_string()).map_or(0, |r| r.total)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Drain a1: it takes nothing new.
    assert_eq!(dir.set_weight(a1, Some(0)), 1);
    let t1 = total(&dir, a1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total(&dir, a1), t1, "drained server took new connections");
    // Reweight: back in, with weight 3.
    dir.set_weight(a1, Some(3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(total(&dir, a1) > t1);
    // Reload: rr scheduler, a2 removed, a3 added.
    let text2 = director_conf(&[a1, a3], &dd, "rr");
    dir.reload(tacvs_director::config::parse("d.toml", &text2).unwrap()).unwrap();
    let t2 = total(&dir, a1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = dir.status();
    assert_eq!(st[0].scheduler, "rr");
    assert!(
        st[0].reals.iter().all(|r| r.address != a2.to_string()),
        "a2 removed: {}",
        director::render(&st, None)
    );
    assert!(total(&dir, a3) > 0, "a3 added and used: {}", director::render(&st, None));
    assert!(total(&dir, a1) > t2);
    // A reload that moves the service to an address in use is refused and
    // changes nothing (the load above keeps running on the old address).
    let moved = text2.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{a1}\""));
    let e = dir.reload(tacvs_director::config::parse("d.toml", &moved).unwrap()).unwrap_err();
    assert!(e.to_string().contains("another process listens there"), "{e}");
    assert_eq!(dir.local_addrs, vec![vip]);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 200);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "drain, reweight and reload under load failed requests"
    );
    // Every record landed on a server the director sent it to; a2 kept what it got before removal.
    let n: usize = [&d1, &d2, &d3].iter().map(|d| journal(d).len()).sum();
    assert_eq!(n, ok.load(Ordering::Relaxed));
    dir.stop();
    for s in [s1, s2, s3] {
        s.shutdown(Duration::from_millis(100)).await;
    }
    for d in [d1, d2, d3, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

pub(crate) fn conf_with(
    reals: &[SocketAddr],
    dir: &Path,
    health: &str,
    extra: &str,
) -> tacvs_director::config::DirectorFile {
    let mut s = format!(
        "[director]\ncontrol_socket = \"{}/director.sock\"\n[[service]]\nname = \
            \"tacacs\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"rr\"\nconnect_timeout = \
            \"200ms\"\n{extra}\n  [service.health]\n{health}\n",
        dir.display()
    );
    for r in reals {
        s.push_str(&format!("  [[service.real]]\n  address = \"{r}\"\n"));
    }
    tacvs_director::config::parse("t.toml", &s).unwrap()
}

pub(crate) const TCP: &str = "  check = \"tcp\"\n  interval = \"100ms\"\n  timeout = \"200ms\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_with_a_wrong_key_is_misconfigured_and_still_serves() {
    let (d1, dd) = (tmp("m1"), tmp("md"));
    let s1 = real_server(&d1).await;
    let a1 = s1.local_addrs[0];
    let wrong = "  check = \"tacacs\"\n  interval = \"100ms\"\n  timeout = \"200ms\"\n  key = \"not-the-key\"";
    let dir = director::start(conf_with(&[a1], &dd, wrong, "")).await.unwrap();
    wait_state(&dir, a1, "misconfigured", Duration::from_secs(2)).await;
    let st = dir.status();
    assert!(st[0].reals[0].last_check.contains("misconfigured"), "{}", director::render(&st, None));
    assert_eq!(account(dir.local_addrs[0], "127.9.0.1", 1).await.unwrap(), AcctStatus::Success);
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_server_drained_devices_go_to_the_sorry_server() {
    let (d1, d3, dd) = (tmp("so1"), tmp("so3"), tmp("sod"));
    let (s1, sorry) = (real_server(&d1).await, real_server(&d3).await);
    let a1 = s1.local_addrs[0];
    let extra = format!("sorry_server = \"{}\"", sorry.local_addrs[0]);
    let dir = director::start(conf_with(&[a1], &dd, TCP, &extra)).await.unwrap();
    dir.set_weight(a1, Some(0));
    assert_eq!(account(dir.local_addrs[0], "127.9.0.2", 2).await.unwrap(), AcctStatus::Success);
    assert_eq!((journal(&d3).len(), journal(&d1).len()), (1, 0), "served by the sorry server");
    dir.set_weight(a1, None);
    assert_eq!(account(dir.local_addrs[0], "127.9.0.2", 3).await.unwrap(), AcctStatus::Success);
    assert_eq!((journal(&d3).len(), journal(&d1).len()), (1, 1), "back to the real server");
    dir.stop();
    for s in [s1, sorry] {
        s.shutdown(Duration::from_millis(100)).await;
    }
    for d in [d1, d3, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `on_down`: a failed server is either removed from scheduling (listed as
/// down, its configured weight kept for when it returns) or inhibited (kept
/// in the table with weight 0, as LVS's inhibit_on_failure). Either way it
/// gets no new connection; with every server failed, devices go to the sorry
/// server. In proxy mode that is the whole scheduling difference: what
/// differs is the weight in force, in status and in the weight gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_server_is_inhibited_at_weight_zero_or_removed_and_gets_nothing_either_way() {
    for (mode, weight_when_down) in [("inhibit", 0), ("remove", 1)] {
        let (d1, d2, d3, dd) = (tmp("i1"), tmp("i2"), tmp("i3"), tmp("id"));
        let (s1, s2, sorry) =
            (real_server(&d1).await, real_server(&d2).await, real_server(&d3).await);
        let (a1, a2) = (s1.local_addrs[0], s2.local_addrs[0]);
        let extra = format!("sorry_server = \"{}\"\non_down = \"{mode}\"", sorry.local_addrs[0]);
        let dir = director::start(conf_with(&[a1, a2], &dd, TCP, &extra)).await.unwrap();
        let vip = dir.local_addrs[0];
        s2.shutdown(Duration::ZERO).await;
        wait_state(&dir, a2, "down", Duration::from_secs(2)).await;
        let st = dir.status();
        let down = st[0].reals.iter().find(|r| r.address == a2.to_string()).unwrap();
        assert_eq!(
            (down.weight, down.config_weight),
            (weight_when_down, 1),
            "{mode}: {}",
            director::render(&st, None)
        );
        assert_eq!(st[0].reals.len(), 2, "{mode}: listed either way");
        let shown = director::render(&st, None);
        assert_eq!(shown.contains("0*"), mode == "inhibit", "{mode}: {shown}");
        let n1 = journal(&d1).len();
        for i in 0..10 {
            assert_eq!(account(vip, "127.9.0.3", 10 + i).await.unwrap(), AcctStatus::Success);
        }
        assert_eq!(journal(&d1).len(), n1 + 10, "{mode}: all to the live server");
        // Every server failed: the sorry server, in both modes.
        s1.shutdown(Duration::ZERO).await;
        wait_state(&dir, a1, "down", Duration::from_secs(2)).await;
        assert_eq!(account(vip, "127.9.0.4", 30).await.unwrap(), AcctStatus::Success);
        assert_eq!(journal(&d3).len(), 1, "{mode}: served by the sorry server");
        dir.stop();
        sorry.shutdown(Duration::from_millis(100)).await;
        for d in [d1, d2, d3, dd] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_data_path_carries_sessions() {
    let (d1, dd) = (tmp("sp1"), tmp("spd"));
    let s1 = real_server(&d1).await;
    let dir = director::start(conf_with(&[s1.local_addrs[0]], &dd, TCP, "copy = \"splice\""))
        .await
        .unwrap();
    let vip = dir.local_addrs[0];
    for i in 0..30 {
        assert_eq!(
            account(vip, &format!("127.10.0.{}", i + 1), i).await.unwrap(),
            AcctStatus::Success
        );
    }
    // A single-connect connection with several sessions through the pipes.
    let mut c = Client::new(ClientOptions {
        single_connect: true,
        ..ClientOptions::new(vip, Some(Key::new(KEY)))
    });
    for _ in 0..5 {
        let r = c
            .authorize(AaaRequest::new(
                "alice",
                vec!["service=shell".parse().unwrap(), "cmd=show".parse().unwrap()],
            ))
            .await
            .unwrap();
        assert_eq!(r.status, AuthorStatus::PassAdd);
    }
    assert_eq!(c.single_connect(), Some(true));
    let j = journal(&d1);
    assert_eq!(j.len(), 30);
    assert!(j.iter().all(|r| r["device"].as_str().unwrap().starts_with("127.10.0.")));
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}
