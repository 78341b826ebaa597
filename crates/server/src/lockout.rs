//! Failed-login lockout and guessing limits, as a pure machine: the time is an
//! input to every call, so tests drive it with any clock.
//!
//! Contract (what an attacker gets, however requests are timed):
//!
//! - **Counted at admission.** A password (or CHAP response) is verified only
//!   after [`Lockout::admit`] said yes, and an admitted attempt counts as a failure
//!   from that moment until it is finished as a success. Pipelining guesses on
//!   many connections therefore cannot get more verifications than the limits
//!   below, no matter how many are queued at once.
//! - **Per (user, source): lock with backoff.** `max_failures` failures of one
//!   user from one device address within `window` lock that pair for `duration`,
//!   doubled on every further lock up to `max_duration`. Only that pair: failures
//!   naming alice from one router do not lock alice on the others, and failures
//!   of one user do not lock the router's other users.
//! - **Per user, from all sources: a rate that slows.** A token bucket of
//!   `user_burst` attempts refilled one per `user_refill`. When it is empty,
//!   attempts for that user are refused (answered FAIL, not verified) until a
//!   token comes back; nothing is locked.
//! - **Per source, over all users: a rate that slows.** The same with
//!   `source_burst` / `source_refill`, which bounds how many users one address can
//!   try.
//! - A success gives back the tokens it took and clears the pair's failures (and
//!   its backoff), so legitimate logins never drain a bucket; a password the
//!   credential cache already knows takes no token at all
//!   ([`Lockout::cached_pass`]) but is refused while its pair is locked. Logins
//!   in flight hold a token until they finish: `user_burst` is also how many
//!   uncached logins of one user can be checked at once.
//! - Memory is bounded: at most `max_entries` subjects per table; idle entries
//!   (full buckets, unlocked pairs with no recent failure) are dropped first, and
//!   when every entry is live new subjects are refused ([`Refusal::Full`]).

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The limits, as configured (`[authentication.lockout]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Failures of one (user, source) pair within `window` that lock it; 0 turns
    /// every limit here off.
    pub max_failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// The first lock's length.
    pub duration: Duration,
    /// Longest lock after doubling.
    pub max_duration: Duration,
    /// Attempts one user may fail in a burst, from all sources; 0 = no limit.
    pub user_burst: u32,
    /// One attempt back for the user every this long.
    pub user_refill: Duration,
    /// Attempts one source address may fail in a burst, over all users; 0 = no limit.
    pub source_burst: u32,
    /// One attempt back for the source every this long.
    pub source_refill: Duration,
    /// Subjects kept per table.
    pub max_entries: usize,
}

impl Settings {
    /// The settings from the configuration section.
    pub fn from_conf(c: &tacvs_policy::config::LockoutConf) -> Self {
        Settings {
            max_failures: c.max_failures,
            window: c.window.0,
            duration: c.duration.0,
            max_duration: c.max_duration.0.max(c.duration.0),
            user_burst: c.user_burst,
            user_refill: c.user_refill.0,
            source_burst: c.source_burst,
            source_refill: c.source_refill.0,
            max_entries: c.max_entries.max(1),
        }
    }
}

/// Why an attempt was not admitted. Nothing was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The (user, source) pair is locked for this much longer.
    Locked(Duration),
    /// The pair has as many attempts in flight and failed as would lock it.
    Pending,
    /// The user's attempts from all sources are used up; one comes back after this.
    UserSlowed(Duration),
    /// The source's attempts are used up; one comes back after this.
    SourceSlowed(Duration),
    /// The lockout tables are full of live entries.
    Full,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Locked(d) => write!(f, "user locked out on this device for {}", human(*d)),
            Refusal::Pending => f.write_str("user has too many failed or unfinished logins"),
            Refusal::UserSlowed(d) => {
                write!(f, "too many failed logins for this user; next try in {}", human(*d))
            }
            Refusal::SourceSlowed(d) => {
                write!(f, "too many failed logins from this device; next try in {}", human(*d))
            }
            Refusal::Full => f.write_str("lockout table full"),
        }
    }
}

/// A duration for people: whole seconds (at least 1 s).
pub fn human(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    humantime::format_duration(Duration::from_secs(s.max(1))).to_string()
}

/// An admitted attempt. Give it back to [`Lockout::finish`] with the outcome.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an admitted attempt must be finished (it counts as a failure until then)"]
pub struct Ticket {
    user: Box<[u8]>,
    src: IpAddr,
    took_user: bool,
    took_source: bool,
}

impl Ticket {
    /// The user the attempt is for.
    pub fn user(&self) -> &[u8] {
        &self.user
    }
}

/// How an admitted attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The credential verified.
    Pass,
    /// It did not (or the user cannot log in this way at all).
    Fail,
    /// Nothing was verified (the hash queue was full): as if never admitted.
    NotVerified,
}

/// A lock that a failure just engaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engaged {
    /// How long it lasts.
    pub duration: Duration,
    /// How many locks in a row this pair has had (1 = first).
    pub count: u32,
}

#[derive(Debug)]
struct Pair {
    failures: VecDeque<Instant>,
    in_flight: u32,
    locked_until: Option<Instant>,
    /// Locks in a row (backoff exponent).
    locks: u32,
    last: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, burst: u32, every: Duration, now: Instant) {
        if self.tokens >= burst || every.is_zero() {
            self.tokens = burst;
            self.at = now;
            return;
        }
        let elapsed = now.saturating_duration_since(self.at);
        let n = (elapsed.as_nanos() / every.as_nanos()).min(u128::from(burst)) as u32;
        if n > 0 {
            self.tokens = (self.tokens + n).min(burst);
            self.at = if self.tokens >= burst { now } else { self.at + every * n };
        }
    }

    /// Time until the next token.
    fn wait(&self, every: Duration, now: Instant) -> Duration {
        (self.at + every).saturating_duration_since(now)
    }
}

/// One entry of [`Lockout::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A locked (user, source) pair.
    Locked {
        /// User name as sent.
        user: Box<[u8]>,
        /// Device address.
        source: IpAddr,
        /// Time left.
        remaining: Duration,
        /// Locks in a row.
        count: u32,
    },
    /// A user whose attempts from all sources are being slowed.
    UserSlowed {
        /// User name as sent.
        user: Box<[u8]>,
        /// Attempts left in the bucket.
        left: u32,
        /// Until the next one comes back.
        next: Duration,
    },
    /// A source whose attempts are being slowed.
    SourceSlowed {
        /// Device address.
        source: IpAddr,
        /// Attempts left in the bucket.
        left: u32,
        /// Until the next one comes back.
        next: Duration,
    },
}

