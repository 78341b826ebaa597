//! Credential checking machinery: a bounded pool for password-hash verification
//! (slow by design, so it never runs on the async threads), the verified-
//! credential cache, and failed-login lockout.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use tacvs_policy::PasswordHash;
use tokio::sync::Semaphore;

/// Runs hash verifications on blocking threads, at most `workers` at once and at
/// most `queue` waiting.
#[derive(Debug)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// The pool's queue is full: answer ERROR rather than pile up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl HashPool {
    /// A pool of `workers` threads' worth of permits.
    pub fn new(workers: usize, queue: usize) -> Self {
        HashPool {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// Verify `password` against `hash` off the async threads.
    pub async fn verify(&self, hash: PasswordHash, password: Vec<u8>) -> Result<bool, Busy> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("tacvs_rejects_total", "reason" => "hash_queue_full").increment(1);
            return Err(Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit.map_err(|_| Busy)?;
        let t = Instant::now();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash.verify(&password)
        })
        .await
        .map_err(|_| Busy)?;
        metrics::histogram!("tacvs_password_hash_seconds").record(t.elapsed().as_secs_f64());
        Ok(ok)
    }
}

/// What a cached credential was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredKind {
    /// Login password.
    Login,
    /// Enable password.
    Enable,
}

/// Remembers (user, password) pairs that verified, for `ttl`. Keys are
/// HMAC-SHA256 under a secret drawn at start-up, so the table holds no password
/// and nothing an attacker could test offline without that secret.
#[derive(Debug)]
pub struct CredCache {
    secret: [u8; 32],
    ttl: Duration,
    max: usize,
    enabled: bool,
    map: Mutex<HashMap<[u8; 32], Instant>>,
}

impl CredCache {
    /// A cache; `enabled = false` makes every lookup miss.
    pub fn new(enabled: bool, ttl: Duration, max: usize) -> Self {
        CredCache { secret: rand::random(), ttl, max, enabled, map: Mutex::new(HashMap::new()) }
    }

    fn key(&self, kind: CredKind, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC takes any key length");
        m.update(&[kind as u8]);
        m.update(&(user.len() as u32).to_be_bytes());
        m.update(user);
        m.update(password);
        m.finalize().into_bytes().into()
    }

    /// Whether this pair verified within the last `ttl`.
    pub fn hit(&self, kind: CredKind, user: &[u8], password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        let k = self.key(kind, user, password);
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&k).is_some_and(|&exp| exp > Instant::now())
    }

    /// Remember a pair that verified.
    pub fn insert(&self, kind: CredKind, user: &[u8], password: &[u8]) {
        if !self.enabled {
            return;
        }
        let k = self.key(kind, user, password);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            map.retain(|_, &mut exp| exp > now);
            if map.len() >= self.max {
                return;
            }
        }
        map.insert(k, now + self.ttl);
    }

    /// Forget everything (on reload: passwords may have changed).
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    User(Box<[u8]>),
    Source(IpAddr),
}

#[derive(Debug, Default)]
struct Failures {
    times: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Failed-login lockout per user and per source address.
#[derive(Debug)]
pub struct Lockout {
    max_failures: u32,
    window: Duration,
    duration: Duration,
    map: Mutex<HashMap<Subject, Failures>>,
}

/// Which lock applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The user is locked.
    User(Duration),
    /// The source address is locked.
    Source(Duration),
}

impl Lockout {
    /// `max_failures = 0` disables lockout.
    pub fn new(max_failures: u32, window: Duration, duration: Duration) -> Self {
        Lockout { max_failures, window, duration, map: Mutex::new(HashMap::new()) }
    }

    /// Whether the user or the source is locked now, and for how much longer.
    pub fn check(&self, user: &[u8], src: IpAddr) -> Option<Locked> {
        if self.max_failures == 0 {
            return None;
        }
        let now = Instant::now();
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let left = |s: &Subject| {
            map.get(s).and_then(|f| f.locked_until).filter(|&t| t > now).map(|t| t - now)
        };
        if let Some(d) = left(&Subject::User(user.into())) {
            return Some(Locked::User(d));
        }
        left(&Subject::Source(src)).map(Locked::Source)
    }

    /// Count a failure; returns what it locked, if anything.
    pub fn failure(&self, user: &[u8], src: IpAddr) -> Option<Locked> {
        if self.max_failures == 0 {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 200_000 {
            let window = self.window;
            map.retain(|_, f| {
                f.locked_until.is_some_and(|t| t > now)
                    || f.times.back().is_some_and(|&t| now - t < window)
            });
        }
        let mut locked = None;
        for s in [Subject::User(user.into()), Subject::Source(src)] {
            let is_user = matches!(s, Subject::User(_));
            let f = map.entry(s).or_default();
            while f.times.front().is_some_and(|&t| now - t > self.window) {
                f.times.pop_front();
            }
            f.times.push_back(now);
            if f.times.len() as u32 >= self.max_failures {
                f.locked_until = Some(now + self.duration);
                f.times.clear();
                // Report the user's lock first when both engage.
                locked = locked.or(Some(if is_user {
                    Locked::User(self.duration)
                } else {
                    Locked::Source(self.duration)
                }));
            }
        }
        locked
    }

    /// A success clears the user's failure count (the source keeps its history).
    pub fn success(&self, user: &[u8]) {
        if self.max_failures == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = map.get_mut(&Subject::User(user.into())) {
            f.times.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hits_only_the_same_pair_and_clears() {
        let c = CredCache::new(true, Duration::from_secs(60), 10);
        c.insert(CredKind::Login, b"alice", b"pw");
        assert!(c.hit(CredKind::Login, b"alice", b"pw"));
        assert!(!c.hit(CredKind::Login, b"alice", b"pw2"));
        assert!(!c.hit(CredKind::Enable, b"alice", b"pw"));
        assert!(!c.hit(CredKind::Login, b"alic", b"epw"), "length-prefixed user");
        c.clear();
        assert!(!c.hit(CredKind::Login, b"alice", b"pw"));
        let off = CredCache::new(false, Duration::from_secs(60), 10);
        off.insert(CredKind::Login, b"a", b"b");
        assert!(!off.hit(CredKind::Login, b"a", b"b"));
    }

    #[test]
    fn lockout_by_user_and_source() {
        let l = Lockout::new(3, Duration::from_secs(60), Duration::from_secs(30));
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(l.failure(b"bob", src), None);
        assert_eq!(l.failure(b"bob", src), None);
        assert!(matches!(l.failure(b"bob", src), Some(Locked::User(_))));
        assert!(matches!(l.check(b"bob", "192.0.2.99".parse().unwrap()), Some(Locked::User(_))));
        assert!(matches!(l.check(b"carol", src), Some(Locked::Source(_))));
        assert_eq!(l.check(b"carol", "192.0.2.2".parse().unwrap()), None);
        let off = Lockout::new(0, Duration::from_secs(60), Duration::from_secs(30));
        for _ in 0..10 {
            assert_eq!(off.failure(b"x", src), None);
        }
    }
}
