//! A DNSSEC-signed authoritative server on 127.0.0.1 for integration tests.
//!
//! [`SignedZone::build`] makes a zone signed like a real deployment: a KSK (flags 257) that signs
//! only the DNSKEY RRset and a separate ZSK (flags 256) that signs everything else, with NSEC (or,
//! via [`SignOptions::nsec3`], NSEC3) denial of existence. Next to the good data it holds one
//! deliberately broken name per failure mode (see [`BOGUS_NAMES`]).
//!
//! [`SignedServer::start`] serves a zone from a precomputed record map through its own
//! `RequestHandler`: RRSIGs only when the query has DO, NSEC/NSEC3 proofs for NXDOMAIN, NODATA and
//! wildcard answers, and the [`Denial`] knob to strip or tamper with those proofs. It logs queries
//! like [`AuthServer`](super::auth::AuthServer) and can swap its data in place
//! ([`SignedServer::replace`]) for key-rollover tests.
//!
//! Keys, RRSIGs, NSEC3 hashes and NSEC3 records come from the crate's one signing fixture
//! ([`splitdns::dns::signing_fixture`]: [`Signer`], which signs by hand with hickory-proto
//! primitives, `SigInput` + `TBS` + `SigningKey::sign` + `RRSIG::from_sig`), the same one the unit
//! tests and benches sign with. Not with `InMemoryZoneHandler::secure_zone`: hickory's zone signer
//! signs every RRset with every key (no KSK/ZSK split), cannot produce the broken signatures, and
//! its answers (wildcard proofs, NSEC placement) are whatever the catalog does; here every byte
//! that goes out is decided by this file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, NSEC, NSEC3, NSEC3PARAM, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, Nsec3HashAlgorithm, PublicKey, TrustAnchors};
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use splitdns::dns::signing_fixture::{self as fx, DAY, SigOpts, Signer};
use tokio::net::{TcpListener, UdpSocket};

pub use super::auth::LoggedQuery;

/// The broken names of every [`SignedZone`], each with an `A` RRset broken in exactly one way:
///
/// - `expired`: RRSIG by the ZSK whose inception and expiration are both in the past;
/// - `future`: RRSIG by the ZSK whose inception is tomorrow;
/// - `nosig`: no RRSIG at all (its NSEC/NSEC3 is signed normally);
/// - `wrongkey`: RRSIG by a key of the same algorithm and flags that is not in the DNSKEY set
///   (the RRSIG carries that key's own tag, [`SignedZone::wrongkey_tag`]);
/// - `badsig`: RRSIG by the ZSK with one signature byte flipped (tag, times, labels all correct).
pub const BOGUS_NAMES: [&str; 5] = ["expired", "future", "nosig", "wrongkey", "badsig"];

/// How a [`SignedZone`] is signed.
#[derive(Clone, Debug)]
pub struct SignOptions {
    /// DNSKEY algorithm of all keys: `ECDSAP256SHA256` (13, default), `ECDSAP384SHA384` or
    /// `ED25519`.
    pub algorithm: Algorithm,
    /// `None` (default): NSEC. `Some`: NSEC3 (SHA-1, no opt-out) with these parameters.
    pub nsec3: Option<Nsec3Options>,
    /// Records added to the zone's content and signed with it, e.g. a delegation's NS and DS.
    pub extra: Vec<Record>,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self { algorithm: Algorithm::ECDSAP256SHA256, nsec3: None, extra: Vec::new() }
    }
}

/// The records that delegate `child` (e.g. `eng.corp.example.`) from its parent zone: an NS, and
/// the DS records if given (none: an insecure delegation).
pub fn delegation(child: &str, ds: &[DS]) -> Vec<Record> {
    let child = Name::from_ascii(child).expect("child name");
    let mut out = vec![Record::from_rdata(
        child.clone(),
        TTL,
        RData::NS(NS(Name::from_ascii("ns1").expect("ns").append_domain(&child).expect("fits"))),
    )];
    for d in ds {
        out.push(Record::from_rdata(child.clone(), TTL, RData::DNSSEC(DNSSECRData::DS(d.clone()))));
    }
    out
}

