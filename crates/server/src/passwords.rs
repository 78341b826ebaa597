//! Passwords users changed with TACACS+ CHPASS: a JSON object of user → hash,
//! written atomically (temporary file, fsync, rename, fsync of the directory),
//! loaded at start-up. A hash here overrides the configuration file's for that
//! user; delete the entry to go back to the file's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tacvs_policy::PasswordHash;

/// Why a store file (this one, or the one-time secrets of [`crate::otp`])
/// could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is there but cannot be read (permissions, not a file, too large).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The store's path.
        path: String,
        /// What the OS (or the size check) said; in the message, so not
        /// also a `source()` (a `{:#}` chain would print it twice).
        source: std::io::Error,
    },
    /// Not what the store holds (a JSON object of user → hash or secret);
    /// the message names the file and the user, never a value.
    #[error("{0}")]
    Malformed(String),
}

/// A store larger than this is refused rather than read into memory (a
/// hundred thousand users take about 12 MiB).
pub const MAX_STORE_BYTES: u64 = 64 << 20;

/// The store: user → (hash text as written, parsed hash).
#[derive(Debug)]
pub struct PasswordStore {
    path: PathBuf,
    map: Mutex<BTreeMap<String, (String, PasswordHash)>>,
}

impl PasswordStore {
    /// Load `path` (absent = empty). A malformed file is an error naming it;
    /// anything but a regular file of at most 64 MiB is refused unread.
    pub fn open(path: &Path) -> Result<PasswordStore, StoreError> {
        let mut map = BTreeMap::new();
        for (u, h) in read_user_map(path, "password hash")? {
            let parsed = PasswordHash::parse(&h).map_err(|e| {
                StoreError::Malformed(format!("{}: user {u:?}: {e}", path.display()))
            })?;
            map.insert(u, (h, parsed));
        }
        Ok(PasswordStore { path: path.to_owned(), map: Mutex::new(map) })
    }

    /// The changed password of `user`, if any.
    pub fn get(&self, user: &str) -> Option<PasswordHash> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(user).map(|(_, h)| h.clone())
    }

    /// Record a new hash for `user` and persist the whole store before it takes
    /// effect (blocking I/O: call it off the async threads).
    pub fn set(&self, user: &str, hash_text: String) -> Result<(), String> {
        let parsed = PasswordHash::parse(&hash_text)?;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut texts: BTreeMap<&str, &str> =
            map.iter().map(|(u, (t, _))| (u.as_str(), t.as_str())).collect();
        texts.insert(user, &hash_text);
        let body = serde_json::to_vec_pretty(&texts).map_err(|e| e.to_string())?;
        self.write(&body)?;
        map.insert(user.to_owned(), (hash_text, parsed));
        Ok(())
    }

    fn write(&self, body: &[u8]) -> Result<(), String> {
        write_atomically(&self.path, body, 0o600, None)
    }
}

/// A store file's JSON object of user → `value` text (a hash, a secret);
/// empty when the file does not exist.
pub(crate) fn read_user_map(
    path: &Path,
    value: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let text = match read_bounded(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(StoreError::Read { path: path.display().to_string(), source }),
    };
    // Line and column only: serde's message can quote a value.
    serde_json::from_str(&text).map_err(|e| {
        StoreError::Malformed(format!(
            "{}: not a JSON object of user to {value} (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// The text of `path` if it is a regular file of at most [`MAX_STORE_BYTES`].
/// Opened without blocking (a FIFO's open would wait for a writer) and
/// checked on the open file (`/dev/zero` would never end).
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_STORE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_STORE_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_STORE_BYTES >> 20),
        ));
    }
    String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Replace `path` with `body`: a temporary file (created with `mode`, given
/// to `owner` (uid, gid) when set), fsync, rename, fsync of the directory.
/// Blocking I/O.
pub(crate) fn write_atomically(
    path: &Path,
    body: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(&tmp);
        let mut f =
            std::fs::OpenOptions::new().create_new(true).write(true).mode(mode).open(&tmp)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tacvs-pwstore-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_stored_password_is_read_back_by_a_new_store() {
        let d = dir("persist");
        let p = d.join("passwords.json");
        let s = PasswordStore::open(&p).unwrap();
        assert!(s.get("alice").is_none(), "absent file: empty store");
        let h =
            PasswordHash::create(tacvs_policy::HashAlgorithm::Sha256Crypt, b"new-secret").unwrap();
        s.set("alice", h).unwrap();
        assert!(s.get("alice").unwrap().verify(b"new-secret"));
        let again = PasswordStore::open(&p).unwrap();
        assert!(again.get("alice").unwrap().verify(b"new-secret"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_store_holding_a_clear_password_is_refused_naming_the_user() {
        let d = dir("clear");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("passwords.json");
        std::fs::write(&p, "{\"bob\": \"plain\"}").unwrap();
        let e = PasswordStore::open(&p).unwrap_err().to_string();
        assert!(e.contains("bob") && !e.contains("plain"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_store_that_is_not_a_regular_file_is_refused_unread() {
        let d = dir("fifo");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("passwords.json");
        assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
        // Opening a FIFO with no writer would block: refused before that.
        let e = PasswordStore::open(&p).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
