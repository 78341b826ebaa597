//! One-time passwords: TOTP (RFC 6238, HMAC-SHA1 codes computed by the
//! `totp-rs` crate), checked as a pure function of the secret, the code, the
//! Unix time and the replay memory.
//!
//! Contract:
//!
//! - A code is accepted for the time step it was made for, `skew` steps
//!   either side of now (clock skew), and **once**: the step of every
//!   accepted code is remembered per user, and a code for that step or an
//!   earlier one is refused (RFC 6238 §5.2). So a code seen on the wire, or
//!   typed twice, does not log in again, and neither does an older one.
//! - The credential cache never stands in for a code: a user with a one-time
//!   password gives a fresh code on every login, cached password or not
//!   (`authn` asks for it after the password, whatever verified the password).
//! - Secrets are never logged: [`OtpSecret`] is redacted in `Debug`.
//! - PAP carries the code after the password ([`split_pap`]); ASCII asks for it
//!   with a GETDATA prompt after the password (the login machine).
//!
//! [`OtpStore`] is the file of secrets `tacvs otp enroll` writes (user →
//! base32), read at start and on every reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::passwords::{StoreError, read_user_map};
use tacvs_policy::identity::OtpSettings;

/// A TOTP secret (the shared key of RFC 6238). `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpSecret(Arc<[u8]>);

impl std::fmt::Debug for OtpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted OTP secret, {} bytes>", self.0.len())
    }
}

impl OtpSecret {
    /// From raw bytes.
    pub fn from_bytes(b: &[u8]) -> Self {
        OtpSecret(b.into())
    }

    /// From base32 (RFC 4648, as authenticator apps show it; spaces and
    /// lower case allowed, padding optional). The error does not repeat the text.
    pub fn from_base32(text: &str) -> Result<Self, String> {
        let clean: String =
            text.chars().filter(|c| !c.is_whitespace() && *c != '=').collect::<String>();
        let s = totp_rs::Secret::try_from_base32(clean.to_ascii_uppercase())
            .map_err(|_| "not a base32 TOTP secret (letters A-Z and digits 2-7)".to_owned())?;
        if s.as_ref().len() < 10 {
            return Err("a TOTP secret shorter than 80 bits: enroll the user again".into());
        }
        Ok(OtpSecret(s.as_ref().into()))
    }

    /// A new random secret of 160 bits (RFC 4226 §4 recommends 160).
    pub fn random() -> Self {
        let b: [u8; 20] = rand::random();
        OtpSecret(b.as_slice().into())
    }

    /// Base32, without padding, as authenticator apps take it.
    pub fn to_base32(&self) -> String {
        totp_rs::Secret::from(self.0.as_ref()).to_base32()
    }

    fn totp(&self, s: &OtpSettings) -> totp_rs::Totp {
        totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(s.digits)
            .with_skew(u16::from(s.skew))
            .with_step_duration(s.period.as_secs().max(1))
            .with_secret(self.0.as_ref())
            .build_noncompliant()
    }
}

/// The code for Unix time `unix` (tests, `tacvs otp code`).
pub fn code_at(secret: &OtpSecret, s: &OtpSettings, unix: u64) -> String {
    secret.totp(s).generate(unix).to_string()
}

/// The time step a code was made for, when it is one of the steps within
/// `skew` of `unix`; compared in constant time.
pub fn matching_step(secret: &OtpSecret, s: &OtpSettings, code: &[u8], unix: u64) -> Option<u64> {
    let code = std::str::from_utf8(code).ok()?.trim();
    secret.totp(s).check(code, unix)
}

/// The `otpauth://` URI authenticator apps read (Key Uri Format).
pub fn uri(secret: &OtpSecret, s: &OtpSettings, user: &str) -> Result<String, String> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(s.digits)
        .with_step_duration(s.period.as_secs().max(1))
        .with_secret(secret.0.as_ref())
        .with_issuer(Some(s.issuer.as_str()))
        .with_account_name(user)
        .build()
        .and_then(|t| t.to_url())
        .map_err(|e| format!("cannot make the otpauth URI: {e}"))
}

/// A PAP password with the code after it: (password, code), or None when the
/// data is too short to hold both.
pub fn split_pap(data: &[u8], digits: u8) -> Option<(&[u8], &[u8])> {
    let d = usize::from(digits);
    (data.len() > d).then(|| data.split_at(data.len() - d))
}

/// What a code check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpResult {
    /// Right, and not used before: accepted (and now remembered).
    Pass,
    /// Not a code of this secret within the window.
    Wrong,
    /// A code for a step already used (or an older one): refused.
    Replayed,
}

