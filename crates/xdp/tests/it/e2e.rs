//! Direct routing end to end in namespaces: a device, a director with the
//! XDP program on `eth0`, and two real servers holding the VIP on `lo` (set up
//! by `realserver::setup`), all on one bridge. The device's packets reach a
//! server through the director; the server's replies come straight from the
//! VIP (the device sees the servers' MACs, never the director's), and the
//! server sees the device's own address.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tacvs_director::core::maglev::Maglev;
use tacvs_xdp::realserver;
use tacvs_xdp::{
    AttachMode, AttachedMode, DataPlane, HashInput, MacAddr, Options, PassProgram, Service,
    flow_hash, table_from_lookup,
};

use crate::harness;
use crate::netns::{Topo, block_on, run_in, sh, spawn_in};

const VIP: [u8; 4] = [10, 77, 0, 100];
const PORT: u16 = 49;
const DEVICE: [u8; 4] = [10, 77, 0, 10];

fn vip() -> SocketAddr {
    (Ipv4Addr::from(VIP), PORT).into()
}

/// A line server in `ns`: each line gets "NAME PEER\n" back. Stops with `stop`.
fn echo_server(ns: &str, name: &'static str, stop: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_in(ns, move || {
        let l = TcpListener::bind(("0.0.0.0", PORT)).expect("bind the real server");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match l.accept() {
                Ok((s, peer)) => {
                    std::thread::spawn(move || serve(s, peer, name));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the real server started");
}

fn serve(s: TcpStream, peer: SocketAddr, name: &str) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    for line in BufReader::new(s).lines() {
        if line.is_err() || w.write_all(format!("{name} {peer}\n").as_bytes()).is_err() {
            return;
        }
    }
}

/// Frames the device sent to the VIP, and the source MACs of frames it got
/// from the VIP, read from an `AF_PACKET` socket in the device namespace.
#[derive(Default, Debug)]
struct Seen {
    to_vip: u64,
    from_vip_macs: Vec<MacAddr>,
}

fn sniff(ns: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Seen> {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = spawn_in(ns, move || {
        const ETH_P_ALL: u16 = 0x0003;
        let s = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )
        .expect("AF_PACKET socket");
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        tx.send(()).unwrap();
        let mut file = std::fs::File::from(OwnedFd::from(s));
        let mut seen = Seen::default();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok(n) = std::io::Read::read(&mut file, &mut buf) else { continue };
            let f = &buf[..n];
            if n < 14 + 20 + 4 || f[12..14] != [8, 0] || f[23] != 6 {
                continue;
            }
            let ihl = usize::from(f[14] & 0xf) * 4;
            let (src, dst) = (&f[26..30], &f[30..34]);
            let Some(ports) = f.get(14 + ihl..14 + ihl + 4) else { continue };
            if dst == VIP && ports[2..4] == PORT.to_be_bytes() {
                seen.to_vip += 1;
            } else if src == VIP && ports[..2] == PORT.to_be_bytes() {
                seen.from_vip_macs.push(MacAddr(f[6..12].try_into().unwrap()));
            }
        }
        seen
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the sniffer started");
    h
}

/// Connect from the device's `port` to the VIP, exchange three lines, close;
/// the answers.
fn exchange(port: u16) -> Vec<String> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SockAddr::from(SocketAddr::from((DEVICE, port)))).unwrap();
    s.connect_timeout(&vip().into(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("device port {port} connecting to the VIP: {e}"));
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    (0..3)
        .map(|i| {
            w.write_all(format!("hello {i}\n").as_bytes()).unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            line.trim().to_owned()
        })
        .collect()
}

fn xdp_on(ns: &str) -> String {
    sh(&["ip", "-n", ns, "-d", "link", "show", "eth0"])
}

fn end_to_end(tag: &str, mode: AttachMode, want: AttachedMode) {
    let test = format!("end_to_end_{tag}");
    if !harness::root(&test) {
        return;
    }
    let topo = Topo::new(tag);
    let device = topo.host("dev", DEVICE);
    let director = topo.host("dir", [10, 77, 0, 2]);
    let servers = [("rs1", [10, 77, 0, 11]), ("rs2", [10, 77, 0, 12])];
    let stop = Arc::new(AtomicBool::new(false));
    let mut reals = Vec::new();
    for (name, addr) in servers {
        let ns = topo.host(name, addr);
        // Before set-up the check names what is wrong; after, nothing.
        let vip_ip = IpAddr::from(VIP);
        let before = run_in(&ns, move || block_on(realserver::gather(vip_ip, Some(PORT))));
        let problems = realserver::check(&before.unwrap());
        assert!(problems.len() >= 3, "{problems:?}");
        let done = run_in(&ns, move || block_on(realserver::setup(&[vip_ip]))).unwrap();
        assert!(done.iter().any(|d| d.contains("added 10.77.0.100/32 to lo")), "{done:?}");
        echo_server(&ns, name, stop.clone());
        let after = run_in(&ns, move || block_on(realserver::gather(vip_ip, Some(PORT))));
        assert_eq!(realserver::check(&after.unwrap()), vec![]);
        // Idempotent.
        assert_eq!(
            run_in(&ns, move || block_on(realserver::setup(&[vip_ip]))).unwrap(),
            Vec::<String>::new()
        );
        let mac = run_in(&ns, || tacvs_xdp::interface("eth0")).unwrap().1;
        reals.push((IpAddr::from(addr), mac));
    }

    // Native XDP_TX on a veth needs an XDP program on the peer (without it
    // the ARP answer never arrives: "no route to host"), and the sender's TX
    // checksum offload off (without it the forwarded SYN reaches the server
    // with a partial checksum and is dropped: connect times out). Both seen
    // on this kernel; docs/operations.md.
    let _peer = (want == AttachedMode::Native).then(|| {
        sh(&["ip", "netns", "exec", &device, "ethtool", "-K", "eth0", "tx", "off"]);
        run_in(&topo.hub(), || PassProgram::attach("v-dir")).expect("XDP_PASS on the peer veth")
    });

    let servers_w: Vec<(String, u32)> = reals.iter().map(|(a, _)| (a.to_string(), 1)).collect();
    let m = Maglev::new(&servers_w);
    let svc = Service {
        vip: vip(),
        hash: HashInput::SourceAddressAndPort,
        reals: reals.clone(),
        table: table_from_lookup(m.size(), |h| m.lookup(h)),
    };
    let svc2 = svc.clone();
    let (dp, mode) = run_in(&director, move || {
        let mut dp = DataPlane::load(Options { flow_entries: 4096, ..Options::default() })
            .expect("load the data plane as root");
        let mode = dp.attach("eth0", mode).expect("attach");
        dp.set_service(&svc2).unwrap();
        dp.set_active(true).unwrap();
        (dp, mode)
    });
    assert_eq!(mode, want);
    assert!(xdp_on(&director).contains(if want == AttachedMode::Native {
        "xdp "
    } else {
        "xdpgeneric"
    }));
    let dir_mac = run_in(&director, || tacvs_xdp::interface("eth0")).unwrap().1;

    // Two device ports for each server, by the program's own hash.
    let predict = |port: u16| {
        let h = flow_hash((Ipv4Addr::from(DEVICE), port).into(), svc.hash);
        svc.table[(h % svc.table.len() as u64) as usize] as usize
    };
    let mut ports: Vec<(u16, usize)> = Vec::new();
    for want_server in 0..2 {
        ports
            .extend((41000..42000).map(|p| (p, predict(p))).filter(|x| x.1 == want_server).take(2));
    }

    let sniffer_stop = Arc::new(AtomicBool::new(false));
    let sniffer = sniff(&device, sniffer_stop.clone());
    let ports2 = ports.clone();
    let answers =
        run_in(&device, move || ports2.iter().map(|&(p, _)| exchange(p)).collect::<Vec<_>>());
    for ((port, server), lines) in ports.iter().zip(&answers) {
        let name = servers[*server].0;
        for l in lines {
            // The server that the hash predicts, seeing the device's own address.
            assert_eq!(l, &format!("{name} 10.77.0.10:{port}"));
        }
    }

    // Every frame the device sent to the VIP went through the program (the
    // closing handshake may still be in flight: wait for the counts to meet).
    let deadline = Instant::now() + Duration::from_secs(10);
    let forwarded = || dp.stats().unwrap().services[0].counters.packets;
    let mut last = forwarded();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = forwarded();
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    sniffer_stop.store(true, Ordering::Relaxed);
    let seen = sniffer.join().unwrap();
    let stats = dp.stats().unwrap();
    let s = &stats.services[0];
    eprintln!(
        "{test}: {mode} XDP; device sent {} frames to the VIP, the program forwarded {}; {} \
         replies from the servers' MACs; {} ARP replies",
        seen.to_vip,
        s.counters.packets,
        seen.from_vip_macs.len(),
        stats.global.arp_replies
    );
    assert_eq!(
        s.counters.packets, seen.to_vip,
        "device→VIP frames vs frames the program forwarded"
    );
    assert_eq!(s.counters.new_flows, 4);
    for r in &s.reals {
        assert_eq!(r.counters.new_flows, 2, "{}", r.addr);
    }
    // Replies: only from the servers' MACs, never through the director.
    assert!(seen.from_vip_macs.len() >= 4 * 3, "{seen:?}");
    assert!(!seen.from_vip_macs.contains(&dir_mac), "a reply came through the director");
    assert!(seen.from_vip_macs.iter().all(|m| reals.iter().any(|r| r.1 == *m)));
    // The device learned the VIP's MAC from the program's ARP answer (the
    // director does not hold the VIP).
    assert!(stats.global.arp_replies >= 1);
    let neigh = sh(&["ip", "-n", &device, "neigh", "show", "10.77.0.100"]);
    assert!(neigh.contains(&dir_mac.to_string()), "{neigh}");
    assert!(!sh(&["ip", "-n", &director, "addr"]).contains("10.77.0.100"));

    // Dropping the data plane detaches the program.
    drop(dp);
    assert!(!xdp_on(&director).contains("prog/xdp"), "{}", xdp_on(&director));
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn end_to_end_native() {
    end_to_end("nat", AttachMode::Native, AttachedMode::Native);
}

#[test]
fn end_to_end_generic() {
    end_to_end("gen", AttachMode::Generic, AttachedMode::Generic);
}

#[test]
fn auto_falls_back_to_generic_where_the_driver_has_no_xdp() {
    if !harness::root("auto_falls_back") {
        return;
    }
    let topo = Topo::new("auto");
    let ns = topo.host("dir", [10, 79, 0, 2]);
    // A bridge: no native XDP in its driver.
    sh(&["ip", "-n", &ns, "link", "add", "br-test", "type", "bridge"]);
    sh(&["ip", "-n", &ns, "link", "set", "br-test", "up"]);
    let (native, auto, veth) = run_in(&ns, || {
        let mut dp = DataPlane::load(Options { flow_entries: 64, ..Options::default() }).unwrap();
        let native = dp.attach("br-test", AttachMode::Native).map_err(|e| e.to_string());
        let auto = dp.attach("br-test", AttachMode::Auto).unwrap();
        let veth = dp.attach("eth0", AttachMode::Auto).unwrap();
        (native, auto, veth)
    });
    let err = native.unwrap_err();
    assert!(err.contains("\"br-test\"") && err.contains("native"), "{err}");
    assert_eq!(auto, AttachedMode::Generic, "a bridge has no native XDP");
    assert_eq!(veth, AttachedMode::Native, "veth has");
    // Attaching elsewhere moved the program: none left on br-test.
    assert!(!sh(&["ip", "-n", &ns, "link", "show", "br-test"]).contains("prog/xdp"));
}

/// The child's side of [`a_killed_director_leaves_nothing_attached`].
const CHILD_NS: &str = "TACVS_XDP_TEST_CHILD_NS";

#[test]
fn a_killed_director_leaves_nothing_attached() {
    if let Ok(ns) = std::env::var(CHILD_NS) {
        // The child: a director that attaches, activates, and waits to die.
        let _dp = run_in(&ns, || {
            let mut dp = DataPlane::load(Options { flow_entries: 64, ..Options::default() })?;
            dp.attach("eth0", AttachMode::Auto)?;
            dp.set_active(true)?;
            Ok::<_, tacvs_xdp::DataPlaneError>(dp)
        })
        .unwrap();
        println!("attached");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    if !harness::root("a_killed_director") {
        return;
    }
    let topo = Topo::new("kill");
    let ns = topo.host("dir", [10, 80, 0, 2]);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "e2e::a_killed_director_leaves_nothing_attached", "--nocapture"])
        .env(CHILD_NS, &ns)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("the child director exited before attaching: {:?}", child.wait());
        }
    }
    assert!(xdp_on(&ns).contains("prog/xdp"), "{}", xdp_on(&ns));
    // SIGKILL: no destructor runs; the kernel closes the link's fd.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while xdp_on(&ns).contains("prog/xdp") {
        assert!(Instant::now() < deadline, "still attached after the process died");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn real_server_macs_from_the_neighbour_table() {
    use tacvs_xdp::neighbour::{self, NeighbourError};
    if !harness::root("neighbour") {
        return;
    }
    let topo = Topo::new("nb");
    let dir = topo.host("dir", [10, 81, 0, 2]);
    let rs = topo.host("rs1", [10, 81, 0, 11]);
    let stop = Arc::new(AtomicBool::new(false));
    echo_server(&rs, "rs1", stop.clone());
    let rs_mac = run_in(&rs, || tacvs_xdp::interface("eth0")).unwrap().1;
    let resolve = |ip: [u8; 4]| {
        run_in(&dir, move || {
            let (index, _) = tacvs_xdp::interface("eth0").unwrap();
            block_on(neighbour::resolve(index, IpAddr::from(ip)))
        })
    };
    // Nothing sent to it yet: no entry.
    let e = resolve([10, 81, 0, 11]).unwrap_err();
    assert!(matches!(e, NeighbourError::Unresolved { state: "none", .. }), "{e}");
    // A health check's connection makes the kernel learn it.
    run_in(&dir, || {
        TcpStream::connect_timeout(
            &SocketAddr::from(([10, 81, 0, 11], PORT)),
            Duration::from_secs(5),
        )
    })
    .unwrap();
    assert_eq!(resolve([10, 81, 0, 11]).unwrap(), rs_mac);
    // Behind a router, or nowhere: refused with the reason.
    sh(&["ip", "-n", &dir, "route", "add", "10.99.0.0/16", "via", "10.81.0.11"]);
    let e = resolve([10, 99, 0, 5]).unwrap_err();
    assert!(matches!(e, NeighbourError::NotOnLink { .. }), "{e}");
    let e = resolve([192, 0, 2, 1]).unwrap_err();
    assert!(matches!(e, NeighbourError::NoRoute { .. }), "{e}");
    stop.store(true, Ordering::Relaxed);
}
