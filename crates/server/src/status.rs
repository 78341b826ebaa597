//! The server's status page on its metrics address (`GET /`): listeners,
//! connections (with the busiest sources), requests by type and result, the
//! accounting journal, lockouts, the last reload and the version.
//!
//! [`Shared::status`] takes a typed [`ServerStatus`] from the running state
//! (not from the metrics); [`render_html`] is pure and escapes every string
//! (user names in lockouts come from devices, listener settings and reload
//! errors from the file).

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;
use tacvs_config::html::{esc, num, page, table, text};

use crate::Shared;
use crate::control::{LockoutView, Reply, Request};
use crate::journal::JournalView;

/// Seconds the page waits before reloading itself.
pub const REFRESH_S: u32 = 5;
/// How many sources the page lists, busiest first.
pub const TOP_SOURCES: usize = 10;
/// How many lockout entries the page lists.
pub const MAX_LOCKOUTS: usize = 50;

/// The (type, result) pairs the server answers; each has a lock-free count
/// here and a metrics handle in the connection module, by its index.
pub(crate) const PAIRS: [(&str, &str); 13] = [
    ("author", "pass_add"),
    ("author", "pass_repl"),
    ("author", "fail"),
    ("author", "error"),
    ("author", "follow"),
    ("authen", "pass"),
    ("authen", "fail"),
    ("authen", "error"),
    ("authen", "abort"),
    ("authen", "follow"),
    ("acct", "success"),
    ("acct", "error"),
    ("acct", "follow"),
];

/// Where `(kind, result)` is in [`PAIRS`].
pub(crate) fn pair_index(kind: &str, result: &str) -> Option<usize> {
    PAIRS.iter().position(|&(k, r)| k == kind && r == result)
}

/// Requests answered, by type and result: an atomic add per request for the
/// known pairs (every connection counts here, so no lock on the request
/// path); any other pair under a mutex.
#[derive(Debug, Default)]
pub struct RequestCounts {
    known: [std::sync::atomic::AtomicU64; PAIRS.len()],
    other: Mutex<Vec<(&'static str, &'static str, u64)>>,
}

impl RequestCounts {
    /// Count one request of `kind` (authen, author, acct) answered `result`.
    /// Returns its index in the table of known pairs, if it is one.
    pub fn count(&self, kind: &'static str, result: &'static str) -> Option<usize> {
        if let Some(i) = pair_index(kind, result) {
            self.known[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Some(i);
        }
        let mut v = self.other.lock().unwrap_or_else(|e| e.into_inner());
        match v.iter_mut().find(|(k, r, _)| *k == kind && *r == result) {
            Some(e) => e.2 += 1,
            None => v.push((kind, result, 1)),
        }
        None
    }

    /// The counts, sorted by type then result.
    pub fn list(&self) -> Vec<RequestCount> {
        let known = PAIRS.iter().zip(&self.known).map(|(&(kind, result), n)| {
            (kind, result, n.load(std::sync::atomic::Ordering::Relaxed))
        });
        let other = self.other.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut v: Vec<RequestCount> = known
            .chain(other)
            .filter(|&(_, _, count)| count > 0)
            .map(|(kind, result, count)| RequestCount {
                kind: kind.into(),
                result: result.into(),
                count,
            })
            .collect();
        v.sort_by(|a, b| (&a.kind, &a.result).cmp(&(&b.kind, &b.result)));
        v
    }
}

/// One (type, result) count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    /// authen, author or acct.
    pub kind: String,
    /// The reply's status.
    pub result: String,
    /// Since start.
    pub count: u64,
}

/// One listener in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerView {
    /// The bound address.
    pub address: String,
    /// PROXY protocol intake.
    pub proxy: String,
    /// `off` or the certificate.
    pub tls: String,
}

/// The last reload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadView {
    /// Seconds since.
    pub seconds_ago: f64,
    /// Whether it is in force.
    pub applied: bool,
    /// What it said.
    pub message: String,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStatus {
    /// `[server] name`.
    pub name: String,
    /// The program's version.
    pub version: String,
    /// The user the server dropped to, if it did.
    pub user: Option<String>,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Listeners in force.
    pub listeners: Vec<ListenerView>,
    /// Connections open now.
    pub connections: usize,
    /// `[limits] max_connections`.
    pub max_connections: usize,
    /// The busiest sources: address and open connections.
    pub top_sources: Vec<(IpAddr, usize)>,
    /// Requests answered since start.
    pub requests: Vec<RequestCount>,
    /// The accounting journal.
    pub journal: JournalView,
    /// Locked and slowed users and devices (at most [`MAX_LOCKOUTS`]).
    pub lockouts: Vec<LockoutView>,
    /// All lockout entries (the list may be cut).
    pub lockouts_total: usize,
    /// The last reload, if any since start.
    pub reload: Option<ReloadView>,
}

