//! TACACS+ over TLS 1.3 (RFC 9887) end to end: every flow over TLS with the
//! device's certificate in the journal, no obfuscation inside TLS, no
//! co-hosting (plain on a TLS listener, TLS on a plain one), identity from
//! the certificate, device groups that require TLS, handshake limits, PROXY
//! before TLS, resumption, certificate reloads, and the handshake matrix
//! against Debian's `openssl s_client`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tacvs_client::{Client, ClientError, ClientTls};
use tacvs_proto::*;
use tacvs_tls::certs::{self, Pem, Role, Validity};
use tacvs_tls::identity::PeerIdentity;
use tacvs_tls::rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The PKI of a test, written into its directory.
struct Pki {
    dir: PathBuf,
    ca: Pem,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca = certs::ca("tacvs test CA", Validity::days(30)).unwrap();
        let p = Pki { dir: dir.to_owned(), ca };
        p.write("ca.pem", &p.ca.cert);
        let srv = p.issue(Role::Server, "aaa.test", &["127.0.0.1", "aaa.test"]);
        p.write("server.pem", &srv.cert);
        p.write("server.key", &srv.key);
        p.device("device", "rtr1", &["127.0.0.1", "rtr1.lab.example.net"]);
        let revoked = p.device("revoked", "rtr-revoked", &["127.0.0.1"]);
        p.write(
            "ca.crl",
            &certs::crl(&p.ca, &[certs::serial_of(&revoked.cert).unwrap()], 7, 1).unwrap(),
        );
        let expired = Validity {
            from: time::OffsetDateTime::now_utc() - time::Duration::days(10),
            until: time::OffsetDateTime::now_utc() - time::Duration::days(1),
        };
        let e = certs::issue(&p.ca, Role::Device, "rtr-expired", &["127.0.0.1".into()], expired)
            .unwrap();
        p.write("expired.pem", &e.cert);
        p.write("expired.key", &e.key);
        let other_ca = certs::ca("another CA", Validity::days(30)).unwrap();
        let o = certs::issue(
            &other_ca,
            Role::Device,
            "rtr-other",
            &["127.0.0.1".into()],
            Validity::days(30),
        )
        .unwrap();
        p.write("other.pem", &o.cert);
        p.write("other.key", &o.key);
        p
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    fn issue(&self, role: Role, cn: &str, names: &[&str]) -> Pem {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        certs::issue(&self.ca, role, cn, &names, Validity::days(30)).unwrap()
    }

