//! Scenario files (TOML): topology size, the `tacvs sim` workload, a fault
//! schedule and the bounds the run must meet. See `lab/scenarios/`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::topo::humantime_serde_compat::deserialize as dur;
use crate::topo::{DirectorSettings, FLEET_SIZE, Front, NatSettings, Role};

fn opt_dur<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    dur(d).map(Some)
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (reports, the working directory).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// `[topology]`.
    pub topology: Topology,
    /// `[director]`: settings written into both directors' files.
    #[serde(default)]
    pub director: DirectorSettings,
    /// `[workload]`.
    pub workload: Workload,
    /// `[checks]`.
    #[serde(default)]
    pub checks: Checks,
    /// `[[fault]]`, in time order.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// `[nat]`: the NAT front's conntrack settings.
    #[serde(default)]
    pub nat: NatSettings,
    /// `[measure]`.
    #[serde(default)]
    pub measure: Measure,
}

/// `[measure]`: what the run measures besides the devices' view.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Steer the directors' packet processing to the last CPU (RPS) and
    /// everyone else's to the others, and report the directors' CPU per
    /// request: their processes' user and system time plus that CPU's
    /// softirq time, each less what it was idle (docs/benchmarks.md).
    #[serde(default)]
    pub director_cpu: bool,
}

/// `[topology]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Real servers.
    pub servers: u8,
    /// Directors (1 or 2).
    #[serde(default = "two")]
    pub directors: u8,
    /// Simulated devices, each its own source address.
    pub devices: usize,
    /// Everything over TACACS+ over TLS 1.3 (RFC 9887).
    #[serde(default)]
    pub tls: bool,
    /// What the directors run: proxy, dr, haproxy-tcp, haproxy-proxy-v2, nat.
    #[serde(default)]
    pub front: Front,
}

fn two() -> u8 {
    2
}

/// `[workload]`: what `tacvs sim` runs from the devices namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// automation, interactive, mixed (or a profile file).
    #[serde(default = "automation")]
    pub profile: String,
    /// Open loop, requests per second (or `rate_per_device`).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Open loop, requests per second per device, in place of `rate`: the
    /// rate grows with the fleet (`tacvs lab compare --devices`).
    #[serde(default)]
    pub rate_per_device: Option<f64>,
    /// Measured time.
    #[serde(deserialize_with = "dur")]
    pub duration: Duration,
    /// Before measuring.
    #[serde(deserialize_with = "dur", default = "sec2")]
    pub warmup: Duration,
    /// Per-request timeout.
    #[serde(deserialize_with = "dur", default = "sec2")]
    pub timeout: Duration,
    /// Sockets open at once.
    #[serde(default = "sockets")]
    pub max_sockets: usize,
    /// `tacvs sim --expect` bounds.
    #[serde(default)]
    pub expect: Vec<String>,
    /// `[workload.single_connect]`: more devices, each on one long-lived
    /// single-connect connection (a second `tacvs sim`, from the top of the
    /// fleet prefix), to see what happens to established sessions.
    #[serde(default)]
    pub single_connect: Option<SingleConnect>,
}

/// `[workload.single_connect]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleConnect {
    /// Devices (one connection each), taken from 10.100.192.0/18.
    pub devices: usize,
    /// Their requests per second, in aggregate.
    pub rate: f64,
}

/// Where the single-connect devices' addresses start (the top quarter of
/// the fleet prefix, apart from the per-session devices).
pub const SINGLE_CONNECT_SOURCE: &str = "10.100.192.0/18";
/// The per-session devices stay below it.
pub const SINGLE_CONNECT_FIRST: usize = 49_152;

impl Workload {
    /// The rate offered to `devices` devices, before `--scale`.
    pub fn rate_for(&self, devices: usize) -> f64 {
        match (self.rate, self.rate_per_device) {
            (_, Some(p)) => p * devices as f64,
            (Some(r), None) => r,
            (None, None) => 0.0,
        }
    }
}

fn automation() -> String {
    "automation".into()
}
fn sec2() -> Duration {
    Duration::from_secs(2)
}
fn sockets() -> usize {
    8000
}

