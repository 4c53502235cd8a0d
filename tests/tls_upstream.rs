//! Encrypted and stream upstreams through the real daemon: DNS over TLS (RFC 7858) as the default
//! upstream and as a link's server, with the certificate checked against a test CA
//! (`--tls-ca-file` / `tls_ca_file`) for the name after `#` or, without one, the IP address; every
//! server spelling (`tls://`, `ADDR#NAME`, `tcp://`, IPv6, default ports); a wrong name, an unknown
//! CA or a server that speaks no TLS failing closed with SERVFAIL and an Extended DNS Error (RFC
//! 8914) and never a query in clear text; stream connections reused and pipelined (100 sequential
//! and 100 concurrent queries over at most two connections, for `tls://`, `tcp://` and the TCP
//! fallback after truncation), answers matched out of order, a server that closes after each answer
//! still served, TLS sessions resumed, in-flight TLS queries abandoned at link teardown; and
//! opportunistic and strict encryption of the default upstream (port 853 of the resolv.conf
//! servers), which need root to bind ports 53 and 853.
//!
//! The TLS servers are real (tokio-rustls on loopback, `tests/common/dot.rs`) and count their
//! connections; a sniffer bound beside them (UDP on the TLS port and, as root, UDP and TCP on port
//! 53 of the same address) sees any clear-text query.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::auth::{AuthOptions, AuthServer, Proto, zone};
use common::client::{self, Q, a_addrs, ede, rcode};
use common::daemon::Daemon;
use common::dot::{self, DOT_NAME, DotMode, DotOptions, DotServer, Pki, Sniffer, dot_with_sniffer, is_root};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

/// Link id used throughout.
const LINK: &str = "corp-tls";

/// EDE info codes (RFC 8914) a failed TLS server may carry.
const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;
const EDE_NETWORK_ERROR: u16 = 23;

/// Names per zone for the many-query tests: h0..h(NAMES-1).
const NAMES: u16 = 300;

/// A zone for `origin` with `www` at 10.`octet`.255.1 and h0..h299 at 10.`octet`.(n / 256).(n % 256),
/// so that every name has an address of its own.
fn numbered_zone(origin: &str, octet: u8) -> String {
    let mut records = format!("www 60 IN A 10.{octet}.255.1\nmail 60 IN A 10.{octet}.255.2\n");
    for n in 0..NAMES {
        records.push_str(&format!("h{n} 60 IN A 10.{octet}.{}.{}\n", n / 256, n % 256));
    }
    zone(origin, &records)
}

/// The address of `h{n}` in [`numbered_zone`] with `octet`.
fn addr_of(octet: u8, n: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, octet, (n / 256) as u8, (n % 256) as u8)
}

/// Second octet of corp.example's addresses (the internal view).
const CORP: u8 = 1;
/// Second octet of pub.test's addresses.
const PUB: u8 = 3;

fn corp_zone() -> String {
    numbered_zone("corp.example.", CORP)
}

fn pub_zone() -> String {
    numbered_zone("pub.test.", PUB)
}

/// The clear-text public upstream: public.example, and a *different* corp.example (the leak canary).
async fn public_server() -> AuthServer {
    let public = zone("public.example.", "www 60 IN A 192.0.2.10");
    let canary = zone("corp.example.", "www 60 IN A 192.0.2.66\nmail 60 IN A 192.0.2.67");
    AuthServer::start(&[("public.example.", &public), ("corp.example.", &canary)]).await
}

/// A daemon whose default upstream is the clear-text `public` and which trusts `pki`'s CA.
async fn daemon_with_ca(public: &AuthServer, pki: &Pki) -> Daemon {
    Daemon::start(&[public.addr()], &["--tls-ca-file", &pki.ca_arg()]).await
}

/// A daemon whose only (default) upstream is `server` (any spelling), trusting `pki`'s CA.
async fn daemon_with_upstream(server: &str, pki: &Pki) -> Daemon {
    Daemon::start(&[], &["--upstream", server, "--tls-ca-file", &pki.ca_arg()]).await
}

/// Brings up LINK for corp.example with `server` (any spelling).
fn link_up(d: &Daemon, server: &str) {
    d.link_up(&["--id", LINK, "--server", server, "--domain", "corp.example"]);
}

fn tls(addr: SocketAddr, name: &str) -> String {
    format!("tls://{addr}#{name}")
}

async fn ask(d: &Daemon, name: &str) -> Message {
    client::udp(d.dns, name, RecordType::A, &Q::default())
        .await
        .unwrap_or_else(|e| panic!("no answer for {name}: {e}\nlog:\n{}", d.log_text()))
}

/// Asks `name` and asserts the answer is exactly `want`.
async fn expect_a(d: &Daemon, name: &str, want: Ipv4Addr) {
    let r = ask(d, name).await;
    assert_eq!(rcode(&r), ResponseCode::NoError, "{name}: {r:?}\nlog:\n{}", d.log_text());
    assert_eq!(a_addrs(&r), vec![want], "{name}");
}

