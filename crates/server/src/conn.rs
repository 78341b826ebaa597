//! One connection: PROXY intake, device lookup, limits, then the loop that feeds
//! the protocol machine, runs slow work (hash checks, journal writes) without
//! stalling other sessions on the same connection, and writes replies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tacvs_policy::Policy;
use tacvs_policy::policy::Listener;
use tacvs_proto::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::authn::{Check, CredKind, Credential, Verdict};
use crate::journal::JournalError;
use crate::logfmt::Esc;
use crate::{Shared, deadline};

type Pending = Pin<Box<dyn std::future::Future<Output = Done> + Send>>;

/// The result of slow work, applied back to the protocol machine.
enum Done {
    Password { sid: u32, user: Bytes, verdict: Verdict, started: Instant, chap: bool },
    Acct { sid: u32, result: Result<(), JournalError>, started: Instant, user: String },
    Changed { sid: u32, user: String, result: Result<(), String>, started: Instant },
}

/// An interactive (ASCII) login in progress.
struct Login {
    user: Option<Bytes>,
    tries: u8,
    kind: CredKind,
    priv_lvl: u8,
    started: Instant,
    /// A password change (CHPASS): what the next answer is.
    chpass: Option<ChPass>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ChPass {
    Old,
    New,
    Confirm(Vec<u8>),
}

fn ask(msg: &str) -> AuthenReply {
    AuthenReply { noecho: true, ..AuthenReply::new(AuthenStatus::GetPass, msg.to_owned()) }
}

struct Ctx {
    shared: Arc<Shared>,
    device: SocketAddr,
    dg: usize,
    dg_name: String,
    logins: HashMap<u32, Login>,
    rotated_key_logged: bool,
}

pub(crate) async fn serve(
    shared: &Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    l: &Listener,
) {
    let accepted = tokio::time::Instant::now();
    let policy = shared.policy();
    let mut buf = BytesMut::new();
    stream.set_nodelay(true).ok();

    let device = match crate::proxy::intake(
        &mut stream,
        &mut buf,
        l.proxy,
        l.trusts(peer.ip()),
        policy.limits.proxy_header_timeout.0.min(policy.limits.first_packet_timeout.0),
    )
    .await
    {
        Ok(Some(addr)) => addr,
        Ok(None) => peer,
        Err(e) => {
            tracing::warn!(%peer, reason = %e, "connection refused at PROXY intake");
            metrics::counter!("tacvs_rejects_total", "reason" => "proxy_protocol").increment(1);
            return;
        }
    };
    // One address, one count: an IPv4-mapped IPv6 address (dual-stack socket,
    // or a PROXY header that wrote it so) is the IPv4 device it maps.
    let device = SocketAddr::new(crate::canonical_ip(device.ip()), device.port());
    let Some((dg, group)) = policy.device_group(device.ip()) else {
        tracing::warn!(%device, %peer, "connection refused: the device's address is in no device_group");
        metrics::counter!("tacvs_rejects_total", "reason" => "unknown_device").increment(1);
        return;
    };
    let _slot = match SourceSlot::take(
        shared,
        device.ip(),
        policy.limits.max_connections_per_source,
    ) {
        Some(s) => s,
        None => {
            tracing::warn!(%device, max = policy.limits.max_connections_per_source, "connection refused: max_connections_per_source reached");
            metrics::counter!("tacvs_rejects_total", "reason" => "max_connections_per_source")
                .increment(1);
            return;
        }
    };
    let cfg = ServerConfig {
        max_body: policy.limits.max_body.0 as u32,
        single_connect: true,
        max_sessions: policy.limits.max_sessions_per_connection,
    };
    let mut conn = ServerConnection::new(cfg, group.keys.clone());
    let mut ctx = Ctx {
        shared: shared.clone(),
        device,
        dg,
        dg_name: group.name.clone(),
        logins: HashMap::new(),
        rotated_key_logged: false,
    };
    drop(policy);

    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
    let mut shutdown = shared.shutdown.clone();
    let mut draining = *shutdown.borrow();
    let mut peer_closed = false;
    let mut clock = deadline::Clock::new(accepted);
    loop {
        // Process what is buffered (also bytes that came with the PROXY header).
        // While draining we still read: a session in progress (an ASCII login
        // waiting for its password) must be able to finish.
        if !buf.is_empty() {
            let before = buf.len();
            conn.handle_input(&mut buf);
            clock.input(buf.len() < before, buf.len(), tokio::time::Instant::now());
            while let Some(ev) = conn.poll_event() {
                if let Some(p) = ctx.on_event(&mut conn, ev) {
                    pending.push(p);
                }
            }
        }
        if conn.has_output() {
            // Take the machine's buffer; nothing is kept between replies.
            let mut out = Vec::new();
            conn.poll_transmit(&mut out);
            let wt = ctx.shared.policy.load().limits.read_timeout.0;
            match tokio::time::timeout(wt, stream.write_all(&out)).await {
                Ok(Ok(())) => clock.output(tokio::time::Instant::now()),
                Ok(Err(e)) => {
                    tracing::debug!(%device, error = %e, "write failed; closing");
                    break;
                }
                Err(_) => {
                    tracing::warn!(%device, "peer is not reading our replies; closing");
                    metrics::counter!("tacvs_rejects_total", "reason" => "write_timeout")
                        .increment(1);
                    break;
                }
            }
        }
        if pending.is_empty()
            && (conn.close_reason().is_some()
                || peer_closed
                || (draining && conn.open_sessions() == 0))
        {
            break;
        }
        let limits = deadline::Limits::from_conf(&ctx.shared.policy.load().limits);
        let (until, kind) = clock.deadline(&limits, conn.open_sessions() > 0);
        let reading = !peer_closed && conn.close_reason().is_none();
        // An idle connection holds no read buffer (thousands of idle single-connect
        // devices): it waits for readability and allocates only then.
        if buf.is_empty() && buf.capacity() > 0 && conn.open_sessions() == 0 && pending.is_empty() {
            buf = BytesMut::new();
        }
        tokio::select! {
            r = read_into(&mut stream, &mut buf), if reading => match r {
                Ok(0) | Err(_) => peer_closed = true,
                Ok(_) => {}
            },
            Some(done) = pending.next(), if !pending.is_empty() => ctx.on_done(&mut conn, done),
            _ = tokio::time::sleep_until(until), if pending.is_empty() => {
                tracing::debug!(%device, open_sessions = conn.open_sessions(), timeout = kind.as_str(), "timeout; closing");
                metrics::counter!("tacvs_timeouts_total", "kind" => kind.as_str()).increment(1);
                break;
            }
            _ = shutdown.changed(), if !draining => draining = true,
        }
    }
}

async fn read_into(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() == 0 {
        stream.readable().await?;
        buf.reserve(4096);
    }
    stream.read_buf(buf).await
}

/// A per-source connection slot, released on drop.
struct SourceSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl SourceSlot {
    fn take(shared: &Arc<Shared>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let mut m = shared.per_source.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot { shared: shared.clone(), ip })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut m = self.shared.per_source.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn count(kind: &'static str, result: &'static str, started: Instant) {
    metrics::counter!("tacvs_requests_total", "type" => kind, "result" => result).increment(1);
    metrics::histogram!("tacvs_request_duration_seconds", "type" => kind)
        .record(started.elapsed().as_secs_f64());
}

#[derive(Serialize)]
struct AcctRecord<'a> {
    time: String,
    server: &'a str,
    device: String,
    device_port: u16,
    device_group: &'a str,
    session_id: u32,
    record: &'static str,
    user: String,
    port: String,
    rem_addr: String,
    priv_lvl: u8,
    authen_method: &'static str,
    authen_type: &'static str,
    authen_service: &'static str,
    args: Vec<String>,
}

impl Ctx {
    fn on_event(&mut self, conn: &mut ServerConnection, ev: ServerEvent) -> Option<Pending> {
        let now = Instant::now();
        match ev {
            ServerEvent::Request { session_id: sid, key_index, request } => {
                if key_index > 0 && !self.rotated_key_logged {
                    // Once per connection: which of the group's keys this device uses.
                    self.rotated_key_logged = true;
                    tracing::info!(device = %self.device, device_group = %self.dg_name, key_index, "device uses key #{} of its group (not the first: rotation in progress)", key_index + 1);
                }
                match request {
                    Request::AuthenStart(s) => self.authen_start(conn, sid, s, now),
                    Request::AuthenContinue(c) => self.authen_continue(conn, sid, c),
                    Request::Author(r) => {
                        self.authorize(conn, sid, &r, now);
                        None
                    }
                    Request::Acct(r) => Some(self.account(sid, r, now)),
                }
            }
            ServerEvent::AuthenAborted { session_id, reason } => {
                self.logins.remove(&session_id);
                tracing::info!(device = %self.device, reason = %Esc(&reason), "authentication aborted by the client");
                count("authen", "abort", now);
                None
            }
            ServerEvent::ProtocolError { session_id, error } => {
                let reason = match error {
                    ProtocolError::WrongKey { .. } => "wrong_key",
                    _ => "protocol_error",
                };
                tracing::warn!(device = %self.device, device_group = %self.dg_name, session = ?session_id, %error, "protocol error; closing the connection");
                metrics::counter!("tacvs_rejects_total", "reason" => reason).increment(1);
                None
            }
        }
    }

