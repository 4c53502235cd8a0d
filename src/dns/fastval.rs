//! A fast path that proves ordinary positive answers Secure without hickory's validator.
//!
//! Profiling a validated cache miss shows most of the CPU in ECDSA verification, done afresh by a
//! `DnssecDnsHandle` built per query. Yet the signed data repeats: every expansion of a wildcard
//! has the same data to be signed (the owner is reconstructed as `*.<closest encloser>`), and the
//! NSEC3 records proving that the expanded names do not exist are few. So [`prove_positive`]
//! checks the usual positive shapes itself (a signed RRset, a CNAME chain inside the zone, a
//! wildcard expansion with its NSEC3 proof) and remembers every successful signature verification
//! in a [`SigCache`], keyed by the exact bytes (key ‖ signed data ‖ signature), so that repeating
//! material costs a lookup instead of a verification.
//!
//! Safety argument: this module only ever says "secure". [`prove_positive`] returns `Some` only
//! when every record it returns is covered by a signature that verified (now or earlier, over the
//! identical bytes) with a key of the verified key set, within its validity period, by the zone
//! itself; every RRset of the answer is on the chain from the question; and a wildcard expansion
//! comes with a signed NSEC3 record covering the next closer name. Anything else (negative
//! answers, NSEC zones' wildcards, DNAME, opt-out, unusual types, a single extra record, any doubt)
//! gives `None`, and the caller hands the answer to hickory's full validator, which stays the only
//! authority for bogus, insecure and negative answers. A cache entry is only ever inserted after a
//! successful verification and only matches the very same bytes, so the cache can save work but
//! never turn a failing signature into a valid one. The returned message holds only proven
//! material: the question, the answer RRsets with the signatures that proved them, and the proving
//! NSEC3 records with theirs; nothing unverified reaches a client under AD.
//!
//! Work is bounded like hickory's (KeyTrap, CVE-2023-50387): at most [`MAX_SIGNATURES`] RRSIGs
//! tried per RRset, [`MAX_KEYS_PER_TAG`] keys per key tag, and [`MAX_CRYPTO`] verifications per
//! answer; past that the answer simply goes to hickory.

use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC3, RRSIG};
use hickory_proto::dnssec::{Nsec3HashAlgorithm, Proof, PublicKey, TBS, Verifier};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use quick_cache::Weighter;
use quick_cache::sync::Cache as QuickCache;

use crate::trust::anchors::{MAX_KEYS_PER_TAG, MAX_SIGNATURES, VerifiedKeys};

/// Byte budget of one [`SigCache`].
pub const SIG_CACHE_BYTES: u64 = 256 * 1024;
/// Bookkeeping charged per cache entry on top of its key bytes.
const ENTRY_OVERHEAD: u64 = 64;
/// Longest CNAME chain followed (more goes to hickory).
pub const MAX_CNAMES: usize = 8;
/// Most signature verifications (cache misses) spent on one answer.
pub const MAX_CRYPTO: usize = 16;
/// Most answer records looked at (more goes to hickory).
const MAX_ANSWERS: usize = 64;
/// Most authority records searched for a wildcard proof.
const MAX_AUTHORITIES: usize = 32;
/// Most NSEC3 hash iterations accepted (RFC 9276 §3.2 lets validators stop well below this).
pub const MAX_NSEC3_ITERATIONS: u16 = 100;
/// Most NSEC3 hashes computed per proof (records with differing salt or iterations each need one).
const MAX_HASHES: usize = 2;
/// Length of a SHA-1 NSEC3 hash.
const SHA1_LEN: usize = 20;

/// Successful signature verifications under one verified key set.
///
/// The key of an entry is the exact byte string algorithm ‖ public key ‖ signed data ‖ signature
/// (with length prefixes), compared for equality: there is no hash-only key, so a collision can
/// never mean "verified". Only successes are stored.
pub struct SigCache {
    cache: QuickCache<Box<[u8]>, (), ByteWeighter>,
    /// Verifications answered from the cache.
    hits: AtomicU64,
    /// Verifications that ran the crypto (successful or not).
    misses: AtomicU64,
}

#[derive(Clone)]
struct ByteWeighter;

impl Weighter<Box<[u8]>, ()> for ByteWeighter {
    fn weight(&self, key: &Box<[u8]>, _: &()) -> u64 {
        key.len() as u64 + ENTRY_OVERHEAD
    }
}