/// Sends `names` all at once (one task each) and asserts that each gets its own address.
async fn expect_concurrently(d: &Daemon, names: Vec<(String, Ipv4Addr)>) {
    let mut tasks = Vec::new();
    for (name, want) in names {
        let dns = d.dns;
        tasks.push(tokio::spawn(async move {
            let r = client::udp(dns, &name, RecordType::A, &Q::default()).await;
            (name, want, r)
        }));
    }
    let mut wrong = Vec::new();
    for t in tasks {
        let (name, want, r) = t.await.unwrap();
        match r {
            Ok(m) if rcode(&m) == ResponseCode::NoError && a_addrs(&m) == [want] => {}
            Ok(m) => wrong.push(format!("{name}: {} {:?} (want {want})", rcode(&m), a_addrs(&m))),
            Err(e) => wrong.push(format!("{name}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{} wrong or missing answers: {wrong:#?}\nlog:\n{}", wrong.len(), d.log_text());
}

/// Asserts a failed TLS server: SERVFAIL, no answer, an EDE (22 or 23) whose text speaks of TLS or
/// the certificate.
fn assert_tls_failure(r: &Message, d: &Daemon) {
    assert_eq!(rcode(r), ResponseCode::ServFail, "{r:?}\nlog:\n{}", d.log_text());
    assert!(r.answers.is_empty(), "{r:?}");
    let (code, text) = ede(r).unwrap_or_else(|| panic!("SERVFAIL without an EDE: {r:?}"));
    assert!([EDE_NO_REACHABLE_AUTHORITY, EDE_NETWORK_ERROR].contains(&code), "EDE {code}: {text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("tls") || lower.contains("certificate"), "the EDE text does not say why: {text:?}");
}

/// The one server of LINK in `status`.
fn link_server(status: &Value) -> &Value {
    let link = status["links"]
        .as_array()
        .expect("links array")
        .iter()
        .find(|l| l["id"] == LINK)
        .unwrap_or_else(|| panic!("no link {LINK}: {status}"));
    let servers = link["servers"].as_array().expect("servers array");
    assert_eq!(servers.len(), 1, "{status}");
    &servers[0]
}

/// The server of link `id` in `status` (the link has exactly one).
fn server_of(status: &Value, id: &str) -> Value {
    let link = status["links"].as_array().unwrap().iter().find(|l| l["id"] == id);
    let link = link.unwrap_or_else(|| panic!("no link {id}: {status}"));
    let servers = link["servers"].as_array().expect("servers array");
    assert_eq!(servers.len(), 1, "{status}");
    servers[0].clone()
}

/// The one default upstream server in `status`.
fn default_server(status: &Value) -> &Value {
    let servers = status["default_upstream"]["servers"].as_array().expect("default_upstream.servers");
    assert_eq!(servers.len(), 1, "{status}");
    &servers[0]
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

/// Asserts a server status object says TLS with `name` verified, at `addr`.
fn assert_tls_status(s: &Value, addr: SocketAddr, name: &str) {
    assert_eq!(s["addr"], addr.to_string(), "{s}");
    assert_eq!(s["transport"], "tls", "{s}");
    assert_eq!(s["tls_name"], name, "{s}");
}

fn assert_no_clear_text(sniffer: &Sniffer) {
    let seen = sniffer.seen();
    assert!(seen.is_empty(), "clear text reached the TLS server's address ({}): {seen:?}", sniffer.describe());
}

// ---------------------------------------------------------------------------------------------
// Names answered over TLS; server spellings
// ---------------------------------------------------------------------------------------------

/// `--upstream tls://ADDR:PORT#dot.test`: public names are asked over TLS, cached answers are not
/// asked again, and status shows the transport and the verified name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_over_tls_as_the_default_upstream() {
    let pki = Pki::new();
    let text = pub_zone();
    let dot = DotServer::start(&pki.dot_test(), &[("pub.test.", &text)]).await;
    let d = daemon_with_upstream(&tls(dot.addr(), DOT_NAME), &pki).await;

    expect_a(&d, "www.pub.test", Ipv4Addr::new(10, PUB, 255, 1)).await;
    expect_a(&d, "h7.pub.test", addr_of(PUB, 7)).await;
    expect_a(&d, "www.pub.test", Ipv4Addr::new(10, PUB, 255, 1)).await;
    let r = ask(&d, "nope.pub.test").await;
    assert_eq!(rcode(&r), ResponseCode::NXDomain, "{r:?}");

    let log = dot.queries();
    let names: Vec<&str> = log.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["www.pub.test", "h7.pub.test", "nope.pub.test"], "the repeat came from the cache");
    assert!(log.iter().all(|q| q.proto == Proto::Tls));
    assert_eq!(dot.connections(), 1, "one connection for three queries");

    let st = d.status().await;
    let s = default_server(&st);
    assert_tls_status(s, dot.addr(), DOT_NAME);
    assert_eq!(n(s, "connections"), 1, "{s}");
    assert_eq!(n(s, "answers_tcp"), 3, "{s}");
    assert_eq!(n(s, "answers_udp"), 0, "{s}");
    assert_eq!(n(s, "failures"), 0, "{s}");
}

/// `link up --server tls://ADDR:PORT#dot.test` (CA from the `tls_ca_file` config key): split names
/// go over TLS to the link's server and nowhere else, not even in clear text to its address;
/// public names still go to the clear-text default upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_names_resolve_over_a_tls_link_server() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let (dot, sniffer) = dot_with_sniffer(DotMode::Answer, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let d = Daemon::start_with_config(&[public.addr()], &[], &format!("tls_ca_file = {:?}", pki.ca_arg())).await;
    link_up(&d, &tls(dot.addr(), DOT_NAME));

    expect_a(&d, "www.corp.example", Ipv4Addr::new(10, CORP, 255, 1)).await;
    expect_a(&d, "mail.corp.example", Ipv4Addr::new(10, CORP, 255, 2)).await;
    let r = client::tcp(d.dns, "h1.corp.example", RecordType::A, &Q::default()).await.expect("TCP client");
    assert_eq!(a_addrs(&r), vec![addr_of(CORP, 1)]);
    expect_a(&d, "www.public.example", Ipv4Addr::new(192, 0, 2, 10)).await;

    assert_eq!(dot.count_under("corp.example"), 3, "{:?}", dot.queries());
    assert_eq!(dot.count(), 3, "public names never go to the link's server");
    assert_eq!(public.count_under("corp.example"), 0, "split names leaked: {:?}", public.queries());
    assert_no_clear_text(&sniffer);

    let st = d.status().await;
    let s = link_server(&st);
    assert_tls_status(s, dot.addr(), DOT_NAME);
    assert_eq!(n(s, "answers_tcp"), 3, "{s}");
    assert_eq!(n(s, "answers_udp"), 0, "{s}");
    assert_eq!(n(s, "connections"), 1, "{s}");
}

/// The other spellings: `ADDR:PORT#NAME` is TLS; `tls://ADDR:PORT` without a name checks the
/// certificate for the IP address (and is refused when the certificate carries none); an IPv6
/// TLS server in brackets; `tcp://ADDR:PORT` is a plain stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_spelling_is_accepted() {
    let pki = Pki::new();
    let public = public_server().await;
    let zones = [
        ("short.example.", zone("short.example.", "www 60 IN A 10.9.0.1")),
        ("byip.example.", zone("byip.example.", "www 60 IN A 10.9.0.2")),
        ("six.example.", zone("six.example.", "www 60 IN A 10.9.0.3")),
        ("plain.example.", zone("plain.example.", "www 60 IN A 10.9.0.4")),
        ("noip.example.", zone("noip.example.", "www 60 IN A 10.9.0.5")),
    ];
    let zones: Vec<(&str, &str)> = zones.iter().map(|(o, t)| (*o, t.as_str())).collect();
    let dot = DotServer::start(&pki.dot_test(), &zones).await;
    let v6 = DotServer::start_with(
        DotOptions { ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), ..DotOptions::default() },
        &pki.dot_test(),
        &zones,
    )
    .await;
    let names_only = DotServer::start(&pki.leaf(&[DOT_NAME], &[]), &zones).await;
    let plain = AuthServer::start(&zones).await;
    let d = daemon_with_ca(&public, &pki).await;

    let links = [
        ("short", format!("{}#{DOT_NAME}", dot.addr()), "short.example"),
        ("byip", format!("tls://{}", dot.addr()), "byip.example"),
        ("six", format!("tls://[::1]:{}#{DOT_NAME}", v6.addr().port()), "six.example"),
        ("plain", format!("tcp://{}", plain.addr()), "plain.example"),
        ("noip", format!("tls://{}", names_only.addr()), "noip.example"),
    ];
    for (id, server, domain) in &links {
        d.link_up(&["--id", id, "--server", server, "--domain", domain]);
    }

    expect_a(&d, "www.short.example", Ipv4Addr::new(10, 9, 0, 1)).await;
    expect_a(&d, "www.byip.example", Ipv4Addr::new(10, 9, 0, 2)).await;
    expect_a(&d, "www.six.example", Ipv4Addr::new(10, 9, 0, 3)).await;
    expect_a(&d, "www.plain.example", Ipv4Addr::new(10, 9, 0, 4)).await;
    let r = ask(&d, "www.noip.example").await;
    assert_tls_failure(&r, &d);

    assert_eq!(dot.count(), 2, "{:?}", dot.queries());
    assert_eq!(v6.count(), 1);
    assert_eq!(names_only.count(), 0, "no query over a connection whose certificate failed");
    let plain_log = plain.queries();
    assert_eq!(plain_log.len(), 1, "{plain_log:?}");
    assert_eq!(plain_log[0].proto, Proto::Tcp, "tcp:// never uses UDP");

    let st = d.status().await;
    assert_tls_status(&server_of(&st, "short"), dot.addr(), DOT_NAME);
    assert_tls_status(&server_of(&st, "byip"), dot.addr(), "127.0.0.1");
    assert_tls_status(&server_of(&st, "six"), v6.addr(), DOT_NAME);
    assert_eq!(server_of(&st, "six")["addr"], format!("[::1]:{}", v6.addr().port()));
    let s = server_of(&st, "plain");
    assert_eq!(s["addr"], plain.addr().to_string(), "{s}");
    assert_eq!(s["transport"], "tcp", "{s}");
    assert!(s.get("tls_name").is_none_or(Value::is_null), "no tls_name for tcp://: {s}");
    assert!(n(&server_of(&st, "noip"), "failures") >= 1, "{st}");
}

