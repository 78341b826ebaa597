//! The verified-credential cache, as a pure structure (time is an input).
//!
//! Remembers that a (kind, user, password) triple verified, for `ttl`, so
//! automation that logs in again and again skips the slow hash. Keys are
//! HMAC-SHA256 under a secret drawn at start-up: the table holds no password and
//! nothing an attacker could test offline without that secret.
//!
//! **Generations.** Every entry carries the credential generation it was verified
//! against. [`CredCache::clear`] (a reload, a password change) starts a new
//! generation; an insert made for an older one is refused. So a verification that
//! began before a password-changing reload and finishes after it cannot put the
//! old password back into the cache. Callers take the generation *before* they
//! look up the hash they verify against.

use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// What a cached credential was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredKind {
    /// Login password.
    Login,
    /// Enable password.
    Enable,
}

/// Which credentials' state a verification saw (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Generation(u64);

impl Generation {
    /// The one after this.
    pub(crate) fn next(self) -> Generation {
        Generation(self.0 + 1)
    }
}

/// Cache settings (`[authentication.cache]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Off: every lookup misses, nothing is kept.
    pub enabled: bool,
    /// How long an entry is trusted.
    pub ttl: Duration,
    /// Entries kept at most.
    pub max_entries: usize,
    /// How long a directory credential is still good while every directory
    /// is unreachable ([`CredCache::hit_within`]); at least `ttl`.
    pub outage_ttl: Duration,
}

impl CacheSettings {
    /// From the configuration section.
    pub fn from_conf(c: &tacvs_policy::config::CacheConf) -> Self {
        CacheSettings {
            enabled: c.enabled,
            ttl: c.ttl.0,
            max_entries: c.max_entries,
            outage_ttl: c.outage_ttl.0.max(c.ttl.0),
        }
    }
}

/// The cache. Not synchronised: the server keeps it behind a mutex.
pub struct CredCache {
    /// HMAC-SHA256 keyed with a secret drawn at start-up, its inner and outer
    /// key blocks already hashed: each key costs two compressions, not four.
    mac: hmac::Hmac<Sha256>,
    s: CacheSettings,
    generation: Generation,
    /// Key → (when it verified, generation). The keys are HMAC outputs under
    /// a secret no peer knows, so no peer can choose colliding ones: a cheap
    /// hash is enough.
    map: foldhash::HashMap<[u8; 32], (Instant, Generation)>,
}

