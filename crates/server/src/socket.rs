//! Listening and accepted TCP sockets that join the runtime's poller only
//! when they have to wait.
//!
//! A device without single-connect opens a connection per request. Served
//! the usual way, such a connection costs the server seven system calls:
//! `accept4`, `setsockopt(TCP_NODELAY)`, `epoll_ctl(ADD)`, a read, a write,
//! `epoll_ctl(DEL)` and `close`. Three of them are gone here:
//!
//! - [`bind`] sets `TCP_NODELAY` on the listening socket, and Linux copies it
//!   to every socket accepted from it (a test below checks that it does).
//! - [`bind`] sets `TCP_DEFER_ACCEPT` ([`DEFER_ACCEPT_SECS`]): the kernel
//!   hands a connection over once its first bytes have arrived, so the
//!   first read finds the request already there. Every TACACS+ client speaks
//!   first (so do TLS and a PROXY-protocol director), so nothing waits on
//!   it. A connection that stays silent is handed over when the deferral
//!   ends (tcp(7): the kernel then completes it on the device's next ACK),
//!   and `first_packet_timeout` applies from there, as before. Until then
//!   it costs a request socket in the kernel's queue, not a descriptor, a
//!   task or a slot under `max_connections`.
//! - [`Socket`] reads and writes the descriptor directly (non-blocking from
//!   `accept4`) and registers it with epoll only the first time a read or
//!   a write would block; from then on it is a [`tokio::net::TcpStream`]. A
//!   connection answered at once is closed without ever having been
//!   registered.
//!
//! No readiness is lost by registering late: the runtime registers
//! edge-triggered, and epoll reports a descriptor's state at the time it is
//! added (epoll(7)), so bytes that arrived before the registration wake the
//! task that waits for them.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// How long the kernel holds a connection that has sent nothing before
/// handing it over: one SYN-ACK retransmission (the kernel counts the
/// deferral in retransmissions, the first after 1 s). A device sends its
/// first packet within a round trip of connecting.
pub(crate) const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// A listening socket: non-blocking, `SO_REUSEADDR`, `TCP_NODELAY` for the
/// connections it accepts, `TCP_DEFER_ACCEPT` (module doc), a backlog of
/// 4096, registered with the runtime (so a reload that cannot register a new
/// address fails before it changes anything).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<Listening> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    defer_accept(&socket, DEFER_ACCEPT_SECS)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Listening::new(socket.into())
}

/// `setsockopt(TCP_DEFER_ACCEPT)`: no safe wrapper exists (socket2 and nix
/// offer it for FreeBSD's accept filters only).
fn defer_accept(socket: &socket2::Socket, secs: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open (borrowed from `socket`), and the value
    // is a `c_int` whose address and size are passed together.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A listening socket registered with the runtime, whose accepted sockets
/// are not ([`Socket`]).
pub(crate) struct Listening(AsyncFd<mio::net::TcpListener>);

impl Listening {
    /// Register `l`, non-blocking, with the runtime.
    fn new(l: std::net::TcpListener) -> io::Result<Self> {
        let l = mio::net::TcpListener::from_std(l);
        // SAFETY: the listener owns its descriptor and the `AsyncFd` owns the
        // listener, so the descriptor stays open and the same for the
        // registration's whole life (the condition `register_with_interest`
        // states).
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) };
        registered.map(Listening).map_err(|e| e.into_parts().1)
    }

    /// The address bound.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// The next connection (`accept4` with `SOCK_NONBLOCK`).
    pub(crate) async fn accept(&self) -> io::Result<(Socket, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            if let Ok(r) = ready.try_io(|l| l.get_ref().accept()) {
                return r.map(|(s, peer)| (Socket::accepted(OwnedFd::from(s).into()), peer));
            }
        }
    }
}

/// An accepted TCP connection: used directly until an operation would
/// block, registered with the runtime from then on (module doc).
pub(crate) struct Socket {
    state: State,
}

enum State {
    /// Not registered; the descriptor is non-blocking. `fresh`: nothing
    /// waited for yet, so the first [`Socket::readable`] returns at once.
    Direct {
        s: std::net::TcpStream,
        fresh: bool,
    },
    Polled(TcpStream),
    /// Registration failed; the descriptor is closed.
    Lost,
}

