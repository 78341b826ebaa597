//! A lean open-loop load generator for a server's latency near saturation:
//! single-connect TCP connections (RFC 8907 §4.3), one authorization REQUEST
//! (§6.1) in flight on each, sent at a fixed aggregate rate whatever the
//! server does. Request `i` is due at `t0 + i / rate` and goes to connection
//! `i mod connections`; a connection whose previous request is still
//! unanswered queues it. Latency counts from the due time to the reply, so a
//! server that falls behind shows its backlog (no coordinated omission).
//!
//! `tacvs sim --rate` does the same with a fleet model and costs 14–24 µs of
//! its own CPU per request, too much to drive a server at 80 % of its
//! saturation from one core. Here the packets are built and obfuscated
//! before the clock starts (a cycle of session ids per connection), and one
//! thread polls the sockets with epoll. While the next request is due within
//! `--spin` (default 1 ms: at any rate above 1,000/s, always) it polls
//! without sleeping: on the 2-vCPU VM this was written on, sleeping until
//! each due time cost about 20 µs of CPU per request at 20,000/s, more than
//! the request's own work, and sent a p99 of 1.2 ms late (spinning: 0.3 ms).
//! Further off, it sleeps in epoll on a timerfd armed for the due time (a
//! poll timeout would round to milliseconds). Replies
//! are framed, de-obfuscated and decoded with `tacvs_proto`; anything but
//! PASS_ADD or PASS_REPL (§6.2) for the session in flight is an error.
//!
//! Its own cost is reported twice: CPU per request, and CPU per request
//! without the polls that found nothing while it spun (its work; the share
//! of its core that work took says how far it is from being the limit).
//! "Send lag" is how late it sent requests whose connection was idle: its
//! own part of every latency.
//!
//! `scripts/bench` runs it for the `author-80` workload against the floor
//! (`floor.rs`) and `tacvs server` (docs/benchmarks.md).
//!
//!     cargo run --release -p tacvs-server --example pace -- 127.0.0.1:4949 tacvs-demo-key \
//!         --rate 80000 --duration 8s --connections 64 --warmup 1s --json pace.json
//!
//! Other options: `--user alice --cmd "show version"` (what is authorized:
//! examples/server.toml permits both), `--sessions 1024` (session ids per
//! connection, reused round robin), `--spin 1ms`, `--drain 2s` (how long to
//! wait for replies after the last request is due). Prints one line of
//! results on stdout; `--json FILE` also writes them as JSON. Exits 1 if any
//! request went unanswered or was refused.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::{TimeSpec, TimeValLike};
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tacvs_proto::{
    AaaRequest, Argument, AuthorStatus, Body, DEFAULT_MAX_BODY, Flags, Header, Key, MinorVersion,
    PacketType, PrivLvl, open_body, seal, split_frame,
};

const NS: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------
// The schedule: which request is due when, and which one each connection
// sends next. No I/O, no clock: times are nanoseconds since t0.

/// One connection's place in the schedule. Its requests are `lane`,
/// `lane + n`, `lane + 2n`, … (round robin over `n` connections), so its
/// queue is the range of those that are released but not yet sent.
#[derive(Debug, Clone, Copy)]
struct Lane {
    /// The lane's next request not yet sent.
    next: u64,
    /// The request awaiting its reply, if any (at most one: the workload).
    in_flight: Option<u64>,
}

/// The open-loop schedule over `lanes` connections.
#[derive(Debug)]
struct Schedule {
    rate: u64,
    total: u64,
    lanes: Vec<Lane>,
    /// Requests `0..released` are due (released to their lanes).
    released: u64,
}

impl Schedule {
    /// `rate` requests per second for `duration_ns`: every request due
    /// strictly before the end.
    fn new(rate: u64, duration_ns: u64, lanes: usize) -> Self {
        let rate = rate.max(1);
        let total = (u128::from(duration_ns) * u128::from(rate)).div_ceil(u128::from(NS)) as u64;
        let lanes = (0..lanes.max(1) as u64).map(|l| Lane { next: l, in_flight: None }).collect();
        Schedule { rate, total, lanes, released: 0 }
    }

