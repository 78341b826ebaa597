//! tacvs-client over real loopback TCP: every flow, and each failure kind.

use std::net::SocketAddr;
use std::time::Duration;

use tacvs_client::selfcheck::{self, spawn_responder};
use tacvs_client::{Client, ClientOptions};
use tacvs_proto::{AaaRequest, Key};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const KEY: &str = "client-test-key";

fn opts(addr: SocketAddr) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(500),
        ..ClientOptions::new(addr, Some(Key::new(KEY)))
    }
}

#[tokio::test]
async fn every_flow_against_the_responder() {
    let r = spawn_responder("127.0.0.1:0".parse().unwrap(), Key::new(KEY)).await.unwrap();
    let checks = selfcheck::run(r.addr, Key::new(KEY)).await;
    assert!(checks.len() >= 13);
    for c in &checks {
        assert!(c.ok(), "{}: got {:?}, want {:?}", c.name, c.got, c.want);
    }
}

#[tokio::test]
async fn refused_port_is_classified() {
    // Bound, not listening: refused, and the port stays ours meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = held.local_addr().unwrap();
    let e = Client::new(opts(addr)).authorize(AaaRequest::new("u", vec![])).await.unwrap_err();
    assert_eq!(e.kind(), "connect_refused", "{e}");
}

#[tokio::test]
async fn silent_server_times_out_and_closing_server_is_closed() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let e = Client::new(opts(addr)).authorize(AaaRequest::new("u", vec![])).await.unwrap_err();
    assert_eq!(e.kind(), "read_timeout", "{e}");
    hold.abort();

    let closer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closer.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = closer.accept().await {
            let mut b = [0u8; 64];
            let _ = s.read(&mut b).await;
        }
    });
    let e = Client::new(opts(addr)).authorize(AaaRequest::new("u", vec![])).await.unwrap_err();
    assert_eq!(e.kind(), "closed", "{e}");
}

#[tokio::test]
async fn binds_the_requested_source_address() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let peer = tokio::spawn(async move { l.accept().await.unwrap().1 });
    let o = ClientOptions { source: Some("127.9.8.7".parse().unwrap()), ..opts(addr) };
    let _ = Client::new(o).authorize(AaaRequest::new("u", vec![])).await;
    assert_eq!(peer.await.unwrap().ip().to_string(), "127.9.8.7");
}

#[tokio::test]
async fn a_server_that_speaks_another_protocol_is_named() {
    for (reply, what) in [
        (&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..], "HTTP"),
        (&b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"[..], "SSH"),
    ] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            s.write_all(reply).await.unwrap();
            // Keep the connection open: the client must not need a close to know.
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let e = Client::new(opts(addr)).authorize(AaaRequest::new("u", vec![])).await.unwrap_err();
        assert!(
            matches!(e, tacvs_client::ClientError::NotTacacs { what: w, .. } if w == what),
            "{e}"
        );
        assert!(e.to_string().contains("does not speak TACACS+"), "{e}");
        assert_eq!(e.kind(), "protocol_error");
        server.abort();
    }
}
