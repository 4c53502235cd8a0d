//! The per-query path: route by longest suffix, answer from cache, or ask the route's servers.
//!
//! A split name is only ever sent to its link's servers; if they fail the client gets SERVFAIL with an
//! RFC 8914 extended error, never an answer from elsewhere (fail closed, RFC 8598 §5). Names under no
//! split domain go to the default route. Names under a zone with a verified trust anchor are
//! DNSSEC-validated ([`super::validate`]): secure answers get AD (for clients that ask with DO or AD),
//! bogus ones SERVFAIL with the reason; a client's CD bit gets the data unvalidated. Responses carry
//! RA and never AA. Identical questions in flight on one route share one upstream transaction, so a flood of copies cannot multiply the chances of a spoofed answer (the birthday
//! attack of CVE-2020-25686) nor the load on a tunnel's servers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use super::cache::{Cache, KEY_CD, KEY_DO, Key, KeyRef};
use super::ede;
use super::route::{Route, RouteStats};
use super::scrub;
use super::snapshot::Snapshot;
use super::upstream::{EDNS_PAYLOAD, QueryFlags, UpstreamError};
use super::validate::{ValidationError, ZoneTrust, strip_dnssec};
use super::wire;
use crate::clock::{SharedClock, Stamp};

/// Daemon-wide query counters.
#[derive(Debug, Default)]
pub struct Stats {
    queries: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    servfail: AtomicU64,
    refused: AtomicU64,
    formerr: AtomicU64,
}

/// The daemon-wide counters at one moment (what `status` shows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsReport {
    pub queries: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub servfail: u64,
    pub refused: u64,
    pub formerr: u64,
}

impl Stats {
    /// The counters, read once.
    pub fn report(&self) -> StatsReport {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsReport {
            queries: n(&self.queries),
            cache_hits: n(&self.cache_hits),
            cache_misses: n(&self.cache_misses),
            servfail: n(&self.servfail),
            refused: n(&self.refused),
            formerr: n(&self.formerr),
        }
    }
}

/// What a query produced, before it is put on the wire.
pub struct Outcome {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// DNSSEC-validated as secure.
    pub secure: bool,
    pub ede: Option<(u16, String)>,
    /// How it was answered, for `splitdns query`.
    pub path: Option<AnswerPath>,
    /// The CNAME chain continues in another route: this name is asked there next.
    follow: Option<Name>,
}

/// Where an answer came from.
#[derive(Clone, Debug)]
pub struct AnswerPath {
    /// `the default upstream` or `link "vpn0"`.
    pub route: String,
    /// The split domain that matched, if any.
    pub split_domain: Option<String>,
    /// The anchored zone the answer was validated under, if any.
    pub validated_zone: Option<String>,
    pub cached: bool,
}

