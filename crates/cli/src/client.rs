//! `tacvs client`: an operator's TACACS+ client on the client state machine.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use tacvs_client::{Client, ClientError, ClientOptions, FixedAnswers, Prompter};
use tacvs_proto::chap::{self, ChapData};
use tacvs_proto::{
    AaaRequest, AcctFlags, AcctRequest, AcctStatus, Argument, AuthenAction, AuthenService,
    AuthenStart, AuthenStatus, AuthenType, AuthorStatus, PrivLvl,
};

/// Every option of `tacvs client` is accepted before or after the request
/// type (`tacvs client --json authorize …` or `tacvs client authorize --json …`).
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server address, HOST:PORT (required).
    #[arg(long, short = 's', value_name = "HOST:PORT", global = true)]
    server: Option<String>,
    /// Shared secret. Prefer --key-file or TACVS_KEY: a command line is visible to other users.
    #[arg(
        long,
        env = "TACVS_KEY",
        hide_env_values = true,
        conflicts_with = "key_file",
        global = true
    )]
    key: Option<String>,
    /// Read the shared secret from this file (first line).
    #[arg(long, value_name = "FILE", global = true)]
    key_file: Option<PathBuf>,
    /// Bound on connecting and on each wait for a reply (e.g. 5s, 800ms).
    #[arg(long, default_value = "5s", value_parser = crate::common::duration, global = true)]
    timeout: Duration,
    /// Ask for single-connect mode (RFC 8907 §4.3).
    #[arg(long, global = true)]
    single_connect: bool,
    /// Connect from this source address (ADDRESS, or ADDRESS/32).
    #[arg(long, value_name = "ADDRESS", value_parser = crate::common::source, global = true)]
    source: Option<ipnet::IpNet>,
    /// Print the reply as one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    tls: crate::common::TlsArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Type {
    Ascii,
    Pap,
    Chap,
    Mschapv1,
    Mschapv2,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Service {
    Login,
    Enable,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Authenticate a user (a login, or enable with --service enable).
    Authenticate {
        /// User name (ASCII logins also ask for it when empty).
        #[arg(long, short = 'u', default_value = "")]
        user: String,
        /// Password; without it (or --password-stdin) it is asked for on the
        /// terminal, without echo.
        #[arg(long, short = 'p', conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from standard input (its first line).
        #[arg(long)]
        password_stdin: bool,
        /// Authentication type.
        #[arg(long = "type", value_enum, default_value = "ascii")]
        authen_type: Type,
        /// Authentication service.
        #[arg(long, value_enum, default_value = "login")]
        service: Service,
        #[command(flatten)]
        ctx: Context_,
    },
    /// Ask whether a user may run a service or command.
    Authorize {
        /// User name.
        #[arg(long, short = 'u')]
        user: String,
        /// The `service` AV.
        #[arg(long, default_value = "shell")]
        service: String,
        /// A command line: the first word becomes `cmd`, the rest `cmd-arg`s.
        #[arg(long)]
        cmd: Option<String>,
        /// Extra AV pairs, NAME=VALUE (mandatory) or NAME*VALUE (optional).
        #[arg(long = "av", value_name = "NAME=VALUE")]
        avs: Vec<Argument>,
        #[command(flatten)]
        ctx: Context_,
    },
    /// Send an accounting record: --start, --stop or --watchdog.
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["start", "stop", "watchdog"])))]
    Account {
        /// User name.
        #[arg(long, short = 'u')]
        user: String,
        /// A START record.
        #[arg(long)]
        start: bool,
        /// A STOP record.
        #[arg(long)]
        stop: bool,
        /// A WATCHDOG (interim) record.
        #[arg(long)]
        watchdog: bool,
        /// AV pairs, NAME=VALUE or NAME*VALUE (task_id is added when absent).
        #[arg(long = "av", value_name = "NAME=VALUE")]
        avs: Vec<Argument>,
        #[command(flatten)]
        ctx: Context_,
    },
}

/// Who and where the user is: priv_lvl, port and rem_addr.
#[derive(Debug, Args)]
struct Context_ {
    /// Privilege level (0-15).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=15))]
    priv_lvl: u8,
    /// The port field (the device's line, e.g. vty0).
    #[arg(long, default_value = "tacvs")]
    port: String,
    /// The rem_addr field (where the user connects from).
    #[arg(long, default_value = "")]
    rem_addr: String,
}

async fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(server)
        .await
        .with_context(|| {
            format!("cannot resolve --server {server:?} (expected HOST:PORT, e.g. 127.0.0.1:49)")
        })?
        .next()
        .with_context(|| format!("--server {server:?} resolves to no address"))
}

/// Prompts on the terminal: echo for GETUSER / GETDATA, hidden for NOECHO.
struct Terminal;

