//! Signed DNSSEC material for the tests and benchmarks of [`super::fastval`]: a zone key that
//! signs like a zone would (ECDSA P-256), and the records, signatures and NSEC3 proofs of the
//! shapes the fast path proves.
//!
//! Not part of the daemon: `#[doc(hidden)]` and only called from `fastval`'s unit tests and
//! `benches/hot_path.rs` (a bench links the library as built without `cfg(test)`, hence a public
//! module). Everything here panics on failure, as test code does.

use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC3, RRSIG, SigInput};
use hickory_proto::dnssec::{Algorithm, Nsec3HashAlgorithm, SigningKey, TBS};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};

use crate::trust::anchors::VerifiedKeys;

/// The fixed "now" (Unix seconds) the unit tests sign and validate at.
pub const NOW: u32 = 1_750_000_000;
pub const DAY: u32 = 86_400;

/// A zone signing key of [`zone`].
pub struct Signer {
    pub key: EcdsaSigningKey,
    pub dnskey: DNSKEY,
    pub tag: u16,
    /// The time [`Signer::opts`] makes signatures valid at.
    pub now: u32,
}

impl Default for Signer {
    fn default() -> Self {
        Self::new()
    }
}

impl Signer {
    /// A fresh key whose signatures are valid at [`NOW`].
    pub fn new() -> Self {
        Self::at(NOW)
    }

    /// A fresh key whose signatures are valid at `now` (Unix seconds): for material that must be
    /// valid at the wall clock, as the answer cache checks.
    pub fn at(now: u32) -> Self {
        let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).unwrap();
        let key = EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256).unwrap();
        let dnskey = DNSKEY::with_flags(256, key.to_public_key().unwrap());
        let tag = dnskey.calculate_key_tag().unwrap();
        Self { key, dnskey, tag, now }
    }

    /// The usual signature options: by the zone, valid from a day before `now` to 30 days after.
    pub fn opts(&self) -> SigOpts {
        SigOpts::at(self.now)
    }

    /// RRSIG over `records` (owner = first record's owner, Labels = `labels` or the owner's).
    pub fn sign(&self, records: &[Record], opts: SigOpts) -> Record {
        let first = &records[0];
        let input = SigInput {
            type_covered: first.record_type(),
            algorithm: Algorithm::ECDSAP256SHA256,
            num_labels: opts.labels.unwrap_or(first.name.num_labels()),
            original_ttl: first.ttl,
            sig_expiration: SerialNumber::new(opts.window.1),
            sig_inception: SerialNumber::new(opts.window.0),
            key_tag: self.tag,
            signer_name: opts.signer.unwrap_or_else(zone),
        };
        let tbs = TBS::from_input(&first.name, DNSClass::IN, &input, records.iter()).unwrap();
        let sig = self.key.sign(&tbs).unwrap();
        Record::from_rdata(
            first.name.clone(),
            first.ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
        )
    }
}

/// How [`Signer::sign`] signs.
pub struct SigOpts {
    /// The RRSIG's Labels field; `None`: the owner's label count.
    pub labels: Option<u8>,
    /// Inception and expiration (Unix seconds).
    pub window: (u32, u32),
    /// The signer name; `None`: [`zone`].
    pub signer: Option<Name>,
}

impl SigOpts {
    /// Valid from a day before `now` to 30 days after, signed by the zone.
    pub fn at(now: u32) -> Self {
        Self { labels: None, window: (now - DAY, now + 30 * DAY), signer: None }
    }
}

impl Default for SigOpts {
    /// [`SigOpts::at`] [`NOW`].
    fn default() -> Self {
        Self::at(NOW)
    }
}

/// The signed zone, `corp.example.`.
pub fn zone() -> Name {
    Name::from_ascii("corp.example.").unwrap()
}

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// `owner 60 A ip`.
pub fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
}

/// `owner 60 CNAME target`.
pub fn cname(owner: &str, target: &str) -> Record {
    Record::from_rdata(name(owner), 60, RData::CNAME(CNAME(name(target))))
}

/// The verified key set of [`zone`] made of the signers' keys.
pub fn keys_of(signers: &[&Signer]) -> VerifiedKeys {
    VerifiedKeys {
        zone: zone(),
        keys: signers.iter().map(|s| s.dnskey.clone()).collect(),
        matched_tags: vec![],
        records: vec![],
        recheck_after: Duration::from_secs(3600),
    }
}

/// The question `qname`/`qtype` and a response (id 7) to it with these sections.
pub fn response(qname: &str, qtype: RecordType, answers: Vec<Record>, authorities: Vec<Record>) -> (Query, Message) {
    let query = Query::query(name(qname), qtype);
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.add_query(query.clone());
    m.answers = answers;
    m.authorities = authorities;
    (query, m)
}

/// The NSEC3 hash (SHA-1, no salt, no extra iterations) of `n`.
pub fn hash(n: &Name) -> Vec<u8> {
    Nsec3HashAlgorithm::SHA1.hash(&[], n, 0).unwrap().as_ref().to_vec()
}

/// RFC 4648 base32hex, lower case, no padding.
pub fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// An NSEC3 record (SHA-1, no salt) owned by `owner_hash` pointing to `next`, signed.
pub fn nsec3(s: &Signer, owner_hash: &[u8], next: &[u8], opt_out: bool, iterations: u16) -> Vec<Record> {
    let owner = Name::from_ascii(base32hex(owner_hash)).unwrap().append_domain(&zone()).unwrap();
    let rdata = NSEC3::new(
        Nsec3HashAlgorithm::SHA1,
        opt_out,
        iterations,
        vec![],
        next.to_vec(),
        [RecordType::A, RecordType::RRSIG],
    );
    let record = Record::from_rdata(owner, 60, RData::DNSSEC(DNSSECRData::NSEC3(rdata)));
    let sig = s.sign(std::slice::from_ref(&record), s.opts());
    vec![record, sig]
}

/// The RRSIG (Labels 3) over `*.w.corp.example A 10.1.0.99`.
pub fn wildcard_sig(s: &Signer) -> Record {
    s.sign(&[a("*.w.corp.example.", [10, 1, 0, 99])], s.opts())
}

/// `owner A ip` with the wildcard signature `sig` moved to `owner` (an expansion when `ip` is
/// 10.1.0.99).
pub fn expand(sig: &Record, owner: &str, ip: [u8; 4]) -> Vec<Record> {
    let mut sig = sig.clone();
    sig.name = name(owner);
    vec![a(owner, ip), sig]
}

/// `*.w.corp.example A 10.1.0.99` expanded at `owner`, freshly signed.
pub fn wildcard(s: &Signer, owner: &str, ip: [u8; 4]) -> Vec<Record> {
    expand(&wildcard_sig(s), owner, ip)
}

/// An NSEC3 that covers every hash but the extremes.
pub fn covering_all(s: &Signer) -> Vec<Record> {
    nsec3(s, &[0; 20], &[0xff; 20], false, 0)
}

/// `records` followed by their RRSIG.
pub fn signed(s: &Signer, records: Vec<Record>) -> Vec<Record> {
    let sig = s.sign(&records, s.opts());
    records.into_iter().chain([sig]).collect()
}