impl Outcome {
    fn error(rcode: ResponseCode, ede: Option<(u16, String)>) -> Self {
        Self {
            rcode,
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
            secure: false,
            ede,
            path: None,
            follow: None,
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
    secure: bool,
    /// Where the CNAME chain leaves the route, if it does.
    follow: Option<Name>,
}

/// Why a fetch gave no answer: an RFC 8914 code and a text for the client, and whether the query
/// was abandoned at teardown (for the counters).
#[derive(Debug, Clone)]
struct FetchError {
    code: u16,
    text: String,
    abandoned: bool,
    bogus: bool,
}

impl From<UpstreamError> for FetchError {
    fn from(e: UpstreamError) -> Self {
        Self {
            code: e.ede_code(),
            text: e.to_string(),
            abandoned: matches!(e, UpstreamError::Abandoned(_)),
            bogus: false,
        }
    }
}

impl From<ValidationError> for FetchError {
    fn from(e: ValidationError) -> Self {
        match e {
            ValidationError::Upstream(u) => u.into(),
            ValidationError::Bogus(code, text) => {
                Self { code, text: format!("DNSSEC bogus: {text}"), abandoned: false, bogus: true }
            }
            ValidationError::Untrusted(text) => Self { code: ede::DNSKEY_MISSING, text, abandoned: false, bogus: true },
        }
    }
}

type Pending = Shared<BoxFuture<'static, Result<Arc<Fetched>, FetchError>>>;

/// The hickory-server request handler for the loopback listener.
#[derive(Clone)]
pub struct Handler {
    snapshot: Arc<ArcSwap<Snapshot>>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    in_flight: Arc<Mutex<HashMap<Key, Pending>>>,
    /// What cached answers are aged by: the clock that counts suspended time.
    clock: SharedClock,
}

impl Handler {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>, cache: Arc<Cache>, stats: Arc<Stats>) -> Self {
        Self::with_clock(snapshot, cache, stats, crate::clock::boot_clock())
    }

    /// A handler reading the time from `clock` (tests stand a night asleep in with a manual clock).
    pub fn with_clock(
        snapshot: Arc<ArcSwap<Snapshot>>,
        cache: Arc<Cache>,
        stats: Arc<Stats>,
        clock: SharedClock,
    ) -> Self {
        Self { snapshot, cache, stats, in_flight: Arc::default(), clock }
    }

    /// Removes cached answers for `domain` and below, or everything.
    pub fn flush(&self, domain: Option<&crate::domain::DomainName>) -> usize {
        match domain {
            Some(d) => self.cache.flush_domain(&d.to_lower_name()),
            None => self.cache.clear(),
        }
    }

    /// Joins the transaction already asking this question on this route, or starts one.
    #[allow(clippy::too_many_arguments)]
    fn fetch(
        &self,
        snapshot: Arc<Snapshot>,
        route: Arc<Route>,
        trust: Option<Arc<ZoneTrust>>,
        query: &Query,
        flags: QueryFlags,
        key: Key,
        now: Stamp,
    ) -> Pending {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = map.get(&key) {
            return p.clone();
        }
        // Fail fast when the route has its budget of queries waiting (not remembered as a failure:
        // the question itself was never asked).
        let admission = match route.admit() {
            Ok(a) => a,
            Err(text) => {
                let e = FetchError { code: ede::NO_REACHABLE_AUTHORITY, text, abandoned: false, bogus: false };
                return futures_util::future::ready(Err(e)).boxed().shared();
            }
        };
        let (cache, in_flight, query, k) = (self.cache.clone(), self.in_flight.clone(), query.clone(), key.clone());
        let fut = async move {
            let _admission = admission;
            RouteStats::bump(&route.stats.forwards);
            // Only records of this route's own names count (see `scrub`).
            let scrub = |m: &mut Message| {
                let removed = scrub::scrub(m, &snapshot, route.id);
                if removed > 0 {
                    debug!(name = %query.name(), removed, route = %route.describe(), "records of other routes removed");
                }
            };
            let result: Result<(Message, bool), FetchError> = match &trust {
                // Validated: the zone has a verified trust anchor and the client did not set CD.
                Some(t) if !flags.checking_disabled => {
                    t.lookup(&query, &scrub).await.map(|v| (v.message, v.secure)).map_err(FetchError::from)
                }
                // Not validated here: the CD client validates itself (so it gets the signatures), or
                // no trust anchor covers the name.
                _ => {
                    let flags =
                        if trust.is_some() { QueryFlags { dnssec_ok: true, checking_disabled: true } } else { flags };
                    route.ask(&query, flags).await.map_err(Into::into).map(|mut m| {
                        scrub(&mut m);
                        (m, false)
                    })
                }
            };
            in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&k);
            // Never cache anything for a route that went down while we waited.
            let live = !route.cancel.is_cancelled();
            let (msg, secure) = match result {
                Ok(r) => r,
                Err(e) => {
                    if live && !e.abandoned {
                        let hold = cache.remember_failure(&k, e.code, &e.text, e.bogus, now);
                        debug!(name = %query.name(), qtype = %query.query_type(), ?hold, "failure remembered (RFC 9520)");
                    }
                    return Err(e);
                }
            };
            let follow = scrub::chain_exit(&msg.answers, query.name(), query.query_type(), &snapshot, route.id);
            if live {
                cache.forget_failure(&k);
                cache.insert_part(k, &query, &msg, secure, follow.is_some(), now);
            }
            Ok(Arc::new(Fetched {
                rcode: msg.metadata.response_code,
                answers: msg.answers,
                authorities: msg.authorities,
                additionals: msg.additionals,
                secure,
                follow,
            }))
        }
        .boxed()
        .shared();
        map.insert(key, fut.clone());
        fut
    }