impl Default for SigCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigCache")
            .field("entries", &self.cache.len())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl SigCache {
    /// An empty cache of [`SIG_CACHE_BYTES`].
    pub fn new() -> Self {
        Self {
            // A typical entry (P-256 key, one small RRset, signature) weighs about 300 bytes.
            cache: QuickCache::with_weighter(1024, SIG_CACHE_BYTES, ByteWeighter),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Verifications answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Verifications that ran the crypto so far (successful or not).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Number of remembered verifications.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Whether `sig` is `key`'s signature over `tbs`: from the cache, or by verifying it when
    /// `budget` allows (a success is remembered). An exhausted budget means "not verified".
    fn verify(&self, key: &DNSKEY, tbs: &[u8], sig: &[u8], budget: &mut usize) -> bool {
        let Some(entry) = cache_key(key, tbs, sig) else {
            return false;
        };
        if self.cache.get(&entry[..]).is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        self.misses.fetch_add(1, Ordering::Relaxed);
        let ok = Verifier::verify(key, tbs, sig).is_ok();
        if ok {
            self.cache.insert(entry.into_boxed_slice(), ());
        }
        ok
    }
}

/// algorithm (1) ‖ key length (2) ‖ key ‖ TBS length (4) ‖ TBS ‖ signature: unambiguous, since
/// every part but the last carries its length.
fn cache_key(key: &DNSKEY, tbs: &[u8], sig: &[u8]) -> Option<Vec<u8>> {
    let pk = key.public_key().public_bytes();
    let pk_len = u16::try_from(pk.len()).ok()?;
    let tbs_len = u32::try_from(tbs.len()).ok()?;
    let mut out = Vec::with_capacity(7 + pk.len() + tbs.len() + sig.len());
    out.push(u8::from(key.algorithm()));
    out.extend_from_slice(&pk_len.to_be_bytes());
    out.extend_from_slice(pk);
    out.extend_from_slice(&tbs_len.to_be_bytes());
    out.extend_from_slice(tbs);
    out.extend_from_slice(sig);
    Some(out)
}

/// Proves a positive answer Secure, or returns `None` ("not sure: ask hickory's validator").
///
/// `raw` is the answer to `query` as fetched from the zone's servers (DO and CD set); `keys` is the
/// verified DNSKEY set of `zone` and `cache` its [`SigCache`]; `now_unix` is the current time.
/// On success the message holds the question, the answer RRsets (chain order) with the RRSIGs
/// that proved them, and, for wildcard expansions, the proving NSEC3 records with their RRSIGs in
/// the authority section. TTLs are capped as RFC 4035 §5.3.3 says; the header is copied from `raw`.
pub fn prove_positive(
    zone: &Name,
    keys: &VerifiedKeys,
    cache: &SigCache,
    query: &Query,
    raw: &Message,
    now_unix: u32,
) -> Option<Message> {
    if !ordinary_type(query.query_type()) || !provable(zone, keys, query, raw) {
        return None;
    }
    // The answer's RRsets (RRSIGs aside), in order of appearance.
    let sets = rrsets(raw, |r| ordinary_type(r.record_type()) || r.record_type() == RecordType::CNAME)?;

    // Every RRset must be on the chain from the question, and the chain must end in qtype.
    let qtype = query.query_type();
    let mut chain: Vec<usize> = Vec::new();
    let mut name = query.name().clone();
    loop {
        if !zone.zone_of(&name) || chain.len() > MAX_CNAMES {
            return None;
        }
        if let Some(i) = sets.iter().position(|s| s.rtype == qtype && *s.owner == name) {
            chain.push(i);
            break;
        }
        let i = sets.iter().position(|s| s.rtype == RecordType::CNAME && *s.owner == name)?;
        let [only] = sets[i].records.as_slice() else {
            return None;
        };
        let RData::CNAME(target) = &only.data else {
            return None;
        };
        if chain.contains(&i) {
            return None;
        }
        chain.push(i);
        name = target.0.clone();
    }
    if chain.len() != sets.len() {
        return None;
    }

    let mut cx = Context::new(zone, keys, cache, now_unix);
    prove_sets(&mut cx, chain.iter().map(|&i| &sets[i]), query, raw)
}

/// The checks every proof starts with: a plain NOERROR answer to an IN question, not too big,
/// under the zone whose keys we hold.
fn provable(zone: &Name, keys: &VerifiedKeys, query: &Query, raw: &Message) -> bool {
    let meta = &raw.metadata;
    meta.response_code == ResponseCode::NoError
        && !meta.truncation
        && !raw.answers.is_empty()
        && raw.answers.len() <= MAX_ANSWERS
        && query.query_class() == DNSClass::IN
        && keys.zone == *zone
        && zone.zone_of(query.name())
}

/// The answer section's RRsets (RRSIGs aside), in order of appearance; `None` if a record is not
/// class IN or `accept` refuses it.
fn rrsets(raw: &Message, accept: impl Fn(&Record) -> bool) -> Option<Vec<RrSet<'_>>> {
    let mut sets: Vec<RrSet<'_>> = Vec::new();
    for record in &raw.answers {
        let rtype = record.record_type();
        if rtype == RecordType::RRSIG {
            continue;
        }
        if record.dns_class != DNSClass::IN || !accept(record) {
            return None;
        }
        match sets.iter_mut().find(|s| s.rtype == rtype && *s.owner == record.name) {
            Some(set) => set.records.push(record),
            None => sets.push(RrSet { owner: &record.name, rtype, records: vec![record] }),
        }
    }
    Some(sets)
}

/// Proves each of `sets` (a wildcard expansion with the NSEC3 that covers its next closer name)
/// and builds the answer: the proven RRsets with their RRSIGs, the proofs in the authority section,
/// the header copied from `raw`. `None` if anything does not verify.
fn prove_sets<'a>(
    cx: &mut Context<'_>,
    sets: impl Iterator<Item = &'a RrSet<'a>>,
    query: &Query,
    raw: &Message,
) -> Option<Message> {
    let mut answers = Vec::new();
    let mut authorities: Vec<Record> = Vec::new();
    for set in sets {
        let proven = cx.verify_rrset(set.owner, set.rtype, &set.records, &raw.answers)?;
        if proven.labels < set.owner.num_labels() {
            // Wildcard expansion: the next closer name must provably not exist.
            let next_closer = set.owner.trim_to(usize::from(proven.labels) + 1);
            for record in cx.nsec3_cover(&next_closer, &raw.authorities)? {
                if !authorities.contains(&record) {
                    authorities.push(record);
                }
            }
        }
        answers.extend(proven.records);
    }
    let meta = &raw.metadata;
    let mut message = Message::new(meta.id, meta.message_type, meta.op_code);
    message.metadata = *meta;
    message.metadata.response_code = ResponseCode::NoError;
    message.edns = raw.edns.clone();
    message.add_query(query.clone());
    message.answers = answers;
    message.authorities = authorities;
    Some(message)
}

