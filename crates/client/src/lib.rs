//! # tacvs-client
//!
//! A tokio driver around [`tacvs_proto::ClientConnection`]: connects (optionally
//! from a chosen source address), runs authentication, authorization and
//! accounting sessions with a timeout on every await, and reuses the connection
//! when single-connect mode was negotiated. Used by `tacvs client`, the device
//! simulator and the director's TACACS+ health checks. With [`Client::with_tls`]
//! every connection is TACACS+ over TLS 1.3 (RFC 9887): the handshake follows
//! the TCP connect, the server is verified against a CA and its name, and the
//! protocol machine sends nothing obfuscated.

pub mod selfcheck;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tacvs_proto::{
    AaaRequest, AcctReply, AcctRequest, AuthenReply, AuthenStart, AuthenStatus, AuthorResponse,
    ClientConfig, ClientConnection, ClientConnectionError, ClientEvent, ClientSessionError,
    DEFAULT_MAX_BODY, Key, SessionError,
};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// How to reach and talk to a server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Server address.
    pub server: SocketAddr,
    /// Shared secret; `None` sends clear text (deprecated by RFC 8907 §4.5).
    pub key: Option<Key>,
    /// Bound on every network wait (connect, write, each read).
    pub timeout: Duration,
    /// Ask for single-connect mode and keep the connection between sessions.
    pub single_connect: bool,
    /// Bind this source address before connecting.
    pub source: Option<IpAddr>,
}

impl ClientOptions {
    /// Options with a 5 s timeout, no single-connect, no source binding.
    pub fn new(server: SocketAddr, key: Option<Key>) -> Self {
        ClientOptions {
            server,
            key,
            timeout: Duration::from_secs(5),
            single_connect: false,
            source: None,
        }
    }
}

/// Every [`ClientError::kind`] name.
pub const ERROR_KINDS: &[&str] = &[
    "connect_refused",
    "connect_error",
    "connect_timeout",
    "read_timeout",
    "closed",
    "reset",
    "io_error",
    "wrong_key",
    "protocol_error",
    "local_error",
    "tls_handshake",
];

/// TACACS+ over TLS (RFC 9887): the client configuration and the server's
/// reference identity (RFC 9525; a DNS-ID is sent as SNI).
#[derive(Clone)]
pub struct ClientTls {
    /// TLS 1.3 only, roots, optional client certificate (`tacvs_tls::client::config`).
    pub config: Arc<rustls::ClientConfig>,
    /// The name (or address) the server's certificate must carry.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

/// The last TLS handshake a [`Client`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Resumed from a ticket (no certificates exchanged).
    pub resumed: bool,
    /// From the ClientHello to the handshake's end.
    pub took: Duration,
}

