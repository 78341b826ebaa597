//! tacvs-policy: the shipped example compiles; errors point at file:line:col;
//! device lookup is longest-prefix; authorization decisions carry their rule.

use std::net::IpAddr;
use std::path::Path;

use tacvs_policy::{ConfigError, Policy, parse};
use tacvs_proto::{AaaRequest, Argument, AuthorStatus};

fn example() -> Policy {
    tacvs_policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/server.toml"))
        .expect("examples/server.toml compiles")
}

fn req(user: &str, service: &str, cmd: Option<&str>) -> AaaRequest {
    let mut args = vec![Argument::new("service", service, true).unwrap()];
    if let Some(line) = cmd {
        let mut w = line.split(' ');
        args.push(Argument::new("cmd", w.next().unwrap(), true).unwrap());
        args.extend(w.map(|x| Argument::new("cmd-arg", x, true).unwrap()));
        args.push(Argument::new("cmd-arg", "<cr>", true).unwrap());
    }
    AaaRequest::new(user.to_owned(), args)
}

const BASE: &str = r#"
[server]
[[server.listen]]
address = "127.0.0.1:4949"
[[device_group]]
name = "core"
prefixes = ["10.0.0.0/8"]
keys = ["k1"]
[[device_group]]
name = "core-lab"
prefixes = ["10.9.0.0/16", "2001:db8::/32"]
keys = ["k2", "k3"]
default_command_action = "permit"
[[group]]
name = "ops"
priv_lvl = 7
  [[group.service]]
  name = "shell"
  [[group.service]]
  name = "ppp"
  protocol = "ip"
  args = ["addr=10.1.1.1", "inacl*101"]
  replace = true
  [[group.command]]
  match = "show .*"
  action = "permit"
  [[group.command]]
  match = "reload"
  action = "permit"
  device_groups = ["core-lab"]
  [[group.command]]
  match = "debug"
  anchored = false
  action = "deny"
[[user]]
name = "op"
groups = ["ops"]
"#;

fn base() -> Policy {
    parse("base.toml", BASE, Path::new(".")).unwrap()
}

#[test]
fn the_example_lab_group_covers_loopback_only() {
    let p = example();
    let (_, g) = p.device_group("127.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(&*g.name, "lab");
    assert!(p.device_group("::1".parse().unwrap()).is_some());
    assert!(p.device_group("192.0.2.1".parse().unwrap()).is_none());
}

#[test]
fn the_example_lets_netops_configure() {
    let p = example();
    let d = p.authorize(lab(&p), &req("alice", "shell", Some("configure terminal")));
    assert_eq!(d.status, AuthorStatus::PassAdd);
}

#[test]
fn the_example_lets_readonly_show_by_its_rule() {
    let p = example();
    let d = p.authorize(lab(&p), &req("bob", "shell", Some("show running-config")));
    assert_eq!(d.status, AuthorStatus::PassAdd);
    assert!(d.reason.contains("readonly") && d.reason.contains("rule 2"), "{}", d.reason);
}

#[test]
fn rules_are_anchored_at_both_ends() {
    let p = example();
    let sneaky = p.authorize(lab(&p), &req("bob", "shell", Some("configure show x")));
    assert_eq!(sneaky.status, AuthorStatus::Fail, "{}", sneaky.reason);
    assert!(sneaky.reason.contains("no rule matched"));
}

#[test]
fn exec_authorization_answers_the_groups_priv_lvl() {
    let p = example();
    let exec = p.authorize(lab(&p), &req("bob", "shell", None));
    assert_eq!(exec.status, AuthorStatus::PassAdd);
    assert_eq!(exec.args[0].to_string(), "priv-lvl=1");
}

#[test]
fn an_unknown_user_is_not_authorized() {
    let p = example();
    assert_eq!(p.authorize(lab(&p), &req("mallory", "shell", None)).status, AuthorStatus::Fail);
}

#[test]
fn the_example_hashes_verify_and_debug_hides_them() {
    let p = example();
    let alice = p.user(b"alice").unwrap();
    assert!(alice.password.as_ref().unwrap().verify(b"alice-pass"));
    assert!(alice.enable.as_ref().unwrap().verify(b"alice-enable"));
    assert_eq!(alice.max_priv, 15);
    assert!(!format!("{:?}", alice).contains("alice-pass"));
}

#[test]
fn longest_prefix_match_and_ipv4_mapped() {
    let p = base();
    let name =
        |ip: &str| p.device_group(ip.parse::<IpAddr>().unwrap()).map(|(_, g)| g.name.clone());
    assert_eq!(name("10.1.2.3").as_deref(), Some("core"));
    assert_eq!(name("10.9.2.3").as_deref(), Some("core-lab"));
    assert_eq!(name("::ffff:10.9.2.3").as_deref(), Some("core-lab"));
    assert_eq!(name("2001:db8::7").as_deref(), Some("core-lab"));
    assert_eq!(name("11.0.0.1"), None);
    assert_eq!(p.device_group("10.9.0.1".parse().unwrap()).unwrap().1.keys.len(), 2);
}

fn core_and_lab(p: &Policy) -> (usize, usize) {
    let core = p.device_group("10.1.1.1".parse().unwrap()).unwrap().0;
    let lab = p.device_group("10.9.1.1".parse().unwrap()).unwrap().0;
    (core, lab)
}

#[test]
fn a_rule_limited_to_device_groups_applies_only_there() {
    let p = base();
    let (core, lab) = core_and_lab(&p);
    let r = p.authorize(core, &req("op", "shell", Some("reload")));
    assert_eq!(r.status, AuthorStatus::Fail);
    assert!(r.reason.contains("default of group \"ops\" is deny"), "{}", r.reason);
    assert_eq!(p.authorize(lab, &req("op", "shell", Some("reload"))).status, AuthorStatus::PassAdd);
}

#[test]
fn an_unanchored_rule_matches_anywhere() {
    let p = base();
    let (_, lab) = core_and_lab(&p);
    let d = p.authorize(lab, &req("op", "shell", Some("terminal debug all")));
    assert_eq!(d.status, AuthorStatus::Fail);
    assert!(d.reason.contains("rule 3"));
}

#[test]
fn a_device_group_default_overrides_the_users_group_default() {
    let p = base();
    let (_, lab) = core_and_lab(&p);
    let x = p.authorize(lab, &req("op", "shell", Some("clear counters")));
    assert_eq!(x.status, AuthorStatus::PassAdd);
    assert!(x.reason.contains("device group \"core-lab\""));
}

#[test]
fn a_trailing_cr_is_not_part_of_the_line() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    // req() appends cmd-arg=<cr>; "show .*" needs an argument, "version".
    let d = p.authorize(core, &req("op", "shell", Some("show version")));
    assert_eq!(d.status, AuthorStatus::PassAdd, "{}", d.reason);
}

