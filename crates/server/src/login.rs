//! One authentication session's dialogue, as a pure machine (RFC 8907
//! §5.4.2): the START, the device's CONTINUE answers, the results of slow work
//! and the time go in; actions come out — send this reply, verify this
//! credential, store this new password. No sockets, no clock, no policy lookups:
//! the driver (`conn`) carries out the actions and feeds the results back.
//!
//! Paths:
//!
//! - PAP, CHAP, MS-CHAPv1/v2: one [`Action::Verify`], then the final reply.
//!   Enable over CHAP is refused.
//! - ASCII login and enable: GETUSER when the START has no user (an empty
//!   answer asks again, up to `max_login_attempts` times, then ERROR), GETPASS,
//!   then a verification per password, up to `max_login_attempts` tries.
//! - Password change (ASCII only, when allowed): GETUSER if needed, the old
//!   password (verified like a login), the new one (at least
//!   `min_password_length`; `max_login_attempts` short ones end the change), its
//!   confirmation, then [`Action::Store`].
//! - One-time passwords: when the password check answers
//!   [`Verdict::NeedOtp`] (ASCII), a GETDATA "OTP: " prompt, then a
//!   verification of the code, up to `max_login_attempts` codes. PAP carries
//!   the code after the password, so its one check covers both.
//! - A device group's `login_methods` refuses the other methods at the START.
//! - SENDAUTH and an unset type end at once.
//!
//! Every verification goes through the lockout in the driver; a refusal, a full
//! hash queue, an unavailable directory or malformed CHAP data ends the
//! session (no retry). An unavailable directory answers ERROR, never FAIL: the
//! device then tries its next AAA method instead of telling the user the
//! password is wrong.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacvs_proto::{
    AuthenAction, AuthenReply, AuthenService, AuthenStart, AuthenStatus, AuthenType,
};

use crate::authn::{Credential, OtpChallenge, OtpMode, Verdict};
use crate::cache::CredKind;

/// The settings the dialogue follows (`[authentication]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Password tries in one ASCII session; also the empty-user and too-short bounds.
    pub max_login_attempts: u8,
    /// Shortest new password.
    pub min_password_length: usize,
    /// Whether password changes are allowed.
    pub change_password: bool,
    /// The methods the device's group may use (None: all).
    pub methods: Option<tacvs_policy::identity::LoginMethods>,
}

impl Settings {
    /// From the configuration section; `methods` from the device's group.
    pub fn from_conf(
        a: &tacvs_policy::config::AuthSection,
        methods: Option<tacvs_policy::identity::LoginMethods>,
    ) -> Self {
        Settings {
            max_login_attempts: a.max_login_attempts.max(1),
            min_password_length: a.min_password_length,
            change_password: a.change_password,
            methods,
        }
    }
}

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `reply`; log `log` when present. The session is over when the
    /// reply's status does not ask for a CONTINUE.
    Reply {
        /// The reply.
        reply: AuthenReply,
        /// What to log (and, when `last`, count).
        log: Option<Log>,
    },
    /// Check this credential, then call [`Login::verified`].
    Verify {
        /// The user as sent.
        user: Bytes,
        /// Password or CHAP response.
        credential: Credential,
        /// Login or enable.
        kind: CredKind,
        /// The level asked for (enable).
        priv_lvl: u8,
        /// How a one-time password goes with it.
        otp: OtpMode,
    },
    /// Hash and store `password` as `user`'s new password, then call
    /// [`Login::stored`].
    Store {
        /// The user.
        user: Bytes,
        /// The new password.
        password: Vec<u8>,
    },
}

/// A log line about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// `login`, `enable` or `password change`: what was attempted.
    pub event: &'static str,
    /// The user as sent (empty when none was given).
    pub user: Bytes,
    /// The method.
    pub method: AuthenType,
    /// `pass`, `fail` or `error`.
    pub result: &'static str,
    /// Why, for the operator (never sent to the device).
    pub reason: Cow<'static, str>,
    /// Whether this ends the session (count it then).
    pub last: bool,
    /// Since the START.
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// GETUSER sent.
    User,
    /// GETPASS sent.
    Password,
    /// A login / enable credential is being verified.
    Verifying,
    /// "Old password:" sent.
    OldPassword,
    /// The old password is being verified.
    VerifyingOld,
    /// "New password:" sent.
    NewPassword,
    /// "Retype new password:" sent, with the new one.
    Confirm(Vec<u8>),
    /// The new password is being stored.
    Storing,
    /// "OTP: " sent (GETDATA), after a verified password.
    Otp(OtpChallenge),
    /// A one-time code is being verified.
    VerifyingOtp(OtpChallenge),
    /// Over.
    Done,
}

/// One session's dialogue.
#[derive(Debug)]
pub struct Login {
    state: State,
    method: AuthenType,
    kind: CredKind,
    change: bool,
    priv_lvl: u8,
    user: Option<Bytes>,
    tries: u8,
    names_asked: u8,
    short: u8,
    started: Instant,
}