/// `[checks]`: bounds on what the lab measures around faults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// A director fault → the other director is MASTER within this.
    #[serde(deserialize_with = "opt_dur", default)]
    pub max_failover: Option<Duration>,
    /// Any window of failed requests lasts at most this.
    #[serde(deserialize_with = "opt_dur", default)]
    pub max_outage: Option<Duration>,
    /// A server fault → out of scheduling within this (default: fall ×
    /// interval + timeout, plus 25 ms of timer jitter; events are dated by
    /// the directors themselves).
    #[serde(deserialize_with = "opt_dur", default)]
    pub max_removal: Option<Duration>,
    /// Established single-connect sessions broken (requests that failed on
    /// a kept connection), at most.
    #[serde(default)]
    pub max_broken_sessions: Option<u64>,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// SIGKILL the target's process (server or director).
    Kill,
    /// SIGSTOP: the process hangs (its kernel still accepts connections).
    Stop,
    /// SIGCONT after `stop`.
    Cont,
    /// Start the target's process again (after `kill`).
    Start,
    /// Take the target's link down (isolate it from the LAN).
    LinkDown,
    /// Bring it back.
    LinkUp,
    /// Add netem loss/delay on the target's link (`args`, e.g. "delay 20ms loss 5%").
    Netem,
    /// Remove netem.
    ClearNetem,
    /// Rate-limit the target's link with a token bucket (`args`, e.g. "rate
    /// 200kbit burst 4kb latency 20ms"): a congested link, on kernels
    /// without sch_netem too.
    Shape,
    /// Remove the shaping.
    ClearShape,
}

impl std::fmt::Display for Action {
    /// As written in a scenario file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Cont => "cont",
            Action::Start => "start",
            Action::LinkDown => "link-down",
            Action::LinkUp => "link-up",
            Action::Netem => "netem",
            Action::ClearNetem => "clear-netem",
            Action::Shape => "shape",
            Action::ClearShape => "clear-shape",
        })
    }
}

/// `[[fault]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When, from the start of the workload (warm-up included).
    #[serde(deserialize_with = "dur")]
    pub at: Duration,
    /// What.
    pub action: Action,
    /// Whom: s1..sN, d1, d2, dev, or master / backup (the director holding
    /// the VIP, or not, at that moment).
    pub target: String,
    /// netem parameters.
    #[serde(default)]
    pub args: String,
}

