//! `tacvs sim plan`: how many servers a fleet needs, from a measured report.
//! The original design's formula: servers T = device load g(n) / per-server
//! capacity f(n), here with headroom and N+1 redundancy, arithmetic shown.

use std::fmt::Write as _;

use crate::profile::Profile;
use crate::report::Report;

/// The plan's inputs and results.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Devices in the fleet.
    pub devices: u64,
    /// Requests/s one device makes on average.
    pub per_device_rate: f64,
    /// g(n): the fleet's request rate.
    pub fleet_rate: f64,
    /// f(n): one server's capacity at the latency target, from the report.
    pub capacity: f64,
    /// The second of the report the capacity came from.
    pub capacity_second: Option<u64>,
    /// Headroom fraction (0.3 = 30 %).
    pub headroom: f64,
    /// Servers carrying the load with headroom.
    pub servers_for_load: u64,
    /// With one spare (N+1).
    pub servers: u64,
    /// The latency target, ms.
    pub latency_target_ms: f64,
    /// Why the report's throughput is a capacity (see [`basis`]).
    pub basis: String,
    /// The simulator's own CPU, in cores over the run: near 1, the generator
    /// may have been the limit and the capacity is understated.
    pub sim_cores: f64,
}

/// How to measure a capacity, for the messages below.
const HOW: &str = "measure one server with a run that saturates it: closed loop with enough \
requests in flight, e.g. `tacvs sim --server HOST:PORT --key-file KEY --profile PROFILE \
--devices 1000 --concurrency 64 --duration 30s --json report.json` (raise --concurrency until \
req/s stops growing), or an open-loop --rate above what the server answers";

/// Whether `report` measured the server's capacity, and how: a run only shows
/// a capacity when the server, not the offered load, limited the throughput.
/// An open-loop run that the server kept up with says "at least this much",
/// which is not a capacity to divide by.
pub fn basis(report: &Report) -> Result<String, String> {
    let got = report.total.throughput;
    match (report.mode.as_str(), report.rate, report.concurrency) {
        ("open", Some(rate), _) if got >= rate * 0.95 => Err(format!(
            "the run did not saturate the server: it offered {rate:.0} req/s and the server \
             answered {got:.0} req/s (p99 {:.2} ms), so it only shows that one server handles at \
             least {rate:.0} req/s, not how much more. To plan, {HOW}",
            report.total.latency_ms.p99
        )),
        ("open", Some(rate), _) => Ok(format!(
            "open loop: {rate:.0} req/s offered, {got:.0} answered: the server fell behind, \
             so it was saturated"
        )),
        ("closed", _, Some(c)) => Ok(format!(
            "closed loop with {c} requests in flight: the server answered as fast as it could \
             for that many (a run with more --concurrency and no more req/s confirms it)"
        )),
        (mode, _, _) => Err(format!(
            "the report's mode {mode:?} says neither an offered rate nor a concurrency: {HOW}"
        )),
    }
}

/// Compute a plan. `report` must come from a run that saturated one server
/// (see [`basis`]); its seconds whose p99 met the target and had no errors
/// give f(n).
pub fn plan(
    report: &Report,
    devices: u64,
    profile: &Profile,
    latency_target_ms: f64,
    headroom: f64,
) -> Result<Plan, String> {
    let basis = basis(report)?;
    let warm = report.warmup_s as u64;
    let best = report
        .series
        .iter()
        .filter(|s| s.t >= warm && s.errors == 0 && s.requests > 0 && s.p99_ms <= latency_target_ms)
        .max_by_key(|s| s.requests);
    let Some(best) = best else {
        return Err(format!(
            "no second of the report met p99 <= {latency_target_ms} ms without errors: measure \
                with fewer requests in flight (or a lower rate), or relax --latency-target"
        ));
    };
    let capacity = best.requests as f64;
    let per_device_rate = profile.device_rate();
    let fleet_rate = per_device_rate * devices as f64;
    let servers_for_load = ((fleet_rate * (1.0 + headroom)) / capacity).ceil().max(1.0) as u64;
    Ok(Plan {
        devices,
        per_device_rate,
        fleet_rate,
        capacity,
        capacity_second: Some(best.t),
        headroom,
        servers_for_load,
        servers: servers_for_load + 1,
        latency_target_ms,
        basis,
        sim_cores: report.sim_cpu_s / (report.duration_s + report.warmup_s).max(0.001),
    })
}

