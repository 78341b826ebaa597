//! Open connections, for `tacvs server sessions`: each connection registers
//! once when it is accepted and deregisters when it ends. While it runs it
//! updates only atomics of its own (state, requests answered), so the
//! authorization path takes no lock and allocates nothing for this; the user
//! shown is the one of the connection's last authentication.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;

use crate::Shared;
use crate::control::SessionView;
use crate::logfmt::Esc;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// No session open.
    Idle = 0,
    /// A session is open (waiting for the device or being answered).
    InSession = 1,
    /// Slow work is pending (a password check, a journal write).
    Working = 2,
}

impl State {
    fn as_str(v: u8) -> &'static str {
        match v {
            0 => "idle",
            1 => "in a session",
            _ => "working",
        }
    }
}

/// One registered connection.
#[derive(Debug)]
pub struct Conn {
    device: SocketAddr,
    group: Arc<str>,
    since: SystemTime,
    state: AtomicU8,
    requests: AtomicU64,
    user: Mutex<Option<Bytes>>,
}

impl Conn {
    /// Record what the connection is doing.
    pub fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    /// Count a request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The user of an authentication on this connection (authentication path only).
    ///
    /// A copy, not a view: `user` is a slice of the packet's read buffer, and
    /// kept for the connection's life a view would pin that whole buffer (up
    /// to `max_body`) on a connection that then stays idle.
    pub fn set_user(&self, user: &Bytes) {
        if user.is_empty() {
            return;
        }
        let mut held = self.user.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_deref() != Some(&user[..]) {
            *held = Some(Bytes::copy_from_slice(user));
        }
    }
}

/// Every open connection.
#[derive(Debug, Default)]
pub struct Registry {
    next: AtomicU64,
    /// By an id the registry chose (a counter): no peer picks these keys.
    map: Mutex<foldhash::HashMap<u64, Arc<Conn>>>,
}

/// A connection's entry; dropping it deregisters.
#[derive(Debug)]
pub struct Registration {
    shared: Arc<Shared>,
    id: u64,
    /// The entry the connection updates.
    pub conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.sessions.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl Registry {
    /// Register a connection from `device` (group `group`).
    pub fn register(shared: &Arc<Shared>, device: SocketAddr, group: Arc<str>) -> Registration {
        let r = &shared.sessions;
        let id = r.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            device,
            group,
            since: SystemTime::now(),
            state: AtomicU8::new(State::Idle as u8),
            requests: AtomicU64::new(0),
            user: Mutex::new(None),
        });
        r.map.lock().unwrap_or_else(|e| e.into_inner()).insert(id, conn.clone());
        Registration { shared: shared.clone(), id, conn }
    }

    /// Every open connection, oldest first.
    pub fn list(&self) -> Vec<SessionView> {
        let conns: Vec<Arc<Conn>> =
            self.map.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut out: Vec<(SystemTime, SessionView)> = conns
            .iter()
            .map(|c| {
                let user = c.user.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let view = SessionView {
                    device: c.device.to_string(),
                    device_group: c.group.to_string(),
                    user: user.map(|u| Esc(&u).to_string()),
                    since: humantime::format_rfc3339_seconds(c.since).to_string(),
                    state: State::as_str(c.state.load(Ordering::Relaxed)).into(),
                    requests: c.requests.load(Ordering::Relaxed),
                };
                (c.since, view)
            })
            .collect();
        out.sort_by_key(|(t, _)| *t);
        out.into_iter().map(|(_, v)| v).collect()
    }

    /// Open connections registered.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by an adversarial review: a view kept a 64 KiB read buffer alive
    /// for the user's 5 bytes, on every idle connection that had logged in.
    #[test]
    fn the_user_kept_does_not_pin_the_packets_buffer() {
        let conn = Conn {
            device: "192.0.2.1:1".parse().unwrap(),
            group: "lab".into(),
            since: SystemTime::now(),
            state: AtomicU8::new(0),
            requests: AtomicU64::new(0),
            user: Mutex::new(None),
        };
        let buffer = Bytes::from(vec![b'a'; 65536]);
        conn.set_user(&buffer.slice(..5));
        assert!(buffer.is_unique(), "the read buffer is still shared");
        assert_eq!(conn.user.lock().unwrap().as_deref(), Some(&b"aaaaa"[..]));
        // The same name again keeps what is held; another replaces it.
        let held = conn.user.lock().unwrap().as_ref().map(|b| b.as_ptr());
        conn.set_user(&Bytes::from_static(b"aaaaa"));
        assert_eq!(conn.user.lock().unwrap().as_ref().map(|b| b.as_ptr()), held);
        conn.set_user(&Bytes::from_static(b"bob"));
        assert_eq!(conn.user.lock().unwrap().as_deref(), Some(&b"bob"[..]));
    }
}
