//! Who may use the control socket. The socket's mode is set explicitly (it
//! does not follow the umask): 0600, or 0660 with `control_socket_group`.
//! Each connection's peer credentials (SO_PEERCRED) are checked as well, so a
//! socket made world-writable by mistake still refuses other users: root, the
//! director's own user, and members of the configured group are allowed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Who may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    /// The director's user (the socket's owner).
    owner: u32,
    /// The configured group, if any.
    group: Option<u32>,
}

impl Access {
    /// Set the socket's mode (and group) and remember who may use it.
    pub fn secure(path: &Path, group: Option<u32>) -> std::io::Result<Access> {
        if let Some(gid) = group {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(Access { owner: std::fs::metadata(path)?.uid(), group })
    }

    /// Whether a peer (its uid, gid and pid from SO_PEERCRED) may send
    /// requests; `groups` gives a process's supplementary groups.
    pub fn allows(
        &self,
        uid: u32,
        gid: u32,
        pid: Option<i32>,
        groups: impl FnOnce(i32) -> Vec<u32>,
    ) -> bool {
        if uid == 0 || uid == self.owner {
            return true;
        }
        match self.group {
            Some(g) if gid == g => true,
            Some(g) => pid.is_some_and(|pid| groups(pid).contains(&g)),
            None => false,
        }
    }
}

/// A process's supplementary groups, from `/proc/PID/status`.
pub(crate) fn proc_groups(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// A group by number or by name (from `/etc/group`).
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_the_owner_and_the_group_are_allowed_nobody_else() {
        let only_owner = Access { owner: 1000, group: None };
        let none = |_| Vec::new();
        assert!(only_owner.allows(0, 0, None, none));
        assert!(only_owner.allows(1000, 1000, None, none));
        assert!(!only_owner.allows(65534, 65534, Some(7), |_| vec![4242]));
        let group = Access { owner: 1000, group: Some(4242) };
        assert!(group.allows(2000, 4242, None, none), "primary group");
        assert!(group.allows(2000, 2000, Some(7), |pid| if pid == 7 {
            vec![4242]
        } else {
            vec![]
        }));
        assert!(!group.allows(2000, 2000, Some(7), |_| vec![1, 2]));
        assert!(!group.allows(2000, 2000, None, |_| vec![4242]), "no pid, no supplementary check");
    }

    #[test]
    fn groups_resolve_by_number_and_name() {
        assert_eq!(group_id("4242"), Some(4242));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-tacvs"), None);
        let own = proc_groups(std::process::id() as i32);
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
        assert_eq!(own.len(), line.split_whitespace().count() - 1);
    }
}
