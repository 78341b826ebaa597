//! What a front costs on the director, read from `/proc` around the
//! measured window (`[measure] director_cpu`).
//!
//! * **User-space fronts** (HAProxy, `tacvs director` proxy mode): the CPU
//!   time (user + system, every thread) of the processes in the directors'
//!   namespaces, from `/proc/PID/stat`.
//! * **Kernel fronts** (nftables NAT, XDP direct routing) have no process on
//!   the data path: their work runs in softirq. With `[measure]
//!   director_cpu` the lab steers (RPS) the receive processing of the
//!   directors' interfaces to the last CPU and every other interface's to
//!   the others; on veth a packet is processed on the CPU RPS picks for the
//!   interface that receives it, so the last CPU's softirq time
//!   (`/proc/stat`) is the directors' kernel work — NAT, forwarding, generic
//!   XDP, and the proxies' TCP receive path too.
//! * Both are counted for every front, each less its rate while idle (a
//!   2-second window before the load: health checks, VRRP, the lab's own
//!   status polls), and divided by the requests the devices completed in
//!   the window. The machine is shared, so other work's softirq on that CPU
//!   would count too; the idle window takes out what is steady.
//! * DR also reports its XDP program's own run time per request (the
//!   kernel's `run_time_ns`, counted while the lab holds
//!   `BPF_ENABLE_STATS` over the window): on veth the softirq around it —
//!   generic XDP copies every TCP segment (a clone, since TCP keeps the
//!   original for retransmission) before the program runs — is the lab's
//!   plumbing; on a NIC running native XDP the program is what is left.
//! * Memory: the processes' resident set, and what the kernel holds for the
//!   front: conntrack entries (count × the slab's object size) for NAT, the
//!   BPF maps' memlock for DR.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::topo::{self, Front, Lab, Role};

/// Clock ticks per second of `/proc/*/stat` and `/proc/stat`.
fn ticks_per_s() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf takes an integer and returns one.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU counters at one moment.
#[derive(Debug, Clone)]
pub struct Snap {
    at: Instant,
    /// Per PID in the directors' namespaces: user + system ticks.
    procs: HashMap<u32, u64>,
    /// Softirq ticks of the directors' CPU.
    softirq: u64,
    /// The directors' XDP programs (by id): run time (ns) and runs, from
    /// their fdinfo (counted while [`tacvs_xdp::enable_run_time_stats`] is held).
    programs: HashMap<u64, (u64, u64)>,
}

fn director_pids(lab: &Lab) -> Vec<u32> {
    (1..=lab.spec.directors).flat_map(|i| topo::ns_pids(&lab.ns(Role::Director(i)))).collect()
}

fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The XDP programs `pid` holds: id → (run_time_ns, run_cnt), from the
/// fdinfo of its BPF program descriptors (prog_type 6 is XDP).
fn xdp_programs(pid: u32) -> Vec<(u64, (u64, u64))> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return Vec::new() };
    let mut out = Vec::new();
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if field("prog_type:") != Some(6) {
            continue;
        }
        if let (Some(id), Some(t), Some(n)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
            && !out.iter().any(|(i, _)| *i == id)
        {
            out.push((id, (t, n)));
        }
    }
    out
}

