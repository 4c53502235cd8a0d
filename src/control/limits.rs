//! Who gets one of the control socket's connection slots, and who must make room.
//!
//! A peer is classed by its kernel credentials before it gets a slot ([`Class`]), and each class
//! has slots of its own, so that no class can take another's:
//!
//! - **Root** has [`ROOT_MAX`] slots and the daemon's own user (when it is not root) another
//!   [`DAEMON_USER_MAX`]: nobody else can use them. Hooks run as root, so a hung hook is a root
//!   connection: when all of root's slots are in use, a new root connection takes over the one
//!   that has waited longest on its client (for a request line, or for the client to read a
//!   reply). Only when every one of them is executing a request, which the daemon bounds itself,
//!   is a new one refused. So hung root hooks, however many, never keep a fresh hook out.
//! - **control_group members** get at most [`MEMBER_PER_UID`] slots per user and
//!   [`MEMBERS_MAX`] all together. They are refused beyond that, with a message; their idle
//!   connections are closed at the request-line deadline (see [`super::server`]). They do not
//!   take over their own slots: their connections are people's commands, not VPN hooks that must
//!   get through at once, and a refusal that says why is easier to understand than a connection
//!   of theirs closed under them.
//!
//! In all, at most `ROOT_MAX + DAEMON_USER_MAX + MEMBERS_MAX` (160) connections hold slots. Connections being closed (a last error
//! line, then a short read until the client's end-of-file) hold no slot; at most [`CLOSING_MAX`]
//! of them linger at once, and others are closed at once after their last line.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Slots of root (uid 0).
pub(crate) const ROOT_MAX: usize = 64;
/// Slots of the daemon's own user, when it is not root.
pub(crate) const DAEMON_USER_MAX: usize = 64;
/// Slots of one control_group member.
pub(crate) const MEMBER_PER_UID: usize = 8;
/// Slots of all control_group members together.
pub(crate) const MEMBERS_MAX: usize = 32;
/// Refused or closed connections that linger to let their client read the last line.
pub(crate) const CLOSING_MAX: usize = 64;

/// What a permitted peer is, as far as slots go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Root,
    /// The daemon's own user, when it is not root.
    DaemonUser,
    /// A member of the control_group.
    Member,
}

/// The numbers of slots; [`Limits::default`] is the documented one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub root: usize,
    pub daemon_user: usize,
    pub member_per_uid: usize,
    pub members: usize,
    pub closing: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            root: ROOT_MAX,
            daemon_user: DAEMON_USER_MAX,
            member_per_uid: MEMBER_PER_UID,
            members: MEMBERS_MAX,
            closing: CLOSING_MAX,
        }
    }
}

/// Why a permitted peer got no slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Root or the daemon's user: all its slots are executing requests.
    AllExecuting { uid: u32, max: usize },
    /// A control_group member holds all of its own slots.
    PerUser { uid: u32, max: usize },
    /// The control_group members together hold all of theirs.
    Members { max: usize },
}

/// The slot table, shared by the accept loop and the connections.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: Vec<Open>,
    closing: usize,
}

#[derive(Debug)]
struct Open {
    id: u64,
    uid: u32,
    class: Class,
    /// Since when it waits on its client; `None` while the daemon executes its request.
    waiting_since: Option<Instant>,
    evict: CancellationToken,
}

/// A granted slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    id: u64,
    class: Class,
    evict: CancellationToken,
}

/// A granted slot, and how long the connection it took over had waited, if it took one over.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub slot: Slot,
    pub took_over_after: Option<Duration>,
}

/// Permission to linger while closing; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct Closing(Arc<Admission>);

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self { limits, table: Mutex::new(Table::default()) })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent even if a holder panicked: every change is one push or remove.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of slots `class` has (for members: per user).
    pub(crate) fn max_for(&self, class: Class) -> usize {
        match class {
            Class::Root => self.limits.root,
            Class::DaemonUser => self.limits.daemon_user,
            Class::Member => self.limits.member_per_uid,
        }
    }

    /// Gives a new connection of `uid` a slot, taking over a waiting one of the same class if
    /// root's or the daemon user's are all in use. The new connection counts as waiting for its
    /// request line.
    pub(crate) fn admit(self: &Arc<Self>, uid: u32, class: Class) -> Result<Admitted, Refusal> {
        let mut t = self.table();
        let mut took_over_after = None;
        match class {
            Class::Member => {
                let max = self.limits.member_per_uid;
                if t.open.iter().filter(|o| o.class == Class::Member && o.uid == uid).count() >= max {
                    return Err(Refusal::PerUser { uid, max });
                }
                let max = self.limits.members;
                if t.open.iter().filter(|o| o.class == Class::Member).count() >= max {
                    return Err(Refusal::Members { max });
                }
            }
            Class::Root | Class::DaemonUser => {
                let max = self.max_for(class);
                if t.open.iter().filter(|o| o.class == class).count() >= max {
                    let longest = t
                        .open
                        .iter()
                        .enumerate()
                        .filter(|(_, o)| o.class == class)
                        .filter_map(|(i, o)| o.waiting_since.map(|since| (since, o.id, i)))
                        .min();
                    let Some((since, _, i)) = longest else {
                        return Err(Refusal::AllExecuting { uid, max });
                    };
                    let taken = t.open.swap_remove(i);
                    taken.evict.cancel();
                    took_over_after = Some(since.elapsed());
                }
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let evict = CancellationToken::new();
        t.open.push(Open { id, uid, class, waiting_since: Some(Instant::now()), evict: evict.clone() });
        Ok(Admitted { slot: Slot { admission: self.clone(), id, class, evict }, took_over_after })
    }

    /// Permission for one more connection to linger while it closes, if fewer than the limit do.
    pub(crate) fn closing(self: &Arc<Self>) -> Option<Closing> {
        let mut t = self.table();
        if t.closing >= self.limits.closing {
            return None;
        }
        t.closing += 1;
        Some(Closing(self.clone()))
    }

    /// Connections holding slots now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table().open.len()
    }
}

