//! Proves that the DNS-over-TLS fixtures in `tests/common/dot.rs` behave as documented, with no
//! splitdns in between: the test PKI's files and certificates, the DoT server's answers, query log
//! and connection counts, its misbehaving modes (close after each answer, reverse order, silence),
//! and the clear-text sniffer.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::auth::{Proto, zone};
use common::client::{self, Q, a_addrs, rcode};
use common::dot::{self, DOT_NAME, DotClient, DotMode, DotOptions, DotServer, Pki, dot_with_sniffer, is_root};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// corp.example with www, and h1..h20 at 10.1.1.N.
fn corp() -> String {
    let mut records = String::from("www 60 IN A 10.1.0.1\n");
    for i in 1..=20 {
        records.push_str(&format!("h{i} 60 IN A 10.1.1.{i}\n"));
    }
    zone("corp.example.", &records)
}

fn qname(m: &Message) -> String {
    m.queries[0].name().to_string().trim_end_matches('.').to_string()
}

/// Waits up to 2 s for `f` to hold.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 2 s: {what}");
}

#[tokio::test]
async fn pki_writes_a_pem_ca_and_the_server_answers_a_client_that_trusts_it() {
    let pki = Pki::new();
    let pem = std::fs::read_to_string(pki.ca_file()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(pem, pki.ca_pem());
    assert_eq!(pki.ca_file().file_name().unwrap(), "ca.pem");
    assert!(pki.ca_file().starts_with(pki.dir()));

    let text = corp();
    let srv = DotServer::start(&pki.dot_test(), &[("corp.example.", &text)]).await;
    assert_eq!(srv.addr().ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(srv.url(DOT_NAME), format!("tls://127.0.0.1:{}#dot.test", srv.addr().port()));

    // By name, and by IP address (the usual leaf carries 127.0.0.1).
    let r = dot::query(srv.addr(), DOT_NAME, pki.client_config(), "www.corp.example", RecordType::A).await.unwrap();
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    let r = dot::query(srv.addr(), "127.0.0.1", pki.client_config(), "nope.corp.example", RecordType::A).await.unwrap();
    assert_eq!(rcode(&r), ResponseCode::NXDomain);

    let log = srv.queries();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].name, "www.corp.example");
    assert_eq!(log[0].proto, Proto::Tls);
    assert_eq!(log[1].name, "nope.corp.example");
    assert_eq!(srv.count_under("corp.example"), 2);
    assert_eq!(srv.connections(), 2);
    assert_eq!(srv.handshakes(), 2);
    assert_eq!(srv.failed_handshakes(), 0);
    assert_eq!(srv.answers(), 2);
    // Plain TCP on the TLS port gets no DNS answer.
    assert!(client::tcp(srv.addr(), "www.corp.example", RecordType::A, &short()).await.is_err());
    eventually("the plain TCP attempt counts as a failed handshake", || srv.failed_handshakes() == 1).await;
    assert_eq!(srv.count(), 2, "no query was processed from clear text");
}

fn short() -> Q {
    Q { timeout: Duration::from_millis(500), ..Q::default() }
}

#[tokio::test]
async fn wrong_name_unknown_ca_and_missing_ip_are_refused_by_the_client() {
    let pki = Pki::new();
    let other_ca = Pki::new();
    let text = corp();
    let srv = DotServer::start(&pki.dot_test(), &[("corp.example.", &text)]).await;

    let e = dot::query(srv.addr(), "other.test", pki.client_config(), "www.corp.example", RecordType::A)
        .await
        .expect_err("the certificate does not carry other.test");
    assert!(e.to_string().contains("certificate"), "{e}");
    let e = dot::query(srv.addr(), DOT_NAME, other_ca.client_config(), "www.corp.example", RecordType::A)
        .await
        .expect_err("the certificate is from another CA");
    assert!(e.to_string().to_lowercase().contains("issuer"), "{e}");
    eventually("both refused handshakes are counted", || srv.failed_handshakes() == 2).await;
    assert_eq!(srv.connections(), 2);
    assert_eq!(srv.handshakes(), 0);
    assert_eq!(srv.count(), 0, "no query was sent over a refused connection");

    // The unrelated CA's own dot.test leaf is trusted by its own clients only.
    let stranger = DotServer::start(&other_ca.dot_test(), &[("corp.example.", &text)]).await;
    assert!(
        dot::query(stranger.addr(), DOT_NAME, pki.client_config(), "www.corp.example", RecordType::A).await.is_err()
    );
    let r = dot::query(stranger.addr(), DOT_NAME, other_ca.client_config(), "www.corp.example", RecordType::A).await;
    assert_eq!(a_addrs(&r.unwrap()), vec![Ipv4Addr::new(10, 1, 0, 1)]);

    // A leaf with names only is refused when checked by IP address.
    let names_only = DotServer::start(&pki.leaf(&[DOT_NAME], &[]), &[("corp.example.", &text)]).await;
    assert!(
        dot::query(names_only.addr(), "127.0.0.1", pki.client_config(), "www.corp.example", RecordType::A)
            .await
            .is_err()
    );
    assert!(
        dot::query(names_only.addr(), DOT_NAME, pki.client_config(), "www.corp.example", RecordType::A).await.is_ok()
    );
}

