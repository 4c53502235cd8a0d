//! Routes: where a query goes.
//!
//! A [`Route`] is the public upstream (route 0) or one link's internal servers, with that link's
//! counters, its budget of queries in flight, and the token that abandons its in-flight queries at
//! teardown. Which route a name takes is the [`super::snapshot::Snapshot`]'s business.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use hickory_proto::op::{Message, Query};

use super::upstream::{QueryFlags, Upstream, UpstreamError};

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
    /// Queries refused at once because the route (or all links together) had their budget of
    /// queries in flight.
    pub shed: AtomicU64,
}

/// A route's counters at one moment (what `status` shows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteReport {
    pub queries: u64,
    pub cache_hits: u64,
    pub forwards: u64,
    pub failures: u64,
    pub abandoned: u64,
    /// Queries waiting on this route's servers right now.
    pub in_flight: u64,
    pub shed: u64,
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

    /// Asks this route's servers `query`; gives up at once, saying why, when the route is torn
    /// down (its in-flight queries are abandoned, RFC 8598 §5).
    pub async fn ask(&self, query: &Query, flags: QueryFlags) -> Result<Message, UpstreamError> {
        self.upstream.query(query, flags, &self.cancel, || format!("{} went down (RFC 8598 §5)", self.describe())).await
    }

    /// This route's counters, read once.
    pub fn report(&self) -> RouteReport {
        let s = &self.stats;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RouteReport {
            queries: n(&s.queries),
            cache_hits: n(&s.cache_hits),
            forwards: n(&s.forwards),
            failures: n(&s.failures),
            abandoned: n(&s.abandoned),
            // Every query waiting on the servers holds one permit of the route's budget.
            in_flight: (self.budget_size - self.budget.available_permits()) as u64,
            shed: n(&s.shed),
        }
    }

    /// A human description for logs and error texts.
    pub fn describe(&self) -> String {
        match &self.owner {
            Owner::System { .. } => "the default upstream".to_string(),
            Owner::Link { id } => format!("link {id:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::upstream::{Bind, Timing};

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
}
