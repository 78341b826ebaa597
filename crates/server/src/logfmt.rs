//! Log lines a peer cannot forge, in every format.
//!
//! Two layers, so that neither alone has to be right:
//!
//! - [`Esc`] renders a peer-controlled byte string (user names, ports, command
//!   lines, reasons) as printable text: invalid UTF-8 as `\xNN`, C0 controls,
//!   DEL and C1 controls as `\n`, `\r`, `\t`, `\0`, `\xNN` or `\u{85}`, the Unicode
//!   line and paragraph separators and the bidirectional-override characters as
//!   `\u{2028}` etc., and a backslash as `\\` (so an escape in the output always
//!   means an escape). The server logs every peer string through it, so the text
//!   log, the JSON log and any other subscriber receive only printable text.
//! - [`SafeFields`] formats the fields of the text log: `message key=value`, a
//!   value quoted (`key="show version"`; inside the quotes `"` as `\"`, and `\`
//!   as `\\` before a `"`, a `\` or the closing quote) when it is empty or holds
//!   a space, `"` or `=`, and any control or separator character that reached
//!   it from elsewhere (an error message, a path) escaped as above. A line of
//!   the text log is therefore always exactly one event, and each quoted value
//!   ends where it seems to.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// A peer-controlled byte string, escaped for a log (see the module doc).
#[derive(Clone, Copy)]
pub struct Esc<'a>(pub &'a [u8]);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\\' {
                    f.write_str("\\\\")?;
                } else {
                    write_char(f, c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl<'a> Esc<'a> {
    /// The bytes as a `&str` when the text `Display` writes is the bytes
    /// themselves (printable ASCII without a backslash): such a value can be
    /// recorded as a `&str`, without a formatting call, and reads the same.
    pub fn as_plain(&self) -> Option<&'a str> {
        if self.0.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'\\') {
            std::str::from_utf8(self.0).ok()
        } else {
            None
        }
    }
}

impl fmt::Debug for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A device's address as `Display` writes a [`SocketAddr`], IPv4 without
/// the formatting machinery: std's writes each octet and the port through
/// `Formatter::pad_integral`, which was ≈ 2,000 of the ≈ 33,000 user-space
/// instructions of a PAP login on a new connection (docs/benchmarks.md,
/// issue 13); here they go through `write_ipv4`. For a field on a hot
/// path, [`AddrText`] gives the same text as a `&str`, which a log records
/// without any formatting call at all.
#[derive(Debug, Clone, Copy)]
pub struct Addr(pub SocketAddr);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if matches!(self.0, SocketAddr::V6(_)) || f.width().is_some() || f.precision().is_some() {
            return fmt::Display::fmt(&self.0, f);
        }
        f.write_str(AddrText::new(self.0).as_str())
    }
}

/// `ip` as dotted decimal, piece by piece into `put`, with `itoa` (the
/// log's addresses and the records' `device` fields).
pub(crate) fn write_ipv4(ip: std::net::Ipv4Addr, mut put: impl FnMut(&[u8])) {
    let mut digits = itoa::Buffer::new();
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            put(b".");
        }
        put(digits.format(octet).as_bytes());
    }
}

/// [`Addr`]'s text in a buffer on the stack, for `device = text.as_str()`:
/// tracing records a `&str` field directly, where a `%` field goes through
/// `fmt::write` once per piece (the `login` line's fields cost ≈ 300
/// instructions each that way; docs/benchmarks.md, issue 13).
pub struct AddrText {
    buf: [u8; AddrText::MAX],
    len: usize,
}

impl AddrText {
    /// The longest text: `[` + an IPv6 address with a scope id + `]:65535`.
    const MAX: usize = 64;

    pub fn new(addr: SocketAddr) -> AddrText {
        let mut t = AddrText { buf: [0; AddrText::MAX], len: 0 };
        match addr {
            SocketAddr::V4(a) => {
                write_ipv4(*a.ip(), |b| t.push(b));
                t.push(b":");
                t.push(itoa::Buffer::new().format(a.port()).as_bytes());
            }
            SocketAddr::V6(a) => {
                // Not on the hot path (IPv6 devices are few); std's text.
                let _ = write!(t, "{a}");
            }
        }
        t
    }

