//! Recent state changes (real servers up and down, VRRP transitions,
//! reloads): a bounded ring of the last [`CAPACITY`], newest last, for the
//! status page and `tacvs director status --json`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::control::protocol::StateChange;

/// How many changes are kept.
pub const CAPACITY: usize = 64;

/// The ring.
#[derive(Debug, Default)]
pub struct Events {
    ring: Mutex<VecDeque<(Instant, SystemTime, Change)>>,
}

#[derive(Debug, Clone)]
struct Change {
    subject: String,
    from: String,
    to: String,
    reason: String,
}

impl Events {
    /// Remember a change of `subject` (e.g. `real server 10.0.0.1:49 in tacacs`).
    pub fn record(&self, subject: String, from: &str, to: &str, reason: String) {
        let mut r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() == CAPACITY {
            r.pop_front();
        }
        let c = Change { subject, from: from.into(), to: to.into(), reason };
        r.push_back((Instant::now(), SystemTime::now(), c));
    }

    /// The changes kept, oldest first.
    pub fn list(&self) -> Vec<StateChange> {
        let now = Instant::now();
        let r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        r.iter()
            .map(|(at, wall, c)| StateChange {
                seconds_ago: (now - *at).as_secs_f64(),
                unix_time: wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                subject: c.subject.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
                reason: c.reason.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_capacity_changes_in_order() {
        let e = Events::default();
        for i in 0..CAPACITY + 5 {
            e.record(format!("s{i}"), "up", "down", "no answer".into());
        }
        let l = e.list();
        assert_eq!(l.len(), CAPACITY);
        assert_eq!(l[0].subject, "s5");
        assert_eq!(l.last().unwrap().subject, format!("s{}", CAPACITY + 4));
    }
}
