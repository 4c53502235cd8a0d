//! A route's servers speak only for that route's names: what the public side or another VPN can
//! and cannot do to split names (and the other way round), through the real daemon.
//!
//! - Records for another route's names are scrubbed from an answer, and a CNAME chain that crosses
//!   into another route is asked of that route (validated there if anchored).
//! - ANY, RRSIG and DS at an anchored apex are answered the way Unbound answers them.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::auth::{AuthServer, zone};
use common::client::{self, Q, a_addrs, rcode};
use common::daemon::Daemon;
use common::fake::{Fake, Out, Script};
use common::signed::{Nsec3Options, ServeOptions, SignOptions, SignedServer, SignedZone, delegation};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn do_bit() -> Q {
    Q { do_bit: true, ..Q::default() }
}

async fn ask(d: &Daemon, qname: &str, qtype: RecordType, q: Q) -> Message {
    client::udp(d.dns, qname, qtype, &q).await.expect("an answer")
}

/// A signed corp.example (NSEC3) on a link, anchored and whitelisted.
async fn anchored_corp(public: std::net::SocketAddr) -> (Daemon, SignedServer) {
    corp_island_behind(public, vec![], "corp.example\n").await
}

/// A public server that answers every query for `alias.pub.test` with a CNAME into corp.example
/// plus a forged record for the target, and NXDOMAIN otherwise.
async fn injecting_public_server() -> Fake {
    let script: Script = Arc::new(|q: &Message| {
        let mut m = Message::response(q.metadata.id, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.metadata.recursion_available = true;
        m.queries = q.queries.clone();
        m.edns = q.edns.clone();
        let qname = q.queries[0].name().to_ascii().to_ascii_lowercase();
        if qname == "alias.pub.test." {
            let target = name("cnametarget.corp.example.");
            m.add_answer(Record::from_rdata(name("alias.pub.test."), 60, RData::CNAME(CNAME(target.clone()))));
            m.add_answer(Record::from_rdata(target, 60, RData::A(A(Ipv4Addr::new(6, 6, 6, 6)))));
            // And a forged glue-like record for a corp name in the additional section.
            m.add_additional(Record::from_rdata(name("www.corp.example."), 60, RData::A(A(Ipv4Addr::new(6, 6, 6, 7)))));
        } else {
            m.metadata.response_code = ResponseCode::NXDomain;
        }
        vec![Out::Reply(m.to_vec().unwrap())]
    });
    Fake::start(script, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_side_cannot_inject_records_for_split_names() {
    let public = injecting_public_server().await;
    let (d, corp) = anchored_corp(public.addr).await;

    for q in [Q::default(), do_bit()] {
        let m = ask(&d, "alias.pub.test", RecordType::A, q.clone()).await;
        assert!(a_addrs(&m).is_empty(), "a forged corp record reached the client: {m:?}");
        assert!(
            m.answers
                .iter()
                .chain(m.additionals.iter())
                .all(|r| !r.name.to_ascii().contains("corp.example") || r.record_type() != RecordType::A),
            "{m:?}"
        );
        // The chain was followed on the corp link, which proves the target does not exist.
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "{m:?}");
        assert!(m.answers.iter().any(|r| r.record_type() == RecordType::CNAME), "the CNAME itself stays: {m:?}");
        assert!(!m.metadata.authentic_data, "half of the chain is public, unvalidated: {m:?}");
    }
    assert!(corp.queries().iter().any(|q| q.name == "cnametarget.corp.example"), "the corp link was asked");
    // The forged www.corp.example (additional section) never reached the cache: the corp link answers.
    let m = ask(&d, "www.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 1)]);
    assert!(m.metadata.authentic_data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cannot_answer_for_public_names_and_its_chain_out_is_followed() {
    // The corp server's zone has a CNAME to a public name and (wrongly) serves that public name too.
    let corp_srv = AuthServer::start(&[
        ("corp.example.", &zone("corp.example.", "intranet 60 IN CNAME www.pub.test.")),
        ("pub.test.", &zone("pub.test.", "www 60 IN A 6.6.6.6")),
    ])
    .await;
    let public = AuthServer::start(&[("pub.test.", &zone("pub.test.", "www 60 IN A 198.51.100.1"))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "corp", "--server", &corp_srv.addr().to_string(), "--domain", "corp.example"]);
    for _ in 0..2 {
        // Twice: the second time the link's part comes from the cache, the public part is asked
        // of (or cached for) the public route.
        let m = ask(&d, "intranet.corp.example", RecordType::A, Q::default()).await;
        assert_eq!(a_addrs(&m), [Ipv4Addr::new(198, 51, 100, 1)], "{m:?}");
    }
    assert_eq!(public.count_under("pub.test"), 1);
    assert_eq!(public.count_under("corp.example"), 0, "no split name leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_rrsig_and_ds_at_the_anchored_apex_are_answered_as_unbound_answers_them() {
    for minimal_any in [true, false] {
        // The public side must never be asked: it would learn the split name.
        let public = AuthServer::start(&[("example.", &zone("example.", "corp 60 IN DS 1 13 2 00"))]).await;
        let z = SignedZone::build(
            "corp.example.",
            &SignOptions { nsec3: Some(Nsec3Options::default()), ..Default::default() },
        );
        let server = SignedServer::start(&z, ServeOptions { minimal_any, ..Default::default() }).await;
        let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
        let addr = server.addr().to_string();
        d.link_up(&["--id", "corp", "--server", &addr, "--domain", "corp.example", "--ta", &z.ds(2)]);

        // ANY: the signed RRset(s) the server returns (RFC 8482: one), validated.
        let m = ask(&d, "mail.corp.example", RecordType::ANY, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "minimal {minimal_any}: {m:?}");
        assert!(m.metadata.authentic_data, "minimal {minimal_any}: {m:?}");
        assert!(m.answers.iter().any(|r| r.record_type() == RecordType::RRSIG), "{m:?}");
        let data = m.answers.iter().filter(|r| r.record_type() != RecordType::RRSIG).count();
        assert_eq!(data, if minimal_any { 1 } else { 2 }, "{m:?}");

        // RRSIG: passed through, not validated, no AD.
        let m = ask(&d, "www.corp.example", RecordType::RRSIG, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
        assert!(!m.answers.is_empty() && m.answers.iter().all(|r| r.record_type() == RecordType::RRSIG), "{m:?}");
        assert!(!m.metadata.authentic_data, "{m:?}");

        // DS at the island's top: insecure (the parent is outside any anchor), asked of the link.
        let m = ask(&d, "corp.example", RecordType::DS, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
        assert!(!m.metadata.authentic_data, "{m:?}");
        assert!(server.queries().iter().any(|q| q.name == "corp.example" && q.qtype == RecordType::DS));
        assert_eq!(public.count(), 0, "asked the public side: {:?}", public.queries());
        // A DS below the apex is inside the island: validated (here a proven NODATA).
        let m = ask(&d, "www.corp.example", RecordType::DS, do_bit()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
        assert!(m.metadata.authentic_data, "{m:?}");
    }
}

/// corp.example signed (NSEC3) with `extra` records, on the `corp` link (profile `corp`),
/// anchored and whitelisted; a daemon whose whitelist is `whitelist` and whose public upstream is a
/// server of its own (returned: it must stay silent).
async fn corp_island(extra: Vec<Record>, whitelist: &str) -> (Daemon, SignedServer, AuthServer) {
    let public = AuthServer::start(&[("example.", &zone("example.", "www.eng.corp 60 IN A 203.0.113.9"))]).await;
    let (d, server) = corp_island_behind(public.addr(), extra, whitelist).await;
    (d, server, public)
}

async fn corp_island_behind(
    public: std::net::SocketAddr,
    extra: Vec<Record>,
    whitelist: &str,
) -> (Daemon, SignedServer) {
    let opts = SignOptions { nsec3: Some(Nsec3Options::default()), extra, ..Default::default() };
    let z = SignedZone::build("corp.example.", &opts);
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public], &[], whitelist).await;
    let addr = server.addr().to_string();
    let out = d.link_up(&[
        "--id",
        "corp",
        "--profile",
        "corp",
        "--server",
        &addr,
        "--domain",
        "corp.example",
        "--ta",
        &z.ds(2),
    ]);
    assert!(out.contains("(in use)"), "{out}");
    (d, server)
}

fn eng_link(d: &Daemon, server: std::net::SocketAddr, extra: &[&str]) -> String {
    let addr = server.to_string();
    let mut args = vec!["--id", "eng", "--profile", "eng", "--server", &addr, "--domain", "eng.corp.example"];
    args.extend_from_slice(extra);
    d.link_up(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_vpn_cannot_forge_names_inside_an_anchored_zone() {
    // corp.example does not delegate eng.corp.example: names under it are corp's to sign.
    let (d, corp, _public) = corp_island(vec![], "corp.example profile=corp\n").await;
    let forger = AuthServer::start(&[("eng.corp.example.", &zone("eng.corp.example.", "www 60 IN A 6.6.6.6"))]).await;
    eng_link(&d, forger.addr(), &[]);
    for q in [Q::default(), do_bit()] {
        let m = ask(&d, "www.eng.corp.example", RecordType::A, q).await;
        assert_eq!(rcode(&m), ResponseCode::ServFail, "an unsigned forgery inside the island was served: {m:?}");
        assert!(a_addrs(&m).is_empty());
    }
    assert!(
        corp.queries().iter().any(|q| q.name == "eng.corp.example" && q.qtype == RecordType::DS),
        "the chain of trust was asked of the corp link"
    );
    let st = d.status().await;
    let eng = st["links"].as_array().unwrap().iter().find(|l| l["id"] == "eng").unwrap().clone();
    assert_eq!(eng["trust"][0]["zone"], "eng.corp.example", "{eng}");

    // The same VPN offers its own DS for eng.corp.example (signing its forgery): approving
    // corp.example approved the corp VPN's key, not this one. Pending review, never in use.
    let rogue = SignedZone::build("eng.corp.example.", &SignOptions::default());
    let rogue_srv = SignedServer::start(&rogue, ServeOptions::default()).await;
    let out = eng_link(&d, rogue_srv.addr(), &["--ta", &rogue.ds(2)]);
    assert!(out.contains("pending review"), "{out}");
    let m = ask(&d, "www.eng.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(rcode(&m), ResponseCode::ServFail, "{m:?}");
    assert!(!m.metadata.authentic_data, "AD on another VPN's key for a name inside corp's island: {m:?}");
    let st = d.status().await;
    assert_eq!(st["pending_reviews"][0]["domain"], "eng.corp.example", "{st}");
    let why = st["pending_reviews"][0]["reason"].as_str().unwrap();
    assert!(why.contains("approved only for VPN profile \"corp\""), "{why}");

    // Unbound, corp.example would not have been enough either: it lies inside corp's island.
    std::fs::write(d.whitelist_path(), "corp.example\n").unwrap();
    let st = wait_status(&d, |st| {
        st["pending_reviews"][0]["reason"].as_str().is_some_and(|r| r.contains("lies inside corp.example"))
    })
    .await;
    assert!(!st["links"].to_string().contains("\"in use\",\"anchor\":\"eng"), "{st}");
    // A person approves eng.corp.example for the eng profile: its own key is used, AD again.
    std::fs::write(d.whitelist_path(), "corp.example profile=corp\neng.corp.example profile=eng\n").unwrap();
    wait_status(&d, |st| st["pending_reviews"].as_array().is_some_and(|p| p.is_empty())).await;
    let m = ask(&d, "www.eng.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
    assert!(m.metadata.authentic_data, "validated with the key approved for the eng profile: {m:?}");
}

/// Polls `status` until `ok` holds (whitelist edits take effect within the watcher's settle time).
async fn wait_status(d: &Daemon, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..300 {
        let st = d.status().await;
        if ok(&st) {
            return st;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("status never matched: {}", d.status().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_link_inside_an_island_validates_through_the_chain_of_trust() {
    // A secure delegation: corp.example holds eng.corp.example's DS.
    let eng = SignedZone::build("eng.corp.example.", &SignOptions::default());
    let (d, _corp, public) = corp_island(delegation("eng.corp.example.", &[eng.ds_rdata(2)]), "corp.example\n").await;
    let eng_srv = SignedServer::start(&eng, ServeOptions::default()).await;
    eng_link(&d, eng_srv.addr(), &[]);
    let m = ask(&d, "www.eng.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
    assert!(m.metadata.authentic_data, "secure through corp.example's DS: {m:?}");
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 1)]);
    let m = ask(&d, "expired.eng.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(rcode(&m), ResponseCode::ServFail, "bogus in the child stays bogus: {m:?}");
    assert_eq!(public.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proven_insecure_delegation_inside_an_island_is_served_without_ad() {
    let (d, _corp, _public) = corp_island(delegation("eng.corp.example.", &[]), "corp.example\n").await;
    let eng = AuthServer::start(&[("eng.corp.example.", &zone("eng.corp.example.", "www 60 IN A 10.2.0.1"))]).await;
    eng_link(&d, eng.addr(), &[]);
    let m = ask(&d, "www.eng.corp.example", RecordType::A, do_bit()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
    assert!(!m.metadata.authentic_data, "{m:?}");
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 2, 0, 1)]);
    let st = d.status().await;
    let link = st["links"].as_array().unwrap().iter().find(|l| l["id"] == "eng").unwrap().clone();
    assert_eq!(link["trust"][0]["state"], "insecure", "{link}");
}
