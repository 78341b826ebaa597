//! The `tacvs` binary end to end: `tacvs client` against a loopback responder,
//! exit codes, JSON output, key sources; `tacvs demo`.

use std::process::{Command, Output};

use tacvs_client::selfcheck::{PASSWORD, USER, spawn_responder};
use tacvs_proto::Key;

const KEY: &str = "cli-test-key";

fn tacvs(args: &[&str], env_key: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tacvs"));
    c.args(args).env_remove("TACVS_KEY");
    if let Some(k) = env_key {
        c.env("TACVS_KEY", k);
    }
    c.output().expect("run tacvs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

#[tokio::test(flavor = "multi_thread")]
async fn client_exit_codes_json_and_keys() {
    let r = spawn_responder("127.0.0.1:0".parse().unwrap(), Key::new(KEY))
        .await
        .unwrap();
    let server = r.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let s = server.as_str();
        vec![
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "--key",
                    KEY,
                    "authenticate",
                    "--user",
                    USER,
                    "--password",
                    PASSWORD,
                    "--type",
                    "pap",
                ],
                None,
            ),
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "--key",
                    KEY,
                    "authenticate",
                    "--user",
                    USER,
                    "--password",
                    "bad",
                    "--type",
                    "chap",
                ],
                None,
            ),
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "authenticate",
                    "--user",
                    USER,
                    "--password",
                    PASSWORD,
                    "--type",
                    "mschapv2",
                ],
                Some(KEY),
            ),
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "--key",
                    "wrong",
                    "--json",
                    "authorize",
                    "--user",
                    USER,
                    "--cmd",
                    "show version",
                ],
                None,
            ),
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "--key",
                    KEY,
                    "--json",
                    "authorize",
                    "--user",
                    USER,
                    "--cmd",
                    "show version",
                    "--av",
                    "x*1",
                ],
                None,
            ),
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "--key",
                    KEY,
                    "authorize",
                    "--user",
                    USER,
                    "--cmd",
                    "reload",
                ],
                None,
            ),
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "--key",
                    KEY,
                    "--single-connect",
                    "account",
                    "--user",
                    USER,
                    "--stop",
                    "--av",
                    "elapsed_time=5",
                ],
                None,
            ),
            tacvs(
                &[
                    "client",
                    "--server",
                    s,
                    "--key",
                    KEY,
                    "authenticate",
                    "--user",
                    USER,
                    "--password",
                    PASSWORD,
                ],
                None,
            ),
            tacvs(
                &["client", "--server", s, "authorize", "--user", USER],
                None,
            ),
        ]
    })
    .await
    .unwrap();
    let codes: Vec<i32> = out.iter().map(code).collect();
    assert_eq!(
        codes,
        [0, 1, 0, 2, 0, 1, 0, 0, 2],
        "stderr: {:?}",
        out.iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect::<Vec<_>>()
    );

    let stdout = |i: usize| String::from_utf8_lossy(&out[i].stdout).into_owned();
    let stderr = |i: usize| String::from_utf8_lossy(&out[i].stderr).into_owned();
    assert!(stdout(0).contains("authentication: PASS"), "{}", stdout(0));
    let wrong: serde_json::Value = serde_json::from_str(stdout(3).trim()).unwrap();
    assert_eq!(wrong["error_kind"], "wrong_key");
    let ok: serde_json::Value = serde_json::from_str(stdout(4).trim()).unwrap();
    assert_eq!(ok["status"], "pass_add");
    assert!(stdout(6).contains("accounting: SUCCESS"));
    assert!(stderr(8).contains("no shared key"), "{}", stderr(8));
    for o in &out {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            !all.contains(KEY) && !all.contains(PASSWORD),
            "a secret was echoed: {all}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_file_and_transport_failure() {
    let r = spawn_responder("127.0.0.1:0".parse().unwrap(), Key::new(KEY))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tacvs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kf = dir.join("key");
    std::fs::write(&kf, format!("{KEY}\n")).unwrap();
    let server = r.addr.to_string();
    let kf2 = kf.clone();
    let (ok, refused) = tokio::task::spawn_blocking(move || {
        let ok = tacvs(
            &[
                "client",
                "--server",
                &server,
                "--key-file",
                kf2.to_str().unwrap(),
                "authorize",
                "--user",
                USER,
            ],
            None,
        );
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap().to_string();
        drop(l);
        let refused = tacvs(
            &[
                "client",
                "--server",
                &closed,
                "--key",
                KEY,
                "--json",
                "--timeout",
                "300ms",
                "authorize",
                "--user",
                USER,
            ],
            None,
        );
        (ok, refused)
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code(&ok), 0, "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(code(&refused), 2);
    let v: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(v["error_kind"], "connect_refused");
}

#[test]
fn demo_passes() {
    let o = tacvs(&["demo"], None);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 failed"));
}
