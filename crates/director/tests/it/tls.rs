//! TACACS+ over TLS through the director: proxy mode relays the TLS bytes
//! untouched behind its PROXY v2 header (the real servers see the devices'
//! own addresses and certificates), and health checks over TLS mark a server
//! with a certificate the director cannot verify misconfigured, not up.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tacvs_client::{Client, ClientOptions, ClientTls};
use tacvs_director as director;
use tacvs_proto::*;
use tacvs_tls::certs::{self, Pem, Role, Validity};

use crate::e2e::{conf_with, journal, tmp};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The CA and the director's and a device's certificates, in `dir`.
fn pki(dir: &Path) -> Pem {
    let ca = certs::ca("lab CA", Validity::days(2)).unwrap();
    write(dir, "ca.pem", &ca.cert);
    write(dir, "ca.crl", &certs::crl(&ca, &[], 2, 1).unwrap());
    for (name, cn) in [("director", "director"), ("device", "rtr1")] {
        let p = certs::issue(&ca, Role::Device, cn, &[], Validity::days(2)).unwrap();
        write(dir, &format!("{name}.pem"), &p.cert);
        write(dir, &format!("{name}.key"), &p.key);
    }
    ca
}

/// A real server taking TLS behind a director (PROXY required), its
/// certificate issued by `issuer` for 127.0.0.1.
async fn tls_real_server(dir: &Path, pki_dir: &Path, issuer: &Pem) -> tacvs_server::ServerHandle {
    let srv =
        certs::issue(issuer, Role::Server, "rs", &["127.0.0.1".into()], Validity::days(2)).unwrap();
    write(dir, "server.pem", &srv.cert);
    write(dir, "server.key", &srv.key);
    let text = format!(
        r#"
[server]
name = "{name}"
[[server.listen]]
address = "127.0.0.1:0"
proxy_protocol = "required"
trusted_proxies = ["127.0.0.1/32"]
  [server.listen.tls]
  certificate = "server.pem"
  key = "server.key"
  client_ca = "{pki}/ca.pem"
  crls = ["{pki}/ca.crl"]
[accounting]
directory = "{dir}/acct"
[[device_group]]
name = "devices"
prefixes = ["127.0.0.0/8"]
  [device_group.tls]
  required = true
[[group]]
name = "ops"
default_command_action = "permit"
  [[group.service]]
  name = "shell"
[[user]]
name = "tacvs-healthcheck"
groups = ["ops"]
"#,
        name = dir.file_name().unwrap().to_string_lossy(),
        pki = pki_dir.display(),
        dir = dir.display()
    );
    let policy = tacvs_policy::parse("rs.toml", &text, dir).unwrap();
    tacvs_server::start(policy, None).await.unwrap()
}

fn health(pki: &Path) -> String {
    format!(
        "  check = \"tacacs\"\n  interval = \"100ms\"\n  timeout = \"500ms\"\n  rise = \
            1\n    [service.health.tls]\n    ca = \"{p}/ca.pem\"\n    certificate = \
            \"{p}/director.pem\"\n    key = \"{p}/director.key\"",
        p = pki.display()
    )
}

async fn state_of(d: &director::DirectorHandle, server: SocketAddr, want: &str) -> String {
    let t = Instant::now();
    loop {
        let st = d.status();
        let r = st[0].reals.iter().find(|r| r.address == server.to_string()).unwrap();
        if r.state == want && r.last_check != "not checked yet" {
            return r.last_check.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{server} not {want}: {}",
            director::render(&st, None)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_carries_tls_sessions_with_the_devices_addresses_and_checks_over_tls() {
    let (p, d1, d2, dd) = (tmp("tls-pki"), tmp("tls-r1"), tmp("tls-r2"), tmp("tls-d"));
    let ca = pki(&p);
    let (s1, s2) = (tls_real_server(&d1, &p, &ca).await, tls_real_server(&d2, &p, &ca).await);
    let (a1, a2) = (s1.local_addrs[0], s2.local_addrs[0]);
    let dir = director::start(conf_with(&[a1, a2], &dd, &health(&p), "")).await.unwrap();
    assert_eq!(state_of(&dir, a1, "up").await, "ok");
    assert_eq!(state_of(&dir, a2, "up").await, "ok");
    let vip = dir.local_addrs[0];
    let roots = tacvs_tls::client::roots(&p.join("ca.pem")).unwrap();
    let id = tacvs_tls::client::identity(&p.join("device.pem"), &p.join("device.key")).unwrap();
    let tls = ClientTls {
        config: tacvs_tls::client::config(roots, Some(id)).unwrap(),
        server_name: tacvs_tls::client::server_name(None, vip.ip()).unwrap(),
    };
    for i in 0..20u32 {
        let opts = ClientOptions {
            source: Some(format!("127.8.0.{}", i + 1).parse().unwrap()),
            timeout: Duration::from_secs(3),
            ..ClientOptions::new(vip, None)
        };
        let args = vec![
            Argument::new("task_id", &i.to_string(), true).unwrap(),
            "service=shell".parse().unwrap(),
        ];
        let r = Client::new(opts)
            .with_tls(tls.clone())
            .account(AcctRequest {
                flags: AcctFlags::Stop,
                request: AaaRequest::new("alice", args),
            })
            .await
            .unwrap();
        assert_eq!(r.status, AcctStatus::Success);
    }
    let (j1, j2) = (journal(&d1), journal(&d2));
    assert_eq!(j1.len() + j2.len(), 20);
    assert!(!j1.is_empty() && !j2.is_empty(), "both servers served");
    for rec in j1.iter().chain(&j2) {
        assert!(
            rec["device"].as_str().unwrap().starts_with("127.8.0."),
            "the device's own address: {rec}"
        );
        assert_eq!(
            rec["tls"]["subject"], "CN=rtr1",
            "the device's certificate reached the server: {rec}"
        );
    }
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    s2.shutdown(Duration::from_millis(100)).await;
    for d in [p, d1, d2, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_certificate_the_director_cannot_verify_is_misconfigured_not_up() {
    let (p, d1, dd) = (tmp("tlsbad-pki"), tmp("tlsbad-r1"), tmp("tlsbad-d"));
    pki(&p);
    // Its certificate comes from a CA the director does not trust.
    let rogue = certs::ca("rogue CA", Validity::days(2)).unwrap();
    let s1 = tls_real_server(&d1, &p, &rogue).await;
    let a1 = s1.local_addrs[0];
    let dir = director::start(conf_with(&[a1], &dd, &health(&p), "")).await.unwrap();
    let last = state_of(&dir, a1, "misconfigured").await;
    assert!(last.contains("TLS") && last.contains("trusted CA"), "{last}");
    // A tcp check over TLS sees it too.
    dir.stop();
    let tcp = health(&p).replace("check = \"tacacs\"", "check = \"tcp\"");
    let dir = director::start(conf_with(&[a1], &dd, &tcp, "")).await.unwrap();
    let last = state_of(&dir, a1, "misconfigured").await;
    assert!(last.contains("TLS"), "{last}");
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [p, d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}
