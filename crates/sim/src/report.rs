//! The run's report: totals, latency percentiles per request type, every
//! failure by kind, a per-second series. Serialized as documented in
//! `docs/sim-report.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Every kind of error a report counts (`errors_by_kind`): the client's
/// ([`tacvs_client::ERROR_KINDS`]) and an ERROR or FOLLOW reply.
pub const ERROR_KINDS: &[&str] = &[
    "connect_refused",
    "connect_error",
    "connect_timeout",
    "read_timeout",
    "closed",
    "reset",
    "io_error",
    "wrong_key",
    "protocol_error",
    "local_error",
    "tls_handshake",
    "status_error",
];

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn from_hist(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Counts and latency for one request type (or all).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Requests completed in the measured window (any outcome).
    pub requests: u64,
    /// PASS / SUCCESS.
    pub ok: u64,
    /// A well-formed FAIL (wrong password, command denied).
    pub fail: u64,
    /// Everything else: ERROR replies, transport and protocol failures.
    pub errors: u64,
    /// Completed requests per second over the measured window.
    pub throughput: f64,
    /// Latency of answered requests (PASS / SUCCESS and FAIL; errors are
    /// counted, not timed), from the intended send time (open loop) or the
    /// actual start (closed loop).
    pub latency_ms: Latency,
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// Seconds since the start (warm-up included).
    pub t: u64,
    /// Requests completed.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Of which FAIL.
    pub fail: u64,
    /// p99 latency of that second's answered requests.
    pub p99_ms: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Schema version.
    pub version: u32,
    /// Target address.
    pub target: String,
    /// Profile name.
    pub profile: String,
    /// Simulated devices.
    pub devices: usize,
    /// "open" or "closed".
    pub mode: String,
    /// Open loop: requested rate (requests/s).
    pub rate: Option<f64>,
    /// Closed loop: concurrent requesters.
    pub concurrency: Option<usize>,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// Warm-up excluded from the totals, seconds.
    pub warmup_s: f64,
    /// All request types together.
    pub total: Totals,
    /// Per type: "authen", "author", "acct".
    pub by_type: BTreeMap<String, Totals>,
    /// Errors by kind (connect_refused, connect_timeout, reset, read_timeout,
    /// closed, protocol_error, wrong_key, status_error, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Requests the generator had to send late (all sockets busy, or the
    /// device's previous request still running) — their wait is in the latency.
    pub delayed_starts: u64,
    /// Per-second series.
    pub series: Vec<Second>,
    /// CPU time the simulator itself used (user + system), seconds.
    pub sim_cpu_s: f64,
    /// Simulator CPU per completed request, microseconds.
    pub sim_cpu_us_per_request: f64,
    /// Wall-clock start of the run (warm-up included), Unix milliseconds: lets
    /// a harness line the series up with events it caused (faults).
    #[serde(default)]
    pub started_unix_ms: u64,
    /// Windows in which requests failed, merged when less than a second
    /// apart, seconds since the start.
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// Accounting records acknowledged with SUCCESS (their ledger went to
    /// the `acked` file when one was given).
    #[serde(default)]
    pub acct_acknowledged: u64,
    /// TACACS+ over TLS: the handshakes of the whole run (warm-up included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsHandshakes>,
    /// Requests by the connection they used (open and closed loop, measured
    /// window): what a failover did to established sessions and to new ones.
    #[serde(default)]
    pub connections: Connections,
}

/// Requests by connection: a new one (every request per-session; a
/// single-connect device's first, or its first after a break) or one kept
/// open from an earlier answered request (single-connect).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connections {
    /// Requests that opened a connection.
    pub new: u64,
    /// Of which failed (refused, timed out, reset...).
    pub new_errors: u64,
    /// Of which answered, but only after 1 s or more (a lost SYN waits for
    /// the client's retransmission: delayed rather than failed).
    pub new_over_1s: u64,
    /// Requests on a single-connect connection kept from an earlier answer.
    pub kept: u64,
    /// Of which failed: an established session broken.
    pub kept_errors: u64,
    /// Of which answered after 1 s or more (TCP retransmitted).
    pub kept_over_1s: u64,
}

