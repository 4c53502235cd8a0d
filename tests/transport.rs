//! Upstream transport and listener behaviour of the real daemon: UDP with retransmission and TCP
//! fallback, truncation, source address and interface binding, response matching, fail-closed
//! errors (RFC 8914 EDE), and robustness of the loopback listener.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::auth::{AuthOptions, AuthServer, Proto, UdpMode, zone};
use common::client::{self, Q, a_addrs, ede, rcode};
use common::daemon::Daemon;
use common::fake::{Fake, Out, Script};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// Link id used throughout; distinctive so that "the EDE text names the link" cannot match by accident.
const LINK: &str = "corp-vpn-7";

/// EDE info codes (RFC 8914).
const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;
const EDE_NETWORK_ERROR: u16 = 23;

/// The internal view of corp.example.
fn internal_zone() -> String {
    zone(
        "corp.example.",
        "www 60 IN A 10.1.0.1\n\
         mail 60 IN A 10.1.0.2\n\
         h1 60 IN A 10.1.1.1\n\
         h2 60 IN A 10.1.1.2\n\
         h3 60 IN A 10.1.1.3\n\
         h4 60 IN A 10.1.1.4\n\
         h5 60 IN A 10.1.1.5\n\
         h6 60 IN A 10.1.1.6",
    )
}

/// The public upstream: a real public zone plus a *different* corp.example (the leak canary).
async fn public_server() -> AuthServer {
    let public = zone("public.example.", "www 60 IN A 192.0.2.10");
    let canary = zone(
        "corp.example.",
        "www 60 IN A 192.0.2.66\n\
         mail 60 IN A 192.0.2.67",
    );
    AuthServer::start(&[("public.example.", &public), ("corp.example.", &canary)]).await
}

async fn internal_with(opts: AuthOptions) -> AuthServer {
    let text = internal_zone();
    AuthServer::start_with(opts, &[("corp.example.", &text)]).await
}

/// Brings up LINK for corp.example with `server` and extra CLI flags.
fn link_up(d: &Daemon, server: SocketAddr, extra: &[&str]) {
    let server = server.to_string();
    let mut args = vec!["--id", LINK, "--server", &server, "--domain", "corp.example"];
    args.extend_from_slice(extra);
    d.link_up(&args);
}

async fn ask_udp(d: &Daemon, name: &str) -> Message {
    client::udp(d.dns, name, RecordType::A, &Q::default())
        .await
        .unwrap_or_else(|e| panic!("no UDP answer for {name}: {e}\nlog:\n{}", d.log_text()))
}

async fn ask_tcp(d: &Daemon, name: &str) -> Message {
    client::tcp(d.dns, name, RecordType::A, &Q::default())
        .await
        .unwrap_or_else(|e| panic!("no TCP answer for {name}: {e}\nlog:\n{}", d.log_text()))
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// Asserts a fail-closed SERVFAIL: the given EDE code, with text naming the link and the domain.
fn assert_fail_closed(r: &Message, code: u16) {
    assert_eq!(rcode(r), ResponseCode::ServFail, "{r:?}");
    assert!(r.answers.is_empty(), "{r:?}");
    let (got, text) = ede(r).unwrap_or_else(|| panic!("SERVFAIL without an EDE: {r:?}"));
    assert_eq!(got, code, "EDE text: {text}");
    assert!(text.contains(LINK), "EDE text does not name the link: {text:?}");
    assert!(text.contains("corp.example"), "EDE text does not name the split domain: {text:?}");
}

fn server_status(status: &serde_json::Value) -> &serde_json::Value {
    let links = status["links"].as_array().expect("links array");
    assert_eq!(links.len(), 1, "{status}");
    assert_eq!(links[0]["id"], LINK);
    let servers = links[0]["servers"].as_array().expect("servers array");
    assert_eq!(servers.len(), 1, "{status}");
    &servers[0]
}

/// A NOERROR response with id `id`, question `name`/A and one A record `addr`.
fn a_response(id: u16, name: &Name, addr: Ipv4Addr) -> Vec<u8> {
    let mut m = Message::response(id, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(Query::query(name.clone(), RecordType::A));
    m.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(addr))));
    m.to_vec().unwrap()
}

