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

use crate::topo::{DirectorSettings, FLEET, KEY, Role, VIP, VRID};

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

/// Real server `i`: PROXY v2 from the directors only, the fleet's and the
/// directors' key, `alice` (netops) and the health-check account.
/// With `pki` (the lab's certificates), the listener speaks TLS only.
pub fn server(i: u8, pki: Option<&Path>) -> String {
    let r = Role::Server(i);
    let directors = || strings((1..=2).map(|d| format!("{}/32", Role::Director(d).addr())));
    let mut listen = table([
        ("address", format!("{}:49", r.addr()).into()),
        ("proxy_protocol", "required".into()),
        ("trusted_proxies", directors()),
    ]);
    if let (Some(p), Value::Table(l)) = (pki, &mut listen) {
        let f = |name: String| Value::String(p.join(name).display().to_string());
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
    let doc = table([
        (
            "server",
            table([
                ("name", r.short().into()),
                ("listen", Value::Array(vec![listen])),
            ]),
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

/// Director `i` (priority 150 for d1, 100 for d2) in front of `servers`
/// real servers, holding the VIP with VRRP.
pub fn director(
    i: u8,
    servers: u8,
    d: &DirectorSettings,
    control_socket: &Path,
    notify: &Path,
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
    let doc = table([
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
        (
            "service",
            Value::Array(vec![table([
                ("name", "tacacs".into()),
                ("listen", format!("{VIP}:49").into()),
                ("scheduler", d.scheduler.clone().into()),
                ("proxy_protocol", "v2".into()),
                ("connect_timeout", "300ms".into()),
                ("connect_attempts", 3.into()),
                ("idle_timeout", "2m".into()),
                ("health", health),
                ("real", Value::Array(reals)),
            ])]),
        ),
    ]);
    render(&format!("director {}", r.short()), &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_parses_with_the_real_parsers() {
        let dir = std::env::temp_dir().join(format!("tacvs-lab-configs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = server(2, None);
        let p = tacvs_policy_check(&text, &dir);
        assert_eq!(p, Ok(()), "{text}");
        assert!(text.contains("\"10.49.1.2:49\""), "{text}");
        let d = DirectorSettings { scheduler: "mh".into(), ..DirectorSettings::default() };
        let text = director(2, 3, &d, &dir.join("d2.sock"), &dir.join("notify.sh"), None);
        let f = tacvs_director::config::parse("d2.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.services[0].reals.len(), 3);
        let v = f.vrrp.unwrap();
        assert_eq!((v.priority, v.vrid, v.preempt), (100, VRID, true));
        assert_eq!(f.services[0].health.interval.get(), d.health_interval);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The server's own validation (`tacvs check`).
    fn tacvs_policy_check(text: &str, dir: &Path) -> Result<(), String> {
        tacvs_policy::parse("server.toml", text, dir).map(|_| ()).map_err(|e| e.to_string())
    }
}
