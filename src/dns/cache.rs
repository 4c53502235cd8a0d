//! The answer cache: one byte-bounded cache shared by all routes.
//!
//! Entries are keyed by route (so a link's answers are never served for another route), question and
//! the DO/CD bits. TTLs are honoured: an entry lives for the smallest TTL in its answer (RFC 2181 §5.2)
//! or, for NXDOMAIN/NODATA, the SOA's negative TTL (RFC 2308 §5), both capped; records are served with
//! their remaining TTL. SERVFAIL and other errors are not cached. Teardown uses [`Cache::flush_route`]
//! and [`Cache::flush_domain`], which remove positive and negative entries alike (RFC 8598 §5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};
use quick_cache::Weighter;
use quick_cache::sync::Cache as QuickCache;

/// What a cached answer is looked up by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub route: u64,
    pub name: LowerName,
    pub qtype: RecordType,
    pub qclass: DNSClass,
    pub dnssec_ok: bool,
    pub checking_disabled: bool,
}

/// A cached upstream answer.
#[derive(Debug)]
pub struct Entry {
    pub rcode: ResponseCode,
    /// DNSSEC-validated as secure.
    pub secure: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    stored: Instant,
    expires: Instant,
    weight: u64,
}

impl Entry {
    /// Seconds this entry has been in the cache.
    pub fn age(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.stored).as_secs() as u32
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.expires
    }
}

/// TTL limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 8 * 1024 * 1024, max_ttl: 86_400, max_negative_ttl: 900 }
    }
}

#[derive(Clone)]
struct ByWeight;

impl Weighter<Key, Arc<Entry>> for ByWeight {
    fn weight(&self, _key: &Key, val: &Arc<Entry>) -> u64 {
        val.weight
    }
}

/// The shared answer cache.
pub struct Cache {
    inner: QuickCache<Key, Arc<Entry>, ByWeight>,
    limits: Limits,
}

/// Seconds until the first RRSIG in `msg` expires (u32::MAX without signatures): a validated
/// answer must not outlive its signatures.
fn signature_lifetime(msg: &Message) -> u32 {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
    msg.answers
        .iter()
        .chain(msg.authorities.iter())
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig.input().sig_expiration.get().saturating_sub(now)),
            _ => None,
        })
        .min()
        .unwrap_or(u32::MAX)
}

/// Rough bytes a record costs in memory: its wire size plus bookkeeping.
const RECORD_OVERHEAD: u64 = 96;
const ENTRY_OVERHEAD: u64 = 160;

impl Cache {
    pub fn new(limits: Limits) -> Self {
        let items = (limits.max_bytes / 512).max(16) as usize;
        Self { inner: QuickCache::with_weighter(items, limits.max_bytes.max(4096), ByWeight), limits }
    }