fn qname(msg: &Message) -> String {
    msg.queries[0].name().to_string().trim_end_matches('.').to_ascii_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Every upstream query gets a fresh random source port and a random id, independent of the
/// client's id, and never leaves from the listener's own socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_queries_use_random_source_ports_and_ids() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions::default()).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);

    // Raw queries that all carry the same client id.
    const CLIENT_ID: u16 = 0x1234;
    for i in 1..=6u8 {
        let name = format!("h{i}.corp.example.");
        let mut q = Message::new(CLIENT_ID, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(&name).unwrap(), RecordType::A));
        let reply = client::send_raw_udp(d.dns, &q.to_vec().unwrap(), Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no reply for {name}; log:\n{}", d.log_text()));
        let reply = Message::from_vec(&reply).expect("reply decodes");
        assert_eq!(reply.metadata.id, CLIENT_ID, "the client's id is echoed");
        assert_eq!(rcode(&reply), ResponseCode::NoError);
        assert_eq!(a_addrs(&reply), vec![ip(10, 1, 1, i)], "{name}");
    }

    let log = internal.queries();
    assert_eq!(log.len(), 6, "{log:?}");
    assert!(log.iter().all(|q| q.proto == Proto::Udp), "{log:?}");
    let ports: HashSet<u16> = log.iter().map(|q| q.src_port).collect();
    let ids: HashSet<u16> = log.iter().map(|q| q.id).collect();
    assert!(ports.len() > 1, "all queries left from one port: {log:?}");
    assert!(ids.len() > 1, "all queries had one id: {log:?}");
    assert!(!ports.contains(&d.dns.port()), "a query left from the listener's port {}: {log:?}", d.dns.port());
    assert_eq!(public.count_under("corp.example"), 0);
}

/// A reply counts only if it comes from the server's address and matches our id and question:
/// forged and mismatched replies that arrive first are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_and_spoofed_replies_are_ignored() {
    let public = public_server().await;
    let script: Script = Arc::new(|q: &Message| {
        let id = q.metadata.id;
        let name = q.queries[0].name().clone();
        let other = Name::from_ascii("evil.corp.example.").unwrap();
        let mut echoed_query = q.clone();
        echoed_query.metadata.message_type = MessageType::Query;
        vec![
            // Right id and question, but from another port.
            Out::FromOtherPort(a_response(id, &name, ip(6, 6, 6, 1))),
            // Wrong id.
            Out::Reply(a_response(id ^ 0x5a5a, &name, ip(6, 6, 6, 2))),
            // Right id, wrong question.
            Out::Reply(a_response(id, &other, ip(6, 6, 6, 3))),
            // Right id and question, but not a response (QR=0).
            Out::Reply(echoed_query.to_vec().unwrap()),
            // Garbage.
            Out::Reply(vec![0xff; 7]),
            // The real answer.
            Out::Reply(a_response(id, &name, ip(10, 1, 0, 1))),
        ]
    });
    let fake = Fake::start(script, None).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, fake.addr, &[]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_eq!(rcode(&r), ResponseCode::NoError, "{r:?}");
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);
    let r = ask_udp(&d, "mail.corp.example").await;
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);

    let udp = fake.udp_queries();
    assert_eq!(udp.len(), 2, "one datagram per query, no retransmission needed");
    assert_eq!(qname(&udp[0].1), "www.corp.example");
    assert_eq!(qname(&udp[1].1), "mail.corp.example");
    assert!(fake.tcp_queries().is_empty());
    assert_eq!(public.count_under("corp.example"), 0);
}

