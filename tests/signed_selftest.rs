//! Proves that `tests/common/signed.rs` serves what it claims, using hickory's own validator
//! (`DnssecDnsHandle` over a plain UDP client, and a validating `Resolver`) as the independent
//! judge, anchored on every key of the zone's DNSKEY set.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::client::{self, Q, rcode};
use common::signed::{
    BOGUS_NAMES, Denial, Nsec3Options, ServeOptions, SignOptions, SignedServer, SignedZone, anchors_for,
};
use hickory_net::client::Client;
use hickory_net::dnssec::DnssecDnsHandle;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::FirstAnswer;
use hickory_net::{DnsError, DnsHandle, NetError};
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, NSEC, RRSIG};
use hickory_proto::dnssec::{Algorithm, Proof, PublicKey, TrustAnchors};
use hickory_proto::op::{DnsRequestOptions, DnsResponse, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};

type Validated = Result<DnsResponse, NetError>;

/// Validates one query with a fresh `DnssecDnsHandle` (empty validation cache) anchored on
/// `anchors`, and returns the result plus how many queries the server saw for it.
async fn validate(server: &SignedServer, anchors: TrustAnchors, name: &Name, qtype: RecordType) -> (Validated, usize) {
    let conn = UdpClientStream::builder(server.addr(), TokioRuntimeProvider::default()).build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    let bg = tokio::spawn(bg);
    let validator = DnssecDnsHandle::with_trust_anchor(client, Arc::new(anchors));
    let before = server.count();
    let result = validator.lookup(Query::query(name.clone(), qtype), DnsRequestOptions::default()).first_answer().await;
    bg.abort();
    (result, server.count() - before)
}

fn describe(result: &Validated) -> String {
    match result {
        Ok(m) => format!(
            "{:?} answers={:?} authorities={:?}",
            m.response_code,
            m.answers.iter().map(|r| (r.name.to_string(), r.record_type(), r.proof)).collect::<Vec<_>>(),
            m.authorities.iter().map(|r| (r.name.to_string(), r.record_type(), r.proof)).collect::<Vec<_>>()
        ),
        Err(NetError::Dns(DnsError::Nsec { proof, .. })) => format!("Err(Nsec proof={proof})"),
        Err(e) => format!("Err({e})"),
    }
}

/// A positive answer whose `qtype` records are all Secure, as are the RRSIGs used.
fn assert_secure_answer(result: &Validated, qtype: RecordType, expect_count: usize, what: &str) {
    let Ok(msg) = result else {
        panic!("{what}: expected a Secure answer, got {}", describe(result));
    };
    assert_eq!(msg.response_code, ResponseCode::NoError, "{what}");
    let data: Vec<&Record> = msg.answers.iter().filter(|r| r.record_type() == qtype).collect();
    assert_eq!(data.len(), expect_count, "{what}: {}", describe(result));
    assert!(data.iter().all(|r| r.proof == Proof::Secure), "{what}: not all Secure: {}", describe(result));
    assert!(
        msg.answers.iter().any(|r| r.record_type() == RecordType::RRSIG && r.proof == Proof::Secure),
        "{what}: no Secure RRSIG: {}",
        describe(result)
    );
}

/// A negative answer (`rcode`, no data) whose SOA and every NSEC/NSEC3 are Secure.
fn assert_secure_denial(result: &Validated, expect: ResponseCode, what: &str) {
    let Ok(msg) = result else {
        panic!("{what}: expected a Secure denial, got {}", describe(result));
    };
    assert_eq!(msg.response_code, expect, "{what}: {}", describe(result));
    assert!(msg.answers.is_empty(), "{what}: answers: {}", describe(result));
    let proofs: Vec<&Record> =
        msg.authorities.iter().filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3)).collect();
    assert!(!proofs.is_empty(), "{what}: no NSEC/NSEC3");
    for r in msg.authorities.iter().filter(|r| r.record_type() != RecordType::RRSIG) {
        assert_eq!(r.proof, Proof::Secure, "{what}: {}", describe(result));
    }
}