/// Proves the answer to an ANY query: each RRset at the query name (one, as RFC 8482 minimal
/// responses give, or several) signed by the zone's verified keys, a wildcard expansion with its
/// NSEC3 proof. hickory's validator has no notion of ANY; the answer is whatever RRsets the server
/// chose, each of which must verify. `None`: something did not verify, or the shape is not a
/// positive ANY answer (the caller decides what that means).
pub fn prove_any(
    zone: &Name,
    keys: &VerifiedKeys,
    cache: &SigCache,
    query: &Query,
    raw: &Message,
    now_unix: u32,
) -> Option<Message> {
    if query.query_type() != RecordType::ANY || !provable(zone, keys, query, raw) {
        return None;
    }
    // Only data at the question's name; proofs belong in the authority section.
    let sets = rrsets(raw, |r| {
        r.name == *query.name() && !matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3 | RecordType::ANY)
    })?;
    let mut cx = Context::new(zone, keys, cache, now_unix);
    prove_sets(&mut cx, sets.iter(), query, raw)
}

/// Types the fast path handles as answer data; the rest (meta types, DNSSEC types, DNAME, ...)
/// goes to hickory.
fn ordinary_type(t: RecordType) -> bool {
    !matches!(
        t,
        RecordType::ANY
            | RecordType::AXFR
            | RecordType::IXFR
            | RecordType::OPT
            | RecordType::NULL
            | RecordType::ZERO
            | RecordType::CNAME
            | RecordType::DNAME
            | RecordType::NS
            | RecordType::SOA
            | RecordType::SIG
            | RecordType::KEY
            | RecordType::RRSIG
            | RecordType::NSEC
            | RecordType::NSEC3
            | RecordType::NSEC3PARAM
            | RecordType::DNSKEY
            | RecordType::CDNSKEY
            | RecordType::DS
            | RecordType::CDS
            | RecordType::TSIG
    ) && !matches!(t, RecordType::Unknown(_))
}

/// Records of one owner and type, as they appear in a section.
struct RrSet<'a> {
    owner: &'a Name,
    rtype: RecordType,
    records: Vec<&'a Record>,
}

/// An RRset proven by a signature: the records and that RRSIG (TTLs capped, marked Secure), and the
/// signature's Labels field.
struct ProvenSet {
    records: Vec<Record>,
    labels: u8,
}

/// Per-answer state: the zone, its keys with their tags, and the crypto budget.
struct Context<'a> {
    zone: &'a Name,
    zone_labels: u8,
    keys: Vec<(u16, &'a DNSKEY)>,
    cache: &'a SigCache,
    now: SerialNumber,
    now_unix: u32,
    budget: usize,
}

impl<'a> Context<'a> {
    fn new(zone: &'a Name, keys: &'a VerifiedKeys, cache: &'a SigCache, now_unix: u32) -> Self {
        let keys = keys
            .keys
            .iter()
            .filter(|k| k.zone_key() && !k.revoke())
            .filter_map(|k| k.calculate_key_tag().ok().map(|t| (t, k)))
            .collect();
        Self {
            zone,
            zone_labels: zone.num_labels(),
            keys,
            cache,
            now: SerialNumber::new(now_unix),
            now_unix,
            budget: MAX_CRYPTO,
        }
    }

