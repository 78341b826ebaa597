//! A server on loopback with a configuration made for the test, clients for it,
//! and waiting on conditions (never fixed sleeps).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tacvs_client::{Client, ClientOptions, FixedAnswers, Prompter};
use tacvs_policy::{HashAlgorithm, PasswordHash};
use tacvs_proto::chap::{self, ChapData};
use tacvs_proto::{
    AaaRequest, Argument, AuthenAction, AuthenReply, AuthenService, AuthenStart, AuthenStatus,
    AuthenType, ClientConfig, ClientConnection, ClientEvent, Key, PrivLvl,
};
use tacvs_server::ServerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const KEY: &str = "server-test-key-0123";

/// What a test changes in the configuration; every string is TOML spliced into
/// its table.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    /// Extra `[[server.listen]]` entries (after the first, on 127.0.0.1:0).
    pub listeners: String,
    /// Lines in `[limits]`.
    pub limits: String,
    /// Lines in `[authentication]`.
    pub auth: String,
    /// Lines in `[authentication.lockout]` (default: `max_failures = 0`).
    pub lockout: Option<String>,
    /// Tables after `[accounting]` (e.g. `[accounting.syslog]`).
    pub accounting: String,
    /// Extra `[[user]]` entries.
    pub users: String,
    /// Password of alice, bob and carol; sha256-crypt with this many rounds.
    pub rounds: Option<u32>,
    /// Lines in `[authentication.cache]`.
    pub cache: String,
    /// Tables at the end of the file (e.g. `[[ldap]]`).
    pub tail: String,
}

/// sha256-crypt of `pw` with `rounds` rounds.
pub fn hash(pw: &str, rounds: u32) -> String {
    PasswordHash::create_with_cost(HashAlgorithm::Sha256Crypt, pw.as_bytes(), rounds).unwrap()
}

pub fn config(dir: &Path, c: &Conf) -> String {
    let rounds = c.rounds.unwrap_or(5000);
    let alice = hash("alice-pass", rounds);
    let bob = hash("bob-pass", rounds);
    let carol = hash("carol-pass", rounds);
    let en = hash("alice-enable", rounds);
    let bob_en = hash("bob-enable", rounds);
    let lockout = c.lockout.clone().unwrap_or_else(|| "max_failures = 0".into());
    let mut limits = c.limits.clone();
    for (key, default) in [("read_timeout", "2s"), ("idle_timeout", "5s")] {
        if !limits.contains(key) {
            limits.push_str(&format!("\n{key} = \"{default}\""));
        }
    }
    format!(
        r#"
[server]
name = "test-rs"
[[server.listen]]
address = "127.0.0.1:0"
{listeners}
[limits]
{limits}
[authentication]
password_store = "{dir}/passwords.json"
{auth}
[authentication.lockout]
{lockout}
{cache}
[accounting]
directory = "{dir}/acct"
{accounting}
[[device_group]]
name = "lab"
prefixes = ["127.0.0.0/9"]
keys = ["old-key-0123456789", "{KEY}"]
[[group]]
name = "netops"
priv_lvl = 15
default_command_action = "permit"
  [[group.service]]
  name = "shell"
[[group]]
name = "readonly"
  [[group.service]]
  name = "shell"
  [[group.command]]
  match = "show( .*)?"
  action = "permit"
[[user]]
name = "alice"
password = "{alice}"
enable = "{en}"
chap_secret = "alice-pass"
groups = ["netops"]
[[user]]
name = "bob"
password = "{bob}"
enable = "{bob_en}"
groups = ["readonly"]
[[user]]
name = "carol"
password = "{carol}"
groups = ["netops"]
{users}
{tail}
"#,
        dir = dir.display(),
        listeners = c.listeners,
        limits = limits,
        auth = c.auth,
        accounting = c.accounting,
        users = c.users,
        cache = if c.cache.is_empty() {
            String::new()
        } else {
            format!("[authentication.cache]\n{}", c.cache)
        },
        tail = c.tail,
    )
}

