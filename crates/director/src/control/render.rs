//! The status table people read: like `ipvsadm -L -n --stats` (one line per
//! virtual service, one per real server under it), VRRP first. Every value has
//! a column title above it, columns are as wide as their widest entry, and a
//! footnote explains the marks.

use std::fmt::Write;

use super::protocol::{DrStatus, RealStatus, ServiceStatus, StatusReport, VrrpStatus};

/// Column titles of a real server's line; numbers are right-aligned.
const TITLES: Layout = [
    ("RemoteAddress:Port", Align::Left),
    ("State", Align::Left),
    ("Weight", Align::Right),
    ("ActConn", Align::Right),
    ("TotConn", Align::Right),
    ("CPS", Align::Right),
    ("InBytes", Align::Right),
    ("OutBytes", Align::Right),
    ("CheckMs", Align::Right),
    ("LastCheck", Align::Left),
];

/// A direct-routing service's columns: the data plane sees only the
/// devices' half (`Flows`: flows placed on the server, `FPS`: new flows per
/// second, `InPkts`/`InBytes`: what it forwarded), and each server's MAC.
const DR_TITLES: Layout = [
    ("RemoteAddress:Port", Align::Left),
    ("State", Align::Left),
    ("Weight", Align::Right),
    ("Flows", Align::Right),
    ("FPS", Align::Right),
    ("InPkts", Align::Right),
    ("InBytes", Align::Right),
    ("CheckMs", Align::Right),
    ("MAC", Align::Left),
    ("LastCheck", Align::Left),
];

