//! Issue 12 end to end through the binary: directory users through
//! `tacvs client` and the independent PyPI client against `tacvs server` and
//! a real slapd; `tacvs otp enroll`; `tacvs policy explain` and
//! `tacvs policy diff` (on the fixture authorization log and on the log the
//! server wrote); `tacvs check` on CHAP devices with a directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ServerProc, run_ok, temp_dir, workspace};

#[path = "../../../server/tests/it/slapd.rs"]
mod slapd;

use slapd::Slapd;

const KEY: &str = "tacvs-demo-key";

fn tacvs(args: &[&str]) -> (i32, String) {
    run_ok(Command::new(env!("CARGO_BIN_EXE_tacvs")).args(args))
}

fn py_client() -> PathBuf {
    std::env::var("TACVS_PY_CLIENT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target/interop-venv/bin/tacacs_client"))
}

/// examples/server.toml on free ports, its files in `dir`, plus `extra`.
fn example_with(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("examples/server.toml"))
        .unwrap()
        .replace("127.0.0.1:4949", "127.0.0.1:0")
        .replace("listen = \"127.0.0.1:9449\"", "listen = \"127.0.0.1:0\"");
    let cfg = dir.join("server.toml");
    std::fs::write(&cfg, format!("{text}\n{extra}")).unwrap();
    cfg
}

/// A break-glass user and the directory.
fn identity_conf(slapd: &Slapd) -> String {
    let rescue = tacvs_policy::PasswordHash::create_with_cost(
        tacvs_policy::HashAlgorithm::Sha256Crypt,
        b"rescue-pass",
        1000,
    )
    .unwrap();
    format!(
        "[[user]]\nname = \"rescue\"\npassword = \"{rescue}\"\ngroups = [\"netops\"]\n{}",
        slapd::ldap_conf(
            &format!("\"{}\"", slapd.url()),
            "timeout = \"1s\"\nconnect_timeout = \"1s\"\nretry_interval = \"200ms\""
        )
    )
}

fn client(server: &str, args: &[&str]) -> i32 {
    let mut all = vec!["client", "--server", server, "--key", KEY];
    all.extend_from_slice(args);
    tacvs(&all).0
}

fn pap(server: &str, user: &str, pw: &str, ty: &str) -> i32 {
    client(server, &["authenticate", "--user", user, "--password", pw, "--type", ty])
}

fn py(port: u16, args: &[&str]) -> (i32, String) {
    let py = py_client();
    assert!(
        py.exists(),
        "{} is missing: run ./scripts/test, which installs PyPI tacacs_plus there",
        py.display()
    );
    let mut c = Command::new(&py);
    c.args(["-H", "127.0.0.1", "-p", &port.to_string(), "-k", KEY, "--timeout", "5"])
        .args(args)
        .stdin(Stdio::null());
    run_ok(&mut c)
}

fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn directory_users_through_tacvs_client_and_the_pypi_client() {
    let cwd = temp_dir("ldap");
    let mut slapd = Slapd::start(&cwd);
    let cfg = example_with(&cwd, &identity_conf(&slapd));
    let srv = ServerProc::start(&cfg, &cwd);
    let server = srv.addr.to_string();
    let s = server.as_str();
    for ty in ["pap", "ascii"] {
        assert_eq!(pap(s, "anna", "anna-ldap-pass", ty), 0, "tacvs client {ty}");
        assert_eq!(pap(s, "anna", "wrong", ty), 1, "tacvs client {ty} wrong password");
        assert_eq!(pap(s, "eve", "eve-ldap-pass", ty), 1, "eve is in no mapped group");
        let (code, out) =
            py(srv.addr.port(), &["-u", "ben", "-t", ty, "authenticate", "-p", "ben-ldap-pass"]);
        assert_eq!(code, 0, "py {ty}: {out}");
        let (code, out) =
            py(srv.addr.port(), &["-u", "ben", "-t", ty, "authenticate", "-p", "nope"]);
        assert_eq!(code, 1, "py {ty} wrong password: {out}");
    }
    // Groups decide authorization.
    let author = |user: &str, cmd: &str| client(s, &["authorize", "--user", user, "--cmd", cmd]);
    assert_eq!(author("anna", "configure terminal"), 0);
    assert_eq!(author("ben", "configure terminal"), 1);
    assert_eq!(author("ben", "show version"), 0);
    let (code, out) = py(
        srv.addr.port(),
        &["-u", "cleo", "authorize", "-c", "service=shell", "cmd=configure", "cmd-arg=terminal"],
    );
    assert_eq!(code, 0, "py: nested group netops: {out}");
    // The directory goes away: ERROR (exit 2), cached and break-glass users pass.
    slapd.stop();
    assert_eq!(pap(s, "ben", "ben-ldap-pass", "pap"), 0, "ben verified a moment ago (cache)");
    assert_eq!(pap(s, "cleo", "cleo-ldap-pass", "pap"), 2, "never verified: ERROR, not FAIL");
    let (code, out) = py(
        srv.addr.port(),
        &["-v", "-u", "cleo", "-t", "pap", "authenticate", "-p", "cleo-ldap-pass"],
    );
    assert_ne!(code, 0, "py: {out}");
    assert!(out.contains("status: ERROR"), "py sees ERROR, not FAIL: {out}");
    assert_eq!(pap(s, "rescue", "rescue-pass", "ascii"), 0, "break-glass");
    slapd.restart();
    assert!(
        eventually(Duration::from_secs(10), || pap(s, "cleo", "cleo-ldap-pass", "pap") == 0),
        "the directory is back"
    );
    // policy explain asks the directory and names the nested group.
    let cfgs = cfg.display().to_string();
    let (code, out) = tacvs(&[
        "policy",
        "explain",
        "--config",
        &cfgs,
        "--user",
        "cleo",
        "--cmd",
        "configure terminal",
        "--device",
        "127.0.0.1",
    ]);
    assert_eq!(code, 0, "{out}");
    for want in ["cn=tier2,ou=groups", "group_map", "-> group \"netops\"", "PERMIT"] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    let (code, out) =
        tacvs(&["policy", "explain", "-c", &cfgs, "--user", "ben", "--cmd", "configure terminal"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DENY") && out.contains("readonly"), "{out}");
    // policy diff over what this server logged: readonly may now configure.
    drop(srv);
    let acct = cwd.join("var/acct");
    let newer = cwd.join("new.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("match = \"show( .*)?\"", "match = \"(show|configure)( .*)?\"");
    std::fs::write(&newer, text).unwrap();
    let (code, out) = tacvs(&[
        "policy",
        "diff",
        &cfgs,
        &newer.display().to_string(),
        "--replay",
        &acct.display().to_string(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ben on 127.0.0.1") && out.contains("FAIL -> PASS_ADD"), "{out}");
    assert!(!out.contains("anna on"), "anna's decisions do not change: {out}");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn policy_explain_and_diff_on_the_fixture_log() {
    let ws = workspace();
    let example = ws.join("examples/server.toml").display().to_string();
    let fixture = ws.join("crates/cli/tests/fixtures/authz").display().to_string();
    let (code, out) = tacvs(&[
        "policy",
        "explain",
        "--config",
        &example,
        "--user",
        "bob",
        "--cmd",
        "show running-config | redirect tftp://192.0.2.1/x",
        "--device",
        "127.0.0.1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("device group \"lab\""), "{out}");
    assert!(out.contains("rule 1") && out.contains(": matches"), "{out}");
    assert!(out.contains("DENY (FAIL)"), "{out}");
    let (code, out) = tacvs(&["policy", "explain", "-c", &example, "--user", "alice"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("priv-lvl=15"), "exec answers the group's level: {out}");
    // The same configuration twice: nothing changes.
    let (code, out) = tacvs(&["policy", "diff", &example, &example, "--replay", &fixture]);
    assert_eq!((code, out.contains("no decision changes")), (0, true), "{out}");
    assert!(out.contains("replayed 8 authorization requests (5 distinct)"), "{out}");
    // readonly may configure, and a directory maps anna's group to netops.
    let dir = temp_dir("diff-fixture");
    let newer = dir.join("new.toml");
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("match = \"show( .*)?\"", "match = \"(show|configure)( .*)?\"")
        + "\n[[ldap]]\nname = \"corp\"\nurls = [\"ldap://127.0.0.1:1\"]\nbase_dn = \
            \"dc=example,dc=com\"\n  [[ldap.group_map]]\n  ldap_group = \
            \"cn=netops,ou=groups,dc=example,dc=com\"\n  group = \"netops\"\n";
    std::fs::write(&newer, text).unwrap();
    let (code, out) =
        tacvs(&["policy", "diff", &example, &newer.display().to_string(), "--replay", &fixture]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 decision(s) change"), "{out}");
    assert!(
        out.contains(
            "bob on 127.0.0.1 (lab): service=shell cmd=configure cmd-arg=terminal \
        — FAIL -> PASS_ADD"
        ),
        "{out}"
    );
    assert!(
        out.contains("anna on 127.0.0.1") && out.contains("groups from directory \"corp\""),
        "{out}"
    );
    // The same explained offline with the groups given.
    let (code, out) = tacvs(&[
        "policy",
        "explain",
        "-c",
        &newer.display().to_string(),
        "--user",
        "anna",
        "--cmd",
        "configure terminal",
        "--ldap-group",
        "cn=netops,ou=groups,dc=example,dc=com",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no directory asked") && out.contains("PERMIT"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otp_enroll_prints_the_uri_and_a_qr_code_and_the_server_takes_the_code() {
    let cwd = temp_dir("otp-enroll");
    let cfg = example_with(&cwd, "");
    let cfgs = cfg.display().to_string();
    let (code, out) = tacvs(&["otp", "enroll", "bob", "--config", &cfgs]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("otpauth://totp/tacvs:bob?"), "{out}");
    assert!(out.contains('█') || out.contains('▀'), "a QR code in the terminal: {out}");
    let store = cwd.join("var/otp.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o600);
    let secret = tacvs_server::otp::OtpStore::open(&store).unwrap().get("bob").cloned().unwrap();
    let srv = ServerProc::start(&cfg, &cwd);
    let s = srv.addr.to_string();
    let policy = tacvs_policy::load(&cfg).unwrap();
    let unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let code_now = tacvs_server::otp::code_at(&secret, &policy.otp, unix);
    assert_eq!(pap(&s, "bob", "bob-pass", "pap"), 1, "enrolled: the password alone fails");
    assert_eq!(pap(&s, "bob", &format!("bob-pass{code_now}"), "pap"), 0);
    assert_eq!(pap(&s, "bob", &format!("bob-pass{code_now}"), "pap"), 1, "replayed");
    drop(srv);
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn check_says_chap_devices_cannot_use_a_directory() {
    let cwd = temp_dir("check-chap");
    let cfg = example_with(&cwd, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "keys = [\"tacvs-demo-key\"]",
        "keys = [\"tacvs-demo-key\"]\nlogin_methods = [\"pap\", \"chap\"]",
    ) + "\n[[ldap]]\nname = \"corp\"\nurls = [\"ldaps://dc1.example.com\"]\nbase_dn = \
        \"dc=example,dc=com\"\n  [[ldap.group_map]]\n  ldap_group = \"netops\"\n  group = \
        \"netops\"\n";
    std::fs::write(&cfg, text).unwrap();
    let (code, out) = tacvs(&["check", &cfg.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("CHAP or MS-CHAP, which cannot be checked against a directory"), "{out}");
    let _ = std::fs::remove_dir_all(&cwd);
}
