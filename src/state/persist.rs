//! The link table on disk, so a crash or upgrade of the agent does not drop a VPN's split DNS.
//!
//! One JSON file, `links.json`, in the state directory, written atomically ([`crate::atomic_file`]:
//! temporary file in the same directory, fsync, rename). A file that does not parse is renamed
//! aside (`links.json.corrupt-<time>`) and reported; the daemon starts with no links rather than
//! refusing to start.
//!
//! The file says where split names go, so it gets the whitelist's check ([`crate::perms::check`]):
//! the file and the state directory must be owned by root or the daemon's user and not be writable
//! by group or others. Otherwise anyone who could write there could reroute names at the next
//! start, a side door around the control socket's peer check. A refused file is left exactly as it
//! is (not read, not moved aside, not written over): the daemon starts without links and says how
//! to fix it. Saving checks the same way before it writes anything, so while the file or the
//! directory stays unsafe no change is saved (each is in effect until the daemon stops, and
//! `status`, the log and the `link up` reply say so). Once fixed, a restart restores the links in
//! the file; a change made after the fix and before a restart is saved over it.
//!
//! The packaged unit's `StateDirectory=splitdns` (0750, owned by splitdns) passes, and so does a
//! directory the daemon creates itself (0755, less the umask).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::table::Link;
use crate::atomic_file::{self, Options, Step, Temp};
use crate::perms::{self, PermError};

const FILE_NAME: &str = "links.json";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    links: Vec<Link>,
}

/// What loading the state file found.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub links: Vec<Link>,
    /// Problems worth a warning: a corrupt file set aside, links skipped.
    pub warnings: Vec<String>,
    /// The file or its directory failed the permission check: why, how to fix it, and what that
    /// means until then. The file was not read.
    pub refused: Option<String>,
}

/// Why the links were not saved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    /// The file or the directory failed the permission check: nothing was written.
    #[error("refusing to write {}: {source}", path.display())]
    Unsafe {
        path: PathBuf,
        #[source]
        source: Box<PermError>,
    },
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Mode of a state directory the daemon creates (less the umask; never group- or world-writable,
/// whatever the umask, so that the daemon's own directory passes its own check).
const NEW_DIR_MODE: u32 = 0o755;

/// Reads and writes `links.json` in one state directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
    /// The daemon's user: besides root, the only owner the file and directory may have.
    uid: u32,
}

