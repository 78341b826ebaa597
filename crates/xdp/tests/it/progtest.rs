//! The XDP program on crafted frames with `BPF_PROG_TEST_RUN`: verdicts,
//! rewritten bytes, flow-table behaviour and counters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tacvs_director::core::maglev::Maglev;
use tacvs_xdp::frames::{self, ACK, Packet, SYN};
use tacvs_xdp::{
    DataPlane, FlowTable, HashInput, MacAddr, Options, Service, flow_hash, table_from_lookup,
    verdict,
};

use crate::harness;

const DIR: MacAddr = MacAddr([0x02, 0xd1, 0, 0, 0, 1]);
const DEV: MacAddr = MacAddr([0x02, 0xde, 0, 0, 0, 1]);
const VIP: &str = "10.9.0.1:49";
const VIP6: &str = "[2001:db8:9::1]:49";

fn real(n: u8) -> (IpAddr, MacAddr) {
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), MacAddr([0x02, 0xaa, 0, 0, 0, n]))
}

fn vip() -> SocketAddr {
    VIP.parse().unwrap()
}

/// The director's Maglev over `reals` with `weights` (0 = drained/down).
fn maglev(reals: &[(IpAddr, MacAddr)], weights: &[u32]) -> Vec<u32> {
    let servers: Vec<(String, u32)> =
        reals.iter().zip(weights).map(|((a, _), &w)| (a.to_string(), w)).collect();
    let m = Maglev::new(&servers);
    table_from_lookup(m.size(), |h| m.lookup(h))
}

struct Fix {
    dp: DataPlane,
    svc: Service,
}

impl Fix {
    fn new(test: &str) -> Option<Fix> {
        Fix::with(test, FlowTable::Shared)
    }

    fn with(test: &str, flow_table: FlowTable) -> Option<Fix> {
        let mut dp = harness::load(test, Options { flow_entries: 4096, flow_table })?;
        dp.configure(DIR, None).unwrap();
        dp.set_active(true).unwrap();
        let reals = vec![real(11), real(12), real(13)];
        let table = maglev(&reals, &[1, 1, 1]);
        let svc = Service { vip: vip(), hash: HashInput::SourceAddress, reals, table };
        dp.set_service(&svc).unwrap();
        Some(Fix { dp, svc })
    }

    /// The MAC the user-space twin of the program predicts for `src`.
    fn predict(&self, src: SocketAddr) -> MacAddr {
        let h = flow_hash(src, self.svc.hash);
        let i = self.svc.table[(h % self.svc.table.len() as u64) as usize];
        self.svc.reals[i as usize].1
    }

    fn set(&mut self) {
        self.dp.set_service(&self.svc).unwrap();
    }
}

fn tcp(src: &str, dst: &str, flags: u8) -> Packet {
    Packet::tcp(DEV, DIR, src.parse().unwrap(), dst.parse().unwrap(), flags)
}

#[track_caller]
fn assert_forwarded(dp: &DataPlane, frame: &[u8], to: MacAddr) {
    let out = dp.test_run(frame, 1).unwrap();
    assert_eq!(out.verdict, verdict::TX, "verdict");
    assert_eq!(MacAddr(out.frame[..6].try_into().unwrap()), to, "destination MAC");
    assert_eq!(MacAddr(out.frame[6..12].try_into().unwrap()), DIR, "source MAC");
    assert_eq!(&out.frame[12..], &frame[12..], "nothing past the MACs changes");
}

#[track_caller]
fn assert_untouched(dp: &DataPlane, frame: &[u8], want: u32) {
    let out = dp.test_run(frame, 1).unwrap();
    assert_eq!(out.verdict, want, "verdict for {} bytes", frame.len());
    assert_eq!(out.frame, frame, "frame unchanged");
}

