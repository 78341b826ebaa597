//! The control socket: who may use it (issue 14) and what it answers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tacvs_director::{Reply, Request};

use super::e2e::{TCP, conf_with, real_server, tmp};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Send one request line to `sock` as user and group 65534 (nobody), return the reply line.
fn as_nobody(sock: &Path, line: &str) -> String {
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test changes user: run it as root (./scripts/test; CI runs it as root)"
    );
    let perl = "use IO::Socket::UNIX; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die \
        \"connect: $!\"; print $s \"$ARGV[1]\\n\"; print while <$s>;";
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "perl", "-e", perl])
        .arg(sock)
        .arg(line)
        .output()
        .expect("setpriv and perl (util-linux, perl-base)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Root (or CI, where a skip is a failure): this test changes user.
fn root_or_skip(test: &str) -> bool {
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let must = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("TACVS_PRIVILEGED_TESTS").is_ok_and(|v| v == "1");
    if !root && !must {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs root (it changes user)");
    }
    root || must
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_whatever_the_umask_and_checks_the_peer() {
    if !root_or_skip("the_socket_is_private_whatever_the_umask_and_checks_the_peer") {
        return;
    }
    let (d1, dd) = (tmp("cs1"), tmp("csd"));
    let s1 = real_server(&d1).await;
    let a1 = s1.local_addrs[0];
    let dir = tacvs_director::start(conf_with(&[a1], &dd, TCP, "")).await.unwrap();
    let sock = dd.join("director.sock");
    assert_eq!(mode(&sock), 0o600, "mode set explicitly, not from the umask");
    // Made world-writable by mistake: another user reaches the socket, and
    // the peer-credential check still refuses it.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let drain = format!("{{\"cmd\":\"drain\",\"server\":\"{a1}\"}}");
    let reply: Reply = serde_json::from_str(&as_nobody(&sock, &drain)).unwrap();
    assert!(
        matches!(&reply, Reply::Error { error } if error.contains("permission denied for uid 65534")),
        "{reply:?}"
    );
    assert_eq!(dir.status()[0].reals[0].weight, 1, "nobody drained a server");
    // The director's own user (root here) is served.
    let r = tacvs_director::request(&sock, &Request::Drain { server: a1 }).await.unwrap();
    assert!(matches!(r, Reply::Changed { .. }), "{r:?}");
    assert_eq!(dir.status()[0].reals[0].weight, 0);
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_group_may_use_the_socket() {
    let (d1, dd) = (tmp("cg1"), tmp("cgd"));
    let s1 = real_server(&d1).await;
    let a1 = s1.local_addrs[0];
    let text = toml::to_string(&conf_with(&[a1], &dd, TCP, "")).unwrap().replacen(
        "[director]\n",
        "[director]\ncontrol_socket_group = \"65534\"\n",
        1,
    );
    let conf = tacvs_director::config::parse("d.toml", &text).unwrap();
    let dir = tacvs_director::start(conf).await.unwrap();
    let sock = dd.join("director.sock");
    assert_eq!(mode(&sock), 0o660);
    assert_eq!(std::fs::metadata(&sock).unwrap().gid(), 65534);
    let reply: Reply = serde_json::from_str(&as_nobody(&sock, "{\"cmd\":\"status\"}")).unwrap();
    assert!(matches!(reply, Reply::Status(_)), "{reply:?}");
    dir.stop();
    s1.shutdown(Duration::from_millis(100)).await;
    for d in [d1, dd] {
        let _ = std::fs::remove_dir_all(d);
    }
}
