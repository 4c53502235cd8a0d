//! `system-dns`: the system's resolver configuration, read, and pointed at the agent and back
//! (`splitdns system-dns enable|disable|status`).
//!
//! **What it owns.** What splitdns knows about the system's resolver files: where
//! `/etc/resolv.conf` is and how to read it, who manages it (systemd-resolved, NetworkManager,
//! resolvconf, openresolv, nobody), systemd-resolved's and NetworkManager's own files, and the files
//! `enable` writes. The daemon reads through it too (its default upstream follows the lists named
//! here), so the daemon and `enable` cannot disagree about a path.
//!
//! **What it must never do.** Change a system file implicitly: only the explicit command writes,
//! and the daemon only reads. Write a system file before the [`Manifest`] holding its original is
//! on disk (fsynced). Put back a file someone else rewrote since `enable`, unless forced. Act, as
//! root, on a record that root does not own or that names a file splitdns never writes. Touch `/`
//! itself: every path goes through a [`Root`], a directory standing in for `/`, so tests use a
//! temporary directory.
//!
//! Four ways to point the system at the agent ([`Mode`]), chosen by [`detect`] from who manages
//! `/etc/resolv.conf` ([`Manager`]): a systemd-resolved drop-in; NetworkManager's drop-in and a plain
//! rewrite; a plain rewrite of `/etc/resolv.conf`; one `/etc/resolver` file per split domain on
//! macOS. `enable` is [`plan_enable`] (works out everything, writes nothing), [`record`] (saves the
//! originals and the manifest) and [`apply`] (writes the system files); [`disable`] undoes it in
//! reverse; [`status`] reports drift.
//!
//! Loop guard: the daemon takes its default upstream from `/etc/resolv.conf`, which after `enable`
//! names the agent itself. It follows live lists of the system's servers instead
//! ([`NM_NO_STUB_RESOLV_CONF`], [`RESOLVED_RESOLV_CONF`]); `enable` also saves the servers it finds in
//! [`UPSTREAM_FILE`] (resolv.conf syntax) as the fallback for when no live list exists (plain mode).
//!
//! **The files.** One job each, so a thing is found by its file's name: the command's steps in the
//! order they run; one file per back end, holding what only that back end knows (its paths, the
//! text it writes); then what every step shares. A decision that weighs the back ends against each
//! other (which mode, which servers to save, what counts as drift) stays in its step.
//!
//! | file | job |
//! |---|---|
//! | `detect.rs` | who manages `/etc/resolv.conf`, so which mode the system calls for |
//! | `plan.rs` | `enable`, first: the files to write and the servers to save, worked out; nothing written |
//! | `apply.rs` | `enable`, then: the originals and the manifest saved, then the system files written |
//! | `manifest.rs` | the record `disable` works from, and the checks before it is believed |
//! | `restore.rs` | `disable`: the originals put back from the record |
//! | `status.rs` | `status`: the mode, drift, what `disable` would put back |
//! | `resolved.rs` | systemd-resolved: its paths, its stub address, splitdns's drop-in |
//! | `network_manager.rs` | NetworkManager: its configuration read as it reads it, splitdns's drop-in |
//! | `plain.rs` | a plain `/etc/resolv.conf` naming the agent, and who would undo it |
//! | `macos.rs` | macOS: one `/etc/resolver/<domain>` file per split domain |
//! | `resolv_conf.rs` | resolv.conf: where the system's is, its `nameserver` lines |
//! | `files.rs` | what is at a path, and replacing or removing a system file durably |

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod apply;
mod detect;
mod files;
mod macos;
mod manifest;
pub mod network_manager;
mod plain;
mod plan;
mod resolv_conf;
mod resolved;
mod restore;
mod status;

pub use apply::{Enabled, apply, enable, record};
pub use detect::{Detection, Manager, detect};
pub use files::{Current, inspect};
pub use macos::MACOS_RESOLVER_DIR;
pub use manifest::{Before, Entry, Manifest, read_manifest};
pub use network_manager::{
    NM_CONF, NM_CONF_DROPIN, NM_NO_STUB_RESOLV_CONF, NM_RUN_DIR, NetworkManager, NmSetting, network_manager,
};
pub use plan::{EnableRequest, Plan, plan_enable};
pub use resolv_conf::{RESOLV_CONF, nameservers, read_resolv_conf};
pub use resolved::{RESOLVED_DROPIN, RESOLVED_RESOLV_CONF, RESOLVED_RUN_DIR, RESOLVED_STUB};
pub use restore::{Disabled, Outcome, disable};
pub use status::{FileReport, Report, status};

/// Marks every file splitdns writes into the system's configuration.
pub const MARKER: &str = "managed by splitdns";
/// The manifest and the saved originals. Root-owned and outside the daemon's state directory
/// (`/var/lib/splitdns` belongs to the unprivileged daemon user, and `disable` acts on this as root).
pub const STATE_DIR: &str = "/var/lib/splitdns-system";
pub const MANIFEST_NAME: &str = "manifest.json";
/// The system's own DNS servers as `enable` last found them: the daemon's fallback upstream when no
/// live list ([`NM_NO_STUB_RESOLV_CONF`], [`RESOLVED_RESOLV_CONF`]) exists.
/// Root-owned, world-readable: the daemon reads it, nothing but `enable` writes it.
pub const UPSTREAM_FILE: &str = "/var/lib/splitdns-system/upstream.resolv.conf";

/// A directory standing in for `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root(dir.into())
    }

    pub fn system() -> Root {
        Root("/".into())
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// The real `/`: services may be reloaded and root is needed.
    pub fn is_system(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// Where the system path `path` (absolute, e.g. `/etc/resolv.conf`) is under this root.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let p = path.as_ref();
        self.0.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// Where a symbolic link at system path `link` pointing at `target` leads (one step).
    fn follow(&self, link: &Path, target: &Path) -> PathBuf {
        if target.is_absolute() {
            self.path(target)
        } else {
            self.path(link.parent().unwrap_or(Path::new("/")).join(target))
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.path(STATE_DIR)
    }

    fn manifest_path(&self) -> PathBuf {
        self.state_dir().join(MANIFEST_NAME)
    }
}

/// How the system is pointed at the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Resolved,
    /// NetworkManager's drop-in ([`NM_CONF_DROPIN`]) and a plain rewrite of `/etc/resolv.conf`.
    NetworkManager,
    Plain,
    Macos,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Resolved => "systemd-resolved drop-in",
            Mode::NetworkManager => "NetworkManager drop-in (rc-manager=unmanaged) and /etc/resolv.conf",
            Mode::Plain => "plain /etc/resolv.conf",
            Mode::Macos => "macOS /etc/resolver files",
        })
    }
}

/// The header of every file splitdns writes into the system's configuration: the [`MARKER`] and how
/// to undo it.
fn header(what: &str) -> String {
    format!("# {MARKER}: {what}.\n# Restore the original with `splitdns system-dns disable`.\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_system_paths() {
        let r = Root::new("/tmp/x");
        assert_eq!(r.path("/etc/resolv.conf"), Path::new("/tmp/x/etc/resolv.conf"));
        assert_eq!(r.follow(Path::new("/etc/resolv.conf"), Path::new("../run/a")), Path::new("/tmp/x/etc/../run/a"));
        assert_eq!(r.follow(Path::new("/etc/resolv.conf"), Path::new("/run/a")), Path::new("/tmp/x/run/a"));
        assert!(Root::system().is_system() && !r.is_system());
    }
}