impl Plan {
    /// The arithmetic, for people.
    pub fn explain(&self, profile: &Profile) -> String {
        let mut s = String::new();
        let per_session = profile.requests_per_session();
        let _ = writeln!(s, "fleet load g(n):");
        let _ = writeln!(
            s,
            "  {} requests per session × {} sessions/hour per device / 3600 = {:.4} requests/s per device",
            per_session, profile.sessions_per_hour, self.per_device_rate
        );
        let _ = writeln!(
            s,
            "  {:.4} × {} devices = {:.1} requests/s",
            self.per_device_rate, self.devices, self.fleet_rate
        );
        let _ = writeln!(s, "per-server capacity f(n) at p99 <= {} ms:", self.latency_target_ms);
        let _ = writeln!(s, "  measured by {}", self.basis);
        if self.sim_cores >= 0.9 {
            let _ = writeln!(
                s,
                "  note: the simulator used {:.0}% of a core: it may have been the limit, so the \
                 capacity may be higher (run it on a core of its own, or with --pipeline)",
                self.sim_cores * 100.0
            );
        }
        let _ = writeln!(
            s,
            "  {:.0} requests/s (best error-free second of the report meeting the target: t={}s)",
            self.capacity,
            self.capacity_second.unwrap_or(0)
        );
        let _ = writeln!(s, "servers:");
        let _ = writeln!(
            s,
            "  ceil({:.1} × (1 + {:.0}% headroom) / {:.0}) = {} for the load, + 1 spare (N+1) = {}",
            self.fleet_rate,
            self.headroom * 100.0,
            self.capacity,
            self.servers_for_load,
            self.servers
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Second;

    #[test]
    fn arithmetic_on_a_fixed_report() {
        let mut r = Report {
            warmup_s: 1.0,
            duration_s: 4.0,
            mode: "closed".into(),
            concurrency: Some(64),
            ..Default::default()
        };
        for (t, req, err, p99) in [
            (0, 50_000, 0, 0.5),
            (1, 9_000, 0, 1.0),
            (2, 20_000, 0, 4.0),
            (3, 30_000, 0, 12.0),
            (4, 25_000, 3, 2.0),
        ] {
            r.series.push(Second { t, requests: req, errors: err, fail: 0, p99_ms: p99 });
        }
        let p = Profile::builtin("automation").unwrap(); // 105 requests × 4/h
        let plan = plan(&r, 100_000, &p, 10.0, 0.3).unwrap();
        // t=0 is warm-up, t=3 misses the target, t=4 had errors: t=2 counts.
        assert_eq!(plan.capacity, 20_000.0);
        assert_eq!(plan.capacity_second, Some(2));
        assert!((plan.per_device_rate - 105.0 * 4.0 / 3600.0).abs() < 1e-9);
        assert!((plan.fleet_rate - 11_666.666).abs() < 0.01);
        // ceil(11666.7 × 1.3 / 20000) = ceil(0.758) = 1, + 1 spare.
        assert_eq!((plan.servers_for_load, plan.servers), (1, 2));
        let big = super::plan(&r, 1_000_000, &p, 10.0, 0.3).unwrap();
        assert_eq!((big.servers_for_load, big.servers), (8, 9));
        assert!(big.explain(&p).contains("= 8 for the load, + 1 spare (N+1) = 9"));
        assert!(super::plan(&r, 10, &p, 0.1, 0.3).is_err());
    }

    fn open_loop(rate: f64, answered: f64) -> Report {
        let mut r = Report {
            mode: "open".into(),
            rate: Some(rate),
            duration_s: 10.0,
            ..Default::default()
        };
        r.total.throughput = answered;
        r.series = (0..10)
            .map(|t| Second { t, requests: answered as u64, errors: 0, fail: 0, p99_ms: 1.0 })
            .collect();
        r
    }

    #[test]
    fn an_open_loop_run_the_server_kept_up_with_is_no_capacity() {
        let p = Profile::builtin("automation").unwrap();
        // 50 req/s offered, 50 answered: "capacity 50" would plan 153 servers.
        let e = plan(&open_loop(50.0, 50.0), 100_000, &p, 10.0, 0.3).unwrap_err();
        assert!(e.contains("did not saturate") && e.contains("--concurrency"), "{e}");
        // The server fell behind: that run was saturated.
        let ok = plan(&open_loop(5000.0, 3000.0), 100_000, &p, 10.0, 0.3).unwrap();
        assert_eq!(ok.capacity, 3000.0);
        assert!(ok.explain(&p).contains("fell behind"), "{}", ok.explain(&p));
    }
}
