//! Proxy mode: the device's TCP connection ends at the director, which opens
//! one to a real server and announces the device's address in a PROXY header
//! (v2 by default). Bytes then move both ways until both sides close or the
//! connection idles out.
//!
//! * this module: the accept loop per service and one proxied connection;
//! * [`pool`]: the user-space relay and its buffer pool;
//! * [`splice`]: the zero-copy relay (`copy = "splice"`).
//!
//! Direct routing (`mode = "dr"`) will be a data plane beside this one: the
//! service state, scheduler, checker and control socket are shared.

pub mod pool;
pub mod splice;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::config::{CopyMode, ProxyHeader};
use crate::core::sched::Flow;
use crate::service::ServiceRt;
use pool::{give_buf, read_some, relay, take_buf, write_all};

/// Accept devices for `svc` until the task is aborted; each is counted against
/// the service's connection cap before its task is spawned.
pub(crate) async fn accept_loop(svc: Arc<ServiceRt>, listener: TcpListener) {
    let vip = svc.vip();
    loop {
        let (device, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(service = %svc.conf().name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let slot = match svc.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                // Counted, not logged per connection: a flood must not become a log flood.
                metrics::counter!(
                    "tacvs_director_rejects_total",
                    "service" => svc.conf().name.clone(),
                    "reason" => full.reason()
                )
                .increment(1);
                tracing::debug!(
                    service = %svc.conf().name,
                    device = %peer,
                    reason = full.reason(),
                    "connection refused"
                );
                continue;
            }
        };
        let svc2 = svc.clone();
        tokio::spawn(async move {
            proxy(&svc2, device, peer, vip).await;
            drop(slot);
        });
    }
}

/// The PROXY header announcing `device` → `vip`.
pub fn proxy_header(kind: ProxyHeader, device: SocketAddr, vip: SocketAddr) -> Vec<u8> {
    let (device, vip) = match (device, vip) {
        // Mixed families cannot share a header; map v4 into v6.
        (SocketAddr::V4(d), SocketAddr::V6(_)) => {
            (SocketAddr::new(d.ip().to_ipv6_mapped().into(), d.port()), vip)
        }
        (SocketAddr::V6(_), SocketAddr::V4(v)) => {
            (device, SocketAddr::new(v.ip().to_ipv6_mapped().into(), v.port()))
        }
        pair => pair,
    };
    match kind {
        ProxyHeader::None => Vec::new(),
        ProxyHeader::V1 => {
            let fam = if device.is_ipv4() { "TCP4" } else { "TCP6" };
            format!("PROXY {fam} {} {} {} {}\r\n", device.ip(), vip.ip(), device.port(), vip.port())
                .into_bytes()
        }
        ProxyHeader::V2 => {
            let addrs: ppp::v2::Addresses = (device, vip).into();
            ppp::v2::Builder::with_addresses(
                ppp::v2::Version::Two | ppp::v2::Command::Proxy,
                ppp::v2::Protocol::Stream,
                addrs,
            )
            .build()
            .unwrap_or_default()
        }
    }
}

/// A PROXY v2 LOCAL header (health checks: "this is the director itself").
pub fn proxy_local() -> Vec<u8> {
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Local,
        ppp::v2::Protocol::Unspecified,
        ppp::v2::Addresses::Unspecified,
    )
    .build()
    .unwrap_or_default()
}

/// One device connection. The device speaks first (RFC 8907 §4): its first
/// bytes are awaited under `first_bytes_timeout` *before* a real server is
/// picked and connected, and go out in one segment with the PROXY header. So
/// the server never waits for a header (its own deadline cannot cut a slow
/// device off), and a device that never speaks costs no server connection.
async fn proxy(svc: &ServiceRt, device: TcpStream, peer: SocketAddr, vip: SocketAddr) {
    device.set_nodelay(true).ok();
    let conf = svc.conf();
    let mut first = take_buf();
    first.extend_from_slice(&proxy_header(conf.proxy_protocol, peer, vip));
    let header_len = first.len();
    let waited =
        tokio::time::timeout(conf.first_bytes_timeout.get(), read_some(&device, &mut first));
    match waited.await {
        Ok(Ok(n)) if n > 0 => {}
        outcome => {
            // Nothing to forward: closed, reset, or silent past the deadline.
            if outcome.is_err() {
                metrics::counter!(
                    "tacvs_director_rejects_total",
                    "service" => conf.name.clone(),
                    "reason" => "first_bytes_timeout"
                )
                .increment(1);
                tracing::debug!(
                    service = %conf.name,
                    device = %peer,
                    timeout = %conf.first_bytes_timeout,
                    "device sent nothing in time; closed"
                );
            }
            give_buf(first);
            return;
        }
    }
    debug_assert!(first.len() > header_len);
    let flow = Flow { client: peer, vip };
    let mut tried = Vec::new();
    let mut chosen = None;
    for _ in 0..conf.connect_attempts {
        let Some((addr, traffic)) = svc.pick(flow, &tried) else { break };
        match tokio::time::timeout(conf.connect_timeout.get(), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                svc.connected(addr);
                chosen = Some((Some(addr), traffic, s));
                break;
            }
            // Per-connection detail at debug: a dead server fails many connects
            // before its checks take it out; status and metrics count them.
            Ok(Err(e)) => {
                tracing::debug!(
                    service = %conf.name,
                    server = %addr,
                    error = %e,
                    "connect failed; trying another server"
                )
            }
            Err(_) => {
                tracing::debug!(service = %conf.name, server = %addr, "connect timed out; trying another server")
            }
        }
        svc.connect_failed(addr);
        tried.push(addr);
    }
    drop(tried);
    let (counted, traffic, server) = match chosen {
        Some(c) => c,
        None => {
            let sorry = match conf.sorry_server {
                Some(sorry) => {
                    tokio::time::timeout(conf.connect_timeout.get(), TcpStream::connect(sorry))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .map(|s| (sorry, s))
                }
                None => None,
            };
            match sorry {
                Some((sorry, s)) => {
                    tracing::warn!(service = %conf.name, device = %peer, %sorry, "no real \
                        server available; using the sorry server");
                    (None, Arc::default(), s)
                }
                None => {
                    tracing::warn!(service = %conf.name, device = %peer, "no real server available; closing");
                    metrics::counter!(
                        "tacvs_director_rejects_total",
                        "service" => conf.name.clone(),
                        "reason" => "no_server"
                    )
                    .increment(1);
                    give_buf(first);
                    return;
                }
            }
        }
    };
    server.set_nodelay(true).ok();
    // The PROXY header and the device's first bytes in one segment: the
    // server wakes once, not twice.
    let sent = write_all(&server, &first).await.is_ok();
    if sent {
        traffic.bytes_in.fetch_add((first.len() - header_len) as u64, Ordering::Relaxed);
    }
    // Not kept for the connection's life: idle connections should cost little.
    give_buf(first);
    if sent {
        let idle = conf.idle_timeout.get();
        match conf.copy {
            CopyMode::Userspace => relay(&device, &server, idle, &traffic).await,
            CopyMode::Splice => {
                if let Err(e) = splice::relay(&device, &server, idle, &traffic).await {
                    tracing::debug!(service = %conf.name, error = %e, "splice relay ended");
                }
            }
        }
    }
    if let Some(a) = counted {
        svc.release(a);
    }
}
