//! The import report: every construct that was not carried over exactly, with
//! the source line it came from and what it means for decisions.

use std::fmt;

/// How much an item matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Kept, or dropped without effect on any authentication or authorization
    /// decision (a log setting, a cosmetic field, a rule the source never
    /// consulted).
    Note,
    /// Some decision tacvs makes on the result differs from the source's: a
    /// login that passed fails, a command that was refused is permitted, or
    /// the other way round. Read each before using the output.
    Differs,
}

impl Severity {
    /// The word printed before the item.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Differs => "DIFFERS",
        }
    }
}

/// One report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// 1-based line in the source file; 0 for the file as a whole.
    pub line: usize,
    /// Whether decisions change.
    pub severity: Severity,
    /// What was found, what became of it, and what to do.
    pub text: String,
}

/// Every item, in source order once finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The source file's name, as given.
    pub file: String,
    /// The items.
    pub items: Vec<Item>,
}

impl Report {
    /// An empty report about `file`.
    pub fn new(file: &str) -> Self {
        Report { file: file.to_owned(), items: Vec::new() }
    }

    /// A decision differs.
    pub fn differs(&mut self, line: usize, text: impl Into<String>) {
        self.push(line, Severity::Differs, text.into());
    }

    /// Nothing decides differently.
    pub fn note(&mut self, line: usize, text: impl Into<String>) {
        self.push(line, Severity::Note, text.into());
    }

    fn push(&mut self, line: usize, severity: Severity, text: String) {
        let item = Item { line, severity, text: printable(&text) };
        // The same fact found twice (a group shared by many users) is said once.
        if !self.items.contains(&item) {
            self.items.push(item);
        }
    }

    /// Sort by line (stable, so items of one line keep their order).
    pub fn finish(&mut self) {
        self.items.sort_by_key(|i| i.line);
    }

    /// Whether any decision differs.
    pub fn has_differences(&self) -> bool {
        self.items.iter().any(|i| i.severity == Severity::Differs)
    }

    /// Items of one severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|i| i.severity == severity).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in &self.items {
            if i.line == 0 {
                writeln!(f, "{}: {}: {}", self.file, i.severity.word(), i.text)?;
            } else {
                writeln!(f, "{}:{}: {}: {}", self.file, i.line, i.severity.word(), i.text)?;
            }
        }
        let differs = self.count(Severity::Differs);
        let notes = self.count(Severity::Note);
        if differs == 0 {
            write!(f, "{}: every decision is kept ({notes} note(s))", self.file)
        } else {
            write!(
                f,
                "{}: {differs} item(s) where tacvs decides differently, {notes} note(s): \
                    review each before using the output",
                self.file
            )
        }
    }
}

/// Text from the source file made safe to print on one line: control
/// characters (a newline could forge a report line) shown as escapes.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_from_the_source_cannot_forge_a_report_line() {
        let mut r = Report::new("t.conf");
        r.note(3, "user \"x\nt.conf:9: note: forged\" left out");
        let text = r.to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("\\n"), "{text}");
    }

    #[test]
    fn the_summary_says_whether_decisions_differ() {
        let mut r = Report::new("t.conf");
        r.note(1, "a");
        assert!(!r.has_differences());
        assert!(r.to_string().ends_with("every decision is kept (1 note(s))"));
        r.differs(2, "b");
        r.differs(2, "b");
        assert_eq!(r.count(Severity::Differs), 1, "said once");
        assert!(r.has_differences());
        assert!(r.to_string().contains("1 item(s) where tacvs decides differently"));
    }
}
