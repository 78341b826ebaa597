//! VRRPv3 (RFC 5798): the codec, and the state machine on fake time — two
//! routers wired together in memory.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tacvs_director::core::vrrp::*;

fn cfg(prio: u8, ip: [u8; 4], preempt: bool) -> Config {
    Config {
        vrid: 51,
        priority: prio,
        interval: Duration::from_millis(100),
        preempt,
        preempt_delay: Duration::ZERO,
        primary: Ipv4Addr::from(ip),
        vips: vec![Ipv4Addr::new(10, 49, 0, 1)],
    }
}

#[test]
fn codec_roundtrip_checksum_and_rejects() {
    let a = Advert {
        vrid: 51,
        priority: 150,
        interval_cs: 10,
        addrs: vec![Ipv4Addr::new(10, 49, 0, 1), Ipv4Addr::new(10, 49, 0, 2)],
    };
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), VRRP_GROUP);
    let b = a.encode(src, dst);
    assert_eq!(b.len(), 16);
    assert_eq!(b[0], 0x31);
    assert_eq!(Advert::decode(&b, src, dst), Ok(a.clone()));
    // The checksum covers the pseudo-header: another source fails.
    assert_eq!(Advert::decode(&b, Ipv4Addr::new(10, 0, 0, 3), dst), Err(AdvertError::Checksum));
    let mut bad = b.clone();
    bad[2] = 151;
    assert_eq!(Advert::decode(&bad, src, dst), Err(AdvertError::Checksum));
    bad = b.clone();
    bad[0] = 0x21;
    assert_eq!(Advert::decode(&bad, src, dst), Err(AdvertError::Version(2)));
    assert_eq!(Advert::decode(&b[..12], src, dst), Err(AdvertError::Truncated(12)));
    assert_eq!(Advert::decode(&b[..5], src, dst), Err(AdvertError::Truncated(5)));
    // A packet built by hand from RFC 5798 §5.2 (vrid 1, prio 100, 1 addr, 1 s).
    let mut hand = vec![0x31, 1, 100, 1, 0x00, 100, 0, 0, 192, 0, 2, 1];
    let s = Ipv4Addr::new(192, 0, 2, 10);
    let c = Advert {
        vrid: 1,
        priority: 100,
        interval_cs: 100,
        addrs: vec![Ipv4Addr::new(192, 0, 2, 1)],
    }
    .encode(s, VRRP_GROUP);
    hand[6..8].copy_from_slice(&c[6..8]);
    assert_eq!(hand, c);
}

#[test]
fn timers_follow_rfc_5798() {
    let t0 = Instant::now();
    let v = Vrrp::new(cfg(100, [10, 0, 0, 1], true), t0);
    // Skew = (256 - 100) × 100 ms / 256 = 60.9 ms; down = 300 ms + skew.
    assert_eq!(v.skew(), Duration::from_millis(100) * 156 / 256);
    assert_eq!(v.master_down_interval(), Duration::from_millis(300) + v.skew());
}

/// Deliver every advertisement in `acts` from `from` to `to`.
fn deliver(
    acts: &[Action],
    from: &Vrrp,
    src: Ipv4Addr,
    to: &mut Vrrp,
    now: Instant,
) -> Vec<Action> {
    let mut out = Vec::new();
    for a in acts {
        if let Action::Advertise(p) = a {
            out.extend(to.on_advert(&from.advert(*p), src, now));
        }
    }
    out
}

/// Routers A (10.0.0.1, priority 200) and B (10.0.0.2, priority 100), both
/// preempting, started at t0.
fn started_pair() -> (Ipv4Addr, Ipv4Addr, Vrrp, Vrrp) {
    let t0 = Instant::now();
    let (ia, ib) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut a = Vrrp::new(cfg(200, ia.octets(), true), t0);
    let mut b = Vrrp::new(cfg(100, ib.octets(), true), t0);
    a.startup(t0);
    b.startup(t0);
    (ia, ib, a, b)
}

fn has(acts: &[Action], want: State) -> bool {
    acts.iter().any(|a| matches!(a, Action::Transition { to, .. } if *to == want))
}

