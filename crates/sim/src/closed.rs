//! Closed loop, one session at a time: `n` requesters, each sending its next
//! request (from the next device it serves) as soon as the last one ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::engine::{Shared, drain, request};

/// Drive `n` requesters until `end`.
pub(crate) async fn drive(shared: &Arc<Shared>, n: usize, end: Instant) {
    let mut handles = Vec::new();
    for w in 0..n {
        let sh = shared.clone();
        handles.push(tokio::spawn(async move {
            let mut dev = w % sh.cfg.devices;
            while Instant::now() < end && !sh.stop.load(Ordering::Relaxed) {
                request(&sh, dev, Instant::now()).await;
                dev = (dev + n) % sh.cfg.devices;
            }
        }));
    }
    tokio::time::sleep_until(end).await;
    drain(shared, handles, shared.cfg.timeout).await;
}