/// NSEC3 parameters (RFC 9276 recommends 0 extra iterations and no salt).
#[derive(Clone, Debug, Default)]
pub struct Nsec3Options {
    /// Extra hash iterations.
    pub iterations: u16,
    /// Salt bytes.
    pub salt: Vec<u8>,
}

/// TTL of ordinary data, NSEC/NSEC3 records and the SOA negative TTL.
const TTL: u32 = 60;
/// TTL of SOA, NS, DNSKEY and NSEC3PARAM.
const APEX_TTL: u32 = 3600;

/// A signed zone: keys plus the precomputed, signed record map a [`SignedServer`] serves.
pub struct SignedZone {
    origin: Name,
    opts: SignOptions,
    ksk: Signer,
    zsk: Signer,
    /// Signs `wrongkey`; never published.
    rogue: Signer,
    serial: u32,
    data: Arc<ZoneData>,
}

impl SignedZone {
    /// Builds and signs `origin` (e.g. `"corp.example."`) with fresh keys. Content, with `$TTL 60`:
    ///
    /// ```text
    /// @        3600 SOA ns1 hostmaster 1 3600 600 86400 60
    /// @        3600 NS  ns1
    /// @        3600 DNSKEY <KSK 257> <ZSK 256>
    /// ns1      A    10.1.0.53
    /// www      A    10.1.0.1
    /// mail     A    10.1.0.2
    /// mail     AAAA fd00:10:1::2
    /// *.w      A    10.1.0.99          ; w itself is an empty non-terminal
    /// expired  A    10.1.0.11          ; see BOGUS_NAMES for how each is broken
    /// future   A    10.1.0.12
    /// nosig    A    10.1.0.13
    /// wrongkey A    10.1.0.14
    /// badsig   A    10.1.0.15
    /// ```
    ///
    /// Good signatures are valid from one hour ago for 30 days.
    pub fn build(origin: &str, opts: &SignOptions) -> SignedZone {
        let mut origin = Name::from_ascii(origin).expect("zone origin is a valid name");
        origin.set_fqdn(true);
        let origin = origin.to_lowercase();
        // Distinct tags keep "which key signed this" unambiguous in tests.
        let ksk = Signer::generate(opts.algorithm, 257, &[]);
        let zsk = Signer::generate(opts.algorithm, 256, &[ksk.tag]);
        let rogue = Signer::generate(opts.algorithm, 256, &[ksk.tag, zsk.tag]);
        let mut zone =
            SignedZone { origin, opts: opts.clone(), ksk, zsk, rogue, serial: 1, data: Arc::new(ZoneData::default()) };
        zone.sign();
        zone
    }

    /// `build("corp.example.", &SignOptions::default())`.
    pub fn corp() -> SignedZone {
        Self::build("corp.example.", &SignOptions::default())
    }

    /// The zone apex (lowercase, fully qualified).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// `<label>.<origin>`, e.g. `name("www")` = `www.corp.example.`.
    pub fn name(&self, label: &str) -> Name {
        Name::from_ascii(label).expect("valid label").append_domain(&self.origin).expect("name fits")
    }

    /// SOA serial (1, incremented by every [`roll_zsk`](Self::roll_zsk)).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Key tag of the KSK (flags 257, signs only the DNSKEY RRset).
    pub fn ksk_tag(&self) -> u16 {
        self.ksk.tag
    }

    /// Key tag of the current ZSK (flags 256, signs everything else).
    pub fn zsk_tag(&self) -> u16 {
        self.zsk.tag
    }

    /// Key tag of the unpublished key that signed `wrongkey` (differs from both zone keys).
    pub fn wrongkey_tag(&self) -> u16 {
        self.rogue.tag
    }

    /// The KSK as published.
    pub fn ksk(&self) -> &DNSKEY {
        &self.ksk.dnskey
    }

    /// The current ZSK as published.
    pub fn zsk(&self) -> &DNSKEY {
        &self.zsk.dnskey
    }

    /// The zone's DNSKEY RRset content: `[KSK, ZSK]`.
    pub fn dnskeys(&self) -> Vec<DNSKEY> {
        vec![self.ksk.dnskey.clone(), self.zsk.dnskey.clone()]
    }

