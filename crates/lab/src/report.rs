//! What a scenario run produced (`report.json`, and `report.txt` from
//! [`table`]): the faults as applied, the directors' events, the checks and
//! their outcomes, accounting completeness, and the simulator's report. Read
//! by the runner (which fills it) and the chart (which draws it).

use serde::{Deserialize, Serialize};

/// A fault as applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    /// Seconds since the workload started (the sim's clock).
    pub at_s: f64,
    /// Action.
    pub action: String,
    /// Target as written.
    pub target: String,
    /// Target resolved (master → d1).
    pub resolved: String,
    /// "ok", or why not.
    pub result: String,
}

/// Something the directors reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the workload started (the sim's clock).
    pub t_s: f64,
    /// d1 or d2.
    pub director: String,
    /// "MASTER", "BACKUP", "s2 down", "s2 up", "unreachable".
    pub what: String,
}

/// One check and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Measured value, as text.
    pub measured: String,
    /// Bound, as text ("-" when only reported).
    pub bound: String,
    /// Met?
    pub ok: bool,
}

/// Accounting completeness.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Accounting {
    /// Records the devices saw acknowledged.
    pub acknowledged: u64,
    /// Records in the real servers' journals.
    pub journaled: u64,
    /// Acknowledged but in no journal (must be 0).
    pub missing: u64,
    /// Some of the missing ones.
    pub missing_examples: Vec<String>,
}

/// Whose addresses the real servers journaled.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServersSaw {
    /// Records journaled with a device's own address (the fleet's prefix).
    pub devices: u64,
    /// Records journaled with another address (a director's).
    pub other: u64,
    /// Some of those other addresses.
    pub other_examples: Vec<String>,
}

impl ServersSaw {
    /// "yes" (every record the device's own address), "no" (none), or how
    /// many did.
    pub fn verdict(&self) -> String {
        match (self.devices, self.other) {
            (0, 0) => "-".into(),
            (_, 0) => "yes".into(),
            (0, _) => "no".into(),
            (d, o) => format!("{:.0} %", d as f64 * 100.0 / (d + o) as f64),
        }
    }
}

/// Everything a run produced (`report.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabReport {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// The front: proxy, dr, haproxy-tcp, haproxy-proxy-v2, nat.
    #[serde(default)]
    pub front: String,
    /// Real servers.
    pub servers: u8,
    /// Directors.
    pub directors: u8,
    /// Devices.
    pub devices: usize,
    /// Rate offered (after scaling).
    pub rate: f64,
    /// Faults applied.
    pub faults: Vec<Applied>,
    /// Director events.
    pub events: Vec<Event>,
    /// Checks.
    pub checks: Vec<Check>,
    /// Accounting completeness.
    pub accounting: Accounting,
    /// Whose addresses the servers journaled.
    #[serde(default)]
    pub servers_saw: ServersSaw,
    /// What the directors cost (`[measure] director_cpu`).
    #[serde(default)]
    pub director_cost: Option<crate::measure::DirectorCost>,
    /// DR: the XDP attach mode the director reported.
    #[serde(default)]
    pub attach: Option<String>,
    /// The simulator's report.
    pub sim: tacvs_sim::Report,
    /// The single-connect devices' simulator report, if any.
    #[serde(default)]
    pub single_connect: Option<tacvs_sim::Report>,
}