impl Slot {
    /// The number of slots of its class (for members: per user).
    pub(crate) fn max(&self) -> usize {
        self.admission.max_for(self.class)
    }

    /// The connection waits on its client (for a request line, or to read a reply): from now on
    /// a newer connection of its class may take the slot over, if root's or the daemon user's.
    pub(crate) fn waiting(&self) {
        let mut t = self.admission.table();
        if let Some(o) = t.open.iter_mut().find(|o| o.id == self.id) {
            o.waiting_since = Some(Instant::now());
        }
    }

    /// A request line arrived and is about to be executed: the slot can no longer be taken over
    /// until [`Slot::waiting`]. False if it already was taken over (then the request must not run).
    pub(crate) fn executing(&self) -> bool {
        let mut t = self.admission.table();
        match t.open.iter_mut().find(|o| o.id == self.id) {
            Some(o) => {
                o.waiting_since = None;
                true
            }
            None => false,
        }
    }

    /// Resolves once a newer connection has taken the slot over.
    pub(crate) fn taken_over(&self) -> WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.admission.table();
        if let Some(i) = t.open.iter().position(|o| o.id == self.id) {
            t.open.swap_remove(i);
        }
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        let mut t = self.0.table();
        t.closing = t.closing.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Arc<Admission> {
        Admission::new(Limits { root: 3, daemon_user: 2, member_per_uid: 2, members: 3, closing: 1 })
    }

    #[test]
    fn members_are_held_per_user_and_together() {
        let a = small();
        let m1: Vec<_> = (0..2).map(|_| a.admit(1000, Class::Member).unwrap()).collect();
        assert_eq!(a.admit(1000, Class::Member).unwrap_err(), Refusal::PerUser { uid: 1000, max: 2 });
        let _m2 = a.admit(1001, Class::Member).unwrap();
        assert_eq!(a.admit(1002, Class::Member).unwrap_err(), Refusal::Members { max: 3 });
        // Members never take one another's slots over, even waiting ones.
        assert!(m1.iter().all(|m| !m.slot.evict.is_cancelled()));
        drop(m1);
        assert!(a.admit(1002, Class::Member).is_ok());
        assert!(a.admit(1000, Class::Member).is_ok());
    }

    #[test]
    fn root_and_the_daemon_user_keep_their_slots_while_members_hold_all_of_theirs() {
        let a = small();
        let _members: Vec<_> = [1000, 1000, 1001].iter().map(|&u| a.admit(u, Class::Member).unwrap()).collect();
        assert!(a.admit(1002, Class::Member).is_err());
        let roots: Vec<_> = (0..3).map(|_| a.admit(0, Class::Root).unwrap()).collect();
        assert!(roots.iter().all(|r| r.took_over_after.is_none()));
        let daemon: Vec<_> = (0..2).map(|_| a.admit(999, Class::DaemonUser).unwrap()).collect();
        assert!(daemon.iter().all(|r| r.took_over_after.is_none()));
        assert_eq!(a.open(), 8);
    }

    #[test]
    fn a_full_root_takes_over_the_longest_waiting_and_never_an_executing_one() {
        let a = small();
        let r: Vec<_> = (0..3).map(|_| a.admit(0, Class::Root).unwrap().slot).collect();
        assert!(r[0].executing());
        // r[1] is the longest waiting one: the fourth takes its slot.
        let fourth = a.admit(0, Class::Root).unwrap();
        assert!(fourth.took_over_after.is_some());
        assert!(r[1].evict.is_cancelled() && !r[0].evict.is_cancelled() && !r[2].evict.is_cancelled());
        assert!(!r[1].executing(), "a taken-over connection must not run its request");
        assert_eq!(a.open(), 3);
        // The daemon user's slots are not root's to take.
        let _d: Vec<_> = (0..2).map(|_| a.admit(999, Class::DaemonUser).unwrap()).collect();
        assert!(r[2].executing() && fourth.slot.executing());
        assert_eq!(a.admit(0, Class::Root).unwrap_err(), Refusal::AllExecuting { uid: 0, max: 3 });
        // Back to waiting (after a reply): it can be taken over again.
        r[0].waiting();
        let fifth = a.admit(0, Class::Root).unwrap();
        assert!(fifth.took_over_after.is_some() && r[0].evict.is_cancelled());
        // Dropping a taken-over slot frees nothing twice.
        drop(r);
        assert_eq!(a.open(), 2 + 2);
    }

    #[test]
    fn lingering_is_capped() {
        let a = small();
        let c = a.closing().unwrap();
        assert!(a.closing().is_none());
        drop(c);
        assert!(a.closing().is_some());
    }
}