    /// Trust anchors holding **every** key of the DNSKEY set, bound to the zone name
    /// (`insert_with_name`). Anchoring only the KSK makes hickory's validator look for a DS and
    /// fail (`tests/signed_selftest.rs`, `ksk_only_anchor_is_bogus`).
    pub fn trust_anchors(&self) -> TrustAnchors {
        anchors_for(&self.origin, &self.dnskeys())
    }

    /// The DS of the KSK for `digest_type` (1 = SHA-1, 2 = SHA-256, 4 = SHA-384).
    pub fn ds_rdata(&self, digest_type: u8) -> DS {
        ds_of(&self.origin, &self.ksk.dnskey, DigestType::from(digest_type))
    }

    /// The DS of the KSK in presentation form:
    /// `corp.example. IN DS <tag> <alg> <digest type> <HEX>`.
    pub fn ds(&self, digest_type: u8) -> String {
        format!("{} IN DS {}", self.origin, self.ds_rdata(digest_type))
    }

    /// A well-formed SHA-256 DS that matches no key of the zone, as rdata. It reuses the KSK's key
    /// tag and algorithm (so a tag-only check would wrongly accept it) with the digest of another
    /// real key (flags 257).
    pub fn wrong_ds_rdata(&self) -> DS {
        let other = DNSKEY::with_flags(257, self.rogue.dnskey.public_key().clone());
        let real = ds_of(&self.origin, &other, DigestType::SHA256);
        DS::new(self.ksk.tag, self.opts.algorithm, DigestType::SHA256, real.digest().to_vec())
    }

    /// [`wrong_ds_rdata`](Self::wrong_ds_rdata) in presentation form.
    pub fn wrong_ds(&self) -> String {
        format!("{} IN DS {}", self.origin, self.wrong_ds_rdata())
    }

    /// ZSK rollover: a new ZSK replaces the old one, the SOA serial goes up and everything is
    /// re-signed. KSK, DS and the broken names stay as they are (the old ZSK is simply gone, as
    /// after the "remove old key" step of a pre-publish rollover).
    pub fn roll_zsk(&mut self) {
        let old = [self.ksk.tag, self.zsk.tag, self.rogue.tag];
        self.zsk = Signer::generate(self.opts.algorithm, 256, &old);
        self.serial += 1;
        self.sign();
    }

