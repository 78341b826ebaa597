//! A TLS server connection on rustls' unbuffered API
//! (`UnbufferedServerConnection`), where the caller owns every buffer: the
//! TLS bytes received and not yet processed, the plaintext not yet read, the
//! records not yet sent. Each is released as soon as it is empty, so an idle
//! connection holds no buffer at all (rustls' buffered `ServerConnection`
//! keeps a 4 KiB record buffer for the connection's life), as a plain one.
//!
//! Contract:
//! - [`TlsStream::step`] is the machine: TLS bytes in (`incoming`), plaintext
//!   (`plain`) and records (`outgoing`) out, no I/O;
//! - the I/O around it is `AsyncRead` / `AsyncWrite` over the TCP stream, and
//!   [`TlsStream::handshake`] until the handshake is done;
//! - what a peer can make it buffer is bounded: one handshake message
//!   (64 KiB, as rustls' own deframer) plus one read, or one record; the
//!   plaintext of one read; one write's records.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::socket::Socket;

/// One read from the socket.
const READ_SIZE: usize = 4096;
/// The most TLS bytes held unprocessed: a handshake message as large as
/// rustls' buffered deframer allows (64 KiB), and a record header.
const MAX_INCOMING: usize = 0xffff + 5;

/// What the machine waits for after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// More TLS bytes from the peer (handshake, or a partial record).
    Input,
    /// Both sides closed.
    Closed,
}

/// What a step does once application data may be written.
enum Op<'a> {
    Nothing,
    Write(&'a [u8]),
    Close,
}

/// TLS over TCP, its buffers released when empty.
pub(crate) struct TlsStream {
    conn: UnbufferedServerConnection,
    io: Socket,
    /// TLS bytes received, not yet processed.
    incoming: Vec<u8>,
    /// Plaintext decrypted, not yet read; `plain_at` is read already.
    plain: Vec<u8>,
    plain_at: usize,
    /// Records to send; `out_at` is sent already.
    outgoing: Vec<u8>,
    out_at: usize,
    /// The peer sent close_notify, or closed the socket.
    peer_closed: bool,
    /// Our close_notify is queued.
    sent_close: bool,
    /// A fatal error: every later call fails with it.
    failed: Option<rustls::Error>,
}

impl TlsStream {
    /// A connection for `config` over `io`, with the bytes already read from
    /// it (with a PROXY header, or to look at the first byte).
    pub(crate) fn new(
        config: Arc<rustls::ServerConfig>,
        io: Socket,
        read: Vec<u8>,
    ) -> Result<TlsStream, rustls::Error> {
        Ok(TlsStream {
            conn: UnbufferedServerConnection::new(config)?,
            io,
            incoming: read,
            plain: Vec::new(),
            plain_at: 0,
            outgoing: Vec::new(),
            out_at: 0,
            peer_closed: false,
            sent_close: false,
            failed: None,
        })
    }

    /// The connection's TLS state (peer certificates, resumption).
    pub(crate) fn tls(&self) -> &rustls::CommonState {
        &self.conn
    }