    /// Answers `query` as the listener would (cache, route, validation, a CNAME chain followed
    /// across routes), for `splitdns query` and the listener's full path.
    pub async fn resolve(&self, query: &Query, flags: QueryFlags) -> Outcome {
        let mut out = self.resolve_one(query, flags).await;
        let mut crossings = 0;
        while let Some(target) = out.follow.take() {
            crossings += 1;
            if crossings > scrub::MAX_CROSSINGS {
                return Outcome {
                    path: out.path,
                    ..Outcome::error(
                        ResponseCode::ServFail,
                        Some((
                            ede::OTHER,
                            format!("the CNAME chain crosses routes more than {} times", scrub::MAX_CROSSINGS),
                        )),
                    )
                };
            }
            // The rest of the chain is another route's to answer (and to validate, if anchored).
            let next = Query::query(target, query.query_type());
            let rest = Box::pin(self.resolve_one(&next, flags)).await;
            if rest.rcode == ResponseCode::ServFail {
                return Outcome { path: out.path, ..rest };
            }
            out.answers.extend(rest.answers);
            out.authorities = rest.authorities;
            out.additionals.extend(rest.additionals);
            out.rcode = rest.rcode;
            out.secure &= rest.secure;
            out.follow = rest.follow;
        }
        out
    }

