//! The pieces both status pages (server and director) are built from: HTML
//! escaping, a table, and the page around them (self-refreshing, no script).
//!
//! Every string that reaches a page goes through [`esc`]: names, reasons and
//! addresses come from configuration files and from peers (a check's error
//! text may quote what a server answered).

use std::fmt::Write;

/// `s` with `& < > " '` as entities: safe in element text and in quoted
/// attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One table cell: its text, and whether it is a number (right-aligned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The text, escaped when rendered.
    pub text: String,
    /// A `class` for the cell (e.g. the column's name, or a state), escaped.
    pub class: String,
    /// Right-aligned.
    pub number: bool,
}

/// A text cell.
pub fn text(class: &str, s: impl Into<String>) -> Cell {
    Cell { text: s.into(), class: class.into(), number: false }
}

/// A number cell.
pub fn num(class: &str, s: impl ToString) -> Cell {
    Cell { text: s.to_string(), class: class.into(), number: true }
}

/// A table with an `id`, column `titles` and rows; each row has a key (put in
/// `data-key`, e.g. a server's address) and a class (e.g. its state).
pub fn table(id: &str, titles: &[&str], rows: &[(String, String, Vec<Cell>)]) -> String {
    let mut s = format!("<table id=\"{}\">\n<thead><tr>", esc(id));
    for t in titles {
        let _ = write!(s, "<th>{}</th>", esc(t));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for (key, class, cells) in rows {
        let _ = write!(s, "<tr data-key=\"{}\" class=\"{}\">", esc(key), esc(class));
        for c in cells {
            let num = if c.number { " num" } else { "" };
            let _ = write!(s, "<td class=\"{}{num}\">{}</td>", esc(&c.class), esc(&c.text));
        }
        s.push_str("</tr>\n");
    }
    if rows.is_empty() {
        let _ = writeln!(s, "<tr><td colspan=\"{}\" class=\"none\">none</td></tr>", titles.len());
    }
    s.push_str("</tbody></table>\n");
    s
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;margin:.4em 0}\
th,td{border:1px solid #bbb;padding:2px 8px;font-size:.9em}\
th{background:#e4e8f0;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}\
tr.up td.state,tr.master td.state{background:#c8f0c8}\
tr.down td.state,tr.misconfigured td.state,tr.refused td.state{background:#f4c0c0}\
tr.backup td.state,tr.drained td.state{background:#f4e8b0}\
p.meta{color:#666;font-size:.85em}";

/// A whole page: `title`, refreshed every `refresh_s` seconds, `body` as
/// given (already HTML).
pub fn page(title: &str, refresh_s: u32, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh_s}\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body>\n<h1>{}</h1>\n{body}\
         <p class=\"meta\">Refreshes every {refresh_s} s. Prometheus metrics at \
         <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n",
        esc(title),
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_any_string_is_text() {
        assert_eq!(esc("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        let t = table(
            "t\"x",
            &["<b>"],
            &[("k\"><script>".into(), "up".into(), vec![text("c", "<script>alert(1)</script>")])],
        );
        assert!(!t.contains("<script>") && !t.contains("<b>"), "{t}");
        assert!(t.contains("data-key=\"k&quot;&gt;&lt;script&gt;\""), "{t}");
        let p = page("a<b", 5, &t);
        assert!(p.contains("<title>a&lt;b</title>") && p.contains("content=\"5\""), "{p}");
    }

    #[test]
    fn an_empty_table_says_none() {
        let t = table("x", &["a", "b"], &[]);
        assert!(t.contains("colspan=\"2\" class=\"none\">none<"), "{t}");
    }
}
