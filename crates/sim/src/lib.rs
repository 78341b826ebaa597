//! # tacvs-sim
//!
//! A fleet of simulated network devices, each with its own source address,
//! running a workload profile against a TACACS+ target. Open loop (a fixed
//! aggregate rate, latency measured from each request's *intended* send time,
//! so a slow target cannot slow the generator and hide its own latency) or
//! closed loop (a fixed number of requesters). Every outcome is classified.

pub mod expect;
mod pipeline;
pub mod plan;
pub mod profile;
pub mod report;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use ipnet::IpNet;
use tacvs_client::{Client, ClientError, ClientOptions, FixedAnswers};
use tacvs_proto::*;
use thiserror::Error;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::time::Instant;

pub use expect::Expect;
pub use profile::{Login, Op, Profile, Style};
pub use report::{Report, Totals};

/// Offered load.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Requests per second in aggregate.
    Open(f64),
    /// Concurrent requesters, each sending as soon as its last request ends.
    Closed(usize),
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to send.
    pub target: SocketAddr,
    /// Shared key.
    pub key: Key,
    /// Number of devices.
    pub devices: usize,
    /// Device addresses are taken from this prefix, in order.
    pub source: IpNet,
    /// Sockets open at once, at most.
    pub max_sockets: usize,
    /// Workload.
    pub profile: Profile,
    /// Load.
    pub load: Load,
    /// Measured time.
    pub duration: Duration,
    /// Time before measuring.
    pub warmup: Duration,
    /// Per-request timeout (connect, each reply).
    pub timeout: Duration,
    /// Closed loop, single-connect: sessions in flight per connection.
    pub pipeline: usize,
    /// Write one line per accounting record the server acknowledged
    /// (`DEVICE RECORD ARGS...`, as [`ack_key`] forms it), so a harness can
    /// prove each is in a journal.
    pub acked: Option<std::path::PathBuf>,
}

/// The key of an accounting record: device address, record type (start,
/// stop, watchdog) and its arguments in order. The server's journal line
/// carries the same three fields.
pub fn ack_key(device: &str, record: &str, args: &[String]) -> String {
    let mut k = format!("{device} {record}");
    for a in args {
        k.push(' ');
        k.push_str(a);
    }
    k
}

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

/// A run that could not start.
#[derive(Debug, Error)]
pub enum SimError {
    /// The source prefix holds fewer addresses than devices.
    #[error("--source {prefix} has {have} addresses, fewer than --devices {devices}")]
    SourceTooSmall {
        /// Prefix.
        prefix: IpNet,
        /// Addresses available.
        have: u128,
        /// Devices asked for.
        devices: usize,
    },
    /// Single-connect holds a socket per device.
    #[error(
        "single-connect keeps one socket per device: --devices {devices} exceeds --max-sockets {max}; lower --devices or raise --max-sockets (at most the open-file hard limit, `ulimit -Hn`: {hard_limit})"
    )]
    TooManyPersistent {
        /// Devices.
        devices: usize,
        /// Socket cap.
        max: usize,
        /// This process's open-file hard limit.
        hard_limit: u64,
    },
    /// Nothing to do.
    #[error("{0}")]
    Invalid(String),
}

/// The `n`th address of a prefix.
pub fn nth_address(net: IpNet, n: u128) -> Option<IpAddr> {
    match net {
        IpNet::V4(v4) => {
            let size = 1u128 << (32 - v4.prefix_len());
            (n < size)
                .then(|| IpAddr::from(((u32::from(v4.network()) as u128 + n) as u32).to_be_bytes()))
        }
        IpNet::V6(v6) => {
            let bits = 128 - u32::from(v6.prefix_len());
            let size = if bits >= 128 { u128::MAX } else { 1u128 << bits };
            (n < size).then(|| IpAddr::from((u128::from(v6.network()) + n).to_be_bytes()))
        }
    }
}

