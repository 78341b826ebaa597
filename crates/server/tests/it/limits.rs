//! Limits and deadlines: what a silent, dripping or crowding peer can hold.

use std::time::Duration;

use tacvs_client::{Client, ClientOptions};
use tacvs_proto::{AuthenService, AuthenStatus, AuthenType, AuthorStatus, ClientEvent};
use tokio::io::AsyncWriteExt;

use crate::flows::{PROXY_LISTENER, proxy_header};
use crate::support::*;

fn limits(lines: &str) -> Conf {
    Conf { limits: lines.into(), ..Conf::default() }
}

const LONG: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_first_packet_timeout() {
    let h = start("silent", limits("first_packet_timeout = \"300ms\"")).await;
    // The kernel holds it until the accept deferral (1 s) ends, then the
    // server's first_packet_timeout runs.
    let mut s = connect_from(h.addr(), None).await;
    let took = closed_within(&mut s, LONG).await.expect("closed well before idle_timeout (5 s)");
    assert!(took >= Duration::from_millis(1100), "not before deferral + deadline: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_inside_its_first_header_is_closed_at_the_timeout() {
    let h = start("stalled", limits("first_packet_timeout = \"300ms\"")).await;
    let mut s = connect_and_stall(h.addr(), None, &[0xc1]).await;
    let took = closed_within(&mut s, LONG).await.expect("closed well before idle_timeout (5 s)");
    assert!(took >= Duration::from_millis(250), "not before the deadline: {took:?}");
    assert!(
        took < Duration::from_millis(1200),
        "from its first byte, not after a deferral: {took:?}"
    );
}

/// Write `bytes` one at a time, `gap` apart, until the server closes.
async fn drip(mut w: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, gap: Duration) {
    for b in bytes {
        if w.write_all(&[b]).await.is_err() {
            return;
        }
        tokio::time::sleep(gap).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_packet_dripped_byte_by_byte_does_not_hold_the_connection() {
    let h = start("drip-first", limits("first_packet_timeout = \"500ms\"")).await;
    let mut p = Pipe::open(h.addr(), None).await;
    let packet = p.authorization_bytes();
    // A fresh connection that drips a whole packet over ~4 s (100 ms a byte).
    let s = connect_from(h.addr(), None).await;
    let (mut r, w) = s.into_split();
    let dripping = tokio::spawn(drip(w, packet, Duration::from_millis(100)));
    let t = tokio::time::Instant::now();
    let mut sink = [0u8; 64];
    let n = tokio::time::timeout(LONG, tokio::io::AsyncReadExt::read(&mut r, &mut sink)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed, unanswered: {n:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    dripping.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_packet_dripped_byte_by_byte_is_cut_at_the_packet_timeout() {
    let h = start("drip-later", limits("packet_timeout = \"500ms\"")).await;
    let mut p = Pipe::open(h.addr(), None).await;
    let packet = p.authorization_bytes();
    let Pipe { stream, .. } = p;
    let (mut r, w) = stream.into_split();
    let dripping = tokio::spawn(drip(w, packet, Duration::from_millis(100)));
    let t = tokio::time::Instant::now();
    let mut sink = [0u8; 64];
    let n = tokio::time::timeout(LONG, tokio::io::AsyncReadExt::read(&mut r, &mut sink)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed, unanswered: {n:?}");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "read_timeout is 2 s and the drip 4 s: {took:?}");
    dripping.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_single_connect_connection_is_closed_after_idle_timeout() {
    let h = start("idle", limits("idle_timeout = \"400ms\"")).await;
    let Pipe { mut stream, .. } = Pipe::open(h.addr(), None).await;
    let took = closed_within(&mut stream, LONG).await.expect("closed");
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_prompt_is_closed_after_read_timeout() {
    let h = start("read-timeout", limits("read_timeout = \"400ms\"\nidle_timeout = \"1h\"")).await;
    let mut p = Pipe::open(h.addr(), None).await;
    p.start(start_pkt(AuthenType::Ascii, AuthenService::Login, "", vec![]));
    p.flush().await;
    let ev = p.events(1).await;
    assert!(
        matches!(&ev[0], ClientEvent::AuthenReply { reply, .. } if reply.status == AuthenStatus::GetUser),
        "{ev:?}"
    );
    let took = closed_within(&mut p.stream, LONG).await.expect("closed");
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_the_next_connection() {
    let h = start("max-conns", limits("max_connections = 2")).await;
    let _a = Pipe::open(h.addr(), None).await;
    let _b = Pipe::open(h.addr(), None).await;
    let mut c = connect_and_stall(h.addr(), None, &[0xc1]).await;
    assert!(closed_within(&mut c, Duration::from_secs(2)).await.is_some(), "third refused");
    drop(_a);
    let freed = eventually(LONG, || async {
        h.client()
            .authorize(cmd("bob", "show"))
            .await
            .is_ok_and(|r| r.status == AuthorStatus::PassAdd)
    })
    .await;
    assert!(freed, "a slot frees when a connection ends");
}

/// An `optional` PROXY listener does not wait for the first bytes of a peer
/// that is not a trusted proxy: such a peer is the device, admitted as on a
/// plain listener. Waiting let any address, in no device group, hold every
/// slot under max_connections with silent connections (found by an
/// adversarial review; failed before the fix: the device was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peers_outside_the_device_groups_hold_no_slot_on_an_optional_proxy_listener() {
    let optional = "[[server.listen]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = \"optional\"\n\
        trusted_proxies = [\"127.0.0.1/32\"]\n";
    let conf = Conf {
        listeners: optional.into(),
        limits:
            "max_connections = 2\nproxy_header_timeout = \"10s\"\nfirst_packet_timeout = \"10s\""
                .into(),
        ..Conf::default()
    };
    let h = start("optional-silent", conf).await;
    let paddr = h.server.local_addrs[1];
    // 127.200.0.1: no trusted proxy, and outside the device group (127.0.0.0/9).
    let stranger = Some("127.200.0.1".parse().unwrap());
    let _held = [connect_from(paddr, stranger).await, connect_from(paddr, stranger).await];
    // The kernel hands silent connections over when the accept deferral (1 s) ends.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = tokio::time::timeout(LONG, h.client().authorize(cmd("bob", "show"))).await;
    assert!(
        matches!(r, Ok(Ok(ref r)) if r.status == AuthorStatus::PassAdd),
        "a device was refused while two silent strangers waited: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_per_source_counts_each_device() {
    let h = start("per-source", limits("max_connections_per_source = 2")).await;
    let _a = Pipe::open(h.addr(), None).await;
    let _b = Pipe::open(h.addr(), None).await;
    let mut c = connect_and_stall(h.addr(), None, &[0xc1]).await;
    assert!(closed_within(&mut c, Duration::from_secs(2)).await.is_some(), "third refused");
    let mut other =
        Client::new(ClientOptions { source: Some("127.0.0.7".parse().unwrap()), ..h.opts() });
    assert_eq!(other.authorize(cmd("bob", "show")).await.unwrap().status, AuthorStatus::PassAdd);
}

/// A connection through the trusted director (127.0.0.1) for device `src`,
/// single-connect, negotiated; None when the server closes it.
async fn via_director(paddr: std::net::SocketAddr, src: &str) -> Option<Pipe> {
    let stream = connect_from(paddr, None).await;
    Pipe::try_open_with(stream, proxy_header(src, paddr)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_limits_apply_to_the_device_behind_a_director() {
    let conf = Conf {
        listeners: PROXY_LISTENER.into(),
        limits: "max_connections_per_source = 2".into(),
        ..Conf::default()
    };
    let h = start("per-source-proxy", conf).await;
    let paddr = h.server.local_addrs[1];
    let _a = via_director(paddr, "127.44.0.9:1000").await.expect("first");
    let _b = via_director(paddr, "127.44.0.9:1001").await.expect("second");
    assert!(via_director(paddr, "127.44.0.9:1002").await.is_none(), "third from that device");
    assert!(
        via_director(paddr, "127.44.0.10:1000").await.is_some(),
        "another device, same director"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_mapped_device_address_counts_as_the_ipv4_one() {
    let conf = Conf {
        listeners: PROXY_LISTENER.into(),
        limits: "max_connections_per_source = 2".into(),
        ..Conf::default()
    };
    let h = start("mapped", conf).await;
    let paddr = h.server.local_addrs[1];
    let _a = via_director(paddr, "127.44.0.9:1000").await.expect("plain IPv4");
    let _b = via_director(paddr, "[::ffff:127.44.0.9]:1001").await.expect("mapped");
    assert!(via_director(paddr, "[::ffff:127.44.0.9]:1002").await.is_none(), "the same device");
    assert!(via_director(paddr, "127.44.0.9:1003").await.is_none(), "the same device");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_listener_waits_proxy_header_timeout_for_the_header() {
    let conf = Conf {
        listeners: PROXY_LISTENER.into(),
        limits: "proxy_header_timeout = \"300ms\"".into(),
        ..Conf::default()
    };
    let h = start("proxy-timeout", conf).await;
    // The first bytes of the PROXY v2 signature, then nothing.
    let mut s = connect_and_stall(h.server.local_addrs[1], None, b"\r\n\r\n").await;
    let took = closed_within(&mut s, LONG).await.expect("closed before first_packet_timeout");
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_millis(1200), "{took:?}");
}
