//! The director's pure core: scheduler distributions and behaviour when servers
//! are added, removed, drained, capped or reweighted; Maglev's minimal
//! disruption; the health state machine on fake time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tacvs_director::core::health::{CheckResult, Health, State};
use tacvs_director::core::maglev::{MAX_TABLE, Maglev, prime_at_least, table_size};
use tacvs_director::core::sched::{Backend, Flow, HashOn, Kind, Scheduler};

fn flow(i: u32) -> Flow {
    let client: SocketAddr =
        format!("10.{}.{}.{}:40000", (i >> 16) & 255, (i >> 8) & 255, i & 255).parse().unwrap();
    Flow { client, vip: "192.0.2.1:49".parse().unwrap() }
}

fn servers(weights: &[u32]) -> Vec<Backend> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Backend::new(format!("10.0.0.{}:49", i + 1), w))
        .collect()
}

/// Pick `n` times; `hold` keeps each pick as an open connection (active + 1).
fn counts(kind: Kind, s: &mut [Backend], n: u32, hold: bool) -> Vec<u32> {
    let mut sch = Scheduler::new(kind, 42);
    let mut c = vec![0; s.len()];
    for i in 0..n {
        let Some(k) = sch.pick(s, flow(i)) else { continue };
        c[k] += 1;
        if hold {
            s[k].active += 1;
        }
    }
    c
}

#[test]
fn round_robin_and_weighted_round_robin() {
    assert_eq!(counts(Kind::Rr, &mut servers(&[1, 1, 1]), 300, false), [100, 100, 100]);
    assert_eq!(
        counts(Kind::Rr, &mut servers(&[1, 5, 1]), 300, false),
        [100, 100, 100],
        "rr ignores weights"
    );
    assert_eq!(counts(Kind::Wrr, &mut servers(&[1, 2, 3]), 600, false), [100, 200, 300]);
    // Smooth: the heaviest server never gets a long run of its own.
    let mut s = servers(&[5, 1, 1]);
    let mut sch = Scheduler::new(Kind::Wrr, 1);
    let seq: Vec<usize> = (0..7).map(|i| sch.pick(&s, flow(i)).unwrap()).collect();
    assert!(seq.windows(4).all(|w| !w.iter().all(|&x| x == 0)), "{seq:?}");
    // Reweight mid-stream.
    s[1].weight = 5;
    let c = {
        let mut c = [0; 3];
        for i in 0..1100 {
            c[sch.pick(&s, flow(i)).unwrap()] += 1;
        }
        c
    };
    assert_eq!(c, [500, 500, 100]);
}

#[test]
fn least_connection_family() {
    // Holding connections: lc evens counts, wlc evens count/weight.
    assert_eq!(counts(Kind::Lc, &mut servers(&[1, 3]), 100, true), [50, 50]);
    assert_eq!(counts(Kind::Wlc, &mut servers(&[1, 3]), 100, true), [25, 75]);
    assert_eq!(counts(Kind::Sed, &mut servers(&[1, 3]), 100, true), [25, 75]);
    // sed vs wlc with idle servers: sed sends the first to the heavier one.
    let s = servers(&[1, 3]);
    assert_eq!(Scheduler::new(Kind::Sed, 0).pick(&s, flow(0)), Some(1));
    // nq: an idle server first, whatever its weight.
    let mut s = servers(&[10, 1]);
    s[0].active = 1;
    assert_eq!(Scheduler::new(Kind::Nq, 0).pick(&s, flow(0)), Some(1));
    s[1].active = 1;
    assert_eq!(Scheduler::new(Kind::Nq, 0).pick(&s, flow(0)), Some(0));
}

#[test]
fn failover_and_overflow() {
    let mut s = servers(&[1, 9, 5]);
    assert_eq!(counts(Kind::Fo, &mut s.clone(), 10, true), [0, 10, 0]);
    s[1].up = false;
    assert_eq!(Scheduler::new(Kind::Fo, 0).pick(&s, flow(0)), Some(2), "next highest weight");
    // ovf: weight is the capacity; fill the heaviest, then overflow.
    assert_eq!(counts(Kind::Ovf, &mut servers(&[2, 3]), 5, true), [2, 3]);
    assert_eq!(counts(Kind::Ovf, &mut servers(&[2, 3]), 4, true), [1, 3]);
}

