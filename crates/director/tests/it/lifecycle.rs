//! Starting and reloading a director: what happens when an address cannot be
//! bound, and what a reload changes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tacvs_director::StartError;

use super::e2e::{TCP, conf_with, tmp};

/// Log lines written while the guard lives (this thread only).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let w = self.clone();
        let sub =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || w.clone()).finish();
        tracing::subscriber::set_default(sub)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn an_address_that_cannot_be_bound_stops_the_start_before_anything_is_announced() {
    let dd = tmp("lb");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let mut conf = conf_with(&["127.0.0.1:1".parse().unwrap()], &dd, TCP, "");
    let mut second = conf.services[0].clone();
    (second.name, second.listen) = ("second".into(), busy);
    conf.services.push(second);
    let logs = Logs::default();
    let guard = logs.capture();
    let err = tacvs_director::start(conf).await.unwrap_err();
    drop(guard);
    assert!(matches!(err, StartError::Listen { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("service \"second\": cannot listen on {busy}: ")), "{msg}");
    assert!(msg.contains("another process listens there"), "a hint: {msg}");
    let logs = logs.text();
    assert!(!logs.contains("virtual service up"), "announced before failing:\n{logs}");
    assert!(!dd.join("director.sock").exists(), "control socket left behind");
    let _ = std::fs::remove_dir_all(dd);
}

/// A single-connect client on `vip` from `src`.
fn device(vip: std::net::SocketAddr) -> tacvs_client::Client {
    tacvs_client::Client::new(tacvs_client::ClientOptions {
        single_connect: true,
        timeout: std::time::Duration::from_secs(2),
        ..tacvs_client::ClientOptions::new(vip, Some(tacvs_proto::Key::new(super::e2e::KEY)))
    })
}

async fn authorize(c: &mut tacvs_client::Client) -> Result<tacvs_proto::AuthorStatus, String> {
    let req = tacvs_proto::AaaRequest::new(
        "alice",
        vec!["service=shell".parse().unwrap(), "cmd=show".parse().unwrap()],
    );
    c.authorize(req).await.map(|r| r.status).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_services() {
    use tacvs_proto::AuthorStatus::PassAdd;
    let (d1, dd) = (tmp("ra1"), tmp("rad"));
    let s1 = super::e2e::real_server(&d1).await;
    let one = conf_with(&[s1.local_addrs[0]], &dd, TCP, "");
    let mut d = tacvs_director::start(one.clone()).await.unwrap();
    let vip1 = d.local_addrs[0];
    // Add a service.
    let mut both = one.clone();
    let mut two = both.services[0].clone();
    two.name = "two".into();
    both.services.push(two);
    d.reload(both.clone()).unwrap();
    assert_eq!(d.local_addrs.len(), 2, "{:?}", d.local_addrs);
    assert_eq!(d.local_addrs[0], vip1, "the kept service keeps its socket");
    let vip2 = d.local_addrs[1];
    let names: Vec<String> = d.status().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["tacacs", "two"]);
    assert_eq!(authorize(&mut device(vip2)).await, Ok(PassAdd), "the added service serves");
    // A device with a connection open on "tacacs" ...
    let mut open = device(vip1);
    assert_eq!(authorize(&mut open).await, Ok(PassAdd));
    // ... when "tacacs" is removed: no new connections, the open one finishes.
    let mut only_two = both.clone();
    only_two.services.remove(0);
    d.reload(only_two).unwrap();
    assert_eq!(d.local_addrs, vec![vip2]);
    // Its listener closes when the runtime drops the aborted accept loop:
    // at once on an idle machine, a moment later on a busy one.
    let t = std::time::Instant::now();
    while tokio::net::TcpStream::connect(vip1).await.is_ok() {
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "removed service still accepts");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(authorize(&mut open).await, Ok(PassAdd), "the open connection was cut");
    assert_eq!(open.single_connect(), Some(true));
    let names: Vec<String> = d.status().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["two"]);
    assert_eq!(authorize(&mut device(vip2)).await, Ok(PassAdd));
    d.stop();
    s1.shutdown(std::time::Duration::from_millis(100)).await;
    for dir in [d1, dd] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_cannot_bind_a_new_service_changes_nothing() {
    let dd = tmp("rb");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let one = conf_with(&["127.0.0.1:1".parse().unwrap()], &dd, TCP, "");
    let mut d = tacvs_director::start(one.clone()).await.unwrap();
    let before = d.local_addrs.clone();
    let mut more = one.clone();
    more.services[0].scheduler = "wlc".parse().unwrap();
    let mut two = more.services[0].clone();
    (two.name, two.listen) = ("two".into(), busy);
    more.services.push(two);
    let e = d.reload(more).unwrap_err();
    assert!(e.to_string().contains(&format!("service \"two\": cannot listen on {busy}")), "{e}");
    assert_eq!(d.local_addrs, before);
    let st = d.status();
    assert_eq!((st.len(), st[0].scheduler.as_str()), (1, "rr"), "nothing applied");
    d.stop();
    let _ = std::fs::remove_dir_all(dd);
}

/// Poke the running director with SIGHUP until `done` holds (its signal
/// handler may not be registered yet; reloading the same file twice is
/// harmless).
async fn hup_until(
    sock: &std::path::Path,
    mut done: impl FnMut(&tacvs_director::StatusReport) -> bool,
) -> tacvs_director::StatusReport {
    let t = std::time::Instant::now();
    loop {
        let pid = std::process::id().to_string();
        assert!(
            std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let st = tacvs_director::status(sock).await.unwrap();
        if done(&st) {
            return st;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "no reload seen: {st:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_running_director_and_a_broken_file_changes_nothing() {
    use tokio::signal::unix::{SignalKind, signal};
    // This process now handles SIGHUP (its default action would end it).
    let _ours = signal(SignalKind::hangup()).unwrap();
    let (d1, dd) = (tmp("hup1"), tmp("hupd"));
    let s1 = super::e2e::real_server(&d1).await;
    let a1 = s1.local_addrs[0];
    let path = dd.join("director.toml");
    let conf = conf_with(&[a1], &dd, TCP, "");
    std::fs::write(&path, toml::to_string(&conf).unwrap()).unwrap();
    let signals = tacvs_director::Signals::register().unwrap();
    let d = tacvs_director::start(conf.clone()).await.unwrap();
    let vip = d.local_addrs[0];
    let sock = dd.join("director.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn({
        let path = path.clone();
        async move {
            d.run_until_stopped(signals, &path, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    // A new weight and scheduler in the file, then SIGHUP.
    let mut next = conf.clone();
    next.services[0].reals[0].weight = 5;
    next.services[0].scheduler = "wlc".parse().unwrap();
    std::fs::write(&path, toml::to_string(&next).unwrap()).unwrap();
    let st = hup_until(&sock, |st| st.services[0].reals[0].config_weight == 5).await;
    assert_eq!(st.services[0].scheduler, "wlc");
    let last = st.last_reload.clone().unwrap();
    assert!(last.applied, "{last:?}");
    // A broken file: refused, reported with its place, nothing changes.
    std::fs::write(&path, "[director]\nname = 1\n").unwrap();
    let st = hup_until(&sock, |st| st.last_reload.as_ref().is_some_and(|l| !l.applied)).await;
    let last = st.last_reload.clone().unwrap();
    assert!(last.message.contains("director.toml:2:8: invalid type"), "{last:?}");
    assert_eq!(st.services[0].reals[0].config_weight, 5, "the running configuration stays");
    assert_eq!(authorize(&mut device(vip)).await, Ok(tacvs_proto::AuthorStatus::PassAdd));
    let _ = stop.send(());
    run.await.unwrap().unwrap();
    assert!(!sock.exists(), "stopped and removed its socket");
    s1.shutdown(std::time::Duration::from_millis(100)).await;
    for dir in [d1, dd] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A SIGHUP that arrives after the services are up but before the serving
/// loop runs is handled once the loop runs: registered before `start`, the
/// handlers queue it (registered inside the loop, as they were, the signal
/// was lost here and, in the binary, killed the director).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_right_after_start_is_kept_for_the_serving_loop() {
    let (d1, dd) = (tmp("hupearly1"), tmp("hupearlyd"));
    let s1 = super::e2e::real_server(&d1).await;
    let path = dd.join("director.toml");
    let conf = conf_with(&[s1.local_addrs[0]], &dd, TCP, "");
    std::fs::write(&path, toml::to_string(&conf).unwrap()).unwrap();
    let signals = tacvs_director::Signals::register().unwrap();
    let d = tacvs_director::start(conf.clone()).await.unwrap();
    let sock = dd.join("director.sock");
    // The file changes and the signal arrives before the loop starts.
    let mut next = conf.clone();
    next.services[0].reals[0].weight = 7;
    std::fs::write(&path, toml::to_string(&next).unwrap()).unwrap();
    let pid = std::process::id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn({
        let path = path.clone();
        async move {
            d.run_until_stopped(signals, &path, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let t = std::time::Instant::now();
    loop {
        let st = tacvs_director::status(&sock).await.unwrap();
        if st.services[0].reals[0].config_weight == 7 {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "the early SIGHUP was lost: {st:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    run.await.unwrap().unwrap();
    s1.shutdown(std::time::Duration::from_millis(100)).await;
    for dir in [d1, dd] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn a_reload_cannot_start_direct_routing_on_a_director_started_without_it() {
    let dd = tmp("rd");
    let one = conf_with(&["127.0.0.1:1".parse().unwrap()], &dd, TCP, "");
    let mut d = tacvs_director::start(one.clone()).await.unwrap();
    let mut dr = one.clone();
    let mut svc = dr.services[0].clone();
    svc.name = "dr".into();
    svc.mode = tacvs_director::config::Mode::Dr;
    svc.listen = "10.77.0.100:49".parse().unwrap();
    svc.scheduler = "mh".parse().unwrap();
    dr.services.push(svc);
    let e = d.reload(dr).unwrap_err().to_string();
    assert!(e.contains("started without direct routing: restart it"), "{e}");
    let st = d.status();
    assert_eq!(st.len(), 1, "nothing applied");
    let report = d.report();
    assert!(report.dr.is_none(), "{report:?}");
    assert!(report.last_reload.is_some_and(|r| !r.applied && r.message.contains("restart")));
    d.stop();
    let _ = std::fs::remove_dir_all(dd);
}