    /// When request `i` is due, ns after t0 (exact integer arithmetic, so a
    /// long run does not drift).
    fn due_ns(&self, i: u64) -> u64 {
        (u128::from(i) * u128::from(NS) / u128::from(self.rate)) as u64
    }

    fn lane_of(&self, i: u64) -> usize {
        (i % self.lanes.len() as u64) as usize
    }

    /// The due time of the next request not yet released; `None` once all are.
    fn next_due(&self) -> Option<u64> {
        (self.released < self.total).then(|| self.due_ns(self.released))
    }

    /// Release every request due by `now`. Those whose connection is idle are
    /// in flight from now: pushed onto `send` as (lane, request). The others
    /// wait in their connection's queue.
    fn release(&mut self, now: u64, send: &mut Vec<(usize, u64)>) {
        while self.released < self.total && self.due_ns(self.released) <= now {
            let i = self.released;
            self.released += 1;
            let n = self.lanes.len() as u64;
            let lane = self.lane_of(i);
            let l = &mut self.lanes[lane];
            if l.in_flight.is_none() {
                // Idle means everything released to it was sent: `i` is next.
                debug_assert_eq!(l.next, i);
                l.in_flight = Some(i);
                l.next = i + n;
                send.push((lane, i));
            }
        }
    }

    /// The reply to `lane`'s request in flight arrived at `now`. Returns that
    /// request, its latency from its due time (the time it waited in the
    /// queue included), and the lane's next queued request, which is in
    /// flight from now. `None` if nothing was in flight.
    fn complete(&mut self, lane: usize, now: u64) -> Option<(u64, u64, Option<u64>)> {
        let i = self.lanes[lane].in_flight.take()?;
        let latency = now.saturating_sub(self.due_ns(i));
        let n = self.lanes.len() as u64;
        let released = self.released;
        let l = &mut self.lanes[lane];
        let next = (l.next < released).then(|| {
            let j = l.next;
            l.in_flight = Some(j);
            l.next = j + n;
            j
        });
        Some((i, latency, next))
    }

    fn in_flight(&self, lane: usize) -> Option<u64> {
        self.lanes[lane].in_flight
    }

    /// Every request released and answered.
    fn done(&self) -> bool {
        self.released == self.total && self.lanes.iter().all(|l| l.in_flight.is_none())
    }
}

// ---------------------------------------------------------------------------
// Packets.

/// The session id of a connection's `k`-th request packet: distinct per
/// (connection, k) for up to 2^16 of each (an odd multiplier is a bijection
/// on u32, and the input is never 0), spread over the range as random ids
/// would be (RFC 8907 §4.1).
fn session_id(lane: usize, k: usize) -> u32 {
    ((((lane as u32) << 16) | k as u32) + 1).wrapping_mul(0x9e37_79b1)
}

/// Every connection's cycle of sealed authorization REQUESTs, one buffer:
/// packet (lane, k) is `stride` bytes at `(lane * per_lane + k) * stride`.
#[derive(Debug)]
struct Packets {
    bytes: Vec<u8>,
    stride: usize,
    per_lane: usize,
}

impl Packets {
    /// Seal `request` under each session id: the header has seq_no 1 and
    /// the SINGLE_CONNECT flag (RFC 8907 §4.1, §4.3), the body is obfuscated
    /// with the MD5 pad of its session id (§4.5).
    fn build(request: &AaaRequest, key: &Key, lanes: usize, per_lane: usize) -> Self {
        let mut bytes = Vec::new();
        let mut stride = 0;
        let body = Body::AuthorRequest(request.clone());
        for lane in 0..lanes {
            for k in 0..per_lane {
                let header = Header {
                    minor: MinorVersion::Default,
                    packet_type: PacketType::Authorization,
                    seq_no: 1,
                    flags: Flags(Flags::SINGLE_CONNECT),
                    session_id: session_id(lane, k),
                    length: 0,
                };
                let start = bytes.len();
                seal(header, &body, Some(key), DEFAULT_MAX_BODY, &mut bytes)
                    .expect("the request fits a packet");
                stride = bytes.len() - start;
            }
        }
        Packets { bytes, stride, per_lane }
    }