/// TC=1 over UDP makes the daemon repeat the query over TCP; a truncating server still counts as
/// answering UDP, so the next query starts over UDP again.
/// A burst of cached queries from two clients, sent without waiting, arrives at the listener in
/// batches (recvmmsg/sendmmsg on Linux): every answer must go to the socket that asked, carry
/// that query's id and its question as sent (mixed case echoed), the right address, and an OPT
/// record exactly when the query had one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_burst_answers_go_to_their_own_clients() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions::default()).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);
    let names = [
        ("www.corp.example.", ip(10, 1, 0, 1)),
        ("mail.corp.example.", ip(10, 1, 0, 2)),
        ("www.public.example.", ip(192, 0, 2, 10)),
    ];
    for (name, want) in names {
        assert_eq!(a_addrs(&ask_udp(&d, name).await), vec![want], "warm-up of {name}");
    }
    let clients = [UdpSocket::bind("127.0.0.1:0").await.unwrap(), UdpSocket::bind("127.0.0.1:0").await.unwrap()];
    let mut expected = std::collections::HashMap::new();
    for i in 0..64u16 {
        let (name, want) = names[usize::from(i) % names.len()];
        // Alternate the case of every other letter, and EDNS on every third query.
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(k, c)| if (k + usize::from(i)) % 2 == 0 { c.to_ascii_uppercase() } else { c })
            .collect();
        let id = 0x4000 + i;
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(&mixed).unwrap(), RecordType::A));
        let edns = i % 3 == 0;
        if edns {
            m.edns = Some(hickory_proto::op::Edns::new());
        }
        let client = usize::from(i) % 2;
        clients[client].send_to(&m.to_vec().unwrap(), d.dns).await.unwrap();
        expected.insert((client, id), (mixed, want, edns));
    }
    let mut buf = vec![0u8; 4096];
    for (c, sock) in clients.iter().enumerate() {
        for _ in 0..32 {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("client {c}: answers missing; log:\n{}", d.log_text()))
                .unwrap();
            let r = Message::from_vec(&buf[..n]).unwrap();
            let (mixed, want, edns) = expected
                .remove(&(c, r.metadata.id))
                .unwrap_or_else(|| panic!("client {c} got an answer to id {:#x} it did not ask", r.metadata.id));
            assert_eq!(r.queries[0].name().to_ascii(), mixed, "question echoed as sent");
            assert_eq!(a_addrs(&r), vec![want], "{mixed}");
            assert_eq!(r.edns.is_some(), edns, "OPT only for EDNS queries ({mixed})");
            assert!(r.metadata.recursion_available && r.metadata.recursion_desired);
        }
    }
    assert!(expected.is_empty(), "unanswered: {expected:?}");
    let s = d.status().await;
    assert!(s["counters"]["cache_hits"].as_u64().unwrap_or(0) >= 64, "the burst was served from the cache: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_answer_is_retried_over_tcp() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions { truncate_udp: true, ..AuthOptions::default() }).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(!r.metadata.truncation, "the client gets the full answer");
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);
    let r = ask_udp(&d, "mail.corp.example").await;
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 2)]);

    let seen: Vec<(String, Proto)> = internal.queries().into_iter().map(|q| (q.name, q.proto)).collect();
    assert_eq!(
        seen,
        vec![
            ("www.corp.example".to_string(), Proto::Udp),
            ("www.corp.example".to_string(), Proto::Tcp),
            ("mail.corp.example".to_string(), Proto::Udp),
            ("mail.corp.example".to_string(), Proto::Tcp),
        ]
    );
    let status = d.status().await;
    let s = server_status(&status);
    assert_eq!(s["transport"], "udp", "{s}");
    assert_eq!(s["answers_tcp"], 2, "{s}");
    assert_eq!(s["answers_udp"], 0, "{s}");
    assert_eq!(public.count_under("corp.example"), 0);
}

/// A server that never answers UDP gets exactly one retransmission (same socket, same id), then
/// TCP; the daemon remembers that and asks it over TCP first next time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_silent_server_gets_one_retransmission_then_tcp_and_is_remembered() {
    let public = public_server().await;
    let backend = internal_with(AuthOptions::default()).await;
    let fake = Fake::start(Arc::new(|_: &Message| vec![]), Some(backend.addr())).await;
    // 1 s total: retransmit after 125 ms, TCP after 250 ms.
    let d = Daemon::start_with_config(&[public.addr()], &[], "query_timeout_ms = 1000").await;
    link_up(&d, fake.addr, &[]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_eq!(rcode(&r), ResponseCode::NoError, "{r:?}");
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);

    let udp = fake.udp_queries();
    assert_eq!(udp.len(), 2, "query + one retransmission: {udp:?}");
    assert_eq!(udp[0].0, udp[1].0, "the retransmission reuses the socket");
    assert_eq!(udp[0].1.metadata.id, udp[1].1.metadata.id);
    assert_eq!(qname(&udp[1].1), "www.corp.example");
    let tcp = fake.tcp_queries();
    assert_eq!(tcp.len(), 1, "{tcp:?}");
    assert_eq!(qname(&tcp[0]), "www.corp.example");

    let status = d.status().await;
    let s = server_status(&status);
    assert_eq!(s["transport"], "tcp (udp unanswered)", "{s}");
    assert_eq!(s["answers_tcp"], 1, "{s}");
    assert_eq!(s["answers_udp"], 0, "{s}");

    // Remembered: the next query goes straight to TCP, no UDP datagram at all.
    let r = ask_udp(&d, "mail.corp.example").await;
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 2)]);
    assert_eq!(fake.udp_queries().len(), 2, "UDP was tried again");
    let tcp = fake.tcp_queries();
    assert_eq!(tcp.len(), 2);
    assert_eq!(qname(&tcp[1]), "mail.corp.example");
    let status = d.status().await;
    assert_eq!(server_status(&status)["answers_tcp"], 2);
    assert_eq!(public.count_under("corp.example"), 0);
}