#[test]
fn a_grant_with_replace_answers_pass_repl_with_its_avs() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    let mut ppp = req("op", "ppp", None);
    ppp.args.push("protocol=ip".parse().unwrap());
    let r = p.authorize(core, &ppp);
    assert_eq!(r.status, AuthorStatus::PassRepl);
    assert_eq!(
        r.args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ["addr=10.1.1.1", "inacl*101"]
    );
}

#[test]
fn a_grant_for_another_protocol_does_not_apply() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    let mut ipx = req("op", "ppp", None);
    ipx.args.push("protocol=ipx".parse().unwrap());
    assert_eq!(p.authorize(core, &ipx).status, AuthorStatus::Fail);
}

#[test]
fn exec_answers_the_first_groups_priv_lvl() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    let exec = p.authorize(core, &req("op", "shell", None));
    assert_eq!(exec.args[0].to_string(), "priv-lvl=7");
}

#[test]
fn a_request_without_a_service_fails() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    assert_eq!(p.authorize(core, &AaaRequest::new("op", vec![])).status, AuthorStatus::Fail);
}

fn errors(src: &str) -> Vec<ConfigError> {
    parse("t.toml", src, Path::new(".")).unwrap_err().0
}

#[test]
fn max_sessions_per_connection_is_bounded() {
    let with = |n: usize| format!("{BASE}\n[limits]\nmax_sessions_per_connection = {n}\n");
    assert!(parse("t.toml", &with(4096), Path::new(".")).is_ok());
    let e = errors(&with(4097));
    assert!(e[0].to_string().contains("must be at most 4096"), "{}", e[0]);
}

