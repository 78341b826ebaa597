//! # tacvs-import
//!
//! `tacvs import`: a classic tac_plus (Shrubbery / tac_plus-F) or tac_plus-ng
//! configuration translated into a tacvs server file, with a report of every
//! construct that could not be carried over exactly.
//!
//! Shape: each dialect has a tokenizer and parser (pure, bounded, with line
//! numbers: hostile input gets an error, never a panic) and a translator that
//! walks the parsed file with the source program's own evaluation rules and
//! produces an [`model::Output`]: device groups, groups, users. The output is
//! written as TOML ([`model::Output::to_toml`]) and, before it is handed back,
//! compiled by the policy crate exactly as `tacvs check` would.
//!
//! The contract: no decision changes silently. Where tacvs would decide a
//! request differently from the source (an unverifiable DES hash, a
//! per-user ACL, a script the translator does not follow), the output takes
//! the stricter side and the [`report::Report`] says so with the source line
//! (severity `DIFFERS`). Command patterns keep their unanchored meaning
//! (written as explicit `(?s:.*)`) unless the caller asks to anchor them, and
//! then every rule that changes is reported.

pub mod classic;
mod common;
pub mod model;
pub mod ng;
pub mod regex;
pub mod report;

use std::fmt;

pub use model::Output;
pub use report::{Report, Severity};
use tacvs_policy::HashAlgorithm;
use thiserror::Error;

/// Largest configuration file read.
pub const MAX_INPUT: usize = 16 << 20;

/// Which program the configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Classic tac_plus: Cisco's, Shrubbery's tac_plus-F, Facebook's fork.
    Classic,
    /// Marc Huber's tac_plus-ng.
    Ng,
}

impl Dialect {
    /// Guess from the text: tac_plus-ng files hold `id = tac_plus-ng`.
    pub fn detect(text: &str) -> Dialect {
        let ng = text.lines().any(|l| {
            let l = l.split('#').next().unwrap_or("");
            let w: Vec<&str> = l
                .split(|c: char| c.is_whitespace() || c == '=')
                .filter(|w| !w.is_empty())
                .collect();
            w.len() >= 2 && w[0] == "id" && w[1] == "tac_plus-ng"
        });
        if ng { Dialect::Ng } else { Dialect::Classic }
    }

    /// The program's name.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Classic => "tac_plus",
            Dialect::Ng => "tac_plus-ng",
        }
    }
}

/// How to translate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Anchor command patterns at both ends (changes meanings; reported).
    pub anchor: bool,
    /// `[[server.listen]]` addresses of the output.
    pub listen: Vec<String>,
    /// Where the output's journal and password store live.
    pub state_dir: String,
    /// Algorithm for hashing clear-text passwords of the source.
    pub hash: HashAlgorithm,
    /// Today, as days since 1970-01-01 (for `expires` dates).
    pub today: i64,
}

impl Default for Options {
    fn default() -> Self {
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| (d.as_secs() / 86_400) as i64);
        Options {
            anchor: false,
            listen: vec!["0.0.0.0:49".into()],
            state_dir: "/var/lib/tacvs".into(),
            hash: HashAlgorithm::Sha512Crypt,
            today,
        }
    }
}

/// Why nothing was produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    /// The source file is malformed where its own program would refuse it too.
    #[error("{file}:{line}:{col}: {msg}")]
    Syntax {
        /// File name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// The file as a whole.
    #[error("{file}: {msg}")]
    File {
        /// File name as given.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// The translation does not pass the server's own validation: a defect of
    /// `tacvs import`, reported with the validation errors.
    #[error(
        "{file}: the translated configuration does not pass `tacvs check` (a defect in tacvs \
            import, please report it):\n{errors}"
    )]
    Invalid {
        /// Source file name.
        file: String,
        /// The validation errors.
        errors: String,
    },
}

/// A position in the source, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A syntax error at `pos` of `file`.
pub(crate) fn syntax(file: &str, pos: Pos, msg: impl Into<String>) -> ImportError {
    ImportError::Syntax { file: file.to_owned(), line: pos.line, col: pos.col, msg: msg.into() }
}

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    /// The translated model (users' clear-text passwords are hashed in `toml`).
    pub output: Output,
    /// The tacvs server file, validated.
    pub toml: String,
    /// Everything not carried over exactly.
    pub report: Report,
}

