//! The agent: applies link changes to the link table and publishes the result.
//!
//! Every change runs the same steps under one lock: update the [`LinkTable`], create or retire the
//! runtime [`Route`]s, build a new routing [`Snapshot`] and swap it in, flush cached answers for every
//! domain whose route changed, and save the table. Teardown of a link therefore does all four things
//! RFC 8598 §5 asks: its forwarding rules go with the snapshot, its cached answers (negative ones too)
//! are flushed, its trust anchors leave with the link, and its in-flight queries are abandoned.
//!
//! Nothing slow runs under that lock or on the runtime's worker threads: the whitelist is read and
//! parsed on a blocking thread, and the lock is taken only to swap the result in, so a big or slow
//! whitelist never holds up queries (cached or not) or control requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::Stamp;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::control::protocol::{
    CacheStatus, Counters, LinkDownResult, LinkStatus, LinkUpResult, RouteCounters, ServerStatus, Status, TrustStatus,
    UpstreamStatus,
};
use crate::control::protocol::{PendingReview, RemovalReason, RemovedLink, SystemDnsStatus, WhitelistStatus};
use crate::dns::cache::Cache;
use crate::dns::handler::Stats;
use crate::dns::route::{Budget, Owner, Route, SYSTEM_ROUTE};
use crate::dns::snapshot::Snapshot;
use crate::dns::upstream::{Bind, Timing, Upstream};
use crate::dns::validate::{TrustState, ZoneTrust};
use crate::domain::DomainName;
use crate::state::persist::Store;
use crate::state::table::AnchorView;
use crate::state::{Link, LinkSpec, LinkTable, SpecError};
use crate::trust::DsAnchor;
use crate::trust::whitelist::{self, Whitelist};
use hickory_proto::rr::LowerName;
use std::path::{Path, PathBuf};
use tracing::error;

/// Why a `link up` was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("link {id:?}: interface {name:?} does not exist on this machine (is the tunnel up?)")]
    NoInterface { id: String, name: String },
}

/// Whether the saved link table was refused, or a change could not be saved: for `status`.
#[derive(Clone, Debug, Default)]
struct StateProblem {
    /// The state file or directory was refused at start (see [`Store::load`]).
    refused_at_start: Option<String>,
    /// The last save failed, and why.
    save: Option<String>,
}

impl StateProblem {
    fn text(&self) -> Option<String> {
        // The start-up refusal says what to do, and that nothing is saved meanwhile; a save that
        // fails for the same reason adds nothing to it.
        self.refused_at_start.clone().or_else(|| self.save.clone())
    }
}

/// How many removed links `status` remembers.
const REMOVED_HISTORY: usize = 16;

struct Inner {
    table: LinkTable,
    routes: HashMap<u64, Arc<Route>>,
    /// Validators of anchored zones in force, by (link seq, zone).
    trusts: HashMap<(u64, LowerName), Arc<ZoneTrust>>,
    system: Arc<Route>,
    timing: Timing,
    whitelist: WhitelistState,
    /// When each offered-but-not-whitelisted anchor was first seen, by (link seq, DS).
    /// Offered anchors waiting for a person, by (link seq, DS): since when (Unix time) and why.
    pending: HashMap<(u64, String), (u64, String)>,
    /// Links removed lately, newest first (at most [`REMOVED_HISTORY`]).
    removed: VecDeque<RemovedLink>,
    /// When the default upstream's servers last changed (Unix time).
    upstream_changed_at: u64,
    /// Why the default upstream is not what its source says (a source with no usable server).
    upstream_note: Option<String>,
    /// Whether the system still points at the agent, while `system-dns` is enabled.
    system_dns: Option<SystemDnsStatus>,
    state_problem: StateProblem,
}

impl Inner {
    fn remember_removed(&mut self, removed: RemovedLink) {
        self.removed.push_front(removed);
        self.removed.truncate(REMOVED_HISTORY);
    }
}

/// The whitelist as the agent holds it: the last good list, and how the last read went.
struct WhitelistState {
    path: PathBuf,
    /// Shared, so a reload can take the last good list to its blocking thread without a copy.
    list: Arc<Whitelist>,
    state: String,
    problems: Vec<String>,
}

impl WhitelistState {
    /// Reads the file; on any problem keeps `last` (the last good list) and says why. Blocks on the
    /// file system and parses up to [`whitelist::MAX_BYTES`]: call it off the runtime's workers.
    fn read(path: &Path, last: Option<&Arc<Whitelist>>) -> Self {
        let euid = nix::unistd::geteuid().as_raw();
        let keep = |what: String| {
            let (list, note) = match last {
                Some(l) => (l.clone(), "the last good whitelist stays in force"),
                None => (Arc::new(Whitelist::empty()), "no trust anchor is used until it is fixed"),
            };
            error!("whitelist {}: {what}; {note}", path.display());
            Self { path: path.to_path_buf(), list, state: format!("error: {what}; {note}"), problems: vec![] }
        };
        if let Err(e) = whitelist::check_permissions(path, euid) {
            return keep(format!("refused: {e}"));
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
                Self { path: path.to_path_buf(), list: Arc::new(parsed.list), state, problems: parsed.warnings }
            }
            Err(e) => keep(e.to_string()),
        }
    }
}

/// How queries are forwarded: the retry schedule and the budgets of queries in flight.
#[derive(Clone, Copy, Debug)]
pub struct Forwarding {
    pub timing: Timing,
    pub budget: Budget,
}

/// The default upstream's servers and where they came from (config, resolv.conf).
#[derive(Clone, Debug, Default)]
pub struct SystemUpstream {
    pub servers: Vec<SocketAddr>,
    pub source: String,
}