/// Without a port, `tls://ADDR#NAME` means port 853 and `tcp://ADDR` port 53 (root only: both
/// ports are privileged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ports_are_853_for_tls_and_53_for_tcp() {
    if !is_root() {
        eprintln!("SKIPPED: default_ports_are_853_for_tls_and_53_for_tcp binds ports 53 and 853, which needs root");
        return;
    }
    let pki = Pki::new();
    let public = public_server().await;
    let ip = dot::dedicated_ip();
    let text = corp_zone();
    let opts = DotOptions { ip: Some(ip), port: Some(853), ..DotOptions::default() };
    let dot = DotServer::start_with(opts, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let plain_text = zone("plain.example.", "www 60 IN A 10.9.0.4");
    let plain = AuthServer::start_on_port_53(&[("plain.example.", &plain_text)]).await;
    let d = daemon_with_ca(&public, &pki).await;
    link_up(&d, &format!("tls://{ip}#{DOT_NAME}"));
    d.link_up(&["--id", "plain", "--server", &format!("tcp://{}", plain.addr().ip()), "--domain", "plain.example"]);

    expect_a(&d, "www.corp.example", Ipv4Addr::new(10, CORP, 255, 1)).await;
    expect_a(&d, "www.plain.example", Ipv4Addr::new(10, 9, 0, 4)).await;
    assert_eq!(dot.count(), 1);
    assert_eq!(plain.queries().iter().map(|q| q.proto).collect::<Vec<_>>(), [Proto::Tcp]);
    let st = d.status().await;
    assert_tls_status(link_server(&st), SocketAddr::new(ip, 853), DOT_NAME);
    let s = server_of(&st, "plain");
    assert_eq!(s["addr"], format!("{}:53", plain.addr().ip()), "{s}");
    assert_eq!(s["transport"], "tcp", "{s}");
}

