//! The fast path for closed-loop single-connect load: one task per device
//! connection drives the client state machine directly and keeps `depth`
//! sessions in flight on it (RFC 8907 §4.3 lets sessions interleave), so one
//! write and one read carry many requests. This is how a busy device (or a
//! director's health checker) multiplexes, and it is what lets one simulator
//! core load a server core to saturation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tacvs_client::Handshake;
use tacvs_proto::{AuthenStatus, ClientConfig, ClientConnection, ClientEvent, ClientSessionError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::Instant;

use crate::collect::{Kind, Outcome, Sample};
use crate::engine::{Shared, drain};
use crate::profile::Op;
use crate::request::{Built, acct_result, authen_result, author_result, build};

/// Drive one connection for each of the first `n` devices until `end`.
pub(crate) async fn drive(shared: &Arc<Shared>, n: usize, end: Instant) {
    // One connection per device, each with `pipeline` sessions in flight.
    let mut handles = Vec::new();
    for dev in 0..n.min(shared.cfg.devices) {
        handles.push(tokio::spawn(connection(
            shared.clone(),
            dev,
            shared.cfg.pipeline.max(1),
            end,
        )));
    }
    tokio::time::sleep_until(end).await;
    drain(shared, handles, shared.cfg.timeout).await;
}

fn io_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect_refused",
        std::io::ErrorKind::ConnectionReset => "reset",
        _ => "io_error",
    }
}

