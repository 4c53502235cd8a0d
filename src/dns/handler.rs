//! The per-query path: route by longest suffix, answer from cache, or ask the route's servers.
//!
//! A split name is only ever sent to its link's servers; if they fail the client gets SERVFAIL with an
//! RFC 8914 extended error, never an answer from elsewhere (fail closed, RFC 8598 §5). Names under no
//! split domain go to the default route. Responses carry RA, never AA, and no AD: nothing is
//! validated in this release. Identical questions in flight on one route share one upstream
//! transaction, so a flood of copies cannot multiply the chances of a spoofed answer (the birthday
//! attack of CVE-2020-25686) nor the load on a tunnel's servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use arc_swap::ArcSwap;
use hickory_proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use super::cache::{Cache, Key};
use super::ede;
use super::route::{Route, RouteStats, Snapshot};
use super::upstream::{EDNS_PAYLOAD, QueryFlags, UpstreamError};

/// Daemon-wide query counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub queries: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub servfail: AtomicU64,
    pub refused: AtomicU64,
    pub formerr: AtomicU64,
}

/// What a query produced, before it is put on the wire.
struct Outcome {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    ede: Option<(u16, String)>,
}

impl Outcome {
    fn error(rcode: ResponseCode, ede: Option<(u16, String)>) -> Self {
        Self {
            rcode,
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
            ede,
        }
    }
}

/// An upstream answer shared by every client that asked the same question meanwhile.
#[derive(Debug)]
struct Fetched {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

type Pending = Shared<BoxFuture<'static, Result<Arc<Fetched>, UpstreamError>>>;

/// The hickory-server request handler for the loopback listener.
#[derive(Clone)]
pub struct Handler {
    snapshot: Arc<ArcSwap<Snapshot>>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    in_flight: Arc<Mutex<HashMap<Key, Pending>>>,
}

impl Handler {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>, cache: Arc<Cache>, stats: Arc<Stats>) -> Self {
        Self {
            snapshot,
            cache,
            stats,
            in_flight: Arc::default(),
        }
    }

    /// Joins the transaction already asking this question on this route, or starts one.
    fn fetch(
        &self,
        route: Arc<Route>,
        query: &Query,
        flags: QueryFlags,
        key: Key,
        now: Instant,
    ) -> Pending {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = map.get(&key) {
            return p.clone();
        }
        let (cache, in_flight, query, k) = (
            self.cache.clone(),
            self.in_flight.clone(),
            query.clone(),
            key.clone(),
        );
        let fut = async move {
            RouteStats::bump(&route.stats.forwards);
            route.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            let why = || format!("{} went down (RFC 8598 §5)", route.describe());
            let result = route
                .upstream
                .query(&query, flags, &route.cancel, why)
                .await;
            route.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&k);
            let msg = result?;
            // Never cache an answer for a route that went down while we waited.
            if !route.cancel.is_cancelled() {
                let wire_len =
                    (msg.answers.len() + msg.authorities.len() + msg.additionals.len()) * 64;
                cache.insert(k, &msg, wire_len, now);
            }
            Ok(Arc::new(Fetched {
                rcode: msg.metadata.response_code,
                answers: msg.answers,
                authorities: msg.authorities,
                additionals: msg.additionals,
            }))
        }
        .boxed()
        .shared();
        map.insert(key, fut.clone());
        fut
    }

    async fn resolve(&self, query: &Query, flags: QueryFlags) -> Outcome {
        let snapshot = self.snapshot.load_full();
        let name = hickory_proto::rr::LowerName::new(query.name());
        let (route, matched) = snapshot.route(&name);
        let route: Arc<Route> = route.clone();
        RouteStats::bump(&route.stats.queries);
        let key = Key {
            route: route.id,
            name,
            qtype: query.query_type(),
            qclass: query.query_class(),
            dnssec_ok: flags.dnssec_ok,
            checking_disabled: flags.checking_disabled,
        };
        let now = Instant::now();
        if let Some(entry) = self.cache.get(&key, now) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            RouteStats::bump(&route.stats.cache_hits);
            let age = entry.age(now);
            let aged = |records: &[Record]| -> Vec<Record> {
                records
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.ttl = r.ttl.saturating_sub(age);
                        r
                    })
                    .collect()
            };
            return Outcome {
                rcode: entry.rcode,
                answers: aged(&entry.answers),
                authorities: aged(&entry.authorities),
                additionals: aged(&entry.additionals),
                ede: None,
            };
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        match self.fetch(route.clone(), query, flags, key, now).await {
            Ok(f) => Outcome {
                rcode: f.rcode,
                answers: f.answers.clone(),
                authorities: f.authorities.clone(),
                additionals: f.additionals.clone(),
                ede: None,
            },
            Err(e) => {
                if matches!(e, UpstreamError::Abandoned(_)) {
                    RouteStats::bump(&route.stats.abandoned);
                } else {
                    RouteStats::bump(&route.stats.failures);
                }
                let text = match matched {
                    Some(domain) => format!("{domain} is routed to {}: {e}", route.describe()),
                    None => format!("{}: {e}", route.describe()),
                };
                debug!(name = %query.name(), error = %text, "upstream failure");
                Outcome::error(ResponseCode::ServFail, Some((e.ede_code(), text)))
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let meta = &request.metadata;
        let client_edns = request.edns.as_ref();
        let flags = QueryFlags {
            dnssec_ok: client_edns.is_some_and(|e| e.flags().dnssec_ok),
            checking_disabled: meta.checking_disabled,
        };

        let outcome = if !request.src().ip().is_loopback() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            Outcome::error(
                ResponseCode::Refused,
                Some((
                    ede::PROHIBITED,
                    "splitdns only serves loopback clients".into(),
                )),
            )
        } else if meta.message_type != MessageType::Query {
            self.stats.formerr.fetch_add(1, Ordering::Relaxed);
            Outcome::error(ResponseCode::FormErr, None)
        } else if meta.op_code != OpCode::Query {
            Outcome::error(ResponseCode::NotImp, None)
        } else {
            match request.request_info() {
                Err(_) => {
                    self.stats.formerr.fetch_add(1, Ordering::Relaxed);
                    Outcome::error(ResponseCode::FormErr, None)
                }
                Ok(info) => {
                    let query = info.query.original();
                    if query.query_class() != DNSClass::IN {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        Outcome::error(
                            ResponseCode::Refused,
                            Some((ede::NOT_SUPPORTED, "only class IN is served".into())),
                        )
                    } else if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        Outcome::error(
                            ResponseCode::Refused,
                            Some((ede::NOT_SUPPORTED, "zone transfers are not served".into())),
                        )
                    } else {
                        self.resolve(query, flags).await
                    }
                }
            }
        };
        if outcome.rcode == ResponseCode::ServFail {
            self.stats.servfail.fetch_add(1, Ordering::Relaxed);
        }

        let mut metadata = Metadata::response_from_request(meta);
        metadata.recursion_available = true;
        metadata.authoritative = false;
        metadata.authentic_data = false;
        metadata.response_code = outcome.rcode;

        let edns = client_edns.map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(EDNS_PAYLOAD);
            e.set_dnssec_ok(flags.dnssec_ok);
            if let Some((code, text)) = &outcome.ede {
                ede::attach(&mut e, *code, text);
            }
            e
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let response = builder.build(
            metadata,
            outcome.answers.iter(),
            outcome.authorities.iter(),
            std::iter::empty(),
            outcome.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                warn!(error = %e, "could not send a response");
                let mut metadata = Metadata::response_from_request(meta);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
