//! Ownership and mode checks for the files the daemon trusts: the trust-anchor whitelist and the
//! saved link table (`links.json`).
//!
//! Each of them decides what the daemon believes: the whitelist which VPN trust anchors are used,
//! the state file where split names are sent after a restart. A file that anyone but root or the
//! daemon's own user can change would be a side door around the human approval of the whitelist
//! and around the control socket's peer check (SO_PEERCRED). So, like sshd's StrictModes, [`check`]
//! refuses a file, or a directory holding it (whoever can write the directory can swap the file),
//! that is owned by another user or writable by its group or others, and the error says exactly
//! which command fixes it. One check serves both files, so they cannot drift apart.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Whom the suggested `chown` makes the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FixOwner {
    /// Root: people edit the file, the daemon only reads it (the whitelist).
    Root,
    /// The daemon's user: the daemon writes the file (the state directory).
    Daemon,
}

/// A kind of file the daemon trusts, for the messages about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Guarded {
    /// The file, as a message names it: "the whitelist".
    pub file: &'static str,
    /// Its directory: "the whitelist's directory".
    pub dir: &'static str,
    /// What a stranger who could write it could do: "change which anchors are trusted".
    pub stakes: &'static str,
    pub owner: FixOwner,
}

/// The trust-anchor whitelist.
pub(crate) const WHITELIST: Guarded = Guarded {
    file: "the whitelist",
    dir: "the whitelist's directory",
    stakes: "change which anchors are trusted",
    owner: FixOwner::Root,
};

/// The saved link table and the state directory it lives in.
pub(crate) const STATE: Guarded = Guarded {
    file: "the state file",
    dir: "the state directory",
    stakes: "change where names are sent",
    owner: FixOwner::Daemon,
};

/// Why a file the daemon trusts was refused, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum PermError {
    #[error("{what} {} {problem}, so someone other than root or the daemon's user could {stakes}: fix it with `{fix}`", path.display())]
    Unsafe { what: &'static str, path: PathBuf, problem: String, fix: String, stakes: &'static str },
    #[error("cannot check {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Quotes a path for a shell command shown to the user.
pub(crate) fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@=~".contains(&b)) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `name (uid N)` when the user has a name here, else `uid N`.
fn user(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) if uid != 0 => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// What is wrong with a file owned by `owner` when only root or `daemon_uid` may own it.
fn owner_problem(owner: u32, daemon_uid: u32) -> String {
    if daemon_uid == 0 {
        format!("is owned by uid {owner}, which is not root")
    } else {
        format!("is owned by uid {owner}, which is neither root nor the daemon's user ({})", user(daemon_uid))
    }
}

/// Checks one file or directory: owned by root or `daemon_uid`, not writable by group or others.
fn check_one(
    path: &Path,
    meta: &Metadata,
    daemon_uid: u32,
    what: &'static str,
    kind: &Guarded,
) -> Result<(), PermError> {
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let quoted = shell_quote(path);
    let owner = meta.uid();
    if owner != 0 && owner != daemon_uid {
        problems.push(owner_problem(owner, daemon_uid));
        let to = match kind.owner {
            FixOwner::Root => "root".to_string(),
            FixOwner::Daemon => match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(daemon_uid)) {
                Ok(Some(u)) => u.name,
                _ => daemon_uid.to_string(),
            },
        };
        fixes.push(format!("chown {to} {quoted}"));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 {
        let by = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and everyone",
            (true, false) => "its group",
            _ => "everyone",
        };
        problems.push(format!("is writable by {by} (mode {:04o})", mode & 0o7777));
        fixes.push(format!("chmod go-w {quoted}"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(PermError::Unsafe {
        what,
        path: path.to_path_buf(),
        problem: problems.join(" and "),
        fix: fixes.join(" && "),
        stakes: kind.stakes,
    })
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Refuses a directory (following a symbolic link) anyone but root or `daemon_uid` could change.
pub(crate) fn check_dir(dir: &Path, daemon_uid: u32, kind: &Guarded) -> Result<(), PermError> {
    let meta = fs::metadata(dir).map_err(|source| PermError::Io { what: kind.dir, path: dir.to_path_buf(), source })?;
    check_one(dir, &meta, daemon_uid, kind.dir, kind)
}

/// Refuses a file anyone but root or the daemon's user could change, like sshd's StrictModes: the
/// file (following a symbolic link) and its directory (and the link's directory) must be owned by
/// root or `daemon_uid` and not be writable by group or others. A missing file passes (its
/// directory is not looked at: use [`check_dir`] before creating one).
pub(crate) fn check(path: &Path, daemon_uid: u32, kind: &Guarded) -> Result<(), PermError> {
    let io = |path: &Path, source| PermError::Io { what: kind.file, path: path.to_path_buf(), source };
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path, e)),
    };
    let mut dirs = vec![parent_dir(path).to_path_buf()];
    let meta = if link.file_type().is_symlink() {
        match fs::metadata(path) {
            Ok(m) => {
                let target = fs::canonicalize(path).map_err(|e| io(path, e))?;
                dirs.push(parent_dir(&target).to_path_buf());
                m
            }
            // A dangling link reads as a missing file; its directory still matters.
            Err(e) if e.kind() == io::ErrorKind::NotFound => link,
            Err(e) => return Err(io(path, e)),
        }
    } else {
        link
    };
    if !meta.file_type().is_symlink() {
        check_one(path, &meta, daemon_uid, kind.file, kind)?;
    }
    for dir in dirs {
        check_dir(&dir, daemon_uid, kind)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_problem_reads_right_for_each_daemon_user() {
        // A root daemon: only root may own the file.
        assert_eq!(owner_problem(1001, 0), "is owned by uid 1001, which is not root");
        // Another daemon user: root or that user.
        let msg = owner_problem(1001, 4242);
        assert_eq!(msg, "is owned by uid 1001, which is neither root nor the daemon's user (uid 4242)");
        assert!(!msg.contains("neither root,") && !msg.ends_with("neither root"), "{msg}");
    }

    #[test]
    fn shell_quoting_of_paths_in_fixes() {
        assert_eq!(shell_quote(Path::new("/etc/splitdns/whitelist")), "/etc/splitdns/whitelist");
        assert_eq!(shell_quote(Path::new("/tmp/my list")), "'/tmp/my list'");
        assert_eq!(shell_quote(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
    }

    #[test]
    fn the_state_kind_names_the_state_file_and_its_stakes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("links.json");
        fs::write(&file, "{}").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let e = check(&file, uid, &STATE).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("the state file {} is writable by its group and everyone", file.display())),
            "{e}"
        );
        assert!(e.contains("could change where names are sent"), "{e}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        check(&file, uid, &STATE).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir(dir.path(), uid, &STATE).unwrap_err().to_string();
        assert!(
            e.starts_with("the state directory ") && e.ends_with(&format!("`chmod go-w {}`", dir.path().display()))
        );
    }
}