#[test]
fn errors_name_file_line_and_column() {
    let e = errors("[server]\nlisten = []\n[limits]\nidle_timeout = \"soon\"\n");
    match &e[..] {
        [ConfigError::At { file, line: 4, msg, .. }] => {
            assert_eq!(file, "t.toml");
            assert!(msg.contains("invalid duration"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let src = BASE
        .replace("name = \"core-lab\"", "name = \"core\"")
        .replace("\"2001:db8::/32\"", "\"10.0.0.0/8\"");
    let e = errors(&src);
    let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(text.iter().any(|t| t.contains("device group \"core\" is defined twice")), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("prefix 10.0.0.0/8 is already in device group")),
        "{text:?}"
    );
    let line_of = |needle: &str| src.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        e.iter().any(
            |x| matches!(x, ConfigError::At { line, .. } if *line == line_of("\"10.9.0.0/16\""))
        )
    );
    let e = errors(&BASE.replace("keys = [\"k1\"]", ""));
    assert!(e[0].to_string().contains("has no key"), "{}", e[0]);
    let e = errors(
        &BASE.replace("[[user]]\nname = \"op\"", "[[user]]\nname = \"op\"\npassword = \"$6$x\""),
    );
    assert!(e[0].to_string().contains("malformed"), "{}", e[0]);
}

fn with(user: &str, args: &[&str]) -> AaaRequest {
    AaaRequest::new(user.to_owned(), args.iter().map(|a| a.parse().unwrap()).collect())
}

fn lab(p: &Policy) -> usize {
    p.device_group("127.0.0.1".parse().unwrap()).unwrap().0
}

#[test]
fn the_example_refuses_pipes_that_write_for_readonly_users() {
    let p = example();
    for line in [
        "show running-config | redirect tftp://192.0.2.9/x",
        "show running-config | append flash:x",
        "show tech |tee bootflash:x",
    ] {
        let d = p.authorize(lab(&p), &req("bob", "shell", Some(line)));
        assert_eq!(d.status, AuthorStatus::Fail, "{line}: {}", d.reason);
        assert!(d.reason.contains("rule 1"), "{}", d.reason);
    }
    let d =
        p.authorize(lab(&p), &req("bob", "shell", Some("show running-config | include hostname")));
    assert_eq!(d.status, AuthorStatus::PassAdd, "{}", d.reason);
}

#[test]
fn a_control_character_inside_a_permitted_command_is_refused() {
    let p = example();
    for hostile in [
        "clock\rconfigure terminal",
        "clock\nreload",
        "clock\u{2028}x",
        "clock\u{85}x",
        "a\u{202e}b",
    ] {
        let r = with("bob", &["service=shell", "cmd=show", &format!("cmd-arg={hostile}")]);
        let d = p.authorize(lab(&p), &r);
        assert_eq!(d.status, AuthorStatus::Fail, "{hostile:?}");
        assert!(d.reason.contains("control character"), "{}", d.reason);
    }
    let tab = with("alice", &["service=shell", "cmd=show\tversion"]);
    assert_eq!(p.authorize(lab(&p), &tab).status, AuthorStatus::Fail, "even for netops");
}

#[test]
fn every_cmd_av_of_a_request_is_checked() {
    let p = example();
    let two =
        |user| with(user, &["service=shell", "cmd=show", "cmd=configure", "cmd-arg=terminal"]);
    let d = p.authorize(lab(&p), &two("bob"));
    assert_eq!(d.status, AuthorStatus::Fail, "{}", d.reason);
    assert!(d.reason.contains("configure terminal"), "{}", d.reason);
    assert_eq!(p.authorize(lab(&p), &two("alice")).status, AuthorStatus::PassAdd);
    let reversed = with("bob", &["service=shell", "cmd=configure", "cmd=show"]);
    assert_eq!(p.authorize(lab(&p), &reversed).status, AuthorStatus::Fail);
}

#[test]
fn an_optional_cmd_is_checked_like_a_mandatory_one() {
    let p = example();
    let d =
        p.authorize(lab(&p), &with("bob", &["service=shell", "cmd*configure", "cmd-arg=terminal"]));
    assert_eq!(d.status, AuthorStatus::Fail, "{}", d.reason);
    let d = p.authorize(lab(&p), &with("bob", &["service=shell", "cmd*show", "cmd-arg=clock"]));
    assert_eq!(d.status, AuthorStatus::PassAdd, "{}", d.reason);
}

#[test]
fn a_mandatory_priv_lvl_above_the_grant_fails() {
    let p = example();
    let d = p.authorize(lab(&p), &with("bob", &["service=shell", "priv-lvl=15"]));
    assert_eq!(d.status, AuthorStatus::Fail, "{d:?}");
    assert!(
        d.reason.contains("mandatory priv-lvl=15") && d.reason.contains("priv-lvl=1"),
        "{}",
        d.reason
    );
    assert!(d.args.is_empty());
}

#[test]
fn an_optional_priv_lvl_above_the_grant_is_replaced() {
    let p = example();
    let d = p.authorize(lab(&p), &with("bob", &["service=shell", "priv-lvl*15", "idletime*5"]));
    assert_eq!(d.status, AuthorStatus::PassRepl, "{d:?}");
    let args: Vec<String> = d.args.iter().map(|a| a.to_string()).collect();
    assert_eq!(args, ["service=shell", "priv-lvl=1", "idletime*5"]);
}

#[test]
fn a_priv_lvl_within_the_grant_stands_without_a_second_value() {
    let p = example();
    let d = p.authorize(lab(&p), &with("alice", &["service=shell", "priv-lvl=1"]));
    assert_eq!(d.status, AuthorStatus::PassAdd, "{d:?}");
    assert!(d.args.iter().all(|a| a.name() != b"priv-lvl"), "{:?}", d.args);
}

#[test]
fn a_configured_replace_list_is_sent_whole() {
    let p = base();
    let core = p.device_group("10.1.1.1".parse().unwrap()).unwrap().0;
    let r = with("op", &["service=ppp", "protocol=ip", "addr=10.1.1.1"]);
    let d = p.authorize(core, &r);
    assert_eq!(d.status, AuthorStatus::PassRepl);
    let args: Vec<String> = d.args.iter().map(|a| a.to_string()).collect();
    assert_eq!(args, ["addr=10.1.1.1", "inacl*101"]);
    let conflict = with("op", &["service=ppp", "protocol=ip", "addr=10.9.9.9"]);
    assert_eq!(p.authorize(core, &conflict).status, AuthorStatus::Fail, "mandatory addr differs");
}

fn warnings(src: &str) -> Vec<String> {
    parse("w.toml", src, Path::new(".")).unwrap().warnings.iter().map(|w| w.to_string()).collect()
}

#[test]
fn short_keys_draw_a_warning_that_names_the_group_not_the_key() {
    let w = warnings(BASE);
    let short: Vec<&String> = w.iter().filter(|w| w.contains("characters long")).collect();
    assert_eq!(short.len(), 3, "k1, k2, k3: {w:?}");
    assert!(
        short[0].starts_with("w.toml:") && short[0].contains("device group \"core\": key #1 is 2"),
        "{w:?}"
    );
    assert!(w.iter().all(|m| !m.contains("\"k1\"") && !m.contains("\"k2\"")), "{w:?}");
    let long = BASE
        .replace("[\"k1\"]", "[\"0123456789abcdef\"]")
        .replace("[\"k2\", \"k3\"]", "[\"0123456789abcdefg\"]");
    assert!(warnings(&long).iter().all(|m| !m.contains("characters long")));
}

#[test]
fn a_prefix_inside_another_groups_draws_a_warning_saying_which_wins() {
    let w = warnings(BASE);
    let overlap: Vec<&String> = w.iter().filter(|w| w.contains("lies inside")).collect();
    assert_eq!(overlap.len(), 1, "{w:?}");
    assert!(
        overlap[0].contains(
            "prefix 10.9.0.0/16 of device group \"core-lab\" lies inside \
            10.0.0.0/8 of device group \"core\""
        ) && overlap[0].contains("belong to \"core-lab\""),
        "{overlap:?}"
    );
    let line = BASE.lines().position(|l| l.contains("10.9.0.0/16")).unwrap() + 1;
    assert!(overlap[0].starts_with(&format!("w.toml:{line}:")), "{overlap:?}");
}

#[test]
fn a_director_file_given_to_the_server_says_to_run_tacvs_director() {
    let e = errors("[director]\nname = \"d1\"\n[[service]]\nlisten = \"0.0.0.0:49\"\n");
    assert!(e[0].to_string().contains("tacvs director"), "{}", e[0]);
}

const SECRET: &str = "Sup3r-s3cret-K3y-4242";

#[test]
fn a_secret_in_a_value_of_the_wrong_type_is_not_echoed() {
    for (from, to) in [
        ("keys = [\"k1\"]", format!("keys = \"{SECRET}\"")),
        ("keys = [\"k1\"]", format!("keys = [\"{SECRET}\", 5]")),
        ("keys = [\"k1\"]", format!("keys = [\"k1\"]\nkey = \"{SECRET}\"")),
        ("name = \"op\"", format!("name = \"op\"\nchap_secret = [\"{SECRET}\"]")),
        ("name = \"op\"", format!("name = \"op\"\npassword = [\"{SECRET}\"]")),
        ("name = \"op\"", format!("name = \"op\"\nenable = {{ x = \"{SECRET}\" }}")),
    ] {
        let src = BASE.replacen(from, &to, 1);
        let e = errors(&src);
        let text = e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
        assert!(!text.contains(SECRET), "{to}: {text}");
    }
}

/// A secret value written in one of several shapes, right or wrong for its field.
fn shaped(shape: usize) -> String {
    match shape % 9 {
        0 => format!("\"{SECRET}\""),
        1 => format!("[\"{SECRET}\"]"),
        2 => format!("[\"{SECRET}\", 5]"),
        3 => format!("{{ a = \"{SECRET}\" }}"),
        4 => format!("[[\"{SECRET}\"]]"),
        5 => format!("'{SECRET}'"),
        6 => format!("\"\"\"{SECRET}\"\"\""),
        7 => format!("[5, \"{SECRET}\"]"),
        _ => format!("\"{SECRET}"),
    }
}

proptest::proptest! {
    /// A known secret in any secret field, in any shape, with the file cut or
    /// spliced near it: whatever the parser says, the secret is not in it.
    #[test]
    fn no_parse_error_echoes_a_secret(
        field in 0usize..4,
        shape in 0usize..9,
        near in -14i64..30,
        delete in 0usize..3,
        junk in "[\\[\\]=\",{}a-z0-9 \\n]{0,4}",
    ) {
        let value = shaped(shape);
        let src = match field {
            0 => BASE.replacen("keys = [\"k1\"]", &format!("keys = {value}"), 1),
            1 => BASE.replacen("name = \"op\"", &format!("name = \"op\"\nchap_secret = {value}"), 1),
            2 => BASE.replacen("name = \"op\"", &format!("name = \"op\"\npassword = {value}"), 1),
            _ => BASE.replacen("name = \"op\"", &format!("name = \"op\"\nenable = {value}"), 1),
        };
        let key_at = src.find(SECRET).unwrap() as i64;
        let at = (key_at + near).clamp(0, src.len() as i64) as usize;
        let end = (at + delete).min(src.len());
        for candidate in [src.clone(), format!("{}{junk}{}", &src[..at], &src[end..])] {
            if let Err(e) = parse("f.toml", &candidate, Path::new(".")) {
                let text = e.to_string();
                proptest::prop_assert!(!text.contains(SECRET), "{}", text);
            }
        }
    }
}

const LDAP: &str = r#"
[[ldap]]
name = "corp"
urls = ["ldaps://dc1.example.com"]
bind_dn = "cn=svc,dc=example,dc=com"
bind_password = "service-secret-value"
base_dn = "dc=example,dc=com"
  [[ldap.group_map]]
  ldap_group = "cn=ops,ou=groups,dc=example,dc=com"
  group = "ops"
"#;

#[test]
fn a_directory_compiles_and_maps_its_groups_in_order() {
    let p = parse("l.toml", &format!("{BASE}{LDAP}"), Path::new(".")).unwrap();
    let d = &p.directories[0];
    assert_eq!((d.name.as_str(), d.urls[0].port, d.urls[0].tls), ("corp", 636, true));
    assert_eq!(d.user_filter.render("a*", ""), "(uid=a\\2a)");
    let groups: Vec<usize> = d
        .map_groups(&["CN=Ops, OU=Groups, DC=example, DC=com".into()])
        .iter()
        .map(|(g, _)| *g)
        .collect();
    assert_eq!(groups, [0]);
    assert!(!format!("{d:?}").contains("service-secret-value"), "the password is redacted");
}

#[test]
fn directory_mistakes_are_errors_at_their_place_without_the_secret() {
    let bad = LDAP
        .replace("ldaps://dc1.example.com", "http://dc1")
        .replace("group = \"ops\"", "group = \"nobody\"")
        .replace("base_dn = ", "user_filter = \"uid={user}\"\nbase_dn = ")
        .replace("bind_password = \"service-secret-value\"", "bind_password = \"\"");
    let src = format!("{BASE}{bad}");
    let e = errors(&src);
    let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    let line_of = |needle: &str| src.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let at = |needle: &str, what: &str| {
        e.iter().any(|x| {
            matches!(x, ConfigError::At { line, msg, .. } if *line == line_of(needle) && msg.contains(what))
        })
    };
    assert!(at("http://dc1", "starts with ldap:// or ldaps://"), "{text:?}");
    assert!(at("group = \"nobody\"", "no group named \"nobody\""), "{text:?}");
    assert!(at("uid={user}", "in parentheses"), "{text:?}");
    assert!(text.iter().any(|t| t.contains("password is empty")), "{text:?}");
    // A password given without a DN, a DN without a password.
    let e =
        errors(&format!("{BASE}{}", LDAP.replace("bind_dn = \"cn=svc,dc=example,dc=com\"\n", "")));
    assert!(e[0].to_string().contains("without bind_dn"), "{}", e[0]);
    assert!(!e[0].to_string().contains("service-secret-value"));
}

#[test]
fn clear_text_directories_chap_devices_and_lonely_prefers_draw_warnings() {
    let w = warnings(&format!(
        "{}{}",
        BASE.replace("keys = [\"k1\"]", "keys = [\"k1\"]\nlogin_methods = [\"chap\", \"pap\"]"),
        LDAP.replace("ldaps://dc1.example.com", "ldap://dc1.example.com")
    ));
    assert!(w.iter().any(|w| w.contains("in clear")), "{w:?}");
    assert!(w.iter().any(|w| w.contains("CHAP or MS-CHAP")), "{w:?}");
    let w =
        warnings(&BASE.replace("groups = [\"ops\"]", "groups = [\"ops\"]\nprefer = \"directory\""));
    assert!(w.iter().any(|w| w.contains("no [[ldap]] directory is configured")), "{w:?}");
    let loopback = LDAP.replace("ldaps://dc1.example.com", "ldap://127.0.0.1:3890");
    assert!(!warnings(&format!("{BASE}{loopback}")).iter().any(|w| w.contains("in clear")));
}

#[test]
fn explain_lists_every_rule_looked_at_and_the_one_that_decided() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    let user = p.user(b"op").unwrap();
    let e = p.explain(core, user, &with("op", &["service=shell", "cmd=reload"]));
    assert_eq!(e.decision, p.authorize(core, &with("op", &["service=shell", "cmd=reload"])));
    assert!(
        e.steps.iter().any(|s| s.contains(
            "rule 2 \"reload\" permit (device groups core-lab): \
            matches, but not for this device's group"
        )),
        "{:?}",
        e.steps
    );
    assert!(e.steps.iter().any(|s| s.contains("rule 1 \"show .*\" permit: does not match")));
}

/// The command lines of a request, as rules see them (cargo-mutants found
/// these paths only reached through the server's tests).
#[test]
fn command_lines_join_cmd_args_and_skip_empty_cmds_and_the_cr() {
    use tacvs_policy::CommandLine;
    let r = with("op", &["service=shell", "cmd=", "cmd=show", "cmd-arg=ip", "cmd-arg=<cr>"]);
    let line = CommandLine::from_args(&r.args).unwrap();
    assert_eq!(line.0, "show ip");
    assert_eq!(line.to_string(), "show ip");
    assert_eq!(CommandLine::from_args(&with("op", &["service=shell", "cmd="]).args), None);
    assert_eq!(CommandLine::from_args(&with("op", &["service=shell", "cmd-arg=x"]).args), None);
    let two = with("op", &["service=shell", "cmd=show", "cmd=", "cmd=dir", "cmd-arg=x"]);
    let all: Vec<String> = CommandLine::all_from_args(&two.args).into_iter().map(|l| l.0).collect();
    assert_eq!(all, ["show x", "dir x"]);
    assert!(CommandLine::all_from_args(&with("op", &["service=shell"]).args).is_empty());
}

#[test]
fn several_cmd_avs_must_each_be_permitted_and_the_reason_counts_them() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    let ok = with("op", &["service=shell", "cmd=show", "cmd=show", "cmd-arg=version"]);
    let d = p.authorize(core, &ok);
    assert_eq!(d.status, AuthorStatus::PassAdd, "{}", d.reason);
    assert!(d.reason.starts_with("all 2 cmd AVs permitted; last: group \"ops\""), "{}", d.reason);
    let mixed = with("op", &["service=shell", "cmd=show", "cmd=reload", "cmd-arg=now"]);
    let d = p.authorize(core, &mixed);
    assert_eq!(d.status, AuthorStatus::Fail, "{}", d.reason);
    assert!(d.reason.starts_with("\"reload now\": "), "{}", d.reason);
}

