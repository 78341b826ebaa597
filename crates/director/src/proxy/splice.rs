//! A zero-copy relay with `splice(2)`: socket → pipe → socket in the kernel, so
//! bytes never reach user space. Selected per service with `copy = "splice"`;
//! the default copies through a pooled user-space buffer. `docs/benchmarks.md`
//! compares them. Linux only; the FFI is three calls (pipe2, splice, close).

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::service::Traffic;

/// A pipe pair, closed on drop.
struct Pipe {
    r: RawFd,
    w: RawFd,
    /// Bytes sitting in the pipe.
    held: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe { r: fds[0], w: fds[1], held: 0 })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both descriptors are ours and closed exactly once.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

fn splice(from: RawFd, to: RawFd) -> io::Result<usize> {
    // SAFETY: plain descriptors, null offsets (sockets and pipes have none).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            64 * 1024,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Move what `src` has into the pipe, then as much as `dst` takes, counting
/// what left in `moved`. Returns false at end of stream.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &mut Pipe,
    moved: &AtomicU64,
) -> io::Result<bool> {
    if pipe.held == 0 {
        let n = src.try_io(Interest::READABLE, || splice(src.as_raw_fd(), pipe.w))?;
        if n == 0 {
            return Ok(false);
        }
        pipe.held += n;
    }
    while pipe.held > 0 {
        dst.writable().await?;
        match dst.try_io(Interest::WRITABLE, || splice(pipe.r, dst.as_raw_fd())) {
            Ok(n) => {
                pipe.held -= n;
                moved.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Relay both ways like [`super::pool::relay`], through pipes.
pub(crate) async fn relay(
    a: &TcpStream,
    b: &TcpStream,
    idle: Duration,
    traffic: &Traffic,
) -> io::Result<()> {
    let (mut ab, mut ba) = (Pipe::new()?, Pipe::new()?);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        let from_a = tokio::select! {
            r = a.readable(), if a_open => { r?; true }
            r = b.readable(), if b_open => { r?; false }
            _ = tokio::time::sleep(idle) => return Ok(()),
        };
        let (src, dst, pipe, moved) = if from_a {
            (a, b, &mut ab, &traffic.bytes_in)
        } else {
            (b, a, &mut ba, &traffic.bytes_out)
        };
        match pump(src, dst, pipe, moved).await {
            Ok(true) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(false) | Err(_) => {
                if from_a {
                    a_open = false
                } else {
                    b_open = false
                }
                let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
            }
        }
    }
    Ok(())
}
