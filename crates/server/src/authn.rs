//! Checking one credential, the I/O side of authentication: the lockout's
//! admission (pure, [`crate::lockout`]), the credential cache (pure,
//! [`crate::cache`]), which backend answers (pure, [`crate::backend`]), the
//! file's users on a bounded pool that runs password hashes on blocking
//! threads ([`LocalBackend`]), the directories ([`crate::directory`]), and
//! one-time passwords ([`crate::otp`]).
//!
//! Every check, whatever the method (PAP, an ASCII password, enable, CHAP,
//! MS-CHAPv1/v2, the old password of a change, a one-time code), goes through
//! [`verify`]: admitted by the lockout first (counted from then on), then
//! verified. A password the credential cache knows passes without an attempt
//! (unless the user has a one-time password: a code is always checked, and
//! always admitted). Users of the file that do not exist, or cannot log in
//! this way, are verified against a decoy of the same algorithm and cost and
//! then refused, so the time taken does not tell an unknown user from a wrong
//! password. A directory that cannot answer makes the check
//! [`Verdict::Unavailable`] (ERROR to the device), which the lockout does not
//! count.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tacvs_policy::identity::PapOtp;
use tacvs_policy::{PasswordHash, Policy};
use tacvs_proto::{AuthenType, chap};
use tokio::sync::Semaphore;

use crate::accounts::Found;
use crate::backend::{self, BoxFuture, Checked, CredentialBackend, Identity, Lookup, Need, Plan};
pub use crate::cache::CredKind;
use crate::lockout::{Outcome, Refusal, Ticket};
use crate::logfmt::Esc;
use crate::otp::{OtpResult, OtpSecret};
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
    /// A one-time code typed after a verified password (ASCII).
    Otp {
        /// The code as typed.
        code: Vec<u8>,
        /// What the password check handed over.
        challenge: OtpChallenge,
    },
}

/// A password verified for a user with a one-time password: what the code is
/// checked against. `Debug` hides the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpChallenge {
    secret: OtpSecret,
}

impl OtpChallenge {
    /// A challenge for codes of `secret`.
    pub(crate) fn new(secret: OtpSecret) -> Self {
        OtpChallenge { secret }
    }
}

/// How a login password check treats a one-time password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpMode {
    /// PAP: the code follows the password (`[authentication.otp] pap`).
    Inline,
    /// ASCII: ask for the code after the password ([`Verdict::NeedOtp`]).
    Prompt,
    /// A password change: not for users with a one-time password.
    Refuse,
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
    /// How a one-time password goes with a login password.
    pub otp: OtpMode,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// No backend could answer (every directory unreachable, no fallback);
    /// why, for the log. Answered ERROR; not counted by the lockout.
    Unavailable(Arc<str>),
    /// The password verified; a one-time code must follow (ASCII).
    NeedOtp(OtpChallenge),
}

impl Verdict {
    /// `pass` / `fail` / `error`, for logs and metrics.
    pub fn result(&self) -> &'static str {
        match self {
            Verdict::Pass | Verdict::NeedOtp(_) => "pass",
            Verdict::Fail(_) | Verdict::Refused(_) => "fail",
            Verdict::Busy | Verdict::Malformed | Verdict::Unavailable(_) => "error",
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

    /// End with `v`, the lockout told what it means: a pass passes, a
    /// refusal counts, and what verified nothing (busy, unavailable, a
    /// password still waiting for its code) is as if never admitted.
    fn end(mut self, v: Verdict) -> Verdict {
        self.finish(match v {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail(_) | Verdict::Refused(_) => Outcome::Fail,
            Verdict::Busy | Verdict::Malformed | Verdict::Unavailable(_) | Verdict::NeedOtp(_) => {
                Outcome::NotVerified
            }
        });
        v
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Fail);
    }
}

/// Admit one attempt of `user` from `src`, or say why not.
fn admit<'a>(shared: &'a Shared, user: &[u8], src: IpAddr) -> Result<Attempt<'a>, Verdict> {
    let admitted = {
        let mut l = shared.lockout();
        let a = l.admit(user, src, Instant::now());
        metrics::gauge!("tacvs_lockout_tracked").set(l.entries() as f64);
        a
    };
    match admitted {
        Ok(t) => Ok(Attempt { shared, ticket: Some(t), src }),
        Err(r) => {
            let reason = match r {
                Refusal::Locked(_) => "locked",
                Refusal::Pending => "pending",
                Refusal::UserSlowed(_) => "user_slowed",
                Refusal::SourceSlowed(_) => "source_slowed",
                Refusal::Full => "full",
            };
            metrics::counter!("tacvs_lockout_refusals_total", "reason" => reason).increment(1);
            Err(Verdict::Refused(r))
        }
    }
}