    /// Run the handshake to its end. On failure the alert rustls made is
    /// sent (best effort) and the error is returned as an `io::Error`
    /// wrapping the `rustls::Error` (what `tacvs_tls::failure` reads).
    pub(crate) async fn handshake(&mut self) -> io::Result<()> {
        loop {
            let step = self.step(Op::Nothing);
            std::future::poll_fn(|cx| self.poll_send(cx)).await?;
            let (wait, _) = step.map_err(TlsStream::io_error)?;
            if !self.conn.is_handshaking() {
                return Ok(());
            }
            if wait == Wait::Closed || self.peer_closed {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if std::future::poll_fn(|cx| self.poll_fill(cx)).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The machine: process the TLS bytes received, decrypt what they hold
    /// into `plain`, encode what rustls has to send into `outgoing`, and do
    /// `op` once application data may be written (false: it could not be,
    /// the connection is closed). After a fatal error, the alert rustls
    /// queued is encoded too.
    fn step(&mut self, mut op: Op<'_>) -> Result<(Wait, bool), rustls::Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let wait = match state {
                Err(e) => {
                    self.incoming.drain(..discard.min(self.incoming.len()));
                    self.failed = Some(e.clone());
                    self.encode_alert();
                    return Err(e);
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(rec) = r.next_record() {
                        let rec = rec?;
                        discard += rec.discard;
                        take_plain(&mut self.plain, &mut self.plain_at, rec.payload);
                    }
                    None
                }
                Ok(ConnectionState::ReadEarlyData(mut r)) => {
                    // Never accepted (max_early_data_size is 0): drained, not served.
                    while let Some(rec) = r.next_record() {
                        discard += rec?.discard;
                    }
                    None
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    encode(&mut self.outgoing, |out| e.encode(out))?;
                    None
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    // Queued in `outgoing`, which is sent before any wait.
                    t.done();
                    None
                }
                Ok(ConnectionState::BlockedHandshake) => Some(Wait::Input),
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    None
                }
                Ok(ConnectionState::Closed) => {
                    self.peer_closed = true;
                    Some(Wait::Closed)
                }
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    match std::mem::replace(&mut op, Op::Nothing) {
                        Op::Nothing => {}
                        Op::Write(data) => encrypt(&mut self.outgoing, |o| w.encrypt(data, o))?,
                        Op::Close => {
                            encrypt(&mut self.outgoing, |o| w.queue_close_notify(o))?;
                            self.sent_close = true;
                        }
                    }
                    Some(Wait::Input)
                }
                Ok(_) => Some(Wait::Input),
            };
            self.incoming.drain(..discard);
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
            if let Some(w) = wait {
                return Ok((w, matches!(op, Op::Nothing)));
            }
        }
    }

    /// Encode the alert rustls queued with a fatal error. The bytes not
    /// discarded stay given: rustls may still hold handshake messages in
    /// them (an empty slice here panics in rustls' handshake deframer).
    fn encode_alert(&mut self) {
        loop {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut self.incoming);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if encode(&mut self.outgoing, |out| e.encode(out)).is_err() {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                _ => return,
            }
        }
    }

    /// Send `outgoing` until it is empty, then release it.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.outgoing = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Read once from the socket into `incoming`; the bytes read (0: EOF).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let have = self.incoming.len();
        if have >= MAX_INCOMING {
            let e = rustls::Error::General("TLS message too large".into());
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        let room = READ_SIZE.min(MAX_INCOMING - have);
        self.incoming.resize(have + room, 0);
        let mut rb = ReadBuf::new(&mut self.incoming[have..]);
        let r = Pin::new(&mut self.io).poll_read(cx, &mut rb);
        let n = rb.filled().len();
        self.incoming.truncate(have + n);
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        ready!(r)?;
        if n == 0 {
            self.peer_closed = true;
        }
        Poll::Ready(Ok(n))
    }

    fn io_error(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Append a record payload to the unread plaintext.
fn take_plain(plain: &mut Vec<u8>, at: &mut usize, payload: &[u8]) {
    if *at > 0 && *at == plain.len() {
        plain.clear();
        *at = 0;
    }
    plain.extend_from_slice(payload);
}

/// Append what `f` encodes to `out`, growing it to the size asked for.
fn encode(
    out: &mut Vec<u8>,
    f: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), rustls::Error> {
    grow(out, 512, f, |e| match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    })
}

/// Append what `f` encrypts to `out`, growing it to the size asked for.
fn encrypt(
    out: &mut Vec<u8>,
    f: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    grow(out, 256, f, |e| match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    })
}