/// Validation did not produce Secure data: either an error (Nsec proof Bogus, DnssecBogus, ...)
/// or an answer whose `qtype` records are marked Bogus.
fn assert_bogus(result: &Validated, qtype: RecordType, what: &str) {
    match result {
        Ok(msg) => {
            let data: Vec<&Record> = msg.answers.iter().filter(|r| r.record_type() == qtype).collect();
            assert!(!data.is_empty(), "{what}: Ok without data, expected failure: {}", describe(result));
            assert!(
                data.iter().all(|r| r.proof == Proof::Bogus),
                "{what}: expected Bogus records: {}",
                describe(result)
            );
        }
        Err(NetError::Dns(DnsError::Nsec { proof, .. })) => {
            assert_eq!(*proof, Proof::Bogus, "{what}");
        }
        Err(_) => {}
    }
}

fn nsec3() -> SignOptions {
    SignOptions { nsec3: Some(Nsec3Options::default()), ..SignOptions::default() }
}

fn dnssec_q() -> Q {
    Q { do_bit: true, ..Q::default() }
}

async fn raw(server: &SignedServer, name: &Name, qtype: RecordType, q: &Q) -> Message {
    client::udp(server.addr(), &name.to_string(), qtype, q).await.unwrap_or_else(|e| panic!("{name} {qtype}: {e}"))
}

fn rrsigs(records: &[Record]) -> Vec<&RRSIG> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
            _ => None,
        })
        .collect()
}

fn nsecs(records: &[Record]) -> Vec<(&Name, &NSEC)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((&r.name, n)),
            _ => None,
        })
        .collect()
}

fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

/// Parses one presentation-form DS line (prefixed with `$TTL`) with hickory's zone parser.
fn parse_ds(line: &str) -> (Name, DS) {
    let text = format!("$TTL 60\n{line}\n");
    let (_, records) = Parser::new(text.as_str(), None, Some(Name::root()))
        .parse()
        .unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
    let (name, set) = records.into_iter().next().expect("one RRset");
    let record = set.records_without_rrsigs().next().expect("one record");
    let RData::DNSSEC(DNSSECRData::DS(ds)) = &record.data else {
        panic!("{line:?} is not a DS");
    };
    (name.name.into(), ds.clone())
}

#[test]
fn keys_ds_and_wrong_ds() {
    let zone = SignedZone::corp();
    let origin = zone.origin().clone();
    assert_eq!(origin, Name::from_ascii("corp.example.").unwrap());
    assert_eq!(zone.ksk().flags(), 257);
    assert_eq!(zone.zsk().flags(), 256);
    assert!(zone.ksk().secure_entry_point() && zone.ksk().zone_key());
    assert!(!zone.zsk().secure_entry_point() && zone.zsk().zone_key());
    for key in zone.dnskeys() {
        assert_eq!(key.public_key().algorithm(), Algorithm::ECDSAP256SHA256);
    }
    assert_eq!(zone.ksk().calculate_key_tag().unwrap(), zone.ksk_tag());
    assert_eq!(zone.zsk().calculate_key_tag().unwrap(), zone.zsk_tag());
    assert_ne!(zone.ksk_tag(), zone.zsk_tag());
    assert!(![zone.ksk_tag(), zone.zsk_tag()].contains(&zone.wrongkey_tag()));

    // ds(2): exact presentation form, parses back to the same rdata, covers the KSK only.
    let text = zone.ds(2);
    let prefix = format!("corp.example. IN DS {} 13 2 ", zone.ksk_tag());
    let hex = text.strip_prefix(&prefix).unwrap_or_else(|| panic!("{text:?} does not start with {prefix:?}"));
    assert_eq!(hex.len(), 64, "{text}");
    assert!(hex.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)), "{text}");
    let (owner, ds) = parse_ds(&text);
    assert_eq!(owner, origin);
    assert_eq!(ds, zone.ds_rdata(2));
    assert!(ds.covers(&origin, zone.ksk()).unwrap());
    assert!(!ds.covers(&origin, zone.zsk()).unwrap());
    // Another zone name with the same key does not match (the owner is part of the digest).
    assert!(!ds.covers(&Name::from_ascii("other.example.").unwrap(), zone.ksk()).unwrap());
    // SHA-1 and SHA-384 variants also cover the KSK.
    for (digest_type, len) in [(1u8, 20usize), (4, 48)] {
        let (_, ds) = parse_ds(&zone.ds(digest_type));
        assert_eq!(ds.digest().len(), len);
        assert!(ds.covers(&origin, zone.ksk()).unwrap(), "digest {digest_type}");
    }

    // wrong_ds(): well-formed, same tag and algorithm as the KSK, matches no key.
    let (owner, wrong) = parse_ds(&zone.wrong_ds());
    assert_eq!(owner, origin);
    assert_eq!(wrong, zone.wrong_ds_rdata());
    assert_eq!(wrong.key_tag(), zone.ksk_tag());
    assert_eq!(u8::from(wrong.algorithm()), 13);
    assert_eq!(wrong.digest().len(), 32);
    assert_ne!(wrong, ds_sha256(&zone));
    for key in zone.dnskeys() {
        assert!(!wrong.covers(&origin, &key).unwrap(), "wrong DS covers {key}");
    }

    // Two builds have different keys.
    let other = SignedZone::corp();
    assert_ne!(other.ds(2), zone.ds(2));
}