/// Why a request did not get a reply.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Server.
        addr: SocketAddr,
        /// The OS error (refused, unreachable, ...).
        source: io::Error,
    },
    /// No TCP connection within the timeout.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// Server.
        addr: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// The server did not answer within the timeout.
    #[error("no reply from {addr} within {after:?}")]
    ReplyTimeout {
        /// Server.
        addr: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// The server closed the connection before answering.
    #[error(
        "{addr} closed the connection without replying: the server may not know this client's \
         address, or the key may be wrong; the server's log says which"
    )]
    Closed {
        /// Server.
        addr: SocketAddr,
    },
    /// What answered does not speak TACACS+ (an HTTP or SSH server, TLS, ...).
    #[error(
        "{addr} does not speak TACACS+: its reply looks like {what}; check the address and port"
    )]
    NotTacacs {
        /// Server.
        addr: SocketAddr,
        /// What the reply looks like.
        what: &'static str,
    },
    /// A read or write failed (reset, broken pipe).
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// Server.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The reply was unusable (wrong key, bad sequence, empty error packet).
    #[error("{0}")]
    Session(#[from] ClientSessionError),
    /// The server broke the protocol.
    #[error("protocol error from the server: {0}")]
    Protocol(#[from] ClientConnectionError),
    /// The request itself could not be sent (a field too long, ...).
    #[error("cannot send the request: {0}")]
    Local(#[from] SessionError),
    /// The TLS handshake failed (or did not end within the timeout).
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// Server.
        addr: SocketAddr,
        /// A short label (`unknown_ca`, `wrong_name`, `timeout`, ...).
        kind: &'static str,
        /// What went wrong, in words.
        reason: String,
    },
}

impl ClientError {
    /// Whether the error says the shared key is probably wrong.
    pub fn is_wrong_key(&self) -> bool {
        matches!(
            self,
            ClientError::Session(ClientSessionError::WrongKey(_) | ClientSessionError::EmptyReply)
        )
    }

    /// A short stable name for reports and metrics: one of [`ERROR_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Connect { source, .. }
                if source.kind() == io::ErrorKind::ConnectionRefused =>
            {
                "connect_refused"
            }
            ClientError::Connect { .. } => "connect_error",
            ClientError::ConnectTimeout { .. } => "connect_timeout",
            ClientError::ReplyTimeout { .. } => "read_timeout",
            ClientError::Closed { .. } => "closed",
            ClientError::Io { source, .. } if source.kind() == io::ErrorKind::ConnectionReset => {
                "reset"
            }
            ClientError::Io { .. } => "io_error",
            e if e.is_wrong_key() => "wrong_key",
            ClientError::Session(_) | ClientError::Protocol(_) | ClientError::NotTacacs { .. } => {
                "protocol_error"
            }
            ClientError::Local(_) => "local_error",
            ClientError::Tls { .. } => "tls_handshake",
        }
    }
}

/// Answers an ASCII authentication's prompts (RFC 8907 §5.4.2.1).
pub trait Prompter: Send {
    /// Answer a GETUSER / GETPASS / GETDATA prompt, or `None` to abort the session.
    fn answer(&mut self, status: AuthenStatus, server_msg: &str, noecho: bool) -> Option<String>;
}

/// Answers prompts from fixed values: GETUSER gets the user, GETPASS and GETDATA
/// the password. Gives up (aborts) after `max_rounds` prompts.
#[derive(Clone)]
pub struct FixedAnswers {
    /// Answer to GETUSER.
    pub user: String,
    /// Answer to GETPASS / GETDATA.
    pub password: String,
    /// Most prompts to answer before aborting.
    pub max_rounds: u32,
}

impl std::fmt::Debug for FixedAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedAnswers")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Prompter for FixedAnswers {
    fn answer(&mut self, status: AuthenStatus, _msg: &str, _noecho: bool) -> Option<String> {
        if self.max_rounds == 0 {
            return None;
        }
        self.max_rounds -= 1;
        Some(if status == AuthenStatus::GetUser {
            self.user.clone()
        } else {
            self.password.clone()
        })
    }
}

/// Plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, b),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, b),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, b),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Conn {
    stream: Stream,
    machine: ClientConnection,
    /// Whether the server has sent anything yet (its first bytes are checked
    /// for another protocol).
    heard: bool,
}

/// A TACACS+ client for one server.
pub struct Client {
    opts: ClientOptions,
    tls: Option<ClientTls>,
    conn: Option<Conn>,
    /// A connection the caller opened, not yet set up (TLS not yet started).
    pending: Option<TcpStream>,
    handshake: Option<Handshake>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("opts", &self.opts)
            .field("tls", &self.tls)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

enum Started {
    Authen(AuthenStart),
    Author(AaaRequest),
    Acct(AcctRequest),
}

impl Client {
    /// A client; it connects on first use.
    pub fn new(opts: ClientOptions) -> Self {
        Client {
            opts,
            tls: None,
            conn: None,
            pending: None,
            handshake: None,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: Vec::with_capacity(1024),
        }
    }

    /// A client on a connection the caller opened (the director's health
    /// check writes a PROXY LOCAL header first); with TLS, the handshake
    /// starts on it at the first request. When that connection ends, the
    /// client connects to `opts.server` by itself as usual.
    pub fn with_stream(opts: ClientOptions, stream: TcpStream) -> Self {
        stream.set_nodelay(true).ok();
        let mut c = Client::new(opts);
        c.pending = Some(stream);
        c
    }

