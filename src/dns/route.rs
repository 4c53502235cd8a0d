//! Routes and the routing snapshot the listener reads.
//!
//! A [`Route`] is where a query goes: the public upstream (route 0) or one link's internal servers,
//! with that link's counters and the token that abandons its in-flight queries at teardown. A
//! [`Snapshot`] maps split domains to routes and is immutable: the control side builds a new one on
//! every link change and swaps it in atomically, so the query path never takes a lock to route.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::binary::BinEncodable;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::upstream::Upstream;
use super::validate::{TrustMap, ZoneTrust};
use super::wire;
use crate::domain::DomainName;

/// Route id of the system (public) upstream.
pub const SYSTEM_ROUTE: u64 = 0;

/// Who a route belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The normal upstream, with a word on where its servers came from.
    System { source: String },
    /// A VPN link, by id.
    Link { id: String },
}

/// Per-route counters, read by `status`.
#[derive(Debug, Default)]
pub struct RouteStats {
    pub queries: AtomicU64,
    pub cache_hits: AtomicU64,
    pub forwards: AtomicU64,
    pub failures: AtomicU64,
    pub abandoned: AtomicU64,
    /// Queries waiting on this route's servers right now.
    pub in_flight: AtomicU64,
    /// Queries refused at once because the route (or all links together) had their budget of
    /// queries in flight.
    pub shed: AtomicU64,
}

/// How many queries may wait on upstream servers at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// On one route (a link, or the default upstream).
    pub per_route: usize,
    /// On all links together. The default route has only its own budget, so no number of silent
    /// tunnels can starve public names.
    pub links: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self { per_route: 256, links: 1024 }
    }
}

/// Permission for one query to wait on a route's servers; released when dropped.
#[derive(Debug)]
pub struct Admission {
    _route: OwnedSemaphorePermit,
    _links: Option<OwnedSemaphorePermit>,
}

impl RouteStats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One destination for queries.
#[derive(Debug)]
pub struct Route {
    /// [`SYSTEM_ROUTE`] or the link's sequence number; also the cache partition.
    pub id: u64,
    pub owner: Owner,
    pub upstream: Upstream,
    /// Fired at teardown: every query still waiting on this route's servers gives up at once.
    pub cancel: CancellationToken,
    pub stats: RouteStats,
    /// Queries that may wait on this route's servers at once ([`Budget::per_route`]).
    budget: Arc<Semaphore>,
    budget_size: usize,
    /// Shared by all link routes ([`Budget::links`]); `None` for the default route.
    links: Option<Arc<Semaphore>>,
}

impl Route {
    pub fn new(id: u64, owner: Owner, upstream: Upstream) -> Self {
        let size = Budget::default().per_route;
        Self {
            id,
            owner,
            upstream,
            cancel: CancellationToken::new(),
            stats: RouteStats::default(),
            budget: Arc::new(Semaphore::new(size)),
            budget_size: size,
            links: None,
        }
    }

    /// This route's budget of queries in flight, and the pool it shares with other links (`None`
    /// for the default route).
    pub fn with_budget(mut self, per_route: usize, links: Option<Arc<Semaphore>>) -> Self {
        self.budget = Arc::new(Semaphore::new(per_route));
        self.budget_size = per_route;
        self.links = links;
        self
    }

    /// Admits one more query to wait on the servers, or says why not (fail fast: a route whose
    /// servers are silent must not pin descriptors and memory for everyone else).
    pub fn admit(&self) -> Result<Admission, String> {
        let Ok(own) = self.budget.clone().try_acquire_owned() else {
            RouteStats::bump(&self.stats.shed);
            return Err(format!(
                "{} has {} queries in flight already (its servers are slow or silent); this one was not sent",
                self.describe(),
                self.budget_size
            ));
        };
        let links = match &self.links {
            None => None,
            Some(pool) => match pool.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    RouteStats::bump(&self.stats.shed);
                    return Err(format!(
                        "all links together have their budget of queries in flight (their servers are slow \
                         or silent); this one for {} was not sent",
                        self.describe()
                    ));
                }
            },
        };
        Ok(Admission { _route: own, _links: links })
    }

    /// A human description for logs and error texts.
    pub fn describe(&self) -> String {
        match &self.owner {
            Owner::System { .. } => "the default upstream".to_string(),
            Owner::Link { id } => format!("link {id:?}"),
        }
    }
}

/// The immutable routing table: split domain → route, plus the default route.
#[derive(Debug)]
pub struct Snapshot {
    /// Keyed by the lower-case wire form of the domain, so a query's name can be routed straight
    /// from the packet.
    by_domain: HashMap<Box<[u8]>, (DomainName, Arc<Route>)>,
    default: Arc<Route>,
    max_labels: usize,
    /// Anchored zones (accepted trust anchors) and their validators.
    trust: TrustMap,
}