// ---------------------------------------------------------------------------------------------
// Verification failures: fail closed, never clear text
// ---------------------------------------------------------------------------------------------

/// A link server whose certificate does not carry the configured name: SERVFAIL with an EDE, over
/// UDP and TCP, no query processed by the TLS server, nothing in clear text to its address (its
/// TLS port over UDP, or port 53), and no leak to the public upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused_without_clear_text() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let (dot, sniffer) = dot_with_sniffer(DotMode::Answer, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let d = daemon_with_ca(&public, &pki).await;
    link_up(&d, &tls(dot.addr(), "other.test"));

    let r = ask(&d, "www.corp.example").await;
    assert_tls_failure(&r, &d);
    let r = client::tcp(d.dns, "mail.corp.example", RecordType::A, &Q::default()).await.expect("TCP client");
    assert_tls_failure(&r, &d);

    assert!(dot.connections() >= 1, "the daemon never tried the TLS server; log:\n{}", d.log_text());
    assert_eq!(dot.count(), 0, "a query was processed over a refused connection: {:?}", dot.queries());
    assert_eq!(dot.handshakes(), 0, "the daemon accepted a certificate for dot.test as other.test");
    // Give a late fallback time to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_clear_text(&sniffer);
    assert_eq!(public.count_under("corp.example"), 0, "{:?}", public.queries());
    let st = d.status().await;
    let s = link_server(&st);
    assert_eq!(s["transport"], "tls", "{s}");
    assert!(n(s, "failures") >= 1, "{s}");
    assert_eq!(n(s, "answers_tcp") + n(s, "answers_udp"), 0, "{s}");
}