fn ds_sha256(zone: &SignedZone) -> DS {
    zone.ds_rdata(2)
}

#[tokio::test]
async fn do_bit_controls_dnssec_records() {
    let zone = SignedZone::corp();
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let cases = [
        ("www", RecordType::A, ResponseCode::NoError),
        ("a.b.w", RecordType::A, ResponseCode::NoError),
        ("www", RecordType::AAAA, ResponseCode::NoError),
        ("nope", RecordType::A, ResponseCode::NXDomain),
        ("expired", RecordType::A, ResponseCode::NoError),
    ];
    let is_dnssec = |r: &Record| matches!(r.record_type(), RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3);
    for (label, qtype, code) in cases {
        let name = zone.name(label);
        let plain = raw(&server, &name, qtype, &Q::default()).await;
        assert_eq!(rcode(&plain), code, "{name} {qtype}");
        assert!(
            !plain.answers.iter().chain(&plain.authorities).chain(&plain.additionals).any(is_dnssec),
            "DO=0 {name} {qtype} has DNSSEC records: {plain:?}"
        );
        let signed = raw(&server, &name, qtype, &dnssec_q()).await;
        assert_eq!(rcode(&signed), code);
        assert!(
            signed.answers.iter().chain(&signed.authorities).any(|r| r.record_type() == RecordType::RRSIG),
            "DO=1 {name} {qtype} has no RRSIG"
        );
        let sizes = |m: &Message| m.answers.len() + m.authorities.len();
        assert!(sizes(&plain) < sizes(&signed), "{name} {qtype}");
    }
    // No EDNS at all: same data, no DNSSEC records.
    let no_edns = Q { edns: false, ..Q::default() };
    let r = raw(&server, &zone.name("www"), RecordType::A, &no_edns).await;
    assert_eq!(client::a_addrs(&r), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    assert!(!r.answers.iter().any(is_dnssec));
    // DNSKEY is answered with and without DO; only DO=1 adds the KSK's RRSIG.
    let keys = raw(&server, zone.origin(), RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(keys.answers.len(), 2);
    assert!(!keys.answers.iter().any(is_dnssec));

    // The log mirrors AuthServer's, including the DO bit.
    let log = server.queries();
    assert_eq!(log.len(), server.count());
    assert_eq!(log.len(), cases.len() * 2 + 2);
    assert!(!log[0].do_bit && log[1].do_bit);
    assert_eq!(log[0].name, "www.corp.example");
    assert_eq!(log[0].qtype, RecordType::A);
    assert_eq!(server.count_under("corp.example"), log.len());
    assert_eq!(server.count_under("w.corp.example"), 2);
    server.reset();
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn signed_data_has_the_advertised_shape() {
    let zone = SignedZone::corp();
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let origin = zone.origin().clone();
    let now = unix_now();
    let q = dnssec_q();

    // DNSKEY: both keys, signed by the KSK only.
    let keys = raw(&server, &origin, RecordType::DNSKEY, &q).await;
    let mut flags: Vec<u16> = keys
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.flags()),
            _ => None,
        })
        .collect();
    flags.sort_unstable();
    assert_eq!(flags, vec![256, 257]);
    let sigs = rrsigs(&keys.answers);
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].input().key_tag, zone.ksk_tag());
    assert!(keys.metadata.authoritative);

    // Ordinary data is signed by the ZSK, over TCP too.
    let www = client::tcp(server.addr(), "www.corp.example.", RecordType::A, &q).await.unwrap();
    assert_eq!(client::a_addrs(&www), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    let sigs = rrsigs(&www.answers);
    assert_eq!(sigs.len(), 1);
    let input = sigs[0].input();
    assert_eq!(input.key_tag, zone.zsk_tag());
    assert_eq!(input.signer_name, origin);
    assert_eq!(input.num_labels, 3);
    assert_eq!(u8::from(input.algorithm), 13);
    assert!(input.sig_inception.get() <= now && now < input.sig_expiration.get());

    // Wildcard expansion: owner is the query name, the RRSIG's labels field is the wildcard's
    // (3 < 5 labels), plus the NSEC covering the query name.
    let name = zone.name("a.b.w");
    let wild = raw(&server, &name, RecordType::A, &q).await;
    assert_eq!(client::a_addrs(&wild), vec![Ipv4Addr::new(10, 1, 0, 99)]);
    assert!(wild.answers.iter().all(|r| r.name == name));
    assert_eq!(rrsigs(&wild.answers)[0].input().num_labels, 3);
    let proof = nsecs(&wild.authorities);
    assert_eq!(proof.len(), 1);
    assert_eq!(*proof[0].0, zone.name("*.w"));
    assert_eq!(*proof[0].1.next_domain_name(), zone.name("wrongkey"));

    // NXDOMAIN: SOA, NSEC covering the name (mail -> nosig), NSEC covering *.corp.example (the
    // apex NSEC), one RRSIG each.
    let nx = raw(&server, &zone.name("nope"), RecordType::A, &q).await;
    assert_eq!(rcode(&nx), ResponseCode::NXDomain);
    assert!(nx.answers.is_empty());
    let mut owners: Vec<String> =
        nsecs(&nx.authorities).iter().map(|(n, nsec)| format!("{n}->{}", nsec.next_domain_name())).collect();
    owners.sort();
    assert_eq!(
        owners,
        vec!["corp.example.->badsig.corp.example.".to_string(), "mail.corp.example.->nosig.corp.example.".to_string(),]
    );
    let types: Vec<RecordType> = rrsigs(&nx.authorities).iter().map(|s| s.input().type_covered).collect();
    assert_eq!(types.len(), 3);
    assert!(types.contains(&RecordType::SOA));
    assert!(nx.authorities.iter().any(|r| r.record_type() == RecordType::SOA));

    // NODATA: SOA + the name's own NSEC (types A NSEC RRSIG, no AAAA).
    let nodata = raw(&server, &zone.name("www"), RecordType::AAAA, &q).await;
    assert_eq!(rcode(&nodata), ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    let proof = nsecs(&nodata.authorities);
    assert_eq!(proof.len(), 1);
    assert_eq!(*proof[0].0, zone.name("www"));
    let types: Vec<RecordType> = proof[0].1.type_bit_maps().collect();
    assert!(types.contains(&RecordType::A) && !types.contains(&RecordType::AAAA));

    // The bogus names: each broken in exactly one way.
    let sig_of = |m: &Message| rrsigs(&m.answers).into_iter().cloned().collect::<Vec<_>>();
    let expired = sig_of(&raw(&server, &zone.name("expired"), RecordType::A, &q).await);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].input().key_tag, zone.zsk_tag());
    assert!(expired[0].input().sig_expiration.get() < now);
    assert!(expired[0].input().sig_inception.get() < now);
    let future = sig_of(&raw(&server, &zone.name("future"), RecordType::A, &q).await);
    assert_eq!(future.len(), 1);
    assert_eq!(future[0].input().key_tag, zone.zsk_tag());
    assert!(future[0].input().sig_inception.get() > now);
    let nosig = raw(&server, &zone.name("nosig"), RecordType::A, &q).await;
    assert_eq!(client::a_addrs(&nosig), vec![Ipv4Addr::new(10, 1, 0, 13)]);
    assert!(sig_of(&nosig).is_empty());
    let wrongkey = sig_of(&raw(&server, &zone.name("wrongkey"), RecordType::A, &q).await);
    assert_eq!(wrongkey.len(), 1);
    assert_eq!(wrongkey[0].input().key_tag, zone.wrongkey_tag());
    assert_eq!(wrongkey[0].input().signer_name, origin);
    assert!(wrongkey[0].input().sig_inception.get() <= now);
    let badsig = sig_of(&raw(&server, &zone.name("badsig"), RecordType::A, &q).await);
    assert_eq!(badsig.len(), 1);
    assert_eq!(badsig[0].input().key_tag, zone.zsk_tag());
    assert!(badsig[0].input().sig_expiration.get() > now);

    // Outside the zone: REFUSED, not authoritative.
    let out = raw(&server, &Name::from_ascii("www.example.").unwrap(), RecordType::A, &q).await;
    assert_eq!(rcode(&out), ResponseCode::Refused);
    assert!(!out.metadata.authoritative);
}