struct Device {
    addr: IpAddr,
    pos: usize,
    task: u64,
    /// A kept single-connect connection and the socket permit it holds.
    client: Option<(Client, tokio::sync::OwnedSemaphorePermit)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Authen,
    Author,
    Acct,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Authen => "authen",
            Kind::Author => "author",
            Kind::Acct => "acct",
        }
    }
}

enum Outcome {
    Ok,
    Fail,
    Error(&'static str),
}

struct Sample {
    kind: Kind,
    done: Instant,
    latency_us: u64,
    outcome: Outcome,
    /// An acknowledged accounting record's [`ack_key`].
    ack: Option<String>,
}

struct Shared {
    cfg: SimConfig,
    devices: Vec<Mutex<Device>>,
    sockets: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Sample>,
    delayed: AtomicU64,
    stop: AtomicBool,
    /// Each profile's session, built once (index 0: the profile, 1: its alternate).
    scripts: [Vec<Op>; 2],
}

/// Run the simulation to its end and report.
pub async fn run(cfg: SimConfig) -> Result<Report, SimError> {
    run_with_progress(cfg, Arc::new(Progress::default())).await
}

/// [`run`], updating `progress` as requests complete.
pub async fn run_with_progress(
    cfg: SimConfig,
    progress: Arc<Progress>,
) -> Result<Report, SimError> {
    if cfg.devices == 0 {
        return Err(SimError::Invalid("--devices must be at least 1".into()));
    }
    if cfg.acked.is_some() && cfg.pipeline > 1 {
        return Err(SimError::Invalid("--acked needs the session driver: drop --pipeline".into()));
    }
    let acked = match &cfg.acked {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| {
            SimError::Invalid(format!("--acked {}: cannot create: {e}", p.display()))
        })?)),
        None => None,
    };
    let have = match cfg.source {
        IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
        IpNet::V6(n) => 1u128.checked_shl(128 - u32::from(n.prefix_len())).unwrap_or(u128::MAX),
    };
    if have < cfg.devices as u128 {
        return Err(SimError::SourceTooSmall { prefix: cfg.source, have, devices: cfg.devices });
    }
    if cfg.profile.style == Style::SingleConnect && cfg.devices > cfg.max_sockets {
        return Err(SimError::TooManyPersistent {
            devices: cfg.devices,
            max: cfg.max_sockets,
            hard_limit: open_file_limit().1,
        });
    }
    let scripts = [
        cfg.profile.script(),
        cfg.profile.alternate.as_ref().map(|a| a.script()).unwrap_or_default(),
    ];
    // A fleet in steady state: each device starts somewhere in its session
    // (not all at the login), so a run shorter than one pass over the fleet
    // still sends every request type in the profile's mix.
    let phase = |i: usize| {
        let len = scripts[cfg.profile.variant(i)].len().max(1) as u64;
        ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % len as usize
    };
    let devices = (0..cfg.devices)
        .map(|i| {
            Mutex::new(Device {
                addr: nth_address(cfg.source, i as u128).expect("checked size"),
                pos: phase(i),
                task: 0,
                client: None,
            })
        })
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        sockets: Arc::new(Semaphore::new(cfg.max_sockets)),
        devices,
        tx,
        delayed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        scripts,
        cfg: cfg.clone(),
    });
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;

    // Collector.
    let collector = tokio::spawn(async move {
        let mut c = Collector::new(start, measure_from, end);
        c.acked = acked;
        while let Some(s) = rx.recv().await {
            progress.requests.fetch_add(1, Ordering::Relaxed);
            if matches!(s.outcome, Outcome::Error(_)) {
                progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            c.add(s);
            // Publish the previous second's p99 once a new second starts.
            if let Some((_, h)) = c.series.iter().rev().nth(1)
                && !h.is_empty()
            {
                progress.last_p99_us.store(h.value_at_quantile(0.99), Ordering::Relaxed);
            }
        }
        c
    });

    match cfg.load {
        Load::Open(rate) => {
            let mut k: u64 = 0;
            let per = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut handles = Vec::new();
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                // Start every request whose intended time has come.
                loop {
                    let intended = start + per.mul_f64(k as f64);
                    if intended > now || intended >= end {
                        break;
                    }
                    let sh = shared.clone();
                    let dev = (k % cfg.devices as u64) as usize;
                    handles.push(tokio::spawn(async move { request(&sh, dev, intended).await }));
                    k += 1;
                }
                if handles.len() > 4096 {
                    handles.retain(|h| !h.is_finished());
                }
                let next = start + per.mul_f64(k as f64);
                tokio::time::sleep_until(next.min(end)).await;
            }
            drain(&shared, handles, cfg.timeout).await;
        }
        Load::Closed(n) if cfg.profile.style == Style::SingleConnect => {
            // One connection per device, each with `pipeline` sessions in flight.
            let mut handles = Vec::new();
            for dev in 0..n.min(cfg.devices) {
                handles.push(tokio::spawn(pipeline::connection(
                    shared.clone(),
                    dev,
                    cfg.pipeline.max(1),
                    end,
                )));
            }
            tokio::time::sleep_until(end).await;
            drain(&shared, handles, cfg.timeout).await;
        }
        Load::Closed(n) => {
            let mut handles = Vec::new();
            for w in 0..n {
                let sh = shared.clone();
                handles.push(tokio::spawn(async move {
                    let mut dev = w % sh.cfg.devices;
                    while Instant::now() < end && !sh.stop.load(Ordering::Relaxed) {
                        request(&sh, dev, Instant::now()).await;
                        dev = (dev + n) % sh.cfg.devices;
                    }
                }));
            }
            tokio::time::sleep_until(end).await;
            drain(&shared, handles, cfg.timeout).await;
        }
    }
    // Close persistent connections, then let the collector finish.
    for d in &shared.devices {
        d.lock().await.client = None;
    }
    let delayed = shared.delayed.load(Ordering::Relaxed);
    drop(shared);
    let c = collector.await.expect("collector task");
    let cpu = cpu_seconds() - cpu0;
    Ok(c.report(&cfg, delayed, cpu))
}