/// The message of a reply that asks for a secret (no echo).
fn ask(msg: impl Into<Bytes>) -> AuthenReply {
    AuthenReply { noecho: true, ..AuthenReply::new(AuthenStatus::GetPass, msg) }
}

/// The prompt for a one-time code: data the user types and may see (GETDATA).
fn otp_prompt(msg: &'static str) -> AuthenReply {
    AuthenReply::new(AuthenStatus::GetData, msg)
}

fn get_user() -> AuthenReply {
    AuthenReply::new(AuthenStatus::GetUser, "Username: ")
}

const CHAP_FAILED: &str =
    "CHAP or MS-CHAP authentication failed (these need a chap_secret configured for the user).";

impl Login {
    /// Begin with a START received at `now`. Returns the machine (ask
    /// [`is_done`](Self::is_done) before keeping it) and the first action.
    pub fn start(s: &AuthenStart, settings: &Settings, now: Instant) -> (Login, Action) {
        let kind = if s.authen_service == AuthenService::Enable {
            CredKind::Enable
        } else {
            CredKind::Login
        };
        let user = (!s.user.is_empty()).then(|| s.user.clone());
        let mut l = Login {
            state: State::Done,
            method: s.authen_type,
            kind,
            change: s.action == AuthenAction::ChangePassword,
            priv_lvl: s.priv_lvl.get(),
            user,
            tries: 0,
            names_asked: 0,
            short: 0,
            started: now,
        };
        let action = match (s.action, s.authen_type) {
            (_, t) if settings.methods.is_some_and(|m| !m.allows(t)) => l.end(
                AuthenStatus::Fail,
                "This login method is not allowed from this device.",
                "login method not in the device group's login_methods",
                now,
            ),
            (AuthenAction::SendAuth, _) => l.end(
                AuthenStatus::Fail,
                "SENDAUTH is not supported by this server.",
                "sendauth",
                now,
            ),
            (AuthenAction::ChangePassword, _) if !settings.change_password => l.end(
                AuthenStatus::Fail,
                "Changing passwords is not enabled on this server; ask your administrator.",
                "password changes are not enabled",
                now,
            ),
            (AuthenAction::ChangePassword, t) if t != AuthenType::Ascii => l.end(
                AuthenStatus::Fail,
                "Changing a password needs an ASCII session.",
                "password change needs ASCII",
                now,
            ),
            (AuthenAction::ChangePassword, _) => l.ask_user_or(State::OldPassword),
            (AuthenAction::Login, AuthenType::Ascii) => l.ask_user_or(State::Password),
            (AuthenAction::Login, AuthenType::Pap) => {
                l.verify(Credential::Password(s.data.to_vec()))
            }
            (
                AuthenAction::Login,
                AuthenType::Chap | AuthenType::MsChapV1 | AuthenType::MsChapV2,
            ) if kind == CredKind::Enable => l.end(
                AuthenStatus::Fail,
                "Enable with CHAP is not supported; use ASCII or PAP.",
                "enable over CHAP",
                now,
            ),
            (
                AuthenAction::Login,
                t @ (AuthenType::Chap | AuthenType::MsChapV1 | AuthenType::MsChapV2),
            ) => l.verify(Credential::Chap { authen_type: t, data: s.data.clone() }),
            (AuthenAction::Login, AuthenType::NotSet) => {
                l.end(AuthenStatus::Error, "authen_type not set", "authen_type not set", now)
            }
        };
        (l, action)
    }

    /// The device answered a prompt with `msg` at `now`.
    pub fn answered(&mut self, msg: &[u8], settings: &Settings, now: Instant) -> Action {
        match std::mem::replace(&mut self.state, State::Done) {
            State::User if msg.is_empty() => {
                self.names_asked += 1;
                if self.names_asked >= settings.max_login_attempts {
                    return self.end(
                        AuthenStatus::Error,
                        "No username given.",
                        "no username given",
                        now,
                    );
                }
                self.state = State::User;
                self.reply(get_user())
            }
            State::User => {
                self.user = Some(Bytes::copy_from_slice(msg));
                let next = if self.change { State::OldPassword } else { State::Password };
                self.prompt(next)
            }
            State::Password => self.verify(Credential::Password(msg.to_vec())),
            State::Otp(challenge) => {
                self.state = State::VerifyingOtp(challenge.clone());
                Action::Verify {
                    user: self.user.clone().unwrap_or_default(),
                    credential: Credential::Otp { code: msg.to_vec(), challenge },
                    kind: self.kind,
                    priv_lvl: self.priv_lvl,
                    otp: OtpMode::Prompt,
                }
            }
            State::OldPassword => {
                let a = self.verify(Credential::Password(msg.to_vec()));
                self.state = State::VerifyingOld;
                a
            }
            State::NewPassword if msg.len() < settings.min_password_length => {
                self.short += 1;
                if self.short >= settings.max_login_attempts {
                    return self.end(
                        AuthenStatus::Fail,
                        "Too many short passwords; nothing was changed.",
                        "new passwords too short",
                        now,
                    );
                }
                self.state = State::NewPassword;
                let min = settings.min_password_length;
                self.reply(ask(format!("Too short: use at least {min} characters. New password: ")))
            }
            State::NewPassword => {
                self.state = State::Confirm(msg.to_vec());
                self.reply(ask("Retype new password: "))
            }
            State::Confirm(new) if new != msg => self.end(
                AuthenStatus::Fail,
                "The passwords differ; nothing was changed.",
                "confirmation differs",
                now,
            ),
            State::Confirm(new) => {
                self.state = State::Storing;
                Action::Store { user: self.user.clone().unwrap_or_default(), password: new }
            }
            // The protocol machine refuses a CONTINUE while we owe a reply; keep
            // this answer for a driver that got it wrong.
            State::Verifying
            | State::VerifyingOld
            | State::VerifyingOtp(_)
            | State::Storing
            | State::Done => {
                self.end(AuthenStatus::Error, "unexpected CONTINUE", "unexpected CONTINUE", now)
            }
        }
    }