#[tokio::test]
async fn nsec_zone_validates() {
    let zone = SignedZone::corp();
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let anchors = || zone.trust_anchors();

    let (r, n) = validate(&server, anchors(), &zone.name("www"), RecordType::A).await;
    assert_secure_answer(&r, RecordType::A, 1, "www A");
    // The answer and one DNSKEY fetch; no DS lookup since every key is an anchor.
    assert_eq!(n, 2, "www A upstream queries");
    let (r, _) = validate(&server, anchors(), &zone.name("mail"), RecordType::AAAA).await;
    assert_secure_answer(&r, RecordType::AAAA, 1, "mail AAAA");
    let (r, _) = validate(&server, anchors(), zone.origin(), RecordType::DNSKEY).await;
    assert_secure_answer(&r, RecordType::DNSKEY, 2, "DNSKEY");
    // Wildcard two labels below `w`: Secure (see the next test for one label below).
    let (r, _) = validate(&server, anchors(), &zone.name("a.b.w"), RecordType::A).await;
    assert_secure_answer(&r, RecordType::A, 1, "a.b.w A (wildcard)");
    let owner = &r.as_ref().unwrap().answers[0].name;
    assert_eq!(*owner, zone.name("a.b.w"));

    let (r, n) = validate(&server, anchors(), &zone.name("nope"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NXDomain, "nope A (NXDOMAIN)");
    assert!((2..=6).contains(&n), "NXDOMAIN took {n} queries");
    let (r, _) = validate(&server, anchors(), &zone.name("x.nope"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NXDomain, "x.nope A (NXDOMAIN)");
    let (r, _) = validate(&server, anchors(), &zone.name("www"), RecordType::AAAA).await;
    assert_secure_denial(&r, ResponseCode::NoError, "www AAAA (NODATA)");
    let (r, _) = validate(&server, anchors(), &zone.name("w"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NoError, "w A (empty non-terminal)");
    let (r, _) = validate(&server, anchors(), &zone.name("host.w"), RecordType::AAAA).await;
    assert_secure_denial(&r, ResponseCode::NoError, "host.w AAAA (wildcard NODATA)");
}

/// hickory 0.26.3 rejects an NSEC-proven wildcard expansion when the query name is exactly one
/// label below the wildcard's parent: `verify_nsec` wants an NSEC *covering* `*.w`, which exists
/// and can only be *matched* (hickory-dns PR #3812, "Add failing test for wildcard expansion with
/// NSEC"). The server's answer is the RFC 4035 §3.1.3.3 / B.6 one; NSEC3 zones are fine. If this
/// test starts failing, hickory fixed it: swap it for a Secure assertion.
#[tokio::test]
async fn hickory_0_26_3_rejects_nsec_wildcard_one_label_deep() {
    let zone = SignedZone::corp();
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let name = zone.name("host.w");
    let raw_answer = raw(&server, &name, RecordType::A, &dnssec_q()).await;
    assert_eq!(client::a_addrs(&raw_answer), vec![Ipv4Addr::new(10, 1, 0, 99)]);
    assert_eq!(nsecs(&raw_answer.authorities).len(), 1);
    let (r, _) = validate(&server, zone.trust_anchors(), &name, RecordType::A).await;
    assert!(matches!(r, Err(NetError::Dns(DnsError::Nsec { proof: Proof::Bogus, .. }))), "host.w A: {}", describe(&r));
}

#[tokio::test]
async fn bogus_names_fail_validation() {
    for opts in [SignOptions::default(), nsec3()] {
        let zone = SignedZone::build("corp.example.", &opts);
        let server = SignedServer::start(&zone, ServeOptions::default()).await;
        for label in BOGUS_NAMES {
            let (r, n) = validate(&server, zone.trust_anchors(), &zone.name(label), RecordType::A).await;
            let what = format!("{label} A (nsec3={})", opts.nsec3.is_some());
            assert_bogus(&r, RecordType::A, &what);
            // The data itself came back, just not Secure.
            let msg = r.as_ref().expect("bogus answers come back marked, not as errors");
            assert!(msg.answers.iter().all(|r| r.proof != Proof::Secure), "{what}");
            assert!(n >= 2, "{what}: {n} queries");
        }
        // Control: the same zone's good name is Secure.
        let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("www"), RecordType::A).await;
        assert_secure_answer(&r, RecordType::A, 1, "www A control");
    }
}

#[tokio::test]
async fn nsec3_zone_validates() {
    let zone = SignedZone::build(
        "corp.example.",
        &SignOptions { nsec3: Some(Nsec3Options { iterations: 1, salt: vec![0xab, 0xcd] }), ..SignOptions::default() },
    );
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let raw_nx = raw(&server, &zone.name("nope"), RecordType::A, &dnssec_q()).await;
    let nsec3_count = raw_nx.authorities.iter().filter(|r| r.record_type() == RecordType::NSEC3).count();
    assert!((2..=3).contains(&nsec3_count), "closest encloser proof: {raw_nx:?}");
    assert!(nsecs(&raw_nx.authorities).is_empty());

    let anchors = || zone.trust_anchors();
    let (r, _) = validate(&server, anchors(), &zone.name("www"), RecordType::A).await;
    assert_secure_answer(&r, RecordType::A, 1, "nsec3 www A");
    let (r, _) = validate(&server, anchors(), &zone.name("mail"), RecordType::AAAA).await;
    assert_secure_answer(&r, RecordType::AAAA, 1, "nsec3 mail AAAA");
    for label in ["host.w", "a.b.w"] {
        let (r, _) = validate(&server, anchors(), &zone.name(label), RecordType::A).await;
        assert_secure_answer(&r, RecordType::A, 1, &format!("nsec3 {label} A (wildcard)"));
    }
    let (r, _) = validate(&server, anchors(), &zone.name("nope"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NXDomain, "nsec3 nope A");
    let (r, _) = validate(&server, anchors(), &zone.name("x.nope"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NXDomain, "nsec3 x.nope A");
    let (r, _) = validate(&server, anchors(), &zone.name("www"), RecordType::AAAA).await;
    assert_secure_denial(&r, ResponseCode::NoError, "nsec3 www AAAA");
    let (r, _) = validate(&server, anchors(), &zone.name("w"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NoError, "nsec3 w A (ENT)");
    let (r, _) = validate(&server, anchors(), &zone.name("host.w"), RecordType::AAAA).await;
    assert_secure_denial(&r, ResponseCode::NoError, "nsec3 host.w AAAA");
}

#[tokio::test]
async fn ed25519_zone_validates() {
    let zone =
        SignedZone::build("corp.example.", &SignOptions { algorithm: Algorithm::ED25519, ..SignOptions::default() });
    assert!(zone.ds(2).starts_with(&format!("corp.example. IN DS {} 15 2 ", zone.ksk_tag())));
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("www"), RecordType::A).await;
    assert_secure_answer(&r, RecordType::A, 1, "ed25519 www A");
    let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("nope"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NXDomain, "ed25519 nope A");
    let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("badsig"), RecordType::A).await;
    assert_bogus(&r, RecordType::A, "ed25519 badsig A");
}

#[tokio::test]
async fn broken_denial_fails_validation() {
    for opts in [SignOptions::default(), nsec3()] {
        let zone = SignedZone::build("corp.example.", &opts);
        let label = if opts.nsec3.is_some() { "nsec3" } else { "nsec" };

        // Missing: SOA (+RRSIG) but no NSEC/NSEC3 at all.
        let server = SignedServer::start(&zone, ServeOptions { denial: Denial::Missing, ..Default::default() }).await;
        let nx = raw(&server, &zone.name("nope"), RecordType::A, &dnssec_q()).await;
        assert_eq!(rcode(&nx), ResponseCode::NXDomain);
        assert!(nx.authorities.iter().any(|r| r.record_type() == RecordType::SOA));
        assert!(!nx.authorities.iter().any(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3)));
        for (name, qtype) in [("nope", RecordType::A), ("www", RecordType::AAAA)] {
            let (r, _) = validate(&server, zone.trust_anchors(), &zone.name(name), qtype).await;
            assert!(r.is_err(), "{label} Missing {name} {qtype}: {}", describe(&r));
            assert_bogus(&r, qtype, &format!("{label} Missing {name} {qtype}"));
        }
        // A wildcard answer without its proof is bogus too.
        let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("a.b.w"), RecordType::A).await;
        assert!(r.is_err(), "{label} Missing a.b.w A: {}", describe(&r));
        // Positive answers are unaffected.
        let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("www"), RecordType::A).await;
        assert_secure_answer(&r, RecordType::A, 1, "Missing: www A");

        // Tampered: same records, NSEC/NSEC3 bitmap grew a TXT bit after signing.
        server.set_denial(Denial::Tampered);
        let nx = raw(&server, &zone.name("nope"), RecordType::A, &dnssec_q()).await;
        let bitmaps: Vec<bool> = nx
            .authorities
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n.type_set().contains(RecordType::TXT)),
                RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some(n.type_set().contains(RecordType::TXT)),
                _ => None,
            })
            .collect();
        assert!(!bitmaps.is_empty() && bitmaps.iter().all(|t| *t), "{nx:?}");
        for (name, qtype) in [("nope", RecordType::A), ("www", RecordType::AAAA)] {
            let (r, _) = validate(&server, zone.trust_anchors(), &zone.name(name), qtype).await;
            assert!(r.is_err(), "{label} Tampered {name} {qtype}: {}", describe(&r));
            assert_bogus(&r, qtype, &format!("{label} Tampered {name} {qtype}"));
        }

        // Back to correct on the same server: secure again.
        server.set_denial(Denial::Correct);
        let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("nope"), RecordType::A).await;
        assert_secure_denial(&r, ResponseCode::NXDomain, "Correct again: nope A");
    }
}