/// The daemon's state, shared by the control socket and the signal handlers.
pub struct Agent {
    inner: Mutex<Inner>,
    /// Per-profile settings from the config file, applied to links as they come up.
    profiles: Mutex<HashMap<String, crate::config::Profile>>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    store: Store,
    started: Stamp,
    budgets: Budgets,
    listen: Mutex<Vec<SocketAddr>>,
    /// Held across a whole whitelist reload, so two reloads (an edit, SIGHUP) never finish out of
    /// order and swap in the older read.
    reloading: tokio::sync::Mutex<()>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What routes are built with besides their servers: the budgets of queries in flight.
struct Budgets {
    budget: Budget,
    /// Shared by every link route ([`Budget::links`]).
    links: Arc<Semaphore>,
}

impl Budgets {
    fn new(budget: Budget) -> Self {
        Self { budget, links: Arc::new(Semaphore::new(budget.links)) }
    }
}

fn system_route(servers: &[SocketAddr], source: String, timing: Timing, b: &Budgets) -> Arc<Route> {
    let upstream = Upstream::new(servers, Bind::default(), timing);
    Arc::new(Route::new(SYSTEM_ROUTE, Owner::System { source }, upstream).with_budget(b.budget.per_route, None))
}

fn link_route(link: &Link, timing: Timing, b: &Budgets) -> Arc<Route> {
    let servers: Vec<SocketAddr> = link.spec.servers.iter().map(|s| s.0).collect();
    let bind = Bind { interface: link.spec.interface.clone(), ifindex: link.ifindex, source: link.spec.source };
    let route = Route::new(link.seq, Owner::Link { id: link.spec.id.clone() }, Upstream::new(&servers, bind, timing));
    Arc::new(route.with_budget(b.budget.per_route, Some(b.links.clone())))
}

impl Agent {
    /// Builds the agent from restored links. Links whose interface has vanished while the daemon
    /// was down are dropped (their VPN is gone). `state_refused`: why the state file was not
    /// loaded (shown by `status`). Returns warnings worth logging.
    ///
    /// Reads the whitelist here, before the DNS listener is bound, so nothing waits on it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        restored: Vec<Link>,
        state_refused: Option<String>,
        system: SystemUpstream,
        forwarding: Forwarding,
        cache: Arc<Cache>,
        stats: Arc<Stats>,
        store: Store,
        whitelist_path: &Path,
    ) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut kept = Vec::new();
        let mut dropped = VecDeque::new();
        for mut link in restored {
            let Some(name) = link.spec.interface.clone() else {
                kept.push(link);
                continue;
            };
            let now = interface_index(&name);
            let gone = match (link.ifindex, now) {
                (_, None) => Some(format!("its interface {name} no longer exists")),
                (Some(was), Some(is)) if was != is => {
                    Some(format!("{name} is now another device (index {is}, was {was}): its tunnel is gone"))
                }
                _ => None,
            };
            match gone {
                Some(why) => {
                    warnings.push(format!("dropping saved link {:?}: {why}", link.spec.id));
                    dropped.push_front(RemovedLink {
                        id: link.spec.id.clone(),
                        profile: link.spec.profile.clone(),
                        at: now_unix(),
                        reason: RemovalReason::DroppedAtStart,
                        detail: why,
                        domains: link.spec.domains.iter().map(ToString::to_string).collect(),
                        cache_entries_flushed: 0,
                        anchors_dropped: link.spec.anchors.len(),
                        queries_abandoned: 0,
                    });
                }
                None => {
                    // A state file from before indexes were recorded: bind to today's index.
                    link.ifindex = now;
                    kept.push(link);
                }
            }
        }
        let table = LinkTable::from_links(kept);
        let Forwarding { timing, budget } = forwarding;
        let budgets = Budgets::new(budget);
        let routes: HashMap<u64, Arc<Route>> =
            table.links().into_iter().map(|l| (l.seq, link_route(l, timing, &budgets))).collect();
        let system = system_route(&system.servers, system.source, timing, &budgets);
        let whitelist = WhitelistState::read(whitelist_path, None);
        let mut inner = Inner {
            table,
            routes,
            trusts: HashMap::new(),
            system,
            timing,
            whitelist,
            pending: HashMap::new(),
            removed: dropped,
            upstream_changed_at: now_unix(),
            upstream_note: None,
            system_dns: None,
            state_problem: StateProblem { refused_at_start: state_refused, save: None },
        };
        sync_trusts(&mut inner);
        let snapshot = Arc::new(ArcSwap::from_pointee(build_snapshot(&inner)));
        let agent = Self {
            inner: Mutex::new(inner),
            profiles: Mutex::new(HashMap::new()),
            snapshot,
            cache,
            stats,
            store,
            started: Stamp::now(),
            budgets,
            listen: Mutex::new(vec![]),
            reloading: tokio::sync::Mutex::new(()),
        };
        (agent, warnings)
    }

    /// The snapshot handle the DNS listener reads.
    pub fn snapshot(&self) -> Arc<ArcSwap<Snapshot>> {
        self.snapshot.clone()
    }

    /// Replaces the per-profile settings (start-up, SIGHUP). They apply to links that come up later.
    pub fn set_profiles(&self, profiles: HashMap<String, crate::config::Profile>) {
        let allowed: Vec<String> =
            profiles.iter().filter(|(_, p)| p.allow_public_suffix).map(|(name, _)| name.clone()).collect();
        *self.profiles.lock().unwrap_or_else(|e| e.into_inner()) = profiles;
        let mut inner = self.lock();
        let before = self.snapshot.load().assignments();
        inner.table.allow_public_suffixes(allowed);
        self.publish(&mut inner, &before);
    }

    fn profiles(&self) -> HashMap<String, crate::config::Profile> {
        self.profiles.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the addresses the listener actually bound (shown by `status`).
    pub fn set_listen(&self, addrs: Vec<SocketAddr>) {
        *self.listen.lock().unwrap_or_else(|e| e.into_inner()) = addrs;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the table half-updated in a way that matters
        // more than stopping all control traffic would, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings a link up (or replaces the link with the same id or profile).
    pub fn link_up(&self, mut spec: LinkSpec) -> Result<LinkUpResult, LinkError> {
        spec.validate()?;
        // A server that is the agent itself would loop each query back in until it times out.
        spec.check_not_own(&self.listen.lock().unwrap_or_else(|e| e.into_inner()))?;
        // Every link gets its profile's settings; a profile the config does not name gets the
        // defaults (search domains routed, as systemd-resolved does).
        let profile = spec.profile.as_ref().and_then(|p| self.profiles().get(p).cloned()).unwrap_or_default();
        profile.apply(&mut spec);
        let ifindex = match &spec.interface {
            None => None,
            Some(name) => match interface_index(name) {
                Some(i) => Some(i),
                None => return Err(LinkError::NoInterface { id: spec.id.clone(), name: name.clone() }),
            },
        };
        let mut inner = self.lock();
        let before = self.snapshot.load().assignments();
        let up = inner.table.upsert(spec, now_unix(), ifindex)?;
        let link = up.link;
        let mut abandoned = 0;
        for old in &up.replaced {
            let (flushed, in_flight) = self.retire(&mut inner, old.seq);
            abandoned += in_flight;
            inner.remember_removed(RemovedLink {
                id: old.spec.id.clone(),
                profile: old.spec.profile.clone(),
                at: now_unix(),
                reason: RemovalReason::Replaced,
                detail: format!("replaced by link {:?} (same id or profile: a reconnect)", link.spec.id),
                domains: before.iter().filter(|(_, r)| **r == old.seq).map(|(d, _)| d.to_string()).collect(),
                cache_entries_flushed: flushed,
                anchors_dropped: old.spec.anchors.len(),
                queries_abandoned: in_flight,
            });
        }
        let route = link_route(&link, inner.timing, &self.budgets);
        inner.routes.insert(link.seq, route);
        let warnings = self.publish(&mut inner, &before);
        let resolved = inner.table.resolve();
        let me = resolved.iter().find(|r| r.link.seq == link.seq);
        let result = LinkUpResult {
            id: link.spec.id.clone(),
            accepted: me.map(|r| r.accepted.iter().map(ToString::to_string).collect()).unwrap_or_default(),
            refused: me.map(|r| r.refused.clone()).unwrap_or_default(),
            anchors: me.map(|r| self.overlay(&inner, r.link.seq, &r.anchors)).unwrap_or_default(),
            replaced: up.replaced.iter().map(|l| l.spec.id.clone()).collect(),
            default_route: me.is_some_and(|r| r.is_default_route),
            warnings,
        };
        info!(
            link = %result.id,
            profile = ?link.spec.profile,
            servers = ?link.spec.servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            accepted = ?result.accepted,
            refused = ?result.refused.iter().map(|r| r.domain.to_string()).collect::<Vec<_>>(),
            replaced = ?result.replaced,
            abandoned,
            "link up"
        );
        for r in &result.refused {
            warn!(link = %result.id, domain = %r.domain, reason = %r.reason, "split domain refused");
        }
        Ok(result)
    }

    /// Like [`Agent::link_up`], then waits (at most `wait`) for the link's trust anchors to be
    /// verified, so the reply says whether they are in force.
    pub async fn link_up_settled(&self, spec: LinkSpec, wait: std::time::Duration) -> Result<LinkUpResult, LinkError> {
        let mut result = self.link_up(spec)?;
        let trusts: Vec<Arc<ZoneTrust>> = {
            let inner = self.lock();
            let seq = inner.table.get(&result.id).map(|l| l.seq);
            inner.trusts.iter().filter(|((s, _), _)| Some(*s) == seq).map(|(_, t)| t.clone()).collect()
        };
        let settle = futures_util::future::join_all(trusts.iter().map(|t| t.settled()));
        let _ = tokio::time::timeout(wait, settle).await;
        let inner = self.lock();
        if let Some(r) = inner.table.resolve().into_iter().find(|r| r.link.spec.id == result.id) {
            result.anchors = self.overlay(&inner, r.link.seq, &r.anchors);
        }
        Ok(result)
    }

    /// The agent's word on each offered anchor: used (and how its verification stands) or not.
    fn overlay(&self, inner: &Inner, seq: u64, views: &[AnchorView]) -> Vec<AnchorView> {
        views
            .iter()
            .map(|v| {
                if v.state != "offered" {
                    return v.clone();
                }
                let pending = inner.pending.get(&(seq, v.anchor.to_string()));
                let by = inner.whitelist.list.covers(&v.anchor.owner);
                let (state, reason) = match (pending, by) {
                    (Some((_, why)), _) => ("pending review".to_string(), why.clone()),
                    (None, None) => ("not used".into(), "not on the whitelist".into()),
                    (None, Some(by)) => {
                        match inner.trusts.get(&(seq, v.anchor.owner.to_lower_name())).map(|t| t.state()) {
                            Some(st) => match &*st {
                                TrustState::Pending => ("verifying".into(), "fetching the DNSKEY set".into()),
                                TrustState::Verified { .. } => (
                                    "in use".into(),
                                    format!("whitelisted by {by}; the DNSKEY set of {} is verified", v.anchor.owner),
                                ),
                                TrustState::Failed { reason, .. } => ("failed".into(), reason.clone()),
                                TrustState::Insecure { reason, .. } => ("not used".into(), reason.clone()),
                            },
                            None => ("not used".into(), "no validator for this zone".into()),
                        }
                    }
                };
                AnchorView { anchor: v.anchor.clone(), state, reason }
            })
            .collect()
    }

    /// Re-reads the whitelist (the file changed, or SIGHUP). A file that fails to read, parse,
    /// pass the permission check or stay within the size limits keeps the last good list in force.
    ///
    /// The file is read and parsed on a blocking thread, not on a runtime worker and not under the
    /// agent's lock; the lock is taken only to swap the result in. Reloads run one at a time.
    pub async fn reload_whitelist(&self) {
        let _one_at_a_time = self.reloading.lock().await;
        let (path, last) = {
            let inner = self.lock();
            (inner.whitelist.path.clone(), inner.whitelist.list.clone())
        };
        let read = match tokio::task::spawn_blocking(move || WhitelistState::read(&path, Some(&last))).await {
            Ok(read) => read,
            Err(e) => {
                error!("whitelist: reading it failed ({e}); the last good whitelist stays in force");
                return;
            }
        };
        let mut inner = self.lock();
        let unchanged = read.list == inner.whitelist.list;
        inner.whitelist = read;
        if unchanged {
            // Same domains: nothing to re-evaluate (and nothing to save).
            return;
        }
        let before = self.snapshot.load().assignments();
        self.publish(&mut inner, &before);
    }

    /// Tears a link down. An unknown id is not an error.
    pub fn link_down(&self, id: &str) -> LinkDownResult {
        let mut inner = self.lock();
        self.teardown(&mut inner, id, RemovalReason::Request, "link down request".into()).unwrap_or_else(|| {
            LinkDownResult {
                id: id.to_string(),
                found: false,
                domains_removed: vec![],
                anchors_dropped: 0,
                cache_entries_flushed: 0,
                queries_abandoned: 0,
                warnings: vec![],
            }
        })
    }

    /// An interface disappeared (rtnetlink RTM_DELLINK): every link bound to that index goes, with
    /// all four RFC 8598 §5 effects, as if its VPN client had run its down hook. Also sweeps for
    /// other links whose interface is gone (a missed event). Returns the ids torn down.
    pub fn interface_gone(&self, index: u32) -> Vec<String> {
        let mut inner = self.lock();
        let gone: Vec<(String, String)> = inner
            .table
            .links()
            .into_iter()
            .filter_map(|l| {
                let idx = l.ifindex?;
                let name = l.spec.interface.clone().unwrap_or_default();
                let vanished = idx == index || interface_name(idx).is_none();
                vanished.then(|| (l.spec.id.clone(), format!("interface {name} (index {idx}) disappeared")))
            })
            .collect();
        let mut ids = Vec::new();
        for (id, why) in gone {
            if self.teardown(&mut inner, &id, RemovalReason::InterfaceGone, why).is_some() {
                ids.push(id);
            }
        }
        ids
    }

    /// Removes link `id` from the table and does what RFC 8598 §5 asks: its routes go with the
    /// next snapshot, its cached answers (negative too) and anchors are dropped, its queries in
    /// flight are abandoned. Records it as removed for `status`. `None`: no such link.
    fn teardown(&self, inner: &mut Inner, id: &str, reason: RemovalReason, detail: String) -> Option<LinkDownResult> {
        let before = self.snapshot.load().assignments();
        let link = inner.table.remove(id)?;
        let (mut flushed, abandoned) = self.retire(inner, link.seq);
        let domains_removed: Vec<String> =
            before.iter().filter(|(_, r)| **r == link.seq).map(|(d, _)| d.to_string()).collect();
        let flushed_before = self.cache.len();
        let warnings = self.publish(inner, &before);
        flushed += flushed_before.saturating_sub(self.cache.len());
        match reason {
            RemovalReason::Request => {
                info!(link = %id, domains = ?domains_removed, flushed, abandoned, "link down")
            }
            _ => warn!(link = %id, domains = ?domains_removed, flushed, abandoned, why = %detail, "link removed"),
        }
        inner.remember_removed(RemovedLink {
            id: id.to_string(),
            profile: link.spec.profile.clone(),
            at: now_unix(),
            reason,
            detail,
            domains: domains_removed.clone(),
            cache_entries_flushed: flushed,
            anchors_dropped: link.spec.anchors.len(),
            queries_abandoned: abandoned,
        });
        Some(LinkDownResult {
            id: id.to_string(),
            found: true,
            domains_removed,
            anchors_dropped: link.spec.anchors.len(),
            cache_entries_flushed: flushed,
            queries_abandoned: abandoned,
            warnings,
        })
    }

    /// Replaces the default upstream (start, config reload, a change of the followed resolv.conf).
    /// A source that lists no usable server keeps the last good servers in force.
    pub fn set_system_upstream(&self, servers: &[SocketAddr], source: String, timing: Timing) {
        let mut inner = self.lock();
        let current = inner.system.upstream.servers().iter().map(|s| s.addr).collect::<Vec<_>>();
        if servers.is_empty() && !current.is_empty() {
            let note = format!("{source} lists no usable server: the last good servers stay in force");
            if inner.upstream_note.as_deref() != Some(note.as_str()) {
                warn!("default upstream: {note}");
                inner.upstream_note = Some(note);
            }
            return;
        }
        inner.upstream_note = servers.is_empty().then(|| {
            format!("no usable server in {source}: names outside split domains get SERVFAIL until one appears")
        });
        let unchanged = inner.timing.total == timing.total
            && current == servers
            && matches!(&inner.system.owner, Owner::System { source: s } if *s == source);
        if unchanged {
            return;
        }
        match &inner.upstream_note {
            Some(note) => warn!(%source, "default upstream: {note}"),
            None => info!(servers = ?servers, %source, "default upstream"),
        }
        let old = std::mem::replace(&mut inner.system, system_route(servers, source, timing, &self.budgets));
        old.cancel.cancel();
        inner.timing = timing;
        if current != servers {
            inner.upstream_changed_at = now_unix();
        }
        self.cache.flush_route(SYSTEM_ROUTE);
        let before = self.snapshot.load().assignments();
        self.publish(&mut inner, &before);
    }

    /// Records whether the system still points at the agent (`None`: system-dns is not enabled).
    /// Logs a warning when it stops doing so.
    pub fn set_system_dns(&self, state: Option<SystemDnsStatus>) {
        let mut inner = self.lock();
        let was = inner.system_dns.as_ref().map(|s| s.points_at_agent);
        if let Some(s) = &state
            && !s.points_at_agent
            && was != Some(false)
        {
            warn!(
                warnings = ?s.warnings,
                "the system no longer points at splitdns: programs bypass it, and split names may leak to \
                 another resolver; run `splitdns system-dns status` and `splitdns system-dns enable`"
            );
        }
        if let Some(s) = &state
            && s.points_at_agent
            && was == Some(false)
        {
            info!("the system points at splitdns again");
        }
        inner.system_dns = state;
    }

    /// Cancels a retired route's in-flight queries, flushes its cached answers and forgets it.
    /// Returns (answers flushed, queries that were in flight).
    fn retire(&self, inner: &mut Inner, seq: u64) -> (usize, u64) {
        let Some(route) = inner.routes.remove(&seq) else {
            return (0, 0);
        };
        let in_flight = route.stats.in_flight.load(Ordering::Relaxed);
        route.cancel.cancel();
        (self.cache.flush_route(seq), in_flight)
    }

    /// Swaps in a snapshot for the current table, flushes the cache for every domain whose route
    /// changed, and saves the table. Returns warnings.
    fn publish(&self, inner: &mut Inner, before: &HashMap<crate::domain::DomainName, u64>) -> Vec<String> {
        for zone in sync_trusts(inner) {
            self.cache.flush_domain(&zone);
        }
        let snapshot = build_snapshot(inner);
        let after = snapshot.assignments();
        self.snapshot.store(Arc::new(snapshot));
        let changed: HashSet<&crate::domain::DomainName> = before
            .iter()
            .filter(|(d, r)| after.get(*d) != Some(*r))
            .map(|(d, _)| d)
            .chain(after.iter().filter(|(d, r)| before.get(*d) != Some(*r)).map(|(d, _)| d))
            .collect();
        for domain in changed {
            self.cache.flush_domain(&domain.to_lower_name());
        }
        let links: Vec<Link> = inner.table.links().into_iter().cloned().collect();
        match self.store.save(&links) {
            Ok(()) => {
                inner.state_problem = StateProblem::default();
                vec![]
            }
            Err(e) => {
                let msg = format!("the change is in effect but not saved: {e}; it will be lost if the daemon restarts");
                warn!("{msg}");
                inner.state_problem.save = Some(msg.clone());
                vec![msg]
            }
        }
    }

    /// Everything `splitdns status` shows.
    pub fn status(&self) -> Status {
        let inner = self.lock();
        let snapshot = self.snapshot.load();
        let default = snapshot.default_route();
        let links = inner
            .table
            .resolve()
            .into_iter()
            .map(|r| {
                let route = inner.routes.get(&r.link.seq);
                LinkStatus {
                    id: r.link.spec.id.clone(),
                    profile: r.link.spec.profile.clone(),
                    up_since: r.link.up_since,
                    servers: route.map(|rt| servers_status(rt)).unwrap_or_default(),
                    interface: r.link.spec.interface.clone(),
                    source: r.link.spec.source.map(|s| s.to_string()),
                    full_tunnel: r.link.spec.full_tunnel,
                    default_route: r.is_default_route,
                    domains: r.accepted.iter().map(ToString::to_string).collect(),
                    refused: r.refused.clone(),
                    anchors: self.overlay(&inner, r.link.seq, &r.anchors),
                    trust: trust_status(&inner, r.link.seq),
                    counters: route.map(|rt| counters(rt)).unwrap_or_default(),
                }
            })
            .collect();
        let source = match &default.owner {
            Owner::System { source } => source.clone(),
            Owner::Link { id } => format!("full-tunnel link {id:?} (default route)"),
        };
        let s = &self.stats;
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            listen: self.listen.lock().unwrap_or_else(|e| e.into_inner()).iter().map(ToString::to_string).collect(),
            state_file: self.store.path().display().to_string(),
            state_file_problem: inner.state_problem.text(),
            default_upstream: UpstreamStatus {
                source,
                servers: servers_status(default),
                counters: counters(default),
                changed_at: Some(inner.upstream_changed_at),
                note: inner.upstream_note.clone(),
            },
            links,
            counters: Counters {
                queries: s.queries.load(Ordering::Relaxed),
                cache_hits: s.cache_hits.load(Ordering::Relaxed),
                cache_misses: s.cache_misses.load(Ordering::Relaxed),
                servfail: s.servfail.load(Ordering::Relaxed),
                refused: s.refused.load(Ordering::Relaxed),
                formerr: s.formerr.load(Ordering::Relaxed),
            },
            cache: CacheStatus {
                entries: self.cache.len(),
                bytes: self.cache.weight(),
                max_bytes: self.cache.limits().max_bytes,
                failures: self.cache.failures_len(),
            },
            whitelist: WhitelistStatus {
                path: inner.whitelist.path.display().to_string(),
                state: inner.whitelist.state.clone(),
                entries: inner.whitelist.list.entries().iter().map(|e| e.domain.to_string()).collect(),
                problems: inner.whitelist.problems.clone(),
            },
            pending_reviews: pending_reviews(&inner),
            removed_links: inner.removed.iter().cloned().collect(),
            system_dns: inner.system_dns.clone(),
        }
    }
}

