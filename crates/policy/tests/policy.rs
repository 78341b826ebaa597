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
fn example_decisions() {
    let p = example();
    let (lab, g) = p.device_group("127.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(g.name, "lab");
    assert!(p.device_group("::1".parse().unwrap()).is_some());
    assert!(p.device_group("192.0.2.1".parse().unwrap()).is_none());

    assert_eq!(
        p.authorize(lab, &req("alice", "shell", Some("configure terminal"))).status,
        AuthorStatus::PassAdd
    );
    let bob_show = p.authorize(lab, &req("bob", "shell", Some("show running-config")));
    assert_eq!(bob_show.status, AuthorStatus::PassAdd);
    assert!(
        bob_show.reason.contains("readonly") && bob_show.reason.contains("rule 1"),
        "{}",
        bob_show.reason
    );
    let sneaky = p.authorize(lab, &req("bob", "shell", Some("configure show x")));
    assert_eq!(sneaky.status, AuthorStatus::Fail, "anchoring: {}", sneaky.reason);
    assert!(sneaky.reason.contains("no rule matched"));
    let exec = p.authorize(lab, &req("bob", "shell", None));
    assert_eq!(exec.status, AuthorStatus::PassAdd);
    assert_eq!(exec.args[0].to_string(), "priv-lvl=1");
    assert_eq!(p.authorize(lab, &req("mallory", "shell", None)).status, AuthorStatus::Fail);
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

#[test]
fn command_rules_device_groups_defaults_and_services() {
    let p = base();
    let core = p.device_group("10.1.1.1".parse().unwrap()).unwrap().0;
    let lab = p.device_group("10.9.1.1".parse().unwrap()).unwrap().0;
    // reload is permitted only on core-lab devices.
    let r = p.authorize(core, &req("op", "shell", Some("reload")));
    assert_eq!(r.status, AuthorStatus::Fail);
    assert!(r.reason.contains("default of group \"ops\" is deny"), "{}", r.reason);
    assert_eq!(p.authorize(lab, &req("op", "shell", Some("reload"))).status, AuthorStatus::PassAdd);
    // The unanchored rule matches anywhere, deliberately.
    let d = p.authorize(lab, &req("op", "shell", Some("terminal debug all")));
    assert_eq!(d.status, AuthorStatus::Fail);
    assert!(d.reason.contains("rule 3"));
    // Device group default overrides the user's group default.
    let x = p.authorize(lab, &req("op", "shell", Some("clear counters")));
    assert_eq!(x.status, AuthorStatus::PassAdd);
    assert!(x.reason.contains("device group \"core-lab\""));
    // <cr> is not part of the line.
    assert_eq!(
        p.authorize(core, &req("op", "shell", Some("show version"))).status,
        AuthorStatus::PassAdd
    );
    // Service grants: PASS_REPL with configured AVs, protocol must match.
    let mut ppp = req("op", "ppp", None);
    ppp.args.push("protocol=ip".parse().unwrap());
    let r = p.authorize(core, &ppp);
    assert_eq!(r.status, AuthorStatus::PassRepl);
    assert_eq!(
        r.args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ["addr=10.1.1.1", "inacl*101"]
    );
    let mut ipx = req("op", "ppp", None);
    ipx.args.push("protocol=ipx".parse().unwrap());
    assert_eq!(p.authorize(core, &ipx).status, AuthorStatus::Fail);
    let exec = p.authorize(core, &req("op", "shell", None));
    assert_eq!(exec.args[0].to_string(), "priv-lvl=7");
    assert_eq!(p.authorize(core, &AaaRequest::new("op", vec![])).status, AuthorStatus::Fail);
}

fn errors(src: &str) -> Vec<ConfigError> {
    parse("t.toml", src, Path::new(".")).unwrap_err().0
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