/// A (user, source) pair's key by its parts: the table's owned keys borrow
/// as this, so a look-up needs no owned copy of the user name (std's
/// `HashMap` looks a compound key up only through `Borrow`).
trait PairKey {
    fn parts(&self) -> (&[u8], IpAddr);
}

impl PairKey for (Box<[u8]>, IpAddr) {
    fn parts(&self) -> (&[u8], IpAddr) {
        (&self.0, self.1)
    }
}

impl PairKey for (&[u8], IpAddr) {
    fn parts(&self) -> (&[u8], IpAddr) {
        *self
    }
}

impl<'a> Borrow<dyn PairKey + 'a> for (Box<[u8]>, IpAddr) {
    fn borrow(&self) -> &(dyn PairKey + 'a) {
        self
    }
}

/// As the owned tuple hashes (`Box<[u8]>` hashes as its slice), which
/// `Borrow` requires.
impl Hash for dyn PairKey + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn PairKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn PairKey + '_ {}

/// The lockout state. Not synchronised: the server keeps it behind a mutex.
#[derive(Debug)]
pub struct Lockout {
    s: Settings,
    pairs: HashMap<(Box<[u8]>, IpAddr), Pair>,
    users: HashMap<Box<[u8]>, Bucket>,
    sources: HashMap<IpAddr, Bucket>,
    last_prune: Option<Instant>,
}

impl Lockout {
    /// Empty state with these limits.
    pub fn new(s: Settings) -> Self {
        Lockout {
            s,
            pairs: HashMap::new(),
            users: HashMap::new(),
            sources: HashMap::new(),
            last_prune: None,
        }
    }

    /// Apply new limits (reload); what was counted so far stays.
    pub fn set_settings(&mut self, s: Settings) {
        self.s = s;
    }