#[test]
fn vip_hit_goes_to_the_predicted_server_with_counters() {
    let Some(f) = Fix::new("vip_hit") else { return };
    let p = tcp("10.100.0.5:40000", VIP, SYN);
    let frame = p.build();
    let to = f.predict(p.src);
    assert_forwarded(&f.dp, &frame, to);
    let stats = f.dp.stats().unwrap();
    let s = &stats.services[0];
    assert_eq!(s.vip, vip());
    assert_eq!((s.counters.packets, s.counters.bytes, s.counters.new_flows), (1, 40, 1));
    let r = s.reals.iter().find(|r| r.mac == to).unwrap();
    assert_eq!((r.counters.packets, r.counters.bytes, r.counters.new_flows), (1, 40, 1));
    assert_eq!(s.reals.iter().map(|r| r.counters.packets).sum::<u64>(), 1);
    assert_eq!(f.dp.flow(p.src, vip()).unwrap(), Some(r.addr));
    // The next packet of the flow is a flow-table hit: counted, not a new flow.
    assert_forwarded(&f.dp, &tcp("10.100.0.5:40000", VIP, ACK).build(), to);
    let s = f.dp.stats().unwrap().services[0].counters;
    assert_eq!((s.packets, s.new_flows), (2, 1));
}

#[test]
fn program_and_user_space_agree_on_every_source() {
    let Some(mut f) = Fix::new("agree") else { return };
    for hash in [HashInput::SourceAddress, HashInput::SourceAddressAndPort] {
        f.svc.hash = hash;
        f.set();
        let mut seen = std::collections::HashSet::new();
        for i in 0..300u32 {
            let src =
                SocketAddr::from(([10, 100, (i / 250) as u8, (i % 250) as u8], 1024 + i as u16));
            // Each source is new: the table decides, not the flow table.
            let p = Packet::tcp(DEV, DIR, src, vip(), SYN);
            let to = f.predict(src);
            seen.insert(to);
            let frame = p.build();
            let out = f.dp.test_run(&frame, 1).unwrap();
            // A source seen under the other hash input is a flow-table hit.
            if hash == HashInput::SourceAddress {
                assert_eq!(&out.frame[..6], &to.0, "{src} ({hash:?})");
            } else {
                let pinned = f.dp.flow(src, vip()).unwrap().unwrap();
                assert_eq!(
                    &out.frame[..6],
                    &f.svc.reals.iter().find(|r| r.0 == pinned).unwrap().1.0
                );
            }
        }
        assert_eq!(seen.len(), 3, "300 devices reach all three servers");
    }
    // Fresh sources under the port hash: the port decides.
    for port in 2000..2100u16 {
        let src = SocketAddr::from(([10, 101, 0, 1], port));
        let frame = Packet::tcp(DEV, DIR, src, vip(), SYN).build();
        assert_forwarded(&f.dp, &frame, f.predict(src));
    }
}

#[test]
fn vip_misses_pass_untouched() {
    let Some(f) = Fix::new("vip_miss") else { return };
    // Another port on the VIP, another address, our MAC or not.
    assert_untouched(&f.dp, &tcp("10.100.0.5:40000", "10.9.0.1:50", SYN).build(), verdict::PASS);
    assert_untouched(&f.dp, &tcp("10.100.0.5:40000", "10.9.0.2:49", SYN).build(), verdict::PASS);
    let mut other = tcp("10.100.0.5:40000", "10.9.0.2:49", SYN);
    other.dst_mac = MacAddr([0x02, 0x55, 0, 0, 0, 1]);
    assert_untouched(&f.dp, &other.build(), verdict::PASS);
    // Other EtherTypes (here a VLAN tag) are not parsed.
    let mut vlan = tcp("10.100.0.5:40000", VIP, SYN).build();
    vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    assert_untouched(&f.dp, &vlan, verdict::PASS);
    let st = f.dp.stats().unwrap();
    assert_eq!(st.services[0].counters.packets, 0);
}

#[test]
fn non_tcp_to_the_vip_passes_and_is_counted() {
    let Some(f) = Fix::new("non_tcp") else { return };
    for proto in [17u8, 1, 47] {
        let mut p = tcp("10.100.0.5:40000", VIP, 0);
        p.proto = proto;
        p.payload = vec![0; 16];
        assert_untouched(&f.dp, &p.build(), verdict::PASS);
    }
    // Not to a VIP: passes without being counted.
    let mut p = tcp("10.100.0.5:40000", "10.9.0.2:49", 0);
    p.proto = 17;
    p.payload = vec![0; 16];
    assert_untouched(&f.dp, &p.build(), verdict::PASS);
    assert_eq!(f.dp.stats().unwrap().global.vip_not_tcp, 3);
}