impl Shared {
    /// Count a request answered (for the status page); its index in
    /// [`PAIRS`] when it is a known pair.
    pub(crate) fn count_request(&self, kind: &'static str, result: &'static str) -> Option<usize> {
        self.requests.count(kind, result)
    }

    pub(crate) fn set_listening(&self, running: &[crate::listeners::Running]) {
        let v = running
            .iter()
            .map(|r| {
                let s = r.settings.load();
                ListenerView {
                    address: r.bound.to_string(),
                    proxy: s.proxy.to_string(),
                    tls: crate::listeners::tls(&s),
                }
            })
            .collect();
        *self.listening.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    /// The running state for the status page; `version` is the program's.
    pub fn status(&self, version: &str) -> ServerStatus {
        let mut top: Vec<(IpAddr, usize)> = self
            .per_source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(ip, n)| (*ip, *n))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(TOP_SOURCES);
        let mut lockouts = match crate::control::answer(self, Request::Lockouts) {
            Reply::Lockouts { entries } => entries,
            _ => Vec::new(),
        };
        let lockouts_total = lockouts.len();
        lockouts.truncate(MAX_LOCKOUTS);
        let reload = self.last_reload.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(
            |(at, applied, message)| ReloadView {
                seconds_ago: at.elapsed().as_secs_f64(),
                applied: *applied,
                message: message.clone(),
            },
        );
        ServerStatus {
            name: self.policy().server_name.clone(),
            version: version.into(),
            user: crate::privilege::dropped_to().map(str::to_owned),
            uptime_s: self.started.elapsed().as_secs_f64(),
            listeners: self.listening.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            connections: self.connections(),
            max_connections: self.policy().limits.max_connections,
            top_sources: top,
            requests: self.requests.list(),
            journal: self.journal.stats(),
            lockouts,
            lockouts_total,
            reload,
        }
    }
}

