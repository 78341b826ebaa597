//! A loopback protocol self-check: a minimal responder built on the server state
//! machine, and a run of every client flow against it. It proves the client and
//! the protocol core end to end over real TCP; it is not the AAA server (that is
//! `tacvs server`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tacvs_proto::chap::{self, ChapData};
use tacvs_proto::{
    AaaRequest, AcctFlags, AcctReply, AcctRequest, AcctStatus, Argument, AuthenAction, AuthenReply,
    AuthenService, AuthenStart, AuthenStatus, AuthenType, AuthorResponse, AuthorStatus, Key,
    PrivLvl, Request, ServerConfig, ServerConnection, ServerEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{Client, ClientOptions, FixedAnswers};

/// The responder's one account.
pub const USER: &str = "demo";
/// Its password (also its CHAP secret).
pub const PASSWORD: &str = "demo-pass";

/// A running responder; dropped, it stops.
#[derive(Debug)]
pub struct Responder {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listen on `bind` and answer with the self-check policy: `demo`/`demo-pass`
/// authenticates by any method; every command is authorized except `reload`;
/// accounting always succeeds.
pub async fn spawn_responder(bind: SocketAddr, key: Key) -> std::io::Result<Responder> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let keys: Arc<[Key]> = vec![key].into();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, keys.clone()));
        }
    });
    Ok(Responder { addr, task })
}

