//! Replacing a file atomically and durably: how splitdns writes every file that another program, or
//! splitdns after a crash, reads back — `links.json`, the whitelist, and the system files and records
//! of `system-dns`.
//!
//! A temporary file in the target's own directory (so the rename never crosses file systems) is
//! written, given its owner and mode, fsynced, renamed over the target, and then the directory is
//! fsynced so that the rename itself survives a crash. A reader sees the old file or the new one,
//! never part of either; the mode and owner are in place before the name is, so the file is never
//! visible with the wrong ones. A failed write removes its temporary file.
//!
//! What differs between callers is theirs to choose ([`Options`]): the temporary file's name, the
//! mode and owner, and (from the [`Step`] in an [`Error`]) whether a failure after the rename
//! matters. The target is replaced as named: a caller that wants to write through a symbolic
//! link resolves it first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::perms::parent_dir;

/// Where the bytes go before the rename.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Temp<'a> {
    /// A new file with a random name (`<prefix>XXXXXX<suffix>`), so that two writers never share
    /// one.
    Unique { prefix: &'a str, suffix: &'a str },
    /// This path, next to the target: replaced if it exists, so a crash leaves at most this one
    /// file behind, where its owner knows to look for it.
    Fixed(&'a Path),
}

/// How to write: the temporary file, and what the new file gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options<'a> {
    pub temp: Temp<'a>,
    /// The new file's permission bits; None keeps the temporary file's 0600.
    pub mode: Option<u32>,
    /// The new file's (uid, gid); None keeps the writer's. Changed only when different, so an
    /// unprivileged writer keeping its own file needs no privilege.
    pub owner: Option<(u32, u32)>,
}

/// The step of [`replace`] that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    CreateTemp,
    Write,
    Inspect,
    Chown {
        uid: u32,
        gid: u32,
    },
    SetMode,
    Sync,
    /// The rename over the target.
    Rename,
    /// After the rename: the target already holds the new bytes, but the rename may not survive
    /// a crash.
    SyncDir,
}

impl std::fmt::Display for Step {
    /// The action, to be followed by the path it acted on.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::CreateTemp => f.write_str("create a temporary file in"),
            Step::Write => f.write_str("write"),
            Step::Inspect => f.write_str("inspect"),
            Step::Chown { uid, gid } => write!(f, "keep the owner (uid {uid}, gid {gid}) of"),
            Step::SetMode => f.write_str("set the mode of"),
            Step::Sync => f.write_str("sync"),
            Step::Rename => f.write_str("replace"),
            Step::SyncDir => f.write_str("sync the directory"),
        }
    }
}

/// Why [`replace`] failed: the step, the path it acted on (the directory for
/// [`Step::CreateTemp`] and [`Step::SyncDir`], the target for [`Step::Chown`] and
/// [`Step::Rename`], else the temporary file), and the system's error.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", path.display())]
pub(crate) struct Error {
    pub step: Step,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Replaces `path` with `bytes` atomically and durably (see the module docs).
pub(crate) fn replace(path: &Path, bytes: &[u8], options: &Options<'_>) -> Result<(), Error> {
    let dir = parent_dir(path);
    match options.temp {
        Temp::Unique { prefix, suffix } => {
            let mut tmp = tempfile::Builder::new()
                .prefix(prefix)
                .suffix(suffix)
                .tempfile_in(dir)
                .map_err(failed(Step::CreateTemp, dir))?;
            let tmp_path = tmp.path().to_path_buf();
            prepare(tmp.as_file_mut(), &tmp_path, path, bytes, options)?;
            // On an error the temporary file is dropped, and so removed.
            tmp.persist(path).map_err(|e| failed(Step::Rename, path)(e.error))?;
        }
        Temp::Fixed(tmp) => {
            let result = (|| -> Result<(), Error> {
                let _ = fs::remove_file(tmp);
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(tmp)
                    .map_err(failed(Step::CreateTemp, dir))?;
                prepare(&mut f, tmp, path, bytes, options)?;
                fs::rename(tmp, path).map_err(failed(Step::Rename, path))
            })();
            if result.is_err() {
                let _ = fs::remove_file(tmp);
            }
            result?;
        }
    }
    sync_dir(dir).map_err(failed(Step::SyncDir, dir))
}

/// Everything before the rename: the bytes, the owner, the mode, fsync.
fn prepare(f: &mut File, tmp: &Path, target: &Path, bytes: &[u8], options: &Options<'_>) -> Result<(), Error> {
    f.write_all(bytes).map_err(failed(Step::Write, tmp))?;
    if let Some((uid, gid)) = options.owner {
        let mine = f.metadata().map_err(failed(Step::Inspect, tmp))?;
        if (mine.uid(), mine.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&*f, Some(uid), Some(gid)).map_err(failed(Step::Chown { uid, gid }, target))?;
        }
    }
    if let Some(mode) = options.mode {
        f.set_permissions(fs::Permissions::from_mode(mode)).map_err(failed(Step::SetMode, tmp))?;
    }
    f.sync_all().map_err(failed(Step::Sync, tmp))
}

/// For `map_err`: the error of `step` at `path`.
fn failed(step: Step, path: &Path) -> impl FnOnce(io::Error) -> Error {
    move |source| Error { step, path: path.to_path_buf(), source }
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn replaces_with_the_mode_asked_for_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        fs::write(&target, "old").unwrap();
        let unique = Options { temp: Temp::Unique { prefix: ".f.", suffix: ".tmp" }, mode: Some(0o640), owner: None };
        replace(&target, b"new", &unique).unwrap();
        assert_eq!((fs::read(&target).unwrap(), mode_of(&target)), (b"new".to_vec(), 0o640));
        let fixed_tmp = dir.path().join(".f.new");
        fs::write(&fixed_tmp, "left over from a crash").unwrap();
        let fixed = Options { temp: Temp::Fixed(&fixed_tmp), mode: None, owner: None };
        replace(&target, b"newer", &fixed).unwrap();
        assert_eq!((fs::read(&target).unwrap(), mode_of(&target)), (b"newer".to_vec(), 0o600));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn a_failed_write_names_its_step_and_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("d");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), "").unwrap();
        let fixed_tmp = dir.path().join(".d.new");
        let e =
            replace(&target, b"new", &Options { temp: Temp::Fixed(&fixed_tmp), mode: None, owner: None }).unwrap_err();
        assert_eq!((e.step, e.path.as_path()), (Step::Rename, target.as_path()), "{e}");
        assert!(e.to_string().starts_with(&format!("cannot replace {}: ", target.display())), "{e}");
        assert!(!fixed_tmp.exists(), "the temporary file is removed");
        let e = replace(
            &dir.path().join("none/f"),
            b"",
            &Options { temp: Temp::Unique { prefix: ".", suffix: "" }, mode: None, owner: None },
        )
        .unwrap_err();
        assert_eq!(e.step, Step::CreateTemp, "{e}");
    }
}