/// Softirq ticks of `cpu` from `/proc/stat`.
pub fn softirq_ticks(cpu: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let want = format!("cpu{cpu}");
    stat.lines()
        .find(|l| l.split_whitespace().next() == Some(want.as_str()))
        .and_then(|l| l.split_whitespace().nth(7))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Snap {
    /// Read now.
    pub fn take(lab: &Lab) -> Snap {
        let pids = director_pids(lab);
        let procs = pids.iter().filter_map(|&p| Some((p, proc_ticks(p)?))).collect();
        let programs = pids.iter().flat_map(|&p| xdp_programs(p)).collect();
        Snap { at: Instant::now(), procs, softirq: softirq_ticks(Lab::director_cpu()), programs }
    }

    /// (run time in ns, runs) of the XDP programs from `self` to `later`.
    fn program_runs(&self, later: &Snap) -> Option<(u64, u64)> {
        let mut any = false;
        let (mut ns, mut runs) = (0, 0);
        for (id, (t, n)) in &later.programs {
            if let Some((t0, n0)) = self.programs.get(id) {
                any = true;
                ns += t.saturating_sub(*t0);
                runs += n.saturating_sub(*n0);
            }
        }
        any.then_some((ns, runs))
    }

    /// (process CPU, softirq CPU) seconds per second from `self` to `later`:
    /// processes present at both reads.
    fn rates(&self, later: &Snap) -> (f64, f64, f64) {
        let hz = ticks_per_s();
        let secs = (later.at - self.at).as_secs_f64().max(1e-3);
        let procs: u64 = later
            .procs
            .iter()
            .filter_map(|(p, t)| self.procs.get(p).map(|t0| t.saturating_sub(*t0)))
            .sum();
        let soft = later.softirq.saturating_sub(self.softirq);
        (procs as f64 / hz / secs, soft as f64 / hz / secs, secs)
    }
}

/// Conntrack in the NAT director's namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Conntrack {
    /// Most entries seen (sampled every second).
    pub peak: u64,
    /// Packets dropped because no entry could be made (table full).
    pub drop: u64,
    /// Entries evicted to make room (TIME_WAIT and other closing ones).
    pub early_drop: u64,
    /// Insertions that failed.
    pub insert_failed: u64,
}

/// What a run measured of the directors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DirectorCost {
    /// Requests the devices completed in the window.
    pub requests: u64,
    /// Their processes' CPU per request, µs (less the idle rate).
    pub process_us: f64,
    /// Their kernel (softirq on the steered CPU) per request, µs (less idle).
    pub softirq_us: f64,
    /// The two together.
    pub total_us: f64,
    /// Idle rates subtracted: processes, softirq (CPU seconds per second).
    pub idle: (f64, f64),
    /// The processes' resident memory at the end, bytes.
    pub rss_bytes: u64,
    /// Kernel memory held for the front, bytes.
    pub kernel_bytes: u64,
    /// What `kernel_bytes` is.
    pub kernel_what: String,
    /// NAT: conntrack.
    #[serde(default)]
    pub conntrack: Option<Conntrack>,
    /// DR: the XDP program's own run time per request, µs (the kernel's
    /// `run_time_ns`; part of `softirq_us`), and its runs (packets) per
    /// request.
    #[serde(default)]
    pub program_us: Option<f64>,
    /// DR: packets the program saw per request.
    #[serde(default)]
    pub packets_per_request: Option<f64>,
}

/// The cost from three reads: before the load (`idle0`, `idle1`), and the
/// measured window (`from`, `to`), with `requests` completed in it.
pub fn cost(idle0: &Snap, idle1: &Snap, from: &Snap, to: &Snap, requests: u64) -> DirectorCost {
    let (ip, is, _) = idle0.rates(idle1);
    let (p, s, secs) = from.rates(to);
    let n = requests.max(1) as f64;
    let per = |rate: f64, idle: f64| ((rate - idle).max(0.0) * secs * 1e6) / n;
    let (process_us, softirq_us) = (per(p, ip), per(s, is));
    let runs = from.program_runs(to);
    DirectorCost {
        requests,
        process_us,
        softirq_us,
        total_us: process_us + softirq_us,
        idle: (ip, is),
        program_us: runs.map(|(ns, _)| ns as f64 / 1e3 / n),
        packets_per_request: runs.map(|(_, r)| r as f64 / n),
        ..DirectorCost::default()
    }
}

/// The directors' processes' resident memory, bytes.
pub fn rss(lab: &Lab) -> u64 {
    director_pids(lab)
        .iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
        })
        .sum()
}

