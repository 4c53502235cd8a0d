//! `disable`: what `enable` changed put back from the manifest, in reverse order, a file someone
//! else rewrote since left alone unless forced. Safe to run again after a crash at any point.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::files::{Current, inspect, remove, replace_with_symlink, tmp_path, write_atomic};
use super::manifest::{Before, Entry, read_manifest, read_trusted};
use super::network_manager::NM_CONF_DROPIN;
use super::resolv_conf::RESOLV_CONF;
use super::{MARKER, Mode, Root, UPSTREAM_FILE};

/// What happened to one file at `disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Restored,
    /// It was never changed (enable was interrupted before writing it), or was restored already.
    Unchanged,
    /// Someone else rewrote it since `enable`: left alone (the saved original is kept).
    LeftChanged,
}

impl Outcome {
    pub(super) fn note(self, e: &Entry) -> Option<String> {
        (self == Outcome::LeftChanged).then(|| {
            format!(
                "{} was changed by someone else since `system-dns enable`: left as it is (use --force to restore the original anyway)",
                e.path.display()
            )
        })
    }
}

pub(super) fn is_original(root: &Root, e: &Entry, cur: &Current) -> anyhow::Result<bool> {
    Ok(match (&e.before, cur) {
        (Before::Absent, Current::Absent) => true,
        (Before::Symlink { target }, Current::Symlink(t)) => t == target,
        (Before::File { backup, mode, uid, gid, .. }, Current::File { bytes, mode: m, uid: u, gid: g }) => {
            (mode, uid, gid) == (m, u, g)
                && read_trusted(root, &root.state_dir().join(backup)).ok().as_deref() == Some(bytes)
        }
        _ => false,
    })
}

pub(super) fn restore_entry(root: &Root, e: &Entry, force: bool) -> anyhow::Result<Outcome> {
    let host = root.path(&e.path);
    let _ = fs::remove_file(tmp_path(&host));
    let cur = inspect(&host).with_context(|| format!("cannot inspect {}", host.display()))?;
    if is_original(root, e, &cur)? {
        return Ok(Outcome::Unchanged);
    }
    let ours = matches!(&cur, Current::File { bytes, .. } if bytes == e.written.as_bytes());
    if !(ours || cur == Current::Absent || force) {
        return Ok(Outcome::LeftChanged);
    }
    match &e.before {
        Before::Absent => remove(&host)?,
        Before::Symlink { target } => replace_with_symlink(&host, target)?,
        Before::File { backup, len, mode, uid, gid } => {
            let saved = root.state_dir().join(backup);
            let bytes = read_trusted(root, &saved).with_context(|| {
                format!("the saved original of {} ({}) cannot be read", e.path.display(), saved.display())
            })?;
            if bytes.len() as u64 != *len {
                bail!(
                    "the saved original {} is {} bytes, not {len}: not restoring from it",
                    saved.display(),
                    bytes.len()
                );
            }
            write_atomic(&host, &bytes, *mode, Some((*uid, *gid)))?;
        }
    }
    Ok(Outcome::Restored)
}

/// What `disable` did.
#[derive(Debug, Clone)]
pub struct Disabled {
    /// None: nothing was enabled.
    pub mode: Option<Mode>,
    pub files: Vec<(PathBuf, Outcome)>,
    /// Saved originals kept because their file was left alone.
    pub kept: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// Restores what `enable` changed, from the manifest; safe to run again after a crash at any point
/// (of `enable` or of `disable`), and a no-op when nothing is enabled.
pub fn disable(root: &Root, force: bool) -> anyhow::Result<Disabled> {
    let Some(m) = read_manifest(root)? else {
        return Ok(Disabled { mode: None, files: vec![], kept: vec![], notes: stray_marker(root) });
    };
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    // In reverse: resolv.conf is back before NetworkManager's drop-in goes, so a crash in between
    // leaves NetworkManager still off a file that is the original again.
    for e in m.entries.iter().rev() {
        let outcome = restore_entry(root, e, force)?;
        notes.extend(outcome.note(e));
        if let (Outcome::LeftChanged, Before::File { backup, .. }) = (outcome, &e.before) {
            kept.push(root.state_dir().join(backup));
        }
        files.push((e.path.clone(), outcome));
    }
    remove(&root.path(UPSTREAM_FILE))?;
    for d in &m.created_dirs {
        let _ = fs::remove_dir(root.path(d)); // only if empty
    }
    for e in &m.entries {
        if let Before::File { backup, .. } = &e.before {
            let p = root.state_dir().join(backup);
            if !kept.contains(&p) {
                remove(&p)?;
            }
        }
    }
    remove(&root.manifest_path())?;
    let _ = fs::remove_dir(root.state_dir());
    for k in &kept {
        notes.push(format!("the original is kept at {}", k.display()));
    }
    Ok(Disabled { mode: Some(m.mode), files, kept, notes })
}

/// Warnings when system files carry splitdns's marker but nothing records them.
pub(super) fn stray_marker(root: &Root) -> Vec<String> {
    let ours = |path: &str| {
        let host = root.path(path);
        matches!(inspect(&host), Ok(Current::File { bytes, .. }) if String::from_utf8_lossy(&bytes).contains(MARKER))
            .then_some(host)
    };
    let mut out = Vec::new();
    if let Some(host) = ours(RESOLV_CONF) {
        out.push(format!(
            "{} says it is managed by splitdns, but {} is missing: the original cannot be restored automatically; \
             write {RESOLV_CONF} by hand",
            host.display(),
            root.manifest_path().display()
        ));
    }
    if let Some(host) = ours(NM_CONF_DROPIN) {
        out.push(format!(
            "{} is splitdns's, but {} is missing: delete it and run `nmcli general reload conf` so NetworkManager \
             manages {RESOLV_CONF} again",
            host.display(),
            root.manifest_path().display()
        ));
    }
    out
}
