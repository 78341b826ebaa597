//! Checking one credential, the I/O side of authentication: the lockout's
//! admission (pure, [`crate::lockout`]), the credential cache (pure,
//! [`crate::cache`]), and a bounded pool that runs password hashes on blocking
//! threads, never on the network threads.
//!
//! Every check, whatever the method (PAP, an ASCII password, enable, CHAP,
//! MS-CHAPv1/v2, the old password of a change), goes through [`verify`]:
//! admitted by the lockout first (counted from then on), then verified. Users
//! that do not exist, or cannot log in this way, are verified against a decoy of
//! the same algorithm and cost and then refused, so the time taken does not tell
//! an unknown user from a wrong password.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tacvs_policy::PasswordHash;
use tacvs_proto::{AuthenType, chap};
use tokio::sync::Semaphore;

pub use crate::cache::CredKind;
use crate::lockout::{Outcome, Refusal, Ticket};
use crate::logfmt::Esc;
use crate::{Shared, canonical_ip};

/// Runs hash verifications on blocking threads, at most `workers` at once and at
/// most `queue` waiting.
#[derive(Debug)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    verified: AtomicU64,
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
            verified: AtomicU64::new(0),
        }
    }

    /// Verify `password` against `hash` off the async threads. Hands the
    /// password buffer back with the result.
    pub async fn verify(
        &self,
        hash: PasswordHash,
        password: Vec<u8>,
    ) -> Result<(bool, Vec<u8>), Busy> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("tacvs_rejects_total", "reason" => "hash_queue_full").increment(1);
            return Err(Busy);
        }
        self.verified.fetch_add(1, Ordering::Relaxed);
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit.map_err(|_| Busy)?;
        let t = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let ok = hash.verify(&password);
            (ok, password)
        })
        .await
        .map_err(|_| Busy)?;
        metrics::histogram!("tacvs_password_hash_seconds").record(t.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Hash verifications admitted to the pool (running, waiting or done).
    pub fn verifications(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }
}

/// What is being checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    /// A password (PAP, ASCII, enable, the old password of a change).
    Password(Vec<u8>),
    /// A CHAP / MS-CHAP response (the START's data field, RFC 8907 §5.4.2).
    Chap {
        /// Which of the three.
        authen_type: AuthenType,
        /// The data field as sent.
        data: Bytes,
    },
}

/// One check to make.
#[derive(Debug)]
pub struct Check {
    /// The user as sent.
    pub user: Bytes,
    /// The credential.
    pub credential: Credential,
    /// Login or enable.
    pub kind: CredKind,
    /// For enable: the level asked for.
    pub priv_lvl: u8,
    /// The device's address (after PROXY intake).
    pub src: IpAddr,
}

/// The result of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Verified.
    Pass,
    /// Not verified; the reason is for the log only (never the reply).
    Fail(&'static str),
    /// Not admitted by the lockout; nothing was verified.
    Refused(Refusal),
    /// The hash queue is full; nothing was verified.
    Busy,
    /// The CHAP data field does not parse.
    Malformed,
}

impl Verdict {
    /// `pass` / `fail` / `error`, for logs and metrics.
    pub fn result(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) | Verdict::Refused(_) => "fail",
            Verdict::Busy | Verdict::Malformed => "error",
        }
    }
}

/// The CHAP secret computed against for users that have none.
const DECOY_CHAP_SECRET: &str = "tacvs decoy: no such user or no chap_secret";

/// An admitted attempt that counts as a failure unless finished otherwise, also
/// when the connection goes away before the result.
struct Attempt<'a> {
    shared: &'a Shared,
    ticket: Option<Ticket>,
    src: IpAddr,
}

impl Attempt<'_> {
    fn finish(&mut self, outcome: Outcome) {
        let Some(t) = self.ticket.take() else { return };
        let user = Bytes::copy_from_slice(t.user());
        let engaged = self.shared.lockout().finish(t, outcome, Instant::now());
        if let Some(e) = engaged {
            let s = self.shared.lockout().settings().max_failures;
            metrics::counter!("tacvs_lockouts_total").increment(1);
            tracing::warn!(
                user = %Esc(&user),
                device = %self.src,
                locked_for = %crate::lockout::human(e.duration),
                lock_number = e.count,
                "user locked out on this device after {s} failed login(s)"
            );
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Fail);
    }
}