#[test]
fn fragments_to_the_vip_are_dropped() {
    let Some(mut f) = Fix::new("fragment") else { return };
    // First fragment (MF), a later fragment (offset), both to the VIP.
    for frag in [0x2000u16, 0x0010, 0x2010] {
        let mut p = tcp("10.100.0.5:40000", VIP, SYN);
        p.frag = frag;
        let out = f.dp.test_run(&p.build(), 1).unwrap();
        assert_eq!(out.verdict, verdict::DROP, "frag field {frag:#06x}");
    }
    // A fragment to another address is not ours.
    let mut p = tcp("10.100.0.5:40000", "10.9.0.2:49", SYN);
    p.frag = 0x2000;
    assert_untouched(&f.dp, &p.build(), verdict::PASS);
    // IPv6: a fragment header to a v6 VIP.
    f.svc = Service {
        vip: VIP6.parse().unwrap(),
        hash: HashInput::SourceAddress,
        reals: vec![("2001:db8::11".parse().unwrap(), MacAddr([2, 0xaa, 0, 0, 0, 0x11]))],
        table: vec![0; 101],
    };
    f.set();
    let mut p = tcp("[2001:db8:100::5]:40000", VIP6, SYN);
    p.v6_fragment = true;
    assert_eq!(f.dp.test_run(&p.build(), 1).unwrap().verdict, verdict::DROP);
    assert_eq!(f.dp.stats().unwrap().global.vip_fragments, 4);
    let total: u64 = f.dp.stats().unwrap().services.iter().map(|s| s.counters.packets).sum();
    assert_eq!(total, 0);
}

#[test]
fn ip_options_are_skipped_and_the_packet_forwarded() {
    let Some(f) = Fix::new("ip_options") else { return };
    for opts in [vec![1u8, 1, 1, 0], vec![0x94, 4, 0, 0], vec![1; 40]] {
        let mut p = tcp("10.100.0.6:40001", VIP, SYN);
        p.ip_options = opts;
        let frame = p.build();
        assert_forwarded(&f.dp, &frame, f.predict(p.src));
    }
    // The options are skipped to the right TCP header: a port other than
    // the service's behind options is a miss.
    let mut p = tcp("10.100.0.6:40001", "10.9.0.1:50", SYN);
    p.ip_options = vec![1; 8];
    assert_untouched(&f.dp, &p.build(), verdict::PASS);
}

#[test]
fn truncated_headers_pass_at_every_length() {
    let Some(f) = Fix::new("truncated") else { return };
    let mut opts = tcp("10.100.0.7:40002", VIP, SYN);
    opts.ip_options = vec![1; 8];
    let frames = [
        tcp("10.100.0.7:40002", VIP, SYN).build(),
        opts.build(),
        tcp("[2001:db8:100::5]:40000", VIP6, SYN).build(),
        frames::arp_request(DEV, [10, 100, 0, 7].into(), [10, 9, 0, 1].into()),
    ];
    for full in &frames {
        // The kernel refuses test frames under 14 bytes (ETH_HLEN); the
        // program's first check covers those on the wire.
        for len in 14..full.len() {
            let cut = &full[..len];
            assert_untouched(&f.dp, cut, verdict::PASS);
        }
    }
    assert!(f.dp.test_run(&frames[0][..13], 1).is_err());
    let st = f.dp.stats().unwrap();
    assert_eq!(st.services[0].counters.packets, 0);
    assert_eq!(st.global.arp_replies, 0);
    assert_eq!(st.global.other_mac, 0);
}