#[test]
fn election_failover_preemption_and_tracking() {
    let (ia, ib, mut a, mut b) = started_pair();
    assert_eq!((a.state(), b.state()), (State::Backup, State::Backup));
    // A's down timer (300 + 21.9 ms) expires first: A becomes master.
    let now = a.deadline().unwrap();
    let acts = a.on_timer(now);
    assert!(
        has(&acts, State::Master)
            && acts.contains(&Action::AddVips)
            && acts.contains(&Action::GratuitousArp)
    );
    deliver(&acts, &a, ia, &mut b, now);
    assert_eq!(b.state(), State::Backup);
    // A advertises every 100 ms; B stays backup.
    let mut now = now;
    for _ in 0..10 {
        now = a.deadline().unwrap();
        let acts = a.on_timer(now);
        deliver(&acts, &a, ia, &mut b, now);
        assert!(b.on_timer(now).is_empty());
    }
    // A dies silently: B takes over after Master_Down_Interval (3 × 100 ms + skew 60.9 ms).
    let dead_at = now;
    let takeover = b.deadline().unwrap();
    assert!(takeover - dead_at <= Duration::from_millis(361), "{:?}", takeover - dead_at);
    let acts = b.on_timer(takeover);
    assert!(has(&acts, State::Master));
    // A comes back with higher priority and preempts.
    let mut a = Vrrp::new(cfg(200, ia.octets(), true), takeover);
    a.startup(takeover);
    let now = a.deadline().unwrap();
    let acts = a.on_timer(now);
    let back = deliver(&acts, &a, ia, &mut b, now);
    assert!(has(&back, State::Backup) && back.contains(&Action::RemoveVips), "{back:?}");
    // Tracking: A loses its real servers and drops to 50; B (100) preempts when A next advertises.
    let acts = a.set_priority(50, now);
    assert_eq!(acts, vec![Action::Advertise(50)]);
    deliver(&acts, &a, ia, &mut b, now);
    let later = b.deadline().unwrap();
    let acts = b.on_timer(later);
    assert!(has(&acts, State::Master), "B preempts the degraded master");
    let back = deliver(&acts, &b, ib, &mut a, later);
    assert!(has(&back, State::Backup));
}

#[test]
fn graceful_shutdown_hands_over_after_skew_time() {
    let (ia, _, mut a, mut b) = started_pair();
    let now = a.deadline().unwrap();
    let acts = a.on_timer(now);
    deliver(&acts, &a, ia, &mut b, now);
    let acts = a.shutdown();
    assert!(acts.contains(&Action::Advertise(0)) && acts.contains(&Action::RemoveVips));
    deliver(&acts, &a, ia, &mut b, now);
    assert_eq!(b.deadline().unwrap() - now, b.skew(), "priority 0 → take over after Skew_Time");
}

#[test]
fn no_preempt_and_preempt_delay_and_ties() {
    let t0 = Instant::now();
    let (ia, ib) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    // B is master at 100; A (200) starts without preemption: it stays backup.
    let mut b = Vrrp::new(cfg(100, ib.octets(), false), t0);
    b.startup(t0);
    let now = b.deadline().unwrap();
    b.on_timer(now);
    let mut a = Vrrp::new(cfg(200, ia.octets(), false), now);
    a.startup(now);
    let mut t = now;
    for _ in 0..20 {
        t = b.deadline().unwrap();
        let acts = b.on_timer(t);
        deliver(&acts, &b, ib, &mut a, t);
        assert!(a.on_timer(t).is_empty());
    }
    assert_eq!(a.state(), State::Backup);
    // With preemption after a 1 s delay: not before 1 s, then yes.
    let mut c = Vrrp::new(
        Config {
            preempt: true,
            preempt_delay: Duration::from_secs(1),
            ..cfg(200, [10, 0, 0, 3], true)
        },
        t,
    );
    c.startup(t);
    let start = t;
    let mut became = None;
    for _ in 0..40 {
        t = b.deadline().unwrap().min(c.deadline().unwrap());
        if c.deadline().unwrap() <= t && has(&c.on_timer(t), State::Master) {
            became = Some(t);
            break;
        }
        let acts = b.on_timer(t);
        deliver(&acts, &b, ib, &mut c, t);
    }
    let became = became.expect("c preempts after its delay");
    assert!(became - start >= Duration::from_secs(1), "{:?}", became - start);
    // Equal priorities: the higher primary address wins.
    let mut x = Vrrp::new(cfg(100, [10, 0, 0, 1], true), t0);
    x.startup(t0);
    let n = x.deadline().unwrap();
    x.on_timer(n);
    let y = Vrrp::new(cfg(100, [10, 0, 0, 9], true), t0);
    let r = x.on_advert(&y.advert(100), Ipv4Addr::new(10, 0, 0, 9), n);
    assert!(has(&r, State::Backup), "higher address wins a tie");
}