    /// Every record the server can return (data, DNSKEY, NSEC/NSEC3(PARAM) and their RRSIGs,
    /// wildcard unexpanded), in canonical order.
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for node in self.data.nodes.values() {
            for set in node.values() {
                out.extend(set.records.iter().cloned());
                out.extend(set.rrsigs.iter().cloned());
            }
        }
        for set in self.data.nsec3.values() {
            out.extend(set.records.iter().cloned());
            out.extend(set.rrsigs.iter().cloned());
        }
        out
    }

    fn content(&self) -> Vec<Record> {
        let o = &self.origin;
        let ns1 = self.name("ns1");
        let a = |label: &str, ip: [u8; 4]| Record::from_rdata(self.name(label), TTL, RData::A(A(Ipv4Addr::from(ip))));
        let mut records = vec![
            Record::from_rdata(
                o.clone(),
                APEX_TTL,
                RData::SOA(SOA::new(ns1.clone(), self.name("hostmaster"), self.serial, 3600, 600, 86400, TTL)),
            ),
            Record::from_rdata(o.clone(), APEX_TTL, RData::NS(NS(ns1))),
            a("ns1", [10, 1, 0, 53]),
            a("www", [10, 1, 0, 1]),
            a("mail", [10, 1, 0, 2]),
            Record::from_rdata(
                self.name("mail"),
                TTL,
                RData::AAAA(AAAA(Ipv6Addr::new(0xfd00, 0x10, 0x1, 0, 0, 0, 0, 2))),
            ),
            a("*.w", [10, 1, 0, 99]),
            a("expired", [10, 1, 0, 11]),
            a("future", [10, 1, 0, 12]),
            a("nosig", [10, 1, 0, 13]),
            a("wrongkey", [10, 1, 0, 14]),
            a("badsig", [10, 1, 0, 15]),
        ];
        records.extend(self.opts.extra.iter().cloned());
        for key in [&self.ksk, &self.zsk] {
            records.push(Record::from_rdata(
                o.clone(),
                APEX_TTL,
                RData::DNSSEC(DNSSECRData::DNSKEY(key.dnskey.clone())),
            ));
        }
        if let Some(p) = &self.opts.nsec3 {
            records.push(Record::from_rdata(
                o.clone(),
                APEX_TTL,
                RData::DNSSEC(DNSSECRData::NSEC3PARAM(NSEC3PARAM::new(
                    Nsec3HashAlgorithm::SHA1,
                    false,
                    p.iterations,
                    p.salt.clone(),
                ))),
            ));
        }
        records
    }

    /// Recomputes the whole signed record map from the content and the current keys.
    fn sign(&mut self) {
        let now = unix_now();
        let good = (now - 3600, now + 30 * DAY);
        let mut nodes: BTreeMap<Name, Node> = BTreeMap::new();
        for record in self.content() {
            nodes.entry(record.name.clone()).or_default().entry(record.record_type()).or_default().records.push(record);
        }
        // Empty non-terminals: proper ancestors (below the apex) of owners that own nothing.
        let mut ents = BTreeSet::new();
        for name in nodes.keys() {
            let mut up = name.base_name();
            while up.num_labels() > self.origin.num_labels() {
                if !nodes.contains_key(&up) {
                    ents.insert(up.clone());
                }
                up = up.base_name();
            }
        }

        let mut nsec3 = BTreeMap::new();
        match &self.opts.nsec3 {
            None => self.add_nsec_chain(&mut nodes),
            Some(p) => nsec3 = self.nsec3_chain(&nodes, &ents, p),
        }

        for (name, node) in nodes.iter_mut() {
            for (rtype, set) in node.iter_mut() {
                let flaw = if *rtype == RecordType::A && name.num_labels() == self.origin.num_labels() + 1 {
                    name.iter().next().map(|l| String::from_utf8_lossy(l).to_string())
                } else {
                    None
                };
                set.rrsigs = match flaw.as_deref() {
                    Some("expired") => {
                        vec![sign_rrset(&self.zsk, &self.origin, &set.records, (now - 30 * DAY, now - DAY))]
                    }
                    Some("future") => {
                        vec![sign_rrset(&self.zsk, &self.origin, &set.records, (now + DAY, now + 31 * DAY))]
                    }
                    Some("nosig") => Vec::new(),
                    Some("wrongkey") => vec![sign_rrset(&self.rogue, &self.origin, &set.records, good)],
                    Some("badsig") => {
                        let rrsig = sign_rrset(&self.zsk, &self.origin, &set.records, good);
                        vec![corrupt(rrsig)]
                    }
                    _ => {
                        let key = if *rtype == RecordType::DNSKEY { &self.ksk } else { &self.zsk };
                        vec![sign_rrset(key, &self.origin, &set.records, good)]
                    }
                };
            }
        }
        for set in nsec3.values_mut() {
            set.rrsigs = vec![sign_rrset(&self.zsk, &self.origin, &set.records, good)];
        }

        self.data = Arc::new(ZoneData {
            origin: self.origin.clone(),
            nodes,
            ents,
            nsec3,
            nsec3_params: self.opts.nsec3.clone(),
        });
    }

    /// One NSEC per owner name, in canonical order, the last pointing back to the apex.
    fn add_nsec_chain(&self, nodes: &mut BTreeMap<Name, Node>) {
        let names: Vec<Name> = nodes.keys().cloned().collect();
        for (i, name) in names.iter().enumerate() {
            let next = names.get(i + 1).unwrap_or(&self.origin).clone();
            let node = nodes.get_mut(name).expect("node exists");
            let types: Vec<RecordType> = node.keys().copied().collect();
            let nsec = NSEC::new_cover_self(next, types);
            let record = Record::from_rdata(name.clone(), TTL, RData::DNSSEC(DNSSECRData::NSEC(nsec)));
            node.entry(RecordType::NSEC).or_default().records.push(record);
        }
    }

    /// One NSEC3 per owner name and empty non-terminal, keyed by raw hash.
    fn nsec3_chain(
        &self,
        nodes: &BTreeMap<Name, Node>,
        ents: &BTreeSet<Name>,
        p: &Nsec3Options,
    ) -> BTreeMap<Vec<u8>, RrSet> {
        let mut hashed: BTreeMap<Vec<u8>, Vec<RecordType>> = BTreeMap::new();
        for (name, node) in nodes {
            let mut types: Vec<RecordType> = node.keys().copied().collect();
            // Every owner except the deliberately unsigned one has RRSIGs.
            if name != &self.name("nosig") {
                types.push(RecordType::RRSIG);
            }
            hashed.insert(nsec3_hash(name, p), types);
        }
        for name in ents {
            hashed.insert(nsec3_hash(name, p), Vec::new());
        }
        let hashes: Vec<Vec<u8>> = hashed.keys().cloned().collect();
        let mut out = BTreeMap::new();
        for (i, hash) in hashes.iter().enumerate() {
            let next = hashes.get(i + 1).unwrap_or(&hashes[0]).clone();
            // TTL 60 (= TTL), as every NSEC3 of the fixture.
            let record =
                fx::nsec3_record(&self.origin, hash, &next, false, p.iterations, &p.salt, hashed[hash].iter().copied());
            out.insert(hash.clone(), RrSet { records: vec![record], rrsigs: Vec::new() });
        }
        out
    }
}