    /// The credential asked for by [`Action::Verify`] was checked.
    pub fn verified(&mut self, verdict: Verdict, settings: &Settings, now: Instant) -> Action {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Verifying => match verdict {
                Verdict::Pass => self.end(AuthenStatus::Pass, "", "verified", now),
                Verdict::NeedOtp(challenge) if self.method == AuthenType::Ascii => {
                    self.tries = 0;
                    let log = self.log(
                        "pass",
                        "password verified; asking for the one-time password".into(),
                        false,
                        now,
                    );
                    self.state = State::Otp(challenge);
                    Action::Reply { reply: otp_prompt("OTP: "), log: Some(log) }
                }
                Verdict::Fail(why)
                    if self.method == AuthenType::Ascii
                        && self.tries + 1 < settings.max_login_attempts =>
                {
                    self.tries += 1;
                    self.state = State::Password;
                    let log = self.log("fail", why.into(), false, now);
                    Action::Reply { reply: ask("Password incorrect. Password: "), log: Some(log) }
                }
                v => {
                    let fail_msg = match self.method {
                        AuthenType::Chap | AuthenType::MsChapV1 | AuthenType::MsChapV2 => {
                            CHAP_FAILED
                        }
                        _ => "Authentication failed.",
                    };
                    self.refused(v, fail_msg, now)
                }
            },
            State::VerifyingOtp(challenge) => match verdict {
                Verdict::Pass => {
                    self.end(AuthenStatus::Pass, "", "verified with a one-time password", now)
                }
                Verdict::Fail(why) if self.tries + 1 < settings.max_login_attempts => {
                    self.tries += 1;
                    let log = self.log("fail", why.into(), false, now);
                    self.state = State::Otp(challenge);
                    Action::Reply { reply: otp_prompt("Code incorrect. OTP: "), log: Some(log) }
                }
                v => self.refused(v, "Authentication failed.", now),
            },
            State::VerifyingOld => match verdict {
                Verdict::Pass => {
                    let log = self.log("pass", "old password verified".into(), false, now);
                    self.state = State::NewPassword;
                    Action::Reply { reply: ask("New password: "), log: Some(log) }
                }
                v => self.refused(v, "Old password incorrect; nothing was changed.", now),
            },
            _ => self.end(AuthenStatus::Error, "Internal error.", "result without a request", now),
        }
    }

    /// The new password asked for by [`Action::Store`] was (or was not) stored.
    pub fn stored(&mut self, result: Result<(), String>, now: Instant) -> Action {
        match (std::mem::replace(&mut self.state, State::Done), result) {
            (State::Storing, Ok(())) => {
                self.end(AuthenStatus::Pass, "Password changed.", "password changed", now)
            }
            (State::Storing, Err(e)) => self.end(
                AuthenStatus::Error,
                "The new password could not be stored; nothing was changed.",
                format!("not stored: {e}"),
                now,
            ),
            _ => self.end(AuthenStatus::Error, "Internal error.", "result without a request", now),
        }
    }

    /// Whether the session is over (drop the machine).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When the START arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Login or enable.
    pub fn kind(&self) -> CredKind {
        self.kind
    }

    fn event(&self) -> &'static str {
        match (self.change, self.kind) {
            (true, _) => "password change",
            (false, CredKind::Enable) => "enable",
            (false, CredKind::Login) => "login",
        }
    }

    fn log(
        &self,
        result: &'static str,
        reason: Cow<'static, str>,
        last: bool,
        now: Instant,
    ) -> Log {
        Log {
            event: self.event(),
            user: self.user.clone().unwrap_or_default(),
            method: self.method,
            result,
            reason,
            last,
            elapsed: now.saturating_duration_since(self.started),
        }
    }

    fn reply(&self, reply: AuthenReply) -> Action {
        Action::Reply { reply, log: None }
    }

    /// GETUSER when no user is known yet, else the prompt of `next`.
    fn ask_user_or(&mut self, next: State) -> Action {
        if self.user.is_none() {
            self.state = State::User;
            return self.reply(get_user());
        }
        self.prompt(next)
    }

    fn prompt(&mut self, next: State) -> Action {
        let reply = match next {
            State::OldPassword => ask("Old password: "),
            _ => ask("Password: "),
        };
        self.state = next;
        self.reply(reply)
    }

    fn verify(&mut self, credential: Credential) -> Action {
        self.state = State::Verifying;
        let otp = match (self.change, self.method) {
            (true, _) => OtpMode::Refuse,
            (false, AuthenType::Ascii) => OtpMode::Prompt,
            (false, _) => OtpMode::Inline,
        };
        Action::Verify {
            user: self.user.clone().unwrap_or_default(),
            credential,
            kind: if self.change { CredKind::Login } else { self.kind },
            priv_lvl: self.priv_lvl,
            otp,
        }
    }

    /// End the session with `status` and `msg`.
    fn end(
        &mut self,
        status: AuthenStatus,
        msg: &'static str,
        reason: impl Into<Cow<'static, str>>,
        now: Instant,
    ) -> Action {
        self.state = State::Done;
        let result = match status {
            AuthenStatus::Pass => "pass",
            AuthenStatus::Fail => "fail",
            _ => "error",
        };
        let log = self.log(result, reason.into(), true, now);
        Action::Reply { reply: AuthenReply::new(status, msg), log: Some(log) }
    }

    /// End after a check that did not pass.
    fn refused(&mut self, v: Verdict, fail_msg: &'static str, now: Instant) -> Action {
        let reason: Cow<'static, str> = match &v {
            Verdict::Pass => "verified".into(),
            Verdict::Fail(w) => (*w).into(),
            Verdict::Refused(r) => r.to_string().into(),
            Verdict::Busy => "hash queue full".into(),
            Verdict::Malformed => "malformed CHAP data".into(),
            Verdict::Unavailable(why) => format!("directory unavailable: {why}").into(),
            Verdict::NeedOtp(_) => {
                "a one-time password is needed and this method cannot ask for one".into()
            }
        };
        let (status, msg) = match v {
            Verdict::Refused(_) => (AuthenStatus::Fail, "Too many failed logins; try again later."),
            Verdict::Busy => (AuthenStatus::Error, "Server busy; try again."),
            Verdict::Malformed => (AuthenStatus::Error, "Malformed CHAP data."),
            Verdict::Unavailable(_) => {
                (AuthenStatus::Error, "Authentication service unavailable; try again.")
            }
            Verdict::Pass | Verdict::Fail(_) | Verdict::NeedOtp(_) => {
                (AuthenStatus::Fail, fail_msg)
            }
        };
        self.end(status, msg, reason, now)
    }
}