#[test]
fn a_shell_grant_gets_the_groups_priv_lvl_unless_it_sets_one() {
    let src = BASE.replace(
        "  [[group.service]]\n  name = \"shell\"\n",
        "  [[group.service]]\n  name = \"shell\"\n  args = [\"autocmd=show users\"]\n",
    );
    let p = parse("shell.toml", &src, Path::new(".")).unwrap();
    let (core, _) = core_and_lab(&p);
    let args: Vec<String> =
        p.authorize(core, &req("op", "shell", None)).args.iter().map(|a| a.to_string()).collect();
    assert_eq!(args, ["priv-lvl=7", "autocmd=show users"]);
    let src = BASE.replace(
        "  [[group.service]]\n  name = \"shell\"\n",
        "  [[group.service]]\n  name = \"shell\"\n  args = [\"priv-lvl=15\"]\n",
    );
    let p = parse("shell15.toml", &src, Path::new(".")).unwrap();
    let args: Vec<String> =
        p.authorize(core, &req("op", "shell", None)).args.iter().map(|a| a.to_string()).collect();
    assert_eq!(args, ["priv-lvl=15"]);
    // Not for other services.
    let mut ppp = req("op", "ppp", None);
    ppp.args.push("protocol=ip".parse().unwrap());
    assert!(!p.authorize(core, &ppp).args.iter().any(|a| a.name() == b"priv-lvl"));
}