#[tokio::test]
async fn answer_mode_serves_pipelined_queries_on_one_connection() {
    let pki = Pki::new();
    let text = corp();
    let srv = DotServer::start(&pki.dot_test(), &[("corp.example.", &text)]).await;
    let mut c = DotClient::connect(srv.addr(), DOT_NAME, pki.client_config()).await.unwrap();
    let mut ids = std::collections::HashMap::new();
    for i in 1..=20u8 {
        let id = c.send(&format!("h{i}.corp.example"), RecordType::A).await.unwrap();
        ids.insert(id, i);
    }
    for _ in 0..20 {
        let r = c.recv(Duration::from_secs(5)).await.unwrap();
        let i = ids.remove(&r.metadata.id).expect("an answer to a query that was sent");
        assert_eq!(qname(&r), format!("h{i}.corp.example"));
        assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 1, i)]);
    }
    assert_eq!(srv.connections(), 1);
    assert_eq!(srv.count(), 20);
    assert_eq!(srv.open_connections(), 1);
    drop(c);
    eventually("the closed connection is no longer open", || srv.open_connections() == 0).await;
}

#[tokio::test]
async fn close_after_each_answers_once_per_connection_and_sessions_resume() {
    let pki = Pki::new();
    let text = corp();
    let opts = DotOptions { mode: DotMode::CloseAfterEach, ..DotOptions::default() };
    let srv = DotServer::start_with(opts, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let config = pki.client_config();

    let mut c = DotClient::connect(srv.addr(), DOT_NAME, config.clone()).await.unwrap();
    assert!(!c.resumed());
    c.send("h1.corp.example", RecordType::A).await.unwrap();
    c.send("h2.corp.example", RecordType::A).await.unwrap();
    let r = c.recv(Duration::from_secs(5)).await.unwrap();
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 1, 1)]);
    let e = c.recv(Duration::from_secs(5)).await.expect_err("the second query is never answered");
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(srv.count(), 1, "only the answered query is logged: {:?}", srv.queries());

    // A fresh connection is served again, and resumes the session (same client config).
    let mut c = DotClient::connect(srv.addr(), DOT_NAME, config).await.unwrap();
    let r = c.query("h2.corp.example", RecordType::A).await.unwrap();
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 1, 2)]);
    assert!(c.resumed(), "the second handshake resumed the first session");
    assert_eq!(srv.connections(), 2);
    assert_eq!(srv.resumed(), 1);
    assert_eq!(srv.answers(), 2);
}

#[tokio::test]
async fn reverse_mode_answers_each_batch_newest_first() {
    let pki = Pki::new();
    let text = corp();
    let opts =
        DotOptions { mode: DotMode::Reverse { batch: 4, wait: Duration::from_millis(300) }, ..DotOptions::default() };
    let srv = DotServer::start_with(opts, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let mut c = DotClient::connect(srv.addr(), DOT_NAME, pki.client_config()).await.unwrap();

    // A full batch: four answers, newest first, each matching its own query.
    let mut sent = Vec::new();
    for i in 1..=4u8 {
        sent.push((c.send(&format!("h{i}.corp.example"), RecordType::A).await.unwrap(), i));
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let r = c.recv(Duration::from_secs(5)).await.unwrap();
        let i = sent.iter().find(|(id, _)| *id == r.metadata.id).expect("known id").1;
        assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 1, i)]);
        got.push(i);
    }
    assert_eq!(got, vec![4, 3, 2, 1]);
    assert_eq!(srv.reordered(), 1);

    // A lone query is answered once the wait is over.
    let start = std::time::Instant::now();
    let r = c.query("h9.corp.example", RecordType::A).await.unwrap();
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 1, 9)]);
    assert!(start.elapsed() >= Duration::from_millis(250), "{:?}", start.elapsed());
    assert_eq!(srv.reordered(), 1, "a batch of one is not counted as reordered");
    assert_eq!(srv.connections(), 1);
}