/// `--source` makes queries to the link's servers leave from that address, over UDP and TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_address_is_used_for_udp_and_tcp() {
    let public = public_server().await;
    // Truncating, so that every query goes over both transports.
    let internal = internal_with(AuthOptions { truncate_udp: true, ..AuthOptions::default() }).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &["--source", "127.0.0.5"]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);

    let log = internal.queries();
    let protos: Vec<Proto> = log.iter().map(|q| q.proto).collect();
    assert_eq!(protos, vec![Proto::Udp, Proto::Tcp], "{log:?}");
    let want: IpAddr = "127.0.0.5".parse().unwrap();
    for q in &log {
        assert_eq!(q.src_ip, want, "{q:?}");
    }
    let status = d.status().await;
    assert_eq!(status["links"][0]["source"], "127.0.0.5", "{status}");

    // The public upstream is not bound to the link's source.
    let r = ask_udp(&d, "www.public.example").await;
    assert_eq!(a_addrs(&r), vec![ip(192, 0, 2, 10)]);
    let q = public.queries();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].src_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
}

/// A source address that cannot be bound fails closed with EDE 23: no silent fallback to another
/// address, no query to the internal server from elsewhere, no leak to the public upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbindable_source_address_fails_closed_with_network_error() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions::default()).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine, so binding it fails with
    // EADDRNOTAVAIL (assumes the default net.ipv4.ip_nonlocal_bind = 0).
    link_up(&d, internal.addr(), &["--source", "192.0.2.1"]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_fail_closed(&r, EDE_NETWORK_ERROR);
    assert_eq!(internal.count(), 0, "{:?}", internal.queries());
    assert_eq!(public.count_under("corp.example"), 0);
}

/// `--interface lo` binds the link's sockets (UDP and TCP) to loopback, which reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_lo_is_accepted_and_used() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions { truncate_udp: true, ..AuthOptions::default() }).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &["--interface", "lo"]);

    let status = d.status().await;
    assert_eq!(status["links"][0]["interface"], "lo", "{status}");
    let r = ask_udp(&d, "www.corp.example").await;
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);
    let protos: Vec<Proto> = internal.queries().iter().map(|q| q.proto).collect();
    assert_eq!(protos, vec![Proto::Udp, Proto::Tcp]);
    assert_eq!(public.count_under("corp.example"), 0);
}

/// An interface that does not exist is refused at link up with a clear error, and nothing
/// changes: the link with that id keeps its servers and domains and routing still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_interface_is_refused_and_changes_nothing() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions::default()).await;
    let other = internal_with(AuthOptions::default()).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);
    let before = d.status().await["links"].clone();
    let state_before = std::fs::read(d.state_dir.join("links.json")).ok();

    let other_addr = other.addr().to_string();
    let (ok, out, err) = d.cli(&[
        "link",
        "up",
        "--id",
        LINK,
        "--server",
        &other_addr,
        "--domain",
        "other.example",
        "--interface",
        "doesnotexist0",
    ]);
    assert!(!ok, "link up with a missing interface succeeded: {out}");
    assert!(err.contains("doesnotexist0"), "{err}");
    assert!(err.contains("does not exist"), "{err}");

    assert_eq!(d.status().await["links"], before);
    assert_eq!(std::fs::read(d.state_dir.join("links.json")).ok(), state_before);
    let r = ask_udp(&d, "www.corp.example").await;
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);
    assert_eq!(internal.count(), 1);
    assert_eq!(other.count(), 0);
    assert_eq!(public.count_under("corp.example"), 0);
}