    /// A fresh entry for `key`, or `None`. Expired entries are removed on the way.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let e = self.inner.get(key)?;
        if e.is_fresh(now) {
            Some(e)
        } else {
            self.inner.remove(key);
            None
        }
    }

    /// Stores `msg` if it is cacheable. `wire_len` is the size of the upstream response.
    pub fn insert(&self, key: Key, msg: &Message, secure: bool, wire_len: usize, now: Instant) {
        let Some(ttl) = self.ttl_for(msg) else { return };
        if ttl == 0 {
            return;
        }
        let records = msg.answers.len() + msg.authorities.len() + msg.additionals.len();
        let weight = ENTRY_OVERHEAD + wire_len as u64 + RECORD_OVERHEAD * records as u64;
        let entry = Entry {
            rcode: msg.metadata.response_code,
            secure,
            answers: msg.answers.clone(),
            authorities: msg.authorities.clone(),
            additionals: msg.additionals.clone(),
            stored: now,
            expires: now + Duration::from_secs(u64::from(ttl)),
            weight,
        };
        self.inner.insert(key, Arc::new(entry));
    }

    /// How long `msg` may be cached, or `None` if it must not be.
    fn ttl_for(&self, msg: &Message) -> Option<u32> {
        let rcode = msg.metadata.response_code;
        if msg.metadata.truncation {
            return None;
        }
        let negative = rcode == ResponseCode::NXDomain || (rcode == ResponseCode::NoError && msg.answers.is_empty());
        if negative {
            // RFC 2308 §5: the lesser of the SOA's TTL and its MINIMUM field. No SOA, no caching.
            let soa_ttl = msg.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?;
            return Some(soa_ttl.min(self.limits.max_negative_ttl));
        }
        if rcode != ResponseCode::NoError {
            return None;
        }
        let min = msg.answers.iter().chain(msg.authorities.iter()).map(|r| r.ttl).min()?;
        Some(min.min(self.limits.max_ttl).min(signature_lifetime(msg)))
    }

    /// Removes every entry of one route (a link going down).
    pub fn flush_route(&self, route: u64) -> usize {
        self.retain_counting(|k| k.route != route)
    }

    /// Removes every entry, of any route, for `domain` and names below it.
    pub fn flush_domain(&self, domain: &LowerName) -> usize {
        self.retain_counting(|k| !domain.zone_of(&k.name))
    }

    /// Removes everything.
    pub fn clear(&self) -> usize {
        let n = self.inner.len();
        self.inner.clear();
        n
    }

    fn retain_counting(&self, keep: impl Fn(&Key) -> bool) -> usize {
        let before = self.inner.len();
        self.inner.retain(|k, _| keep(k));
        before.saturating_sub(self.inner.len())
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Bytes (by our estimate) held now.
    pub fn weight(&self) -> u64 {
        self.inner.weight()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};
    use std::str::FromStr;

    fn key(route: u64, name: &str) -> Key {
        Key {
            route,
            name: LowerName::from_str(name).unwrap(),
            qtype: RecordType::A,
            qclass: DNSClass::IN,
            dnssec_ok: false,
            checking_disabled: false,
        }
    }

    fn answer(name: &str, ttl: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(Name::from_str(name).unwrap(), ttl, RData::A(A::new(10, 0, 0, 1))));
        m
    }

    fn nxdomain(soa_ttl: u32, minimum: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = ResponseCode::NXDomain;
        let soa = SOA::new(
            Name::from_str("corp.example.").unwrap(),
            Name::from_str("h.corp.example.").unwrap(),
            1,
            60,
            60,
            60,
            minimum,
        );
        m.add_authority(Record::from_rdata(Name::from_str("corp.example.").unwrap(), soa_ttl, RData::SOA(soa)));
        m
    }

    #[test]
    fn honours_ttl() {
        let c = Cache::new(Limits::default());
        let now = Instant::now();
        c.insert(key(1, "a.corp.example."), &answer("a.corp.example.", 30), false, 60, now);
        assert!(c.get(&key(1, "a.corp.example."), now + Duration::from_secs(29)).is_some());
        assert!(c.get(&key(1, "a.corp.example."), now + Duration::from_secs(30)).is_none());
        // Another route never sees it.
        c.insert(key(1, "b.corp.example."), &answer("b.corp.example.", 30), false, 60, now);
        assert!(c.get(&key(2, "b.corp.example."), now).is_none());
    }

    #[test]
    fn negative_ttl_from_soa_and_no_soa_no_cache() {
        let c = Cache::new(Limits::default());
        let now = Instant::now();
        c.insert(key(1, "nx.corp.example."), &nxdomain(300, 20), false, 60, now);
        assert!(c.get(&key(1, "nx.corp.example."), now + Duration::from_secs(19)).is_some());
        assert!(c.get(&key(1, "nx.corp.example."), now + Duration::from_secs(20)).is_none());
        let mut bare = Message::new(1, MessageType::Response, OpCode::Query);
        bare.metadata.response_code = ResponseCode::NXDomain;
        c.insert(key(1, "bare.corp.example."), &bare, false, 60, now);
        assert!(c.get(&key(1, "bare.corp.example."), now).is_none());
    }

    #[test]
    fn flushes_by_route_and_domain() {
        let c = Cache::new(Limits::default());
        let now = Instant::now();
        c.insert(key(1, "a.corp.example."), &answer("a.corp.example.", 300), false, 60, now);
        c.insert(key(0, "corp.example."), &answer("corp.example.", 300), false, 60, now);
        c.insert(key(0, "othercorp.example."), &answer("othercorp.example.", 300), false, 60, now);
        c.insert(key(2, "x.lab.example."), &answer("x.lab.example.", 300), false, 60, now);
        assert_eq!(c.flush_domain(&LowerName::from_str("corp.example.").unwrap()), 2);
        assert!(c.get(&key(0, "othercorp.example."), now).is_some());
        assert_eq!(c.flush_route(2), 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn stays_within_byte_budget() {
        let c = Cache::new(Limits { max_bytes: 64 * 1024, ..Limits::default() });
        let now = Instant::now();
        for i in 0..10_000 {
            let n = format!("h{i}.corp.example.");
            c.insert(key(1, &n), &answer(&n, 300), false, 100, now);
        }
        assert!(c.weight() <= 64 * 1024, "weight {}", c.weight());
        assert!(c.len() > 10);
    }
}
