//! Starting and reloading a director: what happens when an address cannot be
//! bound, and what a reload changes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tacvs_director::StartError;

use super::e2e::{conf_with, tmp};

const TCP: &str = "  check = \"tcp\"\n  interval = \"100ms\"\n  timeout = \"200ms\"";

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
