//! The agent: holds the daemon's state under one lock and runs the operations on it — link up and
//! down, a vanished interface, a new default upstream, profiles, a whitelist reload.
//!
//! Every change runs the same steps under that lock: update the [`LinkTable`], create or retire the
//! runtime [`Route`]s, reconcile anchors, validators and the routing [`Snapshot`]
//! ([`super::reconcile`]) and swap the snapshot in, flush cached answers for every domain whose route
//! changed, and save the table. Teardown of a link therefore does all four things RFC 8598 §5 asks:
//! its forwarding rules go with the snapshot, its cached answers (negative ones too) are flushed,
//! its trust anchors leave with the link, and its in-flight queries are abandoned. What `status`
//! shows is built in [`super::status`].
//!
//! Nothing slow runs under that lock or on the runtime's worker threads: the whitelist is read and
//! parsed on a blocking thread ([`super::whitelist_state`]), and the lock is taken only to swap the
//! result in, so a big or slow whitelist never holds up queries (cached or not) or control requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use super::agent_state::{Inner, StateProblem};
use super::events::{self, Events};
use super::reconcile::{build_snapshot, sync_trusts};
use super::whitelist_state::WhitelistState;
use crate::clock::{Stamp, unix_now};
use crate::config::DefaultUpstreamTls;
use crate::control::events::EventKind;
use crate::control::protocol::{LinkDownResult, LinkUpResult, RemovalReason, RemovedLink, SystemDnsStatus};
use crate::dns::cache::Cache;
use crate::dns::handler::Stats;
use crate::dns::route::{Budget, Owner, Route, SYSTEM_ROUTE};
use crate::dns::snapshot::Snapshot;
use crate::dns::tls::TlsContext;
use crate::dns::upstream::{Bind, Timing, Upstream, UpstreamTls};
use crate::dns::validate::ZoneTrust;
use crate::domain::DomainName;
use crate::server_addr::{ServerAddr, Transport};
use crate::state::persist::Store;
use crate::state::{Link, LinkSpec, LinkTable, SpecError};

/// Why a `link up` was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("link {id:?}: interface {name:?} does not exist on this machine (is the tunnel up?)")]
    NoInterface { id: String, name: String },
}

/// How queries are forwarded: the retry schedule, the budgets of queries in flight, the CAs
/// trusted for TLS servers and whether the default upstream's plain servers use TLS.
#[derive(Clone, Debug)]
pub(crate) struct Forwarding {
    pub timing: Timing,
    pub budget: Budget,
    pub tls: Arc<TlsContext>,
    pub default_tls: DefaultUpstreamTls,
}

/// The default upstream's servers and where they came from (config, resolv.conf).
#[derive(Clone, Debug, Default)]
pub(crate) struct SystemUpstream {
    pub servers: Vec<ServerAddr>,
    pub source: String,
}

/// The daemon's state, shared by the control socket and the signal handlers.
pub(crate) struct Agent {
    pub(super) inner: Mutex<Inner>,
    /// Per-profile settings from the config file, applied to links as they come up.
    pub(super) profiles: Mutex<HashMap<String, crate::config::Profile>>,
    pub(super) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(super) cache: Arc<Cache>,
    pub(super) stats: Arc<Stats>,
    pub(super) store: Store,
    pub(super) started: Stamp,
    pub(super) setup: RouteSetup,
    /// Where the `watch` stream's events go out.
    pub(super) events: Arc<Events>,
    pub(super) listen: Mutex<Vec<SocketAddr>>,
    /// Held across a whole whitelist reload, so two reloads (an edit, SIGHUP) never finish out of
    /// order and swap in the older read.
    pub(super) reloading: tokio::sync::Mutex<()>,
}

/// What routes are built with besides their servers: the budgets of queries in flight and TLS.
pub(super) struct RouteSetup {
    budget: Budget,
    /// Shared by every link route ([`Budget::links`]).
    links: Arc<Semaphore>,
    tls: Arc<TlsContext>,
    pub(super) default_tls: DefaultUpstreamTls,
}

impl RouteSetup {
    fn new(f: &Forwarding) -> Self {
        Self {
            budget: f.budget,
            links: Arc::new(Semaphore::new(f.budget.links)),
            tls: f.tls.clone(),
            default_tls: f.default_tls,
        }
    }