/// RFC 5798 §6.4.3: a master hearing an equal priority yields only to a
/// higher primary address. From both sides: the lower one yields, the higher
/// one keeps mastership.
#[test]
fn a_priority_tie_is_decided_by_the_address_from_both_sides() {
    let t0 = Instant::now();
    let (lo, hi) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9));
    let master = |ip: Ipv4Addr| {
        let mut m = Vrrp::new(cfg(100, ip.octets(), true), t0);
        m.startup(t0);
        let n = m.deadline().unwrap();
        assert!(has(&m.on_timer(n), State::Master));
        (m, n)
    };
    let (mut low, n) = master(lo);
    let peer_hi = Vrrp::new(cfg(100, hi.octets(), true), t0);
    let r = low.on_advert(&peer_hi.advert(100), hi, n);
    assert!(has(&r, State::Backup) && r.contains(&Action::RemoveVips), "lower yields: {r:?}");
    let (mut high, n) = master(hi);
    let peer_lo = Vrrp::new(cfg(100, lo.octets(), true), t0);
    let r = high.on_advert(&peer_lo.advert(100), lo, n);
    assert!(
        r == [Action::Advertise(100), Action::GratuitousArp] && high.state() == State::Master,
        "higher keeps mastership and announces the addresses again: {r:?}"
    );
    // A master with the same address as the sender (a loop, or a copy of our
    // own advertisement) does not yield to itself.
    let r = high.on_advert(&peer_hi.advert(100), hi, n);
    assert!(r.is_empty() && high.state() == State::Master, "{r:?}");
}

/// Two routers of equal priority started at the same moment: both time out
/// together and become master; their advertisements then cross, and exactly
/// one (the higher address) stays master.
#[test]
fn simultaneous_start_ends_with_one_master() {
    let t0 = Instant::now();
    let (ia, ib) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut a = Vrrp::new(cfg(100, ia.octets(), true), t0);
    let mut b = Vrrp::new(cfg(100, ib.octets(), true), t0);
    a.startup(t0);
    b.startup(t0);
    assert_eq!(a.deadline(), b.deadline(), "same priority, same skew: same moment");
    let now = a.deadline().unwrap();
    let (acts_a, acts_b) = (a.on_timer(now), b.on_timer(now));
    assert!(has(&acts_a, State::Master) && has(&acts_b, State::Master));
    let back_a = deliver(&acts_b, &b, ib, &mut a, now);
    let back_b = deliver(&acts_a, &a, ia, &mut b, now);
    assert!(has(&back_a, State::Backup), "{back_a:?}");
    // b keeps mastership and re-announces over a's announcement.
    assert!(!has(&back_b, State::Backup) && back_b.contains(&Action::GratuitousArp), "{back_b:?}");
    assert_eq!((a.state(), b.state()), (State::Backup, State::Master));
    // From then on b's advertisements keep a backup.
    for _ in 0..10 {
        let t = b.deadline().unwrap();
        let acts = b.on_timer(t);
        deliver(&acts, &b, ib, &mut a, t);
        assert!(a.on_timer(t).is_empty());
    }
    assert_eq!((a.state(), b.state()), (State::Backup, State::Master));
    // With different priorities started together, the higher one's shorter
    // skew makes it master first, and the other never becomes master.
    let (_, _, mut a, mut b) = started_pair();
    assert!(a.deadline() < b.deadline());
    let now = a.deadline().unwrap();
    let acts = a.on_timer(now);
    deliver(&acts, &a, ia, &mut b, now);
    assert!(b.on_timer(now).is_empty() && b.state() == State::Backup);
}

/// RFC 5798 §6.4.3: a master receiving priority 0 (another router giving up)
/// answers at once with its own advertisement and stays master.
#[test]
fn a_master_hearing_priority_zero_advertises_at_once() {
    let (ia, ib, mut a, mut b) = started_pair();
    let now = a.deadline().unwrap();
    let acts = a.on_timer(now);
    assert!(has(&acts, State::Master));
    deliver(&acts, &a, ia, &mut b, now);
    let later = now + Duration::from_millis(30);
    let r = a.on_advert(&b.advert(0), ib, later);
    assert_eq!(r, vec![Action::Advertise(200)]);
    assert_eq!(a.state(), State::Master);
    assert_eq!(a.deadline(), Some(later + Duration::from_millis(100)), "Adver_Timer reset");
}