/// Trust anchors holding `keys` bound to `zone` (what a validator of the island needs).
pub fn anchors_for(zone: &Name, keys: &[DNSKEY]) -> TrustAnchors {
    let mut anchors = TrustAnchors::empty();
    for key in keys {
        anchors.insert_with_name(key.public_key(), LowerName::from(zone));
    }
    anchors
}

fn ds_of(origin: &Name, key: &DNSKEY, digest_type: DigestType) -> DS {
    let digest =
        key.to_digest(origin, digest_type).unwrap_or_else(|e| panic!("digest type {digest_type:?} unsupported: {e}"));
    DS::new(
        key.calculate_key_tag().expect("key tag"),
        key.public_key().algorithm(),
        digest_type,
        digest.as_ref().to_vec(),
    )
}

fn unix_now() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    u32::try_from(secs).expect("time fits in u32")
}

/// RRSIG over `records` (one RRset) by `key` for zone `origin`, valid `(inception, expiration)`.
fn sign_rrset(key: &Signer, origin: &Name, records: &[Record], window: (u32, u32)) -> Record {
    key.sign(records, SigOpts { labels: None, window, signer: Some(origin.clone()) })
}

/// Flips every bit of one byte in the middle of the signature.
fn corrupt(mut rrsig: Record) -> Record {
    if let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &rrsig.data {
        let mut bytes = sig.sig().to_vec();
        let i = bytes.len() / 2;
        bytes[i] ^= 0xff;
        rrsig.data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(sig.input().clone(), bytes)));
    }
    rrsig
}

/// The same NSEC/NSEC3 record with `TXT` added to its type bitmap (its RRSIG no longer matches;
/// the proof it makes for the test queries is otherwise unchanged).
fn tamper(mut record: Record) -> Record {
    record.data = match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(
            n.next_domain_name().clone(),
            n.type_bit_maps().chain([RecordType::TXT]),
        ))),
        RData::DNSSEC(DNSSECRData::NSEC3(n)) => RData::DNSSEC(DNSSECRData::NSEC3(NSEC3::new(
            n.hash_algorithm(),
            n.opt_out(),
            n.iterations(),
            n.salt().to_vec(),
            n.next_hashed_owner_name().to_vec(),
            n.type_bit_maps().chain([RecordType::TXT]),
        ))),
        other => other.clone(),
    };
    record
}

fn nsec3_hash(name: &Name, p: &Nsec3Options) -> Vec<u8> {
    fx::hash_with(name, &p.salt, p.iterations)
}

/// An RRset and the RRSIGs over it.
#[derive(Clone, Debug, Default)]
struct RrSet {
    records: Vec<Record>,
    rrsigs: Vec<Record>,
}

type Node = BTreeMap<RecordType, RrSet>;