#[cfg(test)]
mod tests {
    use tacvs_proto::PrivLvl;

    use super::*;
    use crate::lockout::Refusal;

    const S: Settings = Settings {
        max_login_attempts: 3,
        min_password_length: 8,
        change_password: true,
        methods: None,
    };

    fn start_pkt(
        action: AuthenAction,
        ty: AuthenType,
        svc: AuthenService,
        user: &str,
        data: &[u8],
    ) -> AuthenStart {
        AuthenStart {
            action,
            priv_lvl: if svc == AuthenService::Enable { PrivLvl::MAX } else { PrivLvl::USER },
            authen_type: ty,
            authen_service: svc,
            user: Bytes::copy_from_slice(user.as_bytes()),
            port: Bytes::from_static(b"vty0"),
            rem_addr: Bytes::new(),
            data: Bytes::copy_from_slice(data),
        }
    }

    fn login(ty: AuthenType, user: &str, data: &[u8]) -> (Login, Action) {
        Login::start(
            &start_pkt(AuthenAction::Login, ty, AuthenService::Login, user, data),
            &S,
            Instant::now(),
        )
    }

    fn chpass(user: &str) -> (Login, Action) {
        let s = start_pkt(
            AuthenAction::ChangePassword,
            AuthenType::Ascii,
            AuthenService::Login,
            user,
            b"",
        );
        Login::start(&s, &S, Instant::now())
    }

