//! A profile step as a TACACS+ request, and a reply as an outcome.

use bytes::Bytes;
use tacvs_client::{Client, ClientError, FixedAnswers};
use tacvs_proto::{
    AaaRequest, AcctFlags, AcctRequest, AcctStatus, Argument, AuthenAction, AuthenService,
    AuthenStart, AuthenStatus, AuthenType, AuthorStatus, PrivLvl,
};

use crate::collect::Kind;
use crate::profile::{Login, Op, Profile};

/// The key of an accounting record: device address, record type (start,
/// stop, watchdog) and its arguments in order. The server's journal line
/// carries the same three fields.
pub fn ack_key(device: &str, record: &str, args: &[String]) -> String {
    let mut k = format!("{device} {record}");
    for a in args {
        k.push(' ');
        k.push_str(a);
    }
    k
}

fn arg(name: &str, value: &str) -> Argument {
    Argument::new(name, value, true)
        .unwrap_or_else(|_| Argument::new(name, "x", true).expect("short"))
}

/// A request ready to send.
pub(crate) enum Built {
    Authen(AuthenStart),
    Author(AaaRequest),
    Acct(AcctRequest),
}

/// Build the request for `op` of device `dev` in its session number `task`.
pub(crate) fn build(p: &Profile, op: &Op, dev: usize, task: u64) -> Built {
    let req = |args: Vec<Argument>| {
        let mut r = AaaRequest::new(Bytes::from(p.user.clone()), args);
        r.port = Bytes::from_static(b"vty0");
        r.priv_lvl = PrivLvl::new(15).unwrap_or(PrivLvl::USER);
        r
    };
    let task_id = || format!("{dev}-{task}");
    match op {
        Op::Login => {
            let (ty, data) = match p.login {
                Login::Pap => (AuthenType::Pap, Bytes::from(p.password.clone())),
                Login::Ascii => (AuthenType::Ascii, Bytes::new()),
            };
            Built::Authen(AuthenStart {
                action: AuthenAction::Login,
                priv_lvl: PrivLvl::USER,
                authen_type: ty,
                authen_service: AuthenService::Login,
                user: Bytes::from(p.user.clone()),
                port: Bytes::from_static(b"vty0"),
                rem_addr: Bytes::from_static(b"192.0.2.10"),
                data,
            })
        }
        Op::Exec | Op::Command(_) => {
            let mut args = vec![arg("service", "shell")];
            if let Op::Command(i) = op {
                let line = &p.command_lines[i % p.command_lines.len()];
                let mut w = line.split_whitespace();
                args.push(arg("cmd", w.next().unwrap_or("show")));
                args.extend(w.map(|x| arg("cmd-arg", x)));
            } else {
                args.push(Argument::new("cmd", "", false).expect("short"));
            }
            Built::Author(req(args))
        }
        Op::AcctStart | Op::AcctStop | Op::AcctCommand(_) | Op::AcctWatchdog => {
            let (flags, mut args) = match op {
                Op::AcctStart => {
                    (AcctFlags::Start, vec![arg("task_id", &task_id()), arg("service", "shell")])
                }
                Op::AcctWatchdog => (
                    AcctFlags::WatchdogUpdate,
                    vec![
                        arg("task_id", &task_id()),
                        arg("service", "shell"),
                        arg("elapsed_time", "2"),
                    ],
                ),
                Op::AcctStop => (
                    AcctFlags::Stop,
                    vec![
                        arg("task_id", &task_id()),
                        arg("service", "shell"),
                        arg("elapsed_time", "5"),
                    ],
                ),
                _ => (AcctFlags::Stop, vec![arg("task_id", &task_id()), arg("service", "shell")]),
            };
            if let Op::AcctCommand(i) = op {
                args.push(arg("cmd", &p.command_lines[i % p.command_lines.len()]));
            }
            Built::Acct(AcctRequest { flags, request: req(args) })
        }
    }
}

pub(crate) fn authen_result(s: AuthenStatus) -> Result<bool, &'static str> {
    match s {
        AuthenStatus::Pass => Ok(true),
        AuthenStatus::Fail => Ok(false),
        _ => Err("status_error"),
    }
}

pub(crate) fn author_result(s: AuthorStatus) -> Result<bool, &'static str> {
    match s {
        AuthorStatus::PassAdd | AuthorStatus::PassRepl => Ok(true),
        AuthorStatus::Fail => Ok(false),
        _ => Err("status_error"),
    }
}

pub(crate) fn acct_result(s: AcctStatus) -> Result<bool, &'static str> {
    if s == AcctStatus::Success { Ok(true) } else { Err("status_error") }
}

/// An accounting record's type and arguments, for its [`ack_key`].
pub(crate) type AckArgs = (String, Vec<String>);

/// Run one operation; Ok(true) = PASS/SUCCESS, Ok(false) = FAIL, Err(kind).
pub(crate) async fn perform(
    c: &mut Client,
    p: &Profile,
    op: &Op,
    dev: usize,
    task: u64,
) -> (Kind, Result<bool, &'static str>, Option<AckArgs>) {
    let err = |e: ClientError| e.kind();
    match build(p, op, dev, task) {
        Built::Authen(start) => {
            let mut answers =
                FixedAnswers { user: p.user.clone(), password: p.password.clone(), max_rounds: 2 };
            (
                Kind::Authen,
                c.authenticate(start, &mut answers)
                    .await
                    .map_err(err)
                    .and_then(|r| authen_result(r.status)),
                None,
            )
        }
        Built::Author(r) => (
            Kind::Author,
            c.authorize(r).await.map_err(err).and_then(|r| author_result(r.status)),
            None,
        ),
        Built::Acct(r) => {
            let key = (
                r.flags.as_str().to_owned(),
                r.request.args.iter().map(|a| a.to_string()).collect(),
            );
            (
                Kind::Acct,
                c.account(r).await.map_err(err).and_then(|r| acct_result(r.status)),
                Some(key),
            )
        }
    }
}
