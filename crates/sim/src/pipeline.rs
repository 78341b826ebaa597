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
use tacvs_proto::{AuthenStatus, ClientConfig, ClientConnection, ClientEvent, ClientSessionError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let script = profile.script();
    let (mut pos, mut task) = (0usize, 0u64);
    let mut next_sid: u32 = (dev as u32).wrapping_mul(0x9e37_79b9) | 1;
    let src = crate::nth_address(sh.cfg.source, dev as u128).expect("checked by run");
    // Whether the current connection has had an answer: its later requests
    // count as on a kept connection.
    let established = std::sync::atomic::AtomicBool::new(false);
    let send = |kind: Kind, start: Instant, outcome: Outcome| {
        let done = Instant::now();
        let kept = established.load(std::sync::atomic::Ordering::Relaxed);
        if !matches!(outcome, Outcome::Error(_)) {
            established.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = sh.tx.send(Sample {
            kind,
            done,
            latency_us: (done - start).as_micros() as u64,
            outcome,
            ack: None,
            kept,
        });
    };
    'reconnect: while Instant::now() < end {
        established.store(false, std::sync::atomic::Ordering::Relaxed);
        let socket = match if src.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() } {
            Ok(s) => s,
            Err(_) => return,
        };
        let _ = socket.bind(std::net::SocketAddr::new(src, 0));
        let t0 = Instant::now();
        let mut stream =
            match tokio::time::timeout(sh.cfg.timeout, socket.connect(sh.cfg.target)).await {
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
        let mut m = ClientConnection::new(
            ClientConfig { single_connect: true, ..Default::default() },
            Some(sh.cfg.key.clone()),
        );
        let mut inflight: HashMap<u32, (Kind, Instant)> = HashMap::new();
        let mut rbuf = BytesMut::with_capacity(16 * 1024);
        let mut wbuf = Vec::with_capacity(16 * 1024);
        loop {
            let now = Instant::now();
            while inflight.len() < depth && m.can_start_session() && now < end {
                let op = &script[pos % script.len()];
                if matches!(op, Op::Login) {
                    task += 1;
                }
                pos += 1;
                next_sid = next_sid.wrapping_add(2);
                let sid = next_sid;
                let (kind, r) = match build(&profile, op, dev, task) {
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
                    continue 'reconnect;
                }
            }
            if inflight.is_empty() {
                if Instant::now() >= end {
                    return;
                }
                if !m.can_start_session() {
                    continue 'reconnect; // the server declined single-connect
                }
                continue;
            }
            let failure =
                match tokio::time::timeout(sh.cfg.timeout, stream.read_buf(&mut rbuf)).await {
                    Ok(Ok(0)) => Some("closed"),
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(io_kind(&e)),
                    Err(_) => Some("read_timeout"),
                };
            if let Some(kind) = failure {
                for (_, (k, s)) in inflight.drain() {
                    send(k, s, Outcome::Error(kind));
                }
                continue 'reconnect;
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
                        continue 'reconnect;
                    }
                }
            }
            if m.is_failed() {
                continue 'reconnect;
            }
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