impl LabReport {
    /// Every check met.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Write `NAME.json` (pretty), `NAME.txt` and `NAME.svg` into `dir`.
pub fn write_three<T: Serialize>(
    dir: &std::path::Path,
    name: &str,
    value: &T,
    text: &str,
    svg: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> Result<(), crate::topo::LabError> {
    use crate::topo::LabError;
    let io = |p: &std::path::Path| {
        let p = p.display().to_string();
        move |err| LabError::Io { path: p, err }
    };
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, serde_json::to_vec_pretty(value).unwrap_or_default()).map_err(io(&p))?;
    let p = dir.join(format!("{name}.txt"));
    std::fs::write(&p, text).map_err(io(&p))?;
    let p = dir.join(format!("{name}.svg"));
    svg(&p)
        .map_err(|e| LabError::Io { path: p.display().to_string(), err: std::io::Error::other(e) })
}

/// The human table.
pub fn table(r: &LabReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "tacvs lab: scenario {} — {}", r.scenario, r.description);
    let _ = writeln!(
        s,
        "topology: {} devices, {} directors, {} real servers; {:.0} req/s offered\n",
        r.devices, r.directors, r.servers, r.rate
    );
    let front = match &r.attach {
        Some(a) => format!("{} ({a} XDP)", r.front),
        None => r.front.clone(),
    };
    let _ = writeln!(s, "front: {front}\n");
    s.push_str(&r.sim.table());
    if let Some(sc) = &r.single_connect {
        let _ = writeln!(s, "\nsingle-connect devices:");
        s.push_str(&sc.table());
    }
    let _ = writeln!(
        s,
        "\nservers journaled: {} records with the devices' own addresses, {} with others{}",
        r.servers_saw.devices,
        r.servers_saw.other,
        if r.servers_saw.other_examples.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.servers_saw.other_examples.join(", "))
        }
    );
    if let Some(c) = &r.director_cost {
        let _ = writeln!(
            s,
            "director cost: {:.1} µs CPU per request ({:.1} µs in its processes, {:.1} µs \
                softirq on the directors' CPU; idle {:.3} + {:.3} CPU taken out), {:.1} MiB \
                resident, kernel {:.1} MiB ({})",
            c.total_us,
            c.process_us,
            c.softirq_us,
            c.idle.0,
            c.idle.1,
            c.rss_bytes as f64 / 1048576.0,
            c.kernel_bytes as f64 / 1048576.0,
            c.kernel_what
        );
        if let (Some(p), Some(n)) = (c.program_us, c.packets_per_request) {
            let _ = writeln!(
                s,
                "XDP program: {p:.2} µs per request ({n:.1} packets, {:.0} ns each; the rest \
                    of the softirq is the kernel around it)",
                p * 1e3 / n.max(1e-9)
            );
        }
        if let Some(ct) = &c.conntrack {
            let _ = writeln!(
                s,
                "conntrack: peak {} entries, {} packets dropped (table full), {} entries \
                    evicted early, {} insertions failed",
                ct.peak, ct.drop, ct.early_drop, ct.insert_failed
            );
        }
    }
    if !r.sim.outages.is_empty() {
        let _ = writeln!(s, "\nwindows of failed requests (sim clock):");
        for o in &r.sim.outages {
            let _ = writeln!(
                s,
                "  sessions started {:>7.2}s – {:>7.2}s failed ({:>6}), the last gave up at {:.2}s",
                o.from_s, o.last_start_s, o.errors, o.to_s
            );
        }
    }
    let _ = writeln!(s, "\nfaults:");
    for a in &r.faults {
        let _ = writeln!(
            s,
            "  {:>7.2}s  {:<11} {:<7} ({})  {}",
            a.at_s, a.action, a.target, a.resolved, a.result
        );
    }
    let _ = writeln!(s, "\ndirector events:");
    for e in r.events.iter().filter(|e| e.t_s >= 0.0) {
        let _ = writeln!(s, "  {:>7.2}s  {}  {}", e.t_s, e.director, e.what);
    }
    let _ = writeln!(
        s,
        "\naccounting: {} acknowledged, {} journaled, {} missing",
        r.accounting.acknowledged, r.accounting.journaled, r.accounting.missing
    );
    let _ = writeln!(s, "\nchecks:");
    for c in &r.checks {
        let _ = writeln!(
            s,
            "  {} {:<62} {:>28}  (bound {})",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.measured,
            c.bound
        );
    }
    let _ = writeln!(s, "\nresult: {}", if r.ok() { "PASS" } else { "FAIL" });
    s
}