async fn drain(shared: &Shared, handles: Vec<tokio::task::JoinHandle<()>>, timeout: Duration) {
    shared.stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + timeout + Duration::from_millis(500);
    for h in handles {
        let _ = tokio::time::timeout_at(deadline, h).await;
    }
}

/// One request by device `dev`, intended to start at `intended`.
async fn request(sh: &Shared, dev: usize, intended: Instant) {
    let mut d = sh.devices[dev].lock().await;
    if sh.stop.load(Ordering::Relaxed) && Instant::now() > intended + sh.cfg.timeout {
        return;
    }
    let profile = sh.cfg.profile.for_device(dev);
    let script = &sh.scripts[sh.cfg.profile.variant(dev)];
    let op = script[d.pos % script.len()].clone();
    d.pos += 1;
    if matches!(op, Op::Login) {
        d.task += 1;
    }
    // A persistent connection holds its socket permit for its whole life.
    let kept = d.client.take();
    let permit = if kept.is_some() {
        None
    } else {
        match sh.sockets.clone().acquire_owned().await {
            Ok(p) => Some(p),
            Err(_) => return,
        }
    };
    // The timer wheel ticks in milliseconds: later than 2 ms is a real delay.
    if Instant::now() > intended + Duration::from_millis(2) {
        // Late because the device was busy or sockets ran out: counted, and the
        // wait is part of the latency below.
        sh.delayed.fetch_add(1, Ordering::Relaxed);
    }
    let opts = ClientOptions {
        server: sh.cfg.target,
        key: Some(sh.cfg.key.clone()),
        timeout: sh.cfg.timeout,
        single_connect: profile.style == Style::SingleConnect,
        source: Some(d.addr),
    };
    let (mut client, permit) = match kept {
        Some((c, p)) => (c, p),
        None => (Client::new(opts), permit.expect("taken above when no connection is kept")),
    };
    let (kind, result, ack) = perform(&mut client, profile, &op, dev, d.task).await;
    let ack = ack
        .filter(|_| sh.cfg.acked.is_some() && result == Ok(true))
        .map(|args| ack_key(&d.addr.to_string(), &args.0, &args.1));
    // Keep a healthy single-connect connection (and its permit); otherwise both go.
    if profile.style == Style::SingleConnect && result.is_ok() {
        d.client = Some((client, permit));
    }
    let outcome = match result {
        Ok(true) => Outcome::Ok,
        Ok(false) => Outcome::Fail,
        Err(e) => Outcome::Error(e),
    };
    let done = Instant::now();
    let _ = sh.tx.send(Sample {
        kind,
        done,
        latency_us: (done - intended).as_micros() as u64,
        outcome,
        ack,
    });
}