fn pending_reviews(inner: &Inner) -> Vec<PendingReview> {
    let mut out = Vec::new();
    for link in inner.table.links() {
        for a in &link.spec.anchors {
            if let Some((since, why)) = inner.pending.get(&(link.seq, a.to_string())) {
                out.push(PendingReview {
                    link: link.spec.id.clone(),
                    profile: link.spec.profile.clone(),
                    domain: a.owner.to_string(),
                    ds: a.to_string(),
                    since: *since,
                    reason: why.clone(),
                });
            }
        }
    }
    out
}

fn build_snapshot(inner: &Inner) -> Snapshot {
    let resolved = inner.table.resolve();
    let mut domains = Vec::new();
    let mut default = inner.system.clone();
    for r in &resolved {
        let Some(route) = inner.routes.get(&r.link.seq) else {
            continue;
        };
        for d in &r.accepted {
            domains.push((d.clone(), route.clone()));
        }
        if r.is_default_route {
            default = route.clone();
        }
    }
    let trust = inner.trusts.values().map(|t| (t.lower.clone(), t.clone())).collect();
    Snapshot::new(domains, default, trust)
}

/// What the links' anchors and split domains call for: a pure decision, unit-tested below.
#[derive(Debug, Default, PartialEq, Eq)]
struct TrustPlan {
    /// Anchored zones in force, by (link seq, zone), with their DS records; in claim order.
    anchored: Vec<((u64, DomainName), Vec<DsAnchor>)>,
    /// Nested split domains inside another link's island, by (link seq, domain), with the key of
    /// the enclosing trust (anchored or itself derived) that the chain of trust runs through.
    derived: Vec<((u64, DomainName), (u64, DomainName))>,
    /// Offered anchors that wait for a person: (link seq, DS, why).
    pending: Vec<(u64, DsAnchor, String)>,
}

