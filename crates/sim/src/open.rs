//! Open loop: requests at a fixed aggregate rate, each from the next device
//! in turn, started at its intended time whatever the target does; latency
//! counts from that intended time (no coordinated omission).
//!
//! A pacing thread releases each request at its intended time, to within the
//! kernel's sleep precision (tens of microseconds): the runtime's timers tick
//! in milliseconds, which would release a millisecond's requests in one burst
//! and add up to a millisecond to every latency measured from the intended
//! time. Each device is a task that sends its released requests one after
//! another (a device has one request in flight), so a request costs no task
//! of its own.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::{Shared, drain, request};

/// Drive `rate` requests/s from `start` until `end`.
pub(crate) async fn drive(shared: &Arc<Shared>, rate: f64, start: Instant, end: Instant) {
    let per = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let devices = shared.cfg.devices.max(1);
    let mut senders = Vec::with_capacity(devices);
    let mut handles = Vec::with_capacity(devices);
    for dev in 0..devices {
        let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
        senders.push(tx);
        let sh = shared.clone();
        handles.push(tokio::spawn(async move {
            while let Some(intended) = rx.recv().await {
                request(&sh, dev, intended).await;
            }
        }));
    }
    let pacer = std::thread::Builder::new()
        .name("tacvs-sim-pace".into())
        .spawn(move || pace(&senders, per, start.into_std(), end.into_std()));
    match pacer {
        Ok(p) => {
            // The thread ends at `end`; wait for it off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || p.join()).await;
        }
        // No requests are sent: the report says so (and --expect fails).
        Err(e) => eprintln!("tacvs sim: cannot start the open loop's pacing thread: {e}"),
    }
    drain(shared, handles, shared.cfg.timeout).await;
}

/// Release request `k` to device `k mod devices` at `start + k × per`, until
/// `end`. Dropping the senders at the end lets each device finish.
fn pace(
    senders: &[mpsc::UnboundedSender<Instant>],
    per: Duration,
    start: std::time::Instant,
    end: std::time::Instant,
) {
    let mut k: u64 = 0;
    loop {
        let now = std::time::Instant::now();
        loop {
            let intended = start + per.mul_f64(k as f64);
            if intended > now || intended >= end {
                break;
            }
            let _ = senders[(k % senders.len() as u64) as usize].send(Instant::from_std(intended));
            k += 1;
        }
        let next = start + per.mul_f64(k as f64);
        if next >= end {
            return;
        }
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
}