/// The TLS handshakes a run made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TlsHandshakes {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of which resumed from a ticket.
    pub resumed: u64,
    /// resumed / handshakes.
    pub resumption_rate: f64,
    /// Handshakes that failed (in `errors_by_kind` as `tls_handshake` too).
    pub failed: u64,
    /// Time from connected to handshake done, full handshakes.
    pub full_ms: Latency,
    /// The same for resumed ones.
    pub resumed_ms: Latency,
}

/// A window of failed requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Outage {
    /// Start, seconds since the run's start.
    pub from_s: f64,
    /// End: when the last failed request of the window gave up.
    pub to_s: f64,
    /// When the last failed request of the window was started: from `from_s`
    /// to here, new sessions failed.
    #[serde(default)]
    pub last_start_s: f64,
    /// Failed requests in it.
    pub errors: u64,
}

impl Report {
    /// When no request was answered (every one failed: wrong key, closed
    /// port, no route), why, for people; the run measured nothing.
    pub fn unanswered(&self) -> Option<String> {
        let t = &self.total;
        if t.ok + t.fail > 0 {
            return None;
        }
        if t.requests == 0 {
            return Some("no request completed in the measured window".into());
        }
        let kinds: Vec<String> =
            self.errors_by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Some(format!("no request was answered: all {} failed ({})", t.requests, kinds.join(", ")))
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let load = match (self.rate, self.concurrency) {
            (Some(r), _) => format!("open loop at {r:.0} req/s"),
            (_, Some(c)) => format!("closed loop, {c} concurrent"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "tacvs sim: {} devices, profile {}, {load}, {:.1}s measured (+{:.1}s warm-up) against {}",
            self.devices, self.profile, self.duration_s, self.warmup_s, self.target
        );
        let _ = writeln!(
            s,
            "{:<8} {:>10} {:>10} {:>8} {:>8} {:>11} {:>8} {:>8} {:>8} {:>9} {:>8}",
            "type",
            "requests",
            "ok",
            "fail",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        let mut row = |name: &str, t: &Totals| {
            let l = &t.latency_ms;
            let _ = writeln!(
                s,
                "{name:<8} {:>10} {:>10} {:>8} {:>8} {:>11.1} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>8.3}",
                t.requests,
                t.ok,
                t.fail,
                t.errors,
                t.throughput,
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max
            );
        };
        for (k, t) in &self.by_type {
            row(k, t);
        }
        row("all", &self.total);
        if !self.errors_by_kind.is_empty() {
            let e: Vec<String> =
                self.errors_by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "errors (counted, not in the latency columns): {}", e.join(", "));
        }
        let c = &self.connections;
        if c.kept > 0 {
            let _ = writeln!(
                s,
                "single-connect: {} requests on kept connections ({} failed: established \
                    sessions broken, {} answered after ≥ 1 s); {} on new connections ({} \
                    failed, {} after ≥ 1 s)",
                c.kept, c.kept_errors, c.kept_over_1s, c.new, c.new_errors, c.new_over_1s
            );
        }
        if self.delayed_starts > 0 {
            let _ = writeln!(
                s,
                "delayed starts: {} (waits are included in the latency)",
                self.delayed_starts
            );
        }
        if let Some(t) = &self.tls {
            let _ = writeln!(
                s,
                "TLS: {} handshakes, {} resumed ({:.1} %), {} failed; full p50 {:.3} ms p99 \
                    {:.3} ms, resumed p50 {:.3} ms p99 {:.3} ms",
                t.handshakes,
                t.resumed,
                t.resumption_rate * 100.0,
                t.failed,
                t.full_ms.p50,
                t.full_ms.p99,
                t.resumed_ms.p50,
                t.resumed_ms.p99
            );
        }
        let _ = writeln!(
            s,
            "simulator CPU: {:.2}s, {:.1} µs per request",
            self.sim_cpu_s, self.sim_cpu_us_per_request
        );
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_client_error_kind_is_a_report_kind() {
        for k in tacvs_client::ERROR_KINDS {
            assert!(super::ERROR_KINDS.contains(k), "{k}");
        }
    }
}