    /// A device certificate written as `NAME.pem` / `NAME.key`.
    fn device(&self, name: &str, cn: &str, sans: &[&str]) -> Pem {
        let d = self.issue(Role::Device, cn, sans);
        self.write(&format!("{name}.pem"), &d.cert);
        self.write(&format!("{name}.key"), &d.key);
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A client configuration presenting `NAME.pem` (None: no certificate).
    fn client(&self, name: Option<&str>) -> Arc<tacvs_tls::rustls::ClientConfig> {
        let roots = tacvs_tls::client::roots(&self.path("ca.pem")).unwrap();
        let id = name.map(|n| {
            tacvs_tls::client::identity(
                &self.path(&format!("{n}.pem")),
                &self.path(&format!("{n}.key")),
            )
            .unwrap()
        });
        tacvs_tls::client::config(roots, id).unwrap()
    }

    fn fingerprint(&self, name: &str) -> String {
        use tacvs_tls::rustls::pki_types::CertificateDer;
        use tacvs_tls::rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_file(self.path(&format!("{name}.pem"))).unwrap();
        PeerIdentity::from_der(&der).unwrap().sha256
    }
}

/// A TLS listener section (the second listener of the test server).
fn tls_listener(extra: &str) -> String {
    format!(
        "[[server.listen]]\naddress = \
            \"127.0.0.1:0\"\n{extra}\n  [server.listen.tls]\n  certificate = \
            \"server.pem\"\n  key = \"server.key\"\n  client_ca = \"ca.pem\"\n  crls = \
            [\"ca.crl\"]\n"
    )
}

/// A server with a plain listener (0) and a TLS one (1), after `tls` lines.
async fn start_tls(tag: &str, mut c: Conf, tls: &str) -> (Harness, Pki) {
    let dir = test_dir(tag);
    let pki = Pki::new(&dir);
    c.listeners = format!("{}{}", tls_listener(&c.listeners), tls);
    std::fs::write(dir.join("server.toml"), config(&dir, &c)).unwrap();
    (start_in(dir).await, pki)
}

fn tls_addr(h: &Harness) -> SocketAddr {
    h.server.local_addrs[1]
}

fn client_tls(pki: &Pki, cert: Option<&str>) -> ClientTls {
    ClientTls {
        config: pki.client(cert),
        server_name: ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
    }
}

/// A TLS client of the TLS listener, presenting `cert`.
fn tls_client(h: &Harness, pki: &Pki, cert: Option<&str>) -> Client {
    Client::new(tacvs_client::ClientOptions { server: tls_addr(h), ..h.opts() })
        .with_tls(client_tls(pki, cert))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_runs_over_tls_with_the_certificate_in_the_journal() {
    let (h, pki) = start_tls("tls-flows", Conf::default(), "").await;
    for ty in [
        AuthenType::Ascii,
        AuthenType::Pap,
        AuthenType::Chap,
        AuthenType::MsChapV1,
        AuthenType::MsChapV2,
    ] {
        let mut c = tls_client(&h, &pki, Some("device"));
        assert_eq!(login(&mut c, ty, "alice", "alice-pass").await, AuthenStatus::Pass, "{ty}");
        let mut c = tls_client(&h, &pki, Some("device"));
        assert_eq!(login(&mut c, ty, "alice", "wrong").await, AuthenStatus::Fail, "{ty}");
    }
    // Single-connect: authorization and accounting on one TLS connection.
    let mut c = Client::new(tacvs_client::ClientOptions {
        server: tls_addr(&h),
        single_connect: true,
        ..h.opts()
    })
    .with_tls(client_tls(&pki, Some("device")));
    let r = c.authorize(cmd("bob", "show version")).await.unwrap();
    assert_eq!(r.status, AuthorStatus::PassAdd);
    let r = c.authorize(cmd("bob", "configure terminal")).await.unwrap();
    assert_eq!(r.status, AuthorStatus::Fail);
    assert_eq!(c.single_connect(), Some(true));
    let mut req = cmd("alice", "show version");
    req.args.insert(0, "task_id=7".parse().unwrap());
    let r = c.account(AcctRequest { flags: AcctFlags::Stop, request: req }).await.unwrap();
    assert_eq!(r.status, AcctStatus::Success);
    let j = h.journal();
    assert_eq!(j.len(), 1);
    let t = j[0].tls.as_ref().expect("the TLS identity in the journal");
    assert_eq!(t.subject, "CN=rtr1");
    assert_eq!(t.san, "IP:127.0.0.1,DNS:rtr1.lab.example.net");
    assert_eq!(t.sha256, pki.fingerprint("device"));
    assert_eq!(j[0].device, "127.0.0.1");
    // Plain TACACS+ on the plain listener leaves no TLS identity.
    let mut req = cmd("alice", "show clock");
    req.args.insert(0, "task_id=8".parse().unwrap());
    h.client().account(AcctRequest { flags: AcctFlags::Stop, request: req }).await.unwrap();
    assert!(h.journal()[1].tls.is_none());
}

/// Open a TLS connection by hand (no TACACS+ client on top).
async fn raw_tls(
    h: &Harness,
    pki: &Pki,
    cert: Option<&str>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(tls_addr(h)).await.unwrap();
    let c = client_tls(pki, cert);
    tokio_rustls::TlsConnector::from(c.config).connect(c.server_name, tcp).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_without_the_unencrypted_flag_gets_error_and_the_connection_closes() {
    let (h, pki) = start_tls("tls-flag", Conf::default(), "").await;
    let mut s = raw_tls(&h, &pki, Some("device")).await;
    // What a client that wraps its old obfuscated packets in TLS sends.
    let mut legacy = ClientConnection::new(ClientConfig::default(), Some(Key::new(KEY)));
    legacy.authorize(0x1234, cmd("alice", "show version")).unwrap();
    let mut out = Vec::new();
    legacy.poll_transmit(&mut out);
    assert_eq!(out[3] & Flags::UNENCRYPTED, 0);
    s.write_all(&out).await.unwrap();
    s.flush().await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(_))), "the server closes the connection: {read:?}");
    let mut buf = BytesMut::from(&got[..]);
    let (hdr, body) = split_frame(&mut buf, 65535).unwrap().expect("one reply");
    assert!(buf.is_empty(), "nothing but the ERROR");
    assert!(hdr.flags.unencrypted(), "the reply carries the flag");
    assert_eq!((hdr.seq_no, hdr.session_id), (2, 0x1234));
    match Body::decode(&hdr, &body.freeze()).expect("a clear-text body") {
        Body::AuthorResponse(r) => assert_eq!(r.status, AuthorStatus::Error),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_co_hosting_plain_on_tls_and_tls_on_plain_are_closed_unanswered() {
    let (h, pki) = start_tls("tls-cohost", Conf::default(), "").await;
    // Plain TACACS+ to the TLS listener.
    let e = Client::new(tacvs_client::ClientOptions { server: tls_addr(&h), ..h.opts() })
        .authorize(cmd("alice", "show version"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. }), "{e}");
    // TLS to the plain listener: closed, no bytes back (a §4.1 reply would be garbage to TLS).
    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let c = client_tls(&pki, Some("device"));
    let r = tokio_rustls::TlsConnector::from(c.config).connect(c.server_name, tcp).await;
    assert!(r.is_err(), "no handshake on a plain listener");
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0]).await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(matches!(r, Ok(Ok(0))), "closed with nothing sent: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_group_that_requires_tls_refuses_plain_connections() {
    let users = "[[device_group]]\nname = \"secure\"\nprefixes = \
        [\"127.200.0.0/16\"]\n  [device_group.tls]\n  required = true\n";
    let (h, pki) =
        start_tls("tls-required", Conf { users: users.into(), ..Conf::default() }, "").await;
    let e = h.client_from("127.200.0.1").authorize(cmd("alice", "show version")).await.unwrap_err();
    // Closed unanswered: a FIN, or a RST when the request was already in the
    // server's receive queue as it closed (kernel timing, both refusals).
    assert!(matches!(e.kind(), "closed" | "reset"), "{e}");
    // Over TLS the same device is served (the group has no key at all).
    let mut c = Client::new(tacvs_client::ClientOptions {
        server: tls_addr(&h),
        source: Some("127.200.0.1".parse().unwrap()),
        ..h.opts()
    })
    .with_tls(client_tls(&pki, Some("device")));
    assert_eq!(
        c.authorize(cmd("alice", "show version")).await.unwrap().status,
        AuthorStatus::PassAdd
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn san_ip_identity_takes_the_device_from_its_certificate() {
    let users = "[[device_group]]\nname = \"core\"\nprefixes = \
        [\"10.20.0.0/16\"]\n  [device_group.tls]\n  required = true\n";
    let (h, pki) = start_tls(
        "tls-sanip",
        Conf { users: users.into(), ..Conf::default() },
        "  identity = \"san-ip\"\n",
    )
    .await;
    pki.device("core1", "core1", &["10.20.0.7"]);
    let mut c = Client::new(tacvs_client::ClientOptions { server: tls_addr(&h), ..h.opts() })
        .with_tls(client_tls(&pki, Some("core1")));
    let mut req = cmd("alice", "show version");
    req.args.insert(0, "task_id=1".parse().unwrap());
    assert_eq!(
        c.account(AcctRequest { flags: AcctFlags::Start, request: req }).await.unwrap().status,
        AcctStatus::Success
    );
    let j = h.journal();
    assert_eq!(j[0].device, "10.20.0.7", "the certificate's address, not the connection's");
    assert_eq!(j[0].device_group, "core");
    // A certificate whose addresses are in no group is refused after the handshake.
    pki.device("nowhere", "nowhere", &["192.0.2.1"]);
    let e = Client::new(tacvs_client::ClientOptions { server: tls_addr(&h), ..h.opts() })
        .with_tls(client_tls(&pki, Some("nowhere")))
        .authorize(cmd("alice", "show version"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handshakes_hold_at_most_their_slots_and_time_out() {
    let tls =
        "  handshake_timeout = \"700ms\"\n  max_handshakes = 3\n  max_handshakes_per_source = 1\n";
    let (h, _pki) = start_tls("tls-slow", Conf::default(), tls).await;
    let addr = tls_addr(&h);
    // One handshake that stalls after its first byte (a TLS handshake
    // record's type) holds 127.0.0.1's only handshake slot…
    let stall = |ip: &str| connect_and_stall(addr, Some(ip.parse().unwrap()), &[0x16]);
    let mut first = stall("127.0.0.1").await;
    assert!(
        eventually(Duration::from_secs(2), || async {
            h.server.shared().handshakes_in_progress() == 1
        })
        .await
    );
    // … so a second from the same address is closed at once,
    let mut second = stall("127.0.0.1").await;
    let t = closed_within(&mut second, Duration::from_millis(500)).await;
    assert!(t.is_some(), "a second handshake from one source is refused at once");
    // while other addresses still get theirs (up to max_handshakes in all),
    let mut others = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        others.push(stall(ip).await);
    }
    assert!(
        eventually(Duration::from_secs(2), || async {
            h.server.shared().handshakes_in_progress() == 3
        })
        .await
    );
    let mut fourth = stall("127.0.0.4").await;
    assert!(
        closed_within(&mut fourth, Duration::from_millis(500)).await.is_some(),
        "max_handshakes in all"
    );
    // and the stalled one is closed by handshake_timeout, freeing its slot.
    assert!(closed_within(&mut first, Duration::from_secs(3)).await.is_some());
    assert!(
        eventually(Duration::from_secs(3), || async {
            h.server.shared().handshakes_in_progress() == 0
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_v2_header_comes_before_the_tls_bytes() {
    let (h, pki) = start_tls(
        "tls-proxy",
        Conf {
            listeners: "proxy_protocol = \"required\"\ntrusted_proxies = [\"127.0.0.1/32\"]".into(),
            ..Conf::default()
        },
        "",
    )
    .await;
    let addr = tls_addr(&h);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&crate::flows::proxy_header("127.44.0.9:50000", addr)).await.unwrap();
    let mut c = Client::with_stream(tacvs_client::ClientOptions { server: addr, ..h.opts() }, tcp)
        .with_tls(client_tls(&pki, Some("device")));
    let mut req = cmd("alice", "show version");
    req.args.insert(0, "task_id=1".parse().unwrap());
    assert_eq!(
        c.account(AcctRequest { flags: AcctFlags::Start, request: req }).await.unwrap().status,
        AcctStatus::Success
    );
    let j = h.journal();
    assert_eq!((j[0].device.as_ref(), j[0].device_port), ("127.44.0.9", 50000));
    assert_eq!(j[0].tls.as_ref().unwrap().subject, "CN=rtr1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_resumes_and_lifetime_zero_turns_resumption_off() {
    for (lifetime, want) in [("1h", true), ("0s", false)] {
        let (h, pki) = start_tls(
            &format!("tls-resume-{want}"),
            Conf::default(),
            &format!("  ticket_lifetime = \"{lifetime}\"\n"),
        )
        .await;
        let tls = client_tls(&pki, Some("device"));
        let opts = tacvs_client::ClientOptions { server: tls_addr(&h), ..h.opts() };
        let mut first = Client::new(opts.clone()).with_tls(tls.clone());
        first.authorize(cmd("alice", "show version")).await.unwrap();
        assert_eq!(first.take_handshake().map(|x| x.resumed), Some(false));
        let mut second = Client::new(opts).with_tls(tls);
        let mut req = cmd("alice", "show version");
        req.args.insert(0, "task_id=1".parse().unwrap());
        second.account(AcctRequest { flags: AcctFlags::Stop, request: req }).await.unwrap();
        assert_eq!(
            second.take_handshake().map(|x| x.resumed),
            Some(want),
            "ticket_lifetime {lifetime}"
        );
        let j = h.journal();
        let t = j[0].tls.as_ref().unwrap();
        assert_eq!(t.resumed, want);
        assert_eq!(t.subject, "CN=rtr1", "a resumed session keeps its certificate's identity");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_on_reload_keeps_the_old_one_and_says_what_is_wrong() {
    let (h, pki) = start_tls("tls-reload", Conf::default(), "").await;
    let subject = |h: &Harness, pki: &Pki| {
        let addr = tls_addr(h);
        let c = client_tls(pki, Some("device"));
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let s = tokio_rustls::TlsConnector::from(c.config)
                .connect(c.server_name, tcp)
                .await
                .unwrap();
            let der = s.get_ref().1.peer_certificates().unwrap()[0].clone();
            PeerIdentity::from_der(&der).unwrap().subject
        }
    };
    assert_eq!(subject(&h, &pki).await, "CN=aaa.test");
    // A key that is not the certificate's: refused whole, the old one serves.
    let other = pki.issue(Role::Server, "new.test", &["127.0.0.1"]);
    pki.write("server.key", &other.key);
    let e = h.server.reload().await.unwrap_err().to_string();
    assert!(e.contains("server.key") && e.contains("does not belong to the certificate"), "{e}");
    assert!(e.contains("server.toml:"), "file:line:col of the key setting: {e}");
    assert_eq!(subject(&h, &pki).await, "CN=aaa.test");
    // The pair fixed: new connections get the new certificate.
    pki.write("server.pem", &other.cert);
    h.server.reload().await.unwrap();
    assert_eq!(subject(&h, &pki).await, "CN=new.test");
}

/// `openssl s_client` against the TLS listener with `args`, sending `stdin`.
async fn s_client(addr: SocketAddr, dir: &Path, args: &[&str], stdin: &[u8]) -> (Vec<u8>, String) {
    let mut child = tokio::process::Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (apt-get install openssl)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    // Keep stdin open a moment so the reply can arrive, then end it.
    let out = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(input);
        child.wait_with_output().await
    })
    .await
    .expect("s_client ends")
    .unwrap();
    (out.stdout, String::from_utf8_lossy(&out.stderr).to_lowercase())
}

/// One authorization request in TLS mode (flag set, clear body).
fn tls_request() -> Vec<u8> {
    let mut c = ClientConnection::new(ClientConfig { tls: true, ..ClientConfig::default() }, None);
    c.authorize(0x5151, cmd("alice", "show version")).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    out
}

fn answered(stdout: &[u8]) -> Option<AuthorStatus> {
    let at = stdout.windows(2).position(|w| w[0] >> 4 == 0xc && w[1] == 2)?;
    let mut buf = BytesMut::from(&stdout[at..]);
    let (hdr, body) = split_frame(&mut buf, 65535).ok()??;
    match Body::decode(&hdr, &body.freeze()).ok()? {
        Body::AuthorResponse(r) => Some(r.status),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_handshake_matrix() {
    let (h, pki) = start_tls("tls-openssl", Conf::default(), "").await;
    let addr = tls_addr(&h);
    let dir = pki.dir.clone();
    let with = |name: &str| -> Vec<String> {
        [
            "-CAfile",
            "ca.pem",
            "-cert",
            &format!("{name}.pem"),
            "-key",
            &format!("{name}.key"),
            "-verify_return_error",
            "-quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: Vec<String>| {
        let dir = dir.clone();
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            s_client(addr, &dir, &a, &tls_request()).await
        }
    };
    // TLS 1.3 with a good device certificate: a TACACS+ authorization answered.
    let (out, err) = run([with("device"), vec!["-tls1_3".into()]].concat()).await;
    assert_eq!(answered(&out), Some(AuthorStatus::PassAdd), "TLS 1.3 works: {err}");
    // Each refusal is the server's alert, and nothing is answered.
    let cases: [(&str, Vec<String>, &str); 5] = [
        ("TLS 1.2", [with("device"), vec!["-tls1_2".into()]].concat(), "protocol version"),
        (
            "no client certificate",
            ["-CAfile", "ca.pem", "-quiet"].map(String::from).to_vec(),
            "certificate required",
        ),
        ("another CA's certificate", with("other"), "unknown ca"),
        ("a revoked certificate", with("revoked"), "certificate revoked"),
        ("an expired certificate", with("expired"), "certificate expired"),
    ];
    for (what, args, alert) in cases {
        let (out, err) = run(args).await;
        assert_eq!(answered(&out), None, "{what}: refused");
        assert!(err.contains(alert), "{what}: the alert says {alert:?}: {err}");
    }
    // Early data: a saved session, then -early_data: never accepted (the
    // tickets allow none, so s_client does not even send it).
    let sess = dir.join("sess.pem").display().to_string();
    let (out, _) = run([with("device"), vec!["-sess_out".into(), sess.clone()]].concat()).await;
    assert_eq!(answered(&out), Some(AuthorStatus::PassAdd));
    std::fs::write(dir.join("early.bin"), tls_request()).unwrap();
    let mut args = with("device");
    args.retain(|a| a != "-quiet");
    args.extend(["-sess_in".into(), sess, "-early_data".into(), "early.bin".into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, err) = s_client(addr, &dir, &a, b"").await;
    let text = format!("{}{err}", String::from_utf8_lossy(&out)).to_lowercase();
    assert!(text.contains("reused, tlsv1.3"), "the session was resumed: {text}");
    assert!(!text.contains("early data was accepted"), "{text}");
    assert!(
        text.contains("early data was not sent") || text.contains("early data was rejected"),
        "{text}"
    );
    assert_eq!(answered(&out), None, "no request was served from early data");
}
