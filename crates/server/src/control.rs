//! The local control socket (`[server] control_socket`): a Unix stream socket
//! on which the operator's `tacvs server lockouts | unlock | sessions` talk to
//! the running server. One request, one reply, each a JSON line of the typed
//! [`Request`] / [`Reply`] below.
//!
//! Who may connect: the socket file is created with mode 0600 whatever the
//! umask, and every connection's peer credentials (`SO_PEERCRED`) are checked:
//! only root and the user the server runs as are served ([`allowed`]).
//! Requests are bounded (4 KiB, 5 s).

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::Shared;
use crate::lockout::Entry;
use crate::logfmt::Esc;

/// What an operator asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Locked (user, device) pairs and slowed users and devices.
    Lockouts,
    /// Clear the locks and limits of a user name or a device address.
    Unlock {
        /// A user name, or an IP address.
        subject: String,
    },
    /// Open connections.
    Sessions,
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// For [`Request::Lockouts`].
    Lockouts {
        /// Locks first.
        entries: Vec<LockoutView>,
    },
    /// For [`Request::Unlock`].
    Unlocked {
        /// Entries removed (0: nothing was locked or slowed).
        removed: usize,
    },
    /// For [`Request::Sessions`].
    Sessions {
        /// Oldest first.
        sessions: Vec<SessionView>,
    },
    /// The request could not be served.
    Error {
        /// Why, for a person.
        message: String,
    },
}

/// One lock or slowed subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockoutView {
    /// `locked`; `user slowed` / `device slowed` (no attempt left until the
    /// next refill); `user failing` / `device failing` (failures counted,
    /// attempts left).
    pub state: String,
    /// The user (escaped), when the entry is about one.
    pub user: Option<String>,
    /// The device address, when the entry is about one.
    pub device: Option<IpAddr>,
    /// Seconds until the lock ends or the next attempt is allowed.
    pub seconds_left: f64,
    /// For a lock: locks of this pair in a row; for a slowed subject: attempts left.
    pub count: u32,
}

/// One open connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    /// The device's address and port (after PROXY intake).
    pub device: String,
    /// Its device group.
    pub device_group: String,
    /// The user of the last authentication on the connection, if any (escaped).
    pub user: Option<String>,
    /// When the connection was accepted (RFC 3339).
    pub since: String,
    /// `idle`, `in a session` or `working` (a check or journal write pending).
    pub state: String,
    /// Requests answered on it.
    pub requests: u64,
}

/// Whether a peer with user id `peer` may use the socket of a server running
/// as `own`: the same user, or root.
pub fn allowed(peer: u32, own: u32) -> bool {
    peer == own || peer == 0
}

/// Bind `path` (mode 0600). An existing socket file is replaced (a previous
/// run); any other file there is an error rather than deleted.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let err = |e: io::Error, what: &str| {
        io::Error::new(e.kind(), format!("control socket {}: {what}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e, "cannot create its directory"))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| err(e, "cannot replace the old socket"))?
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "control socket {}: a file that is not a socket is in the way; move it",
                    path.display()
                ),
            ));
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path).map_err(|e| err(e, "cannot bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(e, "cannot set mode 0600"))?;
    Ok(l)
}

/// Serve the socket until the task is dropped.
pub(crate) async fn run(shared: Arc<Shared>, listener: UnixListener, path: PathBuf) {
    // The user we run as owns the file we just created.
    let own = std::fs::metadata(&path).map(|m| m.uid()).unwrap_or(0);
    while let Ok((stream, _)) = listener.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(&shared, stream, own).await {
                tracing::debug!(error = %e, "control connection ended");
            }
        });
    }
}

async fn serve(shared: &Shared, mut s: UnixStream, own: u32) -> io::Result<()> {
    let peer = s.peer_cred()?;
    if !allowed(peer.uid(), own) {
        tracing::warn!(
            uid = peer.uid(),
            pid = peer.pid().unwrap_or(0),
            "control socket: connection from another user refused"
        );
        let reply =
            Reply::Error { message: "not allowed: run as root or as the server's user".into() };
        return write_reply(&mut s, &reply).await;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let reply = match serde_json::from_slice::<Request>(line) {
        Ok(r) => answer(shared, r),
        Err(e) => Reply::Error { message: format!("not a control request: {e}") },
    };
    write_reply(&mut s, &reply).await
}

async fn write_reply(s: &mut UnixStream, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line).await
}

/// The reply to `r` (pure but for reading the server's state).
pub(crate) fn answer(shared: &Shared, r: Request) -> Reply {
    let now = Instant::now();
    match r {
        Request::Lockouts => {
            let entries = shared.lockout().list(now).into_iter().map(view).collect();
            Reply::Lockouts { entries }
        }
        Request::Unlock { subject } => {
            let removed = match subject.parse::<IpAddr>() {
                Ok(ip) => shared.lockout().unlock_source(crate::canonical_ip(ip)),
                Err(_) => shared.lockout().unlock_user(subject.as_bytes()),
            };
            tracing::info!(subject = %Esc(subject.as_bytes()), removed, "unlocked by an operator");
            metrics::counter!("tacvs_lockout_unlocks_total").increment(1);
            Reply::Unlocked { removed }
        }
        Request::Sessions => Reply::Sessions { sessions: shared.sessions.list() },
    }
}

fn view(e: Entry) -> LockoutView {
    let user = |u: &[u8]| Some(Esc(u).to_string());
    match e {
        Entry::Locked { user: u, source, remaining, count } => LockoutView {
            state: "locked".into(),
            user: user(&u),
            device: Some(source),
            seconds_left: remaining.as_secs_f64(),
            count,
        },
        Entry::UserSlowed { user: u, left, next } => LockoutView {
            state: if left == 0 { "user slowed" } else { "user failing" }.into(),
            user: user(&u),
            device: None,
            seconds_left: next.as_secs_f64(),
            count: left,
        },
        Entry::SourceSlowed { source, left, next } => LockoutView {
            state: if left == 0 { "device slowed" } else { "device failing" }.into(),
            user: None,
            device: Some(source),
            seconds_left: next.as_secs_f64(),
            count: left,
        },
    }
}

/// Send one request to the server at `socket` and return its reply.
pub async fn request(socket: &Path, r: &Request) -> io::Result<Reply> {
    let mut s = UnixStream::connect(socket).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the server's control socket {}: {e} (is the server running with \
                    this [server] control_socket? are you root or its user?)",
                socket.display()
            ),
        )
    })?;
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .map_err(|_| io::Error::other("the control socket did not answer within 5 s"))??;
    serde_json::from_slice(&out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_user_and_root_are_allowed() {
        assert!(allowed(1000, 1000));
        assert!(allowed(0, 1000));
        assert!(!allowed(65534, 1000));
        assert!(!allowed(1001, 0));
    }

    #[test]
    fn requests_and_replies_are_json_lines_with_a_tag() {
        let r = Request::Unlock { subject: "bob".into() };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"request":"unlock","subject":"bob"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        let reply: Reply = serde_json::from_str(r#"{"reply":"unlocked","removed":2}"#).unwrap();
        assert_eq!(reply, Reply::Unlocked { removed: 2 });
    }
}