pub struct Harness {
    pub server: ServerHandle,
    pub dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn test_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tacvs-server-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn start(tag: &str, c: Conf) -> Harness {
    let dir = test_dir(tag);
    std::fs::write(dir.join("server.toml"), config(&dir, &c)).unwrap();
    start_in(dir).await
}

/// Start on `dir/server.toml`, written by the caller.
pub async fn start_in(dir: PathBuf) -> Harness {
    let policy = tacvs_policy::load(&dir.join("server.toml")).unwrap();
    let server = tacvs_server::start(policy, Some(dir.join("server.toml"))).await.unwrap();
    Harness { server, dir }
}

impl Harness {
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addrs[0]
    }
    pub fn client(&self) -> Client {
        Client::new(self.opts())
    }
    pub fn client_from(&self, src: &str) -> Client {
        Client::new(ClientOptions { source: Some(src.parse().unwrap()), ..self.opts() })
    }
    pub fn opts(&self) -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(5),
            ..ClientOptions::new(self.addr(), Some(Key::new(KEY)))
        }
    }
    pub fn journal(&self) -> Vec<tacvs_server::journal::AcctRecord<'static>> {
        tacvs_server::journal::read_records(&self.dir.join("acct")).unwrap()
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("server.toml")
    }
    /// Rewrite the configuration file with a text edit.
    pub fn edit_config(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        std::fs::write(self.config_path(), f(text)).unwrap();
    }
    pub fn verifications(&self) -> u64 {
        self.server.shared().hash_verifications()
    }
}

pub fn start_pkt(ty: AuthenType, svc: AuthenService, user: &str, data: Vec<u8>) -> AuthenStart {
    AuthenStart {
        action: AuthenAction::Login,
        priv_lvl: if svc == AuthenService::Enable { PrivLvl::MAX } else { PrivLvl::USER },
        authen_type: ty,
        authen_service: svc,
        user: Bytes::copy_from_slice(user.as_bytes()),
        port: Bytes::from_static(b"vty0"),
        rem_addr: Bytes::from_static(b"192.0.2.50"),
        data: data.into(),
    }
}

/// The START data for a single-exchange login of type `ty`.
pub fn login_data(ty: AuthenType, user: &str, pw: &str) -> Vec<u8> {
    match ty {
        AuthenType::Pap => pw.as_bytes().to_vec(),
        AuthenType::Chap => ChapData {
            id: 9,
            challenge: b"0123456789abcdef",
            response: &chap::chap_response(9, pw.as_bytes(), b"0123456789abcdef"),
        }
        .to_vec(),
        AuthenType::MsChapV1 => ChapData {
            id: 1,
            challenge: b"12345678",
            response: &chap::mschapv1_response(b"12345678", pw),
        }
        .to_vec(),
        AuthenType::MsChapV2 => ChapData {
            id: 1,
            challenge: b"0123456789abcdef",
            response: &chap::mschapv2_response(b"0123456789abcdef", &[7; 16], user.as_bytes(), pw),
        }
        .to_vec(),
        _ => Vec::new(),
    }
}

/// A whole login; ASCII answers the prompts with `user` / `pw`.
pub async fn login_reply(c: &mut Client, ty: AuthenType, user: &str, pw: &str) -> AuthenReply {
    let u = if ty == AuthenType::Ascii { "" } else { user };
    let mut answers = FixedAnswers { user: user.into(), password: pw.into(), max_rounds: 5 };
    c.authenticate(start_pkt(ty, AuthenService::Login, u, login_data(ty, user, pw)), &mut answers)
        .await
        .unwrap()
}

pub async fn login(c: &mut Client, ty: AuthenType, user: &str, pw: &str) -> AuthenStatus {
    login_reply(c, ty, user, pw).await.status
}

pub async fn pap(c: &mut Client, user: &str, pw: &str) -> AuthenStatus {
    login(c, AuthenType::Pap, user, pw).await
}

/// Answers prompts from a list, in order, and records the prompts seen.
#[derive(Debug, Default)]
pub struct Script {
    pub answers: Vec<String>,
    pub prompts: Vec<(AuthenStatus, String)>,
}

impl Script {
    pub fn new(answers: &[&str]) -> Self {
        Script { answers: answers.iter().map(|s| s.to_string()).collect(), prompts: Vec::new() }
    }
}

impl Prompter for Script {
    fn answer(&mut self, status: AuthenStatus, msg: &str, _noecho: bool) -> Option<String> {
        self.prompts.push((status, msg.to_owned()));
        (!self.answers.is_empty()).then(|| self.answers.remove(0))
    }
}

pub fn cmd(user: &str, line: &str) -> AaaRequest {
    let mut args = vec![Argument::new("service", "shell", true).unwrap()];
    let mut w = line.split(' ');
    args.push(Argument::new("cmd", w.next().unwrap(), true).unwrap());
    args.extend(w.map(|x| Argument::new("cmd-arg", x, true).unwrap()));
    AaaRequest::new(user.to_owned(), args)
}

/// Wait for `cond` to hold, polling, up to `within`; false when it never did.
pub async fn eventually<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP connection to `addr`, from `src` when given.
pub async fn connect_from(addr: SocketAddr, src: Option<IpAddr>) -> TcpStream {
    let sock = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.unwrap();
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    sock.connect(addr).await.unwrap()
}

