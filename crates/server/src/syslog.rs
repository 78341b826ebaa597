//! Forward committed accounting records to syslog (RFC 5424), over UDP, TCP
//! (RFC 6587 octet counting) or a unix datagram socket. Fed by the journal
//! after each fsync, so syslog never sees a record the journal does not hold.
//! When the collector is slow or down, records are dropped and counted
//! (`tacvs_syslog_dropped_total`); the journal stays the record of truth.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram};
use tokio::sync::mpsc;

/// Where to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `udp://IP:PORT`.
    Udp(SocketAddr),
    /// `tcp://IP:PORT`.
    Tcp(SocketAddr),
    /// `unix:///path` (datagram, like /dev/log).
    Unix(PathBuf),
}

impl Target {
    /// Parse a target URL.
    pub fn parse(s: &str) -> Result<Target, String> {
        let bad = || {
            format!("syslog target {s:?}: expected udp://IP:PORT, tcp://IP:PORT or unix:///PATH")
        };
        if let Some(a) = s.strip_prefix("udp://") {
            return a.parse().map(Target::Udp).map_err(|_| bad());
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            return a.parse().map(Target::Tcp).map_err(|_| bad());
        }
        if let Some(p) = s.strip_prefix("unix://") {
            return Ok(Target::Unix(PathBuf::from(p)));
        }
        Err(bad())
    }
}

/// Sink settings.
#[derive(Debug, Clone)]
pub struct SyslogSettings {
    /// Destination.
    pub target: Target,
    /// Facility code (RFC 5424 §6.2.1).
    pub facility: u8,
    /// APP-NAME.
    pub app_name: String,
    /// HOSTNAME field.
    pub hostname: String,
}

/// Format one record as an RFC 5424 message (severity informational).
pub fn format(s: &SyslogSettings, line: &[u8]) -> Vec<u8> {
    let pri = u16::from(s.facility) * 8 + 6;
    let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut m =
        format!("<{pri}>1 {ts} {} {} {} acct - ", s.hostname, s.app_name, std::process::id())
            .into_bytes();
    m.extend_from_slice(body);
    m
}

/// Run the sink until the journal goes away.
pub async fn run(s: SyslogSettings, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut tcp: Option<TcpStream> = None;
    let udp = match &s.target {
        Target::Udp(addr) => {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().expect("literal")
            } else {
                "[::]:0".parse().expect("literal")
            };
            match UdpSocket::bind(bind).await {
                Ok(sock) => sock.connect(addr).await.ok().map(|_| sock),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let unix = match &s.target {
        Target::Unix(_) => UnixDatagram::unbound().ok(),
        _ => None,
    };
    while let Some(line) = rx.recv().await {
        let msg = format(&s, &line);
        let sent = match &s.target {
            Target::Udp(_) => match &udp {
                Some(sock) => sock.send(&msg).await.is_ok(),
                None => false,
            },
            Target::Unix(path) => match &unix {
                Some(sock) => sock.send_to(&msg, path).await.is_ok(),
                None => false,
            },
            Target::Tcp(addr) => {
                if tcp.is_none() {
                    tcp = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
                        .await
                        .ok()
                        .and_then(Result::ok);
                }
                let mut framed = format!("{} ", msg.len()).into_bytes();
                framed.extend_from_slice(&msg);
                match &mut tcp {
                    Some(t) => {
                        let ok = matches!(
                            tokio::time::timeout(Duration::from_secs(2), t.write_all(&framed))
                                .await,
                            Ok(Ok(()))
                        );
                        if !ok {
                            tcp = None;
                        }
                        ok
                    }
                    None => false,
                }
            }
        };
        if sent {
            metrics::counter!("tacvs_syslog_sent_total").increment(1);
        } else {
            metrics::counter!("tacvs_syslog_dropped_total").increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(target: Target) -> SyslogSettings {
        SyslogSettings { target, facility: 22, app_name: "tacvs".into(), hostname: "rs1".into() }
    }

    #[test]
    fn targets_parse_from_urls() {
        assert_eq!(
            Target::parse("udp://127.0.0.1:514"),
            Ok(Target::Udp("127.0.0.1:514".parse().unwrap()))
        );
        assert_eq!(Target::parse("tcp://[::1]:601"), Ok(Target::Tcp("[::1]:601".parse().unwrap())));
        assert_eq!(Target::parse("unix:///dev/log"), Ok(Target::Unix("/dev/log".into())));
        assert!(Target::parse("udp://loghost:514").is_err(), "an address, not a name");
    }

    #[test]
    fn a_record_becomes_an_rfc5424_message() {
        let m = String::from_utf8(format(&settings(Target::Unix("/x".into())), b"{\"a\":1}\n"))
            .unwrap();
        assert!(m.starts_with("<182>1 20"), "local6.info: {m}");
        assert!(m.contains(" rs1 tacvs "), "{m}");
        assert!(m.ends_with("acct - {\"a\":1}"), "{m}");
    }

    #[test]
    fn a_message_holds_no_raw_line_separator_or_control() {
        #[derive(serde::Serialize)]
        struct R {
            user: &'static str,
        }
        let line = crate::journal::to_line(&R { user: "a\u{2028}b\u{85}c\r\nd\u{1b}" });
        let m = String::from_utf8(format(&settings(Target::Unix("/x".into())), &line)).unwrap();
        assert!(!m.chars().any(crate::logfmt::is_unsafe), "{m:?}");
    }

    #[tokio::test]
    async fn records_are_delivered_over_udp() {
        let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(run(settings(Target::Udp(u.local_addr().unwrap())), rx));
        tx.send(b"{\"r\":1}\n".to_vec()).await.unwrap();
        let mut buf = [0u8; 512];
        let n =
            tokio::time::timeout(Duration::from_secs(2), u.recv(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("{\"r\":1}"));
    }

    #[tokio::test]
    async fn records_are_delivered_over_tcp_with_octet_counting() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(run(settings(Target::Tcp(l.local_addr().unwrap())), rx));
        tx.send(b"{\"r\":2}\n".to_vec()).await.unwrap();
        let (mut c, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"}") {
            let mut b = [0u8; 256];
            let n = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::io::AsyncReadExt::read(&mut c, &mut b),
            )
            .await
            .expect("the message within 2 s")
            .unwrap();
            assert!(n > 0, "the sink closed before the whole message: {got:?}");
            got.extend_from_slice(&b[..n]);
        }
        let text = String::from_utf8(got).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "octet counting");
    }
}
