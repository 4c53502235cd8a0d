//! Split-DNS routing through the real daemon: longest-suffix routing across nested links with no
//! leak to the public upstream, teardown's four effects (RFC 8598 §5), ownership conflicts between
//! profiles (RFC 8598 §8), full tunnels and the default route (§2), links kept across restart and
//! crash, the state file (corrupt, unsafe), SIGHUP, shared in-flight queries, public suffixes, and
//! servers that name no DNS server.
//!
//! Every test runs the real daemon binary against real authoritative servers on loopback: an
//! "internal" one per VPN and a "public" one that serves a *different* `corp.example` as a leak canary.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::auth::{AuthOptions, AuthServer, zone};
use common::client::{self, Q, a_addrs, ede, rcode};
use common::daemon::Daemon;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const PUBLIC_CORP: &str = "www 60 IN A 203.0.113.66\nnx 60 IN A 203.0.113.67";

async fn public() -> AuthServer {
    AuthServer::start(&[
        ("corp.example.", &zone("corp.example.", PUBLIC_CORP)),
        ("example.", &zone("example.", "othercorp 60 IN A 203.0.113.1\nwww.eng.corp 60 IN A 203.0.113.2")),
        ("pub.test.", &zone("pub.test.", "www 60 IN A 198.51.100.1")),
    ])
    .await
}

async fn internal(records: &str) -> AuthServer {
    AuthServer::start(&[("corp.example.", &zone("corp.example.", records))]).await
}

async fn a(d: &Daemon, name: &str) -> Vec<Ipv4Addr> {
    let m = client::udp(d.dns, name, RecordType::A, &Q::default()).await.expect("answer");
    a_addrs(&m)
}

