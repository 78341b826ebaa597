//! Reloads and listeners: settings follow the address, not the position in
//! the file; new addresses are bound, removed ones closed; a reload that cannot
//! bind changes nothing.

use std::time::Duration;

use tacvs_client::{Client, ClientError, ClientOptions};
use tacvs_proto::AuthorStatus;

use crate::support::*;

const PROXY_ON_2: &str = "[[server.listen]]\naddress = \"127.0.0.2:0\"\nproxy_protocol = \
    \"required\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
const PLAIN_ON_1: &str = "[[server.listen]]\naddress = \"127.0.0.1:0\"\n";

async fn direct(h: &Harness, addr: std::net::SocketAddr) -> Result<AuthorStatus, ClientError> {
    let mut c = Client::new(ClientOptions { server: addr, ..h.opts() });
    c.authorize(cmd("bob", "show")).await.map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_listeners_keep_their_own_proxy_settings() {
    let h = start("reorder", Conf { listeners: PROXY_ON_2.into(), ..Conf::default() }).await;
    let (plain, proxied) = (h.server.local_addrs[0], h.server.local_addrs[1]);
    assert_eq!(direct(&h, plain).await.unwrap(), AuthorStatus::PassAdd);
    assert_eq!(direct(&h, proxied).await.ok(), Some(AuthorStatus::Error), "PROXY required there");
    // The same two listeners, the PROXY one first.
    h.edit_config(|t| {
        t.replacen(PLAIN_ON_1, "", 1).replacen(PROXY_ON_2, &format!("{PROXY_ON_2}{PLAIN_ON_1}"), 1)
    });
    h.server.reload().await.unwrap();
    assert_eq!(h.server.listening().await, [proxied, plain], "same sockets, file order");
    assert_eq!(direct(&h, plain).await.unwrap(), AuthorStatus::PassAdd, "still plain");
    assert_eq!(direct(&h, proxied).await.ok(), Some(AuthorStatus::Error), "still requires PROXY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_listener_stops_listening_and_the_others_keep_serving() {
    let h = start("remove", Conf { listeners: PROXY_ON_2.into(), ..Conf::default() }).await;
    let (plain, proxied) = (h.server.local_addrs[0], h.server.local_addrs[1]);
    h.edit_config(|t| t.replacen(PROXY_ON_2, "", 1));
    h.server.reload().await.unwrap();
    assert_eq!(h.server.listening().await, [plain]);
    assert!(
        tokio::net::TcpStream::connect(proxied).await.is_err(),
        "the removed address refuses connections"
    );
    assert_eq!(direct(&h, plain).await.unwrap(), AuthorStatus::PassAdd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_listener_is_bound_at_reload() {
    let h = start("add", Conf::default()).await;
    h.edit_config(|t| {
        t.replacen(
            PLAIN_ON_1,
            &format!("{PLAIN_ON_1}[[server.listen]]\naddress = \"127.0.0.3:0\"\n"),
            1,
        )
    });
    h.server.reload().await.unwrap();
    let now = h.server.listening().await;
    assert_eq!(now.len(), 2);
    assert_eq!(now[0], h.addr());
    assert_eq!(now[1].ip().to_string(), "127.0.0.3");
    assert_eq!(direct(&h, now[1]).await.unwrap(), AuthorStatus::PassAdd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_new_listener_cannot_be_bound_changes_nothing() {
    let h = start("bind-fail", Conf::default()).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    h.edit_config(|t| {
        t.replacen(PLAIN_ON_1, &format!("{PLAIN_ON_1}[[server.listen]]\naddress = \"{busy}\"\n"), 1)
            .replace("match = \"show( .*)?\"", "match = \"(show|configure)( .*)?\"")
    });
    let e = h.server.reload().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("cannot listen on {busy}")) && e.contains("nothing was changed"),
        "{e}"
    );
    assert_eq!(h.server.listening().await, [h.addr()]);
    let r = h.client().authorize(cmd("bob", "configure terminal")).await.unwrap();
    assert_eq!(r.status, AuthorStatus::Fail, "the old rules are still in force");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_on_a_removed_listener_finish_their_sessions() {
    let h = start("remove-open", Conf { listeners: PLAIN_ON_2.into(), ..Conf::default() }).await;
    let second = h.server.local_addrs[1];
    let mut c = Client::new(ClientOptions { server: second, single_connect: true, ..h.opts() });
    assert_eq!(c.authorize(cmd("bob", "show")).await.unwrap().status, AuthorStatus::PassAdd);
    h.edit_config(|t| t.replacen(PLAIN_ON_2, "", 1));
    h.server.reload().await.unwrap();
    assert_eq!(c.authorize(cmd("bob", "show")).await.unwrap().status, AuthorStatus::PassAdd);
    assert_eq!(c.single_connect(), Some(true), "on the connection opened before");
}

const PLAIN_ON_2: &str = "[[server.listen]]\naddress = \"127.0.0.2:0\"\n";

fn signal_self(sig: &str) {
    let pid = std::process::id().to_string();
    let ok = std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

/// The path a daemon takes: a real SIGHUP to this process, handled by
/// `signals::Signals::run_until_stopped`, reloads; SIGTERM drains and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_running_server_and_sigterm_stops_it() {
    let dir = test_dir("sighup");
    std::fs::write(dir.join("server.toml"), config(&dir, &Conf::default())).unwrap();
    let policy = tacvs_policy::load(&dir.join("server.toml")).unwrap();
    // As `tacvs server` does: handlers before the server, so no signal is fatal.
    let signals = tacvs_server::signals::Signals::register().unwrap();
    let server = tacvs_server::start(policy, Some(dir.join("server.toml"))).await.unwrap();
    let addr = server.local_addrs[0];
    let running = tokio::spawn(signals.run_until_stopped(server, Duration::from_millis(500)));
    let opts = ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::new(addr, Some(tacvs_proto::Key::new(KEY)))
    };
    let configure = || async {
        Client::new(opts.clone()).authorize(cmd("bob", "configure terminal")).await.unwrap().status
    };
    assert_eq!(configure().await, AuthorStatus::Fail);
    let text = std::fs::read_to_string(dir.join("server.toml")).unwrap();
    let text = text.replace("match = \"show( .*)?\"", "match = \"(show|configure)( .*)?\"");
    std::fs::write(dir.join("server.toml"), text).unwrap();
    signal_self("-HUP");
    let reloaded = eventually(Duration::from_secs(10), || async {
        configure().await == AuthorStatus::PassAdd
    })
    .await;
    assert!(reloaded, "SIGHUP applied the new rule");
    signal_self("-TERM");
    let stopped = tokio::time::timeout(Duration::from_secs(5), running).await;
    assert!(matches!(stopped, Ok(Ok(()))), "SIGTERM drained and stopped: {stopped:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_a_login_in_progress_finish() {
    use tacvs_proto::{AuthenService, AuthenStatus, AuthenType, ClientEvent};
    let dir = test_dir("drain");
    std::fs::write(dir.join("server.toml"), config(&dir, &Conf::default())).unwrap();
    let policy = tacvs_policy::load(&dir.join("server.toml")).unwrap();
    let server = tacvs_server::start(policy, None).await.unwrap();
    let addr = server.local_addrs[0];
    let mut m = tacvs_proto::ClientConnection::new(
        tacvs_proto::ClientConfig::default(),
        Some(tacvs_proto::Key::new(KEY)),
    );
    let mut s = connect_from(addr, None).await;
    m.start_authen(77, start_pkt(AuthenType::Ascii, AuthenService::Login, "alice", vec![]))
        .unwrap();
    let mut out = Vec::new();
    m.poll_transmit(&mut out);
    tokio::io::AsyncWriteExt::write_all(&mut s, &out).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let next = |m: &mut tacvs_proto::ClientConnection| m.poll_event();
    let ev = loop {
        assert!(tokio::io::AsyncReadExt::read_buf(&mut s, &mut buf).await.unwrap() > 0);
        m.handle_input(&mut buf);
        if let Some(e) = next(&mut m) {
            break vec![e];
        }
    };
    assert!(
        matches!(&ev[0], ClientEvent::AuthenReply { reply, .. } if reply.status == AuthenStatus::GetPass)
    );
    let stopping = tokio::spawn(server.shutdown(Duration::from_secs(5)));
    let closed = eventually(Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(closed, "no new connections once draining");
    m.continue_authen(77, bytes::Bytes::from_static(b"alice-pass")).unwrap();
    let mut out = Vec::new();
    m.poll_transmit(&mut out);
    tokio::io::AsyncWriteExt::write_all(&mut s, &out).await.unwrap();
    let ev = loop {
        assert!(
            tokio::io::AsyncReadExt::read_buf(&mut s, &mut buf).await.unwrap() > 0,
            "closed before answering"
        );
        m.handle_input(&mut buf);
        if let Some(e) = next(&mut m) {
            break vec![e];
        }
    };
    assert!(
        matches!(&ev[0], ClientEvent::AuthenReply { reply, .. } if reply.status == AuthenStatus::Pass),
        "{ev:?}"
    );
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), stopping).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
