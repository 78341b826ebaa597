//! Users from a directory, against a real Debian `slapd` (see `slapd.rs`):
//! logins and group mapping, filter injection, outages (ERROR, the cache's
//! outage view, break-glass users), the lockout across outages, timeouts and
//! the next server, one-time passwords.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tacvs_proto::{AuthenStatus, AuthenType, AuthorStatus};
use tacvs_server::otp::{OtpSecret, code_at};

use crate::slapd::{self, Slapd};
use crate::support::*;

/// The server and its directory; the directory stops first.
struct Dir {
    slapd: Slapd,
    h: Harness,
}

/// Local users beside the directory's: `rescue` (break-glass only in the
/// file), `grace` (in both, the directory wins while it answers), `olga`
/// (enrolled in the secrets file), `otto` (otp = true, not enrolled).
fn local_users() -> String {
    let h = |p: &str| hash(p, 1000);
    format!(
        r#"
[[user]]
name = "rescue"
password = "{rescue}"
groups = ["netops"]
[[user]]
name = "grace"
password = "{grace}"
groups = ["readonly"]
prefer = "directory"
[[user]]
name = "olga"
password = "{olga}"
groups = ["readonly"]
[[user]]
name = "otto"
password = "{otto}"
groups = ["readonly"]
otp = true
"#,
        rescue = h("rescue-pass"),
        grace = h("grace-local-pass"),
        olga = h("olga-pass"),
        otto = h("otto-pass"),
    )
}

/// `urls` before slapd's, `extra` lines of `[[ldap]]`, `cache` lines.
async fn start_dir(tag: &str, urls_before: &str, extra: &str, conf: Conf) -> Dir {
    let dir = test_dir(tag);
    let slapd = tokio::task::block_in_place(|| Slapd::start(&dir));
    let url = format!("{urls_before}\"{}\"", slapd.url());
    start_on(dir, slapd, &url, extra, conf).await
}

async fn start_on(
    dir: std::path::PathBuf,
    slapd: Slapd,
    url: &str,
    extra: &str,
    conf: Conf,
) -> Dir {
    let extra =
        format!("timeout = \"1s\"\nconnect_timeout = \"1s\"\nretry_interval = \"200ms\"\n{extra}");
    let c = Conf {
        users: local_users(),
        tail: format!(
            "[authentication.otp]\nsecrets_file = \"{}/otp.json\"\n{}",
            dir.display(),
            slapd::ldap_conf(url, &extra)
        ),
        ..conf
    };
    std::fs::write(dir.join("server.toml"), config(&dir, &c)).unwrap();
    Dir { slapd, h: start_in(dir).await }
}

async fn author(h: &Harness, user: &str, line: &str) -> AuthorStatus {
    h.client().authorize(cmd(user, line)).await.unwrap().status
}

/// Within 10 s (retry_interval is 200 ms), ben logs in from the directory again.
async fn ben_passes_again(h: &Harness) -> bool {
    eventually(Duration::from_secs(10), || async {
        pap(&mut h.client(), "ben", "ben-ldap-pass").await == AuthenStatus::Pass
    })
    .await
}

/// A pair locks after three failures; no per-user or per-device rate.
fn lock_after_three() -> Conf {
    Conf {
        lockout: Some(
            "max_failures = 3\nwindow = \"1m\"\nduration = \"1m\"\nuser_burst = 0\nsource_burst = 0"
                .into(),
        ),
        ..Conf::default()
    }
}

fn ops(h: &Harness) -> u64 {
    h.server.shared().directory_operations()
}