/// The served data: owner name -> type -> RRset, in canonical order.
#[derive(Debug, Default)]
struct ZoneData {
    origin: Name,
    nodes: BTreeMap<Name, Node>,
    ents: BTreeSet<Name>,
    /// Raw owner hash -> NSEC3 RRset (empty when the zone uses NSEC).
    nsec3: BTreeMap<Vec<u8>, RrSet>,
    nsec3_params: Option<Nsec3Options>,
}

/// What a [`SignedServer`] does with NSEC/NSEC3 proofs in NXDOMAIN, NODATA and wildcard answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Denial {
    /// Correct proofs with their RRSIGs (when the query has DO).
    #[default]
    Correct,
    /// No NSEC/NSEC3 records (nor their RRSIGs) at all; the SOA and its RRSIG stay.
    Missing,
    /// NSEC/NSEC3 rdata altered after signing (type `TXT` added to the bitmap), original RRSIGs.
    Tampered,
}

/// How a reply is shaped: the proof handling and RFC 8482 ANY.
#[derive(Clone, Copy, Debug)]
struct ServeShape {
    denial: Denial,
    minimal_any: bool,
}

/// Behaviour knobs for [`SignedServer::start`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeOptions {
    /// Proof handling (default: correct).
    pub denial: Denial,
    /// The address to listen on (default 127.0.0.1), e.g. an address of a test's tun device.
    pub ip: Option<std::net::IpAddr>,
    /// Answer ANY with one RRset only, as RFC 8482 allows and Knot does (default: every RRset).
    pub minimal_any: bool,
}

struct Reply {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
}

impl ZoneData {
    fn exists(&self, name: &Name) -> bool {
        self.nodes.contains_key(name) || self.ents.contains(name)
    }

    fn resolve(&self, qname: &Name, qtype: RecordType, dnssec: bool, shape: ServeShape) -> Reply {
        let denial = shape.denial;
        let lname = qname.to_lowercase();
        let mut reply = Reply { rcode: ResponseCode::NoError, answers: Vec::new(), authorities: Vec::new() };
        if !self.origin.zone_of(&lname) {
            reply.rcode = ResponseCode::Refused;
            return reply;
        }
        let mut proof = Proof::new(self, dnssec, denial);

        if let Some(node) = self.nodes.get(&lname) {
            let sets: Vec<&RrSet> = match qtype {
                RecordType::ANY => {
                    let all = node.iter().filter(|(t, _)| !matches!(t, RecordType::NSEC)).map(|(_, s)| s);
                    all.take(if shape.minimal_any { 1 } else { usize::MAX }).collect()
                }
                t => node.get(&t).into_iter().collect(),
            };
            if qtype == RecordType::RRSIG {
                // Every signature at the name, as authoritative servers answer it.
                reply.answers = node.values().flat_map(|s| s.rrsigs.iter().cloned()).collect();
                if !reply.answers.is_empty() {
                    return reply;
                }
            }
            if !sets.is_empty() {
                for set in sets {
                    reply.answers.extend(set.records.iter().cloned());
                    if dnssec {
                        reply.answers.extend(set.rrsigs.iter().cloned());
                    }
                }
                return reply;
            }
            // NODATA: the name's own NSEC / matching NSEC3.
            proof.matching(&lname);
            self.negative(&mut reply, proof);
            return reply;
        }
        if self.ents.contains(&lname) {
            // NODATA at an empty non-terminal: the NSEC whose span contains it / its NSEC3.
            match self.nsec3_params {
                None => proof.covering(&lname),
                Some(_) => proof.matching(&lname),
            }
            self.negative(&mut reply, proof);
            return reply;
        }

        let mut encloser = lname.base_name();
        let mut next_closer = lname.clone();
        while !self.exists(&encloser) {
            next_closer = encloser.clone();
            encloser = encloser.base_name();
        }
        // (Name::into_wildcard would *replace* the first label; we want `*.<encloser>`.)
        let wildcard = encloser.prepend_label("*").expect("wildcard name fits");
        let Some(wnode) = self.nodes.get(&wildcard) else {
            // NXDOMAIN: the name and the wildcard at the closest encloser do not exist.
            reply.rcode = ResponseCode::NXDomain;
            match self.nsec3_params {
                None => {
                    proof.covering(&lname);
                    proof.covering(&wildcard);
                }
                Some(_) => {
                    proof.matching(&encloser);
                    proof.covering(&next_closer);
                    proof.covering(&wildcard);
                }
            }
            self.negative(&mut reply, proof);
            return reply;
        };

        match wnode.get(&qtype) {
            Some(set) => {
                // Wildcard expansion: owner rewritten, RRSIG labels field keeps the wildcard's
                // count, plus the proof that the query name itself does not exist.
                for record in set.records.iter().chain(if dnssec { &set.rrsigs[..] } else { &[] }) {
                    let mut record = record.clone();
                    record.name = qname.clone();
                    reply.answers.push(record);
                }
                match self.nsec3_params {
                    None => proof.covering(&lname),
                    Some(_) => proof.covering(&next_closer),
                }
                reply.authorities = proof.finish();
            }
            None => {
                // Wildcard NODATA.
                match self.nsec3_params {
                    None => {
                        proof.covering(&lname);
                        proof.matching(&wildcard);
                    }
                    Some(_) => {
                        proof.matching(&encloser);
                        proof.covering(&next_closer);
                        proof.matching(&wildcard);
                    }
                }
                self.negative(&mut reply, proof);
            }
        }
        reply
    }