#[test]
fn explain_names_the_command_line_and_a_rule_for_every_device_group() {
    let p = base();
    let (core, _) = core_and_lab(&p);
    let user = p.user(b"op").unwrap();
    let e = p.explain(core, user, &with("op", &["service=shell", "cmd=show", "cmd-arg=clock"]));
    assert!(e.steps.iter().any(|s| s == "command line \"show clock\""), "{:?}", e.steps);
    assert!(
        e.steps.iter().any(|s| s.contains("rule 1 \"show .*\" permit: matches")
            && !s.contains("not for this device's group")),
        "{:?}",
        e.steps
    );
}

#[test]
fn password_hashes_made_with_a_cost_are_of_the_asked_kind_and_debug_names_only_it() {
    use tacvs_policy::{HashAlgorithm, PasswordHash};
    for (alg, cost, prefix) in [
        (HashAlgorithm::Sha512Crypt, 5000, "$6$rounds=5000$"),
        (HashAlgorithm::Sha256Crypt, 6000, "$5$rounds=6000$"),
        (HashAlgorithm::Bcrypt, 4, "$2b$04$"),
    ] {
        let text = PasswordHash::create_with_cost(alg, b"pw", cost).unwrap();
        assert!(text.starts_with(prefix), "{alg:?}: {text}");
        let h = PasswordHash::parse(&text).unwrap();
        assert_eq!(h.algorithm(), alg);
        assert!(h.verify(b"pw") && !h.verify(b"px"));
        assert_eq!(format!("{h:?}"), format!("PasswordHash({alg:?}, <redacted>)"));
    }
}