#[test]
fn arp_for_the_vip_is_answered_while_active() {
    let Some(mut f) = Fix::new("arp") else { return };
    let asker: Ipv4Addr = [10, 100, 0, 8].into();
    let vip4: Ipv4Addr = [10, 9, 0, 1].into();
    let req = frames::arp_request(DEV, asker, vip4);
    let out = f.dp.test_run(&req, 1).unwrap();
    assert_eq!(out.verdict, verdict::TX);
    let want = frames::arp(DEV, DIR, 2, DIR, vip4, DEV, asker);
    assert_eq!(out.frame, want, "the reply, byte for byte");
    // Padded to the Ethernet minimum: the padding comes back as it was.
    let mut padded = req.clone();
    padded.resize(60, 0);
    let out = f.dp.test_run(&padded, 1).unwrap();
    assert_eq!(&out.frame[..42], &want[..]);
    assert_eq!(out.frame.len(), 60);

    // Not a question for us: another address, a reply, a gratuitous request,
    // another hardware type.
    assert_untouched(&f.dp, &frames::arp_request(DEV, asker, [10, 9, 0, 2].into()), verdict::PASS);
    let reply = frames::arp(DIR, DEV, 2, DEV, asker, DIR, vip4);
    assert_untouched(&f.dp, &reply, verdict::PASS);
    let garp = frames::arp(MacAddr([0xff; 6]), DEV, 1, DEV, vip4, MacAddr([0; 6]), vip4);
    assert_untouched(&f.dp, &garp, verdict::PASS);
    let mut ieee802 = req.clone();
    ieee802[15] = 6;
    assert_untouched(&f.dp, &ieee802, verdict::PASS);
    assert_eq!(f.dp.stats().unwrap().global.arp_replies, 2);

    // Inactive (a VRRP backup): no answer, no forwarding.
    f.dp.set_active(false).unwrap();
    assert_untouched(&f.dp, &req, verdict::PASS);
    assert_untouched(&f.dp, &tcp("10.100.0.8:40003", VIP, SYN).build(), verdict::PASS);
    let st = f.dp.stats().unwrap();
    assert_eq!((st.global.arp_replies, st.global.inactive), (2, 2));
    // A removed service's VIP is no longer answered.
    f.dp.set_active(true).unwrap();
    f.dp.remove_service(vip()).unwrap();
    assert_untouched(&f.dp, &req, verdict::PASS);
    f.set();
    assert_eq!(f.dp.test_run(&req, 1).unwrap().verdict, verdict::TX);
}

#[test]
fn flows_stick_across_a_table_change_and_drain() {
    let Some(mut f) = Fix::new("sticky") else { return };
    // Find a device that the table sends to server 0 (10.0.0.11).
    let first = f.svc.reals[0].1;
    let src = (0..255u8)
        .map(|i| format!("10.100.1.{i}:40000"))
        .find(|s| f.predict(s.parse().unwrap()) == first)
        .unwrap();
    assert_forwarded(&f.dp, &tcp(&src, VIP, SYN).build(), first);

    // Drain server 0: it stays in the list, the table loses it.
    f.svc.table = maglev(&f.svc.reals, &[0, 1, 1]);
    f.set();
    assert_ne!(f.predict(src.parse().unwrap()), first, "the new table sends this device elsewhere");
    // The established flow keeps going to the drained server…
    assert_forwarded(&f.dp, &tcp(&src, VIP, ACK).build(), first);
    // …while a new flow from the same device (another port) skips it.
    let new_src = src.replace(":40000", ":40001");
    let out = f.dp.test_run(&tcp(&new_src, VIP, SYN).build(), 1).unwrap();
    assert_eq!(out.verdict, verdict::TX);
    assert_ne!(&out.frame[..6], &first.0);
    let counters = |dp: &DataPlane| {
        dp.stats().unwrap().services[0].reals.iter().find(|r| r.mac == first).unwrap().counters
    };
    assert_eq!((counters(&f.dp).packets, counters(&f.dp).new_flows), (2, 1));

    // Removed altogether: its flows are scheduled again, and counted stale.
    f.svc.reals.remove(0);
    f.svc.table = maglev(&f.svc.reals, &[1, 1]);
    f.set();
    let to = f.predict(src.parse().unwrap());
    assert_forwarded(&f.dp, &tcp(&src, VIP, ACK).build(), to);
    assert_eq!(f.dp.stats().unwrap().global.stale_flows, 1);
    // And stays on the new server from then on, even if the table changes.
    f.svc.table = maglev(&f.svc.reals, &[1, 0]);
    f.set();
    assert_forwarded(&f.dp, &tcp(&src, VIP, ACK).build(), to);
}