    fn reply(&self, conn: &mut ServerConnection, sid: u32, r: AuthenReply) {
        match conn.reply_authen(sid, r) {
            Ok(()) => {}
            // A prompt the session has no sequence numbers left for: end it
            // with ERROR rather than leave the device waiting.
            Err(SessionError::SeqExhausted(_)) => {
                let _ = conn.reply_error(sid, "Too many prompts in one session.");
            }
            Err(e) => {
                tracing::warn!(device = %self.device, error = %e, "cannot send authentication reply")
            }
        }
    }

    fn authen_start(
        &mut self,
        conn: &mut ServerConnection,
        sid: u32,
        s: AuthenStart,
        started: Instant,
    ) -> Option<Pending> {
        let kind = if s.authen_service == AuthenService::Enable {
            CredKind::Enable
        } else {
            CredKind::Login
        };
        match s.action {
            AuthenAction::Login => {}
            AuthenAction::ChangePassword => {
                let allowed = self.shared.policy.load().auth.change_password;
                if !allowed || s.authen_type != AuthenType::Ascii {
                    tracing::info!(device = %self.device, user = %Esc(&s.user), allowed, "password change refused");
                    count("authen", "fail", started);
                    let msg = if allowed {
                        "Changing a password needs an ASCII session."
                    } else {
                        "Changing passwords is not enabled on this server; ask your administrator."
                    };
                    self.reply(conn, sid, AuthenReply::new(AuthenStatus::Fail, msg));
                    return None;
                }
                let user = (!s.user.is_empty()).then(|| s.user.clone());
                let first = if user.is_some() {
                    ask("Old password: ")
                } else {
                    prompt_reply(AuthenStatus::GetUser, "")
                };
                self.logins.insert(
                    sid,
                    Login {
                        user,
                        tries: 0,
                        kind,
                        priv_lvl: s.priv_lvl.get(),
                        started,
                        chpass: Some(ChPass::Old),
                    },
                );
                self.reply(conn, sid, first);
                return None;
            }
            AuthenAction::SendAuth => {
                count("authen", "fail", started);
                self.reply(
                    conn,
                    sid,
                    AuthenReply::new(
                        AuthenStatus::Fail,
                        "SENDAUTH is not supported by this server.",
                    ),
                );
                return None;
            }
        }
        match s.authen_type {
            AuthenType::Ascii => {
                let user = (!s.user.is_empty()).then(|| s.user.clone());
                let prompt =
                    if user.is_some() { AuthenStatus::GetPass } else { AuthenStatus::GetUser };
                self.logins.insert(
                    sid,
                    Login {
                        user,
                        tries: 0,
                        kind,
                        priv_lvl: s.priv_lvl.get(),
                        started,
                        chpass: None,
                    },
                );
                self.reply(conn, sid, prompt_reply(prompt, ""));
                None
            }
            AuthenType::Pap => Some(self.check_password(
                sid,
                s.user.clone(),
                s.data.to_vec(),
                kind,
                s.priv_lvl.get(),
                started,
            )),
            AuthenType::Chap | AuthenType::MsChapV1 | AuthenType::MsChapV2 => {
                if kind == CredKind::Enable {
                    tracing::info!(device = %self.device, user = %Esc(&s.user), method = %s.authen_type, result = "fail", reason = "enable via CHAP", "enable");
                    count("authen", "fail", started);
                    self.reply(
                        conn,
                        sid,
                        AuthenReply::new(
                            AuthenStatus::Fail,
                            "Enable with CHAP is not supported; use ASCII or PAP.",
                        ),
                    );
                    return None;
                }
                let check = Check {
                    user: s.user.clone(),
                    credential: Credential::Chap {
                        authen_type: s.authen_type,
                        data: s.data.clone(),
                    },
                    kind,
                    priv_lvl: s.priv_lvl.get(),
                    src: self.device.ip(),
                };
                let shared = self.shared.clone();
                let user = s.user.clone();
                Some(Box::pin(async move {
                    let verdict = crate::authn::verify(&shared, check).await;
                    Done::Password { sid, user, verdict, started, chap: true }
                }))
            }
            AuthenType::NotSet => {
                self.reply(conn, sid, AuthenReply::new(AuthenStatus::Error, "authen_type not set"));
                None
            }
        }
    }