/// The default upstream's certificate comes from a CA the daemon was not told to trust (a
/// `dot.test` certificate all the same): SERVFAIL with an EDE, no query processed, no clear text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_refused_without_clear_text() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let text = pub_zone();
    let (dot, sniffer) = dot_with_sniffer(DotMode::Answer, &stranger.dot_test(), &[("pub.test.", &text)]).await;
    let d = daemon_with_upstream(&tls(dot.addr(), DOT_NAME), &pki).await;

    let r = ask(&d, "www.pub.test").await;
    assert_tls_failure(&r, &d);
    let r = ask(&d, "h1.pub.test").await;
    assert_tls_failure(&r, &d);

    assert!(dot.connections() >= 1, "the daemon never tried the TLS server; log:\n{}", d.log_text());
    assert_eq!(dot.count(), 0, "{:?}", dot.queries());
    assert_eq!(dot.handshakes(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_clear_text(&sniffer);
    let st = d.status().await;
    let s = default_server(&st);
    assert_eq!(s["transport"], "tls", "{s}");
    assert!(n(s, "failures") >= 1, "{s}");
}

/// A `tls://` server that is really a plain DNS server (it would answer UDP and TCP): a failed
/// server, SERVFAIL with an EDE, and it never receives a query it could answer in clear text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_speaks_no_tls_is_a_failed_server() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let plain = AuthServer::start(&[("corp.example.", &text)]).await;
    let d =
        Daemon::start_with_config(&[public.addr()], &["--tls-ca-file", &pki.ca_arg()], "query_timeout_ms = 1500").await;
    link_up(&d, &tls(plain.addr(), DOT_NAME));

    let started = Instant::now();
    let r = ask(&d, "www.corp.example").await;
    eprintln!("SERVFAIL after {:?}", started.elapsed());
    assert_eq!(rcode(&r), ResponseCode::ServFail, "{r:?}");
    assert!(r.answers.is_empty());
    let (code, text) = ede(&r).expect("an EDE");
    assert!([EDE_NO_REACHABLE_AUTHORITY, EDE_NETWORK_ERROR].contains(&code), "EDE {code}: {text}");
    assert_eq!(plain.count(), 0, "a clear-text query reached it: {:?}", plain.queries());
    assert_eq!(public.count_under("corp.example"), 0);
}

// ---------------------------------------------------------------------------------------------
// Connection reuse and pipelining
// ---------------------------------------------------------------------------------------------

/// 100 different names asked one after another over a TLS default upstream share one connection
/// (at most two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sequential_queries_use_at_most_two_tls_connections() {
    let pki = Pki::new();
    let text = pub_zone();
    let dot = DotServer::start(&pki.dot_test(), &[("pub.test.", &text)]).await;
    let d = daemon_with_upstream(&tls(dot.addr(), DOT_NAME), &pki).await;

    let started = Instant::now();
    for i in 0..100 {
        expect_a(&d, &format!("h{i}.pub.test"), addr_of(PUB, i)).await;
    }
    eprintln!("100 sequential queries over TLS in {:?}", started.elapsed());

    assert_eq!(dot.count(), 100, "each name asked once");
    assert!((1..=2).contains(&dot.connections()), "{} connections for 100 queries", dot.connections());
    let st = d.status().await;
    let s = default_server(&st);
    assert!((1..=2).contains(&n(s, "connections")), "{s}");
    assert_eq!(n(s, "connections") as usize, dot.connections(), "status counts what the server saw: {s}");
    assert_eq!(n(s, "answers_tcp"), 100, "{s}");
}

/// 100 different names asked at once of a TLS link server share at most two connections, and
/// every client gets its own name's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_queries_use_at_most_two_tls_connections() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let dot = DotServer::start(&pki.dot_test(), &[("corp.example.", &text)]).await;
    let d = daemon_with_ca(&public, &pki).await;
    link_up(&d, &tls(dot.addr(), DOT_NAME));

    let names = (0..100).map(|i| (format!("h{i}.corp.example"), addr_of(CORP, i))).collect();
    expect_concurrently(&d, names).await;

    assert_eq!(dot.count(), 100, "each name asked once");
    assert!((1..=2).contains(&dot.connections()), "{} connections for 100 queries", dot.connections());
    let st = d.status().await;
    let s = link_server(&st);
    assert!((1..=2).contains(&n(s, "connections")), "{s}");
    assert_eq!(n(s, "answers_tcp"), 100, "{s}");
    assert_eq!(public.count_under("corp.example"), 0);
}

/// A server that answers each batch of pipelined queries newest first: every client still gets the
/// answer to its own question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_out_of_order_reach_their_own_clients() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let mode = DotMode::Reverse { batch: 8, wait: Duration::from_millis(200) };
    let dot = DotServer::start_with(
        DotOptions { mode, ..DotOptions::default() },
        &pki.dot_test(),
        &[("corp.example.", &text)],
    )
    .await;
    let d = daemon_with_ca(&public, &pki).await;
    link_up(&d, &tls(dot.addr(), DOT_NAME));

    let names = (0..48).map(|i| (format!("h{i}.corp.example"), addr_of(CORP, i))).collect();
    expect_concurrently(&d, names).await;

    assert!(dot.reordered() >= 1, "the queries were never pipelined, so nothing was reordered");
    assert_eq!(dot.count(), 48);
    assert!(dot.connections() <= 2, "{} connections", dot.connections());
}