type Layout = [(&'static str, Align); 10];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A byte count as `ipvsadm --stats` shows it: exact below 100000, then in
/// K, M, G, T (powers of 1000).
pub fn bytes(n: u64) -> String {
    if n < 100_000 {
        return n.to_string();
    }
    let mut v = n as f64;
    for unit in ["K", "M", "G", "T"] {
        v /= 1000.0;
        if v < 100_000.0 || unit == "T" {
            return format!("{v:.0}{unit}");
        }
    }
    unreachable!("the loop returns at T")
}

fn is_dr(svc: &ServiceStatus) -> bool {
    svc.mode == "dr"
}

fn cells(r: &RealStatus, dr: bool) -> [String; 10] {
    let weight =
        if r.weight != r.config_weight { format!("{}*", r.weight) } else { r.weight.to_string() };
    let check_ms = r.last_check_ms.map_or_else(|| "-".into(), |m| format!("{m:.2}"));
    if dr {
        return [
            r.address.clone(),
            r.state.clone(),
            weight,
            r.total.to_string(),
            format!("{:.1}", r.cps),
            r.packets.to_string(),
            bytes(r.bytes_in),
            check_ms,
            if r.mac.is_empty() { "-".into() } else { r.mac.clone() },
            r.last_check.clone(),
        ];
    }
    [
        r.address.clone(),
        r.state.clone(),
        weight,
        r.active.to_string(),
        r.total.to_string(),
        format!("{:.1}", r.cps),
        bytes(r.bytes_in),
        bytes(r.bytes_out),
        check_ms,
        // Free text, last: it may be long (a failure's reason).
        r.last_check.clone(),
    ]
}

fn line(out: &mut String, row: &[String], widths: &[usize; 10], layout: &Layout) {
    out.push_str("  -> ");
    for (i, ((cell, w), (_, align))) in row.iter().zip(widths).zip(layout).enumerate() {
        if i > 0 {
            out.push_str("  ");
        }
        let last = i + 1 == layout.len();
        match align {
            Align::Right => {
                let _ = write!(out, "{cell:>w$}");
            }
            Align::Left if last => out.push_str(cell),
            Align::Left => {
                let _ = write!(out, "{cell:<w$}");
            }
        }
    }
    out.push('\n');
}

/// The whole report for people: VRRP, services, and how the last reload went.
pub fn render_report(r: &StatusReport) -> String {
    let mut s = String::new();
    if let Some(d) = &r.dr {
        s.push_str(&render_dr(d));
    }
    s.push_str(&render(&r.services, r.vrrp.as_ref()));
    if let Some(l) = &r.last_reload {
        let what = if l.applied { "applied" } else { "NOT applied" };
        let _ = writeln!(s, "last reload {:.1} s ago, {what}: {}", l.seconds_ago, l.message);
    }
    s
}

/// The DR data plane's line: where, how, whether active, and the counters
/// that are not zero.
pub fn render_dr(d: &DrStatus) -> String {
    let c = &d.counters;
    let mut notes = Vec::new();
    for (n, what) in [
        (c.arp_replies, "ARP requests answered"),
        (c.no_server, "new flows dropped with no server available"),
        (c.fragments, "fragments to a VIP dropped"),
        (c.not_tcp, "non-TCP packets to a VIP passed"),
        (c.inactive, "VIP packets passed while inactive"),
        (c.other_mac, "VIP packets for another MAC passed"),
        (c.stale_flows, "flows of removed servers placed again"),
        (c.flow_insert_failed, "flow-table insertions failed"),
    ] {
        if n > 0 {
            notes.push(format!("{n} {what}"));
        }
    }
    format!(
        "DR data plane on {} ({} XDP), {}, flow table {} entries{}{}\n",
        d.interface,
        d.attach,
        if d.active { "active" } else { "inactive (backup: packets pass to the kernel)" },
        d.flow_entries,
        if notes.is_empty() { "" } else { "; " },
        notes.join(", ")
    )
}

/// The status of every service (and VRRP when configured), for people.
pub fn render(services: &[ServiceStatus], vrrp: Option<&VrrpStatus>) -> String {
    let mut s = String::new();
    if let Some(v) = vrrp {
        let _ = writeln!(
            s,
            "VRRP vrid {} on {} ({}): {}, priority {} (configured {}), master {}, {:.1} s in \
                this state, {} changes, last: {}\n  VIPs {}",
            v.vrid,
            v.interface,
            v.source,
            v.state,
            v.priority,
            v.config_priority,
            if v.master.is_empty() { "-" } else { &v.master },
            v.state_for_s,
            v.transitions,
            v.reason,
            v.vips.join(" ")
        );
    }
    let rows: Vec<Vec<[String; 10]>> = services
        .iter()
        .map(|svc| svc.reals.iter().map(|r| cells(r, is_dr(svc))).collect())
        .collect();
    // One set of widths per layout, so all tables of a kind line up.
    let widths = |dr: bool| {
        let layout = if dr { &DR_TITLES } else { &TITLES };
        let mut widths = layout.map(|(t, _)| t.chars().count());
        for (_, rows) in services.iter().zip(&rows).filter(|(svc, _)| is_dr(svc) == dr) {
            for row in rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        widths
    };
    let (proxy_widths, dr_widths) = (widths(false), widths(true));
    let mut marked = false;
    for (svc, rows) in services.iter().zip(&rows) {
        let (conns, bin, bout) = svc
            .reals
            .iter()
            .fold((0, 0, 0), |(c, i, o), r| (c + r.total, i + r.bytes_in, o + r.bytes_out));
        let (layout, widths) =
            if is_dr(svc) { (&DR_TITLES, &dr_widths) } else { (&TITLES, &proxy_widths) };
        if is_dr(svc) {
            let packets: u64 = svc.reals.iter().map(|r| r.packets).sum();
            let _ = writeln!(
                s,
                "TCP  {} {} ({}) direct routing: {} flows, {} packets, {} bytes in (replies go \
                    from the servers straight to the devices)",
                svc.listen,
                svc.scheduler,
                svc.name,
                conns,
                packets,
                bytes(bin)
            );
        } else {
            let _ = writeln!(
                s,
                "TCP  {} {} ({}): {} active, {} connections, {} bytes in, {} bytes out",
                svc.listen,
                svc.scheduler,
                svc.name,
                svc.active,
                conns,
                bytes(bin),
                bytes(bout)
            );
        }
        let titles = layout.map(|(t, _)| t.to_owned());
        line(&mut s, &titles, widths, layout);
        for row in rows {
            line(&mut s, row, widths, layout);
        }
        marked |= svc.reals.iter().any(|r| r.weight != r.config_weight);
    }
    if marked {
        s.push_str(
            "  * weight in force differs from the configured one: set with `tacvs director \
                drain` or `weight` (`tacvs director enable ADDRESS` restores it), or 0 while a \
                failed server is inhibited (on_down = \"inhibit\")\n",
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(address: &str, state: &str, weight: u32, last: &str) -> RealStatus {
        RealStatus {
            address: address.into(),
            state: state.into(),
            weight,
            config_weight: 1,
            active: 2,
            total: 1234,
            cps: 12.5,
            connect_failures: 0,
            last_check: last.into(),
            last_check_ms: Some(0.42),
            state_for_s: 3.0,
            bytes_in: 2_500_000,
            bytes_out: 999,
            packets: 0,
            mac: String::new(),
        }
    }

    fn table() -> String {
        let svc = ServiceStatus {
            name: "tacacs".into(),
            listen: "10.49.0.100:49".into(),
            scheduler: "wlc".into(),
            mode: "proxy".into(),
            active: 4,
            reals: vec![
                real("10.49.1.1:49", "up", 1, "ok"),
                real("[2001:db8::10]:49", "misconfigured", 0, "misconfigured: probe user got FAIL"),
            ],
        };
        render(&[svc], None)
    }

    #[test]
    fn every_value_has_its_title_above_it() {
        let t = table();
        let lines: Vec<&str> = t.lines().collect();
        let (head, up, mis) = (lines[1], lines[2], lines[3]);
        let titles: Vec<&str> = head.split_whitespace().skip(1).collect();
        assert_eq!(titles.len(), TITLES.len(), "{t}");
        let values: Vec<&str> = up.split_whitespace().skip(1).collect();
        assert_eq!(values.len(), titles.len(), "as many values as titles:\n{t}");
        // Right-aligned numbers end under the end of their title; text starts
        // under its start, whatever the state's length ("misconfigured").
        let end = |title: &str| head.find(title).unwrap() + title.len();
        for (title, v_up, v_mis) in [
            ("Weight", "1", "0*"),
            ("ActConn", "2", "2"),
            ("TotConn", "1234", "1234"),
            ("CPS", "12.5", "12.5"),
            ("InBytes", "2500K", "2500K"),
            ("OutBytes", "999", "999"),
            ("CheckMs", "0.42", "0.42"),
        ] {
            let e = end(title);
            for (row, v) in [(up, v_up), (mis, v_mis)] {
                assert_eq!(&row[e - v.len()..e], v, "{title}:\n{t}");
                assert_eq!(&row[e - v.len() - 1..e - v.len()], " ", "{title}:\n{t}");
            }
        }
        for (title, v_up, v_mis) in
            [("State", "up ", "misconfigured "), ("LastCheck", "ok", "misconfigured: probe")]
        {
            let at = head.find(title).unwrap();
            assert!(up[at..].starts_with(v_up), "{title}:\n{t}");
            assert!(mis[at..].starts_with(v_mis), "{title}:\n{t}");
        }
        assert!(t.contains("2468 connections, 5000K bytes in, 1998 bytes out"), "{t}");
    }

    #[test]
    fn a_changed_weight_is_marked_and_explained() {
        let t = table();
        assert!(t.contains("0*"), "{t}");
        assert!(t.lines().last().unwrap().starts_with("  * weight in force differs"), "{t}");
        let svc = ServiceStatus {
            name: "s".into(),
            listen: "1.2.3.4:49".into(),
            scheduler: "rr".into(),
            mode: "proxy".into(),
            active: 0,
            reals: vec![real("1.2.3.5:49", "up", 1, "ok")],
        };
        assert!(!render(&[svc], None).contains('*'));
    }

    #[test]
    fn direct_routing_services_have_their_own_columns() {
        let mut r = real("10.49.1.1:49", "up", 1, "ok");
        r.packets = 4321;
        r.mac = "02:00:00:00:01:01".into();
        let mut gone = real("10.49.1.2:49", "down", 1, "failed: connect: refused");
        gone.mac = "- (no MAC known yet)".into();
        let svc = ServiceStatus {
            name: "tacacs".into(),
            listen: "10.49.0.100:49".into(),
            scheduler: "mh".into(),
            mode: "dr".into(),
            active: 0,
            reals: vec![r, gone],
        };
        let report = StatusReport {
            services: vec![svc],
            vrrp: None,
            dr: Some(DrStatus {
                interface: "eth0".into(),
                attach: "native".into(),
                active: true,
                flow_entries: 262_144,
                counters: super::super::protocol::DrCounters {
                    arp_replies: 3,
                    no_server: 2,
                    ..Default::default()
                },
            }),
            last_reload: None,
            changes: Vec::new(),
        };
        let t = render_report(&report);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "DR data plane on eth0 (native XDP), active, flow table 262144 entries; 3 ARP \
                requests answered, 2 new flows dropped with no server available"
        );
        assert!(
            lines[1].starts_with(
                "TCP  10.49.0.100:49 mh (tacacs) direct routing: 2468 \
            flows, 4321 packets, 5000K bytes in"
            ),
            "{t}"
        );
        let head = lines[2];
        let titles: Vec<&str> = head.split_whitespace().skip(1).collect();
        assert_eq!(titles, DR_TITLES.map(|(t, _)| t));
        let end = |title: &str| head.find(title).unwrap() + title.len();
        for (title, v) in
            [("Flows", "1234"), ("FPS", "12.5"), ("InPkts", "4321"), ("InBytes", "2500K")]
        {
            assert_eq!(&lines[3][end(title) - v.len()..end(title)], v, "{title}:\n{t}");
        }
        let mac = head.find("MAC").unwrap();
        assert!(lines[3][mac..].starts_with("02:00:00:00:01:01 "), "{t}");
        assert!(lines[4][mac..].starts_with("- (no MAC known yet)"), "{t}");
    }

    #[test]
    fn bytes_read_like_ipvsadm() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(99_999), "99999");
        assert_eq!(bytes(100_000), "100K");
        assert_eq!(bytes(2_500_000), "2500K");
        assert_eq!(bytes(123_456_789), "123M");
        assert_eq!(bytes(1_234_567_890_123), "1235G");
    }
}