/// Parse and translate without writing TOML: the model and the report.
pub fn translate(
    file: &str,
    text: &str,
    dialect: Dialect,
    opts: &Options,
) -> Result<(Output, Report), ImportError> {
    if text.len() > MAX_INPUT {
        return Err(ImportError::File {
            file: file.to_owned(),
            msg: format!("larger than {} MiB; split it or raise the limit", MAX_INPUT >> 20),
        });
    }
    let mut report = Report::new(file);
    let output = match dialect {
        Dialect::Classic => classic::translate(file, text, opts, &mut report)?,
        Dialect::Ng => ng::translate(file, text, opts, &mut report)?,
    };
    report.finish();
    Ok((output, report))
}

/// Translate `text` (named `file` in messages) from `dialect` into a tacvs
/// server file, hash clear-text passwords with `opts.hash`, and check the
/// result as `tacvs check` does.
pub fn import(
    file: &str,
    text: &str,
    dialect: Dialect,
    opts: &Options,
) -> Result<Imported, ImportError> {
    let (output, report) = translate(file, text, dialect, opts)?;
    let alg = opts.hash;
    let toml = output
        .to_toml(&|pw: &[u8]| tacvs_policy::PasswordHash::create(alg, pw))
        .map_err(|msg| ImportError::File { file: file.to_owned(), msg })?;
    check(file, &toml)?;
    Ok(Imported { output, toml, report })
}