#[test]
fn drained_down_and_capped_servers_are_never_picked() {
    for kind in [
        Kind::Rr,
        Kind::Wrr,
        Kind::Lc,
        Kind::Wlc,
        Kind::Sed,
        Kind::Nq,
        Kind::Fo,
        Kind::Ovf,
        Kind::Sh,
        Kind::Mh,
        Kind::Twos,
    ] {
        let mut s = servers(&[1, 1, 1, 1]);
        s[0].weight = 0; // drained
        s[1].up = false; // down
        s[2].max_conns = 5;
        s[2].active = 5; // full
        let c = counts(kind, &mut s, 200, false);
        assert_eq!(&c[..3], [0, 0, 0], "{kind:?}: {c:?}");
        assert_eq!(c[3], 200, "{kind:?}");
        s[3].up = false;
        assert_eq!(Scheduler::new(kind, 7).pick(&s, flow(1)), None, "{kind:?}: nothing available");
    }
}

#[test]
fn source_and_destination_hashing() {
    let s = servers(&[1, 1, 1, 1]);
    let mut sch = Scheduler::new(Kind::Sh, 0);
    let first: Vec<usize> = (0..1000).map(|i| sch.pick(&s, flow(i)).unwrap()).collect();
    let again: Vec<usize> = (0..1000).map(|i| sch.pick(&s, flow(i)).unwrap()).collect();
    assert_eq!(first, again, "sticky per source");
    let mut per = [0; 4];
    first.iter().for_each(|&k| per[k] += 1);
    assert!(per.iter().all(|&c| (200..=300).contains(&c)), "{per:?}");
    let w = counts(Kind::Sh, &mut servers(&[1, 3]), 4000, false);
    assert!((2700..=3300).contains(&w[1]), "weighted: {w:?}");
    // dh hashes the destination: one VIP, one server.
    let d = counts(Kind::Dh, &mut servers(&[1, 1, 1]), 100, false);
    assert_eq!(d.iter().filter(|&&c| c == 100).count(), 1, "{d:?}");
}

#[test]
fn maglev_table_and_minimal_disruption() {
    let names: Vec<(String, u32)> = (0..5).map(|i| (format!("10.0.0.{i}:49"), 1)).collect();
    let t = Maglev::new(&names);
    // 5 servers: a prime ≥ 1,000 × 8, kept while servers are added up to 8.
    assert_eq!(t.size() as u64, prime_at_least(8000));
    assert_eq!(t.size(), 8009);
    let shares = t.shares(5);
    assert!(shares.iter().all(|&s| (1590..=1615).contains(&s)), "even shares: {shares:?}");
    // Remove server 2: its keys move, almost nobody else's.
    let mut less = names.clone();
    less[2].1 = 0;
    let t2 = Maglev::new(&less);
    let keys: Vec<u64> = (0..20_000u64).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let (mut moved_others, mut others) = (0, 0);
    for &k in &keys {
        let (a, b) = (t.lookup(k).unwrap(), t2.lookup(k).unwrap());
        assert_ne!(b, 2);
        if a != 2 {
            others += 1;
            moved_others += usize::from(a != b);
        }
    }
    let frac = moved_others as f64 / others as f64;
    assert!(frac < 0.05, "only {:.1}% of other servers' keys may move", frac * 100.0);
    // Add a sixth server: about 1/6 of keys move to it, few move elsewhere.
    let mut more = names.clone();
    more.push(("10.0.0.9:49".into(), 1));
    let t3 = Maglev::new(&more);
    let (mut to_new, mut elsewhere) = (0, 0);
    for &k in &keys {
        let (a, b) = (t.lookup(k).unwrap(), t3.lookup(k).unwrap());
        if a != b {
            if b == 5 { to_new += 1 } else { elsewhere += 1 }
        }
    }
    assert!((2800..=3900).contains(&to_new), "{to_new}");
    assert!((elsewhere as f64) < keys.len() as f64 * 0.05, "{elsewhere}");
    assert_eq!(table_size(6), table_size(8));
    assert!(table_size(9) >= 9000);
    // The data plane holds at most 65,536 slots: 1,000 per server up to 64,
    // then the largest prime it holds, then 100 per server (refused there).
    assert_eq!(table_size(64), prime_at_least(64_000));
    assert_eq!(table_size(65), MAX_TABLE);
    assert_eq!(table_size(512), MAX_TABLE);
    assert_eq!(table_size(513), prime_at_least(102_400));
    // Weights shape the shares.
    let w = Maglev::new(&[("a".into(), 1), ("b".into(), 3)]);
    let sh = w.shares(2);
    assert!((sh[1] as f64 / sh[0] as f64 - 3.0).abs() < 0.2, "{sh:?}");
}