    /// One route's part of the answer to `query`.
    async fn resolve_one(&self, query: &Query, flags: QueryFlags) -> Outcome {
        let snapshot = self.snapshot.load_full();
        let name = hickory_proto::rr::LowerName::new(query.name());
        // Encoded once, for routing and for the cache key.
        let wire_name = name.to_bytes().unwrap_or_default();
        let (route, matched) = snapshot.route_wire(&wire_name);
        let route: Arc<Route> = route.clone();
        let trust = match query.query_type() {
            // An RRSIG query asks for signatures alone, not an RRset they cover: passed through,
            // never validated (as Unbound does), so never AD.
            RecordType::RRSIG => None,
            // A DS RRset lives in the parent zone: validated by the anchor above the name's own
            // zone, if any. At an anchored apex (the island's top) there is none: the answer is
            // insecure, not bogus, and it is still asked of the link, never the public side.
            RecordType::DS => {
                let parent = hickory_proto::rr::LowerName::new(&query.name().base_name());
                matched.and_then(|d| snapshot.trust_for(&parent, d, route.id)).cloned()
            }
            _ => matched.and_then(|d| snapshot.trust_for(&name, d, route.id)).cloned(),
        };
        let path = |cached: bool| AnswerPath {
            route: route.describe(),
            split_domain: matched.map(ToString::to_string),
            validated_zone: trust.as_ref().map(|t| t.domain.to_string()),
            cached,
        };
        RouteStats::bump(&route.stats.queries);
        let key = Key::from_wire(route.id, wire_name, query.query_type(), flags.dnssec_ok, flags.checking_disabled);
        let now = self.clock.now();
        // A validated route always fetches signatures; strip them for clients that did not ask.
        let strip = trust.is_some() && !flags.dnssec_ok;
        let shape = |records: &[Record], age: u32| -> Vec<Record> {
            let kept = if strip { strip_dnssec(records, query.query_type()) } else { records.to_vec() };
            kept.into_iter()
                .map(|mut r| {
                    r.ttl = r.ttl.saturating_sub(age);
                    r
                })
                .collect()
        };
        if let Some(entry) = self.cache.get(&key, now)
            && let Some(cached) = entry.message(now)
        {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            RouteStats::bump(&route.stats.cache_hits);
            // Stored already shaped for this DO bit, with TTLs aged by `message`.
            let follow = match entry.partial {
                true => scrub::chain_exit(&cached.answers, query.name(), query.query_type(), &snapshot, route.id),
                false => None,
            };
            return Outcome {
                rcode: entry.rcode,
                answers: cached.answers,
                authorities: cached.authorities,
                additionals: cached.additionals,
                secure: entry.secure,
                ede: None,
                path: Some(path(true)),
                follow,
            };
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        // A failure of the same question moments ago is not asked again (RFC 9520).
        let fetched = match self.cache.failure(&key, now) {
            Some(f) => {
                let left = f.until.saturating_duration_since(now).as_secs().max(1);
                let text = format!("{} (remembered; asked again in {left} s)", f.text);
                Err(FetchError { code: f.code, text, abandoned: false, bogus: f.bogus })
            }
            None => self.fetch(snapshot.clone(), route.clone(), trust.clone(), query, flags, key, now).await,
        };
        match fetched {
            Ok(f) => Outcome {
                rcode: f.rcode,
                answers: shape(&f.answers, 0),
                authorities: shape(&f.authorities, 0),
                additionals: shape(&f.additionals, 0),
                secure: f.secure,
                ede: None,
                path: Some(path(false)),
                follow: f.follow.clone(),
            },
            Err(e) => {
                if e.abandoned {
                    RouteStats::bump(&route.stats.abandoned);
                } else {
                    RouteStats::bump(&route.stats.failures);
                }
                let text = match matched {
                    Some(domain) if !e.bogus => format!("{domain} is routed to {}: {}", route.describe(), e.text),
                    _ if e.bogus => e.text,
                    _ => format!("{}: {}", route.describe(), e.text),
                };
                debug!(name = %query.name(), error = %text, "query failed");
                Outcome { path: Some(path(false)), ..Outcome::error(ResponseCode::ServFail, Some((e.code, text))) }
            }
        }
    }
}

/// A decided reply, before it is encoded for a transport.
pub struct Reply {
    pub metadata: Metadata,
    pub edns: Option<Edns>,
    pub outcome: Outcome,
}

impl Handler {
    /// Decides the reply to one request (any transport): the checks a stub must make, then
    /// [`Handler::resolve`]. `query` is the request's only question (`None` if it had none or
    /// several).
    pub async fn answer(
        &self,
        src: SocketAddr,
        meta: &Metadata,
        query: Option<&Query>,
        client_edns: Option<&Edns>,
    ) -> Reply {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let flags = QueryFlags {
            dnssec_ok: client_edns.is_some_and(|e| e.flags().dnssec_ok),
            checking_disabled: meta.checking_disabled,
        };
        let outcome = if !src.ip().is_loopback() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            Outcome::error(
                ResponseCode::Refused,
                Some((ede::PROHIBITED, "splitdns only serves loopback clients".into())),
            )
        } else if meta.message_type != MessageType::Query {
            self.stats.formerr.fetch_add(1, Ordering::Relaxed);
            Outcome::error(ResponseCode::FormErr, None)
        } else if client_edns.is_some_and(|e| e.version() > 0) {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only.
            Outcome::error(ResponseCode::BADVERS, None)
        } else if meta.op_code != OpCode::Query {
            Outcome::error(ResponseCode::NotImp, None)
        } else {
            match query {
                None => {
                    self.stats.formerr.fetch_add(1, Ordering::Relaxed);
                    Outcome::error(ResponseCode::FormErr, None)
                }
                Some(query) if query.query_class() != DNSClass::IN => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    Outcome::error(ResponseCode::Refused, Some((ede::NOT_SUPPORTED, "only class IN is served".into())))
                }
                Some(query) if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    Outcome::error(
                        ResponseCode::Refused,
                        Some((ede::NOT_SUPPORTED, "zone transfers are not served".into())),
                    )
                }
                Some(query) => self.resolve(query, flags).await,
            }
        };
        if outcome.rcode == ResponseCode::ServFail {
            self.stats.servfail.fetch_add(1, Ordering::Relaxed);
        }

        let mut metadata = Metadata::response_from_request(meta);
        metadata.recursion_available = true;
        metadata.authoritative = false;
        // AD only for validated answers, and only to clients that asked with DO or AD (RFC 6840 §5.8).
        metadata.authentic_data = outcome.secure && (flags.dnssec_ok || meta.authentic_data);
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
        Reply { metadata, edns, outcome }
    }

    /// Answers a UDP query from the cache without decoding it into a message: parse the plain
    /// query shape in place, route by its wire name, copy the stored answer into `out`. Returns
    /// false (and leaves `out` unspecified) whenever the full path must decide instead: an unusual
    /// query, a cache miss, or an answer too big for the client.
    pub fn answer_from_cache(&self, packet: &[u8], lower: &mut [u8; wire::MAX_NAME], out: &mut Vec<u8>) -> bool {
        let Some(q) = wire::QueryView::parse(packet, lower) else { return false };
        let name = q.lower_name(lower);
        let snapshot = self.snapshot.load();
        let (route, _) = snapshot.route_wire(name);
        let bits = if q.dnssec_ok { KEY_DO } else { 0 } | if q.checking_disabled() { KEY_CD } else { 0 };
        let now = self.clock.now();
        let key = KeyRef { route: route.id, name, qtype: q.qtype, bits };
        let Some(entry) = self.cache.get_ref(key, now) else { return false };
        if entry.partial {
            // The rest of the CNAME chain is another route's: the full path asks it.
            return false;
        }

        let mut flags = wire::flags::QR | wire::flags::RA | (q.flags & (wire::flags::RD | wire::flags::CD));
        if entry.secure && (q.dnssec_ok || q.authentic_data()) {
            flags |= wire::flags::AD;
        }
        flags |= u16::from(entry.rcode.low());
        out.clear();
        entry.render(out, q.id, flags, q.question, entry.age(now));
        if q.edns.is_some() {
            // Our OPT record: payload size, version 0, the DO bit echoed, no options.
            let ar = u16::from_be_bytes([out[10], out[11]]).saturating_add(1);
            out[10..12].copy_from_slice(&ar.to_be_bytes());
            let do_bit = if q.dnssec_ok { 0x80 } else { 0 };
            let [p0, p1] = EDNS_PAYLOAD.to_be_bytes();
            out.extend_from_slice(&[0, 0, 41, p0, p1, 0, 0, do_bit, 0, 0, 0]);
        }
        if out.len() > q.udp_limit(EDNS_PAYLOAD) {
            return false;
        }
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        RouteStats::bump(&route.stats.queries);
        RouteStats::bump(&route.stats.cache_hits);
        true
    }

    /// Answers a UDP packet the cache could not: decode it fully, decide, and encode the reply
    /// within the client's size limit (setting TC when it does not fit). `None`: nothing to send
    /// (not even a header to answer).
    pub async fn answer_packet(&self, packet: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        let request = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(e) => {
                debug!(%src, error = %e, "undecodable query");
                return formerr(packet);
            }
        };
        let query = match request.queries.as_slice() {
            [q] => Some(q),
            _ => None,
        };
        let reply = self.answer(src, &request.metadata, query, request.edns.as_ref()).await;
        let limit = match &request.edns {
            None => 512,
            Some(e) => usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)),
        };
        let mut m = Message::new(reply.metadata.id, MessageType::Response, reply.metadata.op_code);
        m.metadata = reply.metadata;
        m.queries = request.queries;
        m.answers = reply.outcome.answers;
        m.authorities = reply.outcome.authorities;
        m.additionals = reply.outcome.additionals;
        m.edns = reply.edns;
        match m.to_vec() {
            Ok(bytes) if bytes.len() <= limit => Some(bytes),
            // Too big for UDP: TC and no records, so the client retries over TCP (RFC 7766).
            _ => {
                m.answers.clear();
                m.authorities.clear();
                m.additionals.clear();
                m.metadata.truncation = true;
                m.to_vec().ok()
            }
        }
    }
}

