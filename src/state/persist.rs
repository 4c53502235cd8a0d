//! The link table on disk, so a crash or upgrade of the agent does not drop a VPN's split DNS.
//!
//! One JSON file, `links.json`, in the state directory, written atomically (temporary file in the same
//! directory, fsync, rename). A file that does not parse is renamed aside (`links.json.corrupt-<time>`)
//! and reported; the daemon starts with no links rather than refusing to start.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::table::Link;

const FILE_NAME: &str = "links.json";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    links: Vec<Link>,
}

/// What loading the state file found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub links: Vec<Link>,
    /// Problems worth a warning: a corrupt file set aside, links skipped.
    pub warnings: Vec<String>,
}

/// Reads and writes `links.json` in one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Loads the saved links. Never fails: problems come back as warnings.
    pub fn load(&self) -> Loaded {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
            Err(e) => {
                return Loaded {
                    links: vec![],
                    warnings: vec![format!("cannot read {}: {e}; starting with no links", path.display())],
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
                links: vec![],
                warnings: vec![self.set_aside(&path, &format!("unknown version {}", d.version))],
            },
            Err(e) => Loaded { links: vec![], warnings: vec![self.set_aside(&path, &e.to_string())] },
        }
    }

    fn set_aside(&self, path: &Path, why: &str) -> String {
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
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

    /// Writes the links atomically.
    pub fn save(&self, links: &[Link]) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let body = serde_json::to_vec_pretty(&OnDisk { version: VERSION, links: links.to_vec() })
            .map_err(std::io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&body)?;
        tmp.write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.path()).map_err(|e| e.error)?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
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