fn addr(s: &AuthServer) -> String {
    s.addr().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_suffix_across_nested_links_and_no_leak() {
    let public = public().await;
    let corp = internal("www 60 IN A 10.1.0.1\neng 60 IN A 10.1.0.9").await;
    let eng = AuthServer::start(&[("eng.corp.example.", &zone("eng.corp.example.", "www 60 IN A 10.2.0.1"))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "corp", "--profile", "corp", "--server", &addr(&corp), "--domain", "corp.example"]);
    d.link_up(&["--id", "eng", "--profile", "eng", "--server", &addr(&eng), "--domain", "Eng.Corp.Example."]);

    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(a(&d, "WWW.ENG.corp.example").await, [Ipv4Addr::new(10, 2, 0, 1)]);
    // Whole labels only: othercorp.example is public.
    assert_eq!(a(&d, "othercorp.example").await, [Ipv4Addr::new(203, 0, 113, 1)]);
    assert_eq!(a(&d, "www.pub.test").await, [Ipv4Addr::new(198, 51, 100, 1)]);

    assert_eq!(public.count_under("corp.example"), 0, "split names leaked: {:?}", public.queries());
    assert_eq!(corp.count_under("eng.corp.example"), 0, "nested domain went to the outer link");
    assert_eq!(corp.count_under("pub.test") + eng.count_under("pub.test"), 0, "public name sent to a tunnel");
    assert_eq!(corp.count_under("othercorp.example") + eng.count_under("othercorp.example"), 0);

    // While the internal server is down, split names fail closed and still never leak.
    corp.stop().await;
    let m = client::udp(d.dns, "new.corp.example", RecordType::A, &Q::default()).await.expect("answer");
    assert_eq!(rcode(&m), ResponseCode::ServFail);
    let (code, text) = ede(&m).expect("extended DNS error");
    assert!(code == 22 || code == 23, "EDE code {code}");
    assert!(text.contains("corp"), "EDE text should name the link: {text}");
    assert_eq!(public.count_under("corp.example"), 0, "leak while the tunnel server was down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apex_of_outer_domain_and_nested_split() {
    let public = public().await;
    let corp = internal("eng 60 IN A 10.1.0.9").await;
    let eng = AuthServer::start(&[("eng.corp.example.", &zone("eng.corp.example.", "@ 60 IN A 10.2.0.2"))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "corp", "--server", &addr(&corp), "--domain", "corp.example"]);
    assert_eq!(a(&d, "eng.corp.example").await, [Ipv4Addr::new(10, 1, 0, 9)]);
    d.link_up(&["--id", "eng", "--server", &addr(&eng), "--domain", "eng.corp.example"]);
    // The nested link takes over its subtree at once; the outer link's cached answer is not served.
    assert_eq!(a(&d, "eng.corp.example").await, [Ipv4Addr::new(10, 2, 0, 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_removes_routes_flushes_cache_drops_anchors_abandons_queries() {
    let public = public().await;
    let corp = internal("www 60 IN A 10.1.0.1").await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let ds = format!("corp.example. IN DS 4242 13 2 {}", "AB".repeat(32));
    d.link_up(&["--id", "vpn", "--server", &addr(&corp), "--domain", "corp.example", "--ta", &ds]);

    // Fill the cache with a positive and a negative answer; second queries are cache hits.
    for _ in 0..2 {
        assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
        let m = client::udp(d.dns, "missing.corp.example", RecordType::A, &Q::default()).await.unwrap();
        assert_eq!(rcode(&m), ResponseCode::NXDomain);
    }
    assert_eq!(corp.count(), 2, "second round should come from the cache: {:?}", corp.queries());
    let st = d.status().await;
    assert_eq!(st["links"][0]["anchors"][0]["anchor"].as_str().unwrap(), ds);
    assert_eq!(st["cache"]["entries"], 2, "{st}");

    // 1. Forwarding rules: after down, the name goes to the public upstream.
    let out = d.link_down("vpn");
    assert!(out.contains("1 domain(s) no longer routed"), "{out}");
    assert!(out.contains("1 trust anchor(s) dropped"), "{out}");
    // The positive and the negative entry are gone from memory, not just unreachable.
    assert!(out.contains("2 cached answer(s) flushed"), "{out}");
    assert_eq!(d.status().await["cache"]["entries"], 0);
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(203, 0, 113, 66)]);
    let m = client::udp(d.dns, "missing.corp.example", RecordType::A, &Q::default()).await.unwrap();
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(public.count_under("corp.example"), 2);

    // 2. Cache flushed (negative entries too): the same link back up asks its server again.
    d.link_up(&["--id", "vpn", "--server", &addr(&corp), "--domain", "corp.example"]);
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
    let m = client::udp(d.dns, "missing.corp.example", RecordType::A, &Q::default()).await.unwrap();
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(corp.count(), 4, "answers survived teardown in the cache: {:?}", corp.queries());

    // 3. Anchors dropped: the new link (without --ta) has none.
    let st = d.status().await;
    assert_eq!(st["links"][0]["anchors"].as_array().unwrap().len(), 0, "{st}");

    // 4. In-flight queries abandoned at once, not left to time out.
    let slow = AuthServer::start_with(
        AuthOptions { delay: Some(Duration::from_secs(30)), ..Default::default() },
        &[("slow.example.", &zone("slow.example.", "www 60 IN A 10.9.9.9"))],
    )
    .await;
    d.link_up(&["--id", "slow", "--server", &addr(&slow), "--domain", "slow.example"]);
    let dns = d.dns;
    let pending = tokio::spawn(async move {
        client::udp(dns, "www.slow.example", RecordType::A, &Q { timeout: Duration::from_secs(20), ..Q::default() })
            .await
    });
    // Wait until the query reached the slow server, then tear the link down.
    for _ in 0..200 {
        if slow.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(slow.count(), 1);
    let out = d.link_down("slow");
    assert!(out.contains("1 query(ies) abandoned"), "{out}");
    let m = pending.await.unwrap().expect("an answer, not a client timeout");
    assert_eq!(rcode(&m), ResponseCode::ServFail);
    let (_, text) = ede(&m).expect("EDE");
    assert!(text.contains("went down"), "abandoned query should say why: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_of_another_profile_is_refused_same_profile_replaces() {
    let public = public().await;
    let a_srv = internal("www 60 IN A 10.1.0.1").await;
    let b_srv = internal("www 60 IN A 10.66.0.1").await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "a", "--profile", "corp", "--server", &addr(&a_srv), "--domain", "corp.example"]);
    let out = d.link_up(&["--id", "b", "--profile", "evil", "--server", &addr(&b_srv), "--domain", "corp.example"]);
    assert!(out.contains("NOT routing corp.example"), "{out}");
    let st = d.status().await;
    let b = st["links"].as_array().unwrap().iter().find(|l| l["id"] == "b").unwrap().clone();
    assert_eq!(b["domains"].as_array().unwrap().len(), 0);
    assert_eq!(b["refused"][0]["domain"], "corp.example");
    assert!(b["refused"][0]["reason"].as_str().unwrap().contains("RFC 8598 §8"));
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(b_srv.count(), 0);

    // The text view says it too.
    let (ok, text, _) = d.cli(&["status"]);
    assert!(ok && text.contains("refused   corp.example"), "{text}");

    // The same profile reconnecting (new id) replaces its old link and keeps the domain.
    let a2 = internal("www 60 IN A 10.1.0.2").await;
    let out =
        d.link_up(&["--id", "a-reconnect", "--profile", "corp", "--server", &addr(&a2), "--domain", "corp.example"]);
    assert!(out.contains("replaced link a"), "{out}");
    let st = d.status().await;
    let ids: Vec<&str> = st["links"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&"a"), "{ids:?}");
    // The reconnect keeps the profile's claim: the refused rival does not take the domain over.
    let owner = st["links"].as_array().unwrap().iter().find(|l| !l["domains"].as_array().unwrap().is_empty()).unwrap();
    assert_eq!(owner["id"], "a-reconnect");
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 2)]);
    assert_eq!(b_srv.count(), 0);
    // When the profile goes away for good, the other link's claim takes effect.
    d.link_down("a-reconnect");
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 66, 0, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tunnel_default_route_and_ignored_split_config() {
    let public = public().await;
    let tunnel = AuthServer::start(&[
        ("pub.test.", &zone("pub.test.", "www 60 IN A 10.200.0.1")),
        ("corp.example.", &zone("corp.example.", "www 60 IN A 10.200.0.2")),
    ])
    .await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let ds = format!("corp.example. IN DS 4242 13 2 {}", "AB".repeat(32));
    let out = d.link_up(&[
        "--id",
        "ft",
        "--server",
        &addr(&tunnel),
        "--domain",
        "corp.example",
        "--ta",
        &ds,
        "--full-tunnel",
        "--default-route",
    ]);
    assert!(out.contains("default route"), "{out}");
    let st = d.status().await;
    assert_eq!(st["links"][0]["domains"].as_array().unwrap().len(), 0);
    assert_eq!(st["links"][0]["anchors"][0]["state"], "ignored");
    assert!(st["default_upstream"]["source"].as_str().unwrap().contains("ft"));
    // Everything goes down the tunnel while it is up.
    assert_eq!(a(&d, "www.pub.test").await, [Ipv4Addr::new(10, 200, 0, 1)]);
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 200, 0, 2)]);
    assert_eq!(public.count(), 0);
    d.link_down("ft");
    assert_eq!(a(&d, "www.pub.test").await, [Ipv4Addr::new(198, 51, 100, 1)]);

    // A full tunnel without --default-route changes nothing for routing.
    d.link_up(&["--id", "ft2", "--server", &addr(&tunnel), "--domain", "corp.example", "--full-tunnel"]);
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(203, 0, 113, 66)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_survive_restart_and_crash() {
    let public = public().await;
    let corp = internal("www 60 IN A 10.1.0.1").await;
    let mut d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "vpn", "--profile", "corp", "--server", &addr(&corp), "--domain", "corp.example"]);

    assert!(d.stop(), "SIGTERM should exit cleanly; log:\n{}", d.log_text());
    d.restart().await;
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(d.status().await["links"][0]["profile"], "corp");

    d.crash();
    d.restart().await;
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(public.count_under("corp.example"), 0);

    // A link that went down stays down after a restart.
    d.link_down("vpn");
    d.crash();
    d.restart().await;
    assert_eq!(d.status().await["links"].as_array().unwrap().len(), 0);
}