impl Snapshot {
    pub fn new(domains: Vec<(DomainName, Arc<Route>)>, default: Arc<Route>, trust: TrustMap) -> Self {
        let max_labels = domains.iter().map(|(d, _)| d.label_count()).max().unwrap_or(0);
        let by_domain = domains
            .into_iter()
            .map(|(d, r)| (d.to_lower_name().to_bytes().unwrap_or_default().into_boxed_slice(), (d, r)))
            .collect();
        Self { by_domain, default, max_labels, trust }
    }

    /// The deepest anchored zone that covers `name`, lies within the split domain `matched` and
    /// belongs to `route`. `None`: the name is not validated (insecure).
    pub fn trust_for(&self, name: &LowerName, matched: &DomainName, route: u64) -> Option<&Arc<ZoneTrust>> {
        if self.trust.is_empty() {
            return None;
        }
        let name: &Name = name;
        let labels = name.num_labels() as usize;
        for k in (matched.label_count()..=labels).rev() {
            let candidate = LowerName::new(&name.trim_to(k));
            if let Some(t) = self.trust.get(&candidate)
                && t.route_id() == route
            {
                return Some(t);
            }
        }
        None
    }

    /// Every anchored zone in force.
    pub fn trust(&self) -> &TrustMap {
        &self.trust
    }

    /// The route for `name` by longest whole-label suffix, with the split domain that matched
    /// (`None` means the default route).
    pub fn route(&self, name: &LowerName) -> (&Arc<Route>, Option<&DomainName>) {
        if self.by_domain.is_empty() {
            return (&self.default, None);
        }
        self.route_wire(&name.to_bytes().unwrap_or_default())
    }

    /// [`Snapshot::route`] for a lower-case wire name (no allocation).
    pub fn route_wire(&self, name: &[u8]) -> (&Arc<Route>, Option<&DomainName>) {
        if !self.by_domain.is_empty() {
            let skip = wire::label_count(name).saturating_sub(self.max_labels);
            // Longest suffix first; the root never names a split domain.
            for suffix in wire::suffixes(name).skip(skip) {
                if let Some((d, r)) = self.by_domain.get(suffix) {
                    return (r, Some(d));
                }
            }
        }
        (&self.default, None)
    }

    pub fn default_route(&self) -> &Arc<Route> {
        &self.default
    }

    /// Every (domain, route id) pair, for diffing one snapshot against the next.
    pub fn assignments(&self) -> HashMap<DomainName, u64> {
        self.by_domain.values().map(|(d, r)| (d.clone(), r.id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::upstream::{Bind, Timing};
    use std::str::FromStr;

    fn route(id: u64) -> Arc<Route> {
        Arc::new(Route::new(
            id,
            Owner::Link { id: id.to_string() },
            Upstream::new(&[], Bind::default(), Timing::default()),
        ))
    }

    fn lookup(s: &Snapshot, name: &str) -> u64 {
        let lower = LowerName::from_str(name).unwrap();
        let by_wire = s.route_wire(&lower.to_bytes().unwrap()).0.id;
        assert_eq!(s.route(&lower).0.id, by_wire);
        by_wire
    }

    #[test]
    fn budgets_shed_at_once_and_refill_when_queries_finish() {
        let pool = Arc::new(Semaphore::new(3));
        let mk = |id| {
            Route::new(id, Owner::Link { id: id.to_string() }, Upstream::new(&[], Bind::default(), Timing::default()))
                .with_budget(2, Some(pool.clone()))
        };
        let (a, b) = (mk(1), mk(2));
        let a1 = a.admit().unwrap();
        let _a2 = a.admit().unwrap();
        let err = a.admit().unwrap_err();
        assert!(err.contains("link \"1\" has 2 queries in flight"), "{err}");
        let _b1 = b.admit().unwrap();
        let err = b.admit().unwrap_err();
        assert!(err.contains("all links together"), "{err}");
        assert_eq!(a.stats.shed.load(Ordering::Relaxed), 1);
        drop(a1);
        assert!(b.admit().is_ok(), "a finished query frees room in the shared pool");
        // The default route has its own budget only.
        let public =
            Route::new(0, Owner::System { source: "x".into() }, Upstream::new(&[], Bind::default(), Timing::default()))
                .with_budget(1, None);
        let _p = public.admit().unwrap();
        assert!(public.admit().is_err());
    }

    #[test]
    fn longest_whole_label_suffix_case_insensitive() {
        let s = Snapshot::new(
            vec![("corp.example".parse().unwrap(), route(1)), ("eng.corp.example".parse().unwrap(), route(2))],
            route(0),
            TrustMap::new(),
        );
        assert_eq!(lookup(&s, "corp.example."), 1);
        assert_eq!(lookup(&s, "A.B.Corp.Example."), 1);
        assert_eq!(lookup(&s, "eng.corp.example."), 2);
        assert_eq!(lookup(&s, "x.ENG.corp.example."), 2);
        assert_eq!(lookup(&s, "othercorp.example."), 0);
        assert_eq!(lookup(&s, "example."), 0);
        assert_eq!(lookup(&s, "."), 0);
        assert_eq!(lookup(&s, "corp.example.net."), 0);
    }
}
