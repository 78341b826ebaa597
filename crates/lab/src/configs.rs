//! The configuration files the lab writes for its servers and directors,
//! built as values (TOML tables) and serialized, never by filling text
//! templates: a value cannot be half-substituted or quoted wrongly, and the
//! tests parse what is written with the real parsers.
//!
//! When `tacvs-policy`'s `ServerFile` and `tacvs-director`'s `DirectorFile`
//! implement `Serialize`, each function here becomes the construction of
//! that struct; nothing else changes.

use std::path::Path;

use toml::Value;

use crate::topo::{DirectorSettings, FLEET, Front, KEY, Role, VIP, VRID};

/// A table from `(key, value)` pairs, in order.
fn table<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Table(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn duration(d: std::time::Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

/// The file as text, with a first line saying who wrote it.
fn render(what: &str, doc: &Value) -> String {
    let body = toml::to_string(doc).expect("a table of plain values serializes");
    format!("# Written by `tacvs lab`: {what}.\n{body}")
}

/// Real server `i`: the fleet's and the directors' key, `alice` (netops)
/// and the health-check account. Behind a front that sends PROXY headers it
/// requires them from the directors; otherwise it takes plain connections
/// (HAProxy without PROXY, NAT and DR), and in DR it also listens on the VIP
/// it holds on `lo`. With `pki` (the lab's certificates), every listener
/// speaks TLS only.
pub fn server(i: u8, front: Front, pki: Option<&Path>) -> String {
    let r = Role::Server(i);
    let directors = || strings((1..=2).map(|d| format!("{}/32", Role::Director(d).addr())));
    let own = format!("{}:49", r.addr());
    let mut listen = if front.sends_proxy() {
        vec![table([
            ("address", own.into()),
            ("proxy_protocol", "required".into()),
            ("trusted_proxies", directors()),
        ])]
    } else if front == Front::Dr {
        vec![table([("address", own.into())]), table([("address", format!("{VIP}:49").into())])]
    } else {
        vec![table([("address", own.into())])]
    };
    if let Some(p) = pki {
        let f = |name: String| Value::String(p.join(name).display().to_string());
        for l in &mut listen {
            if let Value::Table(l) = l {
                l.insert(
                    "tls".into(),
                    table([
                        ("certificate", f(format!("{}.pem", r.short()))),
                        ("key", f(format!("{}.key", r.short()))),
                        ("client_ca", f("ca.pem".into())),
                        ("crls", Value::Array(vec![f("ca.crl".into())])),
                        ("max_handshakes", 4096.into()),
                        ("max_handshakes_per_source", 64.into()),
                    ]),
                );
            }
        }
    }
    let doc = table([
        (
            "server",
            table([("name", r.short().into()), ("listen", Value::Array(listen))]),
        ),
        (
            "limits",
            table([
                ("max_connections", 16_000.into()),
                ("max_connections_per_source", 4096.into()),
                ("idle_timeout", "2m".into()),
                ("read_timeout", "10s".into()),
            ]),
        ),
        (
            "authentication",
            table([
                ("hash_workers", 1.into()),
                ("cache", table([("enabled", true.into()), ("ttl", "5m".into())])),
            ]),
        ),
        ("accounting", table([("directory", "./acct".into())])),
        (
            "device_group",
            Value::Array(vec![
                table([
                    ("name", "fleet".into()),
                    ("prefixes", strings([FLEET.to_owned()])),
                    ("keys", strings([KEY.to_owned()])),
                ]),
                table([
                    ("name", "directors".into()),
                    ("prefixes", directors()),
                    ("keys", strings([KEY.to_owned()])),
                ]),
            ]),
        ),
        (
            "group",
            Value::Array(vec![
                table([
                    ("name", "netops".into()),
                    ("priv_lvl", 15.into()),
                    ("default_command_action", "permit".into()),
                    ("service", Value::Array(vec![table([("name", "shell".into())])])),
                ]),
                table([
                    ("name", "readonly".into()),
                    ("priv_lvl", 1.into()),
                    ("default_command_action", "deny".into()),
                    ("service", Value::Array(vec![table([("name", "shell".into())])])),
                ]),
            ]),
        ),
        (
            "user",
            Value::Array(vec![
                table([
                    // alice-pass
                    ("name", "alice".into()),
                    (
                        "password",
                        "$6$rounds=5000$.5GPWs6HJXcaibPh$6LOWvoeFXe0gpwRur2NzR7Tm8mAW.iB0/P6c47g6fe..bS42RIpsyyAt36Fxx8sN3Y8CQt4LI2qxjJHiOMNis1".into(),
                    ),
                    ("groups", strings(["netops".to_owned()])),
                ]),
                table([
                    ("name", "tacvs-healthcheck".into()),
                    ("groups", strings(["readonly".to_owned()])),
                ]),
            ]),
        ),
    ]);
    render(&format!("real server {}", r.short()), &doc)
}

/// The scheduler a front's directors use: the scenario's, or for DR (where
/// only a hash table is meaningful) `mh` when the scenario left the default.
pub fn scheduler(d: &DirectorSettings, front: Front) -> String {
    match front {
        Front::Dr if !matches!(d.scheduler.as_str(), "mh" | "sh") => "mh".into(),
        _ => d.scheduler.clone(),
    }
}

/// Director `i` (priority 150 for d1, 100 for d2) in front of `servers`
/// real servers, holding the VIP with VRRP: proxy mode, or direct routing
/// (`front` [`Front::Dr`]: the VIP is announced by the data plane, not held).
pub fn director(
    i: u8,
    servers: u8,
    d: &DirectorSettings,
    control_socket: &Path,
    notify: &Path,
    front: Front,
    pki: Option<&Path>,
) -> String {
    let r = Role::Director(i);
    let mut health = table([
        ("check", "tacacs".into()),
        ("interval", duration(d.health_interval)),
        ("timeout", duration(d.health_timeout)),
        ("rise", i64::from(d.rise).into()),
        ("fall", i64::from(d.fall).into()),
        ("key", KEY.into()),
        ("probe", "authorize".into()),
        ("user", "tacvs-healthcheck".into()),
    ]);
    if let (Some(p), Value::Table(h)) = (pki, &mut health) {
        let f = |name: &str| Value::String(p.join(name).display().to_string());
        h.insert(
            "tls".into(),
            table([
                ("ca", f("ca.pem")),
                ("certificate", f("director.pem")),
                ("key", f("director.key")),
            ]),
        );
    }
    let reals = (1..=servers)
        .map(|s| table([("address", format!("{}:49", Role::Server(s).addr()).into())]))
        .collect();
    let service = if front == Front::Dr {
        table([
            ("name", "tacacs".into()),
            ("listen", format!("{VIP}:49").into()),
            ("mode", "dr".into()),
            ("scheduler", scheduler(d, front).into()),
            ("health", health),
            ("real", Value::Array(reals)),
        ])
    } else {
        table([
            ("name", "tacacs".into()),
            ("listen", format!("{VIP}:49").into()),
            ("scheduler", d.scheduler.clone().into()),
            ("proxy_protocol", "v2".into()),
            ("connect_timeout", "300ms".into()),
            ("connect_attempts", 3.into()),
            ("idle_timeout", "2m".into()),
            ("health", health),
            ("real", Value::Array(reals)),
        ])
    };
    let mut doc = table([
        (
            "director",
            table([
                ("name", r.short().into()),
                ("control_socket", control_socket.display().to_string().into()),
            ]),
        ),
        (
            "vrrp",
            table([
                ("interface", "eth0".into()),
                ("vrid", i64::from(VRID).into()),
                ("priority", (if i == 1 { 150 } else { 100 }).into()),
                ("advert_interval", duration(d.advert_interval)),
                ("preempt", d.preempt.into()),
                ("vips", strings([format!("{VIP}/32")])),
                ("notify", notify.display().to_string().into()),
                ("track_penalty", 60.into()),
            ]),
        ),
        ("service", Value::Array(vec![service])),
    ]);
    if front == Front::Dr
        && let Value::Table(t) = &mut doc
    {
        t.insert("dr".into(), table([("attach", d.attach.clone().into())]));
    }
    render(&format!("director {}", r.short()), &doc)
}

/// HAProxy on d1 (`mode tcp`, HAProxy's default `roundrobin`, as the case
/// study wrote it), with TCP health checks on the lab's timers;
/// `send-proxy-v2` (and PROXY on its checks) when `proxy_v2`. HAProxy's own
/// format, not TOML: built from the same values, one directive a line.
pub fn haproxy(servers: u8, d: &DirectorSettings, proxy_v2: bool) -> String {
    let ms = |t: std::time::Duration| format!("{}ms", t.as_millis());
    let mut lines = vec![
        "# Written by `tacvs lab`: HAProxy front on d1.".to_owned(),
        "global".into(),
        // 2 × maxconn descriptors stay under the lab's open-file limit.
        "    maxconn 8000".into(),
        "defaults".into(),
        "    mode tcp".into(),
        "    timeout connect 300ms".into(),
        "    timeout client 2m".into(),
        "    timeout server 2m".into(),
        "    retries 2".into(),
        "    option redispatch".into(),
        "listen tacacs".into(),
        format!("    bind {VIP}:49"),
        "    balance roundrobin".into(),
    ];
    for i in 1..=servers {
        let r = Role::Server(i);
        let mut l = format!(
            "    server {} {}:49 check inter {} fall {} rise {}",
            r.short(),
            r.addr(),
            ms(d.health_interval),
            d.fall,
            d.rise
        );
        if proxy_v2 {
            l.push_str(" send-proxy-v2 check-send-proxy");
        }
        lines.push(l);
    }
    lines.join("\n") + "\n"
}

/// The NAT front's nftables ruleset on d1: the case study's
/// `iptables -t nat -A PREROUTING -p tcp --dport 49 -j DNAT --to FIRST-LAST`
/// in nftables' words (DNAT to the range of real servers; conntrack keeps
/// each connection on the server it was given and undoes the NAT on the
/// replies, which the servers route back through d1).
pub fn nft(servers: u8) -> String {
    let last = Role::Server(servers).addr();
    let first = Role::Server(1).addr();
    format!(
        "# Written by `tacvs lab`: NAT front on d1.\n\
         table ip tacvs_lab_nat {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tip daddr {VIP} tcp dport 49 dnat to {first}-{last}\n\
         \t}}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_parses_with_the_real_parsers() {
        let dir = std::env::temp_dir().join(format!("tacvs-lab-configs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for front in [Front::Proxy, Front::Dr, Front::HaproxyTcp, Front::Nat] {
            let text = server(2, front, None);
            let p = tacvs_policy_check(&text, &dir);
            assert_eq!(p, Ok(()), "{text}");
            assert!(text.contains("\"10.49.1.2:49\""), "{text}");
            assert_eq!(text.contains("required"), front.sends_proxy(), "{text}");
            assert_eq!(text.contains("\"10.49.0.100:49\""), front == Front::Dr, "{text}");
        }
        let d = DirectorSettings { scheduler: "mh".into(), ..DirectorSettings::default() };
        let text =
            director(2, 3, &d, &dir.join("d2.sock"), &dir.join("notify.sh"), Front::Proxy, None);
        let f = tacvs_director::config::parse("d2.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.services[0].reals.len(), 3);
        let v = f.vrrp.unwrap();
        assert_eq!((v.priority, v.vrid, v.preempt), (100, VRID, true));
        assert_eq!(f.services[0].health.interval.get(), d.health_interval);
        // DR: the default scheduler becomes mh, the attach mode is written.
        let d = DirectorSettings { attach: "generic".into(), ..DirectorSettings::default() };
        let text =
            director(1, 3, &d, &dir.join("d1.sock"), &dir.join("notify.sh"), Front::Dr, None);
        let f = tacvs_director::config::parse("d1.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        let s = &f.services[0];
        assert_eq!(s.mode, tacvs_director::config::Mode::Dr);
        assert_eq!(s.scheduler.name(), "mh");
        assert_eq!(f.dr_interface(), Some("eth0"));
        assert_eq!(f.dr.unwrap().attach, tacvs_director::config::Attach::Generic);
        let h = haproxy(3, &DirectorSettings::default(), true);
        assert!(
            h.contains("bind 10.49.0.100:49")
                && h.contains(
                    "server s3 10.49.1.3:49 check \
            inter 200ms fall 2 rise 2 send-proxy-v2 check-send-proxy"
                ),
            "{h}"
        );
        assert!(nft(3).contains("dnat to 10.49.1.1-10.49.1.3"));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The server's own validation (`tacvs check`).
    fn tacvs_policy_check(text: &str, dir: &Path) -> Result<(), String> {
        tacvs_policy::parse("server.toml", text, dir).map(|_| ()).map_err(|e| e.to_string())
    }
}
