//! One connection, the I/O side: PROXY intake, device lookup, limits, then
//! the loop that feeds the protocol machine ([`ServerConnection`]), answers
//! authorization inline, runs slow work (credential checks, password stores,
//! journal appends) without stalling other sessions on the same connection,
//! and writes replies. The decisions are elsewhere and pure: the dialogue of
//! each authentication session in [`crate::login`], deadlines in
//! [`crate::deadline`], authorization in the policy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use tacvs_policy::policy::Listener;
use tacvs_proto::{
    AaaRequest, AcctReply, AcctRequest, AcctStatus, AuthenContinue, AuthenReply, AuthenStart,
    AuthorResponse, ProtocolError, Request, ServerConfig, ServerConnection, ServerEvent,
    SessionError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::authn::{Check, Verdict};
use crate::journal::JournalError;
use crate::logfmt::{Addr, AddrText, Esc};
use crate::login::{Action, Log, Login};
use crate::socket::Socket;
use crate::{Shared, deadline, login};

type Pending = Pin<Box<dyn std::future::Future<Output = Done> + Send>>;

/// A connection's slow work in flight (verifications that wait on a hash, a
/// directory or the journal). The set is made on first use: making one costs
/// two allocations, and a connection that only logs in with a password the
/// credential cache knows, or only asks for authorization of known users,
/// never needs it: those are answered inline.
#[derive(Default)]
struct Slow(Option<FuturesUnordered<Pending>>);

impl Slow {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(FuturesUnordered::is_empty)
    }

    fn push(&mut self, work: Pending) {
        self.0.get_or_insert_with(FuturesUnordered::new).push(work);
    }

    /// The next finished piece of work (never, while there is none).
    async fn next(&mut self) -> Option<Done> {
        match &mut self.0 {
            Some(set) => set.next().await,
            None => std::future::pending().await,
        }
    }
}

/// The result of slow work, applied back to the session that asked for it.
enum Done {
    Verified {
        sid: u32,
        verdict: Verdict,
    },
    Authorized {
        sid: u32,
        decision: tacvs_policy::AuthorDecision,
        started: Instant,
        request: AaaRequest,
        account: Option<std::sync::Arc<crate::accounts::Account>>,
    },
    Stored {
        sid: u32,
        result: Result<(), String>,
    },
    Acct {
        sid: u32,
        result: Result<(), JournalError>,
        started: Instant,
        user: Bytes,
    },
}

struct Ctx {
    shared: Arc<Shared>,
    device: SocketAddr,
    dg: usize,
    dg_name: std::sync::Arc<str>,
    keys: usize,
    logins: HashMap<u32, Login>,
    rotated_key_logged: bool,
    info: Arc<crate::sessions::Conn>,
    head: Head,
    tls: Option<Arc<crate::tls::Authenticated>>,
    /// A health check's connection ([`Peer::probe`]).
    probe: bool,
}

/// The first bytes a connection sent (before its first whole packet).
#[derive(Debug, Default, Clone, Copy)]
struct Head {
    bytes: [u8; 8],
    len: usize,
}

impl Head {
    fn of(buf: &[u8]) -> Head {
        let mut h = Head::default();
        h.len = buf.len().min(h.bytes.len());
        h.bytes[..h.len].copy_from_slice(&buf[..h.len]);
        h
    }

