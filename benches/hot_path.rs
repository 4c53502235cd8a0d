//! Micro-benchmarks of the per-query hot path (divan). Run: `cargo bench --bench hot_path`
//! (`cargo test --all-targets` runs each once, as a smoke test).
//!
//! - `routing`: [`Snapshot::route_wire`] (the UDP fast path routes the lower-case wire name straight
//!   from the packet) and [`Snapshot::route`] (the full path routes a `LowerName`, which it
//!   encodes first), on tables of 1, 10 and 100 split domains, for names under a split domain of
//!   2, 3 or 4 labels and a name that misses to the default route. Every query pays this once.
//! - `cache_hit`: what a UDP cache hit costs. `get_ref_render` is the lookup plus the copy and
//!   patch of the stored wire answer; `answer_from_cache` is the whole in-process fast path from
//!   query packet to response bytes (parse, route, look up, render, OPT); `parse_message` is
//!   hickory's `Message::from_vec` of the same packet, which the slow path (a miss, or any unusual
//!   query) pays before it even routes. Two answers: a plain A, and a validated (AD) wildcard A
//!   with its RRSIG and NSEC3 proof, asked with DO.
//! - `validation`: [`fastval::prove_positive`] on a signed answer, the CPU of a validated cache
//!   miss besides the upstream round trip: a direct signed A and a wildcard expansion with its
//!   NSEC3 proof, each with a cold signature cache (real ECDSA P-256 verification, one per RRSIG)
//!   and a warm one (every signature already verified over the same bytes, so a lookup).

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use divan::{Bencher, black_box};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use splitdns::clock::Stamp;
use splitdns::dns::cache::{Cache, KEY_DO, Key, KeyRef, Limits};
use splitdns::dns::fastval::{self, SigCache};
use splitdns::dns::handler::{Handler, Stats};
use splitdns::dns::route::{Owner, Route};
use splitdns::dns::signing_fixture::{self as fx, Signer};
use splitdns::dns::snapshot::Snapshot;
use splitdns::dns::upstream::{Bind, EDNS_PAYLOAD, Timing, Upstream};
use splitdns::dns::validate::TrustMap;
use splitdns::dns::wire;
use splitdns::domain::DomainName;

fn main() {
    divan::main();
}

fn route(id: u64) -> Arc<Route> {
    Arc::new(Route::new(id, Owner::Link { id: id.to_string() }, Upstream::new(&[], Bind::default(), Timing::default())))
}

fn lower_wire(name: &str) -> Vec<u8> {
    LowerName::from_str(name).unwrap().to_bytes().unwrap()
}

/// A snapshot of `domains` split domains (routes 1..) and the default route 0.
fn snapshot(domains: impl IntoIterator<Item = String>) -> Snapshot {
    let domains =
        domains.into_iter().enumerate().map(|(i, d)| (DomainName::from_str(&d).unwrap(), route(i as u64 + 1)));
    Snapshot::new(domains.collect(), route(0), TrustMap::new())
}

mod routing {
    use super::*;

    /// The table size and which kind of name is routed.
    #[derive(Clone, Copy, Debug)]
    pub struct Case {
        domains: usize,
        /// Labels of the split domain the name falls under; 0: no split domain (default route).
        depth: usize,
    }

    impl std::fmt::Display for Case {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let plural = if self.domains == 1 { "" } else { "s" };
            write!(f, "{} domain{plural}, ", self.domains)?;
            match self.depth {
                0 => write!(f, "miss"),
                d => write!(f, "hit depth {d}"),
            }
        }
    }

    const fn case(domains: usize, depth: usize) -> Case {
        Case { domains, depth }
    }

    const CASES: [Case; 10] = [
        case(1, 2),
        case(1, 0),
        case(10, 2),
        case(10, 3),
        case(10, 4),
        case(10, 0),
        case(100, 2),
        case(100, 3),
        case(100, 4),
        case(100, 0),
    ];

    /// Split domain `i`: `s<i>.example`, `s<i>.corp.example` or `s<i>.eng.corp.example` (2, 3 or 4
    /// labels, in turn), as a VPN pushes a handful of internal zones.
    fn domain(i: usize) -> String {
        let parent = ["example", "corp.example", "eng.corp.example"][i % 3];
        format!("s{i}.{parent}")
    }

    /// The table and a host name under its last split domain of `depth` labels (or, for depth 0, a
    /// public name that misses).
    fn setup(case: Case) -> (Snapshot, String) {
        let s = snapshot((0..case.domains).map(domain));
        let name = match case.depth {
            0 => "www.example.net.".to_string(),
            depth => {
                let i = (0..case.domains).rev().find(|i| i % 3 == depth - 2).unwrap();
                format!("host.{}.", domain(i))
            }
        };
        (s, name)
    }

    #[divan::bench(args = CASES)]
    fn route_wire(bencher: Bencher, case: Case) {
        let (s, name) = setup(case);
        let wire = lower_wire(&name);
        let expect = s.route_wire(&wire).0.id;
        assert_eq!(expect == 0, case.depth == 0, "{name}");
        bencher.bench_local(|| black_box(&s).route_wire(black_box(&wire)).0.id);
    }

    #[divan::bench(args = CASES)]
    fn route_lower_name(bencher: Bencher, case: Case) {
        let (s, name) = setup(case);
        let lower = LowerName::from_str(&name).unwrap();
        assert_eq!(s.route(&lower).0.id == 0, case.depth == 0, "{name}");
        bencher.bench_local(|| black_box(&s).route(black_box(&lower)).0.id);
    }
}

