//! What the server writes to its text log, as `tacvs` formats it: peer strings
//! escaped, one event per line, words a person can act on.

use std::io;
use std::sync::{Arc, Mutex};

use tacvs_proto::AuthenStatus;
use tacvs_server::logfmt::SafeFields;

use crate::support::*;

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The text log of everything on this thread until the guard drops (the tests
/// run on a current-thread runtime, so the server's tasks log here too).
pub fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let cap = Capture::default();
    let out = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || out.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .fmt_fields(SafeFields)
        .finish();
    (cap, tracing::subscriber::set_default(sub))
}

#[tokio::test]
async fn a_user_name_carrying_a_log_line_cannot_forge_one() {
    let (log, _g) = capture();
    let h = start("forge", Conf::default()).await;
    let forged =
        "evil\r\n2026-01-01T00:00:00Z  INFO authentication user=alice result=\"pass\"\u{1b}[2J\0";
    assert_eq!(pap(&mut h.client(), forged, "x").await, AuthenStatus::Fail);
    let text = log.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("evil")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(r#"user="evil\r\n2026-01-01T00:00:00Z  INFO authentication user=alice result=\"pass\"\x1b[2J\0""#), "{}", lines[0]);
    assert!(!text.lines().any(|l| l.starts_with("2026-01-01")), "{text}");
    assert!(!text.contains('\u{1b}') && !text.contains('\0') && !text.contains('\r'));
}
