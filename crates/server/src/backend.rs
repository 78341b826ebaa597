//! Credential backends: where a user and a password are checked.
//!
//! Two backends implement [`CredentialBackend`]: the configuration file
//! ([`crate::authn::LocalBackend`]: `[[user]]` hashes, on the bounded hash
//! pool) and the directories ([`crate::directory::Directories`]: `[[ldap]]`
//! search then bind, with their own connect and operation timeouts). Each
//! counts its checks in `tacvs_backend_checks_total{backend, result}` and
//! times them in `tacvs_backend_check_seconds{backend}`.
//!
//! Which one answers, and what an outage means, is decided here by pure
//! functions ([`plan`], [`settle`]), unit-tested below:
//!
//! | the user is | plan |
//! | --- | --- |
//! | in the file, `prefer = "local"` (default), or no `[[ldap]]` | the file |
//! | in the file, `prefer = "directory"` | the directories; the file only when every directory is unreachable (break-glass) |
//! | not in the file, `[[ldap]]` configured | the directories |
//! | enable passwords, CHAP, MS-CHAP (a bind needs the password itself) | the file |
//!
//! | the directories answered | result |
//! | --- | --- |
//! | the password verified, the user is in a mapped group | pass |
//! | wrong password, no such user, in no mapped group, empty password | FAIL (counts toward the lockout) |
//! | unreachable (every server: refused, timed out, TLS failed, service bind refused) | the credential cache's outage view, else the file's entry (break-glass), else ERROR: the device tries its next AAA method; never FAIL, and the lockout does not count it |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tacvs_policy::User;
use tacvs_policy::identity::Prefer;

use crate::accounts::Account;

/// A boxed future, as backends return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who a lookup found.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A `[[user]]` entry.
    Local(Arc<User>),
    /// A directory entry.
    Directory(Arc<Account>),
}

impl Identity {
    /// The user as authorization sees it.
    pub fn user(&self) -> &User {
        match self {
            Identity::Local(u) => u,
            Identity::Directory(a) => &a.user,
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The user.
    Found(Identity),
    /// Not there.
    NoSuchUser,
    /// The backend could not answer; why (for the log).
    Unavailable(String),
}

/// What a password check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Verified.
    Pass,
    /// Not verified; why (for the log, never the device).
    Wrong(&'static str),
    /// The backend could not answer; why.
    Unavailable(String),
    /// The backend's queue is full; nothing was checked.
    Busy,
}

impl Checked {
    /// `pass` / `fail` / `unavailable` / `busy`, for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Checked::Pass => "pass",
            Checked::Wrong(_) => "fail",
            Checked::Unavailable(_) => "unavailable",
            Checked::Busy => "busy",
        }
    }
}

/// A place users are found and passwords checked.
pub trait CredentialBackend: Sync {
    /// For logs and metrics: `local`, or `ldap`.
    fn kind(&self) -> &'static str;
    /// Find `user` (no password involved).
    fn lookup<'a>(&'a self, user: &'a [u8]) -> BoxFuture<'a, Lookup>;
    /// Check `password` for `who`, found by this backend's [`lookup`](Self::lookup).
    fn check<'a>(&'a self, who: &'a Identity, password: Vec<u8>) -> BoxFuture<'a, Checked>;
}

/// What is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A login password (PAP, ASCII, the old password of a change).
    Login,
    /// An enable password.
    Enable,
    /// A CHAP or MS-CHAP response.
    Chap,
    /// An authorization (the user's groups; no password).
    Authorization,
}

/// Who answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The configuration file (or its decoy for unknown users).
    Local,
    /// The directories; with `break_glass`, the file's entry when every
    /// directory is unreachable.
    Directory {
        /// The user has a `[[user]]` entry to fall back on.
        break_glass: bool,
    },
}

/// Which backend answers for a user: `local` is the user's `[[user]]` entry's
/// `prefer` (None: not in the file), `directories` whether any `[[ldap]]` is
/// configured.
pub fn plan(local: Option<Prefer>, directories: bool, need: Need) -> Plan {
    match need {
        // The directory has no enable password, and a bind needs the password
        // itself, which CHAP never sends.
        Need::Enable | Need::Chap => Plan::Local,
        Need::Login | Need::Authorization => match (directories, local) {
            (false, _) | (true, Some(Prefer::Local)) => Plan::Local,
            (true, Some(Prefer::Directory)) => Plan::Directory { break_glass: true },
            (true, None) => Plan::Directory { break_glass: false },
        },
    }
}