/// FORMERR for a query whose header is readable but whose body is not; nothing for anything else
/// (responses, runts).
fn formerr(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < wire::HEADER || packet[2] & 0x80 != 0 {
        return None;
    }
    let opcode = packet[2] & 0x78;
    let mut out = vec![0u8; wire::HEADER];
    out[0..2].copy_from_slice(&packet[0..2]);
    out[2] = 0x80 | opcode | (packet[2] & 0x01);
    out[3] = 0x80 | ResponseCode::FormErr.low();
    Some(out)
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let meta = &request.metadata;
        let info = request.request_info().ok();
        let query = info.as_ref().map(|i| i.query.original());
        let reply = self.answer(request.src(), meta, query, request.edns.as_ref()).await;
        let builder = MessageResponseBuilder::new(&request.queries, reply.edns.as_ref());
        let outcome = &reply.outcome;
        let response = builder.build(
            reply.metadata,
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
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{LowerName, Name, RData};

    use super::*;
    use crate::clock::{Clock, ManualClock, Stamp};
    use crate::dns::cache::Limits;
    use crate::dns::route::{Owner, SYSTEM_ROUTE};
    use crate::dns::upstream::{Bind, Timing, Upstream};
    use crate::dns::validate::TrustMap;

    fn query_packet(name: &str) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    #[test]
    fn a_cached_answer_is_not_served_after_its_ttl_passed_asleep() {
        let clock = Arc::new(ManualClock::new(Stamp::from_since_boot(Duration::from_secs(50))));
        let system = Owner::System { source: "test".into() };
        let route = Arc::new(Route::new(SYSTEM_ROUTE, system, Upstream::new(&[], Bind::default(), Timing::default())));
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::new(vec![], route, TrustMap::new())));
        let cache = Arc::new(Cache::new(Limits::default()));
        let name = "www.pub.example.";
        let mut answer = Message::new(1, MessageType::Response, OpCode::Query);
        answer.add_answer(Record::from_rdata(Name::from_str(name).unwrap(), 300, RData::A(A::new(192, 0, 2, 1))));
        let key = Key::new(SYSTEM_ROUTE, &LowerName::from_str(name).unwrap(), RecordType::A, false, false);
        let query = Query::query(Name::from_str(name).unwrap(), RecordType::A);
        cache.insert(key, &query, &answer, false, clock.now());
        let handler = Handler::with_clock(snapshot, cache, Arc::new(Stats::default()), clock.clone());

        let packet = query_packet(name);
        let (mut lower, mut out) = ([0u8; wire::MAX_NAME], Vec::new());
        let ttl = |out: &[u8]| Message::from_vec(out).unwrap().answers[0].ttl;
        assert!(handler.answer_from_cache(&packet, &mut lower, &mut out));
        assert_eq!(ttl(&out), 300);
        clock.advance(Duration::from_secs(299));
        assert!(handler.answer_from_cache(&packet, &mut lower, &mut out));
        assert_eq!(ttl(&out), 1, "served with the remaining TTL");
        // Suspended for the night: CLOCK_MONOTONIC would not have moved, this clock did.
        clock.advance(Duration::from_secs(8 * 3600));
        assert!(!handler.answer_from_cache(&packet, &mut lower, &mut out), "a stale answer was served after sleep");
    }
}
