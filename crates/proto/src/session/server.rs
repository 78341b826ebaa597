//! The server side of a connection.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{ProtocolError, SessionError};
use crate::aaa::{AaaRequest, AcctReply, AcctRequest, AuthorResponse};
use crate::authen::{AuthenContinue, AuthenReply, AuthenStart};
use crate::error::DecodeError;
use crate::header::{
    DEFAULT_MAX_BODY, Flags, HEADER_LEN, Header, MinorVersion, PacketType, undecodable_reply,
};
use crate::obfuscation::Key;
use crate::packet::{Body, open_body, seal, split_frame};
use crate::values::{AcctStatus, AuthenAction, AuthenStatus, AuthenType, AuthorStatus};

/// Limits and choices of a server connection.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest body accepted (and sent).
    pub max_body: u32,
    /// Agree to single-connect mode when a client asks (RFC 8907 §4.3).
    pub single_connect: bool,
    /// Most sessions one connection may have open at once.
    pub max_sessions: usize,
    /// The connection runs inside TLS (RFC 9887). Obfuscation is then never
    /// used (§4): every packet must carry `TAC_PLUS_UNENCRYPTED_FLAG`, one
    /// without it is answered with its type's ERROR status and ends the
    /// connection, replies are sent in clear (inside TLS) with the flag set,
    /// and the keys given to [`ServerConnection::new`] are ignored.
    pub tls: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body: DEFAULT_MAX_BODY,
            single_connect: true,
            max_sessions: 64,
            tls: false,
        }
    }
}

/// A request for the application to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Authentication START: answer with [`ServerConnection::reply_authen`].
    AuthenStart(AuthenStart),
    /// The client's answer to a GETUSER / GETPASS / GETDATA prompt.
    AuthenContinue(AuthenContinue),
    /// Authorization REQUEST: answer with [`ServerConnection::reply_author`].
    Author(AaaRequest),
    /// Accounting REQUEST: answer with [`ServerConnection::reply_acct`].
    Acct(AcctRequest),
}

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A request that needs an answer.
    Request {
        /// The session.
        session_id: u32,
        /// Which configured key decoded it (for rotation logging).
        key_index: usize,
        /// The request.
        request: Request,
    },
    /// The client abandoned an authentication (CONTINUE with ABORT, §5.3). No reply is sent.
    AuthenAborted {
        /// The session.
        session_id: u32,
        /// The client's reason (the CONTINUE data field).
        reason: Bytes,
    },
    /// The client broke the protocol. An ERROR reply is queued where the RFC asks
    /// for one, and the connection closes after it is sent.
    ProtocolError {
        /// The session, when the header was readable.
        session_id: Option<u32>,
        /// What was wrong.
        error: ProtocolError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The application owes a reply.
    App,
    /// We sent GETUSER / GETPASS / GETDATA and wait for a CONTINUE.
    Continue,
}

#[derive(Debug)]
struct Session {
    packet_type: PacketType,
    minor: MinorVersion,
    /// seq_no of the last packet of the session, in either direction.
    last_seq: u8,
    waiting: Waiting,
    /// An interactive authentication (ASCII, or a password change) may prompt.
    may_prompt: bool,
}

/// Why the connection should now be closed (after flushing the output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The one session of a non-single-connect connection is over (§4.3).
    SessionDone,
    /// The peer broke the protocol.
    ProtocolError,
}

/// The server side of one TACACS+ connection.
#[derive(Debug)]
pub struct ServerConnection {
    cfg: ServerConfig,
    keys: Arc<[Key]>,
    matched_key: Option<usize>,
    /// None until the first packet; then whether single-connect mode is on.
    single_connect: Option<bool>,
    /// By session id. The peer chooses the ids, but holds at most
    /// `max_sessions` at once (the server's configuration allows 4096), so a
    /// cheap seeded hash is safe here: colliding ids cost at most that many
    /// comparisons per look-up, on the peer's own connection.
    sessions: foldhash::HashMap<u32, Session>,
    sessions_started: u64,
    out: Vec<u8>,
    events: VecDeque<ServerEvent>,
    close: Option<CloseReason>,
}

impl ServerConnection {
    /// A connection that accepts bodies obfuscated with any of `keys` (tried in
    /// order; the first that decodes sticks for the connection). With no keys,
    /// only clear-text packets are accepted. With [`ServerConfig::tls`] the
    /// keys are dropped: the legacy key never touches a TLS connection.
    pub fn new(cfg: ServerConfig, keys: Arc<[Key]>) -> Self {
        let keys = if cfg.tls { Vec::new().into() } else { keys };
        ServerConnection {
            cfg,
            keys,
            matched_key: None,
            single_connect: None,
            sessions: HashMap::default(),
            sessions_started: 0,
            out: Vec::new(),
            events: VecDeque::new(),
            close: None,
        }
    }