/// Drive device `dev` until `end`.
pub(crate) async fn connection(sh: Arc<Shared>, dev: usize, depth: usize, end: Instant) {
    let Ok(_permit) = sh.sockets.clone().acquire_owned().await else {
        return;
    };
    let profile = sh.cfg.profile.for_device(dev).clone();
    let mut state = Script {
        ops: profile.script(),
        profile,
        pos: 0,
        task: 0,
        next_sid: (dev as u32).wrapping_mul(0x9e37_79b9) | 1,
    };
    let src = crate::nth_address(sh.cfg.source, dev as u128).expect("checked by run");
    let send =
        |kind: Kind, start: Instant, outcome: Outcome| report(&sh, kind, start, outcome, false);
    while Instant::now() < end {
        let socket = match if src.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() } {
            Ok(s) => s,
            Err(_) => return,
        };
        let _ = socket.bind(std::net::SocketAddr::new(src, 0));
        let t0 = Instant::now();
        let stream = match tokio::time::timeout(sh.cfg.timeout, socket.connect(sh.cfg.target)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                send(Kind::Author, t0, Outcome::Error(io_kind(&e)));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => {
                send(Kind::Author, t0, Outcome::Error("connect_timeout"));
                continue;
            }
        };
        stream.set_nodelay(true).ok();
        let next = match &sh.tls {
            None => sessions(&sh, dev, depth, end, stream, &mut state).await,
            Some(t) => {
                let c = t.client(dev);
                let t0 = std::time::Instant::now();
                let connector = tokio_rustls::TlsConnector::from(c.config);
                match tokio::time::timeout(sh.cfg.timeout, connector.connect(c.server_name, stream))
                    .await
                {
                    Ok(Ok(s)) => {
                        let resumed = s.get_ref().1.handshake_kind()
                            == Some(tacvs_tls::rustls::HandshakeKind::Resumed);
                        sh.handshake(Ok(Handshake { resumed, took: t0.elapsed() }));
                        sessions(&sh, dev, depth, end, s, &mut state).await
                    }
                    _ => {
                        sh.handshake(Err(()));
                        send(Kind::Author, Instant::now(), Outcome::Error("tls_handshake"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Next::Reconnect
                    }
                }
            }
        };
        if matches!(next, Next::Done) {
            return;
        }
    }
}

/// Where a device is in its script, across reconnections.
struct Script {
    profile: crate::profile::Profile,
    ops: Vec<Op>,
    pos: usize,
    task: u64,
    next_sid: u32,
}

enum Next {
    Reconnect,
    Done,
}

/// Send one request's sample; `kept`: it went on a connection that had
/// already been answered (what a failover does to established sessions).
fn report(sh: &Shared, kind: Kind, start: Instant, outcome: Outcome, kept: bool) {
    let done = Instant::now();
    let _ = sh.tx.send(Sample {
        kind,
        done,
        latency_us: (done - start).as_micros() as u64,
        outcome,
        ack: None,
        kept,
    });
}

/// Run sessions on one connection (plain or TLS) until it fails or `end`.
async fn sessions<S: AsyncRead + AsyncWrite + Unpin>(
    sh: &Shared,
    dev: usize,
    depth: usize,
    end: Instant,
    mut stream: S,
    st: &mut Script,
) -> Next {
    // Whether this connection has had an answer: its later requests count
    // as on a kept connection.
    let established = std::sync::atomic::AtomicBool::new(false);
    let send = |kind: Kind, start: Instant, outcome: Outcome| {
        let kept = established.load(std::sync::atomic::Ordering::Relaxed);
        if !matches!(outcome, Outcome::Error(_)) {
            established.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        report(sh, kind, start, outcome, kept)
    };
    let profile = &st.profile;
    let script = &st.ops;
    let (pos, task, next_sid) = (&mut st.pos, &mut st.task, &mut st.next_sid);
    let mut m = ClientConnection::new(
        ClientConfig { single_connect: true, tls: sh.tls.is_some(), ..Default::default() },
        Some(sh.cfg.key.clone()),
    );
    let mut inflight: HashMap<u32, (Kind, Instant)> = HashMap::new();
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = Vec::with_capacity(16 * 1024);
    loop {
        let now = Instant::now();
        while inflight.len() < depth && m.can_start_session() && now < end {
            let op = &script[*pos % script.len()];
            if matches!(op, Op::Login) {
                *task += 1;
            }
            *pos += 1;
            *next_sid = next_sid.wrapping_add(2);
            let sid = *next_sid;
            let (kind, r) = match build(profile, op, dev, *task) {
                Built::Authen(s) => (Kind::Authen, m.start_authen(sid, s)),
                Built::Author(r) => (Kind::Author, m.authorize(sid, r)),
                Built::Acct(r) => (Kind::Acct, m.account(sid, r)),
            };
            if r.is_err() {
                send(kind, now, Outcome::Error("local_error"));
                continue;
            }
            inflight.insert(sid, (kind, now));
            if inflight.len() == 1 && m.single_connect().is_none() {
                break; // the first reply settles single-connect mode
            }
        }
        if m.has_output() {
            wbuf.clear();
            m.poll_transmit(&mut wbuf);
            if let Err(e) = stream.write_all(&wbuf).await {
                for (_, (k, s)) in inflight.drain() {
                    send(k, s, Outcome::Error(io_kind(&e)));
                }
                return Next::Reconnect;
            }
        }
        if inflight.is_empty() {
            if Instant::now() >= end {
                return Next::Done;
            }
            if !m.can_start_session() {
                return Next::Reconnect; // the server declined single-connect
            }
            continue;
        }
        let failure = match tokio::time::timeout(sh.cfg.timeout, stream.read_buf(&mut rbuf)).await {
            Ok(Ok(0)) => Some("closed"),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(io_kind(&e)),
            Err(_) => Some("read_timeout"),
        };
        if let Some(kind) = failure {
            for (_, (k, s)) in inflight.drain() {
                send(k, s, Outcome::Error(kind));
            }
            return Next::Reconnect;
        }
        m.handle_input(&mut rbuf);
        while let Some(ev) = m.poll_event() {
            match ev {
                ClientEvent::AuthenReply { session_id, reply }
                    if reply.status.expects_continue() =>
                {
                    let answer = if reply.status == AuthenStatus::GetUser {
                        &profile.user
                    } else {
                        &profile.password
                    };
                    let _ = m.continue_authen(session_id, Bytes::from(answer.clone()));
                }
                ClientEvent::AuthenReply { session_id, reply } => {
                    if let Some((k, s)) = inflight.remove(&session_id) {
                        send(k, s, outcome(authen_result(reply.status)));
                    }
                }
                ClientEvent::AuthorResponse { session_id, response } => {
                    if let Some((k, s)) = inflight.remove(&session_id) {
                        send(k, s, outcome(author_result(response.status)));
                    }
                }
                ClientEvent::AcctReply { session_id, reply } => {
                    if let Some((k, s)) = inflight.remove(&session_id) {
                        send(k, s, outcome(acct_result(reply.status)));
                    }
                }
                ClientEvent::SessionFailed { session_id, error } => {
                    let kind = match error {
                        ClientSessionError::WrongKey(_) | ClientSessionError::EmptyReply => {
                            "wrong_key"
                        }
                        _ => "protocol_error",
                    };
                    if let Some((k, s)) = inflight.remove(&session_id) {
                        send(k, s, Outcome::Error(kind));
                    }
                }
                ClientEvent::ConnectionFailed(_) => {
                    for (_, (k, s)) in inflight.drain() {
                        send(k, s, Outcome::Error("protocol_error"));
                    }
                    return Next::Reconnect;
                }
            }
        }
        if m.is_failed() {
            return Next::Reconnect;
        }
    }
}

fn outcome(r: Result<bool, &'static str>) -> Outcome {
    match r {
        Ok(true) => Outcome::Ok,
        Ok(false) => Outcome::Fail,
        Err(e) => Outcome::Error(e),
    }
}