    /// The limits in force.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    fn enabled(&self) -> bool {
        self.s.max_failures > 0
    }

    /// May `user` at `src` have one credential verified now? On yes the attempt
    /// is counted (as a failure until [`finish`](Self::finish) says otherwise).
    pub fn admit(&mut self, user: &[u8], src: IpAddr, now: Instant) -> Result<Ticket, Refusal> {
        let ticket =
            |took_user, took_source| Ticket { user: user.into(), src, took_user, took_source };
        if !self.enabled() {
            return Ok(ticket(false, false));
        }
        self.maybe_prune(now);
        let s = &self.s;
        // Check everything first, take only when every check passed.
        if let Some(p) = self.pairs.get_mut(&(user, src) as &dyn PairKey) {
            if let Some(t) = p.locked_until {
                if t > now {
                    return Err(Refusal::Locked(t - now));
                }
                p.locked_until = None;
            }
            while p.failures.front().is_some_and(|&t| now.saturating_duration_since(t) > s.window) {
                p.failures.pop_front();
            }
            if p.failures.len() as u32 + p.in_flight >= s.max_failures {
                return Err(Refusal::Pending);
            }
        } else if self.pairs.len() >= s.max_entries {
            return Err(Refusal::Full);
        }
        let user_limited = s.user_burst > 0;
        let (n_users, n_sources) = (self.users.len(), self.sources.len());
        if user_limited {
            match self.users.get_mut(user) {
                Some(b) => {
                    b.refill(s.user_burst, s.user_refill, now);
                    if b.tokens == 0 {
                        return Err(Refusal::UserSlowed(b.wait(s.user_refill, now)));
                    }
                }
                None if n_users >= s.max_entries => return Err(Refusal::Full),
                None => {}
            }
        }
        let source_limited = s.source_burst > 0;
        if source_limited {
            match self.sources.get_mut(&src) {
                Some(b) => {
                    b.refill(s.source_burst, s.source_refill, now);
                    if b.tokens == 0 {
                        return Err(Refusal::SourceSlowed(b.wait(s.source_refill, now)));
                    }
                }
                None if n_sources >= s.max_entries => return Err(Refusal::Full),
                None => {}
            }
        }
        let full = |burst| Bucket { tokens: burst, at: now };
        if user_limited {
            self.users.entry(user.into()).or_insert_with(|| full(s.user_burst)).tokens -= 1;
        }
        if source_limited {
            self.sources.entry(src).or_insert_with(|| full(s.source_burst)).tokens -= 1;
        }
        let p = self.pairs.entry((user.into(), src)).or_insert_with(|| Pair {
            failures: VecDeque::new(),
            in_flight: 0,
            locked_until: None,
            locks: 0,
            last: now,
        });
        p.in_flight += 1;
        p.last = now;
        Ok(ticket(user_limited, source_limited))
    }

    /// A credential that the cache knows verified (in the current credential
    /// generation) is being used again: no guess is being made, so it takes no
    /// attempt from the rates, but a locked pair stays locked. On yes, it counts
    /// as a success for the pair (its failures and doubling are cleared).
    pub fn cached_pass(&mut self, user: &[u8], src: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.enabled() {
            return Ok(());
        }
        let Some(p) = self.pairs.get_mut(&(user, src) as &dyn PairKey) else { return Ok(()) };
        if let Some(t) = p.locked_until.filter(|&t| t > now) {
            return Err(Refusal::Locked(t - now));
        }
        p.locked_until = None;
        p.failures.clear();
        p.locks = 0;
        p.last = now;
        Ok(())
    }

    /// End an admitted attempt. Returns the lock a failure engaged, if any.
    pub fn finish(&mut self, t: Ticket, outcome: Outcome, now: Instant) -> Option<Engaged> {
        if !self.enabled() {
            return None;
        }
        let s = &self.s;
        let refund = outcome != Outcome::Fail;
        if refund {
            if t.took_user
                && let Some(b) = self.users.get_mut(&t.user)
            {
                b.tokens = (b.tokens + 1).min(s.user_burst);
            }
            if t.took_source
                && let Some(b) = self.sources.get_mut(&t.src)
            {
                b.tokens = (b.tokens + 1).min(s.source_burst);
            }
        }
        // The pair may have been unlocked (removed) by an operator meanwhile.
        let p = self.pairs.get_mut(&(t.user, t.src))?;
        p.in_flight = p.in_flight.saturating_sub(1);
        p.last = now;
        match outcome {
            Outcome::NotVerified => None,
            Outcome::Pass => {
                p.failures.clear();
                p.locks = 0;
                None
            }
            Outcome::Fail => {
                while p
                    .failures
                    .front()
                    .is_some_and(|&f| now.saturating_duration_since(f) > s.window)
                {
                    p.failures.pop_front();
                }
                p.failures.push_back(now);
                if (p.failures.len() as u32) < s.max_failures {
                    return None;
                }
                let doubling = 2u32.saturating_pow(p.locks.min(31));
                let duration = s.duration.saturating_mul(doubling).min(s.max_duration);
                p.locks = p.locks.saturating_add(1);
                p.locked_until = Some(now + duration);
                p.failures.clear();
                Some(Engaged { duration, count: p.locks })
            }
        }
    }

    /// Clear every lock and limit of `user` (all sources). Returns how many
    /// entries were removed.
    pub fn unlock_user(&mut self, user: &[u8]) -> usize {
        let before = self.pairs.len();
        self.pairs.retain(|(u, _), _| &**u != user);
        before - self.pairs.len() + usize::from(self.users.remove(user).is_some())
    }

    /// Clear every lock and limit of the source address `src` (all users).
    pub fn unlock_source(&mut self, src: IpAddr) -> usize {
        let before = self.pairs.len();
        self.pairs.retain(|(_, s), _| *s != src);
        before - self.pairs.len() + usize::from(self.sources.remove(&src).is_some())
    }

    /// What is locked or slowed now, locks first.
    pub fn list(&self, now: Instant) -> Vec<Entry> {
        let s = &self.s;
        let mut out = Vec::new();
        for ((user, source), p) in &self.pairs {
            if let Some(t) = p.locked_until.filter(|&t| t > now) {
                out.push(Entry::Locked {
                    user: user.clone(),
                    source: *source,
                    remaining: t - now,
                    count: p.locks,
                });
            }
        }
        for (user, b) in &self.users {
            let mut b = *b;
            b.refill(s.user_burst, s.user_refill, now);
            if b.tokens < s.user_burst {
                out.push(Entry::UserSlowed {
                    user: user.clone(),
                    left: b.tokens,
                    next: b.wait(s.user_refill, now),
                });
            }
        }
        for (source, b) in &self.sources {
            let mut b = *b;
            b.refill(s.source_burst, s.source_refill, now);
            if b.tokens < s.source_burst {
                out.push(Entry::SourceSlowed {
                    source: *source,
                    left: b.tokens,
                    next: b.wait(s.source_refill, now),
                });
            }
        }
        out
    }

    /// Subjects held (pairs, users, sources), for tests and metrics.
    pub fn entries(&self) -> usize {
        self.pairs.len() + self.users.len() + self.sources.len()
    }

    /// Drop what carries no information any more: at most every few seconds,
    /// or at once when a table is full.
    fn maybe_prune(&mut self, now: Instant) {
        let full = self.pairs.len() >= self.s.max_entries
            || self.users.len() >= self.s.max_entries
            || self.sources.len() >= self.s.max_entries;
        let due = self.last_prune.is_none_or(|t| now.saturating_duration_since(t) >= PRUNE_EVERY);
        if full || due {
            self.prune(now);
        }
    }

    /// Drop idle entries: unlocked pairs with nothing in flight and no failure
    /// within the window, and buckets that have filled up again.
    pub fn prune(&mut self, now: Instant) {
        self.last_prune = Some(now);
        let s = &self.s;
        self.pairs.retain(|_, p| {
            p.in_flight > 0
                || p.locked_until.is_some_and(|t| t > now)
                || p.failures.back().is_some_and(|&f| now.saturating_duration_since(f) <= s.window)
                // Keep the backoff while a repeat offender could come back.
                || (p.locks > 0 && now.saturating_duration_since(p.last) <= s.max_duration)
        });
        self.users.retain(|_, b| {
            b.refill(s.user_burst, s.user_refill, now);
            b.tokens < s.user_burst
        });
        self.sources.retain(|_, b| {
            b.refill(s.source_burst, s.source_refill, now);
            b.tokens < s.source_burst
        });
    }
}