impl OtpResult {
    /// For logs.
    pub fn reason(self) -> &'static str {
        match self {
            OtpResult::Pass => "one-time password verified",
            OtpResult::Wrong => "wrong one-time password",
            OtpResult::Replayed => "one-time password already used (replay refused)",
        }
    }
}

/// The last accepted step per user (RFC 6238 §5.2). Bounded: entries older
/// than the window are dropped first; when full of live entries, codes are
/// refused rather than remembered nowhere.
#[derive(Debug)]
pub struct ReplayGuard {
    last: HashMap<Box<[u8]>, (u64, Instant)>,
    max_entries: usize,
}

impl ReplayGuard {
    /// Empty, keeping at most `max_entries` users.
    pub fn new(max_entries: usize) -> Self {
        ReplayGuard { last: HashMap::new(), max_entries: max_entries.max(1) }
    }

    /// Check `code` for `user` at `unix` (wall clock) and `now` (monotonic).
    pub fn check(
        &mut self,
        user: &[u8],
        secret: &OtpSecret,
        s: &OtpSettings,
        code: &[u8],
        unix: u64,
        now: Instant,
    ) -> OtpResult {
        let Some(step) = matching_step(secret, s, code, unix) else { return OtpResult::Wrong };
        if self.last.get(user).is_some_and(|&(last, _)| step <= last) {
            return OtpResult::Replayed;
        }
        // Long enough that a code of the window cannot come back after we forget it.
        let keep = s.period * (2 * u32::from(s.skew) + 2);
        if self.last.len() >= self.max_entries && !self.last.contains_key(user) {
            self.last.retain(|_, &mut (_, at)| now.saturating_duration_since(at) < keep);
            if self.last.len() >= self.max_entries {
                return OtpResult::Replayed;
            }
        }
        self.last.insert(user.into(), (step, now));
        OtpResult::Pass
    }

    /// Users remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// The secrets file: a JSON object of user → base32 secret (mode 0600).
#[derive(Debug, Default)]
pub struct OtpStore {
    path: PathBuf,
    map: HashMap<String, OtpSecret>,
    owner: Option<(u32, u32)>,
}

impl OtpStore {
    /// Load `path` (absent = empty). A malformed file is an error naming the
    /// file and the user, never a secret.
    pub fn open(path: &Path) -> Result<OtpStore, StoreError> {
        let mut map = HashMap::new();
        for (u, s) in read_user_map(path, "base32 secret")? {
            let secret = OtpSecret::from_base32(&s).map_err(|e| {
                StoreError::Malformed(format!("{}: user {u:?}: {e}", path.display()))
            })?;
            map.insert(u, secret);
        }
        Ok(OtpStore { path: path.to_owned(), map, owner: None })
    }

    /// Write the file as `uid`'s, group `gid` (run as root for a server that
    /// drops root: the server reads the file as that user).
    pub fn set_owner(&mut self, uid: u32, gid: u32) {
        self.owner = Some((uid, gid));
    }

    /// The secret of `user`, if enrolled.
    pub fn get(&self, user: &str) -> Option<&OtpSecret> {
        self.map.get(user)
    }

    /// Give `user` a new random secret and write the file (atomically, mode
    /// 0600) before returning it.
    pub fn enroll(&mut self, user: &str) -> Result<OtpSecret, String> {
        let secret = OtpSecret::random();
        let mut texts: std::collections::BTreeMap<&str, String> =
            self.map.iter().map(|(u, s)| (u.as_str(), s.to_base32())).collect();
        texts.insert(user, secret.to_base32());
        let body = serde_json::to_vec_pretty(&texts).map_err(|e| e.to_string())?;
        crate::passwords::write_atomically(&self.path, &body, 0o600, self.owner)?;
        self.map.insert(user.to_owned(), secret.clone());
        Ok(secret)
    }

    /// Users enrolled.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// How long after `unix` the current step ends (for prompts and tests).
pub fn step_left(s: &OtpSettings, unix: u64) -> Duration {
    let p = s.period.as_secs().max(1);
    Duration::from_secs(p - unix % p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(digits: u8, skew: u8) -> OtpSettings {
        OtpSettings {
            secrets_file: PathBuf::from("otp.json"),
            digits,
            period: Duration::from_secs(30),
            skew,
            pap: tacvs_policy::identity::PapOtp::Append,
            issuer: "tacvs".into(),
        }
    }

    /// RFC 6238 Appendix B, SHA-1 rows: the 20-byte ASCII secret
    /// "12345678901234567890", 8 digits.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = OtpSecret::from_bytes(b"12345678901234567890");
        let s = settings(8, 0);
        for (t, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(&secret, &s, t), code, "T = {t}");
            assert_eq!(matching_step(&secret, &s, code.as_bytes(), t), Some(t / 30));
        }
    }

