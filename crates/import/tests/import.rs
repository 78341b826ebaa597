//! `tacvs import` end to end: realistic classic tac_plus and tac_plus-ng files
//! (tests/data/) are imported, a real tacvs server runs the result on
//! loopback, and the tacvs client library checks every user's decisions
//! against a table derived by hand from the source program's rules (first
//! match wins, deny/permit, default service, the member chain, per-host keys).
//! Where tacvs must decide differently the table says so, and the report must
//! carry the item; every `DIFFERS` item of the report must be one the table
//! expects.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tacvs_client::{Client, ClientError, ClientOptions, FixedAnswers};
use tacvs_import::{Dialect, Imported, Options, Severity};
use tacvs_proto::chap::{self, ChapData};
use tacvs_proto::*;

/// A request, as a device would send it.
#[derive(Debug, Clone, Copy)]
enum Req {
    /// PAP login with this password.
    Pap(&'static str),
    /// ASCII login (GETUSER/GETPASS) with this password.
    Ascii(&'static str),
    /// CHAP login with this secret.
    Chap(&'static str),
    /// Enable to level 15 with this password.
    Enable(&'static str),
    /// Exec authorization (`service=shell`, empty `cmd`).
    Exec,
    /// Command authorization of this line (IOS style: `cmd` and `cmd-arg`s).
    Cmd(&'static str),
    /// Service authorization (`service`, optional `protocol`).
    Service(&'static str, Option<&'static str>),
}

/// What the source program answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Pass,
    Fail,
    /// Exec permitted with `priv-lvl=N` in the answer.
    Priv(u8),
}

struct Case {
    user: &'static str,
    req: Req,
    /// The source program's decision, by its rules.
    source: Want,
    /// `Some(text)`: tacvs decides the other way, and a DIFFERS item of the
    /// report holds `text`.
    differs: Option<&'static str>,
}

const fn same(user: &'static str, req: Req, source: Want) -> Case {
    Case { user, req, source, differs: None }
}

const fn differs(user: &'static str, req: Req, source: Want, why: &'static str) -> Case {
    Case { user, req, source, differs: Some(why) }
}

use Req::*;
use Want::*;

/// tests/data/tac_plus.conf, decided by hand with tac_plus-F's rules.
const CLASSIC: &[Case] = &[
    // alice: netadmin (default service = permit, exec priv-lvl 15).
    // tac_plus checks PAP against `pap` (or `global`) only: without one it
    // refuses PAP; tacvs checks the login password.
    differs("alice", Pap("alice-pw"), Fail, "PAP used no password"),
    same("alice", Ascii("alice-pw"), Pass),
    same("alice", Ascii("wrong"), Fail),
    same("alice", Pap("wrong"), Fail),
    same("alice", Chap("alice-chap"), Pass),
    same("alice", Chap("alice-pw"), Fail),
    same("alice", Enable("alice-enable"), Pass),
    same("alice", Enable("alice-pw"), Fail),
    same("alice", Exec, Priv(15)),
    same("alice", Cmd("show running-config"), Pass),
    same("alice", Cmd("configure terminal"), Pass),
    same("alice", Service("ppp", Some("ip")), Pass),
    // bob: DES password; noc.
    differs("bob", Ascii("bob-pw"), Pass, "DES-crypt"),
    same("bob", Ascii("wrong"), Fail),
    same("bob", Pap("bob-pw"), Fail),
    same("bob", Exec, Priv(7)),
    same("bob", Cmd("show running-config"), Fail),
    same("bob", Cmd("show interfaces"), Pass),
    same("bob", Cmd("show"), Pass),
    same("bob", Cmd("ping 10.0.0.1"), Pass),
    same("bob", Cmd("traceroute 10.0.0.1"), Pass),
    same("bob", Cmd("traceroute example.com"), Fail),
    same("bob", Cmd("configure terminal"), Fail),
    same("bob", Cmd("reload"), Fail),
    same("bob", Service("ppp", Some("ip")), Fail),
    // carol: MD5-crypt password; helpdesk, a member of noc.
    differs("carol", Ascii("carol-pw"), Pass, "MD5-crypt"),
    same("carol", Exec, Priv(7)),
    same("carol", Cmd("show version"), Pass),
    same("carol", Cmd("show interfaces Gi0/1"), Pass),
    same("carol", Cmd("show running-config"), Fail),
    // helpdesk's `cmd = show` decides; noc's is never consulted.
    same("carol", Cmd("show ip route"), Fail),
    same("carol", Cmd("ping 192.0.2.1"), Pass),
    same("carol", Cmd("clear counters Gi0/1"), Pass),
    same("carol", Cmd("clear ip bgp *"), Fail),
    same("carol", Cmd("configure terminal"), Fail),
    // dave: sha512-crypt under `des`; his own `cmd = show` shadows the groups'.
    differs("dave", Pap("dave-pw"), Fail, "PAP used no password"),
    same("dave", Ascii("dave-pw"), Pass),
    same("dave", Ascii("bob-pw"), Fail),
    same("dave", Cmd("show ip bgp summary"), Pass),
    same("dave", Cmd("show version"), Fail),
    same("dave", Cmd("clear counters"), Pass),
    same("dave", Exec, Priv(7)),
    // erin: different login and PAP passwords; her own exec and rules.
    same("erin", Ascii("erin-pw"), Pass),
    differs("erin", Pap("erin-pap"), Pass, "PAP used a different `pap` password"),
    differs("erin", Pap("erin-pw"), Fail, "PAP used a different `pap` password"),
    same("erin", Enable("erin-enable"), Pass),
    same("erin", Exec, Priv(1)),
    same("erin", Cmd("show version"), Pass),
    same("erin", Cmd("show clock"), Fail),
    same("erin", Cmd("ping 192.0.2.1"), Fail),
    // frank: expired in 2001.
    same("frank", Pap("frank-pw"), Fail),
    same("frank", Ascii("frank-pw"), Fail),
    // grace: default service = permit, reload denied.
    same("grace", Ascii("grace-pw"), Pass),
    differs("grace", Pap("grace-pw"), Fail, "PAP used no password"),
    same("grace", Cmd("reload"), Fail),
    same("grace", Cmd("reload in 5"), Fail),
    same("grace", Cmd("show running-config"), Pass),
    // tac_plus sends no AV (the device assumes 1); tacvs sends priv-lvl=1.
    same("grace", Exec, Priv(1)),
    same("grace", Service("ppp", Some("ip")), Pass),
    differs("grace", Service("junos-exec", None), Pass, "permits every service in tac_plus"),
    // Unknown users.
    same("mallory", Pap("x"), Fail),
    same("mallory", Cmd("show version"), Fail),
];

/// Report items the file must produce that no case above exercises.
const CLASSIC_REPORT: &[&str] = &[
    // traceroute's `^[0-9.]+$` behaves differently for IOS devices (<cr>).
    "ends with `$`",
    // alice has a CHAP secret and no MS-CHAP one.
    "MS-CHAP, which had no secret, now passes",
    // netadmin's default-permit: alice's cases use standard services only.
    "of group \"netadmin\" permits every service",
];

/// tests/data/tac_plus-ng.cfg, decided by hand with tac_plus-ng's rules.
const NG: &[Case] = &[
    // alice: the ruleset gives her the admin profile (member admins).
    same("alice", Pap("alice-pw"), Pass),
    same("alice", Ascii("alice-pw"), Pass),
    same("alice", Ascii("wrong"), Fail),
    same("alice", Chap("alice-chap"), Pass),
    same("alice", Enable("alice-pw"), Pass),
    same("alice", Enable("alice-chap"), Fail),
    same("alice", Exec, Priv(15)),
    same("alice", Cmd("show running-config"), Pass),
    same("alice", Cmd("configure terminal"), Pass),
    same("alice", Service("ppp", Some("ip")), Pass),
    same("alice", Service("ppp", Some("ipx")), Fail),
    same("alice", Service("junos-exec", None), Fail),
    // bob: member of noc, nested in ops, so rule `operators` gives profile noc.
    same("bob", Ascii("bob-pw"), Pass),
    same("bob", Pap("bob-pw"), Pass),
    same("bob", Exec, Priv(7)),
    same("bob", Cmd("show running-config"), Fail),
    same("bob", Cmd("show interfaces"), Pass),
    same("bob", Cmd("ping 10.0.0.1"), Pass),
    same("bob", Cmd("ping"), Fail),
    same("bob", Cmd("clear counters"), Pass),
    same("bob", Cmd("clear arp"), Pass),
    same("bob", Cmd("clear ip bgp *"), Fail),
    same("bob", Cmd("configure terminal"), Fail),
    // carol: MD5-crypt password; profile readonly.
    differs("carol", Ascii("carol-pw"), Pass, "MD5-crypt"),
    same("carol", Exec, Priv(1)),
    same("carol", Cmd("show version"), Pass),
    same("carol", Cmd("show clock"), Pass),
    same("carol", Cmd("show version detail"), Fail),
    same("carol", Cmd("show running-config"), Fail),
    // dave: type 7 login password, a different PAP password.
    same("dave", Ascii("dave-pw"), Pass),
    differs("dave", Pap("dave-pap"), Pass, "PAP used a different `pap` password"),
    differs("dave", Pap("dave-pw"), Fail, "PAP used a different `pap` password"),
    same("dave", Cmd("show version"), Pass),
    // erin: a profile of her own.
    same("erin", Ascii("erin-pw"), Pass),
    differs("erin", Pap("erin-pw"), Fail, "PAP used no password"),
    same("erin", Exec, Priv(3)),
    same("erin", Cmd("show ip route"), Pass),
    same("erin", Cmd("configure terminal"), Fail),
    // frank: no profile and no rule for him: authenticated, never authorized.
    same("frank", Ascii("frank-pw"), Pass),
    differs("frank", Pap("frank-pw"), Fail, "PAP used no password"),
    same("frank", Exec, Fail),
    same("frank", Cmd("show version"), Fail),
    same("mallory", Ascii("x"), Fail),
];

/// Report items the ng file must produce that no case above exercises.
const NG_REPORT: &[&str] = &[
    // readonly's `/^show (version|clock)$/` behaves differently for IOS (<cr>).
    "ends with `$`",
    "MS-CHAP, which had no secret, now passes",
];

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn import(name: &str, dialect: Dialect, anchor: bool, tag: &str) -> (Imported, TempDir) {
    let dir = std::env::temp_dir().join(format!("tacvs-import-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(data(name)).unwrap();
    assert_eq!(Dialect::detect(&text), dialect, "{name}");
    let opts = Options {
        anchor,
        listen: vec!["127.0.0.1:0".into()],
        state_dir: dir.display().to_string(),
        hash: tacvs_policy::HashAlgorithm::Sha256Crypt,
        ..Options::default()
    };
    let imported = tacvs_import::import(name, &text, dialect, &opts).unwrap();
    (imported, TempDir(dir))
}

/// A tacvs server running the imported file (written to `dir`, as an
/// operator would).
async fn run(imported: &Imported, dir: &TempDir) -> tacvs_server::ServerHandle {
    let path = dir.0.join("server.toml");
    std::fs::write(&path, &imported.toml).unwrap();
    let policy = tacvs_policy::load(&path).unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    tacvs_server::start(policy, Some(path)).await.unwrap()
}

fn opts(addr: SocketAddr, from: &str, key: &str) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        source: Some(from.parse::<IpAddr>().unwrap()),
        ..ClientOptions::new(addr, Some(Key::new(key)))
    }
}

fn start(ty: AuthenType, svc: AuthenService, user: &str, data: Vec<u8>) -> AuthenStart {
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

fn answers(user: &str, pw: &str) -> FixedAnswers {
    FixedAnswers { user: user.into(), password: pw.into(), max_rounds: 4 }
}

fn shell(user: &str, line: Option<&str>) -> AaaRequest {
    let mut args = vec![Argument::new("service", "shell", true).unwrap()];
    match line {
        None => args.push(Argument::new("cmd", "", false).unwrap()),
        Some(line) => {
            let mut w = line.split(' ');
            args.push(Argument::new("cmd", w.next().unwrap(), true).unwrap());
            args.extend(w.map(|x| Argument::new("cmd-arg", x, true).unwrap()));
            // Cisco IOS ends every command with this argument.
            args.push(Argument::new("cmd-arg", "<cr>", true).unwrap());
        }
    }
    AaaRequest::new(user.to_owned(), args)
}

/// What tacvs answers, in the table's terms.
async fn decide(c: &mut Client, user: &str, req: Req) -> Result<Want, ClientError> {
    let pass = |s: AuthenStatus| if s == AuthenStatus::Pass { Pass } else { Fail };
    Ok(match req {
        Pap(pw) => {
            let s = start(AuthenType::Pap, AuthenService::Login, user, pw.as_bytes().to_vec());
            pass(c.authenticate(s, &mut answers(user, pw)).await?.status)
        }
        Ascii(pw) => {
            let s = start(AuthenType::Ascii, AuthenService::Login, "", Vec::new());
            pass(c.authenticate(s, &mut answers(user, pw)).await?.status)
        }
        Enable(pw) => {
            let s = start(AuthenType::Ascii, AuthenService::Enable, user, Vec::new());
            pass(c.authenticate(s, &mut answers(user, pw)).await?.status)
        }
        Chap(secret) => {
            let challenge = b"0123456789abcdef";
            let data = ChapData {
                id: 7,
                challenge,
                response: &chap::chap_response(7, secret.as_bytes(), challenge),
            }
            .to_vec();
            let s = start(AuthenType::Chap, AuthenService::Login, user, data);
            pass(c.authenticate(s, &mut answers(user, secret)).await?.status)
        }
        Exec => {
            let r = c.authorize(shell(user, None)).await?;
            match r.status {
                AuthorStatus::PassAdd | AuthorStatus::PassRepl => {
                    let lvl = r
                        .args
                        .iter()
                        .find(|a| a.name() == b"priv-lvl")
                        .and_then(|a| a.value_str().parse::<u8>().ok());
                    match lvl {
                        Some(l) => Priv(l),
                        None => Pass,
                    }
                }
                _ => Fail,
            }
        }
        Cmd(line) => {
            let r = c.authorize(shell(user, Some(line))).await?;
            if matches!(r.status, AuthorStatus::PassAdd | AuthorStatus::PassRepl) {
                Pass
            } else {
                Fail
            }
        }
        Service(svc, protocol) => {
            let mut args = vec![Argument::new("service", svc, true).unwrap()];
            if let Some(p) = protocol {
                args.push(Argument::new("protocol", p, true).unwrap());
            }
            let r = c.authorize(AaaRequest::new(user.to_owned(), args)).await?;
            if matches!(r.status, AuthorStatus::PassAdd | AuthorStatus::PassRepl) {
                Pass
            } else {
                Fail
            }
        }
    })
}

fn opposite(w: Want) -> Want {
    match w {
        Pass | Priv(_) => Fail,
        Fail => Pass,
    }
}

/// Every case against the running server; every DIFFERS item accounted for.
/// Each user's requests come from a device address of its own (`net`.N), as
/// the server's lockout counts failures per device.
async fn check_table(
    imported: &Imported,
    addr: SocketAddr,
    net: &str,
    key: &str,
    cases: &[Case],
    extra: &[&str],
) {
    let report = imported.report.to_string();
    let mut users: Vec<&str> = Vec::new();
    let mut wrong = Vec::new();
    for case in cases {
        let n = users.iter().position(|u| *u == case.user).unwrap_or_else(|| {
            users.push(case.user);
            users.len() - 1
        });
        let mut c = Client::new(opts(addr, &format!("{net}.{}", n + 1), key));
        let got = decide(&mut c, case.user, case.req).await.unwrap();
        let want = match case.differs {
            None => case.source,
            Some(why) => {
                assert!(
                    imported.report.items.iter().any(|i| i.severity == Severity::Differs
                        && i.text.contains(case.user)
                        && i.text.contains(why)),
                    "{} {:?}: the report should say {why:?}\n{report}",
                    case.user,
                    case.req
                );
                opposite(case.source)
            }
        };
        if got != want {
            wrong.push(format!("{} {:?}: tacvs {got:?}, expected {want:?}", case.user, case.req));
        }
    }
    assert!(wrong.is_empty(), "{}\n\n{}\n{report}", wrong.join("\n"), imported.toml);
    let expected: Vec<&str> =
        cases.iter().filter_map(|c| c.differs).chain(extra.iter().copied()).collect();
    for item in imported.report.items.iter().filter(|i| i.severity == Severity::Differs) {
        assert!(
            expected.iter().any(|e| item.text.contains(e)),
            "a DIFFERS item no case accounts for: line {}: {}\n{report}",
            item.line,
            item.text
        );
    }
    for e in extra {
        assert!(report.contains(e), "the report should hold {e:?}\n{report}");
    }
}

/// alice logs in from 127.0.0.2 and .3 with their own keys and from .4 with
/// the fleet key (`keys` in that order), and each other key is refused.
async fn per_device_keys(addr: SocketAddr, keys: [&str; 3]) {
    for (i, from) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].into_iter().enumerate() {
        let (key, other) = (keys[i], keys[(i + 1) % 3]);
        let mut c = Client::new(opts(addr, from, key));
        assert_eq!(
            decide(&mut c, "alice", Ascii("alice-pw")).await.unwrap(),
            Pass,
            "{from} with {key}"
        );
        let mut c = Client::new(opts(addr, from, other));
        let e = decide(&mut c, "alice", Ascii("alice-pw")).await.unwrap_err();
        assert!(
            e.is_wrong_key() || matches!(e, ClientError::Closed { .. }),
            "{from} with {other}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_tac_plus_decisions_are_kept() {
    let (imported, dir) = import("tac_plus.conf", Dialect::Classic, false, "classic");
    let server = run(&imported, &dir).await;
    let addr = server.local_addrs[0];
    check_table(&imported, addr, "127.0.1", "fleet-key", CLASSIC, CLASSIC_REPORT).await;

    // Per-host keys: 127.0.0.2 and 127.0.0.3 have their own, everyone else the fleet key.
    per_device_keys(addr, ["core-key", "lab-key", "fleet-key"]).await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchoring_is_reported_rule_by_rule_and_applied() {
    let (imported, dir) = import("tac_plus.conf", Dialect::Classic, true, "anchor");
    let anchored: Vec<_> = imported
        .report
        .items
        .iter()
        .filter(|i| i.text.starts_with("--anchor:"))
        .map(|i| i.line)
        .collect();
    // The unanchored patterns of the file, by line: noc's `running-config`
    // and three `.*`, helpdesk's `^counters`, `^(interfaces|version)` and two
    // `.*`, dave's `ip bgp`, erin's `^version`, grace's `.*` (traceroute's
    // `^[0-9.]+$` is anchored already).
    assert_eq!(anchored, vec![34, 35, 38, 44, 52, 53, 56, 57, 86, 98, 112], "{}", imported.report);
    let server = run(&imported, &dir).await;
    let addr = server.local_addrs[0];
    let mut c = Client::new(opts(addr, "127.0.0.1", "fleet-key"));
    // `permit "ip bgp"` now needs the whole argument text to be `ip bgp`.
    assert_eq!(decide(&mut c, "dave", Cmd("show ip bgp")).await.unwrap(), Pass);
    assert_eq!(decide(&mut c, "dave", Cmd("show ip bgp summary")).await.unwrap(), Fail);
    // `.*` matches anything either way.
    assert_eq!(decide(&mut c, "bob", Cmd("ping 10.0.0.1")).await.unwrap(), Pass);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tac_plus_ng_decisions_are_kept() {
    let (imported, dir) = import("tac_plus-ng.cfg", Dialect::Ng, false, "ng");
    let server = run(&imported, &dir).await;
    let addr = server.local_addrs[0];
    check_table(&imported, addr, "127.0.2", "fleet-ng-key", NG, NG_REPORT).await;
    per_device_keys(addr, ["core-ng-key", "lab-ng-key", "fleet-ng-key"]).await;
    server.shutdown(Duration::from_secs(1)).await;
}