fn unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_users_log_in_by_pap_and_ascii_and_their_groups_decide_authorization() {
    let d = start_dir("ldap-groups", "", "", Conf::default()).await;
    let h = &d.h;
    for ty in [AuthenType::Pap, AuthenType::Ascii] {
        assert_eq!(
            login(&mut h.client(), ty, "anna", "anna-ldap-pass").await,
            AuthenStatus::Pass,
            "{ty:?}"
        );
        assert_eq!(login(&mut h.client(), ty, "anna", "wrong").await, AuthenStatus::Fail, "{ty:?}");
        assert_eq!(login(&mut h.client(), ty, "ben", "ben-ldap-pass").await, AuthenStatus::Pass);
    }
    // netops (by DN) may configure; readonly (by CN) may only show.
    assert_eq!(author(h, "anna", "configure terminal").await, AuthorStatus::PassAdd);
    assert_eq!(author(h, "ben", "show version").await, AuthorStatus::PassAdd);
    assert_eq!(author(h, "ben", "configure terminal").await, AuthorStatus::Fail);
    // cleo is in tier2, a member of netops: nested groups count, and the
    // loop-a/loop-b cycle she is also in ends.
    assert_eq!(pap(&mut h.client(), "cleo", "cleo-ldap-pass").await, AuthenStatus::Pass);
    assert_eq!(author(h, "cleo", "configure terminal").await, AuthorStatus::PassAdd);
    // eve's only group is mapped to nothing; dave is disabled; zed does not exist.
    assert_eq!(pap(&mut h.client(), "eve", "eve-ldap-pass").await, AuthenStatus::Fail);
    assert_eq!(author(h, "eve", "show version").await, AuthorStatus::Fail);
    assert_eq!(pap(&mut h.client(), "dave", "dave-ldap-pass").await, AuthenStatus::Fail);
    assert_eq!(pap(&mut h.client(), "zed", "zed-ldap-pass").await, AuthenStatus::Fail);
    assert_eq!(author(h, "zed", "show version").await, AuthorStatus::Fail);
    // The file's users are unchanged (prefer = "local" by default).
    assert_eq!(pap(&mut h.client(), "alice", "alice-pass").await, AuthenStatus::Pass);
    // A logged-in user's groups are cached: authorizations cost no directory round trip.
    let before = ops(h);
    for _ in 0..5 {
        assert_eq!(author(h, "anna", "show clock").await, AuthorStatus::PassAdd);
        assert_eq!(pap(&mut h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    }
    assert_eq!(ops(h), before, "cached logins and authorizations asked the directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_injection_and_names_that_never_reach_the_directory() {
    let d = start_dir("ldap-inject", "", "", Conf::default()).await;
    let h = &d.h;
    // Unescaped, `ann*` would find anna's entry and her password would bind.
    for user in ["ann*", "*", "*)(uid=*", "anna)(uid=*", "anna)(|(uid=*"] {
        assert_eq!(
            pap(&mut h.client(), user, "anna-ldap-pass").await,
            AuthenStatus::Fail,
            "{user}"
        );
        assert_eq!(author(h, user, "show version").await, AuthorStatus::Fail, "{user}");
    }
    // NUL, control characters and over-long names are refused before any operation.
    let before = ops(h);
    for user in ["anna\0", "an\u{0}na", "anna\r\n"] {
        assert_eq!(pap(&mut h.client(), user, "anna-ldap-pass").await, AuthenStatus::Fail);
    }
    // The user field of a START holds 255 bytes; a typed name (ASCII) more.
    let long = "a".repeat(300);
    assert_eq!(login(&mut h.client(), AuthenType::Ascii, &long, "x").await, AuthenStatus::Fail);
    assert_eq!(ops(h), before, "a refused name reached the directory");
    // An empty password is never sent as a bind (an unauthenticated bind succeeds).
    assert_eq!(pap(&mut h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    let before = ops(h);
    assert_eq!(pap(&mut h.client(), "anna", "").await, AuthenStatus::Fail);
    assert_eq!(ops(h), before, "an empty password was sent to the directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_directory_answers_error_and_cached_and_break_glass_users_pass() {
    let mut d = start_dir("ldap-down", "", "", Conf::default()).await;
    assert_eq!(pap(&mut d.h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    tokio::task::block_in_place(|| d.slapd.stop());
    let h = &d.h;
    // Not a wrong password: ERROR, so the device tries its next method.
    assert_eq!(pap(&mut h.client(), "ben", "ben-ldap-pass").await, AuthenStatus::Error);
    assert_eq!(login(&mut h.client(), AuthenType::Ascii, "ben", "x").await, AuthenStatus::Error);
    assert_eq!(author(h, "ben", "show version").await, AuthorStatus::Error);
    // Verified a moment ago: still works, commands too.
    assert_eq!(pap(&mut h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    assert_eq!(author(h, "anna", "configure terminal").await, AuthorStatus::PassAdd);
    assert_eq!(
        pap(&mut h.client(), "anna", "wrong").await,
        AuthenStatus::Error,
        "unknown wrong password: the directory would say"
    );
    // Break-glass: the file's users work; grace's local entry answers while
    // the directory cannot.
    assert_eq!(pap(&mut h.client(), "rescue", "rescue-pass").await, AuthenStatus::Pass);
    assert_eq!(author(h, "rescue", "configure terminal").await, AuthorStatus::PassAdd);
    assert_eq!(pap(&mut h.client(), "grace", "grace-local-pass").await, AuthenStatus::Pass);
    assert_eq!(
        author(h, "grace", "configure terminal").await,
        AuthorStatus::Fail,
        "local groups: readonly"
    );
    assert_eq!(pap(&mut h.client(), "grace", "wrong").await, AuthenStatus::Fail);
    // The directory comes back: normal again, and for grace the directory wins.
    tokio::task::block_in_place(|| d.slapd.restart());
    let h = &d.h;
    assert!(ben_passes_again(h).await, "the directory is back");
    assert_eq!(pap(&mut h.client(), "grace", "grace-local-pass").await, AuthenStatus::Fail);
    assert_eq!(pap(&mut h.client(), "grace", "grace-ldap-pass").await, AuthenStatus::Pass);
    assert_eq!(
        author(h, "grace", "configure terminal").await,
        AuthorStatus::PassAdd,
        "directory groups: netops"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outage_view_outlives_the_ttl_and_a_disabled_user_is_refused_once_the_entry_expires() {
    let conf = Conf {
        cache: "ttl = \"400ms\"\ngroup_ttl = \"400ms\"\noutage_ttl = \"1h\"".into(),
        ..Conf::default()
    };
    let mut d = start_dir("ldap-ttl", "", "", conf).await;
    assert_eq!(pap(&mut d.h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| d.slapd.stop());
    // Past the ttl, within outage_ttl: the outage view answers.
    assert_eq!(pap(&mut d.h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    assert_eq!(author(&d.h, "anna", "configure terminal").await, AuthorStatus::PassAdd);
    tokio::task::block_in_place(|| d.slapd.restart());
    let h = &d.h;
    assert!(ben_passes_again(h).await, "the directory is back");
    assert_eq!(pap(&mut d.h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    // Disabled in the directory: the cached credential holds for its ttl, no longer.
    tokio::task::block_in_place(|| d.slapd.disable("anna"));
    assert_eq!(pap(&mut d.h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    let h = &d.h;
    assert!(
        eventually(Duration::from_secs(5), || async {
            pap(&mut h.client(), "anna", "anna-ldap-pass").await == AuthenStatus::Fail
        })
        .await,
        "a disabled user still logs in after the cache entry expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lockout_counts_wrong_passwords_not_directory_failures() {
    let mut d = start_dir("ldap-lockout", "", "", lock_after_three()).await;
    tokio::task::block_in_place(|| d.slapd.stop());
    for _ in 0..5 {
        assert_eq!(pap(&mut d.h.client(), "ben", "ben-ldap-pass").await, AuthenStatus::Error);
    }
    tokio::task::block_in_place(|| d.slapd.restart());
    let h = &d.h;
    assert!(ben_passes_again(h).await, "five outages locked ben out");
    // Guesses pipelined on many connections reach the directory as at most
    // max_failures binds (the account is known: only binds remain).
    let mut pipes = Vec::new();
    for _ in 0..4 {
        pipes.push(Pipe::open(h.addr(), None).await);
    }
    let before = ops(h);
    for p in &mut pipes {
        for i in 0..8 {
            p.pap("ben", &format!("guess-{i}"));
        }
    }
    for p in &mut pipes {
        p.flush().await;
    }
    for p in &mut pipes {
        let s = p.authen_statuses(8).await;
        assert!(s.iter().all(|s| *s == AuthenStatus::Fail), "{s:?}");
    }
    let binds = ops(h) - before;
    assert!(binds <= 3, "{binds} directory operations for 32 guesses; the lockout allows 3");
    assert_eq!(pap(&mut h.client(), "ben", "ben-ldap-pass").await, AuthenStatus::Fail, "locked");
}

/// A directory compares names as RFC 4518 prepares them (case, compatibility
/// forms, ignorable characters and spaces): every spelling it takes for one
/// entry shares that entry's lockout. Found by an adversarial review: each
/// spelling was a user of its own, with its own failures and rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spellings_of_one_directory_name_share_its_lockout() {
    let d = start_dir("ldap-spellings", "", "", lock_after_three()).await;
    let h = &d.h;
    // The directory takes each of them for ben.
    // The directory takes each of these for ben (slapd: case, NFKC, spaces
    // at either end, a no-break space among them).
    let spellings = ["ben", "BEN", "Ben ", " ben", "ｂｅｎ", "BEN\u{a0}"];
    for name in spellings {
        assert_eq!(
            pap(&mut h.client(), name, "ben-ldap-pass").await,
            AuthenStatus::Pass,
            "{name:?}"
        );
    }
    for name in ["ben", "Ben", "bEn"] {
        assert_eq!(pap(&mut h.client(), name, "guess").await, AuthenStatus::Fail);
    }
    for name in spellings {
        assert_eq!(
            pap(&mut h.client(), name, "ben-ldap-pass").await,
            AuthenStatus::Fail,
            "{name:?} is ben, locked after three failures"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_server_is_skipped_and_a_frozen_directory_times_out_to_error() {
    let (_hold, dead) = {
        // Bound, not listening: connects are refused.
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    };
    let before = format!("\"ldap://{dead}\", ");
    let conf = Conf { cache: "enabled = false".into(), ..Conf::default() };
    let d = start_dir("ldap-order", &before, "", conf).await;
    let h = &d.h;
    assert_eq!(pap(&mut h.client(), "anna", "anna-ldap-pass").await, AuthenStatus::Pass);
    assert_eq!(author(h, "ben", "show version").await, AuthorStatus::PassAdd);
    // Frozen: connections open, nothing answers. Bounded by the timeouts
    // (1 s here), answered ERROR well before the client's 5 s.
    tokio::task::block_in_place(|| d.slapd.pause());
    assert_eq!(pap(&mut h.client(), "ben", "ben-ldap-pass").await, AuthenStatus::Error);
    tokio::task::block_in_place(|| d.slapd.resume());
    assert!(ben_passes_again(h).await, "the directory is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_passwords_from_the_directory_and_the_secrets_file_are_fresh_every_time() {
    let d = start_dir("ldap-otp", "", "", Conf::default()).await;
    let h = &d.h;
    let policy = h.server.shared().policy();
    let s = &policy.otp;
    let frank = OtpSecret::from_base32(slapd::FRANK_SECRET).unwrap();
    // PAP: the code after the password.
    let now = code_at(&frank, s, unix());
    let data = format!("frank-ldap-pass{now}");
    assert_eq!(pap(&mut h.client(), "frank", &data).await, AuthenStatus::Pass);
    // The same again: the password is cached, but the code was used.
    assert_eq!(pap(&mut h.client(), "frank", &data).await, AuthenStatus::Fail, "replayed code");
    assert_eq!(
        pap(&mut h.client(), "frank", "frank-ldap-pass").await,
        AuthenStatus::Fail,
        "no code"
    );
    assert_eq!(pap(&mut h.client(), "frank", "frank-ldap-pass000000").await, AuthenStatus::Fail);
    // ASCII: password, then an "OTP:" prompt (GETDATA) for the code.
    let next = code_at(&frank, s, unix() + 30);
    let mut script = Script::new(&["frank", "frank-ldap-pass", &next]);
    let reply = h
        .client()
        .authenticate(
            start_pkt(AuthenType::Ascii, tacvs_proto::AuthenService::Login, "", vec![]),
            &mut script,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, AuthenStatus::Pass, "{:?}", script.prompts);
    assert_eq!(script.prompts.last().unwrap(), &(AuthenStatus::GetData, "OTP: ".to_owned()));
    // A user of the file enrolled in the secrets file, read on reload.
    let mut store = tacvs_server::otp::OtpStore::open(&policy.otp.secrets_file).unwrap();
    let olga = store.enroll("olga").unwrap();
    h.server.reload().await.unwrap();
    let policy = h.server.shared().policy();
    assert_eq!(
        pap(&mut h.client(), "olga", "olga-pass").await,
        AuthenStatus::Fail,
        "enrolled: a code is required"
    );
    let code = code_at(&olga, &policy.otp, unix());
    assert_eq!(pap(&mut h.client(), "olga", &format!("olga-pass{code}")).await, AuthenStatus::Pass);
    // otp = true without a secret: nobody gets in.
    assert_eq!(pap(&mut h.client(), "otto", "otto-pass123456").await, AuthenStatus::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldaps_and_starttls_check_the_servers_certificate() {
    for (tag, tls, good_ca) in [
        ("ldaps", true, true),
        ("starttls", false, true),
        ("ldaps-other-ca", true, false),
        ("starttls-other-ca", false, false),
    ] {
        let dir = test_dir(&format!("ldap-{tag}"));
        let slapd = tokio::task::block_in_place(|| Slapd::start_tls(&dir));
        let url = if tls { slapd.tls_url() } else { slapd.url() };
        let ca = if good_ca { slapd.ca_file() } else { slapd.dir.join("other-ca.pem") };
        let extra = format!("starttls = {}\nca_file = \"{}\"", !tls, ca.display());
        let d = start_on(dir, slapd, &format!("\"{url}\""), &extra, Conf::default()).await;
        let want = if good_ca { AuthenStatus::Pass } else { AuthenStatus::Error };
        assert_eq!(pap(&mut d.h.client(), "anna", "anna-ldap-pass").await, want, "{tag}");
    }
}