    fn get(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What a peer that does not speak TACACS+ seems to speak, from its first bytes.
fn foreign(first: &[u8]) -> Option<&'static str> {
    const HTTP: [&[u8]; 7] = [b"GET ", b"POST", b"HEAD", b"PUT ", b"OPTI", b"HTTP", b"CONN"];
    if HTTP.iter().any(|m| first.starts_with(m)) {
        Some("HTTP (a web browser, a health check or a scanner?)")
    } else if first.starts_with(&[0x16, 0x03]) {
        Some("TLS (use a TLS listener)")
    } else if first.starts_with(b"SSH-") {
        Some("SSH")
    } else if first.starts_with(b"PROXY") || first.starts_with(b"\r\n\r\n\0\r\nQUIT\n") {
        Some(
            "a PROXY protocol header, but this listener has proxy_protocol = \"off\" or does \
             not list the peer in trusted_proxies",
        )
    } else if first.first().is_some_and(|&b| b >> 4 != 0xc) {
        Some("something other than TACACS+ (its first byte is not a TACACS+ version)")
    } else {
        None
    }
}

/// A device that connected straight to a listener that takes connections
/// from directors only: answer its first request with ERROR saying so (the
/// operator then reads "director" and "PROXY" instead of a dropped
/// connection), then close. Only for addresses in a device group: the reply
/// is obfuscated with the group's key.
async fn refuse_direct(
    stream: &mut Socket,
    buf: &mut BytesMut,
    policy: &tacvs_policy::Policy,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
) {
    const MSG: &str = "This server port takes connections from a director only (PROXY protocol \
        required): send the device to the director's address instead.";
    let Some((_, group)) = policy.device_group(crate::canonical_ip(peer.ip())) else { return };
    let cfg = ServerConfig {
        max_body: policy.limits.max_body.0 as u32,
        single_connect: false,
        max_sessions: 1,
        tls: false,
    };
    let mut conn = ServerConnection::new(cfg, group.keys.clone());
    loop {
        conn.handle_input(buf);
        match conn.poll_event() {
            Some(ServerEvent::Request { session_id, .. }) => {
                let _ = conn.reply_error(session_id, MSG);
                let mut out = Vec::new();
                conn.poll_transmit(&mut out);
                let _ = tokio::time::timeout_at(deadline, stream.write_all(&out)).await;
                return;
            }
            Some(_) => return,
            None if conn.close_reason().is_some() => return,
            None => {}
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

pub(crate) async fn serve(
    shared: &Arc<Shared>,
    mut stream: Socket,
    peer: SocketAddr,
    l: &Listener,
) {
    let accepted = tokio::time::Instant::now();
    let policy = shared.policy();
    let mut buf = BytesMut::new();

    // PROXY first on every listener that takes it; on a TLS listener the TLS
    // bytes follow the header. A LOCAL header is the proxy's own connection:
    // a director's health check, whose requests are logged at DEBUG.
    let mut probe = false;
    let device = match crate::proxy::intake(
        &mut stream,
        &mut buf,
        l.proxy,
        l.trusts(peer.ip()),
        policy.limits.proxy_header_timeout.0.min(policy.limits.first_packet_timeout.0),
    )
    .await
    {
        Ok(crate::proxy::Intake::Proxied(addr)) => addr,
        Ok(crate::proxy::Intake::Direct) => peer,
        Ok(crate::proxy::Intake::Local) => {
            probe = true;
            peer
        }
        Err(e) => {
            tracing::warn!(%peer, reason = %e, "connection refused at PROXY intake");
            metrics::counter!("tacvs_rejects_total", "reason" => "proxy_protocol").increment(1);
            if e == crate::proxy::ProxyError::Missing && l.tls.is_none() {
                let deadline = accepted + policy.limits.first_packet_timeout.0;
                refuse_direct(&mut stream, &mut buf, &policy, peer, deadline).await;
            }
            return;
        }
    };
    // One address, one count: an IPv4-mapped IPv6 address (dual-stack socket,
    // or a PROXY header that wrote it so) is the IPv4 device it maps.
    let device = SocketAddr::new(crate::canonical_ip(device.ip()), device.port());
    if let Some(tls) = &l.tls {
        let arrival = Arrival { device, probe };
        // Boxed: the TLS state machine is four times the plain one, and
        // inline it would make every plain connection's task that large.
        return Box::pin(crate::tls::serve(shared, stream, buf, arrival, tls, policy, accepted))
            .await;
    }
    let Some((dg, group)) = policy.device_group(device.ip()) else {
        tracing::warn!(%device, %peer, "connection refused: the device's address is in no device_group");
        metrics::counter!("tacvs_rejects_total", "reason" => "unknown_device").increment(1);
        return;
    };
    if group.tls.required {
        tracing::warn!(%device, device_group = %group.name, "connection refused: the device \
            group requires TLS, and this listener is plain TACACS+: configure the device for \
            TACACS+ over TLS to the TLS listener");
        metrics::counter!("tacvs_rejects_total", "reason" => "tls_required").increment(1);
        return;
    }
    let Some(_slot) = SourceSlot::admit(shared, device, &policy) else { return };
    let peer = Peer { device, dg, tls: None, probe };
    run(shared, stream, peer, policy, buf, accepted).await;
}

/// Where a connection came from, once any PROXY header is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// The device's address (the PROXY header's, or the TCP peer's).
    pub device: SocketAddr,
    /// A proxy's own connection ([`Peer::probe`]).
    pub probe: bool,
}

/// Who the device of a connection is, once known.
pub(crate) struct Peer {
    /// Its address (after PROXY; a certificate's iPAddress with `identity = "san-ip"`).
    pub device: SocketAddr,
    /// Its device group's index.
    pub dg: usize,
    /// The certificate it authenticated with, over TLS.
    pub tls: Option<Arc<crate::tls::Authenticated>>,
    /// A proxy's own connection (PROXY v2 LOCAL): a director's health check.
    /// Its requests are logged at DEBUG and kept out of the authorization log,
    /// so checks every few hundred milliseconds do not drown real decisions.
    pub probe: bool,
}

/// A byte stream a connection runs on: plain TCP or TLS over it.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// Wait until a read would make progress (bytes arrived, or bytes the
    /// stream holds already), without a read buffer: an idle connection
    /// allocates only once its device speaks.
    fn readable(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;

    /// End the connection cleanly (TLS: close_notify), within a short bound.
    fn finish(&mut self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

impl Transport for Socket {
    async fn readable(&mut self) -> std::io::Result<()> {
        Socket::readable(self).await
    }
}

/// Serve the TACACS+ sessions of one connection whose device is known:
/// feed the protocol machine, answer, run slow work, until the connection ends.
pub(crate) async fn run<S: Transport>(
    shared: &Arc<Shared>,
    mut stream: S,
    peer: Peer,
    policy: Arc<tacvs_policy::Policy>,
    mut buf: BytesMut,
    accepted: tokio::time::Instant,
) {
    let Peer { device, dg, tls, probe } = peer;
    let group = &policy.device_groups[dg];
    let cfg = ServerConfig {
        max_body: policy.limits.max_body.0 as u32,
        single_connect: true,
        max_sessions: policy.limits.max_sessions_per_connection,
        tls: tls.is_some(),
    };
    let mut conn = ServerConnection::new(cfg, group.keys.clone());
    // The group's name is shared by the connection and its status entry.
    let dg_name = group.name.clone();
    let registration = crate::sessions::Registry::register(shared, device, dg_name.clone());
    let mut ctx = Ctx {
        shared: shared.clone(),
        device,
        dg,
        dg_name,
        keys: group.keys.len(),
        logins: HashMap::new(),
        rotated_key_logged: false,
        info: registration.conn.clone(),
        head: Head::default(),
        tls: tls.clone(),
        probe,
    };
    // The connection must not keep an old policy alive after a reload.
    drop(policy);

    let mut pending = Slow::default();
    let mut shutdown = shared.shutdown.clone();
    let mut draining = *shutdown.borrow();
    // One wait for the shutdown signal for the connection's life (a new one
    // per loop would join and leave the signal's waiter list per request).
    let stopping = shutdown.changed();
    tokio::pin!(stopping);
    let mut peer_closed = false;
    let mut clock = deadline::Clock::new(accepted);
    // One timer for the connection's life, re-armed lazily: a deadline that
    // moves later (the idle deadline after every request) leaves it where it
    // is, and when it fires early the loop re-arms it for the real deadline.
    // Re-arming it per request would cost a timer-wheel removal and insertion
    // on every request of every single-connect connection.
    let first = ctx.shared.policy.load().limits.first_packet_timeout.0;
    let timer = tokio::time::sleep_until(accepted + first);
    tokio::pin!(timer);
    loop {
        // Process what is buffered (also bytes that came with the PROXY header).
        // While draining we still read: a session in progress (an ASCII login
        // waiting for its password) must be able to finish.
        if !buf.is_empty() {
            let before = buf.len();
            if !clock.got_packet {
                // Kept to describe a peer that does not speak TACACS+ at all.
                ctx.head = Head::of(&buf);
                if tls.is_none() && tacvs_tls::looks_like_tls(&buf) {
                    // No RFC 8907 §4.1 reply: it would be garbage to a TLS client.
                    tracing::warn!(%device, device_group = %ctx.dg_name, "this is TLS; use a \
                        TLS listener: the device speaks TACACS+ over TLS to a plain TACACS+ \
                        listener (give the listener a [server.listen.tls] section, or point \
                        the device at the TLS one); closing");
                    metrics::counter!("tacvs_rejects_total", "reason" => "tls_on_plain")
                        .increment(1);
                    break;
                }
            }
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
            let mut write = std::pin::pin!(write_all(&mut stream, &out));
            // A reply the socket takes at once (the common case) needs no timer.
            let written = match futures::FutureExt::now_or_never(write.as_mut()) {
                Some(r) => Ok(r),
                None => {
                    let wt = ctx.shared.policy.load().limits.read_timeout.0;
                    tokio::time::timeout(wt, write).await
                }
            };
            match written {
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
        ctx.info.set_state(if !pending.is_empty() {
            crate::sessions::State::Working
        } else if conn.open_sessions() > 0 {
            crate::sessions::State::InSession
        } else {
            crate::sessions::State::Idle
        });
        let limits = deadline::Limits::from_conf(&ctx.shared.policy.load().limits);
        let (until, kind) = clock.deadline(&limits, conn.open_sessions() > 0);
        if until < timer.deadline() {
            timer.as_mut().reset(until);
        }
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
            () = &mut timer, if pending.is_empty() => {
                if tokio::time::Instant::now() < until {
                    // Fired for an earlier deadline that has since moved.
                    timer.as_mut().reset(until);
                    continue;
                }
                tracing::debug!(
                    %device,
                    open_sessions = conn.open_sessions(),
                    timeout = kind.as_str(),
                    "timeout; closing"
                );
                metrics::counter!("tacvs_timeouts_total", "kind" => kind.as_str()).increment(1);
                break;
            }
            _ = &mut stopping, if !draining => draining = true,
        }
    }
    stream.finish().await;
}

/// Write and flush (TLS holds records until flushed).
async fn write_all<S: Transport>(stream: &mut S, out: &[u8]) -> std::io::Result<()> {
    stream.write_all(out).await?;
    stream.flush().await
}

/// The read buffer a connection allocates when bytes arrive after it was
/// idle: one authorization or accounting packet fits (they are a few hundred
/// bytes), and an allocation this size comes from the allocator's per-thread
/// cache; larger packets grow it.
const READ_CHUNK: usize = 1024;

async fn read_into<S: Transport>(stream: &mut S, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() == 0 {
        stream.readable().await?;
        buf.reserve(READ_CHUNK);
    }
    stream.read_buf(buf).await
}

/// A per-source connection slot, released on drop.
pub(crate) struct SourceSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl SourceSlot {
    /// Take `device`'s slot under `max_connections_per_source`, or log and
    /// count the refusal.
    pub(crate) fn admit(
        shared: &Arc<Shared>,
        device: SocketAddr,
        policy: &tacvs_policy::Policy,
    ) -> Option<SourceSlot> {
        let max = policy.limits.max_connections_per_source;
        let slot = SourceSlot::take(shared, device.ip(), max);
        if slot.is_none() {
            tracing::warn!(%device, max, "connection refused: max_connections_per_source reached");
            metrics::counter!("tacvs_rejects_total", "reason" => "max_connections_per_source")
                .increment(1);
        }
        slot
    }

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
        // One hash of the address, not one to count down and one to remove.
        if let std::collections::hash_map::Entry::Occupied(mut e) = m.entry(self.ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// The command line of an authorization, escaped, formatted only when a log
/// line that shows it is written.
struct CmdOf<'a>(&'a [tacvs_proto::Argument]);

impl std::fmt::Display for CmdOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = tacvs_policy::CommandLine::from_args(self.0);
        Esc(line.as_ref().map(|c| c.0.as_bytes()).unwrap_or_default()).fmt(f)
    }
}

/// Handles for the per-request metrics, by the pair's index in
/// [`PAIRS`](crate::status::PAIRS). `counter!` with labels builds the key
/// and looks it up in the recorder's registry on every call; a handle is an
/// atomic add. Taken on a series' first use, so the recorder must be
/// installed before the first request (`tacvs server` installs it before it
/// starts the server). A pair not listed there takes the macro's path.
static SERIES: [OnceLock<metrics::Counter>; crate::status::PAIRS.len()] =
    [const { OnceLock::new() }; crate::status::PAIRS.len()];
static DURATIONS: [(&str, OnceLock<metrics::Histogram>); 3] =
    [("author", OnceLock::new()), ("authen", OnceLock::new()), ("acct", OnceLock::new())];

fn count(shared: &Shared, kind: &'static str, result: &'static str, elapsed: std::time::Duration) {
    // The pair is found once, for the status page's count and the metric's.
    let pair = shared.count_request(kind, result);
    count_pair(pair, kind, result);
    let secs = elapsed.as_secs_f64();
    match DURATIONS.iter().find(|(k, _)| *k == kind) {
        Some((_, h)) => h
            .get_or_init(|| metrics::histogram!("tacvs_request_duration_seconds", "type" => kind))
            .record(secs),
        None => metrics::histogram!("tacvs_request_duration_seconds", "type" => kind).record(secs),
    }
}

/// Count a request in `tacvs_requests_total` (no duration).
fn count_only(kind: &'static str, result: &'static str) {
    count_pair(crate::status::pair_index(kind, result), kind, result);
}

/// `count_only` with the pair's index in [`PAIRS`](crate::status::PAIRS)
/// already found.
fn count_pair(pair: Option<usize>, kind: &'static str, result: &'static str) {
    let series = || metrics::counter!("tacvs_requests_total", "type" => kind, "result" => result);
    match pair {
        Some(i) => SERIES[i].get_or_init(series).increment(1),
        None => series().increment(1),
    }
}

impl Ctx {
    fn on_event(&mut self, conn: &mut ServerConnection, ev: ServerEvent) -> Option<Pending> {
        let now = Instant::now();
        match ev {
            ServerEvent::Request { session_id: sid, key_index, request } => {
                if key_index > 0 && !self.rotated_key_logged {
                    // Once per connection: which of the group's keys this device uses.
                    self.rotated_key_logged = true;
                    tracing::info!(
                        device = %Addr(self.device),
                        device_group = %self.dg_name,
                        key_number = key_index + 1,
                        "device uses a later key of its group (not the first: rotation in progress)"
                    );
                }
                self.info.request();
                match request {
                    Request::AuthenStart(s) => self.authen_start(conn, sid, &s, now),
                    Request::AuthenContinue(c) => self.authen_continue(conn, sid, &c, now),
                    Request::Author(r) => self.authorize(conn, sid, r, now),
                    Request::Acct(r) => Some(self.account(sid, r, now)),
                }
            }
            ServerEvent::AuthenAborted { session_id, reason } => {
                self.logins.remove(&session_id);
                tracing::info!(
                    device = %Addr(self.device),
                    reason = %Esc(&reason),
                    "authentication aborted by the client"
                );
                self.shared.count_request("authen", "abort");
                count_only("authen", "abort");
                None
            }
            ServerEvent::ProtocolError { session_id, error } => {
                let first = self.info_requests() == 0;
                match &error {
                    ProtocolError::WrongKey { error: detail, .. } => {
                        tracing::warn!(
                            device = %Addr(self.device),
                            device_group = %self.dg_name,
                            keys = self.keys,
                            decoder = %detail,
                            "the device's key is none of its device group's keys: check the key \
                             configured on the device; closing the connection"
                        );
                        metrics::counter!("tacvs_rejects_total", "reason" => "wrong_key")
                            .increment(1);
                    }
                    ProtocolError::Decode(_) if first && foreign(self.head.get()).is_some() => {
                        let what = foreign(self.head.get()).unwrap_or_default();
                        tracing::warn!(
                            device = %Addr(self.device),
                            first_bytes = %Esc(self.head.get()),
                            "the peer does not speak TACACS+; it looks like {what}; closing the connection"
                        );
                        metrics::counter!("tacvs_rejects_total", "reason" => "not_tacacs")
                            .increment(1);
                    }
                    _ => {
                        let session = session_id.map(|s| format!("{s:#010x}")).unwrap_or_default();
                        tracing::warn!(
                            device = %Addr(self.device),
                            device_group = %self.dg_name,
                            session,
                            %error,
                            "protocol error; closing the connection"
                        );
                        metrics::counter!("tacvs_rejects_total", "reason" => "protocol_error")
                            .increment(1);
                    }
                }
                None
            }
        }
    }

    fn settings(&self) -> login::Settings {
        let policy = self.shared.policy.load();
        let methods = policy.device_groups.get(self.dg).and_then(|g| g.login_methods);
        login::Settings::from_conf(&policy.auth, methods)
    }

    fn authen_start(
        &mut self,
        conn: &mut ServerConnection,
        sid: u32,
        s: &AuthenStart,
        now: Instant,
    ) -> Option<Pending> {
        let (login, action) = Login::start(s, &self.settings(), now);
        self.act(conn, sid, login, action)
    }

    fn authen_continue(
        &mut self,
        conn: &mut ServerConnection,
        sid: u32,
        c: &AuthenContinue,
        now: Instant,
    ) -> Option<Pending> {
        let Some(mut login) = self.logins.remove(&sid) else {
            self.reply(
                conn,
                sid,
                AuthenReply::new(tacvs_proto::AuthenStatus::Error, "unexpected CONTINUE"),
            );
            return None;
        };
        let action = login.answered(&c.user_msg, &self.settings(), now);
        self.act(conn, sid, login, action)
    }

    /// Carry out what the session's machine asked for; keep the machine while
    /// the session goes on.
    fn act(
        &mut self,
        conn: &mut ServerConnection,
        sid: u32,
        login: Login,
        action: Action,
    ) -> Option<Pending> {
        let pending = match action {
            Action::Reply { reply, log } => {
                if let Some(l) = log {
                    self.log(&l);
                }
                self.reply(conn, sid, reply);
                None
            }
            Action::Verify { user, credential, kind, priv_lvl, otp } => {
                let check = Check { user, credential, kind, priv_lvl, src: self.device.ip(), otp };
                // A password the credential cache knows (repeated logins from
                // automation): answered now, with no task and no extra turn
                // of the connection's loop.
                if let Some(verdict) = crate::authn::cached(&self.shared, &check) {
                    let mut login = login;
                    let action = login.verified(verdict, &self.settings(), Instant::now());
                    return self.act(conn, sid, login, action);
                }
                let shared = self.shared.clone();
                Some(Box::pin(async move {
                    let verdict = crate::authn::verify(&shared, check).await;
                    Done::Verified { sid, verdict }
                }) as Pending)
            }
            Action::Store { user, password } => {
                let shared = self.shared.clone();
                Some(Box::pin(async move {
                    let result =
                        tokio::task::spawn_blocking(move || store(&shared, &user, &password))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                    Done::Stored { sid, result }
                }) as Pending)
            }
        };
        if !login.is_done() {
            self.logins.insert(sid, login);
        }
        pending
    }

    fn info_requests(&self) -> u64 {
        self.info.requests()
    }

    fn log(&self, l: &Log) {
        self.info.set_user(&l.user);
        if self.probe {
            tracing::debug!(
                device = %Addr(self.device),
                user = %Esc(&l.user),
                method = %l.method,
                result = l.result,
                reason = %l.reason,
                "health check: {}", l.event
            );
        } else {
            // Every field but the user's as a `&str`: recorded without a
            // formatting call (this line is written once per login).
            let device = AddrText::new(self.device);
            macro_rules! login_line {
                ($($user:tt)+) => {
                    tracing::info!(
                        message = l.event,
                        device = device.as_str(),
                        user = $($user)+,
                        method = l.method.as_str(),
                        result = l.result,
                        reason = &*l.reason,
                    )
                };
            }
            // A plain user name (the common one) too: `Esc` would write it as is.
            match Esc(&l.user).as_plain() {
                Some(user) => login_line!(user),
                None => login_line!(%Esc(&l.user)),
            }
        }
        if l.last {
            count(&self.shared, "authen", l.result, l.elapsed);
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
                tracing::warn!(device = %Addr(self.device), error = %e, "cannot send authentication reply")
            }
        }
    }

    fn on_done(&mut self, conn: &mut ServerConnection, done: Done) {
        let now = Instant::now();
        match done {
            Done::Verified { sid, verdict } => {
                if let Some(mut login) = self.logins.remove(&sid) {
                    let action = login.verified(verdict, &self.settings(), now);
                    // A verification never asks for more slow work.
                    let _ = self.act(conn, sid, login, action);
                }
            }
            Done::Authorized { sid, decision, started, request, account } => {
                self.answer_author(conn, sid, decision, started, request, account);
            }
            Done::Stored { sid, result } => {
                if let Some(mut login) = self.logins.remove(&sid) {
                    let action = login.stored(result, now);
                    let _ = self.act(conn, sid, login, action);
                }
            }
            Done::Acct { sid, result, started, user } => {
                let r = match &result {
                    Ok(()) => {
                        conn.reply_acct(sid, AcctReply::new(AcctStatus::Success, Bytes::new()))
                    }
                    Err(e) => {
                        tracing::error!(
                            device = %Addr(self.device),
                            user = %Esc(&user),
                            error = %e,
                            "accounting record not stored; replying ERROR"
                        );
                        conn.reply_acct(
                            sid,
                            AcctReply::new(AcctStatus::Error, "accounting record not stored"),
                        )
                    }
                };
                count(
                    &self.shared,
                    "acct",
                    if result.is_ok() { "success" } else { "error" },
                    started.elapsed(),
                );
                if let Err(e) = r {
                    tracing::debug!(device = %Addr(self.device), error = %e, "accounting reply not sent");
                }
            }
        }
    }

    /// Answer an authorization: inline for the file's users and directory
    /// users whose groups are known; after a directory lookup otherwise.
    fn authorize(
        &self,
        conn: &mut ServerConnection,
        sid: u32,
        r: AaaRequest,
        started: Instant,
    ) -> Option<Pending> {
        let policy = self.shared.policy.load();
        if policy.directories.is_empty() {
            let d = policy.authorize(self.dg, &r);
            self.answer_author(conn, sid, d, started, r, None);
            return None;
        }
        let local = policy.user(&r.user).map(|u| u.prefer);
        let need = crate::backend::Need::Authorization;
        let break_glass = match crate::backend::plan(local, true, need) {
            crate::backend::Plan::Local => {
                let d = policy.authorize(self.dg, &r);
                self.answer_author(conn, sid, d, started, r, None);
                return None;
            }
            crate::backend::Plan::Directory { break_glass } => break_glass,
        };
        let fresh = self.shared.accounts().fresh(&r.user, Instant::now());
        if let Some(found) = fresh {
            let (d, account) =
                crate::author::decide(&policy, self.dg, &r, Ok(found), break_glass, None);
            self.answer_author(conn, sid, d, started, r, account);
            return None;
        }
        drop(policy);
        let shared = self.shared.clone();
        let dg = self.dg;
        Some(Box::pin(async move {
            let (decision, account) =
                crate::author::lookup_and_decide(&shared, dg, &r, break_glass).await;
            Done::Authorized { sid, decision, started, request: r, account }
        }) as Pending)
    }

    fn answer_author(
        &self,
        conn: &mut ServerConnection,
        sid: u32,
        d: tacvs_policy::AuthorDecision,
        started: Instant,
        r: AaaRequest,
        account: Option<std::sync::Arc<crate::accounts::Account>>,
    ) {
        // With the authorization log on, every decision is in it (written off
        // this path); the log line is then DEBUG, so the common load does not
        // format and write(2) a line per request. Fields are only computed
        // when the line is enabled.
        let cmd = CmdOf(&r.args);
        if self.shared.authz_log.is_some() || self.probe {
            tracing::debug!(
                device = %Addr(self.device),
                user = %Esc(&r.user),
                cmd = %cmd,
                result = %d.status,
                reason = %d.reason,
                "authorization"
            );
        } else {
            tracing::info!(
                device = %Addr(self.device),
                user = %Esc(&r.user),
                cmd = %cmd,
                result = %d.status,
                reason = %d.reason,
                "authorization"
            );
        }
        count(&self.shared, "author", d.status.as_str(), started.elapsed());
        let mut resp = AuthorResponse::new(d.status, d.server_msg);
        resp.args = d.args;
        if let Err(e) = conn.reply_author(sid, resp) {
            tracing::warn!(device = %Addr(self.device), error = %e, "cannot send authorization response");
        }
        if let Some(log) = self.shared.authz_log.as_ref().filter(|_| !self.probe) {
            log.record(&crate::journal::AuthzEvent {
                at: std::time::SystemTime::now(),
                device: self.device.ip(),
                device_group: &self.dg_name,
                request: &r,
                status: d.status,
                reason: &d.reason,
                account: account.as_deref(),
            });
        }
    }

    fn account(&self, sid: u32, r: AcctRequest, started: Instant) -> Pending {
        let policy = self.shared.policy.load();
        let q = &r.request;
        let tls = self.tls.as_ref().map(|t| t.journal());
        let line = crate::journal::with_time(std::time::SystemTime::now(), |time| {
            crate::journal::AcctSource {
                time,
                server: &policy.server_name,
                device: self.device,
                device_group: &self.dg_name,
                session_id: sid,
                flags: r.flags,
                request: q,
                tls: tls.as_ref(),
            }
            .line()
        });
        tracing::debug!(device = %Addr(self.device), user = %Esc(&q.user), record = r.flags.as_str(), "accounting");
        let user = q.user.clone();
        let journal = self.shared.journal.clone();
        Box::pin(async move {
            let result = journal.append(line).await;
            Done::Acct { sid, result, started, user }
        })
    }
}

/// Hash a new password and store it (blocking: run off the async threads);
/// the credential cache starts a new generation.
fn store(shared: &Shared, user: &[u8], password: &[u8]) -> Result<(), String> {
    let name = String::from_utf8_lossy(user);
    let hash =
        tacvs_policy::PasswordHash::create(tacvs_policy::HashAlgorithm::Sha512Crypt, password)?;
    shared.passwords.set(&name, hash)?;
    shared.cache().clear();
    Ok(())
}
