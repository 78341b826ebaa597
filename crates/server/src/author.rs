//! Authorization of directory users: their groups come from the directory
//! (cached, [`crate::accounts`]), the decision from the policy as for the
//! file's users. Which source answers and what an outage means are
//! [`crate::backend::plan`] and [`crate::backend::settle`], as for logins:
//! groups read within `outage_ttl` still answer while every directory is
//! unreachable, then the user's `[[user]]` entry (break-glass), then ERROR —
//! never FAIL, so the device falls back to its next method.

use std::sync::Arc;
use std::time::Instant;

use tacvs_policy::{AuthorDecision, Policy};
use tacvs_proto::{AaaRequest, AuthorStatus};

use crate::Shared;
use crate::accounts::{Account, Found};
use crate::backend::{self, DirectoryAnswer, Identity, Lookup, Settle};

/// Decide for a user the directories answer for. `found` is what a lookup
/// found (or why none could answer); `stale` the account seen within
/// `outage_ttl`, for outages; `policy` the configuration in force (for the
/// break-glass entry). Also returns the account whose groups decided.
pub fn decide(
    policy: &Policy,
    dg: usize,
    req: &AaaRequest,
    found: Result<Found, String>,
    break_glass: bool,
    stale: Option<Arc<Account>>,
) -> (AuthorDecision, Option<Arc<Account>>) {
    let answer = match &found {
        Ok(Found::Account(a)) if a.user.groups.is_empty() => DirectoryAnswer::NotMapped,
        Ok(Found::Account(_)) => DirectoryAnswer::Verified,
        Ok(Found::NoSuchUser) => DirectoryAnswer::NoSuchUser,
        Err(_) => DirectoryAnswer::Unavailable,
    };
    let account = match &found {
        Ok(Found::Account(a)) => Some(a.clone()),
        _ => None,
    };
    let d = match backend::settle(answer, break_glass, stale.is_some()) {
        Settle::Pass => match &account {
            Some(a) => as_directory_user(dg, req, a),
            None => fail("directory answer without an account".into()),
        },
        Settle::PassFromCache => {
            let a = stale.expect("settled on a stale account");
            let mut d = as_directory_user(dg, req, &a);
            d.reason =
                format!("{} (directory unavailable; groups as read within outage_ttl)", d.reason)
                    .into();
            return (d, Some(a));
        }
        Settle::Fail(why) => fail(format!(
            "{} {:?}: {why}",
            if answer == DirectoryAnswer::NoSuchUser { "user" } else { "directory user" },
            String::from_utf8_lossy(&req.user)
        )),
        Settle::UseLocal => {
            let mut d = policy.authorize(dg, req);
            d.reason =
                format!("{} (directory unavailable: break-glass local entry)", d.reason).into();
            d
        }
        Settle::Error => AuthorDecision {
            status: AuthorStatus::Error,
            args: Vec::new(),
            server_msg: "Authorization service unavailable; try again.".into(),
            reason: format!("directory unavailable: {}", found.err().unwrap_or_default()).into(),
        },
    };
    (d, account)
}

fn fail(reason: String) -> AuthorDecision {
    AuthorDecision {
        status: AuthorStatus::Fail,
        args: Vec::new(),
        server_msg: String::new(),
        reason: reason.into(),
    }
}

fn as_directory_user(dg: usize, req: &AaaRequest, a: &Account) -> AuthorDecision {
    // Group numbers are those of the configuration the account was mapped in.
    let mut d = a.policy.authorize_as(dg, &a.user, req);
    d.reason = format!("{} (groups from directory {:?})", d.reason, a.directory_name).into();
    d
}

/// Ask the directories for the user's groups (cached for `group_ttl`), then
/// decide; with the account whose groups decided.
pub async fn lookup_and_decide(
    shared: &Shared,
    dg: usize,
    req: &AaaRequest,
    break_glass: bool,
) -> (AuthorDecision, Option<Arc<Account>>) {
    let generation = shared.accounts().generation();
    let dirs = shared.directories();
    let found = match dirs.find(&req.user).await {
        Lookup::Found(Identity::Directory(a)) => Ok(Found::Account(a)),
        Lookup::Found(Identity::Local(_)) | Lookup::NoSuchUser => Ok(Found::NoSuchUser),
        Lookup::Unavailable(why) => Err(why),
    };
    let now = Instant::now();
    let stale = match &found {
        Ok(f) => {
            shared.accounts().insert(&req.user, f.clone(), generation, now);
            None
        }
        Err(_) => shared.accounts().stale(&req.user, now),
    };
    let policy = shared.policy();
    decide(&policy, dg, req, found, break_glass, stale)
}