/// What the directories said (a login, or an authorization's lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryAnswer {
    /// Found, in a mapped group, and (for a login) the password verified.
    Verified,
    /// Found, but the password is wrong.
    WrongPassword,
    /// No directory has the user (or the name cannot be asked for).
    NoSuchUser,
    /// Found, in no group of the `group_map`.
    NotMapped,
    /// No directory could answer.
    Unavailable,
}

/// What to do with the directories' answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Passed (or authorize with the groups found).
    Pass,
    /// Refused; why, for the log. Counts toward the lockout.
    Fail(&'static str),
    /// Every directory is unreachable: ask the file's entry (break-glass).
    UseLocal,
    /// The directory verified the user within the outage window (the
    /// credential or account cache's outage view): pass on that.
    PassFromCache,
    /// Nobody could answer: ERROR to the device (its next AAA method), not
    /// counted by the lockout.
    Error,
}

/// Settle a directory answer. `cached` is whether the outage view of the
/// cache knows the user (the credential for a login, the account for an
/// authorization); it is only consulted when the directories are unreachable.
pub fn settle(answer: DirectoryAnswer, break_glass: bool, cached: bool) -> Settle {
    match answer {
        DirectoryAnswer::Verified => Settle::Pass,
        DirectoryAnswer::WrongPassword => Settle::Fail("wrong password"),
        DirectoryAnswer::NoSuchUser => Settle::Fail("unknown user"),
        DirectoryAnswer::NotMapped => {
            Settle::Fail("in no mapped group (no group_map entry matches the user's groups)")
        }
        DirectoryAnswer::Unavailable if cached => Settle::PassFromCache,
        DirectoryAnswer::Unavailable if break_glass => Settle::UseLocal,
        DirectoryAnswer::Unavailable => Settle::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_directories_the_file_answers_everything() {
        for need in [Need::Login, Need::Enable, Need::Chap, Need::Authorization] {
            for local in [None, Some(Prefer::Local), Some(Prefer::Directory)] {
                assert_eq!(plan(local, false, need), Plan::Local, "{need:?} {local:?}");
            }
        }
    }

    #[test]
    fn with_directories_prefer_decides_and_unknown_users_go_to_the_directory() {
        for need in [Need::Login, Need::Authorization] {
            assert_eq!(plan(Some(Prefer::Local), true, need), Plan::Local);
            assert_eq!(
                plan(Some(Prefer::Directory), true, need),
                Plan::Directory { break_glass: true }
            );
            assert_eq!(plan(None, true, need), Plan::Directory { break_glass: false });
        }
    }

    #[test]
    fn enable_and_chap_are_always_the_files() {
        for local in [None, Some(Prefer::Local), Some(Prefer::Directory)] {
            assert_eq!(plan(local, true, Need::Enable), Plan::Local);
            assert_eq!(plan(local, true, Need::Chap), Plan::Local);
        }
    }

    #[test]
    fn an_answer_from_the_directory_stands_whatever_the_fallback() {
        for bg in [false, true] {
            for cached in [false, true] {
                assert_eq!(settle(DirectoryAnswer::Verified, bg, cached), Settle::Pass);
                assert_eq!(
                    settle(DirectoryAnswer::WrongPassword, bg, cached),
                    Settle::Fail("wrong password")
                );
                assert!(matches!(settle(DirectoryAnswer::NoSuchUser, bg, cached), Settle::Fail(_)));
                assert!(matches!(settle(DirectoryAnswer::NotMapped, bg, cached), Settle::Fail(_)));
            }
        }
    }

    #[test]
    fn an_outage_is_never_a_failure() {
        assert_eq!(settle(DirectoryAnswer::Unavailable, false, false), Settle::Error);
        assert_eq!(settle(DirectoryAnswer::Unavailable, true, false), Settle::UseLocal);
        assert_eq!(settle(DirectoryAnswer::Unavailable, false, true), Settle::PassFromCache);
        assert_eq!(settle(DirectoryAnswer::Unavailable, true, true), Settle::PassFromCache);
        for bg in [false, true] {
            for cached in [false, true] {
                assert!(!matches!(
                    settle(DirectoryAnswer::Unavailable, bg, cached),
                    Settle::Fail(_)
                ));
            }
        }
    }
}