    fn authen_continue(
        &mut self,
        conn: &mut ServerConnection,
        sid: u32,
        c: AuthenContinue,
    ) -> Option<Pending> {
        let Some(login) = self.logins.get_mut(&sid) else {
            self.reply(conn, sid, AuthenReply::new(AuthenStatus::Error, "unexpected CONTINUE"));
            return None;
        };
        let Some(user) = login.user.clone() else {
            if c.user_msg.is_empty() {
                login.tries += 1;
                if login.tries >= self.shared.policy.load().auth.max_login_attempts {
                    self.logins.remove(&sid);
                    tracing::info!(device = %self.device, result = "error", reason = "no username given", "authentication");
                    count("authen", "error", Instant::now());
                    self.reply(
                        conn,
                        sid,
                        AuthenReply::new(AuthenStatus::Error, "No username given."),
                    );
                } else {
                    self.reply(conn, sid, prompt_reply(AuthenStatus::GetUser, ""));
                }
            } else {
                login.tries = 0;
                let next = if login.chpass.is_some() {
                    ask("Old password: ")
                } else {
                    prompt_reply(AuthenStatus::GetPass, "")
                };
                login.user = Some(c.user_msg);
                self.reply(conn, sid, next);
            }
            return None;
        };
        let (kind, priv_lvl, started) = (login.kind, login.priv_lvl, login.started);
        match login.chpass.clone() {
            None | Some(ChPass::Old) => {
                Some(self.check_password(sid, user, c.user_msg.to_vec(), kind, priv_lvl, started))
            }
            Some(ChPass::New) => {
                let auth = &self.shared.policy.load().auth;
                let min = auth.min_password_length;
                if c.user_msg.len() < min {
                    login.tries += 1;
                    if login.tries >= auth.max_login_attempts {
                        self.logins.remove(&sid);
                        count("authen", "fail", started);
                        self.reply(
                            conn,
                            sid,
                            AuthenReply::new(
                                AuthenStatus::Fail,
                                "Too many short passwords; nothing was changed.",
                            ),
                        );
                        return None;
                    }
                    self.reply(
                        conn,
                        sid,
                        ask(&format!("Too short: use at least {min} characters. New password: ")),
                    );
                } else {
                    login.chpass = Some(ChPass::Confirm(c.user_msg.to_vec()));
                    self.reply(conn, sid, ask("Retype new password: "));
                }
                None
            }
            Some(ChPass::Confirm(new)) => {
                self.logins.remove(&sid);
                if new != c.user_msg {
                    count("authen", "fail", started);
                    self.reply(
                        conn,
                        sid,
                        AuthenReply::new(
                            AuthenStatus::Fail,
                            "The passwords differ; nothing was changed.",
                        ),
                    );
                    return None;
                }
                let shared = self.shared.clone();
                let name = lossy(&user);
                Some(Box::pin(async move {
                    let n = name.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        let hash = tacvs_policy::PasswordHash::create(
                            tacvs_policy::HashAlgorithm::Sha512Crypt,
                            &new,
                        )?;
                        shared.passwords.set(&n, hash)?;
                        shared.cache().clear();
                        Ok(())
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                    Done::Changed { sid, user: name, result, started }
                }))
            }
        }
    }