/// A failure moves the failed server's slots and few of the others', for
/// every set of servers, not only on average: 200 sets of 3–5 servers at
/// random addresses, equal and weighted (1–5), each server failing in turn.
/// With 100 slots per server this found failures that moved 38 % of the
/// other servers' slots (two permutations running into each other in a
/// small table); the worst seen with [`table_size`] now is under 6 %.
#[test]
fn maglev_no_failure_moves_many_other_slots() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut worst = (0.0, String::new());
    for set in 0..200 {
        let n = 3 + set % 3;
        let weighted = set % 2 == 1;
        let servers: Vec<(String, u32)> = (0..n)
            .map(|_| {
                let r = rnd();
                let addr = format!("10.{}.{}.{}:49", r & 255, (r >> 8) & 255, (r >> 16) & 255);
                (addr, if weighted { 1 + ((r >> 24) % 5) as u32 } else { 1 })
            })
            .collect();
        let before = Maglev::new(&servers);
        for k in 0..n {
            let mut less = servers.clone();
            less[k].1 = 0;
            let after = Maglev::new(&less);
            assert_eq!(before.size(), after.size());
            let (mut moved, mut others) = (0, 0);
            for slot in 0..before.size() as u64 {
                let (a, b) = (before.lookup(slot), after.lookup(slot));
                if a != Some(k) {
                    others += 1;
                    moved += usize::from(a != b);
                }
            }
            let frac = moved as f64 / others as f64;
            if frac > worst.0 {
                worst = (frac, format!("{servers:?} without {k}"));
            }
        }
    }
    assert!(worst.0 < 0.10, "{:.1} % of the other slots moved: {}", worst.0 * 100.0, worst.1);
}

#[test]
fn mh_scheduler_is_consistent_and_follows_health() {
    let mut s = servers(&[1, 1, 1, 1]);
    let mut sch = Scheduler::new(Kind::Mh, 0);
    let before: HashMap<u32, usize> =
        (0..2000).map(|i| (i, sch.pick(&s, flow(i)).unwrap())).collect();
    s[3].up = false;
    let mut moved = 0;
    for i in 0..2000 {
        let now = sch.pick(&s, flow(i)).unwrap();
        assert_ne!(now, 3);
        moved += usize::from(before[&i] != 3 && before[&i] != now);
    }
    assert!(moved < 100, "{moved} of the healthy servers' flows moved");
}

#[test]
fn hashing_on_the_source_port_spreads_one_devices_connections() {
    let s = servers(&[1, 1, 1, 1]);
    let port = |p: u16| Flow {
        client: SocketAddr::from(([10, 0, 0, 7], p)),
        vip: "192.0.2.1:49".parse().unwrap(),
    };
    for kind in [Kind::Sh, Kind::Mh] {
        // IPVS's default: one device, one server, whatever its port.
        let mut by_addr = Scheduler::new(kind, 0);
        let one: std::collections::HashSet<usize> =
            (40000..40200).map(|p| by_addr.pick(&s, port(p)).unwrap()).collect();
        assert_eq!(one.len(), 1, "{kind}");
        // sh-port / mh-port: its connections spread, each port stable.
        let mut by_port = Scheduler::new(kind, 0).hashing(HashOn::SourcePort);
        let picks: Vec<usize> =
            (40000..40200).map(|p| by_port.pick(&s, port(p)).unwrap()).collect();
        let spread: std::collections::HashSet<&usize> = picks.iter().collect();
        assert_eq!(spread.len(), 4, "{kind}");
        assert_eq!(by_port.pick(&s, port(40007)), Some(picks[7]), "{kind}");
    }
}

