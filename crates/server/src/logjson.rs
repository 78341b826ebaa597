//! The JSON log's event formatter (`--log-format json`), written by hand.
//!
//! Contract: each event is one line holding one JSON object with the keys,
//! key order and value types of tracing-subscriber's
//! `json().flatten_event(true)` (`timestamp` with microseconds, `level`, the
//! event's fields in the order they were recorded, `target`), so every
//! reader of the log keeps working. Strings are escaped as the accounting
//! records are (`crate::jsonline`: beyond what JSON requires, C1 controls,
//! DEL, line separators and bidirectional controls as `\uXXXX`), so a field
//! can neither end a line nor hide text in any tool that shows it.
//!
//! Why by hand: tracing-subscriber's formatter goes through serde_json's
//! generic path (a `String` per field value, a formatter call per fragment,
//! the time formatted from scratch), and the `login` line it wrote was ≈ 4 %
//! of the server's CPU on a new-connection PAP load (docs/benchmarks.md,
//! issue 13). Here the line is built in a per-thread buffer, runs of plain
//! text are copied whole, and the time's text up to the second is reused
//! within the second.
//!
//! Events inside a span (every event of a TLS connection) and events
//! forwarded from the `log` crate are written by tracing-subscriber's own
//! JSON formatter, which adds the span's fields and normalizes the forwarded
//! metadata; its line is then escaped as ours are (`escape_beyond_json`).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::jsonline;

/// The event formatter (see the module doc).
#[derive(Debug)]
pub struct JsonEvent {
    stock: Format<Json>,
}

impl Default for JsonEvent {
    fn default() -> Self {
        JsonEvent { stock: tracing_subscriber::fmt::format().json().flatten_event(true) }
    }
}

thread_local! {
    // The line being built, a scratch string for `Debug` values, and the
    // time's text: nothing allocated per event once warm.
    static LINE: RefCell<Buffers> = RefCell::default();
}

#[derive(Default)]
struct Buffers {
    line: Vec<u8>,
    scratch: String,
    /// The Unix second `second` is the text of, and that text
    /// (`YYYY-MM-DDTHH:MM:SS`).
    at: Option<u64>,
    second: String,
}

impl<S, N> FormatEvent<S, N> for JsonEvent
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if event.parent().is_some()
            || ctx.lookup_current().is_some()
            || meta.fields().field("log.target").is_some()
        {
            return self.stock(ctx, writer, event);
        }
        LINE.with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                // Only if formatting a value logged an event of its own.
                return self.stock(ctx, writer, event);
            };
            let b = &mut *b;
            b.line.clear();
            b.line.extend_from_slice(b"{\"timestamp\":\"");
            timestamp(&mut b.line, &mut b.at, &mut b.second, SystemTime::now());
            b.line.extend_from_slice(b"\",\"level\":\"");
            b.line.extend_from_slice(meta.level().as_str().as_bytes());
            b.line.push(b'"');
            let mut v = Fields { line: &mut b.line, scratch: &mut b.scratch };
            event.record(&mut v);
            b.line.extend_from_slice(b",\"target\":\"");
            jsonline::escape(&mut b.line, meta.target());
            b.line.extend_from_slice(b"\"}\n");
            let written = std::str::from_utf8(&b.line)
                .map_err(|_| fmt::Error)
                .and_then(|line| writer.write_str(line));
            if b.line.capacity() > 64 << 10 {
                // One huge event does not keep its buffer for the thread's life.
                b.line = Vec::new();
                b.scratch = String::new();
            }
            written
        })
    }
}

impl JsonEvent {
    /// The stock formatter's line, escaped as ours are.
    fn stock<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let mut line = String::new();
        self.stock.format_event(ctx, Writer::new(&mut line), event)?;
        escape_beyond_json(&mut writer, &line)
    }
}