mod tls {
    //! `[server.listen.tls]` and `[device_group.tls]`: material checked at
    //! compile time, errors at the field's line, identities that cannot work.

    use std::path::PathBuf;

    use tacvs_tls::certs::{self, Role, Validity};

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A CA, a server certificate and a CRL in a fresh directory.
    fn pki(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tacvs-policy-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let ca = certs::ca("Test CA", Validity::days(30)).unwrap();
        let srv = certs::issue(&ca, Role::Server, "aaa", &["127.0.0.1".into()], Validity::days(30))
            .unwrap();
        let other = certs::issue(&ca, Role::Server, "bbb", &[], Validity::days(30)).unwrap();
        for (name, text) in [
            ("ca.pem", ca.cert.clone()),
            ("server.pem", srv.cert),
            ("server.key", srv.key),
            ("other.key", other.key),
            ("ca.crl", certs::crl(&ca, &[], 7, 1).unwrap()),
        ] {
            std::fs::write(d.join(name), text).unwrap();
        }
        Dir(d)
    }

    fn conf(tls: &str, groups: &str) -> String {
        format!(
            "[server]\n[[server.listen]]\naddress = \"127.0.0.1:0\"\n  [server.listen.tls]\n{tls}\n{groups}"
        )
    }

    const TLS: &str = "  certificate = \"server.pem\"\n  key = \"server.key\"\n  client_ca = \
        \"ca.pem\"\n  crls = [\"ca.crl\"]\n";
    const GROUP: &str = "[[device_group]]\nname = \"core\"\nprefixes = [\"10.0.0.0/8\"]\nkeys \
        = [\"0123456789abcdef0\"]\n";