/// Run `f` on free room at the end of `out`, first `room` bytes, then as
/// many as its error says it needs (`needed`); keep what it wrote.
fn grow<E: std::fmt::Display>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needed: impl Fn(&E) -> Option<usize>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match needed(&e) {
                Some(n) => room = n,
                None => {
                    out.truncate(start);
                    return Err(rustls::Error::General(e.to_string()));
                }
            },
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_at < this.plain.len() {
                let n = (this.plain.len() - this.plain_at).min(buf.remaining());
                buf.put_slice(&this.plain[this.plain_at..this.plain_at + n]);
                this.plain_at += n;
                if this.plain_at == this.plain.len() {
                    this.plain = Vec::new();
                    this.plain_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if !this.incoming.is_empty() {
                this.step(Op::Nothing).map_err(TlsStream::io_error)?;
                // Whatever rustls answers on its own (a key update) goes out
                // now if it can, else with the next write.
                if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                    return Poll::Ready(Err(e));
                }
                if this.plain_at < this.plain.len() {
                    continue;
                }
            }
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            if ready!(this.poll_fill(cx))? == 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One write's records at a time.
        ready!(this.poll_send(cx))?;
        let (_, done) = this.step(Op::Write(data)).map_err(TlsStream::io_error)?;
        if !done {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.sent_close && this.failed.is_none() {
            ready!(this.poll_send(cx))?;
            // Both sides closed already: nothing more to say.
            let _ = this.step(Op::Close).map_err(TlsStream::io_error)?;
            this.sent_close = true;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl crate::conn::Transport for TlsStream {
    async fn readable(&mut self) -> io::Result<()> {
        // Plaintext or TLS bytes held, or the peer closed: a read returns
        // (or reads the socket) at once.
        if self.plain_at < self.plain.len() || !self.incoming.is_empty() || self.peer_closed {
            return Ok(());
        }
        self.io.readable().await
    }

    async fn finish(&mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), self.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tacvs_tls::certs::{self, Role, Validity};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server configuration for 127.0.0.1 (no client certificates) and a
    /// client configuration trusting it.
    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let ca = certs::ca("test CA", Validity::days(1)).unwrap();
        let names = ["127.0.0.1".to_string()];
        let srv = certs::issue(&ca, Role::Server, "aaa1", &names, Validity::days(1)).unwrap();
        let (chain, key) = tacvs_tls::client::identity_from_pem(&srv.cert, &srv.key).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(tacvs_tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let (ca_chain, _) = tacvs_tls::client::identity_from_pem(&ca.cert, &ca.key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_chain[0].clone()).unwrap();
        let client = tacvs_tls::client::config(Arc::new(roots), None).unwrap();
        (Arc::new(server), client)
    }

    /// After a request and its reply, the connection holds no buffer: what
    /// keeps an idle TLS connection small (issue 11).
    #[tokio::test]
    async fn an_idle_stream_holds_no_buffer() {
        let (server, client) = configs();
        let l = crate::socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let device = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = tacvs_tls::client::server_name(None, addr.ip()).unwrap();
            let connector = tokio_rustls::TlsConnector::from(client);
            let mut s = connector.connect(name, tcp).await.unwrap();
            s.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"pong");
            // Idle until the server has looked.
            let _ = done_rx.await;
            s.shutdown().await.unwrap();
        });
        let (tcp, _) = l.accept().await.unwrap();
        let mut s = TlsStream::new(server, tcp, Vec::new()).unwrap();
        let wait = Duration::from_secs(20);
        tokio::time::timeout(wait, s.handshake()).await.unwrap().unwrap();
        let mut b = [0u8; 4];
        tokio::time::timeout(wait, s.read_exact(&mut b)).await.unwrap().unwrap();
        assert_eq!(&b, b"ping");
        s.write_all(b"pong").await.unwrap();
        s.flush().await.unwrap();
        let held = (s.incoming.capacity(), s.plain.capacity(), s.outgoing.capacity());
        assert_eq!(held, (0, 0, 0), "incoming, plaintext and outgoing buffers of an idle stream");
        done_tx.send(()).unwrap();
        // The device's close_notify is the end of the stream.
        let mut rest = Vec::new();
        tokio::time::timeout(wait, s.read_to_end(&mut rest)).await.unwrap().unwrap();
        assert!(rest.is_empty());
        device.await.unwrap();
    }
}