    /// Consume every whole packet at the front of `buf` (bytes read from the
    /// socket). A partial packet stays in `buf` for the next read.
    pub fn handle_input(&mut self, buf: &mut BytesMut) {
        while self.close != Some(CloseReason::ProtocolError) {
            match split_frame(buf, self.cfg.max_body) {
                Ok(None) => return,
                Ok(Some((header, body))) => self.handle_packet(header, body),
                Err(error) => {
                    // §4.1: type unknown or header unusable: echo the header with
                    // seq_no + 1 and length 0, then close.
                    if let Some(reply) = undecodable_reply(buf) {
                        self.out.extend_from_slice(&reply);
                    }
                    let session_id = (buf.len() >= HEADER_LEN)
                        .then(|| u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]));
                    buf.clear();
                    self.fail(session_id, error.into());
                    return;
                }
            }
        }
        buf.clear();
    }

    fn fail(&mut self, session_id: Option<u32>, error: ProtocolError) {
        self.events.push_back(ServerEvent::ProtocolError { session_id, error });
        self.close = Some(CloseReason::ProtocolError);
    }

    /// Queue the type's ERROR reply for a packet that could not be served, then fail.
    fn reject(&mut self, header: &Header, msg: &'static str, error: ProtocolError) {
        if let Some(seq_no) = header.seq_no.checked_add(1) {
            let key = self.reply_key();
            let body = error_body(header.packet_type, msg);
            let reply = Header { seq_no, flags: self.reply_flags(), ..*header };
            // An error body always fits; ignore the impossible encode failure.
            let _ = seal(reply, &body, key.as_ref(), self.cfg.max_body, &mut self.out);
        }
        self.sessions.remove(&header.session_id);
        self.fail(Some(header.session_id), error);
    }

    fn reply_key(&self) -> Option<Key> {
        self.keys.get(self.matched_key.unwrap_or(0)).cloned()
    }

    fn reply_flags(&self) -> Flags {
        Flags::default()
            .with(Flags::SINGLE_CONNECT, self.single_connect == Some(true))
            .with(Flags::UNENCRYPTED, self.cfg.tls)
    }

    fn handle_packet(&mut self, header: Header, body: BytesMut) {
        let sid = header.session_id;
        if !header.from_client() {
            return self.reject(
                &header,
                "packet from the wrong role",
                ProtocolError::WrongDirection(header.packet_type, header.seq_no),
            );
        }
        if header.seq_no == 255 {
            // No reply is possible: it would need seq_no 256.
            self.sessions.remove(&sid);
            return self.fail(Some(sid), ProtocolError::SeqWrapped(sid));
        }
        if self.single_connect.is_none() {
            // §4.3: only the first packet's flag asks for single-connect mode.
            self.single_connect = Some(header.flags.single_connect() && self.cfg.single_connect);
        }
        // Sequencing first: it needs only the header.
        match self.sessions.get(&sid) {
            None if header.seq_no != 1 => {
                return self.reject(
                    &header,
                    "unknown session",
                    ProtocolError::UnknownSession { session_id: sid, seq_no: header.seq_no },
                );
            }
            None => {
                if self.sessions_started > 0 && self.single_connect != Some(true) {
                    return self.reject(
                        &header,
                        "single-connect mode not negotiated",
                        ProtocolError::NotSingleConnect,
                    );
                }
                if self.sessions.len() >= self.cfg.max_sessions {
                    return self.reject(
                        &header,
                        "too many sessions",
                        ProtocolError::TooManySessions(self.cfg.max_sessions),
                    );
                }
            }
            Some(_) if header.seq_no == 1 => {
                return self.reject(
                    &header,
                    "session already started",
                    ProtocolError::DuplicateSession(sid),
                );
            }
            Some(s) => {
                if s.packet_type != header.packet_type {
                    let e = ProtocolError::TypeMismatch {
                        session_id: sid,
                        expected: s.packet_type.name(),
                        got: header.packet_type.name(),
                    };
                    return self.reject(&header, "packet type differs from session", e);
                }
                if s.waiting != Waiting::Continue {
                    return self.reject(
                        &header,
                        "reply not yet sent",
                        ProtocolError::Unexpected {
                            session_id: sid,
                            what: "packet while the server owes a reply",
                        },
                    );
                }
                let expected = s.last_seq.saturating_add(1);
                if header.seq_no != expected {
                    return self.reject(
                        &header,
                        "bad seq_no",
                        ProtocolError::SeqOutOfOrder {
                            session_id: sid,
                            expected,
                            got: header.seq_no,
                        },
                    );
                }
            }
        }

        let (body, key_index) = match self.open(&header, body) {
            Ok(v) => v,
            Err(e) => return self.reject(&header, "bad packet", e),
        };

        let request = match body {
            Body::AuthenStart(start) => {
                let may_prompt = start.authen_type == AuthenType::Ascii
                    || start.action == AuthenAction::ChangePassword;
                self.new_session(&header, may_prompt);
                Request::AuthenStart(start)
            }
            Body::AuthenContinue(cont) => {
                if cont.abort {
                    self.sessions.remove(&sid);
                    self.session_over();
                    self.events.push_back(ServerEvent::AuthenAborted {
                        session_id: sid,
                        reason: cont.data,
                    });
                    return;
                }
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.last_seq = header.seq_no;
                    s.waiting = Waiting::App;
                }
                Request::AuthenContinue(cont)
            }
            Body::AuthorRequest(req) => {
                self.new_session(&header, false);
                Request::Author(req)
            }
            Body::AcctRequest(req) => {
                self.new_session(&header, false);
                Request::Acct(req)
            }
            // Server-bound decoding never yields server-sent bodies.
            Body::AuthenReply(_) | Body::AuthorResponse(_) | Body::AcctReply(_) => {
                return self.reject(
                    &header,
                    "packet from the wrong role",
                    ProtocolError::WrongDirection(header.packet_type, header.seq_no),
                );
            }
        };
        self.events.push_back(ServerEvent::Request { session_id: sid, key_index, request });
    }

    fn new_session(&mut self, header: &Header, may_prompt: bool) {
        self.sessions_started += 1;
        self.sessions.insert(
            header.session_id,
            Session {
                packet_type: header.packet_type,
                minor: header.minor,
                last_seq: header.seq_no,
                waiting: Waiting::App,
                may_prompt,
            },
        );
    }

    /// De-obfuscate with the connection's key, or find which key works.
    fn open(&mut self, header: &Header, body: BytesMut) -> Result<(Body, usize), ProtocolError> {
        if self.cfg.tls {
            // RFC 9887 §4: inside TLS every packet is in clear with the flag set.
            if !header.flags.unencrypted() {
                return Err(ProtocolError::ObfuscatedOverTls);
            }
            return Ok((open_body(header, body, None)?, 0));
        }
        if header.flags.unencrypted() {
            if !self.keys.is_empty() {
                return Err(ProtocolError::UnencryptedRefused);
            }
            return Ok((open_body(header, body, None)?, 0));
        }
        if self.keys.is_empty() {
            return Err(ProtocolError::Decode(DecodeError::Invalid {
                packet: "header",
                field: "flags",
                reason: "obfuscated body but no key is configured for this client",
            }));
        }
        // The key this connection used before, or every key in order (no list
        // is built: this runs for every packet).
        let candidates = match self.matched_key {
            Some(i) => i..i + 1,
            None => 0..self.keys.len(),
        };
        let mut first_err = None;
        let last = candidates.end - 1;
        let mut body = Some(body);
        for i in candidates {
            // Keep the original only while another key may still need it.
            let attempt = if i == last {
                body.take().unwrap_or_default()
            } else {
                body.clone().unwrap_or_default()
            };
            match open_body(header, attempt, Some(&self.keys[i])) {
                Ok(b) => {
                    self.matched_key = Some(i);
                    return Ok((b, i));
                }
                Err(e) if e.is_body_garbled() => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let error = first_err.unwrap_or(DecodeError::Truncated { what: "body", need: 1, have: 0 });
        Err(ProtocolError::WrongKey { keys: self.keys.len(), error })
    }

    fn session_over(&mut self) {
        if self.single_connect != Some(true) && self.sessions.is_empty() && self.close.is_none() {
            self.close = Some(CloseReason::SessionDone);
        }
    }

    /// Take the session for a reply of `ptype`, checking it is owed one.
    fn owed(
        &mut self,
        session_id: u32,
        ptype: PacketType,
        what: &'static str,
    ) -> Result<(u8, MinorVersion), SessionError> {
        if self.close == Some(CloseReason::ProtocolError) {
            return Err(SessionError::Closing);
        }
        let s = self.sessions.get(&session_id).ok_or(SessionError::NoSuchSession(session_id))?;
        if s.packet_type != ptype || s.waiting != Waiting::App {
            return Err(SessionError::NotExpected { session_id, what });
        }
        // last_seq <= 253 here: 255 is refused on arrival.
        Ok((s.last_seq + 1, s.minor))
    }

    fn send(
        &mut self,
        session_id: u32,
        seq_no: u8,
        minor: MinorVersion,
        body: &Body,
    ) -> Result<(), SessionError> {
        let header = Header {
            minor,
            packet_type: body.packet_type(),
            seq_no,
            flags: self.reply_flags(),
            session_id,
            length: 0,
        };
        let key = self.reply_key();
        seal(header, body, key.as_ref(), self.cfg.max_body, &mut self.out)?;
        Ok(())
    }

    fn finish(&mut self, session_id: u32) {
        self.sessions.remove(&session_id);
        self.session_over();
    }

    /// Answer an authentication START or CONTINUE. GETUSER / GETPASS / GETDATA
    /// keep the session open for the client's CONTINUE; every other status ends it.
    pub fn reply_authen(
        &mut self,
        session_id: u32,
        reply: AuthenReply,
    ) -> Result<(), SessionError> {
        let (seq, minor) =
            self.owed(session_id, PacketType::Authentication, "an authentication reply")?;
        let prompting = reply.status.expects_continue();
        if prompting {
            if !self.sessions[&session_id].may_prompt {
                return Err(SessionError::BadStatus {
                    status: reply.status.as_str(),
                    context: "in a single-exchange (PAP / CHAP / MS-CHAP) authentication",
                });
            }
            if seq >= 254 {
                return Err(SessionError::SeqExhausted(session_id));
            }
        }
        self.send(session_id, seq, minor, &Body::AuthenReply(reply))?;
        if prompting {
            if let Some(s) = self.sessions.get_mut(&session_id) {
                s.waiting = Waiting::Continue;
                s.last_seq = seq;
            }
        } else {
            self.finish(session_id);
        }
        Ok(())
    }

    /// Answer an authorization REQUEST; ends the session.
    pub fn reply_author(
        &mut self,
        session_id: u32,
        response: AuthorResponse,
    ) -> Result<(), SessionError> {
        let (seq, minor) =
            self.owed(session_id, PacketType::Authorization, "an authorization response")?;
        self.send(session_id, seq, minor, &Body::AuthorResponse(response))?;
        self.finish(session_id);
        Ok(())
    }

    /// Answer an accounting REQUEST; ends the session. Send SUCCESS only once the
    /// record is stored (RFC 8907 §7.3).
    pub fn reply_acct(&mut self, session_id: u32, reply: AcctReply) -> Result<(), SessionError> {
        let (seq, minor) = self.owed(session_id, PacketType::Accounting, "an accounting reply")?;
        self.send(session_id, seq, minor, &Body::AcctReply(reply))?;
        self.finish(session_id);
        Ok(())
    }

    /// Answer a pending request with its type's ERROR status (for internal
    /// failures such as an unwritable journal).
    pub fn reply_error(&mut self, session_id: u32, msg: &str) -> Result<(), SessionError> {
        let ptype = self
            .sessions
            .get(&session_id)
            .ok_or(SessionError::NoSuchSession(session_id))?
            .packet_type;
        let (seq, minor) = self.owed(session_id, ptype, "an error reply")?;
        let body = error_body(ptype, msg);
        self.send(session_id, seq, minor, &body)?;
        self.finish(session_id);
        Ok(())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Move the bytes to send into `buf` (swapped in when `buf` is empty, so no copy).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) {
        super::hand_over(&mut self.out, buf);
    }

    /// Whether bytes are waiting to be sent.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Set once the connection should be closed after its output is flushed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close
    }

    /// Whether single-connect mode is on (None before the first packet).
    pub fn single_connect(&self) -> Option<bool> {
        self.single_connect
    }

    /// Sessions currently open (waiting for the application or the client).
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the application owes a reply on some session.
    pub fn owes_reply(&self) -> bool {
        self.sessions.values().any(|s| s.waiting == Waiting::App)
    }

    /// The index of the key that matched, once one has.
    pub fn matched_key(&self) -> Option<usize> {
        self.matched_key
    }
}

fn error_body(ptype: PacketType, msg: &str) -> Body {
    let msg = Bytes::copy_from_slice(&msg.as_bytes()[..msg.len().min(1024)]);
    match ptype {
        PacketType::Authentication => Body::AuthenReply(AuthenReply::new(AuthenStatus::Error, msg)),
        PacketType::Authorization => {
            Body::AuthorResponse(AuthorResponse::new(AuthorStatus::Error, msg))
        }
        PacketType::Accounting => Body::AcctReply(AcctReply::new(AcctStatus::Error, msg)),
    }
}