/// Decides which offered anchors are used and which nested split domains need a chain of trust
/// from an enclosing island. `permit` is the whitelist's word on one anchor given the zones already
/// accepted (owner link seq, zone): `Err` says why it waits for review.
fn plan_trusts(
    resolved: &[crate::state::Resolved],
    permit: impl Fn(&crate::state::Resolved, &DsAnchor, &[(u64, DomainName)]) -> Result<(), String>,
) -> TrustPlan {
    let mut plan = TrustPlan::default();
    // Which link a name is routed to: the deepest accepted split domain covering it.
    let route_of = |name: &DomainName| {
        resolved
            .iter()
            .flat_map(|r| r.accepted.iter().map(move |d| (d, r.link.seq)))
            .filter(|(d, _)| name.is_at_or_under(d))
            .max_by_key(|(d, _)| d.label_count())
            .map(|(_, seq)| seq)
    };
    let mut accepted: Vec<(u64, DomainName)> = Vec::new();
    for r in resolved {
        for a in r.anchors.iter().filter(|a| a.state == "offered") {
            // An anchor speaks for names this link serves, never for a nested link's.
            if route_of(&a.anchor.owner) != Some(r.link.seq) {
                continue;
            }
            match permit(r, &a.anchor, &accepted) {
                Ok(()) => {
                    let key = (r.link.seq, a.anchor.owner.clone());
                    match plan.anchored.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, ds)) => ds.push(a.anchor.clone()),
                        None => {
                            plan.anchored.push((key.clone(), vec![a.anchor.clone()]));
                            accepted.push(key);
                        }
                    }
                }
                Err(why) => plan.pending.push((r.link.seq, a.anchor.clone(), why)),
            }
        }
    }
    // Every split domain inside an island of another link gets a chain of trust from it, shallow
    // domains first so that a deeper one can chain through a shallower derived one.
    let mut zones: Vec<(u64, DomainName)> = accepted;
    let mut domains: Vec<(u64, &DomainName)> =
        resolved.iter().flat_map(|r| r.accepted.iter().map(move |d| (r.link.seq, d))).collect();
    domains.sort_by_key(|(_, d)| d.label_count());
    for (seq, d) in domains {
        if zones.iter().any(|(s, z)| *s == seq && z == d) {
            continue;
        }
        let enclosing = zones.iter().filter(|(_, z)| d.is_at_or_under(z)).max_by_key(|(_, z)| z.label_count()).cloned();
        if let Some(parent) = enclosing
            && parent.0 != seq
        {
            let key = (seq, d.clone());
            plan.derived.push((key.clone(), parent));
            zones.push(key);
        }
    }
    plan
}