#[tokio::test]
async fn zsk_rollover_changes_the_key_set_not_the_ds() {
    let mut zone = SignedZone::corp();
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let addr = server.addr();
    let old_anchors = zone.trust_anchors();
    let (old_ksk, old_zsk, old_ds) = (zone.ksk_tag(), zone.zsk_tag(), zone.ds(2));
    let old_keys: Vec<DNSKEY> = zone.dnskeys();
    let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("www"), RecordType::A).await;
    assert_secure_answer(&r, RecordType::A, 1, "before rollover");

    zone.roll_zsk();
    assert_eq!(zone.ksk_tag(), old_ksk);
    assert_ne!(zone.zsk_tag(), old_zsk);
    assert_eq!(zone.ds(2), old_ds);
    assert_eq!(zone.serial(), 2);
    assert!(!old_keys.contains(zone.zsk()));
    // Not served until replaced.
    let keys = raw(&server, zone.origin(), RecordType::DNSKEY, &Q::default()).await;
    assert!(keys.answers.iter().any(|r| matches!(&r.data, RData::DNSSEC(DNSSECRData::DNSKEY(k)) if k == &old_keys[1])));

    server.replace(&zone);
    assert_eq!(server.addr(), addr);
    let keys = raw(&server, zone.origin(), RecordType::DNSKEY, &dnssec_q()).await;
    let served: Vec<&DNSKEY> = keys
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
            _ => None,
        })
        .collect();
    assert_eq!(served.len(), 2);
    assert!(served.contains(&zone.ksk()) && served.contains(&zone.zsk()));
    assert_eq!(rrsigs(&keys.answers)[0].input().key_tag, old_ksk);
    // The DS still vouches for the (unchanged) KSK in the new set.
    assert!(zone.ds_rdata(2).covers(zone.origin(), served.iter().find(|k| k.flags() == 257).unwrap()).unwrap());
    let www = raw(&server, &zone.name("www"), RecordType::A, &dnssec_q()).await;
    assert_eq!(rrsigs(&www.answers)[0].input().key_tag, zone.zsk_tag());

    // Anchored on the old set: the new ZSK is unknown, hickory looks for a DS and fails.
    let (r, n) = validate(&server, old_anchors, &zone.name("www"), RecordType::A).await;
    assert_bogus(&r, RecordType::A, "old anchors after rollover");
    assert!(r.as_ref().map_or(true, |m| m.answers.iter().all(|r| r.proof != Proof::Secure)), "{}", describe(&r));
    assert!(n > 2, "old anchors: {n} queries");
    // Anchored on the new set: Secure.
    let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("www"), RecordType::A).await;
    assert_secure_answer(&r, RecordType::A, 1, "new anchors after rollover");
    let (r, _) = validate(&server, zone.trust_anchors(), &zone.name("nope"), RecordType::A).await;
    assert_secure_denial(&r, ResponseCode::NXDomain, "new anchors, NXDOMAIN");
}