// A fixed sample size: this group runs first, and divan sizes samples from the first (cold) one.
#[divan::bench_group(sample_size = 1000)]
mod cache_hit {
    use super::*;

    #[derive(Clone, Copy, Debug)]
    pub enum Answer {
        /// `www.corp.example A`, one address, EDNS without DO.
        PlainA,
        /// `x.w.corp.example A` with DO: a validated wildcard expansion, stored with its RRSIG and
        /// the NSEC3 proof and its RRSIG, served with AD.
        SignedWildcard,
    }

    const ANSWERS: [Answer; 2] = [Answer::PlainA, Answer::SignedWildcard];

    /// A handler over a 10-domain snapshot (`corp.example` on route 1) whose cache holds the
    /// answer, stored a few seconds ago (so serving it patches the TTLs), and the query for it.
    struct Hit {
        handler: Handler,
        cache: Arc<Cache>,
        packet: Vec<u8>,
        /// The cache key's parts: route, lower-case wire name, type, DO/CD bits.
        route: u64,
        name: Vec<u8>,
        bits: u8,
        /// The question section of `packet`.
        question: Vec<u8>,
        /// The response flags the fast path sets.
        flags: u16,
        stored: Stamp,
    }

    fn unix_now() -> u32 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
    }

    fn setup(answer: Answer) -> Hit {
        let domains = ["corp.example".to_string()].into_iter().chain((2..=10).map(|i| format!("vpn{i}.example")));
        let snap = snapshot(domains);
        let (qname, dnssec_ok, secure, msg) = match answer {
            Answer::PlainA => {
                let (_, mut m) = fx::response("www.corp.example.", RecordType::A, vec![], vec![]);
                let a = RData::A(A(Ipv4Addr::new(10, 1, 0, 1)));
                m.add_answer(Record::from_rdata(fx::name("www.corp.example."), 300, a));
                ("www.corp.example.", false, false, m)
            }
            Answer::SignedWildcard => {
                // The cache keeps a validated answer no longer than its signatures: sign for now.
                let now = unix_now();
                let s = Signer::at(now);
                let qname = "x.w.corp.example.";
                let (q, raw) =
                    fx::response(qname, RecordType::A, fx::wildcard(&s, qname, [10, 1, 0, 99]), fx::covering_all(&s));
                let m = fastval::prove_positive(&fx::zone(), &fx::keys_of(&[&s]), &SigCache::new(), &q, &raw, now)
                    .expect("proven");
                (qname, true, true, m)
            }
        };
        let query = Query::query(fx::name(qname), RecordType::A);
        let lower = LowerName::from_str(qname).unwrap();
        let route = snap.route(&lower).0.id;
        assert_eq!(route, 1);
        let cache = Arc::new(Cache::new(Limits::default()));
        let stored = Stamp::now().checked_sub(Duration::from_secs(5)).unwrap();
        cache.insert(Key::new(route, &lower, RecordType::A, dnssec_ok, false), &query, &msg, secure, stored);

        let mut request = Message::new(0x5eed, MessageType::Query, OpCode::Query);
        request.metadata.recursion_desired = true;
        request.add_query(query);
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD).set_dnssec_ok(dnssec_ok);
        request.edns = Some(edns);
        let packet = request.to_vec().unwrap();
        let name = lower_wire(qname);
        let question = packet[wire::HEADER..wire::HEADER + name.len() + 4].to_vec();
        let mut flags = wire::flags::QR | wire::flags::RA | wire::flags::RD;
        if secure {
            flags |= wire::flags::AD;
        }
        let handler = Handler::new(Arc::new(ArcSwap::from_pointee(snap)), cache.clone(), Arc::new(Stats::default()));
        let bits = if dnssec_ok { KEY_DO } else { 0 };
        Hit { handler, cache, packet, route, name, bits, question, flags, stored }
    }

    /// The lookup and the render, as the fast path does them per hit.
    #[divan::bench(args = ANSWERS)]
    fn get_ref_render(bencher: Bencher, answer: Answer) {
        let hit = setup(answer);
        let now = hit.stored + Duration::from_secs(5);
        let key = KeyRef { route: hit.route, name: &hit.name, qtype: u16::from(RecordType::A), bits: hit.bits };
        let mut out = Vec::with_capacity(usize::from(EDNS_PAYLOAD));
        assert!(hit.cache.get_ref(key, now).is_some());
        bencher.bench_local(|| {
            let entry = hit.cache.get_ref(black_box(key), now)?;
            out.clear();
            entry.render(&mut out, 0x5eed, hit.flags, &hit.question, entry.age(now));
            Some(out.len())
        });
    }

    /// Query packet in, response bytes out.
    #[divan::bench(args = ANSWERS)]
    fn answer_from_cache(bencher: Bencher, answer: Answer) {
        let hit = setup(answer);
        let mut lower = [0u8; wire::MAX_NAME];
        let mut out = Vec::with_capacity(usize::from(EDNS_PAYLOAD));
        assert!(hit.handler.answer_from_cache(&hit.packet, &mut lower, &mut out), "a cache hit");
        let reply = Message::from_vec(&out).unwrap();
        assert_eq!(reply.metadata.authentic_data, matches!(answer, Answer::SignedWildcard));
        assert!(reply.answers.iter().all(|r| r.ttl < 300), "TTLs aged");
        bencher.bench_local(|| hit.handler.answer_from_cache(black_box(&hit.packet), &mut lower, &mut out));
    }

    /// The same on one and on two threads at once, each with its own buffers (as each UDP socket
    /// loop has): the shared state (routing snapshot, cache shards, counters) takes no lock, so
    /// the time per answer should stay flat as threads are added.
    #[divan::bench(threads = [1, 2])]
    fn answer_from_cache_threads(bencher: Bencher) {
        let hit = setup(Answer::PlainA);
        bencher
            .with_inputs(|| ([0u8; wire::MAX_NAME], Vec::with_capacity(usize::from(EDNS_PAYLOAD))))
            .bench_refs(|(lower, out)| hit.handler.answer_from_cache(black_box(&hit.packet), lower, out));
    }

    /// What the slow path pays first: hickory decoding the query packet (and, later, freeing the
    /// message, counted here too).
    #[divan::bench(args = ANSWERS)]
    fn parse_message(bencher: Bencher, answer: Answer) {
        let hit = setup(answer);
        bencher.bench_local(|| Message::from_vec(black_box(&hit.packet)).map(|m| m.metadata.id).ok());
    }
}