impl Prompter for Terminal {
    fn answer(&mut self, _status: AuthenStatus, msg: &str, noecho: bool) -> Option<String> {
        let msg = if msg.is_empty() { "> " } else { msg };
        if noecho {
            return rpassword::prompt_password(msg).ok();
        }
        eprint!("{msg}");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
        }
    }
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cmd_args(service: &str, cmd: Option<&str>, avs: Vec<Argument>) -> anyhow::Result<Vec<Argument>> {
    let mut args = vec![Argument::new("service", service, true)?];
    if let Some(line) = cmd {
        let mut words = line.split_whitespace();
        let first = words.next().context("--cmd is empty")?;
        args.push(Argument::new("cmd", first, true)?);
        for w in words {
            args.push(Argument::new("cmd-arg", w, true)?);
        }
    }
    args.extend(avs);
    Ok(args)
}

struct Outcome {
    kind: &'static str,
    status: String,
    exit: u8,
    server_msg: String,
    data: String,
    args: Vec<String>,
}

/// What `run` would refuse before connecting (for the documentation check).
#[cfg(test)]
pub(crate) fn validate(a: &ClientArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.server.is_some(), "no server: pass --server HOST:PORT");
    if let Some(s) = a.source {
        crate::common::single_address(s)?;
    }
    a.tls.check()
}

pub async fn run(a: ClientArgs) -> anyhow::Result<u8> {
    a.tls.check()?;
    // Over TLS nothing is obfuscated (RFC 9887 §4): no key is needed or used.
    let key = if a.tls.tls {
        None
    } else {
        Some(crate::common::read_key(a.key.as_deref(), a.key_file.as_deref())?)
    };
    let Some(server_text) = &a.server else {
        bail!("no server: pass --server HOST:PORT (e.g. --server 127.0.0.1:49)");
    };
    let server = resolve(server_text).await?;
    let tls = a.tls.client(server_text, server.ip())?;
    let source = a.source.map(crate::common::single_address).transpose()?;
    // Settle the password before connecting: a missing one must not reach the
    // server as an empty password (a FAIL that counts toward a lockout).
    let action = match a.action {
        Action::Authenticate { user, password, password_stdin, authen_type, service, ctx } => {
            let password = password_source(password, password_stdin, authen_type)?;
            Action::Authenticate {
                user,
                password,
                password_stdin: false,
                authen_type,
                service,
                ctx,
            }
        }
        other => other,
    };
    let opts =
        ClientOptions { server, key, timeout: a.timeout, single_connect: a.single_connect, source };
    let mut client = Client::new(opts);
    if let Some(t) = tls {
        client = client.with_tls(t);
    }
    let started = Instant::now();
    let result = match action {
        Action::Authenticate { user, password, authen_type, service, ctx, .. } => {
            authenticate(&mut client, user, password, authen_type, service, ctx).await
        }
        Action::Authorize { user, service, cmd, avs, ctx } => {
            let mut req = AaaRequest::new(user, cmd_args(&service, cmd.as_deref(), avs)?);
            req.priv_lvl = PrivLvl::new(ctx.priv_lvl).context("priv-lvl")?;
            req.port = ctx.port.into();
            req.rem_addr = ctx.rem_addr.into();
            client.authorize(req).await.map(|r| Outcome {
                kind: "authorization",
                exit: match r.status {
                    AuthorStatus::PassAdd | AuthorStatus::PassRepl => 0,
                    AuthorStatus::Fail => 1,
                    AuthorStatus::Error | AuthorStatus::Follow => 2,
                },
                status: r.status.to_string(),
                server_msg: text(&r.server_msg),
                data: text(&r.data),
                args: r.args.iter().map(|a| a.to_string()).collect(),
            })
        }
        Action::Account { user, start, stop, watchdog: _, mut avs, ctx } => {
            let flags = if start {
                AcctFlags::Start
            } else if stop {
                AcctFlags::Stop
            } else {
                AcctFlags::Watchdog
            };
            if !avs.iter().any(|a| a.name() == b"task_id") {
                avs.insert(0, Argument::new("task_id", &std::process::id().to_string(), true)?);
            }
            let mut req = AaaRequest::new(user, avs);
            req.priv_lvl = PrivLvl::new(ctx.priv_lvl).context("priv-lvl")?;
            req.port = ctx.port.into();
            req.rem_addr = ctx.rem_addr.into();
            client.account(AcctRequest { flags, request: req }).await.map(|r| Outcome {
                kind: "accounting",
                exit: if r.status == AcctStatus::Success { 0 } else { 2 },
                status: r.status.to_string(),
                server_msg: text(&r.server_msg),
                data: text(&r.data),
                args: Vec::new(),
            })
        }
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    match result {
        Ok(o) => {
            if a.json {
                let v = json!({
                    "request": o.kind,
                    "status": o.status,
                    "server_msg": o.server_msg,
                    "data": o.data,
                    "args": o.args,
                    "elapsed_ms": elapsed_ms,
                });
                println!("{v}");
            } else {
                println!("{}: {}", o.kind, o.status.to_uppercase());
                if !o.server_msg.is_empty() {
                    println!("server message: {}", o.server_msg);
                }
                if !o.data.is_empty() {
                    println!("data: {}", o.data);
                }
                for arg in &o.args {
                    println!("av: {arg}");
                }
            }
            Ok(o.exit)
        }
        Err(e) => {
            report_error(&e, a.json, server, elapsed_ms, a.tls.tls);
            Ok(2)
        }
    }
}

fn report_error(e: &ClientError, json: bool, server: SocketAddr, elapsed_ms: f64, tls: bool) {
    let hint = if e.is_wrong_key() {
        " (check that the key matches the server's key for this client address)"
    } else if tls && matches!(e, ClientError::Closed { .. }) {
        " (over TLS: does the server use a TLS listener there, and know this certificate's address or name?)"
    } else {
        ""
    };
    if json {
        let v = json!({
            "status": "error",
            "error_kind": e.kind(),
            "error": format!("{e}{hint}"),
            "server": server.to_string(),
            "elapsed_ms": elapsed_ms,
        });
        println!("{v}");
    } else {
        eprintln!("tacvs client: {e}{hint}");
    }
}

/// Whether this process can prompt on a terminal (`/dev/tty` opens only
/// with a controlling terminal).
fn have_terminal() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_ok()
}

