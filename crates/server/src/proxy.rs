//! PROXY protocol (v1 text, v2 binary) intake on listeners behind a director or
//! load balancer. A header is believed only from configured trusted peers; the
//! address inside it then stands for the device everywhere (key lookup, policy,
//! limits, logs, accounting).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use ppp::{HeaderResult, PartialResult, v1, v2};
use tacvs_policy::ProxyMode;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// A v2 header with TLVs can be long; nothing legitimate needs more than this.
const MAX_HEADER: usize = 1024;

/// Why a connection was refused at PROXY intake.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProxyError {
    /// A header from a peer that is not a trusted proxy.
    #[error(
        "PROXY header from a peer not in trusted_proxies (add its address there if it is a director)"
    )]
    Untrusted,
    /// The listener requires a header and none came.
    #[error(
        "no PROXY header, but this listener requires one (proxy_protocol = \"required\"): the \
            peer connected directly, not through a director; send devices to the director, or \
            make the listener \"optional\""
    )]
    Missing,
    /// The header does not parse.
    #[error("malformed PROXY header")]
    Malformed,
    /// The peer closed or went quiet before the header was complete.
    #[error("connection closed or timed out before the PROXY header was complete")]
    Incomplete,
}

/// Who is at the other end of a connection, once any PROXY header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// No header: the TCP peer is the device (a plain listener, or a direct
    /// connection on an `optional` one).
    Direct,
    /// A trusted proxy relayed this device's connection.
    Proxied(SocketAddr),
    /// The proxy's own connection: a v2 LOCAL header (a director's health
    /// check, HAProxy's `check-send-proxy`) or v1 `UNKNOWN`.
    Local,
}

/// Read a PROXY header if this listener takes one. Bytes after the header
/// stay in `buf`.
///
/// A peer that is not a trusted proxy is never waited for: on a `required`
/// listener it is refused at once, and on an `optional` one it is the
/// device itself (nothing is read), admitted as on a plain listener (a
/// device group, a slot for its address, `first_packet_timeout`). Waiting
/// for its first bytes here would let any address, in a device group or
/// not, hold connection slots under `max_connections` with silent
/// connections; a header it sends anyway fails as the first packet does.
pub async fn intake<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    mode: ProxyMode,
    trusted: bool,
    wait: Duration,
) -> Result<Intake, ProxyError> {
    match mode {
        ProxyMode::Off => return Ok(Intake::Direct),
        ProxyMode::Required if !trusted => return Err(ProxyError::Untrusted),
        ProxyMode::Optional if !trusted => return Ok(Intake::Direct),
        _ => {}
    }
    let deadline = tokio::time::Instant::now() + wait;
    if buf.is_empty() {
        read_more(stream, buf, deadline).await?;
    }
    // TACACS+ packets start with 0xc0/0xc1; PROXY v2 with "\r\n", v1 with "PROXY".
    if !matches!(buf[0], b'\r' | b'P') {
        return if mode == ProxyMode::Required {
            Err(ProxyError::Missing)
        } else {
            Ok(Intake::Direct)
        };
    }
    loop {
        let parsed = HeaderResult::parse(buf);
        if parsed.is_complete() {
            let (len, addr) = match parsed {
                HeaderResult::V2(Ok(h)) => {
                    let addr = match (h.command, h.addresses) {
                        (v2::Command::Local, _) => None,
                        (_, v2::Addresses::IPv4(a)) => {
                            Some(SocketAddr::from((a.source_address, a.source_port)))
                        }
                        (_, v2::Addresses::IPv6(a)) => {
                            Some(SocketAddr::from((a.source_address, a.source_port)))
                        }
                        _ => return Err(ProxyError::Malformed),
                    };
                    (h.header.len(), addr)
                }
                HeaderResult::V1(Ok(h)) => {
                    let addr = match h.addresses {
                        v1::Addresses::Tcp4(a) => {
                            Some(SocketAddr::from((a.source_address, a.source_port)))
                        }
                        v1::Addresses::Tcp6(a) => {
                            Some(SocketAddr::from((a.source_address, a.source_port)))
                        }
                        v1::Addresses::Unknown => None,
                    };
                    (h.header.len(), addr)
                }
                _ => return Err(ProxyError::Malformed),
            };
            let _ = buf.split_to(len);
            return Ok(addr.map_or(Intake::Local, Intake::Proxied));
        }
        if buf.len() >= MAX_HEADER {
            return Err(ProxyError::Malformed);
        }
        read_more(stream, buf, deadline).await?;
    }
}

