//! Open loop: requests at a fixed aggregate rate, each from the next device
//! in turn, started at its intended time whatever the target does; latency
//! counts from that intended time (no coordinated omission).
//!
//! A pacing thread releases requests at their intended times, to within
//! [`TICK`] and the kernel's sleep precision: the runtime's timers tick in
//! milliseconds, which would release a millisecond's requests in one burst
//! and add up to a millisecond to every latency measured from the intended
//! time. What a tick releases reaches the runtime in one hand-over (one
//! wake-up across threads per tick, not per request); a dispatcher task
//! passes each request to its device. Each device is a task that sends its
//! requests one after another (a device has one request in flight), so a
//! request costs no task of its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::engine::{Shared, drain, request};

/// The pacing thread's shortest sleep: requests due within it are released
/// together (at most this late, which counts in their latency).
pub(crate) const TICK: Duration = Duration::from_micros(50);

/// Requests released by the pacing thread, not yet passed to their devices.
#[derive(Default)]
struct Released {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    /// (device, intended time).
    due: Vec<(usize, std::time::Instant)>,
    /// The last request is in `due` (or was taken from it).
    done: bool,
}

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
                // Boxed: a request's state is a few KB, and a fleet of tens
                // of thousands of idle devices should not each hold one.
                Box::pin(request(&sh, dev, intended)).await;
            }
        }));
    }
    let released = Arc::new(Released::default());
    let r = released.clone();
    let (start, end) = (start.into_std(), end.into_std());
    let pacer = std::thread::Builder::new()
        .name("tacvs-sim-pace".into())
        .spawn(move || pace(&r, devices, per, start, end));
    if let Err(e) = pacer {
        // No requests are sent: the report says so (and --expect fails).
        eprintln!("tacvs sim: cannot start the open loop's pacing thread: {e}");
    } else {
        loop {
            let (batch, done) = {
                let mut q = released.queue.lock().unwrap_or_else(|e| e.into_inner());
                (std::mem::take(&mut q.due), q.done)
            };
            for (dev, intended) in batch {
                let _ = senders[dev].send(Instant::from_std(intended));
            }
            if done {
                break;
            }
            released.ready.notified().await;
        }
    }
    // Each device ends once it has sent what it was given.
    drop(senders);
    drain(shared, handles, shared.cfg.timeout).await;
}

/// Release request `k` to device `k mod devices` at `start + k × per`, until
/// `end`.
fn pace(
    released: &Released,
    devices: usize,
    per: Duration,
    start: std::time::Instant,
    end: std::time::Instant,
) {
    let mut k: u64 = 0;
    loop {
        let now = std::time::Instant::now();
        let mut next;
        let mut any = false;
        {
            let mut q = released.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                next = start + per.mul_f64(k as f64);
                if next > now || next >= end {
                    break;
                }
                q.due.push(((k % devices as u64) as usize, next));
                any = true;
                k += 1;
            }
            q.done = next >= end;
        }
        if any || next >= end {
            released.ready.notify_one();
        }
        if next >= end {
            return;
        }
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()).max(TICK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_releases_every_request_once_in_turn_at_its_intended_time() {
        let released = Released::default();
        let start = std::time::Instant::now();
        let per = Duration::from_micros(700);
        let end = start + Duration::from_millis(35);
        pace(&released, 3, per, start, end);
        let q = released.queue.lock().unwrap();
        // 35 ms / 0.7 ms: requests 0..=49, each once, devices in turn.
        assert_eq!(q.due.len(), 50);
        for (k, &(dev, intended)) in q.due.iter().enumerate() {
            assert_eq!(dev, k % 3, "request {k}");
            assert_eq!(intended, start + per * k as u32, "request {k}");
        }
        assert!(q.done);
        // Nothing is released before its time.
        assert!(std::time::Instant::now() >= q.due[49].1);
    }
}