/// Compile `toml` as the server would; any error is a defect of the importer.
pub fn check(file: &str, toml: &str) -> Result<(), ImportError> {
    tacvs_policy::parse("imported.toml", toml, std::path::Path::new("."))
        .map(drop)
        .map_err(|e| ImportError::Invalid { file: file.to_owned(), errors: e.to_string() })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A valid hash standing in for hashing in property tests (hashing is slow
    /// on purpose and not what is tested here).
    const HASH: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";

    fn words(vocabulary: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(vocabulary).prop_map(str::to_owned),
                1 => "[ -~]{0,6}",
                1 => Just("\n".to_owned()),
            ],
            0..80,
        )
        .prop_map(|v| v.join(" "))
    }

    const CLASSIC: &[&str] = &[
        "user",
        "group",
        "host",
        "acl",
        "key",
        "=",
        "{",
        "}",
        "member",
        "login",
        "pap",
        "chap",
        "cleartext",
        "des",
        "\"x\"",
        "\"$6$a$b\"",
        "cmd",
        "show",
        "permit",
        "deny",
        "\".*\"",
        "\"^a$\"",
        "\"a<cr>\"",
        "\"(^a|b)\"",
        "service",
        "exec",
        "ppp",
        "protocol",
        "ip",
        "priv-lvl",
        "15",
        "optional",
        "default",
        "attribute",
        "enable",
        "nopassword",
        "127.0.0.1",
        "10.0.0.0/8",
        "expires",
        "\"Jan 1 2001\"",
        "acl",
        "global",
    ];

    const NG: &[&str] = &[
        "id",
        "=",
        "tac_plus-ng",
        "{",
        "}",
        "device",
        "host",
        "address",
        "key",
        "user",
        "group",
        "profile",
        "script",
        "ruleset",
        "rule",
        "enabled",
        "yes",
        "if",
        "(",
        ")",
        "service",
        "==",
        "shell",
        "cmd",
        "=~",
        "/^show/",
        "\"\"",
        "member",
        "&&",
        "||",
        "!",
        "permit",
        "deny",
        "set",
        "priv-lvl",
        "15",
        "password",
        "login",
        "clear",
        "crypt",
        "pap",
        "else",
        "10.0.0.0/8",
        "0.0.0.0/0",
        "a",
        "b",
        "enable",
        "arg",
        "[",
        "]",
        "protocol",
        "device",
        "return",
    ];

    fn round_trip(text: &str, dialect: Dialect) -> Result<(), TestCaseError> {
        for anchor in [false, true] {
            let opts = Options { anchor, ..Options::default() };
            if let Ok((out, _report)) = translate("f", text, dialect, &opts) {
                let toml = out.to_toml(&|_| Ok(HASH.to_owned())).unwrap();
                prop_assert!(
                    check("f", &toml).is_ok(),
                    "{text:?}\n{toml}\n{:?}",
                    check("f", &toml)
                );
            }
        }
        Ok(())
    }

    /// A pattern as tac_plus-ng or tac_plus would hold it: any mix of
    /// metacharacters (no quote or backslash, which the file syntax restricts).
    fn pattern() -> BoxedStrategy<String> {
        "[a-c .^$*+?()|\\[\\]{}0-9,-]{0,12}".boxed()
    }

    /// A classic file that parses: groups chained by `member` (no cycles), users
    /// with the usual password kinds, random command patterns.
    fn classic_file() -> impl Strategy<Value = String> {
        let rule = (prop::bool::ANY, pattern())
            .prop_map(|(p, re)| format!("{} \"{re}\"", if p { "permit" } else { "deny" }));
        let cmd = (
            prop::sample::select(&["show", "ping", "configure"][..]),
            prop::collection::vec(rule, 0..4),
        )
            .prop_map(|(c, rules)| format!("cmd = {c} {{ {} }}", rules.join(" ")));
        let body = (
            prop::option::of(prop::bool::ANY),
            prop::option::of(0u8..20),
            prop::collection::vec(cmd, 0..3),
            prop::option::of(prop::sample::select(
                &["ppp protocol = ip", "slip", "shell", "junos-exec"][..],
            )),
        )
            .prop_map(|(dflt, lvl, cmds, svc)| {
                let mut b = String::new();
                if let Some(d) = dflt {
                    b.push_str(if d {
                        "default service = permit\n"
                    } else {
                        "default service = deny\n"
                    });
                }
                if let Some(l) = lvl {
                    b.push_str(&format!(
                        "service = exec {{ priv-lvl = {l} optional idletime = 5 }}\n"
                    ));
                }
                if let Some(s) = svc {
                    b.push_str(&format!("service = {s} {{ }}\n"));
                }
                b.push_str(&cmds.join("\n"));
                b
            })
            .boxed();
        let login = prop::sample::select(
            &[
                "login = cleartext \"pw\"",
                "login = des \"abZl.OFHvCz/Y\"",
                "login = des \"$1$saltsalt$yHbsVRYmYwVmi5lMRcFrx/\"",
                "login = nopassword",
                "login = file /etc/passwd",
                "login = cleartext \"pw\" pap = cleartext \"other\"",
                "global = cleartext \"g\" chap = cleartext \"c\"",
                "login = cleartext \"pw\" enable = cleartext \"en\" acl = a",
                "login = cleartext \"pw\" expires = \"Jan 1 2001\"",
                "",
            ][..],
        );
        (
            prop::collection::vec(body.clone(), 0..4),
            prop::collection::vec((login, body, prop::option::of(0usize..4)), 0..5),
            prop::sample::subsequence(
                &["127.0.0.2", "10.0.0.0/8", "::1", "name", "127.0.0.2/32", "10.0.0.1"][..],
                0..5,
            ),
        )
            .prop_map(|(groups, users, hosts)| {
                let mut f = String::from("key = k\nacl = a { permit = ^10 }\n");
                for (i, h) in hosts.iter().enumerate() {
                    f.push_str(&format!("host = {h} {{ key = h{i} }}\n"));
                }
                let n = groups.len();
                for (i, g) in groups.iter().enumerate() {
                    let member =
                        if i + 1 < n { format!("member = g{}\n", i + 1) } else { String::new() };
                    f.push_str(&format!("group = g{i} {{\n{member}{g}\n}}\n"));
                }
                for (i, (login, body, member)) in users.iter().enumerate() {
                    let member = match member {
                        Some(m) if *m < n => format!("member = g{m}\n"),
                        _ => String::new(),
                    };
                    f.push_str(&format!("user = u{i} {{\n{login}\n{member}{body}\n}}\n"));
                }
                f
            })
    }

    /// A tac_plus-ng file that parses, with random scripts.
    fn ng_file() -> impl Strategy<Value = String> {
        let cond = prop_oneof![
            Just("service == shell".to_owned()),
            Just("service == ppp".to_owned()),
            Just("cmd == \"\"".to_owned()),
            Just("member == g0".to_owned()),
            Just("device == d".to_owned()),
            Just("arg[protocol] == ip".to_owned()),
            pattern().prop_map(|p| format!("cmd =~ /{}/", p.replace('/', ""))),
            pattern().prop_map(|p| format!("cmd !~ /{}/", p.replace('/', ""))),
        ];
        let cond = (cond.clone(), prop::option::of((prop::bool::ANY, cond)))
            .prop_map(|(a, b)| match b {
                None => a,
                Some((and, b)) => format!("{a} {} {b}", if and { "&&" } else { "||" }),
            })
            .boxed();
        let leaf = prop_oneof![
            Just("permit".to_owned()),
            Just("deny".to_owned()),
            Just("return".to_owned()),
            Just("set priv-lvl = 15".to_owned()),
            Just("set addr = 1.2.3.4".to_owned()),
            Just("profile = p0".to_owned()),
        ];
        let stmt = leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                (cond.clone(), inner.clone(), prop::option::of(inner.clone())).prop_map(
                    |(c, t, e)| match e {
                        None => format!("if ({c}) {t}"),
                        Some(e) => format!("if ({c}) {t} else {e}"),
                    }
                ),
                prop::collection::vec(inner, 0..4).prop_map(|v| format!("{{ {} }}", v.join("\n"))),
            ]
        });
        let script = prop::collection::vec(stmt, 0..5)
            .prop_map(|v| format!("script {{\n{}\n}}", v.join("\n")))
            .boxed();
        let user = (
            prop::sample::select(
                &[
                    "password login = clear pw",
                    "password login = crypt $1$saltsalt$yHbsVRYmYwVmi5lMRcFrx/\npassword pap = login",
                    "password { login = clear a pap = clear b chap = clear c }",
                    "password login = permit",
                    "password login = 7 02050D480809\nenable 15 = login",
                    "",
                ][..],
            ),
            prop::option::of(script.clone()),
            prop::bool::ANY,
        )
            .prop_map(|(pw, own, member)| {
                let profile = own.map(|s| format!("profile {{ {s} }}")).unwrap_or_default();
                let member = if member { "member = g1" } else { "" };
                format!("{pw}\n{member}\n{profile}")
            });
        (prop::collection::vec(script.clone(), 1..3), prop::collection::vec(user, 0..4), prop::collection::vec(script, 0..3))
            .prop_map(|(profiles, users, rules)| {
                let mut f = String::from(
                    "id = tac_plus-ng \
                        {\ndevice d { address = 0.0.0.0/0 key = k device e { address = 10.0.0.0/8 } }\ngroup g0 { group g1 }\n",
                );
                for (i, p) in profiles.iter().enumerate() {
                    f.push_str(&format!("profile p{i} {{ enable 7 = clear e\n{p} }}\n"));
                }
                for (i, u) in users.iter().enumerate() {
                    f.push_str(&format!("user u{i} {{\n{u}\n}}\n"));
                }
                f.push_str("ruleset {\n");
                for (i, r) in rules.iter().enumerate() {
                    f.push_str(&format!("rule r{i} {{ enabled = yes\n{r} }}\n"));
                }
                f.push_str("}\n}\n");
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// A file its program accepts: translated into one the server accepts
        /// (unless a pattern is one the program itself refuses).
        #[test]
        fn classic_files_translate_into_valid_configurations(text in classic_file()) {
            for anchor in [false, true] {
                let opts = Options { anchor, ..Options::default() };
                match translate("f", &text, Dialect::Classic, &opts) {
                    Ok((out, _)) => {
                        let toml = out.to_toml(&|_| Ok(HASH.to_owned())).unwrap();
                        prop_assert!(check("f", &toml).is_ok(), "{text}\n{toml}\n{:?}", check("f", &toml));
                    }
                    Err(e) => prop_assert!(e.to_string().contains("regcomp fails"), "{text}\n{e}"),
                }
            }
        }

        #[test]
        fn ng_files_translate_into_valid_configurations(text in ng_file()) {
            for anchor in [false, true] {
                let opts = Options { anchor, ..Options::default() };
                let (out, _) = translate("f", &text, Dialect::Ng, &opts).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
                let toml = out.to_toml(&|_| Ok(HASH.to_owned())).unwrap();
                prop_assert!(check("f", &toml).is_ok(), "{text}\n{toml}\n{:?}", check("f", &toml));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any text: an error or an output the server accepts; never a panic.
        #[test]
        fn classic_input_never_panics_and_output_always_checks(text in words(CLASSIC)) {
            round_trip(&text, Dialect::Classic)?;
        }

        #[test]
        fn ng_input_never_panics_and_output_always_checks(body in words(NG)) {
            round_trip(&format!("id = tac_plus-ng {{ {body} }}"), Dialect::Ng)?;
            round_trip(&body, Dialect::Ng)?;
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            round_trip(&text, Dialect::Classic)?;
            round_trip(&text, Dialect::Ng)?;
        }
    }

    #[test]
    fn the_dialect_is_detected() {
        assert_eq!(Dialect::detect("id = tac_plus-ng {\n}"), Dialect::Ng);
        assert_eq!(Dialect::detect("# id = tac_plus-ng\nkey = x"), Dialect::Classic);
        assert_eq!(Dialect::detect("key = x"), Dialect::Classic);
    }
}
