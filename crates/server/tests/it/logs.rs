//! What the server writes to its text log, as `tacvs` formats it: peer strings
//! escaped, one event per line, words a person can act on.

use std::io;
use std::sync::{Arc, Mutex};

use tacvs_proto::AuthenStatus;
use tacvs_server::logfmt::SafeFields;

use crate::support::*;

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The text log of everything on this thread until the guard drops (the tests
/// run on a current-thread runtime, so the server's tasks log here too).
pub fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let cap = Capture::default();
    let out = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || out.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .fmt_fields(SafeFields)
        .finish();
    (cap, tracing::subscriber::set_default(sub))
}

#[tokio::test]
async fn a_user_name_carrying_a_log_line_cannot_forge_one() {
    let (log, _g) = capture();
    let h = start("forge", Conf::default()).await;
    let forged =
        "evil\r\n2026-01-01T00:00:00Z  INFO authentication user=alice result=\"pass\"\u{1b}[2J\0";
    assert_eq!(pap(&mut h.client(), forged, "x").await, AuthenStatus::Fail);
    let text = log.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("evil")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(r#"user="evil\r\n2026-01-01T00:00:00Z  INFO authentication user=alice result=\"pass\"\x1b[2J\0""#), "{}", lines[0]);
    assert!(!text.lines().any(|l| l.starts_with("2026-01-01")), "{text}");
    assert!(!text.contains('\u{1b}') && !text.contains('\0') && !text.contains('\r'));
}

/// The log lines holding `needle`.
fn lines_with(log: &Capture, needle: &str) -> Vec<String> {
    log.text().lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_direct_client_on_a_proxy_listener_is_told_to_use_the_director() {
    let (log, _g) = capture();
    let h = start(
        "hint-proxy",
        Conf { listeners: crate::flows::PROXY_LISTENER.into(), ..Conf::default() },
    )
    .await;
    let mut c = tacvs_client::Client::new(tacvs_client::ClientOptions {
        server: h.server.local_addrs[1],
        ..h.opts()
    });
    let r = c.authorize(cmd("bob", "show")).await.unwrap();
    assert_eq!(r.status, tacvs_proto::AuthorStatus::Error);
    let msg = String::from_utf8_lossy(&r.server_msg).into_owned();
    assert!(msg.contains("director") && msg.contains("PROXY"), "{msg}");
    let l = lines_with(&log, "connection refused at PROXY intake");
    assert!(l.len() == 1 && l[0].contains("proxy_protocol = \\\"required\\\""), "{l:?}");
}

#[tokio::test]
async fn an_http_peer_is_logged_as_not_speaking_tacacs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (log, _g) = capture();
    let h = start("hint-http", Conf::default()).await;
    let mut s = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink).await;
    let l = lines_with(&log, "does not speak TACACS+");
    assert_eq!(l.len(), 1, "{}", log.text());
    assert!(l[0].contains("looks like HTTP") && l[0].contains("first_bytes=\"GET / HT\""), "{l:?}");
    assert!(!log.text().contains("major version"), "{}", log.text());
}

#[tokio::test]
async fn a_wrong_key_is_logged_in_words_without_nested_parentheses() {
    let (log, _g) = capture();
    let h = start("hint-key", Conf::default()).await;
    let mut c = tacvs_client::Client::new(tacvs_client::ClientOptions {
        key: Some(tacvs_proto::Key::new("not-the-key")),
        ..h.opts()
    });
    assert!(c.authorize(cmd("bob", "show")).await.is_err());
    let l = lines_with(&log, "key is none of its device group's keys");
    assert_eq!(l.len(), 1, "{}", log.text());
    let message = l[0].split(" decoder=").next().unwrap();
    assert!(!message.contains("(("), "{}", l[0]);
    assert!(
        message.contains("check the key configured on the device") && l[0].contains("keys=2"),
        "{}",
        l[0]
    );
}

#[tokio::test]
async fn enable_is_logged_apart_from_login_and_a_lock_in_words() {
    let (log, _g) = capture();
    let conf =
        Conf { lockout: Some("max_failures = 1\nduration = \"1m\"".into()), ..Conf::default() };
    let h = start("hint-enable", conf).await;
    let s = start_pkt(
        tacvs_proto::AuthenType::Pap,
        tacvs_proto::AuthenService::Enable,
        "alice",
        b"alice-enable".to_vec(),
    );
    let mut none =
        tacvs_client::FixedAnswers { user: "".into(), password: "".into(), max_rounds: 0 };
    assert_eq!(h.client().authenticate(s, &mut none).await.unwrap().status, AuthenStatus::Pass);
    assert_eq!(pap(&mut h.client(), "bob", "nope").await, AuthenStatus::Fail);
    let enable = lines_with(&log, " enable ");
    assert!(
        enable.iter().any(|l| l.contains("user=alice") && l.contains("result=pass")),
        "{}",
        log.text()
    );
    let login = lines_with(&log, " login ");
    assert!(
        login.iter().any(|l| l.contains("user=bob") && l.contains("result=fail")),
        "{}",
        log.text()
    );
    // The whole line from the message on, as the text log writes it.
    let bob = login.iter().find(|l| l.contains("user=bob")).unwrap();
    let from = bob.split_once(": login device=127.0.0.1:").map(|(_, r)| r).unwrap_or_default();
    let (port, rest) = from.split_once(' ').unwrap_or_default();
    assert!(port.parse::<u16>().is_ok(), "{bob}");
    assert!(rest.starts_with("user=bob method=pap result=fail reason="), "{bob}");
    let lock = lines_with(&log, "locked out on this device");
    assert!(lock.len() == 1 && lock[0].contains("locked_for=1m"), "{lock:?}");
    assert!(!log.text().contains("Some(") && !log.text().contains("User("), "{}", log.text());
}

