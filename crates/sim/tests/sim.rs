//! tacvs-sim against a real tacvs-server on loopback: counts agree with the
//! server's journal; each failure kind is produced and classified.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tacvs_proto::Key;
use tacvs_sim::{Load, Profile, SimConfig, Style};

const KEY: &str = "sim-test-key";

async fn server(tag: &str) -> (tacvs_server::ServerHandle, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tacvs-sim-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pw =
        tacvs_policy::PasswordHash::create(tacvs_policy::HashAlgorithm::Sha256Crypt, b"alice-pass")
            .unwrap();
    let text = format!(
        "[server]\nname = \"sim-rs\"\n[[server.listen]]\naddress = \"127.0.0.1:0\"\n[accounting]\ndirectory = \"{}/acct\"\n\
         [[device_group]]\nname = \"fleet\"\nprefixes = [\"127.0.0.0/8\"]\nkeys = [\"{KEY}\"]\n\
         [[group]]\nname = \"ops\"\ndefault_command_action = \"permit\"\n  [[group.service]]\n  name = \"shell\"\n\
         [[user]]\nname = \"alice\"\npassword = \"{pw}\"\ngroups = [\"ops\"]\n",
        dir.display()
    );
    let policy = tacvs_policy::parse("sim.toml", &text, &dir).unwrap();
    (tacvs_server::start(policy, None).await.unwrap(), dir)
}

fn cfg(target: SocketAddr, key: &str, profile: Profile, load: Load) -> SimConfig {
    SimConfig {
        target,
        key: Key::new(key),
        devices: 200,
        source: "127.1.0.0/16".parse().unwrap(),
        max_sockets: 256,
        profile,
        load,
        duration: Duration::from_millis(1500),
        warmup: Duration::ZERO,
        timeout: Duration::from_millis(400),
        pipeline: 1,
        acked: None,
        tls: None,
    }
}