    /// Status and message of a reply action; panics on anything else.
    fn reply(a: &Action) -> (AuthenStatus, String) {
        match a {
            Action::Reply { reply, .. } => {
                (reply.status, String::from_utf8_lossy(&reply.server_msg).into_owned())
            }
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn log(a: &Action) -> &Log {
        match a {
            Action::Reply { log: Some(l), .. } => l,
            other => panic!("expected a logged reply, got {other:?}"),
        }
    }

    fn verifying(a: &Action) -> (&[u8], &[u8], CredKind) {
        match a {
            Action::Verify { user, credential: Credential::Password(p), kind, .. } => {
                (user, p, *kind)
            }
            other => panic!("expected a password check, got {other:?}"),
        }
    }

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn pap_verifies_once_and_ends() {
        let (mut l, a) = login(AuthenType::Pap, "bob", b"pw");
        assert_eq!(verifying(&a), (&b"bob"[..], &b"pw"[..], CredKind::Login));
        let end = l.verified(Verdict::Pass, &S, now());
        assert_eq!(reply(&end).0, AuthenStatus::Pass);
        assert!(l.is_done());
        let (mut l, _) = login(AuthenType::Pap, "bob", b"pw");
        let end = l.verified(Verdict::Fail("wrong password"), &S, now());
        assert_eq!(reply(&end), (AuthenStatus::Fail, "Authentication failed.".into()));
        assert_eq!(log(&end).reason, "wrong password");
        assert!(l.is_done(), "PAP has no retries");
    }

    #[test]
    fn chap_and_mschap_verify_their_response_and_fail_saying_what_they_need() {
        for ty in [AuthenType::Chap, AuthenType::MsChapV1, AuthenType::MsChapV2] {
            let (mut l, a) = login(ty, "alice", b"\x01challenge-response");
            assert!(
                matches!(
                    &a,
                    Action::Verify { credential: Credential::Chap { authen_type, .. }, .. } if *authen_type == ty
                ),
                "{a:?}"
            );
            let end = l.verified(Verdict::Fail("wrong response"), &S, now());
            assert_eq!(reply(&end), (AuthenStatus::Fail, CHAP_FAILED.into()));
            let (mut l, _) = login(ty, "alice", b"x");
            assert_eq!(reply(&l.verified(Verdict::Malformed, &S, now())).0, AuthenStatus::Error);
        }
    }

    #[test]
    fn enable_over_chap_is_refused_without_a_check() {
        let s =
            start_pkt(AuthenAction::Login, AuthenType::Chap, AuthenService::Enable, "alice", b"x");
        let (l, a) = Login::start(&s, &S, now());
        assert!(reply(&a).1.contains("Enable with CHAP is not supported"));
        assert_eq!(log(&a).event, "enable");
        assert!(l.is_done());
    }

    #[test]
    fn ascii_without_a_user_asks_for_one_then_the_password() {
        let (mut l, a) = login(AuthenType::Ascii, "", b"");
        assert_eq!(reply(&a), (AuthenStatus::GetUser, "Username: ".into()));
        let a = l.answered(b"bob", &S, now());
        assert_eq!(reply(&a), (AuthenStatus::GetPass, "Password: ".into()));
        assert!(matches!(&a, Action::Reply { reply, .. } if reply.noecho));
        let a = l.answered(b"bob-pass", &S, now());
        assert_eq!(verifying(&a), (&b"bob"[..], &b"bob-pass"[..], CredKind::Login));
        assert_eq!(reply(&l.verified(Verdict::Pass, &S, now())).0, AuthenStatus::Pass);
    }

    #[test]
    fn ascii_with_a_user_asks_for_the_password_at_once() {
        let (_, a) = login(AuthenType::Ascii, "bob", b"");
        assert_eq!(reply(&a), (AuthenStatus::GetPass, "Password: ".into()));
    }

    #[test]
    fn empty_user_names_end_with_error_after_max_login_attempts() {
        let (mut l, _) = login(AuthenType::Ascii, "", b"");
        assert_eq!(reply(&l.answered(b"", &S, now())).0, AuthenStatus::GetUser);
        assert_eq!(reply(&l.answered(b"", &S, now())).0, AuthenStatus::GetUser);
        let end = l.answered(b"", &S, now());
        assert_eq!(reply(&end), (AuthenStatus::Error, "No username given.".into()));
        assert!(l.is_done());
    }

    #[test]
    fn ascii_allows_max_login_attempts_passwords() {
        let (mut l, _) = login(AuthenType::Ascii, "bob", b"");
        for _ in 0..2 {
            l.answered(b"wrong", &S, now());
            let a = l.verified(Verdict::Fail("wrong password"), &S, now());
            assert_eq!(reply(&a), (AuthenStatus::GetPass, "Password incorrect. Password: ".into()));
            assert!(!log(&a).last, "a retry is logged, not counted as the end");
        }
        l.answered(b"wrong", &S, now());
        let end = l.verified(Verdict::Fail("wrong password"), &S, now());
        assert_eq!(reply(&end).0, AuthenStatus::Fail);
        assert!(log(&end).last && l.is_done());
    }

    #[test]
    fn a_right_password_on_a_later_try_passes() {
        let (mut l, _) = login(AuthenType::Ascii, "bob", b"");
        l.answered(b"wrong", &S, now());
        l.verified(Verdict::Fail("wrong password"), &S, now());
        l.answered(b"bob-pass", &S, now());
        assert_eq!(reply(&l.verified(Verdict::Pass, &S, now())).0, AuthenStatus::Pass);
    }

    #[test]
    fn a_lockout_refusal_ends_an_ascii_login_without_retry() {
        let (mut l, _) = login(AuthenType::Ascii, "bob", b"");
        l.answered(b"pw", &S, now());
        let end = l.verified(Verdict::Refused(Refusal::Pending), &S, now());
        assert_eq!(
            reply(&end),
            (AuthenStatus::Fail, "Too many failed logins; try again later.".into())
        );
        assert!(l.is_done());
    }

    fn challenge() -> OtpChallenge {
        OtpChallenge::new(crate::otp::OtpSecret::from_bytes(b"12345678901234567890"))
    }

    #[test]
    fn an_unavailable_directory_ends_with_error_never_fail() {
        for ty in [AuthenType::Pap, AuthenType::Ascii] {
            let (mut l, _) = login(ty, "anna", b"pw");
            if ty == AuthenType::Ascii {
                l.answered(b"pw", &S, now());
            }
            let end = l.verified(Verdict::Unavailable("corp: refused".into()), &S, now());
            assert_eq!(
                reply(&end),
                (AuthenStatus::Error, "Authentication service unavailable; try again.".into())
            );
            assert!(log(&end).reason.contains("corp: refused"), "the log says which and why");
            assert!(l.is_done(), "no retry on an outage");
        }
    }

    #[test]
    fn ascii_asks_for_the_one_time_password_after_the_password() {
        let (mut l, _) = login(AuthenType::Ascii, "frank", b"");
        let a = l.answered(b"frank-pass", &S, now());
        assert!(matches!(a, Action::Verify { otp: OtpMode::Prompt, .. }), "{a:?}");
        let a = l.verified(Verdict::NeedOtp(challenge()), &S, now());
        assert_eq!(reply(&a), (AuthenStatus::GetData, "OTP: ".into()));
        assert!(!log(&a).last && !l.is_done());
        let a = l.answered(b"123456", &S, now());
        match &a {
            Action::Verify { credential: Credential::Otp { code, .. }, user, .. } => {
                assert_eq!((code.as_slice(), &user[..]), (&b"123456"[..], &b"frank"[..]));
            }
            other => panic!("expected a code check, got {other:?}"),
        }
        // A wrong code is asked again, up to max_login_attempts codes.
        let a = l.verified(Verdict::Fail("wrong one-time password"), &S, now());
        assert_eq!(reply(&a), (AuthenStatus::GetData, "Code incorrect. OTP: ".into()));
        l.answered(b"654321", &S, now());
        let end = l.verified(Verdict::Pass, &S, now());
        assert_eq!(reply(&end).0, AuthenStatus::Pass);
        assert!(l.is_done());
        // Three wrong codes end it.
        let (mut l, _) = login(AuthenType::Ascii, "frank", b"");
        l.answered(b"frank-pass", &S, now());
        l.verified(Verdict::NeedOtp(challenge()), &S, now());
        for _ in 0..2 {
            l.answered(b"000000", &S, now());
            l.verified(Verdict::Fail("wrong one-time password"), &S, now());
        }
        l.answered(b"000000", &S, now());
        let end = l.verified(Verdict::Fail("wrong one-time password"), &S, now());
        assert_eq!(reply(&end).0, AuthenStatus::Fail);
        assert!(l.is_done());
    }

    #[test]
    fn pap_carries_the_code_inline_and_cannot_be_asked_for_one() {
        let (mut l, a) = login(AuthenType::Pap, "frank", b"pw123456");
        assert!(matches!(a, Action::Verify { otp: OtpMode::Inline, .. }), "{a:?}");
        let end = l.verified(Verdict::NeedOtp(challenge()), &S, now());
        assert_eq!(reply(&end).0, AuthenStatus::Fail);
        let (_, a) = chpass("frank");
        assert_eq!(reply(&a).0, AuthenStatus::GetPass);
    }

    #[test]
    fn a_password_change_refuses_one_time_password_users() {
        let (mut l, _) = chpass("frank");
        let a = l.answered(b"old", &S, now());
        assert!(matches!(a, Action::Verify { otp: OtpMode::Refuse, .. }), "{a:?}");
    }

    #[test]
    fn a_method_the_device_group_does_not_list_is_refused_at_the_start() {
        let text = "[server]\n[[server.listen]]\naddress = \
            \"127.0.0.1:0\"\n[[device_group]]\nname = \"d\"\nprefixes = [\"10.0.0.0/8\"]\nkeys \
            = [\"0123456789abcdef\"]\nlogin_methods = [\"pap\"]\n";
        let p = tacvs_policy::parse("t.toml", text, std::path::Path::new(".")).unwrap();
        let s = Settings { methods: p.device_groups[0].login_methods, ..S };
        let st =
            start_pkt(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "bob", b"");
        let (l, a) = Login::start(&st, &s, now());
        assert_eq!(
            reply(&a),
            (AuthenStatus::Fail, "This login method is not allowed from this device.".into())
        );
        assert!(l.is_done());
        let st =
            start_pkt(AuthenAction::Login, AuthenType::Pap, AuthenService::Login, "bob", b"pw");
        let (_, a) = Login::start(&st, &s, now());
        assert!(matches!(a, Action::Verify { .. }));
    }

    #[test]
    fn a_full_hash_queue_ends_with_error() {
        let (mut l, _) = login(AuthenType::Pap, "bob", b"pw");
        assert_eq!(
            reply(&l.verified(Verdict::Busy, &S, now())),
            (AuthenStatus::Error, "Server busy; try again.".into())
        );
    }

    #[test]
    fn enable_over_ascii_checks_the_enable_password_at_the_level_asked() {
        let s =
            start_pkt(AuthenAction::Login, AuthenType::Ascii, AuthenService::Enable, "alice", b"");
        let (mut l, a) = Login::start(&s, &S, now());
        assert_eq!(reply(&a).0, AuthenStatus::GetPass);
        let a = l.answered(b"en", &S, now());
        assert!(matches!(a, Action::Verify { kind: CredKind::Enable, priv_lvl: 15, .. }), "{a:?}");
        let end = l.verified(Verdict::Pass, &S, now());
        assert_eq!(log(&end).event, "enable", "enable logins are told apart from logins");
    }

    #[test]
    fn sendauth_and_an_unset_type_end_at_once() {
        let s =
            start_pkt(AuthenAction::SendAuth, AuthenType::Pap, AuthenService::Login, "bob", b"");
        let (l, a) = Login::start(&s, &S, now());
        assert_eq!(reply(&a).0, AuthenStatus::Fail);
        assert!(l.is_done());
        let (l, a) = login(AuthenType::NotSet, "bob", b"");
        assert_eq!(reply(&a).0, AuthenStatus::Error);
        assert!(l.is_done());
    }

    #[test]
    fn password_change_is_refused_when_off_or_not_ascii() {
        let off = Settings { change_password: false, ..S };
        let s = start_pkt(
            AuthenAction::ChangePassword,
            AuthenType::Ascii,
            AuthenService::Login,
            "bob",
            b"",
        );
        let (_, a) = Login::start(&s, &off, now());
        assert!(reply(&a).1.contains("not enabled"));
        let s = start_pkt(
            AuthenAction::ChangePassword,
            AuthenType::Pap,
            AuthenService::Login,
            "bob",
            b"",
        );
        let (_, a) = Login::start(&s, &S, now());
        assert!(reply(&a).1.contains("needs an ASCII session"));
    }

    #[test]
    fn password_change_verifies_the_old_one_then_asks_new_and_confirmation() {
        let (mut l, a) = chpass("bob");
        assert_eq!(reply(&a), (AuthenStatus::GetPass, "Old password: ".into()));
        let a = l.answered(b"old-pass", &S, now());
        assert_eq!(verifying(&a), (&b"bob"[..], &b"old-pass"[..], CredKind::Login));
        let a = l.verified(Verdict::Pass, &S, now());
        assert_eq!(reply(&a), (AuthenStatus::GetPass, "New password: ".into()));
        let a = l.answered(b"new-password", &S, now());
        assert_eq!(reply(&a), (AuthenStatus::GetPass, "Retype new password: ".into()));
        let a = l.answered(b"new-password", &S, now());
        assert_eq!(
            a,
            Action::Store { user: Bytes::from_static(b"bob"), password: b"new-password".to_vec() }
        );
        let end = l.stored(Ok(()), now());
        assert_eq!(reply(&end), (AuthenStatus::Pass, "Password changed.".into()));
        assert_eq!(log(&end).event, "password change");
    }

    #[test]
    fn password_change_asks_for_the_user_first_when_the_start_has_none() {
        let (mut l, a) = chpass("");
        assert_eq!(reply(&a).0, AuthenStatus::GetUser);
        assert_eq!(
            reply(&l.answered(b"bob", &S, now())),
            (AuthenStatus::GetPass, "Old password: ".into())
        );
    }

    #[test]
    fn a_wrong_old_password_ends_the_change() {
        let (mut l, _) = chpass("bob");
        l.answered(b"nope", &S, now());
        let end = l.verified(Verdict::Fail("wrong password"), &S, now());
        assert_eq!(
            reply(&end),
            (AuthenStatus::Fail, "Old password incorrect; nothing was changed.".into())
        );
        assert!(l.is_done());
    }

    fn at_new_password() -> Login {
        let (mut l, _) = chpass("bob");
        l.answered(b"old-pass", &S, now());
        l.verified(Verdict::Pass, &S, now());
        l
    }

    #[test]
    fn a_short_new_password_is_refused_with_the_reason_and_asked_again() {
        let mut l = at_new_password();
        let a = l.answered(b"short", &S, now());
        assert_eq!(
            reply(&a),
            (AuthenStatus::GetPass, "Too short: use at least 8 characters. New password: ".into())
        );
        assert_eq!(reply(&l.answered(b"long-enough", &S, now())).1, "Retype new password: ");
    }

    #[test]
    fn max_login_attempts_short_passwords_end_the_change() {
        let mut l = at_new_password();
        l.answered(b"a", &S, now());
        l.answered(b"b", &S, now());
        let end = l.answered(b"c", &S, now());
        assert_eq!(
            reply(&end),
            (AuthenStatus::Fail, "Too many short passwords; nothing was changed.".into())
        );
    }

    #[test]
    fn a_differing_confirmation_changes_nothing() {
        let mut l = at_new_password();
        l.answered(b"long-enough-1", &S, now());
        let end = l.answered(b"long-enough-2", &S, now());
        assert_eq!(
            reply(&end),
            (AuthenStatus::Fail, "The passwords differ; nothing was changed.".into())
        );
    }

    #[test]
    fn a_store_failure_answers_error() {
        let mut l = at_new_password();
        l.answered(b"long-enough", &S, now());
        l.answered(b"long-enough", &S, now());
        let end = l.stored(Err("disk full".into()), now());
        assert_eq!(reply(&end).0, AuthenStatus::Error);
        assert!(log(&end).reason.contains("disk full"));
    }

    #[test]
    fn a_continue_while_a_check_runs_is_an_error() {
        let (mut l, _) = login(AuthenType::Pap, "bob", b"pw");
        assert_eq!(reply(&l.answered(b"x", &S, now())).0, AuthenStatus::Error);
    }

    #[test]
    fn the_log_carries_the_time_since_the_start() {
        let t0 = Instant::now();
        let s = start_pkt(AuthenAction::Login, AuthenType::Pap, AuthenService::Login, "bob", b"pw");
        let (mut l, _) = Login::start(&s, &S, t0);
        let end = l.verified(Verdict::Pass, &S, t0 + Duration::from_millis(1500));
        assert_eq!(log(&end).elapsed, Duration::from_millis(1500));
    }

    fn any_start() -> impl proptest::strategy::Strategy<Value = AuthenStart> {
        use proptest::prelude::*;
        let actions = prop_oneof![
            Just(AuthenAction::Login),
            Just(AuthenAction::ChangePassword),
            Just(AuthenAction::SendAuth)
        ];
        let types = prop_oneof![
            Just(AuthenType::Ascii),
            Just(AuthenType::Pap),
            Just(AuthenType::Chap),
            Just(AuthenType::MsChapV2),
            Just(AuthenType::NotSet)
        ];
        let services = prop_oneof![Just(AuthenService::Login), Just(AuthenService::Enable)];
        (actions, types, services, "[a-z]{0,3}")
            .prop_map(|(a, t, s, u)| start_pkt(a, t, s, &u, b"pw"))
    }

    #[derive(Debug, Clone)]
    enum Input {
        Answer(Vec<u8>),
        Verdict(u8),
        Stored(bool),
    }

    fn any_input() -> impl proptest::strategy::Strategy<Value = Input> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Input::Answer),
            (0u8..7).prop_map(Input::Verdict),
            any::<bool>().prop_map(Input::Stored),
        ]
    }

    proptest::proptest! {
        /// Whatever a device answers and whatever the checks return, a session
        /// asks for at most `max_login_attempts` checks, prompts a bounded number
        /// of times, and once over stays over.
        #[test]
        fn every_session_is_bounded_and_ends(start in any_start(), inputs in proptest::collection::vec(any_input(), 0..40)) {
            let t0 = Instant::now();
            let (mut l, first) = Login::start(&start, &S, t0);
            let mut checks = usize::from(matches!(first, Action::Verify { .. }));
            let mut prompts = 0;
            for i in inputs {
                if l.is_done() {
                    break;
                }
                let a = match i {
                    Input::Answer(m) => l.answered(&m, &S, t0),
                    Input::Verdict(v) => l.verified(
                        match v {
                            0 => Verdict::Pass,
                            1 | 2 => Verdict::Fail("wrong password"),
                            3 => Verdict::Busy,
                            5 => Verdict::Unavailable("down".into()),
                            6 => Verdict::NeedOtp(challenge()),
                            _ => Verdict::Refused(Refusal::Pending),
                        },
                        &S,
                        t0,
                    ),
                    Input::Stored(ok) => l.stored(if ok { Ok(()) } else { Err("x".into()) }, t0),
                };
                match &a {
                    Action::Verify { .. } => checks += 1,
                    Action::Reply { reply, log } => {
                        if reply.status.expects_continue() {
                            prompts += 1;
                            proptest::prop_assert!(!l.is_done());
                        } else {
                            proptest::prop_assert!(l.is_done(), "a final reply ends the session");
                            proptest::prop_assert!(log.as_ref().is_some_and(|l| l.last), "and is logged as the end");
                        }
                    }
                    Action::Store { .. } => {}
                }
            }
            let max = usize::from(S.max_login_attempts);
            // Passwords, then as many one-time codes.
            proptest::prop_assert!(checks <= 2 * max, "{checks} checks");
            proptest::prop_assert!(prompts <= 4 * max + 3, "{prompts} prompts");
        }
    }
}