    /// Finds an RRSIG in `section` that proves the RRset `owner`/`rtype` made of `records`.
    fn verify_rrset(
        &mut self,
        owner: &Name,
        rtype: RecordType,
        records: &[&Record],
        section: &[Record],
    ) -> Option<ProvenSet> {
        let owner_labels = owner.num_labels();
        let mut tried = 0;
        for sig_record in section {
            let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &sig_record.data else {
                continue;
            };
            let input = sig.input();
            if sig_record.name != *owner || sig_record.dns_class != DNSClass::IN || input.type_covered != rtype {
                continue;
            }
            tried += 1;
            if tried > MAX_SIGNATURES {
                return None;
            }
            if input.signer_name != *self.zone
                || input.num_labels > owner_labels
                || input.num_labels < self.zone_labels
                // Positive checks: times too far apart to compare (RFC 1982) fail both.
                || !(self.now >= input.sig_inception && self.now <= input.sig_expiration)
            {
                continue;
            }
            let Ok(tbs) = TBS::from_input(owner, DNSClass::IN, input, records.iter().copied()) else {
                continue;
            };
            if self.signed_by_zone(sig, tbs.as_ref()) {
                return Some(self.proven(records, sig_record, sig));
            }
        }
        None
    }

    /// Whether a key of the set with the RRSIG's tag and algorithm made its signature over `tbs`.
    fn signed_by_zone(&mut self, sig: &RRSIG, tbs: &[u8]) -> bool {
        let input = sig.input();
        let candidates = self.keys.iter().filter(|(tag, k)| *tag == input.key_tag && k.algorithm() == input.algorithm);
        for (_, key) in candidates.take(MAX_KEYS_PER_TAG) {
            if self.cache.verify(key, tbs, sig.sig(), &mut self.budget) {
                return true;
            }
        }
        false
    }

    /// The proven records and RRSIG, TTLs capped at the RRSIG's original TTL and remaining
    /// validity (RFC 4035 §5.3.3), marked Secure.
    fn proven(&self, records: &[&Record], sig_record: &Record, sig: &RRSIG) -> ProvenSet {
        let input = sig.input();
        let left = input.sig_expiration.get().wrapping_sub(self.now_unix);
        let ttl = records.iter().map(|r| r.ttl).chain([sig_record.ttl, input.original_ttl, left]).min().unwrap_or(0);
        let mut out: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
        out.push(sig_record.clone());
        for r in &mut out {
            r.ttl = ttl;
            r.proof = Proof::Secure;
        }
        ProvenSet { records: out, labels: input.num_labels }
    }

    /// A signed NSEC3 record of the zone (from `section`) that covers `name`, with its RRSIG.
    fn nsec3_cover(&mut self, name: &Name, section: &[Record]) -> Option<Vec<Record>> {
        let mut memo: Option<(Vec<u8>, u16, Vec<u8>)> = None;
        let mut hashed = 0;
        for (i, record) in section.iter().enumerate().take(MAX_AUTHORITIES) {
            let RData::DNSSEC(DNSSECRData::NSEC3(nsec3)) = &record.data else {
                continue;
            };
            if record.dns_class != DNSClass::IN
                || nsec3.hash_algorithm() != Nsec3HashAlgorithm::SHA1
                || nsec3.opt_out()
                || nsec3.iterations() > MAX_NSEC3_ITERATIONS
                || record.name.base_name() != *self.zone
            {
                continue;
            }
            // One NSEC3 record per owner: a second one with the same owner makes this one's RRset
            // something else, so leave the case to hickory.
            let same_owner = section
                .iter()
                .filter(|r| r.record_type() == RecordType::NSEC3 && r.name == record.name)
                .take(2)
                .count();
            if same_owner != 1 {
                continue;
            }
            let Some(owner_hash) = record.name.iter().next().and_then(base32hex_decode) else {
                continue;
            };
            let hash = match &memo {
                Some((salt, iterations, h)) if salt == nsec3.salt() && *iterations == nsec3.iterations() => h.clone(),
                _ => {
                    hashed += 1;
                    if hashed > MAX_HASHES {
                        return None;
                    }
                    let Ok(h) = Nsec3HashAlgorithm::SHA1.hash(nsec3.salt(), name, nsec3.iterations()) else {
                        continue;
                    };
                    let h = h.as_ref().to_vec();
                    memo = Some((nsec3.salt().to_vec(), nsec3.iterations(), h.clone()));
                    h
                }
            };
            if !covers(&owner_hash, nsec3, &hash) {
                continue;
            }
            let records = [&section[i]];
            if let Some(proven) = self.verify_rrset(&record.name, RecordType::NSEC3, &records, section) {
                return Some(proven.records);
            }
        }
        None
    }
}

/// Whether the NSEC3 record whose owner hash is `owner` covers `hash` (strictly between its owner
/// and next hashed owner, around the end of the chain for the last record), per RFC 5155 §8.3.
fn covers(owner: &[u8], nsec3: &NSEC3, hash: &[u8]) -> bool {
    let next = nsec3.next_hashed_owner_name();
    if owner.len() != SHA1_LEN || next.len() != SHA1_LEN || hash.len() != SHA1_LEN {
        return false;
    }
    if owner < next { owner < hash && hash < next } else { hash > owner || hash < next }
}