/// A password the cache knows verified: no guess, no attempt taken, but a
/// locked pair stays locked.
fn cached_pass(shared: &Shared, user: &[u8], src: IpAddr) -> Verdict {
    // A handle: the macro builds the key and looks it up on every call, and
    // this is every repeated login's path.
    static HIT: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    HIT.get_or_init(|| metrics::counter!("tacvs_credential_cache_total", "result" => "hit"))
        .increment(1);
    match shared.lockout().cached_pass(user, src, Instant::now()) {
        Ok(()) => Verdict::Pass,
        Err(r) => {
            metrics::counter!("tacvs_lockout_refusals_total", "reason" => "locked").increment(1);
            Verdict::Refused(r)
        }
    }
}

fn count_check(backend: &'static str, c: &Checked, took: std::time::Duration) {
    metrics::counter!("tacvs_backend_checks_total", "backend" => backend, "result" => c.as_str())
        .increment(1);
    metrics::histogram!("tacvs_backend_check_seconds", "backend" => backend)
        .record(took.as_secs_f64());
}

/// The configuration file's users as a backend: password hashes (a changed
/// password from the password store first) verified on the hash pool.
#[derive(Debug)]
pub struct LocalBackend<'a> {
    shared: &'a Shared,
    policy: &'a Policy,
}

impl<'a> LocalBackend<'a> {
    /// Over the server's hash pool and the policy in force.
    pub fn new(shared: &'a Shared, policy: &'a Policy) -> Self {
        LocalBackend { shared, policy }
    }

    /// Verify against the decoy (unknown users), then refuse with `why`.
    async fn decoy(&self, password: Vec<u8>, why: &'static str) -> Checked {
        match self.shared.hashes.verify(self.policy.decoy_login.clone(), password).await {
            Err(Busy) => Checked::Busy,
            Ok(_) => Checked::Wrong(why),
        }
    }
}

impl CredentialBackend for LocalBackend<'_> {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn lookup<'a>(&'a self, user: &'a [u8]) -> BoxFuture<'a, Lookup> {
        let found = match self.policy.user(user) {
            Some(u) => Lookup::Found(Identity::Local(u.clone())),
            None => Lookup::NoSuchUser,
        };
        Box::pin(std::future::ready(found))
    }

    fn check<'a>(&'a self, who: &'a Identity, password: Vec<u8>) -> BoxFuture<'a, Checked> {
        Box::pin(async move {
            let Identity::Local(u) = who else {
                return Checked::Wrong("not a user of the file");
            };
            // A password the user changed overrides the configuration file's.
            match self.shared.passwords.get(&u.name).or_else(|| u.password.clone()) {
                None => self.decoy(password, "no password configured").await,
                Some(hash) => match self.shared.hashes.verify(hash, password).await {
                    Err(Busy) => Checked::Busy,
                    Ok((true, _)) => Checked::Pass,
                    Ok((false, _)) => Checked::Wrong("wrong password"),
                },
            }
        })
    }
}

/// Check one credential that [`cached`] did not answer (the caller asks it
/// first, inline): which backend answers, lockout admission, the backend, the
/// one-time code, then the lockout's bookkeeping.
pub async fn verify(shared: &Shared, c: Check) -> Verdict {
    let policy = shared.policy();
    let need = match (&c.credential, c.kind) {
        (Credential::Otp { .. }, _) => return verify_code(shared, &policy, c),
        (Credential::Chap { .. }, _) => Need::Chap,
        (_, CredKind::Enable) => Need::Enable,
        (Credential::Password(_), CredKind::Login) => Need::Login,
    };
    let local = policy.user(&c.user).map(|u| u.prefer);
    match backend::plan(local, !policy.directories.is_empty(), need) {
        Plan::Local => verify_local(shared, &policy, c).await,
        Plan::Directory { break_glass } => verify_directory(shared, &policy, c, break_glass).await,
    }
}

