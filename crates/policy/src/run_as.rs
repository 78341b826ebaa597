//! `[server] user` and `group`: the unprivileged identity the server runs as
//! once it has bound its listeners, when started as root.
//!
//! The names are resolved when the file is compiled, so a user or group that
//! does not exist is an error at its place in the file (and `tacvs check`
//! reports it). The drop itself is done by the server (`tacvs_server::privilege`);
//! this module only says who, and warns about directories the server writes
//! after the drop (journal rotation, changed passwords) that the user does not own.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Group, User};

use crate::config::ServerSection;
use crate::error::{ConfigError, Locator};

/// Who the server runs as after binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user name, as written.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The group name (the user's primary group unless `group` is set).
    pub group: String,
    /// The gid to run with.
    pub gid: u32,
    /// Whether `group` was set: then no supplementary groups are kept, only it.
    pub group_set: bool,
}

/// Resolve `[server] user` / `group` against the system's user database.
pub fn compile(s: &ServerSection, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) -> Option<RunAs> {
    let Some(name) = &s.user else {
        if let Some(g) = &s.group {
            errs.push(loc.at(
                g.span().start,
                "group is set without user: add user = \"tacvs\" (the server changes group only \
                 together with its user)",
            ));
        }
        return None;
    };
    let user = match User::from_name(name.get_ref()) {
        Ok(Some(u)) => u,
        Ok(None) => {
            errs.push(loc.at(
                name.span().start,
                format!(
                    "user {:?} does not exist on this machine: create it (e.g. `adduser --system \
                     --group {}`; the Debian package creates tacvs) or name another",
                    name.get_ref(),
                    name.get_ref()
                ),
            ));
            return None;
        }
        Err(e) => {
            errs.push(loc.at(name.span().start, format!("cannot look up user: {e}")));
            return None;
        }
    };
    if user.uid.is_root() {
        errs.push(loc.at(
            name.span().start,
            format!(
                "user {:?} is root (uid 0): name an unprivileged user, or remove user to stay root",
                name.get_ref()
            ),
        ));
        return None;
    }
    let (group, gid, group_set) = match &s.group {
        None => {
            let g = Group::from_gid(user.gid).ok().flatten().map(|g| g.name);
            (g.unwrap_or_else(|| user.gid.to_string()), user.gid.as_raw(), false)
        }
        Some(g) => match Group::from_name(g.get_ref()) {
            Ok(Some(gr)) if gr.gid.as_raw() == 0 => {
                errs.push(loc.at(
                    g.span().start,
                    format!(
                        "group {:?} is gid 0 (root's group): name an unprivileged group",
                        gr.name
                    ),
                ));
                return None;
            }
            Ok(Some(gr)) => (gr.name, gr.gid.as_raw(), true),
            Ok(None) => {
                errs.push(loc.at(
                    g.span().start,
                    format!(
                        "group {:?} does not exist on this machine: create it (`addgroup --system \
                         {}`) or remove group to use the user's own",
                        g.get_ref(),
                        g.get_ref()
                    ),
                ));
                return None;
            }
            Err(e) => {
                errs.push(loc.at(g.span().start, format!("cannot look up group: {e}")));
                return None;
            }
        },
    };
    Some(RunAs { user: user.name, uid: user.uid.as_raw(), group, gid, group_set })
}

/// A warning for each existing directory in `dirs` (what, path) that the user
/// does not own: after the drop the server creates files there (a rotated journal, the
/// changed-password file) and would fail then, long after starting.
pub fn ownership_warnings(
    r: &RunAs,
    dirs: &[(&str, &Path)],
    loc: &Locator<'_>,
    warns: &mut Vec<ConfigError>,
) {
    // A missing one is made by the server, for the user, before it drops root.
    let why = format!(
        "the server runs as {} after binding and writes there later (journal rotation, \
         changed passwords)",
        r.user
    );
    for (what, dir) in dirs {
        owner_warning(r, what, dir, &why, loc, warns);
    }
}

/// A warning when `path` exists and `r` does not own it.
fn owner_warning(
    r: &RunAs,
    what: &str,
    path: &Path,
    why: &str,
    loc: &Locator<'_>,
    warns: &mut Vec<ConfigError>,
) {
    let problem = std::fs::metadata(path).ok().and_then(|m| ownership_problem(r, m.uid(), path));
    if let Some(p) = problem {
        warns.push(loc.whole(format!("{what} {} {p}; {why}", path.display())));
    }
}