    /// Speak TACACS+ over TLS 1.3 (RFC 9887) on every connection; the
    /// shared key is then not used.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The last handshake made (TLS only), taken: each is reported once.
    pub fn take_handshake(&mut self) -> Option<Handshake> {
        self.handshake.take()
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Whether single-connect was negotiated on the current connection.
    pub fn single_connect(&self) -> Option<bool> {
        self.conn.as_ref().and_then(|c| c.machine.single_connect())
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        let addr = self.opts.server;
        let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
            .map_err(|source| ClientError::Connect { addr, source })?;
        if let Some(src) = self.opts.source {
            socket
                .bind(SocketAddr::new(src, 0))
                .map_err(|source| ClientError::Connect { addr, source })?;
        }
        let stream = match timeout(self.opts.timeout, socket.connect(addr)).await {
            Err(_) => {
                return Err(ClientError::ConnectTimeout { addr, after: self.opts.timeout });
            }
            Ok(Err(source)) => return Err(ClientError::Connect { addr, source }),
            Ok(Ok(s)) => s,
        };
        self.establish(stream).await
    }

    /// Set a TCP connection up: TLS if configured, and a fresh machine.
    async fn establish(&mut self, stream: TcpStream) -> Result<(), ClientError> {
        let addr = self.opts.server;
        stream.set_nodelay(true).ok();
        let stream = match &self.tls {
            None => Stream::Plain(stream),
            Some(t) => {
                let connector = tokio_rustls::TlsConnector::from(t.config.clone());
                let started = Instant::now();
                let s = match timeout(
                    self.opts.timeout,
                    connector.connect(t.server_name.clone(), stream),
                )
                .await
                {
                    Err(_) => {
                        return Err(ClientError::Tls {
                            addr,
                            kind: "timeout",
                            reason: format!("no handshake within {:?}", self.opts.timeout),
                        });
                    }
                    Ok(Err(e)) => {
                        let (kind, reason) = tacvs_tls::failure(&e);
                        return Err(ClientError::Tls { addr, kind, reason });
                    }
                    Ok(Ok(s)) => s,
                };
                let resumed =
                    s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                self.handshake = Some(Handshake { resumed, took: started.elapsed() });
                Stream::Tls(Box::new(s))
            }
        };
        let cfg = ClientConfig {
            max_body: DEFAULT_MAX_BODY,
            single_connect: self.opts.single_connect,
            tls: self.tls.is_some(),
        };
        self.rbuf.clear();
        self.conn = Some(Conn {
            stream,
            machine: ClientConnection::new(cfg, self.opts.key.clone()),
            heard: false,
        });
        Ok(())
    }

    async fn begin(&mut self, what: Started) -> Result<u32, ClientError> {
        if let Some(stream) = self.pending.take() {
            self.establish(stream).await?;
        } else if !self.conn.as_ref().is_some_and(|c| c.machine.can_start_session()) {
            self.connect().await?;
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut sid: u32 = rand::random();
        while sid == 0 {
            sid = rand::random();
        }
        match what {
            Started::Authen(s) => conn.machine.start_authen(sid, s)?,
            Started::Author(r) => conn.machine.authorize(sid, r)?,
            Started::Acct(r) => conn.machine.account(sid, r)?,
        }
        self.flush().await?;
        Ok(sid)
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        let addr = self.opts.server;
        let conn = self.conn.as_mut().expect("connected");
        self.wbuf.clear();
        conn.machine.poll_transmit(&mut self.wbuf);
        let write = async {
            conn.stream.write_all(&self.wbuf).await?;
            conn.stream.flush().await
        };
        match timeout(self.opts.timeout, write).await {
            Err(_) => Err(ClientError::ReplyTimeout { addr, after: self.opts.timeout }),
            Ok(Err(source)) => {
                self.conn = None;
                Err(io_error(addr, source))
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Read until the machine yields an event for `sid`.
    async fn wait(&mut self, sid: u32) -> Result<ClientEvent, ClientError> {
        let addr = self.opts.server;
        loop {
            let conn = self.conn.as_mut().expect("connected");
            while let Some(ev) = conn.machine.poll_event() {
                match ev {
                    ClientEvent::ConnectionFailed(e) => {
                        self.conn = None;
                        return Err(e.into());
                    }
                    ClientEvent::SessionFailed { session_id, error } if session_id == sid => {
                        // A reply we cannot read leaves the stream's state unknown.
                        self.conn = None;
                        return Err(error.into());
                    }
                    ev if event_session(&ev) == sid => {
                        if !conn.machine.can_start_session() && conn.machine.open_sessions() == 0 {
                            self.conn = None;
                        }
                        return Ok(ev);
                    }
                    _ => {}
                }
            }
            let n = match timeout(self.opts.timeout, conn.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => {
                    self.conn = None;
                    return Err(ClientError::ReplyTimeout { addr, after: self.opts.timeout });
                }
                Ok(Err(source)) => {
                    self.conn = None;
                    return Err(io_error(addr, source));
                }
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                self.conn = None;
                return Err(ClientError::Closed { addr });
            }
            if !conn.heard {
                conn.heard = true;
                if let Some(what) = tacvs_proto::foreign_protocol(&self.rbuf) {
                    self.conn = None;
                    return Err(ClientError::NotTacacs { addr, what });
                }
            }
            conn.machine.handle_input(&mut self.rbuf);
        }
    }

    /// Run an authentication session to its end, answering prompts with `prompter`.
    /// Returns the final reply (PASS, FAIL, ERROR, RESTART or FOLLOW).
    pub async fn authenticate(
        &mut self,
        start: AuthenStart,
        prompter: &mut dyn Prompter,
    ) -> Result<AuthenReply, ClientError> {
        let sid = self.begin(Started::Authen(start)).await?;
        loop {
            let reply = match self.wait(sid).await? {
                ClientEvent::AuthenReply { reply, .. } => reply,
                other => unreachable!("authentication session got {other:?}"),
            };
            if !reply.status.expects_continue() {
                return Ok(reply);
            }
            let msg = String::from_utf8_lossy(&reply.server_msg).into_owned();
            let conn = self.conn.as_mut().expect("session open");
            match prompter.answer(reply.status, &msg, reply.noecho) {
                Some(answer) => conn.machine.continue_authen(sid, Bytes::from(answer))?,
                None => {
                    conn.machine.abort_authen(sid, Bytes::from_static(b"aborted by user"))?;
                    self.flush().await?;
                    return Ok(AuthenReply::new(AuthenStatus::Fail, "aborted by the client"));
                }
            }
            self.flush().await?;
        }
    }

    /// Send an authorization REQUEST and return the RESPONSE.
    pub async fn authorize(&mut self, req: AaaRequest) -> Result<AuthorResponse, ClientError> {
        let sid = self.begin(Started::Author(req)).await?;
        match self.wait(sid).await? {
            ClientEvent::AuthorResponse { response, .. } => Ok(response),
            other => unreachable!("authorization session got {other:?}"),
        }
    }

    /// Send an accounting REQUEST and return the REPLY.
    pub async fn account(&mut self, req: AcctRequest) -> Result<AcctReply, ClientError> {
        let sid = self.begin(Started::Acct(req)).await?;
        match self.wait(sid).await? {
            ClientEvent::AcctReply { reply, .. } => Ok(reply),
            other => unreachable!("accounting session got {other:?}"),
        }
    }
}

/// A failed read or write; over TLS 1.3 a certificate the server refused is
/// first seen here (its alert follows our Finished), and is said as such.
fn io_error(addr: SocketAddr, source: io::Error) -> ClientError {
    if source.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
        let (kind, reason) = tacvs_tls::failure(&source);
        return ClientError::Tls { addr, kind, reason };
    }
    ClientError::Io { addr, source }
}

fn event_session(ev: &ClientEvent) -> u32 {
    match ev {
        ClientEvent::AuthenReply { session_id, .. }
        | ClientEvent::AuthorResponse { session_id, .. }
        | ClientEvent::AcctReply { session_id, .. }
        | ClientEvent::SessionFailed { session_id, .. } => *session_id,
        ClientEvent::ConnectionFailed(_) => 0,
    }
}
