//! The read-only status page on the metrics address (`GET /`), like
//! HAProxy's stats page: VRRP, the data plane, each service with its real
//! servers (state, weights, connections, rates, bytes, checks), the recent
//! state changes and the last reload. Built from the same [`StatusReport`]
//! the control socket answers, by a pure function; every string is escaped
//! (names come from the file, check results may quote a peer).

use std::fmt::Write;

use tacvs_config::html::{Cell, esc, num, page, table, text};

use super::protocol::{RealStatus, ServiceStatus, StatusReport};
use super::render::{bytes, render_dr};

/// Seconds the page waits before reloading itself.
pub const REFRESH_S: u32 = 5;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |m| format!("{m:.2}"))
}

fn ago(s: f64) -> String {
    match s {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

fn real_row(svc: &ServiceStatus, r: &RealStatus) -> (String, String, Vec<Cell>) {
    let dr = svc.mode == "dr";
    let class = if r.state == "up" && r.weight == 0 { "drained" } else { r.state.as_str() };
    let mut cells = vec![
        text("server", &r.address),
        text("state", &r.state),
        num("weight", r.weight),
        num("config-weight", r.config_weight),
    ];
    if dr {
        cells.push(num("total", r.total));
        cells.push(num("cps", format!("{:.1}", r.cps)));
        cells.push(num("packets", r.packets));
        cells.push(num("bytes-in", bytes(r.bytes_in)));
    } else {
        cells.push(num("active", r.active));
        cells.push(num("total", r.total));
        cells.push(num("cps", format!("{:.1}", r.cps)));
        cells.push(num("bytes-in", bytes(r.bytes_in)));
        cells.push(num("bytes-out", bytes(r.bytes_out)));
        cells.push(num("connect-failures", r.connect_failures));
    }
    cells.push(text("check", &r.last_check));
    cells.push(num("check-ms", ms(r.last_check_ms)));
    cells.push(num("state-for", ago(r.state_for_s)));
    if dr {
        cells.push(text("mac", if r.mac.is_empty() { "-" } else { &r.mac }));
    }
    (r.address.clone(), class.to_owned(), cells)
}

/// The page for `r`, titled with the director's `name`.
pub fn render_html(name: &str, version: &str, r: &StatusReport) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "<p class=\"meta\">tacvs {} director</p>", esc(version));
    if let Some(v) = &r.vrrp {
        b.push_str("<h2>VRRP</h2>\n");
        let row = vec![
            num("vrid", v.vrid),
            text("interface", &v.interface),
            text("state", &v.state),
            num("priority", v.priority),
            num("config-priority", v.config_priority),
            text("master", if v.master.is_empty() { "-" } else { &v.master }),
            text("vips", v.vips.join(" ")),
            num("state-for", ago(v.state_for_s)),
            num("transitions", v.transitions),
            text("reason", &v.reason),
        ];
        b.push_str(&table(
            "vrrp",
            &[
                "VRID",
                "Interface",
                "State",
                "Priority",
                "Configured",
                "Master",
                "VIPs",
                "In state",
                "Changes",
                "Last reason",
            ],
            &[(v.vrid.to_string(), v.state.to_lowercase(), row)],
        ));
    }
    if let Some(d) = &r.dr {
        let _ = writeln!(b, "<h2>Direct routing</h2>\n<p>{}</p>", esc(render_dr(d).trim_end()));
    }
    for svc in &r.services {
        let up = svc.reals.iter().filter(|r| r.state == "up").count();
        let _ = writeln!(
            b,
            "<h2 class=\"service\" data-service=\"{}\">Service {} — {} ({}, {}), {} of {} real \
                servers up, {} device connections open</h2>",
            esc(&svc.name),
            esc(&svc.name),
            esc(&svc.listen),
            esc(&svc.scheduler),
            if svc.mode == "dr" { "direct routing" } else { "proxy" },
            up,
            svc.reals.len(),
            svc.active,
        );
        let titles: &[&str] = if svc.mode == "dr" {
            &[
                "Real server",
                "State",
                "Weight",
                "Configured",
                "Flows",
                "FPS",
                "Packets in",
                "Bytes in",
                "Last check",
                "Check ms",
                "In state",
                "MAC",
            ]
        } else {
            &[
                "Real server",
                "State",
                "Weight",
                "Configured",
                "Active",
                "Total",
                "CPS",
                "Bytes in",
                "Bytes out",
                "Connect failures",
                "Last check",
                "Check ms",
                "In state",
            ]
        };
        let rows: Vec<_> = svc.reals.iter().map(|r| real_row(svc, r)).collect();
        b.push_str(&table(&format!("service-{}", svc.name), titles, &rows));
    }
    b.push_str("<h2>Recent state changes</h2>\n");
    let rows: Vec<_> = r
        .changes
        .iter()
        .rev()
        .map(|c| {
            (
                c.subject.clone(),
                c.to.to_lowercase(),
                vec![
                    num("ago", ago(c.seconds_ago)),
                    text("subject", &c.subject),
                    text("from", if c.from.is_empty() { "-" } else { &c.from }),
                    text("state", &c.to),
                    text("reason", &c.reason),
                ],
            )
        })
        .collect();
    b.push_str(&table("changes", &["Ago", "What", "From", "To", "Why"], &rows));
    if let Some(l) = &r.last_reload {
        let what = if l.applied { "applied" } else { "NOT applied" };
        let _ = writeln!(
            b,
            "<p id=\"reload\">Last reload {} ago, {what}: {}</p>",
            ago(l.seconds_ago),
            esc(&l.message)
        );
    } else {
        b.push_str("<p id=\"reload\">No reload since start.</p>\n");
    }
    page(&format!("tacvs director {name}"), REFRESH_S, &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{StateChange, VrrpStatus};

    fn real(addr: &str, state: &str) -> RealStatus {
        RealStatus {
            address: addr.into(),
            state: state.into(),
            weight: 1,
            config_weight: 2,
            active: 3,
            total: 1234,
            cps: 12.5,
            connect_failures: 1,
            last_check: "failed: answered <script>alert(1)</script>".into(),
            last_check_ms: Some(0.42),
            state_for_s: 30.0,
            bytes_in: 2_500_000,
            packets: 0,
            mac: String::new(),
            bytes_out: 99,
        }
    }

    fn report() -> StatusReport {
        StatusReport {
            services: vec![ServiceStatus {
                name: "tac<acs>".into(),
                listen: "10.0.0.1:49".into(),
                scheduler: "wlc".into(),
                mode: "proxy".into(),
                active: 3,
                reals: vec![real("10.0.0.2:49", "up"), real("10.0.0.3:49", "down")],
            }],
            vrrp: Some(VrrpStatus {
                interface: "eth0".into(),
                vrid: 51,
                state: "MASTER".into(),
                priority: 100,
                config_priority: 110,
                vips: vec!["10.0.0.1".into()],
                source: "10.0.0.5".into(),
                master: "10.0.0.5".into(),
                state_for_s: 5.0,
                transitions: 2,
                reason: "no advertisement from the master".into(),
            }),
            dr: None,
            last_reload: None,
            changes: vec![StateChange {
                seconds_ago: 3.0,
                unix_time: 0,
                subject: "real server 10.0.0.3:49 in tac<acs>".into(),
                from: "up".into(),
                to: "down".into(),
                reason: "connect: <refused>".into(),
            }],
        }
    }

    #[test]
    fn every_string_from_a_peer_or_the_file_is_escaped() {
        let h = render_html("d1\"><b>", "0.1.0", &report());
        for raw in ["<script>", "<acs>", "<refused>", "\"><b>"] {
            assert!(!h.contains(raw), "{raw} unescaped:\n{h}");
        }
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(!h.contains("<script"), "no script at all");
    }

    #[test]
    fn the_numbers_are_in_their_cells() {
        let h = render_html("d1", "0.1.0", &report());
        assert!(
            h.contains(
                "<tr data-key=\"10.0.0.2:49\" class=\"up\"><td \
            class=\"server\">10.0.0.2:49</td><td class=\"state\">up</td><td class=\"weight \
            num\">1</td><td class=\"config-weight num\">2</td><td class=\"active \
            num\">3</td><td class=\"total num\">1234</td><td class=\"cps num\">12.5</td><td \
            class=\"bytes-in num\">2500K</td>"
            ),
            "{h}"
        );
        assert!(h.contains("<tr data-key=\"10.0.0.3:49\" class=\"down\">"), "{h}");
        assert!(h.contains("1 of 2 real servers up, 3 device connections open"), "{h}");
        assert!(
            h.contains("<td class=\"state\">MASTER</td>") && h.contains("class=\"master\""),
            "{h}"
        );
        assert!(h.contains("<td class=\"check-ms num\">0.42</td>"), "{h}");
        assert!(
            h.contains(
                "<td class=\"from\">up</td><td class=\"state\">down</td><td \
            class=\"reason\">connect: &lt;refused&gt;</td>"
            ),
            "{h}"
        );
        assert!(h.contains("No reload since start."), "{h}");
    }
}