#[test]
fn a_reused_real_id_does_not_inherit_old_flows() {
    let Some(mut f) = Fix::new("id_reuse") else { return };
    // Another service takes every id left, so a freed id must be reused.
    let filler: Vec<(IpAddr, MacAddr)> = (0..tacvs_xdp::layout::consts::MAX_REALS - 3)
        .map(|i| {
            let [_, _, a, b] = i.to_be_bytes();
            (IpAddr::from([10, 1, a, b]), MacAddr([2, 0xcc, 0, 0, a, b]))
        })
        .collect();
    let other = Service {
        vip: "10.9.0.1:50".parse().unwrap(),
        hash: HashInput::SourceAddress,
        reals: filler,
        table: Vec::new(),
    };
    f.dp.set_service(&other).unwrap();
    let src = "10.100.2.1:40000";
    let before = f.predict(src.parse().unwrap());
    assert_forwarded(&f.dp, &tcp(src, VIP, SYN).build(), before);
    let holder = f.svc.reals.iter().position(|r| r.1 == before).unwrap();
    // Remove that server; then a new one takes its id, drained (not in the
    // table). Ids removed by a change are free only once its table is live.
    f.svc.reals.remove(holder);
    f.svc.table = maglev(&f.svc.reals, &[1, 1]);
    f.set();
    f.svc.reals.push(real(14));
    f.svc.table = maglev(&f.svc.reals, &[1, 1, 0]);
    f.set();
    let out = f.dp.test_run(&tcp(src, VIP, ACK).build(), 1).unwrap();
    assert_ne!(&out.frame[..6], &real(14).1.0, "the old flow reached the id's new holder");
    assert_eq!(&out.frame[..6], &f.predict(src.parse().unwrap()).0);
    assert_eq!(f.dp.stats().unwrap().global.stale_flows, 1);
    assert_eq!(f.dp.stats().unwrap().services.iter().map(|s| s.reals.len()).sum::<usize>(), 4096);
    // Every id is taken now: one more server is refused, and nothing changes.
    let mut more = f.svc.clone();
    more.reals.push(real(15));
    assert!(matches!(
        f.dp.set_service(&more),
        Err(tacvs_xdp::DataPlaneError::Table(tacvs_xdp::TableError::OutOfIds))
    ));
    assert_eq!(f.dp.test_run(&tcp(src, VIP, ACK).build(), 1).unwrap().frame, out.frame);
}

#[test]
fn inactive_other_mac_and_no_server() {
    let Some(mut f) = Fix::new("guards") else { return };
    let frame = tcp("10.100.0.9:40000", VIP, SYN).build();
    // A frame flooded to us but addressed to another host's MAC.
    let mut flooded = frame.clone();
    flooded[..6].copy_from_slice(&[0x02, 0x55, 0, 0, 0, 9]);
    assert_untouched(&f.dp, &flooded, verdict::PASS);
    assert_eq!(f.dp.stats().unwrap().global.other_mac, 1);
    // Every server down: new flows are dropped and counted.
    f.svc.table = Vec::new();
    f.set();
    assert_eq!(f.dp.test_run(&frame, 1).unwrap().verdict, verdict::DROP);
    assert_eq!(f.dp.stats().unwrap().global.no_server, 1);
    assert!(f.dp.flow("10.100.0.9:40000".parse().unwrap(), vip()).unwrap().is_none());
}

#[test]
fn ipv6_takes_the_same_path() {
    let Some(mut f) = Fix::new("ipv6") else { return };
    let reals: Vec<(IpAddr, MacAddr)> = (1..=2u8)
        .map(|n| (format!("2001:db8::{n}").parse().unwrap(), MacAddr([2, 0xbb, 0, 0, 0, n])))
        .collect();
    f.svc = Service {
        vip: VIP6.parse().unwrap(),
        hash: HashInput::SourceAddressAndPort,
        table: maglev(&reals, &[1, 1]),
        reals,
    };
    f.set();
    for port in 40000..40050u16 {
        let src = format!("[2001:db8:100::5]:{port}");
        let p = tcp(&src, VIP6, SYN);
        assert_forwarded(&f.dp, &p.build(), f.predict(p.src));
    }
    // A v6 extension header (hop-by-hop, 0) before TCP: not walked, passed.
    let mut p = tcp("[2001:db8:100::5]:40000", VIP6, SYN);
    p.proto = 0;
    p.payload = vec![6, 0, 0, 0, 0, 0, 0, 0];
    assert_untouched(&f.dp, &p.build(), verdict::PASS);
    assert_eq!(f.dp.stats().unwrap().global.vip_not_tcp, 1);
    // Family mismatch is refused before anything is written.
    let bad = Service { reals: vec![real(11)], table: vec![0], ..f.svc.clone() };
    assert!(f.dp.set_service(&bad).is_err());
}