    fn compile(d: &Dir, text: &str) -> Result<super::Policy, String> {
        super::parse("t.toml", text, &d.0).map_err(|e| e.to_string())
    }

    #[test]
    fn a_tls_listener_compiles_with_its_certificate_loaded() {
        let d = pki("ok");
        let p = compile(&d, &conf(TLS, GROUP)).unwrap();
        let t = p.listeners[0].tls.as_ref().expect("a TLS listener");
        assert_eq!(t.certificate.subject, "CN=aaa");
        assert_eq!(t.handshake_timeout, std::time::Duration::from_secs(5));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn a_key_of_another_certificate_is_an_error_at_the_key_line() {
        let d = pki("mismatch");
        let e = compile(&d, &conf(&TLS.replace("server.key", "other.key"), GROUP)).unwrap_err();
        assert!(e.starts_with("t.toml:6:"), "{e}");
        assert!(e.contains("does not belong to the certificate"), "{e}");
    }

    #[test]
    fn a_missing_crl_file_is_an_error_at_its_place() {
        let d = pki("nocrl");
        let e = compile(&d, &conf(&TLS.replace("ca.crl", "gone.crl"), GROUP)).unwrap_err();
        assert!(e.contains("t.toml:8:") && e.contains("gone.crl"), "{e}");
    }

    #[test]
    fn identities_that_cannot_work_are_refused() {
        let d = pki("ident");
        let e = compile(&d, &conf(&format!("{TLS}  identity = \"san-dns\"\n"), GROUP)).unwrap_err();
        assert!(e.contains("no device group lists names"), "{e}");
        let e = compile(
            &d,
            &conf(
                &format!("{TLS}  identity = \"san-ip\"\n  client_certificate = \"optional\"\n"),
                GROUP,
            ),
        )
        .unwrap_err();
        assert!(e.contains("client_certificate must be \"required\""), "{e}");
        let e =
            compile(&d, &conf("  certificate = \"server.pem\"\n  key = \"server.key\"\n", GROUP))
                .unwrap_err();
        assert!(e.contains("client_ca is missing"), "{e}");
    }

    #[test]
    fn groups_find_devices_by_certificate_names_most_specific_first() {
        let d = pki("names");
        let groups = "[[device_group]]\nname = \"wide\"\nprefixes = \
            [\"10.0.0.0/8\"]\n  [device_group.tls]\n  required = true\n  names = \
            [\"*.example.net\"]\n[[device_group]]\nname = \"core\"\nprefixes = \
            [\"10.1.0.0/16\"]\n  [device_group.tls]\n  required = true\n  names = \
            [\"*.core.example.net\", \"edge1.example.net\"]\n";
        let p = compile(&d, &conf(&format!("{TLS}  identity = \"san-dns\"\n"), groups)).unwrap();
        let g = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            p.device_group_by_dns(&names).map(|(_, g)| g.name.clone())
        };
        assert_eq!(g(&["rtr1.core.example.net"]).as_deref(), Some("core"));
        assert_eq!(g(&["edge1.example.net"]).as_deref(), Some("core"), "exact beats wildcard");
        assert_eq!(g(&["edge2.example.net"]).as_deref(), Some("wide"));
        assert_eq!(g(&["x.example.org"]), None);
        assert!(
            p.device_groups.iter().all(|g| g.keys.is_empty() && g.tls.required),
            "no keys needed"
        );
        let ips = ["192.0.2.1".parse().unwrap(), "10.1.2.3".parse().unwrap()];
        assert_eq!(
            p.device_group_by_ips(&ips).map(|(ip, _, g)| (ip.to_string(), g.name.clone())),
            Some(("10.1.2.3".into(), "core".into()))
        );
    }