impl Scenario {
    /// Parse and validate.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => format!("{file}:{l}: {}", e.message().trim()),
                None => format!("{file}: {}", e.message().trim()),
            }
        })?;
        let mut errs = Vec::new();
        let t = &s.topology;
        if !(1..=200).contains(&t.servers) || !(1..=2).contains(&t.directors) {
            errs.push(format!("{file}: [topology] needs 1-200 servers and 1-2 directors"));
        }
        if t.devices == 0 || t.devices > FLEET_SIZE {
            errs.push(format!(
                "{file}: [topology] devices must be 1-{FLEET_SIZE} (the fleet prefix)"
            ));
        }
        if s.workload.rate_for(s.topology.devices) <= 0.0
            || s.workload.rate.is_some_and(|r| r <= 0.0)
        {
            errs.push(format!("{file}: [workload] rate (or rate_per_device) must be above 0"));
        }
        if !t.front.is_tacvs() && t.directors != 1 {
            errs.push(format!(
                "{file}: [topology] the {} front runs on one director: directors = 1",
                t.front.name()
            ));
        }
        if let Some(sc) = &s.workload.single_connect {
            if sc.devices == 0 || sc.devices > FLEET_SIZE - SINGLE_CONNECT_FIRST || sc.rate <= 0.0 {
                errs.push(format!(
                    "{file}: [workload.single_connect] needs 1-{} devices and a rate above 0",
                    FLEET_SIZE - SINGLE_CONNECT_FIRST
                ));
            }
            if t.devices > SINGLE_CONNECT_FIRST {
                errs.push(format!(
                    "{file}: [topology] devices must be at most {SINGLE_CONNECT_FIRST} with \
                        [workload.single_connect] (its devices use {SINGLE_CONNECT_SOURCE})"
                ));
            }
        }
        let total = s.workload.warmup + s.workload.duration;
        for (i, f) in s.faults.iter().enumerate() {
            let at = format!("{file}: fault {} ({} {})", i + 1, f.action, f.target);
            if f.at >= total {
                errs.push(format!(
                    "{at}: at {} is after the workload ends ({})",
                    humantime::format_duration(f.at),
                    humantime::format_duration(total)
                ));
            }
            let role = Role::parse(&f.target);
            if t.front == Front::Nat
                && matches!(role, Some(Role::Director(_)))
                && matches!(f.action, Action::Kill | Action::Stop | Action::Cont | Action::Start)
            {
                errs.push(format!("{at}: the NAT front has no director process"));
            }
            match (f.target.as_str(), role) {
                ("master" | "backup", _) if t.directors < 2 && f.target == "backup" => {
                    errs.push(format!("{at}: no backup with one director"))
                }
                ("master" | "backup", _) => {}
                (_, Some(Role::Server(n))) if n > t.servers => {
                    errs.push(format!("{at}: only {} servers", t.servers))
                }
                (_, Some(Role::Director(n))) if n > t.directors => {
                    errs.push(format!("{at}: only {} directors", t.directors))
                }
                (_, Some(Role::Devices))
                    if matches!(
                        f.action,
                        Action::Kill | Action::Stop | Action::Cont | Action::Start
                    ) =>
                {
                    errs.push(format!(
                        "{at}: the devices namespace has no daemon; use link or netem faults"
                    ))
                }
                (_, Some(_)) => {}
                (other, None) => errs.push(format!(
                    "{at}: target {other:?}: write s1..sN, d1, d2, dev, master or backup"
                )),
            }
            if f.action == Action::Netem && f.args.trim().is_empty() {
                errs.push(format!("{at}: netem needs args, e.g. \"delay 20ms loss 5%\""));
            }
            if f.action == Action::Shape && f.args.trim().is_empty() {
                errs.push(format!(
                    "{at}: shape needs args, e.g. \"rate 200kbit burst 4kb latency 20ms\""
                ));
            }
        }
        if s.faults.windows(2).any(|w| w[1].at < w[0].at) {
            errs.push(format!("{file}: faults must be listed in time order"));
        }
        for e in &s.workload.expect {
            if let Err(m) = tacvs_sim::Expect::parse(e) {
                errs.push(format!("{file}: [workload] expect {e:?}: {m}"));
            }
        }
        if errs.is_empty() { Ok(s) } else { Err(errs.join("\n")) }
    }

    /// Read a scenario: a path, or the name of a shipped one.
    pub fn load(spec: &str) -> Result<Scenario, String> {
        let path = std::path::Path::new(spec);
        let candidates = [
            path.to_path_buf(),
            std::path::Path::new("lab/scenarios").join(format!("{spec}.toml")),
        ];
        for p in &candidates {
            if let Ok(text) = std::fs::read_to_string(p) {
                return Scenario::parse(&p.display().to_string(), &text);
            }
        }
        match crate::SHIPPED.iter().find(|(n, _)| *n == spec) {
            Some((n, text)) => Scenario::parse(&format!("lab/scenarios/{n}.toml (built in)"), text),
            None => Err(format!(
                "no scenario {spec:?}: give a file or one of {}",
                crate::SHIPPED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_parse() {
        for (name, text) in crate::SHIPPED {
            let s = Scenario::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&s.name, name);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let base = "name = \"x\"\n[topology]\nservers = 2\ndevices = 10\n[workload]\nrate = 10\nduration = \"5s\"\n";
        let e = Scenario::parse(
            "x.toml",
            &base
                .replace("rate = 10", "rate_per_device = 0")
                .replace("devices = 10", "devices = 10\nfront = \"nat\""),
        )
        .unwrap_err();
        assert!(
            e.contains("must be above 0") && e.contains("nat front runs on one director"),
            "{e}"
        );
        let e = Scenario::parse(
            "x.toml",
            &format!("{base}[[fault]]\nat = \"9s\"\naction = \"kill\"\ntarget = \"s3\"\n"),
        )
        .unwrap_err();
        assert!(e.contains("after the workload ends") && e.contains("only 2 servers"), "{e}");
        let e = Scenario::parse(
            "x.toml",
            &format!("{base}[[fault]]\nat = \"1s\"\naction = \"explode\"\ntarget = \"s1\"\n"),
        )
        .unwrap_err();
        assert!(e.starts_with("x.toml:10:"), "{e}");
        let e = Scenario::parse(
            "x.toml",
            &format!("{base}[[fault]]\nat = \"1s\"\naction = \"netem\"\ntarget = \"zz\"\n"),
        )
        .unwrap_err();
        assert!(e.contains("netem needs args") && e.contains("target \"zz\""), "{e}");
    }
}