    fn push(&mut self, b: &[u8]) {
        // Never past MAX (the longest text, an IPv6 address with a scope id, is 58 bytes).
        let n = b.len().min(AddrText::MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }

    pub fn as_str(&self) -> &str {
        // Only whole ASCII pieces are pushed (digits, dots, colons, brackets,
        // hex, and a scope id's digits).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl fmt::Debug for AddrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Write for AddrText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Whether `c` must not appear raw in a log line: it ends or hides a line, or
/// reorders what a reader sees (the characters no command may hold either,
/// [`tacvs_policy::authz::hostile_char`]).
pub fn is_unsafe(c: char) -> bool {
    tacvs_policy::authz::hostile_char(c)
}

/// Write `c`, escaped when [`is_unsafe`].
fn write_char(w: &mut impl fmt::Write, c: char) -> fmt::Result {
    if !is_unsafe(c) {
        return w.write_char(c);
    }
    match c {
        '\n' => w.write_str("\\n"),
        '\r' => w.write_str("\\r"),
        '\t' => w.write_str("\\t"),
        '\0' => w.write_str("\\0"),
        c if (c as u32) < 0x80 => write!(w, "\\x{:02x}", c as u32),
        c => write!(w, "\\u{{{:x}}}", c as u32),
    }
}

/// Escape `s` for a log line (controls and separators only; see [`Esc`] for
/// peer bytes, which also doubles backslashes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let _ = write_char(&mut out, c);
    }
    out
}

/// The text log's field formatter (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFields;

impl<'w> FormatFields<'w> for SafeFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor { w: &mut writer, first: true, result: Ok(()) };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

thread_local! {
    // One buffer per thread: formatting a line allocates nothing once warm.
    static BUF: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Visitor<'_, '_> {
    fn field(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = BUF.with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                let r = buf.write_fmt(value).and_then(|_| self.write(name, &buf));
                if buf.capacity() > 4096 {
                    *buf = String::new();
                }
                r
            }
            Err(_) => self.write(name, &value.to_string()),
        });
    }

    fn write(&mut self, name: &str, value: &str) -> fmt::Result {
        if !self.first {
            self.w.write_char(' ')?;
        }
        self.first = false;
        // Printable ASCII needs no escape: the common case, written as is.
        let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b));
        if name == "message" && plain {
            return self.w.write_str(value);
        }
        if plain && !value.is_empty() && !value.contains([' ', '"', '=']) {
            return write!(self.w, "{name}={value}");
        }
        if name == "message" {
            for c in value.chars() {
                write_char(self.w, c)?;
            }
            return Ok(());
        }
        write!(self.w, "{name}=")?;
        let quote = value.is_empty() || value.contains([' ', '"', '=']);
        if quote {
            self.w.write_char('"')?;
        }
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            // Inside quotes, `"` is `\"`, and a backslash is doubled where it
            // could be misread: before a `"` or another backslash, or last
            // (`reason="a\"` would read as an escaped quote). Elsewhere it
            // stays single, so an escape `Esc` wrote (`\r`) reads as written.
            let doubled = quote && c == '\\' && matches!(chars.peek(), None | Some('"' | '\\'));
            if quote && c == '"' {
                self.w.write_str("\\\"")?;
            } else if doubled {
                self.w.write_str("\\\\")?;
            } else {
                write_char(self.w, c)?;
            }
        }
        if quote {
            self.w.write_char('"')?;
        }
        Ok(())
    }
}

impl Visit for Visitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() && !field.name().starts_with("log.") {
            self.result = self.write(field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field.name(), format_args!("{value:?}"));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_plain_value_is_what_esc_writes() {
        use proptest::prelude::*;
        proptest!(|(b in proptest::collection::vec(any::<u8>(), 0..12), ascii in "[ -~]{0,12}")| {
            for v in [&b[..], ascii.as_bytes()] {
                let e = Esc(v);
                if let Some(s) = e.as_plain() {
                    prop_assert_eq!(e.to_string(), s);
                }
            }
            prop_assert_eq!(Esc(ascii.as_bytes()).as_plain().is_some(), !ascii.contains('\\'));
        });
    }