impl Socket {
    /// A socket `accept4` returned, non-blocking.
    pub(crate) fn accepted(s: std::net::TcpStream) -> Self {
        Socket { state: State::Direct { s, fresh: true } }
    }

    /// Whether it has joined the runtime's poller (tests).
    #[cfg(test)]
    fn registered(&self) -> bool {
        matches!(self.state, State::Polled(_))
    }

    /// Wait until a read would make progress. The first call returns at
    /// once: the kernel hands a connection over with its first bytes
    /// ([`DEFER_ACCEPT_SECS`]), and if a silent one has none, the read that
    /// follows registers and waits. Later calls register, so an idle
    /// connection waits without a read buffer.
    pub(crate) async fn readable(&mut self) -> io::Result<()> {
        if let State::Direct { fresh, .. } = &mut self.state
            && std::mem::take(fresh)
        {
            return Ok(());
        }
        self.polled()?.readable().await
    }

    /// The registered stream, registering it now if it is not.
    fn polled(&mut self) -> io::Result<&mut TcpStream> {
        if let State::Direct { .. } = self.state {
            self.state = match std::mem::replace(&mut self.state, State::Lost) {
                State::Direct { s, .. } => State::Polled(TcpStream::from_std(s)?),
                other => other,
            };
        }
        match &mut self.state {
            State::Polled(s) => Ok(s),
            _ => Err(lost()),
        }
    }
}

/// The most a direct read takes in one call (and zeroes first).
const DIRECT_READ_MAX: usize = 4096;

fn lost() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection's socket could not be added to epoll (the first error said why); \
         the connection is closed",
    )
}