#[test]
fn redirect_to_another_interface() {
    let Some(mut f) = Fix::new("redirect") else { return };
    let out_mac = MacAddr([0x02, 0x0f, 0, 0, 0, 1]);
    f.dp.configure(DIR, Some((1, out_mac))).unwrap();
    let p = tcp("10.100.0.10:40000", VIP, SYN);
    let out = f.dp.test_run(&p.build(), 1).unwrap();
    assert_eq!(out.verdict, verdict::REDIRECT);
    assert_eq!(&out.frame[..6], &f.predict(p.src).0);
    assert_eq!(&out.frame[6..12], &out_mac.0);
}

#[test]
fn every_flow_table_kind_works() {
    // The SYN and the ACK must run on the same CPU for a per-CPU table.
    let _pinned = harness::Pinned::one_cpu();
    for kind in [FlowTable::SharedPerCpuLists, FlowTable::PerCpu] {
        let Some(mut f) = Fix::with("flow_table_kinds", kind) else { return };
        let src = "10.100.3.1:40000";
        let to = f.predict(src.parse().unwrap());
        assert_forwarded(&f.dp, &tcp(src, VIP, SYN).build(), to);
        assert_eq!(f.dp.flow(src.parse().unwrap(), vip()).unwrap().map(|a| a.to_string()), {
            let i = f.svc.reals.iter().position(|r| r.1 == to).unwrap();
            Some(f.svc.reals[i].0.to_string())
        });
        f.svc.table = maglev(&f.svc.reals, &[1, 1, 1]).iter().map(|_| 0).collect();
        f.set();
        assert_forwarded(&f.dp, &tcp(src, VIP, ACK).build(), to);
    }
}

