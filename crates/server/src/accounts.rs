//! Directory users as the server last saw them, as a pure structure (time is
//! an input): the entry's DN, its directory groups, the tacvs groups they map
//! to, its TOTP secret. Authorization reads it without asking the directory
//! again (`group_ttl`); a login refreshes it.
//!
//! Contract:
//!
//! - An entry is *fresh* for `group_ttl` after it was read; after that the
//!   directory is asked again.
//! - While every directory is unreachable, an entry read within `outage_ttl`
//!   still answers ([`AccountCache::stale`]): users who worked a moment ago
//!   keep their commands during an outage, for that long and no longer.
//! - "No such user" is remembered for `group_ttl` too (fresh only), so a
//!   device repeating an unknown name does not cost a search each time.
//! - Generations as in [`crate::cache`]: a reload clears the cache, and a
//!   lookup that began before it cannot insert what it read (its group indices
//!   belong to the old configuration).
//! - Bounded: at most `max_entries`; expired entries make room, and when every
//!   entry is live nothing new is kept (the lookup still answers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tacvs_policy::User;

use crate::cache::Generation;
use crate::otp::OtpSecret;

/// A user found in a directory.
#[derive(Debug)]
pub struct Account {
    /// Which `[[ldap]]` (index in the policy).
    pub directory: usize,
    /// Its name.
    pub directory_name: String,
    /// The entry's DN.
    pub dn: String,
    /// The directory groups found (DNs), nested ones included.
    pub ldap_groups: Vec<String>,
    /// The user as authorization sees it: the mapped tacvs groups in map
    /// order (empty: in no mapped group).
    pub user: Arc<User>,
    /// The configuration whose groups `user` refers to (decisions use it, so
    /// a reload in between never mixes group numbers of two configurations).
    pub policy: Arc<tacvs_policy::Policy>,
    /// The TOTP secret from the directory's `otp_attribute`.
    pub otp_secret: Option<OtpSecret>,
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Found {
    /// The user's entry.
    Account(Arc<Account>),
    /// No directory has the user.
    NoSuchUser,
}

/// Settings (`[authentication.cache]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Off: nothing kept; every lookup asks the directory.
    pub enabled: bool,
    /// Fresh for this long.
    pub ttl: Duration,
    /// Usable during an outage for this long.
    pub outage_ttl: Duration,
    /// Entries kept at most.
    pub max_entries: usize,
}

impl Settings {
    /// From the configuration section.
    pub fn from_conf(c: &tacvs_policy::config::CacheConf) -> Self {
        Settings {
            enabled: c.enabled,
            ttl: c.group_ttl.0,
            outage_ttl: c.outage_ttl.0.max(c.group_ttl.0),
            max_entries: c.max_entries,
        }
    }
}

/// The cache. Not synchronised: the server keeps it behind a mutex.
#[derive(Debug)]
pub struct AccountCache {
    s: Settings,
    generation: Generation,
    map: HashMap<Box<[u8]>, (Found, Instant, Generation)>,
}

impl AccountCache {
    /// Empty.
    pub fn new(s: Settings) -> Self {
        AccountCache { s, generation: Generation::default(), map: HashMap::new() }
    }

    /// New settings (reload); disabling empties it.
    pub fn set_settings(&mut self, s: Settings) {
        self.s = s;
        if !s.enabled {
            self.map.clear();
        }
    }

    /// Take before a lookup (see the module doc).
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// What was read for `user` within `ttl`.
    pub fn fresh(&self, user: &[u8], now: Instant) -> Option<Found> {
        let (f, at, g) = self.map.get(user)?;
        (self.s.enabled && *g == self.generation && now.saturating_duration_since(*at) < self.s.ttl)
            .then(|| f.clone())
    }

    /// The account read for `user` within `outage_ttl` (during an outage).
    pub fn stale(&self, user: &[u8], now: Instant) -> Option<Arc<Account>> {
        match self.map.get(user)? {
            (Found::Account(a), at, g)
                if self.s.enabled
                    && *g == self.generation
                    && now.saturating_duration_since(*at) < self.s.outage_ttl =>
            {
                Some(a.clone())
            }
            _ => None,
        }
    }

    /// Remember what a lookup that began in `seen` found.
    pub fn insert(&mut self, user: &[u8], found: Found, seen: Generation, now: Instant) -> bool {
        if !self.s.enabled || seen != self.generation {
            return false;
        }
        if self.map.len() >= self.s.max_entries && !self.map.contains_key(user) {
            let (g, keep) = (self.generation, self.s.outage_ttl);
            self.map.retain(|_, (_, at, eg)| *eg == g && now.saturating_duration_since(*at) < keep);
            if self.map.len() >= self.s.max_entries {
                return false;
            }
        }
        self.map.insert(user.into(), (found, now, self.generation));
        true
    }

    /// Forget everything (reload).
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

    fn account() -> Found {
        let user = User {
            name: "alice".into(),
            password: None,
            chap_secret: None,
            enable: None,
            groups: vec![0],
            max_priv: 15,
            prefer: tacvs_policy::identity::Prefer::Directory,
            otp: false,
        };
        Found::Account(Arc::new(Account {
            directory: 0,
            directory_name: "corp".into(),
            dn: "uid=alice,dc=x".into(),
            ldap_groups: vec!["cn=netops,dc=x".into()],
            user: Arc::new(user),
            policy: Arc::new(
                tacvs_policy::parse(
                    "t.toml",
                    "[server]\n[[server.listen]]\naddress = \"127.0.0.1:0\"\n",
                    std::path::Path::new("."),
                )
                .unwrap(),
            ),
            otp_secret: None,
        }))
    }

    fn cache() -> AccountCache {
        AccountCache::new(Settings {
            enabled: true,
            ttl: Duration::from_secs(60),
            outage_ttl: Duration::from_secs(600),
            max_entries: 2,
        })
    }

    #[test]
    fn fresh_for_the_ttl_then_stale_for_outages_only() {
        let mut c = cache();
        let t = Instant::now();
        assert!(c.insert(b"alice", account(), c.generation(), t));
        assert!(c.fresh(b"alice", t + Duration::from_secs(59)).is_some());
        assert!(c.fresh(b"alice", t + Duration::from_secs(60)).is_none());
        assert!(c.stale(b"alice", t + Duration::from_secs(599)).is_some());
        assert!(c.stale(b"alice", t + Duration::from_secs(600)).is_none());
    }

    #[test]
    fn no_such_user_is_fresh_but_never_stale() {
        let mut c = cache();
        let t = Instant::now();
        c.insert(b"ghost", Found::NoSuchUser, c.generation(), t);
        assert!(matches!(c.fresh(b"ghost", t), Some(Found::NoSuchUser)));
        assert!(c.stale(b"ghost", t).is_none());
    }

    #[test]
    fn a_lookup_from_before_a_reload_is_not_kept() {
        let mut c = cache();
        let t = Instant::now();
        let seen = c.generation();
        c.clear();
        assert!(!c.insert(b"alice", account(), seen, t));
        assert!(c.fresh(b"alice", t).is_none());
    }

    #[test]
    fn bounded_and_expired_entries_make_room() {
        let mut c = cache();
        let t = Instant::now();
        let g = c.generation();
        assert!(c.insert(b"a", account(), g, t));
        assert!(c.insert(b"b", account(), g, t));
        assert!(!c.insert(b"c", account(), g, t));
        assert!(c.insert(b"c", account(), g, t + Duration::from_secs(601)));
        assert_eq!(c.len(), 1);
    }
}