/// Brings the validators in line with the anchors offered for accepted domains and allowed by the
/// whitelist (RFC 8598 §6 W2, W7, W8; §8 S1), and with the nested split domains of other links
/// inside anchored zones (their chain of trust runs through the enclosing island): starts new ones,
/// keeps unchanged ones (and their verified keys), drops the rest. Anchors that are not
/// whitelisted are remembered as pending review. Returns the zones whose validation changed (their
/// cached answers must go).
fn sync_trusts(inner: &mut Inner) -> Vec<LowerName> {
    let resolved = inner.table.resolve();
    let whitelist = &inner.whitelist.list;
    let path = inner.whitelist.path.clone();
    let identity = |seq: u64| resolved.iter().find(|r| r.link.seq == seq).map(|r| r.link.spec.owner_identity());
    let plan = plan_trusts(&resolved, |link, anchor, accepted| {
        let profile = link.link.spec.profile.as_deref();
        let review = "it changes nothing until a person approves it (`splitdns whitelist review`, RFC 8598 §6)";
        if let Err(why) = whitelist.permits(&anchor.owner, profile) {
            return Err(format!("{why} ({}): {review}", path.display()));
        }
        // Approving an island approved the key of the VPN that anchored it, not any VPN's key for
        // names under it: another profile's anchor inside needs its own, bound approval.
        let mine = link.link.spec.owner_identity();
        let island = accepted
            .iter()
            .filter(|(seq, z)| anchor.owner.is_at_or_under(z) && identity(*seq).is_some_and(|o| o != mine))
            .max_by_key(|(_, z)| z.label_count());
        match island {
            Some((seq, z)) if whitelist.bound_to(&anchor.owner, profile).is_none() => Err(format!(
                "{} lies inside {z}, anchored by {}: approving {z} approved that VPN's key, not this one's; {review} \
                 for {mine}",
                anchor.owner,
                identity(*seq).map(|o| o.to_string()).unwrap_or_default(),
            )),
            _ => Ok(()),
        }
    });
    let now = now_unix();
    let mut pending = HashMap::new();
    for (seq, anchor, why) in &plan.pending {
        let key = (*seq, anchor.to_string());
        let since = inner.pending.get(&key).map(|(since, _)| *since).unwrap_or_else(|| {
            let link = resolved.iter().find(|r| r.link.seq == *seq).map(|r| &r.link.spec);
            warn!(
                link = ?link.map(|l| &l.id), profile = ?link.and_then(|l| l.profile.as_ref()), domain = %anchor.owner,
                ds = %anchor, %why, "trust anchor NOT used; pending review"
            );
            now
        });
        pending.insert(key, (since, why.clone()));
    }
    inner.pending = pending;

    let lower = |(seq, d): &(u64, DomainName)| (*seq, d.to_lower_name());
    let mut changed = Vec::new();
    // Anchored zones first: derived ones chain through them.
    inner.trusts.retain(|key, t| {
        let keep =
            t.parent.is_none() && plan.anchored.iter().any(|(k, anchors)| lower(k) == *key && *anchors == t.anchors);
        if !keep && t.parent.is_none() {
            info!(zone = %t.zone, "trust anchor withdrawn: its answers are no longer validated");
            changed.push(key.1.clone());
        }
        keep || t.parent.is_some()
    });
    for (key, anchors) in &plan.anchored {
        let k = lower(key);
        // Kept above if unchanged; a derived trust at the same name gives way to the approved anchor.
        if inner.trusts.get(&k).is_some_and(|t| t.parent.is_none()) {
            continue;
        }
        let Some(route) = inner.routes.get(&key.0) else { continue };
        info!(zone = %key.1, by = ?inner.whitelist.list.covers(&key.1), "trust anchor accepted: domain is whitelisted");
        changed.push(k.1.clone());
        inner.trusts.insert(k, ZoneTrust::start(key.1.clone(), anchors.clone(), route.clone()));
    }
    // Derived trusts: kept while their enclosing trust is the very same one.
    let mut derived: HashMap<(u64, LowerName), Arc<ZoneTrust>> = HashMap::new();
    for (key, parent_key) in &plan.derived {
        let (k, pk) = (lower(key), lower(parent_key));
        let Some(parent) = derived.get(&pk).or_else(|| inner.trusts.get(&pk)).cloned() else { continue };
        let existing = inner.trusts.get(&k).filter(|t| t.parent.as_ref().is_some_and(|p| Arc::ptr_eq(p, &parent)));
        let trust = match existing {
            Some(t) => t.clone(),
            None => {
                let Some(route) = inner.routes.get(&key.0) else { continue };
                info!(zone = %key.1, island = %parent.domain, "nested split domain inside another link's island: its chain of trust runs through it");
                changed.push(k.1.clone());
                ZoneTrust::derive(key.1.clone(), route.clone(), parent)
            }
        };
        derived.insert(k, trust);
    }
    inner.trusts.retain(|key, t| {
        let keep = t.parent.is_none() || derived.get(key).is_some_and(|d| Arc::ptr_eq(d, t));
        if !keep {
            changed.push(key.1.clone());
        }
        keep
    });
    inner.trusts.extend(derived);
    changed
}

