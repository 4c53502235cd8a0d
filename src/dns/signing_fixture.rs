//! Signed DNSSEC material for tests and benchmarks: keys that sign as a zone's keys would
//! (ECDSA P-256 or P-384, Ed25519; zone or key signing flags), RRSIGs with any Labels field,
//! validity window and signer, NSEC3 hashes and records, and the records, signatures and proofs of
//! the shapes [`super::fastval`] proves.
//!
//! One fixture for every test that signs: `fastval`'s unit tests, `benches/hot_path.rs`, and the
//! signed authoritative server of the integration tests (`tests/common/signed.rs` builds whole
//! zones, with a KSK/ZSK split, broken names and NSEC/NSEC3 chains, from [`Signer`],
//! [`hash_with`] and [`nsec3_record`]).
//!
//! Not part of the daemon: the module exists only in the crate's own unit tests (`cfg(test)`) and
//! with the `test-support` feature. The package turns that feature on for its integration tests and
//! benches by depending on itself in `[dev-dependencies]` (a bench or an integration test links
//! the library as built without `cfg(test)`); `cargo build --release` does not build it.
//! Everything here panics on failure, as test code does.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC3, RRSIG, SigInput};
use hickory_proto::dnssec::{Algorithm, Nsec3HashAlgorithm, SigningKey, TBS};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};

use crate::trust::anchors::VerifiedKeys;

/// The fixed "now" (Unix seconds) the unit tests sign and validate at.
pub const NOW: u32 = 1_750_000_000;
pub const DAY: u32 = 86_400;

/// A DNSSEC key with its private half; by default a zone signing key of [`zone`].
#[derive(Clone)]
pub struct Signer {
    pub key: Arc<dyn SigningKey>,
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
        Self { now, ..Self::generate(Algorithm::ECDSAP256SHA256, 256, &[]) }
    }

    /// A fresh key of `algorithm` (`ECDSAP256SHA256`, `ECDSAP384SHA384` or `ED25519`) published
    /// with DNSKEY `flags` (256: zone signing key, 257: key signing key), whose key tag is none of
    /// `avoid_tags` (distinct tags keep "which key signed this" unambiguous). Its [`Signer::opts`]
    /// are valid at [`NOW`].
    pub fn generate(algorithm: Algorithm, flags: u16, avoid_tags: &[u16]) -> Self {
        loop {
            let key: Arc<dyn SigningKey> = match algorithm {
                Algorithm::ECDSAP256SHA256 | Algorithm::ECDSAP384SHA384 => {
                    let der = EcdsaSigningKey::generate_pkcs8(algorithm).expect("generate ECDSA");
                    Arc::new(EcdsaSigningKey::from_pkcs8(&der, algorithm).expect("load ECDSA"))
                }
                Algorithm::ED25519 => {
                    let der = Ed25519SigningKey::generate_pkcs8().expect("generate Ed25519");
                    Arc::new(Ed25519SigningKey::from_pkcs8(&der).expect("load Ed25519"))
                }
                other => panic!("the signing fixture does not support algorithm {other:?}"),
            };
            let dnskey = DNSKEY::with_flags(flags, key.to_public_key().expect("public key"));
            let tag = dnskey.calculate_key_tag().expect("key tag");
            if !avoid_tags.contains(&tag) {
                return Self { key, dnskey, tag, now: NOW };
            }
        }
    }

    /// The key's DNSSEC algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// The usual signature options: by the zone, valid from a day before `now` to 30 days after.
    pub fn opts(&self) -> SigOpts {
        SigOpts::at(self.now)
    }

    /// RRSIG over `records`, one RRset (owner = first record's owner, Labels = `labels` or the
    /// owner's).
    pub fn sign(&self, records: &[Record], opts: SigOpts) -> Record {
        let first = records.first().expect("an RRset has at least one record");
        let input = SigInput {
            type_covered: first.record_type(),
            algorithm: self.algorithm(),
            // Name::num_labels does not count a leading `*`, as RFC 4034 §3.1.3 wants.
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
    hash_with(n, &[], 0)
}

/// The NSEC3 hash (SHA-1) of `n` with `salt` and `iterations` extra iterations.
pub fn hash_with(n: &Name, salt: &[u8], iterations: u16) -> Vec<u8> {
    Nsec3HashAlgorithm::SHA1.hash(salt, n, iterations).expect("NSEC3 hash").as_ref().to_vec()
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

/// An unsigned NSEC3 record (SHA-1, TTL 60) of the zone `origin`, owned by `owner_hash` (raw,
/// base32hex-encoded into the owner's first label), pointing to `next` and listing `types`.
pub fn nsec3_record(
    origin: &Name,
    owner_hash: &[u8],
    next: &[u8],
    opt_out: bool,
    iterations: u16,
    salt: &[u8],
    types: impl IntoIterator<Item = RecordType>,
) -> Record {
    let owner = Name::from_ascii(base32hex(owner_hash)).expect("hash label").append_domain(origin).expect("owner fits");
    let rdata = NSEC3::new(Nsec3HashAlgorithm::SHA1, opt_out, iterations, salt.to_vec(), next.to_vec(), types);
    Record::from_rdata(owner, 60, RData::DNSSEC(DNSSECRData::NSEC3(rdata)))
}

/// An NSEC3 record of [`zone`] (SHA-1, no salt, types A and RRSIG) owned by `owner_hash` pointing
/// to `next`, signed.
pub fn nsec3(s: &Signer, owner_hash: &[u8], next: &[u8], opt_out: bool, iterations: u16) -> Vec<Record> {
    let record = nsec3_record(&zone(), owner_hash, next, opt_out, iterations, &[], [RecordType::A, RecordType::RRSIG]);
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
