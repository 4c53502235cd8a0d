//! The whitelist as the daemon holds it: the last good list, and how the last read went.
//!
//! The file is read (and permission-checked, and size-limited) here. A file that fails any check
//! keeps the last good list in force, and says why for the log and `status`. Reading blocks on the
//! file system: the agent calls [`WhitelistState::read`] on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{error, info, warn};

use crate::trust::whitelist::{self, Whitelist};

/// The whitelist as the agent holds it: the last good list, and how the last read went.
pub(super) struct WhitelistState {
    pub(super) path: PathBuf,
    /// Shared, so a reload can take the last good list to its blocking thread without a copy.
    pub(super) list: Arc<Whitelist>,
    pub(super) state: String,
    pub(super) problems: Vec<String>,
    /// Why the last read was refused (and at which line, for a syntax error); `None` when it is
    /// the file's own list that is in force.
    pub(super) rejected: Option<(String, Option<usize>)>,
}

impl WhitelistState {
    /// Reads the file; on any problem keeps `last` (the last good list) and says why. Blocks on the
    /// file system and parses up to [`whitelist::MAX_BYTES`]: call it off the runtime's workers.
    pub(super) fn read(path: &Path, last: Option<&Arc<Whitelist>>) -> Self {
        let euid = nix::unistd::geteuid().as_raw();
        let keep = |what: String, line: Option<usize>| {
            let (list, note) = match last {
                Some(l) => (l.clone(), "the last good whitelist stays in force"),
                None => (Arc::new(Whitelist::empty()), "no trust anchor is used until it is fixed"),
            };
            error!("whitelist {}: {what}; {note}", path.display());
            Self {
                path: path.to_path_buf(),
                list,
                state: format!("error: {what}; {note}"),
                problems: vec![],
                rejected: Some((what, line)),
            }
        };
        if let Err(e) = whitelist::check_permissions(path, euid) {
            return keep(format!("refused: {e}"), None);
        }
        match Whitelist::load(path) {
            Ok(parsed) => {
                for w in &parsed.warnings {
                    warn!("whitelist: {w}");
                }
                let state = if path.exists() {
                    format!("in force: {} domain(s)", parsed.list.entries().len())
                } else {
                    "missing: no trust anchor is used (RFC 8598 §6)".to_string()
                };
                info!(path = %path.display(), entries = parsed.list.entries().len(), "whitelist loaded");
                Self {
                    path: path.to_path_buf(),
                    list: Arc::new(parsed.list),
                    state,
                    problems: parsed.warnings,
                    rejected: None,
                }
            }
            Err(e) => {
                let line = match &e {
                    whitelist::WhitelistError::Syntax { line, .. } => Some(*line),
                    _ => None,
                };
                keep(e.to_string(), line)
            }
        }
    }
}