fn ago(s: f64) -> String {
    match s {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// The page for `s`.
pub fn render_html(s: &ServerStatus) -> String {
    let mut b = String::new();
    let user = s.user.as_deref().map_or(String::new(), |u| format!(", running as {}", esc(u)));
    let _ = writeln!(
        b,
        "<p class=\"meta\">tacvs {} server, up {}{user}</p>",
        esc(&s.version),
        ago(s.uptime_s)
    );
    b.push_str("<h2>Listeners</h2>\n");
    let rows: Vec<_> = s
        .listeners
        .iter()
        .map(|l| {
            (
                l.address.clone(),
                String::new(),
                vec![text("address", &l.address), text("proxy", &l.proxy), text("tls", &l.tls)],
            )
        })
        .collect();
    b.push_str(&table("listeners", &["Address", "PROXY protocol", "TLS"], &rows));
    let _ = writeln!(
        b,
        "<h2>Connections</h2>\n<p id=\"connections\">{} open (limit {})</p>",
        s.connections, s.max_connections
    );
    let rows: Vec<_> = s
        .top_sources
        .iter()
        .map(|(ip, n)| {
            (ip.to_string(), String::new(), vec![text("source", ip.to_string()), num("open", n)])
        })
        .collect();
    b.push_str(&table("sources", &["Source", "Open connections"], &rows));
    b.push_str("<h2>Requests</h2>\n");
    let rows: Vec<_> = s
        .requests
        .iter()
        .map(|r| {
            (
                format!("{}/{}", r.kind, r.result),
                String::new(),
                vec![text("type", &r.kind), text("result", &r.result), num("count", r.count)],
            )
        })
        .collect();
    b.push_str(&table("requests", &["Type", "Result", "Count"], &rows));
    let j = &s.journal;
    b.push_str("<h2>Accounting journal</h2>\n");
    let class = if j.errors > 0 { "down" } else { "up" };
    let row = vec![
        text("file", j.file.display().to_string()),
        num("size", j.size),
        num("records", j.records),
        num("fsync-ms", format!("{:.3}", j.last_fsync_ns as f64 / 1e6)),
        num("errors", j.errors),
        text("last-error", if j.last_error.is_empty() { "-" } else { &j.last_error }),
    ];
    b.push_str(&table(
        "journal",
        &["File", "Size (bytes)", "Records since start", "Last fsync ms", "Errors", "Last error"],
        &[(String::new(), class.into(), row)],
    ));
    let _ =
        writeln!(b, "<h2>Lockouts</h2>\n<p id=\"lockout-count\">{} entries</p>", s.lockouts_total);
    let rows: Vec<_> = s
        .lockouts
        .iter()
        .map(|l| {
            let user = l.user.clone().unwrap_or_else(|| "(every user)".into());
            let device = l.device.map_or("(every device)".into(), |d| d.to_string());
            (
                format!("{user} {device}"),
                l.state.replace(' ', "-"),
                vec![
                    text("user", user),
                    text("device", device),
                    text("state", &l.state),
                    num("left", ago(l.seconds_left)),
                    num("count", l.count),
                ],
            )
        })
        .collect();
    b.push_str(&table("lockouts", &["User", "Device", "State", "Left", "Count"], &rows));
    match &s.reload {
        Some(r) => {
            let what = if r.applied { "applied" } else { "NOT applied" };
            let _ = writeln!(
                b,
                "<p id=\"reload\">Last reload {} ago, {what}: {}</p>",
                ago(r.seconds_ago),
                esc(&r.message)
            );
        }
        None => b.push_str("<p id=\"reload\">No reload since start.</p>\n"),
    }
    page(&format!("tacvs server {}", s.name), REFRESH_S, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> ServerStatus {
        ServerStatus {
            name: "aaa<1>".into(),
            version: "0.1.0".into(),
            user: Some("tacvs".into()),
            uptime_s: 90.0,
            listeners: vec![ListenerView {
                address: "127.0.0.1:49".into(),
                proxy: "off".into(),
                tls: "off".into(),
            }],
            connections: 3,
            max_connections: 100,
            top_sources: vec![("10.0.0.1".parse().unwrap(), 2)],
            requests: vec![RequestCount {
                kind: "author".into(),
                result: "pass_add".into(),
                count: 7,
            }],
            journal: JournalView {
                file: "var/acct/a.jsonl".into(),
                size: 1234,
                last_fsync_ns: 1_500_000,
                records: 9,
                errors: 1,
                last_error: "disk <full>".into(),
            },
            lockouts: vec![LockoutView {
                state: "locked".into(),
                user: Some("<img src=x onerror=alert(1)>".into()),
                device: Some("10.0.0.9".parse().unwrap()),
                seconds_left: 30.0,
                count: 1,
            }],
            lockouts_total: 1,
            reload: Some(ReloadView {
                seconds_ago: 5.0,
                applied: false,
                message: "x.toml:3:1: <bad>".into(),
            }),
        }
    }

    #[test]
    fn user_names_and_errors_are_escaped() {
        let h = render_html(&status());
        for raw in ["<img", "<full>", "<bad>", "aaa<1>"] {
            assert!(!h.contains(raw), "{raw} unescaped:\n{h}");
        }
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"), "{h}");
        assert!(!h.contains("<script"));
    }

    #[test]
    fn the_numbers_are_in_their_cells() {
        let h = render_html(&status());
        assert!(
            h.contains(
                "<tr data-key=\"author/pass_add\" class=\"\"><td \
            class=\"type\">author</td><td class=\"result\">pass_add</td><td class=\"count \
            num\">7</td></tr>"
            ),
            "{h}"
        );
        assert!(h.contains("<p id=\"connections\">3 open (limit 100)</p>"), "{h}");
        assert!(
            h.contains("<td class=\"source\">10.0.0.1</td><td class=\"open num\">2</td>"),
            "{h}"
        );
        assert!(
            h.contains("<td class=\"fsync-ms num\">1.500</td><td class=\"errors num\">1</td>"),
            "{h}"
        );
        assert!(h.contains("<p id=\"lockout-count\">1 entries</p>"), "{h}");
        assert!(h.contains("running as tacvs") && h.contains("NOT applied"), "{h}");
        assert!(h.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    }

    #[test]
    fn counts_add_up_per_pair() {
        let c = RequestCounts::default();
        c.count("author", "pass_add");
        c.count("acct", "success");
        c.count("author", "pass_add");
        let l = c.list();
        assert_eq!(l[0], RequestCount { kind: "acct".into(), result: "success".into(), count: 1 });
        assert_eq!(l[1].count, 2);
    }
}