    /// SOA (+RRSIG) then the proof records into the authority section.
    fn negative(&self, reply: &mut Reply, proof: Proof<'_>) {
        let dnssec = proof.dnssec;
        if let Some(soa) = self.nodes.get(&self.origin).and_then(|n| n.get(&RecordType::SOA)) {
            reply.authorities.extend(soa.records.iter().cloned());
            if dnssec {
                reply.authorities.extend(soa.rrsigs.iter().cloned());
            }
        }
        reply.authorities.extend(proof.finish());
    }

    fn nsec3_key(&self, name: &Name) -> Vec<u8> {
        nsec3_hash(name, self.nsec3_params.as_ref().expect("NSEC3 zone"))
    }
}

/// Collects NSEC/NSEC3 RRsets for one response (deduplicated, in the order asked).
struct Proof<'z> {
    zone: &'z ZoneData,
    dnssec: bool,
    denial: Denial,
    sets: Vec<&'z RrSet>,
}

impl<'z> Proof<'z> {
    fn new(zone: &'z ZoneData, dnssec: bool, denial: Denial) -> Self {
        Self { zone, dnssec, denial, sets: Vec::new() }
    }

    fn push(&mut self, set: Option<&'z RrSet>) {
        let set = set.expect("proof record exists in the chain");
        if !self.sets.iter().any(|s| std::ptr::eq(*s, set)) {
            self.sets.push(set);
        }
    }

    /// The NSEC at `name` / the NSEC3 matching `name` (which must exist).
    fn matching(&mut self, name: &Name) {
        let set = match self.zone.nsec3_params {
            None => self.zone.nodes.get(name).and_then(|n| n.get(&RecordType::NSEC)),
            Some(_) => self.zone.nsec3.get(&self.zone.nsec3_key(name)),
        };
        self.push(set);
    }

    /// The NSEC / NSEC3 whose span covers `name` (which must not exist).
    fn covering(&mut self, name: &Name) {
        let set = match self.zone.nsec3_params {
            None => {
                self.zone.nodes.range::<Name, _>(..name.clone()).next_back().and_then(|(_, n)| n.get(&RecordType::NSEC))
            }
            Some(_) => {
                let hash = self.zone.nsec3_key(name);
                self.zone
                    .nsec3
                    .range::<Vec<u8>, _>(..hash)
                    .next_back()
                    .or_else(|| self.zone.nsec3.iter().next_back())
                    .map(|(_, s)| s)
            }
        };
        self.push(set);
    }

    fn finish(self) -> Vec<Record> {
        let mut out = Vec::new();
        if !self.dnssec || self.denial == Denial::Missing {
            return out;
        }
        for set in self.sets {
            for record in &set.records {
                out.push(match self.denial {
                    Denial::Tampered => tamper(record.clone()),
                    _ => record.clone(),
                });
            }
            out.extend(set.rrsigs.iter().cloned());
        }
        out
    }
}