/// The sequence numbers in the state file, by link id.
fn saved_seqs(d: &Daemon) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(d.state_dir.join("links.json")).expect("links.json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l["seq"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_up_after_a_restart_gets_its_own_route() {
    // A link's sequence number names its route: a new link that reused a restored link's number
    // would take that link's route over, and its names would go to the wrong servers.
    let public = public().await;
    let corp = internal("www 60 IN A 10.1.0.1").await;
    let lab = AuthServer::start(&[("lab.example.", &zone("lab.example.", "www 60 IN A 10.2.0.1"))]).await;
    let mut d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "corp", "--profile", "corp", "--server", &addr(&corp), "--domain", "corp.example"]);
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);

    d.crash();
    d.restart().await;
    d.link_up(&["--id", "lab", "--profile", "lab", "--server", &addr(&lab), "--domain", "lab.example"]);
    let seqs = saved_seqs(&d);
    assert_eq!(seqs.len(), 2, "{seqs:?}");
    assert_ne!(seqs[0].1, seqs[1].1, "the new link reused a restored link's number: {seqs:?}");

    // Each link's names reach its own servers, and only those.
    assert_eq!(a(&d, "www.lab.example").await, [Ipv4Addr::new(10, 2, 0, 1)]);
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(
        lab.count_under("corp.example"),
        0,
        "the restored link's names went to the new link: {:?}",
        lab.queries()
    );
    assert_eq!(corp.count_under("lab.example"), 0, "{:?}", corp.queries());
    assert_eq!(corp.count_under("corp.example"), 2, "{:?}", corp.queries());
    let st = d.status().await;
    let queries = |id: &str| {
        st["links"].as_array().unwrap().iter().find(|l| l["id"] == id).unwrap()["counters"]["queries"].as_u64()
    };
    assert_eq!((queries("corp"), queries("lab")), (Some(1), Some(1)), "{st}");

    // Taking the new link down leaves the restored link's route in place.
    d.link_down("lab");
    let m = client::udp(d.dns, "new.corp.example", RecordType::A, &Q::default()).await.expect("answer");
    assert_eq!(rcode(&m), ResponseCode::NXDomain, "{m:?}");
    assert_eq!(corp.count_under("corp.example"), 3, "{:?}", corp.queries());
    assert_eq!(public.count_under("corp.example") + public.count_under("lab.example"), 0, "{:?}", public.queries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_state_file_is_set_aside_not_fatal() {
    let public = public().await;
    let mut d = Daemon::start(&[public.addr()], &[]).await;
    d.crash();
    std::fs::create_dir_all(&d.state_dir).unwrap();
    std::fs::write(d.state_dir.join("links.json"), b"{\"version\":1,\"links\":[{\"id\":").unwrap();
    d.restart().await;
    assert_eq!(d.status().await["links"].as_array().unwrap().len(), 0);
    let aside = std::fs::read_dir(&d.state_dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("links.json.corrupt-"));
    assert!(aside, "the corrupt file should be kept for inspection");
    assert!(d.log_text().contains("corrupt"), "the daemon should say so");
    assert_eq!(a(&d, "www.pub.test").await, [Ipv4Addr::new(198, 51, 100, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_default_upstream() {
    let first = public().await;
    let second = AuthServer::start(&[("pub.test.", &zone("pub.test.", "www 60 IN A 198.51.100.2"))]).await;
    let d = Daemon::start(&[], &[]).await;
    // The helper wrote config.toml; point it at `first`, reload, then at `second`.
    let config = d.dir.path().join("config.toml");
    std::fs::write(&config, format!("upstream = [\"{}\"]\n", first.addr())).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let mut got = vec![];
    for _ in 0..100 {
        got = a(&d, "www.pub.test").await;
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, [Ipv4Addr::new(198, 51, 100, 1)]);
    std::fs::write(&config, format!("upstream = [\"{}\"]\n", second.addr())).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    for _ in 0..100 {
        got = a(&d, "www.pub.test").await;
        if got == [Ipv4Addr::new(198, 51, 100, 2)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, [Ipv4Addr::new(198, 51, 100, 2)]);
    // A broken config keeps the running one.
    std::fs::write(&config, "upstream = [\"not an address\"\n").unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    for _ in 0..100 {
        if d.log_text().contains("keeping the running configuration") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d.log_text().contains("keeping the running configuration"), "{}", d.log_text());
    let st = d.status().await;
    assert_eq!(st["default_upstream"]["servers"][0]["addr"], second.addr().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_questions_in_flight_share_one_upstream_query() {
    let public = public().await;
    let slow = AuthServer::start_with(
        AuthOptions { delay: Some(Duration::from_millis(500)), ..Default::default() },
        &[("corp.example.", &zone("corp.example.", "www 60 IN A 10.1.0.1"))],
    )
    .await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "vpn", "--server", &addr(&slow), "--domain", "corp.example"]);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let dns = d.dns;
        clients.push(tokio::spawn(
            async move { client::udp(dns, "www.corp.example", RecordType::A, &Q::default()).await },
        ));
    }
    for c in clients {
        let m = c.await.unwrap().expect("answer");
        assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 1)]);
    }
    // Count transactions (source port + id); a UDP retransmission of the same one does not count.
    let transactions: std::collections::HashSet<(u16, u16)> =
        slow.queries().iter().map(|q| (q.src_port, q.id)).collect();
    assert_eq!(transactions.len(), 1, "8 identical questions should cause one upstream query: {:?}", slow.queries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_tunnel_may_not_claim_a_public_suffix() {
    let public = AuthServer::start(&[("com.", &zone("com.", "shop.example 60 IN A 203.0.113.10"))]).await;
    let vpn = AuthServer::start(&[
        ("com.", &zone("com.", "shop.example 60 IN A 6.6.6.6")),
        ("internal.", &zone("internal.", "www 60 IN A 10.1.0.9")),
    ])
    .await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let out = d.link_up(&[
        "--id",
        "vpn",
        "--profile",
        "corp",
        "--server",
        &addr(&vpn),
        "--domain",
        "com",
        "--domain",
        "internal",
    ]);
    assert!(out.contains("NOT routing com: com is a public suffix"), "{out}");
    let st = d.status().await;
    assert_eq!(st["links"][0]["domains"], serde_json::json!(["internal"]), "{st}");
    assert_eq!(st["links"][0]["refused"][0]["kind"], "public-suffix", "{st}");
    // Every .com name stays with the public side; the private TLD goes to the tunnel.
    assert_eq!(a(&d, "shop.example.com").await, [Ipv4Addr::new(203, 0, 113, 10)]);
    assert_eq!(vpn.count_under("com"), 0, "a .com name went to the VPN: {:?}", vpn.queries());
    assert_eq!(a(&d, "www.internal").await, [Ipv4Addr::new(10, 1, 0, 9)]);

    // A profile that really owns a public suffix says so in the config.
    let d = Daemon::start_with_config(&[public.addr()], &[], "[profiles.corp]\nallow_public_suffix = true\n").await;
    let out = d.link_up(&["--id", "vpn", "--profile", "corp", "--server", &addr(&vpn), "--domain", "com"]);
    assert!(out.contains("routing com"), "{out}");
    assert_eq!(a(&d, "shop.example.com").await, [Ipv4Addr::new(6, 6, 6, 6)]);
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_state_file_or_directory_is_refused_with_the_fix_and_not_written() {
    let public = public().await;
    let corp = internal("www 60 IN A 10.1.0.1").await;
    let mut d = Daemon::start(&[public.addr()], &[]).await;
    d.link_up(&["--id", "vpn", "--profile", "corp", "--server", &addr(&corp), "--domain", "corp.example"]);
    assert!(d.stop(), "log:\n{}", d.log_text());
    let file = d.state_dir.join("links.json");
    let dir = d.state_dir.clone();
    // As a previous run left them, then opened up to everyone: the file, then its directory.
    for (path, unsafe_mode, safe_mode) in [(&file, 0o666, 0o600), (&dir, 0o777, 0o755)] {
        let saved = std::fs::read(&file).unwrap();
        set_mode(path, unsafe_mode);
        d.restart().await;
        let st = d.status().await;
        assert_eq!(st["links"].as_array().unwrap().len(), 0, "a state file anyone could write was loaded: {st}");
        let fix = format!("chmod go-w {}", path.display());
        let problem = st["state_file_problem"].as_str().unwrap_or_default();
        assert!(problem.contains(&fix) && problem.contains("writable by its group and everyone"), "{st}");
        assert!(d.log_text().contains(&fix), "the log should say how to fix it");
        let (_, text, _) = d.cli(&["status"]);
        assert!(text.contains(&fix), "{text}");
        // Its link is not routed: corp.example goes to the public upstream.
        let asked = corp.count();
        assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(203, 0, 113, 66)]);
        assert_eq!(corp.count(), asked, "{:?}", corp.queries());

        // A change is in effect but is not saved over the refused file (nor anything else there).
        let (ok, out, err) =
            d.cli(&["link", "up", "--id", "other", "--server", &addr(&corp), "--domain", "other.example"]);
        assert!(ok, "{err}");
        assert!(err.contains("not saved") && err.contains(&fix), "{out}\n{err}");
        assert_eq!(std::fs::read(&file).unwrap(), saved, "the refused state file was overwritten");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["links.json"], "something was written into the refused state directory");
        assert!(d.stop());

        // Fixed as the message says: the saved link comes back.
        set_mode(path, safe_mode);
        d.restart().await;
        let st = d.status().await;
        assert_eq!(st["links"][0]["id"], "vpn", "{st}");
        assert!(st["state_file_problem"].is_null(), "{st}");
        assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(10, 1, 0, 1)]);
        assert!(d.stop());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_that_name_no_dns_server_or_splitdns_itself_are_refused() {
    let public = public().await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let own = d.dns.to_string();
    for (server, why) in [
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("255.255.255.255", "the broadcast address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        (own.as_str(), "splitdns itself"),
    ] {
        let (ok, out, err) = d.cli(&["link", "up", "--id", "x", "--server", server, "--domain", "corp.example"]);
        assert!(!ok, "--server {server} was accepted: {out}");
        assert!(err.contains(&format!("server {server} is {why}")), "--server {server}: {err}");
        assert_eq!(d.status().await["links"].as_array().unwrap().len(), 0, "--server {server} made a link");
    }
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(203, 0, 113, 66)]);
}