    #[test]
    fn addr_writes_what_socketaddr_writes() {
        use proptest::prelude::*;
        proptest!(|(ip: [u8; 4], port: u16, v6: [u16; 8], six: bool)| {
            let addr = if six {
                SocketAddr::from((std::net::Ipv6Addr::from(v6), port))
            } else {
                SocketAddr::from((ip, port))
            };
            prop_assert_eq!(Addr(addr).to_string(), addr.to_string());
            let text = AddrText::new(addr);
            prop_assert_eq!(text.as_str(), addr.to_string());
            prop_assert_eq!(format!("{:>30}", Addr(addr)), format!("{addr:>30}"));
        });
        for a in ["0.0.0.0:0", "255.255.255.255:65535", "10.0.0.1:49", "127.0.0.1:10"] {
            let addr: SocketAddr = a.parse().unwrap();
            assert_eq!(Addr(addr).to_string(), a);
            assert_eq!(AddrText::new(addr).as_str(), a);
        }
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            65535,
            0,
            u32::MAX,
        ));
        assert_eq!(AddrText::new(scoped).as_str(), scoped.to_string(), "the longest text fits");
    }

    /// A log writer that keeps what it is given (for tests of formats).
    #[derive(Clone, Default)]
    pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The text log as `tacvs` configures it, captured.
    fn text_log(f: impl FnOnce()) -> String {
        let cap = Capture::default();
        let out = cap.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .fmt_fields(SafeFields)
            .finish();
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(cap.0.lock().unwrap().clone()).unwrap()
    }

    fn json_log(f: impl FnOnce()) -> String {
        let cap = Capture::default();
        let out = cap.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(cap.0.lock().unwrap().clone()).unwrap()
    }

    const FORGED: &[u8] = b"evil\r\n2026-01-01T00:00:00Z  INFO authentication user=alice \
        result=\"pass\"\x1b[2J\0\xc2\x85x\xe2\x80\xa8y\xe2\x80\xaez\xff";

    #[test]
    fn esc_makes_peer_bytes_printable() {
        let s = Esc(FORGED).to_string();
        assert!(!s.chars().any(is_unsafe), "{s}");
        assert!(s.starts_with("evil\\r\\n2026"), "{s}");
        assert!(s.contains("\\x1b[2J\\0\\u{85}x\\u{2028}y\\u{202e}z\\xff"), "{s}");
        assert_eq!(Esc(b"a\\nb").to_string(), "a\\\\nb", "a backslash is not an escape");
    }

    #[test]
    fn a_forged_user_name_stays_on_one_text_line() {
        let log = text_log(|| {
            tracing::info!(user = %Esc(FORGED), result = "fail", "authentication");
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(!log.trim_end_matches('\n').chars().any(is_unsafe), "{log:?}");
        assert!(log.contains("result=fail"), "{log}");
        // The user value is quoted (it has spaces) and its quotes escaped.
        assert!(log.contains(r#"user="evil\r\n2026-01-01T00:00:00Z  INFO authentication user=alice result=\"pass\""#), "{log}");
    }

    #[test]
    fn raw_controls_from_any_source_are_escaped_in_the_text_log() {
        let log = text_log(|| {
            let raw = "line1\nline2\u{2028}\u{85}";
            tracing::warn!(error = %raw, other = ?raw, "message with\nnewline");
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("message with\\nnewline"), "{log}");
        assert!(log.contains("error=line1\\nline2\\u{2028}\\u{85}"), "{log}");
    }

    #[test]
    fn values_with_spaces_are_quoted_consistently() {
        let log = text_log(|| {
            tracing::info!(cmd = %"show version", empty = "", one = "word", eq = "a=b", "authorization");
        });
        assert!(log.contains(r#"cmd="show version" empty="" one=word eq="a=b""#), "{log}");
    }

    /// A quoted value's backslash that could be misread is doubled: a value
    /// ending in one, or holding `\"` or `\\`, cannot end its quotes early or
    /// swallow the closing one; any other backslash stays single.
    #[test]
    fn backslashes_in_quoted_values_read_back() {
        let log = text_log(|| {
            tracing::info!(
                a = %"ends in \\",
                b = %"x\\\" y",
                c = %"C:\\dir",
                d = %"two \\\\ in \\r",
                "event"
            );
        });
        // The first of the two is doubled (a backslash follows), the second not.
        let want = r#"a="ends in \\" b="x\\\" y" c=C:\dir d="two \\\ in \r""#;
        assert!(log.contains(want), "{log}");
    }

    proptest::proptest! {
        /// A logfmt reader (`\\` is `\`, `\"` is `"`, any other backslash
        /// as is) finds the value's end where it is and reads the value back.
        #[test]
        fn quoted_values_read_back(v in "[a \"\\\\=r]{0,12}") {
            let mut text = String::new();
            let mut w = Writer::new(&mut text);
            let mut visitor = Visitor { w: &mut w, first: true, result: Ok(()) };
            visitor.write("k", &v).unwrap();
            let raw = text.strip_prefix("k=").unwrap();
            let Some(inner) = raw.strip_prefix('"') else {
                proptest::prop_assert_eq!(raw, v.as_str());
                return Ok(());
            };
            let (mut read, mut chars, mut closed) = (String::new(), inner.chars().peekable(), false);
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('\\', Some(&n)) if n == '\\' || n == '"' => {
                        read.push(n);
                        chars.next();
                    }
                    ('"', _) => {
                        closed = true;
                        break;
                    }
                    (c, _) => read.push(c),
                }
            }
            proptest::prop_assert!(closed && chars.next().is_none(), "{text}");
            proptest::prop_assert_eq!(read, v);
        }
    }

    #[test]
    fn the_json_log_carries_escaped_peer_strings() {
        let log = json_log(|| {
            tracing::info!(user = %Esc(FORGED), "authentication");
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(!log.trim_end_matches('\n').chars().any(is_unsafe), "{log:?}");
        let v: serde_json::Value = serde_json::from_str(log.trim()).unwrap();
        assert!(v["user"].as_str().unwrap().starts_with("evil\\r\\n"));
    }
}