/// A file the server reads as `r` after dropping root (the one-time password
/// secrets, at start and on every reload): a warning when it exists and is
/// someone else's.
pub fn file_ownership_warning(
    r: &RunAs,
    what: &str,
    file: &Path,
    loc: &Locator<'_>,
    warns: &mut Vec<ConfigError>,
) {
    let why = format!(
        "the server reads it as {} after dropping root (`tacvs otp enroll` run as root gives \
         it to {} itself)",
        r.user, r.user
    );
    owner_warning(r, what, file, &why, loc, warns);
}

/// Pure: what is wrong with a directory owned by `owner` for `r`, if anything.
pub fn ownership_problem(r: &RunAs, owner: u32, dir: &Path) -> Option<String> {
    (owner != r.uid).then(|| {
        format!(
            "is owned by uid {owner}, not by {} (uid {}): `chown -R {}:{} {}`",
            r.user,
            r.uid,
            r.user,
            r.group,
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nobody() -> RunAs {
        RunAs {
            user: "nobody".into(),
            uid: 65534,
            group: "nogroup".into(),
            gid: 65534,
            group_set: false,
        }
    }

    #[test]
    fn a_directory_owned_by_another_user_is_a_problem() {
        let dir = Path::new("/var/lib/tacvs");
        assert_eq!(ownership_problem(&nobody(), 65534, dir), None);
        let p = ownership_problem(&nobody(), 0, dir).unwrap();
        assert!(p.contains("uid 0") && p.contains("chown -R nobody:nogroup /var/lib/tacvs"), "{p}");
    }

    #[test]
    fn a_secrets_file_of_someone_else_is_warned_about_and_a_missing_one_is_not() {
        let f = std::env::temp_dir().join(format!("tacvs-otp-owner-{}.json", std::process::id()));
        std::fs::write(&f, "{}").unwrap();
        let mine = std::fs::metadata(&f).unwrap().uid();
        let loc = Locator::new("t.toml", "");
        let mut warns = Vec::new();
        let other = RunAs { uid: mine.wrapping_add(1), ..nobody() };
        file_ownership_warning(&other, "secrets_file", &f, &loc, &mut warns);
        assert_eq!(warns.len(), 1);
        let w = warns[0].to_string();
        assert!(w.contains(&format!("uid {mine}")) && w.contains("tacvs otp enroll"), "{w}");
        let me = RunAs { uid: mine, ..nobody() };
        file_ownership_warning(&me, "secrets_file", &f, &loc, &mut warns);
        std::fs::remove_file(&f).unwrap();
        file_ownership_warning(&other, "secrets_file", &f, &loc, &mut warns);
        assert_eq!(warns.len(), 1, "the owner, and a missing file, are no warning");
    }

    fn compile_src(src: &str) -> (Option<RunAs>, Vec<ConfigError>) {
        let file = "t.toml";
        let loc = Locator::new(file, src);
        let raw: crate::config::ServerFile = tacvs_config::from_toml(&loc).unwrap();
        let mut errs = Vec::new();
        (compile(&raw.server, &loc, &mut errs), errs)
    }

    #[test]
    fn names_resolve_or_fail_at_their_place() {
        let listen = "[[server.listen]]\naddress = \"127.0.0.1:0\"\n";
        let (r, errs) = compile_src(&format!("[server]\nuser = \"nobody\"\n{listen}"));
        assert!(errs.is_empty(), "{errs:?}");
        let r = r.unwrap();
        assert_eq!((r.uid, r.group_set), (65534, false));
        let (r, errs) =
            compile_src(&format!("[server]\nuser = \"nobody\"\ngroup = \"nogroup\"\n{listen}"));
        assert!(errs.is_empty() && r.unwrap().group_set, "{errs:?}");
        let (r, errs) = compile_src(&format!("[server]\nuser = \"no-such-user-x\"\n{listen}"));
        assert!(r.is_none());
        let e = errs[0].to_string();
        assert!(e.contains("t.toml:2:8") && e.contains("does not exist"), "{e}");
        let (_, errs) = compile_src(&format!("[server]\nuser = \"root\"\n{listen}"));
        assert!(errs[0].to_string().contains("is root"), "{:?}", errs);
        let (_, errs) = compile_src(&format!("[server]\ngroup = \"nogroup\"\n{listen}"));
        assert!(errs[0].to_string().contains("group is set without user"), "{:?}", errs);
    }
}
