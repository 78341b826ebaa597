//! `docs/config-reference.md` cannot drift from the code.
//!
//! For each file kind (server, director, lab scenario, simulator profile) the
//! reference has one section per TOML table, with a row per field. The fields
//! a table accepts are read from the real serde definitions: every table
//! denies unknown fields, and serde's error for one names all the fields it
//! expected. Those lists must equal the documented rows (plus the documented
//! sub-tables). The file's full example must pass the program's own
//! validation, and each row's example must too, put in its place in it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// One documented table: its path (`""` for the top level, `group.service`),
/// whether it is an array of tables, and its rows (field, example).
#[derive(Debug, Default)]
struct Table {
    path: String,
    array: bool,
    rows: Vec<(String, String)>,
}

/// One file kind's section of the reference.
#[derive(Debug, Default)]
struct Kind {
    title: String,
    example: String,
    tables: Vec<Table>,
}

fn unticked(cell: &str) -> String {
    cell.trim().trim_matches('`').to_owned()
}

fn read_reference() -> Vec<Kind> {
    let text = std::fs::read_to_string(workspace().join("docs/config-reference.md")).unwrap();
    let mut kinds: Vec<Kind> = Vec::new();
    let mut in_toml = false;
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("## ") {
            kinds.push(Kind { title: t.trim().to_owned(), ..Default::default() });
            continue;
        }
        let Some(kind) = kinds.last_mut() else { continue };
        if line.starts_with("```") {
            in_toml = line.trim() == "```toml";
            continue;
        }
        if in_toml {
            kind.example.push_str(line);
            kind.example.push('\n');
        } else if let Some(h) = line.strip_prefix("### ") {
            let h = unticked(h);
            let (path, array) = if h == "top level" {
                (String::new(), false)
            } else if let Some(p) = h.strip_prefix("[[").and_then(|p| p.strip_suffix("]]")) {
                (p.to_owned(), true)
            } else {
                let p = h.trim_start_matches('[').trim_end_matches(']');
                (p.to_owned(), false)
            };
            kind.tables.push(Table { path, array, rows: Vec::new() });
        } else if line.starts_with("| `")
            && let Some(t) = kind.tables.last_mut()
        {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert!(cells.len() == 5, "a row with other than 5 cells: {line}");
            t.rows.push((unticked(cells[0]), unticked(cells[3])));
        }
    }
    kinds
}

/// TOML that puts an unknown field in the table at `path`, each level as an
/// inline table (or an array of one) so that serde meets it first.
fn probe(path: &str, arrays: &[&str]) -> String {
    let mut value = "{ zz_not_a_field = 1 }".to_owned();
    let segs: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    for i in (0..segs.len()).rev() {
        let here = segs[..=i].join(".");
        let v = if arrays.contains(&here.as_str()) { format!("[{value}]") } else { value };
        value =
            if i == 0 { format!("{} = {v}", segs[0]) } else { format!("{{ {} = {v} }}", segs[i]) };
    }
    if segs.is_empty() { "zz_not_a_field = 1".to_owned() } else { value }
}

/// The fields the table at `path` of `T` accepts, from serde's own error.
fn accepted<T: DeserializeOwned>(path: &str, arrays: &[&str]) -> Vec<String> {
    let text = probe(path, arrays);
    let msg = match toml::from_str::<T>(&text) {
        Ok(_) => panic!("{text:?} was accepted"),
        Err(e) => e.message().to_owned(),
    };
    let Some((_, expected)) = msg.split_once("expected") else {
        panic!("[{path}]: no field list in {msg:?} (from {text:?})")
    };
    let mut f: Vec<String> = expected.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    f.sort();
    f
}

/// The documented fields of a table: its rows and its documented sub-tables.
fn documented(kind: &Kind, t: &Table) -> Vec<String> {
    let mut f: Vec<String> = t.rows.iter().map(|(n, _)| n.clone()).collect();
    for sub in &kind.tables {
        let rest = if t.path.is_empty() {
            Some(sub.path.as_str())
        } else {
            sub.path.strip_prefix(&format!("{}.", t.path))
        };
        if let Some(r) = rest
            && !r.is_empty()
            && !r.contains('.')
        {
            f.push(r.to_owned());
        }
    }
    f.sort();
    f
}

/// Put `example` (TOML value text) at `path.field` of the full example.
fn with_example(full: &str, t: &Table, field: &str, example: &str) -> String {
    let mut doc: toml::Table = toml::from_str(full).unwrap();
    let value: toml::Table = toml::from_str(&format!("v = {example}"))
        .unwrap_or_else(|e| panic!("[{}] {field}: example {example} is not TOML: {e}", t.path));
    let mut at = &mut doc;
    for seg in t.path.split('.').filter(|s| !s.is_empty()) {
        at = match at.get_mut(seg).unwrap_or_else(|| panic!("the full example has no [{seg}]")) {
            toml::Value::Table(x) => x,
            toml::Value::Array(a) => match a.first_mut() {
                Some(toml::Value::Table(x)) => x,
                _ => panic!("[{}]: not an array of tables in the full example", t.path),
            },
            _ => panic!("[{}]: not a table in the full example", t.path),
        };
    }
    at.insert(field.to_owned(), value["v"].clone());
    toml::to_string(&doc).unwrap()
}

