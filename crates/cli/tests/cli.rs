//! The `tacvs` binary end to end, as a normal user: `tacvs client` against a
//! loopback responder, exit codes, JSON output, key sources; `tacvs sim`;
//! `tacvs server` as a process; `tacvs demo`. What needs root (namespaces,
//! keepalived, the lab) is in `tests/privileged.rs`.

mod identity;

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

/// A port nothing listens on, held for the caller: the socket is bound but
/// not listening, so connects to it are refused and no other test can take
/// the port meanwhile (unlike binding port 0 and dropping the listener).
fn refusing_port() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

#[tokio::test(flavor = "multi_thread")]
async fn client_exit_codes_json_and_keys() {
    let r = spawn_responder("127.0.0.1:0".parse().unwrap(), Key::new(KEY)).await.unwrap();
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
            tacvs(&["client", "--server", s, "authorize", "--user", USER], None),
        ]
    })
    .await
    .unwrap();
    let codes: Vec<i32> = out.iter().map(code).collect();
    assert_eq!(
        codes,
        [0, 1, 0, 2, 0, 1, 0, 0, 2],
        "stderr: {:?}",
        out.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect::<Vec<_>>()
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
        let all =
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(!all.contains(KEY) && !all.contains(PASSWORD), "a secret was echoed: {all}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_file_and_transport_failure() {
    let r = spawn_responder("127.0.0.1:0".parse().unwrap(), Key::new(KEY)).await.unwrap();
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
        let (_held, closed) = refusing_port();
        let closed = closed.to_string();
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

/// `tacvs …` with standard input from `stdin` and no controlling terminal
/// (its own session), as under cron, CI or ssh without -t.
fn tacvs_detached(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_tacvs"));
    c.args(args).env_remove("TACVS_KEY");
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    #[allow(unsafe_code)]
    // SAFETY: setsid(2) is async-signal-safe; it detaches the child from our terminal.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = c.spawn().expect("run tacvs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn authenticate_without_a_terminal_or_password_refuses_and_sends_nothing() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let server = l.local_addr().unwrap().to_string();
    for ty in ["pap", "ascii", "chap"] {
        let o = tacvs_detached(
            &[
                "client",
                "--server",
                &server,
                "--key",
                KEY,
                "authenticate",
                "--user",
                USER,
                "--type",
                ty,
            ],
            "",
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{ty}: {err}");
        assert!(err.contains("--password") && err.contains("--password-stdin"), "{ty}: {err}");
    }
    // Nothing reached the server: no empty password counted toward a lockout.
    assert_eq!(
        l.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the client connected"
    );
}

#[test]
fn hash_password_from_a_pipe_says_to_use_stdin() {
    let o = tacvs_detached(&["hash-password"], "secret-pw\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("--stdin") && !err.contains("secret-pw"), "{err}");
    let o = tacvs_detached(&["hash-password", "--stdin", "-a", "sha256-crypt"], "secret-pw\n");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("$5$"));
}

#[tokio::test(flavor = "multi_thread")]
async fn password_stdin_and_options_after_the_request_type() {
    let r = spawn_responder("127.0.0.1:0".parse().unwrap(), Key::new(KEY)).await.unwrap();
    let server = r.addr.to_string();
    let (piped, late) = tokio::task::spawn_blocking(move || {
        let piped = tacvs_detached(
            &["client", "--server", &server, "--key", KEY, "authenticate", "--user", USER]
                .into_iter()
                .chain(["--type", "pap", "--password-stdin"])
                .collect::<Vec<_>>(),
            &format!("{PASSWORD}\n"),
        );
        // Every client option after the request type, as a person types them.
        let late = tacvs(
            &["client", "authorize", "--user", USER, "--json", "--server", &server, "--key", KEY],
            None,
        );
        (piped, late)
    })
    .await
    .unwrap();
    assert_eq!(code(&piped), 0, "{}", String::from_utf8_lossy(&piped.stderr));
    assert!(String::from_utf8_lossy(&piped.stdout).contains("authentication: PASS"));
    assert_eq!(code(&late), 0, "{}", String::from_utf8_lossy(&late.stderr));
    let v: serde_json::Value = serde_json::from_slice(&late.stdout).unwrap();
    assert_eq!(v["status"], "pass_add");
}

#[test]
fn usage_errors_name_every_choice_and_the_documented_units() {
    let o =
        tacvs(&["client", "--server", "127.0.0.1:1", "--key", "k", "account", "--user", "u"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    for choice in ["--start", "--stop", "--watchdog"] {
        assert!(err.contains(choice), "account without a record type: {err}");
    }
    let o =
        tacvs(&["client", "--server", "h:1", "--timeout", "3", "authorize", "--user", "u"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3s") && !err.contains("3sec"), "{err}");
    // Old spelling kept: sim --target is --server.
    let o = tacvs(&["sim", "--target", "h:1", "--duration", "3", "--rate", "1"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("e.g. 3s"), "{err}");
}

#[test]
fn every_subcommand_tells_its_version_and_commit() {
    let line = |args: &[&str]| {
        let o = tacvs(args, None);
        assert_eq!(code(&o), 0, "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let top = line(&["--version"]);
    let commit = top.split("(commit ").nth(1).and_then(|c| c.strip_suffix(')')).unwrap_or("");
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{top}"
    );
    for sub in [
        &["client", "--version"][..],
        &["server", "--version"],
        &["director", "--version"],
        &["sim", "--version"],
        &["sim", "plan", "--version"],
        &["lab", "run", "--version"],
        &["demo", "--version"],
        &["check", "--version"],
        &["hash-password", "--version"],
    ] {
        let l = line(sub);
        assert!(l.ends_with(top.trim_start_matches("tacvs ")), "{sub:?}: {l}");
    }
}

#[test]
fn demo_help_describes_the_demo_it_runs() {
    let o = tacvs(&["demo", "--help"], None);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("two tacvs servers behind a director"), "{out}");
    assert!(!out.contains("a real server,"), "{out}");
    // No help text states this machine's open-file limit.
    let o = tacvs(&["sim", "--help"], None);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("20,000") && out.contains("ulimit -Hn"), "{out}");
}

#[test]
fn lab_status_without_a_lab_exits_non_zero() {
    let dir = temp_dir("labstatus");
    let o = Command::new(env!("CARGO_BIN_EXE_tacvs"))
        .args(["lab", "status", "--prefix", "tvnone"])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 1, "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("not up") && out.contains("namespaces with the prefix: none"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sim_fails_when_no_request_is_answered() {
    let (_held, closed) = refusing_port();
    let closed = closed.to_string();
    let o = tacvs(
        &[
            "sim",
            "--server",
            &closed,
            "--key",
            KEY,
            "--devices",
            "4",
            "--concurrency",
            "2",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--timeout",
            "200ms",
            "--json",
        ],
        None,
    );
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no request was answered") && err.contains("connect_refused"), "{err}");
    // `--json` alone: the report is standard output; refused connects are
    // counted as errors, not timed.
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["total"]["errors"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["total"]["latency_ms"]["p50"], 0.0, "{r}");
}

#[test]
fn demo_passes() {
    // 100 devices at 400/s: every device reaches accounting before the kill.
    let o = tacvs(
        &["demo", "--devices", "100", "--rate", "400", "--duration", "4s", "--kill-at", "2s"],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(out.contains("All expectations met"), "{out}");
    assert!(out.contains("rs1 left scheduling"), "{out}");
    assert!(out.contains("devices' own addresses only: yes"), "{out}");
}

#[test]
fn demo_over_tls_passes() {
    let o = tacvs(
        &[
            "demo",
            "--tls",
            "--devices",
            "50",
            "--rate",
            "100",
            "--duration",
            "4s",
            "--kill-at",
            "2s",
        ],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(out.contains("All expectations met"), "{out}");
    assert!(out.contains("plain TACACS+ to the TLS port          refused"), "{out}");
    assert!(out.contains("tls.subject CN=tacvs-demo-fleet): yes"), "{out}");
    assert!(out.contains("TLS: ") && out.contains("resumed"), "{out}");
}

// ---------------------------------------------------------------------------
// `tacvs server` as a process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tacvs-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `examples/server.toml` as shipped, written into `cwd` with its TACACS+
/// listener on `tacacs` and its metrics on a port the kernel chooses.
fn example_config(cwd: &Path, tacacs: &str) -> PathBuf {
    let cfg = cwd.join("server.toml");
    let example = std::fs::read_to_string(workspace().join("examples/server.toml")).unwrap();
    std::fs::write(
        &cfg,
        example
            .replace("127.0.0.1:4949", tacacs)
            .replace("listen = \"127.0.0.1:9449\"", "listen = \"127.0.0.1:0\""),
    )
    .unwrap();
    cfg
}

/// A `tacvs server` child; SIGTERM on drop if still running.
struct ServerProc {
    child: Child,
    addr: SocketAddr,
    /// The server's own pid: the child's, or under a wrapper that forks
    /// (strace) its descendant running the tacvs binary.
    pid: u32,
}

/// `pid` or the first descendant of it whose executable is `exe`.
fn running(pid: u32, exe: &Path) -> Option<u32> {
    if std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_deref() == Some(exe) {
        return Some(pid);
    }
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().filter_map(|c| c.parse().ok()).find_map(|c| running(c, exe))
}

impl ServerProc {
    /// Start with JSON logs and wait for its "listening" line.
    fn start(config: &Path, cwd: &Path) -> ServerProc {
        Self::start_under(&[], config, cwd)
    }

    /// The same, run by `wrapper` (e.g. `strace … --`); empty: run directly.
    fn start_under(wrapper: &[&str], config: &Path, cwd: &Path) -> ServerProc {
        let bin = env!("CARGO_BIN_EXE_tacvs");
        let mut cmd = match wrapper {
            [] => Command::new(bin),
            [prog, args @ ..] => {
                let mut c = Command::new(prog);
                c.args(args).arg(bin);
                c
            }
        };
        let mut child = cmd
            .args(["--log-format", "json", "server", "--config"])
            .arg(config)
            .current_dir(cwd)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn tacvs server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("\"listening\"") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    tx.send(v["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap()).ok();
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server reported its listening address");
        let exe = Path::new(bin).canonicalize().unwrap();
        let pid = running(child.id(), &exe).expect("the server process under its wrapper");
        ServerProc { child, addr, pid }
    }

    /// Its Prometheus endpoint: the listening address that is not the
    /// TACACS+ one (a config's `listen = "127.0.0.1:0"` gets a free port).
    fn metrics_addr(&self) -> SocketAddr {
        let within = Instant::now() + Duration::from_secs(10);
        loop {
            let other: Vec<SocketAddr> =
                listening(self.pid).into_iter().filter(|a| *a != self.addr).collect();
            if let [one] = other[..] {
                return one;
            }
            assert!(Instant::now() < within, "no single metrics listener: {other:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid as i32, sig);
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The server itself (a wrapper such as strace outlives nothing it forks).
            self.signal(libc::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The IPv4 TCP addresses process `pid` listens on, from the kernel: its
/// socket inodes (/proc/PID/fd) in the LISTEN entries of /proc/net/tcp.
fn listening(pid: u32) -> Vec<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT, the IP's bytes in host order.
            if f.len() < 10 || f[3] != "0A" || !inodes.iter().any(|i| i == f[9]) {
                return None;
            }
            let (ip, port) = f[1].split_once(':')?;
            let ip = u32::from_str_radix(ip, 16).ok()?.to_le_bytes();
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(SocketAddr::from((ip, port)))
        })
        .collect()
}

fn journal_lines(dir: &Path) -> Vec<serde_json::Value> {
    let lines = tacvs_server::journal::read_lines(dir).unwrap_or_default();
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("every journal line is whole JSON"))
        .collect()
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn run_ok(cmd: &mut Command) -> (i32, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

/// PyPI `tacacs_plus` (its `tacacs_client`) and Debian `libauthen-tacacsplus-perl`
/// against `examples/server.toml` as shipped. `scripts/test` installs both.
#[test]
fn independent_clients_against_the_example_config() {
    let ws = workspace();
    let py = std::env::var("TACVS_PY_CLIENT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| ws.join("target/interop-venv/bin/tacacs_client"));
    assert!(
        py.exists(),
        "{} is missing: run ./scripts/test, which installs PyPI tacacs_plus there",
        py.display()
    );
    let perl_ok = Command::new("perl")
        .args(["-MAuthen::TacacsPlus", "-e1"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        perl_ok,
        "Perl Authen::TacacsPlus is missing: run ./scripts/test, which installs libauthen-tacacsplus-perl"
    );

    let cwd = temp_dir("interop");
    // examples/server.toml as shipped, on ports the kernel chooses.
    let cfg = example_config(&cwd, "127.0.0.1:0");
    let srv = ServerProc::start(&cfg, &cwd);
    let port = srv.addr.port().to_string();
    let metrics_addr = srv.metrics_addr().to_string();
    let py_run = |args: &[&str], stdin: &str| {
        let mut c = Command::new(&py);
        c.args(["-H", "127.0.0.1", "-p", &port, "-k", "tacvs-demo-key", "--timeout", "5"])
            .args(args);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let mut results = Vec::new();
    for t in ["ascii", "pap", "chap"] {
        // The CLI asks for CHAP's PPP id and challenge on stdin.
        let stdin = if t == "chap" { "7\nchallenge-1234567\n" } else { "" };
        results.push((
            format!("py {t} good"),
            py_run(&["-u", "alice", "-t", t, "authenticate", "-p", "alice-pass"], stdin),
            0,
        ));
        results.push((
            format!("py {t} bad"),
            py_run(&["-u", "alice", "-t", t, "authenticate", "-p", "wrong"], stdin),
            1,
        ));
    }
    results.push((
        "py authorize show".into(),
        py_run(
            &["-u", "bob", "authorize", "-c", "service=shell", "cmd=show", "cmd-arg=version"],
            "",
        ),
        0,
    ));
    results.push((
        "py authorize configure".into(),
        py_run(
            &["-u", "bob", "authorize", "-c", "service=shell", "cmd=configure", "cmd-arg=terminal"],
            "",
        ),
        1,
    ));
    results.push((
        "py account start".into(),
        py_run(&["-u", "bob", "account", "-f", "start", "-c", "service=shell", "task_id=9"], ""),
        0,
    ));
    results.push((
        "py account stop".into(),
        py_run(&["-u", "bob", "account", "-f", "stop", "-c", "service=shell", "task_id=9"], ""),
        0,
    ));

    let script = ws.join("crates/cli/tests/authen_tacacsplus.pl");
    for t in ["ascii", "pap", "chap"] {
        for (pw, want) in [("alice-pass", 0), ("wrong", 1)] {
            let r = run_ok(Command::new("perl").arg(&script).args([
                port.as_str(),
                "tacvs-demo-key",
                "alice",
                pw,
                t,
            ]));
            results.push((format!("perl {t} {pw}"), r, want));
        }
    }
    for (name, (code, out), want) in &results {
        assert_eq!(code, want, "{name}: {out}");
    }
    let j = journal_lines(&cwd.join("var/acct"));
    assert_eq!(j.len(), 2);
    assert_eq!(j[0]["device"], "127.0.0.1");
    assert_eq!(j[1]["record"], "stop");

    // The Prometheus endpoint of examples/server.toml counted all of it.
    let metrics = http_get(&metrics_addr, "/metrics");
    let value = |needle: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(value("tacvs_requests_total{type=\"authen\",result=\"pass\"}") >= 6.0, "{metrics}");
    assert!(value("tacvs_requests_total{type=\"authen\",result=\"fail\"}") >= 5.0, "{metrics}");
    assert!(value("tacvs_requests_total{type=\"author\",result=\"fail\"}") >= 1.0, "{metrics}");
    assert_eq!(value("tacvs_requests_total{type=\"acct\",result=\"success\"}"), 2.0, "{metrics}");
    assert!(value("tacvs_journal_fsync_seconds_count") >= 1.0, "{metrics}");
    assert!(metrics.contains("tacvs_request_duration_seconds_bucket"), "{metrics}");
    // A wrong key is answered per the RFC and counted.
    let server = srv.addr.to_string();
    let (code, _) = run_ok(Command::new(env!("CARGO_BIN_EXE_tacvs")).args([
        "client",
        "--server",
        &server,
        "--key",
        "wrong",
        "authorize",
        "--user",
        "bob",
    ]));
    assert_eq!(code, 2);
    let metrics2 = http_get(&metrics_addr, "/metrics");
    assert!(metrics2.contains("tacvs_rejects_total{reason=\"wrong_key\"} 1"), "{metrics2}");
    drop(srv);
    std::fs::remove_dir_all(&cwd).ok();
}

/// kill -9 during an accounting burst: every record a client saw acknowledged
/// is in the journal after a restart, and the journal is whole JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_accounting_record() {
    use std::sync::{Arc, Mutex};
    let cwd = temp_dir("crash");
    let cfg = example_config(&cwd, "127.0.0.1:0");
    let srv = ServerProc::start(&cfg, &cwd);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for client in 0..32 {
        let acked = acked.clone();
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let opts = tacvs_client::ClientOptions {
                single_connect: client % 2 == 0,
                timeout: Duration::from_secs(2),
                source: Some(
                    format!("127.0.{}.{}", client / 200, client % 200 + 1).parse().unwrap(),
                ),
                ..tacvs_client::ClientOptions::new(addr, Some(Key::new("tacvs-demo-key")))
            };
            let mut c = tacvs_client::Client::new(opts);
            for n in 0.. {
                let id = format!("{client}-{n}");
                let args = vec![
                    tacvs_proto::Argument::new("task_id", &id, true).unwrap(),
                    "service=shell".parse().unwrap(),
                ];
                let req = tacvs_proto::AcctRequest {
                    flags: tacvs_proto::AcctFlags::Stop,
                    request: tacvs_proto::AaaRequest::new("alice", args),
                };
                match c.account(req).await {
                    Ok(r) if r.status == tacvs_proto::AcctStatus::Success => {
                        acked.lock().unwrap().push(id)
                    }
                    Ok(r) => panic!("unexpected {r:?}"),
                    Err(_) => return, // the server died
                }
            }
        }));
    }
    // Kill once the burst is going (a condition, not a guess at a time).
    let within = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < within, "the accounting burst did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    srv.signal(libc::SIGKILL);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "the burst got going: {} acks", acked.len());
    drop(srv);
    // Restart: the journal is repaired if torn, and every acked record is there.
    let srv2 = ServerProc::start(&cfg, &cwd);
    let ids: std::collections::HashSet<String> = journal_lines(&cwd.join("var/acct"))
        .iter()
        .map(|v| v["args"][0].as_str().unwrap().trim_start_matches("task_id=").to_owned())
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records missing, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(ids.len() >= acked.len());
    eprintln!(
        "kill -9: {} acknowledged, {} in the journal (the rest were written but not yet acknowledged)",
        acked.len(),
        ids.len()
    );
    drop(srv2);
    std::fs::remove_dir_all(&cwd).ok();
}

/// SIGTERM stops new connections but lets a session in progress finish: an
/// ASCII login waiting for its password completes, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_sessions_in_progress() {
    use tacvs_proto::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cwd = temp_dir("drain");
    let cfg = example_config(&cwd, "[::1]:0");
    let mut srv = ServerProc::start(&cfg, &cwd);
    assert!(srv.addr.is_ipv6(), "listening on IPv6: {}", srv.addr);
    // Start an ASCII login and stop at the password prompt.
    let mut m = ClientConnection::new(ClientConfig::default(), Some(Key::new("tacvs-demo-key")));
    let start = AuthenStart {
        action: AuthenAction::Login,
        priv_lvl: PrivLvl::USER,
        authen_type: AuthenType::Ascii,
        authen_service: AuthenService::Login,
        user: "alice".into(),
        port: "vty0".into(),
        rem_addr: "".into(),
        data: bytes::Bytes::new(),
    };
    m.start_authen(77, start).unwrap();
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut out = Vec::new();
    m.poll_transmit(&mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let prompt = loop {
        assert!(s.read_buf(&mut buf).await.unwrap() > 0);
        m.handle_input(&mut buf);
        if let Some(ev) = m.poll_event() {
            break ev;
        }
    };
    assert!(
        matches!(
            prompt,
            ClientEvent::AuthenReply {
                reply: AuthenReply { status: AuthenStatus::GetPass, .. },
                ..
            }
        ),
        "{prompt:?}"
    );
    srv.signal(libc::SIGTERM);
    // New connections are refused soon after (the listener closes)...
    let within = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(srv.addr).await.is_ok() {
        assert!(Instant::now() < within, "listener still accepting 5 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...but the login in progress finishes.
    m.continue_authen(77, "alice-pass").unwrap();
    let mut out = Vec::new();
    m.poll_transmit(&mut out);
    s.write_all(&out).await.unwrap();
    let done = loop {
        assert!(s.read_buf(&mut buf).await.unwrap() > 0, "server closed before answering");
        m.handle_input(&mut buf);
        if let Some(ev) = m.poll_event() {
            break ev;
        }
    };
    assert!(
        matches!(
            done,
            ClientEvent::AuthenReply { reply: AuthenReply { status: AuthenStatus::Pass, .. }, .. }
        ),
        "{done:?}"
    );
    let status = tokio::task::spawn_blocking(move || srv.child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    std::fs::remove_dir_all(&cwd).ok();
}

/// `tacvs sim` against a real server process: --expect exit codes, the JSON
/// report's documented fields, and `tacvs sim plan` on that report.
#[test]
fn sim_expect_json_and_plan() {
    let cwd = temp_dir("sim");
    let cfg = example_config(&cwd, "127.0.0.1:0");
    let srv = ServerProc::start(&cfg, &cwd);
    let metrics_addr = srv.metrics_addr().to_string();
    let target = srv.addr.to_string();
    let json = cwd.join("report.json");
    let sim = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tacvs"));
        c.args([
            "sim",
            "--server",
            &target,
            "--key",
            "tacvs-demo-key",
            "--devices",
            "100",
            "--duration",
            "2s",
            "--warmup",
            "0s",
        ]);
        c.args(extra);
        run_ok(&mut c)
    };
    let (code, out) = sim(&[
        "--rate",
        "400",
        "--json",
        json.to_str().unwrap(),
        "--expect",
        "errors==0,throughput>=300",
        "--expect",
        "acct.errors==0",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("expect ok:     errors==0 (actual 0)"), "{out}");
    // What the fleet counted is what the server counted.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let metrics = http_get(&metrics_addr, "/metrics");
    let served = |ty: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("tacvs_requests_total{{type=\"{ty}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    for ty in ["authen", "author", "acct"] {
        assert_eq!(
            served(ty),
            report["by_type"][ty]["requests"].as_u64().unwrap_or(0),
            "{ty}: server metrics vs sim report\n{metrics}"
        );
    }
    let (code, out) = sim(&["--rate", "400", "--expect", "p99<1us"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("expect FAILED: p99<1us"), "{out}");
    let (code, out) = sim(&["--rate", "400", "--expect", "p98<1"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown metric"), "{out}");

    // The report has every documented field, with consistent numbers.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for f in [
        "version",
        "target",
        "profile",
        "devices",
        "mode",
        "rate",
        "concurrency",
        "duration_s",
        "warmup_s",
        "total",
        "by_type",
        "errors_by_kind",
        "delayed_starts",
        "series",
        "sim_cpu_s",
        "sim_cpu_us_per_request",
    ] {
        assert!(r.get(f).is_some(), "missing {f}");
    }
    for f in ["requests", "ok", "fail", "errors", "throughput", "latency_ms"] {
        assert!(r["total"].get(f).is_some(), "missing total.{f}");
    }
    for f in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(r["total"]["latency_ms"].get(f).is_some(), "missing latency_ms.{f}");
    }
    let sum: u64 = ["authen", "author", "acct"]
        .iter()
        .filter_map(|k| r["by_type"][k]["requests"].as_u64())
        .sum();
    assert_eq!(sum, r["total"]["requests"].as_u64().unwrap());
    assert_eq!(r["mode"], "open");

    // acct_acknowledged counts without --acked.
    assert_eq!(
        r["acct_acknowledged"].as_u64(),
        r["by_type"]["acct"]["ok"].as_u64(),
        "no warm-up: every acknowledged record is in the window"
    );

    // Plan from that report: the server kept up with 400 req/s, which is no
    // capacity.
    let plan = |report: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tacvs"));
        c.args(["sim", "plan", "--report"]).arg(report).args([
            "--devices",
            "50000",
            "--latency-target",
            "1s",
            "--headroom",
            "30%",
        ]);
        run_ok(&mut c)
    };
    let (code, out) = plan(&json);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("did not saturate") && out.contains("--concurrency"), "{out}");
    // A closed-loop run keeps the server busy: that is a capacity.
    let closed = cwd.join("closed.json");
    let (code, out) = sim(&["--concurrency", "8", "--json", closed.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = plan(&closed);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("closed loop with 8 requests in flight"), "{out}");
    assert!(
        out.contains("requests/s per device")
            && out.contains("+ 1 spare (N+1)")
            && out.contains("servers for 50000 devices"),
        "{out}"
    );
    drop(srv);
    std::fs::remove_dir_all(&cwd).ok();
}

/// The journal's contract, seen from outside with strace: an accounting
/// SUCCESS leaves the server only after `fdatasync` of the journal file has
/// returned, and the record was written to that file before. Removing the
/// fdatasync, or acknowledging before it, fails this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_success_leaves_only_after_the_journal_fdatasync_returns() {
    if Command::new("strace").arg("-V").output().is_err() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "strace is missing (./scripts/test installs it)");
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED fdatasync ordering: strace not installed");
        return;
    }
    let cwd = temp_dir("fsync-order");
    let cfg = example_config(&cwd, "127.0.0.1:0");
    let trace = cwd.join("trace.txt");
    let trace_arg = trace.to_str().unwrap().to_owned();
    let srv = ServerProc::start_under(
        &[
            "strace",
            "-f",
            "-qq",
            "-x",
            "-s",
            "16",
            "-e",
            "trace=openat,write,writev,sendto,sendmsg,fdatasync,fsync",
            "-e",
            "signal=none",
            "-o",
            &trace_arg,
            "--",
        ],
        &cfg,
        &cwd,
    );
    let opts = tacvs_client::ClientOptions {
        timeout: Duration::from_secs(5),
        ..tacvs_client::ClientOptions::new(srv.addr, Some(Key::new("tacvs-demo-key")))
    };
    let req = tacvs_proto::AcctRequest {
        flags: tacvs_proto::AcctFlags::Stop,
        request: tacvs_proto::AaaRequest::new(
            "alice",
            vec!["service=shell".parse().unwrap(), "task_id=fsync-order".parse().unwrap()],
        ),
    };
    let r = tacvs_client::Client::new(opts).account(req).await.unwrap();
    assert_eq!(r.status, tacvs_proto::AcctStatus::Success);
    drop(srv);
    let t = std::fs::read_to_string(&trace).unwrap();
    // strace pads the result column: one space between words.
    let lines: Vec<String> =
        t.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    // The journal file's descriptor, from its openat.
    let jfd = lines
        .iter()
        .rev()
        .filter(|l| l.contains("openat(") && l.contains("/var/acct/"))
        .find_map(|l| l.rsplit("= ").next()?.trim().parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no openat of the journal in the trace:\n{t}"));
    let journal_write = lines
        .iter()
        .position(|l| l.contains(&format!("write({jfd}, ")))
        .unwrap_or_else(|| panic!("no write to the journal (fd {jfd}):\n{t}"));
    // Where the fdatasync of that descriptor returned: its whole line, or the
    // "resumed" line of the thread that started it.
    let mut synced = None;
    for (i, l) in lines.iter().enumerate().skip(journal_write) {
        if l.contains(&format!("fdatasync({jfd}) = 0")) {
            synced = Some(i);
            break;
        }
        if l.contains(&format!("fdatasync({jfd} <unfinished")) {
            let pid = l.split_whitespace().next().unwrap();
            synced = lines[i..]
                .iter()
                .position(|r| {
                    r.starts_with(&format!("{pid} ")) && r.contains("<... fdatasync resumed>) = 0")
                })
                .map(|n| i + n);
            break;
        }
    }
    let synced = synced.unwrap_or_else(|| panic!("no fdatasync of fd {jfd} after the write:\n{t}"));
    // The accounting REPLY: a TACACS+ header of type 3 (accounting), seq 2.
    let reply = lines
        .iter()
        .position(|l| {
            (l.contains("write(") || l.contains("sendto(") || l.contains("writev("))
                && (l.contains("\"\\xc0\\x03\\x02") || l.contains("\"\\xc1\\x03\\x02"))
        })
        .unwrap_or_else(|| panic!("no accounting reply in the trace:\n{t}"));
    assert!(
        journal_write < synced && synced < reply,
        "record written at line {journal_write}, fdatasync returned at {synced}, reply sent at \
         {reply}:\n{t}"
    );
    std::fs::remove_dir_all(&cwd).ok();
}

/// The TLS example as its header says: `tacvs cert` makes the PKI, `tacvs
/// server` runs examples/tls/server.toml, `tacvs client --tls` and `tacvs sim
/// --tls` (a certificate per device) get answers, a revoked device does not.
#[test]
fn tls_example_with_tacvs_cert_client_and_sim() {
    let ws = workspace();
    let dir = temp_dir("tls");
    let pki = dir.join("pki");
    let p = |f: &str| pki.join(f).display().to_string();
    let ok = |args: &[&str]| {
        let o = tacvs(args, None);
        assert_eq!(code(&o), 0, "tacvs {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    ok(&["cert", "ca", "--out", &pki.display().to_string()]);
    let ca = ["--ca", &p("ca.pem"), "--ca-key", &p("ca.key")].map(String::from);
    let issue = |kind: &str, name: &str, sans: &[&str]| {
        let mut a: Vec<String> = vec!["cert".into(), kind.into()];
        a.extend(ca.iter().cloned());
        a.extend(["--name".into(), name.into(), "--out".into(), p(name)]);
        for s in sans {
            a.extend(["--san".into(), s.to_string()]);
        }
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    };
    issue("server", "server", &["127.0.0.1", "localhost"]);
    issue("device", "rtr1", &["127.0.0.1"]);
    issue("device", "stolen", &["127.0.0.1"]);
    let mut crl: Vec<String> = vec!["cert".into(), "crl".into()];
    crl.extend(ca.iter().cloned());
    crl.extend(["--revoke".into(), p("stolen.pem"), "--out".into(), p("ca.crl")]);
    ok(&crl.iter().map(String::as_str).collect::<Vec<_>>());
    let text = std::fs::read_to_string(ws.join("examples/tls/server.toml"))
        .unwrap()
        .replace("127.0.0.1:4950", "127.0.0.1:0");
    std::fs::write(dir.join("server.toml"), text).unwrap();
    let srv = ServerProc::start(&dir.join("server.toml"), &dir);
    let addr = srv.addr.to_string();
    let client = |cert: &str| {
        tacvs(
            &[
                "client",
                "--server",
                &addr,
                "--tls",
                "--tls-ca",
                &p("ca.pem"),
                "--tls-cert",
                &p(&format!("{cert}.pem")),
                "--tls-key",
                &p(&format!("{cert}.key")),
                "--json",
                "authorize",
                "--user",
                "alice",
                "--cmd",
                "show version",
            ],
            None,
        )
    };
    let o = client("rtr1");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("\"status\":\"pass-add\"") || out.contains("pass"), "{out}");
    let o = client("stolen");
    assert_eq!(code(&o), 2, "a revoked certificate is refused");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("\"error_kind\":\"tls_handshake\"") && out.contains("revoked"), "{out}");
    // A wrong server name (RFC 9525: checked against subjectAltName).
    let o = tacvs(
        &[
            "client",
            "--server",
            &addr,
            "--tls",
            "--tls-ca",
            &p("ca.pem"),
            "--tls-cert",
            &p("rtr1.pem"),
            "--tls-key",
            &p("rtr1.key"),
            "--sni",
            "aaa9.example.net",
            "authorize",
            "--user",
            "alice",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(code(&o) == 2 && err.contains("not issued for aaa9.example.net"), "{err}");
    // The simulator, one certificate per device minted by the CA.
    let o = tacvs(
        &[
            "sim",
            "--server",
            &addr,
            "--tls",
            "--tls-ca",
            &p("ca.pem"),
            "--tls-issuer-cert",
            &p("ca.pem"),
            "--tls-issuer-key",
            &p("ca.key"),
            "--devices",
            "10",
            "--source",
            "127.3.0.0/24",
            "--rate",
            "50",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--expect",
            "errors==0",
        ],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("TLS: ") && out.contains("resumed"), "{out}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Status pages in a real browser (issue 15): Debian's chromium, headless.

/// `chromium` with the flags a headless run as any user needs, and `args`;
/// bounded to 90 s. Returns its stdout.
fn chromium(profile: &Path, args: &[&str]) -> String {
    let o = Command::new("timeout")
        .args(["90", "chromium", "--headless=new", "--disable-gpu", "--no-sandbox"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "chromium {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The text of the cell with class `class` in the table row whose key is
/// `key`, in a DOM as Chromium dumps it.
fn cell(dom: &str, key: &str, class: &str) -> Option<String> {
    let start = dom.find(&format!("<tr data-key=\"{key}\""))?;
    let row = &dom[start..start + dom[start..].find("</tr>")?];
    let c = row.find(&format!("<td class=\"{class}"))?;
    let text = &row[c + row[c..].find('>')? + 1..];
    Some(text[..text.find("</td>")?].to_owned())
}

/// A process's JSON log on stderr, read by a thread; `wait` looks for a line.
struct LogLines(std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

impl LogLines {
    fn of(child: &mut Child) -> LogLines {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    l.lock().unwrap().push(v);
                }
            }
        });
        LogLines(lines)
    }

    fn wait(&self, message: &str, field: &str) -> String {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            let found = self.0.lock().unwrap().iter().find_map(|v| {
                let m = v["message"].as_str()?;
                m.starts_with(message).then(|| v[field].as_str().map(str::to_owned))?
            });
            if let Some(f) = found {
                return f;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {message:?} line with {field} within 20 s: {:?}", self.0.lock().unwrap());
    }
}

#[test]
fn status_pages_in_headless_chromium() {
    if Command::new("chromium").arg("--version").output().is_err() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "chromium is missing (./scripts/test installs it: apt-get install chromium)");
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED status pages: chromium not installed");
        return;
    }
    let dir = temp_dir("status-pages");
    // Two real servers taking PROXY v2 from the director, metrics on free ports.
    let example = std::fs::read_to_string(workspace().join("examples/server.toml")).unwrap();
    let mut servers: Vec<ServerProc> = (1..=2)
        .map(|i| {
            let cwd = dir.join(format!("s{i}"));
            std::fs::create_dir_all(&cwd).unwrap();
            let cfg = cwd.join("server.toml");
            let text = example
                .replace(
                    "address = \"127.0.0.1:4949\"",
                    "address = \"127.0.0.1:0\"\nproxy_protocol = \"required\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
                )
                .replace("listen = \"127.0.0.1:9449\"", "listen = \"127.0.0.1:0\"")
                .replace("name = \"tacvs-example\"", &format!("name = \"s{i}\""));
            std::fs::write(&cfg, text).unwrap();
            ServerProc::start(&cfg, &cwd)
        })
        .collect();
    let dcfg = dir.join("director.toml");
    std::fs::write(
        &dcfg,
        format!(
            "[director]\nname = \"d1\"\ncontrol_socket = \"{}/director.sock\"\n\n[metrics]\n\
             listen = \"127.0.0.1:0\"\n\n[[service]]\nname = \"tacacs\"\nlisten = \"127.0.0.1:0\"\n\
             scheduler = \"rr\"\n[service.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\n\
             timeout = \"500ms\"\n[[service.real]]\naddress = \"{}\"\n[[service.real]]\n\
             address = \"{}\"\n",
            dir.display(),
            servers[0].addr,
            servers[1].addr
        ),
    )
    .unwrap();
    let mut director = Command::new(env!("CARGO_BIN_EXE_tacvs"))
        .args(["--log-format", "json", "director", "--config"])
        .arg(&dcfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = LogLines::of(&mut director);
    let page_addr = log.wait("metrics at", "addr");
    let vip = log.wait("virtual service up", "vip");
    // Traffic: authorizations through the director (one connection each).
    const SENT: u64 = 6;
    for _ in 0..SENT {
        let o = tacvs(
            &[
                "client",
                "--server",
                &vip,
                "--key",
                "tacvs-demo-key",
                "authorize",
                "--user",
                "alice",
                "--cmd",
                "show version",
            ],
            None,
        );
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    }
    let profile = dir.join("chromium-profile");
    let dom = chromium(&profile, &["--dump-dom", &format!("http://{page_addr}/")]);
    let shot = dir.join("director-status.png");
    chromium(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
            &format!("http://{page_addr}/"),
        ],
    );
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0), "no screenshot");
    println!("director status page screenshot: {}", shot.display());
    assert!(dom.contains("<title>tacvs director d1</title>"), "{dom}");
    assert!(dom.contains("2 of 2 real servers up"), "{dom}");
    let mut total = 0;
    for s in &servers {
        let key = s.addr.to_string();
        assert_eq!(cell(&dom, &key, "state").as_deref(), Some("up"), "{key}: {dom}");
        assert_eq!(cell(&dom, &key, "weight").as_deref(), Some("1"), "{key}: {dom}");
        let n: u64 = cell(&dom, &key, "total").unwrap().parse().unwrap();
        assert!(cell(&dom, &key, "check").is_some_and(|c| c == "ok"), "{key}: {dom}");
        // The server's own page counts what the director sent it.
        let page = format!("http://{}/", s.metrics_addr());
        let sdom = chromium(&profile, &["--dump-dom", &page]);
        let answered: u64 =
            cell(&sdom, "author/pass_add", "count").map_or(0, |c| c.parse().unwrap());
        assert_eq!(answered, n, "server {key} answered what the director sent it: {sdom}");
        assert!(sdom.contains("<td class=\"proxy\">required</td>"), "{sdom}");
        total += n;
    }
    assert_eq!(total, SENT, "the real servers' totals add up to what was sent: {dom}");
    let shot = dir.join("server-status.png");
    chromium(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
            &format!("http://{}/", servers[0].metrics_addr()),
        ],
    );
    println!("server status page screenshot: {}", shot.display());
    // A real server stops: the page shows it down and the change, with why.
    let gone = servers[1].addr.to_string();
    drop(servers.pop());
    let t = Instant::now();
    while !http_get(&page_addr, "/").contains(&format!("<tr data-key=\"{gone}\" class=\"down\">")) {
        assert!(t.elapsed() < Duration::from_secs(20), "{gone} not shown down");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = chromium(&profile, &["--dump-dom", &format!("http://{page_addr}/")]);
    assert_eq!(cell(&dom, &gone, "state").as_deref(), Some("down"), "{dom}");
    let change = format!("real server {gone} in tacacs");
    assert_eq!(cell(&dom, &change, "from").as_deref(), Some("up"), "{dom}");
    assert_eq!(cell(&dom, &change, "state").as_deref(), Some("down"), "{dom}");
    assert!(cell(&dom, &change, "reason").is_some_and(|r| r.contains("refused")), "{dom}");
    assert!(dom.contains("1 of 2 real servers up"), "{dom}");
    unsafe_sigterm(&mut director);
    let _ = std::fs::remove_dir_all(&dir);
}

fn unsafe_sigterm(c: &mut Child) {
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// The names of process `pid`'s threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The scheduling policy (sched(7); `/proc/PID/task/TID/stat` field 41) of
/// each of process `pid`'s threads named `name`.
fn thread_policies(pid: u32, name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return vec![] };
    dir.flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.trim() == name))
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // Fields after the `(comm)`, which may hold spaces, start at field 3.
            stat[stat.rfind(')')? + 1..].split_whitespace().nth(41 - 3)?.parse().ok()
        })
        .collect()
}

/// A server allowed one CPU (`taskset -c 0`) runs its connections on a
/// single-threaded runtime (`--threads` defaults to the CPUs of its affinity
/// mask): no runtime worker threads. It still serves authorizations and
/// fsync'd accounting (the journal's thread acknowledges into the runtime
/// from outside), a reload, its metrics page and a clean exit on SIGTERM;
/// `tacvs sim` pinned the same way drives it. `--threads 3` asks for three.
/// The journal's thread runs under SCHED_BATCH (its wake-ups after a sync do
/// not preempt the runtime's thread on the shared core), the runtime's thread
/// under the default policy.
#[test]
fn a_server_on_one_cpu_is_single_threaded_and_serves_everything() {
    let cwd = temp_dir("one-cpu");
    let cfg = example_config(&cwd, "127.0.0.1:0");
    let workers =
        |pid: u32| thread_names(pid).into_iter().filter(|n| n.starts_with("tokio-r")).count();
    let mut srv = ServerProc::start_under(&["taskset", "-c", "0"], &cfg, &cwd);
    assert_eq!(workers(srv.pid), 0, "threads: {:?}", thread_names(srv.pid));
    let metrics_addr = srv.metrics_addr().to_string();
    let target = srv.addr.to_string();
    let json = cwd.join("report.json");
    let sim = || {
        run_ok(
            Command::new("taskset")
                .args(["-c", "0", env!("CARGO_BIN_EXE_tacvs"), "sim", "--server", &target])
                .args(["--key", "tacvs-demo-key", "--profile"])
                .arg(workspace().join("examples/sim/acct.toml"))
                .args(["--devices", "32", "--concurrency", "32", "--duration", "2s"])
                .args(["--warmup", "0s", "--expect", "errors==0", "--expect", "acct.errors==0"])
                .arg("--json")
                .arg(&json),
        )
    };
    let (code, out) = sim();
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let acct = report["by_type"]["acct"]["requests"].as_u64().unwrap();
    assert!(acct > 0 && report["by_type"]["author"]["requests"].as_u64().unwrap() > 0, "{out}");
    // Every acknowledged record is in the journal.
    assert_eq!(journal_lines(&cwd.join("var/acct")).len() as u64, acct);
    const SCHED_OTHER: u32 = libc::SCHED_OTHER as u32;
    const SCHED_BATCH: u32 = libc::SCHED_BATCH as u32;
    assert_eq!(thread_policies(srv.pid, "tacvs-journal"), [SCHED_BATCH]);
    assert_eq!(thread_policies(srv.pid, "tacvs"), [SCHED_OTHER]);

    srv.signal(libc::SIGHUP);
    let within = Instant::now() + Duration::from_secs(10);
    while !http_get(&metrics_addr, "/metrics").contains("tacvs_reloads_total{result=\"ok\"} 1") {
        assert!(Instant::now() < within, "no reload counted 10 s after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out) = sim();
    assert_eq!(code, 0, "after the reload: {out}");
    srv.signal(libc::SIGTERM);
    let within = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < within, "still running 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    drop(srv);

    let srv =
        ServerProc::start_under(&["env", "TACVS_THREADS=3", "taskset", "-c", "0"], &cfg, &cwd);
    assert_eq!(workers(srv.pid), 3, "threads: {:?}", thread_names(srv.pid));
    drop(srv);
    std::fs::remove_dir_all(&cwd).ok();
}