fn trust_status(inner: &Inner, seq: u64) -> Vec<TrustStatus> {
    let mut out: Vec<TrustStatus> = inner
        .trusts
        .iter()
        .filter(|((s, _), _)| *s == seq)
        .map(|(_, t)| {
            let st = t.state();
            let (state, reason, keys, signed_by, verified_at, next_check) = match &*st {
                TrustState::Pending => ("verifying", None, vec![], vec![], None, None),
                TrustState::Verified { keys, verified_at, recheck_unix, via, .. } => (
                    "verified",
                    via.clone(),
                    crate::trust::anchors::key_summary(&keys.keys),
                    keys.matched_tags.clone(),
                    Some(*verified_at),
                    Some(*recheck_unix),
                ),
                TrustState::Failed { reason, at } => ("failed", Some(reason.clone()), vec![], vec![], Some(*at), None),
                TrustState::Insecure { reason, at } => {
                    ("insecure", Some(reason.clone()), vec![], vec![], Some(*at), None)
                }
            };
            let c = &t.counters;
            let (signature_cache_hits, signature_checks) = match &*st {
                TrustState::Verified { sigs, .. } => (sigs.hits(), sigs.misses()),
                _ => (0, 0),
            };
            TrustStatus {
                zone: t.domain.to_string(),
                ds: t.anchors.iter().map(ToString::to_string).collect(),
                state: state.into(),
                reason,
                keys,
                signed_by,
                verified_at,
                next_check,
                secure: c.secure.load(Ordering::Relaxed),
                fast_secure: c.fast_secure.load(Ordering::Relaxed),
                signature_cache_hits,
                signature_checks,
                insecure: c.insecure.load(Ordering::Relaxed),
                bogus: c.bogus.load(Ordering::Relaxed),
            }
        })
        .collect();
    out.sort_by(|a, b| a.zone.cmp(&b.zone));
    out
}