    #[test]
    fn a_code_is_accepted_once_within_the_skew_window() {
        let secret = OtpSecret::random();
        let s = settings(6, 1);
        let mut g = ReplayGuard::new(10);
        let now = Instant::now();
        let t = 1_700_000_000;
        let code = code_at(&secret, &s, t);
        assert_eq!(g.check(b"alice", &secret, &s, code.as_bytes(), t, now), OtpResult::Pass);
        assert_eq!(
            g.check(b"alice", &secret, &s, code.as_bytes(), t + 1, now),
            OtpResult::Replayed,
            "the same code again"
        );
        // One step of skew either way; two steps is out.
        let next = code_at(&secret, &s, t + 30);
        assert_eq!(g.check(b"alice", &secret, &s, next.as_bytes(), t, now), OtpResult::Pass);
        let older = code_at(&secret, &s, t - 30);
        assert_eq!(
            g.check(b"alice", &secret, &s, older.as_bytes(), t, now),
            OtpResult::Replayed,
            "an older code after a newer one"
        );
        let far = code_at(&secret, &s, t + 90);
        assert_eq!(g.check(b"bob", &secret, &s, far.as_bytes(), t, now), OtpResult::Wrong);
        assert_eq!(g.check(b"bob", &secret, &s, b"12345", t, now), OtpResult::Wrong);
        assert_eq!(g.check(b"bob", &secret, &s, b"abcdef", t, now), OtpResult::Wrong);
        // Another user with the same code is not a replay of alice's.
        let c = code_at(&secret, &s, t);
        assert_eq!(g.check(b"bob", &secret, &s, c.as_bytes(), t, now), OtpResult::Pass);
    }

    #[test]
    fn the_replay_memory_is_bounded_and_refuses_when_full_of_live_entries() {
        let secret = OtpSecret::random();
        let s = settings(6, 1);
        let mut g = ReplayGuard::new(2);
        let now = Instant::now();
        let t = 1_700_000_000;
        let c = code_at(&secret, &s, t);
        assert_eq!(g.check(b"a", &secret, &s, c.as_bytes(), t, now), OtpResult::Pass);
        assert_eq!(g.check(b"b", &secret, &s, c.as_bytes(), t, now), OtpResult::Pass);
        assert_eq!(g.check(b"c", &secret, &s, c.as_bytes(), t, now), OtpResult::Replayed);
        let later = now + Duration::from_secs(121);
        let c2 = code_at(&secret, &s, t + 121);
        assert_eq!(g.check(b"c", &secret, &s, c2.as_bytes(), t + 121, later), OtpResult::Pass);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn pap_data_splits_into_password_and_code() {
        assert_eq!(split_pap(b"pw123456", 6), Some((&b"pw"[..], &b"123456"[..])));
        assert_eq!(split_pap(b"123456", 6), None, "no password left");
        assert_eq!(split_pap(b"", 6), None);
    }

    #[test]
    fn secrets_round_trip_base32_and_never_show_in_debug() {
        let s = OtpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap();
        assert_eq!(s, OtpSecret::from_bytes(b"12345678901234567890"));
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert!(!format!("{s:?}").contains("GEZD"));
        assert!(OtpSecret::from_base32("not base32!").is_err());
        assert!(OtpSecret::from_base32("GEZDGNBV").unwrap_err().contains("80 bits"));
    }

    #[test]
    fn the_uri_names_issuer_user_and_parameters() {
        let s = settings(6, 1);
        let secret = OtpSecret::from_bytes(b"12345678901234567890");
        let u = uri(&secret, &s, "alice").unwrap();
        assert!(u.starts_with("otpauth://totp/tacvs:alice?"), "{u}");
        assert!(u.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{u}");
        assert!(u.contains("issuer=tacvs"), "{u}");
    }

    #[test]
    fn the_store_enrolls_and_reads_back() {
        let d = std::env::temp_dir().join(format!("tacvs-otp-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = d.join("otp.json");
        let mut st = OtpStore::open(&p).unwrap();
        assert!(st.is_empty());
        let secret = st.enroll("alice").unwrap();
        let again = OtpStore::open(&p).unwrap();
        assert_eq!(again.get("alice"), Some(&secret));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&p, r#"{"bob": "!!"}"#).unwrap();
        let e = OtpStore::open(&p).unwrap_err().to_string();
        assert!(e.contains("bob") && !e.contains("!!"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
