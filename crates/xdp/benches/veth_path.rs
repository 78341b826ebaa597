//! Native against generic XDP on veth, whole path: a device namespace sends
//! TCP segments to the VIP (raw IPv4 socket, so the kernel resolves the
//! VIP's MAC through the program's ARP answer), the director forwards them
//! to a sink server that drops them (it does not hold the VIP). Reported: ns
//! per packet over the whole path (send, bridge, director, bridge, drop) —
//! on veth it all runs on the sending CPU — and, as a baseline, the same
//! path with no program (the director's kernel drops the packets). Needs
//! root. Not a test.
//!
//! `cargo bench -p tacvs-xdp --bench veth_path`

#[path = "../tests/it/netns.rs"]
#[allow(dead_code)]
mod netns;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tacvs_xdp::frames::{Packet, SYN};
use tacvs_xdp::{AttachMode, DataPlane, MacAddr, Options, PassProgram, Service};

const VIP: [u8; 4] = [10, 78, 0, 100];
const DEVICE: [u8; 4] = [10, 78, 0, 10];
const PACKETS: u32 = 300_000;

fn main() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !root {
        eprintln!("veth_path: needs root (BPF, namespaces); nothing measured");
        return;
    }
    println!(
        "veth whole path, {PACKETS} TCP segments from one sender: ns per packet the director \
         handled (best of 3)"
    );
    for mode in [None, Some(AttachMode::Generic), Some(AttachMode::Native)] {
        let runs: Vec<(f64, f64)> = (0..3).map(|_| run(mode)).collect();
        let (best, lost) =
            runs.iter().copied().fold((f64::MAX, 0.0), |a, b| if b.0 < a.0 { b } else { a });
        let name = match mode {
            None => "no program (dropped)",
            Some(AttachMode::Generic) => "generic XDP_TX",
            Some(_) => "native XDP_TX",
        };
        println!("{name:<22} {best:>8.0}   lost before the program: {:.1} %", lost * 100.0);
    }
}

/// (ns per packet the director handled, share lost before the program).
fn run(mode: Option<AttachMode>) -> (f64, f64) {
    let topo = netns::Topo::new("bench");
    let device = topo.host("dev", DEVICE);
    let director = topo.host("dir", [10, 78, 0, 2]);
    let sink = topo.host("sink", [10, 78, 0, 11]);
    let sink_mac = netns::run_in(&sink, || tacvs_xdp::interface("eth0")).unwrap().1;
    let _peer = (mode == Some(AttachMode::Native))
        .then(|| netns::run_in(&topo.hub(), || PassProgram::attach("v-dir")).unwrap());
    let dp = mode.map(|mode| {
        netns::run_in(&director, move || {
            let mut dp = DataPlane::load(Options::default()).unwrap();
            dp.attach("eth0", mode).unwrap();
            dp.set_service(&Service {
                vip: (Ipv4Addr::from(VIP), 49).into(),
                hash: tacvs_xdp::HashInput::SourceAddressAndPort,
                reals: vec![(IpAddr::from([10, 78, 0, 11]), sink_mac)],
                table: vec![0; 101],
            })
            .unwrap();
            dp.set_active(true).unwrap();
            dp
        })
    });
    if dp.is_none() {
        // No program: the director holds the VIP's MAC by a static entry.
        let dir_mac = netns::run_in(&director, || tacvs_xdp::interface("eth0")).unwrap().1;
        netns::sh(&[
            "ip",
            "-n",
            &device,
            "neigh",
            "replace",
            "10.78.0.100",
            "lladdr",
            &dir_mac.to_string(),
            "dev",
            "eth0",
        ]);
    }
    // 64 flows, round robin: flow-table hits after the first round.
    let packets: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            let p = Packet::tcp(
                MacAddr::default(),
                MacAddr::default(),
                (Ipv4Addr::from(DEVICE), 40000 + i).into(),
                (Ipv4Addr::from(VIP), 49).into(),
                SYN,
            );
            p.build()[14..].to_vec()
        })
        .collect();
    let (t0, elapsed) = netns::run_in(&device, move || {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).unwrap();
        let to = SockAddr::from(SocketAddr::from((VIP, 0)));
        // The first send resolves the VIP's MAC (ARP) before timing.
        s.send_to(&packets[0], &to).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        for i in 0..PACKETS as usize {
            while s.send_to(&packets[i % packets.len()], &to).is_err() {
                std::thread::yield_now();
            }
        }
        (t0, t0.elapsed())
    });
    let Some(dp) = dp else {
        return (elapsed.as_secs_f64() * 1e9 / f64::from(PACKETS), 0.0);
    };
    // Native XDP on veth is asynchronous (the frames wait in the veth's ring
    // for its NAPI poll, and a full ring drops): wait until the count settles.
    let seen = || dp.stats().unwrap().services[0].counters.packets - 1;
    let mut last = seen();
    let mut settled = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = seen();
        if now == last {
            break;
        }
        (last, settled) = (now, Instant::now());
    }
    let total = settled.duration_since(t0).max(elapsed);
    let lost = 1.0 - last as f64 / f64::from(PACKETS);
    (total.as_secs_f64() * 1e9 / last.max(1) as f64, lost)
}
