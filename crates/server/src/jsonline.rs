//! JSON Lines written by hand for the two records the server writes per
//! request (the accounting journal's and the authorization log's).
//!
//! Written by hand, not with serde: serializing through serde_json's generic
//! path (a `String` per argument, a formatter call per fragment, an address
//! formatted into a `String`) was the largest cost above the protocol floor
//! on the common load (docs/benchmarks.md, issue 13). The output is
//! byte-for-byte what `serde_json` with [`crate::journal::to_line`]'s
//! formatter writes for the same record (tests below compare them on
//! arbitrary input), so every reader keeps deserializing the typed records.
//!
//! Escaping: what JSON requires (`"`, `\`, C0 controls, with serde_json's
//! short forms), and beyond it every character
//! [`crate::logfmt::is_unsafe`] names (DEL, C1 controls, line and paragraph
//! separators, bidirectional controls) as `\uXXXX`, so a line stays one line
//! in every tool that reads it. Bytes that are not UTF-8 (peer fields) become
//! U+FFFD, as `String::from_utf8_lossy` makes them.

use std::io::Write;

/// One JSON object being written into a buffer: `{`, then fields, then
/// [`Obj::end`].
pub(crate) struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Start an object at the end of `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// `"key":` (keys are the record's own field names: never escaped).
    fn key(&mut self, key: &'static str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string field.
    pub(crate) fn str(&mut self, key: &'static str, v: &str) -> &mut Self {
        self.key(key);
        string(self.out, v);
        self
    }

    /// A string field from bytes a peer sent (not UTF-8: U+FFFD).
    pub(crate) fn bytes(&mut self, key: &'static str, v: &[u8]) -> &mut Self {
        self.key(key);
        lossy(self.out, v);
        self
    }

    /// A string field from anything that displays (an address).
    pub(crate) fn display(&mut self, key: &'static str, v: impl std::fmt::Display) -> &mut Self {
        self.key(key);
        self.out.push(b'"');
        let start = self.out.len();
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{v}");
        if !self.out[start..].iter().all(|&b| plain(b)) {
            // Not expected of the values this is used for; escape anyway.
            let text = String::from_utf8_lossy(&self.out[start..]).into_owned();
            self.out.truncate(start);
            escape(self.out, &text);
        }
        self.out.push(b'"');
        self
    }

    /// An IP address field (an IPv4 address written without the formatter).
    pub(crate) fn ip(&mut self, key: &'static str, v: std::net::IpAddr) -> &mut Self {
        let std::net::IpAddr::V4(a) = v else { return self.display(key, v) };
        self.key(key);
        self.out.push(b'"');
        crate::logfmt::write_ipv4(a, |b| self.out.extend_from_slice(b));
        self.out.push(b'"');
        self
    }

    /// An unsigned number field.
    pub(crate) fn uint(&mut self, key: &'static str, v: u64) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self
    }

    /// A boolean field.
    pub(crate) fn bool(&mut self, key: &'static str, v: bool) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    /// A list of strings from bytes a peer sent.
    pub(crate) fn list<'b>(
        &mut self,
        key: &'static str,
        items: impl IntoIterator<Item = &'b [u8]>,
    ) -> &mut Self {
        self.key(key);
        self.out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            lossy(self.out, item);
        }
        self.out.push(b']');
        self
    }

    /// A nested object field; write its fields, then [`Obj::end`] it.
    pub(crate) fn obj(&mut self, key: &'static str) -> Obj<'_> {
        self.key(key);
        Obj::new(self.out)
    }

    /// Close the object.
    pub(crate) fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// Printable ASCII that JSON and the log readers take as it is.
fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// Whether every byte is [`plain`]: most values are.
fn all_plain(v: &[u8]) -> bool {
    plain_run(v) == v.len()
}

/// How many [`plain`] bytes `v` starts with, eight at a time (a policy's
/// reason quotes names, so a value with a few `"` in a long plain text is
/// common, and a byte-by-byte scan of it cost more than the rest of its
/// record's line).
fn plain_run(v: &[u8]) -> usize {
    let mut n = 0;
    for c in v.chunks_exact(8) {
        let bad = not_plain(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        if bad != 0 {
            return n + (bad.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    // The last 0–7 bytes as one word, padded with a plain byte: most field
    // names and values are shorter than eight bytes, or end in such a tail.
    let rest = &v[n..];
    let mut tail = [b'a'; 8];
    tail[..rest.len()].copy_from_slice(rest);
    match not_plain(u64::from_le_bytes(tail)) {
        0 => v.len(),
        bad => n + (bad.trailing_zeros() / 8) as usize,
    }
}

/// A flag in the lane of each byte of `x` that is not [`plain`]: non-ASCII,
/// below 0x20, DEL, '"', '\\'. A subtraction's borrow leaves a lane only if
/// that lane is flagged itself, so a false flag can only lie above a true
/// one: the lowest flag is the first byte that is not plain.
fn not_plain(x: u64) -> u64 {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    // A high bit in each byte lane that is zero.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    x & HIGH
        | x.wrapping_sub(ONES * 0x20) & !x & HIGH
        | zero(x ^ (ONES * 0x7f))
        | zero(x ^ (ONES * b'"' as u64))
        | zero(x ^ (ONES * b'\\' as u64))
}

/// `v` as a JSON string.
fn string(out: &mut Vec<u8>, v: &str) {
    out.push(b'"');
    escape(out, v);
    out.push(b'"');
}

/// Peer bytes as a JSON string, invalid UTF-8 as U+FFFD.
fn lossy(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    if all_plain(v) {
        out.extend_from_slice(v);
        out.push(b'"');
        return;
    }
    for chunk in v.utf8_chunks() {
        escape(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(char::REPLACEMENT_CHARACTER.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    out.push(b'"');
}

/// The inside of a JSON string.
pub(crate) fn escape(out: &mut Vec<u8>, v: &str) {
    let b = v.as_bytes();
    // The common value is printable ASCII: copied whole.
    let mut i = plain_run(b);
    if i == b.len() {
        out.extend_from_slice(b);
        return;
    }
    // Runs of plain ASCII are copied whole; a character is decoded only where
    // a byte is not ASCII (a policy's reason text quotes names: `"` is common).
    let mut start = 0;
    while i < b.len() {
        i += plain_run(&b[i..]);
        let Some(&byte) = b.get(i) else { break };
        let c = if byte < 0x80 {
            char::from(byte)
        } else {
            v[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        let len = c.len_utf8();
        let short: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            c if (c as u32) < 0x20 || crate::logfmt::is_unsafe(c) => b"",
            _ => {
                i += len;
                continue;
            }
        };
        out.extend_from_slice(&b[start..i]);
        if short.is_empty() {
            unicode(out, c);
        } else {
            out.extend_from_slice(short);
        }
        i += len;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
}

/// `\uXXXX` (every character escaped so is in the Basic Multilingual Plane).
fn unicode(out: &mut Vec<u8>, c: char) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = c as u32;
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((n >> shift) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Serialize)]
    struct Rec<'a> {
        a: &'a str,
        b: String,
        n: u64,
        t: bool,
        l: Vec<String>,
        o: Inner<'a>,
    }

    #[derive(serde::Serialize)]
    struct Inner<'a> {
        x: &'a str,
    }

    fn by_hand(a: &str, b: &[u8], n: u64, t: bool, l: &[Vec<u8>], x: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut o = Obj::new(&mut out);
        o.str("a", a).bytes("b", b).uint("n", n).bool("t", t).list("l", l.iter().map(|v| &v[..]));
        o.obj("o").str("x", x).end();
        o.end();
        out
    }

    fn by_serde(a: &str, b: &[u8], n: u64, t: bool, l: &[Vec<u8>], x: &str) -> Vec<u8> {
        crate::journal::to_line(&Rec {
            a,
            b: String::from_utf8_lossy(b).into_owned(),
            n,
            t,
            l: l.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect(),
            o: Inner { x },
        })
    }

    /// Text that reaches every escaping branch: quotes, backslashes, C0, DEL,
    /// C1, separators, bidi controls, the BOM, and ordinary non-ASCII.
    fn hostile() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                any::<char>(),
                proptest::sample::select(vec![
                    '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1b}', '\u{7f}',
                    '\u{85}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{feff}',
                    '\u{061c}', 'é', '日', 'a', ' ',
                ]),
            ],
            0..24,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn same_bytes_as_serde(
            a in hostile(),
            b in proptest::collection::vec(any::<u8>(), 0..32),
            n in any::<u64>(),
            t in any::<bool>(),
            l in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..4),
            x in hostile(),
        ) {
            prop_assert_eq!(by_hand(&a, &b, n, t, &l, &x), by_serde(&a, &b, n, t, &l, &x));
        }
    }

    proptest! {
        #[test]
        fn all_plain_is_plain_on_every_byte(
            v in proptest::collection::vec(
                prop_oneof![any::<u8>(), 0x20u8..0x7f, Just(b'"'), Just(b'\\'), Just(0x7f), Just(0x1f)],
                0..40,
            ),
        ) {
            prop_assert_eq!(all_plain(&v), v.iter().all(|&b| plain(b)));
            prop_assert_eq!(plain_run(&v), v.iter().take_while(|&&b| plain(b)).count());
        }
    }

    #[test]
    fn plain_run_finds_any_byte_in_any_place_of_a_short_value() {
        for len in 0..=17 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    let want = if plain(b) { len } else { pos };
                    assert_eq!(plain_run(&v), want, "{v:?}");
                }
            }
        }
    }

    #[test]
    fn hostile_text_stays_on_one_line_and_parses_back() {
        let s = "a\u{2028}b\u{85}c\r\nd\u{1b}\"e\\\u{202e}";
        let out = by_hand(s, b"\xff\xfeok", 7, true, &[b"x\ny".to_vec()], "");
        assert!(!out.contains(&b'\n'));
        assert!(!String::from_utf8_lossy(&out).contains('\u{2028}'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["a"], s);
        assert_eq!(v["b"], "\u{fffd}\u{fffd}ok");
        assert_eq!(v["l"][0], "x\ny");
    }

    #[test]
    fn display_fields_are_plain_or_escaped() {
        let mut out = Vec::new();
        let mut o = Obj::new(&mut out);
        o.display("ip", std::net::IpAddr::from([192, 0, 2, 1])).display("q", "say \"hi\"\n");
        o.end();
        assert_eq!(out, br#"{"ip":"192.0.2.1","q":"say \"hi\"\n"}"#);
    }
}
