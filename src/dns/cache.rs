//! The answer cache: one byte-bounded cache shared by all routes.
//!
//! Entries are keyed by route (so a link's answers are never served for another route), question and
//! the DO/CD bits. TTLs are honoured: an entry lives for the smallest TTL in its answer (RFC 2181 §5.2)
//! or, for NXDOMAIN/NODATA, the SOA's negative TTL (RFC 2308 §5), both capped; records are served with
//! their remaining TTL. Ages are measured on the clock that counts suspended time ([`Stamp`]), so a
//! night asleep expires what it should. SERVFAIL and other errors are not cached. Teardown uses [`Cache::flush_route`]
//! and [`Cache::flush_domain`], which remove positive and negative entries alike (RFC 8598 §5).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Stamp;

use hickory_proto::op::{Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{Equivalent, Weighter};

use super::wire;

/// The DO and CD bits of a query, as one key byte.
pub const KEY_DO: u8 = 1;
pub const KEY_CD: u8 = 2;

/// What a cached answer is looked up by: route, lower-case wire name, type, and the DO/CD bits.
/// (Only class IN is served, so the class is not part of it.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub route: u64,
    pub name: Box<[u8]>,
    pub qtype: u16,
    pub bits: u8,
}

/// A borrowed [`Key`], for lookups without allocating (the UDP fast path).
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    pub route: u64,
    pub name: &'a [u8],
    pub qtype: u16,
    pub bits: u8,
}

fn hash_key<H: Hasher>(route: u64, name: &[u8], qtype: u16, bits: u8, state: &mut H) {
    route.hash(state);
    name.hash(state);
    qtype.hash(state);
    bits.hash(state);
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(self.route, &self.name, self.qtype, self.bits, state);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(self.route, self.name, self.qtype, self.bits, state);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.route == key.route && self.qtype == key.qtype && self.bits == key.bits && *self.name == *key.name
    }
}

impl Key {
    /// The key of a question (the name is lower-cased) on `route` with the client's DO/CD bits.
    pub fn new(route: u64, name: &LowerName, qtype: RecordType, dnssec_ok: bool, checking_disabled: bool) -> Self {
        Self::from_wire(route, name.to_bytes().unwrap_or_default(), qtype, dnssec_ok, checking_disabled)
    }

    /// [`Key::new`] from a lower-case wire name already encoded.
    pub fn from_wire(route: u64, name: Vec<u8>, qtype: RecordType, dnssec_ok: bool, checking_disabled: bool) -> Self {
        let bits = if dnssec_ok { KEY_DO } else { 0 } | if checking_disabled { KEY_CD } else { 0 };
        Self { route, name: name.into_boxed_slice(), qtype: u16::from(qtype), bits }
    }

    fn as_ref(&self) -> KeyRef<'_> {
        KeyRef { route: self.route, name: &self.name, qtype: self.qtype, bits: self.bits }
    }
}

/// A cached answer, kept as the wire message it is served as: header (id 0), the question with a
/// lower-case name, and the records, already shaped for the key's DO bit. Serving it is a copy and
/// a few patches ([`Entry::render`]); [`Entry::message`] decodes it for the other paths.
#[derive(Debug)]
pub struct Entry {
    pub rcode: ResponseCode,
    /// DNSSEC-validated as secure.
    pub secure: bool,
    /// The answer's CNAME chain leads into another route: only this route's part is stored, and
    /// the rest must be asked of that route each time (the UDP fast path does not serve it).
    pub partial: bool,
    /// The message, then the offsets of its TTL fields (u16, native order): one allocation.
    wire: Box<[u8]>,
    /// Length of the message part of `wire`.
    msg_len: u16,
    stored: Stamp,
    expires: Stamp,
}

impl Entry {
    /// Seconds this entry has been in the cache.
    pub fn age(&self, now: Stamp) -> u32 {
        now.saturating_duration_since(self.stored).as_secs() as u32
    }

    pub fn is_fresh(&self, now: Stamp) -> bool {
        now < self.expires
    }

    /// Length of the stored message.
    pub fn len(&self) -> usize {
        usize::from(self.msg_len)
    }

    pub fn is_empty(&self) -> bool {
        self.msg_len == 0
    }

    fn msg(&self) -> &[u8] {
        &self.wire[..usize::from(self.msg_len)]
    }

    fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.wire[usize::from(self.msg_len)..].chunks_exact(2).map(|c| usize::from(u16::from_ne_bytes([c[0], c[1]])))
    }

    /// Appends the response to `query` to `out`: the stored message with the client's id, flags
    /// and question (as sent, so its case is echoed), the TTLs reduced by the entry's age.
    /// `flags` is the complete response flags word; the caller adds any OPT record.
    pub fn render(&self, out: &mut Vec<u8>, id: u16, flags: u16, question: &[u8], age: u32) {
        let start = out.len();
        out.extend_from_slice(self.msg());
        let msg = &mut out[start..];
        msg[0..2].copy_from_slice(&id.to_be_bytes());
        msg[2..4].copy_from_slice(&flags.to_be_bytes());
        // Same name length: the stored question is the lower-cased copy of this one.
        if let Some(q) = msg.get_mut(wire::HEADER..wire::HEADER + question.len()) {
            q.copy_from_slice(question);
        }
        if age > 0 {
            for o in self.ttl_offsets() {
                let ttl = u32::from_be_bytes([msg[o], msg[o + 1], msg[o + 2], msg[o + 3]]);
                msg[o..o + 4].copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
            }
        }
    }

    /// The stored answer as a message, TTLs reduced by its age at `now`.
    pub fn message(&self, now: Stamp) -> Option<Message> {
        let mut buf = Vec::with_capacity(self.len());
        let question_len = self.question_len()?;
        let question = self.msg()[wire::HEADER..wire::HEADER + question_len].to_vec();
        self.render(&mut buf, 0, 0x8000, &question, self.age(now));
        Message::from_vec(&buf).ok()
    }

    fn question_len(&self) -> Option<usize> {
        let mut scratch = [0u8; wire::MAX_NAME];
        Some(wire::lower_name(self.msg().get(wire::HEADER..)?, &mut scratch)? + 4)
    }

    fn weight(&self, key: &Key) -> u64 {
        ENTRY_OVERHEAD + (self.wire.len() + key.name.len()) as u64
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
        Self { max_bytes: DEFAULT_MAX_BYTES, max_ttl: 86_400, max_negative_ttl: 900 }
    }
}

/// Default cache budget: about 2,000 plain answers (fewer with signatures), a laptop's working set
/// within typical TTLs, while the whole daemon stays near 10 MB resident. Raise `cache_max_bytes`
/// for more.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

#[derive(Clone)]
struct ByWeight;

impl Weighter<Key, Arc<Entry>> for ByWeight {
    fn weight(&self, key: &Key, val: &Arc<Entry>) -> u64 {
        val.weight(key)
    }
}

/// The shared answer cache.
pub struct Cache {
    inner: QuickCache<Key, Arc<Entry>, ByWeight>,
    limits: Limits,
    /// Resolution failures, remembered briefly (RFC 9520), by the same keys (DO bit clear).
    failures: QuickCache<Key, Arc<Failure>>,
}

/// A resolution failure remembered for a while (RFC 9520 §3): a bogus answer or servers that did
/// not answer are not asked again for every copy of the question a client sends.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The RFC 8914 extended error and its text, as the first client got them.
    pub code: u16,
    pub text: String,
    /// A validation failure (else the servers did not answer).
    pub bogus: bool,
    /// Until when the failure is served without asking again.
    pub until: Stamp,
    /// Failures in a row for this question: each one doubles the time it is remembered.
    pub streak: u32,
}

/// How many failures are remembered at most (a few hundred bytes each).
const MAX_FAILURES: usize = 4096;

/// How long a failure is remembered: validation failures from 5 s (RFC 9520 §3.2's floor is 1 s)
/// doubling to 5 min, the ceiling RFC 9520 sets; servers that did not answer from 1 s doubling to
/// 30 s, so a tunnel that comes back is used again soon.
pub fn failure_hold(bogus: bool, streak: u32) -> Duration {
    let (base, max): (u64, u64) = if bogus { (5, 300) } else { (1, 30) };
    Duration::from_secs(base.saturating_mul(1u64 << streak.min(16)).min(max))
}