    /// The default upstream's servers as `default_tls` has them asked: plain servers become
    /// TLS servers on port 853 (`strict`), or are tried there first (`opportunistic`).
    fn system_servers(&self, servers: &[ServerAddr]) -> Vec<ServerAddr> {
        match self.default_tls {
            DefaultUpstreamTls::Strict => servers
                .iter()
                .map(|s| match s.transport {
                    Transport::Udp => {
                        ServerAddr { addr: SocketAddr::new(s.addr.ip(), 853), transport: Transport::Tls { name: None } }
                    }
                    _ => s.clone(),
                })
                .collect(),
            _ => servers.to_vec(),
        }
    }

    fn system_route(&self, servers: &[ServerAddr], source: String, timing: Timing) -> Arc<Route> {
        let tls = UpstreamTls {
            context: self.tls.clone(),
            opportunistic: self.default_tls == DefaultUpstreamTls::Opportunistic,
        };
        let upstream = Upstream::with_tls(&self.system_servers(servers), Bind::default(), timing, &tls);
        Arc::new(Route::new(SYSTEM_ROUTE, Owner::System { source }, upstream).with_budget(self.budget.per_route, None))
    }

    fn link_route(&self, link: &Link, timing: Timing) -> Arc<Route> {
        let bind = Bind { interface: link.spec.interface.clone(), ifindex: link.ifindex, source: link.spec.source };
        let tls = UpstreamTls { context: self.tls.clone(), opportunistic: false };
        let upstream = Upstream::with_tls(&link.spec.servers, bind, timing, &tls);
        let route = Route::new(link.seq, Owner::Link { id: link.spec.id.clone() }, upstream);
        Arc::new(route.with_budget(self.budget.per_route, Some(self.links.clone())))
    }
}

