//! Where log lines go: standard error, with INFO and DEBUG lines gathered
//! and written together.
//!
//! A server logs a line per login; written one `write(2)` each, the system
//! call cost as much as formatting the line (docs/benchmarks.md, issue 13).
//! So lines below WARN go into a shared buffer, and a thread writes the
//! buffer every [`TICK`] (no wake-up per line). Order is kept and nothing is
//! dropped:
//!
//! - a WARN or ERROR line writes the buffer and then itself at once, so what
//!   an operator must see is never late and never ahead of what led to it;
//! - past [`HIGH`] bytes waiting (the sink is slow), the line's writer writes
//!   the buffer itself: back-pressure, not loss;
//! - [`LogOut::flush`] writes what is left (the process calls it before it
//!   exits, and a panic does before its message).
//!
//! Lines wait at most [`TICK`] otherwise; a process killed with SIGKILL may
//! lose that much of its INFO lines.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// How long an INFO line may wait in the buffer.
pub const TICK: Duration = Duration::from_millis(20);

/// Bytes waiting beyond which a line's writer writes the buffer itself.
pub const HIGH: usize = 1 << 20;

/// The sink and its buffer (the sink's lock is taken first, then the buffer's).
struct Inner<W> {
    sink: Mutex<W>,
    pending: Mutex<Vec<u8>>,
    /// Whether the writing thread runs; without it every line writes through.
    buffered: AtomicBool,
}

impl<W: Write> Inner<W> {
    /// Write what is buffered, then `line` (which may be empty).
    fn write_through(&self, line: &[u8]) -> io::Result<()> {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        // A failed write of log lines has nowhere to be reported; keep going.
        let r = sink.write_all(&taken).and_then(|()| sink.write_all(line));
        let _ = sink.flush();
        r
    }
}

/// The writer factory given to `tracing_subscriber` (cheap to clone).
pub struct LogOut<W> {
    inner: Arc<Inner<W>>,
}

impl<W> Clone for LogOut<W> {
    fn clone(&self) -> Self {
        LogOut { inner: self.inner.clone() }
    }
}

impl<W> std::fmt::Debug for LogOut<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogOut")
    }
}

impl<W: Write + Send + 'static> LogOut<W> {
    /// Lines to `sink`, with a thread that writes the buffer every [`TICK`]
    /// (it ends when every `LogOut` is dropped).
    pub fn new(sink: W) -> LogOut<W> {
        Self::with_tick(sink, TICK)
    }

    /// [`LogOut::new`] with another tick (tests: one that never comes).
    fn with_tick(sink: W, tick: Duration) -> LogOut<W> {
        let inner = Arc::new(Inner {
            sink: Mutex::new(sink),
            pending: Mutex::new(Vec::new()),
            buffered: AtomicBool::new(true),
        });
        let weak = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new().name("tacvs-log".into()).spawn(move || {
            loop {
                std::thread::sleep(tick);
                let Some(inner) = weak.upgrade() else { return };
                let waiting = !inner.pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
                if waiting {
                    let _ = inner.write_through(&[]);
                }
            }
        });
        if spawned.is_err() {
            inner.buffered.store(false, Ordering::Relaxed);
        }
        LogOut { inner }
    }

    /// Write every line given so far.
    pub fn flush(&self) {
        let _ = self.inner.write_through(&[]);
    }
}

/// One event's writer: tracing-subscriber formats a line and hands it over
/// in one `write_all`.
pub struct Line<W> {
    inner: Arc<Inner<W>>,
    urgent: bool,
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.urgent {
            self.inner.write_through(buf)?;
            return Ok(buf.len());
        }
        let full = {
            let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.extend_from_slice(buf);
            p.len() >= HIGH
        };
        if full {
            self.inner.write_through(&[])?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for LogOut<W> {
    type Writer = Line<W>;

    fn make_writer(&'a self) -> Line<W> {
        Line { inner: self.inner.clone(), urgent: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line<W> {
        let urgent = !self.inner.buffered.load(Ordering::Relaxed) || *meta.level() <= Level::WARN;
        Line { inner: self.inner.clone(), urgent }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A sink the test can read while the writer holds it, counting the
    /// writes that carried bytes.
    #[derive(Clone, Default)]
    struct Counting {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !buf.is_empty() {
                *self.writes.lock().unwrap() += 1;
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Counting {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    fn subscriber(out: &LogOut<Counting>) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_max_level(Level::DEBUG)
            .without_time()
            .with_target(false)
            .with_level(true)
            .with_ansi(false)
            .finish()
    }

    #[test]
    fn info_lines_are_gathered_then_written_in_order_within_the_tick() {
        let sink = Counting::default();
        let out = LogOut::new(sink.clone());
        tracing::subscriber::with_default(subscriber(&out), || {
            for i in 0..1000 {
                tracing::info!("line {i}");
            }
            tracing::debug!("last");
        });
        let within = Instant::now() + Duration::from_secs(5);
        while !sink.text().contains("last") {
            assert!(Instant::now() < within, "not written within 5 s: {:?}", sink.text());
            std::thread::sleep(Duration::from_millis(5));
        }
        let want: String =
            (0..1000).map(|i| format!(" INFO line {i}\n")).chain(["DEBUG last\n".into()]).collect();
        assert_eq!(sink.text(), want);
        // Gathered: a few writes for 1,001 lines, not one each.
        let writes = *sink.writes.lock().unwrap();
        assert!(writes < 100, "{writes} writes for 1,001 lines");
    }

    #[test]
    fn a_warning_writes_what_came_before_it_and_itself_at_once() {
        let sink = Counting::default();
        let out = LogOut::new(sink.clone());
        tracing::subscriber::with_default(subscriber(&out), || {
            tracing::info!("before");
            tracing::warn!("careful");
            // Nothing waits for the tick: both are there now, in order.
            assert_eq!(sink.text(), " INFO before\n WARN careful\n");
            tracing::error!("bad");
            assert_eq!(sink.text(), " INFO before\n WARN careful\nERROR bad\n");
        });
    }

    #[test]
    fn flush_writes_everything_and_a_full_buffer_writes_itself() {
        let sink = Counting::default();
        let out = LogOut::new(sink.clone());
        tracing::subscriber::with_default(subscriber(&out), || {
            tracing::info!("last words");
        });
        out.flush();
        assert_eq!(sink.text(), " INFO last words\n");

        // No tick during the test: a tick that took the buffer half-way
        // would leave less than HIGH waiting at the end (this test failed so
        // on a loaded machine, where the loop outlasts a tick).
        let sink = Counting::default();
        let out = LogOut::with_tick(sink.clone(), Duration::from_secs(3600));
        let line = "x".repeat(1000);
        let lines = HIGH / 1000 + 1;
        tracing::subscriber::with_default(subscriber(&out), || {
            for _ in 0..lines {
                tracing::info!("{line}");
            }
        });
        // The line that crossed HIGH wrote the buffer itself, at once.
        assert!(sink.text().len() >= HIGH, "{} bytes written", sink.text().len());
    }
}
