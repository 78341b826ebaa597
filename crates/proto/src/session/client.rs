//! The client side of a connection.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::SessionError;
use crate::aaa::{AaaRequest, AcctReply, AcctRequest, AuthorResponse};
use crate::authen::{AuthenContinue, AuthenReply, AuthenStart};
use crate::error::DecodeError;
use crate::header::{DEFAULT_MAX_BODY, Flags, Header, MinorVersion, PacketType};
use crate::obfuscation::Key;
use crate::packet::{Body, open_body, seal, split_frame};

/// Choices of a client connection.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Largest body accepted (and sent).
    pub max_body: u32,
    /// Ask for single-connect mode in the first packet (RFC 8907 §4.3).
    pub single_connect: bool,
    /// The connection runs inside TLS (RFC 9887 §4): every packet is sent in
    /// clear with `TAC_PLUS_UNENCRYPTED_FLAG`, the key given to
    /// [`ClientConnection::new`] is ignored, and a reply without the flag fails
    /// its session.
    pub tls: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig { max_body: DEFAULT_MAX_BODY, single_connect: false, tls: false }
    }
}

/// Why a session failed on the client side.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientSessionError {
    /// The reply's body did not decode with our key.
    #[error("the server's reply does not decode with our key; check the shared key. Detail: {0}")]
    WrongKey(DecodeError),
    /// §4.1: an empty body answers a packet the server could not process (or a
    /// key mismatch, for some servers).
    #[error(
        "the server answered with an empty error packet: it could not process our request; the \
            key may be wrong, or the request unsupported"
    )]
    EmptyReply,
    /// The server sent clear text while we have a key (§4.5).
    #[error("the server replied in clear text although a key is configured")]
    Unencrypted,
    /// A reply without `TAC_PLUS_UNENCRYPTED_FLAG` on a TLS connection (RFC 9887 §4).
    #[error(
        "the server's reply lacks the UNENCRYPTED flag on a TLS connection (RFC 9887 §4 forbids obfuscation inside TLS)"
    )]
    ObfuscatedOverTls,
    /// A reply with the wrong seq_no or type.
    #[error("out-of-sequence reply: seq_no {got}, expected {expected}")]
    BadSequence {
        /// Expected seq_no.
        expected: u8,
        /// What came.
        got: u8,
    },
}

/// Why the whole connection failed on the client side.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientConnectionError {
    /// A header that does not decode.
    #[error("undecodable packet from the server: {0}")]
    Decode(#[from] DecodeError),
    /// A reply for a session we never started.
    #[error("reply for unknown session {0:#010x}")]
    UnknownSession(u32),
    /// A client-direction packet from the server.
    #[error("the server sent a packet with odd seq_no {0}")]
    WrongDirection(u8),
}

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// An authentication REPLY. If its status expects a CONTINUE the session stays open.
    AuthenReply {
        /// Session.
        session_id: u32,
        /// The reply.
        reply: AuthenReply,
    },
    /// An authorization RESPONSE; the session is over.
    AuthorResponse {
        /// Session.
        session_id: u32,
        /// The response.
        response: AuthorResponse,
    },
    /// An accounting REPLY; the session is over.
    AcctReply {
        /// Session.
        session_id: u32,
        /// The reply.
        reply: AcctReply,
    },
    /// The session failed; it is over.
    SessionFailed {
        /// Session.
        session_id: u32,
        /// Why.
        error: ClientSessionError,
    },
    /// The connection is unusable; every open session is over.
    ConnectionFailed(ClientConnectionError),
}

#[derive(Debug)]
struct Session {
    packet_type: PacketType,
    minor: MinorVersion,
    /// seq_no of the last packet of the session, in either direction.
    last_seq: u8,
    /// We owe a CONTINUE (the server prompted).
    prompted: bool,
}

/// The client side of one TACACS+ connection.
#[derive(Debug)]
pub struct ClientConnection {
    cfg: ClientConfig,
    key: Option<Key>,
    single_connect: Option<bool>,
    sessions: HashMap<u32, Session>,
    sessions_started: u64,
    failed: bool,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
}