const NO_TERMINAL: &str = "no password and no terminal to ask for it on: pass --password \
PASSWORD, or --password-stdin with the password on standard input";

/// The password to authenticate with: given, read from standard input, or
/// (single-exchange types) asked for on the terminal now. `None` for an ASCII
/// login, which asks on the terminal when the server prompts.
fn password_source(
    given: Option<String>,
    from_stdin: bool,
    ty: Type,
) -> anyhow::Result<Option<String>> {
    if let Some(p) = given {
        return Ok(Some(p));
    }
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read standard input")?;
        let p = line.trim_end_matches(['\r', '\n']);
        if p.is_empty() {
            bail!("--password-stdin: standard input held no password (an empty first line)");
        }
        return Ok(Some(p.to_owned()));
    }
    if !have_terminal() {
        bail!(NO_TERMINAL);
    }
    match ty {
        Type::Ascii => Ok(None),
        _ => {
            let p = rpassword::prompt_password("Password: ")
                .map_err(|e| anyhow::anyhow!("{NO_TERMINAL} ({e})"))?;
            Ok(Some(p))
        }
    }
}

async fn authenticate(
    client: &mut Client,
    user: String,
    password: Option<String>,
    ty: Type,
    service: Service,
    ctx: Context_,
) -> Result<Outcome, ClientError> {
    let authen_type = match ty {
        Type::Ascii => AuthenType::Ascii,
        Type::Pap => AuthenType::Pap,
        Type::Chap => AuthenType::Chap,
        Type::Mschapv1 => AuthenType::MsChapV1,
        Type::Mschapv2 => AuthenType::MsChapV2,
    };
    let data = match (authen_type, &password) {
        (AuthenType::Pap, Some(p)) => p.clone().into_bytes(),
        (AuthenType::Chap, Some(p)) => {
            let (id, challenge): (u8, [u8; 16]) = (rand::random(), rand::random());
            ChapData {
                id,
                challenge: &challenge,
                response: &chap::chap_response(id, p.as_bytes(), &challenge),
            }
            .to_vec()
        }
        (AuthenType::MsChapV1, Some(p)) => {
            let (id, challenge): (u8, [u8; 8]) = (rand::random(), rand::random());
            ChapData {
                id,
                challenge: &challenge,
                response: &chap::mschapv1_response(&challenge, p),
            }
            .to_vec()
        }
        (AuthenType::MsChapV2, Some(p)) => {
            let (id, challenge, peer): (u8, [u8; 16], [u8; 16]) =
                (rand::random(), rand::random(), rand::random());
            ChapData {
                id,
                challenge: &challenge,
                response: &chap::mschapv2_response(&challenge, &peer, user.as_bytes(), p),
            }
            .to_vec()
        }
        _ => Vec::new(),
    };
    let start = AuthenStart {
        action: AuthenAction::Login,
        priv_lvl: PrivLvl::new(ctx.priv_lvl).unwrap_or(PrivLvl::USER),
        authen_type,
        authen_service: match service {
            Service::Login => AuthenService::Login,
            Service::Enable => AuthenService::Enable,
        },
        user: Bytes::from(user.clone()),
        port: ctx.port.into(),
        rem_addr: ctx.rem_addr.into(),
        data: data.into(),
    };
    let reply = match password {
        Some(p) if authen_type == AuthenType::Ascii => {
            let mut answers = FixedAnswers { user, password: p, max_rounds: 4 };
            client.authenticate(start, &mut answers).await?
        }
        _ => client.authenticate(start, &mut Terminal).await?,
    };
    Ok(Outcome {
        kind: "authentication",
        exit: match reply.status {
            AuthenStatus::Pass => 0,
            AuthenStatus::Fail => 1,
            _ => 2,
        },
        status: reply.status.to_string(),
        server_msg: text(&reply.server_msg),
        data: text(&reply.data),
        args: Vec::new(),
    })
}