    /// The packet for request `i` on `lane` of `lanes`, and its session id.
    fn get(&self, lane: usize, lanes: usize, i: u64) -> (&[u8], u32) {
        let k = (i / lanes as u64 % self.per_lane as u64) as usize;
        let at = (lane * self.per_lane + k) * self.stride;
        (&self.bytes[at..at + self.stride], session_id(lane, k))
    }
}

/// What a reply to the request in flight was.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// PASS_ADD or PASS_REPL (RFC 8907 §6.2).
    Pass,
    /// Another status: the server answered but refused (or failed).
    Refused,
    /// Not an authorization RESPONSE to the session in flight, or undecodable.
    Wrong,
}

/// Judge a reply frame against the session in flight.
fn check_reply(header: &Header, body: BytesMut, key: &Key, expect_sid: u32) -> Reply {
    if header.packet_type != PacketType::Authorization
        || header.seq_no != 2
        || header.session_id != expect_sid
    {
        return Reply::Wrong;
    }
    match open_body(header, body, Some(key)) {
        Ok(Body::AuthorResponse(r)) => match r.status {
            AuthorStatus::PassAdd | AuthorStatus::PassRepl => Reply::Pass,
            _ => Reply::Refused,
        },
        _ => Reply::Wrong,
    }
}

// ---------------------------------------------------------------------------
// Options.