/// Write `line`, a JSON line, with every character that [`crate::jsonline`]
/// escapes beyond what JSON requires (DEL, C1 controls, line separators,
/// bidirectional controls: all in the BMP) escaped as `\uXXXX`. serde_json
/// escapes only `"`, `\` and C0 controls, and peer text reaches span events
/// too (a TLS device's attributes in an authorization's reason). Outside its
/// strings a JSON line holds only ASCII, so escaping such a character
/// wherever it is changes no value.
fn escape_beyond_json(w: &mut impl fmt::Write, line: &str) -> fmt::Result {
    let mut start = 0;
    for (i, c) in line.char_indices() {
        if (c as u32) >= 0x7f && crate::logfmt::is_unsafe(c) {
            w.write_str(&line[start..i])?;
            write!(w, "\\u{:04x}", c as u32)?;
            start = i + c.len_utf8();
        }
    }
    w.write_str(&line[start..])
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), as tracing-subscriber writes it.
fn timestamp(out: &mut Vec<u8>, at: &mut Option<u64>, second: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    if *at != Some(secs) {
        *at = Some(secs);
        second.clear();
        // humantime: `YYYY-MM-DDTHH:MM:SSZ`; the `Z` is written after the fraction.
        let whole = UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let _ = write!(second, "{}", humantime::format_rfc3339_seconds(whole));
        second.pop();
    }
    out.extend_from_slice(second.as_bytes());
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 7];
    digits[0] = b'.';
    let mut n = micros;
    for d in digits[1..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// The event's fields as `,"name":value`, typed as tracing-serde types them.
struct Fields<'a> {
    line: &'a mut Vec<u8>,
    scratch: &'a mut String,
}

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        self.line.extend_from_slice(b",\"");
        jsonline::escape(self.line, field.name());
        self.line.extend_from_slice(b"\":");
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.scratch.clear();
        let _ = write!(self.scratch, "{value:?}");
        self.line.push(b'"');
        jsonline::escape(self.line, self.scratch);
        self.line.push(b'"');
        if self.scratch.capacity() > 16 << 10 {
            *self.scratch = String::new();
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        self.line.push(b'"');
        jsonline::escape(self.line, value);
        self.line.push(b'"');
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.line.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.line.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.line.extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        // serde_json's own float text (shortest round trip; not finite: null).
        if serde_json::to_writer(&mut *self.line, &value).is_err() {
            self.line.extend_from_slice(b"null");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfmt::tests::Capture;

    /// What `f` logs, as the stock JSON formatter and as ours write it.
    fn both(f: impl Fn()) -> (String, String) {
        let run = |ours: bool| {
            let cap = Capture::default();
            let out = cap.clone();
            let b = tracing_subscriber::fmt()
                .with_writer(move || out.clone())
                .with_max_level(tracing::Level::TRACE)
                .json()
                .flatten_event(true);
            if ours {
                tracing::subscriber::with_default(
                    b.event_format(JsonEvent::default()).finish(),
                    &f,
                );
            } else {
                tracing::subscriber::with_default(b.finish(), &f);
            }
            String::from_utf8(cap.0.lock().unwrap().clone()).unwrap()
        };
        (run(false), run(true))
    }

    /// The line without its time (checked on its own below).
    fn untimed(line: &str) -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["timestamp"].as_str().unwrap().to_owned();
        let rest = line.split_once("\",\"level\"").unwrap().1.to_owned();
        (ts, rest)
    }

    fn same(f: impl Fn()) {
        let (stock, ours) = both(f);
        let (stock, ours): (Vec<&str>, Vec<&str>) =
            (stock.lines().collect(), ours.lines().collect());
        assert_eq!(stock.len(), ours.len(), "stock:\n{stock:?}\nours:\n{ours:?}");
        for (s, o) in stock.iter().zip(&ours) {
            let (st, srest) = untimed(s);
            let (ot, orest) = untimed(o);
            assert_eq!(srest, orest, "stock: {s}\nours:  {o}");
            assert_eq!((st.len(), &st[..4], &st[st.len() - 1..]), (ot.len(), &ot[..4], "Z"));
        }
    }

    #[test]
    fn lines_are_the_stock_formatter_s_lines() {
        let addr: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        same(|| {
            tracing::info!(
                device = %addr,
                user = "alice",
                method = "pap",
                result = "pass",
                reason = "",
                last = true,
                elapsed_ms = 3u64,
                "login"
            );
            tracing::warn!(
                n = -4i64,
                ratio = 0.5f64,
                big = 1e21f64,
                nan = f64::NAN,
                "numbers: {} {:?}",
                7,
                "q\"uote"
            );
            tracing::error!(error = %std::io::Error::other("disk \\ full\n"), "journal write failed");
            tracing::debug!(tab = "a\tb\u{8}\u{c}\r", ctl = "\u{1}\u{1f}", "controls");
            tracing::trace!(bytes = ?b"x\xff".as_slice(), big = 1u128 << 100, "debug values");
            tracing::info!(target: "custom::target", "plain");
        });
    }

    #[test]
    fn separators_and_c1_controls_are_escaped_beyond_the_stock_formatter() {
        let (_, ours) =
            both(|| tracing::info!(reason = "a\u{2028}b\u{85}c\u{202e}d\u{7f}", "x\u{2029}"));
        assert!(ours.contains(r#""message":"x\u2029""#), "{ours}");
        assert!(ours.contains(r#""reason":"a\u2028b\u0085c\u202ed\u007f""#), "{ours}");
        assert_eq!(ours.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(ours.trim_end()).unwrap();
        assert_eq!(v["reason"], "a\u{2028}b\u{85}c\u{202e}d\u{7f}");
    }

    /// Found by an adversarial review: every event of a TLS connection is in
    /// its span, and went out with serde_json's escaping only.
    #[test]
    fn an_event_in_a_span_is_escaped_as_the_others_are() {
        let hostile = "a\u{2028}b\u{85}c\u{202e}d\u{7f}";
        let (_, ours) = both(|| {
            let span = tracing::info_span!("tls", sni = hostile);
            let _g = span.enter();
            tracing::info!(reason = hostile, "x\u{2029}");
        });
        assert_eq!(ours.lines().count(), 1, "{ours}");
        for raw in ['\u{2028}', '\u{2029}', '\u{85}', '\u{202e}', '\u{7f}'] {
            assert!(!ours.contains(raw), "raw U+{:04X} in {ours}", raw as u32);
        }
        assert!(ours.contains(r#""reason":"a\u2028b\u0085c\u202ed\u007f""#), "{ours}");
        let v: serde_json::Value = serde_json::from_str(ours.trim_end()).unwrap();
        assert_eq!((&v["reason"], &v["message"]), (&hostile.into(), &"x\u{2029}".into()));
        assert_eq!(v["span"]["sni"], hostile);
    }

    #[test]
    fn an_event_in_a_span_keeps_the_span_s_fields() {
        let (stock, ours) = both(|| {
            let span = tracing::info_span!("tls", peer = "192.0.2.1");
            let _g = span.enter();
            tracing::info!(sni = "a", "handshake");
        });
        assert!(ours.contains(r#""span":{"peer":"192.0.2.1","name":"tls"}"#), "{ours}");
        assert_eq!(untimed(stock.trim_end()).1, untimed(ours.trim_end()).1);
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_one_line_that_reads_back(s in "\\PC*|[\\x00-\\x7f\\u{80}-\\u{9f}\\u{2028}\\u{202e}]{0,20}") {
            let (stock, ours) = both(|| tracing::info!(v = s.as_str(), d = ?s, "m {s}"));
            proptest::prop_assert_eq!(ours.matches('\n').count(), 1);
            let o: serde_json::Value = serde_json::from_str(ours.trim_end()).unwrap();
            let st: serde_json::Value = serde_json::from_str(stock.trim_end()).unwrap();
            proptest::prop_assert_eq!(&o["v"], &serde_json::Value::from(s.as_str()));
            for k in ["message", "v", "d", "level", "target"] {
                proptest::prop_assert_eq!(&o[k], &st[k]);
            }
        }
    }

    #[test]
    fn time_text_is_the_stock_formatter_s() {
        let mut out = Vec::new();
        let (mut at, mut second) = (None, String::new());
        for (t, want) in [
            (1_764_662_400_123_456_789u128, "2025-12-02T08:00:00.123456Z"),
            (1_764_662_400_999_999_000, "2025-12-02T08:00:00.999999Z"),
            (1_764_662_401_000_001_000, "2025-12-02T08:00:01.000001Z"),
            (0, "1970-01-01T00:00:00.000000Z"),
        ] {
            out.clear();
            let now = UNIX_EPOCH + std::time::Duration::from_nanos(t as u64);
            timestamp(&mut out, &mut at, &mut second, now);
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }
}