impl Agent {
    /// Builds the agent from restored links. Links whose interface has vanished while the daemon
    /// was down are dropped (their VPN is gone). `state_refused`: why the state file was not
    /// loaded (shown by `status`). Returns warnings worth logging.
    ///
    /// Reads the whitelist here, before the DNS listener is bound, so nothing waits on it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
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
                    let domains = link.spec.domains.iter().map(ToString::to_string).collect();
                    dropped.push_front(removed_link(&link, RemovalReason::DroppedAtStart, why, domains, 0, 0));
                }
                None => {
                    // A state file from before indexes were recorded: bind to today's index.
                    link.ifindex = now;
                    kept.push(link);
                }
            }
        }
        let table = LinkTable::from_links(kept);
        let timing = forwarding.timing;
        let setup = RouteSetup::new(&forwarding);
        let routes: HashMap<u64, Arc<Route>> =
            table.links().into_iter().map(|l| (l.seq, setup.link_route(l, timing))).collect();
        let system = setup.system_route(&system.servers, system.source, timing);
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
            upstream_changed_at: unix_now(),
            upstream_note: None,
            system_dns: None,
            state_problem: StateProblem { refused_at_start: state_refused, save: None },
        };
        let events = Arc::new(Events::default());
        sync_trusts(&mut inner, &events);
        let snapshot = Arc::new(ArcSwap::from_pointee(build_snapshot(&inner)));
        let agent = Self {
            inner: Mutex::new(inner),
            profiles: Mutex::new(HashMap::new()),
            snapshot,
            cache,
            stats,
            store,
            started: Stamp::now(),
            setup,
            events,
            listen: Mutex::new(vec![]),
            reloading: tokio::sync::Mutex::new(()),
        };
        (agent, warnings)
    }

    /// The snapshot handle the DNS listener reads.
    pub(crate) fn snapshot(&self) -> Arc<ArcSwap<Snapshot>> {
        self.snapshot.clone()
    }

    /// Replaces the per-profile settings (start-up, SIGHUP). They apply to links that come up later.
    pub(crate) fn set_profiles(&self, profiles: HashMap<String, crate::config::Profile>) {
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
    pub(crate) fn set_listen(&self, addrs: Vec<SocketAddr>) {
        *self.listen.lock().unwrap_or_else(|e| e.into_inner()) = addrs;
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the table half-updated in a way that matters
        // more than stopping all control traffic would, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings a link up (or replaces the link with the same id or profile).
    pub(crate) fn link_up(&self, mut spec: LinkSpec) -> Result<LinkUpResult, LinkError> {
        spec.validate()?;
        // Every link gets its profile's settings; a profile the config does not name gets the
        // defaults (search domains routed, as systemd-resolved does).
        let profile = spec.profile.as_ref().and_then(|p| self.profiles().get(p).cloned()).unwrap_or_default();
        profile.apply(&mut spec);
        // The profile may have replaced the servers (`servers`, `tls_name`): check what is used.
        // A server that is the agent itself would loop each query back in until it times out.
        spec.check_not_own(&self.listen.lock().unwrap_or_else(|e| e.into_inner()))?;
        let ifindex = match &spec.interface {
            None => None,
            Some(name) => match interface_index(name) {
                Some(i) => Some(i),
                None => return Err(LinkError::NoInterface { id: spec.id.clone(), name: name.clone() }),
            },
        };
        let mut inner = self.lock();
        let before = self.snapshot.load().assignments();
        let up = inner.table.upsert(spec, unix_now(), ifindex)?;
        let link = up.link;
        let mut abandoned = 0;
        for old in &up.replaced {
            let (flushed, in_flight) = self.retire(&mut inner, old.seq);
            abandoned += in_flight;
            let detail = format!("replaced by link {:?} (same id or profile: a reconnect)", link.spec.id);
            let domains = routed_to(&before, old.seq);
            let removed = removed_link(old, RemovalReason::Replaced, detail, domains, flushed, in_flight);
            self.record_removal(&mut inner, removed);
        }
        let route = self.setup.link_route(&link, inner.timing);
        inner.routes.insert(link.seq, route);
        let resolved = inner.table.resolve();
        let me = resolved.iter().find(|r| r.link.seq == link.seq);
        // The link's own events come first; what its anchors become follows from `publish`.
        if let Some(r) = me {
            let (id, profile) = (link.spec.id.clone(), link.spec.profile.clone());
            self.events.emit(EventKind::LinkUp {
                link: id.clone(),
                profile: profile.clone(),
                domains: r.accepted.iter().map(ToString::to_string).collect(),
                servers: link.spec.servers.iter().map(ToString::to_string).collect(),
                interface: link.spec.interface.clone(),
                replaced: up.replaced.iter().map(|l| l.spec.id.clone()).collect(),
            });
            for refusal in &r.refused {
                self.events.emit(events::domain_refused(&id, &profile, refusal));
            }
            for a in &r.anchors {
                self.events.emit(EventKind::AnchorOffered {
                    link: id.clone(),
                    profile: profile.clone(),
                    domain: a.anchor.owner.to_string(),
                    ds: a.anchor.to_string(),
                });
            }
        }
        let warnings = self.publish(&mut inner, &before);
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
    pub(crate) async fn link_up_settled(
        &self,
        spec: LinkSpec,
        wait: std::time::Duration,
    ) -> Result<LinkUpResult, LinkError> {
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

    /// Re-reads the whitelist (the file changed, or SIGHUP). A file that fails to read, parse,
    /// pass the permission check or stay within the size limits keeps the last good list in force.
    ///
    /// The file is read and parsed on a blocking thread, not on a runtime worker and not under the
    /// agent's lock; the lock is taken only to swap the result in. Reloads run one at a time.
    pub(crate) async fn reload_whitelist(&self) {
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
        let path = read.path.display().to_string();
        self.events.emit(match &read.rejected {
            Some((error, line)) => EventKind::WhitelistRejected { path, error: error.clone(), line: *line },
            None => EventKind::WhitelistReloaded {
                path,
                entries: read.list.entries().iter().map(|e| e.domain.to_string()).collect(),
            },
        });
        inner.whitelist = read;
        if unchanged {
            // Same domains: nothing to re-evaluate (and nothing to save).
            return;
        }
        let before = self.snapshot.load().assignments();
        self.publish(&mut inner, &before);
    }

    /// Tears a link down. An unknown id is not an error.
    pub(crate) fn link_down(&self, id: &str) -> LinkDownResult {
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
    pub(crate) fn interface_gone(&self, index: u32) -> Vec<String> {
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
    /// Tells the watchers a link went, and remembers it for `status`.
    fn record_removal(&self, inner: &mut Inner, removed: RemovedLink) {
        self.events.emit(link_down_event(&removed));
        inner.remember_removed(removed);
    }

    fn teardown(&self, inner: &mut Inner, id: &str, reason: RemovalReason, detail: String) -> Option<LinkDownResult> {
        let before = self.snapshot.load().assignments();
        let link = inner.table.remove(id)?;
        let (mut flushed, abandoned) = self.retire(inner, link.seq);
        let domains_removed = routed_to(&before, link.seq);
        let flushed_before = self.cache.len();
        let warnings = self.publish(inner, &before);
        flushed += flushed_before.saturating_sub(self.cache.len());
        match reason {
            RemovalReason::Request => {
                info!(link = %id, domains = ?domains_removed, flushed, abandoned, "link down")
            }
            _ => warn!(link = %id, domains = ?domains_removed, flushed, abandoned, why = %detail, "link removed"),
        }
        let removed = removed_link(&link, reason, detail, domains_removed.clone(), flushed, abandoned);
        self.record_removal(inner, removed);
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
    pub(crate) fn set_system_upstream(&self, servers: &[ServerAddr], source: String, timing: Timing) {
        let mut inner = self.lock();
        let current = inner.system.upstream.servers();
        let keep_last_good = servers.is_empty() && !current.is_empty();
        let servers_changed = current != self.setup.system_servers(servers).as_slice();
        if keep_last_good {
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
            && !servers_changed
            && matches!(&inner.system.owner, Owner::System { source: s } if *s == source);
        if unchanged {
            return;
        }
        match &inner.upstream_note {
            Some(note) => warn!(%source, "default upstream: {note}"),
            None => info!(servers = ?servers, %source, "default upstream"),
        }
        self.events.emit(EventKind::UpstreamChanged {
            source: source.clone(),
            servers: servers.iter().map(ToString::to_string).collect(),
            note: inner.upstream_note.clone(),
        });
        let old = std::mem::replace(&mut inner.system, self.setup.system_route(servers, source, timing));
        old.cancel.cancel();
        inner.timing = timing;
        if servers_changed {
            inner.upstream_changed_at = unix_now();
        }
        self.cache.flush_route(SYSTEM_ROUTE);
        let before = self.snapshot.load().assignments();
        self.publish(&mut inner, &before);
    }

    /// Records whether the system still points at the agent (`None`: system-dns is not enabled).
    /// Logs a warning when it stops doing so.
    pub(crate) fn set_system_dns(&self, state: Option<SystemDnsStatus>) {
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
        let changed = state.as_ref().map(|s| s.points_at_agent) != was;
        if changed && let Some(s) = &state {
            self.events.emit(events::system_dns(s));
        }
        inner.system_dns = state;
    }

    /// Cancels a retired route's in-flight queries, flushes its cached answers and forgets it.
    /// Returns (answers flushed, queries that were in flight).
    fn retire(&self, inner: &mut Inner, seq: u64) -> (usize, u64) {
        let Some(route) = inner.routes.remove(&seq) else {
            return (0, 0);
        };
        let in_flight = route.report().in_flight;
        route.cancel.cancel();
        (self.cache.flush_route(seq), in_flight)
    }

    /// Swaps in a snapshot for the current table, flushes the cache for every domain whose route
    /// changed, and saves the table. Returns warnings.
    fn publish(&self, inner: &mut Inner, before: &HashMap<crate::domain::DomainName, u64>) -> Vec<String> {
        for zone in sync_trusts(inner, &self.events) {
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
}

/// What `status` and the `link-down` event keep of a removed link.
fn removed_link(
    link: &Link,
    reason: RemovalReason,
    detail: String,
    domains: Vec<String>,
    flushed: usize,
    abandoned: u64,
) -> RemovedLink {
    RemovedLink {
        id: link.spec.id.clone(),
        profile: link.spec.profile.clone(),
        at: unix_now(),
        reason,
        detail,
        domains,
        cache_entries_flushed: flushed,
        anchors_dropped: link.spec.anchors.len(),
        queries_abandoned: abandoned,
    }
}

/// The split domains `before` routed to the link numbered `seq`.
fn routed_to(before: &HashMap<DomainName, u64>, seq: u64) -> Vec<String> {
    before.iter().filter(|(_, r)| **r == seq).map(|(d, _)| d.to_string()).collect()
}

/// The `link-down` event for a removed link.
fn link_down_event(r: &RemovedLink) -> EventKind {
    EventKind::LinkDown {
        link: r.id.clone(),
        profile: r.profile.clone(),
        reason: r.reason,
        detail: r.detail.clone(),
        domains: r.domains.clone(),
    }
}

/// The index of the interface named `name`, if it exists.
pub(crate) fn interface_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The name of the interface with index `index`, if it exists.
fn interface_name(index: u32) -> Option<String> {
    let all = nix::net::if_::if_nameindex().ok()?;
    all.iter().find(|i| i.index() == index).map(|i| i.name().to_string_lossy().into_owned())
}
