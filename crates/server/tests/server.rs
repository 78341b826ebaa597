//! tacvs-server end to end over loopback TCP with the real client driver:
//! every exchange, wrong keys, unknown devices, garbage, PROXY v2 intake,
//! lockout, single-connect, reload under load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tacvs_client::{Client, ClientError, ClientOptions, FixedAnswers};
use tacvs_proto::chap::{self, ChapData};
use tacvs_proto::*;
use tacvs_server::ServerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "server-test-key";

struct Harness {
    server: ServerHandle,
    dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(dir: &Path, extra_listener: &str, lockout: u32, syslog: &str, chpass: bool) -> String {
    // Users: alice (netops, all commands) and bob (readonly, show only).
    let alice =
        tacvs_policy::PasswordHash::create(tacvs_policy::HashAlgorithm::Sha256Crypt, b"alice-pass")
            .unwrap();
    let bob =
        tacvs_policy::PasswordHash::create(tacvs_policy::HashAlgorithm::Sha256Crypt, b"bob-pass")
            .unwrap();
    let en = tacvs_policy::PasswordHash::create(
        tacvs_policy::HashAlgorithm::Sha256Crypt,
        b"alice-enable",
    )
    .unwrap();
    format!(
        r#"
[server]
name = "test-rs"
[[server.listen]]
address = "127.0.0.1:0"
{extra_listener}
[limits]
read_timeout = "2s"
idle_timeout = "5s"
[authentication]
change_password = {chpass}
password_store = "{dir}/passwords.json"
[authentication.lockout]
max_failures = {lockout}
window = "1m"
duration = "1m"
[accounting]
directory = "{dir}/acct"
{syslog}
[[device_group]]
name = "lab"
prefixes = ["127.0.0.0/9"]
keys = ["old-key", "{KEY}"]
[[group]]
name = "netops"
priv_lvl = 15
default_command_action = "permit"
  [[group.service]]
  name = "shell"
[[group]]
name = "readonly"
  [[group.service]]
  name = "shell"
  [[group.command]]
  match = "show( .*)?"
  action = "permit"
[[user]]
name = "alice"
password = "{alice}"
enable = "{en}"
chap_secret = "alice-pass"
groups = ["netops"]
[[user]]
name = "bob"
password = "{bob}"
groups = ["readonly"]
"#,
        dir = dir.display()
    )
}

async fn start(tag: &str, extra_listener: &str, lockout: u32) -> Harness {
    start_with(tag, extra_listener, lockout, "", false).await
}

async fn start_with(
    tag: &str,
    extra_listener: &str,
    lockout: u32,
    syslog: &str,
    chpass: bool,
) -> Harness {
    let dir = std::env::temp_dir().join(format!("tacvs-server-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = config(&dir, extra_listener, lockout, syslog, chpass);
    std::fs::write(dir.join("server.toml"), &text).unwrap();
    let policy = tacvs_policy::load(&dir.join("server.toml")).unwrap();
    let server = tacvs_server::start(policy, Some(dir.join("server.toml"))).await.unwrap();
    Harness { server, dir }
}

impl Harness {
    fn addr(&self) -> std::net::SocketAddr {
        self.server.local_addrs[0]
    }
    fn client(&self) -> Client {
        Client::new(self.opts())
    }
    fn opts(&self) -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(3),
            ..ClientOptions::new(self.addr(), Some(Key::new(KEY)))
        }
    }
    fn journal(&self) -> Vec<serde_json::Value> {
        tacvs_server::journal::read_lines(&self.dir.join("acct"))
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn start_pkt(ty: AuthenType, svc: AuthenService, user: &str, data: Vec<u8>) -> AuthenStart {
    AuthenStart {
        action: AuthenAction::Login,
        priv_lvl: if svc == AuthenService::Enable { PrivLvl::MAX } else { PrivLvl::USER },
        authen_type: ty,
        authen_service: svc,
        user: Bytes::copy_from_slice(user.as_bytes()),
        port: Bytes::from_static(b"vty0"),
        rem_addr: Bytes::from_static(b"192.0.2.50"),
        data: data.into(),
    }
}

async fn login(c: &mut Client, ty: AuthenType, user: &str, pw: &str) -> AuthenStatus {
    let data = match ty {
        AuthenType::Pap => pw.as_bytes().to_vec(),
        AuthenType::Chap => ChapData {
            id: 9,
            challenge: b"0123456789abcdef",
            response: &chap::chap_response(9, pw.as_bytes(), b"0123456789abcdef"),
        }
        .to_vec(),
        AuthenType::MsChapV1 => ChapData {
            id: 1,
            challenge: b"12345678",
            response: &chap::mschapv1_response(b"12345678", pw),
        }
        .to_vec(),
        AuthenType::MsChapV2 => ChapData {
            id: 1,
            challenge: b"0123456789abcdef",
            response: &chap::mschapv2_response(b"0123456789abcdef", &[7; 16], user.as_bytes(), pw),
        }
        .to_vec(),
        _ => Vec::new(),
    };
    let u = if ty == AuthenType::Ascii { "" } else { user };
    let mut answers = FixedAnswers { user: user.into(), password: pw.into(), max_rounds: 5 };
    c.authenticate(start_pkt(ty, AuthenService::Login, u, data), &mut answers).await.unwrap().status
}

fn cmd(user: &str, line: &str) -> AaaRequest {
    let mut args = vec![Argument::new("service", "shell", true).unwrap()];
    let mut w = line.split(' ');
    args.push(Argument::new("cmd", w.next().unwrap(), true).unwrap());
    args.extend(w.map(|x| Argument::new("cmd-arg", x, true).unwrap()));
    AaaRequest::new(user.to_owned(), args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange() {
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let syslog = format!(
        "[accounting.syslog]\ntarget = \"udp://{}\"\nfacility = \"local5\"",
        collector.local_addr().unwrap()
    );
    let h = start_with("flows", "", 0, &syslog, false).await;
    for ty in [
        AuthenType::Pap,
        AuthenType::Ascii,
        AuthenType::Chap,
        AuthenType::MsChapV1,
        AuthenType::MsChapV2,
    ] {
        assert_eq!(
            login(&mut h.client(), ty, "alice", "alice-pass").await,
            AuthenStatus::Pass,
            "{ty}"
        );
        assert_eq!(login(&mut h.client(), ty, "alice", "wrong").await, AuthenStatus::Fail, "{ty}");
    }
    // bob has no CHAP secret: a clear FAIL message.
    let mut c = h.client();
    let data = ChapData {
        id: 1,
        challenge: b"abcdefgh",
        response: &chap::mschapv1_response(b"abcdefgh", "bob-pass"),
    }
    .to_vec();
    let r = c
        .authenticate(
            start_pkt(AuthenType::MsChapV1, AuthenService::Login, "bob", data),
            &mut FixedAnswers { user: "".into(), password: "".into(), max_rounds: 0 },
        )
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(
        String::from_utf8_lossy(&r.server_msg).contains("reversible secret"),
        "{:?}",
        r.server_msg
    );
    // Enable (ASCII: GETPASS with the enable password) and PAP enable.
    let mut answers =
        FixedAnswers { user: "alice".into(), password: "alice-enable".into(), max_rounds: 3 };
    let r = h
        .client()
        .authenticate(
            start_pkt(AuthenType::Ascii, AuthenService::Enable, "alice", vec![]),
            &mut answers,
        )
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Pass);
    let r = h
        .client()
        .authenticate(
            start_pkt(AuthenType::Pap, AuthenService::Enable, "alice", b"alice-pass".to_vec()),
            &mut answers,
        )
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Fail, "the login password is not the enable password");
    // Change password is refused with a message.
    let mut s = start_pkt(AuthenType::Ascii, AuthenService::Login, "alice", vec![]);
    s.action = AuthenAction::ChangePassword;
    let r = h.client().authenticate(s, &mut answers).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(String::from_utf8_lossy(&r.server_msg).contains("not enabled"), "{:?}", r.server_msg);

    // Authorization.
    let mut c = h.client();
    assert_eq!(
        c.authorize(cmd("bob", "show ip route")).await.unwrap().status,
        AuthorStatus::PassAdd
    );
    assert_eq!(
        h.client().authorize(cmd("bob", "configure show x")).await.unwrap().status,
        AuthorStatus::Fail
    );
    assert_eq!(
        h.client().authorize(cmd("alice", "reload")).await.unwrap().status,
        AuthorStatus::PassAdd
    );
    let exec = h
        .client()
        .authorize(AaaRequest::new("alice", vec!["service=shell".parse().unwrap()]))
        .await
        .unwrap();
    assert_eq!(exec.args[0].to_string(), "priv-lvl=15");

    // Accounting lands in the journal with the device's address.
    let mut req = cmd("alice", "show clock");
    req.args.insert(0, "task_id=77".parse().unwrap());
    let r = Client::new(ClientOptions { source: Some("127.3.4.5".parse().unwrap()), ..h.opts() })
        .account(AcctRequest { flags: AcctFlags::Stop, request: req })
        .await
        .unwrap();
    assert_eq!(r.status, AcctStatus::Success);
    let j = h.journal();
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["device"], "127.3.4.5");
    assert_eq!(j[0]["record"], "stop");
    assert_eq!(j[0]["user"], "alice");
    assert_eq!(j[0]["server"], "test-rs");
    assert_eq!(j[0]["args"][0], "task_id=77");
    // The committed record also went to syslog (local5.info = <174>).
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(3), collector.recv(&mut buf))
        .await
        .expect("syslog message")
        .unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(
        msg.starts_with("<174>1 ") && msg.contains(" test-rs tacvs ") && msg.contains("task_id=77"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ascii_three_tries_then_fail() {
    let h = start("ascii", "", 0).await;
    struct Seq(Vec<&'static str>);
    impl tacvs_client::Prompter for Seq {
        fn answer(&mut self, status: AuthenStatus, _m: &str, _n: bool) -> Option<String> {
            if status == AuthenStatus::GetUser {
                Some("bob".into())
            } else {
                Some(self.0.remove(0).into())
            }
        }
    }
    let r = h
        .client()
        .authenticate(
            start_pkt(AuthenType::Ascii, AuthenService::Login, "", vec![]),
            &mut Seq(vec!["x", "y", "bob-pass"]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Pass, "third try succeeds");
    let r = h
        .client()
        .authenticate(
            start_pkt(AuthenType::Ascii, AuthenService::Login, "", vec![]),
            &mut Seq(vec!["x", "y", "z", "bob-pass"]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Fail, "only three tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_unknown_device_and_garbage() {
    let h = start("bad", "", 0).await;
    let e = Client::new(ClientOptions { key: Some(Key::new("nope")), ..h.opts() })
        .authorize(cmd("bob", "show"))
        .await
        .unwrap_err();
    assert!(e.is_wrong_key(), "{e}");
    // 127.200.0.1 is outside 127.0.0.0/9: refused.
    let e = Client::new(ClientOptions { source: Some("127.200.0.1".parse().unwrap()), ..h.opts() })
        .authorize(cmd("bob", "show"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }), "{e}");
    // Garbage: the server answers per RFC 8907 §4.1 or closes, and keeps serving.
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut sink))
        .await
        .expect("server closes")
        .unwrap();
    assert!(n <= 12);
    // Key rotation: the second configured key works.
    assert_eq!(
        h.client().authorize(cmd("bob", "show")).await.unwrap().status,
        AuthorStatus::PassAdd
    );
    let old = Client::new(ClientOptions { key: Some(Key::new("old-key")), ..h.opts() })
        .authorize(cmd("bob", "show"))
        .await
        .unwrap();
    assert_eq!(old.status, AuthorStatus::PassAdd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_v2_from_trusted_director_only() {
    let listener = "[[server.listen]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = \"required\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
    let h = start("proxy", listener, 0).await;
    let paddr = h.server.local_addrs[1];
    let header = |src: &str| {
        let a: ppp_addrs::Addresses = (src.parse::<std::net::SocketAddr>().unwrap(), paddr).into();
        ppp_addrs::Builder::with_addresses(
            ppp_addrs::Version::Two | ppp_addrs::Command::Proxy,
            ppp_addrs::Protocol::Stream,
            a,
        )
        .build()
        .unwrap()
    };
    // A trusted director (127.0.0.1) relays device 127.44.0.9.
    let mut conn = ClientConnection::new(ClientConfig::default(), Some(Key::new(KEY)));
    let mut req = cmd("alice", "show version");
    req.args.insert(0, "task_id=1".parse().unwrap());
    conn.account(42, AcctRequest { flags: AcctFlags::Start, request: req }).unwrap();
    let mut pkt = header("127.44.0.9:50000");
    conn.poll_transmit(&mut pkt);
    let mut s = TcpStream::connect(paddr).await.unwrap();
    s.write_all(&pkt).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    while conn.open_sessions() > 0 {
        assert!(s.read_buf(&mut buf).await.unwrap() > 0);
        conn.handle_input(&mut buf);
    }
    assert!(matches!(
        conn.poll_event(),
        Some(ClientEvent::AcctReply { reply: AcctReply { status: AcctStatus::Success, .. }, .. })
    ));
    let j = h.journal();
    assert_eq!(j[0]["device"], "127.44.0.9", "the device's address, not the director's");
    assert_eq!(j[0]["device_port"], 50000);

    // Same header from an untrusted peer (127.0.0.2): closed without an answer.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(paddr).await.unwrap();
    s.write_all(&header("127.44.0.9:50000")).await.unwrap();
    let mut sink = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut sink))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    // No header on a required listener: closed.
    let e = Client::new(ClientOptions { server: paddr, ..h.opts() })
        .authorize(cmd("bob", "show"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }), "{e}");
    assert_eq!(h.journal().len(), 1);
}

mod ppp_addrs {
    pub use ppp::v2::*;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_repeated_failures() {
    let h = start("lockout", "", 3).await;
    for _ in 0..3 {
        assert_eq!(
            login(&mut h.client(), AuthenType::Pap, "bob", "nope").await,
            AuthenStatus::Fail
        );
    }
    // Now even the right password fails, for bob and from this source.
    assert_eq!(
        login(&mut h.client(), AuthenType::Pap, "bob", "bob-pass").await,
        AuthenStatus::Fail
    );
    assert_eq!(
        login(&mut h.client(), AuthenType::Pap, "alice", "alice-pass").await,
        AuthenStatus::Fail,
        "source locked too"
    );
    let other = ClientOptions { source: Some("127.9.9.9".parse().unwrap()), ..h.opts() };
    let mut c = Client::new(other);
    assert_eq!(
        login(&mut c, AuthenType::Pap, "alice", "alice-pass").await,
        AuthenStatus::Pass,
        "other sources are fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_connect_and_reload_under_load() {
    let h = Arc::new(start("reload", "", 0).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (permits, fails, errors) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (h, stop, permits, fails, errors) =
            (h.clone(), stop.clone(), permits.clone(), fails.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(ClientOptions { single_connect: true, ..h.opts() });
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match c.authorize(cmd("bob", "configure terminal")).await {
                    Ok(r) if r.status == AuthorStatus::PassAdd => {
                        permits.fetch_add(1, Ordering::Relaxed)
                    }
                    Ok(_) => fails.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("{e}");
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
                assert_eq!(c.single_connect(), Some(true), "one connection for all {n} requests");
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fails.load(Ordering::Relaxed) > 0 && permits.load(Ordering::Relaxed) == 0);
    // bob's group now permits configure: rewrite the file and reload.
    let path = h.dir.join("server.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("match = \"show( .*)?\"", "match = \"(show|configure)( .*)?\"");
    std::fs::write(&path, text).unwrap();
    h.server.reload().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A broken file is refused and the running policy stays.
    std::fs::write(&path, "this is not toml [").unwrap();
    assert!(h.server.reload().is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(permits.load(Ordering::Relaxed) > 0, "new decisions after reload");
    assert_eq!(errors.load(Ordering::Relaxed), 0, "no request failed across the reloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_when_enabled_persists_across_restart() {
    struct Seq(Vec<&'static str>);
    impl tacvs_client::Prompter for Seq {
        fn answer(&mut self, _s: AuthenStatus, _m: &str, _n: bool) -> Option<String> {
            (!self.0.is_empty()).then(|| self.0.remove(0).to_owned())
        }
    }
    let chpass = |user: &str| {
        let mut s = start_pkt(AuthenType::Ascii, AuthenService::Login, user, vec![]);
        s.action = AuthenAction::ChangePassword;
        s
    };
    let h = start_with("chpass", "", 0, "", true).await;
    // Wrong old password: FAIL, nothing changed.
    let r = h.client().authenticate(chpass("bob"), &mut Seq(vec!["nope"])).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    // Too short, then mismatched confirmation: FAIL, nothing changed.
    let r = h
        .client()
        .authenticate(
            chpass("bob"),
            &mut Seq(vec!["bob-pass", "short", "long-enough-1", "long-enough-2"]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(String::from_utf8_lossy(&r.server_msg).contains("differ"));
    assert_eq!(
        login(&mut h.client(), AuthenType::Pap, "bob", "bob-pass").await,
        AuthenStatus::Pass
    );
    // A real change (GETUSER first: no user in START).
    let r = h
        .client()
        .authenticate(chpass(""), &mut Seq(vec!["bob", "bob-pass", "bob-new-pass", "bob-new-pass"]))
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Pass, "{:?}", r.server_msg);
    assert_eq!(
        login(&mut h.client(), AuthenType::Pap, "bob", "bob-new-pass").await,
        AuthenStatus::Pass
    );
    assert_eq!(
        login(&mut h.client(), AuthenType::Pap, "bob", "bob-pass").await,
        AuthenStatus::Fail,
        "old password gone (cache cleared)"
    );
    // A second server started on the same state (as after a restart) reads the
    // change back from the password store.
    let policy = tacvs_policy::load(&h.dir.join("server.toml")).unwrap();
    let server2 = tacvs_server::start(policy, None).await.unwrap();
    let mut c = Client::new(ClientOptions {
        timeout: Duration::from_secs(3),
        ..ClientOptions::new(server2.local_addrs[0], Some(Key::new(KEY)))
    });
    assert_eq!(login(&mut c, AuthenType::Pap, "bob", "bob-new-pass").await, AuthenStatus::Pass);
    server2.shutdown(Duration::from_millis(200)).await;
}