#[tokio::test]
async fn the_json_log_never_repeats_a_key() {
    let cap = Capture::default();
    let out = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || out.clone())
        .json()
        .flatten_event(true)
        .finish();
    let _g = tracing::subscriber::set_default(sub);
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let accounting =
        format!("[accounting.syslog]\ntarget = \"udp://{}\"", collector.local_addr().unwrap());
    let h = start("json-keys", Conf { accounting, ..Conf::default() }).await;
    assert_eq!(pap(&mut h.client(), "bob", "bob-pass").await, AuthenStatus::Pass);
    let text = cap.text();
    assert!(text.contains("syslog"), "the syslog sink logged its start: {text}");
    for line in text.lines() {
        let mut keys: Vec<String> = Vec::new();
        // Top-level keys, in order, from the raw text (a JSON parser keeps one of two).
        let mut de = serde_json::Deserializer::from_str(line);
        let v: serde_json::Map<String, serde_json::Value> =
            serde::Deserialize::deserialize(&mut de).unwrap();
        for k in v.keys() {
            keys.push(k.clone());
        }
        for k in &keys {
            let n = line.matches(&format!("\"{k}\":")).count();
            assert_eq!(n, 1, "key {k:?} appears {n} times in {line}");
        }
    }
}

/// A director's health check (PROXY v2 LOCAL) logs its requests at DEBUG,
/// marked as a health check, and stays out of the authorization log; the
/// same requests from a device relayed by the director log at INFO (its
/// login) and are recorded (its authorization).
#[tokio::test]
async fn health_checks_through_proxy_local_are_debug_and_not_in_the_authorization_log() {
    use tokio::io::AsyncWriteExt;
    let (log, _g) = capture();
    let h = start(
        "probe-quiet",
        Conf { listeners: crate::flows::PROXY_LISTENER.into(), ..Conf::default() },
    )
    .await;
    let paddr = h.server.local_addrs[1];
    let opts = tacvs_client::ClientOptions { server: paddr, ..h.opts() };
    let client = |header: Vec<u8>| {
        let opts = opts.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(paddr).await.unwrap();
            s.write_all(&header).await.unwrap();
            tacvs_client::Client::with_stream(opts, s)
        }
    };
    let local = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Local,
        ppp::v2::Protocol::Unspecified,
        ppp::v2::Addresses::Unspecified,
    )
    .build()
    .unwrap();
    let mut probe = client(local.clone()).await;
    assert_eq!(pap(&mut probe, "alice", "alice-pass").await, AuthenStatus::Pass);
    let mut probe = client(local).await;
    let r = probe.authorize(cmd("alice", "show probe")).await.unwrap();
    assert_eq!(r.status, tacvs_proto::AuthorStatus::PassAdd);
    let device = || crate::flows::proxy_header("127.44.0.9:50000", paddr);
    let mut dev = client(device()).await;
    assert_eq!(pap(&mut dev, "alice", "alice-pass").await, AuthenStatus::Pass);
    let mut dev = client(device()).await;
    let r = dev.authorize(cmd("alice", "show device")).await.unwrap();
    assert_eq!(r.status, tacvs_proto::AuthorStatus::PassAdd);
    let text = log.text();
    let probe_lines: Vec<&str> =
        text.lines().filter(|l| l.contains("device=127.0.0.1:") && l.contains("alice")).collect();
    assert_eq!(probe_lines.len(), 2, "{text}");
    assert!(probe_lines.iter().all(|l| l.contains(" DEBUG ")), "{probe_lines:?}");
    assert!(probe_lines.iter().any(|l| l.contains("health check: ")), "{probe_lines:?}");
    let device_login: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("device=127.44.0.9:") && l.contains("method=pap"))
        .collect();
    assert!(
        device_login.len() == 1 && device_login[0].contains(" INFO "),
        "{device_login:?}\n{text}"
    );
    // The authorization log (written by its thread every 20 ms): the device's
    // decision only.
    let authz = || {
        let mut all = String::new();
        for e in std::fs::read_dir(h.dir.join("acct")).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("authz-") {
                all.push_str(&std::fs::read_to_string(e.path()).unwrap());
            }
        }
        all
    };
    let t = std::time::Instant::now();
    while !authz().contains("cmd-arg=device") {
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{}", authz());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!authz().contains("cmd-arg=probe"), "{}", authz());
}
