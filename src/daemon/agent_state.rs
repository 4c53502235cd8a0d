//! What the agent keeps behind its lock: the link table, the runtime routes and validators built
//! from it, the offered anchors waiting for a person, the links removed lately, and what is known
//! about the default upstream, the system's DNS settings and the state file.
//!
//! [`super::agent`] takes the lock and changes it; [`super::reconcile`] derives trust and
//! snapshots from it; [`super::status`] reads it. None of them needs another to hold it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hickory_proto::rr::LowerName;

use super::whitelist_state::WhitelistState;
use crate::control::protocol::{RemovedLink, SystemDnsStatus};
use crate::dns::route::Route;
use crate::dns::upstream::Timing;
use crate::dns::validate::ZoneTrust;
use crate::state::LinkTable;

/// Whether the saved link table was refused, or a change could not be saved: for `status`.
#[derive(Clone, Debug, Default)]
pub(super) struct StateProblem {
    /// The state file or directory was refused at start (see [`crate::state::persist::Store::load`]).
    pub(super) refused_at_start: Option<String>,
    /// The last save failed, and why.
    pub(super) save: Option<String>,
}

impl StateProblem {
    pub(super) fn text(&self) -> Option<String> {
        // The start-up refusal says what to do, and that nothing is saved meanwhile; a save that
        // fails for the same reason adds nothing to it.
        self.refused_at_start.clone().or_else(|| self.save.clone())
    }
}

/// How many removed links `status` remembers.
const REMOVED_HISTORY: usize = 16;

/// The agent's state; only ever used with the agent's lock held.
pub(super) struct Inner {
    pub(super) table: LinkTable,
    pub(super) routes: HashMap<u64, Arc<Route>>,
    /// Validators of anchored zones in force, by (link seq, zone).
    pub(super) trusts: HashMap<(u64, LowerName), Arc<ZoneTrust>>,
    pub(super) system: Arc<Route>,
    pub(super) timing: Timing,
    pub(super) whitelist: WhitelistState,
    /// Offered anchors waiting for a person, by (link seq, DS): since when (Unix time) and why.
    pub(super) pending: HashMap<(u64, String), (u64, String)>,
    /// Links removed lately, newest first (at most [`REMOVED_HISTORY`]).
    pub(super) removed: VecDeque<RemovedLink>,
    /// When the default upstream's servers last changed (Unix time).
    pub(super) upstream_changed_at: u64,
    /// Why the default upstream is not what its source says (a source with no usable server).
    pub(super) upstream_note: Option<String>,
    /// Whether the system still points at the agent, while `system-dns` is enabled.
    pub(super) system_dns: Option<SystemDnsStatus>,
    pub(super) state_problem: StateProblem,
}

impl Inner {
    pub(super) fn remember_removed(&mut self, removed: RemovedLink) {
        self.removed.push_front(removed);
        self.removed.truncate(REMOVED_HISTORY);
    }
}
