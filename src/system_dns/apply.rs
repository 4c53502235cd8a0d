//! `enable`'s writing steps, and `enable` itself: [`record`] (the originals and the manifest), then
//! [`apply`] (the daemon's fallback upstream and the system files).
//!
//! Crash safety: [`record`] saves the originals and fsyncs the [`Manifest`](super::Manifest)
//! *before* [`apply`] changes a system file, so a crash at any point leaves either nothing changed
//! or a manifest that [`super::disable`] acts on. A file that did not exist (a drop-in) is recorded
//! as such and removed again. `apply` writes in manifest order (NetworkManager's drop-in before
//! resolv.conf) and `disable` undoes in reverse.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::files::{Current, inspect, remove, write_atomic};
use super::manifest::{Before, write_manifest};
use super::network_manager::NM_NO_STUB_RESOLV_CONF;
use super::plan::{EnableRequest, Plan, plan_enable};
use super::resolved::RESOLVED_RESOLV_CONF;
use super::restore::restore_entry;
use super::{MARKER, Mode, Root, UPSTREAM_FILE};
use crate::clock::unix_now;

fn upstream_text(servers: &[IpAddr], at: u64) -> String {
    let mut t = format!(
        "# {MARKER}: the system's DNS servers as `splitdns system-dns enable` found them (Unix time {at}).\n\
         # A fallback only: the daemon follows the live list ({NM_NO_STUB_RESOLV_CONF} or\n\
         # {RESOLVED_RESOLV_CONF}) and uses these servers while no live list exists. Run\n\
         # `splitdns system-dns enable` again to refresh them.\n"
    );
    for s in servers {
        t.push_str(&format!("nameserver {s}\n"));
    }
    t
}

fn create_state_dir(root: &Root) -> anyhow::Result<()> {
    let dir = root.state_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Step 1 of `enable`: saves the originals and writes the manifest (fsynced). No system file has
/// changed yet; from here on `disable` can undo whatever [`apply`] gets to.
pub fn record(plan: &Plan) -> anyhow::Result<()> {
    let root = &plan.root;
    create_state_dir(root)?;
    let dir = root.state_dir();
    let m = fs::symlink_metadata(&dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    if !m.is_dir() || (root.is_system() && (m.uid() != 0 || m.mode() & 0o022 != 0)) {
        bail!(
            "{} must be a directory owned by root and writable by no one else (uid {}, mode {:04o}); move it aside",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        );
    }
    for (i, bytes) in &plan.backups {
        let Before::File { backup, .. } = &plan.manifest.entries[*i].before else { continue };
        write_atomic(&root.state_dir().join(backup), bytes, 0o600, None)?;
    }
    write_manifest(root, &plan.manifest)
}

/// Step 2 of `enable`: writes the daemon's upstream file and the system files. Returns notes.
pub fn apply(plan: &Plan) -> anyhow::Result<Vec<String>> {
    let root = &plan.root;
    let mut notes = Vec::new();
    for d in plan.manifest.created_dirs.iter().rev() {
        let host = root.path(d);
        if !host.exists() {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&host)
                .with_context(|| format!("cannot create {}", host.display()))?;
        }
    }
    let upstream = root.path(UPSTREAM_FILE);
    match &plan.manifest.upstream {
        Some(servers) => write_atomic(&upstream, upstream_text(servers, unix_now()).as_bytes(), 0o644, None)?,
        None => remove(&upstream)?,
    }
    for e in plan.manifest.entries.iter().filter(|e| !plan.retire.contains(&e.path)) {
        let host = root.path(&e.path);
        // A rewritten resolv.conf keeps the original's mode and owner.
        let (mode, owner) = match &e.before {
            Before::File { mode, uid, gid, .. } => (*mode, Some((*uid, *gid))),
            _ => (0o644, None),
        };
        if let Ok(Current::File { bytes, .. }) = inspect(&host)
            && bytes == e.written.as_bytes()
        {
            continue;
        }
        write_atomic(&host, e.written.as_bytes(), mode, owner)?;
    }
    if !plan.retire.is_empty() {
        let mut kept = plan.manifest.clone();
        for e in plan.manifest.entries.iter().filter(|e| plan.retire.contains(&e.path)) {
            notes.extend(restore_entry(root, e, false)?.note(e));
            if let Before::File { backup, .. } = &e.before {
                let _ = fs::remove_file(root.state_dir().join(backup));
            }
        }
        kept.entries.retain(|e| !plan.retire.contains(&e.path));
        write_manifest(root, &kept)?;
    }
    Ok(notes)
}

/// What `enable` did.
#[derive(Debug, Clone)]
pub struct Enabled {
    pub mode: Mode,
    pub refresh: bool,
    pub files: Vec<PathBuf>,
    pub upstream: Option<Vec<IpAddr>>,
    pub notes: Vec<String>,
}

/// Points the system at the agent: [`plan_enable`], [`record`], [`apply`]. Idempotent.
pub fn enable(root: &Root, req: &EnableRequest) -> anyhow::Result<Enabled> {
    let plan = plan_enable(root, req)?;
    record(&plan)?;
    let mut notes = plan.notes.clone();
    notes.extend(apply(&plan)?);
    Ok(Enabled {
        mode: plan.manifest.mode,
        refresh: plan.refresh,
        files: plan
            .manifest
            .entries
            .iter()
            .filter(|e| !plan.retire.contains(&e.path))
            .map(|e| e.path.clone())
            .collect(),
        upstream: plan.manifest.upstream.clone(),
        notes,
    })
}