#[test]
fn power_of_two_choices_balances() {
    let c = counts(Kind::Twos, &mut servers(&[1, 1, 1, 1, 1]), 1000, true);
    let (lo, hi) = (*c.iter().min().unwrap(), *c.iter().max().unwrap());
    assert!(hi - lo <= 3, "two choices keep loads within a few: {c:?}");
    // Deterministic for a seed.
    assert_eq!(
        counts(Kind::Twos, &mut servers(&[1, 2, 3]), 500, true),
        counts(Kind::Twos, &mut servers(&[1, 2, 3]), 500, true)
    );
}

#[test]
fn scheduler_names_parse() {
    for n in ["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "sh", "dh", "mh", "twos"] {
        assert!(n.parse::<Kind>().is_ok(), "{n}");
    }
    assert!("lb".parse::<Kind>().unwrap_err().contains("wlc"));
}

#[test]
fn health_rise_fall_with_fake_time() {
    let t0 = Instant::now();
    let interval = Duration::from_millis(200);
    let mut h = Health::new(2, 3, State::Up, t0);
    let ok = CheckResult::Ok { latency: Duration::from_micros(300) };
    let fail = || CheckResult::Failed { reason: "connection refused".into() };
    // The server dies right after t0: checks at 200, 400, 600 ms fail.
    assert_eq!(h.observe(fail(), t0 + interval), None);
    assert_eq!(h.observe(fail(), t0 + interval * 2), None);
    let t = h.observe(fail(), t0 + interval * 3).expect("third failure takes it down");
    assert_eq!((t.from, t.to), (State::Up, State::Down));
    assert!(t.at - t0 <= interval * 3, "out of scheduling within fall × interval");
    assert!(!h.schedulable());
    // One success is not enough to come back; two in a row are.
    assert_eq!(h.observe(ok.clone(), t0 + interval * 4), None);
    assert_eq!(h.observe(fail(), t0 + interval * 5), None);
    assert_eq!(h.observe(ok.clone(), t0 + interval * 6), None);
    let t = h.observe(ok.clone(), t0 + interval * 7).unwrap();
    assert_eq!(t.to, State::Up);
    // A failure streak shorter than `fall` changes nothing.
    assert_eq!(h.observe(fail(), t0 + interval * 8), None);
    assert_eq!(h.observe(ok.clone(), t0 + interval * 9), None);
    assert_eq!(h.state(), State::Up);
    // Misconfigured: up but flagged; back to up when fixed.
    let t = h
        .observe(
            CheckResult::Misconfigured { reason: "wrong key".into(), latency: Duration::ZERO },
            t0 + interval * 10,
        )
        .unwrap();
    assert_eq!(t.to, State::Misconfigured);
    assert!(h.schedulable());
    assert_eq!(h.observe(ok, t0 + interval * 11).unwrap().to, State::Up);
}

#[test]
fn least_connection_ties_rotate_for_short_connections() {
    // Connections closed before the next pick: every pick is a tie at zero.
    for kind in [Kind::Lc, Kind::Wlc, Kind::Sed, Kind::Nq] {
        let c = counts(kind, &mut servers(&[1, 1, 1]), 300, false);
        assert_eq!(c, [100, 100, 100], "{kind:?}");
    }
}

#[test]
fn every_scheduler_uses_an_added_server_and_forgets_a_removed_one() {
    for kind in [
        Kind::Rr,
        Kind::Wrr,
        Kind::Lc,
        Kind::Wlc,
        Kind::Sed,
        Kind::Nq,
        Kind::Fo,
        Kind::Ovf,
        Kind::Sh,
        Kind::Mh,
        Kind::Twos,
    ] {
        let mut sch = Scheduler::new(kind, 9);
        let mut s = servers(&[1, 1]);
        let mut pick = |s: &mut Vec<Backend>, i: u32| {
            let k = sch.pick(s, flow(i)).unwrap();
            s[k].active += 1;
            k
        };
        for i in 0..20 {
            pick(&mut s, i);
        }
        // Add a server with a higher weight (so fo and ovf prefer it too).
        s.push(Backend::new("10.0.0.9:49", 5));
        let after: Vec<usize> = (20..200).map(|i| pick(&mut s, i)).collect();
        assert!(after.contains(&2), "{kind:?} never used the added server");
        // Remove server 0 (config reload drops it from the list).
        s.remove(0);
        let after: Vec<usize> = (200..300).map(|i| pick(&mut s, i)).collect();
        assert!(after.iter().all(|&k| k < 2), "{kind:?}: index out of the new list");
    }
}
