//! The record of what `enable` changed (`<state dir>/manifest.json` and the saved originals beside
//! it), and the checks before it is believed.
//!
//! `disable` runs as root and does what the manifest says, so on the real root it reads only a
//! root-owned file no one else can write ([`read_trusted`]), naming only files and directories
//! splitdns itself writes ([`check_manifest`]). A damaged or foreign manifest is an error, never
//! a guess.

use std::fs::OpenOptions;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use super::macos::{MACOS_RESOLVER_DIR, is_resolver_file};
use super::network_manager::{self, NM_CONF_DROPIN};
use super::resolv_conf::RESOLV_CONF;
use super::resolved::{RESOLVED_CONF_D, RESOLVED_DROPIN};
use super::{Mode, Root};

/// What was at a path before `enable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Before {
    Absent,
    /// A regular file, saved as `backup` in the state directory.
    File {
        backup: String,
        len: u64,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        target: PathBuf,
    },
}

/// One system file `enable` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The system path (e.g. `/etc/resolv.conf`), independent of the root.
    pub path: PathBuf,
    pub before: Before,
    /// Exactly what `enable` writes there: the file is splitdns's own while it still reads so.
    pub written: String,
}

/// The record `disable` restores from: `<state dir>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub mode: Mode,
    /// The agent's address the system is pointed at.
    pub address: String,
    /// Unix time of the first `enable`.
    pub enabled_at: u64,
    pub entries: Vec<Entry>,
    /// Directories `enable` created (deepest first), removed by `disable` when empty.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// The system's own servers saved in [`super::UPSTREAM_FILE`] (none in macOS mode).
    #[serde(default)]
    pub upstream: Option<Vec<IpAddr>>,
}

/// Reads a file `disable` acts on as root. On the real root it must be a regular file owned by root
/// and writable by no one else, so that nothing planted there (say, by a compromised daemon) can
/// make root write files of its choosing.
pub(super) fn read_trusted(root: &Root, path: &Path) -> io::Result<Vec<u8>> {
    let mut f = OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)?;
    let m = f.metadata()?;
    if root.is_system() && (!m.is_file() || m.uid() != 0 || m.mode() & 0o022 != 0) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a root-owned file that only root can write (owner uid {}, mode {:04o}): not trusting it",
                path.display(),
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut f, &mut bytes)?;
    Ok(bytes)
}

/// Only the files splitdns itself writes may appear in a manifest.
fn check_manifest(m: &Manifest) -> anyhow::Result<()> {
    let allowed = |p: &Path| {
        p == Path::new(RESOLV_CONF)
            || p == Path::new(RESOLVED_DROPIN)
            || p == Path::new(NM_CONF_DROPIN)
            || is_resolver_file(p)
    };
    for e in &m.entries {
        if !allowed(&e.path) {
            bail!("it lists {}, which splitdns never writes", e.path.display());
        }
        if let Before::File { backup, .. } = &e.before
            && (backup.contains('/') || !backup.starts_with("orig-"))
        {
            bail!("it names the saved copy {backup:?}, which splitdns never writes");
        }
    }
    let dirs = [
        RESOLVED_CONF_D,
        "/etc/systemd",
        network_manager::ETC_CONF_D,
        "/etc/NetworkManager",
        MACOS_RESOLVER_DIR,
        "/etc",
    ];
    if let Some(d) = m.created_dirs.iter().find(|d| !dirs.iter().any(|a| Path::new(a) == d.as_path())) {
        bail!("it lists the directory {}, which splitdns never creates", d.display());
    }
    Ok(())
}

/// Reads the manifest, if `enable` left one.
pub fn read_manifest(root: &Root) -> anyhow::Result<Option<Manifest>> {
    let path = root.manifest_path();
    let bytes = match read_trusted(root, &path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot use {}", path.display())),
    };
    let m: Manifest = serde_json::from_slice(&bytes).with_context(|| {
        format!("{} is damaged; restore the files it lists by hand, then delete it", path.display())
    })?;
    check_manifest(&m).with_context(|| format!("{} is not splitdns's: not acting on it", path.display()))?;
    Ok(Some(m))
}

pub(super) fn write_manifest(root: &Root, m: &Manifest) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(m)?;
    json.push(b'\n');
    write_atomic(&root.manifest_path(), &json, 0o644, None)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn manifests_name_only_splitdns_files() {
        let mut m = Manifest {
            version: 1,
            mode: Mode::Macos,
            address: "127.0.0.1:53".into(),
            enabled_at: 0,
            entries: vec![Entry {
                path: "/etc/resolver/corp.example".into(),
                before: Before::Absent,
                written: String::new(),
            }],
            created_dirs: vec!["/etc/resolver".into()],
            upstream: None,
        };
        check_manifest(&m).unwrap();
        for bad in ["/etc/shadow", "/etc/resolver/../shadow", "/etc/resolver/a/b", "/etc/resolver.d/x"] {
            m.entries[0].path = bad.into();
            assert!(check_manifest(&m).is_err(), "{bad}");
        }
        m.entries[0].path = RESOLV_CONF.into();
        m.entries[0].before = Before::File { backup: "../../etc/shadow".into(), len: 0, mode: 0, uid: 0, gid: 0 };
        assert!(check_manifest(&m).is_err());
        m.entries[0].before = Before::Absent;
        m.created_dirs = vec!["/usr".into()];
        assert!(check_manifest(&m).is_err());
    }

    #[test]
    fn on_the_real_root_only_root_owned_records_are_trusted() {
        if nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.json");
        fs::write(&p, "{}").unwrap();
        assert!(read_trusted(&Root::new(dir.path()), &p).is_ok());
        let e = read_trusted(&Root::system(), &p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read_trusted(&Root::new(dir.path()), &link).is_err(), "a symbolic link is not followed");
    }
}