/// A server that closes the connection after every answer: 20 names asked one after another are
/// all answered, each on a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_after_each_answer_is_still_served() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let opts = DotOptions { mode: DotMode::CloseAfterEach, ..DotOptions::default() };
    let dot = DotServer::start_with(opts, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let d = daemon_with_ca(&public, &pki).await;
    link_up(&d, &tls(dot.addr(), DOT_NAME));

    for i in 0..20 {
        expect_a(&d, &format!("h{i}.corp.example"), addr_of(CORP, i)).await;
    }
    assert_eq!(dot.answers(), 20);
    assert!(dot.connections() >= 20, "{} connections for 20 answers", dot.connections());
    let st = d.status().await;
    let s = link_server(&st);
    assert!(n(s, "connections") >= 20, "{s}");
    assert_eq!(n(s, "answers_tcp"), 20, "{s}");
    assert_eq!(public.count_under("corp.example"), 0);
}

/// New connections to the same TLS server resume the earlier session instead of a full handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_are_resumed() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let opts = DotOptions { mode: DotMode::CloseAfterEach, ..DotOptions::default() };
    let dot = DotServer::start_with(opts, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let d = daemon_with_ca(&public, &pki).await;
    link_up(&d, &tls(dot.addr(), DOT_NAME));

    for i in 0..5 {
        expect_a(&d, &format!("h{i}.corp.example"), addr_of(CORP, i)).await;
    }
    assert!(dot.handshakes() >= 5, "{} handshakes", dot.handshakes());
    assert!(dot.resumed() >= 1, "none of {} handshakes resumed a session", dot.handshakes());
}

/// `tcp://`: never a UDP datagram, and one connection (at most two) for sequential and concurrent
/// queries alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_servers_get_no_udp_and_one_reused_connection() {
    let public = public_server().await;
    let text = corp_zone();
    let internal = AuthServer::start(&[("corp.example.", &text)]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, &format!("tcp://{}", internal.addr()));

    for i in 0..20 {
        expect_a(&d, &format!("h{i}.corp.example"), addr_of(CORP, i)).await;
    }
    let names = (20..60).map(|i| (format!("h{i}.corp.example"), addr_of(CORP, i))).collect();
    expect_concurrently(&d, names).await;

    let log = internal.queries();
    assert_eq!(log.len(), 60, "{log:?}");
    assert!(log.iter().all(|q| q.proto == Proto::Tcp), "a query went over UDP: {log:?}");
    let ports: HashSet<u16> = log.iter().map(|q| q.src_port).collect();
    assert!(ports.len() <= 2, "{} connections (source ports {ports:?}) for 60 queries", ports.len());
    let st = d.status().await;
    let s = link_server(&st);
    assert_eq!(s["transport"], "tcp", "{s}");
    assert!((1..=2).contains(&n(s, "connections")), "{s}");
    assert_eq!(n(s, "answers_tcp"), 60, "{s}");
    assert_eq!(n(s, "answers_udp"), 0, "{s}");
    assert_eq!(public.count_under("corp.example"), 0);
}

/// A plain server that truncates every UDP answer: each query is repeated over TCP, and those TCP
/// queries share one connection (at most two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_fallback_after_truncation_reuses_its_connection() {
    let public = public_server().await;
    let text = corp_zone();
    let internal = AuthServer::start_with(
        AuthOptions { truncate_udp: true, ..AuthOptions::default() },
        &[("corp.example.", &text)],
    )
    .await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, &internal.addr().to_string());

    for i in 0..10 {
        expect_a(&d, &format!("h{i}.corp.example"), addr_of(CORP, i)).await;
    }
    let log = internal.queries();
    let protos: Vec<Proto> = log.iter().map(|q| q.proto).collect();
    assert_eq!(protos, [Proto::Udp, Proto::Tcp].repeat(10), "{log:?}");
    let ports: HashSet<u16> = log.iter().filter(|q| q.proto == Proto::Tcp).map(|q| q.src_port).collect();
    assert!(ports.len() <= 2, "{} TCP connections (source ports {ports:?}) for 10 queries", ports.len());
    let st = d.status().await;
    let s = link_server(&st);
    assert_eq!(s["transport"], "udp", "a truncating server still answers UDP: {s}");
    assert!((1..=2).contains(&n(s, "connections")), "{s}");
    assert_eq!(n(s, "answers_tcp"), 10, "{s}");
}

