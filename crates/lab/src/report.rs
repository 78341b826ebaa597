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

/// Everything a run produced (`report.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabReport {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
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
    /// The simulator's report.
    pub sim: tacvs_sim::Report,
}

impl LabReport {
    /// Every check met.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
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
    s.push_str(&r.sim.table());
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