#[test]
fn raw_socket_packets_are_validated_before_the_advertisement() {
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), VRRP_GROUP);
    let adv = Advert {
        vrid: 51,
        priority: 100,
        interval_cs: 10,
        addrs: vec![Ipv4Addr::new(10, 49, 0, 1)],
    };
    let good = ipv4_packet(src, dst, 255, &adv.encode(src, dst));
    assert_eq!(parse_packet(&good), Ok(Received { src, dst, advert: adv.clone() }));
    // §7.1: a packet that crossed a router (TTL < 255) is dropped.
    assert_eq!(
        parse_packet(&ipv4_packet(src, dst, 254, &adv.encode(src, dst))),
        Err(AdvertError::Ttl(254))
    );
    let mut bad = good.clone();
    bad[9] = 6;
    assert!(matches!(parse_packet(&bad), Err(AdvertError::IpHeader(_))));
    bad = good.clone();
    bad[3] += 4;
    assert!(matches!(parse_packet(&bad), Err(AdvertError::IpHeader(_))), "total length disagrees");
    bad = good.clone();
    bad[0] = 0x44;
    assert!(matches!(parse_packet(&bad), Err(AdvertError::IpHeader(_))), "IHL below 20 bytes");
    assert!(matches!(parse_packet(&good[..19]), Err(AdvertError::IpHeader(_))));
    // The checksum is over the pseudo-header with the IP header's addresses.
    let forged = ipv4_packet(Ipv4Addr::new(10, 0, 0, 9), dst, 255, &adv.encode(src, dst));
    assert_eq!(parse_packet(&forged), Err(AdvertError::Checksum));
    // Found by the fuzzer: reserved bits above the 12-bit interval are
    // ignored on receipt (§5.2.5) and sent as zero.
    let mut rsvd = adv.encode(src, dst);
    rsvd[4] |= 0xd0;
    // The checksum that makes it valid (found by trying them all: 65,536 parses).
    let r = (0..=u16::MAX)
        .find_map(|c| {
            rsvd[6..8].copy_from_slice(&c.to_be_bytes());
            parse_packet(&ipv4_packet(src, dst, 255, &rsvd)).ok()
        })
        .unwrap();
    assert_eq!((r.advert.interval_cs, r.advert.encode(src, dst)), (10, adv.encode(src, dst)));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn advert() -> impl Strategy<Value = Advert> {
        (1u8..=255, any::<u8>(), 1u16..=0x0fff, proptest::collection::vec(any::<u32>(), 0..=20))
            .prop_map(|(vrid, priority, interval_cs, a)| Advert {
                vrid,
                priority,
                interval_cs,
                addrs: a.into_iter().map(Ipv4Addr::from).collect(),
            })
    }

    proptest! {
        #[test]
        fn advert_round_trips_through_ip(a in advert(), s in any::<u32>(), unicast in any::<bool>(), d in any::<u32>()) {
            let src = Ipv4Addr::from(s);
            let dst = if unicast { Ipv4Addr::from(d) } else { VRRP_GROUP };
            let pkt = ipv4_packet(src, dst, 255, &a.encode(src, dst));
            prop_assert_eq!(parse_packet(&pkt), Ok(Received { src, dst, advert: a }));
        }

        #[test]
        fn any_bytes_are_an_error_or_an_advert_never_a_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = parse_packet(&b) {
                let again = ipv4_packet(r.src, r.dst, 255, &r.advert.encode(r.src, r.dst));
                prop_assert_eq!(parse_packet(&again), Ok(r));
            }
        }
    }
}

#[test]
fn interface_down_gives_up_the_addresses_until_it_returns() {
    let t = Instant::now();
    let mut r = Vrrp::new(cfg(150, [10, 0, 0, 2], true), t);
    r.startup(t);
    let acts = r.on_timer(t + r.master_down_interval());
    assert!(has(&acts, State::Master));
    let acts = r.interface_down("interface eth0 is down");
    assert!(acts.contains(&Action::RemoveVips) && has(&acts, State::Initialize), "{acts:?}");
    assert_eq!(r.deadline(), None, "nothing to time while the link is down");
    assert!(r.interface_down("again").is_empty());
    let acts = r.startup(t + Duration::from_secs(5));
    assert!(has(&acts, State::Backup), "rejoins as backup: {acts:?}");
}

/// A backup that missed the master's advertisements (a loaded machine)
/// becomes master and announces the VIPs with its MAC; when the real master
/// hears it, it must announce them again, or the devices keep sending to a
/// router that yields at once (seen in the lab: 20 s of failed connects
/// after a 4 ms split).
#[test]
fn a_master_that_hears_a_lower_priority_master_announces_the_addresses_again() {
    let (ia, ib, mut a, mut b) = started_pair();
    let now = a.deadline().unwrap();
    let acts = a.on_timer(now);
    assert!(has(&acts, State::Master));
    deliver(&acts, &a, ia, &mut b, now);
    // B hears nothing more (lost advertisements) and takes over.
    let split = b.deadline().unwrap();
    let b_acts = b.on_timer(split);
    assert!(has(&b_acts, State::Master) && b_acts.contains(&Action::GratuitousArp));
    // A, still master, hears B's lower-priority advertisement.
    let back = deliver(&b_acts, &b, ib, &mut a, split);
    assert_eq!(a.state(), State::Master);
    assert!(
        back.contains(&Action::GratuitousArp) && back.contains(&Action::Advertise(200)),
        "{back:?}"
    );
    // B hears A's answer and yields, removing the VIPs.
    let yielded = deliver(&back, &a, ia, &mut b, split);
    assert!(has(&yielded, State::Backup) && yielded.contains(&Action::RemoveVips), "{yielded:?}");
}