impl std::fmt::Debug for CredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredCache")
            .field("settings", &self.s)
            .field("generation", &self.generation)
            .field("entries", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl CredCache {
    /// An empty cache with a fresh secret.
    pub fn new(s: CacheSettings) -> Self {
        let secret: [u8; 32] = rand::random();
        let mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&secret)
            .expect("HMAC takes any key length");
        CredCache { mac, s, generation: Generation(0), map: foldhash::HashMap::default() }
    }

    /// Apply new settings (reload). Disabling empties the cache.
    pub fn set_settings(&mut self, s: CacheSettings) {
        self.s = s;
        if !s.enabled {
            self.map.clear();
        }
    }

    fn key(&self, kind: CredKind, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(&[kind as u8]);
        m.update(&(user.len() as u32).to_be_bytes());
        m.update(user);
        m.update(password);
        m.finalize().into_bytes().into()
    }

    /// The current generation: take it before looking up the hash to verify.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Whether this triple verified in the current generation within `ttl`.
    pub fn hit(&self, kind: CredKind, user: &[u8], password: &[u8], now: Instant) -> bool {
        self.hit_within(kind, user, password, now, self.s.ttl)
    }

    /// Whether this triple verified in the current generation within
    /// `max_age` (at most `outage_ttl`): the outage view of the cache.
    pub fn hit_within(
        &self,
        kind: CredKind,
        user: &[u8],
        password: &[u8],
        now: Instant,
        max_age: Duration,
    ) -> bool {
        if !self.s.enabled {
            return false;
        }
        let max_age = max_age.min(self.s.outage_ttl.max(self.s.ttl));
        let k = self.key(kind, user, password);
        self.map.get(&k).is_some_and(|&(at, g)| {
            g == self.generation && now.saturating_duration_since(at) < max_age
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &CacheSettings {
        &self.s
    }

    /// Remember a triple that verified against the credentials of `seen`.
    /// Returns false (and keeps nothing) when the credentials changed since, or
    /// the cache is off or full of live entries.
    pub fn insert(
        &mut self,
        kind: CredKind,
        user: &[u8],
        password: &[u8],
        seen: Generation,
        now: Instant,
    ) -> bool {
        if !self.s.enabled || seen != self.generation {
            return false;
        }
        let k = self.key(kind, user, password);
        if self.map.len() >= self.s.max_entries && !self.map.contains_key(&k) {
            let (g, keep) = (self.generation, self.s.outage_ttl.max(self.s.ttl));
            self.map.retain(|_, &mut (at, eg)| now.saturating_duration_since(at) < keep && eg == g);
            if self.map.len() >= self.s.max_entries {
                return false;
            }
        }
        self.map.insert(k, (now, self.generation));
        true
    }

    /// Forget everything and start a new generation (credentials changed).
    pub fn clear(&mut self) {
        self.map.clear();
        self.generation = self.generation.next();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(ttl: u64, max: usize) -> CredCache {
        CredCache::new(CacheSettings {
            enabled: true,
            ttl: Duration::from_secs(ttl),
            max_entries: max,
            outage_ttl: Duration::from_secs(ttl),
        })
    }

    #[test]
    fn the_outage_view_reaches_back_outage_ttl_and_no_further() {
        let mut c = CredCache::new(CacheSettings {
            enabled: true,
            ttl: Duration::from_secs(60),
            max_entries: 10,
            outage_ttl: Duration::from_secs(600),
        });
        let now = Instant::now();
        c.insert(CredKind::Login, b"alice", b"pw", c.generation(), now);
        let later = now + Duration::from_secs(300);
        assert!(!c.hit(CredKind::Login, b"alice", b"pw", later), "past the ttl");
        let long = Duration::from_secs(600);
        assert!(c.hit_within(CredKind::Login, b"alice", b"pw", later, long));
        assert!(!c.hit_within(CredKind::Login, b"alice", b"pw", now + long, long));
        assert!(
            !c.hit_within(
                CredKind::Login,
                b"alice",
                b"pw",
                now + Duration::from_secs(700),
                Duration::from_secs(3600)
            ),
            "never beyond outage_ttl whatever the caller asks"
        );
    }

    #[test]
    fn hits_only_the_same_triple() {
        let mut c = on(60, 10);
        let now = Instant::now();
        assert!(c.insert(CredKind::Login, b"alice", b"pw", c.generation(), now));
        assert!(c.hit(CredKind::Login, b"alice", b"pw", now));
        assert!(!c.hit(CredKind::Login, b"alice", b"pw2", now));
        assert!(!c.hit(CredKind::Enable, b"alice", b"pw", now));
        assert!(!c.hit(CredKind::Login, b"alic", b"epw", now), "length-prefixed user");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut c = on(60, 10);
        let now = Instant::now();
        c.insert(CredKind::Login, b"alice", b"pw", c.generation(), now);
        assert!(c.hit(CredKind::Login, b"alice", b"pw", now + Duration::from_secs(59)));
        assert!(!c.hit(CredKind::Login, b"alice", b"pw", now + Duration::from_secs(60)));
    }

    #[test]
    fn clear_forgets_everything() {
        let mut c = on(60, 10);
        let now = Instant::now();
        c.insert(CredKind::Login, b"alice", b"pw", c.generation(), now);
        c.clear();
        assert!(!c.hit(CredKind::Login, b"alice", b"pw", now));
        assert!(c.is_empty());
    }

    #[test]
    fn a_verification_from_before_a_clear_is_not_cached() {
        let mut c = on(60, 10);
        let now = Instant::now();
        let seen = c.generation();
        // The password changes (reload) while the hash is being computed...
        c.clear();
        // ...and the late result must not bring the old password back.
        assert!(!c.insert(CredKind::Login, b"alice", b"old", seen, now));
        assert!(!c.hit(CredKind::Login, b"alice", b"old", now));
        assert!(c.insert(CredKind::Login, b"alice", b"new", c.generation(), now));
    }

    #[test]
    fn the_size_limit_holds_and_expired_entries_make_room() {
        let mut c = on(60, 2);
        let now = Instant::now();
        let g = c.generation();
        assert!(c.insert(CredKind::Login, b"a", b"1", g, now));
        assert!(c.insert(CredKind::Login, b"b", b"1", g, now));
        assert!(!c.insert(CredKind::Login, b"c", b"1", g, now), "full of live entries");
        assert_eq!(c.len(), 2);
        let later = now + Duration::from_secs(61);
        assert!(c.insert(CredKind::Login, b"c", b"1", g, later));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn disabled_keeps_nothing() {
        let mut c = CredCache::new(CacheSettings {
            enabled: false,
            ttl: Duration::from_secs(60),
            max_entries: 10,
            outage_ttl: Duration::from_secs(60),
        });
        let now = Instant::now();
        assert!(!c.insert(CredKind::Login, b"a", b"b", c.generation(), now));
        assert!(!c.hit(CredKind::Login, b"a", b"b", now));
    }
}
