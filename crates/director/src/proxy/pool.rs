//! The user-space relay. Buffers exist only while bytes move, and come from a
//! per-thread pool: thousands of idle single-connect devices hold none, and
//! the heap does not fragment into per-connection holes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::service::Traffic;

thread_local! {
    /// Relay buffers, reused: only connections moving bytes hold one, and the
    /// heap does not fragment into per-connection holes.
    static POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn take_buf() -> Vec<u8> {
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(8192))
}

pub(crate) fn give_buf(mut b: Vec<u8>) {
    b.clear();
    if b.capacity() <= 64 * 1024 {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < 256 {
                p.push(b);
            }
        });
    }
}

/// Read what is available (at least one byte, or 0 at end of stream) onto `buf`.
pub(crate) async fn read_some(s: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        s.readable().await?;
        buf.reserve(4096);
        match s.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) async fn write_all(s: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copy both ways between the device `a` and the server `b` until both sides
/// have closed (a half-close is passed on) or nothing moved for `idle`,
/// counting the bytes in `traffic`. Buffers exist only while bytes move: an
/// idle proxied connection holds none (thousands of idle single-connect
/// devices).
pub(crate) async fn relay(a: &TcpStream, b: &TcpStream, idle: Duration, traffic: &Traffic) {
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        let from_a = tokio::select! {
            r = a.readable(), if a_open => { if r.is_err() { return } true }
            r = b.readable(), if b_open => { if r.is_err() { return } false }
            _ = tokio::time::sleep(idle) => return,
        };
        let (src, dst) = if from_a { (a, b) } else { (b, a) };
        let mut buf = take_buf();
        match src.try_read_buf(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => give_buf(buf),
            Ok(0) | Err(_) => {
                give_buf(buf);
                if from_a {
                    a_open = false
                } else {
                    b_open = false
                }
                let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
            }
            Ok(n) => {
                let ok = write_all(dst, &buf).await.is_ok();
                give_buf(buf);
                if !ok {
                    return;
                }
                let count = if from_a { &traffic.bytes_in } else { &traffic.bytes_out };
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}