fn arg(name: &str, value: &str) -> Argument {
    Argument::new(name, value, true)
        .unwrap_or_else(|_| Argument::new(name, "x", true).expect("short"))
}

/// A request ready to send.
pub(crate) enum Built {
    Authen(AuthenStart),
    Author(AaaRequest),
    Acct(AcctRequest),
}

/// Build the request for `op` of device `dev` in its session number `task`.
pub(crate) fn build(p: &Profile, op: &Op, dev: usize, task: u64) -> Built {
    let req = |args: Vec<Argument>| {
        let mut r = AaaRequest::new(Bytes::from(p.user.clone()), args);
        r.port = Bytes::from_static(b"vty0");
        r.priv_lvl = PrivLvl::new(15).unwrap_or(PrivLvl::USER);
        r
    };
    let task_id = || format!("{dev}-{task}");
    match op {
        Op::Login => {
            let (ty, data) = match p.login {
                Login::Pap => (AuthenType::Pap, Bytes::from(p.password.clone())),
                Login::Ascii => (AuthenType::Ascii, Bytes::new()),
            };
            Built::Authen(AuthenStart {
                action: AuthenAction::Login,
                priv_lvl: PrivLvl::USER,
                authen_type: ty,
                authen_service: AuthenService::Login,
                user: Bytes::from(p.user.clone()),
                port: Bytes::from_static(b"vty0"),
                rem_addr: Bytes::from_static(b"192.0.2.10"),
                data,
            })
        }
        Op::Exec | Op::Command(_) => {
            let mut args = vec![arg("service", "shell")];
            if let Op::Command(i) = op {
                let line = &p.command_lines[i % p.command_lines.len()];
                let mut w = line.split_whitespace();
                args.push(arg("cmd", w.next().unwrap_or("show")));
                args.extend(w.map(|x| arg("cmd-arg", x)));
            } else {
                args.push(Argument::new("cmd", "", false).expect("short"));
            }
            Built::Author(req(args))
        }
        Op::AcctStart | Op::AcctStop | Op::AcctCommand(_) | Op::AcctWatchdog => {
            let (flags, mut args) = match op {
                Op::AcctStart => {
                    (AcctFlags::Start, vec![arg("task_id", &task_id()), arg("service", "shell")])
                }
                Op::AcctWatchdog => (
                    AcctFlags::WatchdogUpdate,
                    vec![
                        arg("task_id", &task_id()),
                        arg("service", "shell"),
                        arg("elapsed_time", "2"),
                    ],
                ),
                Op::AcctStop => (
                    AcctFlags::Stop,
                    vec![
                        arg("task_id", &task_id()),
                        arg("service", "shell"),
                        arg("elapsed_time", "5"),
                    ],
                ),
                _ => (AcctFlags::Stop, vec![arg("task_id", &task_id()), arg("service", "shell")]),
            };
            if let Op::AcctCommand(i) = op {
                args.push(arg("cmd", &p.command_lines[i % p.command_lines.len()]));
            }
            Built::Acct(AcctRequest { flags, request: req(args) })
        }
    }
}