impl ClientConnection {
    /// A client connection obfuscating with `key` (None: clear text, deprecated).
    /// With [`ClientConfig::tls`] the key is dropped: nothing is obfuscated
    /// inside TLS.
    pub fn new(cfg: ClientConfig, key: Option<Key>) -> Self {
        let key = if cfg.tls { None } else { key };
        ClientConnection {
            cfg,
            key,
            single_connect: None,
            sessions: HashMap::new(),
            sessions_started: 0,
            failed: false,
            out: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether a new session may start on this connection now.
    pub fn can_start_session(&self) -> bool {
        !self.failed && (self.sessions_started == 0 || self.single_connect == Some(true))
    }

    fn start(
        &mut self,
        session_id: u32,
        minor: MinorVersion,
        body: Body,
    ) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Closing);
        }
        if !self.can_start_session() {
            return Err(SessionError::ConnectionNotReusable);
        }
        if self.sessions.contains_key(&session_id) {
            return Err(SessionError::DuplicateSession(session_id));
        }
        let flags = Flags::default().with(Flags::SINGLE_CONNECT, self.cfg.single_connect);
        let header = Header {
            minor,
            packet_type: body.packet_type(),
            seq_no: 1,
            flags,
            session_id,
            length: 0,
        };
        seal(header, &body, self.key.as_ref(), self.cfg.max_body, &mut self.out)?;
        self.sessions_started += 1;
        self.sessions.insert(
            session_id,
            Session { packet_type: body.packet_type(), minor, last_seq: 1, prompted: false },
        );
        Ok(())
    }

    /// Send an authentication START. The minor version follows the type (§5.4.1).
    pub fn start_authen(
        &mut self,
        session_id: u32,
        start: AuthenStart,
    ) -> Result<(), SessionError> {
        let minor = start.authen_type.minor_version();
        self.start(session_id, minor, Body::AuthenStart(start))
    }

    /// Send an authorization REQUEST.
    pub fn authorize(&mut self, session_id: u32, req: AaaRequest) -> Result<(), SessionError> {
        self.start(session_id, MinorVersion::Default, Body::AuthorRequest(req))
    }

    /// Send an accounting REQUEST.
    pub fn account(&mut self, session_id: u32, req: AcctRequest) -> Result<(), SessionError> {
        self.start(session_id, MinorVersion::Default, Body::AcctRequest(req))
    }

    fn send_continue(&mut self, session_id: u32, cont: AuthenContinue) -> Result<(), SessionError> {
        let abort = cont.abort;
        let s =
            self.sessions.get_mut(&session_id).ok_or(SessionError::NoSuchSession(session_id))?;
        if !s.prompted {
            return Err(SessionError::NotExpected {
                session_id,
                what: "a CONTINUE (the server has not prompted)",
            });
        }
        // 255 would leave the server no seq_no to answer with (§4.1).
        let seq_no = s
            .last_seq
            .checked_add(1)
            .filter(|&n| n < 255)
            .ok_or(SessionError::SeqExhausted(session_id))?;
        let header = Header {
            minor: s.minor,
            packet_type: PacketType::Authentication,
            seq_no,
            flags: Flags::default().with(Flags::SINGLE_CONNECT, self.single_connect == Some(true)),
            session_id,
            length: 0,
        };
        seal(
            header,
            &Body::AuthenContinue(cont),
            self.key.as_ref(),
            self.cfg.max_body,
            &mut self.out,
        )?;
        if abort {
            self.sessions.remove(&session_id);
        } else if let Some(s) = self.sessions.get_mut(&session_id) {
            s.last_seq = seq_no;
            s.prompted = false;
        }
        Ok(())
    }

    /// Answer a GETUSER / GETPASS / GETDATA prompt.
    pub fn continue_authen(
        &mut self,
        session_id: u32,
        user_msg: impl Into<Bytes>,
    ) -> Result<(), SessionError> {
        self.send_continue(
            session_id,
            AuthenContinue { user_msg: user_msg.into(), data: Bytes::new(), abort: false },
        )
    }

    /// Abandon an authentication that is waiting for our answer (§5.3, ABORT flag).
    /// The server sends nothing back; the session is over.
    pub fn abort_authen(
        &mut self,
        session_id: u32,
        reason: impl Into<Bytes>,
    ) -> Result<(), SessionError> {
        self.send_continue(
            session_id,
            AuthenContinue { user_msg: Bytes::new(), data: reason.into(), abort: true },
        )
    }

    /// Consume every whole packet at the front of `buf`.
    pub fn handle_input(&mut self, buf: &mut BytesMut) {
        while !self.failed {
            match split_frame(buf, self.cfg.max_body) {
                Ok(None) => return,
                Ok(Some((header, body))) => self.handle_packet(header, body),
                Err(e) => self.connection_failed(e.into()),
            }
        }
        buf.clear();
    }

    fn connection_failed(&mut self, e: ClientConnectionError) {
        self.failed = true;
        self.sessions.clear();
        self.events.push_back(ClientEvent::ConnectionFailed(e));
    }

    fn handle_packet(&mut self, header: Header, body: BytesMut) {
        let sid = header.session_id;
        if header.from_client() {
            return self.connection_failed(ClientConnectionError::WrongDirection(header.seq_no));
        }
        let Some(s) = self.sessions.get(&sid) else {
            return self.connection_failed(ClientConnectionError::UnknownSession(sid));
        };
        // last_seq <= 253 while we await a reply: we never send 255.
        let expected_seq = s.last_seq + 1;
        if header.seq_no != expected_seq || header.packet_type != s.packet_type || s.prompted {
            self.sessions.remove(&sid);
            self.events.push_back(ClientEvent::SessionFailed {
                session_id: sid,
                error: ClientSessionError::BadSequence {
                    expected: expected_seq,
                    got: header.seq_no,
                },
            });
            return;
        }
        if self.single_connect.is_none() {
            // §4.3: the server's first packet settles single-connect mode.
            self.single_connect = Some(self.cfg.single_connect && header.flags.single_connect());
        }
        let result = if self.cfg.tls && !header.flags.unencrypted() {
            Err(ClientSessionError::ObfuscatedOverTls)
        } else if header.length == 0 {
            Err(ClientSessionError::EmptyReply)
        } else if header.flags.unencrypted() && self.key.is_some() {
            Err(ClientSessionError::Unencrypted)
        } else {
            open_body(&header, body, self.key.as_ref()).map_err(ClientSessionError::WrongKey)
        };
        let event = match result {
            Ok(Body::AuthenReply(reply)) => {
                if reply.status.expects_continue() {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.prompted = true;
                        s.last_seq = expected_seq;
                    }
                    self.events.push_back(ClientEvent::AuthenReply { session_id: sid, reply });
                    return;
                }
                ClientEvent::AuthenReply { session_id: sid, reply }
            }
            Ok(Body::AuthorResponse(response)) => {
                ClientEvent::AuthorResponse { session_id: sid, response }
            }
            Ok(Body::AcctReply(reply)) => ClientEvent::AcctReply { session_id: sid, reply },
            Ok(_) => ClientEvent::SessionFailed {
                session_id: sid,
                error: ClientSessionError::BadSequence {
                    expected: expected_seq,
                    got: header.seq_no,
                },
            },
            Err(error) => ClientEvent::SessionFailed { session_id: sid, error },
        };
        self.sessions.remove(&sid);
        self.events.push_back(event);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Move the bytes to send into `buf` (swapped in when `buf` is empty).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) {
        super::hand_over(&mut self.out, buf);
    }

    /// Whether bytes are waiting to be sent.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether single-connect mode was negotiated (None before the first reply).
    pub fn single_connect(&self) -> Option<bool> {
        self.single_connect
    }

    /// Sessions waiting for the server.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the connection has failed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }
}
