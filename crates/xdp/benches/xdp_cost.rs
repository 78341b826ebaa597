//! The XDP program's cost per packet, from `BPF_PROG_TEST_RUN` (the kernel
//! times the runs; no driver, no transmit): a flow-table hit, a new flow
//! (table lookup + LRU insert), a packet that is not for a VIP, and an ARP
//! answer, for each flow-table kind. Needs root. Not a test: numbers go to
//! docs/benchmarks.md.
//!
//! `cargo bench -p tacvs-xdp --bench xdp_cost`

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tacvs_director::core::maglev::Maglev;
use tacvs_xdp::frames::{self, Packet, SYN};
use tacvs_xdp::{
    DataPlane, FlowTable, HashInput, MacAddr, Options, Runner, Service, table_from_lookup, verdict,
};

const DIR: MacAddr = MacAddr([0x02, 0xd1, 0, 0, 0, 1]);
const DEV: MacAddr = MacAddr([0x02, 0xde, 0, 0, 0, 1]);

fn main() {
    if std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            !s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(true)
    {
        eprintln!("xdp_cost: needs root (BPF); nothing measured");
        return;
    }
    let rounds = 5;
    println!("XDP program cost per packet (BPF_PROG_TEST_RUN, median of {rounds} rounds), ns");
    println!(
        "{:<20} {:>7} {:>9} {:>14} {:>7} {:>7}",
        "flow table", "hit", "new flow", "new flow ×2cpu", "miss", "ARP"
    );
    for kind in [FlowTable::Shared, FlowTable::SharedPerCpuLists, FlowTable::PerCpu] {
        let mut cols: [Vec<f64>; 5] = Default::default();
        for _ in 0..rounds {
            let r = measure(kind);
            for (c, v) in cols.iter_mut().zip(r) {
                c.push(v);
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let [a, b, c, d, e] = cols.each_mut().map(med);
        println!("{:<20} {a:>7.1} {b:>9.1} {c:>14.1} {d:>7.1} {e:>7.1}", format!("{kind:?}"));
    }
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// [hit, new flow, new flow on 2 CPUs, miss, arp] in ns per packet.
fn measure(kind: FlowTable) -> [f64; 5] {
    let dp = setup(kind);
    let run = |frame: &[u8], repeat: u32, want: u32| {
        let out = dp.test_run(frame, repeat).unwrap();
        assert_eq!(out.verdict, want);
        ns(out.per_run)
    };
    let vip: SocketAddr = "10.9.0.1:49".parse().unwrap();
    let hit_frame = Packet::tcp(DEV, DIR, "10.100.0.1:40000".parse().unwrap(), vip, SYN).build();
    run(&hit_frame, 1, verdict::TX);
    let hit = run(&hit_frame, 1_000_000, verdict::TX);

    let n = 20_000u32;
    let new = new_flows(&dp, 101, n);
    // Two CPUs inserting at once: where the flow-table kinds differ.
    let runners = [dp.runner().unwrap(), dp.runner().unwrap()];
    let both = std::thread::scope(|s| {
        let hs: Vec<_> = runners
            .iter()
            .zip([102u8, 103])
            .map(|(r, net)| s.spawn(move || new_flows_with(r, net, n)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<f64>() / 2.0
    });

    let miss_frame = Packet::tcp(
        DEV,
        DIR,
        "10.100.0.1:40000".parse().unwrap(),
        "10.9.0.2:49".parse().unwrap(),
        SYN,
    )
    .build();
    let miss = run(&miss_frame, 1_000_000, verdict::PASS);

    // An answered request is a reply: time single runs.
    let arp = frames::arp_request(DEV, [10, 100, 0, 1].into(), [10, 9, 0, 1].into());
    let arp = (0..n).map(|_| run(&arp, 1, verdict::TX)).sum::<f64>() / f64::from(n);
    [hit, new, both, miss, arp]
}

/// Mean ns per new flow over `n` fresh sources in 10.`net`.0.0/16, each
/// frame run once.
fn new_flows(dp: &DataPlane, net: u8, n: u32) -> f64 {
    new_flows_with(&dp.runner().unwrap(), net, n)
}

fn new_flows_with(r: &Runner, net: u8, n: u32) -> f64 {
    let vip: SocketAddr = "10.9.0.1:49".parse().unwrap();
    let mut total = 0.0;
    for i in 0..n {
        let src = SocketAddr::from(([10, net, (i >> 8) as u8, i as u8], 1000));
        let out = r.run(&Packet::tcp(DEV, DIR, src, vip, SYN).build(), 1).unwrap();
        assert_eq!(out.verdict, verdict::TX);
        total += ns(out.per_run);
    }
    total / f64::from(n)
}

fn setup(kind: FlowTable) -> DataPlane {
    let mut dp = DataPlane::load(Options { flow_entries: 1 << 18, flow_table: kind })
        .expect("load the XDP program");
    dp.configure(DIR, None).unwrap();
    dp.set_active(true).unwrap();
    // `repeat` runs the program again on the frame it rewrote: servers with
    // our own MAC keep every repetition on the full forwarding path.
    let reals: Vec<(IpAddr, MacAddr)> =
        (1..=8u8).map(|n| (IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), DIR)).collect();
    let m = Maglev::new(&reals.iter().map(|(a, _)| (a.to_string(), 1)).collect::<Vec<_>>());
    let vip: SocketAddr = "10.9.0.1:49".parse().unwrap();
    dp.set_service(&Service {
        vip,
        hash: HashInput::SourceAddressAndPort,
        reals,
        table: table_from_lookup(m.size(), |h| m.lookup(h)),
    })
    .unwrap();
    dp
}