    /// Verify a password off the async threads; the result comes back as `Done`.
    fn check_password(
        &self,
        sid: u32,
        user: Bytes,
        password: Vec<u8>,
        kind: CredKind,
        priv_lvl: u8,
        started: Instant,
    ) -> Pending {
        let shared = self.shared.clone();
        let check = Check {
            user: user.clone(),
            credential: Credential::Password(password),
            kind,
            priv_lvl,
            src: self.device.ip(),
        };
        Box::pin(async move {
            let verdict = crate::authn::verify(&shared, check).await;
            Done::Password { sid, user, verdict, started, chap: false }
        })
    }

    fn on_done(&mut self, conn: &mut ServerConnection, done: Done) {
        match done {
            Done::Changed { sid, user, result, started } => {
                let reply = match &result {
                    Ok(()) => {
                        tracing::info!(device = %self.device, user = %Esc(user.as_bytes()), "password changed");
                        AuthenReply::new(AuthenStatus::Pass, "Password changed.")
                    }
                    Err(e) => {
                        tracing::error!(device = %self.device, user = %Esc(user.as_bytes()), error = %e, "password change not stored");
                        AuthenReply::new(
                            AuthenStatus::Error,
                            "The new password could not be stored; nothing was changed.",
                        )
                    }
                };
                count("authen", if result.is_ok() { "pass" } else { "error" }, started);
                self.reply(conn, sid, reply);
            }
            Done::Password { sid, user, verdict, started, .. }
                if self.logins.get(&sid).is_some_and(|l| l.chpass.is_some()) =>
            {
                // The old password of a change: on success ask for the new one.
                let reply = if verdict == Verdict::Pass {
                    if let Some(l) = self.logins.get_mut(&sid) {
                        l.chpass = Some(ChPass::New);
                    }
                    ask("New password: ")
                } else {
                    self.logins.remove(&sid);
                    count("authen", verdict.result(), started);
                    tracing::info!(device = %self.device, user = %Esc(&user), reason = %why(verdict), "password change refused: old password not verified");
                    refusal_reply(verdict, "Old password incorrect; nothing was changed.")
                };
                self.reply(conn, sid, reply);
            }
            Done::Password { sid, user, verdict, started, chap } => {
                let ascii = self.logins.get_mut(&sid);
                let max_tries = self.shared.policy.load().auth.max_login_attempts;
                let reply = match (verdict, ascii) {
                    (Verdict::Pass, _) => {
                        self.logins.remove(&sid);
                        AuthenReply::new(AuthenStatus::Pass, "")
                    }
                    (Verdict::Fail(_), Some(l)) if l.tries + 1 < max_tries => {
                        l.tries += 1;
                        prompt_reply(AuthenStatus::GetPass, "Password incorrect. ")
                    }
                    (v, _) => {
                        self.logins.remove(&sid);
                        refusal_reply(
                            v,
                            if chap {
                                "CHAP or MS-CHAP authentication failed (these need a chap_secret configured for the user)."
                            } else {
                                "Authentication failed."
                            },
                        )
                    }
                };
                if reply.status != AuthenStatus::GetPass {
                    count("authen", verdict.result(), started);
                }
                tracing::info!(device = %self.device, user = %Esc(&user), result = verdict.result(), reason = %why(verdict), "authentication");
                self.reply(conn, sid, reply);
            }
            Done::Acct { sid, result, started, user } => {
                let r = match &result {
                    Ok(()) => {
                        conn.reply_acct(sid, AcctReply::new(AcctStatus::Success, Bytes::new()))
                    }
                    Err(e) => {
                        tracing::error!(device = %self.device, user = %Esc(user.as_bytes()), error = %e, "accounting record not stored; replying ERROR");
                        conn.reply_acct(
                            sid,
                            AcctReply::new(AcctStatus::Error, "accounting record not stored"),
                        )
                    }
                };
                count("acct", if result.is_ok() { "success" } else { "error" }, started);
                if let Err(e) = r {
                    tracing::debug!(device = %self.device, error = %e, "accounting reply not sent");
                }
            }
        }
    }

