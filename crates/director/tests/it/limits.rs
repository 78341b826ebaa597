//! What an attacker or a slow device does to the director's slots (issue 14,
//! items 6 and 7): one address cannot take every connection slot, a device
//! that never speaks is dropped after `first_bytes_timeout` (not held for the
//! idle timeout), and a device slow to speak is still answered however short
//! the server's PROXY header deadline is.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tacvs_client::{Client, ClientOptions};
use tacvs_proto::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use super::e2e::{KEY, TCP, account, conf_with, journal, real_server, real_server_with, tmp};

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// How the director ended a connection the device keeps silent: `Some(after)`
/// when it closed within `within`, `None` when it still holds it.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut b = [0u8; 64];
    match tokio::time::timeout(within, s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(t.elapsed()),
        Ok(Ok(n)) => panic!("the director sent {n} bytes to a silent device"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_address_cannot_take_every_slot() {
    let (d1, dd) = (tmp("ps1"), tmp("psd"));
    let s1 = real_server(&d1).await;
    let conf = conf_with(&[s1.local_addrs[0]], &dd, TCP, "max_connections_per_source = 2");
    let dir = tacvs_director::start(conf).await.unwrap();
    let vip = dir.local_addrs[0];
    // Two silent connections from one address are held ...
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from("127.11.0.1", vip).await);
    }
    // ... the third from it is closed at once ...
    let mut third = connect_from("127.11.0.1", vip).await;
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).await.is_some(),
        "a third connection from one address was held"
    );
    // ... while the held ones are still open and other devices are served.
    assert!(closed_within(&mut held[0], Duration::from_millis(50)).await.is_none());
    assert_eq!(account(vip, "127.11.0.2", 1).await.unwrap(), AcctStatus::Success);
    drop(held);
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_speaks_is_dropped_after_the_first_bytes_deadline() {
    let (d1, dd) = (tmp("fb1"), tmp("fbd"));
    let s1 = real_server(&d1).await;
    let conf = conf_with(
        &[s1.local_addrs[0]],
        &dd,
        TCP,
        "first_bytes_timeout = \"300ms\"\nidle_timeout = \"10m\"",
    );
    let dir = tacvs_director::start(conf).await.unwrap();
    let vip = dir.local_addrs[0];
    let mut silent = connect_from("127.12.0.1", vip).await;
    let after = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent device was held past the first-bytes deadline");
    assert!(after >= Duration::from_millis(250), "closed after {after:?}, before the deadline");
    // Its slot is free again, and the real server never saw it.
    let t = Instant::now();
    while dir.status()[0].active != 0 {
        assert!(t.elapsed() < Duration::from_secs(2), "slot still counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        dir.status()[0].reals[0].total,
        0,
        "a connection that sent nothing reached a server"
    );
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_slow_to_speak_is_answered_through_the_vip() {
    let (d1, dd) = (tmp("sl1"), tmp("sld"));
    // The server gives a PROXY header 300 ms; the device waits 700 ms.
    let s1 = real_server_with(&d1, "proxy_header_timeout = \"300ms\"").await;
    let conf = conf_with(&[s1.local_addrs[0]], &dd, TCP, "first_bytes_timeout = \"5s\"");
    let dir = tacvs_director::start(conf).await.unwrap();
    let vip = dir.local_addrs[0];
    let stream = connect_from("127.13.0.1", vip).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let opts = ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::new(vip, Some(Key::new(KEY)))
    };
    let args = vec!["task_id=1".parse().unwrap(), "service=shell".parse().unwrap()];
    let reply = Client::with_stream(opts, stream)
        .account(AcctRequest { flags: AcctFlags::Stop, request: AaaRequest::new("alice", args) })
        .await;
    assert_eq!(reply.map(|r| r.status).unwrap(), AcctStatus::Success);
    let j = journal(&d1);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["device"], "127.13.0.1", "the server saw the device's own address");
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_connection_cap_refuses_the_next_device_until_one_leaves() {
    let (d1, dd) = (tmp("sc1"), tmp("scd"));
    let s1 = real_server(&d1).await;
    let conf = conf_with(&[s1.local_addrs[0]], &dd, TCP, "max_connections = 2");
    let dir = tacvs_director::start(conf).await.unwrap();
    let vip = dir.local_addrs[0];
    let mut a = connect_from("127.14.0.1", vip).await;
    let _b = connect_from("127.14.0.2", vip).await;
    let mut c = connect_from("127.14.0.3", vip).await;
    assert!(
        closed_within(&mut c, Duration::from_secs(2)).await.is_some(),
        "a third device was held past max_connections = 2"
    );
    assert!(closed_within(&mut a, Duration::from_millis(50)).await.is_none(), "a held one closed");
    drop(a);
    // The freed slot serves the next device (the director notices the close
    // when it reads: wait for it).
    let t = Instant::now();
    while dir.status()[0].active > 1 {
        assert!(t.elapsed() < Duration::from_secs(2), "the closed device still holds its slot");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(account(vip, "127.14.0.4", 1).await.unwrap(), AcctStatus::Success);
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}