#[test]
fn no_packet_sees_a_half_built_table() {
    let Some(mut f) = Fix::new("swap") else { return };
    // Two tables of different sizes with opposite patterns: a packet that
    // read one table's size with the other's slots (or a table half written)
    // gets a server neither table gives for its source.
    let a = Service { table: (0..101).map(|i| 1 + i % 2).collect(), ..f.svc.clone() };
    let b = Service { table: (0..211).map(|i| 2 - i % 2).collect(), ..f.svc.clone() };
    let pick = |t: &Service, src: SocketAddr| {
        let h = flow_hash(src, t.hash);
        t.reals[t.table[(h % t.table.len() as u64) as usize] as usize].1.0[5]
    };
    f.dp.set_service(&a).unwrap();
    let runner = f.dp.runner().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, runs, a, b) = (stop.clone(), runs.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut torn = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(1);
                // A new source each time: a table lookup, not a flow hit.
                let src =
                    SocketAddr::from(([10, 200 + (i >> 16) as u8, (i >> 8) as u8, i as u8], 1));
                let frame = Packet::tcp(DEV, DIR, src, vip(), SYN).build();
                let out = runner.run(&frame, 1).unwrap();
                assert_eq!(out.verdict, verdict::TX);
                let got = out.frame[5];
                if got != pick(&a, src) && got != pick(&b, src) {
                    torn.push((src, got));
                }
                runs.fetch_add(1, Ordering::Relaxed);
            }
            torn
        })
    };
    for round in 0..100 {
        f.dp.set_service(if round % 2 == 0 { &b } else { &a }).unwrap();
        // Let packets run on each table before the next swap.
        let at = runs.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::Relaxed) < at + 20 {
            assert!(Instant::now() < deadline, "the reader thread stalled");
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let torn = reader.join().unwrap();
    assert!(torn.is_empty(), "{} packets saw a mixed table, e.g. {:?}", torn.len(), &torn[..1]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]
    // Hostile frames: valid ones with bytes overwritten and cut anywhere. The
    // program never aborts; a forwarded frame differs only in its MACs (and
    // went to a configured server); an ARP answer only where a reply must.
    #[test]
    fn mutated_frames_never_abort_or_corrupt(
        which in 0usize..4,
        edits in proptest::collection::vec((0usize..120, proptest::prelude::any::<u8>()), 0..6),
        cut in 14usize..130,
    ) {
        let Some(f) = MUTATION_FIX.with(|f| f.take()).or_else(|| Fix::new("mutations")) else {
            return Ok(());
        };
        let mut v6 = tcp("[2001:db8:100::5]:40000", VIP6, SYN);
        v6.payload = vec![7; 20];
        let mut opts = tcp("10.100.0.7:40002", VIP, SYN);
        opts.ip_options = vec![1; 8];
        let mut frame = [
            tcp("10.100.0.7:40002", VIP, SYN).build(),
            opts.build(),
            v6.build(),
            frames::arp_request(DEV, [10, 100, 0, 7].into(), [10, 9, 0, 1].into()),
        ][which].clone();
        for (at, b) in edits {
            if let Some(x) = frame.get_mut(at) {
                *x = b;
            }
        }
        frame.truncate(cut);
        let out = f.dp.test_run(&frame, 1).unwrap();
        proptest::prop_assert!(
            [verdict::PASS, verdict::DROP, verdict::TX].contains(&out.verdict),
            "verdict {}", out.verdict
        );
        proptest::prop_assert_eq!(out.frame.len(), frame.len());
        if out.verdict == verdict::TX {
            if frame[12..14] == [8, 6] {
                proptest::prop_assert_eq!(&out.frame[6..12], &DIR.0);
                // Same header, a reply (op 2) to a request (op 1).
                proptest::prop_assert_eq!(&out.frame[12..20], &frame[12..20]);
                proptest::prop_assert_eq!((&frame[20..22], &out.frame[20..22]), (&[0u8, 1][..], &[0u8, 2][..]));
            } else {
                proptest::prop_assert!(f.svc.reals.iter().any(|r| out.frame[..6] == r.1.0));
                proptest::prop_assert_eq!(&out.frame[6..12], &DIR.0);
                proptest::prop_assert_eq!(&out.frame[12..], &frame[12..]);
            }
        } else {
            proptest::prop_assert_eq!(&out.frame, &frame);
        }
        MUTATION_FIX.with(|c| c.set(Some(f)));
    }
}

thread_local! {
    // One loaded program for all cases (loading costs milliseconds).
    static MUTATION_FIX: std::cell::Cell<Option<Fix>> = const { std::cell::Cell::new(None) };
}

#[test]
fn a_vip_is_answered_until_its_last_service_goes() {
    let Some(mut f) = Fix::new("vip_refs") else { return };
    let second = Service { vip: "10.9.0.1:50".parse().unwrap(), ..f.svc.clone() };
    f.dp.set_service(&second).unwrap();
    let req = frames::arp_request(DEV, [10, 100, 0, 8].into(), [10, 9, 0, 1].into());
    f.dp.remove_service(vip()).unwrap();
    assert_eq!(f.dp.test_run(&req, 1).unwrap().verdict, verdict::TX, "port 50 still serves");
    // The removed port passes, the other still forwards.
    assert_untouched(&f.dp, &tcp("10.100.0.8:40000", VIP, SYN).build(), verdict::PASS);
    let to = f.predict("10.100.0.8:40000".parse().unwrap());
    assert_forwarded(&f.dp, &tcp("10.100.0.8:40000", "10.9.0.1:50", SYN).build(), to);
    f.dp.remove_service(second.vip).unwrap();
    assert_untouched(&f.dp, &req, verdict::PASS);
    assert!(f.dp.remove_service(second.vip).is_err());
    // The ids came back: a service with as many servers as ever fits again.
    f.svc.reals = (0..tacvs_xdp::layout::consts::MAX_REALS)
        .map(|i| {
            let [_, _, a, b] = i.to_be_bytes();
            (IpAddr::from([10, 2, a, b]), MacAddr([2, 0xcc, 0, 0, a, b]))
        })
        .collect();
    f.svc.table = vec![0; 101];
    f.set();
}