/// Anchoring only the DS-covered KSK is not enough for hickory's validator (it then looks for a DS
/// above the zone); anchoring the whole DNSKEY set is, which is why `SignedZone::trust_anchors`
/// holds every key.
#[tokio::test]
async fn ksk_only_anchor_is_bogus() {
    let zone = SignedZone::corp();
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let ksk_only = anchors_for(zone.origin(), &[zone.ksk().clone()]);
    let (r, n) = validate(&server, ksk_only, &zone.name("www"), RecordType::A).await;
    assert_bogus(&r, RecordType::A, "KSK-only anchor");
    assert!(r.as_ref().map_or(true, |m| m.answers.iter().all(|r| r.proof != Proof::Secure)), "{}", describe(&r));
    assert!(n > 2, "{n} queries");
    // Wrong zone name for the right keys: also bogus.
    let elsewhere = anchors_for(&Name::from_ascii("other.example.").unwrap(), &zone.dnskeys());
    let (r, _) = validate(&server, elsewhere, &zone.name("www"), RecordType::A).await;
    assert!(r.as_ref().map_or(true, |m| m.answers.iter().all(|r| r.proof != Proof::Secure)), "{}", describe(&r));
}

/// The same checks through a validating hickory `Resolver` (what a forwarding stub uses).
#[tokio::test]
async fn resolver_validates_against_the_fixture() {
    let zone = SignedZone::corp();
    let server = SignedServer::start(&zone, ServeOptions::default()).await;
    let resolver = resolver(server.addr(), zone.trust_anchors());

    let lookup = resolver.lookup(zone.name("www"), RecordType::A).await.expect("www A");
    let a: Vec<&Record> = lookup.answers().iter().filter(|r| r.record_type() == RecordType::A).collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].proof, Proof::Secure);
    assert!(server.queries().iter().all(|q| q.do_bit && !q.cd));

    for label in BOGUS_NAMES {
        let err = resolver.lookup(zone.name(label), RecordType::A).await.expect_err(label);
        assert!(matches!(err, NetError::Dns(DnsError::DnssecBogus)), "{label}: {err:?}");
    }
    let err = resolver.lookup(zone.name("nope"), RecordType::A).await.expect_err("nope");
    match err {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            assert_eq!(nr.response_code, ResponseCode::NXDomain)
        }
        other => panic!("nope: {other:?}"),
    }
    let tampered = SignedServer::start(&zone, ServeOptions { denial: Denial::Tampered, ..Default::default() }).await;
    let err = resolver_for(&tampered, &zone).lookup(zone.name("nope"), RecordType::A).await.expect_err("tampered nope");
    assert!(matches!(err, NetError::Dns(DnsError::DnssecBogus)), "tampered nope: {err:?}");
}

fn resolver_for(server: &SignedServer, zone: &SignedZone) -> Resolver<TokioRuntimeProvider> {
    resolver(server.addr(), zone.trust_anchors())
}

fn resolver(addr: SocketAddr, anchors: TrustAnchors) -> Resolver<TokioRuntimeProvider> {
    let mut ns = NameServerConfig::udp_and_tcp(IpAddr::V4(Ipv4Addr::LOCALHOST));
    for conn in &mut ns.connections {
        conn.port = addr.port();
    }
    let mut builder =
        Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), TokioRuntimeProvider::default())
            .with_trust_anchor(Arc::new(anchors));
    let opts = builder.options_mut();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    builder.build().expect("resolver")
}
