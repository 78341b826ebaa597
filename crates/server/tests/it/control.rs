//! The control socket: who may use it, and what `tacvs server lockouts`,
//! `unlock` and `sessions` see and do.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tacvs_proto::AuthenStatus;
use tacvs_server::control::{Reply, Request, request};

use crate::support::*;

async fn with_socket(tag: &str, lockout: &str) -> (Harness, PathBuf) {
    let dir = test_dir(tag);
    let conf = Conf { lockout: Some(lockout.into()), ..Conf::default() };
    let text = config(&dir, &conf).replacen(
        "[[server.listen]]",
        "control_socket = \"run/server.sock\"\n[[server.listen]]",
        1,
    );
    std::fs::write(dir.join("server.toml"), text).unwrap();
    let sock = dir.join("run/server.sock");
    (start_in(dir).await, sock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_mode_0600_and_relative_to_the_configuration() {
    let (_h, sock) = with_socket("ctl-mode", "max_failures = 0").await;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_lists_a_locked_pair_and_unlock_clears_it() {
    let (h, sock) =
        with_socket("ctl-lock", "max_failures = 2\nuser_burst = 0\nsource_burst = 0").await;
    pap(&mut h.client(), "bob", "x").await;
    pap(&mut h.client(), "bob", "y").await;
    assert_eq!(pap(&mut h.client(), "bob", "bob-pass").await, AuthenStatus::Fail);
    let Reply::Lockouts { entries } = request(&sock, &Request::Lockouts).await.unwrap() else {
        panic!("a lockouts reply");
    };
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].state, "locked");
    assert_eq!(entries[0].user.as_deref(), Some("bob"));
    assert_eq!(entries[0].device.unwrap().to_string(), "127.0.0.1");
    assert!(entries[0].seconds_left > 0.0);
    let r = request(&sock, &Request::Unlock { subject: "bob".into() }).await.unwrap();
    assert!(matches!(r, Reply::Unlocked { removed } if removed >= 1), "{r:?}");
    assert_eq!(pap(&mut h.client(), "bob", "bob-pass").await, AuthenStatus::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_by_device_address_clears_that_devices_limits() {
    let (h, sock) = with_socket(
        "ctl-unlock-src",
        "max_failures = 100\nuser_burst = 0\nsource_burst = 2\nsource_refill = \"1h\"",
    )
    .await;
    pap(&mut h.client(), "u1", "x").await;
    pap(&mut h.client(), "u2", "x").await;
    assert_eq!(pap(&mut h.client(), "alice", "alice-pass").await, AuthenStatus::Fail, "slowed");
    let Reply::Lockouts { entries } = request(&sock, &Request::Lockouts).await.unwrap() else {
        panic!()
    };
    assert!(entries.iter().any(|e| e.state == "device slowed"), "{entries:?}");
    let r = request(&sock, &Request::Unlock { subject: "127.0.0.1".into() }).await.unwrap();
    assert!(matches!(r, Reply::Unlocked { removed } if removed >= 1), "{r:?}");
    assert_eq!(pap(&mut h.client(), "alice", "alice-pass").await, AuthenStatus::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_lists_open_connections_with_device_user_since_and_state() {
    let (h, sock) = with_socket("ctl-sessions", "max_failures = 0").await;
    let mut c = tacvs_client::Client::new(tacvs_client::ClientOptions {
        single_connect: true,
        source: Some("127.0.0.5".parse().unwrap()),
        ..h.opts()
    });
    assert_eq!(pap(&mut c, "alice", "alice-pass").await, AuthenStatus::Pass);
    c.authorize(cmd("alice", "show clock")).await.unwrap();
    let Reply::Sessions { sessions } = request(&sock, &Request::Sessions).await.unwrap() else {
        panic!()
    };
    let s = sessions.iter().find(|s| s.device.starts_with("127.0.0.5:")).expect("listed");
    assert_eq!(s.device_group, "lab");
    assert_eq!(s.user.as_deref(), Some("alice"));
    assert_eq!(s.state, "idle");
    assert_eq!(s.requests, 2);
    assert!(s.since.ends_with('Z'), "{}", s.since);
    drop(c);
    let gone = eventually(std::time::Duration::from_secs(5), || async {
        match request(&sock, &Request::Sessions).await.unwrap() {
            Reply::Sessions { sessions } => {
                !sessions.iter().any(|s| s.device.starts_with("127.0.0.5:"))
            }
            _ => false,
        }
    })
    .await;
    assert!(gone, "a closed connection leaves the list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_gets_an_error_reply() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_h, sock) = with_socket("ctl-bad", "max_failures = 0").await;
    let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    s.write_all(b"{\"request\":\"format_disk\"}\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let r: Reply = serde_json::from_str(&out).unwrap();
    assert!(matches!(r, Reply::Error { message } if message.contains("not a control request")));
}