// ---------------------------------------------------------------------------------------------
// Teardown
// ---------------------------------------------------------------------------------------------

/// A query waiting on a TLS link server that never answers is abandoned when the link goes down:
/// the client gets SERVFAIL at once (well before the query timeout) and link-down counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_down_abandons_an_in_flight_tls_query() {
    let pki = Pki::new();
    let public = public_server().await;
    let text = corp_zone();
    let opts = DotOptions { mode: DotMode::Silent, ..DotOptions::default() };
    let dot = DotServer::start_with(opts, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let d =
        Daemon::start_with_config(&[public.addr()], &["--tls-ca-file", &pki.ca_arg()], "query_timeout_ms = 8000").await;
    link_up(&d, &tls(dot.addr(), DOT_NAME));

    let dns = d.dns;
    let pending = tokio::spawn(async move {
        client::udp(dns, "www.corp.example", RecordType::A, &Q { timeout: Duration::from_secs(10), ..Q::default() })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(3);
    while dot.count() == 0 {
        assert!(Instant::now() < deadline, "the query never reached the TLS server; log:\n{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let down_at = Instant::now();
    let v = d.request(json!({"cmd": "link-down", "id": LINK})).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(n(&v["result"], "queries_abandoned") >= 1, "{v}");
    let r = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("the client got no answer within 2 s of link-down")
        .unwrap()
        .expect("an answer, not a client timeout");
    eprintln!("SERVFAIL {:?} after link-down", down_at.elapsed());
    assert_eq!(rcode(&r), ResponseCode::ServFail, "{r:?}");
    assert!(r.answers.is_empty());
    assert!(ede(&r).is_some(), "SERVFAIL without an EDE: {r:?}");
    assert_eq!(public.count_under("corp.example"), 0);
}

// ---------------------------------------------------------------------------------------------
// Opportunistic and strict TLS for the default upstream
// ---------------------------------------------------------------------------------------------

/// A plain server on port 53 and, if `with_tls`, a DoT server on port 853 of one fresh loopback
/// address (certificate: `dot.test` and that address), both serving pub.test; and the
/// resolv.conf that names the address.
struct SystemServer {
    ip: IpAddr,
    plain: AuthServer,
    dot: Option<DotServer>,
    resolv_conf: std::path::PathBuf,
}

async fn system_server(pki: &Pki, with_tls: bool) -> SystemServer {
    let ip = dot::dedicated_ip();
    let text = pub_zone();
    let opts = AuthOptions { ip: Some(ip), port: Some(53), ..AuthOptions::default() };
    let plain = AuthServer::start_with(opts, &[("pub.test.", &text)]).await;
    let dot = if with_tls {
        let opts = DotOptions { ip: Some(ip), port: Some(853), ..DotOptions::default() };
        Some(DotServer::start_with(opts, &pki.leaf(&[DOT_NAME], &[ip]), &[("pub.test.", &text)]).await)
    } else {
        None
    };
    let resolv_conf = pki.dir().join(format!("resolv-{ip}.conf"));
    std::fs::write(&resolv_conf, format!("nameserver {ip}\n")).unwrap();
    SystemServer { ip, plain, dot, resolv_conf }
}

/// A daemon that follows `sys`'s resolv.conf, trusts `pki`, with `config` lines added.
async fn daemon_following(sys: &SystemServer, pki: &Pki, extra: &[&str], config: &str) -> Daemon {
    let config = format!("resolv_conf = {:?}\ntls_ca_file = {:?}\n{config}\n", sys.resolv_conf, pki.ca_arg());
    Daemon::start_with_raw_config(&[], extra, &config).await
}

/// The IP address part of a server status's `addr` (its port may be 53 or 853).
fn server_ip(s: &Value) -> String {
    let addr: SocketAddr = s["addr"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("bad addr: {s}"));
    addr.ip().to_string()
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED: {test} binds ports 53 and 853 of a 127.85.x.y address, which needs root");
    true
}

/// `default_upstream_tls = "opportunistic"` with a resolv.conf server that listens on 853: public
/// names go over TLS, nothing in clear text, and status says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opportunistic_tls_is_used_when_the_system_server_offers_it() {
    if skip_unless_root("opportunistic_tls_is_used_when_the_system_server_offers_it") {
        return;
    }
    let pki = Pki::new();
    let sys = system_server(&pki, true).await;
    let d = daemon_following(&sys, &pki, &[], "default_upstream_tls = \"opportunistic\"").await;

    expect_a(&d, "www.pub.test", Ipv4Addr::new(10, PUB, 255, 1)).await;
    expect_a(&d, "h3.pub.test", addr_of(PUB, 3)).await;
    let dot = sys.dot.as_ref().unwrap();
    assert_eq!(dot.count(), 2, "{:?}", dot.queries());
    assert_eq!(sys.plain.count(), 0, "clear text although TLS was offered: {:?}", sys.plain.queries());
    let st = d.status().await;
    assert_eq!(st["default_upstream"]["tls"], "opportunistic", "status says which is in force: {st}");
    let s = default_server(&st);
    assert_eq!(server_ip(s), sys.ip.to_string(), "{s}");
    assert_eq!(s["transport"], "tls (opportunistic)", "{s}");
    assert_eq!(n(s, "answers_tcp"), 2, "{s}");
    assert_eq!(n(s, "answers_udp"), 0, "{s}");
}

/// `--default-upstream-tls opportunistic` with a resolv.conf server that has no TLS listener:
/// answers come in clear text, and status says TLS is unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opportunistic_tls_falls_back_to_clear_text_without_a_listener() {
    if skip_unless_root("opportunistic_tls_falls_back_to_clear_text_without_a_listener") {
        return;
    }
    let pki = Pki::new();
    let sys = system_server(&pki, false).await;
    let d = daemon_following(&sys, &pki, &["--default-upstream-tls", "opportunistic"], "").await;

    expect_a(&d, "www.pub.test", Ipv4Addr::new(10, PUB, 255, 1)).await;
    expect_a(&d, "h3.pub.test", addr_of(PUB, 3)).await;
    let names: Vec<String> = sys.plain.queries().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["www.pub.test", "h3.pub.test"]);
    let st = d.status().await;
    assert_eq!(st["default_upstream"]["tls"], "opportunistic", "{st}");
    let s = default_server(&st);
    assert_eq!(server_ip(s), sys.ip.to_string(), "{s}");
    assert_eq!(s["transport"], "udp (tls unavailable)", "{s}");
    assert_eq!(n(s, "answers_udp"), 2, "{s}");
}

/// `default_upstream_tls = "strict"` with a resolv.conf server that has no TLS listener: SERVFAIL
/// with an EDE, and the clear-text server on port 53 never hears a thing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_tls_never_falls_back_to_clear_text() {
    if skip_unless_root("strict_tls_never_falls_back_to_clear_text") {
        return;
    }
    let pki = Pki::new();
    let sys = system_server(&pki, false).await;
    let d = daemon_following(&sys, &pki, &[], "default_upstream_tls = \"strict\"").await;

    let r = ask(&d, "www.pub.test").await;
    assert_eq!(rcode(&r), ResponseCode::ServFail, "{r:?}\nlog:\n{}", d.log_text());
    assert!(r.answers.is_empty());
    assert!(ede(&r).is_some(), "SERVFAIL without an EDE: {r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sys.plain.count(), 0, "clear text in strict mode: {:?}", sys.plain.queries());
    let st = d.status().await;
    assert_eq!(st["default_upstream"]["tls"], "strict", "{st}");
    assert!(n(default_server(&st), "failures") >= 1, "{st}");
}

/// `default_upstream_tls = "strict"` with a resolv.conf server whose certificate carries its IP
/// address: answered over TLS, nothing in clear text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_tls_is_used_when_the_certificate_carries_the_address() {
    if skip_unless_root("strict_tls_is_used_when_the_certificate_carries_the_address") {
        return;
    }
    let pki = Pki::new();
    let sys = system_server(&pki, true).await;
    let d = daemon_following(&sys, &pki, &[], "default_upstream_tls = \"strict\"").await;

    expect_a(&d, "www.pub.test", Ipv4Addr::new(10, PUB, 255, 1)).await;
    assert_eq!(sys.dot.as_ref().unwrap().count(), 1);
    assert_eq!(sys.plain.count(), 0, "{:?}", sys.plain.queries());
    let st = d.status().await;
    assert_eq!(st["default_upstream"]["tls"], "strict", "{st}");
    let s = default_server(&st);
    assert_eq!(server_ip(s), sys.ip.to_string(), "{s}");
    assert_eq!(s["transport"], "tls", "{s}");
    assert_eq!(s["tls_name"], sys.ip.to_string(), "no name given: the certificate must carry the address: {s}");
}

/// Without `default_upstream_tls`, the default upstream stays in clear text even though its
/// server offers TLS on port 853.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_upstream_tls_is_off_by_default() {
    if skip_unless_root("default_upstream_tls_is_off_by_default") {
        return;
    }
    let pki = Pki::new();
    let sys = system_server(&pki, true).await;
    let d = daemon_following(&sys, &pki, &[], "").await;

    expect_a(&d, "www.pub.test", Ipv4Addr::new(10, PUB, 255, 1)).await;
    assert_eq!(sys.plain.count(), 1);
    assert_eq!(sys.dot.as_ref().unwrap().connections(), 0, "port 853 was tried although TLS is off");
    let st = d.status().await;
    assert_eq!(st["default_upstream"]["tls"], "off", "{st}");
    assert_eq!(default_server(&st)["transport"], "udp", "{st}");
}