    #[test]
    fn a_name_in_two_groups_and_a_bad_pattern_are_errors() {
        let d = pki("dup");
        let groups = "[[device_group]]\nname = \"a\"\nprefixes = \
            [\"10.0.0.0/8\"]\n  [device_group.tls]\n  required = true\n  names = \
            [\"rtr.example.net\", \"*.net\"]\n[[device_group]]\nname = \"b\"\nprefixes = \
            [\"10.1.0.0/16\"]\n  [device_group.tls]\n  required = true\n  names = \
            [\"rtr.example.net\"]\n";
        let e = compile(&d, &conf(TLS, groups)).unwrap_err();
        assert!(e.contains("already in device group \"a\""), "{e}");
        assert!(e.contains("two labels"), "{e}");
    }

    #[test]
    fn a_group_without_keys_needs_tls_required() {
        let d = pki("nokey");
        let e = compile(
            &d,
            &conf(TLS, "[[device_group]]\nname = \"x\"\nprefixes = [\"10.0.0.0/8\"]\n"),
        )
        .unwrap_err();
        assert!(e.contains("required = true"), "{e}");
    }
}

#[test]
fn a_default_decision_names_the_default_that_decided() {
    let p = base();
    let (core, _) = p.device_group("10.1.2.3".parse().unwrap()).unwrap();
    let (lab, _) = p.device_group("10.9.1.1".parse().unwrap()).unwrap();
    // No rule matches `write memory`: the device group's default decides
    // where it has one, the user's first group's default elsewhere.
    let d = p.authorize(lab, &req("op", "shell", Some("write memory")));
    assert_eq!(d.status, AuthorStatus::PassAdd);
    assert_eq!(&*d.reason, "no rule matched; default of device group \"core-lab\" is permit");
    let d = p.authorize(core, &req("op", "shell", Some("write memory")));
    assert_eq!(d.status, AuthorStatus::Fail);
    assert_eq!(&*d.reason, "no rule matched; default of group \"ops\" is deny");
}
