//! Running without root: `[server] user` (and `group`).
//!
//! Contract: started as root with `user` set, the server binds every listener
//! and opens the journal, the password store and the control socket, then
//! [`drop_to`] the user — supplementary groups (the user's, or only `group`
//! when it is set), then the gid, then the uid, in that order — and checks the
//! result (real and effective ids are the user's, and `setuid(0)` fails)
//! before the first connection is accepted. A failed drop stops the start.
//!
//! Started as that user already (a service manager's `User=`, with
//! CAP_NET_BIND_SERVICE for ports below 1024) there is nothing to do. Started
//! as any other unprivileged user it is an error: the server cannot become
//! the user the file asks for, and running as someone else is not what the
//! operator wrote ([`plan`]).
//!
//! After the drop the process cannot bind ports below 1024 again: a reload
//! that adds such a listener is refused with the reason
//! ([`crate::listeners::bind_error`] reads [`dropped_to`]).
//!
//! glibc's `setuid`/`setgid`/`setgroups` apply to every thread of the
//! process, so threads started before the drop (the journal writer, hash
//! workers, tokio workers) run as the user too.

use std::ffi::CString;
use std::io;
use std::sync::OnceLock;

use nix::unistd::{self, Gid, Uid};
use tacvs_policy::run_as::RunAs;

static DROPPED: OnceLock<String> = OnceLock::new();

/// The user this process dropped to, if it did.
pub fn dropped_to() -> Option<&'static str> {
    DROPPED.get().map(String::as_str)
}

/// What to do about `[server] user`, from who the process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No `user`: run as started.
    Stay,
    /// Root: drop to the user once bound.
    Drop,
    /// Already the configured user: nothing to do.
    AlreadyThere,
    /// Another unprivileged user: refuse to start (the message says why).
    Refuse(String),
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    unistd::geteuid().is_root()
}

/// Pure: the plan for a process with effective uid `euid`.
pub fn plan(run_as: Option<&RunAs>, euid: u32) -> Plan {
    match run_as {
        None => Plan::Stay,
        Some(_) if euid == 0 => Plan::Drop,
        Some(r) if r.uid == euid => Plan::AlreadyThere,
        Some(r) => Plan::Refuse(format!(
            "[server] user = {:?} is set, but the server was started as uid {euid}, which is \
             neither root nor {}: it cannot switch users. Start it as root (it binds, then runs \
             as {}), or as {} itself (with CAP_NET_BIND_SERVICE for ports below 1024), or \
             remove user from the configuration",
            r.user, r.user, r.user, r.user
        )),
    }
}

/// Before dropping: make each missing directory of `dirs` (the journal's, the
/// password store's) and give it to the user, who writes there later
/// (rotation, changed passwords). Existing ones are left as they are (the
/// configuration check warns when the user does not own them).
pub fn prepare_dirs(r: &RunAs, dirs: &[&std::path::Path]) -> io::Result<()> {
    for d in dirs {
        if d.as_os_str().is_empty() || d.exists() {
            continue;
        }
        std::fs::create_dir_all(d)
            .and_then(|()| std::os::unix::fs::chown(d, Some(r.uid), Some(r.gid)))
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot make {} for {}: {e}", d.display(), r.user))
            })?;
        tracing::info!(directory = %d.display(), user = %r.user, "made the directory for the user the server runs as");
    }
    Ok(())
}

/// Drop root for `r`: groups, gid, uid, in that order, then verify.
pub fn drop_to(r: &RunAs) -> io::Result<()> {
    let gid = Gid::from_raw(r.gid);
    let uid = Uid::from_raw(r.uid);
    let groups = if r.group_set {
        vec![gid]
    } else {
        let name = CString::new(r.user.as_str())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name has a NUL"))?;
        unistd::getgrouplist(&name, gid).map_err(|e| fail("read the user's groups", e))?
    };
    unistd::setgroups(&groups).map_err(|e| fail("set the supplementary groups", e))?;
    unistd::setgid(gid).map_err(|e| fail("set the group id", e))?;
    unistd::setuid(uid).map_err(|e| fail("set the user id", e))?;
    verify(r)?;
    let _ = DROPPED.set(r.user.clone());
    let names: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    tracing::info!(
        user = %r.user,
        uid = r.uid,
        group = %r.group,
        gid = r.gid,
        groups = %names.join(","),
        "dropped root: listeners bound; the stores, the journal and the logs are opened next, as this user"
    );
    Ok(())
}

/// The ids are the user's and root cannot be regained.
fn verify(r: &RunAs) -> io::Result<()> {
    let ids = (unistd::getuid(), unistd::geteuid(), unistd::getgid(), unistd::getegid());
    if ids.0.as_raw() != r.uid
        || ids.1.as_raw() != r.uid
        || ids.2.as_raw() != r.gid
        || ids.3.as_raw() != r.gid
    {
        return Err(io::Error::other(format!(
            "dropping root did not take: uid {} euid {} gid {} egid {}; refusing to serve",
            ids.0, ids.1, ids.2, ids.3
        )));
    }
    if unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(io::Error::other(
            "dropping root did not take: setuid(0) still succeeds; refusing to serve",
        ));
    }
    Ok(())
}

fn fail(what: &str, e: nix::Error) -> io::Error {
    io::Error::other(format!("cannot drop root: could not {what}: {e}; refusing to serve"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tacvs() -> RunAs {
        RunAs { user: "tacvs".into(), uid: 999, group: "tacvs".into(), gid: 999, group_set: false }
    }

    #[test]
    fn root_drops_the_user_stays_anyone_else_is_refused() {
        assert_eq!(plan(None, 0), Plan::Stay);
        assert_eq!(plan(None, 1000), Plan::Stay);
        assert_eq!(plan(Some(&tacvs()), 0), Plan::Drop);
        assert_eq!(plan(Some(&tacvs()), 999), Plan::AlreadyThere);
        let Plan::Refuse(m) = plan(Some(&tacvs()), 1000) else { panic!() };
        assert!(m.contains("uid 1000") && m.contains("Start it as root"), "{m}");
    }
}
