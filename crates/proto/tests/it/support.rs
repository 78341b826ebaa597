//! An in-memory test harness: a client and a server state machine wired back to
//! back, and a tiny policy that answers requests the way a server would.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tacvs_proto::*;

pub const KEY: &str = "tacvs-test-key";

pub struct Pair {
    pub client: ClientConnection,
    pub server: ServerConnection,
    pub server_events: Vec<ServerEvent>,
    pub client_events: Vec<ClientEvent>,
    c2s: BytesMut,
    s2c: BytesMut,
    /// Every byte each side sent, in order.
    pub wire_c2s: Vec<u8>,
    pub wire_s2c: Vec<u8>,
}

impl Pair {
    pub fn new(client_key: &str, server_keys: &[&str], single_connect: bool) -> Pair {
        Pair::with(client_key, server_keys, single_connect, false)
    }

    /// Both machines in TLS mode (RFC 9887), each still handed its legacy key.
    pub fn tls(single_connect: bool) -> Pair {
        Pair::with(KEY, &[KEY], single_connect, true)
    }

    fn with(client_key: &str, server_keys: &[&str], single_connect: bool, tls: bool) -> Pair {
        let keys: Arc<[Key]> = server_keys.iter().map(|k| Key::new(*k)).collect();
        Pair {
            client: ClientConnection::new(
                ClientConfig { single_connect, tls, ..Default::default() },
                Some(Key::new(client_key)),
            ),
            server: ServerConnection::new(ServerConfig { tls, ..Default::default() }, keys),
            server_events: Vec::new(),
            client_events: Vec::new(),
            c2s: BytesMut::new(),
            s2c: BytesMut::new(),
            wire_c2s: Vec::new(),
            wire_s2c: Vec::new(),
        }
    }

    /// Move client bytes to the server and collect server events (no policy).
    pub fn deliver_to_server(&mut self) {
        let mut out = Vec::new();
        self.client.poll_transmit(&mut out);
        self.wire_c2s.extend_from_slice(&out);
        self.c2s.extend_from_slice(&out);
        self.server.handle_input(&mut self.c2s);
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    /// Move server bytes to the client and collect client events.
    pub fn deliver_to_client(&mut self) {
        let mut out = Vec::new();
        self.server.poll_transmit(&mut out);
        self.wire_s2c.extend_from_slice(&out);
        self.s2c.extend_from_slice(&out);
        self.client.handle_input(&mut self.s2c);
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
    }

    /// Deliver client bytes, answer every request with `policy`, deliver replies.
    pub fn round(&mut self) {
        self.deliver_to_server();
        for e in std::mem::take(&mut self.server_events) {
            match &e {
                ServerEvent::Request { session_id, request, .. } => {
                    answer(&mut self.server, *session_id, request)
                }
                _ => self.server_events.push(e),
            }
        }
        self.deliver_to_client();
    }

    pub fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }
}