mod validation {
    use super::*;

    #[derive(Clone, Copy, Debug)]
    pub enum Shape {
        /// `www.corp.example A` and its RRSIG: one verification.
        DirectA,
        /// `x.w.corp.example A` expanded from `*.w.corp.example`, its RRSIG, and the signed NSEC3
        /// covering the next closer name: two verifications and one NSEC3 hash.
        WildcardNsec3,
    }

    const SHAPES: [Shape; 2] = [Shape::DirectA, Shape::WildcardNsec3];

    /// The zone's key set (a KSK-like key besides the signing key, as zones have) and the answer.
    fn setup(shape: Shape) -> (splitdns::trust::anchors::VerifiedKeys, Query, Message) {
        let (ksk, zsk) = (Signer::new(), Signer::new());
        let keys = fx::keys_of(&[&ksk, &zsk]);
        let (query, raw) = match shape {
            Shape::DirectA => fx::response(
                "www.corp.example.",
                RecordType::A,
                fx::signed(&zsk, vec![fx::a("www.corp.example.", [10, 1, 0, 1])]),
                vec![],
            ),
            Shape::WildcardNsec3 => fx::response(
                "x.w.corp.example.",
                RecordType::A,
                fx::wildcard(&zsk, "x.w.corp.example.", [10, 1, 0, 99]),
                fx::covering_all(&zsk),
            ),
        };
        (keys, query, raw)
    }

    /// A fresh signature cache per iteration: every RRSIG costs an ECDSA P-256 verification.
    #[divan::bench(args = SHAPES)]
    fn prove_cold(bencher: Bencher, shape: Shape) {
        let (keys, query, raw) = setup(shape);
        let zone = fx::zone();
        assert!(fastval::prove_positive(&zone, &keys, &SigCache::new(), &query, &raw, fx::NOW).is_some());
        bencher
            .with_inputs(SigCache::new)
            .bench_local_refs(|cache| fastval::prove_positive(&zone, &keys, cache, &query, black_box(&raw), fx::NOW));
    }

    /// The same answer again: every signature is a cache hit.
    #[divan::bench(args = SHAPES)]
    fn prove_warm(bencher: Bencher, shape: Shape) {
        let (keys, query, raw) = setup(shape);
        let zone = fx::zone();
        let cache = SigCache::new();
        assert!(fastval::prove_positive(&zone, &keys, &cache, &query, &raw, fx::NOW).is_some());
        let misses = cache.misses();
        bencher.bench_local(|| fastval::prove_positive(&zone, &keys, &cache, &query, black_box(&raw), fx::NOW));
        assert_eq!(cache.misses(), misses, "no crypto when warm");
    }
}