const PRUNE_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn settings() -> Settings {
        Settings {
            max_failures: 3,
            window: 60 * SEC,
            duration: 30 * SEC,
            max_duration: 100 * SEC,
            user_burst: 0,
            user_refill: SEC,
            source_burst: 0,
            source_refill: SEC,
            max_entries: 1000,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fail(l: &mut Lockout, user: &[u8], src: IpAddr, now: Instant) -> Option<Engaged> {
        let t = l.admit(user, src, now).expect("admitted");
        l.finish(t, Outcome::Fail, now)
    }

    #[test]
    fn attempts_count_at_admission_not_completion() {
        let mut l = Lockout::new(settings());
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        // Three admitted, none finished: the fourth is refused before any result.
        let tickets: Vec<Ticket> = (0..3).map(|_| l.admit(b"bob", src, now).unwrap()).collect();
        assert_eq!(l.admit(b"bob", src, now), Err(Refusal::Pending));
        // Two fail, one passes: the pass clears the failures.
        let mut it = tickets.into_iter();
        assert_eq!(l.finish(it.next().unwrap(), Outcome::Fail, now), None);
        assert_eq!(l.finish(it.next().unwrap(), Outcome::Fail, now), None);
        assert_eq!(l.finish(it.next().unwrap(), Outcome::Pass, now), None);
        assert!(l.admit(b"bob", src, now).is_ok());
    }

    #[test]
    fn a_pair_locks_after_max_failures_and_only_that_pair() {
        let mut l = Lockout::new(settings());
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        assert_eq!(fail(&mut l, b"bob", src, now), None);
        assert_eq!(fail(&mut l, b"bob", src, now), None);
        assert_eq!(fail(&mut l, b"bob", src, now), Some(Engaged { duration: 30 * SEC, count: 1 }));
        assert_eq!(l.admit(b"bob", src, now), Err(Refusal::Locked(30 * SEC)));
        assert!(l.admit(b"bob", ip("192.0.2.2"), now).is_ok(), "bob elsewhere is not locked");
        assert!(l.admit(b"carol", src, now).is_ok(), "carol on this device is not locked");
    }

    #[test]
    fn a_lock_expires_and_repeated_locks_double_up_to_the_cap() {
        let mut l = Lockout::new(settings());
        let (mut now, src) = (Instant::now(), ip("192.0.2.1"));
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let e = (0..3).filter_map(|_| fail(&mut l, b"bob", src, now)).next().unwrap();
            lengths.push(e.duration.as_secs());
            assert!(matches!(
                l.admit(b"bob", src, now + e.duration - SEC),
                Err(Refusal::Locked(_))
            ));
            now += e.duration;
        }
        assert_eq!(lengths, [30, 60, 100, 100]);
        assert!(l.admit(b"bob", src, now).is_ok(), "expired");
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let mut l = Lockout::new(settings());
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        fail(&mut l, b"bob", src, now);
        fail(&mut l, b"bob", src, now);
        let later = now + 61 * SEC;
        assert_eq!(fail(&mut l, b"bob", src, later), None, "the first two are out of the window");
        assert_eq!(fail(&mut l, b"bob", src, later), None);
        assert!(fail(&mut l, b"bob", src, later).is_some());
    }

    #[test]
    fn success_resets_the_failures_and_the_backoff() {
        let mut l = Lockout::new(settings());
        let (mut now, src) = (Instant::now(), ip("192.0.2.1"));
        for _ in 0..3 {
            fail(&mut l, b"bob", src, now);
        }
        now += 30 * SEC;
        fail(&mut l, b"bob", src, now);
        fail(&mut l, b"bob", src, now);
        let t = l.admit(b"bob", src, now).unwrap();
        assert_eq!(l.finish(t, Outcome::Pass, now), None);
        fail(&mut l, b"bob", src, now);
        fail(&mut l, b"bob", src, now);
        let e = fail(&mut l, b"bob", src, now).unwrap();
        assert_eq!(e, Engaged { duration: 30 * SEC, count: 1 }, "backoff restarted");
    }

    #[test]
    fn not_verified_gives_the_attempt_back() {
        let mut l = Lockout::new(Settings { user_burst: 1, ..settings() });
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        for _ in 0..10 {
            let t = l.admit(b"bob", src, now).unwrap();
            assert_eq!(l.finish(t, Outcome::NotVerified, now), None);
        }
    }

    #[test]
    fn the_user_rate_slows_guesses_from_all_sources_without_locking() {
        let s = Settings { max_failures: 100, user_burst: 4, user_refill: 10 * SEC, ..settings() };
        let mut l = Lockout::new(s);
        let now = Instant::now();
        for i in 0..4 {
            fail(&mut l, b"alice", ip(&format!("192.0.2.{}", i + 1)), now);
        }
        assert_eq!(l.admit(b"alice", ip("198.51.100.1"), now), Err(Refusal::UserSlowed(10 * SEC)));
        assert!(l.admit(b"bob", ip("198.51.100.1"), now).is_ok(), "other users are not slowed");
        // One attempt back per refill interval, not a lock.
        let t = l.admit(b"alice", ip("198.51.100.1"), now + 10 * SEC).unwrap();
        assert_eq!(
            l.admit(b"alice", ip("198.51.100.2"), now + 10 * SEC).map(|_| ()),
            Err(Refusal::UserSlowed(10 * SEC))
        );
        // A success gives its token back.
        assert_eq!(l.finish(t, Outcome::Pass, now + 10 * SEC), None);
        assert!(l.admit(b"alice", ip("198.51.100.2"), now + 10 * SEC).is_ok());
    }

    #[test]
    fn the_source_rate_bounds_how_many_users_one_address_tries() {
        let s = Settings { max_failures: 100, source_burst: 5, source_refill: SEC, ..settings() };
        let mut l = Lockout::new(s);
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        for i in 0..5 {
            fail(&mut l, format!("user{i}").as_bytes(), src, now);
        }
        assert_eq!(l.admit(b"user9", src, now), Err(Refusal::SourceSlowed(SEC)));
        assert!(l.admit(b"user9", ip("192.0.2.2"), now).is_ok());
        assert!(l.admit(b"user9", src, now + SEC).is_ok(), "refilled");
    }

    #[test]
    fn unlock_by_user_or_by_source() {
        let s = Settings { source_burst: 3, ..settings() };
        let mut l = Lockout::new(s);
        let now = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..3 {
            fail(&mut l, b"bob", a, now);
        }
        for _ in 0..3 {
            fail(&mut l, b"bob", b, now);
        }
        assert!(l.unlock_user(b"bob") >= 2);
        assert!(l.admit(b"bob", a, now).is_err(), "source a's rate is still used up");
        assert!(l.unlock_source(a) >= 1);
        assert!(l.admit(b"bob", a, now).is_ok());
    }

    #[test]
    fn list_shows_locks_and_slowed_subjects() {
        let s = Settings { user_burst: 10, source_burst: 10, ..settings() };
        let mut l = Lockout::new(s);
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        for _ in 0..3 {
            fail(&mut l, b"bob", src, now);
        }
        let list = l.list(now);
        assert!(list.contains(&Entry::Locked {
            user: (*b"bob").into(),
            source: src,
            remaining: 30 * SEC,
            count: 1
        }));
        assert!(list.iter().any(|e| matches!(e, Entry::UserSlowed { left: 7, .. })));
        assert!(list.iter().any(|e| matches!(e, Entry::SourceSlowed { left: 7, .. })));
    }

    #[test]
    fn a_cached_password_takes_no_token_but_respects_a_lock() {
        let s = Settings { user_burst: 1, ..settings() };
        let mut l = Lockout::new(s);
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        let _held = l.admit(b"bob", src, now).unwrap();
        for _ in 0..10 {
            assert_eq!(l.cached_pass(b"bob", src, now), Ok(()), "no token needed");
        }
        let mut l = Lockout::new(settings());
        for _ in 0..3 {
            fail(&mut l, b"bob", src, now);
        }
        assert!(matches!(l.cached_pass(b"bob", src, now), Err(Refusal::Locked(_))));
        assert_eq!(l.cached_pass(b"bob", ip("192.0.2.2"), now), Ok(()));
    }

    #[test]
    fn tables_are_bounded_and_idle_entries_pruned() {
        let s = Settings { max_entries: 4, user_burst: 2, ..settings() };
        let mut l = Lockout::new(s);
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        for i in 0..4 {
            fail(&mut l, format!("u{i}").as_bytes(), src, now);
        }
        assert_eq!(l.admit(b"u9", src, now), Err(Refusal::Full), "every entry is live");
        // After the window and a refill the entries carry nothing and make room.
        assert!(l.admit(b"u9", src, now + 61 * SEC).is_ok());
        assert!(l.entries() <= 3, "{}", l.entries());
    }

    #[test]
    fn disabled_admits_everything_and_keeps_nothing() {
        let mut l = Lockout::new(Settings { max_failures: 0, user_burst: 1, ..settings() });
        let (now, src) = (Instant::now(), ip("192.0.2.1"));
        for _ in 0..20 {
            assert_eq!(fail(&mut l, b"bob", src, now), None);
        }
        assert_eq!(l.entries(), 0);
    }
}
