//! No configuration error repeats a secret, whatever the mistake.
//!
//! Each shipped configuration (server and director) is taken apart into every
//! key and value it writes; a generated secret is put in each place in every
//! way an operator could write it (a string, a list, an inline table, unquoted,
//! unterminated, multi-line, a key of its own), and every error and warning the
//! parser gives must leave the secret out. The secrets are drawn from
//! characters that break naive redaction: quotes, backticks, commas, `=`,
//! brackets and the words serde uses (`, expected `).

use std::ops::Range;
use std::path::Path;

use proptest::prelude::*;
use toml::de::{DeTable, DeValue};

fn example(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A place in the text, whether it holds a key (else a value), and the key
/// it is written under.
#[derive(Debug, Clone)]
struct Place {
    span: Range<usize>,
    key: bool,
    under: String,
}

/// Settings that name things (a service, a user, a group) or refer to a name:
/// messages quote names on purpose ("no group named \"ops\""), so a secret
/// written as a name is shown like any name. Every other place is checked.
const NAMES: [&str; 5] = ["name", "groups", "device_groups", "user", "app_name"];

fn places(src: &str) -> Vec<Place> {
    // An inline table is written `{ ... }`; other tables are headers.
    let inline = |span: &Range<usize>| src.get(span.clone()).is_some_and(|t| t.starts_with('{'));
    let mut out = Vec::new();
    let mut stack: Vec<(&DeValue<'_>, Range<usize>, String)> = Vec::new();
    let doc = DeTable::parse(src).expect("the example parses");
    for (k, v) in doc.get_ref().iter() {
        out.push(Place { span: k.span(), key: true, under: String::new() });
        stack.push((v.get_ref(), v.span(), k.get_ref().to_string()));
    }
    while let Some((v, span, under)) = stack.pop() {
        match v {
            DeValue::Table(t) => {
                if inline(&span) {
                    out.push(Place { span, key: false, under });
                }
                for (k, v) in t.iter() {
                    out.push(Place { span: k.span(), key: true, under: String::new() });
                    stack.push((v.get_ref(), v.span(), k.get_ref().to_string()));
                }
            }
            DeValue::Array(a) => {
                // An array of tables is written as headers, not as a value.
                let of_tables = !a.is_empty()
                    && a.iter()
                        .all(|e| matches!(e.get_ref(), DeValue::Table(_)) && !inline(&e.span()));
                if !of_tables {
                    out.push(Place { span, key: false, under: under.clone() });
                }
                for e in a.iter() {
                    stack.push((e.get_ref(), e.span(), under.clone()));
                }
            }
            _ => out.push(Place { span, key: false, under }),
        }
    }
    out.retain(|p| {
        p.span.start < p.span.end && p.span.end <= src.len() && !NAMES.contains(&p.under.as_str())
    });
    out
}

fn basic(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Every way of writing `secret` at a value place (valid TOML or not).
fn value_forms(secret: &str) -> Vec<String> {
    let b = basic(secret);
    let mut v = vec![
        b.clone(),
        format!("[{b}]"),
        format!("[{b}, {b}]"),
        format!("{{ key = {b} }}"),
        format!("[{{ key = {b} }}]"),
        secret.to_owned(),
        format!("\"{secret}"),
        format!("{b} {secret}"),
        format!("\"\"\"{}\"\"\"", secret.replace('\\', "\\\\").replace('"', "\\\"")),
        format!("[{b}"),
    ];
    if !secret.contains('\'') {
        v.push(format!("'{secret}'"));
    }
    v
}

/// Every way of writing `secret` at a key place.
fn key_forms(secret: &str) -> Vec<String> {
    vec![basic(secret), secret.to_owned(), format!("{} = 1\nx", basic(secret))]
}

/// Whether `message` shows the secret or a piece of it. Secrets start with 8
/// random letters and digits; a piece is 8 characters with at least 4 of those
/// (the rest of a secret is made of words error messages use anyway).
fn leaks(secret: &str, message: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    message.contains(secret)
        || (0..=4).any(|i| {
            let w: String = chars.iter().skip(i).take(8).collect();
            w.chars().count() == 8 && message.contains(&w)
        })
}

/// Put the secret everywhere in `src`; return (mutated text, message) for every leak.
fn leaks_in(src: &str, secret: &str, parse: &dyn Fn(&str) -> Vec<String>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for place in places(src) {
        let forms = if place.key { key_forms(secret) } else { value_forms(secret) };
        for form in forms {
            let text = format!("{}{form}{}", &src[..place.span.start], &src[place.span.end..]);
            for m in parse(&text) {
                if leaks(secret, &m) {
                    found.push((text.clone(), m));
                }
            }
        }
    }
    found
}

fn server_messages(text: &str) -> Vec<String> {
    match tacvs_policy::parse("server.toml", text, Path::new("/nonexistent")) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn director_messages(text: &str) -> Vec<String> {
    match tacvs_director::config::check_text("director.toml", text) {
        Ok(c) => c.warnings.iter().map(ToString::to_string).collect(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Secrets that look like the text of error messages.
fn secret() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[A-Za-z0-9]{1,6}",
        Just(", expected ".to_owned()),
        Just("`".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("\\".to_owned()),
        Just(" = ".to_owned()),
        Just("[".to_owned()),
        Just("}".to_owned()),
        Just("#".to_owned()),
        Just("é".to_owned()),
    ];
    ("[A-Za-z][A-Za-z0-9]{7}", proptest::collection::vec(piece, 0..8))
        .prop_map(|(head, rest)| head + &rest.concat())
}

fn assert_no_leaks(name: &str, src: &str, secret: &str, parse: &dyn Fn(&str) -> Vec<String>) {
    let found = leaks_in(src, secret, parse);
    if let Some((text, _)) = found.first() {
        let mut msgs: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
        msgs.dedup();
        panic!(
            "{name}: {} messages repeat the secret {secret:?}:\n{}\n--- first text ---\n{text}",
            found.len(),
            msgs.join("\n")
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn server_config_errors_never_repeat_a_secret(secret in secret()) {
        // The example, plus the settings it leaves out: syslog, key files.
        let src = example("server.toml").replace(
            "keys = [\"tacvs-demo-key\"]",
            "keys = [\"tacvs-demo-key\"]\nkey_files = [\"/nonexistent/key\"]",
        ) + "\n[accounting.syslog]\ntarget = \"udp://127.0.0.1:514\"\nfacility = \"local6\"\n";
        assert_no_leaks("examples/server.toml", &src, &secret, &server_messages);
    }

    #[test]
    fn director_config_errors_never_repeat_a_secret(secret in secret()) {
        for f in ["cluster/director.toml", "cluster/director-ha.toml"] {
            assert_no_leaks(f, &example(f), &secret, &director_messages);
        }
    }
}

/// The case issue 17 reported: a key list written as a string.
#[test]
fn a_key_written_as_a_string_is_not_printed() {
    let src =
        example("server.toml").replace("keys = [\"tacvs-demo-key\"]", "keys = \"tacvs-demo-key\"");
    let m = server_messages(&src);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("invalid type: a string, expected a sequence"), "{m:?}");
    assert!(!m[0].contains("tacvs-demo-key"), "{m:?}");
    let src = example("cluster/director.toml")
        .replace("key = \"tacvs-demo-key\"", "key = [\"tacvs-demo-key\"]");
    let m = director_messages(&src);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(!m[0].contains("tacvs-demo-key") && m[0].contains("invalid type: a list"), "{m:?}");
}

/// The harness finds a leak when there is one (it can fail).
#[test]
fn the_leak_check_catches_an_echo() {
    let echo = |text: &str| vec![format!("bad: {text}")];
    assert!(!leaks_in("a = 1\n", "Sekrit-1234", &echo).is_empty());
    let quiet = |_: &str| vec!["bad".to_owned()];
    assert!(leaks_in("a = 1\n", "Sekrit-1234", &quiet).is_empty());
    // Every key and value of a small file is a place.
    let p = places("a = 1\n[t]\nb = [\"x\", 2]\nc = { d = true }\n[[s]]\ne = 'f'\n");
    assert_eq!(p.iter().filter(|p| p.key).count(), 7);
    assert_eq!(p.iter().filter(|p| !p.key).count(), 7);
}