/// The test policy: alice/alice-pass (CHAP secret alice-pass, enable secret
/// en-pass); ASCII asks for a username then a password, three tries.
pub fn answer(server: &mut ServerConnection, sid: u32, request: &Request) {
    use std::cell::RefCell;
    thread_local! {
        static ASCII: RefCell<std::collections::HashMap<u32, (Option<Bytes>, u8)>> = RefCell::default();
    }
    match request {
        Request::AuthenStart(s) => match s.authen_type {
            AuthenType::Pap => {
                let ok = s.user == "alice" && s.data == "alice-pass";
                server
                    .reply_authen(
                        sid,
                        AuthenReply::new(
                            if ok { AuthenStatus::Pass } else { AuthenStatus::Fail },
                            "",
                        ),
                    )
                    .unwrap();
            }
            AuthenType::Chap | AuthenType::MsChapV1 | AuthenType::MsChapV2 => {
                let status = match tacvs_proto::chap::verify(
                    s.authen_type,
                    &s.data,
                    &s.user,
                    "alice-pass",
                ) {
                    Ok(true) if s.user == "alice" => AuthenStatus::Pass,
                    Ok(_) => AuthenStatus::Fail,
                    Err(_) => AuthenStatus::Error,
                };
                server.reply_authen(sid, AuthenReply::new(status, "")).unwrap();
            }
            _ => {
                let user = (!s.user.is_empty()).then(|| s.user.clone());
                let status =
                    if user.is_some() { AuthenStatus::GetPass } else { AuthenStatus::GetUser };
                ASCII.with(|m| m.borrow_mut().insert(sid, (user, 0)));
                let mut r = AuthenReply::new(
                    status,
                    if status == AuthenStatus::GetPass { "Password: " } else { "Username: " },
                );
                r.noecho = status == AuthenStatus::GetPass;
                server.reply_authen(sid, r).unwrap();
            }
        },
        Request::AuthenContinue(c) => {
            let reply = ASCII.with(|m| {
                let mut m = m.borrow_mut();
                let st = m.get_mut(&sid).expect("continue for a known ascii session");
                match &st.0 {
                    None => {
                        st.0 = Some(c.user_msg.clone());
                        let mut r = AuthenReply::new(AuthenStatus::GetPass, "Password: ");
                        r.noecho = true;
                        r
                    }
                    Some(u) => {
                        if u == "alice" && c.user_msg == "alice-pass" {
                            m.remove(&sid);
                            AuthenReply::new(AuthenStatus::Pass, "welcome")
                        } else {
                            st.1 += 1;
                            if st.1 >= 3 {
                                m.remove(&sid);
                                AuthenReply::new(AuthenStatus::Fail, "too many tries")
                            } else {
                                let mut r = AuthenReply::new(
                                    AuthenStatus::GetPass,
                                    "Password incorrect. Password: ",
                                );
                                r.noecho = true;
                                r
                            }
                        }
                    }
                }
            });
            server.reply_authen(sid, reply).unwrap();
        }
        Request::Author(req) => {
            let cmd = req.arg(b"cmd").map(|a| a.value().to_vec()).unwrap_or_default();
            let resp = if cmd.starts_with(b"reload") {
                AuthorResponse::new(AuthorStatus::Fail, "denied")
            } else {
                let mut r = AuthorResponse::new(AuthorStatus::PassAdd, "");
                r.args.push("priv-lvl=15".parse().unwrap());
                r
            };
            server.reply_author(sid, resp).unwrap();
        }
        Request::Acct(_) => {
            server.reply_acct(sid, AcctReply::new(AcctStatus::Success, "")).unwrap()
        }
    }
}

pub fn start(
    action: AuthenAction,
    ty: AuthenType,
    svc: AuthenService,
    user: &str,
    data: &[u8],
) -> AuthenStart {
    AuthenStart {
        action,
        priv_lvl: PrivLvl::USER,
        authen_type: ty,
        authen_service: svc,
        user: Bytes::copy_from_slice(user.as_bytes()),
        port: Bytes::from_static(b"tty0"),
        rem_addr: Bytes::from_static(b"192.0.2.7"),
        data: Bytes::copy_from_slice(data),
    }
}

pub fn pap(user: &str, pw: &str) -> AuthenStart {
    start(AuthenAction::Login, AuthenType::Pap, AuthenService::Login, user, pw.as_bytes())
}

pub fn author(cmd: &str) -> AaaRequest {
    let mut args = vec![Argument::new("service", "shell", true).unwrap()];
    let mut words = cmd.split(' ');
    args.push(Argument::new("cmd", words.next().unwrap(), true).unwrap());
    args.extend(words.map(|w| Argument::new("cmd-arg", w, true).unwrap()));
    AaaRequest::new("alice", args)
}

/// The headers of the whole frames in `wire`, in order.
pub fn frames(wire: &[u8]) -> Vec<(Header, Bytes)> {
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Ok(Some((h, body))) = split_frame(&mut buf, u32::MAX) {
        out.push((h, body.freeze()));
    }
    assert!(buf.is_empty(), "a partial frame on the wire");
    out
}