/// The run's options (no `Debug`: it holds the shared key).
struct Opts {
    addr: SocketAddr,
    key: String,
    rate: u64,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    sessions: usize,
    spin: Duration,
    drain: Duration,
    user: String,
    cmd: String,
    json: Option<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Opts, String> {
    let mut args = args.into_iter();
    let mut pos = Vec::new();
    let mut o = Opts {
        addr: ([127, 0, 0, 1], 4949).into(),
        key: String::new(),
        rate: 0,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        connections: 64,
        sessions: 1024,
        spin: Duration::from_millis(1),
        drain: Duration::from_secs(2),
        user: "alice".into(),
        cmd: "show version".into(),
        json: None,
    };
    let dur = |v: String| humantime::parse_duration(&v).map_err(|e| format!("{v}: {e}"));
    let num = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
    while let Some(a) = args.next() {
        if !a.starts_with("--") {
            pos.push(a);
            continue;
        }
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--rate" => o.rate = num(v)?,
            "--duration" => o.duration = dur(v)?,
            "--warmup" => o.warmup = dur(v)?,
            "--connections" => o.connections = num(v)? as usize,
            "--sessions" => o.sessions = num(v)? as usize,
            "--spin" => o.spin = dur(v)?,
            "--drain" => o.drain = dur(v)?,
            "--user" => o.user = v,
            "--cmd" => o.cmd = v,
            "--json" => o.json = Some(v),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    let [addr, key] = <[String; 2]>::try_from(pos).map_err(|_| "ADDR and KEY are required")?;
    o.addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    o.key = key;
    if o.rate == 0 {
        return Err("--rate must be above 0".into());
    }
    if !(1..=4096).contains(&o.connections) || !(1..=65536).contains(&o.sessions) {
        return Err("--connections must be 1..=4096 and --sessions 1..=65536".into());
    }
    if o.warmup >= o.duration {
        return Err("--warmup must be shorter than --duration".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// The run.

const TIMER: Token = Token(usize::MAX);
/// A gap this long between two clock readings of the running loop (at most
/// a syscall or two apart) means the generator was not running: preempted,
/// or its vCPU descheduled by the host. Every request due meanwhile is late.
const PAUSE: u64 = 1_000_000;

/// Pauses seen between readings of the loop's clock (see [`PAUSE`]).
#[derive(Debug, Default)]
struct Pauses {
    last: Option<u64>,
    count: u64,
    longest: u64,
}

impl Pauses {
    /// A clock reading, ns.
    fn saw(&mut self, t: u64) {
        if let Some(gap) = self.last.map(|l| t.saturating_sub(l)).filter(|&g| g >= PAUSE) {
            self.count += 1;
            self.longest = self.longest.max(gap);
        }
        self.last = Some(t);
    }

    /// The loop is about to sleep: the gap to the next reading is no pause.
    fn sleep(&mut self) {
        self.last = None;
    }
}

/// CLOCK_MONOTONIC in ns: the timerfd's clock, so due times arm it as they are.
fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("monotonic clock");
    Duration::from(t).as_nanos() as u64
}

/// User + system CPU of this process, ns.
fn cpu_ns() -> u64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    (u.user_time().num_microseconds() + u.system_time().num_microseconds()) as u64 * 1000
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    /// Bytes of a request the socket did not take at once.
    pending: Vec<u8>,
    alive: bool,
}

#[derive(Debug, Default)]
struct Counts {
    pass: u64,
    refused: u64,
    wrong: u64,
}

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pace: {e}");
            eprintln!(
                "usage: pace ADDR KEY --rate N [--duration 10s] [--warmup 1s] [--connections 64] \
                 [--sessions 1024] [--spin 1ms] [--drain 2s] [--user alice] \
                 [--cmd \"show version\"] [--json FILE]"
            );
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(e) => {
            eprintln!("pace: {e}");
            std::process::exit(2);
        }
    }
}

fn run(o: &Opts) -> std::io::Result<bool> {
    let key = Key::new(o.key.as_str());
    // service=shell cmd=show cmd-arg=version: the AVs of a command authorization (RFC 8907 §6.1).
    let mut args = vec![Argument::new("service", "shell", true).map_err(std::io::Error::other)?];
    let names = std::iter::once("cmd").chain(std::iter::repeat("cmd-arg"));
    for (name, w) in names.zip(o.cmd.split_whitespace()) {
        args.push(Argument::new(name, w, true).map_err(std::io::Error::other)?);
    }
    let mut request = AaaRequest::new(Bytes::from(o.user.clone()), args);
    request.priv_lvl = PrivLvl::new(15).unwrap_or(PrivLvl::USER);
    request.port = Bytes::from_static(b"vty0");
    request.rem_addr = Bytes::from_static(b"192.0.2.10");
    let n = o.connections;
    let packets = Packets::build(&request, &key, n, o.sessions);

    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(n);
    for lane in 0..n {
        let s = StdTcpStream::connect(o.addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry().register(&mut stream, Token(lane), Interest::READABLE)?;
        conns.push(Conn {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            pending: Vec::new(),
            alive: true,
        });
    }
    let timer =
        TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)
            .map_err(std::io::Error::from)?;
    let timer_fd = timer.as_fd().as_raw_fd();
    poll.registry().register(&mut SourceFd(&timer_fd), TIMER, Interest::READABLE)?;

    let duration_ns = o.duration.as_nanos() as u64;
    let warmup_ns = o.warmup.as_nanos() as u64;
    let stop_ns = duration_ns + o.drain.as_nanos() as u64;
    let spin_ns = o.spin.as_nanos() as u64;
    let mut sched = Schedule::new(o.rate, duration_ns, n);
    // Up to 100 s at 3 significant digits, in ns.
    let mut latency = Histogram::<u64>::new_with_bounds(1, 100 * NS, 3).expect("bounds");
    // How late the generator itself sent the requests it sent on time (their
    // connection idle): its own share of every latency.
    let mut lag = Histogram::<u64>::new_with_bounds(1, 100 * NS, 3).expect("bounds");
    let mut counts = Counts::default();
    let mut events = Events::with_capacity(1024);
    let mut send = Vec::with_capacity(n);
    let mut buf = [0u8; 4096];
    let mut armed: Option<u64> = None;
    let mut last_reply = 0u64;
    // Time in turns of the loop that found nothing to do while spinning
    // (no request due, a poll without events): CPU spent waiting, not working.
    let mut spun = 0u64;
    let mut idle_since: Option<u64> = None;
    let mut pauses = Pauses::default();

    let cpu0 = cpu_ns();
    let t0 = mono_ns();
    loop {
        let now = mono_ns() - t0;
        pauses.saw(now);
        if let Some(from) = idle_since.take() {
            spun += now - from;
        }
        sched.release(now, &mut send);
        for &(lane, i) in &send {
            lag.saturating_record(now - sched.due_ns(i));
            transmit(&mut conns[lane], &poll, lane, packets.get(lane, n, i).0)?;
        }
        let sent = !send.is_empty();
        send.clear();
        if sched.done() || now >= stop_ns {
            break;
        }
        let timeout = match sched.next_due() {
            Some(d) if d <= now + spin_ns => Some(Duration::ZERO),
            d => {
                let wake = d.unwrap_or(stop_ns);
                if armed != Some(wake) {
                    let at = TimeSpec::from(Duration::from_nanos(t0 + wake));
                    timer
                        .set(Expiration::OneShot(at), TimerSetTimeFlags::TFD_TIMER_ABSTIME)
                        .map_err(std::io::Error::from)?;
                    armed = Some(wake);
                }
                pauses.sleep();
                None
            }
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if timeout == Some(Duration::ZERO) && events.is_empty() && !sent {
            // This turn, from its clock read to the next one, was waiting.
            idle_since = Some(now);
        }
        for ev in events.iter() {
            let lane = ev.token().0;
            if lane == TIMER.0 {
                // Re-arming resets the timerfd; nothing to read.
                continue;
            }
            let c = &mut conns[lane];
            if ev.is_writable() && !c.pending.is_empty() {
                flush(c, &poll, lane)?;
            }
            if !c.alive || !(ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                continue;
            }
            read_all(c, &mut buf);
            loop {
                let (header, body) = match split_frame(&mut c.rbuf, DEFAULT_MAX_BODY) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => {
                        counts.wrong += 1;
                        c.alive = false;
                        break;
                    }
                };
                let Some(i) = sched.in_flight(lane) else {
                    counts.wrong += 1;
                    c.alive = false;
                    break;
                };
                let now = mono_ns() - t0;
                pauses.saw(now);
                let verdict = check_reply(&header, body, &key, packets.get(lane, n, i).1);
                if verdict == Reply::Wrong {
                    // Its request stays unanswered (an error); the lane is out.
                    counts.wrong += 1;
                    c.alive = false;
                    break;
                }
                let (i, ns, next) = sched.complete(lane, now).expect("in flight");
                last_reply = now;
                if verdict == Reply::Pass {
                    counts.pass += 1;
                    if sched.due_ns(i) >= warmup_ns {
                        latency.saturating_record(ns);
                    }
                } else {
                    counts.refused += 1;
                }
                if let Some(j) = next {
                    transmit(c, &poll, lane, packets.get(lane, n, j).0)?;
                }
            }
            if !c.alive {
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
    let wall_ns = mono_ns() - t0;
    let cpu = cpu_ns() - cpu0;

    let total = sched.total;
    let answered = counts.pass + counts.refused;
    let errors = total - counts.pass;
    let unanswered = total - answered;
    let lost = conns.iter().filter(|c| !c.alive).count();
    let elapsed = last_reply.max(duration_ns) as f64 / NS as f64;
    let achieved = counts.pass as f64 / elapsed;
    let cpu_us = cpu as f64 / 1e3 / answered.max(1) as f64;
    let cpu_share = cpu as f64 / wall_ns as f64;
    let work = cpu.saturating_sub(spun);
    let work_us = work as f64 / 1e3 / answered.max(1) as f64;
    let work_share = work as f64 / wall_ns as f64;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    println!(
        "pace: {total} requests at {}/s (achieved {achieved:.0}/s), {errors} errors \
         ({} refused, {unanswered} unanswered of which {} had a wrong reply; {lost} connections lost); \
         latency ms p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} ({} after warm-up); \
         send lag ms p99 {:.3} max {:.3}; {} pauses of the generator ≥ 1 ms \
         (longest {:.3} ms); generator CPU {cpu_us:.2} µs/request ({:.0} % of a core), \
         {work_us:.2} µs/request ({:.0} %) without waiting polls",
        o.rate,
        counts.refused,
        counts.wrong,
        ms(&latency, 0.5),
        ms(&latency, 0.9),
        ms(&latency, 0.99),
        ms(&latency, 0.999),
        latency.max() as f64 / 1e6,
        latency.len(),
        ms(&lag, 0.99),
        lag.max() as f64 / 1e6,
        pauses.count,
        pauses.longest as f64 / 1e6,
        cpu_share * 100.0,
        work_share * 100.0,
    );
    if let Some(path) = &o.json {
        let report = serde_json::json!({
            "rate": o.rate,
            "duration_s": o.duration.as_secs_f64(),
            "warmup_s": o.warmup.as_secs_f64(),
            "connections": n,
            "requests": total,
            "ok": counts.pass,
            "errors": errors,
            "refused": counts.refused,
            "unanswered": unanswered,
            "wrong_replies": counts.wrong,
            "connections_lost": lost,
            "achieved_rate": achieved.round(),
            "measured": latency.len(),
            "latency_ms": {
                "p50": round(ms(&latency, 0.5)),
                "p90": round(ms(&latency, 0.9)),
                "p99": round(ms(&latency, 0.99)),
                "p999": round(ms(&latency, 0.999)),
                "max": round(latency.max() as f64 / 1e6),
            },
            "send_lag_ms": {
                "p50": round(ms(&lag, 0.5)),
                "p99": round(ms(&lag, 0.99)),
                "max": round(lag.max() as f64 / 1e6),
            },
            "generator": {
                "cpu_us_per_request": (cpu_us * 100.0).round() / 100.0,
                "cpu_share": (cpu_share * 1000.0).round() / 1000.0,
                "work_us_per_request": (work_us * 100.0).round() / 100.0,
                "work_share": (work_share * 1000.0).round() / 1000.0,
                "pauses_1ms": pauses.count,
                "longest_pause_ms": round(pauses.longest as f64 / 1e6),
            },
        });
        std::fs::write(path, format!("{report:#}\n"))?;
    }
    Ok(errors == 0)
}

/// Write `packet` on `c`. What the socket does not take now waits for
/// writability; with one request in flight per connection and a socket
/// buffer of kilobytes, that does not happen in practice.
fn transmit(c: &mut Conn, poll: &Poll, lane: usize, packet: &[u8]) -> std::io::Result<()> {
    if !c.alive {
        return Ok(());
    }
    if !c.pending.is_empty() {
        c.pending.extend_from_slice(packet);
        return Ok(());
    }
    let at = write_some(c, packet);
    if c.alive && at < packet.len() {
        c.pending.extend_from_slice(&packet[at..]);
        poll.registry().reregister(
            &mut c.stream,
            Token(lane),
            Interest::READABLE | Interest::WRITABLE,
        )?;
    }
    Ok(())
}

/// The socket is writable again: send what waited, and stop watching for
/// writability once it is all out (each ACK would report it otherwise).
fn flush(c: &mut Conn, poll: &Poll, lane: usize) -> std::io::Result<()> {
    let p = std::mem::take(&mut c.pending);
    let at = write_some(c, &p);
    if !c.alive {
        return Ok(());
    }
    if at < p.len() {
        c.pending.extend_from_slice(&p[at..]);
        return Ok(());
    }
    poll.registry().reregister(&mut c.stream, Token(lane), Interest::READABLE)
}

/// Write as much of `bytes` as the socket takes now; how much that was. A
/// write error loses the connection (its requests go unanswered: errors).
fn write_some(c: &mut Conn, bytes: &[u8]) -> usize {
    let mut at = 0;
    while at < bytes.len() {
        match c.stream.write(&bytes[at..]) {
            Ok(k) => at += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                c.alive = false;
                break;
            }
        }
    }
    at
}

/// Read what the socket holds into `c.rbuf`. A read shorter than `buf`
/// drained it: epoll reports data that arrives after it as a new edge, so
/// the usual second read (to see WouldBlock) is a syscall saved per reply.
fn read_all(c: &mut Conn, buf: &mut [u8]) {
    loop {
        match c.stream.read(buf) {
            Ok(0) => {
                c.alive = false;
                return;
            }
            Ok(k) => {
                c.rbuf.extend_from_slice(&buf[..k]);
                if k < buf.len() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                c.alive = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn due_times_are_exact_and_the_run_ends_before_its_duration() {
        let s = Schedule::new(3, NS, 1);
        assert_eq!((s.due_ns(0), s.due_ns(1), s.due_ns(2)), (0, 333_333_333, 666_666_666));
        assert_eq!(s.total, 3);
        // A nanosecond more lets request 3 (due at exactly 1 s) in.
        assert_eq!(Schedule::new(3, NS + 1, 1).total, 4);
        // No drift over a long run: request 80,000 × 100 is due at 100 s.
        assert_eq!(Schedule::new(80_000, 200 * NS, 64).due_ns(8_000_000), 100 * NS);
    }

    #[test]
    fn requests_go_round_robin_and_idle_connections_send_at_once() {
        let mut s = Schedule::new(1000, 10 * MS, 2);
        let mut send = Vec::new();
        s.release(0, &mut send);
        assert_eq!(send, [(0, 0)]);
        send.clear();
        s.release(MS, &mut send);
        assert_eq!(send, [(1, 1)]);
        assert_eq!(s.next_due(), Some(2 * MS));
        send.clear();
        // Both busy: requests 2 and 3 wait, nothing is sent.
        s.release(3 * MS, &mut send);
        assert!(send.is_empty());
        assert_eq!(s.complete(1, 3 * MS + 500_000), Some((1, 2 * MS + 500_000, Some(3))));
        assert_eq!(s.complete(0, 4 * MS), Some((0, 4 * MS, Some(2))));
        assert_eq!(s.complete(0, 4 * MS), Some((2, 2 * MS, None)));
        assert_eq!(s.complete(0, 4 * MS), None, "nothing in flight");
    }

    #[test]
    fn a_request_queued_behind_a_slow_one_counts_its_wait() {
        let mut s = Schedule::new(1000, 3 * MS, 1);
        let mut send = Vec::new();
        s.release(0, &mut send);
        assert_eq!(send, [(0, 0)]);
        send.clear();
        // Requests 1 (due 1 ms) and 2 (due 2 ms) queue behind request 0.
        s.release(2 * MS + 500_000, &mut send);
        assert!(send.is_empty());
        assert!(!s.done());
        // Request 0 is answered at 3 ms: 3 ms latency; request 1 goes out now.
        assert_eq!(s.complete(0, 3 * MS), Some((0, 3 * MS, Some(1))));
        // Request 1 is answered 0.1 ms after it was sent, but it was due at
        // 1 ms: 2.1 ms, the wait in the queue included.
        assert_eq!(s.complete(0, 3 * MS + 100_000), Some((1, 2 * MS + 100_000, Some(2))));
        assert_eq!(s.complete(0, 3 * MS + 200_000), Some((2, MS + 200_000, None)));
        assert!(s.done());
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_late_generator_counts_its_own_lateness() {
        let mut s = Schedule::new(1000, 2 * MS, 4);
        let mut send = Vec::new();
        // The loop woke only at 5 ms: both requests go at once, each late.
        s.release(5 * MS, &mut send);
        assert_eq!(send, [(0, 0), (1, 1)]);
        assert_eq!(s.complete(1, 5 * MS + 50_000).map(|r| r.1), Some(4 * MS + 50_000));
    }

    #[test]
    fn replies_are_judged_by_session_and_status() {
        let key = Key::new("k");
        let req = AaaRequest::new(Bytes::from_static(b"alice"), Vec::new());
        let p = Packets::build(&req, &key, 3, 4);
        let (pkt, sid) = p.get(2, 3, 3 * 5 + 2);
        // Lane 2's sixth request uses its packet 5 mod 4 = 1.
        assert_eq!(sid, session_id(2, 1));
        let h = Header::decode(pkt, DEFAULT_MAX_BODY).unwrap();
        assert_eq!((h.session_id, h.seq_no, h.flags.single_connect()), (sid, 1, true));
        let ids: std::collections::HashSet<u32> =
            (0..3).flat_map(|l| (0..4).map(move |k| session_id(l, k))).collect();
        assert_eq!(ids.len(), 12);

        let reply = |status, sid| {
            let h = Header { seq_no: 2, session_id: sid, ..h };
            let mut out = Vec::new();
            let body = Body::AuthorResponse(tacvs_proto::AuthorResponse::new(status, Bytes::new()));
            seal(h, &body, Some(&key), DEFAULT_MAX_BODY, &mut out).unwrap();
            let mut b = BytesMut::from(&out[..]);
            split_frame(&mut b, DEFAULT_MAX_BODY).unwrap().unwrap()
        };
        let (h, b) = reply(AuthorStatus::PassAdd, sid);
        assert_eq!(check_reply(&h, b, &key, sid), Reply::Pass);
        let (h, b) = reply(AuthorStatus::PassRepl, sid);
        assert_eq!(check_reply(&h, b, &key, sid), Reply::Pass);
        let (h, b) = reply(AuthorStatus::Fail, sid);
        assert_eq!(check_reply(&h, b, &key, sid), Reply::Refused);
        let (h, b) = reply(AuthorStatus::PassAdd, sid ^ 1);
        assert_eq!(check_reply(&h, b, &key, sid), Reply::Wrong);
        let (h, b) = reply(AuthorStatus::PassAdd, sid);
        assert_eq!(check_reply(&h, b, &Key::new("other"), sid), Reply::Wrong);
    }

    #[test]
    fn a_pause_is_a_long_gap_between_readings_while_awake() {
        let mut p = Pauses::default();
        for t in [0, 300_000, 900_000, 1_800_000] {
            p.saw(t);
        }
        assert_eq!((p.count, p.longest), (0, 0));
        p.saw(4_300_000);
        p.saw(5_400_000);
        assert_eq!((p.count, p.longest), (2, 2_500_000));
        // Asleep in epoll: a long gap is the loop's choice.
        p.sleep();
        p.saw(50_000_000);
        assert_eq!(p.count, 2);
    }

    #[test]
    fn options() {
        let a = |s: &str| parse_args(s.split(' ').map(String::from));
        let o = a("127.0.0.1:1 k --rate 500 --duration 3s --connections 8").unwrap();
        assert_eq!(
            (o.rate, o.duration, o.connections, o.sessions),
            (500, Duration::from_secs(3), 8, 1024)
        );
        assert!(a("127.0.0.1:1 k").is_err(), "no rate");
        assert!(a("127.0.0.1:1 --rate 5").is_err(), "no key");
        assert!(a("127.0.0.1:1 k --rate 5 --duration 1s").is_err(), "warm-up is the whole run");
        assert!(a("127.0.0.1:1 k --rate 5 --bogus 1").is_err());
    }
}