/// A link server that answers REFUSED: SERVFAIL + EDE 22 naming the link, over UDP and TCP, and
/// the public upstream (which would answer with its own corp.example) is never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_server_fails_closed_with_no_reachable_authority() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions { refuse_all: true, ..AuthOptions::default() }).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_fail_closed(&r, EDE_NO_REACHABLE_AUTHORITY);
    let r = ask_tcp(&d, "mail.corp.example").await;
    assert_fail_closed(&r, EDE_NO_REACHABLE_AUTHORITY);

    assert!(internal.count_under("corp.example") >= 2, "the link's server was asked");
    assert_eq!(public.count_under("corp.example"), 0, "{:?}", public.queries());
    // The public upstream works (it would have answered the leaked query).
    let r = ask_udp(&d, "www.public.example").await;
    assert_eq!(a_addrs(&r), vec![ip(192, 0, 2, 10)]);
}

/// A link server that never answers (UDP dropped, TCP refused) times out into SERVFAIL + EDE 22.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswering_server_times_out_with_no_reachable_authority() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions { udp: UdpMode::Blackhole, tcp: false, ..AuthOptions::default() }).await;
    let d = Daemon::start_with_config(&[public.addr()], &[], "query_timeout_ms = 1000").await;
    link_up(&d, internal.addr(), &[]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_fail_closed(&r, EDE_NO_REACHABLE_AUTHORITY);
    assert_eq!(public.count_under("corp.example"), 0, "{:?}", public.queries());
    let status = d.status().await;
    let s = server_status(&status);
    assert_eq!(s["transport"], "udp", "TCP never worked: {s}");
    assert!(s["failures"].as_u64().unwrap() >= 1, "{s}");
}

/// A link server whose port is closed (ICMP port unreachable) is a network error: EDE 23.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_fails_closed_with_network_error() {
    let public = public_server().await;
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, closed, &[]);

    let r = ask_udp(&d, "www.corp.example").await;
    assert_fail_closed(&r, EDE_NETWORK_ERROR);
    let r = ask_tcp(&d, "www.corp.example").await;
    assert_fail_closed(&r, EDE_NETWORK_ERROR);
    assert_eq!(public.count_under("corp.example"), 0, "{:?}", public.queries());
}

/// The listener serves TCP clients, for split and public names alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_answers_over_tcp() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions::default()).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);

    let r = ask_tcp(&d, "www.corp.example").await;
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(r.metadata.recursion_available);
    assert!(!r.metadata.authoritative);
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);
    let r = ask_tcp(&d, "www.public.example").await;
    assert_eq!(a_addrs(&r), vec![ip(192, 0, 2, 10)]);
    let r = ask_tcp(&d, "nope.corp.example").await;
    assert_eq!(rcode(&r), ResponseCode::NXDomain);

    assert_eq!(internal.count(), 2);
    assert_eq!(public.count_under("corp.example"), 0);
    assert_eq!(public.count_under("public.example"), 1);
}

/// Garbage on the listener (UDP and TCP) does not stop the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_packets_do_not_stop_the_daemon() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions::default()).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);

    let mut truncated_question = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    truncated_question.extend_from_slice(&[3, b'w', b'w']);
    let mut response = Message::response(0x4242, OpCode::Query);
    response.add_query(Query::query(Name::from_ascii("www.corp.example.").unwrap(), RecordType::A));
    let pseudo_random: Vec<u8> = (0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let garbage: Vec<Vec<u8>> = vec![
        b"junk".to_vec(),
        vec![0u8; 12],
        vec![0xff; 12],
        truncated_question,
        pseudo_random,
        response.to_vec().unwrap(),
        vec![0u8; 0],
    ];
    for g in &garbage {
        // Any reply (or none) is fine; the daemon must simply survive.
        let _ = client::send_raw_udp(d.dns, g, Duration::from_millis(200)).await;
    }
    // Garbage over TCP too: a bogus length prefix and junk, then a hang-up.
    {
        let mut s = TcpStream::connect(d.dns).await.unwrap();
        let _ = s.write_all(&[0x00, 0x05, 1, 2, 3, 4, 5]).await;
        let _ = s.write_all(&[0xff, 0xff, 0xde, 0xad]).await;
    }

    let r = ask_udp(&d, "www.corp.example").await;
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert_eq!(a_addrs(&r), vec![ip(10, 1, 0, 1)]);
    let r = ask_tcp(&d, "www.public.example").await;
    assert_eq!(a_addrs(&r), vec![ip(192, 0, 2, 10)]);
    let status = d.status().await;
    assert_eq!(status["links"][0]["id"], LINK);
    assert_eq!(public.count_under("corp.example"), 0);
}

