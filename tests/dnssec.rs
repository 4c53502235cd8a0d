//! DNSSEC validation of split-domain answers from a VPN-supplied DS anchor (RFC 8598 §4.2), through
//! the real daemon, against a signed zone served on loopback (KSK + ZSK, NSEC or NSEC3): AD and
//! signatures only when asked, proven NXDOMAIN and NODATA, bogus answers and broken denials as
//! SERVFAIL with the reason, a DS for the wrong key, ZSK rollover, anchors that go with their link,
//! no anchor without a whitelist entry, caching of validated answers and of failures, and NSEC3
//! wildcard answers proven by the fast path.

mod common;

use std::net::Ipv4Addr;

use common::auth::{AuthServer, zone};
use common::client::{self, Q, a_addrs, ede, rcode};
use common::daemon::Daemon;
use common::signed::{Denial, Nsec3Options, ServeOptions, SignOptions, SignedServer, SignedZone};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::Value;

/// A whitelist that approves corp.example.
const WHITELISTED: &[&str] = &["corp.example"];

async fn public() -> AuthServer {
    AuthServer::start(&[("corp.example.", &zone("corp.example.", "www 60 IN A 203.0.113.66"))]).await
}

/// A daemon whose whitelist holds `whitelist`, with `corp.example` on a link to `server`,
/// anchored with `ds` when given.
async fn daemon_with(
    public: &AuthServer,
    server: &SignedServer,
    ds: Option<&str>,
    whitelist: &[&str],
) -> (Daemon, String) {
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], &whitelist.join("\n")).await;
    let addr = server.addr().to_string();
    let mut args = vec!["--id", "vpn", "--server", &addr, "--domain", "corp.example"];
    if let Some(ds) = ds {
        args.extend(["--ta", ds]);
    }
    let out = d.link_up(&args);
    (d, out)
}

async fn ask(d: &Daemon, name: &str, qtype: RecordType, q: Q) -> Message {
    client::udp(d.dns, name, qtype, &q).await.expect("an answer")
}

fn do_bit() -> Q {
    Q { do_bit: true, ..Q::default() }
}

fn has_type(records: &[hickory_proto::rr::Record], t: RecordType) -> bool {
    records.iter().any(|r| r.record_type() == t)
}