/// The verdict of `c` when it needs no work beyond memory: a password the
/// credential cache knows verified in this generation (for a directory user,
/// one whose account is fresh in the account cache), for a user without a
/// one-time password. Such a password is no guess: it passes unless its
/// (user, device) pair is locked, and takes no attempt. None: [`verify`]
/// must run (a miss, a one-time password, CHAP, a code); asked once, by the
/// caller, so a miss does not compute the cache's key twice.
///
/// The connection answers a hit inline, without a task for the check:
/// repeated logins from automation are most of a busy server's logins.
pub fn cached(shared: &Shared, c: &Check) -> Option<Verdict> {
    let Credential::Password(pw) = &c.credential else { return None };
    let policy = shared.policy();
    let need = match c.kind {
        CredKind::Enable => Need::Enable,
        CredKind::Login => Need::Login,
    };
    let local = policy.user(&c.user);
    let now = Instant::now();
    let plan = backend::plan(local.map(|u| u.prefer), !policy.directories.is_empty(), need);
    let known = match plan {
        Plan::Local => {
            let otp = c.kind == CredKind::Login
                && local.is_some_and(|u| needs_otp(shared, &Identity::Local(u.clone())));
            // The cache's key holds no level: an enable passes from it only at
            // a level the user's groups grant, as `verify` checks on a miss.
            let level =
                c.kind == CredKind::Login || local.is_some_and(|u| c.priv_lvl <= u.max_priv);
            level && !otp && shared.cache().hit(c.kind, &c.user, pw, now)
        }
        Plan::Directory { .. } => {
            matches!(shared.accounts().fresh(&c.user, now), Some(Found::Account(a))
                if !needs_otp(shared, &Identity::Directory(a.clone()))
                    && !a.user.groups.is_empty())
                && shared.cache().hit(CredKind::Login, &c.user, pw, now)
        }
    };
    known.then(|| cached_pass(shared, &lockout_key(plan, &c.user), canonical_ip(c.src)))
}

/// The name `user`'s failures and rate are counted under, where `plan` says
/// who answers for it: as sent for a user of the file, as directories
/// compare names for a directory user ([`crate::directory::prepared_name`]),
/// so that no spelling of a directory name buys a new set of guesses.
fn lockout_key(plan: Plan, user: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match plan {
        Plan::Local => std::borrow::Cow::Borrowed(user),
        Plan::Directory { .. } => crate::directory::prepared_name(user),
    }
}

/// The secret a user's code is checked against: the directory's attribute,
/// else the secrets file.
fn otp_secret(shared: &Shared, who: &Identity) -> Option<OtpSecret> {
    let from_directory = match who {
        Identity::Directory(a) => a.otp_secret.clone(),
        Identity::Local(_) => None,
    };
    from_directory.or_else(|| shared.otp_store().get(&who.user().name).cloned())
}

/// Whether `who` logs in with a one-time password: asked by the user or a
/// group, or enrolled.
fn needs_otp(shared: &Shared, who: &Identity) -> bool {
    who.user().otp || otp_secret(shared, who).is_some()
}

/// The password part of a login, and the inline code when there is one.
fn split<'p>(
    policy: &Policy,
    mode: OtpMode,
    otp: bool,
    data: &'p [u8],
) -> Result<(&'p [u8], Option<&'p [u8]>), &'static str> {
    if !otp {
        return Ok((data, None));
    }
    match mode {
        OtpMode::Refuse => {
            Err("password changes are not available to users with a one-time password")
        }
        OtpMode::Prompt => Ok((data, None)),
        OtpMode::Inline if policy.otp.pap == PapOtp::Refuse => {
            Err("PAP cannot carry the one-time password ([authentication.otp] pap = \"refuse\")")
        }
        OtpMode::Inline => match crate::otp::split_pap(data, policy.otp.digits) {
            Some((pw, code)) => Ok((pw, Some(code))),
            None => Err("PAP data too short for a password and a one-time code"),
        },
    }
}

/// After the password: nothing more, the inline code, or ask for one.
fn second_factor(
    shared: &Shared,
    policy: &Policy,
    c_user: &[u8],
    who: &Identity,
    otp: bool,
    code: Option<&[u8]>,
) -> Verdict {
    if !otp {
        return Verdict::Pass;
    }
    let Some(secret) = otp_secret(shared, who) else {
        return Verdict::Fail(
            "a one-time password is required but the user is not enrolled (tacvs otp enroll USER)",
        );
    };
    match code {
        None => Verdict::NeedOtp(OtpChallenge::new(secret)),
        Some(code) => check_code(shared, policy, c_user, &secret, code),
    }
}

