//! Open loop: requests at a fixed aggregate rate, each from the next device
//! in turn, started at its intended time whatever the target does; latency
//! counts from that intended time (no coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::{Shared, drain, request};

/// Drive `rate` requests/s from `start` until `end`.
pub(crate) async fn drive(shared: &Arc<Shared>, rate: f64, start: Instant, end: Instant) {
    let mut k: u64 = 0;
    let per = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut handles = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Start every request whose intended time has come.
        loop {
            let intended = start + per.mul_f64(k as f64);
            if intended > now || intended >= end {
                break;
            }
            let sh = shared.clone();
            let dev = (k % shared.cfg.devices as u64) as usize;
            handles.push(tokio::spawn(async move { request(&sh, dev, intended).await }));
            k += 1;
        }
        if handles.len() > 4096 {
            handles.retain(|h| !h.is_finished());
        }
        let next = start + per.mul_f64(k as f64);
        tokio::time::sleep_until(next.min(end)).await;
    }
    drain(shared, handles, shared.cfg.timeout).await;
}