fn trust(st: &Value) -> Value {
    st["links"][0]["trust"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_answers_carry_ad_and_signatures_only_when_asked() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, out) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;
    assert!(out.contains("(in use)"), "anchor should be verified at link up: {out}");

    let m = ask(&d, "www.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.metadata.authentic_data, "DO query should get AD");
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 1)]);
    assert!(has_type(&m.answers, RecordType::RRSIG), "DO query should get RRSIGs");

    // AD flag without DO: AD, no signatures (RFC 6840 §5.8).
    let m = ask(&d, "mail.corp.example", RecordType::A, Q { ad: true, ..Q::default() }).await;
    assert!(m.metadata.authentic_data);
    assert!(!has_type(&m.answers, RecordType::RRSIG), "no RRSIG without DO");
    // Neither: no AD, no signatures, same data.
    let m = ask(&d, "www.corp.example", RecordType::A, Q::default()).await;
    assert!(!m.metadata.authentic_data);
    assert!(!has_type(&m.answers, RecordType::RRSIG));
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 1)]);
    let aaaa = ask(&d, "mail.corp.example", RecordType::AAAA, do_bit()).await;
    assert!(aaaa.metadata.authentic_data);

    // A wildcard two labels deep validates (one label deep hits a hickory 0.26.3 NSEC bug).
    let m = ask(&d, "a.b.w.corp.example", RecordType::A, do_bit()).await;
    assert!(m.metadata.authentic_data, "{m:?}");
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 99)]);

    let st = d.status().await;
    let t = trust(&st);
    assert_eq!(t["state"], "verified", "{t}");
    assert_eq!(t["ds"][0], z.ds(2));
    let keys = t["keys"].to_string();
    assert!(keys.contains(&z.ksk_tag().to_string()) && keys.contains(&z.zsk_tag().to_string()), "{keys}");
    assert!(t["next_check"].as_u64().unwrap() > 0);
    assert!(t["secure"].as_u64().unwrap() >= 4, "{t}");
    assert_eq!(public.count_under("corp.example"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_come_with_proof_and_ad() {
    for opts in [SignOptions::default(), SignOptions { nsec3: Some(Nsec3Options::default()), ..SignOptions::default() }]
    {
        let denial_type = if opts.nsec3.is_some() { RecordType::NSEC3 } else { RecordType::NSEC };
        let public = public().await;
        let z = SignedZone::build("corp.example.", &opts);
        let server = SignedServer::start(&z, ServeOptions::default()).await;
        let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;

        let m = ask(&d, "nope.corp.example", RecordType::A, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "{denial_type}");
        assert!(m.metadata.authentic_data, "{denial_type}: {m:?}");
        assert!(has_type(&m.authorities, denial_type) && has_type(&m.authorities, RecordType::SOA), "{m:?}");

        let m = ask(&d, "www.corp.example", RecordType::TXT, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert!(m.metadata.authentic_data, "{denial_type} NODATA: {m:?}");
        assert!(has_type(&m.authorities, denial_type));
        // Without DO the proof is stripped but the answer is the same.
        let m = ask(&d, "nope.corp.example", RecordType::A, Q::default()).await;
        assert_eq!(rcode(&m), ResponseCode::NXDomain);
        assert!(!has_type(&m.authorities, denial_type));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_answers_are_servfail_with_the_reason() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;
    // (name, RFC 8914 code, a word the text must contain)
    let cases = [
        ("expired", 7, "expired"),
        ("future", 8, "not valid yet"),
        ("nosig", 10, "not signed"),
        ("wrongkey", 9, "key tag"),
        ("badsig", 6, "does not verify"),
    ];
    for (label, code, word) in cases {
        let name = format!("{label}.corp.example");
        for q in [do_bit(), Q::default()] {
            let m = ask(&d, &name, RecordType::A, q).await;
            assert_eq!(rcode(&m), ResponseCode::ServFail, "{name}: {m:?}");
            assert!(m.answers.is_empty(), "{name}: bogus data must not be returned");
            let (c, text) = ede(&m).unwrap_or_else(|| panic!("{name}: no EDE"));
            assert_eq!(c, code, "{name}: {text}");
            assert!(text.contains(word), "{name}: {text}");
        }
        // CD: the client validates itself and gets the data, without AD.
        let m = ask(&d, &name, RecordType::A, Q { cd: true, do_bit: true, ..Q::default() }).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{name} with CD");
        assert!(!m.metadata.authentic_data);
        assert_eq!(a_addrs(&m).len(), 1, "{name} with CD should return the data");
    }
    let t = trust(&d.status().await);
    assert!(t["bogus"].as_u64().unwrap() >= 5, "{t}");
    assert_eq!(public.count_under("corp.example"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_denial_of_existence_is_bogus() {
    for (denial, code) in [(Denial::Missing, 12), (Denial::Tampered, 6)] {
        let public = public().await;
        let z = SignedZone::corp();
        let server = SignedServer::start(&z, ServeOptions { denial, ..Default::default() }).await;
        let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;
        let m = ask(&d, "nope.corp.example", RecordType::A, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::ServFail, "{denial:?}: {m:?}");
        let (c, text) = ede(&m).expect("EDE");
        assert_eq!(c, code, "{denial:?}: {text}");
        // Positive answers are unaffected.
        let m = ask(&d, "www.corp.example", RecordType::A, do_bit()).await;
        assert!(m.metadata.authentic_data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ds_for_the_wrong_key_is_rejected_at_link_up_and_fails_closed() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, out) = daemon_with(&public, &server, Some(&z.wrong_ds()), WHITELISTED).await;
    assert!(out.contains("(failed)") && out.contains("matches the DS"), "{out}");
    let t = trust(&d.status().await);
    assert_eq!(t["state"], "failed");
    assert!(t["reason"].as_str().unwrap().contains("none of the 2 DNSKEYs"), "{t}");
    let m = ask(&d, "www.corp.example", RecordType::A, Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::ServFail);
    let (c, text) = ede(&m).expect("EDE");
    assert_eq!(c, 9, "{text}");
    assert!(text.contains("not verified"), "{text}");
    // Fail closed: nothing went to the public side.
    assert_eq!(public.count_under("corp.example"), 0);
    let (ok, text, _) = d.cli(&["status"]);
    assert!(ok && text.contains("trust     corp.example [failed]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zsk_rollover_is_survived() {
    let public = public().await;
    let mut z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;
    assert!(ask(&d, "www.corp.example", RecordType::A, do_bit()).await.metadata.authentic_data);
    let old_zsk = z.zsk_tag();

    z.roll_zsk();
    assert_ne!(z.zsk_tag(), old_zsk);
    server.replace(&z);
    server.reset();
    // Not cached before: signed by the new ZSK, which the daemon does not trust yet.
    let m = ask(&d, "mail.corp.example", RecordType::A, do_bit()).await;
    // The answer and one fresh DNSKEY fetch: no chase up the tree for DS records.
    assert!(server.count() <= 3, "rollover cost {} upstream queries: {:?}", server.count(), server.queries());
    assert_eq!(rcode(&m), ResponseCode::NoError, "rollover turned the zone bogus: {m:?}");
    assert!(m.metadata.authentic_data);
    let t = trust(&d.status().await);
    let keys = t["keys"].to_string();
    assert!(keys.contains(&z.zsk_tag().to_string()) && !keys.contains(&old_zsk.to_string()), "{keys}");
    // And it stays good.
    assert!(ask(&d, "nope.corp.example", RecordType::A, do_bit()).await.metadata.authentic_data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchor_goes_with_the_link_and_unanchored_domains_are_insecure() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;
    assert!(ask(&d, "www.corp.example", RecordType::A, do_bit()).await.metadata.authentic_data);
    d.link_down("vpn");
    let addr = server.addr().to_string();
    d.link_up(&["--id", "vpn", "--server", &addr, "--domain", "corp.example"]);
    let m = ask(&d, "www.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 1)]);
    assert!(!m.metadata.authentic_data, "a link without anchor must be insecure");
    // Insecure means not validated: a bogus name passes through as data.
    let m = ask(&d, "expired.corp.example", RecordType::A, Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    let st = d.status().await;
    assert_eq!(st["links"][0]["trust"].as_array().unwrap().len(), 0);
    let (_, text, _) = d.cli(&["status"]);
    assert!(text.contains("DNSSEC: insecure"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_whitelist_entry_no_anchor_is_used() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, out) = daemon_with(&public, &server, Some(&z.ds(2)), &[]).await;
    assert!(out.contains("(pending review)"), "{out}");
    let m = ask(&d, "www.corp.example", RecordType::A, do_bit()).await;
    assert!(!m.metadata.authentic_data);
    assert_eq!(d.status().await["links"][0]["anchors"][0]["state"], "pending review");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_answers_are_cached() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;
    assert!(ask(&d, "www.corp.example", RecordType::A, do_bit()).await.metadata.authentic_data);
    let after_first = server.count();
    let m = ask(&d, "www.corp.example", RecordType::A, do_bit()).await;
    assert!(m.metadata.authentic_data && has_type(&m.answers, RecordType::RRSIG));
    assert_eq!(server.count(), after_first, "second answer should come from the cache");
    // The DNSKEY set was fetched once, at link up, not per query.
    let dnskey_queries = server.queries().iter().filter(|q| q.qtype == RecordType::DNSKEY).count();
    assert_eq!(dnskey_queries, 1, "{:?}", server.queries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsec3_wildcard_answers_are_proven_by_the_fast_path() {
    let public = public().await;
    let opts = SignOptions { nsec3: Some(Nsec3Options::default()), ..SignOptions::default() };
    let z = SignedZone::build("corp.example.", &opts);
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;

    // Distinct names (no answer-cache hits), each a wildcard expansion with its NSEC3 proof.
    for i in 0..6 {
        let name = format!("host{i}.w.corp.example");
        let m = ask(&d, &name, RecordType::A, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{name}: {m:?}");
        assert!(m.metadata.authentic_data, "{name}: {m:?}");
        assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 99)], "{name}");
        assert!(has_type(&m.answers, RecordType::RRSIG), "{name}: {m:?}");
        assert!(has_type(&m.authorities, RecordType::NSEC3), "{name}: the wildcard proof goes along: {m:?}");
        // Without DO: same data and AD, no DNSSEC records.
        let m = ask(&d, &format!("plain{i}.w.corp.example"), RecordType::A, Q { ad: true, ..Q::default() }).await;
        assert!(m.metadata.authentic_data, "{m:?}");
        assert!(!has_type(&m.answers, RecordType::RRSIG) && !has_type(&m.authorities, RecordType::NSEC3));
    }
    let t = trust(&d.status().await);
    assert!(t["secure"].as_u64().unwrap() >= 12, "{t}");
    assert_eq!(t["fast_secure"], 12, "every answer took the fast path: {t}");
    // Two signatures per answer (the wildcard A and the covering NSEC3). The wildcard's signed
    // data is the same for every expansion, so after the first it always comes from the signature
    // cache; the NSEC3 that covers a name varies, so some of those need the crypto.
    let (checks, hits) = (t["signature_checks"].as_u64().unwrap(), t["signature_cache_hits"].as_u64().unwrap());
    assert_eq!(checks + hits, 24, "{t}");
    assert!(hits >= 12 && checks >= 2, "signature cache: {checks} checks, {hits} hits: {t}");

    // Without the NSEC3 proof the fast path must step aside and hickory finds the expansion
    // unproven.
    server.set_denial(Denial::Missing);
    for i in 0..4 {
        let name = format!("bare{i}.w.corp.example");
        let m = ask(&d, &name, RecordType::A, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::ServFail, "{name}: {m:?}");
        assert!(!m.metadata.authentic_data && m.answers.is_empty(), "{name}: {m:?}");
    }
    let t = trust(&d.status().await);
    assert_eq!(t["fast_secure"], 12, "a wildcard without proof took the fast path: {t}");
    assert_eq!(public.count_under("corp.example"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_failures_are_remembered_briefly() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let (d, _) = daemon_with(&public, &server, Some(&z.ds(2)), WHITELISTED).await;
    let asked = || server.queries().iter().filter(|q| q.name == "expired.corp.example").count();
    // A client (or fifty) retrying a bogus name: the failure is remembered (RFC 9520).
    for i in 0..50 {
        let m = ask(&d, "expired.corp.example", RecordType::A, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::ServFail, "query {i}");
        let (code, text) = ede(&m).expect("EDE");
        assert_eq!(code, 7, "signature expired, also when remembered: {text}");
    }
    assert_eq!(asked(), 1, "50 queries for a bogus name asked the server {} times", asked());
    let st = d.status().await;
    assert_eq!(st["cache"]["failures"], 1, "{st}");
    // A CD client validates itself: it still gets the data.
    let m = ask(&d, "expired.corp.example", RecordType::A, Q { cd: true, do_bit: true, ..Q::default() }).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    // Good names are not affected, and a flush forgets the failure.
    assert_eq!(rcode(&ask(&d, "www.corp.example", RecordType::A, do_bit()).await), ResponseCode::NoError);
    let (ok, _, err) = d.cli(&["flush", "corp.example"]);
    assert!(ok, "{err}");
    assert_eq!(d.status().await["cache"]["failures"], 0);
    ask(&d, "expired.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(asked(), 3, "asked again after the flush (the CD query asked once too)");
}