fn journal_lines(dir: &std::path::Path) -> usize {
    tacvs_server::journal::read_lines(&dir.join("acct")).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_agree_with_the_servers_journal() {
    let (srv, dir) = server("counts").await;
    for (style, load) in
        [(Style::PerSession, Load::Open(2000.0)), (Style::SingleConnect, Load::Closed(16))]
    {
        let before = journal_lines(&dir);
        let mut p = Profile::builtin("automation").unwrap();
        p.style = style;
        p.commands = 5;
        let r = tacvs_sim::run(cfg(srv.local_addrs[0], KEY, p, load)).await.unwrap();
        assert_eq!(r.total.errors, 0, "{}", r.table());
        assert!(r.total.requests > 300, "{}", r.table());
        let acct = &r.by_type["acct"];
        // No warm-up: every accounting SUCCESS the fleet saw is one journal line.
        assert_eq!(journal_lines(&dir) - before, acct.ok as usize, "{}", r.table());
        // Counted without an `acked` ledger file too (docs/sim-report.md).
        assert_eq!(r.acct_acknowledged, acct.ok, "{style:?}: {}", r.table());
        assert!(r.by_type["authen"].ok > 0 && r.by_type["author"].ok > 0);
        let series: u64 = r.series.iter().map(|s| s.requests).sum();
        assert_eq!(series, r.total.requests);
        // Per-session: every request opens a connection; single-connect: one
        // per requester, the rest ride on kept ones.
        let c = &r.connections;
        assert_eq!(c.new + c.kept, r.total.requests, "{c:?}");
        assert_eq!((c.new_errors, c.kept_errors), (0, 0), "{c:?}");
        match style {
            Style::PerSession => assert_eq!(c.kept, 0, "{c:?}"),
            Style::SingleConnect => assert!(c.new <= 16 && c.kept > 300, "{c:?}"),
        }
        // Open loop keeps its rate.
        if let Load::Open(rate) = load {
            assert!((r.total.throughput - rate).abs() < rate * 0.2, "{}", r.table());
        }
    }
    srv.shutdown(Duration::from_secs(1)).await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_kinds_are_classified() {
    let (srv, dir) = server("fail").await;
    let small = |p: &str| {
        let mut p = Profile::builtin(p).unwrap();
        p.commands = 2;
        p
    };
    // Wrong key.
    let r = tacvs_sim::run(cfg(
        srv.local_addrs[0],
        "not-the-key",
        small("automation"),
        Load::Closed(4),
    ))
    .await
    .unwrap();
    assert!(r.errors_by_kind.get("wrong_key").copied().unwrap_or(0) > 0, "{:?}", r.errors_by_kind);
    assert_eq!(r.total.ok, 0);
    // Wrong password: FAIL, not an error.
    let mut p = small("automation");
    p.password = "wrong".into();
    let r = tacvs_sim::run(cfg(srv.local_addrs[0], KEY, p, Load::Closed(4))).await.unwrap();
    assert!(r.by_type["authen"].fail > 0 && r.by_type["authen"].errors == 0, "{}", r.table());
    // A closed port.
    // Bound, not listening: refused, and the port stays ours meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = held.local_addr().unwrap();
    let r = tacvs_sim::run(cfg(closed, KEY, small("automation"), Load::Closed(4))).await.unwrap();
    assert!(
        r.errors_by_kind.get("connect_refused").copied().unwrap_or(0) > 0,
        "{:?}",
        r.errors_by_kind
    );
    // A refused connect fails in microseconds: it is counted, not timed.
    assert_eq!(r.total.latency_ms, tacvs_sim::report::Latency::default(), "{}", r.table());
    assert!(r.series.iter().all(|s| s.p99_ms == 0.0), "{:?}", r.series);
    assert!(r.unanswered().is_some_and(|m| m.contains("connect_refused")), "{}", r.table());
    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let saddr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let r = tacvs_sim::run(cfg(saddr, KEY, small("automation"), Load::Closed(4))).await.unwrap();
    assert!(
        r.errors_by_kind.get("read_timeout").copied().unwrap_or(0) > 0,
        "{:?}",
        r.errors_by_kind
    );
    hold.abort();
    // The server stops mid-run: requests after that fail as refused/reset/closed.
    let target = srv.local_addrs[0];
    let base = journal_lines(&dir);
    // Single-connect devices: their established sessions break when it stops.
    let mut sc = small("automation");
    sc.style = Style::SingleConnect;
    let run = tokio::spawn(tacvs_sim::run(cfg(target, KEY, sc, Load::Open(500.0))));
    // Stop the server once the fleet's records are reaching its journal.
    let within = std::time::Instant::now() + Duration::from_secs(10);
    while journal_lines(&dir) < base + 20 {
        assert!(std::time::Instant::now() < within, "no accounting reached the journal");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    srv.shutdown(Duration::from_millis(100)).await;
    let r = run.await.unwrap().unwrap();
    assert!(r.total.ok > 0, "{}", r.table());
    let after: u64 = ["connect_refused", "reset", "closed", "io_error"]
        .iter()
        .map(|k| r.errors_by_kind.get(*k).copied().unwrap_or(0))
        .sum();
    assert!(after > 0, "{:?}", r.errors_by_kind);
    assert!(r.connections.kept_errors > 0, "{:?}", r.connections);
    let v = serde_json::to_value(&r).unwrap();
    for field in [
        "version",
        "target",
        "profile",
        "devices",
        "mode",
        "total",
        "by_type",
        "errors_by_kind",
        "series",
        "sim_cpu_us_per_request",
        "connections",
    ] {
        assert!(v.get(field).is_some(), "report field {field}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A server with a TLS listener (identity from the certificate's iPAddress,
/// mutual TLS) and the CA that issues its devices' certificates.
async fn tls_server(tag: &str) -> (tacvs_server::ServerHandle, PathBuf, tacvs_tls::certs::Pem) {
    use tacvs_tls::certs::{self, Role, Validity};
    let dir = std::env::temp_dir().join(format!("tacvs-sim-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certs::ca("sim CA", Validity::days(2)).unwrap();
    let srv =
        certs::issue(&ca, Role::Server, "aaa", &["127.0.0.1".into()], Validity::days(2)).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.cert).unwrap();
    std::fs::write(dir.join("server.pem"), &srv.cert).unwrap();
    std::fs::write(dir.join("server.key"), &srv.key).unwrap();
    std::fs::write(dir.join("ca.crl"), certs::crl(&ca, &[], 2, 1).unwrap()).unwrap();
    let pw =
        tacvs_policy::PasswordHash::create(tacvs_policy::HashAlgorithm::Sha256Crypt, b"alice-pass")
            .unwrap();
    let text = format!(
        "[server]\nname = \"sim-rs\"\n[[server.listen]]\naddress = \"127.0.0.1:0\"\n  [server.listen.tls]\n  certificate = \"server.pem\"\n  key = \"server.key\"\n  client_ca = \"ca.pem\"\n  crls = [\"ca.crl\"]\n  identity = \"san-ip\"\n  max_handshakes_per_source = 64\n\
         [accounting]\ndirectory = \"{}/acct\"\n\
         [[device_group]]\nname = \"fleet\"\nprefixes = [\"127.0.0.0/8\"]\n  [device_group.tls]\n  required = true\n\
         [[group]]\nname = \"ops\"\ndefault_command_action = \"permit\"\n  [[group.service]]\n  name = \"shell\"\n\
         [[user]]\nname = \"alice\"\npassword = \"{pw}\"\ngroups = [\"ops\"]\n",
        dir.display()
    );
    let policy = tacvs_policy::parse("sim.toml", &text, &dir).unwrap();
    (tacvs_server::start(policy, None).await.unwrap(), dir, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_certificate_per_device_and_one_shared() {
    let (srv, dir, ca) = tls_server("tls").await;
    let roots = tacvs_tls::client::roots(&dir.join("ca.pem")).unwrap();
    let server_name = tacvs_tls::client::server_name(None, "127.0.0.1".parse().unwrap()).unwrap();
    let shared = tacvs_tls::certs::issue(
        &ca,
        tacvs_tls::certs::Role::Device,
        "fleet",
        &["127.1.0.9".into()],
        tacvs_tls::certs::Validity::days(1),
    )
    .unwrap();
    for (style, load, devices) in [
        (Style::PerSession, Load::Open(300.0), tacvs_sim::DeviceCerts::PerDevice(ca.clone())),
        (Style::SingleConnect, Load::Closed(8), tacvs_sim::DeviceCerts::Shared(shared.clone())),
    ] {
        let before = journal_lines(&dir);
        let mut p = Profile::builtin("automation").unwrap();
        p.style = style;
        p.commands = 5;
        let mut c = cfg(srv.local_addrs[0], "unused-over-tls", p, load);
        c.devices = 20;
        c.timeout = Duration::from_secs(2);
        c.tls = Some(tacvs_sim::SimTls {
            roots: roots.clone(),
            server_name: server_name.clone(),
            devices,
        });
        let r = tacvs_sim::run(c).await.unwrap();
        assert_eq!(r.total.errors, 0, "{style:?}: {}", r.table());
        assert!(r.total.requests > 100, "{}", r.table());
        let t = r.tls.as_ref().expect("handshakes reported");
        assert!(t.handshakes > 0 && t.failed == 0, "{}", r.table());
        assert!(r.table().contains("TLS: "), "{}", r.table());
        if style == Style::PerSession {
            // A new connection per session: most of them resume.
            assert!(t.resumption_rate > 0.5, "{}", r.table());
        }
        let j = tacvs_server::journal::read_records(&dir.join("acct")).unwrap();
        assert_eq!(j.len() - before, r.by_type["acct"].ok as usize);
        let tls = j.last().unwrap().tls.as_ref().expect("the device certificate in the journal");
        if style == Style::PerSession {
            assert!(tls.subject.starts_with("CN=dev-"), "{tls:?}");
            // identity = san-ip: each device is its certificate's address.
            let rec = j.last().unwrap();
            assert_eq!(tls.san, format!("IP:{}", rec.device));
        } else {
            assert_eq!(tls.subject, "CN=fleet");
            assert_eq!(j.last().unwrap().device, "127.1.0.9");
        }
    }
    srv.shutdown(Duration::from_secs(1)).await;
    std::fs::remove_dir_all(dir).ok();
}