    fn authorize(&self, conn: &mut ServerConnection, sid: u32, r: &AaaRequest, started: Instant) {
        let policy: Arc<Policy> = self.shared.policy();
        let d = policy.authorize(self.dg, r);
        let cmd = tacvs_policy::CommandLine::from_args(&r.args);
        tracing::info!(
            device = %self.device,
            user = %Esc(&r.user),
            cmd = %Esc(cmd.as_ref().map(|c| c.0.as_bytes()).unwrap_or_default()),
            result = %d.status,
            reason = %d.reason,
            "authorization"
        );
        count("author", d.status.as_str(), started);
        let mut resp = AuthorResponse::new(d.status, d.server_msg);
        resp.args = d.args;
        if let Err(e) = conn.reply_author(sid, resp) {
            tracing::warn!(device = %self.device, error = %e, "cannot send authorization response");
        }
    }

    fn account(&self, sid: u32, r: AcctRequest, started: Instant) -> Pending {
        let policy = self.shared.policy.load();
        let q = &r.request;
        let rec = AcctRecord {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            server: &policy.server_name,
            device: crate::canonical_ip(self.device.ip()).to_string(),
            device_port: self.device.port(),
            device_group: &self.dg_name,
            session_id: sid,
            record: r.flags.as_str(),
            user: lossy(&q.user),
            port: lossy(&q.port),
            rem_addr: lossy(&q.rem_addr),
            priv_lvl: q.priv_lvl.get(),
            authen_method: q.authen_method.as_str(),
            authen_type: q.authen_type.as_str(),
            authen_service: q.authen_service.as_str(),
            args: q.args.iter().map(|a| a.to_string()).collect(),
        };
        let line = crate::journal::to_line(&rec);
        let user = rec.user.clone();
        tracing::debug!(device = %self.device, user = %Esc(user.as_bytes()), record = rec.record, "accounting");
        let journal = self.shared.journal.clone();
        Box::pin(async move {
            let result = journal.append(line).await;
            Done::Acct { sid, result, started, user }
        })
    }
}

/// The final reply for a check that did not pass.
fn refusal_reply(v: Verdict, fail_msg: &'static str) -> AuthenReply {
    match v {
        Verdict::Refused(_) => {
            AuthenReply::new(AuthenStatus::Fail, "Too many failed logins; try again later.")
        }
        Verdict::Busy => AuthenReply::new(AuthenStatus::Error, "Server busy; try again."),
        Verdict::Malformed => AuthenReply::new(AuthenStatus::Error, "Malformed CHAP data."),
        Verdict::Pass | Verdict::Fail(_) => AuthenReply::new(AuthenStatus::Fail, fail_msg),
    }
}

/// The reason for the log.
fn why(v: Verdict) -> std::borrow::Cow<'static, str> {
    match v {
        Verdict::Pass => "verified".into(),
        Verdict::Fail(w) => w.into(),
        Verdict::Refused(r) => r.to_string().into(),
        Verdict::Busy => "hash queue full".into(),
        Verdict::Malformed => "malformed CHAP data".into(),
    }
}

fn prompt_reply(status: AuthenStatus, prefix: &str) -> AuthenReply {
    let (msg, noecho) = match status {
        AuthenStatus::GetUser => ("Username: ", false),
        _ => ("Password: ", true),
    };
    AuthenReply { noecho, ..AuthenReply::new(status, format!("{prefix}{msg}")) }
}