/// An authoritative server for one [`SignedZone`] on 127.0.0.1 (same port for UDP and TCP) that
/// logs every query. Stops when dropped.
pub struct SignedServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    data: Arc<RwLock<Arc<ZoneData>>>,
    opts: Arc<Mutex<ServeOptions>>,
    server: Option<Server<SignedHandler>>,
}

impl SignedServer {
    /// Starts serving `zone` (a snapshot: later changes to `zone` need [`replace`](Self::replace)).
    pub async fn start(zone: &SignedZone, opts: ServeOptions) -> SignedServer {
        let ip = opts.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        let (udp, tcp) = super::auth::bind_pair(ip, true).await;
        Self::serve(zone, opts, udp, tcp.expect("tcp listener"))
    }

    /// Like [`start`](Self::start) but on port 53 of a random 127.53.x.y address, for hooks whose
    /// clients pass server addresses without a port. Needs root or CAP_NET_BIND_SERVICE.
    pub async fn start_on_port_53(zone: &SignedZone, opts: ServeOptions) -> SignedServer {
        let (udp, tcp) = super::auth::bind_fixed_port(53).await;
        Self::serve(zone, opts, udp, tcp.expect("tcp listener"))
    }

    fn serve(zone: &SignedZone, opts: ServeOptions, udp: UdpSocket, tcp: TcpListener) -> SignedServer {
        let addr = udp.local_addr().expect("udp local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let data = Arc::new(RwLock::new(zone.data.clone()));
        let opts = Arc::new(Mutex::new(opts));
        let mut server = Server::new(SignedHandler { data: data.clone(), log: log.clone(), opts: opts.clone() });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(10), 32);
        SignedServer { addr, log, data, opts, server: Some(server) }
    }

    /// `127.0.0.1:<port>`, valid for both UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `zone`'s current data from now on, on the same address (e.g. after
    /// [`SignedZone::roll_zsk`]). The query log is kept.
    pub fn replace(&self, zone: &SignedZone) {
        *self.data.write().unwrap_or_else(|e| e.into_inner()) = zone.data.clone();
    }

    /// Changes how proofs are served from now on.
    pub fn set_denial(&self, denial: Denial) {
        self.opts.lock().unwrap_or_else(|e| e.into_inner()).denial = denial;
    }

    /// Snapshot of all queries received so far, in arrival order.
    pub fn queries(&self) -> Vec<LoggedQuery> {
        self.lock().clone()
    }

    /// Number of queries received so far.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Number of queries for `domain` or a name below it (whole labels, case-insensitive).
    pub fn count_under(&self, domain: &str) -> usize {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.lock()
            .iter()
            .filter(|q| {
                domain.is_empty()
                    || q.name == domain
                    || q.name.strip_suffix(&domain).is_some_and(|head| head.ends_with('.'))
            })
            .count()
    }

    /// Clears the query log.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Shuts the server down and waits (up to 2 s) for its tasks to finish.
    pub async fn stop(mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), server.shutdown_gracefully()).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<LoggedQuery>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SignedServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown_token().cancel();
        }
    }
}

struct SignedHandler {
    data: Arc<RwLock<Arc<ZoneData>>>,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    opts: Arc<Mutex<ServeOptions>>,
}

#[async_trait::async_trait]
impl RequestHandler for SignedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let (_, do_bit) = super::auth::log_request(&self.log, request);

        let data = self.data.read().unwrap_or_else(|e| e.into_inner()).clone();
        let opts = *self.opts.lock().unwrap_or_else(|e| e.into_inner());
        let denial = ServeShape { denial: opts.denial, minimal_any: opts.minimal_any };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let reply = match request.queries.queries() {
            [q] if q.query_class() == DNSClass::IN => {
                let r = data.resolve(q.original().name(), q.query_type(), do_bit, denial);
                metadata.authoritative = r.rcode != ResponseCode::Refused;
                r
            }
            _ => Reply { rcode: ResponseCode::FormErr, answers: Vec::new(), authorities: Vec::new() },
        };
        metadata.response_code = reply.rcode;

        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_dnssec_ok(req.flags().dnssec_ok).set_max_payload(req.max_payload().max(512));
            e
        });
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}
