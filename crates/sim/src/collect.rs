//! Outcomes into the report: totals and latency histograms per request
//! type, errors by kind, a per-second series, failure windows, and the
//! ledger of acknowledged accounting records.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::config::{Load, SimConfig};
use crate::report::{self, Report, Totals};

/// Live counters of a run, for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests completed (any outcome).
    pub requests: AtomicU64,
    /// Of which errors.
    pub errors: AtomicU64,
    /// p99 of the last full second, in microseconds.
    pub last_p99_us: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Authen,
    Author,
    Acct,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Authen => "authen",
            Kind::Author => "author",
            Kind::Acct => "acct",
        }
    }
}

pub(crate) enum Outcome {
    Ok,
    Fail,
    Error(&'static str),
}

pub(crate) struct Sample {
    pub(crate) kind: Kind,
    pub(crate) done: Instant,
    pub(crate) latency_us: u64,
    pub(crate) outcome: Outcome,
    /// An acknowledged accounting record's [`ack_key`].
    pub(crate) ack: Option<String>,
    /// Sent on a connection kept from an earlier answer (single-connect),
    /// or on a new one.
    pub(crate) kept: bool,
}

pub(crate) struct Collector {
    start: Instant,
    from: Instant,
    end: Instant,
    total: Acc,
    by: BTreeMap<&'static str, Acc>,
    errors: BTreeMap<String, u64>,
    pub(crate) series: Vec<(report::Second, Histogram<u64>)>,
    pub(crate) acked: Option<std::io::BufWriter<std::fs::File>>,
    acks: u64,
    outages: Vec<report::Outage>,
    connections: report::Connections,
}

struct Acc {
    h: Histogram<u64>,
    ok: u64,
    fail: u64,
    errors: u64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            h: Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds"),
            ok: 0,
            fail: 0,
            errors: 0,
        }
    }
    fn totals(&self, secs: f64) -> Totals {
        let requests = self.ok + self.fail + self.errors;
        Totals {
            requests,
            ok: self.ok,
            fail: self.fail,
            errors: self.errors,
            throughput: if secs > 0.0 { requests as f64 / secs } else { 0.0 },
            latency_ms: report::Latency::from_hist(&self.h),
        }
    }
}

impl Collector {
    pub(crate) fn new(start: Instant, from: Instant, end: Instant) -> Collector {
        Collector {
            start,
            from,
            end,
            total: Acc::new(),
            by: BTreeMap::new(),
            errors: BTreeMap::new(),
            series: Vec::new(),
            acked: None,
            acks: 0,
            outages: Vec::new(),
            connections: report::Connections::default(),
        }
    }

    pub(crate) fn add(&mut self, s: Sample) {
        // Every SUCCESS to an accounting request is counted, with or without
        // a ledger file (`acct_acknowledged` in the report).
        if s.kind == Kind::Acct && matches!(s.outcome, Outcome::Ok) {
            self.acks += 1;
        }
        if let (Some(k), Some(w)) = (&s.ack, &mut self.acked) {
            use std::io::Write;
            let _ = writeln!(w, "{k}");
        }
        if matches!(s.outcome, Outcome::Error(_)) {
            let to = (s.done - self.start).as_secs_f64();
            let from = (to - s.latency_us as f64 / 1e6).max(0.0);
            match self.outages.last_mut() {
                Some(o) if from <= o.to_s + 1.0 => {
                    o.from_s = o.from_s.min(from);
                    o.to_s = o.to_s.max(to);
                    o.last_start_s = o.last_start_s.max(from);
                    o.errors += 1;
                }
                _ => self.outages.push(report::Outage {
                    from_s: from,
                    to_s: to,
                    last_start_s: from,
                    errors: 1,
                }),
            }
        }
        let sec = (s.done - self.start).as_secs() as usize;
        while self.series.len() <= sec {
            let t = self.series.len() as u64;
            self.series.push((
                report::Second { t, ..Default::default() },
                Histogram::new_with_bounds(1, 600_000_000, 2).expect("static bounds"),
            ));
        }
        let (second, h) = &mut self.series[sec];
        second.requests += 1;
        // Latency is that of answered requests: a refused connect fails in
        // microseconds and would pull every percentile down.
        let answered = !matches!(s.outcome, Outcome::Error(_));
        if answered {
            let _ = h.record(s.latency_us.max(1));
        }
        match s.outcome {
            Outcome::Error(_) => second.errors += 1,
            Outcome::Fail => second.fail += 1,
            Outcome::Ok => {}
        }
        if s.done < self.from || s.done > self.end + Duration::from_secs(30) {
            return;
        }
        for acc in [&mut self.total, self.by.entry(s.kind.name()).or_insert_with(Acc::new)] {
            if answered {
                let _ = acc.h.record(s.latency_us.max(1));
            }
            match &s.outcome {
                Outcome::Ok => acc.ok += 1,
                Outcome::Fail => acc.fail += 1,
                Outcome::Error(_) => acc.errors += 1,
            }
        }
        let slow = answered && s.latency_us >= 1_000_000;
        let failed = !answered;
        let c = &mut self.connections;
        if s.kept {
            c.kept += 1;
            c.kept_errors += u64::from(failed);
            c.kept_over_1s += u64::from(slow);
        } else {
            c.new += 1;
            c.new_errors += u64::from(failed);
            c.new_over_1s += u64::from(slow);
        }
        if let Outcome::Error(k) = s.outcome {
            *self.errors.entry(k.to_owned()).or_insert(0) += 1;
        }
    }

    pub(crate) fn report(mut self, cfg: &SimConfig, delayed: u64, cpu: f64) -> Report {
        if let Some(w) = &mut self.acked {
            use std::io::Write;
            let _ = w.flush();
        }
        let started_unix_ms = (std::time::SystemTime::now() - self.start.elapsed())
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let secs = cfg.duration.as_secs_f64();
        for (second, h) in &mut self.series {
            second.p99_ms =
                if h.is_empty() { 0.0 } else { h.value_at_quantile(0.99) as f64 / 1000.0 };
        }
        let total = self.total.totals(secs);
        let requests = total.requests.max(1);
        Report {
            version: 1,
            target: cfg.target.to_string(),
            profile: cfg.profile.name.clone(),
            devices: cfg.devices,
            mode: match cfg.load {
                Load::Open(_) => "open".into(),
                Load::Closed(_) => "closed".into(),
            },
            rate: match cfg.load {
                Load::Open(r) => Some(r),
                Load::Closed(_) => None,
            },
            concurrency: match cfg.load {
                Load::Closed(n) => Some(n),
                Load::Open(_) => None,
            },
            duration_s: secs,
            warmup_s: cfg.warmup.as_secs_f64(),
            by_type: self.by.iter().map(|(k, a)| (k.to_string(), a.totals(secs))).collect(),
            total,
            errors_by_kind: self.errors,
            delayed_starts: delayed,
            series: self.series.into_iter().map(|(s, _)| s).collect(),
            sim_cpu_s: cpu,
            sim_cpu_us_per_request: cpu * 1e6 / requests as f64,
            started_unix_ms,
            outages: self.outages,
            acct_acknowledged: self.acks,
            tls: None,
            connections: self.connections,
        }
    }
}