async fn serve(mut stream: TcpStream, keys: Arc<[Key]>) {
    let mut conn = ServerConnection::new(ServerConfig::default(), keys);
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::new();
    let mut login_user: std::collections::HashMap<u32, Bytes> = Default::default();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
        conn.handle_input(&mut buf);
        while let Some(ev) = conn.poll_event() {
            let ServerEvent::Request { session_id: sid, request, .. } = ev else {
                continue;
            };
            // Replies can only fail on a broken session; the connection then closes.
            let _ = match request {
                Request::AuthenStart(s) if s.authen_type == AuthenType::Ascii => {
                    if s.user.is_empty() {
                        conn.reply_authen(
                            sid,
                            AuthenReply::new(AuthenStatus::GetUser, "Username: "),
                        )
                    } else {
                        login_user.insert(sid, s.user.clone());
                        conn.reply_authen(
                            sid,
                            AuthenReply {
                                noecho: true,
                                ..AuthenReply::new(AuthenStatus::GetPass, "Password: ")
                            },
                        )
                    }
                }
                Request::AuthenStart(s) => {
                    let ok = s.user == USER
                        && match s.authen_type {
                            AuthenType::Pap => s.data == PASSWORD,
                            t => chap::verify(t, &s.data, &s.user, PASSWORD).unwrap_or(false),
                        };
                    conn.reply_authen(
                        sid,
                        AuthenReply::new(
                            if ok { AuthenStatus::Pass } else { AuthenStatus::Fail },
                            "",
                        ),
                    )
                }
                Request::AuthenContinue(c) => match login_user.remove(&sid) {
                    None => {
                        login_user.insert(sid, c.user_msg);
                        conn.reply_authen(
                            sid,
                            AuthenReply {
                                noecho: true,
                                ..AuthenReply::new(AuthenStatus::GetPass, "Password: ")
                            },
                        )
                    }
                    Some(u) => {
                        let ok = u == USER && c.user_msg == PASSWORD;
                        conn.reply_authen(
                            sid,
                            AuthenReply::new(
                                if ok { AuthenStatus::Pass } else { AuthenStatus::Fail },
                                "",
                            ),
                        )
                    }
                },
                Request::Author(r) => {
                    let denied = r.arg(b"cmd").is_some_and(|a| a.value() == b"reload");
                    let status = if denied { AuthorStatus::Fail } else { AuthorStatus::PassAdd };
                    conn.reply_author(sid, AuthorResponse::new(status, ""))
                }
                Request::Acct(_) => conn.reply_acct(sid, AcctReply::new(AcctStatus::Success, "")),
            };
        }
        out.clear();
        conn.poll_transmit(&mut out);
        if stream.write_all(&out).await.is_err() || conn.close_reason().is_some() {
            return;
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was tried.
    pub name: &'static str,
    /// What came back (status name or error).
    pub got: String,
    /// What the check expected.
    pub want: &'static str,
    /// How long it took.
    pub elapsed: Duration,
}

impl Check {
    /// Whether it came out as expected.
    pub fn ok(&self) -> bool {
        self.got == self.want
    }
}

fn authen_start(ty: AuthenType, user: &str, data: Vec<u8>) -> AuthenStart {
    AuthenStart {
        action: AuthenAction::Login,
        priv_lvl: PrivLvl::USER,
        authen_type: ty,
        authen_service: AuthenService::Login,
        user: Bytes::copy_from_slice(user.as_bytes()),
        port: Bytes::from_static(b"selfcheck"),
        rem_addr: Bytes::from_static(b"127.0.0.1"),
        data: Bytes::from(data),
    }
}

/// Run every flow against the responder at `addr`, over fresh and single-connect
/// connections, including a wrong key.
pub async fn run(addr: SocketAddr, key: Key) -> Vec<Check> {
    run_as(addr, key, USER, PASSWORD).await
}

/// [`run`] with other credentials: `user` must be allowed `show version` and
/// denied `reload`, and have `password` as its password and CHAP secret.
pub async fn run_as(addr: SocketAddr, key: Key, user: &str, password: &str) -> Vec<Check> {
    run_from(addr, key, user, password, None).await
}

/// [`run_as`] from the source address `source` (a device's own address, so
/// that a server behind a proxy can be checked to see it).
pub async fn run_from(
    addr: SocketAddr,
    key: Key,
    user: &str,
    password: &str,
    source: Option<std::net::IpAddr>,
) -> Vec<Check> {
    flows(addr, Some(key), None, user, password, source).await
}

/// [`run_from`] over TLS (RFC 9887): the same flows, and instead of the
/// wrong-key check, plain TACACS+ to the same port must be refused.
pub async fn run_tls(
    addr: SocketAddr,
    tls: crate::ClientTls,
    user: &str,
    password: &str,
    source: Option<std::net::IpAddr>,
) -> Vec<Check> {
    flows(addr, None, Some(tls), user, password, source).await
}

async fn flows(
    addr: SocketAddr,
    key: Option<Key>,
    tls: Option<crate::ClientTls>,
    user: &str,
    password: &str,
    source: Option<std::net::IpAddr>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let client = |o: ClientOptions| match &tls {
        Some(t) => Client::new(o).with_tls(t.clone()),
        None => Client::new(o),
    };
    let opts = ClientOptions {
        timeout: Duration::from_secs(3),
        source,
        ..ClientOptions::new(addr, key.clone())
    };
    let challenge: [u8; 16] = rand::random();
    let ch8: [u8; 8] = rand::random();
    let peer: [u8; 16] = rand::random();
    let chap_data = |ty: AuthenType, pw: &str| -> Vec<u8> {
        match ty {
            AuthenType::Chap => ChapData {
                id: 1,
                challenge: &challenge,
                response: &chap::chap_response(1, pw.as_bytes(), &challenge),
            }
            .to_vec(),
            AuthenType::MsChapV1 => {
                ChapData { id: 1, challenge: &ch8, response: &chap::mschapv1_response(&ch8, pw) }
                    .to_vec()
            }
            _ => ChapData {
                id: 1,
                challenge: &challenge,
                response: &chap::mschapv2_response(&challenge, &peer, user.as_bytes(), pw),
            }
            .to_vec(),
        }
    };
    let cases: Vec<(&'static str, AuthenType, &str, &'static str)> = vec![
        ("PAP login", AuthenType::Pap, password, "pass"),
        ("PAP login, wrong password", AuthenType::Pap, "wrong", "fail"),
        ("ASCII login (GETUSER, GETPASS)", AuthenType::Ascii, password, "pass"),
        ("CHAP login", AuthenType::Chap, password, "pass"),
        ("MS-CHAPv1 login", AuthenType::MsChapV1, password, "pass"),
        ("MS-CHAPv2 login", AuthenType::MsChapV2, password, "pass"),
        ("MS-CHAPv2 login, wrong password", AuthenType::MsChapV2, "wrong", "fail"),
    ];
    for (name, ty, pw, want) in cases {
        let t = Instant::now();
        let (start_user, data) = match ty {
            AuthenType::Pap => (user, pw.as_bytes().to_vec()),
            AuthenType::Ascii => ("", Vec::new()),
            _ => (user, chap_data(ty, pw)),
        };
        let mut answers = FixedAnswers { user: user.into(), password: pw.into(), max_rounds: 3 };
        let got = match client(opts.clone())
            .authenticate(authen_start(ty, start_user, data), &mut answers)
            .await
        {
            Ok(r) => r.status.to_string(),
            Err(e) => e.to_string(),
        };
        checks.push(Check { name, got, want, elapsed: t.elapsed() });
    }

    // Single-connect: authorizations and accounting on one connection.
    let mut sc = client(ClientOptions { single_connect: true, ..opts.clone() });
    for (name, cmd, want) in [
        ("authorize `show version`", "show version", "pass_add"),
        ("authorize `reload` (denied)", "reload", "fail"),
    ] {
        let t = Instant::now();
        let mut args: Vec<Argument> = vec!["service=shell".parse().expect("static")];
        let mut words = cmd.split(' ');
        args.push(Argument::new("cmd", words.next().unwrap_or_default(), true).expect("short"));
        args.extend(words.map(|w| Argument::new("cmd-arg", w, true).expect("short")));
        let got = match sc.authorize(AaaRequest::new(user.to_owned(), args)).await {
            Ok(r) => r.status.to_string(),
            Err(e) => e.to_string(),
        };
        checks.push(Check { name, got, want, elapsed: t.elapsed() });
    }
    for (name, flags) in [
        ("accounting START", AcctFlags::Start),
        ("accounting WATCHDOG", AcctFlags::Watchdog),
        ("accounting STOP", AcctFlags::Stop),
    ] {
        let t = Instant::now();
        let args =
            vec!["task_id=1".parse().expect("static"), "service=shell".parse().expect("static")];
        let got = match sc
            .account(AcctRequest { flags, request: AaaRequest::new(user.to_owned(), args) })
            .await
        {
            Ok(r) => r.status.to_string(),
            Err(e) => e.to_string(),
        };
        checks.push(Check { name, got, want: "success", elapsed: t.elapsed() });
    }
    checks.push(Check {
        name: "single-connect negotiated and reused",
        got: match sc.single_connect() {
            Some(true) => "yes".into(),
            Some(false) => "no (the server declined)".into(),
            None => "not negotiated".into(),
        },
        want: "yes",
        elapsed: Duration::ZERO,
    });

    let t = Instant::now();
    if tls.is_some() {
        let plain = ClientOptions { key: Some(Key::new("a-key-of-plain-tacacs")), ..opts };
        let got = match Client::new(plain)
            .authorize(AaaRequest::new(user.to_owned(), Vec::new()))
            .await
        {
            Ok(r) => format!("answered {}", r.status),
            Err(_) => "refused".into(),
        };
        checks.push(Check {
            name: "plain TACACS+ to the TLS port",
            got,
            want: "refused",
            elapsed: t.elapsed(),
        });
        return checks;
    }
    let wrong = ClientOptions { key: Some(Key::new("not-the-key")), ..opts };
    let got = match Client::new(wrong).authorize(AaaRequest::new(user.to_owned(), Vec::new())).await
    {
        Ok(r) => r.status.to_string(),
        Err(e) if e.is_wrong_key() => "wrong key detected".into(),
        Err(e) => e.to_string(),
    };
    checks.push(Check { name: "wrong key", got, want: "wrong key detected", elapsed: t.elapsed() });
    checks
}