/// Seconds until the first RRSIG in `msg` expires (u32::MAX without signatures): a validated
/// answer must not outlive its signatures.
fn signature_lifetime(msg: &Message) -> u32 {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    // RRSIG times are serial numbers modulo 2^32 (RFC 4034 §3.1.5): the low 32 bits are what counts.
    let now = crate::clock::unix_now() as u32;
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

/// Bytes an entry costs beyond its wire message and key name: the `Arc<Entry>`, the key, the
/// cache's slot and the allocator's headers and rounding. Calibrated against the heap: 7,550 entries
/// of ~80-byte answers held 3.45 MB (457 bytes each) when this was still 160.
const ENTRY_OVERHEAD: u64 = 340;

/// Whether `r` goes to a client: DNSSEC records (RRSIG, NSEC, NSEC3) only when asked for, by DO or
/// by asking for that type.
pub fn wanted(r: &Record, qtype: RecordType, dnssec_ok: bool) -> bool {
    let t = r.record_type();
    dnssec_ok || t == qtype || !matches!(t, RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3)
}

/// Encodes the response to `query` from `msg` (records filtered by [`wanted`]) as it is stored.
fn encode(query: &Query, msg: &Message, dnssec_ok: bool) -> Option<Vec<u8>> {
    let qtype = query.query_type();
    fn pick(rs: &[Record], qtype: RecordType, dnssec_ok: bool) -> Vec<&Record> {
        rs.iter().filter(|r| wanted(r, qtype, dnssec_ok)).collect()
    }
    let an = pick(&msg.answers, qtype, dnssec_ok);
    let ns = pick(&msg.authorities, qtype, dnssec_ok);
    let ar = pick(&msg.additionals, qtype, dnssec_ok);
    let count = |v: &Vec<&Record>| u16::try_from(v.len()).ok();
    let mut metadata = Metadata::new(0, MessageType::Response, OpCode::Query);
    metadata.response_code = msg.metadata.response_code;
    let header = Header {
        metadata,
        counts: HeaderCounts { queries: 1, answers: count(&an)?, authorities: count(&ns)?, additionals: count(&ar)? },
    };
    let mut lower = query.clone();
    lower.set_name(query.name().to_lowercase());
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    header.emit(&mut enc).ok()?;
    lower.emit(&mut enc).ok()?;
    for r in an.iter().chain(ns.iter()).chain(ar.iter()) {
        r.emit(&mut enc).ok()?;
    }
    Some(buf)
}

impl Cache {
    pub fn new(limits: Limits) -> Self {
        let items = (limits.max_bytes / 512).max(16) as usize;
        Self {
            inner: QuickCache::with_weighter(items, limits.max_bytes.max(4096), ByWeight),
            limits,
            failures: QuickCache::new(MAX_FAILURES),
        }
    }

    /// A failure of `key`'s question still remembered at `now`.
    pub fn failure(&self, key: &Key, now: Stamp) -> Option<Arc<Failure>> {
        // Asked on every cache miss: borrowed key, and nothing at all while nothing failed.
        if self.failures.is_empty() {
            return None;
        }
        self.failures.get(&Self::failure_ref(key)).filter(|f| now < f.until)
    }

    /// Remembers a failure of `key`'s question; returns how long it is held.
    pub fn remember_failure(&self, key: &Key, code: u16, text: &str, bogus: bool, now: Stamp) -> Duration {
        let key = Self::failure_key(key);
        // A failure right after the last one expired continues the streak; a long quiet gap
        // (twice the last hold) starts it over.
        let streak = match self.failures.get(&key) {
            Some(f) if now.saturating_duration_since(f.until) < failure_hold(bogus, f.streak) => f.streak + 1,
            _ => 0,
        };
        let hold = failure_hold(bogus, streak);
        self.failures.insert(key, Arc::new(Failure { code, text: text.to_string(), bogus, until: now + hold, streak }));
        hold
    }

    /// Forgets a failure once the question was answered.
    pub fn forget_failure(&self, key: &Key) {
        if !self.failures.is_empty() {
            self.failures.remove(&Self::failure_ref(key));
        }
    }

    /// Failures do not depend on the DO bit: one entry per route, name, type and CD bit.
    fn failure_key(key: &Key) -> Key {
        Key { route: key.route, name: key.name.clone(), qtype: key.qtype, bits: key.bits & KEY_CD }
    }

    /// [`Cache::failure_key`], borrowed.
    fn failure_ref(key: &Key) -> KeyRef<'_> {
        KeyRef { route: key.route, name: &key.name, qtype: key.qtype, bits: key.bits & KEY_CD }
    }

    /// Failures remembered now.
    pub fn failures_len(&self) -> usize {
        self.failures.len()
    }

    /// A fresh entry for `key`, or `None`. Expired entries are removed on the way.
    pub fn get(&self, key: &Key, now: Stamp) -> Option<Arc<Entry>> {
        self.get_ref(key.as_ref(), now)
    }

    /// [`Cache::get`] with a borrowed key.
    pub fn get_ref(&self, key: KeyRef<'_>, now: Stamp) -> Option<Arc<Entry>> {
        let e = self.inner.get(&key)?;
        if e.is_fresh(now) {
            Some(e)
        } else {
            self.inner.remove(&key);
            None
        }
    }

    /// Stores the answer `msg` to `query` if it is cacheable, shaped for the key's DO bit.
    pub fn insert(&self, key: Key, query: &Query, msg: &Message, secure: bool, now: Stamp) {
        self.insert_part(key, query, msg, secure, false, now)
    }

    /// [`Cache::insert`] for an answer that may be only this route's part of a CNAME chain
    /// (`partial`: the chain continues in another route, asked separately).
    pub fn insert_part(&self, key: Key, query: &Query, msg: &Message, secure: bool, partial: bool, now: Stamp) {
        let Some(ttl) = self.ttl_for(msg) else { return };
        if ttl == 0 {
            return;
        }
        let Some(wire) = encode(query, msg, key.bits & KEY_DO != 0) else { return };
        let Some(ttls) = wire::ttl_offsets(&wire) else { return };
        let Ok(msg_len) = u16::try_from(wire.len()) else { return };
        let mut wire = wire;
        wire.reserve_exact(ttls.len() * 2);
        for t in ttls {
            wire.extend_from_slice(&t.to_ne_bytes());
        }
        let entry = Entry {
            rcode: msg.metadata.response_code,
            secure,
            partial,
            wire: wire.into_boxed_slice(),
            msg_len,
            stored: now,
            expires: now + Duration::from_secs(u64::from(ttl)),
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
        let Ok(zone) = domain.to_bytes() else { return 0 };
        self.retain_counting(|k| !wire::is_within(&k.name, &zone))
    }

    /// Removes everything. Returns how many answers went (remembered failures go too).
    pub fn clear(&self) -> usize {
        let n = self.inner.len();
        self.inner.clear();
        self.failures.clear();
        n
    }

    /// Keeps the answers (and remembered failures) whose key passes `keep`; returns how many
    /// answers went.
    fn retain_counting(&self, keep: impl Fn(&Key) -> bool) -> usize {
        let before = self.inner.len();
        self.inner.retain(|k, _| keep(k));
        self.failures.retain(|k, _| keep(k));
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
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record};
    use std::str::FromStr;

    fn key(route: u64, name: &str) -> Key {
        Key::new(route, &LowerName::from_str(name).unwrap(), RecordType::A, false, false)
    }

    fn q(name: &str) -> Query {
        Query::query(Name::from_str(name).unwrap(), RecordType::A)
    }

    /// Inserts `msg` as the answer to `name` A.
    fn put(c: &Cache, route: u64, name: &str, msg: &Message, now: Stamp) {
        c.insert(key(route, name), &q(name), msg, false, now);
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
        let now = Stamp::now();
        put(&c, 1, "a.corp.example.", &answer("a.corp.example.", 30), now);
        assert!(c.get(&key(1, "a.corp.example."), now + Duration::from_secs(29)).is_some());
        assert!(c.get(&key(1, "a.corp.example."), now + Duration::from_secs(30)).is_none());
        // Another route never sees it.
        put(&c, 1, "b.corp.example.", &answer("b.corp.example.", 30), now);
        assert!(c.get(&key(2, "b.corp.example."), now).is_none());
    }

    #[test]
    fn a_night_asleep_expires_positive_and_negative_answers() {
        // The clock counts suspended time: eight hours later, a 300 s answer and a 60 s negative
        // answer are gone, however little CLOCK_MONOTONIC moved.
        let clock = crate::clock::ManualClock::new(Stamp::from_since_boot(Duration::from_secs(1000)));
        use crate::clock::Clock;
        let c = Cache::new(Limits::default());
        put(&c, 1, "a.corp.example.", &answer("a.corp.example.", 300), clock.now());
        put(&c, 1, "nx.corp.example.", &nxdomain(60, 60), clock.now());
        assert!(c.get(&key(1, "a.corp.example."), clock.now()).is_some());
        assert!(c.get(&key(1, "nx.corp.example."), clock.now()).is_some());
        clock.advance(Duration::from_secs(8 * 3600));
        assert!(c.get(&key(1, "a.corp.example."), clock.now()).is_none(), "served after a night asleep");
        assert!(c.get(&key(1, "nx.corp.example."), clock.now()).is_none(), "negative answer outlived sleep");
        assert_eq!(c.len(), 0, "expired entries are removed on lookup");
    }

    #[test]
    fn failures_are_remembered_briefly_with_backoff_and_flushed_with_their_route() {
        let c = Cache::new(Limits::default());
        let t0 = Stamp::from_since_boot(Duration::from_secs(100));
        let k = key(1, "expired.corp.example.");
        assert!(c.failure(&k, t0).is_none());
        assert_eq!(c.remember_failure(&k, 7, "expired", true, t0), Duration::from_secs(5));
        let with_do = Key { bits: KEY_DO, ..k.clone() };
        assert_eq!(c.failure(&with_do, t0 + Duration::from_secs(4)).unwrap().code, 7, "DO does not matter");
        let with_cd = Key { bits: KEY_CD, ..k.clone() };
        assert!(c.failure(&with_cd, t0).is_none(), "a CD query validates nothing: not the same failure");
        assert!(c.failure(&k, t0 + Duration::from_secs(5)).is_none(), "held 5 s");
        // Failing again right after: twice as long, up to RFC 9520's five minutes.
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(c.remember_failure(&k, 7, "expired", true, t1), Duration::from_secs(10));
        assert_eq!(failure_hold(true, 10), Duration::from_secs(300));
        assert_eq!(failure_hold(false, 0), Duration::from_secs(1));
        assert_eq!(failure_hold(false, 10), Duration::from_secs(30));
        // An answer forgets it; a route's teardown flushes its failures.
        c.forget_failure(&k);
        assert!(c.failure(&k, t1).is_none());
        c.remember_failure(&k, 22, "timeout", false, t1);
        assert_eq!(c.failures_len(), 1);
        c.flush_route(1);
        assert_eq!(c.failures_len(), 0);
    }

    #[test]
    fn negative_ttl_from_soa_and_no_soa_no_cache() {
        let c = Cache::new(Limits::default());
        let now = Stamp::now();
        put(&c, 1, "nx.corp.example.", &nxdomain(300, 20), now);
        assert!(c.get(&key(1, "nx.corp.example."), now + Duration::from_secs(19)).is_some());
        assert!(c.get(&key(1, "nx.corp.example."), now + Duration::from_secs(20)).is_none());
        let mut bare = Message::new(1, MessageType::Response, OpCode::Query);
        bare.metadata.response_code = ResponseCode::NXDomain;
        put(&c, 1, "bare.corp.example.", &bare, now);
        assert!(c.get(&key(1, "bare.corp.example."), now).is_none());
    }

    #[test]
    fn flushes_by_route_and_domain() {
        let c = Cache::new(Limits::default());
        let now = Stamp::now();
        put(&c, 1, "a.corp.example.", &answer("a.corp.example.", 300), now);
        put(&c, 0, "corp.example.", &answer("corp.example.", 300), now);
        put(&c, 0, "othercorp.example.", &answer("othercorp.example.", 300), now);
        put(&c, 2, "x.lab.example.", &answer("x.lab.example.", 300), now);
        assert_eq!(c.flush_domain(&LowerName::from_str("corp.example.").unwrap()), 2);
        assert!(c.get(&key(0, "othercorp.example."), now).is_some());
        assert_eq!(c.flush_route(2), 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn renders_with_client_id_question_and_aged_ttls() {
        let c = Cache::new(Limits::default());
        let now = Stamp::now();
        put(&c, 1, "a.corp.example.", &answer("a.corp.example.", 300), now);
        let later = now + Duration::from_secs(100);
        // Looked up by a borrowed key built from the wire name, as the UDP path does.
        let e = c
            .get_ref(KeyRef { route: 1, name: b"\x01a\x04corp\x07example\x00", qtype: 1, bits: 0 }, later)
            .expect("hit");
        let question = b"\x01A\x04CoRp\x07example\x00\x00\x01\x00\x01";
        let mut out = vec![0xee];
        e.render(&mut out, 0xbeef, 0x8180, question, e.age(later));
        let m = Message::from_vec(&out[1..]).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert!(m.metadata.recursion_available);
        assert_eq!(m.queries[0].name().to_string(), "A.CoRp.example.");
        assert_eq!(m.answers[0].ttl, 200);
        assert_eq!(m.answers[0].name.to_string(), "A.CoRp.example.", "compressed owner follows the question");
        // The decoded view for the other paths ages the same way.
        assert_eq!(e.message(later).unwrap().answers[0].ttl, 200);
    }

    #[test]
    fn stays_within_byte_budget() {
        let c = Cache::new(Limits { max_bytes: 64 * 1024, ..Limits::default() });
        let now = Stamp::now();
        for i in 0..10_000 {
            let n = format!("h{i}.corp.example.");
            put(&c, 1, &n, &answer(&n, 300), now);
        }
        assert!(c.weight() <= 64 * 1024, "weight {}", c.weight());
        assert!(c.len() > 10);
    }
}