#[tokio::test]
async fn silent_mode_logs_queries_never_answers_and_closes_when_dropped() {
    let pki = Pki::new();
    let text = corp();
    let opts = DotOptions { mode: DotMode::Silent, ..DotOptions::default() };
    let srv = DotServer::start_with(opts, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let mut c = DotClient::connect(srv.addr(), DOT_NAME, pki.client_config()).await.unwrap();
    c.send("www.corp.example", RecordType::A).await.unwrap();
    let e = c.recv(Duration::from_millis(500)).await.expect_err("silent");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(srv.count(), 1);
    assert_eq!(srv.queries()[0].name, "www.corp.example");
    assert_eq!(srv.handshakes(), 1);
    assert_eq!(srv.open_connections(), 1);
    assert_eq!(srv.answers(), 0);

    let addr = srv.addr();
    drop(srv);
    let e = c.recv(Duration::from_secs(2)).await.expect_err("closed");
    assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "the connection is closed when the server is dropped: {e}");
    assert!(DotClient::connect(addr, DOT_NAME, pki.client_config()).await.is_err(), "no longer listening");
}

#[tokio::test]
async fn sniffer_beside_a_dot_server_records_clear_text() {
    let pki = Pki::new();
    let text = corp();
    let (srv, sniffer) = dot_with_sniffer(DotMode::Answer, &pki.dot_test(), &[("corp.example.", &text)]).await;
    let ip = srv.addr().ip();
    assert!(ip.to_string().starts_with("127.85."), "{ip}");
    assert!(sniffer.describe().contains(&format!("udp {}", srv.addr())), "{}", sniffer.describe());
    assert_eq!(sniffer.watches_port_53(), is_root());

    // The DoT server itself works (the usual leaf does not carry 127.85.x.y: ask by name).
    let r = dot::query(srv.addr(), DOT_NAME, pki.client_config(), "www.corp.example", RecordType::A).await.unwrap();
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(sniffer.count(), 0, "TLS traffic is not the sniffer's");

    // Clear-text UDP on the DoT port is recorded, and never answered.
    assert!(client::udp(srv.addr(), "www.corp.example", RecordType::A, &short()).await.is_err());
    let seen = sniffer.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].proto, Proto::Udp);
    assert_eq!(seen[0].local, srv.addr());
    assert_eq!(qname(&seen[0].message().expect("a DNS query")), "www.corp.example");

    if !is_root() {
        eprintln!("SKIPPED (part): the sniffer watches port 53 only as root");
        return;
    }
    let plain: SocketAddr = (ip, 53).into();
    assert!(client::udp(plain, "mail.corp.example", RecordType::A, &short()).await.is_err());
    assert!(client::tcp(plain, "h1.corp.example", RecordType::A, &short()).await.is_err());
    // A bare connection with nothing sent is recorded too.
    drop(tokio::net::TcpStream::connect(plain).await.unwrap());
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = sniffer.seen();
        if seen.len() == 4 && !seen[2].bytes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!((seen[1].proto, seen[1].local), (Proto::Udp, plain));
    assert_eq!(qname(&seen[1].message().unwrap()), "mail.corp.example");
    let tcp: Vec<_> = seen.iter().filter(|s| s.proto == Proto::Tcp).collect();
    assert_eq!(tcp.len(), 2, "{seen:?}");
    assert!(tcp.iter().all(|s| s.local == plain));
    assert!(tcp.iter().any(|s| s.message().is_some_and(|m| qname(&m) == "h1.corp.example")), "{tcp:?}");
    assert!(tcp.iter().any(|s| s.bytes.is_empty()), "{tcp:?}");
}

#[tokio::test]
async fn a_leaf_for_an_ip_address_serves_on_port_853_of_a_dedicated_address() {
    if !is_root() {
        eprintln!("SKIPPED: port 853 needs root");
        return;
    }
    let pki = Pki::new();
    let ip = dot::dedicated_ip();
    let text = corp();
    let opts = DotOptions { ip: Some(ip), port: Some(853), ..DotOptions::default() };
    let srv = DotServer::start_with(opts, &pki.leaf(&[], &[ip]), &[("corp.example.", &text)]).await;
    assert_eq!(srv.addr(), SocketAddr::new(ip, 853));
    let r = dot::query(srv.addr(), &ip.to_string(), pki.client_config(), "www.corp.example", RecordType::A).await;
    assert_eq!(a_addrs(&r.unwrap()), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    assert!(dot::query(srv.addr(), DOT_NAME, pki.client_config(), "www.corp.example", RecordType::A).await.is_err());
}
