//! The run: devices (each its own source address and place in its session
//! script), the socket budget, the collector task, and the driver the load
//! asks for. `request` is one session of one device, for the open and
//! closed drivers.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tacvs_client::{Client, ClientOptions, ClientTls, Handshake};
use tacvs_tls::rustls;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::time::Instant;

use crate::collect::{Collector, Outcome, Progress, Sample};
use crate::config::{DeviceCerts, Load, SimConfig, SimError, nth_address};
use crate::profile::{Op, Style};
use crate::report::Report;
use crate::request::{ack_key, perform};
use crate::sys::cpu_seconds;

pub(crate) struct Device {
    addr: IpAddr,
    pos: usize,
    task: u64,
    /// A kept single-connect connection and the socket permit it holds.
    client: Option<(Client, tokio::sync::OwnedSemaphorePermit)>,
}

/// What every driver task shares.
pub(crate) struct Shared {
    pub(crate) cfg: SimConfig,
    devices: Vec<Mutex<Device>>,
    pub(crate) sockets: Arc<Semaphore>,
    pub(crate) tx: mpsc::UnboundedSender<Sample>,
    delayed: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Each profile's session, built once (index 0: the profile, 1: its alternate).
    scripts: [Vec<Op>; 2],
    /// TACACS+ over TLS: a client configuration per device (or one for all).
    pub(crate) tls: Option<TlsRuntime>,
    handshakes: std::sync::Mutex<HandshakeStats>,
}

/// The devices' TLS configurations.
pub(crate) struct TlsRuntime {
    pub(crate) server_name: rustls::pki_types::ServerName<'static>,
    configs: Vec<Arc<rustls::ClientConfig>>,
}

impl TlsRuntime {
    /// Build every device's configuration (minting certificates if asked).
    fn new(cfg: &SimConfig) -> Result<Option<TlsRuntime>, SimError> {
        let Some(t) = &cfg.tls else { return Ok(None) };
        let bad = |e: String| SimError::Invalid(format!("TLS: {e}"));
        let one =
            |id| tacvs_tls::client::config(t.roots.clone(), id).map_err(|e| bad(e.to_string()));
        let configs = match &t.devices {
            DeviceCerts::None => vec![one(None)?],
            DeviceCerts::Shared(p) => {
                vec![one(Some(
                    tacvs_tls::client::identity_from_pem(&p.cert, &p.key)
                        .map_err(|e| bad(e.to_string()))?,
                ))?]
            }
            DeviceCerts::PerDevice(ca) => (0..cfg.devices)
                .map(|i| {
                    let addr = nth_address(cfg.source, i as u128).expect("checked size");
                    let pem = tacvs_tls::certs::issue(
                        ca,
                        tacvs_tls::certs::Role::Device,
                        &format!("dev-{i}"),
                        &[addr.to_string()],
                        tacvs_tls::certs::Validity::days(2),
                    )
                    .map_err(|e| bad(format!("cannot mint device certificates: {e}")))?;
                    one(Some(
                        tacvs_tls::client::identity_from_pem(&pem.cert, &pem.key)
                            .map_err(|e| bad(e.to_string()))?,
                    ))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Some(TlsRuntime { server_name: t.server_name.clone(), configs }))
    }

    /// Device `dev`'s TLS settings.
    pub(crate) fn client(&self, dev: usize) -> ClientTls {
        ClientTls {
            config: self.configs[dev % self.configs.len()].clone(),
            server_name: self.server_name.clone(),
        }
    }
}

/// Handshake times, full and resumed, in microseconds.
struct HandshakeStats {
    full: Histogram<u64>,
    resumed: Histogram<u64>,
    failed: u64,
}

impl Shared {
    /// Count one handshake.
    pub(crate) fn handshake(&self, h: Result<Handshake, ()>) {
        let mut s = self.handshakes.lock().unwrap_or_else(|e| e.into_inner());
        match h {
            Ok(h) => {
                let us = (h.took.as_micros() as u64).max(1);
                let _ = if h.resumed { s.resumed.record(us) } else { s.full.record(us) };
            }
            Err(()) => s.failed += 1,
        }
    }

    fn tls_report(&self) -> Option<crate::report::TlsHandshakes> {
        self.tls.as_ref()?;
        let s = self.handshakes.lock().unwrap_or_else(|e| e.into_inner());
        let (full, resumed) = (s.full.len(), s.resumed.len());
        Some(crate::report::TlsHandshakes {
            handshakes: full + resumed,
            resumed,
            resumption_rate: if full + resumed > 0 {
                resumed as f64 / (full + resumed) as f64
            } else {
                0.0
            },
            failed: s.failed,
            full_ms: crate::report::Latency::from_hist(&s.full),
            resumed_ms: crate::report::Latency::from_hist(&s.resumed),
        })
    }
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
    cfg.check()?;
    let acked = match &cfg.acked {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| {
            SimError::Invalid(format!("--acked {}: cannot create: {e}", p.display()))
        })?)),
        None => None,
    };
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
    let tls = TlsRuntime::new(&cfg)?;
    let hist = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        tls,
        handshakes: std::sync::Mutex::new(HandshakeStats {
            full: hist(),
            resumed: hist(),
            failed: 0,
        }),
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
        Load::Open(rate) => crate::open::drive(&shared, rate, start, end).await,
        Load::Closed(n) if cfg.profile.style == Style::SingleConnect => {
            crate::pipeline::drive(&shared, n, end).await
        }
        Load::Closed(n) => crate::closed::drive(&shared, n, end).await,
    }
    // Close persistent connections, then let the collector finish.
    for d in &shared.devices {
        d.lock().await.client = None;
    }
    let delayed = shared.delayed.load(Ordering::Relaxed);
    let tls = shared.tls_report();
    drop(shared);
    let c = collector.await.expect("collector task");
    let cpu = cpu_seconds() - cpu0;
    let mut report = c.report(&cfg, delayed, cpu);
    report.tls = tls;
    Ok(report)
}

/// Stop the drivers: let what is in flight finish within its timeout.
pub(crate) async fn drain(
    shared: &Shared,
    handles: Vec<tokio::task::JoinHandle<()>>,
    timeout: Duration,
) {
    shared.stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + timeout + Duration::from_millis(500);
    for h in handles {
        let _ = tokio::time::timeout_at(deadline, h).await;
    }
}

/// One request by device `dev`, intended to start at `intended`.
pub(crate) async fn request(sh: &Shared, dev: usize, intended: Instant) {
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
    let on_kept = kept.is_some();
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
        None => {
            let mut c = Client::new(opts);
            if let Some(t) = &sh.tls {
                c = c.with_tls(t.client(dev));
            }
            (c, permit.expect("taken above when no connection is kept"))
        }
    };
    let (kind, result, ack) = perform(&mut client, profile, &op, dev, d.task).await;
    if sh.tls.is_some() {
        if let Some(h) = client.take_handshake() {
            sh.handshake(Ok(h));
        } else if result == Err("tls_handshake") {
            sh.handshake(Err(()));
        }
    }
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
        kept: on_kept,
    });
}