/// A connection from `src` that sends `first` and stalls: a device that
/// began and stopped. (A connection that sends nothing is held by the
/// kernel until the listener's accept deferral ends, about 1 s.)
pub async fn connect_and_stall(addr: SocketAddr, src: Option<IpAddr>, first: &[u8]) -> TcpStream {
    let mut s = connect_from(addr, src).await;
    tokio::io::AsyncWriteExt::write_all(&mut s, first).await.unwrap();
    s
}

/// Read until the server closes; how long that took, or None if it did not
/// within `within`. Bytes read are discarded.
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t = tokio::time::Instant::now();
    let mut sink = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(t + within, s.read(&mut sink)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One single-connect connection driven by the sans-IO client machine, so a
/// test can put many sessions in flight at once.
pub struct Pipe {
    pub stream: TcpStream,
    pub machine: ClientConnection,
    buf: BytesMut,
    next_sid: u32,
}

impl Pipe {
    /// Connect and negotiate single-connect with one authorization.
    pub async fn open(addr: SocketAddr, src: Option<IpAddr>) -> Pipe {
        Pipe::open_with(connect_from(addr, src).await, Vec::new()).await
    }

    /// Negotiate single-connect on `stream`, sending `prefix` (a PROXY header)
    /// first.
    pub async fn open_with(stream: TcpStream, prefix: Vec<u8>) -> Pipe {
        Pipe::try_open_with(stream, prefix).await.expect("the server answers")
    }

    /// [`open_with`](Self::open_with), or None when the server closes instead.
    pub async fn try_open_with(stream: TcpStream, prefix: Vec<u8>) -> Option<Pipe> {
        let cfg = ClientConfig { single_connect: true, ..ClientConfig::default() };
        let machine = ClientConnection::new(cfg, Some(Key::new(KEY)));
        let mut p = Pipe { stream, machine, buf: BytesMut::new(), next_sid: 1 };
        let sid = p.sid();
        p.machine.authorize(sid, cmd("alice", "show clock")).unwrap();
        p.stream.write_all(&prefix).await.ok()?;
        p.flush().await;
        p.try_events(1).await?;
        assert_eq!(p.machine.single_connect(), Some(true));
        Some(p)
    }

    fn sid(&mut self) -> u32 {
        self.next_sid += 1;
        self.next_sid
    }

    /// The bytes of one authorization packet, to send however the test likes.
    pub fn authorization_bytes(&mut self) -> Vec<u8> {
        let sid = self.sid();
        self.machine.authorize(sid, cmd("bob", "show clock")).unwrap();
        let mut out = Vec::new();
        self.machine.poll_transmit(&mut out);
        out
    }

    /// Queue a PAP login (not sent until [`flush`](Self::flush)).
    pub fn pap(&mut self, user: &str, pw: &str) -> u32 {
        self.start(start_pkt(AuthenType::Pap, AuthenService::Login, user, pw.as_bytes().to_vec()))
    }

    pub fn start(&mut self, s: AuthenStart) -> u32 {
        let sid = self.sid();
        self.machine.start_authen(sid, s).unwrap();
        sid
    }

    pub async fn flush(&mut self) {
        let mut out = Vec::new();
        self.machine.poll_transmit(&mut out);
        self.stream.write_all(&out).await.unwrap();
    }

    /// Wait for `n` events (5 s at most each read).
    pub async fn events(&mut self, n: usize) -> Vec<ClientEvent> {
        self.try_events(n).await.expect("replies before the server closed")
    }

    /// [`events`](Self::events), or None when the server closes first.
    pub async fn try_events(&mut self, n: usize) -> Option<Vec<ClientEvent>> {
        let mut got = Vec::new();
        while got.len() < n {
            while let Some(e) = self.machine.poll_event() {
                got.push(e);
            }
            if got.len() >= n {
                break;
            }
            let r =
                tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("a reply within 5 s");
            if !matches!(r, Ok(n) if n > 0) {
                return None;
            }
            self.machine.handle_input(&mut self.buf);
        }
        Some(got)
    }

    /// The status of every authentication reply among `events`.
    pub async fn authen_statuses(&mut self, n: usize) -> Vec<AuthenStatus> {
        self.events(n)
            .await
            .into_iter()
            .map(|e| match e {
                ClientEvent::AuthenReply { reply, .. } => reply.status,
                other => panic!("expected an authentication reply, got {other:?}"),
            })
            .collect()
    }
}