/// BPF maps held by the directors' processes: their `memlock`, bytes.
pub fn bpf_map_bytes(lab: &Lab) -> u64 {
    let mut total = 0;
    for p in director_pids(lab) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fdinfo")) else { continue };
        for fd in fds.flatten() {
            let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
            if !info.contains("map_type:") {
                continue;
            }
            total += info
                .lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// Conntrack entries in director 1's namespace now.
pub fn conntrack_count(lab: &Lab) -> u64 {
    topo::sh(
        "ip",
        &[
            "netns",
            "exec",
            &lab.ns(Role::Director(1)),
            "cat",
            "/proc/sys/net/netfilter/nf_conntrack_count",
        ],
    )
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

/// `conntrack -S` in director 1's namespace, summed over CPUs:
/// (drop, early_drop, insert_failed).
pub fn conntrack_stats(lab: &Lab) -> (u64, u64, u64) {
    let out = topo::sh("ip", &["netns", "exec", &lab.ns(Role::Director(1)), "conntrack", "-S"])
        .unwrap_or_default();
    let field = |name: &str| -> u64 {
        out.split_whitespace()
            .filter_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    };
    (field("drop"), field("early_drop"), field("insert_failed"))
}

/// The size of one conntrack entry (the `nf_conntrack` slab's objects).
pub fn conntrack_object_bytes() -> u64 {
    std::fs::read_to_string("/proc/slabinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.split_whitespace().next() == Some("nf_conntrack"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(320)
}

/// Fill in the memory a front holds at the end of the run.
pub fn memory(lab: &Lab, c: &mut DirectorCost, conntrack_peak: u64) {
    c.rss_bytes = rss(lab);
    match lab.spec.front {
        Front::Nat => {
            let obj = conntrack_object_bytes();
            let (drop, early_drop, insert_failed) = conntrack_stats(lab);
            c.kernel_bytes = conntrack_peak * obj;
            c.kernel_what = format!("conntrack: peak {conntrack_peak} entries × {obj} B");
            c.conntrack = Some(Conntrack { peak: conntrack_peak, drop, early_drop, insert_failed });
        }
        Front::Dr => {
            c.kernel_bytes = bpf_map_bytes(lab);
            c.kernel_what = "BPF maps (flow table preallocated)".into();
        }
        _ => c.kernel_what = "sockets (not counted)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_cpu_time_is_read() {
        let me = std::process::id();
        let t0 = proc_ticks(me).unwrap();
        let until = Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(proc_ticks(me).unwrap() > t0);
        // cpu0 exists everywhere; its softirq counter reads as a number.
        let _ = softirq_ticks(0);
        assert!(std::fs::read_to_string("/proc/stat").unwrap().contains("cpu0 "));
    }

    #[test]
    fn cost_takes_out_the_idle_rate() {
        let t = Instant::now();
        let snap = |s: f64, p: u64, soft: u64| Snap {
            at: t + std::time::Duration::from_secs_f64(s),
            procs: HashMap::from([(1, p)]),
            softirq: soft,
            programs: HashMap::from([(7, (p * 1000, p))]),
        };
        let hz = ticks_per_s() as u64;
        // Idle: 0.1 CPU of processes, 0.05 of softirq. Window 10 s with
        // 0.6 and 0.25: (0.5 × 10 s) / 10,000 requests = 500 µs, and 200 µs.
        let c = cost(
            &snap(0.0, 0, 0),
            &snap(2.0, hz / 5, hz / 10),
            &snap(3.0, 10 * hz, 10 * hz),
            &snap(13.0, 16 * hz, 10 * hz + 5 * hz / 2),
            10_000,
        );
        assert!((c.process_us - 500.0).abs() < 1.0, "{c:?}");
        assert!((c.softirq_us - 200.0).abs() < 1.0, "{c:?}");
        assert!((c.total_us - 700.0).abs() < 2.0, "{c:?}");
        // The program ran 6 s × hz times for 6,000 ns × hz in the window.
        let runs = (6 * hz) as f64 / 10_000.0;
        assert_eq!(c.packets_per_request, Some(runs));
        assert!((c.program_us.unwrap() - runs).abs() < 1e-9, "{c:?}");
    }
}