async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: tokio::time::Instant,
) -> Result<(), ProxyError> {
    match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        _ => Err(ProxyError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(
        bytes: &[u8],
        mode: ProxyMode,
        trusted: bool,
    ) -> (Result<Intake, ProxyError>, Vec<u8>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        tokio::io::AsyncWriteExt::write_all(&mut a, bytes).await.unwrap();
        drop(a);
        let mut buf = BytesMut::new();
        let r = intake(&mut b, &mut buf, mode, trusted, Duration::from_millis(200)).await;
        (r, buf.to_vec())
    }

    fn v2(src: &str) -> Vec<u8> {
        let src: SocketAddr = src.parse().unwrap();
        let dst: SocketAddr = if src.is_ipv4() {
            "10.0.0.1:49".parse().unwrap()
        } else {
            "[2001:db8::1]:49".parse().unwrap()
        };
        let addrs: v2::Addresses = (src, dst).into();
        v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            addrs,
        )
        .build()
        .unwrap()
    }

    #[tokio::test]
    async fn v2_and_v1_headers_yield_the_device_address() {
        let mut bytes = v2("192.0.2.7:40000");
        bytes.extend_from_slice(&[0xc0, 1, 1]);
        let (r, rest) = run(&bytes, ProxyMode::Required, true).await;
        assert_eq!(r, Ok(Intake::Proxied("192.0.2.7:40000".parse().unwrap())));
        assert_eq!(rest, [0xc0, 1, 1], "TACACS+ bytes after the header are kept");
        let (r, _) = run(&v2("[2001:db8::5]:1234"), ProxyMode::Optional, true).await;
        assert_eq!(r, Ok(Intake::Proxied("[2001:db8::5]:1234".parse().unwrap())));
        let (r, rest) =
            run(b"PROXY TCP4 198.51.100.9 10.0.0.1 5555 49\r\n\xc0", ProxyMode::Required, true)
                .await;
        assert_eq!(r, Ok(Intake::Proxied("198.51.100.9:5555".parse().unwrap())));
        assert_eq!(rest, [0xc0]);
    }

    #[tokio::test]
    async fn a_header_from_an_untrusted_peer_is_never_believed() {
        let (r, _) = run(&v2("192.0.2.7:1"), ProxyMode::Required, false).await;
        assert_eq!(r, Err(ProxyError::Untrusted));
        // On an optional listener the peer is the device: nothing is read (its
        // header then fails as a first packet), and nothing is waited for.
        let (r, read) = run(&v2("192.0.2.7:1"), ProxyMode::Optional, false).await;
        assert_eq!((r, read), (Ok(Intake::Direct), vec![]));
    }

    #[tokio::test]
    async fn an_untrusted_peer_on_an_optional_listener_is_not_waited_for() {
        let (_a, mut b) = tokio::io::duplex(64);
        let mut buf = BytesMut::new();
        let t = tokio::time::Instant::now();
        let r = intake(&mut b, &mut buf, ProxyMode::Optional, false, Duration::from_secs(5)).await;
        assert_eq!(r, Ok(Intake::Direct));
        assert!(t.elapsed() < Duration::from_secs(1), "waited {:?} for a silent peer", t.elapsed());
    }

    #[tokio::test]
    async fn a_required_listener_refuses_a_connection_without_a_header() {
        assert_eq!(
            run(&[0xc0, 1, 1, 0], ProxyMode::Required, true).await.0,
            Err(ProxyError::Missing)
        );
    }

    #[tokio::test]
    async fn an_optional_listener_serves_a_direct_connection() {
        assert_eq!(run(&[0xc0, 1, 1, 0], ProxyMode::Optional, false).await.0, Ok(Intake::Direct));
    }

    #[tokio::test]
    async fn a_malformed_header_is_refused() {
        assert_eq!(
            run(b"PROXY garbage\r\n", ProxyMode::Required, true).await.0,
            Err(ProxyError::Malformed)
        );
    }

    #[tokio::test]
    async fn a_header_cut_short_is_refused() {
        let mut v = v2("192.0.2.7:1");
        v.truncate(20);
        assert_eq!(run(&v, ProxyMode::Required, true).await.0, Err(ProxyError::Incomplete));
    }

    #[tokio::test]
    async fn a_listener_without_proxy_reads_nothing() {
        assert_eq!(run(&[0xc0], ProxyMode::Off, false).await.0, Ok(Intake::Direct));
    }

    #[tokio::test]
    async fn a_local_header_is_the_proxys_own_connection() {
        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(run(&local, ProxyMode::Required, true).await.0, Ok(Intake::Local));
        let (r, rest) = run(b"PROXY UNKNOWN\r\n\xc0", ProxyMode::Required, true).await;
        assert_eq!((r, rest), (Ok(Intake::Local), vec![0xc0]));
    }
}