/// A client that sends no OPT record gets a normal answer without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_edns_gets_a_plain_answer() {
    let public = public_server().await;
    let internal = internal_with(AuthOptions::default()).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    link_up(&d, internal.addr(), &[]);

    let no_edns = Q { edns: false, ..Q::default() };
    for (name, want) in [("www.corp.example", ip(10, 1, 0, 1)), ("www.public.example", ip(192, 0, 2, 10))] {
        let r = client::udp(d.dns, name, RecordType::A, &no_edns).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rcode(&r), ResponseCode::NoError, "{name}");
        assert_eq!(a_addrs(&r), vec![want], "{name}");
        assert!(r.edns.is_none(), "{name}: OPT in a reply to a non-EDNS query");
        assert_eq!(r.queries.len(), 1);
    }
    assert_eq!(internal.count(), 1);
    assert_eq!(public.count_under("corp.example"), 0);
}

/// A tunnel server that goes silent (after a resume, say) while browsers retry: a burst of new
/// names for its link must not pin the daemon's descriptors and starve public names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tunnel_server_cannot_starve_public_names() {
    let public = AuthServer::start(&[("public.example.", &zone("public.example.", "* 60 IN A 192.0.2.10"))]).await;
    let silent = internal_with(AuthOptions { udp: UdpMode::Blackhole, tcp: false, ..AuthOptions::default() }).await;
    // A service manager's default limit of 1,024 open files.
    let d = Daemon::start_with_open_files_limit(&[public.addr()], &[], 1024).await;
    link_up(&d, silent.addr(), &[]);

    // 1,500 different names under the silent link, sent without waiting, from a few sockets.
    let mut sockets = Vec::new();
    for _ in 0..15 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(d.dns).await.unwrap();
        sockets.push(s);
    }
    for i in 0..1500u16 {
        let mut m = Message::new(i, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(format!("n{i}.corp.example.")).unwrap(), RecordType::A));
        m.set_edns(hickory_proto::op::Edns::new());
        sockets[usize::from(i) % 15].send(&m.to_vec().unwrap()).await.unwrap();
    }
    // Meanwhile, new public names resolve.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut resolved = 0;
    for i in 0..10 {
        let q = Q { timeout: Duration::from_secs(3), ..Q::default() };
        if let Ok(m) = client::udp(d.dns, &format!("new{i}.public.example"), RecordType::A, &q).await
            && a_addrs(&m) == [ip(192, 0, 2, 10)]
        {
            resolved += 1;
        }
    }
    assert_eq!(resolved, 10, "public names starved by a silent tunnel; log:\n{}", d.log_text());

    // The excess of the burst was refused at once, saying why.
    let mut shed = 0;
    let mut buf = vec![0u8; 4096];
    for s in &sockets {
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), s.recv(&mut buf)).await {
            let m = Message::from_vec(&buf[..n]).unwrap();
            if rcode(&m) == ResponseCode::ServFail
                && ede(&m).is_some_and(|(code, text)| code == EDE_NO_REACHABLE_AUTHORITY && text.contains("in flight"))
            {
                shed += 1;
            }
        }
    }
    assert!(shed > 0, "no query was refused at once with the reason");
    // Of the burst, at most the route's budget (256) was sent; the rest was refused at once.
    let st = d.status().await;
    let c = &st["links"][0]["counters"];
    let n = |k: &str| c[k].as_u64().unwrap();
    eprintln!(
        "burst: {} queries reached the daemon, {} sent, {} shed; {shed} shed replies read",
        n("queries"),
        n("forwards"),
        n("shed")
    );
    assert!(n("forwards") <= 256, "{c}");
    assert_eq!(n("shed") + n("forwards"), n("queries"), "{c}");
    assert!(n("shed") >= 500, "{c}");
    assert_eq!(public.count_under("corp.example"), 0, "no split name leaked while shedding");
}
