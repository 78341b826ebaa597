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
use tacvs_proto::*;

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server address, HOST:PORT.
    #[arg(long, short = 's', value_name = "HOST:PORT")]
    server: String,
    /// Shared secret. Prefer --key-file or TACVS_KEY: a command line is visible to other users.
    #[arg(long, env = "TACVS_KEY", hide_env_values = true, conflicts_with = "key_file")]
    key: Option<String>,
    /// Read the shared secret from this file (first line).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Bound on connecting and on each wait for a reply (e.g. 5s, 800ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Ask for single-connect mode (RFC 8907 §4.3).
    #[arg(long)]
    single_connect: bool,
    /// Connect from this source address.
    #[arg(long, value_name = "IP")]
    source: Option<std::net::IpAddr>,
    /// Print the reply as one JSON object.
    #[arg(long)]
    json: bool,
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
        /// Password; prompted for on the terminal (without echo) when absent.
        #[arg(long, short = 'p')]
        password: Option<String>,
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
    /// Send an accounting record.
    Account {
        /// User name.
        #[arg(long, short = 'u')]
        user: String,
        /// A START record.
        #[arg(long, group = "kind", required = true)]
        start: bool,
        /// A STOP record.
        #[arg(long, group = "kind")]
        stop: bool,
        /// A WATCHDOG (interim) record.
        #[arg(long, group = "kind")]
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

fn read_key(a: &ClientArgs) -> anyhow::Result<Key> {
    if let Some(path) = &a.key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            bail!(
                "the key file {} is empty: put the shared secret on its first line",
                path.display()
            );
        }
        return Ok(Key::new(line));
    }
    match &a.key {
        Some(k) if !k.is_empty() => Ok(Key::new(k.as_str())),
        _ => bail!("no shared key: pass --key, --key-file FILE or set TACVS_KEY"),
    }
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

pub async fn run(a: ClientArgs) -> anyhow::Result<u8> {
    let key = read_key(&a)?;
    let server = resolve(&a.server).await?;
    let opts = ClientOptions {
        server,
        key: Some(key),
        timeout: a.timeout,
        single_connect: a.single_connect,
        source: a.source,
    };
    let mut client = Client::new(opts);
    let started = Instant::now();
    let result = match a.action {
        Action::Authenticate { user, password, authen_type, service, ctx } => {
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
                let v = json!({"request": o.kind, "status": o.status, "server_msg": o.server_msg, "data": o.data, "args": o.args, "elapsed_ms": elapsed_ms});
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
            report_error(&e, a.json, server, elapsed_ms);
            Ok(2)
        }
    }
}

fn report_error(e: &ClientError, json: bool, server: SocketAddr, elapsed_ms: f64) {
    let hint = if e.is_wrong_key() {
        " (check that the key matches the server's key for this client address)"
    } else {
        ""
    };
    if json {
        println!(
            "{}",
            json!({"status": "error", "error_kind": e.kind(), "error": format!("{e}{hint}"), "server": server.to_string(), "elapsed_ms": elapsed_ms})
        );
    } else {
        eprintln!("tacvs client: {e}{hint}");
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
    // Single-exchange types need the password up front.
    let password = match (password, authen_type) {
        (Some(p), _) => Some(p),
        (None, AuthenType::Ascii) => None,
        (None, _) => Some(rpassword::prompt_password("Password: ").unwrap_or_default()),
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