/// RFC 4648 base32hex without padding, either case; `None` unless `label` is the exact, canonical
/// encoding of a SHA-1 hash (32 characters, no stray bits).
pub(crate) fn base32hex_decode(label: &[u8]) -> Option<Vec<u8>> {
    if label.len() != 32 {
        return None;
    }
    let mut out = Vec::with_capacity(SHA1_LEN);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in label {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'v' => c - b'a' + 10,
            b'A'..=b'V' => c - b'A' + 10,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits == 0 && out.len() == SHA1_LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::signing_fixture::*;
    use hickory_proto::dnssec::rdata::NSEC;
    use hickory_proto::rr::rdata::{A, NS};
    use std::net::Ipv4Addr;

    fn prove(keys: &VerifiedKeys, cache: &SigCache, qm: &(Query, Message)) -> Option<Message> {
        prove_positive(&zone(), keys, cache, &qm.0, &qm.1, NOW)
    }

    /// `h` ± 1 as a big-endian number, wrapping.
    fn step(h: &[u8], up: bool) -> Vec<u8> {
        let mut out = h.to_vec();
        for b in out.iter_mut().rev() {
            let (v, carry) = if up { b.overflowing_add(1) } else { b.overflowing_sub(1) };
            *b = v;
            if !carry {
                break;
            }
        }
        out
    }

    #[test]
    fn base32hex_round_trips_and_matches_rfc5155() {
        // RFC 5155 Appendix A: H(example) with salt aabbccdd, 12 iterations.
        let h = Nsec3HashAlgorithm::SHA1.hash(&[0xaa, 0xbb, 0xcc, 0xdd], &name("example."), 12).unwrap();
        assert_eq!(base32hex_decode(b"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom").as_deref(), Some(h.as_ref()));
        assert_eq!(base32hex_decode(b"0P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM").as_deref(), Some(h.as_ref()));
        let bytes: Vec<u8> = (0..20).collect();
        assert_eq!(base32hex_decode(base32hex(&bytes).as_bytes()), Some(bytes));
        assert_eq!(base32hex_decode(b"0p9mhaveqvm6t7vbl5lop2u3t2rp3to"), None, "too short");
        assert_eq!(base32hex_decode(b"0p9mhaveqvm6t7vbl5lop2u3t2rp3tow"), None, "w is not base32hex");
    }

    #[test]
    fn direct_secure_answer_is_proven() {
        let s = Signer::new();
        let (keys, cache) = (keys_of(&[&s]), SigCache::new());
        let mut answers = signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]);
        answers[0].ttl = 600; // more than the original TTL: capped
        let mut qm = response("www.corp.example.", RecordType::A, answers, vec![]);
        // Unproven extras in authority and additional are dropped, not forwarded.
        qm.1.authorities.push(Record::from_rdata(zone(), 60, RData::NS(NS(name("ns1.corp.example.")))));
        qm.1.additionals.push(a("ns1.corp.example.", [10, 9, 9, 9]));
        let m = prove(&keys, &cache, &qm).expect("secure");
        assert_eq!(m.answers.len(), 2);
        assert!(m.answers.iter().all(|r| r.proof == Proof::Secure && r.ttl == 60));
        assert!(m.authorities.is_empty() && m.additionals.is_empty());
        assert_eq!(m.queries, vec![qm.0.clone()]);
        assert_eq!(m.metadata.id, 7);
        assert_eq!((cache.misses(), cache.hits()), (1, 0));
        // The same answer again costs no crypto.
        assert!(prove(&keys, &cache, &qm).is_some());
        assert_eq!((cache.misses(), cache.hits()), (1, 1));
    }

    #[test]
    fn any_answers_are_proven_rrset_by_rrset() {
        let s = Signer::new();
        let (keys, cache) = (keys_of(&[&s]), SigCache::new());
        let q = Query::query(name("www.corp.example."), RecordType::ANY);
        let any = |answers: Vec<Record>| {
            let (_, mut m) = response("www.corp.example.", RecordType::ANY, answers, vec![]);
            m.queries = vec![q.clone()];
            m
        };
        // RFC 8482 minimal: one RRset.
        let one = any(signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]));
        let m = prove_any(&zone(), &keys, &cache, &q, &one, NOW).expect("secure");
        assert_eq!(m.answers.len(), 2);
        assert!(m.answers.iter().all(|r| r.proof == Proof::Secure));
        // Classic: several RRsets, each signed.
        let aaaa = Record::from_rdata(name("www.corp.example."), 60, RData::AAAA("fd00::1".parse().unwrap()));
        let mut both = signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]);
        both.extend(signed(&s, vec![aaaa.clone()]));
        assert_eq!(prove_any(&zone(), &keys, &cache, &q, &any(both), NOW).map(|m| m.answers.len()), Some(4));
        // One RRset unsigned: not proven.
        let mut half = signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]);
        half.push(aaaa);
        assert!(prove_any(&zone(), &keys, &cache, &q, &any(half), NOW).is_none());
        // A record at another name is not part of an ANY answer.
        let other = any(signed(&s, vec![a("mail.corp.example.", [10, 1, 0, 2])]));
        assert!(prove_any(&zone(), &keys, &cache, &q, &other, NOW).is_none());
        // A signer outside the trusted keys proves nothing.
        let rogue = Signer::new();
        let forged = any(signed(&rogue, vec![a("www.corp.example.", [6, 6, 6, 6])]));
        assert!(prove_any(&zone(), &keys, &cache, &q, &forged, NOW).is_none());
    }

    #[test]
    fn wildcard_with_covering_nsec3_is_proven_and_cached() {
        let s = Signer::new();
        let (keys, cache) = (keys_of(&[&s]), SigCache::new());
        // ECDSA signatures are randomised: sign once, as a zone would, and reuse.
        let (sig, proof) = (wildcard_sig(&s), covering_all(&s));
        let qm = response(
            "x.w.corp.example.",
            RecordType::A,
            expand(&sig, "x.w.corp.example.", [10, 1, 0, 99]),
            proof.clone(),
        );
        let m = prove(&keys, &cache, &qm).expect("secure");
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.authorities.len(), 2, "the NSEC3 and its RRSIG");
        assert!(m.authorities.iter().any(|r| r.record_type() == RecordType::NSEC3));
        assert_eq!((cache.misses(), cache.hits()), (2, 0));

        // Another expansion of the same wildcard: same signed data, so both signatures hit.
        let qm = response(
            "Other.W.corp.example.",
            RecordType::A,
            expand(&sig, "Other.W.corp.example.", [10, 1, 0, 99]),
            proof.clone(),
        );
        assert!(prove(&keys, &cache, &qm).is_some());
        assert_eq!((cache.misses(), cache.hits()), (2, 2));

        // Deeper: next closer is y.w.corp.example, still covered.
        let qm =
            response("z.y.w.corp.example.", RecordType::A, expand(&sig, "z.y.w.corp.example.", [10, 1, 0, 99]), proof);
        assert!(prove(&keys, &cache, &qm).is_some());
        assert_eq!((cache.misses(), cache.hits()), (2, 4));
    }

    #[test]
    fn cached_signature_over_different_rdata_is_not_accepted() {
        let s = Signer::new();
        let (keys, cache) = (keys_of(&[&s]), SigCache::new());
        let (sig, proof) = (wildcard_sig(&s), covering_all(&s));
        let good = response(
            "x.w.corp.example.",
            RecordType::A,
            expand(&sig, "x.w.corp.example.", [10, 1, 0, 99]),
            proof.clone(),
        );
        assert!(prove(&keys, &cache, &good).is_some());
        let misses = cache.misses();
        // Same RRSIG (now cached as verified), different address.
        let forged =
            response("y.w.corp.example.", RecordType::A, expand(&sig, "y.w.corp.example.", [10, 6, 6, 6]), proof);
        assert!(prove(&keys, &cache, &forged).is_none());
        assert_eq!(cache.misses(), misses + 1, "the forged RRset must go through the crypto, and fail");
        assert!(prove(&keys, &cache, &forged).is_none(), "and the failure is not remembered as success");
    }

    #[test]
    fn wildcard_without_nsec3_is_not_proven() {
        let s = Signer::new();
        let keys = keys_of(&[&s]);
        let qm =
            response("x.w.corp.example.", RecordType::A, wildcard(&s, "x.w.corp.example.", [10, 1, 0, 99]), vec![]);
        assert!(prove(&keys, &SigCache::new(), &qm).is_none());
        // An unsigned covering NSEC3 is no proof either.
        let mut unsigned = covering_all(&s);
        unsigned.truncate(1);
        let qm =
            response("x.w.corp.example.", RecordType::A, wildcard(&s, "x.w.corp.example.", [10, 1, 0, 99]), unsigned);
        assert!(prove(&keys, &SigCache::new(), &qm).is_none());
        // Nor is an NSEC zone's proof (those wildcards are hickory's).
        let nsec = NSEC::new(name("zz.w.corp.example."), [RecordType::A, RecordType::RRSIG, RecordType::NSEC]);
        let nsec =
            signed(&s, vec![Record::from_rdata(name("w.corp.example."), 60, RData::DNSSEC(DNSSECRData::NSEC(nsec)))]);
        let qm = response("x.w.corp.example.", RecordType::A, wildcard(&s, "x.w.corp.example.", [10, 1, 0, 99]), nsec);
        assert!(prove(&keys, &SigCache::new(), &qm).is_none());
    }

    #[test]
    fn nsec3_that_does_not_cover_is_not_proof() {
        let s = Signer::new();
        let keys = keys_of(&[&s]);
        let h = hash(&name("x.w.corp.example."));
        let answers = || wildcard(&s, "x.w.corp.example.", [10, 1, 0, 99]);
        let after = step(&h, true);
        let cases = [
            // Matching (the next closer exists), not covering.
            nsec3(&s, &h, &[0xff; 20], false, 0),
            // A span entirely above the hash.
            nsec3(&s, &after, &[0xff; 20], false, 0),
            // Covering, but opt-out (an unsigned delegation may hide there).
            nsec3(&s, &[0; 20], &[0xff; 20], true, 0),
            // Covering, but too many iterations.
            nsec3(&s, &[0; 20], &[0xff; 20], false, MAX_NSEC3_ITERATIONS + 1),
        ];
        for (i, proof) in cases.into_iter().enumerate() {
            let qm = response("x.w.corp.example.", RecordType::A, answers(), proof);
            assert!(prove(&keys, &SigCache::new(), &qm).is_none(), "case {i}");
        }
        // Wrap-around at the end of the chain does cover.
        let qm = response("x.w.corp.example.", RecordType::A, answers(), nsec3(&s, &after, &h, false, 0));
        assert!(prove(&keys, &SigCache::new(), &qm).is_none(), "owner just above, next = the hash itself");
        let before = step(&h, false);
        let qm = response("x.w.corp.example.", RecordType::A, answers(), nsec3(&s, &after, &before, false, 0));
        assert!(prove(&keys, &SigCache::new(), &qm).is_none(), "wrap-around span that skips the hash");
        let qm = response("x.w.corp.example.", RecordType::A, answers(), nsec3(&s, &[0xff; 20], &after, false, 0));
        assert!(prove(&keys, &SigCache::new(), &qm).is_some(), "wrap-around span that covers the hash");
    }

    #[test]
    fn nsec3_of_the_wrong_name_is_not_proof() {
        // The NSEC3 covers H(x.w.corp.example), but the next closer of a.x.w.corp.example expanded
        // from *.w.corp.example is x.w.corp.example, while for the forged Labels 2 it is
        // w.corp.example, whose hash this NSEC3 does not cover.
        let s = Signer::new();
        let keys = keys_of(&[&s]);
        let h = hash(&name("x.w.corp.example."));
        let (lo, hi) = (step(&h, false), step(&h, true));
        let hw = hash(&name("w.corp.example."));
        assert!(!(lo < hw && hw < hi));
        // *.corp.example signed with Labels 2, expanded at a.x.w.corp.example.
        let template = a("*.corp.example.", [10, 1, 0, 98]);
        let mut sig = s.sign(&[template], SigOpts::default());
        sig.name = name("a.x.w.corp.example.");
        let qm = response(
            "a.x.w.corp.example.",
            RecordType::A,
            vec![a("a.x.w.corp.example.", [10, 1, 0, 98]), sig],
            nsec3(&s, &lo, &hi, false, 0),
        );
        assert!(prove(&keys, &SigCache::new(), &qm).is_none());
    }

    #[test]
    fn tampered_rdata_is_not_proven() {
        let s = Signer::new();
        let mut answers = signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]);
        answers[0].data = RData::A(A(Ipv4Addr::new(10, 6, 6, 6)));
        let qm = response("www.corp.example.", RecordType::A, answers, vec![]);
        assert!(prove(&keys_of(&[&s]), &SigCache::new(), &qm).is_none());
    }

    #[test]
    fn signatures_outside_their_validity_are_not_proven() {
        let s = Signer::new();
        for window in [(NOW - 30 * DAY, NOW - DAY), (NOW + DAY, NOW + 30 * DAY), (NOW + (1 << 31), NOW)] {
            let records = vec![a("www.corp.example.", [10, 1, 0, 1])];
            let sig = s.sign(&records, SigOpts { window, ..SigOpts::default() });
            let qm = response("www.corp.example.", RecordType::A, [records, vec![sig]].concat(), vec![]);
            let cache = SigCache::new();
            assert!(prove(&keys_of(&[&s]), &cache, &qm).is_none(), "{window:?}");
            assert_eq!(cache.misses(), 0, "no crypto for a signature out of its window");
        }
    }

    #[test]
    fn signer_other_than_the_zone_is_not_proven() {
        let s = Signer::new();
        for signer in ["example.", "w.corp.example.", "www.corp.example."] {
            let records = vec![a("www.corp.example.", [10, 1, 0, 1])];
            let sig = s.sign(&records, SigOpts { signer: Some(name(signer)), ..SigOpts::default() });
            let qm = response("www.corp.example.", RecordType::A, [records, vec![sig]].concat(), vec![]);
            assert!(prove(&keys_of(&[&s]), &SigCache::new(), &qm).is_none(), "{signer}");
        }
    }

    #[test]
    fn key_outside_the_set_is_not_proven() {
        let (s, rogue) = (Signer::new(), Signer::new());
        let qm = response(
            "www.corp.example.",
            RecordType::A,
            signed(&rogue, vec![a("www.corp.example.", [10, 1, 0, 1])]),
            vec![],
        );
        assert!(prove(&keys_of(&[&s]), &SigCache::new(), &qm).is_none());
        assert!(prove(&keys_of(&[&s, &rogue]), &SigCache::new(), &qm).is_some(), "control: with the key it is");
    }

    #[test]
    fn labels_beyond_the_owner_or_above_the_zone_are_not_proven() {
        let s = Signer::new();
        // Labels 4: a signature over a.www.corp.example moved to www (TBS cannot even be built);
        // Labels 1: a genuine signature by the zone's key over *.example, outside the zone.
        for (signed_owner, labels) in [("a.www.corp.example.", 4), ("www.corp.example.", 1)] {
            let mut sig =
                s.sign(&[a(signed_owner, [10, 1, 0, 1])], SigOpts { labels: Some(labels), ..SigOpts::default() });
            sig.name = name("www.corp.example.");
            let records = vec![a("www.corp.example.", [10, 1, 0, 1])];
            let qm = response("www.corp.example.", RecordType::A, [records, vec![sig]].concat(), covering_all(&s));
            assert!(prove(&keys_of(&[&s]), &SigCache::new(), &qm).is_none(), "labels {labels}");
        }
    }

    #[test]
    fn extra_records_in_the_answer_are_not_proven() {
        let s = Signer::new();
        let keys = keys_of(&[&s]);
        let good = signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]);
        // Unsigned record of the same RRset, unsigned unrelated record, signed unrelated RRset.
        let extras = [
            vec![a("www.corp.example.", [10, 6, 6, 6])],
            vec![a("mail.corp.example.", [10, 6, 6, 6])],
            signed(&s, vec![a("mail.corp.example.", [10, 1, 0, 2])]),
        ];
        for (i, extra) in extras.into_iter().enumerate() {
            let qm = response("www.corp.example.", RecordType::A, [good.clone(), extra].concat(), vec![]);
            assert!(prove(&keys, &SigCache::new(), &qm).is_none(), "case {i}");
        }
    }

    #[test]
    fn cname_chain_in_the_zone_is_proven() {
        let s = Signer::new();
        let keys = keys_of(&[&s]);
        let answers = [
            signed(&s, vec![cname("alias.corp.example.", "mid.corp.example.")]),
            signed(&s, vec![cname("mid.corp.example.", "www.corp.example.")]),
            signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]),
        ]
        .concat();
        let qm = response("alias.corp.example.", RecordType::A, answers.clone(), vec![]);
        let m = prove(&keys, &SigCache::new(), &qm).expect("secure");
        assert_eq!(m.answers.len(), 6);

        // A chain through an unsigned CNAME, leaving the zone, or not ending in qtype is not.
        let mut unsigned = answers.clone();
        unsigned.remove(1);
        let outside = [
            signed(&s, vec![cname("alias.corp.example.", "www.elsewhere.example.")]),
            signed(&s, vec![a("www.elsewhere.example.", [192, 0, 2, 1])]),
        ]
        .concat();
        let dangling = signed(&s, vec![cname("alias.corp.example.", "mid.corp.example.")]);
        let looping = [
            signed(&s, vec![cname("alias.corp.example.", "mid.corp.example.")]),
            signed(&s, vec![cname("mid.corp.example.", "alias.corp.example.")]),
        ]
        .concat();
        for (what, answers) in [("unsigned", unsigned), ("outside", outside), ("dangling", dangling), ("loop", looping)]
        {
            let qm = response("alias.corp.example.", RecordType::A, answers, vec![]);
            assert!(prove(&keys, &SigCache::new(), &qm).is_none(), "{what}");
        }
    }

    #[test]
    fn unusual_answers_go_to_hickory() {
        let s = Signer::new();
        let keys = keys_of(&[&s]);
        let good = || signed(&s, vec![a("www.corp.example.", [10, 1, 0, 1])]);
        let mut truncated = response("www.corp.example.", RecordType::A, good(), vec![]);
        truncated.1.metadata.truncation = true;
        let mut nxdomain = response("www.corp.example.", RecordType::A, good(), vec![]);
        nxdomain.1.metadata.response_code = ResponseCode::NXDomain;
        let empty = response("www.corp.example.", RecordType::A, vec![], vec![]);
        let outside = response("www.elsewhere.example.", RecordType::A, good(), vec![]);
        let any = response("www.corp.example.", RecordType::ANY, good(), vec![]);
        for (what, qm) in
            [("tc", truncated), ("nxdomain", nxdomain), ("empty", empty), ("outside", outside), ("any", any)]
        {
            assert!(prove(&keys, &SigCache::new(), &qm).is_none(), "{what}");
        }
    }

    #[test]
    fn crypto_per_answer_is_bounded() {
        let s = Signer::new();
        let records = vec![a("www.corp.example.", [10, 1, 0, 1])];
        let mut answers = records.clone();
        // Many bad signatures with the right tag before the good one.
        for _ in 0..20 {
            let mut bad = s.sign(&records, SigOpts::default());
            if let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &bad.data {
                let mut bytes = sig.sig().to_vec();
                bytes[10] ^= 0xff;
                bad.data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(sig.input().clone(), bytes)));
            }
            answers.push(bad);
        }
        answers.push(s.sign(&records, SigOpts::default()));
        let qm = response("www.corp.example.", RecordType::A, answers, vec![]);
        let cache = SigCache::new();
        assert!(prove(&keys_of(&[&s]), &cache, &qm).is_none());
        assert!(cache.misses() <= MAX_SIGNATURES as u64, "{}", cache.misses());
    }
}