/// Check one credential: lockout admission, then the cache or a hash (or the
/// CHAP computation), then the lockout's bookkeeping.
pub async fn verify(shared: &Shared, c: Check) -> Verdict {
    let src = canonical_ip(c.src);
    let now = Instant::now();
    // Before reading any hash: a reload after this point makes a late insert fail.
    let generation = shared.cache().generation();
    // A password the cache knows verified in this generation is no guess: it
    // passes unless its (user, device) pair is locked, and takes no attempt.
    if let Credential::Password(pw) = &c.credential
        && shared.cache().hit(c.kind, &c.user, pw, now)
    {
        metrics::counter!("tacvs_credential_cache_total", "result" => "hit").increment(1);
        return match shared.lockout().cached_pass(&c.user, src, now) {
            Ok(()) => Verdict::Pass,
            Err(r) => {
                metrics::counter!("tacvs_lockout_refusals_total", "reason" => "locked")
                    .increment(1);
                Verdict::Refused(r)
            }
        };
    }
    let admitted = {
        let mut l = shared.lockout();
        let a = l.admit(&c.user, src, now);
        metrics::gauge!("tacvs_lockout_tracked").set(l.entries() as f64);
        a
    };
    let ticket = match admitted {
        Ok(t) => t,
        Err(r) => {
            let reason = match r {
                Refusal::Locked(_) => "locked",
                Refusal::Pending => "pending",
                Refusal::UserSlowed(_) => "user_slowed",
                Refusal::SourceSlowed(_) => "source_slowed",
                Refusal::Full => "full",
            };
            metrics::counter!("tacvs_lockout_refusals_total", "reason" => reason).increment(1);
            return Verdict::Refused(r);
        }
    };
    let mut attempt = Attempt { shared, ticket: Some(ticket), src };
    let policy = shared.policy();
    let user = policy.user(&c.user);
    match c.credential {
        Credential::Chap { authen_type, data } => {
            let (secret, why) = match user.map(|u| u.chap_secret.as_ref()) {
                None => (None, "unknown user"),
                Some(None) => (None, "no chap_secret configured"),
                Some(Some(s)) => (Some(s.0.as_str()), "wrong response"),
            };
            let computed =
                chap::verify(authen_type, &data, &c.user, secret.unwrap_or(DECOY_CHAP_SECRET));
            match computed {
                Err(_) => {
                    attempt.finish(Outcome::NotVerified);
                    Verdict::Malformed
                }
                Ok(true) if secret.is_some() => {
                    attempt.finish(Outcome::Pass);
                    Verdict::Pass
                }
                Ok(_) => {
                    attempt.finish(Outcome::Fail);
                    Verdict::Fail(why)
                }
            }
        }
        Credential::Password(password) => {
            let (hash, why) = match (c.kind, user) {
                (CredKind::Login, None) => (None, "unknown user"),
                (CredKind::Enable, None) => (None, "unknown user"),
                // A password the user changed overrides the configuration file's.
                (CredKind::Login, Some(u)) => (
                    shared.passwords.get(&u.name).or_else(|| u.password.clone()),
                    "no password configured",
                ),
                (CredKind::Enable, Some(u)) if c.priv_lvl > u.max_priv => {
                    (None, "enable level above the user's groups")
                }
                (CredKind::Enable, Some(u)) => (u.enable.clone(), "no enable password configured"),
            };
            let real = hash.is_some();
            let why = if real {
                if c.kind == CredKind::Enable { "wrong enable password" } else { "wrong password" }
            } else {
                why
            };
            let hash = hash.unwrap_or_else(|| match c.kind {
                CredKind::Login => policy.decoy_login.clone(),
                CredKind::Enable => policy.decoy_enable.clone(),
            });
            drop(policy);
            metrics::counter!("tacvs_credential_cache_total", "result" => "miss").increment(1);
            match shared.hashes.verify(hash, password).await {
                Err(Busy) => {
                    attempt.finish(Outcome::NotVerified);
                    Verdict::Busy
                }
                Ok((true, password)) if real => {
                    shared.cache().insert(c.kind, &c.user, &password, generation, Instant::now());
                    attempt.finish(Outcome::Pass);
                    Verdict::Pass
                }
                Ok(_) => {
                    attempt.finish(Outcome::Fail);
                    Verdict::Fail(why)
                }
            }
        }
    }
}