/// A direct attempt's result: `None` when it would block (or was
/// interrupted), and the socket must register and wait.
fn direct<T>(r: io::Result<T>) -> Option<io::Result<T>> {
    match r {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
            None
        }
        r => Some(r),
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let State::Direct { s, .. } = &this.state {
            // The task's budget, as a registered stream spends it: a device
            // whose bytes are always there still lets other tasks run.
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            // Safe code reads into initialized memory: at most 4 KiB of the
            // buffer's spare capacity is zeroed (a connection's first chunk
            // is 1 KiB), and only while the socket has not waited.
            let room = buf.remaining().min(DIRECT_READ_MAX);
            let into = buf.initialize_unfilled_to(room);
            if let Some(r) = direct((&*s).read(into)) {
                coop.made_progress();
                return Poll::Ready(r.map(|n| buf.advance(n)));
            }
        }
        match this.polled() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let State::Direct { s, .. } = &this.state {
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            if let Some(r) = direct((&*s).write(b)) {
                coop.made_progress();
                return Poll::Ready(r);
            }
        }
        match this.polled() {
            Ok(s) => Pin::new(s).poll_write(cx, b),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Direct { .. } => Poll::Ready(Ok(())),
            State::Polled(s) => Pin::new(s).poll_flush(cx),
            State::Lost => Poll::Ready(Err(lost())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Direct { s, .. } => Poll::Ready(s.shutdown(std::net::Shutdown::Write)),
            State::Polled(s) => Pin::new(s).poll_shutdown(cx),
            State::Lost => Poll::Ready(Err(lost())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn listening() -> Listening {
        bind("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    /// A connection whose device has sent `first`, accepted.
    async fn pair(first: &[u8]) -> (Socket, TcpStream) {
        let l = listening();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        c.write_all(first).await.unwrap();
        let (s, _) =
            tokio::time::timeout(Duration::from_secs(5), l.accept()).await.unwrap().unwrap();
        (s, c)
    }

    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let (s, _c) = pair(b"x").await;
        let State::Direct { s: raw, .. } = &s.state else { panic!("registered at accept") };
        assert!(raw.nodelay().unwrap(), "Linux copies TCP_NODELAY from the listening socket");
    }

    #[test]
    fn a_socket_is_no_larger_than_the_stream_it_stands_for() {
        // Every connection's task holds it, several times over.
        assert!(std::mem::size_of::<Socket>() <= std::mem::size_of::<TcpStream>());
    }

    #[tokio::test]
    async fn a_silent_connection_is_handed_over_once_it_speaks() {
        let l = listening();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), l.accept()).await;
        assert!(early.is_err(), "accepted before its first byte");
        c.write_all(b"x").await.unwrap();
        let (mut s, _) =
            tokio::time::timeout(Duration::from_secs(1), l.accept()).await.unwrap().unwrap();
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "its byte is there at once");
        assert!(!s.registered());
    }

    #[tokio::test]
    async fn a_silent_connection_is_handed_over_when_the_deferral_ends() {
        let l = listening();
        let _c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let t = tokio::time::Instant::now();
        let (mut s, _) =
            tokio::time::timeout(Duration::from_secs(10), l.accept()).await.unwrap().unwrap();
        assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
        // Nothing to read: the first wait returns at once, the read registers.
        s.readable().await.unwrap();
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await;
        assert!(r.is_err(), "nothing was sent: {r:?}");
        assert!(s.registered());
    }

    #[tokio::test]
    async fn a_request_already_there_is_answered_without_registering() {
        let (mut s, mut c) = pair(b"request").await;
        let mut buf = bytes::BytesMut::with_capacity(64);
        s.readable().await.unwrap();
        assert_eq!(s.read_buf(&mut buf).await.unwrap(), 7);
        s.write_all(b"reply").await.unwrap();
        s.flush().await.unwrap();
        assert!(!s.registered(), "nothing had to wait");
        drop(s);
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"reply");
    }

    #[tokio::test]
    async fn a_read_that_would_block_registers_and_wakes_on_bytes_sent_later() {
        let (mut s, mut c) = pair(b"first").await;
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"first");
            // The second wait registers (an idle connection holds no buffer).
            s.readable().await.unwrap();
            let n = s.read(&mut buf).await.unwrap();
            (buf[..n].to_vec(), s.registered())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.write_all(b"late").await.unwrap();
        let (got, registered) = reader.await.unwrap();
        assert_eq!(got, b"late");
        assert!(registered);
    }

    /// The largest a loopback connection's send and receive buffers can grow
    /// to together (tcp(7): the third value of each sysctl).
    fn buffers_max() -> usize {
        ["tcp_wmem", "tcp_rmem"]
            .iter()
            .map(|f| {
                let v = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{f}")).unwrap();
                v.split_whitespace().nth(2).unwrap().parse::<usize>().unwrap()
            })
            .sum()
    }

    #[tokio::test]
    async fn a_socket_whose_bytes_are_always_there_still_yields_to_other_tasks() {
        // A device that keeps the buffer full: no read would block, so the
        // socket never registers; the task must still give way.
        let (mut s, _c) = pair(&[0u8; 2048]).await;
        let other = Arc::new(AtomicBool::new(false));
        let o = other.clone();
        tokio::spawn(async move { o.store(true, Ordering::Relaxed) });
        let mut b = [0u8; 1];
        for _ in 0..1024 {
            s.read_exact(&mut b).await.unwrap();
        }
        assert!(!s.registered(), "every read found its byte");
        assert!(other.load(Ordering::Relaxed), "the other task ran meanwhile");
    }

    #[tokio::test]
    async fn a_write_that_would_block_registers_and_finishes_once_the_peer_reads() {
        let (mut s, mut c) = pair(b"x").await;
        // More than the send and receive buffers can hold together.
        let total = 2 * buffers_max();
        let big = vec![7u8; total];
        let writer = tokio::spawn(async move {
            // Read what was sent: closing with unread bytes would reset.
            assert_eq!(s.read(&mut [0u8; 1]).await.unwrap(), 1);
            s.write_all(&big).await.unwrap();
            s.registered()
        });
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        while got < total {
            got += c.read(&mut buf).await.unwrap();
        }
        assert!(writer.await.unwrap(), "a write that filled the buffers waited");
    }

    #[tokio::test]
    async fn the_peer_closing_reads_as_end_of_stream() {
        let (mut s, c) = pair(b"x").await;
        drop(c);
        let mut buf = [0u8; 4];
        assert_eq!(s.read(&mut buf).await.unwrap(), 1);
        assert_eq!(s.read(&mut buf).await.unwrap(), 0);
    }
}
