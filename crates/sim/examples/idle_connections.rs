//! Benchmark helper: open N single-connect connections (one authorization each,
//! so single-connect mode is negotiated), from distinct 127.x source addresses,
//! then hold them idle so the server's memory per idle connection can be read.
//!
//! cargo run --release -p tacvs-sim --example idle_connections -- 127.0.0.1:4949 tacvs-demo-key 15000 30
//!
//! Over TLS (RFC 9887), add the CA, a client certificate and its key:
//! `... 127.0.0.1:4950 unused 15000 30 pki/ca.pem pki/rtr1.pem pki/rtr1.key`

use std::time::Duration;

use tacvs_client::{Client, ClientOptions};
use tacvs_proto::{AaaRequest, Key};

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let target = a.get(1).map_or("127.0.0.1:4949", |s| s.as_str()).parse().expect("target IP:PORT");
    let key = Key::new(a.get(2).map_or("tacvs-demo-key", |s| s.as_str()));
    let n: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(15_000);
    let hold: u64 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(30);
    let tls = match (a.get(5), a.get(6), a.get(7)) {
        (Some(ca), Some(cert), Some(key)) => {
            let roots = tacvs_tls::client::roots(ca.as_ref()).expect("CA file");
            let id = tacvs_tls::client::identity(cert.as_ref(), key.as_ref())
                .expect("certificate and key");
            let target: std::net::SocketAddr = target;
            Some(tacvs_client::ClientTls {
                config: tacvs_tls::client::config(roots, Some(id)).expect("client configuration"),
                server_name: tacvs_tls::client::server_name(None, target.ip()).expect("address"),
            })
        }
        _ => None,
    };
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let src = format!("127.2.{}.{}", i / 250, i % 250 + 1).parse().expect("address");
        let mut c = Client::new(ClientOptions {
            single_connect: true,
            source: Some(src),
            ..ClientOptions::new(target, Some(key.clone()))
        });
        if let Some(t) = &tls {
            c = c.with_tls(t.clone());
        }
        let req = AaaRequest::new("alice", vec!["service=shell".parse().expect("static")]);
        if let Err(e) = c.authorize(req).await {
            eprintln!("connection {i}: {e}");
            break;
        }
        clients.push(c);
    }
    println!(
        "{} idle single-connect connections open{}; holding {hold}s",
        clients.len(),
        if tls.is_some() { " over TLS" } else { "" }
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
}
