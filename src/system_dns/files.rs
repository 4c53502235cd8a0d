//! What is at a system path, and changing one durably. Every step of `enable` and `disable` goes
//! through these, so a crash leaves each file either as it was or as intended, and the one thing a
//! crash can leave behind (a fixed-name temporary file next to the file being written) is known to
//! `status` and removed by `disable`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::atomic_file;

const TMP_SUFFIX: &str = ".splitdns-new";

/// What is at a path, without following a final symbolic link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Absent,
    File {
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink(PathBuf),
    /// A directory or something else splitdns will not replace.
    Other,
}

/// Inspects `path` (a host path).
pub fn inspect(path: &Path) -> io::Result<Current> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Current::Absent),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        Ok(Current::Symlink(fs::read_link(path)?))
    } else if meta.is_file() {
        Ok(Current::File { bytes: fs::read(path)?, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() })
    } else {
        Ok(Current::Other)
    }
}

/// Writes `bytes` to the host path `path` atomically: a fixed-name temporary file next to it
/// (removed by `disable` if a crash leaves it), `mode` and `owner`, fsync, rename, fsync the directory.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    let tmp = tmp_path(path);
    let options = atomic_file::Options { temp: atomic_file::Temp::Fixed(&tmp), mode: Some(mode), owner };
    atomic_file::replace(path, bytes, &options)
        .map_err(|e| e.source)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The temporary file [`write_atomic`] writes first: hidden, with a fixed name, so that `status`
/// can report one a crash left and `disable` removes it.
pub(super) fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}{TMP_SUFFIX}"))
}

/// Makes a rename or removal of `path` durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    atomic_file::sync_dir(path.parent().unwrap_or(Path::new("/")))
}

pub(super) fn replace_with_symlink(path: &Path, target: &Path) -> anyhow::Result<()> {
    let tmp = tmp_path(path);
    (|| -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp)?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })()
    .with_context(|| format!("cannot restore the symbolic link {} → {}", path.display(), target.display()))
}

pub(super) fn remove(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path).with_context(|| format!("cannot sync the directory of {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}