fn check_code(
    shared: &Shared,
    policy: &Policy,
    user: &[u8],
    secret: &OtpSecret,
    code: &[u8],
) -> Verdict {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let r = shared.otp_guard().check(user, secret, &policy.otp, code, unix, Instant::now());
    metrics::counter!("tacvs_otp_checks_total", "result" => match r {
        OtpResult::Pass => "pass",
        OtpResult::Wrong => "wrong",
        OtpResult::Replayed => "replayed",
    })
    .increment(1);
    match r {
        OtpResult::Pass => Verdict::Pass,
        other => Verdict::Fail(other.reason()),
    }
}

/// A code typed after the password (ASCII): admitted like a password.
fn verify_code(shared: &Shared, policy: &Policy, c: Check) -> Verdict {
    let Credential::Otp { code, challenge } = c.credential else {
        return Verdict::Fail("not a one-time code");
    };
    let local = policy.user(&c.user).map(|u| u.prefer);
    let plan = backend::plan(local, !policy.directories.is_empty(), Need::Login);
    let attempt = match admit(shared, &lockout_key(plan, &c.user), canonical_ip(c.src)) {
        Ok(a) => a,
        Err(v) => return v,
    };
    let v = check_code(shared, policy, &c.user, &challenge.secret, &code);
    attempt.end(v)
}

/// The file answers: the existing local path (decoys, enable, CHAP).
async fn verify_local(shared: &Shared, policy: &Arc<Policy>, c: Check) -> Verdict {
    let src = canonical_ip(c.src);
    // Before reading any hash: a reload after this point makes a late insert fail.
    let generation = shared.cache().generation();
    let user = policy.user(&c.user).cloned();
    let who = user.clone().map(Identity::Local);
    // A password the cache knows was answered by `cached` before this.
    let attempt = match admit(shared, &c.user, src) {
        Ok(a) => a,
        Err(v) => return v,
    };
    match c.credential {
        Credential::Otp { .. } => attempt.end(Verdict::Fail("not a password")),
        Credential::Chap { authen_type, data } => {
            let (secret, why) = match user.as_ref().map(|u| u.chap_secret.as_ref()) {
                None => (None, "unknown user"),
                Some(None) => (None, "no chap_secret configured"),
                Some(Some(s)) => (Some(s.0.as_str()), "wrong response"),
            };
            let computed =
                chap::verify(authen_type, &data, &c.user, secret.unwrap_or(DECOY_CHAP_SECRET));
            let otp_user = who.as_ref().is_some_and(|w| needs_otp(shared, w));
            match computed {
                Err(_) => attempt.end(Verdict::Malformed),
                Ok(true) if secret.is_some() && otp_user => attempt
                    .end(Verdict::Fail("a one-time password is required and CHAP cannot carry it")),
                Ok(true) if secret.is_some() => attempt.end(Verdict::Pass),
                Ok(_) => attempt.end(Verdict::Fail(why)),
            }
        }
        Credential::Password(data) if c.kind == CredKind::Enable => {
            let (hash, why) = match &user {
                None => (None, "unknown user"),
                Some(u) if c.priv_lvl > u.max_priv => {
                    (None, "enable level above the user's groups")
                }
                Some(u) => (u.enable.clone(), "no enable password configured"),
            };
            let real = hash.is_some();
            let hash = hash.unwrap_or_else(|| policy.decoy_enable.clone());
            metrics::counter!("tacvs_credential_cache_total", "result" => "miss").increment(1);
            match shared.hashes.verify(hash, data).await {
                Err(Busy) => attempt.end(Verdict::Busy),
                Ok((true, data)) if real => {
                    shared.cache().insert(c.kind, &c.user, &data, generation, Instant::now());
                    attempt.end(Verdict::Pass)
                }
                Ok(_) => {
                    attempt.end(Verdict::Fail(if real { "wrong enable password" } else { why }))
                }
            }
        }
        Credential::Password(data) => {
            let generation = Some(generation);
            local_login(shared, policy, &c.user, who.as_ref(), &data, c.otp, generation, attempt)
                .await
        }
    }
}