fn authen_result(s: AuthenStatus) -> Result<bool, &'static str> {
    match s {
        AuthenStatus::Pass => Ok(true),
        AuthenStatus::Fail => Ok(false),
        _ => Err("status_error"),
    }
}

fn author_result(s: AuthorStatus) -> Result<bool, &'static str> {
    match s {
        AuthorStatus::PassAdd | AuthorStatus::PassRepl => Ok(true),
        AuthorStatus::Fail => Ok(false),
        _ => Err("status_error"),
    }
}

fn acct_result(s: AcctStatus) -> Result<bool, &'static str> {
    if s == AcctStatus::Success { Ok(true) } else { Err("status_error") }
}

/// An accounting record's type and arguments, for its [`ack_key`].
type AckArgs = (String, Vec<String>);

/// Run one operation; Ok(true) = PASS/SUCCESS, Ok(false) = FAIL, Err(kind).
async fn perform(
    c: &mut Client,
    p: &Profile,
    op: &Op,
    dev: usize,
    task: u64,
) -> (Kind, Result<bool, &'static str>, Option<AckArgs>) {
    let err = |e: ClientError| e.kind();
    match build(p, op, dev, task) {
        Built::Authen(start) => {
            let mut answers =
                FixedAnswers { user: p.user.clone(), password: p.password.clone(), max_rounds: 2 };
            (
                Kind::Authen,
                c.authenticate(start, &mut answers)
                    .await
                    .map_err(err)
                    .and_then(|r| authen_result(r.status)),
                None,
            )
        }
        Built::Author(r) => (
            Kind::Author,
            c.authorize(r).await.map_err(err).and_then(|r| author_result(r.status)),
            None,
        ),
        Built::Acct(r) => {
            let key = (
                r.flags.as_str().to_owned(),
                r.request.args.iter().map(|a| a.to_string()).collect(),
            );
            (
                Kind::Acct,
                c.account(r).await.map_err(err).and_then(|r| acct_result(r.status)),
                Some(key),
            )
        }
    }
}

struct Collector {
    start: Instant,
    from: Instant,
    end: Instant,
    total: Acc,
    by: BTreeMap<&'static str, Acc>,
    errors: BTreeMap<String, u64>,
    series: Vec<(report::Second, Histogram<u64>)>,
    acked: Option<std::io::BufWriter<std::fs::File>>,
    acks: u64,
    outages: Vec<report::Outage>,
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
    fn new(start: Instant, from: Instant, end: Instant) -> Collector {
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
        }
    }

    fn add(&mut self, s: Sample) {
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
        if let Outcome::Error(k) = s.outcome {
            *self.errors.entry(k.to_owned()).or_insert(0) += 1;
        }
    }

    fn report(mut self, cfg: &SimConfig, delayed: u64, cpu: f64) -> Report {
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
        }
    }
}

/// This process's open-file limits (soft, hard): every socket is a descriptor.
pub fn open_file_limit() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit with a valid pointer to a local struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
    if ok { (r.rlim_cur, r.rlim_max) } else { (0, 0) }
}

/// User + system CPU time of this process, seconds.
pub fn cpu_seconds() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: getrusage with RUSAGE_SELF and a pointer to a zeroed local struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_a_prefix() {
        let n: IpNet = "127.1.0.0/16".parse().unwrap();
        assert_eq!(nth_address(n, 0), Some("127.1.0.0".parse().unwrap()));
        assert_eq!(nth_address(n, 257), Some("127.1.1.1".parse().unwrap()));
        assert_eq!(nth_address(n, 65536), None);
        let v6: IpNet = "fd00::/120".parse().unwrap();
        assert_eq!(nth_address(v6, 255), Some("fd00::ff".parse().unwrap()));
    }
}
