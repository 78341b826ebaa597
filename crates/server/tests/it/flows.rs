//! Every exchange of RFC 8907 against the server: logins of each type, enable,
//! password change, authorization, accounting into the journal and syslog,
//! wrong keys, unknown devices, garbage, PROXY intake, single-connect, reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tacvs_client::{Client, ClientError, ClientOptions, FixedAnswers};
use tacvs_proto::chap::{self, ChapData};
use tacvs_proto::{
    AaaRequest, AcctFlags, AcctReply, AcctRequest, AcctStatus, AuthenAction, AuthenService,
    AuthenStatus, AuthenType, AuthorStatus, ClientConfig, ClientConnection, ClientEvent, Key,
    PrivLvl,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

async fn right_and_wrong_password(ty: AuthenType) {
    let h = start(&format!("login-{ty}"), Conf::default()).await;
    assert_eq!(login(&mut h.client(), ty, "alice", "alice-pass").await, AuthenStatus::Pass);
    assert_eq!(login(&mut h.client(), ty, "alice", "wrong").await, AuthenStatus::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pap_passes_the_right_password_and_fails_a_wrong_one() {
    right_and_wrong_password(AuthenType::Pap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ascii_passes_the_right_password_and_fails_a_wrong_one() {
    right_and_wrong_password(AuthenType::Ascii).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chap_passes_the_right_response_and_fails_a_wrong_one() {
    right_and_wrong_password(AuthenType::Chap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mschapv1_passes_the_right_response_and_fails_a_wrong_one() {
    right_and_wrong_password(AuthenType::MsChapV1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mschapv2_passes_the_right_response_and_fails_a_wrong_one() {
    right_and_wrong_password(AuthenType::MsChapV2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chap_for_a_user_without_a_secret_fails_saying_what_chap_needs() {
    let h = start("chap-nosecret", Conf::default()).await;
    let data = ChapData {
        id: 1,
        challenge: b"abcdefgh",
        response: &chap::mschapv1_response(b"abcdefgh", "bob-pass"),
    }
    .to_vec();
    let r = h
        .client()
        .authenticate(
            start_pkt(AuthenType::MsChapV1, AuthenService::Login, "bob", data),
            &mut FixedAnswers { user: "".into(), password: "".into(), max_rounds: 0 },
        )
        .await
        .unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(String::from_utf8_lossy(&r.server_msg).contains("chap_secret"), "{:?}", r.server_msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_over_ascii_checks_the_enable_password() {
    let h = start("enable-ascii", Conf::default()).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_over_pap_refuses_the_login_password() {
    let h = start("enable-pap", Conf::default()).await;
    let mut none = FixedAnswers { user: "".into(), password: "".into(), max_rounds: 0 };
    let start_enable = |pw: &str| {
        start_pkt(AuthenType::Pap, AuthenService::Enable, "alice", pw.as_bytes().to_vec())
    };
    let r = h.client().authenticate(start_enable("alice-pass"), &mut none).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    let r = h.client().authenticate(start_enable("alice-enable"), &mut none).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_is_refused_with_a_message_when_disabled() {
    let h = start("chpass-off", Conf::default()).await;
    let mut s = start_pkt(AuthenType::Ascii, AuthenService::Login, "alice", vec![]);
    s.action = AuthenAction::ChangePassword;
    let r = h.client().authenticate(s, &mut Script::new(&["alice-pass"])).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(String::from_utf8_lossy(&r.server_msg).contains("not enabled"), "{:?}", r.server_msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readonly_user_may_show_but_not_configure() {
    let h = start("author-ro", Conf::default()).await;
    let status = |r: Result<tacvs_proto::AuthorResponse, ClientError>| r.unwrap().status;
    assert_eq!(
        status(h.client().authorize(cmd("bob", "show ip route")).await),
        AuthorStatus::PassAdd
    );
    assert_eq!(
        status(h.client().authorize(cmd("bob", "configure terminal")).await),
        AuthorStatus::Fail
    );
    assert_eq!(
        status(h.client().authorize(cmd("bob", "configure show x")).await),
        AuthorStatus::Fail,
        "rules are anchored"
    );
    assert_eq!(status(h.client().authorize(cmd("alice", "reload")).await), AuthorStatus::PassAdd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_authorization_answers_the_groups_priv_lvl() {
    let h = start("author-exec", Conf::default()).await;
    let exec = h
        .client()
        .authorize(AaaRequest::new("alice", vec!["service=shell".parse().unwrap()]))
        .await
        .unwrap();
    assert_eq!(exec.status, AuthorStatus::PassAdd);
    assert_eq!(exec.args[0].to_string(), "priv-lvl=15");
}

async fn account_from(h: &Harness, src: &str) -> AcctReply {
    let mut req = cmd("alice", "show clock");
    req.args.insert(0, "task_id=77".parse().unwrap());
    Client::new(ClientOptions { source: Some(src.parse().unwrap()), ..h.opts() })
        .account(AcctRequest { flags: AcctFlags::Stop, request: req })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_lands_in_the_journal_with_the_device_address() {
    let h = start("acct", Conf::default()).await;
    assert_eq!(account_from(&h, "127.3.4.5").await.status, AcctStatus::Success);
    let j = h.journal();
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].device, "127.3.4.5");
    assert_eq!(j[0].record, "stop");
    assert_eq!(j[0].user, "alice");
    assert_eq!(j[0].server, "test-rs");
    assert_eq!(j[0].args[0], "task_id=77");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_accounting_records_go_to_syslog() {
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let accounting = format!(
        "[accounting.syslog]\ntarget = \"udp://{}\"\nfacility = \"local5\"",
        collector.local_addr().unwrap()
    );
    let h = start("syslog", Conf { accounting, ..Conf::default() }).await;
    assert_eq!(account_from(&h, "127.3.4.5").await.status, AcctStatus::Success);
    // local5.info = <174>.
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
async fn ascii_allows_max_login_attempts_tries() {
    let h = start("ascii-tries", Conf::default()).await;
    let ascii = || start_pkt(AuthenType::Ascii, AuthenService::Login, "", vec![]);
    let mut third = Script::new(&["bob", "x", "y", "bob-pass"]);
    let r = h.client().authenticate(ascii(), &mut third).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Pass, "third try succeeds");
    let mut fourth = Script::new(&["bob", "x", "y", "z", "bob-pass"]);
    let r = h.client().authenticate(ascii(), &mut fourth).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail, "only three tries");
    assert_eq!(fourth.answers, ["bob-pass"], "the fourth password was never asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_reported_as_one() {
    let h = start("wrong-key", Conf::default()).await;
    let e = Client::new(ClientOptions { key: Some(Key::new("nope")), ..h.opts() })
        .authorize(cmd("bob", "show"))
        .await
        .unwrap_err();
    assert!(e.is_wrong_key(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_in_no_device_group_is_refused() {
    let h = start("unknown-device", Conf::default()).await;
    // 127.200.0.1 is outside 127.0.0.0/9.
    let e = h.client_from("127.200.0.1").authorize(cmd("bob", "show")).await.unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_answered_or_closed_and_the_server_keeps_serving() {
    let h = start("garbage", Conf::default()).await;
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut sink))
        .await
        .expect("server closes")
        .unwrap();
    assert!(n <= 12, "at most an echoed header (RFC 8907 §4.1)");
    assert_eq!(
        h.client().authorize(cmd("bob", "show")).await.unwrap().status,
        AuthorStatus::PassAdd
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_a_rotation_works() {
    let h = start("rotation", Conf::default()).await;
    let old = Client::new(ClientOptions { key: Some(Key::new("old-key-0123456789")), ..h.opts() })
        .authorize(cmd("bob", "show"))
        .await
        .unwrap();
    assert_eq!(old.status, AuthorStatus::PassAdd);
    assert_eq!(
        h.client().authorize(cmd("bob", "show")).await.unwrap().status,
        AuthorStatus::PassAdd
    );
}

pub const PROXY_LISTENER: &str = "[[server.listen]]\naddress = \"127.0.0.1:0\"\nproxy_protocol \
    = \"required\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

/// A PROXY v2 header naming `src` as the device, for a connection to `dst`.
pub fn proxy_header(src: &str, dst: std::net::SocketAddr) -> Vec<u8> {
    use ppp::v2;
    let src: std::net::SocketAddr = src.parse().unwrap();
    // Both addresses of one family, as a director writes them.
    let dst = match (src, dst) {
        (std::net::SocketAddr::V6(_), std::net::SocketAddr::V4(d)) => {
            std::net::SocketAddr::new(d.ip().to_ipv6_mapped().into(), d.port())
        }
        _ => dst,
    };
    let a: v2::Addresses = (src, dst).into();
    v2::Builder::with_addresses(v2::Version::Two | v2::Command::Proxy, v2::Protocol::Stream, a)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_director_relays_the_device_address() {
    let h = start("proxy", Conf { listeners: PROXY_LISTENER.into(), ..Conf::default() }).await;
    let paddr = h.server.local_addrs[1];
    let mut conn = ClientConnection::new(ClientConfig::default(), Some(Key::new(KEY)));
    let mut req = cmd("alice", "show version");
    req.args.insert(0, "task_id=1".parse().unwrap());
    conn.account(42, AcctRequest { flags: AcctFlags::Start, request: req }).unwrap();
    let mut pkt = proxy_header("127.44.0.9:50000", paddr);
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
    assert_eq!(j[0].device, "127.44.0.9", "the device's address, not the director's");
    assert_eq!(j[0].device_port, 50000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_from_an_untrusted_peer_is_closed_unanswered() {
    // On an `optional` listener the peer is then the device itself, and its
    // header a first packet that fails to decode: closed, as on a plain
    // listener (which may say why in an error reply), never believed.
    for (name, listener, silent) in [
        ("proxy-untrusted", PROXY_LISTENER.to_string(), true),
        ("proxy-untrusted-optional", PROXY_LISTENER.replace("required", "optional"), false),
    ] {
        a_proxy_header_from_an_untrusted_peer_is_closed_unanswered_on(name, listener, silent).await;
    }
}

async fn a_proxy_header_from_an_untrusted_peer_is_closed_unanswered_on(
    name: &str,
    l: String,
    silent: bool,
) {
    let h = start(name, Conf { listeners: l, ..Conf::default() }).await;
    let paddr = h.server.local_addrs[1];
    let mut s = connect_from(paddr, Some("127.0.0.2".parse().unwrap())).await;
    // The header claims a device the server would serve, and a request follows
    // it: a server that believed the header would answer and journal it.
    let mut conn = ClientConnection::new(ClientConfig::default(), Some(Key::new(KEY)));
    let mut req = cmd("alice", "show version");
    req.args.insert(0, "task_id=1".parse().unwrap());
    conn.account(42, AcctRequest { flags: AcctFlags::Start, request: req }).unwrap();
    let mut pkt = proxy_header("127.44.0.9:50000", paddr);
    conn.poll_transmit(&mut pkt);
    s.write_all(&pkt).await.unwrap();
    let mut sink = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut sink))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    if silent {
        assert_eq!(n, 0, "not answered");
    }
    let mut reply = bytes::BytesMut::from(&sink[..]);
    conn.handle_input(&mut reply);
    while let Some(ev) = conn.poll_event() {
        assert!(
            !matches!(ev, ClientEvent::AcctReply { .. }),
            "{name}: the request was answered: {ev:?}"
        );
    }
    assert!(h.journal().is_empty(), "nothing journaled for a forged address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_proxy_listener_answers_a_direct_device_error_and_closes() {
    let h =
        start("proxy-missing", Conf { listeners: PROXY_LISTENER.into(), ..Conf::default() }).await;
    let mut c = Client::new(ClientOptions { server: h.server.local_addrs[1], ..h.opts() });
    let r = c.authorize(cmd("bob", "show")).await.unwrap();
    assert_eq!(r.status, AuthorStatus::Error, "not served");
    assert!(String::from_utf8_lossy(&r.server_msg).contains("director"), "{r:?}");
    // A peer in no device group gets nothing (there is no key to answer with).
    let e = Client::new(ClientOptions {
        server: h.server.local_addrs[1],
        source: Some("127.200.0.1".parse().unwrap()),
        ..h.opts()
    })
    .authorize(cmd("bob", "show"))
    .await
    .unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_connect_requests_see_a_reload_and_survive_a_broken_one() {
    let h = Arc::new(start("reload", Conf::default()).await);
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
    let long = Duration::from_secs(10);
    assert!(eventually(long, || async { fails.load(Ordering::Relaxed) >= 20 }).await);
    assert_eq!(permits.load(Ordering::Relaxed), 0);
    // bob's group now permits configure: rewrite the file and reload.
    h.edit_config(|t| t.replace("match = \"show( .*)?\"", "match = \"(show|configure)( .*)?\""));
    h.server.reload().await.unwrap();
    assert!(eventually(long, || async { permits.load(Ordering::Relaxed) >= 20 }).await);
    // A broken file is refused, and the running policy (which permits) stays:
    // count permits made after the broken file is in place.
    std::fs::write(h.config_path(), "this is not toml [").unwrap();
    assert!(h.server.reload().await.is_err());
    let fails_before = fails.load(Ordering::Relaxed);
    let after = permits.load(Ordering::Relaxed);
    assert!(eventually(long, || async { permits.load(Ordering::Relaxed) >= after + 20 }).await);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(fails.load(Ordering::Relaxed), fails_before, "no denial after the broken reload");
    assert_eq!(errors.load(Ordering::Relaxed), 0, "no request failed across the reloads");
}

fn chpass(user: &str) -> tacvs_proto::AuthenStart {
    let mut s = start_pkt(AuthenType::Ascii, AuthenService::Login, user, vec![]);
    s.action = AuthenAction::ChangePassword;
    s
}

fn chpass_on() -> Conf {
    Conf { auth: "change_password = true".into(), ..Conf::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_with_a_wrong_old_password_fails_and_changes_nothing() {
    let h = start("chpass-wrong-old", chpass_on()).await;
    let r = h.client().authenticate(chpass("bob"), &mut Script::new(&["nope"])).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert_eq!(pap(&mut h.client(), "bob", "bob-pass").await, AuthenStatus::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_refuses_a_too_short_new_password_and_asks_again() {
    let h = start("chpass-short", chpass_on()).await;
    let mut script = Script::new(&["bob-pass", "short", "long-enough-1", "long-enough-1"]);
    let r = h.client().authenticate(chpass("bob"), &mut script).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Pass, "{:?}", r.server_msg);
    let prompts: Vec<&str> = script.prompts.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(prompts.len(), 4, "{prompts:?}");
    assert!(prompts[2].starts_with("Too short: use at least 8 characters."), "{prompts:?}");
    assert_eq!(pap(&mut h.client(), "bob", "short").await, AuthenStatus::Fail);
    assert_eq!(pap(&mut h.client(), "bob", "long-enough-1").await, AuthenStatus::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_with_differing_confirmation_changes_nothing() {
    let h = start("chpass-differ", chpass_on()).await;
    let mut script = Script::new(&["bob-pass", "long-enough-1", "long-enough-2"]);
    let r = h.client().authenticate(chpass("bob"), &mut script).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(String::from_utf8_lossy(&r.server_msg).contains("differ"));
    assert_eq!(pap(&mut h.client(), "bob", "bob-pass").await, AuthenStatus::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_replaces_the_old_one_and_persists_across_restart() {
    let h = start("chpass", chpass_on()).await;
    // GETUSER first: no user in START.
    let mut script = Script::new(&["bob", "bob-pass", "bob-new-pass", "bob-new-pass"]);
    let r = h.client().authenticate(chpass(""), &mut script).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Pass, "{:?}", r.server_msg);
    assert_eq!(pap(&mut h.client(), "bob", "bob-new-pass").await, AuthenStatus::Pass);
    assert_eq!(
        pap(&mut h.client(), "bob", "bob-pass").await,
        AuthenStatus::Fail,
        "old password gone (cache cleared)"
    );
    // A second server started on the same state (as after a restart) reads the
    // change back from the password store.
    let policy = tacvs_policy::load(&h.config_path()).unwrap();
    let server2 = tacvs_server::start(policy, None).await.unwrap();
    let mut c = Client::new(ClientOptions {
        timeout: Duration::from_secs(3),
        ..ClientOptions::new(server2.local_addrs[0], Some(Key::new(KEY)))
    });
    assert_eq!(pap(&mut c, "bob", "bob-new-pass").await, AuthenStatus::Pass);
    server2.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounting_record_that_cannot_be_stored_is_answered_error() {
    // The newest journal file is /dev/full: every write fails with ENOSPC.
    let dir = test_dir("acct-full");
    std::fs::write(dir.join("server.toml"), config(&dir, &Conf::default())).unwrap();
    std::fs::create_dir_all(dir.join("acct")).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("acct/acct-29991231T235959Z-000.jsonl"))
        .unwrap();
    let h = start_in(dir).await;
    let reply = account_from(&h, "127.3.4.5").await;
    assert_eq!(reply.status, AcctStatus::Error);
    assert!(String::from_utf8_lossy(&reply.server_msg).contains("not stored"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ascii_login_that_never_gives_a_username_ends_with_error() {
    let h = start("no-username", Conf::default()).await;
    let mut empty = Script::new(&[""; 200]);
    let s = start_pkt(AuthenType::Ascii, AuthenService::Login, "", vec![]);
    let r = h.client().authenticate(s, &mut empty).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Error, "{:?}", r.server_msg);
    assert_eq!(empty.prompts.len(), 3, "max_login_attempts prompts for a name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_with_only_short_passwords_ends() {
    let h = start("chpass-all-short", chpass_on()).await;
    let mut script = Script::new(&["bob-pass", "a", "b", "c", "d", "e"]);
    let r = h.client().authenticate(chpass("bob"), &mut script).await.unwrap();
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(String::from_utf8_lossy(&r.server_msg).contains("nothing was changed"));
    assert_eq!(script.answers, ["d", "e"], "three short tries, then the end");
}

async fn enable(h: &Harness, ty: AuthenType, user: &str, pw: &str) -> tacvs_proto::AuthenReply {
    let s = start_pkt(ty, AuthenService::Enable, user, login_data(ty, user, pw));
    let mut answers = FixedAnswers { user: user.into(), password: pw.into(), max_rounds: 3 };
    h.client().authenticate(s, &mut answers).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_above_the_users_groups_level_fails_even_with_the_right_password() {
    let h = start("enable-above", Conf::default()).await;
    // bob's only group (readonly) grants priv-lvl 1; enable asks for 15.
    assert_eq!(enable(&h, AuthenType::Pap, "bob", "bob-enable").await.status, AuthenStatus::Fail);
    assert_eq!(enable(&h, AuthenType::Ascii, "bob", "bob-enable").await.status, AuthenStatus::Fail);
    assert_eq!(
        enable(&h, AuthenType::Pap, "alice", "alice-enable").await.status,
        AuthenStatus::Pass
    );
}

/// The credential cache keys a password by (kind, user, password), not by
/// level: a pass at a level the user holds must not be reused for one above
/// the user's groups (found by an adversarial review; passed before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_enable_does_not_pass_a_level_above_the_users_groups() {
    let h = start("enable-cached-above", Conf::default()).await;
    for ty in [AuthenType::Pap, AuthenType::Ascii] {
        let at = |lvl: u8| {
            let mut s =
                start_pkt(ty, AuthenService::Enable, "bob", login_data(ty, "bob", "bob-enable"));
            s.priv_lvl = PrivLvl::new(lvl).unwrap();
            let mut answers =
                FixedAnswers { user: "bob".into(), password: "bob-enable".into(), max_rounds: 3 };
            let mut c = h.client();
            async move { c.authenticate(s, &mut answers).await.unwrap().status }
        };
        // bob's only group (readonly) grants priv-lvl 1: a pass there is cached ...
        assert_eq!(at(1).await, AuthenStatus::Pass, "{ty:?} at bob's own level");
        // ... and must not open level 15 while it is.
        assert_eq!(at(15).await, AuthenStatus::Fail, "{ty:?}: the cached pass opened level 15");
        assert_eq!(at(1).await, AuthenStatus::Pass, "{ty:?}: the cache still serves level 1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_without_an_enable_password_fails() {
    let h = start("enable-none", Conf::default()).await;
    // carol (netops, level 15) has no enable password: her login password is no substitute.
    assert_eq!(enable(&h, AuthenType::Pap, "carol", "carol-pass").await.status, AuthenStatus::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_over_chap_is_refused_with_a_message() {
    let h = start("enable-chap", Conf::default()).await;
    let r = enable(&h, AuthenType::Chap, "alice", "alice-enable").await;
    assert_eq!(r.status, AuthenStatus::Fail);
    assert!(String::from_utf8_lossy(&r.server_msg).contains("Enable with CHAP is not supported"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mandatory_priv_lvl_above_the_grant_fails_end_to_end() {
    let h = start("author-mandatory", Conf::default()).await;
    let req = |av: &str| {
        AaaRequest::new("bob", vec!["service=shell".parse().unwrap(), av.parse().unwrap()])
    };
    let r = h.client().authorize(req("priv-lvl=15")).await.unwrap();
    assert_eq!(r.status, AuthorStatus::Fail);
    assert!(r.args.is_empty());
    let r = h.client().authorize(req("priv-lvl*15")).await.unwrap();
    assert_eq!(r.status, AuthorStatus::PassRepl);
    assert_eq!(
        r.args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ["service=shell", "priv-lvl=1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_cmd_avs_are_each_checked_end_to_end() {
    let h = start("author-two-cmds", Conf::default()).await;
    let args = ["service=shell", "cmd=show", "cmd*configure", "cmd-arg=terminal"];
    let req = AaaRequest::new("bob", args.iter().map(|a| a.parse().unwrap()).collect());
    assert_eq!(h.client().authorize(req).await.unwrap().status, AuthorStatus::Fail);
}