fn check_kind<T: DeserializeOwned>(title: &str, validate: impl Fn(&str) -> Result<(), String>) {
    let kinds = read_reference();
    let kind = kinds
        .iter()
        .find(|k| k.title == title)
        .unwrap_or_else(|| panic!("docs/config-reference.md has no \"## {title}\""));
    let mut bad = Vec::new();
    if let Err(e) = validate(&kind.example) {
        bad.push(format!("the full example is refused: {e}"));
    }
    let arrays: Vec<&str> =
        kind.tables.iter().filter(|t| t.array).map(|t| t.path.as_str()).collect();
    // The top level is a table too, documented or not (sections only).
    let top = Table::default();
    let mut tables: Vec<&Table> = kind.tables.iter().collect();
    if !kind.tables.iter().any(|t| t.path.is_empty()) {
        tables.push(&top);
    }
    for t in tables {
        let (code, doc) = (accepted::<T>(&t.path, &arrays), documented(kind, t));
        if code != doc {
            let missing: Vec<&String> = code.iter().filter(|f| !doc.contains(f)).collect();
            let extra: Vec<&String> = doc.iter().filter(|f| !code.contains(f)).collect();
            bad.push(format!(
                "[{}]: undocumented fields {missing:?}, documented fields the code lacks {extra:?}",
                t.path
            ));
        }
        for (field, example) in &t.rows {
            let text = with_example(&kind.example, t, field, example);
            if let Err(e) = validate(&text) {
                bad.push(format!("[{}] {field} = {example}: refused: {e}", t.path));
            }
        }
    }
    assert!(bad.is_empty(), "docs/config-reference.md, {title}:\n{}", bad.join("\n"));
}

#[test]
fn server_file_reference_matches_the_code() {
    let base = std::env::temp_dir().join(format!("tacvs-doc-config-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    // The key files the examples name, beside the (virtual) file.
    std::fs::write(base.join("fleet.key"), "a-key-from-a-file\n").unwrap();
    std::fs::write(base.join("ldap-bind.secret"), "a-service-password\n").unwrap();
    std::fs::write(base.join("corp-ca.pem"), "").unwrap();
    // And the TLS material of [server.listen.tls].
    use tacvs_tls::certs::{self, Role, Validity};
    let ca = certs::ca("doc CA", Validity::days(30)).unwrap();
    let srv =
        certs::issue(&ca, Role::Server, "aaa", &["aaa.example.net".into()], Validity::days(30))
            .unwrap();
    for (name, text) in [
        ("ca.pem", ca.cert.clone()),
        ("server.pem", srv.cert),
        ("server.key", srv.key),
        ("ca.crl", certs::crl(&ca, &[], 7, 1).unwrap()),
    ] {
        std::fs::write(base.join(name), text).unwrap();
    }
    check_kind::<tacvs_policy::ServerFile>("Server file", |text| {
        tacvs_policy::parse("server.toml", text, &base).map(|_| ()).map_err(|e| e.to_string())
    });
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn director_file_reference_matches_the_code() {
    check_kind::<tacvs_director::config::DirectorFile>("Director file", |text| {
        tacvs_director::config::parse("director.toml", text).map(|_| ()).map_err(|e| e.to_string())
    });
}

#[test]
fn lab_scenario_reference_matches_the_code() {
    check_kind::<tacvs_lab::Scenario>("Lab scenario file", |text| {
        tacvs_lab::Scenario::parse("scenario.toml", text).map(|_| ())
    });
}

#[test]
fn sim_profile_reference_matches_the_code() {
    check_kind::<tacvs_sim::Profile>("Simulator profile file", |text| {
        tacvs_sim::Profile::parse("profile.toml", text).map(|_| ())
    });
}

#[test]
fn the_check_sees_a_missing_field() {
    // serde's list for a table, and the probe that reaches a nested array.
    assert_eq!(
        probe("group.service", &["group", "group.service"]),
        "group = [{ service = [{ zz_not_a_field = 1 }] }]"
    );
    let f = accepted::<tacvs_sim::Profile>("", &[]);
    assert!(f.contains(&"sessions_per_hour".to_owned()) && f.len() == 11, "{f:?}");
    let f = accepted::<tacvs_policy::ServerFile>("authentication.lockout", &[]);
    assert_eq!(
        f,
        [
            "duration",
            "max_duration",
            "max_entries",
            "max_failures",
            "source_burst",
            "source_refill",
            "user_burst",
            "user_refill",
            "window"
        ]
    );
    // A reference without a row for `window` would differ.
    let kind = Kind {
        tables: vec![Table {
            path: "authentication.lockout".into(),
            rows: vec![("duration".into(), "1".into()), ("max_failures".into(), "1".into())],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_ne!(documented(&kind, &kind.tables[0]), f);
}