/// A login password against the file (also the break-glass path of a
/// directory user), then the one-time code; `attempt` is already admitted.
/// A pass is cached in `generation`; None (break-glass) caches nothing: the
/// cache stands for the directory's answer for such a user, and the local
/// password must not pass as the directory's once it is back.
#[allow(clippy::too_many_arguments)]
async fn local_login(
    shared: &Shared,
    policy: &Policy,
    c_user: &[u8],
    who: Option<&Identity>,
    data: &[u8],
    mode: OtpMode,
    generation: Option<crate::cache::Generation>,
    attempt: Attempt<'_>,
) -> Verdict {
    let local = LocalBackend::new(shared, policy);
    metrics::counter!("tacvs_credential_cache_total", "result" => "miss").increment(1);
    let t = Instant::now();
    let Some(who) = who else {
        let r = local.decoy(data.to_vec(), "unknown user").await;
        count_check(local.kind(), &r, t.elapsed());
        return attempt.end(checked_verdict(r));
    };
    let otp = needs_otp(shared, who);
    let (password, code) = match split(policy, mode, otp, data) {
        Ok(x) => x,
        Err(why) => {
            // Hashed anyway: an answer without a hash, where an unknown user
            // costs one, would tell that this name exists and needs a code.
            let r = local.decoy(data.to_vec(), why).await;
            count_check(local.kind(), &r, t.elapsed());
            return attempt.end(checked_verdict(r));
        }
    };
    let cached = otp
        && generation.is_some()
        && shared.cache().hit(CredKind::Login, c_user, password, Instant::now());
    let r = if cached { Checked::Pass } else { local.check(who, password.to_vec()).await };
    count_check(local.kind(), &r, t.elapsed());
    if r != Checked::Pass {
        return attempt.end(checked_verdict(r));
    }
    if let Some(g) = generation {
        shared.cache().insert(CredKind::Login, c_user, password, g, Instant::now());
    }
    attempt.end(second_factor(shared, policy, c_user, who, otp, code))
}

fn checked_verdict(r: Checked) -> Verdict {
    match r {
        Checked::Pass => Verdict::Pass,
        Checked::Wrong(w) => Verdict::Fail(w),
        Checked::Busy => Verdict::Busy,
        Checked::Unavailable(why) => Verdict::Unavailable(why.into()),
    }
}

/// A directory answers (the user is not in the file, or prefers the directory).
async fn verify_directory(
    shared: &Shared,
    policy: &Arc<Policy>,
    c: Check,
    break_glass: bool,
) -> Verdict {
    let src = canonical_ip(c.src);
    let now = Instant::now();
    let Credential::Password(data) = c.credential else {
        return Verdict::Fail("not a password");
    };
    let generation = shared.cache().generation();
    let accounts_gen = shared.accounts().generation();
    let dirs = shared.directories();
    // A known account whose password the cache knows was answered by
    // `cached` before this, with no directory round trip.
    let fresh = shared.accounts().fresh(&c.user, now);
    let attempt = match admit(shared, &lockout_key(Plan::Directory { break_glass }, &c.user), src) {
        Ok(a) => a,
        Err(v) => return v,
    };
    let t = Instant::now();
    let found = match fresh {
        Some(f) => Ok(f),
        None => match dirs.find(&c.user).await {
            Lookup::Found(Identity::Directory(a)) => {
                let f = Found::Account(a);
                shared.accounts().insert(&c.user, f.clone(), accounts_gen, Instant::now());
                Ok(f)
            }
            Lookup::Found(Identity::Local(_)) | Lookup::NoSuchUser => {
                shared.accounts().insert(&c.user, Found::NoSuchUser, accounts_gen, Instant::now());
                Ok(Found::NoSuchUser)
            }
            Lookup::Unavailable(why) => Err(why),
        },
    };
    let answer = match &found {
        Err(_) => backend::DirectoryAnswer::Unavailable,
        Ok(Found::NoSuchUser) => backend::DirectoryAnswer::NoSuchUser,
        Ok(Found::Account(a)) if a.user.groups.is_empty() => backend::DirectoryAnswer::NotMapped,
        Ok(Found::Account(_)) => backend::DirectoryAnswer::Verified,
    };
    let account = match (found, answer) {
        (Ok(Found::Account(a)), backend::DirectoryAnswer::Verified) => a,
        (found, answer) => {
            let why = found.err().unwrap_or_default();
            let r = if answer == backend::DirectoryAnswer::Unavailable {
                Checked::Unavailable(why.clone())
            } else {
                Checked::Wrong("")
            };
            count_check("ldap", &r, t.elapsed());
            return outage_or_refusal(
                shared,
                policy,
                &c.user,
                &data,
                c.otp,
                answer,
                break_glass,
                why,
                attempt,
            )
            .await;
        }
    };
    let who = Identity::Directory(account);
    let otp = needs_otp(shared, &who);
    let (password, code) = match split(policy, c.otp, otp, &data) {
        Ok(x) => x,
        Err(why) => return attempt.end(Verdict::Fail(why)),
    };
    let r = if password.is_empty() {
        // Never sent: an unauthenticated bind succeeds on many servers.
        Checked::Wrong("empty password (never sent to a directory)")
    } else if shared.cache().hit(CredKind::Login, &c.user, password, Instant::now()) {
        metrics::counter!("tacvs_credential_cache_total", "result" => "hit").increment(1);
        Checked::Pass
    } else {
        metrics::counter!("tacvs_credential_cache_total", "result" => "miss").increment(1);
        dirs.check(&who, password.to_vec()).await
    };
    count_check(dirs.kind(), &r, t.elapsed());
    match r {
        Checked::Pass => {
            shared.cache().insert(CredKind::Login, &c.user, password, generation, Instant::now());
            attempt.end(second_factor(shared, policy, &c.user, &who, otp, code))
        }
        Checked::Wrong(w) => attempt.end(Verdict::Fail(w)),
        Checked::Busy => attempt.end(Verdict::Busy),
        Checked::Unavailable(why) => {
            outage_or_refusal(
                shared,
                policy,
                &c.user,
                &data,
                c.otp,
                backend::DirectoryAnswer::Unavailable,
                break_glass,
                why,
                attempt,
            )
            .await
        }
    }
}