fn servers_status(route: &Route) -> Vec<ServerStatus> {
    let epoch = route.upstream.epoch();
    route
        .upstream
        .servers()
        .iter()
        .map(|s| ServerStatus {
            addr: s.addr.to_string(),
            transport: if s.prefers_tcp(epoch) { "tcp (udp unanswered)".into() } else { "udp".into() },
            answers_udp: s.answers_udp.load(Ordering::Relaxed),
            answers_tcp: s.answers_tcp.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
        })
        .collect()
}

fn counters(route: &Route) -> RouteCounters {
    let s = &route.stats;
    RouteCounters {
        queries: s.queries.load(Ordering::Relaxed),
        cache_hits: s.cache_hits.load(Ordering::Relaxed),
        forwards: s.forwards.load(Ordering::Relaxed),
        failures: s.failures.load(Ordering::Relaxed),
        abandoned: s.abandoned.load(Ordering::Relaxed),
        in_flight: s.in_flight.load(Ordering::Relaxed),
        shed: s.shed.load(Ordering::Relaxed),
    }
}

/// The index of the interface named `name`, if it exists.
pub fn interface_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The name of the interface with index `index`, if it exists.
fn interface_name(index: u32) -> Option<String> {
    let all = nix::net::if_::if_nameindex().ok()?;
    all.iter().find(|i| i.index() == index).map(|i| i.name().to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::link::tests::spec;

    fn ds(owner: &str) -> DsAnchor {
        format!("{owner}. IN DS 1 13 2 {}", "AB".repeat(32)).parse().unwrap()
    }

    fn d(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    /// A table of links (id, domains, anchors), resolved.
    fn resolved(links: &[(&str, &[&str], &[&str])]) -> Vec<crate::state::Resolved> {
        let mut t = LinkTable::default();
        for (i, (id, domains, anchors)) in links.iter().enumerate() {
            let mut s = spec(id, Some(id), domains);
            s.anchors = anchors.iter().map(|a| ds(a)).collect();
            t.upsert(s, i as u64, None).unwrap();
        }
        t.resolve()
    }

    fn all_permitted(_: &crate::state::Resolved, _: &DsAnchor, _: &[(u64, DomainName)]) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn nested_split_domains_chain_through_the_enclosing_island() {
        let r = resolved(&[
            ("corp", &["corp.example"], &["corp.example"]),
            ("eng", &["eng.corp.example"], &[]),
            ("lab", &["lab.eng.corp.example"], &[]),
            ("other", &["other.example"], &[]),
        ]);
        let seq = |id: &str| r.iter().find(|x| x.link.spec.id == id).unwrap().link.seq;
        let plan = plan_trusts(&r, all_permitted);
        assert_eq!(plan.anchored, vec![((seq("corp"), d("corp.example")), vec![ds("corp.example")])]);
        assert_eq!(
            plan.derived,
            vec![
                ((seq("eng"), d("eng.corp.example")), (seq("corp"), d("corp.example"))),
                ((seq("lab"), d("lab.eng.corp.example")), (seq("eng"), d("eng.corp.example"))),
            ],
            "eng chains through corp's island, lab through eng's; other.example is outside any island"
        );
        assert!(plan.pending.is_empty());
    }

    #[test]
    fn a_nested_domain_of_the_same_link_or_with_its_own_anchor_needs_no_chain() {
        let r = resolved(&[
            ("corp", &["corp.example", "eng.corp.example"], &["corp.example"]),
            ("lab", &["lab.corp.example"], &["lab.corp.example"]),
        ]);
        let plan = plan_trusts(&r, all_permitted);
        assert!(plan.derived.is_empty(), "{:?}", plan.derived);
        assert_eq!(plan.anchored.len(), 2);
    }

    #[test]
    fn an_anchor_never_speaks_for_another_links_names_and_refusals_are_pending() {
        // corp offers a DS for eng.corp.example, which the eng link routes: not corp's to give.
        let r = resolved(&[
            ("corp", &["corp.example"], &["corp.example", "eng.corp.example"]),
            ("eng", &["eng.corp.example"], &[]),
        ]);
        let plan = plan_trusts(&r, all_permitted);
        assert_eq!(plan.anchored.len(), 1, "{:?}", plan.anchored);
        assert_eq!(plan.anchored[0].0.1, d("corp.example"));
        // The whitelist's refusal makes an anchor pending, with the reason, and no island.
        let plan = plan_trusts(&r, |_, a, _| Err(format!("{} not approved", a.owner)));
        assert!(plan.anchored.is_empty() && plan.derived.is_empty());
        assert_eq!(plan.pending.len(), 1);
        assert_eq!(plan.pending[0].2, "corp.example not approved");
    }

    #[test]
    fn the_permit_sees_the_zones_accepted_before_in_claim_order() {
        let r = resolved(&[
            ("corp", &["corp.example"], &["corp.example"]),
            ("eng", &["eng.corp.example"], &["eng.corp.example"]),
        ]);
        let corp = r[0].link.seq;
        let plan = plan_trusts(&r, |link, _, accepted| match accepted.iter().any(|(s, _)| *s != link.link.seq) {
            true => Err("inside another profile's island".into()),
            false => Ok(()),
        });
        assert_eq!(plan.anchored.len(), 1);
        assert_eq!(plan.anchored[0].0, (corp, d("corp.example")));
        assert_eq!(plan.pending.len(), 1);
        assert_eq!(plan.derived.len(), 1, "the refused link chains through the island instead");
    }
}