impl Store {
    /// A store for this process (its effective uid is the daemon's user).
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Self::for_user(dir, nix::unistd::geteuid().as_raw())
    }

    /// A store whose daemon runs as `uid`.
    pub(crate) fn for_user(dir: impl Into<PathBuf>, uid: u32) -> Self {
        Self { dir: dir.into(), uid }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Checks the file and the directory (when they exist) before anything is read or written.
    fn check(&self) -> Result<(), PermError> {
        perms::check(&self.path(), self.uid, &perms::STATE)?;
        match fs::metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            _ => perms::check_dir(&self.dir, self.uid, &perms::STATE),
        }
    }

    /// Loads the saved links. Never fails: problems come back as warnings, and an unsafe file or
    /// directory as `refused` (the file is then left untouched).
    pub(crate) fn load(&self) -> Loaded {
        let path = self.path();
        if let Err(e) = self.check() {
            let what = if path.exists() {
                "The daemon started without the links saved in it and saves no change until this is fixed \
                 (each change is in effect until the daemon stops); once fixed, restart the daemon to \
                 restore them"
            } else {
                "The daemon saves no change until this is fixed (each change is in effect until the daemon \
                 stops)"
            };
            return Loaded { links: vec![], warnings: vec![], refused: Some(format!("{e}. {what}.")) };
        }
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
            Err(e) => {
                return Loaded {
                    warnings: vec![format!("cannot read {}: {e}; starting with no links", path.display())],
                    ..Loaded::default()
                };
            }
        };
        match serde_json::from_slice::<OnDisk>(&text) {
            Ok(d) if d.version == VERSION => {
                let mut loaded = Loaded::default();
                for link in d.links {
                    match link.spec.validate() {
                        Ok(()) => loaded.links.push(link),
                        Err(e) => loaded.warnings.push(format!("saved link skipped: {e}")),
                    }
                }
                loaded
            }
            Ok(d) => Loaded {
                warnings: vec![self.set_aside(&path, &format!("unknown version {}", d.version))],
                ..Loaded::default()
            },
            Err(e) => Loaded { warnings: vec![self.set_aside(&path, &e.to_string())], ..Loaded::default() },
        }
    }

    fn set_aside(&self, path: &Path, why: &str) -> String {
        let stamp = crate::clock::unix_now();
        let aside = self.dir.join(format!("{FILE_NAME}.corrupt-{stamp}"));
        match fs::rename(path, &aside) {
            Ok(()) => format!(
                "state file {} is corrupt ({why}); moved it to {} and started with no links",
                path.display(),
                aside.display()
            ),
            Err(e) => format!(
                "state file {} is corrupt ({why}) and could not be moved aside ({e}); started with no links",
                path.display()
            ),
        }
    }

    /// Writes the links atomically, after the permission check: into an unsafe directory, or
    /// over an unsafe file, nothing is written at all.
    pub(crate) fn save(&self, links: &[Link]) -> Result<(), SaveError> {
        let path = self.path();
        let io = |source| SaveError::Io { path: path.clone(), source };
        fs::DirBuilder::new().recursive(true).mode(NEW_DIR_MODE).create(&self.dir).map_err(io)?;
        self.check().map_err(|e| SaveError::Unsafe { path: path.clone(), source: Box::new(e) })?;
        let mut body = serde_json::to_vec_pretty(&OnDisk { version: VERSION, links: links.to_vec() })
            .map_err(|e| io(std::io::Error::other(e)))?;
        body.push(b'\n');
        // The file keeps the temporary file's 0600 and the daemon's user as owner.
        let options = Options { temp: Temp::Unique { prefix: ".tmp", suffix: "" }, mode: None, owner: None };
        match atomic_file::replace(&path, &body, &options) {
            // The new file is in place; a directory that cannot be fsynced does not undo the save.
            Err(e) if e.step == Step::SyncDir => Ok(()),
            Err(e) => Err(io(e.source)),
            Ok(()) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::link::tests::spec;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.load().links.is_empty());
        let links = vec![Link {
            spec: spec("a", Some("p"), &["corp.example"]),
            seq: 3,
            up_since: 7,
            claim: None,
            ifindex: Some(7),
        }];
        store.save(&links).unwrap();
        let loaded = store.load();
        assert_eq!(loaded.links, links);
        assert!(loaded.warnings.is_empty());
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn one_link() -> Vec<Link> {
        vec![Link { spec: spec("a", Some("p"), &["corp.example"]), seq: 3, up_since: 7, claim: None, ifindex: None }]
    }

    #[test]
    fn an_unsafe_file_or_directory_is_refused_left_alone_and_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = Store::new(&state);
        store.save(&one_link()).unwrap();
        let saved = fs::read(store.path()).unwrap();
        for (path, bad, good) in [(store.path(), 0o666, 0o600), (state.clone(), 0o777, 0o750)] {
            set_mode(&path, bad);
            let loaded = store.load();
            assert!(loaded.links.is_empty() && loaded.warnings.is_empty(), "{loaded:?}");
            let why = loaded.refused.expect("refused");
            assert!(why.contains(&format!("fix it with `chmod go-w {}`", path.display())), "{why}");
            assert!(why.contains("restart the daemon to restore them"), "{why}");
            let e = store.save(&[]).unwrap_err();
            assert!(matches!(e, SaveError::Unsafe { .. }), "{e:?}");
            assert!(e.to_string().starts_with(&format!("refusing to write {}", store.path().display())), "{e}");
            assert_eq!(fs::read(store.path()).unwrap(), saved, "the refused file was written over");
            assert_eq!(fs::read_dir(&state).unwrap().count(), 1, "something was written into the directory");
            set_mode(&path, good);
            assert_eq!(store.load().links, one_link());
        }
        // No file yet, but an unsafe directory: nothing to load, and nothing is saved there.
        fs::remove_file(store.path()).unwrap();
        set_mode(&state, 0o777);
        let loaded = store.load();
        assert!(loaded.refused.is_some_and(|w| w.contains("saves no change")));
        assert!(store.save(&one_link()).is_err());
        assert_eq!(fs::read_dir(&state).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_the_store_creates_passes_its_own_check() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b/state");
        Store::new(&state).save(&one_link()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&state).unwrap().mode() & 0o022, 0);
        let store = Store::new(&state);
        let loaded = store.load();
        assert!(loaded.refused.is_none(), "{loaded:?}");
        assert_eq!(loaded.links, one_link());
    }

    #[test]
    fn a_foreign_owner_is_refused_with_a_chown_to_the_daemons_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.save(&one_link()).unwrap();
        let owner = nix::unistd::geteuid().as_raw();
        // As seen by a daemon running as another user.
        let other = Store::for_user(dir.path(), owner + 1);
        let why = other.load().refused.unwrap_or_default();
        if owner == 0 {
            // Root owns it: fine for any daemon.
            assert!(why.is_empty(), "{why}");
        } else {
            assert!(why.contains(&format!("owned by uid {owner}")) && why.contains("chown "), "{why}");
        }
    }

    #[test]
    fn corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(store.path(), b"{not json").unwrap();
        let loaded = store.load();
        assert!(loaded.links.is_empty());
        assert!(loaded.warnings[0].contains("corrupt"), "{:?}", loaded.warnings);
        assert!(!store.path().exists());
        let aside: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(aside.len(), 1);
    }
}