/// Settle a directory answer that is not a verified account: a refusal, or
/// an outage (the cache's outage view, the file's entry, or ERROR).
#[allow(clippy::too_many_arguments)]
async fn outage_or_refusal(
    shared: &Shared,
    policy: &Arc<Policy>,
    c_user: &[u8],
    data: &[u8],
    mode: OtpMode,
    answer: backend::DirectoryAnswer,
    break_glass: bool,
    why: String,
    attempt: Attempt<'_>,
) -> Verdict {
    let now = Instant::now();
    // The outage view: the account and the credential verified within outage_ttl.
    let stale = if answer == backend::DirectoryAnswer::Unavailable {
        shared.accounts().stale(c_user, now).map(Identity::Directory)
    } else {
        None
    };
    let outage_ttl = shared.cache().settings().outage_ttl;
    let cached = stale.as_ref().and_then(|who| {
        let otp = needs_otp(shared, who);
        let (pw, code) = split(policy, mode, otp, data).ok()?;
        shared
            .cache()
            .hit_within(CredKind::Login, c_user, pw, now, outage_ttl)
            .then(|| (who.clone(), otp, code.map(<[u8]>::to_vec)))
    });
    match backend::settle(answer, break_glass, cached.is_some()) {
        backend::Settle::Pass => attempt.end(Verdict::Pass),
        backend::Settle::Fail(why) => attempt.end(Verdict::Fail(why)),
        backend::Settle::PassFromCache => {
            let (who, otp, code) = cached.expect("settled on a cache hit");
            tracing::info!(user = %Esc(c_user), directories = %why, "directory unavailable; \
                the password verified within the outage window (outage_ttl)");
            metrics::counter!("tacvs_credential_cache_total", "result" => "outage_hit")
                .increment(1);
            attempt.end(second_factor(shared, policy, c_user, &who, otp, code.as_deref()))
        }
        backend::Settle::UseLocal => {
            tracing::warn!(user = %Esc(c_user), directories = %why, "directory unavailable; \
                the user's local entry answers (break-glass)");
            metrics::counter!("tacvs_break_glass_total").increment(1);
            let who = policy.user(c_user).cloned().map(Identity::Local);
            local_login(shared, policy, c_user, who.as_ref(), data, mode, None, attempt).await
        }
        backend::Settle::Error => attempt.end(Verdict::Unavailable(why.into())),
    }
}
